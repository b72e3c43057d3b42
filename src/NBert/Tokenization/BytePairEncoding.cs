using System.Collections.Concurrent;

namespace NBert.Tokenization;

/// <summary>
/// Hugging Face's BPE model: each char of a word starts as a symbol, then the pair of neighbours with the
/// lowest merge rank is merged (the leftmost of equal ranks) until no listed merge applies. RoBERTa and GPT-2 run it
/// on byte-level words (every UTF-8 byte a char), so no word is unknown.
/// </summary>
public sealed class BytePairEncoding : TokenizerModel
{
    private readonly string[] _idToToken;
    private readonly Dictionary<string, int> _tokenToId;
    private readonly Dictionary<char, int> _charId = new();
    private readonly Dictionary<long, (int Rank, int Id)> _merges = new();
    private readonly int? _unkId;
    // Words repeat (" the", " and"), so their tokens are kept; only short words, and only so many.
    private readonly ConcurrentDictionary<string, (int Id, int Start, int Length)[]> _cache = new(StringComparer.Ordinal);
    private const int CacheCapacity = 20_000, CachedWordLength = 64;

    /// <summary>The merges in rank order (tokenizer.json's <c>model.merges</c>, merges.txt's lines).</summary>
    public IReadOnlyList<(string Left, string Right)> Merges { get; }
    /// <summary>The token for a char the vocabulary lacks (<c>unk_token</c>); null drops such chars, as Hugging Face does.</summary>
    public string? UnkToken { get; }
    /// <summary>Consecutive unknown chars become one <see cref="UnkToken"/> (<c>fuse_unk</c>).</summary>
    public bool FuseUnk { get; }
    /// <summary>A word that is itself in the vocabulary is one token, whatever the merges say (<c>ignore_merges</c>).</summary>
    public bool IgnoreMerges { get; }

    /// <summary>Builds the model; <see cref="ArgumentException"/> for a negative id, an unknown <paramref name="unkToken"/>,
    /// or a merge whose parts or result are not in the vocabulary (naming the merge's 1-based rank).</summary>
    public BytePairEncoding(IReadOnlyDictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> merges,
        string? unkToken = null, bool fuseUnk = false, bool ignoreMerges = false)
    {
        ArgumentNullException.ThrowIfNull(vocab);
        ArgumentNullException.ThrowIfNull(merges);
        if (vocab.Count == 0) throw new ArgumentException("The vocabulary is empty.", nameof(vocab));
        int maxId = -1;
        foreach (var (token, id) in vocab)
        {
            if (id < 0) throw new ArgumentException($"Token '{NBertException.Quote(token)}' has the negative id {id}.", nameof(vocab));
            maxId = Math.Max(maxId, id);
        }
        _idToToken = new string[maxId + 1];
        _tokenToId = new Dictionary<string, int>(vocab.Count, StringComparer.Ordinal);
        foreach (var (token, id) in vocab)
        {
            _idToToken[id] = token;
            _tokenToId[token] = id;
            if (token.Length == 1) _charId[token[0]] = id;
        }
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (left, right) = merges[rank];
            int Id(string token) => _tokenToId.TryGetValue(token, out int id) ? id
                : throw new ArgumentException($"merge {rank + 1} ('{NBertException.Quote(left)} {NBertException.Quote(right)}'): " +
                    $"'{NBertException.Quote(token)}' is not in the vocabulary.", nameof(merges));
            int a = Id(left), b = Id(right), merged = Id(left + right);
            _merges.TryAdd(Key(a, b), (rank, merged)); // a repeated merge keeps its first rank, as the Rust map does
        }
        if (unkToken is not null)
            _unkId = _tokenToId.TryGetValue(unkToken, out int unk) ? unk
                : throw new ArgumentException($"The unknown token '{NBertException.Quote(unkToken)}' is not in the vocabulary.", nameof(unkToken));
        Merges = merges.ToArray();
        UnkToken = unkToken;
        FuseUnk = fuseUnk;
        IgnoreMerges = ignoreMerges;
    }

    /// <summary>The highest id plus one (a gap in the ids counts too).</summary>
    public override int VocabSize => _idToToken.Length;
    /// <summary>Token to id, as vocab.json or tokenizer.json's <c>model.vocab</c> gives them (tokens as byte chars: <c>Ġthe</c>).</summary>
    public override IReadOnlyDictionary<string, int> Vocab => _tokenToId;
    /// <summary>The token of an id; null outside the vocabulary or in a gap.</summary>
    public override string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;
    /// <summary>The id of a token (ordinal match); null when the vocabulary has none.</summary>
    public override int? TokenToId(string token) => _tokenToId.TryGetValue(token, out int id) ? id : null;

    private static long Key(int a, int b) => ((long)a << 32) | (uint)b;

    /// <summary>The tokens of one word as (id, first char, chars covered), in order. A char the vocabulary lacks becomes
    /// the unknown token (consecutive ones fused with <see cref="FuseUnk"/>), or no token at all without one.</summary>
    internal (int Id, int Start, int Length)[] Tokenize(ReadOnlySpan<char> word)
    {
        bool cacheable = word.Length <= CachedWordLength;
        if (cacheable && _cache.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(word, out var cached)) return cached;
        var result = Merge(word);
        if (cacheable && _cache.Count < CacheCapacity) _cache.TryAdd(new string(word), result);
        return result;
    }

    private (int Id, int Start, int Length)[] Merge(ReadOnlySpan<char> word)
    {
        if (IgnoreMerges && _tokenToId.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(word, out int whole)) return [(whole, 0, word.Length)];
        // The symbols, a linked list of lengths in UTF-8 bytes (the Rust crate's unit); merging keeps the left one and
        // empties the right one.
        int n = word.Length;
        var id = new int[n];
        var length = new int[n];
        var prev = new int[n];
        var next = new int[n];
        int count = 0;
        bool lastWasUnknown = false;
        for (int i = 0; i < n; i++)
        {
            if (_charId.TryGetValue(word[i], out int known))
            {
                Add(known, Utf8Length(word[i]));
                lastWasUnknown = false;
            }
            else if (_unkId is int unk)
            {
                if (FuseUnk && lastWasUnknown) length[count - 1] += Utf8Length(word[i]);
                else Add(unk, Utf8Length(word[i]));
                lastWasUnknown = true;
            }
            // else the char is dropped, as Hugging Face drops it without an unknown token
        }
        static int Utf8Length(char c) => c < 0x80 ? 1 : c < 0x800 ? 2 : 3;
        void Add(int symbol, int bytes)
        {
            (id[count], length[count], prev[count], next[count]) = (symbol, bytes, count - 1, count + 1);
            count++;
        }
        if (count == 0) return [];
        next[count - 1] = -1;
        var queue = new PriorityQueue<int, long>();
        void Push(int left)
        {
            int right = next[left];
            if (right >= 0 && _merges.TryGetValue(Key(id[left], id[right]), out var m))
                queue.Enqueue(left, ((long)m.Rank << 32) | (uint)left); // lowest rank first, then leftmost
        }
        for (int i = 0; i + 1 < count; i++) Push(i);
        while (queue.TryDequeue(out int left, out long priority))
        {
            int right = next[left];
            // A stale entry: the left symbol was merged away, or its right neighbour has changed since.
            if (length[left] == 0 || right < 0) continue;
            if (!_merges.TryGetValue(Key(id[left], id[right]), out var m) || m.Rank != (int)(priority >> 32)) continue;
            id[left] = m.Id;
            length[left] += length[right];
            length[right] = 0;
            next[left] = next[right];
            if (next[left] >= 0) prev[next[left]] = left;
            if (prev[left] >= 0) Push(prev[left]);
            Push(left);
        }
        // Offsets as the Rust Word gives them: in UTF-8 bytes of the word, each token starting where the previous one
        // ended. Without dropped chars that is exactly the token's chars; a dropped char (no unknown token) shifts the
        // rest left, by its bytes, as there.
        var charAt = new int[n * 3 + 1];
        int bytes = 0;
        for (int i = 0; i < n; i++)
            for (int b = Utf8Length(word[i]); b > 0; b--) charAt[bytes++] = i;
        var tokens = new List<(int, int, int)>();
        for (int i = 0, at = 0; i >= 0; i = next[i])
        {
            int first = charAt[at];
            at += length[i];
            tokens.Add((id[i], first, charAt[at - 1] - first + 1));
        }
        return [.. tokens];
    }
}
