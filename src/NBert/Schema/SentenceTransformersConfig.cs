using System.Text.Json;
using System.Text.Json.Nodes;

namespace NBert.Schema;

/// <summary>
/// A model's own embedding settings, in sentence-transformers' files: <c>modules.json</c> lists the modules
/// (Transformer, Pooling, optionally Normalize); the Pooling module's <c>config.json</c> (<c>1_Pooling/</c>) says which
/// pooling (<c>pooling_mode_cls_token</c>, <c>pooling_mode_mean_tokens</c>, <c>pooling_mode_max_tokens</c>) and
/// whether a prompt's tokens are pooled (<c>include_prompt</c>); <c>sentence_bert_config.json</c> holds
/// <c>max_seq_length</c>; <c>config_sentence_transformers.json</c> holds named <c>prompts</c> and
/// <c>default_prompt_name</c>. Read as sentence-transformers reads them, and written for the built-in models.
/// </summary>
public static class SentenceTransformersConfig
{
    /// <summary>sentence-transformers' files at the top of a model directory (the Pooling module's config is in its own folder).</summary>
    public static IReadOnlyList<string> TopLevelFileNames { get; } = ["modules.json", "sentence_bert_config.json", "config_sentence_transformers.json"];

    /// <summary>The files <see cref="Write(string, EmbeddingOptions, int, int)"/> writes, relative to the model directory.</summary>
    public static IReadOnlyList<string> FileNames { get; } = [.. TopLevelFileNames, "1_Pooling/config.json"];

    /// <summary>
    /// The embedding options <paramref name="directory"/>'s sentence-transformers files give (the defaults of
    /// <see cref="EmbeddingOptions"/> for what they leave out), or null when it has no <c>modules.json</c>.
    /// </summary>
    /// <exception cref="NBertException">A file is not valid, or asks for what NBert does not compute (another pooling
    /// mode, several at once, a Dense module); the message names the file and the field.</exception>
    public static EmbeddingOptions? Read(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        string modulesPath = Path.Combine(directory, "modules.json");
        if (!File.Exists(modulesPath)) return null;
        string reading = modulesPath;
        try
        {
            return ReadFiles(directory, modulesPath, file => reading = file);
        }
        catch (InvalidOperationException e)
        {
            // System.Text.Json refuses a string with an escaped lone surrogate only when it is read.
            throw new NBertException($"{reading}: {e.Message}", e);
        }
    }

    private static EmbeddingOptions ReadFiles(string directory, string modulesPath, Action<string> reading)
    {
        var modules = Parse(modulesPath) as JsonArray ?? throw new NBertException($"{modulesPath}: not a list of modules.");
        string? poolingPath = null;
        bool normalize = false;
        for (int i = 0; i < modules.Count; i++)
        {
            if (modules[i] is not JsonObject module || String(modulesPath, module, "type", $"[{i}].type") is not { } type)
                throw new NBertException($"{modulesPath}: [{i}] is not a module with a type.");
            string kind = type[(type.LastIndexOf('.') + 1)..];
            switch (kind)
            {
                case "Transformer": break;
                case "Pooling":
                    string folder = String(modulesPath, module, "path", $"[{i}].path") ?? "";
                    poolingPath = Path.GetFullPath(Path.Combine(directory, folder, "config.json"));
                    // A module lives inside the model directory: a path out of it is not followed.
                    if (!poolingPath.StartsWith(Path.GetFullPath(directory) + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                        throw new NBertException($"{modulesPath}: [{i}].path {NBertException.Quote(folder)} leads out of the model directory.");
                    break;
                case "Normalize": normalize = true; break;
                default:
                    throw new NBertException($"{modulesPath}: [{i}].type is {NBertException.Quote(type)}, a module NBert does not compute " +
                        "(it runs Transformer, Pooling and Normalize): its embeddings would not be the model's.");
            }
        }
        if (poolingPath is null) throw new NBertException($"{modulesPath}: no Pooling module, so the model does not say how to pool.");
        var options = new EmbeddingOptions { Normalize = normalize };

        reading(poolingPath);
        var pooling = Parse(poolingPath) as JsonObject ?? throw new NBertException($"{poolingPath}: not a JSON object.");
        var modes = new List<Pooling>();
        foreach (var (field, value) in pooling)
        {
            if (!field.StartsWith("pooling_mode_", StringComparison.Ordinal)) continue;
            if (Bool(poolingPath, pooling, field) != true) continue;
            modes.Add(field switch
            {
                "pooling_mode_cls_token" => Pooling.Cls,
                "pooling_mode_mean_tokens" => Pooling.Mean,
                "pooling_mode_max_tokens" => Pooling.Max,
                _ => throw new NBertException($"{poolingPath}: {field} is true, a pooling NBert does not compute (cls, mean and max are)."),
            });
        }
        if (modes.Count != 1)
            throw new NBertException($"{poolingPath}: {(modes.Count == 0 ? "no pooling_mode_... is true" : "several pooling modes are true (concatenated)")}: " +
                "NBert computes exactly one of pooling_mode_cls_token, pooling_mode_mean_tokens and pooling_mode_max_tokens.");
        options = options with { Pooling = modes[0], IncludePrompt = Bool(poolingPath, pooling, "include_prompt") ?? true };

        string bertConfig = Path.Combine(directory, "sentence_bert_config.json");
        if (File.Exists(bertConfig))
        {
            reading(bertConfig);
            var o = Parse(bertConfig) as JsonObject ?? throw new NBertException($"{bertConfig}: not a JSON object.");
            if (o["max_seq_length"] is JsonValue v)
                options = options with
                {
                    MaxLength = v.TryGetValue(out int n) && n >= 2 ? n
                        : throw new NBertException($"{bertConfig}: max_seq_length must be a whole number of at least 2, not {NBertException.Quote(v.ToJsonString())}."),
                };
        }

        string stConfig = Path.Combine(directory, "config_sentence_transformers.json");
        if (File.Exists(stConfig))
        {
            reading(stConfig);
            var o = Parse(stConfig) as JsonObject ?? throw new NBertException($"{stConfig}: not a JSON object.");
            var prompts = new Dictionary<string, string>(StringComparer.Ordinal);
            if (o["prompts"] is JsonObject p)
                foreach (var (name, _) in p)
                    prompts[name] = String(stConfig, p, name, $"prompts['{NBertException.Quote(name)}']")
                        ?? throw new NBertException($"{stConfig}: prompts['{NBertException.Quote(name)}'] must be a string, not null.");
            else if (o["prompts"] is not null) throw new NBertException($"{stConfig}: prompts must be an object of names and texts.");
            string? defaultPrompt = String(stConfig, o, "default_prompt_name", "default_prompt_name");
            if (defaultPrompt is not null && !prompts.ContainsKey(defaultPrompt))
                throw new NBertException($"{stConfig}: default_prompt_name {NBertException.Quote(defaultPrompt)} is not one of the prompts.");
            options = options with { Prompts = prompts, DefaultPromptName = defaultPrompt };
        }
        return options;
    }

    /// <summary>Writes sentence-transformers' files for <paramref name="options"/> and a model of <paramref name="dimension"/>
    /// dimensions into <paramref name="directory"/>, as one unit (see <see cref="Write(StagedFiles, EmbeddingOptions, int, int)"/>).</summary>
    public static void Write(string directory, EmbeddingOptions options, int maxSeqLength, int dimension)
    {
        using var files = new StagedFiles(directory);
        Write(files, options, maxSeqLength, dimension);
        files.Commit();
    }

    /// <summary>Stages sentence-transformers' files for <paramref name="options"/> and a model of <paramref name="dimension"/>
    /// dimensions: modules.json (Transformer, Pooling, and Normalize when the options normalise), 1_Pooling/config.json,
    /// sentence_bert_config.json (<paramref name="maxSeqLength"/>) and config_sentence_transformers.json (the prompts).</summary>
    public static void Write(StagedFiles files, EmbeddingOptions options, int maxSeqLength, int dimension)
    {
        ArgumentNullException.ThrowIfNull(files);
        ArgumentNullException.ThrowIfNull(options);
        var modules = new JsonArray
        {
            new JsonObject { ["idx"] = 0, ["name"] = "0", ["path"] = "", ["type"] = "sentence_transformers.models.Transformer" },
            new JsonObject { ["idx"] = 1, ["name"] = "1", ["path"] = "1_Pooling", ["type"] = "sentence_transformers.models.Pooling" },
        };
        if (options.Normalize) modules.Add(new JsonObject { ["idx"] = 2, ["name"] = "2", ["path"] = "2_Normalize", ["type"] = "sentence_transformers.models.Normalize" });
        var poolingConfig = new JsonObject
        {
            ["word_embedding_dimension"] = dimension,
            ["pooling_mode_cls_token"] = options.Pooling == Pooling.Cls,
            ["pooling_mode_mean_tokens"] = options.Pooling == Pooling.Mean,
            ["pooling_mode_max_tokens"] = options.Pooling == Pooling.Max,
            ["pooling_mode_mean_sqrt_len_tokens"] = false,
            ["pooling_mode_weightedmean_tokens"] = false,
            ["pooling_mode_lasttoken"] = false,
            ["include_prompt"] = options.IncludePrompt,
        };
        var promptsObject = new JsonObject();
        foreach (var (name, text) in options.Prompts) promptsObject[name] = text;
        var indented = new JsonSerializerOptions { WriteIndented = true };
        files.WriteAllText("modules.json", modules.ToJsonString(indented) + "\n");
        files.WriteAllText("1_Pooling/config.json", poolingConfig.ToJsonString(indented) + "\n");
        files.WriteAllText("sentence_bert_config.json", new JsonObject { ["max_seq_length"] = maxSeqLength, ["do_lower_case"] = false }.ToJsonString(indented) + "\n");
        files.WriteAllText("config_sentence_transformers.json",
            new JsonObject { ["prompts"] = promptsObject, ["default_prompt_name"] = options.DefaultPromptName }.ToJsonString(indented) + "\n");
    }

    /// <summary>A file's JSON, read as every JSON file is (UTF-8 checked, a key twice refused), parsed once.</summary>
    private static JsonNode? Parse(string path)
    {
        if (!File.Exists(path)) throw new MissingFileException($"{path}: no such file (modules.json names its folder).", path);
        try
        {
            return JsonNode.Parse(JsonFile.ReadUtf8(path).Span, documentOptions: JsonFile.Options);
        }
        catch (JsonException e)
        {
            throw new NBertException($"{path}: not valid JSON ({NBertException.Quote(e.Message, 160)}).", e);
        }
    }

    /// <summary>A string field, null when absent or null; anything else is an error naming the file and field.</summary>
    private static string? String(string path, JsonObject o, string key, string field) => o[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out string? s) => s,
        var other => throw new NBertException($"{path}: {field} must be a string, not {NBertException.Quote(other.ToJsonString())}."),
    };

    private static bool? Bool(string path, JsonObject o, string key) => o[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out bool b) => b,
        var other => throw new NBertException($"{path}: {key} must be true or false, not {NBertException.Quote(other.ToJsonString())}."),
    };
}

/// <summary>How token vectors become one sentence vector (sentence-transformers' pooling modes).</summary>
public enum Pooling
{
    /// <summary>The [CLS] token's vector.</summary>
    Cls,
    /// <summary>The mean over the tokens inside the attention mask (all-MiniLM-L6-v2's pooling).</summary>
    Mean,
    /// <summary>The element-wise maximum over the tokens inside the attention mask.</summary>
    Max,
}

/// <summary>Options of <c>SentenceEmbeddings</c>. A model directory with sentence-transformers' files gives its
/// own (<see cref="SentenceTransformersConfig.Read"/>); the defaults here are what sentence-transformers does with a plain
/// transformers model: mean pooling, no normalisation, as many tokens as the model takes.</summary>
public sealed record EmbeddingOptions
{
    /// <summary>How token vectors become the sentence vector; mean by default.</summary>
    public Pooling Pooling { get; init; } = Pooling.Mean;
    /// <summary>Scale each sentence vector to length 1 (then cosine similarity is a dot product); sentence-transformers'
    /// Normalize module. Off by default, as for a model without one.</summary>
    public bool Normalize { get; init; }
    /// <summary>Longer texts are truncated to this many tokens (special tokens included); sentence-transformers'
    /// <c>max_seq_length</c>. Null: the model's limit (the pipeline's <c>MaxLength</c>).</summary>
    public int? MaxLength { get; init; }
    /// <summary>Named prompts, prefixed to a text embedded with that prompt name (sentence-transformers' <c>prompts</c>:
    /// arctic-embed's <c>query</c>).</summary>
    public IReadOnlyDictionary<string, string> Prompts { get; init; } = new Dictionary<string, string>();
    /// <summary>The prompt used when none is named (sentence-transformers' <c>default_prompt_name</c>); null for none.</summary>
    public string? DefaultPromptName { get; init; }
    /// <summary>Whether a prompt's tokens are pooled with the text's (sentence-transformers' <c>include_prompt</c>). NBert
    /// pools them always, and refuses to embed with a prompt when this is false.</summary>
    public bool IncludePrompt { get; init; } = true;
}
