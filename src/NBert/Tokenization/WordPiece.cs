namespace NBert.Tokenization;

/// <summary>
/// The vocabulary and Hugging Face's WordPiece model: greedy longest-match-first inside one word,
/// continuation pieces prefixed with <see cref="ContinuingSubwordPrefix"/>; a word with no complete
/// split, or longer than <see cref="MaxInputCharsPerWord"/> code points, becomes the unknown token.
/// </summary>
public sealed class WordPiece
{
    private readonly string[] _idToToken;
    private readonly Dictionary<string, int> _tokenToId;
    // Continuation pieces are stored without their prefix, so lookups never build a string.
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _wordStart;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _continuation;
    private readonly int _maxPieceChars;

    public string UnkToken { get; }
    public int UnkId { get; }
    public string ContinuingSubwordPrefix { get; }
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
        var start = new Dictionary<string, int>(vocab.Count, StringComparer.Ordinal);
        var cont = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (token, id) in vocab)
        {
            _idToToken[id] = token;
            _tokenToId[token] = id;
            start[token] = id;
            if (continuingSubwordPrefix.Length > 0 && token.StartsWith(continuingSubwordPrefix, StringComparison.Ordinal))
                cont[token[continuingSubwordPrefix.Length..]] = id;
            _maxPieceChars = Math.Max(_maxPieceChars, token.Length);
        }
        if (!_tokenToId.TryGetValue(unkToken, out int unk))
            throw new ArgumentException($"The unknown token '{unkToken}' is not in the vocabulary.", nameof(unkToken));
        _wordStart = start.GetAlternateLookup<ReadOnlySpan<char>>();
        _continuation = cont.GetAlternateLookup<ReadOnlySpan<char>>();
        UnkToken = unkToken;
        UnkId = unk;
        ContinuingSubwordPrefix = continuingSubwordPrefix;
        MaxInputCharsPerWord = maxInputCharsPerWord;
    }

    public int VocabSize => _idToToken.Length;

    public IReadOnlyDictionary<string, int> Vocab => _tokenToId;

    public string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    internal string[] IdToTokenTable => _idToToken;

    public int? TokenToId(string token) => _tokenToId.TryGetValue(token, out int id) ? id : null;

    /// <summary>
    /// Splits one normalised word, <c>buffer.Chars[from..to)</c>, into pieces appended to
    /// <paramref name="sink"/> with offsets taken from the buffer's alignments.
    /// </summary>
    internal void Tokenize(NormalizedBuffer buffer, int from, int to, int wordIndex, TokenSink sink)
    {
        var word = buffer.Chars.AsSpan(from, to - from);
        if (CodePointCount(word) > MaxInputCharsPerWord)
        {
            sink.Add(UnkId, buffer.Start[from], buffer.End[to - 1], wordIndex);
            return;
        }
        int mark = sink.Count;
        int start = 0;
        while (start < word.Length)
        {
            int end = Math.Min(word.Length, start + _maxPieceChars);
            int id = -1;
            for (; end > start; end--)
            {
                // Rust slices at char (code point) boundaries: never split a surrogate pair.
                if (end < word.Length && char.IsLowSurrogate(word[end]) && char.IsHighSurrogate(word[end - 1])) continue;
                var lookup = start == 0 ? _wordStart : _continuation;
                if (lookup.TryGetValue(word[start..end], out id)) break;
            }
            if (end == start)
            {
                sink.Count = mark; // no complete split: the whole word is unknown
                sink.Add(UnkId, buffer.Start[from], buffer.End[to - 1], wordIndex);
                return;
            }
            sink.Add(id, buffer.Start[from + start], buffer.End[from + end - 1], wordIndex);
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

/// <summary>Growable columns of tokens (id, source span, word index), reused between calls.</summary>
internal sealed class TokenSink
{
    public int[] Ids = new int[64];
    public int[] Starts = new int[64];
    public int[] Ends = new int[64];
    public int[] Words = new int[64];
    public int Count;

    public void Add(int id, int start, int end, int word)
    {
        if (Count == Ids.Length)
        {
            int n = Ids.Length * 2;
            Array.Resize(ref Ids, n);
            Array.Resize(ref Starts, n);
            Array.Resize(ref Ends, n);
            Array.Resize(ref Words, n);
        }
        Ids[Count] = id;
        Starts[Count] = start;
        Ends[Count] = end;
        Words[Count] = word;
        Count++;
    }

    public void Trim()
    {
        if (Ids.Length > 1 << 18) { Ids = new int[64]; Starts = new int[64]; Ends = new int[64]; Words = new int[64]; }
        Count = 0;
    }
}
