using System.CommandLine;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using NBert.IO;
using NBert.Modeling;
using NBert.Pipelines;
using NBert.Training;
using Spectre.Console;
using NBert.Schema;
using NBert.Tasks;

namespace NBert.Cli.Commands;

/// <summary>
/// <c>nbert quickstart</c>: the transfer-learning story in one command. Fine-tunes the built-in MiniLM on the
/// shipped sentiment data (the recipe of docs/results.md, seed 1), scores it on the test split, classifies a few
/// sentences, shows sentence embeddings, and runs the NER and QA models when they have been fine-tuned. The
/// fine-tuned model is kept and reused by the next run.
/// </summary>
public static class QuickstartCommand
{
    /// <summary>Sentences that are not in the shipped data.</summary>
    private static readonly string[] Examples =
    [
        "The battery lasts two days and the screen is gorgeous.",
        "I waited forty minutes and the soup arrived cold.",
        "Not the best film of the year, but the cast is a joy to watch.",
        "It broke the second time I used it.",
    ];

    private const string SimilarityQuery = "The staff were friendly and the food was delicious.";
    // Not in the shipped data (the hand-written sets of data/eval included): a company, a university and a possessive
    // place for NER; a context with two people, two cities and two years for QA, so the answer has to be read.
    private const string NerExample = "Mary Johnson left Boeing in Seattle to teach at Ohio State University, Columbus's largest employer.";
    private const string QaQuestion = "Where was Alice Moreno born?";
    private const string QaContext = "Alice Moreno was born in Portland in 1962, two years after her brother Daniel. She later moved to Boston, where she taught music for thirty years.";

    public static Command Create(TextWriter stdout)
    {
        var output = new Option<string>("--out") { Description = "Where the fine-tuned sentiment model is kept (reused by the next run)", DefaultValueFactory = _ => Path.Combine("models", "sentiment-minilm") };
        var retrain = new Option<bool>("--retrain") { Description = "Fine-tune again even if --out holds a model" };
        var epochs = new Option<int>("--epochs") { Description = "Epochs of fine-tuning (docs/results.md uses 4)", DefaultValueFactory = _ => 4 };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 1 };
        var json = new Option<bool>("--json") { Description = "A JSON object with the results instead of tables" };
        var command = new Command("quickstart", "Fine-tune the built-in MiniLM on the shipped sentiment data, score it, and try it.") { output, retrain, epochs, seed, json };
        command.SetAction(parse =>
        {
            string outDir = parse.GetValue(output)!;
            if (parse.GetValue(epochs) < 1) throw new CliException($"--epochs must be at least 1, not {parse.GetValue(epochs)}.");
            bool asJson = parse.GetValue(json);
            var console = Program.Console(stdout);
            void Say(string markup)
            {
                if (!asJson) console.MarkupLine(markup);
            }
            using var data = ShippedData.Extract("sentiment");
            var baseModel = ModelCommands.Resolve("minilm");
            var testTexts = ClassificationData.Read(data.Split("test")).Select(e => e.Text).ToList();
            bool trained = false;
            if (parse.GetValue(retrain) || !IsSentimentModel(outDir))
            {
                FineTune(baseModel, data, outDir, parse.GetValue(epochs), parse.GetValue(seed), asJson ? TextWriter.Null : stdout,
                    task => Say(string.Create(CultureInfo.InvariantCulture, $"[bold]1. Fine-tuning[/] the built-in all-MiniLM-L6-v2 on {task.Train.Count:N0} review sentences " +
                        $"(dev {task.Eval.Count:N0}, test {testTexts.Count:N0}; data/DATA.md), seed {parse.GetValue(seed)}, {parse.GetValue(epochs)} epoch{(parse.GetValue(epochs) == 1 ? "" : "s")}.")));
                trained = true;
            }
            else
                Say($"[bold]1. Reusing[/] the model fine-tuned earlier in {Markup.Escape(outDir)} ([grey]--retrain[/] fine-tunes it again).");

            var trainedModel = NBert.Hub.ResolvedModel.FromDirectory(outDir);
            var tokenizer = TokenizeCommand.LoadTokenizer(trainedModel);
            var config = ModelCommands.LoadConfig(Path.Combine(outDir, "config.json"));
            var test = FineTuningTask.Prepare(FineTuningTaskKind.Classification, tokenizer, config, null, data.Split("test"), maxLength: 64);
            var model = ModelCommands.Load(trainedModel, BertArchitecture.BertForSequenceClassification);
            var score = test.Evaluate(model, 32);
            double accuracy = score.Metrics["accuracy"];
            Say(string.Create(CultureInfo.InvariantCulture, $"[bold]2. Test accuracy[/] on {test.Eval.Count} held-out sentences: [green]{accuracy:F3}[/] " +
                $"(macro-F1 {score.Metrics["macro_f1"]:F3}). docs/results.md: 0.910 with seed 1, 0.907 the mean of seeds 1-3, 0.763 from random initialisation."));

            var classifier = new TextClassification(tokenizer, model);
            var labels = classifier.Run(Examples);
            if (!asJson)
            {
                console.MarkupLine("[bold]3. Classifying[/] sentences it has never seen:");
                var table = new Table().AddColumns("text", "label", "score");
                for (int i = 0; i < Examples.Length; i++) table.AddRow(Markup.Escape(Examples[i]), labels[i][0].Label, Fixed(labels[i][0].Score));
                console.Write(table);
            }

            // Sentence embeddings come from the pretrained model itself, not the fine-tuned one.
            var embedder = SentenceEmbeddings.FromPretrained(baseModel, o => o with { Normalize = true });
            var hits = SentenceEmbeddings.Search(embedder.Embed(SimilarityQuery), embedder.Embed(testTexts), 3);
            if (!asJson)
            {
                console.MarkupLine($"[bold]4. Sentence embeddings[/]: the test sentences closest to \"{Markup.Escape(SimilarityQuery)}\":");
                var table = new Table().AddColumns("cosine", "sentence");
                foreach (var (index, cosine) in hits) table.AddRow(Fixed(cosine), Markup.Escape(testTexts[index]));
                console.Write(table);
            }

            // The NER and QA models live beside the sentiment model (models/ by default).
            string models = Path.GetDirectoryName(outDir.TrimEnd('/', '\\')) ?? "";
            string nerDir = Path.Combine(models, "ner-minilm"), qaDir = Path.Combine(models, "qa-minilm");
            IReadOnlyList<EntityPrediction>? entities = IsModel(nerDir, BertArchitecture.BertForTokenClassification)
                ? TokenClassification.FromPretrained(NBert.Hub.ResolvedModel.FromDirectory(nerDir)).Run(NerExample, new TokenClassificationOptions { Aggregation = Aggregation.Simple }) : null;
            QaAnswer? answer = IsModel(qaDir, BertArchitecture.BertForQuestionAnswering)
                ? QuestionAnswering.FromPretrained(NBert.Hub.ResolvedModel.FromDirectory(qaDir)).Run(QaQuestion, QaContext, new QuestionAnsweringOptions { HandleImpossibleAnswer = true })[0] : null;
            if (!asJson)
            {
                console.MarkupLine("[bold]5. Named entities and question answering[/]:");
                if (entities is not null)
                {
                    console.MarkupLine($"   {Markup.Escape(NerExample)}");
                    var table = new Table().AddColumns("entity", "word", "score");
                    foreach (var e in entities) table.AddRow(e.EntityGroup ?? e.Entity ?? "", Markup.Escape(e.Word), Fixed(e.Score));
                    console.Write(table);
                    console.MarkupLine($"   on hand-written sentences: [grey]{Markup.Escape($"nbert evaluate --task ner --model {nerDir} --data data/eval/ner.jsonl")}[/] " +
                        "(docs/results.md: entity F1 0.904, organisations 0.819)");
                }
                else
                    console.MarkupLine($"   no NER model in {Markup.Escape(nerDir)}; make one with (about 20 minutes on 2 cores):\n   [grey]{Markup.Escape(NerCommand(nerDir))}[/]");
                if (answer is not null)
                {
                    console.MarkupLine($"   {Markup.Escape(QaContext)}\n   {Markup.Escape(QaQuestion)} [green]{(answer.Answer.Length == 0 ? "(no answer in the context)" : Markup.Escape(answer.Answer))}[/] (score {Fixed(answer.Score)})");
                    console.MarkupLine($"   on hand-written questions: [grey]{Markup.Escape($"nbert evaluate --task qa --model {qaDir} --data data/eval/qa.json --max-length 192")}[/] " +
                        "(docs/results.md: exact match 54.9, F1 62.7)");
                }
                else
                    console.MarkupLine($"   no QA model in {Markup.Escape(qaDir)}; make one with (about 20 minutes on 2 cores):\n   [grey]{Markup.Escape(QaCommand(qaDir))}[/]");
                console.MarkupLine($"[bold]Next[/]: classify your own text with [grey]nbert classify --model {Markup.Escape(outDir)} \"your sentence\"[/]; the README lists more.");
            }
            else
            {
                stdout.WriteLine(JsonSerializer.Serialize(new
                {
                    model = outDir, trained, test_accuracy = accuracy, test_macro_f1 = score.Metrics["macro_f1"],
                    examples = Examples.Select((t, i) => new { text = t, label = labels[i][0].Label, score = labels[i][0].Score }),
                    similar = hits.Select(h => new { text = testTexts[h.Index], cosine = h.Score }),
                    ner = entities, qa = answer,
                }));
            }
            return Program.Ok;
        });
        return command;
    }

    internal static string NerCommand(string outDir) =>
        $"nbert finetune --task ner --model minilm --train data/ner/train.jsonl.gz --eval data/ner/dev.jsonl.gz --epochs 3 --out {outDir}";

    internal static string QaCommand(string outDir) =>
        $"nbert finetune --task qa --model minilm --train data/qa/train.json.gz --eval data/qa/dev.json.gz --epochs 1 --lr 1e-4 --batch-size 16 --max-length 192 --out {outDir}";

    private static void FineTune(NBert.Hub.ResolvedModel baseModel, ShippedData data, string outDir, int epochs, int seed, TextWriter log, Action<FineTuningTask> announce)
    {
        var tokenizer = TokenizeCommand.LoadTokenizer(baseModel);
        var baseConfig = ModelCommands.LoadConfig(Path.Combine(baseModel.Directory, "config.json"));
        var task = FineTuningTask.Prepare(FineTuningTaskKind.Classification, tokenizer, baseConfig, data.Split("train"), data.Split("dev"), ["negative", "positive"], 64);
        announce(task);
        BertPreTrainedModel model;
        using (ModelCommands.ExpectingNewHead()) model = BertPreTrainedModel.FromPretrained(baseModel, task.Architecture, seed, task.Configure);
        var options = new FineTuningOptions
        {
            Epochs = epochs, BatchSize = 32, LearningRate = 5e-5, WarmupRatio = 0.1, AdamW = new AdamWOptions { WeightDecay = 0.01 },
            MaxGradNorm = 1.0, Seed = seed, LogSteps = 5, EvalBatchSize = 32,
        };
        // Train beside the target and rename when done: an interrupted run never leaves a half-written model
        // where the next run would reuse it, and --retrain keeps the old model until the new one is complete.
        string full = Path.GetFullPath(outDir);
        string staging = full.TrimEnd(Path.DirectorySeparatorChar) + ".training";
        if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        try
        {
            IProgress<TrainerProgress> progress;
            bool bar = ProgressDisplay.IsShown && log != TextWriter.Null;
            if (bar)
            {
                // The one progress display, closed before the results are written.
                var display = ProgressDisplay.Bar("fine-tuning");
                string dev = "", loss = "";
                progress = new InlineProgress<TrainerProgress>(e =>
                {
                    if (e.Evaluation is not null) dev = string.Create(CultureInfo.InvariantCulture, $", dev accuracy {e.Evaluation.Metrics["accuracy"]:F3}");
                    if (e.Loss is double l) loss = string.Create(CultureInfo.InvariantCulture, $", loss {l:F3}");
                    display.Report(new ProgressStep(e.Step, e.TotalSteps, string.Create(CultureInfo.InvariantCulture, $"epoch {e.Epoch:F1}{loss}{dev}")));
                });
            }
            else
                progress = new InlineProgress<TrainerProgress>(e =>
                {
                    if (e.Kind != TrainerProgressKind.Train || e.Step % 25 == 0 || e.Step == e.TotalSteps) FineTuneCommands.ReportProgress(log, e);
                });
            FineTuning.Run(task, Interlocked.Exchange(ref model, null!), tokenizer, options, staging, progress); // the only reference: its weights can go once the run has its copy
            if (bar) ProgressDisplay.End();
            foreach (var checkpoint in Directory.GetDirectories(staging, "checkpoint-*")) Directory.Delete(checkpoint, recursive: true);
            if (Directory.Exists(full)) Directory.Delete(full, recursive: true);
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            Directory.Move(staging, full);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"{outDir}: {CliException.Reason(e)}", e);
        }
    }

    private static bool IsSentimentModel(string directory) =>
        ModelConfig(directory, BertArchitecture.BertForSequenceClassification)?.Id2Label is ["negative", "positive"];

    private static bool IsModel(string directory, BertArchitecture architecture) => ModelConfig(directory, architecture) is not null;

    /// <summary>The config of a model directory holding weights for <paramref name="architecture"/>; null when it holds none.</summary>
    private static BertConfig? ModelConfig(string directory, BertArchitecture architecture)
    {
        string config = Path.Combine(directory, "config.json");
        if (!File.Exists(config) || !File.Exists(Path.Combine(directory, "model.safetensors"))) return null;
        var c = ModelCommands.LoadConfig(config);
        return BertArchitectures.Names(c, architecture) ? c : null;
    }

    private static string Fixed(float value) => value.ToString("F3", CultureInfo.InvariantCulture);
}

/// <summary>The data shipped inside nbert (data/ of the repository, embedded at build time), extracted to a
/// temporary directory for as long as it is needed.</summary>
public sealed class ShippedData : IDisposable
{
    private readonly string _directory;

    private ShippedData(string directory) => _directory = directory;

    /// <summary>Extracts data/<paramref name="set"/>/*.</summary>
    public static ShippedData Extract(string set)
    {
        var assembly = Assembly.GetExecutingAssembly();
        string prefix = $"data/{set}/";
        var names = assembly.GetManifestResourceNames().Where(n => n.StartsWith(prefix, StringComparison.Ordinal)).ToList();
        if (names.Count == 0) throw new InvalidOperationException($"nbert was built without data/{set}.");
        string directory = Directory.CreateTempSubdirectory("nbert-data-").FullName;
        foreach (var name in names)
        {
            using var source = assembly.GetManifestResourceStream(name)!;
            using var target = File.Create(Path.Combine(directory, name[prefix.Length..]));
            source.CopyTo(target);
        }
        return new ShippedData(directory);
    }

    /// <summary>The path of a split (train, dev, test).</summary>
    public string Split(string split) => Directory.GetFiles(_directory, split + ".*").Single();

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
