using System.Text.Json;

namespace NBert.Tokenization;

/// <summary>
/// Options of a tokenizer built from a vocabulary, with transformers' <c>BertTokenizer</c> names and
/// defaults (<c>do_lower_case</c>, <c>strip_accents</c>, <c>tokenize_chinese_chars</c>, special tokens).
/// </summary>
public sealed record BertTokenizerOptions
{
    public bool DoLowerCase { get; init; } = true;
    /// <summary>Null follows <see cref="DoLowerCase"/>.</summary>
    public bool? StripAccents { get; init; }
    public bool TokenizeChineseChars { get; init; } = true;
    public bool CleanText { get; init; } = true;
    public string UnkToken { get; init; } = "[UNK]";
    public string SepToken { get; init; } = "[SEP]";
    public string PadToken { get; init; } = "[PAD]";
    public string ClsToken { get; init; } = "[CLS]";
    public string MaskToken { get; init; } = "[MASK]";
    public int? ModelMaxLength { get; init; }
    public string ContinuingSubwordPrefix { get; init; } = "##";
    public int MaxInputCharsPerWord { get; init; } = 100;
    /// <summary>Further added tokens (transformers' <c>added_tokens_decoder</c>).</summary>
    public IReadOnlyList<AddedToken> AddedTokens { get; init; } = [];
}

internal sealed record SpecialTokenNames(string Unk, string Cls, string Sep, string Pad, string Mask);

public sealed partial class BertTokenizer
{
    /// <summary>
    /// Loads the tokenizer of a model directory: <c>tokenizer.json</c> when present, else <c>vocab.txt</c>;
    /// <c>tokenizer_config.json</c> (and <c>special_tokens_map.json</c>) add special tokens, options and
    /// <c>model_max_length</c>.
    /// </summary>
    public static BertTokenizer FromDirectory(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (!Directory.Exists(directory))
            throw new DirectoryNotFoundException($"Model directory '{directory}' does not exist.");
        var config = TokenizerConfig.Read(directory);
        string json = Path.Combine(directory, "tokenizer.json");
        if (File.Exists(json)) return FromTokenizerJson(json, config);
        string vocab = Path.Combine(directory, "vocab.txt");
        if (File.Exists(vocab)) return FromVocabFile(vocab, config.ToOptions());
        throw new FileNotFoundException(
            $"Model directory '{directory}' has neither tokenizer.json nor vocab.txt: a BERT tokenizer needs one of them.", vocab);
    }

    /// <summary>Loads a <c>vocab.txt</c> (one token per line, LF or CRLF; the line number is the id).</summary>
    public static BertTokenizer FromVocabFile(string path, BertTokenizerOptions? options = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Vocabulary file '{path}' does not exist.", path);
        try
        {
            return FromVocabulary(ReadVocabLines(File.ReadAllText(path)), options);
        }
        catch (ArgumentException e)
        {
            throw new NBertException($"{path}: {e.Message}", e);
        }
    }

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
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            return TokenizerJson.Build(doc.RootElement, config);
        }
        catch (JsonException e)
        {
            throw new NBertException($"{path}: not valid JSON ({e.Message}).", e);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or KeyNotFoundException or FormatException or NotSupportedException)
        {
            throw new NBertException($"{path}: {e.Message}", e);
        }
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
    public int? ModelMaxLength { get; init; }
    public List<AddedToken> AddedTokens { get; init; } = [];

    public static TokenizerConfig Read(string directory)
    {
        var config = new TokenizerConfig();
        foreach (var name in new[] { "special_tokens_map.json", "tokenizer_config.json" })
        {
            string path = Path.Combine(directory, name);
            if (!File.Exists(path)) continue;
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
                config = config.Merge(doc.RootElement);
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
            {
                throw new NBertException($"{path}: {e.Message}", e);
            }
        }
        return config;
    }

    private TokenizerConfig Merge(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new FormatException("the top level must be a JSON object");
        string? Token(string field) => root.TryGetProperty(field, out var v) ? v.ValueKind switch
        {
            JsonValueKind.String => v.GetString(),
            JsonValueKind.Object when v.TryGetProperty("content", out var c) => c.GetString(),
            _ => null,
        } : null;
        bool? Flag(string field) => root.TryGetProperty(field, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;
        int? maxLength = null;
        // transformers writes 1e30 ("no limit") for models without one: treat anything huge as none.
        if (root.TryGetProperty("model_max_length", out var m) && m.ValueKind == JsonValueKind.Number && m.TryGetDouble(out double d) && d is > 0 and < int.MaxValue)
            maxLength = (int)d;
        var added = new List<AddedToken>(AddedTokens);
        if (root.TryGetProperty("added_tokens_decoder", out var decoder) && decoder.ValueKind == JsonValueKind.Object)
            foreach (var entry in decoder.EnumerateObject())
                added.Add(TokenizerJson.ReadAddedToken(entry.Value, int.Parse(entry.Name, System.Globalization.CultureInfo.InvariantCulture)));
        return this with
        {
            DoLowerCase = Flag("do_lower_case") ?? DoLowerCase,
            StripAccents = Flag("strip_accents") ?? StripAccents,
            TokenizeChineseChars = Flag("tokenize_chinese_chars") ?? TokenizeChineseChars,
            Unk = Token("unk_token") ?? Unk,
            Cls = Token("cls_token") ?? Cls,
            Sep = Token("sep_token") ?? Sep,
            Pad = Token("pad_token") ?? Pad,
            Mask = Token("mask_token") ?? Mask,
            ModelMaxLength = maxLength ?? ModelMaxLength,
            AddedTokens = added,
        };
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

    public SpecialTokenNames Names(string unkFromModel) =>
        new(Unk ?? unkFromModel, Cls ?? "[CLS]", Sep ?? "[SEP]", Pad ?? "[PAD]", Mask ?? "[MASK]");
}

/// <summary>Reads the parts of Hugging Face's <c>tokenizer.json</c> that a BERT tokenizer has.</summary>
internal static class TokenizerJson
{
    public static BertTokenizer Build(JsonElement root, TokenizerConfig config)
    {
        var model = Required(root, "model");
        string type = model.TryGetProperty("type", out var t) ? t.GetString() ?? "" : "WordPiece";
        if (type != "WordPiece")
            throw new NotSupportedException($"model.type is '{type}'; only WordPiece (BERT) tokenizers are supported.");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in Required(model, "vocab", "model.").EnumerateObject()) vocab[entry.Name] = entry.Value.GetInt32();
        string unk = model.TryGetProperty("unk_token", out var u) && u.GetString() is { } us ? us : "[UNK]";
        string prefix = model.TryGetProperty("continuing_subword_prefix", out var p) && p.GetString() is { } ps ? ps : "##";
        int maxChars = model.TryGetProperty("max_input_chars_per_word", out var mc) && mc.ValueKind == JsonValueKind.Number ? mc.GetInt32() : 100;
        var wordPiece = new WordPiece(vocab, unk, prefix, maxChars);

        if (root.TryGetProperty("pre_tokenizer", out var pre) && pre.ValueKind != JsonValueKind.Null
            && pre.GetProperty("type").GetString() is var preType && preType != "BertPreTokenizer")
            throw new NotSupportedException($"pre_tokenizer.type is '{preType}'; only BertPreTokenizer is supported.");

        var added = new List<AddedToken>();
        if (root.TryGetProperty("added_tokens", out var list) && list.ValueKind == JsonValueKind.Array)
            foreach (var item in list.EnumerateArray()) added.Add(ReadAddedToken(item, null));

        return new BertTokenizer(wordPiece, ReadNormalizer(root), added, ReadPostProcessor(root, wordPiece, added),
            ReadDecoder(root), config.Names(unk), config.ModelMaxLength);
    }

    public static AddedToken ReadAddedToken(JsonElement e, int? id)
    {
        bool Flag(string name, bool fallback) => e.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : fallback;
        string content = e.GetProperty("content").GetString() ?? throw new FormatException("an added token has no content");
        bool special = Flag("special", false);
        return new AddedToken(content, id ?? e.GetProperty("id").GetInt32(), special,
            Flag("normalized", !special), Flag("single_word", false), Flag("lstrip", false), Flag("rstrip", false));
    }

    private static BertNormalizerOptions ReadNormalizer(JsonElement root)
    {
        if (!root.TryGetProperty("normalizer", out var n) || n.ValueKind == JsonValueKind.Null)
            return new BertNormalizerOptions(false, false, false, false);
        string type = n.GetProperty("type").GetString() ?? "";
        if (type != "BertNormalizer")
            throw new NotSupportedException($"normalizer.type is '{type}'; only BertNormalizer is supported.");
        bool Flag(string name, bool fallback) => n.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : fallback;
        bool? strip = n.TryGetProperty("strip_accents", out var s) && s.ValueKind is JsonValueKind.True or JsonValueKind.False ? s.GetBoolean() : null;
        return new BertNormalizerOptions(Flag("clean_text", true), Flag("handle_chinese_chars", true), strip, Flag("lowercase", true));
    }

    private static TemplateProcessing? ReadPostProcessor(JsonElement root, WordPiece model, List<AddedToken> added)
    {
        if (!root.TryGetProperty("post_processor", out var p) || p.ValueKind == JsonValueKind.Null) return null;
        string type = p.GetProperty("type").GetString() ?? "";
        if (type == "BertProcessing")
        {
            var sep = p.GetProperty("sep");
            var cls = p.GetProperty("cls");
            return TemplateProcessing.Bert(cls[0].GetString()!, cls[1].GetInt32(), sep[0].GetString()!, sep[1].GetInt32());
        }
        if (type != "TemplateProcessing")
            throw new NotSupportedException($"post_processor.type is '{type}'; only TemplateProcessing and BertProcessing are supported.");
        var specials = new Dictionary<string, (int[], string[])>(StringComparer.Ordinal);
        if (p.TryGetProperty("special_tokens", out var st))
            foreach (var entry in st.EnumerateObject())
                specials[entry.Name] = (entry.Value.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray(),
                    entry.Value.GetProperty("tokens").EnumerateArray().Select(x => x.GetString()!).ToArray());
        return new TemplateProcessing(ReadTemplate(p, "single"), ReadTemplate(p, "pair"), specials);
    }

    private static List<TemplatePiece> ReadTemplate(JsonElement processor, string name)
    {
        var pieces = new List<TemplatePiece>();
        foreach (var item in Required(processor, name, "post_processor.").EnumerateArray())
        {
            if (item.TryGetProperty("SpecialToken", out var s))
                pieces.Add(TemplatePiece.Special(s.GetProperty("id").GetString()!, s.GetProperty("type_id").GetInt32()));
            else if (item.TryGetProperty("Sequence", out var q))
                pieces.Add(TemplatePiece.Sequence(q.GetProperty("id").GetString()!, q.GetProperty("type_id").GetInt32()));
            else
                throw new FormatException($"post_processor.{name} has a piece that is neither SpecialToken nor Sequence");
        }
        return pieces;
    }

    private static (string, bool) ReadDecoder(JsonElement root)
    {
        if (!root.TryGetProperty("decoder", out var d) || d.ValueKind == JsonValueKind.Null) return ("##", true);
        string type = d.GetProperty("type").GetString() ?? "";
        if (type != "WordPiece")
            throw new NotSupportedException($"decoder.type is '{type}'; only the WordPiece decoder is supported.");
        string prefix = d.TryGetProperty("prefix", out var p) && p.GetString() is { } ps ? ps : "##";
        bool cleanup = !d.TryGetProperty("cleanup", out var c) || c.ValueKind != JsonValueKind.False;
        return (prefix, cleanup);
    }

    private static JsonElement Required(JsonElement parent, string name, string path = "") =>
        parent.ValueKind == JsonValueKind.Object && parent.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null
            ? v
            : throw new FormatException($"field '{path}{name}' is missing");
}
