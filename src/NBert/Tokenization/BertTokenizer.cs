using System.Text;

namespace NBert.Tokenization;

/// <summary>
/// The tokenizer of the BERT family, giving the same ids, offsets and windows as Hugging Face's <c>tokenizers</c>:
/// BERT's WordPiece (BertNormalizer, BertPreTokenizer, WordPiece, WordPiece decoder) or RoBERTa's byte-level BPE
/// (ByteLevel pre-tokenizer, BPE, RobertaProcessing, ByteLevel decoder), with added tokens, truncation, stride windows
/// and padding shared. Load one with <see cref="FromPretrained(string)"/> (tokenizer.json, vocab.txt, or vocab.json with
/// merges.txt), or build a WordPiece one from a vocabulary. Instances are immutable and safe to use from many threads.
/// </summary>
public sealed partial class BertTokenizer
{
    private readonly TokenizerModel _model;
    private readonly WordPiece? _wordPiece;
    private readonly BytePairEncoding? _bpe;
    private readonly ByteLevelOptions? _byteLevel;
    private readonly BertNormalizer _normalizer;
    private readonly AddedTokenMatcher _rawMatcher;
    private readonly AddedTokenMatcher _normalizedMatcher;
    private readonly Dictionary<int, AddedToken> _addedById;
    private readonly HashSet<string> _specialContents;
    private readonly string[] _tokenOf; // id -> token string, added tokens included
    // The fused ASCII path: what the normalizer and pre-tokenizer make of each ASCII char, read off them
    // once (so the two paths cannot disagree), and the id of each ASCII punctuation token.
    private const byte AsciiWord = 0, AsciiSpace = 1, AsciiPunct = 2, AsciiOther = 3;
    private readonly byte[] _asciiKind = new byte[128];
    private readonly char[] _asciiChar = new char[128];
    private readonly int[] _asciiPunctId = new int[128];

    /// <summary>The model and its vocabulary (tokenizer.json's <c>model</c>): a <see cref="WordPiece"/> or a
    /// <see cref="BytePairEncoding"/>.</summary>
    public TokenizerModel Model => _model;
    /// <summary>The normalizer's options: lowercasing, accents, CJK, cleaning (tokenizer.json's <c>normalizer</c>).</summary>
    public BertNormalizerOptions Normalizer => _normalizer.Options;
    /// <summary>Tokens matched before the model (WordPiece or BPE) runs, in id order, the special tokens among them (tokenizer.json's
    /// <c>added_tokens</c>).</summary>
    public IReadOnlyList<AddedToken> AddedTokens { get; }
    /// <summary>The post-processor; null when the tokenizer adds no special tokens.</summary>
    public TemplateProcessing? PostProcessor { get; }
    /// <summary>The WordPiece decoder's continuation prefix and whether it cleans up spaces before punctuation; unused by a
    /// byte-level BPE tokenizer, whose decoder turns the tokens' bytes back into text.</summary>
    public (string Prefix, bool Cleanup) Decoder { get; }

    /// <summary>The unknown token (<c>unk_token</c>), usually <c>[UNK]</c>.</summary>
    public string UnkToken { get; }
    /// <summary>The token that starts every input (<c>cls_token</c>), usually <c>[CLS]</c>.</summary>
    public string ClsToken { get; }
    /// <summary>The separator after each text (<c>sep_token</c>), usually <c>[SEP]</c>.</summary>
    public string SepToken { get; }
    /// <summary>The padding token (<c>pad_token</c>), usually <c>[PAD]</c>.</summary>
    public string PadToken { get; }
    /// <summary>The mask token fill-mask looks for (<c>mask_token</c>), usually <c>[MASK]</c>.</summary>
    public string MaskToken { get; }
    /// <summary>The id padding uses (<c>pad_token_id</c>); 0 when <see cref="PadToken"/> is not in the vocabulary.</summary>
    public int PadTokenId { get; }
    /// <summary>Hugging Face's <c>model_max_length</c>; null when the files do not give one.</summary>
    public int? ModelMaxLength { get; }
    /// <summary>The model's <c>max_position_embeddings</c>, when the tokenizer was loaded from a model directory whose
    /// config.json gives it: no input may be longer. For a RoBERTa, the tokens those positions hold (its positions start at
    /// <c>pad_token_id + 1</c>: 514 hold 512).</summary>
    public int? MaxPositionEmbeddings { get; private set; }
    /// <summary>The longest input <c>EncodeInputs</c> (NBert.Modeling) makes by default:
    /// <see cref="ModelMaxLength"/> (512 when unknown), but never more than <see cref="MaxPositionEmbeddings"/>.</summary>
    public int MaxInputLength => Math.Min(ModelMaxLength ?? 512, MaxPositionEmbeddings ?? int.MaxValue);
    /// <summary>The directory the tokenizer was loaded from (its files are what <see cref="SavePretrained(string)"/> copies);
    /// null for a tokenizer built in code.</summary>
    public string? SourceDirectory { get; private set; }

    internal BertTokenizer(TokenizerModel model, BertNormalizerOptions normalizer, IReadOnlyList<AddedToken> addedTokens,
        TemplateProcessing? postProcessor, (string Prefix, bool Cleanup) decoder, SpecialTokenNames names, int? modelMaxLength,
        ByteLevelOptions? byteLevel = null)
    {
        CheckAddedTokenIds(addedTokens, model.VocabSize);
        _model = model;
        _wordPiece = model as WordPiece;
        _bpe = model as BytePairEncoding;
        if ((_bpe is null) != (byteLevel is null)) throw new ArgumentException("A BPE model goes with the ByteLevel pre-tokenizer, and only it.");
        _byteLevel = byteLevel;
        _normalizer = BertNormalizer.For(normalizer);
        AddedTokens = addedTokens;
        PostProcessor = postProcessor;
        Decoder = decoder;
        _rawMatcher = new AddedTokenMatcher(addedTokens.Where(t => !t.Normalized).Select(t => (t.Content, t)));
        _normalizedMatcher = new AddedTokenMatcher(addedTokens.Where(t => t.Normalized).Select(t => (_normalizer.Normalize(t.Content), t)));
        _addedById = new Dictionary<int, AddedToken>();
        foreach (var t in addedTokens) _addedById[t.Id] = t;
        _specialContents = addedTokens.Where(t => t.Special).Select(t => t.Content).ToHashSet(StringComparer.Ordinal);
        VocabSize = Math.Max(model.VocabSize, addedTokens.Count == 0 ? 0 : addedTokens.Max(t => t.Id) + 1);
        CheckTemplateIds(postProcessor, VocabSize);
        _tokenOf = new string[VocabSize];
        for (int id = 0; id < _tokenOf.Length; id++) _tokenOf[id] = IdToToken(id) ?? "";
        (UnkToken, ClsToken, SepToken, PadToken, MaskToken) = (names.Unk, names.Cls, names.Sep, names.Pad, names.Mask);
        PadTokenId = TokenToId(names.Pad) ?? 0;
        for (char c = '\0'; c < 128 && _wordPiece is not null; c++)
        {
            string n = _normalizer.Normalize(c.ToString());
            if (n.Length != 1 || n[0] >= 128) { _asciiKind[c] = AsciiOther; continue; } // removed: general path
            _asciiChar[c] = n[0];
            _asciiKind[c] = UnicodeRules.PreTokenClass(n, 0, out _) switch
            {
                UnicodeRules.Space => AsciiSpace,
                UnicodeRules.Punct => AsciiPunct,
                _ => AsciiWord,
            };
            if (_asciiKind[c] == AsciiPunct)
                _asciiPunctId[c] = _wordPiece.MaxInputCharsPerWord >= 1 && _wordPiece.TokenToId(n) is int id ? id : _wordPiece.UnkId;
        }
        ModelMaxLength = modelMaxLength;
    }

    /// <summary>Ids run from 0 to VocabSize - 1 (added tokens included).</summary>
    public int VocabSize { get; }

    /// <summary>The id of a token string, added tokens first (tokenizers' <c>token_to_id</c>); null when the vocabulary
    /// has no such token (it is not mapped to <see cref="UnkToken"/>). Continuation pieces carry their prefix (<c>##ing</c>).</summary>
    public int? TokenToId(string token)
    {
        foreach (var t in AddedTokens) if (t.Content == token) return t.Id;
        return _model.TokenToId(token);
    }

    /// <summary>The token string of an id (tokenizers' <c>id_to_token</c>); null for an id outside the vocabulary.</summary>
    public string? IdToToken(int id) => _addedById.TryGetValue(id, out var t) ? t.Content : _model.IdToToken(id);

    /// <summary>The text up to the end of its first <paramref name="maxTokens"/> tokens (special tokens aside): how question
    /// answering keeps a question to <c>max_query_length</c> / <c>max_question_len</c> tokens.</summary>
    internal string CutAfterTokens(string text, int maxTokens)
    {
        var e = Encode(text, options: new EncodeOptions { AddSpecialTokens = false });
        return e.Length <= maxTokens ? text : text[..e.Offsets[maxTokens - 1].End];
    }

    /// <summary>Tokens of a text, without special tokens (Hugging Face's <c>tokenize</c>).</summary>
    public string[] Tokenize(string text) => Encode(text, options: new EncodeOptions { AddSpecialTokens = false }).Tokens;

    /// <summary>Encodes one text, or a pair when <paramref name="textPair"/> is given (an empty second text
    /// counts as none, as in transformers).</summary>
    public TokenEncoding Encode(string text, string? textPair = null, EncodeOptions? options = null)
    {
        options ??= EncodeOptions.Default;
        var encoding = EncodeUnpadded(text, textPair, options);
        return options.Padding == PaddingStrategy.None ? encoding : Pad([encoding], options)[0];
    }

    /// <summary>Encodes many texts on all cores; padding <see cref="PaddingStrategy.Longest"/> pads to the
    /// longest of the batch.</summary>
    public IReadOnlyList<TokenEncoding> EncodeBatch(IReadOnlyList<string> texts, EncodeOptions? options = null) =>
        EncodeBatch(texts.Select(t => (t, (string?)null)).ToArray(), options);

    /// <summary>Encodes many texts or pairs on all cores.</summary>
    public IReadOnlyList<TokenEncoding> EncodeBatch(IReadOnlyList<(string Text, string? TextPair)> inputs, EncodeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        options ??= EncodeOptions.Default;
        var results = new TokenEncoding[inputs.Count];
        // The first input that fails, by index, not by time: Break (unlike Stop) still runs every lower index.
        int firstFailure = int.MaxValue;
        ArgumentException? failure = null;
        var gate = new object();
        Parallel.For(0, inputs.Count, (i, loop) =>
        {
            try
            {
                results[i] = EncodeUnpadded(inputs[i].Text, inputs[i].TextPair, options);
            }
            catch (ArgumentException e)
            {
                lock (gate)
                    if (i < firstFailure) (firstFailure, failure) = (i, e);
                loop.Break();
            }
        });
        if (failure is not null) throw new BatchItemException(firstFailure, failure);
        return options.Padding == PaddingStrategy.None ? results : Pad(results, options);
    }

    /// <summary>Pads encodings as Hugging Face's <c>pad_encodings</c> does (overflowing windows too).</summary>
    public IReadOnlyList<TokenEncoding> Pad(IReadOnlyList<TokenEncoding> encodings, EncodeOptions options)
    {
        if (encodings.Count == 0 || options.Padding == PaddingStrategy.None) return encodings;
        int length = options.Padding == PaddingStrategy.MaxLength
            ? options.MaxLength ?? ModelMaxLength ?? throw new ArgumentException("Padding to max_length needs MaxLength (this tokenizer has no model_max_length).")
            : encodings.Max(e => e.Length);
        if (options.PadToMultipleOf is int multiple)
        {
            if (multiple <= 0) throw new ArgumentOutOfRangeException(nameof(options), $"PadToMultipleOf must be positive, not {multiple}.");
            if (length % multiple != 0) length += multiple - length % multiple;
        }
        return encodings.Select(e => e.PadTo(length, PadTokenId, 0, PadToken)).ToArray();
    }

    private TokenEncoding EncodeUnpadded(string text, string? textPair, EncodeOptions options)
    {
        ArgumentNullException.ThrowIfNull(text);
        // transformers tests `if text_pair`, so an empty second text means "no pair": [CLS] A [SEP].
        if (textPair is { Length: 0 }) textPair = null;
        var scratch = Scratch.Current;
        var sink = scratch.Tokens;
        sink.Count = 0;
        try
        {
            // Both texts go into one sink; windows and the template work on index ranges of it.
            EncodeSequence(text, scratch);
            int lengthA = sink.Count;
            int lengthB = -1;
            if (textPair is not null)
            {
                EncodeSequence(textPair, scratch);
                lengthB = sink.Count - lengthA;
            }
            var (a, b) = Truncate(lengthA, lengthB, options);
            int? truncatedFrom = null;
            if (!options.ReturnOverflowingTokens)
            {
                a = a.GetRange(0, 1);
                b = b?.GetRange(0, 1);
                int kept = a[0].Item2 + (b?[0].Item2 ?? 0), total = lengthA + Math.Max(lengthB, 0);
                if (kept < total)
                    truncatedFrom = total + (options.AddSpecialTokens && PostProcessor is not null ? PostProcessor.AddedTokens(b is not null) : 0);
            }
            var encoding = (PostProcessor ?? TemplateProcessing.Plain).Process(sink, a, b, options.AddSpecialTokens, _tokenOf);
            encoding.TruncatedFrom = truncatedFrom;
            return encoding;
        }
        finally
        {
            sink.Trim();
            scratch.Normalized.Trim();
        }
    }

    /// <summary>
    /// Hugging Face's <c>truncate_encodings</c>, with the room for special tokens taken off first. Returns
    /// the windows of each text as ranges of the sink (A at 0, B right after it): the first is kept, the
    /// others overflow.
    /// </summary>
    private (List<(int, int)> A, List<(int, int)>? B) Truncate(int lengthA, int lengthB, EncodeOptions options)
    {
        bool pair = lengthB >= 0;
        List<(int, int)> Whole(int start, int length) => [(start, length)];
        var strategy = options.Truncation ?? (options.MaxLength is null ? TruncationStrategy.None : TruncationStrategy.LongestFirst);
        if (strategy == TruncationStrategy.None) return (Whole(0, lengthA), pair ? Whole(lengthA, lengthB) : null);
        int maxLength = options.MaxLength ?? ModelMaxLength
            ?? throw new ArgumentException("Truncation needs MaxLength (this tokenizer has no model_max_length).");
        if (options.Stride < 0) throw new ArgumentOutOfRangeException(nameof(options), $"Stride must not be negative, not {options.Stride}.");
        int added = options.AddSpecialTokens && PostProcessor is not null ? PostProcessor.AddedTokens(pair) : 0;
        if (maxLength < added)
            throw new ArgumentException($"max_length {maxLength} leaves no room: {(pair ? "a pair" : "one text")} needs {added} special tokens.");
        maxLength -= added;
        int stride = options.Stride;
        var side = options.TruncationSide;
        int total = lengthA + Math.Max(lengthB, 0);
        if (total <= maxLength) return (Whole(0, lengthA), pair ? Whole(lengthA, lengthB) : null);
        int toRemove = total - maxLength;
        switch (strategy)
        {
            case TruncationStrategy.LongestFirst when !pair:
                return (Windows(0, lengthA, lengthA - toRemove, stride, side), null);
            case TruncationStrategy.LongestFirst:
            {
                int n1 = lengthA, n2 = lengthB;
                bool swap = n1 > n2;
                if (swap) (n1, n2) = (n2, n1);
                n2 = n1 > maxLength ? n1 : Math.Max(n1, maxLength - n1);
                if (n1 + n2 > maxLength)
                {
                    n1 = maxLength / 2;
                    n2 = n1 + maxLength % 2;
                }
                if (swap) (n1, n2) = (n2, n1);
                return (Windows(0, lengthA, n1, stride, side), Windows(lengthA, lengthB, n2, stride, side));
            }
            default:
            {
                bool first = strategy == TruncationStrategy.OnlyFirst;
                if (!first && !pair)
                    throw new ArgumentException("Truncation only_second needs a second text (a pair), but only one was given.");
                int targetLength = first ? lengthA : lengthB;
                if (targetLength <= toRemove)
                    throw new ArgumentException(
                        $"Cannot truncate to max_length {maxLength + added} with {Name(strategy)}: the {(first ? "first" : "second")} " +
                        $"text has {targetLength} tokens but {toRemove} must go (the other text alone is too long). Use longest_first or a larger max_length.");
                return first
                    ? (Windows(0, lengthA, lengthA - toRemove, stride, side), pair ? Whole(lengthA, lengthB) : null)
                    : (Whole(0, lengthA), Windows(lengthA, lengthB, lengthB - toRemove, stride, side));
            }
        }
    }

    /// <summary>
    /// Hugging Face's <c>Encoding::truncate</c> on tokens <c>start..start+length</c>: keep the first
    /// <paramref name="maxLength"/> (the last, on the left side); with a stride, the rest becomes overflowing
    /// windows of <paramref name="maxLength"/> tokens, each <c>maxLength - stride</c> after the previous one
    /// (before it, on the left side, down to the first token).
    /// </summary>
    private static List<(int, int)> Windows(int start, int length, int maxLength, int stride, TruncationSide side)
    {
        if (maxLength >= length) return [(start, length)];
        if (maxLength == 0) return [(start, 0), (start, length)];
        if (stride >= maxLength)
            throw new ArgumentException($"stride ({stride}) must be less than the room left for this text ({maxLength} tokens once special tokens are counted): lower the stride or raise max_length.");
        var windows = new List<(int, int)>();
        if (side == TruncationSide.Left)
            for (int stop = length; ; stop -= maxLength - stride)
            {
                int first = Math.Max(0, stop - maxLength);
                windows.Add((start + first, stop - first));
                if (first == 0) return windows;
            }
        for (int offset = 0; ; offset += maxLength - stride)
        {
            int stop = Math.Min(offset + maxLength, length);
            windows.Add((start + offset, stop - offset));
            if (stop == length) return windows;
        }
    }

    internal static string Name(TruncationStrategy s) => s switch
    {
        TruncationStrategy.LongestFirst => "longest_first",
        TruncationStrategy.OnlyFirst => "only_first",
        TruncationStrategy.OnlySecond => "only_second",
        _ => "none",
    };

    /// <summary>Turns ids back into text as Hugging Face does: WordPiece pieces glued, spaces between words, the decoder's
    /// clean-up of spaces before punctuation; byte-level BPE tokens back to their bytes, read as UTF-8.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        // Unknown ids are skipped, as Hugging Face skips them.
        return ConvertTokensToString(ids.Select(IdToToken).OfType<string>().Where(t => !(skipSpecialTokens && _specialContents.Contains(t))));
    }

    /// <summary>The decoder over tokens (transformers' <c>convert_tokens_to_string</c>). WordPiece: a continuation piece
    /// loses its ## and joins the token before it, other tokens are separated by spaces, then clean-up. ByteLevel: the
    /// tokens' bytes joined and read as UTF-8, U+FFFD for bytes that are not.</summary>
    public string ConvertTokensToString(IEnumerable<string> tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        if (_byteLevel is not null) return ByteLevelOptions.Decode(tokens);
        var sb = new StringBuilder();
        bool first = true;
        foreach (var token in tokens)
        {
            string piece = token;
            if (!first)
                piece = Decoder.Prefix.Length > 0 && piece.StartsWith(Decoder.Prefix, StringComparison.Ordinal)
                    ? piece[Decoder.Prefix.Length..]
                    : " " + piece;
            if (Decoder.Cleanup) piece = CleanUp(piece);
            sb.Append(piece);
            first = false;
        }
        return sb.ToString();
    }

    private static string CleanUp(string s) => s.Replace(" .", ".").Replace(" ?", "?").Replace(" !", "!")
        .Replace(" ,", ",").Replace(" ' ", "'").Replace(" n't", "n't").Replace(" 'm", "'m")
        .Replace(" do not", " don't").Replace(" 's", "'s").Replace(" 've", "'ve").Replace(" 're", "'re");

    // ---- the tokenization of one text (no special tokens, no truncation) ----

    /// <summary>Per-thread buffers, so encoding allocates little more than its results.</summary>
    private sealed class Scratch
    {
        [ThreadStatic] private static Scratch? _current;
        public static Scratch Current => _current ??= new Scratch();
        public readonly NormalizedBuffer Normalized = new();
        public readonly TokenSink Tokens = new();
        public readonly List<(int Start, int End, AddedToken Token)> RawMatches = new();
        public readonly List<(int Start, int End, AddedToken Token)> NormalizedMatches = new();
        public char[] Word = new char[64];
        // Byte-level BPE: a piece of text with its prefix space, and a word as byte chars, each with its source span.
        public char[] Piece = new char[64];
        public int[] PieceStart = new int[64], PieceEnd = new int[64];
        public char[] Bytes = new char[64];
        public int[] ByteStart = new int[64], ByteEnd = new int[64];
    }

    /// <summary>Appends the tokens of one text (no special tokens) to the scratch sink; word ids start at 0.</summary>
    private void EncodeSequence(string text, Scratch scratch)
    {
        var sink = scratch.Tokens;
        int word = 0;
        _rawMatcher.FindAll(text, 0, text.Length, scratch.RawMatches);
        int position = 0;
        foreach (var (start, end, token) in scratch.RawMatches)
        {
            EncodeSegment(text, position, start, scratch, ref word);
            AddAddedToken(text, token, start, end, text.AsSpan(start, end - start), sink, word++);
            position = end;
        }
        EncodeSegment(text, position, text.Length, scratch, ref word);
    }

    /// <summary>
    /// Tokenizes <c>text[from..to)</c>. Plain ASCII words go through a fused path: normalised, split and
    /// packed for the vocabulary lookup in one pass, their chars mapping one to one onto the source.
    /// Anything else (a non-ASCII char, a char the normalizer removes) sends the stretch up to the next
    /// ASCII whitespace through the general path, which produces the same tokens for ASCII text.
    /// </summary>
    private void EncodeSegment(string text, int from, int to, Scratch scratch, ref int word)
    {
        if (from >= to) return;
        if (_bpe is not null)
        {
            EncodeByteLevel(text, from, to, scratch, ref word);
            return;
        }
        if (!_normalizedMatcher.IsEmpty)
        {
            EncodeGeneral(text, from, to, scratch, ref word);
            return;
        }
        var sink = scratch.Tokens;
        int i = from;
        while (i < to)
        {
            char c = text[i];
            byte kind = c < 128 ? _asciiKind[c] : AsciiOther;
            if (kind == AsciiSpace) { i++; continue; }
            if (kind == AsciiPunct)
            {
                sink.Add(_asciiPunctId[c], i, i + 1, word++);
                i++;
                continue;
            }
            int start = i;
            if (kind == AsciiWord)
            {
                var chars = scratch.Word;
                ulong packed = 0;
                int n = 0;
                for (; i < to && (c = text[i]) < 128 && _asciiKind[c] == AsciiWord; i++, n++)
                {
                    if (n == chars.Length)
                    {
                        Array.Resize(ref scratch.Word, n * 2);
                        chars = scratch.Word;
                    }
                    char mapped = _asciiChar[c];
                    chars[n] = mapped;
                    if (n < 8) packed |= (ulong)mapped << (8 * n);
                }
                if (i == to || (c < 128 && _asciiKind[c] != AsciiOther))
                {
                    _wordPiece!.TokenizeAscii(chars.AsSpan(0, n), packed, start, word++, sink);
                    continue;
                }
            }
            int stop = i;
            while (stop < to && !(text[stop] < 128 && _asciiKind[text[stop]] == AsciiSpace)) stop++;
            EncodeGeneral(text, start, stop, scratch, ref word);
            i = stop;
        }
    }

    /// <summary>The reference path: BertNormalizer into a buffer with alignments, normalized added
    /// tokens, then BertPreTokenizer and WordPiece.</summary>
    private void EncodeGeneral(string text, int from, int to, Scratch scratch, ref int word)
    {
        var buffer = scratch.Normalized;
        buffer.Clear();
        _normalizer.Normalize(text, from, to, buffer);
        if (_normalizedMatcher.IsEmpty)
        {
            PreTokenize(buffer, 0, buffer.Length, scratch.Tokens, ref word);
            return;
        }
        _normalizedMatcher.FindAll(buffer.Chars.AsSpan(0, buffer.Length), 0, buffer.Length, scratch.NormalizedMatches);
        int position = 0;
        foreach (var (start, end, token) in scratch.NormalizedMatches)
        {
            PreTokenize(buffer, position, start, scratch.Tokens, ref word);
            AddAddedToken(text, token, buffer.Start[start], buffer.End[end - 1], buffer.Chars.AsSpan(start, end - start), scratch.Tokens, word++);
            position = end;
        }
        PreTokenize(buffer, position, buffer.Length, scratch.Tokens, ref word);
    }

    /// <summary>BertPreTokenizer: split on whitespace (dropped) and punctuation (kept, one char per
    /// word), then WordPiece on each word.</summary>
    private void PreTokenize(NormalizedBuffer buffer, int from, int to, TokenSink sink, ref int word)
    {
        var chars = buffer.Chars.AsSpan(0, to);
        int wordStart = -1;
        for (int j = from; j < to;)
        {
            byte cls = UnicodeRules.PreTokenClass(chars, j, out int width);
            if (cls == UnicodeRules.Word)
            {
                if (wordStart < 0) wordStart = j;
            }
            else
            {
                if (wordStart >= 0) { _wordPiece!.Tokenize(buffer, wordStart, j, word++, sink); wordStart = -1; }
                if (cls == UnicodeRules.Punct) _wordPiece!.Tokenize(buffer, j, j + width, word++, sink);
            }
            j += width;
        }
        if (wordStart >= 0) _wordPiece!.Tokenize(buffer, wordStart, to, word++, sink);
    }
}

/// <summary>One input of a batch cannot be processed (encoded, or run by a pipeline); <see cref="Index"/> says which
/// (0-based), the message says it 1-based, and the inner exception says why.</summary>
public sealed class BatchItemException(int index, ArgumentException inner)
    : ArgumentException($"Input {index + 1}: {inner.Message}", inner)
{
    /// <summary>The zero-based position in the batch of the first input that failed.</summary>
    public int Index { get; } = index;
}
