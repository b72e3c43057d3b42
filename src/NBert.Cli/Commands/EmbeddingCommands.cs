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
        var embedder = SentenceEmbeddings.FromPretrained(ModelCommands.Resolve(name), o => o with
        {
            Pooling = pooling switch { "cls" => Pooling.Cls, "mean" => Pooling.Mean, "max" => Pooling.Max, _ => o.Pooling },
            Normalize = normalize ?? o.Normalize,
        });
        embedder.Model.Quantize(quantization);
        return embedder;
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
            var embedder = Load(parse.GetValue(model)!, parse.GetValue(pooling), normalize: true, QuantizeOption.Value(parse, quantize));
            // A retrieval model's queries carry its query prompt (arctic-embed's model card), its documents none.
            string? promptName = CheckPrompt(embedder, parse.GetValue(prompt)) ?? (embedder.Options.Prompts.ContainsKey("query") ? "query" : null);
            var hits = Search(embedder, embedder.Embed([parse.GetValue(query)!], promptName)[0], path, k, ProgressDisplay.Bar($"embedding {path}"));
            if (hits.Count == 0) throw new CliException($"corpus file '{path}' has no non-empty line.");
            if (parse.GetValue(json))
            {
                int rank = 0;
                foreach (var hit in hits)
                    stdout.WriteLine(JsonSerializer.Serialize(new { rank = ++rank, score = hit.Score, line = hit.Line, text = hit.Text }));
                return Program.Ok;
            }
            var table = new Table().AddColumns("rank", "score", "line", "text");
            int r = 0;
            foreach (var hit in hits)
                table.AddRow((++r).ToString(CultureInfo.InvariantCulture), hit.Score.ToString("F4", CultureInfo.InvariantCulture),
                    hit.Line.ToString(CultureInfo.InvariantCulture), Markup.Escape(PipelineCommands.Shorten(hit.Text)));
            Program.Console(stdout).Write(table);
            return Program.Ok;
        });
        return command;
    }

    /// <summary>
    /// The <paramref name="k"/> corpus lines most similar to <paramref name="query"/>, best first (ties by line): the
    /// corpus is streamed through the library's data reader (gzip, strict UTF-8) and embedded a chunk at a time, keeping
    /// only the best k so far, so a corpus of any size runs in bounded memory.
    /// </summary>
    private static List<(float Score, int Line, string Text)> Search(SentenceEmbeddings embedder, float[] query, string path, int k, IProgress<ProgressStep> progress)
    {
        const int chunk = 256;
        var best = new List<(float Score, int Line, string Text)>();
        var pending = new List<(string Text, int Line)>(chunk);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        long done = 0;
        void Flush()
        {
            if (pending.Count == 0) return;
            var vectors = embedder.Embed(pending.Select(p => p.Text).ToList());
            best = [.. best.Concat(SentenceEmbeddings.Search(query, vectors, k).Select(h => (h.Score, pending[h.Index].Line, pending[h.Index].Text)))
                .OrderByDescending(h => h.Score).ThenBy(h => h.Line).Take(k)];
            done += pending.Count;
            pending.Clear();
            progress.Report(new ProgressStep(done, null, string.Format(CultureInfo.InvariantCulture, "{0:N0} lines, {1:N0}/s", done, done / Math.Max(clock.Elapsed.TotalSeconds, 1e-3))));
        }
        foreach (var (line, number) in NBert.Tasks.DataFiles.Lines(path))
        {
            string text = line.Trim();
            if (text.Length == 0) continue;
            pending.Add((text, number));
            if (pending.Count == chunk) Flush();
        }
        Flush();
        progress.Report(new ProgressStep(done, done, string.Format(CultureInfo.InvariantCulture, "{0:N0} lines", done)));
        return best;
    }
}
