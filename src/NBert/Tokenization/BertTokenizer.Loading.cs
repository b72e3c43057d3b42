using System.Text;
using System.Text.Json;
using NBert.IO;
using static NBert.NBertException;

namespace NBert.Tokenization;

/// <summary>
/// Options of a tokenizer built from a vocabulary, with transformers' <c>BertTokenizer</c> names and
/// defaults (<c>do_lower_case</c>, <c>strip_accents</c>, <c>tokenize_chinese_chars</c>, special tokens).
/// </summary>
public sealed record BertTokenizerOptions
{
    /// <summary>Lowercase the text (<c>do_lower_case</c>): true for uncased models. Default true.</summary>
    public bool DoLowerCase { get; init; } = true;
    /// <summary>Null follows <see cref="DoLowerCase"/>.</summary>
    public bool? StripAccents { get; init; }
    /// <summary>Put spaces around CJK ideographs so each becomes a word (<c>tokenize_chinese_chars</c>). Default true.</summary>
    public bool TokenizeChineseChars { get; init; } = true;
    /// <summary>Remove control characters and map every whitespace to a space (the normalizer's <c>clean_text</c>).
    /// Default true.</summary>
    public bool CleanText { get; init; } = true;
    /// <summary>The token for a word the vocabulary cannot spell (<c>unk_token</c>); must be in the vocabulary.</summary>
    public string UnkToken { get; init; } = "[UNK]";
    /// <summary>The separator after each text (<c>sep_token</c>); must be in the vocabulary.</summary>
    public string SepToken { get; init; } = "[SEP]";
    /// <summary>The padding token (<c>pad_token</c>).</summary>
    public string PadToken { get; init; } = "[PAD]";
    /// <summary>The token that starts every input (<c>cls_token</c>); must be in the vocabulary.</summary>
    public string ClsToken { get; init; } = "[CLS]";
    /// <summary>The token masked-LM models fill in (<c>mask_token</c>).</summary>
    public string MaskToken { get; init; } = "[MASK]";
    /// <summary>The longest input the model takes, in tokens (<c>model_max_length</c>); null when unknown (then truncation
    /// needs <see cref="EncodeOptions.MaxLength"/>, and <see cref="BertTokenizer.MaxInputLength"/> assumes 512).</summary>
    public int? ModelMaxLength { get; init; }
    /// <summary>The prefix of pieces that continue a word (<c>wordpieces_prefix</c>). Default <c>##</c>.</summary>
    public string ContinuingSubwordPrefix { get; init; } = "##";
    /// <summary>A longer word (in code points) becomes <see cref="UnkToken"/> (<c>max_input_chars_per_word</c>). Default 100.</summary>
    public int MaxInputCharsPerWord { get; init; } = 100;
    /// <summary>Further added tokens (transformers' <c>added_tokens_decoder</c>).</summary>
    public IReadOnlyList<AddedToken> AddedTokens { get; init; } = [];
}

internal sealed record SpecialTokenNames(string Unk, string Cls, string Sep, string Pad, string Mask);

public sealed partial class BertTokenizer
{
    /// <summary>
    /// Loads the tokenizer of a model by directory or name (a built-in such as <c>minilm</c>, or a Hugging Face Hub id:
    /// see <see cref="Hub.ModelResolver"/>), as transformers' <c>from_pretrained</c>: <c>tokenizer.json</c> when present,
    /// else <c>vocab.txt</c> (WordPiece), else <c>vocab.json</c> with <c>merges.txt</c> (RoBERTa's byte-level BPE, with
    /// <c>add_prefix_space</c> and <c>trim_offsets</c> from the config); <c>tokenizer_config.json</c> (and <c>special_tokens_map.json</c>) add special tokens,
    /// options and <c>model_max_length</c>. The model's <c>max_position_embeddings</c> in a config.json beside them
    /// bounds <see cref="MaxInputLength"/>.
    /// </summary>
    public static BertTokenizer FromPretrained(string nameOrPath) => FromPretrained(Hub.ModelResolver.ResolveTokenizerModel(nameOrPath));

    /// <summary>Loads the tokenizer from files resolved already (<see cref="Hub.ModelResolver.ResolveModel"/> or
    /// <see cref="Hub.ModelResolver.ResolveTokenizerModel"/>), as <see cref="FromPretrained(string)"/> does, without
    /// resolving the name again.</summary>
    public static BertTokenizer FromPretrained(Hub.ResolvedModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        string directory = model.Directory;
        var config = TokenizerConfig.Read(directory);
        string json = Path.Combine(directory, "tokenizer.json");
        BertTokenizer tokenizer;
        string vocab = Path.Combine(directory, "vocab.txt");
        string vocabJson = Path.Combine(directory, "vocab.json"), merges = Path.Combine(directory, "merges.txt");
        if (File.Exists(json)) tokenizer = FromTokenizerJson(json, config);
        else if (!File.Exists(vocab) && File.Exists(vocabJson) && File.Exists(merges)) tokenizer = FromVocabAndMerges(vocabJson, merges, config);
        else
        {
            // A directory with no model in it at all (a training run's log, say) is named for what it lacks as a model.
            if (!File.Exists(vocab))
                throw !File.Exists(Path.Combine(directory, "config.json"))
                    && IO.Checkpoint.MissingModel(directory, "no tokenizer (tokenizer.json, vocab.txt, or vocab.json with merges.txt)") is { } missing ? missing
                    : new MissingFileException(
                        $"Model directory '{directory}' has neither tokenizer.json, vocab.txt nor vocab.json with merges.txt: a tokenizer needs one of them.", vocab);
            var lines = ReadVocabFile(vocab);
            config.CheckAddedTokenIds(lines.Count);
            tokenizer = FromVocabulary(vocab, lines, config.ToOptions());
        }
        tokenizer.SourceDirectory = directory;
        tokenizer.MaxPositionEmbeddings = ModelPositions(directory);
        return tokenizer;
    }

    /// <summary>How many tokens the model beside the tokenizer takes, by its config.json's max_position_embeddings, if
    /// there is one and it says: all of them, but RoBERTa's, whose positions start at pad_token_id + 1 (514 hold 512;
    /// <c>Schema.BertConfig.MaxSequenceLength</c>).</summary>
    private static int? ModelPositions(string directory)
    {
        string path = Path.Combine(directory, "config.json");
        if (!File.Exists(path)) return null;
        using var doc = JsonFile.Read(path);
        var root = doc.RootElement;
        if (!(root.ValueKind == JsonValueKind.Object && root.TryGetProperty("max_position_embeddings", out var m)
            && m.ValueKind == JsonValueKind.Number && m.TryGetInt32(out int n) && n > 0)) return null;
        if (root.TryGetProperty("model_type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "roberta")
        {
            int pad = root.TryGetProperty("pad_token_id", out var p) && p.ValueKind == JsonValueKind.Number && p.TryGetInt32(out int id) ? id : 1;
            return n - pad - 1 > 0 ? n - pad - 1 : null;
        }
        return n;
    }

    /// <summary>Loads a <c>vocab.txt</c> (UTF-8, one token per line, LF or CRLF; the line number is the id).</summary>
    public static BertTokenizer FromVocabFile(string path, BertTokenizerOptions? options = null) =>
        FromVocabulary(path, ReadVocabFile(path), options);

    private static BertTokenizer FromVocabulary(string path, List<string> lines, BertTokenizerOptions? options)
    {
        try
        {
            return FromVocabulary(lines, options);
        }
        catch (ArgumentException e)
        {
            throw new NBertException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>The lines of a vocab.txt; bytes that are not UTF-8 are an error naming the line, as Python's
    /// strict decoding (which transformers uses) makes them.</summary>
    private static List<string> ReadVocabFile(string path)
    {
        if (!File.Exists(path)) throw new MissingFileException($"Vocabulary file '{path}' does not exist.", path);
        byte[] bytes = File.ReadAllBytes(path);
        try
        {
            return ReadVocabLines(StrictUtf8.GetString(bytes));
        }
        catch (DecoderFallbackException e)
        {
            int at = Math.Clamp(e.Index, 0, bytes.Length);
            int line = 1 + bytes.AsSpan(0, at).Count((byte)'\n');
            throw new NBertException($"{path}: line {line} is not valid UTF-8 (byte {at}).", e);
        }
    }

    /// <summary>
    /// RoBERTa's tokenizer from <c>vocab.json</c> and <c>merges.txt</c>, as transformers' <c>RobertaTokenizer</c> builds it:
    /// BPE, the ByteLevel pre-tokenizer with the config's <c>add_prefix_space</c> (default false), RobertaProcessing with
    /// its <c>trim_offsets</c> (default true), and the special tokens as added tokens, the mask token absorbing the space
    /// before it (<c>lstrip</c>).
    /// </summary>
    private static BertTokenizer FromVocabAndMerges(string vocabPath, string mergesPath, TokenizerConfig config)
    {
        Dictionary<string, int> vocab;
        using (var doc = JsonFile.Read(vocabPath))
        {
            try
            {
                vocab = TokenizerJson.ReadVocab(doc.RootElement, "");
            }
            catch (FormatException e)
            {
                throw new NBertException($"{vocabPath}: {e.Message}", e);
            }
        }
        if (vocab.Count == 0) throw new NBertException($"{vocabPath}: the vocabulary is empty.");
        var merges = new List<(string, string)>();
        var lines = ReadVocabFile(mergesPath);
        for (int i = 0; i < lines.Count; i++)
        {
            // As the Rust crate's BPE::from_file: "#version" lines are skipped, every other line is one merge.
            if (lines[i].StartsWith("#version", StringComparison.Ordinal)) continue;
            merges.Add(TokenizerJson.SplitMerge(lines[i])
                ?? throw new NBertException($"{mergesPath}: line {i + 1} ('{Quote(lines[i])}') is not two tokens separated by one space."));
        }
        config.CheckAddedTokenIds(vocab.Count);
        var names = config.Names("<unk>", "<s>", "</s>", "<pad>", "<mask>");
        BytePairEncoding bpe;
        try
        {
            bpe = new BytePairEncoding(vocab, merges);
        }
        catch (ArgumentException e)
        {
            throw new NBertException($"{mergesPath}: {e.Message}", e);
        }
        int Required(string token, string field) => vocab.TryGetValue(token, out int id) ? id
            : throw new NBertException($"{vocabPath}: the {field} '{Quote(token)}' is not in the vocabulary.");
        int cls = Required(names.Cls, "cls_token"), sep = Required(names.Sep, "sep_token");
        var added = new List<AddedToken>();
        foreach (var (token, lstrip) in new[] { (config.Bos ?? "<s>", false), (names.Pad, false), (config.Eos ?? "</s>", false), (names.Unk, false),
            (names.Cls, false), (names.Sep, false), (names.Mask, config.MaskLStrip ?? true) })
            if (vocab.TryGetValue(token, out int id) && added.All(t => t.Content != token)) added.Add(new AddedToken(token, id, LStrip: lstrip));
        foreach (var extra in config.AddedTokens)
            if (added.All(t => t.Content != extra.Content)) added.Add(extra);
        added.Sort((x, y) => x.Id.CompareTo(y.Id));
        bool addPrefixSpace = config.AddPrefixSpace ?? false;
        try
        {
            return new BertTokenizer(bpe, new BertNormalizerOptions(false, false, false, false), added, TemplateProcessing.Roberta(names.Cls, cls, names.Sep, sep),
                ("", false), names, config.ModelMaxLength, new ByteLevelOptions(addPrefixSpace, true, config.TrimOffsets ?? true, addPrefixSpace));
        }
        catch (ArgumentException e)
        {
            throw new NBertException($"{vocabPath}: {e.Message}", e);
        }
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Builds a tokenizer from a vocabulary (one token per id, in id order) and options, as
    /// transformers' <c>BertTokenizer(vocab_file, ...)</c> does: its special tokens become added tokens
    /// matched in the raw text.</summary>
    public static BertTokenizer FromVocabulary(IEnumerable<string> vocabulary, BertTokenizerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(vocabulary);
        options ??= new BertTokenizerOptions();
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        int id = 0;
        foreach (var token in vocabulary) vocab[token] = id++; // a repeated token keeps its last line, as in Python
        var model = new WordPiece(vocab, options.UnkToken, options.ContinuingSubwordPrefix, options.MaxInputCharsPerWord);
        var added = new List<AddedToken>();
        foreach (var special in new[] { options.PadToken, options.UnkToken, options.ClsToken, options.SepToken, options.MaskToken })
            if (model.TokenToId(special) is int sid && added.All(t => t.Content != special))
                added.Add(new AddedToken(special, sid));
        foreach (var extra in options.AddedTokens)
            if (added.All(t => t.Content != extra.Content)) added.Add(extra);
        added.Sort((x, y) => x.Id.CompareTo(y.Id));
        int cls = model.TokenToId(options.ClsToken) ?? throw new ArgumentException($"The vocabulary has no '{options.ClsToken}' (cls_token).");
        int sep = model.TokenToId(options.SepToken) ?? throw new ArgumentException($"The vocabulary has no '{options.SepToken}' (sep_token).");
        var normalizer = new BertNormalizerOptions(options.CleanText, options.TokenizeChineseChars, options.StripAccents, options.DoLowerCase);
        return new BertTokenizer(model, normalizer, added, TemplateProcessing.Bert(options.ClsToken, cls, options.SepToken, sep),
            (options.ContinuingSubwordPrefix, true),
            new SpecialTokenNames(options.UnkToken, options.ClsToken, options.SepToken, options.PadToken, options.MaskToken),
            options.ModelMaxLength);
    }

    /// <summary>Loads a Hugging Face <c>tokenizer.json</c>. Its <c>truncation</c> and <c>padding</c> sections
    /// are ignored, as transformers ignores them when the tokenizer is called.</summary>
    public static BertTokenizer FromTokenizerJson(string path) =>
        FromTokenizerJson(path, TokenizerConfig.Read(Path.GetDirectoryName(Path.GetFullPath(path))!));

    private static BertTokenizer FromTokenizerJson(string path, TokenizerConfig config)
    {
        using var doc = JsonFile.Read(path);
        try
        {
            return TokenizerJson.Build(doc.RootElement, config);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException or NotSupportedException)
        {
            throw new NBertException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Refuses added tokens whose ids are neither in the vocabulary nor right after it, where Hugging Face
    /// puts the tokens it adds: a table is built up to the largest id, so an id of 1.5e9 would allocate
    /// 1.5e9 entries. Also refuses negative ids.
    /// </summary>
    internal static void CheckAddedTokenIds(IReadOnlyList<AddedToken> added, int vocabSize)
    {
        long limit = (long)vocabSize + added.Count;
        foreach (var t in added)
            if (t.Id < 0 || t.Id >= limit)
                throw new ArgumentException($"added token '{Quote(t.Content)}' has id {t.Id}, outside 0..{limit - 1}: an added token's id is " +
                    $"in the vocabulary ({vocabSize} ids) or just after it ({added.Count} added tokens).");
    }

    /// <summary>Refuses a post-processor whose special tokens have ids outside the tokenizer's ids.</summary>
    private static void CheckTemplateIds(TemplateProcessing? template, int vocabSize)
    {
        if (template is null) return;
        foreach (var (name, (ids, _)) in template.SpecialTokens)
            foreach (int id in ids)
                if ((uint)id >= (uint)vocabSize)
                    throw new ArgumentException($"post-processor special token '{Quote(name)}' has id {id}, outside the {vocabSize} ids of the vocabulary and added tokens.");
    }

    /// <summary>Splits vocab.txt as Python's text mode does: <c>\n</c>, <c>\r\n</c> and <c>\r</c> end a line;
    /// a final line ending adds no empty token. A UTF-8 byte order mark is dropped.</summary>
    internal static List<string> ReadVocabLines(string content)
    {
        var lines = new List<string>();
        int start = content.Length > 0 && content[0] == '\uFEFF' ? 1 : 0;
        for (int i = start; i < content.Length; i++)
        {
            char c = content[i];
            if (c != '\n' && c != '\r') continue;
            lines.Add(content[start..i]);
            if (c == '\r' && i + 1 < content.Length && content[i + 1] == '\n') i++;
            start = i + 1;
        }
        if (start < content.Length) lines.Add(content[start..]);
        return lines;
    }
}

/// <summary>What <c>tokenizer_config.json</c> and <c>special_tokens_map.json</c> say, each field optional.</summary>
internal sealed record TokenizerConfig
{
    public bool? DoLowerCase { get; init; }
    public bool? StripAccents { get; init; }
    public bool? TokenizeChineseChars { get; init; }
    public string? Unk { get; init; }
    public string? Cls { get; init; }
    public string? Sep { get; init; }
    public string? Pad { get; init; }
    public string? Mask { get; init; }
    public string? Bos { get; init; }
    public string? Eos { get; init; }
    /// <summary>The mask token's <c>lstrip</c>, when the config gives it as an object.</summary>
    public bool? MaskLStrip { get; init; }
    /// <summary>RoBERTa's <c>add_prefix_space</c> and <c>trim_offsets</c>.</summary>
    public bool? AddPrefixSpace { get; init; }
    public bool? TrimOffsets { get; init; }
    public int? ModelMaxLength { get; init; }
    public List<AddedToken> AddedTokens { get; init; } = [];
    /// <summary>The file whose added_tokens_decoder gave <see cref="AddedTokens"/>, for messages.</summary>
    public string? AddedTokensSource { get; init; }

    public static TokenizerConfig Read(string directory)
    {
        var config = new TokenizerConfig();
        foreach (var name in new[] { "special_tokens_map.json", "tokenizer_config.json" })
        {
            string path = Path.Combine(directory, name);
            if (!File.Exists(path)) continue;
            using var doc = JsonFile.Read(path);
            try
            {
                config = config.Merge(doc.RootElement, path);
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException)
            {
                throw new NBertException($"{path}: {e.Message}", e);
            }
        }
        return config;
    }

    private TokenizerConfig Merge(JsonElement root, string path)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new FormatException("the top level must be a JSON object");
        // A special token is a string or an AddedToken object with its content.
        string? Token(string field) => JsonFields.Get(root, field) is not { } v ? null
            : v.ValueKind == JsonValueKind.Object ? JsonFields.AsString(JsonFields.Get(v, "content") ?? default, $"{field}.content")
            : JsonFields.AsString(v, field);
        int? maxLength = null;
        // transformers writes 1e30 ("no limit") for models without one: treat anything huge as none.
        if (JsonFields.Get(root, "model_max_length") is { } m)
        {
            double d = m.ValueKind == JsonValueKind.Number && m.TryGetDouble(out double x) ? x : throw JsonFields.Wrong("model_max_length", "a number", m);
            if (d is > 0 and < int.MaxValue) maxLength = (int)d;
        }
        var added = new List<AddedToken>(AddedTokens);
        string? source = AddedTokensSource;
        if (JsonFields.Object(root, "added_tokens_decoder") is { } decoder)
        {
            foreach (var entry in decoder.EnumerateObject())
            {
                if (!int.TryParse(entry.Name, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int id))
                    throw new FormatException($"added_tokens_decoder key '{Quote(entry.Name)}' is not a token id (0 to {int.MaxValue})");
                added.Add(TokenizerJson.ReadAddedToken(entry.Value, id, $"added_tokens_decoder['{Quote(entry.Name)}']"));
            }
            source = path;
        }
        return this with
        {
            DoLowerCase = JsonFields.Bool(root, "do_lower_case") ?? DoLowerCase,
            StripAccents = JsonFields.Bool(root, "strip_accents") ?? StripAccents,
            TokenizeChineseChars = JsonFields.Bool(root, "tokenize_chinese_chars") ?? TokenizeChineseChars,
            Unk = Token("unk_token") ?? Unk,
            Cls = Token("cls_token") ?? Cls,
            Sep = Token("sep_token") ?? Sep,
            Pad = Token("pad_token") ?? Pad,
            Mask = Token("mask_token") ?? Mask,
            Bos = Token("bos_token") ?? Bos,
            Eos = Token("eos_token") ?? Eos,
            MaskLStrip = JsonFields.Get(root, "mask_token") is { ValueKind: JsonValueKind.Object } maskObject ? JsonFields.Bool(maskObject, "lstrip", "mask_token.lstrip") ?? false : MaskLStrip,
            AddPrefixSpace = JsonFields.Bool(root, "add_prefix_space") ?? AddPrefixSpace,
            TrimOffsets = JsonFields.Bool(root, "trim_offsets") ?? TrimOffsets,
            ModelMaxLength = maxLength ?? ModelMaxLength,
            AddedTokens = added,
            AddedTokensSource = source,
        };
    }

    /// <summary>Refuses added tokens whose ids are neither in a vocabulary of <paramref name="vocabSize"/> ids nor
    /// right after it, naming the file they came from (before any id-sized table is built).</summary>
    public void CheckAddedTokenIds(int vocabSize)
    {
        try
        {
            BertTokenizer.CheckAddedTokenIds(AddedTokens, vocabSize);
        }
        catch (ArgumentException e)
        {
            throw new NBertException($"{AddedTokensSource}: added_tokens_decoder: {e.Message}", e);
        }
    }

    public BertTokenizerOptions ToOptions()
    {
        var o = new BertTokenizerOptions();
        return o with
        {
            DoLowerCase = DoLowerCase ?? o.DoLowerCase,
            StripAccents = StripAccents,
            TokenizeChineseChars = TokenizeChineseChars ?? o.TokenizeChineseChars,
            UnkToken = Unk ?? o.UnkToken,
            ClsToken = Cls ?? o.ClsToken,
            SepToken = Sep ?? o.SepToken,
            PadToken = Pad ?? o.PadToken,
            MaskToken = Mask ?? o.MaskToken,
            ModelMaxLength = ModelMaxLength,
            AddedTokens = AddedTokens,
        };
    }

    /// <summary>The special tokens' names, the files' first, else the given defaults (the model's family's).</summary>
    public SpecialTokenNames Names(string unk, string cls, string sep, string pad, string mask) =>
        new(Unk ?? unk, Cls ?? cls, Sep ?? sep, Pad ?? pad, Mask ?? mask);
}

/// <summary>Reads the parts of Hugging Face's <c>tokenizer.json</c> that a BERT tokenizer has. A field of the
/// wrong JSON type is a <see cref="FormatException"/> naming it (the loader adds the file).</summary>
internal static class TokenizerJson
{
    public static BertTokenizer Build(JsonElement root, TokenizerConfig config)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new FormatException("the top level must be a JSON object");
        var model = JsonFields.Object(root, "model") ?? throw new FormatException("field 'model' is missing");
        string type = JsonFields.String(model, "type", "model.type") ?? "WordPiece";
        if (type == "BPE") return BuildByteLevelBpe(root, model, config);
        if (type != "WordPiece")
            throw new NotSupportedException($"model.type is '{Quote(type)}'; only WordPiece (BERT) and BPE (RoBERTa) tokenizers are supported.");
        var vocab = ReadVocab(model);
        string unk = JsonFields.String(model, "unk_token", "model.unk_token") ?? "[UNK]";
        string prefix = JsonFields.String(model, "continuing_subword_prefix", "model.continuing_subword_prefix") ?? "##";
        int maxChars = JsonFields.Int(model, "max_input_chars_per_word", "model.max_input_chars_per_word") ?? 100;
        if (maxChars < 0) throw new FormatException($"model.max_input_chars_per_word must not be negative, not {maxChars}");
        var wordPiece = new WordPiece(vocab, unk, prefix, maxChars);

        if (JsonFields.Object(root, "pre_tokenizer") is { } pre && JsonFields.String(pre, "type", "pre_tokenizer.type") is var preType
            && preType != "BertPreTokenizer")
            throw new NotSupportedException($"pre_tokenizer.type is '{Quote(preType ?? "null")}'; a WordPiece tokenizer supports only BertPreTokenizer.");
        var postProcessor = ReadPostProcessor(root, out _);
        if (postProcessor.Trim is not null)
            throw new NotSupportedException("post_processor.type is 'RobertaProcessing', which goes with byte-level BPE; this tokenizer's model is WordPiece.");

        return new BertTokenizer(wordPiece, ReadNormalizer(root), ReadAddedTokens(root), postProcessor.Template,
            ReadDecoder(root), config.Names(unk, "[CLS]", "[SEP]", "[PAD]", "[MASK]"), config.ModelMaxLength);
    }

    /// <summary>
    /// RoBERTa's byte-level BPE: a BPE model without word prefixes or suffixes, the ByteLevel pre-tokenizer, the
    /// RobertaProcessing (or TemplateProcessing, or no) post-processor and the ByteLevel decoder. Any other combination is
    /// refused, naming the field.
    /// </summary>
    private static BertTokenizer BuildByteLevelBpe(JsonElement root, JsonElement model, TokenizerConfig config)
    {
        var vocab = ReadVocab(model);
        var mergeList = JsonFields.Array(model, "merges", "model.merges") ?? throw new FormatException("field 'model.merges' is missing");
        var merges = new List<(string, string)>(mergeList.GetArrayLength());
        int i = 0;
        foreach (var m in mergeList.EnumerateArray())
        {
            string path = $"model.merges[{i++}]";
            // Two layouts: "a b" (tokenizers before 0.20) and ["a", "b"].
            if (m.ValueKind == JsonValueKind.String)
                merges.Add(SplitMerge(m.GetString()!) ?? throw new FormatException($"{path} '{Quote(m.GetString()!)}' is not two tokens separated by one space"));
            else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2)
                merges.Add((JsonFields.AsString(m[0], $"{path}[0]"), JsonFields.AsString(m[1], $"{path}[1]")));
            else throw JsonFields.Wrong(path, "\"left right\" or [left, right]", m);
        }
        if (JsonFields.Get(model, "dropout") is { } dropout && !(dropout.ValueKind == JsonValueKind.Number && dropout.GetDouble() == 0))
            throw new NotSupportedException($"model.dropout is {Quote(dropout.GetRawText())}: BPE dropout (random merges) is for training; only null is supported.");
        foreach (var field in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
            if (JsonFields.String(model, field, $"model.{field}") is { Length: > 0 } affix)
                throw new NotSupportedException($"model.{field} is '{Quote(affix)}'; byte-level BPE has none.");
        if (JsonFields.Bool(model, "byte_fallback", "model.byte_fallback") == true)
            throw new NotSupportedException("model.byte_fallback is true; only byte-level BPE (byte_fallback false) is supported.");
        string? unk = JsonFields.String(model, "unk_token", "model.unk_token");
        var bpe = new BytePairEncoding(vocab, merges, unk, JsonFields.Bool(model, "fuse_unk", "model.fuse_unk") ?? false,
            JsonFields.Bool(model, "ignore_merges", "model.ignore_merges") ?? false);

        var pre = JsonFields.Object(root, "pre_tokenizer");
        string? preType = pre is { } p ? JsonFields.String(p, "type", "pre_tokenizer.type") : null;
        if (preType != "ByteLevel")
            throw new NotSupportedException($"pre_tokenizer.type is '{Quote(preType ?? "null")}'; a BPE tokenizer is supported with the ByteLevel pre-tokenizer only.");
        bool addPrefixSpace = JsonFields.Bool(pre!.Value, "add_prefix_space", "pre_tokenizer.add_prefix_space") ?? true;
        bool useRegex = JsonFields.Bool(pre.Value, "use_regex", "pre_tokenizer.use_regex") ?? true;
        if (JsonFields.Object(root, "decoder") is { } d && JsonFields.String(d, "type", "decoder.type") is var decoderType && decoderType != "ByteLevel")
            throw new NotSupportedException($"decoder.type is '{Quote(decoderType ?? "null")}'; a byte-level BPE tokenizer supports only the ByteLevel decoder.");
        var (template, trim) = ReadPostProcessor(root, out var clsSep);
        var byteLevel = new ByteLevelOptions(addPrefixSpace, useRegex, trim?.TrimOffsets ?? false, trim?.AddPrefixSpace ?? false);
        return new BertTokenizer(bpe, ReadNormalizer(root), ReadAddedTokens(root), template, ("", false),
            config.Names(unk ?? "<unk>", clsSep?.Cls ?? "<s>", clsSep?.Sep ?? "</s>", "<pad>", "<mask>"), config.ModelMaxLength, byteLevel);
    }

    /// <summary>A merges line or string: two tokens separated by one space (Hugging Face splits on every space and wants
    /// two parts); null otherwise.</summary>
    internal static (string, string)? SplitMerge(string line)
    {
        int space = line.IndexOf(' ');
        return space < 0 || line.IndexOf(' ', space + 1) >= 0 ? null : (line[..space], line[(space + 1)..]);
    }

    private static List<AddedToken> ReadAddedTokens(JsonElement root)
    {
        var added = new List<AddedToken>();
        if (JsonFields.Array(root, "added_tokens") is { } list)
        {
            int i = 0;
            foreach (var item in list.EnumerateArray()) added.Add(ReadAddedToken(item, null, $"added_tokens[{i++}]"));
        }
        return added;
    }

    /// <summary>A vocabulary object (tokenizer.json's <c>model.vocab</c>, or vocab.json when <paramref name="path"/> is empty).</summary>
    public static Dictionary<string, int> ReadVocab(JsonElement model, string path = "model.vocab")
    {
        var entries = path.Length == 0
            ? model.ValueKind == JsonValueKind.Object ? model : throw JsonFields.Wrong("the top level", "an object of tokens and ids", model)
            : JsonFields.Object(model, "vocab", path) ?? throw new FormatException($"field '{path}' is missing");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in entries.EnumerateObject())
        {
            int id = JsonFields.AsInt(entry.Value, $"{path}['{Quote(entry.Name)}']");
            if (id < 0) throw new FormatException($"{path}['{Quote(entry.Name)}'] has the negative id {id}");
            vocab[entry.Name] = id;
        }
        // Ids may leave gaps (a vocab.txt with repeated lines leaves one per repeat), but an id table is built
        // up to the largest id, so one far past the vocabulary's size is refused rather than allocated.
        foreach (var (token, id) in vocab)
            if (id >= 2L * vocab.Count)
                throw new FormatException($"{path}['{Quote(token)}'] has id {id}, far past the vocabulary's {vocab.Count} tokens");
        return vocab;
    }

    /// <summary>An added token: an object with its <c>content</c> and flags, and its id (given, or its <c>id</c> field).</summary>
    public static AddedToken ReadAddedToken(JsonElement e, int? id, string path)
    {
        if (e.ValueKind != JsonValueKind.Object) throw JsonFields.Wrong(path, "an object with the token's content", e);
        string content = JsonFields.String(e, "content", $"{path}.content") ?? throw new FormatException($"{path} has no content");
        bool special = JsonFields.Bool(e, "special", $"{path}.special") ?? false;
        int tokenId = id ?? JsonFields.Int(e, "id", $"{path}.id") ?? throw new FormatException($"{path} has no id");
        if (tokenId < 0) throw new FormatException($"{path}.id must not be negative, not {tokenId}");
        return new AddedToken(content, tokenId, special,
            JsonFields.Bool(e, "normalized", $"{path}.normalized") ?? !special, JsonFields.Bool(e, "single_word", $"{path}.single_word") ?? false,
            JsonFields.Bool(e, "lstrip", $"{path}.lstrip") ?? false, JsonFields.Bool(e, "rstrip", $"{path}.rstrip") ?? false);
    }

    private static BertNormalizerOptions ReadNormalizer(JsonElement root)
    {
        if (JsonFields.Object(root, "normalizer") is not { } n) return new BertNormalizerOptions(false, false, false, false);
        string type = JsonFields.String(n, "type", "normalizer.type") ?? "";
        if (type != "BertNormalizer")
            throw new NotSupportedException($"normalizer.type is '{Quote(type)}'; only BertNormalizer is supported.");
        return new BertNormalizerOptions(JsonFields.Bool(n, "clean_text", "normalizer.clean_text") ?? true,
            JsonFields.Bool(n, "handle_chinese_chars", "normalizer.handle_chinese_chars") ?? true,
            JsonFields.Bool(n, "strip_accents", "normalizer.strip_accents"), JsonFields.Bool(n, "lowercase", "normalizer.lowercase") ?? true);
    }

    /// <summary>The post-processor as a template, with RobertaProcessing's offset trimming (null for the others) and its
    /// cls and sep tokens.</summary>
    private static (TemplateProcessing? Template, (bool TrimOffsets, bool AddPrefixSpace)? Trim) ReadPostProcessor(JsonElement root,
        out (string Cls, string Sep)? clsSep)
    {
        clsSep = null;
        if (JsonFields.Object(root, "post_processor") is not { } p) return (null, null);
        string type = JsonFields.String(p, "type", "post_processor.type") ?? "";
        if (type == "RobertaProcessing")
        {
            var (cls, clsId) = ProcessorToken(p, "cls");
            var (sep, sepId) = ProcessorToken(p, "sep");
            clsSep = (cls, sep);
            return (TemplateProcessing.Roberta(cls, clsId, sep, sepId),
                (JsonFields.Bool(p, "trim_offsets", "post_processor.trim_offsets") ?? true,
                 JsonFields.Bool(p, "add_prefix_space", "post_processor.add_prefix_space") ?? true));
        }
        return (ReadTemplateProcessing(p, type), null);
    }

    private static (string, int) ProcessorToken(JsonElement p, string name)
    {
        var a = JsonFields.Array(p, name, $"post_processor.{name}") ?? throw new FormatException($"field 'post_processor.{name}' is missing");
        if (a.GetArrayLength() != 2) throw new FormatException($"post_processor.{name} must be [token, id]");
        return (JsonFields.AsString(a[0], $"post_processor.{name}[0]"), JsonFields.AsInt(a[1], $"post_processor.{name}[1]"));
    }

    private static TemplateProcessing ReadTemplateProcessing(JsonElement p, string type)
    {
        if (type == "BertProcessing")
        {
            var (cls, clsId) = ProcessorToken(p, "cls");
            var (sep, sepId) = ProcessorToken(p, "sep");
            return TemplateProcessing.Bert(cls, clsId, sep, sepId);
        }
        if (type != "TemplateProcessing")
            throw new NotSupportedException($"post_processor.type is '{Quote(type)}'; only TemplateProcessing, BertProcessing and RobertaProcessing are supported.");
        var specials = new Dictionary<string, (int[], string[])>(StringComparer.Ordinal);
        if (JsonFields.Object(p, "special_tokens", "post_processor.special_tokens") is { } st)
            foreach (var entry in st.EnumerateObject())
            {
                string path = $"post_processor.special_tokens['{Quote(entry.Name)}']";
                if (entry.Value.ValueKind != JsonValueKind.Object) throw JsonFields.Wrong(path, "an object", entry.Value);
                var ids = (JsonFields.Array(entry.Value, "ids", $"{path}.ids") ?? throw new FormatException($"{path} has no ids"))
                    .EnumerateArray().Select((x, i) => JsonFields.AsInt(x, $"{path}.ids[{i}]")).ToArray();
                var tokens = (JsonFields.Array(entry.Value, "tokens", $"{path}.tokens") ?? throw new FormatException($"{path} has no tokens"))
                    .EnumerateArray().Select((x, i) => JsonFields.AsString(x, $"{path}.tokens[{i}]")).ToArray();
                if (ids.Length != tokens.Length) throw new FormatException($"{path} has {ids.Length} ids but {tokens.Length} tokens");
                specials[entry.Name] = (ids, tokens);
            }
        return new TemplateProcessing(ReadTemplate(p, "single"), ReadTemplate(p, "pair"), specials);
    }

    private static List<TemplatePiece> ReadTemplate(JsonElement processor, string name)
    {
        var pieces = new List<TemplatePiece>();
        var items = JsonFields.Array(processor, name, $"post_processor.{name}") ?? throw new FormatException($"field 'post_processor.{name}' is missing");
        int i = 0;
        foreach (var item in items.EnumerateArray())
        {
            string path = $"post_processor.{name}[{i++}]";
            if (item.ValueKind != JsonValueKind.Object) throw JsonFields.Wrong(path, "an object", item);
            if (JsonFields.Object(item, "SpecialToken", $"{path}.SpecialToken") is { } s)
                pieces.Add(TemplatePiece.Special(JsonFields.String(s, "id", $"{path}.SpecialToken.id") ?? throw new FormatException($"{path}.SpecialToken has no id"),
                    JsonFields.Int(s, "type_id", $"{path}.SpecialToken.type_id") ?? 0));
            else if (JsonFields.Object(item, "Sequence", $"{path}.Sequence") is { } q)
                pieces.Add(TemplatePiece.Sequence(JsonFields.String(q, "id", $"{path}.Sequence.id") ?? throw new FormatException($"{path}.Sequence has no id"),
                    JsonFields.Int(q, "type_id", $"{path}.Sequence.type_id") ?? 0));
            else
                throw new FormatException($"{path} is neither SpecialToken nor Sequence");
        }
        return pieces;
    }

    private static (string, bool) ReadDecoder(JsonElement root)
    {
        if (JsonFields.Object(root, "decoder") is not { } d) return ("##", true);
        string type = JsonFields.String(d, "type", "decoder.type") ?? "";
        if (type != "WordPiece")
            throw new NotSupportedException($"decoder.type is '{Quote(type)}'; only the WordPiece decoder is supported.");
        return (JsonFields.String(d, "prefix", "decoder.prefix") ?? "##", JsonFields.Bool(d, "cleanup", "decoder.cleanup") ?? true);
    }
}

/// <summary>Typed reads of optional JSON fields: absent or null is null, any other JSON type than the one
/// asked for is a <see cref="FormatException"/> naming the field's path.</summary>
internal static class JsonFields
{
    /// <summary>The field, or null when absent or JSON null.</summary>
    public static JsonElement? Get(JsonElement parent, string name) =>
        parent.ValueKind == JsonValueKind.Object && parent.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    public static string? String(JsonElement parent, string name, string? path = null) => Get(parent, name) is { } v ? AsString(v, path ?? name) : null;
    public static int? Int(JsonElement parent, string name, string? path = null) => Get(parent, name) is { } v ? AsInt(v, path ?? name) : null;

    public static bool? Bool(JsonElement parent, string name, string? path = null) => Get(parent, name) is not { } v ? null : v.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw Wrong(path ?? name, "true or false", v),
    };

    public static JsonElement? Object(JsonElement parent, string name, string? path = null) =>
        Get(parent, name) is not { } v ? null : v.ValueKind == JsonValueKind.Object ? v : throw Wrong(path ?? name, "an object", v);

    public static JsonElement? Array(JsonElement parent, string name, string? path = null) =>
        Get(parent, name) is not { } v ? null : v.ValueKind == JsonValueKind.Array ? v : throw Wrong(path ?? name, "a list", v);

    public static string AsString(JsonElement v, string path) => v.ValueKind == JsonValueKind.String ? v.GetString()! : throw Wrong(path, "a string", v);

    public static int AsInt(JsonElement v, string path) =>
        v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw Wrong(path, "an integer (32-bit)", v);

    public static FormatException Wrong(string path, string expected, JsonElement v) =>
        new($"{path} must be {expected}, not {(v.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null ? "null" : Quote(v.GetRawText()))}");
}
