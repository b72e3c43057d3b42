namespace NBert.Tokenization;

/// <summary>
/// The vocabulary and Hugging Face's WordPiece model: greedy longest-match-first inside one word,
/// continuation pieces prefixed with <see cref="ContinuingSubwordPrefix"/>; a word with no complete
/// split, or longer than <see cref="MaxInputCharsPerWord"/> code points, becomes the unknown token.
/// </summary>
public sealed class WordPiece : TokenizerModel
{
    private readonly string[] _idToToken;
    private readonly Dictionary<string, int> _tokenToId;
    // Continuation pieces are stored without their prefix, so a lookup is a span of the word and never
    // builds a string.
    private readonly VocabTable _wordStart;
    private readonly VocabTable _continuation;
    private readonly int _maxWordStartChars, _maxContinuationChars;

    /// <summary>The token a word becomes when it cannot be split (<c>unk_token</c>).</summary>
    public string UnkToken { get; }
    /// <summary>The id of <see cref="UnkToken"/>.</summary>
    public int UnkId { get; }
    /// <summary>The prefix of pieces that continue a word, <c>##</c> in BERT.</summary>
    public string ContinuingSubwordPrefix { get; }
    /// <summary>A word longer than this many code points becomes <see cref="UnkToken"/> (default 100).</summary>
    public int MaxInputCharsPerWord { get; }

    /// <summary>Builds the model from token-to-id pairs; ids are non-negative (a vocab.txt with a repeated
    /// line leaves a gap).</summary>
    public WordPiece(IReadOnlyDictionary<string, int> vocab, string unkToken = "[UNK]",
        string continuingSubwordPrefix = "##", int maxInputCharsPerWord = 100)
    {
        ArgumentNullException.ThrowIfNull(vocab);
        if (vocab.Count == 0) throw new ArgumentException("The vocabulary is empty.", nameof(vocab));
        int maxId = -1;
        foreach (var (token, id) in vocab)
        {
            if (id < 0) throw new ArgumentException($"Token '{token}' has the negative id {id}.", nameof(vocab));
            maxId = Math.Max(maxId, id);
        }
        _idToToken = new string[maxId + 1];
        _tokenToId = new Dictionary<string, int>(vocab.Count, StringComparer.Ordinal);
        var continuation = new List<(string, int)>();
        foreach (var (token, id) in vocab)
        {
            _idToToken[id] = token;
            _tokenToId[token] = id;
            _maxWordStartChars = Math.Max(_maxWordStartChars, token.Length);
            if (continuingSubwordPrefix.Length > 0 && token.StartsWith(continuingSubwordPrefix, StringComparison.Ordinal))
            {
                continuation.Add((token[continuingSubwordPrefix.Length..], id));
                _maxContinuationChars = Math.Max(_maxContinuationChars, token.Length - continuingSubwordPrefix.Length);
            }
        }
        if (!_tokenToId.TryGetValue(unkToken, out int unk))
            throw new ArgumentException($"The unknown token '{unkToken}' is not in the vocabulary.", nameof(unkToken));
        _wordStart = new VocabTable(vocab.Select(e => (e.Key, e.Value)));
        _continuation = new VocabTable(continuation);
        UnkToken = unkToken;
        UnkId = unk;
        ContinuingSubwordPrefix = continuingSubwordPrefix;
        MaxInputCharsPerWord = maxInputCharsPerWord;
    }

    /// <summary>The highest id plus one (a gap in the ids counts too).</summary>
    public override int VocabSize => _idToToken.Length;

    /// <summary>Token to id, as vocab.txt or tokenizer.json's <c>model.vocab</c> gives them.</summary>
    public override IReadOnlyDictionary<string, int> Vocab => _tokenToId;

    /// <summary>The token of an id; null outside the vocabulary or in a gap.</summary>
    public override string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    /// <summary>The id of a token (ordinal match); null when the vocabulary has none.</summary>
    public override int? TokenToId(string token) => _tokenToId.TryGetValue(token, out int id) ? id : null;

    /// <summary>
    /// Splits one normalised word, <c>buffer.Chars[from..to)</c>, into pieces appended to
    /// <paramref name="sink"/> with offsets taken from the buffer's alignments.
    /// </summary>
    internal void Tokenize(NormalizedBuffer buffer, int from, int to, int wordIndex, TokenSink sink) =>
        Tokenize(buffer.Chars.AsSpan(from, to - from), buffer.Start.AsSpan(from, to - from), buffer.End.AsSpan(from, to - from), 0, wordIndex, sink);

    /// <summary>
    /// Splits a word of plain ASCII chars that map one to one onto the caller's text from
    /// <paramref name="sourceStart"/>; <paramref name="packed"/> is the word packed by
    /// <see cref="VocabTable.TryPack"/> when it has at most 8 chars, which makes the common case (the
    /// whole word is a token) a single probe.
    /// </summary>
    internal void TokenizeAscii(ReadOnlySpan<char> word, ulong packed, int sourceStart, int wordIndex, TokenSink sink)
    {
        if (word.Length <= 8 && word.Length <= MaxInputCharsPerWord && _wordStart.TryGetPacked(packed, word.Length, out int id))
            sink.Add(id, sourceStart, sourceStart + word.Length, wordIndex);
        else
            Tokenize(word, default, default, sourceStart, wordIndex, sink);
    }

    /// <summary>Greedy longest-match-first. Char k of the word came from the caller's text at
    /// <c>starts[k]..ends[k]</c>, or at <c>sourceStart + k</c> when no alignments are given.</summary>
    private void Tokenize(ReadOnlySpan<char> word, ReadOnlySpan<int> starts, ReadOnlySpan<int> ends, int sourceStart, int wordIndex, TokenSink sink)
    {
        bool aligned = !starts.IsEmpty;
        int wordStart = aligned ? starts[0] : sourceStart, wordEnd = aligned ? ends[^1] : sourceStart + word.Length;
        if (CodePointCount(word) > MaxInputCharsPerWord)
        {
            sink.Add(UnkId, wordStart, wordEnd, wordIndex);
            return;
        }
        int mark = sink.Count;
        int start = 0;
        while (start < word.Length)
        {
            var table = start == 0 ? _wordStart : _continuation;
            int end = Math.Min(word.Length, start + (start == 0 ? _maxWordStartChars : _maxContinuationChars));
            int id = -1;
            for (; end > start; end--)
            {
                // Rust slices at char (code point) boundaries: never split a surrogate pair.
                if (end < word.Length && char.IsLowSurrogate(word[end]) && char.IsHighSurrogate(word[end - 1])) continue;
                if (table.TryGet(word[start..end], out id)) break;
            }
            if (end == start)
            {
                sink.Count = mark; // no complete split: the whole word is unknown
                sink.Add(UnkId, wordStart, wordEnd, wordIndex);
                return;
            }
            sink.Add(id, aligned ? starts[start] : sourceStart + start, aligned ? ends[end - 1] : sourceStart + end, wordIndex);
            start = end;
        }
    }

    private static int CodePointCount(ReadOnlySpan<char> s)
    {
        int n = s.Length;
        foreach (char c in s) if (char.IsLowSurrogate(c)) n--;
        return n;
    }
}

/// <summary>Growable columns of tokens (id, source span, word index), reused between calls. A token has a second span,
/// <see cref="FirstStarts"/>..<see cref="FirstEnds"/>, for when it comes first in its window: byte-level offset trimming
/// keeps the prefix space of a first token. Elsewhere both spans are the same.</summary>
internal sealed class TokenSink
{
    public int[] Ids = new int[64];
    public int[] Starts = new int[64];
    public int[] Ends = new int[64];
    public int[] FirstStarts = new int[64];
    public int[] FirstEnds = new int[64];
    public int[] Words = new int[64];
    /// <summary>The token's string where it is not its id's (an added token that matched more text than its content).</summary>
    public string?[] Texts = new string?[64];
    public int Count;

    public void Add(int id, int start, int end, int word) => Add(id, start, end, start, end, word);

    public void Add(int id, int start, int end, int firstStart, int firstEnd, int word)
    {
        if (Count == Ids.Length)
        {
            int n = Ids.Length * 2;
            Array.Resize(ref Ids, n);
            Array.Resize(ref Starts, n);
            Array.Resize(ref Ends, n);
            Array.Resize(ref FirstStarts, n);
            Array.Resize(ref FirstEnds, n);
            Array.Resize(ref Words, n);
            Array.Resize(ref Texts, n);
        }
        Ids[Count] = id;
        Starts[Count] = start;
        Ends[Count] = end;
        FirstStarts[Count] = firstStart;
        FirstEnds[Count] = firstEnd;
        Words[Count] = word;
        Texts[Count] = null;
        Count++;
    }

    /// <summary>Drop very large arrays after a huge text so a thread does not keep them forever.</summary>
    public void Trim()
    {
        if (Ids.Length > 1 << 18)
        {
            Ids = new int[64]; Starts = new int[64]; Ends = new int[64]; FirstStarts = new int[64]; FirstEnds = new int[64]; Words = new int[64]; Texts = new string?[64];
        }
        Count = 0;
    }
}
