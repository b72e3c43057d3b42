using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using NBert.Modeling;
using NBert.Pipelines;
using Spectre.Console;
using NBert.Schema;
using NBert.Tasks;

namespace NBert.Cli.Commands;

/// <summary><c>nbert embed</c> and <c>nbert similarity</c>: sentence embeddings and semantic search.</summary>
public static class EmbeddingCommands
{
    private static Option<string> ModelOption() => new("--model")
    {
        Description = "The model: a directory, a built-in name (minilm, arctic-xs) or a Hugging Face Hub id (org/name[@revision])",
        Required = true,
    };

    private static Option<string?> PoolingOption()
    {
        var o = new Option<string?>("--pooling") { Description = "cls, mean (over the attention mask) or max; default: the model's own (sentence-transformers' 1_Pooling/config.json), else mean" };
        o.AcceptOnlyFromAmong("cls", "mean", "max");
        return o;
    }

    private static Option<string?> PromptOption(string what) => new("--prompt-name")
    {
        Description = $"Prefix {what} with the model's prompt of this name (config_sentence_transformers.json: query for arctic-xs)",
    };

    /// <summary>The model with its own embedding options (sentence-transformers' files), changed by what was given:
    /// <paramref name="pooling"/> overrides the pooling, <paramref name="normalize"/> the normalisation.</summary>
    private static SentenceEmbeddings Load(string name, string? pooling, bool? normalize, Quantization quantization)
    {
        string directory = ModelCommands.Resolve(name);
        try
        {
            var embedder = SentenceEmbeddings.FromPretrained(directory, o => o with
            {
                Pooling = pooling switch { "cls" => Pooling.Cls, "mean" => Pooling.Mean, "max" => Pooling.Max, _ => o.Pooling },
                Normalize = normalize ?? o.Normalize,
            });
            embedder.Model.Quantize(quantization);
            return embedder;
        }
        catch (Exception e) when (e is NBertException or FileNotFoundException or DirectoryNotFoundException or ArgumentException)
        {
            throw new CliException(CliException.Reason(e), e);
        }
    }

    /// <summary>A prompt name the model has, or a usage error that lists the ones it has.</summary>
    private static string? CheckPrompt(SentenceEmbeddings embedder, string? prompt)
    {
        if (prompt is null || embedder.Options.Prompts.ContainsKey(prompt)) return prompt;
        throw new CliException($"--prompt-name {prompt}: the model has no such prompt ({(embedder.Options.Prompts.Count > 0 ? string.Join(", ", embedder.Options.Prompts.Keys) : "it has none")}).");
    }

    /// <summary>One text's embedding as the JSON line {"embedding": [...]}.</summary>
    private sealed record EmbeddingValue([property: System.Text.Json.Serialization.JsonPropertyName("embedding")] float[] Embedding);

    public static Command Embed(TextReader stdin, TextWriter stdout, TextWriter stderr)
    {
        var model = ModelOption();
        var pooling = PoolingOption();
        var quantize = QuantizeOption.Create();
        var normalize = new Option<bool>("--normalize") { Description = "Scale each embedding to length 1 (default: as the model's files say, else not)" };
        var noNormalize = new Option<bool>("--no-normalize") { Description = "Do not scale the embeddings, whatever the model's files say" };
        var prompt = PromptOption("each text");
        var json = new Option<bool>("--json") { Description = "One JSON line per input: {\"embedding\": [...]}" };
        var input = new Option<string?>("--input") { Description = "JSON lines {\"text\": ...}; - for standard input (used when no TEXT is given)" };
        var texts = new Argument<string[]>("TEXT") { Description = "Texts to embed", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("embed", "Sentence embeddings of texts, pooled as the model's own files say unless --pooling is given.")
        {
            model, pooling, normalize, noNormalize, prompt, json, input, texts, quantize,
        };
        command.SetAction(parse =>
        {
            if (parse.GetValue(normalize) && parse.GetValue(noNormalize)) throw new CliException("--normalize and --no-normalize contradict each other: give one.");
            bool? scale = parse.GetValue(normalize) ? true : parse.GetValue(noNormalize) ? false : null;
            var embedder = Load(parse.GetValue(model)!, parse.GetValue(pooling), scale, QuantizeOption.Value(parse, quantize));
            string? promptName = CheckPrompt(embedder, parse.GetValue(prompt));
            var given = parse.GetValue(texts) is { Length: > 0 } t ? t : null;
            var inv = CultureInfo.InvariantCulture;
            return PipelineCommands.Run(stdin, stdout, stderr, given, parse.GetValue(input), (e, _) => JsonLinesInput.RequiredString(e, "text"),
                chunk => embedder.Embed(chunk, promptName).Select(v => (object)new EmbeddingValue(v)).ToList(), parse.GetValue(json), x => x,
                v =>
                {
                    float[] vector = ((EmbeddingValue)v).Embedding;
                    return [[vector.Length.ToString(inv), System.Numerics.Tensors.TensorPrimitives.Norm(vector).ToString("F4", inv),
                        string.Join(" ", vector.Take(4).Select(x => x.ToString("F4", inv))) + " ..."]];
                },
                ["dimensions", "norm", "first values"]);
        });
        return command;
    }

    public static Command Similarity(TextWriter stdout, TextWriter stderr)
    {
        var model = ModelOption();
        var pooling = PoolingOption();
        var quantize = QuantizeOption.Create();
        var query = new Option<string>("--query") { Description = "The text to search for", Required = true };
        var corpus = new Option<string>("--corpus") { Description = "A text file, one document per line", Required = true };
        var topK = new Option<int>("--top-k") { Description = "How many results", DefaultValueFactory = _ => 5 }.AtLeast(1);
        var prompt = PromptOption("the query (default: query, when the model has that prompt)");
        var json = new Option<bool>("--json") { Description = "One JSON line per result" };
        var command = new Command("similarity", "The corpus lines most similar to a query (cosine of sentence embeddings).")
        {
            model, pooling, prompt, query, corpus, topK, json, quantize,
        };
        command.SetAction(parse =>
        {
            string path = parse.GetValue(corpus)!;
            if (!File.Exists(path)) throw new CliException($"corpus file '{path}' does not exist.");
            int k = parse.GetValue(topK);
            var lines = File.ReadAllLines(path).Select((text, i) => (Text: text.Trim(), Line: i + 1)).Where(l => l.Text.Length > 0).ToList();
            if (lines.Count == 0) throw new CliException($"corpus file '{path}' has no non-empty line.");
            var embedder = Load(parse.GetValue(model)!, parse.GetValue(pooling), normalize: true, QuantizeOption.Value(parse, quantize));
            // A retrieval model's queries carry its query prompt (arctic-embed's model card), its documents none.
            string? promptName = CheckPrompt(embedder, parse.GetValue(prompt)) ?? (embedder.Options.Prompts.ContainsKey("query") ? "query" : null);
            var vectors = EmbedCorpus(embedder, lines.Select(l => l.Text).ToList(), Program.IsErrorTerminal ? stderr : null);
            var hits = SentenceEmbeddings.Search(embedder.Embed([parse.GetValue(query)!], promptName)[0], vectors, k);
            if (parse.GetValue(json))
            {
                int rank = 0;
                foreach (var (index, score) in hits)
                    stdout.WriteLine(JsonSerializer.Serialize(new { rank = ++rank, score, line = lines[index].Line, text = lines[index].Text }));
                return Program.Ok;
            }
            var table = new Table().AddColumns("rank", "score", "line", "text");
            int r = 0;
            foreach (var (index, score) in hits)
                table.AddRow((++r).ToString(CultureInfo.InvariantCulture), score.ToString("F4", CultureInfo.InvariantCulture),
                    lines[index].Line.ToString(CultureInfo.InvariantCulture), Markup.Escape(PipelineCommands.Shorten(lines[index].Text)));
            Program.Console(stdout).Write(table);
            return Program.Ok;
        });
        return command;
    }

    /// <summary>The corpus's embeddings, a chunk at a time so that a terminal sees progress and an ETA on a large corpus.</summary>
    private static float[][] EmbedCorpus(SentenceEmbeddings embedder, List<string> texts, TextWriter? progress)
    {
        const int chunk = 256;
        if (progress is null || texts.Count <= chunk) return embedder.Embed(texts);
        var vectors = new List<float[]>(texts.Count);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int start = 0; start < texts.Count; start += chunk)
        {
            vectors.AddRange(embedder.Embed(texts.GetRange(start, Math.Min(chunk, texts.Count - start))));
            double fraction = (double)vectors.Count / texts.Count, seconds = clock.Elapsed.TotalSeconds;
            progress.Write(string.Format(CultureInfo.InvariantCulture, "\rembedding the corpus [{0}] {1,4:0%} {2:N0}/{3:N0} lines, {4:N0}/s, ETA {5:N0} s   ",
                new string('#', (int)(fraction * 30)).PadRight(30, '-'), fraction, vectors.Count, texts.Count,
                vectors.Count / Math.Max(seconds, 1e-3), seconds / fraction - seconds));
            progress.Flush();
        }
        progress.WriteLine();
        return [.. vectors];
    }
}
