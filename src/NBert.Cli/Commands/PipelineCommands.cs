using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using NBert.Modeling;
using NBert.Pipelines;
using Spectre.Console;

namespace NBert.Cli.Commands;

/// <summary>
/// <c>nbert fill-mask</c>, <c>classify</c>, <c>ner</c>, <c>qa</c> and <c>nsp</c>: the pipelines on texts given as
/// arguments or JSON lines (<c>--input FILE|-</c>, streamed in chunks with progress on stderr). A table by
/// default; with <c>--json</c>, one line per input holding exactly the pipeline's JSON value for it.
/// </summary>
public static class PipelineCommands
{
    private const int Chunk = 256;
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    private static Option<string> ModelOption() => new("--model") { Description = "The model with the task's head: a directory, a built-in name (minilm, arctic-xs) or a Hugging Face Hub id (org/name[@revision])", Required = true };
    private static Option<string?> InputOption(string format) => new("--input") { Description = $"JSON lines {format}; - for standard input (used when no argument is given)" };
    private static Option<bool> JsonOption() => new("--json") { Description = "One JSON line per input: the pipeline's value for it" };

    /// <summary>Loads a pipeline (what loading had to make up, such as a newly initialised head, the library warns
    /// about on standard error).</summary>
    private static T Load<T>(string model, Func<NBert.Hub.ResolvedModel, T> create, Quantization quantization) where T : Pipeline
    {
        var pipeline = create(ModelCommands.Resolve(model));
        pipeline.Model.Quantize(quantization);
        return pipeline;
    }

    /// <summary>Inputs from arguments, else streamed from --input; each chunk run, then printed as JSON lines or a table.</summary>
    internal static int Run<T>(TextReader stdin, TextWriter stdout, TextWriter stderr, IReadOnlyList<T>? fromArguments, string? input,
        Func<JsonElement, int, T> fromJson, Func<IReadOnlyList<T>, IReadOnlyList<object>> run, bool json, Func<T, string> describe,
        Func<object, IEnumerable<string[]>> rows, string[] columns)
    {
        if (fromArguments is not null && input is not null)
            throw new CliException("give texts as arguments or --input, not both (--input would be ignored).");
        var clock = Stopwatch.StartNew();
        long done = 0;
        bool streaming = fromArguments is null;
        var bar = streaming ? ProgressDisplay.Bar($"inputs from {JsonLinesInput.Name(input ?? "-")}", besideOutput: true) : null;
        // Each input with where it came from: its line of --input, or its place among the arguments.
        IEnumerable<List<(T Item, int Line)>> chunks = fromArguments is not null ? [fromArguments.Select((x, i) => (x, i + 1)).ToList()]
            : JsonLinesInput.ReadChunks(input ?? "-", stdin, (e, line) => (fromJson(e, line), line), Chunk, (lines, fraction) =>
                // A file's fraction read, else (standard input) the inputs so far, the bar pulsing.
                bar!.Report(fraction is double f ? new ProgressStep(f, 1, string.Format(Inv, "{0:N0} inputs, {1:N0}/s", done, done / Math.Max(clock.Elapsed.TotalSeconds, 1e-3)))
                    : new ProgressStep(done, null, string.Format(Inv, "{0:N0} inputs", done))));
        string Where(int line) => streaming ? $"{JsonLinesInput.Name(input ?? "-")}, line {line}" : $"input {line}";
        void Print(List<(T Item, int Line)> chunk, IReadOnlyList<object> values)
        {
            done += chunk.Count;
            if (json)
                foreach (var v in values) stdout.WriteLine(PipelineJson.Serialize(v));
            else
            {
                var table = new Table().AddColumns(["#", "input", .. columns]);
                for (int i = 0; i < chunk.Count; i++)
                {
                    bool first = true;
                    foreach (var row in rows(values[i]).DefaultIfEmpty(columns.Select(_ => "").ToArray()))
                    {
                        table.AddRow([first ? (done - chunk.Count + i + 1).ToString(Inv) : "", first ? Markup.Escape(Shorten(describe(chunk[i].Item))) : "",
                            .. row.Select(Markup.Escape)]);
                        first = false;
                    }
                }
                Program.Console(stdout).Write(table);
            }
            stdout.Flush();
        }
        foreach (var chunk in chunks)
        {
            IReadOnlyList<object> values;
            try
            {
                values = run(chunk.Select(c => c.Item).ToList());
            }
            catch (NBert.Tokenization.BatchItemException e)
            {
                // One input cannot be run: the ones before it still get their results, then the error names its line.
                var before = chunk.Take(e.Index).ToList();
                if (before.Count > 0) Print(before, run(before.Select(c => c.Item).ToList()));
                throw new CliException($"{Where(chunk[e.Index].Line)}: {CliException.Reason(e.InnerException!)}", e);
            }
            catch (ArgumentException e) when (e.ParamName == "options")
            {
                // The pipeline's options are the ones given on the command line (--stride, --doc-stride, --targets, ...).
                throw new CliException(CliException.Reason(e), e);
            }
            Print(chunk, values);
        }
        if (streaming && done == 0)
            throw new CliException($"no input in {JsonLinesInput.Name(input ?? "-")}: give arguments or JSON lines through --input.");
        if (streaming)
        {
            ProgressDisplay.End();
            stderr.WriteLine(string.Format(Inv, "{0:N0} input{3} in {1:F1} s ({2:N0}/s)", done, clock.Elapsed.TotalSeconds, done / Math.Max(clock.Elapsed.TotalSeconds, 1e-3), done == 1 ? "" : "s"));
        }
        return Program.Ok;
    }

    /// <summary>At most 60 characters of an input, for a table cell.</summary>
    internal static string Shorten(string s) => s.Length <= 60 ? s : s[..57] + "...";
    private static string Score(float s) => s.ToString("F4", Inv);

    private static int? ParseTopK(string value, string option) =>
        value == "all" ? null : int.TryParse(value, NumberStyles.None, Inv, out int k) && k >= 1 ? k
            : throw new CliException($"{option} must be a positive number or all, not '{value}'.");

    public static Command FillMask(TextReader stdin, TextWriter stdout, TextWriter stderr)
    {
        var model = ModelOption();
        var quantize = QuantizeOption.Create();
        var input = InputOption("{\"text\": ...}");
        var json = JsonOption();
        var topK = new Option<int>("--top-k") { Description = "Candidates per [MASK]", DefaultValueFactory = _ => 5 }.AtLeast(1);
        var targets = new Option<string?>("--targets") { Description = "Only score these words (comma-separated)" };
        var texts = new Argument<string[]>("TEXT") { Description = "Texts with [MASK]", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("fill-mask", "The likeliest tokens for each [MASK] (transformers' fill-mask pipeline).") { model, input, json, topK, targets, texts, quantize };
        command.SetAction(parse =>
        {
            int k = parse.GetValue(topK);
            var pipeline = Load(parse.GetValue(model)!, NBert.Pipelines.FillMask.FromPretrained, QuantizeOption.Value(parse, quantize));
            var targetList = parse.GetValue(targets)?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            if (targetList is { Length: 0 }) throw new CliException($"--targets '{parse.GetValue(targets)}' names no word: give comma-separated words, or leave it out for the whole vocabulary.");
            var given = parse.GetValue(texts) is { Length: > 0 } t ? t : null;
            return Run(stdin, stdout, stderr, given, parse.GetValue(input), (e, _) => JsonLinesInput.RequiredString(e, "text"),
                chunk => pipeline.RunEachMask(chunk, new FillMaskOptions { TopK = k, Targets = targetList }).Select(PipelineJson.FillMask).ToList(),
                parse.GetValue(json), x => x,
                v => (v is IReadOnlyList<FillMaskCandidate> one ? [one] : (IReadOnlyList<IReadOnlyList<FillMaskCandidate>>)v)
                    .SelectMany((list, m) => list.Select(c => new[] { (m + 1).ToString(Inv), c.TokenStr, Score(c.Score), c.Sequence })),
                ["mask", "token", "score", "sequence"]);
        });
        return command;
    }

    public static Command Classify(TextReader stdin, TextWriter stdout, TextWriter stderr)
    {
        var model = ModelOption();
        var quantize = QuantizeOption.Create();
        var input = InputOption("{\"text\": ..., \"text_pair\": ...}");
        var json = JsonOption();
        var topK = new Option<string>("--top-k") { Description = "Labels per input, or all", DefaultValueFactory = _ => "1" };
        var function = new Option<string>("--function-to-apply") { Description = "softmax, sigmoid or none (default: as the model's config implies)", DefaultValueFactory = _ => "default" };
        function.AcceptOnlyFromAmong("default", "softmax", "sigmoid", "none");
        var texts = new Argument<string[]>("TEXT") { Description = "Texts to classify", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("classify", "Labels and scores of texts or pairs (transformers' text-classification pipeline).") { model, input, json, topK, function, texts, quantize };
        command.SetAction(parse =>
        {
            int? k = ParseTopK(parse.GetValue(topK)!, "--top-k");
            var apply = parse.GetValue(function) switch { "softmax" => ScoreFunction.Softmax, "sigmoid" => ScoreFunction.Sigmoid, "none" => ScoreFunction.None, _ => ScoreFunction.Default };
            var pipeline = Load(parse.GetValue(model)!, TextClassification.FromPretrained, QuantizeOption.Value(parse, quantize));
            var given = parse.GetValue(texts) is { Length: > 0 } t ? t.Select(x => (x, (string?)null)).ToList() : null;
            return Run(stdin, stdout, stderr, given, parse.GetValue(input),
                (e, _) => (JsonLinesInput.RequiredString(e, "text"), JsonLinesInput.OptionalString(e, "text_pair")),
                chunk => pipeline.Run(chunk, new TextClassificationOptions { TopK = k, Function = apply }).Cast<object>().ToList(), parse.GetValue(json),
                x => x.Item2 is null ? x.Item1 : $"{x.Item1} | {x.Item2}",
                v => ((IReadOnlyList<LabelScore>)v).Select(l => new[] { l.Label, Score(l.Score) }), ["label", "score"]);
        });
        return command;
    }

    public static Command Ner(TextReader stdin, TextWriter stdout, TextWriter stderr)
    {
        var model = ModelOption();
        var quantize = QuantizeOption.Create();
        var input = InputOption("{\"text\": ...}");
        var json = JsonOption();
        var aggregation = new Option<string>("--aggregation") { Description = "none (every token), simple, first, average or max", DefaultValueFactory = _ => "simple" };
        aggregation.AcceptOnlyFromAmong("none", "simple", "first", "average", "max");
        var stride = new Option<int?>("--stride") { Description = "Process texts longer than the model's maximum in windows overlapping by this many tokens" }.AtLeast(0);
        var texts = new Argument<string[]>("TEXT") { Description = "Texts to tag", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("ner", "Named entities (transformers' token-classification pipeline).") { model, input, json, aggregation, stride, texts, quantize };
        command.SetAction(parse =>
        {
            var strategy = Enum.Parse<Aggregation>(parse.GetValue(aggregation)!, ignoreCase: true);
            var pipeline = Load(parse.GetValue(model)!, TokenClassification.FromPretrained, QuantizeOption.Value(parse, quantize));
            var given = parse.GetValue(texts) is { Length: > 0 } t ? t : null;
            return Run(stdin, stdout, stderr, given, parse.GetValue(input), (e, _) => JsonLinesInput.RequiredString(e, "text"),
                chunk => pipeline.Run(chunk, new TokenClassificationOptions { Aggregation = strategy, Stride = parse.GetValue(stride) }).Cast<object>().ToList(), parse.GetValue(json), x => x,
                v => ((IReadOnlyList<EntityPrediction>)v).Select(e => new[] { e.EntityGroup ?? e.Entity!, e.Word, Score(e.Score), $"{e.Start}-{e.End}" }),
                ["entity", "word", "score", "span"]);
        });
        return command;
    }

    public static Command Qa(TextReader stdin, TextWriter stdout, TextWriter stderr)
    {
        var model = ModelOption();
        var quantize = QuantizeOption.Create();
        var input = InputOption("{\"question\": ..., \"context\": ...}");
        var json = JsonOption();
        var topK = new Option<int>("--top-k") { Description = "Answers per question", DefaultValueFactory = _ => 1 }.AtLeast(1);
        var maxAnswer = new Option<int>("--max-answer-len") { Description = "Longest answer in tokens", DefaultValueFactory = _ => 15 }.AtLeast(1);
        var docStride = new Option<int?>("--doc-stride") { Description = "Overlap of context windows in tokens (default min(128, max_seq_len / 2))" }.AtLeast(0);
        var maxSeq = new Option<int?>("--max-seq-len") { Description = "Tokens per window (default min(model_max_length, 384))" }.AtLeast(4);
        var maxQuestion = new Option<int>("--max-question-len") { Description = "Question tokens kept", DefaultValueFactory = _ => 64 }.AtLeast(1);
        var impossible = new Option<bool>("--handle-impossible-answer") { Description = "Allow the empty answer" };
        var noAlign = new Option<bool>("--no-align-to-words") { Description = "Keep spans at token boundaries instead of whole words" };
        var arguments = new Argument<string[]>("QUESTION CONTEXT") { Description = "A question and its context", Arity = new ArgumentArity(0, 2) };
        var command = new Command("qa", "Answer spans from a context (transformers 4's question-answering pipeline).")
        {
            model, input, json, topK, maxAnswer, docStride, maxSeq, maxQuestion, impossible, noAlign, arguments, quantize,
        };
        command.SetAction(parse =>
        {
            var options = new QuestionAnsweringOptions
            {
                TopK = parse.GetValue(topK), MaxAnswerLen = parse.GetValue(maxAnswer), DocStride = parse.GetValue(docStride), MaxSeqLen = parse.GetValue(maxSeq),
                MaxQuestionLen = parse.GetValue(maxQuestion), HandleImpossibleAnswer = parse.GetValue(impossible), AlignToWords = !parse.GetValue(noAlign),
            };
            var given = parse.GetValue(arguments) ?? [];
            if (given.Length == 1) throw new CliException("give a QUESTION and a CONTEXT, or JSON lines through --input.");
            var pipeline = Load(parse.GetValue(model)!, QuestionAnswering.FromPretrained, QuantizeOption.Value(parse, quantize));
            return Run(stdin, stdout, stderr, given.Length == 2 ? [(given[0], given[1])] : null, parse.GetValue(input),
                (e, _) => (JsonLinesInput.RequiredString(e, "question"), JsonLinesInput.RequiredString(e, "context")),
                chunk => pipeline.Run(chunk, options).Select(a => PipelineJson.QuestionAnswering(a, options.TopK)).ToList(), parse.GetValue(json),
                x => x.Item1,
                v => (v is QaAnswer one ? [one] : (IReadOnlyList<QaAnswer>)v).Select(a => new[] { a.Answer, Score(a.Score), $"{a.Start}-{a.End}" }),
                ["answer", "score", "span"]);
        });
        return command;
    }

    public static Command Nsp(TextReader stdin, TextWriter stdout, TextWriter stderr)
    {
        var model = ModelOption();
        var quantize = QuantizeOption.Create();
        var input = InputOption("{\"text\": ..., \"text_pair\": ...}");
        var json = JsonOption();
        var arguments = new Argument<string[]>("A B") { Description = "A sentence and the one that may follow it", Arity = new ArgumentArity(0, 2) };
        var command = new Command("nsp", "The probability that sentence B follows sentence A (next sentence prediction).") { model, input, json, arguments, quantize };
        command.SetAction(parse =>
        {
            var given = parse.GetValue(arguments) ?? [];
            if (given.Length == 1) throw new CliException("give two sentences A and B, or JSON lines through --input.");
            var pipeline = Load(parse.GetValue(model)!, NextSentence.FromPretrained, QuantizeOption.Value(parse, quantize));
            return Run(stdin, stdout, stderr, given.Length == 2 ? [(given[0], given[1])] : null, parse.GetValue(input),
                (e, _) => (JsonLinesInput.RequiredString(e, "text"), JsonLinesInput.RequiredString(e, "text_pair")),
                chunk => pipeline.Run(chunk).Cast<object>().ToList(),
                parse.GetValue(json), x => $"{x.Item1} | {x.Item2}",
                v => [[((NextSentencePrediction)v).IsNext ? "true" : "false", Score(((NextSentencePrediction)v).Score)]],
                ["is next", "probability"]);
        });
        return command;
    }
}
