using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using NBert.IO;
using NBert.Modeling;
using NBert.Training;
using NBert.Schema;

namespace NBert.Cli.Commands;

/// <summary><c>nbert overfit</c>: the "can this setup learn at all" check.</summary>
public static class TrainingCommands
{
    public static Command Overfit(TextWriter stdout)
    {
        var model = new Option<string>("--model") { Description = "The model (a directory, a built-in name (minilm, arctic-xs) or a Hugging Face Hub id (org/name[@revision])); its architectures entry picks the head and loss", Required = true };
        var batchPath = new Option<string>("--batch")
        {
            Description = "safetensors with input_ids and optional token_type_ids, attention_mask and labels (labels + next_sentence_label; labels; start_positions + end_positions)",
            Required = true,
        };
        var steps = new Option<int>("--steps") { Description = "Optimiser steps on the batch", Required = true }.AtLeast(1);
        var lr = new Option<double>("--lr") { Description = "Peak learning rate", DefaultValueFactory = _ => 1e-3 }.Above(0);
        var weightDecay = new Option<double>("--weight-decay") { Description = "AdamW's decoupled weight decay (not on biases and LayerNorm weights)", DefaultValueFactory = _ => 0.01 }.AtLeast(0.0);
        var maxGradNorm = new Option<double>("--max-grad-norm") { Description = "Clip the global gradient norm to this (0: no clipping)", DefaultValueFactory = _ => 1.0 }.AtLeast(0.0);
        var epsilon = new Option<double>("--adam-epsilon") { Description = "AdamW's epsilon", DefaultValueFactory = _ => 1e-8 }.Above(0);
        var scheduler = new Option<string>("--scheduler") { Description = "Learning-rate schedule", DefaultValueFactory = _ => "constant" };
        scheduler.AcceptOnlyFromAmong(LearningRateSchedule.Kinds);
        var warmup = new Option<int>("--warmup-steps") { Description = "Linear warm-up steps", DefaultValueFactory = _ => 0 }.AtLeast(0);
        var dropout = new Option<double>("--dropout") { Description = "Dropout probability for every dropout layer during this run", DefaultValueFactory = _ => 0 }.AtLeastAndBelow(0, 1);
        var grads = new Option<string?>("--grads") { Description = "Write the first step's gradients (before clipping) here, float32, named by parameter" };
        var output = new Option<string>("--out") { Description = "Directory for the final checkpoint (config.json, model.safetensors, tokenizer files)", Required = true };
        var seed = new Option<int>("--seed") { Description = "Seed for dropout", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "One JSON line per step instead of text" };
        var overwrite = OutputDirectory.OverwriteOption();
        var command = new Command("overfit", "Train on one batch for N steps and print the loss at every step: a setup that can learn drives it towards zero.")
        {
            model, batchPath, steps, lr, weightDecay, maxGradNorm, epsilon, scheduler, warmup, dropout, grads, output, seed, json, overwrite,
        };
        command.SetAction(parse =>
        {
            int n = parse.GetValue(steps);
            double p = parse.GetValue(dropout);
            string directory = ModelCommands.Resolve(parse.GetValue(model)!);
            OutputDirectory.Check(parse.GetValue(output)!, parse.GetValue(overwrite), directory);
            var pretrained = ModelCommands.Load(directory, null);
            if (pretrained.Architecture == BertArchitecture.BertModel)
                throw new CliException($"{directory}: config.json names no head (architectures is BertModel or empty), so there is no loss to train. Load a checkpoint with a head, or set architectures.");
            string path = parse.GetValue(batchPath)!;
            TrainingBatch batch;
            try
            {
                batch = TrainingBatch.Load(path);
            }
            catch (Exception e) when (e is NBertException or FileNotFoundException or ArgumentException or OverflowException)
            {
                throw new CliException(e is FileNotFoundException ? $"{path}: no such batch file." : e.Message, e);
            }
            var trainer = CreateStep(pretrained, parse, lr, weightDecay, maxGradNorm, epsilon, scheduler, warmup, p, seed, n);
            bool asJson = parse.GetValue(json);
            if (!asJson)
                stdout.WriteLine($"{pretrained.Architecture}, {trainer.Model.Slots.Sum(s => (long)s.Length):N0} parameters, batch {batch.Inputs.Batch} x {batch.Inputs.SequenceLength} from {path}, {n} steps");
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < n; i++)
            {
                StepResult r;
                try
                {
                    if (i == 0 && parse.GetValue(grads) is { } gradsPath)
                        r = FirstStepWritingGradients(trainer, batch, gradsPath);
                    else
                        r = trainer.Run([batch]);
                }
                catch (Exception e) when (e is ArgumentException)
                {
                    throw new CliException($"{path}: {CliException.Reason(e)}", e);
                }
                if (!double.IsFinite(r.Loss) || !double.IsFinite(r.GradientNorm))
                    throw new CliException($"training diverged at step {i + 1}: the loss is {r.Loss.ToString(CultureInfo.InvariantCulture)}, the gradient norm " +
                        $"{r.GradientNorm.ToString(CultureInfo.InvariantCulture)}; lower --lr{(parse.GetValue(maxGradNorm) > 0 ? "" : " or clip with --max-grad-norm 1")}. Nothing was written to --out.");
                Report(stdout, r, n, clock.Elapsed, asJson);
            }
            trainer.Model.CopyTo(pretrained);
            string outDir = parse.GetValue(output)!;
            SaveCheckpoint(pretrained, directory, outDir);
            if (!asJson) stdout.WriteLine($"wrote {outDir} ({clock.Elapsed.TotalSeconds:F1} s)");
            return Program.Ok;
        });
        return command;
    }

    private static TrainingStep<float> CreateStep(BertPreTrainedModel pretrained, ParseResult parse, Option<double> lr, Option<double> weightDecay,
        Option<double> maxGradNorm, Option<double> epsilon, Option<string> scheduler, Option<int> warmup, double dropout, Option<int> seed, int steps)
    {
        try
        {
            var trainingModel = TrainingModel<float>.From(pretrained, parse.GetValue(seed), dropout);
            var schedule = LearningRateSchedule.Create(LearningRateSchedule.Parse(parse.GetValue(scheduler)!), parse.GetValue(lr), parse.GetValue(warmup), steps);
            var options = new AdamWOptions { WeightDecay = parse.GetValue(weightDecay), Epsilon = parse.GetValue(epsilon) };
            return new TrainingStep<float>(trainingModel, options, schedule) { MaxGradNorm = parse.GetValue(maxGradNorm), Dropout = dropout > 0 };
        }
        catch (ArgumentException e)
        {
            throw new CliException(CliException.Reason(e), e);
        }
    }

    /// <summary>Step 1 split open so the gradients can be written between backward and clipping.</summary>
    private static StepResult FirstStepWritingGradients(TrainingStep<float> trainer, TrainingBatch batch, string path)
    {
        var capture = new GradientCapture(trainer.Model);
        var result = trainer.Run([batch], capture.Take);
        SafeTensorsWriter.Write(path, capture.Tensors!);
        return result;
    }

    private sealed class GradientCapture(TrainingModel<float> model)
    {
        public List<SafeTensor>? Tensors;
        public void Take() => Tensors = model.Slots.Select(s => SafeTensor.Float32(s.CheckpointName, s.Shape, model.Gradients.AsSpan(s.Offset, s.Length))).ToList();
    }

    private static void Report(TextWriter stdout, StepResult r, int steps, TimeSpan elapsed, bool json)
    {
        if (json)
        {
            stdout.WriteLine(JsonSerializer.Serialize(new
            {
                step = r.Step, loss = r.Loss, mlm_loss = r.Parts.MaskedLmLoss, nsp_loss = r.Parts.NextSentenceLoss,
                grad_norm = r.GradientNorm, learning_rate = r.LearningRate, elapsed_s = Math.Round(elapsed.TotalSeconds, 3),
            }));
            return;
        }
        var inv = CultureInfo.InvariantCulture;
        string parts = r.Parts.MaskedLmLoss is double m && r.Parts.NextSentenceLoss is double n
            ? string.Format(inv, "  (mlm {0:F6}, nsp {1:F6})", m, n) : "";
        double eta = elapsed.TotalSeconds / r.Step * (steps - r.Step);
        stdout.WriteLine(string.Format(inv, "step {0," + steps.ToString(inv).Length + "}/{1}  loss {2:F6}{3}  grad-norm {4:F4}  lr {5:E2}  {6:F1} s, eta {7:F1} s",
            r.Step, steps, r.Loss, parts, r.GradientNorm, r.LearningRate, elapsed.TotalSeconds, eta));
        stdout.Flush();
    }

    /// <summary>config.json, model.safetensors (each written to a temporary name, then renamed) and the
    /// source's tokenizer files.</summary>
    internal static void SaveCheckpoint(BertPreTrainedModel model, string sourceDirectory, string outDir)
    {
        try
        {
            using var files = new StagedFiles(outDir);
            Checkpoint.StageTokenizerFiles(sourceDirectory, files);
            model.SavePretrained(files);
            files.Commit();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"{outDir}: cannot write the checkpoint: {e.Message}", e);
        }
    }
}
