using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using NBert.Schema;
using NBert.Modeling;
using NBert.Training;
using Spectre.Console;
using NBert.Tasks;

namespace NBert.Cli.Commands;

/// <summary><c>nbert finetune</c> and <c>nbert evaluate</c>: classification, NER and extractive QA.</summary>
public static class FineTuneCommands
{
    private static Option<string> TaskOption()
    {
        var o = new Option<string>("--task") { Description = "classification (JSONL or CSV: text, text_pair, label), ner (CoNLL or JSONL tokens/tags) or qa (SQuAD v1.1/v2.0 JSON)", Required = true };
        o.AcceptOnlyFromAmong("classification", "ner", "qa");
        return o;
    }

    public static Command FineTune(TextWriter stdout)
    {
        var task = TaskOption();
        var model = new Option<string>("--model") { Description = "The pretrained model: a directory, a built-in name (minilm, arctic-xs) or a Hugging Face Hub id (org/name[@revision])", Required = true };
        var train = new Option<string>("--train") { Description = "Training data", Required = true };
        var eval = new Option<string>("--eval") { Description = "Evaluation data: scored after every epoch (or --eval-steps); the best model is kept", Required = true };
        var output = new Option<string>("--out") { Description = "Output directory: the best model with tokenizer files, checkpoints, metrics.jsonl, loss.svg", Required = true };
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => 3 }.AtLeast(1);
        var lr = new Option<double>("--lr") { Description = "Peak learning rate", DefaultValueFactory = _ => 5e-5 }.Above(0);
        var batchSize = new Option<int>("--batch-size") { Description = "Examples per micro-batch (per process under mpirun)", DefaultValueFactory = _ => 32 }.AtLeast(1);
        var accumulation = GradientAccumulationOption();
        var maxLength = new Option<int?>("--max-length") { Description = "Tokens per input (default 128; qa: 384)" }.AtLeast(3);
        var warmup = new Option<double>("--warmup-ratio") { Description = "Linear warm-up as a fraction of all steps", DefaultValueFactory = _ => 0.1 }.Between(0, 1);
        var weightDecay = new Option<double>("--weight-decay") { DefaultValueFactory = _ => 0.01 }.AtLeast(0.0);
        var maxGradNorm = new Option<double>("--max-grad-norm") { Description = "Clip the gradients' global norm to this (0: no clipping)", DefaultValueFactory = _ => 1.0 }.AtLeast(0.0);
        var labels = new Option<string?>("--labels") { Description = "Label names in id order, comma-separated (default: the model's, else sorted from the data)" };
        var earlyStopping = new Option<int?>("--early-stopping") { Description = "Stop after N evaluations without a better main metric" }.AtLeast(1);
        var evalSteps = new Option<int?>("--eval-steps") { Description = "Evaluate every N steps instead of every epoch" }.AtLeast(1);
        var saveSteps = new Option<int?>("--save-steps") { Description = "Also write a resumable checkpoint every N steps" }.AtLeast(1);
        var labelAll = new Option<bool>("--label-all-tokens") { Description = "ner: label every piece of a word, not only the first" };
        var resume = new Option<bool>("--resume") { Description = "Continue from the latest checkpoint in --out" };
        var overwrite = OutputDirectory.OverwriteOption();
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 42 };
        var distributed = DataParallelRun.Option();
        var command = new Command("finetune", "Fine-tune a pretrained model for classification, NER or question answering.")
        {
            task, model, train, eval, output, epochs, lr, batchSize, accumulation, maxLength, warmup, weightDecay, maxGradNorm, labels, earlyStopping,
            evalSteps, saveSteps, labelAll, resume, overwrite, seed, distributed,
        };
        command.SetAction(parse => DataParallelRun.Run(parse.GetValue(distributed), stdout, (parallel, stdout) =>
        {
            var kind = FineTuningTask.ParseKind(parse.GetValue(task)!);
            var source = ModelCommands.Resolve(parse.GetValue(model)!);
            string directory = source.Directory;
            string outDir = parse.GetValue(output)!;
            OutputDirectory.Check(outDir, parse.GetValue(overwrite), directory, parse.GetValue(resume), resumable: true);
            // Every rank has looked at --out before rank 0 writes into it (else a later rank would find it not empty).
            parallel?.World.Barrier();
            var tokenizer = TokenizeCommand.LoadTokenizer(source);
            var baseConfig = ModelCommands.LoadConfig(Path.Combine(directory, "config.json"));
            var names = parse.GetValue(labels)?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            if (names?.GroupBy(n => n, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } twice)
                throw new CliException($"--labels names '{twice.Key}' twice: each label once, in id order.");
            var prepared = FineTuningTask.Prepare(kind, tokenizer, baseConfig, parse.GetValue(train), parse.GetValue(eval), names,
                parse.GetValue(maxLength), parse.GetValue(labelAll));
            if (prepared.Train.Count == 0) throw new CliException($"{parse.GetValue(train)}: no training examples.");
            if (prepared.Eval.Count == 0) throw new CliException($"{parse.GetValue(eval)}: no evaluation examples.");
            int seedValue = parse.GetValue(seed);
            var pretrained = LoadModel(source, prepared, seedValue);
            var options = Options(() => new FineTuningOptions
            {
                Epochs = parse.GetValue(epochs), BatchSize = parse.GetValue(batchSize), GradientAccumulationSteps = parse.GetValue(accumulation),
                LearningRate = parse.GetValue(lr),
                WarmupRatio = parse.GetValue(warmup), AdamW = new AdamWOptions { WeightDecay = parse.GetValue(weightDecay) },
                MaxGradNorm = parse.GetValue(maxGradNorm), Seed = seedValue, EvalSteps = parse.GetValue(evalSteps),
                SaveSteps = parse.GetValue(saveSteps), EarlyStoppingPatience = parse.GetValue(earlyStopping), DataParallel = parallel,
                EvalBatchSize = parse.GetValue(batchSize), Resume = parse.GetValue(resume), OverwriteOutputDirectory = parse.GetValue(overwrite),
            });
            stdout.WriteLine($"{prepared.Architecture} from {directory}: {prepared.Train.Count:N0} training and {prepared.Eval.Count:N0} evaluation features, " +
                $"{(prepared.Kind == FineTuningTaskKind.Qa ? "" : $"labels {string.Join(", ", prepared.Labels)}, ")}{Trainer.TotalStepsFor(prepared.Train.Count, options):N0} steps");
            Evaluation? result;
            using var interruption = new Interruption();
            try
            {
                // The library's one runner (it trains a copy of the model loaded here, with the task's head). Handed over
                // as the only reference, so the loaded weights can go once the runner has its copy.
                result = FineTuning.Run(prepared, Interlocked.Exchange(ref pretrained, null!), tokenizer, options, outDir, TrainingProgress(stdout), interruption.Token).Evaluation;
            }
            catch (OperationCanceledException) when (interruption.Token.IsCancellationRequested)
            {
                return Interruption.Stopped(stdout, outDir);
            }
            catch (TrainingDivergedException e)
            {
                throw Diverged(e, parse.GetValue(lr), parse.GetValue(maxGradNorm), outDir);
            }
            if (result is not null) WriteTable(stdout, result, $"last evaluation, on {parse.GetValue(eval)}:");
            stdout.WriteLine($"wrote the best model to {outDir}");
            return Program.Ok;
        }));
        return command;
    }

    public static Command Evaluate(TextWriter stdout)
    {
        var task = TaskOption();
        var model = new Option<string>("--model") { Description = "The fine-tuned model: a directory, a built-in name (minilm, arctic-xs) or a Hugging Face Hub id (org/name[@revision])", Required = true };
        var data = new Option<string>("--data") { Description = "Data to score, in the task's format", Required = true };
        var maxLength = new Option<int?>("--max-length") { Description = "Tokens per input (default 128; qa: 384)" }.AtLeast(3);
        var batchSize = new Option<int>("--batch-size") { DefaultValueFactory = _ => 32 }.AtLeast(1);
        var json = new Option<bool>("--json") { Description = "The metrics as one JSON object" };
        var command = new Command("evaluate", "Score a fine-tuned model on labelled data with its task's metrics.") { task, model, data, maxLength, batchSize, json };
        command.SetAction(parse =>
        {
            var kind = FineTuningTask.ParseKind(parse.GetValue(task)!);
            var source = ModelCommands.Resolve(parse.GetValue(model)!);
            string directory = source.Directory;
            var tokenizer = TokenizeCommand.LoadTokenizer(source);
            var config = ModelCommands.LoadConfig(Path.Combine(directory, "config.json"));
            var architecture = FineTuningTask.ArchitectureOf(kind);
            if (!BertArchitectures.Names(config, architecture))
                throw new CliException($"{directory}: config.json names {(config.Architectures.Count == 0 ? "no architecture" : config.Architectures[0])}, not {FamilyNames.ClassName(config.Family, architecture)}; fine-tune it for this task first (nbert finetune --task {parse.GetValue(task)}).");
            var prepared = FineTuningTask.Prepare(kind, tokenizer, config, null, parse.GetValue(data), null, parse.GetValue(maxLength));
            if (prepared.Eval.Count == 0) throw new CliException($"{parse.GetValue(data)}: no examples.");
            using var loaded = ModelCommands.Load(source, architecture);
            // Scoring a large set takes minutes: the one progress display shows it, as it shows training, and is closed
            // before the results are written.
            var bar = ProgressDisplay.Bar("evaluating");
            int total = prepared.Eval.Count;
            var result = prepared.Evaluate(loaded, parse.GetValue(batchSize),
                new InlineProgress<int>(done => bar.Report(new ProgressStep(done, total, $"{done:N0}/{total:N0} features"))));
            ProgressDisplay.End();
            if (parse.GetValue(json))
                stdout.WriteLine(JsonSerializer.Serialize(result.Metrics.ToDictionary(k => k.Key, k => Math.Round(k.Value, 6))));
            else
                WriteTable(stdout, result, $"{parse.GetValue(data)} ({prepared.Eval.Count:N0} features):");
            return Program.Ok;
        });
        return command;
    }

    /// <summary>A diverged run, said in the command line's own terms.</summary>
    internal static CliException Diverged(TrainingDivergedException e, double lr, double maxGradNorm, string outDir) =>
        Diverged(e.Step, e.Loss, e.GradientNorm, lr, maxGradNorm, $"{Path.Combine(outDir, "metrics.jsonl")} keeps what was logged before it", e);

    /// <summary>The one message of a diverged run, for every training command: where, the loss and gradient norm, what
    /// to change, and what was kept (<paramref name="kept"/>).</summary>
    internal static CliException Diverged(long step, double loss, double gradientNorm, double lr, double maxGradNorm, string kept, Exception? inner = null) =>
        new($"training diverged at step {step}: the loss is {loss.ToString(CultureInfo.InvariantCulture)}, the gradient norm " +
            $"{gradientNorm.ToString(CultureInfo.InvariantCulture)}. Lower --lr (now {lr.ToString("G3", CultureInfo.InvariantCulture)})" +
            (maxGradNorm > 0 ? "" : " or clip the gradients with --max-grad-norm 1") + $"; {kept}.", inner);

    /// <summary>--gradient-accumulation-steps, transformers' name, for every training command.</summary>
    internal static Option<int> GradientAccumulationOption() => new Option<int>("--gradient-accumulation-steps")
    {
        Description = "Micro-batches (of --batch-size) accumulated into each optimiser step; steps, the schedule and checkpoints count optimiser steps",
        DefaultValueFactory = _ => 1,
    }.AtLeast(1);

    /// <summary>A training command's settings, checked by the library; what it refuses is a usage error naming the setting.</summary>
    internal static T Options<T>(Func<T> build) where T : TrainerOptions
    {
        try
        {
            var o = build();
            o.Validate();
            o.AdamW.Validate();
            return o;
        }
        catch (ArgumentException e)
        {
            throw new CliException(CliException.Reason(e), e);
        }
    }

    private static BertPreTrainedModel LoadModel(NBert.Hub.ResolvedModel directory, FineTuningTask task, int seed)
    {
        try
        {
            using (ModelCommands.ExpectingNewHead())
                return BertPreTrainedModel.FromPretrained(directory, task.Architecture, seed, task.Configure);
        }
        catch (NBertException e)
        {
            throw new CliException($"{e.Message} (a head trained with other labels cannot be reused: start from the model without that head)", e);
        }
    }

    /// <summary>A training run's progress: its log lines on standard output, and a bar in the progress display when
    /// those lines go to a file or a pipe and standard error is a terminal.</summary>
    internal static IProgress<TrainerProgress> TrainingProgress(TextWriter stdout)
    {
        var bar = ProgressDisplay.Bar("training", besideOutput: true);
        string evaluation = "";
        return new InlineProgress<TrainerProgress>(e =>
        {
            ReportProgress(stdout, e);
            if (e.Evaluation is not null)
                evaluation = string.Create(CultureInfo.InvariantCulture, $", {e.Evaluation.MainMetric} {e.Evaluation.Metrics[e.Evaluation.MainMetric]:F3}");
            bar.Report(new ProgressStep(e.Step, e.TotalSteps, string.Create(CultureInfo.InvariantCulture,
                $"step {e.Step}/{e.TotalSteps}{(e.Loss is double loss ? $", loss {loss:F4}" : "")}{evaluation}")));
        });
    }

    internal static void ReportProgress(TextWriter stdout, TrainerProgress e)
    {
        var inv = CultureInfo.InvariantCulture;
        string width = e.TotalSteps.ToString(inv).Length.ToString(inv);
        switch (e.Kind)
        {
            case TrainerProgressKind.Train:
                stdout.WriteLine(string.Format(inv, "step {0," + width + "}/{1}  epoch {2:F2}  loss {3:F4}  lr {4:0.00e+00}  {5:N0} tokens/s  {6} elapsed, eta {7}",
                    e.Step, e.TotalSteps, e.Epoch, e.Loss, e.LearningRate, e.TokensPerSecond, Duration(e.Elapsed), Duration(e.Remaining ?? TimeSpan.Zero)));
                break;
            case TrainerProgressKind.Evaluate:
                stdout.WriteLine(string.Format(inv, "eval at step {0}: {1}", e.Step,
                    string.Join("  ", e.Evaluation!.Metrics.Select(m => string.Format(inv, "{0} {1:F4}", m.Key, m.Value)))));
                break;
        }
        if (e.Message is not null) stdout.WriteLine(e.Message);
        stdout.Flush();
    }

    private static string Duration(TimeSpan t) => t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:D2}m" : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m{t.Seconds:D2}s" : $"{t.TotalSeconds:F0}s";

    private static void WriteTable(TextWriter stdout, Evaluation result, string title)
    {
        stdout.WriteLine(title);
        var table = new Table().AddColumns("metric", "value");
        foreach (var (name, value) in result.Metrics)
            table.AddRow(name == result.MainMetric ? $"[bold]{name}[/]" : name, value.ToString("F4", CultureInfo.InvariantCulture));
        Program.Console(stdout).Write(table);
    }
}
