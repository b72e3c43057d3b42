using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using NBert.IO;
using NBert.Modeling;

namespace NBert.Training;

/// <summary>The trainer's settings, with transformers' Trainer defaults where it has them.</summary>
public sealed record TrainerOptions
{
    public int Epochs { get; init; } = 3;
    /// <summary>Optimiser steps to take; when set, it overrides <see cref="Epochs"/>.</summary>
    public long? MaxSteps { get; init; }
    public int BatchSize { get; init; } = 32;
    public double LearningRate { get; init; } = 5e-5;
    /// <summary>Warm-up as a fraction of all steps (ignored when <see cref="WarmupSteps"/> is set).</summary>
    public double WarmupRatio { get; init; }
    public int? WarmupSteps { get; init; }
    public string Scheduler { get; init; } = "linear";
    public AdamWOptions AdamW { get; init; } = new();
    public double MaxGradNorm { get; init; } = 1.0;
    /// <summary>Seeds the data order, dropout and whatever the batch function draws.</summary>
    public int Seed { get; init; } = 42;
    /// <summary>Evaluate every this many steps; null: at the end of each epoch.</summary>
    public int? EvalSteps { get; init; }
    /// <summary>Write a resumable checkpoint every this many steps (also after every evaluation); null: only after evaluations.</summary>
    public int? SaveSteps { get; init; }
    /// <summary>Stop after this many evaluations in a row without a better main metric.</summary>
    public int? EarlyStoppingPatience { get; init; }
    /// <summary>Report (and log) the training loss every this many steps.</summary>
    public int LogSteps { get; init; } = 10;
    /// <summary>Also log the first step's loss (transformers' logging_first_step).</summary>
    public bool LogFirstStep { get; init; }

    public void Validate()
    {
        if (BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), $"The batch size must be at least 1, not {BatchSize}.");
        if (Epochs < 1 && MaxSteps is null) throw new ArgumentOutOfRangeException(nameof(Epochs), $"Epochs must be at least 1, not {Epochs}.");
        if (MaxSteps is < 1) throw new ArgumentOutOfRangeException(nameof(MaxSteps), $"Steps must be at least 1, not {MaxSteps}.");
        if (!(WarmupRatio is >= 0 and <= 1)) throw new ArgumentOutOfRangeException(nameof(WarmupRatio), $"The warm-up ratio must be in [0, 1], not {WarmupRatio}.");
        if (EvalSteps is < 1 || SaveSteps is < 1 || EarlyStoppingPatience is < 1 || LogSteps < 1)
            throw new ArgumentOutOfRangeException(nameof(EvalSteps), "Step intervals and the patience must be at least 1.");
    }
}

/// <summary>An evaluation: metric values by name and which of them decides the best checkpoint.</summary>
public sealed record Evaluation(IReadOnlyDictionary<string, double> Metrics, string MainMetric, bool HigherIsBetter = true)
{
    public double Main => Metrics[MainMetric];

    /// <summary>Whether this evaluation beats a best main metric so far.</summary>
    public bool Beats(double? best) => best is not double b || (HigherIsBetter ? Main > b : Main < b);
}

/// <summary>What the trainer reports as it goes.</summary>
public sealed record TrainerEvent(string Kind, long Step, long TotalSteps, double Epoch, double? Loss, double? LearningRate, double? TokensPerSecond,
    TimeSpan Elapsed, TimeSpan? Remaining, Evaluation? Evaluation, string? Message);

/// <summary>
/// Fine-tuning and pre-training loop: shuffled batches per epoch, <see cref="TrainingStep{T}"/> per batch,
/// evaluation with the task's metrics, the best model kept in the output directory, early stopping, and
/// resumable checkpoints. A checkpoint holds the model, AdamW's moments and step, the dropout generator's
/// position and the data position (epoch, batch), written to a temporary directory that is then renamed;
/// a resumed run therefore ends with exactly the weights of one that was never stopped. The data order of an
/// epoch and anything the batch function draws depend only on the seed, the epoch and the step.
/// </summary>
public sealed class Trainer
{
    private readonly BertPreTrainedModel _model;
    private readonly string? _tokenizerDirectory;
    private readonly int _count;
    private readonly Func<IReadOnlyList<int>, long, TrainingBatch> _batch;
    private readonly Func<TrainingModel<float>, Evaluation>? _evaluate;
    public TrainerOptions Options { get; }
    public event Action<TrainerEvent>? Progress;

    /// <param name="model">The model to train; its parameters are updated in place.</param>
    /// <param name="tokenizerDirectory">Where the tokenizer files to copy beside every saved model are.</param>
    /// <param name="count">Training items.</param>
    /// <param name="batch">Builds the batch of the given item indices at the given step (0-based).</param>
    /// <param name="evaluate">Evaluates the current weights; null for no evaluation.</param>
    public Trainer(BertPreTrainedModel model, string? tokenizerDirectory, int count, Func<IReadOnlyList<int>, long, TrainingBatch> batch,
        Func<TrainingModel<float>, Evaluation>? evaluate, TrainerOptions options)
    {
        options.Validate();
        if (count < 1) throw new ArgumentException("There is no training data.", nameof(count));
        (_model, _tokenizerDirectory, _count, _batch, _evaluate, Options) = (model, tokenizerDirectory, count, batch, evaluate, options);
    }

    private sealed class State
    {
        public long Step;
        public int Epoch, BatchInEpoch;
        public ulong DropoutPosition;
        public double? BestMetric;
        public long BestStep;
        public int EvaluationsWithoutGain;
        public JsonArray History = [];
    }

    public int StepsPerEpoch => (_count + Options.BatchSize - 1) / Options.BatchSize;
    public long TotalSteps => Options.MaxSteps ?? (long)Options.Epochs * StepsPerEpoch;

    /// <summary>
    /// Trains into <paramref name="outputDirectory"/>: the best model (or the last, without evaluation) with
    /// tokenizer files, <c>checkpoint-N/</c> to resume from, <c>metrics.jsonl</c> and <c>loss.svg</c>. With
    /// <paramref name="resume"/>, continues from the latest checkpoint there. Returns the final evaluation, if any.
    /// </summary>
    public Evaluation? Train(string outputDirectory, bool resume = false)
    {
        Directory.CreateDirectory(outputDirectory);
        var o = Options;
        long total = TotalSteps;
        int warmup = o.WarmupSteps ?? (int)Math.Ceiling(o.WarmupRatio * total);
        var model = TrainingModel<float>.From(_model, (ulong)o.Seed);
        var step = new TrainingStep<float>(model, o.AdamW, LearningRateSchedule.Create(o.Scheduler, o.LearningRate, warmup, (int)Math.Min(total, int.MaxValue)))
        {
            MaxGradNorm = o.MaxGradNorm,
        };
        var state = new State();
        string metricsPath = Path.Combine(outputDirectory, "metrics.jsonl");
        if (resume && LatestCheckpoint(outputDirectory) is { } checkpoint)
        {
            state = Restore(checkpoint, model, step.Optimizer, step.Schedule);
            // The log as it was at the checkpoint: lines written after it, by the run that stopped, go.
            File.WriteAllLines(metricsPath, state.History.Select(h => h!.ToJsonString()));
            Report("resume", state, total, null, null, null, TimeSpan.Zero, null, null, $"resumed from {checkpoint} at step {state.Step}");
        }
        else if (File.Exists(metricsPath))
            File.Delete(metricsPath);

        var clock = Stopwatch.StartNew();
        long startStep = state.Step;
        double lossSum = 0;
        int lossCount = 0;
        long tokens = 0;
        int[] order = Permutation(o.Seed, state.Epoch, _count);
        Evaluation? last = null;
        bool stop = false;
        while (state.Step < total && !stop)
        {
            if (state.BatchInEpoch >= StepsPerEpoch)
            {
                state.Epoch++;
                state.BatchInEpoch = 0;
                order = Permutation(o.Seed, state.Epoch, _count);
            }
            int first = state.BatchInEpoch * o.BatchSize;
            var indices = order.AsSpan(first, Math.Min(o.BatchSize, _count - first)).ToArray();
            var batch = _batch(indices, state.Step);
            var r = step.Run([batch]);
            state.Step++;
            state.BatchInEpoch++;
            state.DropoutPosition = model.Random.Position;
            lossSum += r.Loss;
            lossCount++;
            tokens += batch.Tokens;
            double epoch = state.Epoch + (double)state.BatchInEpoch / StepsPerEpoch;
            var elapsed = clock.Elapsed;
            var remaining = TimeSpan.FromSeconds(elapsed.TotalSeconds / (state.Step - startStep) * (total - state.Step));
            if (state.Step % o.LogSteps == 0 || state.Step == total || (o.LogFirstStep && state.Step == 1))
            {
                double loss = lossSum / lossCount;
                var entry = new JsonObject { ["step"] = state.Step, ["epoch"] = Math.Round(epoch, 4), ["loss"] = loss, ["learning_rate"] = r.LearningRate, ["grad_norm"] = r.GradientNorm };
                if (r.Parts.MaskedLmLoss is double mlm) entry["mlm_loss"] = mlm;
                if (r.Parts.NextSentenceLoss is double nsp) entry["nsp_loss"] = nsp;
                Log(metricsPath, state, entry);
                Report("train", state, total, loss, r.LearningRate, tokens / elapsed.TotalSeconds, elapsed, remaining, null, null);
                lossSum = 0;
                lossCount = 0;
            }

            bool evaluateNow = _evaluate is not null && (o.EvalSteps is int every ? state.Step % every == 0 : state.BatchInEpoch == StepsPerEpoch);
            if (evaluateNow || (_evaluate is not null && state.Step == total && last is null))
            {
                last = _evaluate!(model);
                var entry = new JsonObject { ["step"] = state.Step, ["epoch"] = Math.Round(epoch, 4) };
                foreach (var (k, v) in last.Metrics) entry["eval_" + k] = v;
                Log(metricsPath, state, entry);
                if (last.Beats(state.BestMetric))
                {
                    state.BestMetric = last.Main;
                    state.BestStep = state.Step;
                    state.EvaluationsWithoutGain = 0;
                    SaveModel(model, outputDirectory);
                }
                else if (++state.EvaluationsWithoutGain >= (o.EarlyStoppingPatience ?? int.MaxValue))
                    stop = true;
                Report("eval", state, total, null, null, null, clock.Elapsed, remaining, last,
                    stop ? $"no better {last.MainMetric} in {state.EvaluationsWithoutGain} evaluations: stopping early (best {state.BestMetric:F4} at step {state.BestStep})" : null);
            }
            if (evaluateNow || stop || (o.SaveSteps is int save && state.Step % save == 0))
                SaveCheckpoint(model, step.Optimizer, step.Schedule, state, outputDirectory);
        }
        if (_evaluate is null || state.BestMetric is null) SaveModel(model, outputDirectory);
        LossCurve.Write(Path.Combine(outputDirectory, "loss.svg"), metricsPath);
        Report("done", state, total, null, null, null, clock.Elapsed, TimeSpan.Zero, last,
            last is null ? null : $"best {last.MainMetric} {state.BestMetric:F4} at step {state.BestStep}");
        return last;
    }

    private void Report(string kind, State s, long total, double? loss, double? lr, double? tokensPerSecond, TimeSpan elapsed, TimeSpan? remaining,
        Evaluation? evaluation, string? message) =>
        Progress?.Invoke(new TrainerEvent(kind, s.Step, total, s.Epoch + (double)s.BatchInEpoch / StepsPerEpoch, loss, lr, tokensPerSecond,
            elapsed, remaining, evaluation, message));

    private static void Log(string path, State state, JsonObject entry)
    {
        state.History.Add(entry.DeepClone());
        File.AppendAllText(path, entry.ToJsonString() + "\n");
    }

    /// <summary>The items of an epoch in a shuffled order that depends only on the seed and the epoch.</summary>
    public static int[] Permutation(int seed, int epoch, int count)
    {
        var order = Enumerable.Range(0, count).ToArray();
        new Random(DeriveSeed(seed, epoch, 0x5EED)).Shuffle(order);
        return order;
    }

    /// <summary>A seed for a purpose (an epoch's order, a step's masks) from the run's seed, the same in every process
    /// (HashCode.Combine is randomised per process, so it cannot serve).</summary>
    public static int DeriveSeed(int seed, long a, long b)
    {
        ulong z = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL ^ (ulong)a * 0xBF58476D1CE4E5B9UL ^ (ulong)b * 0x94D049BB133111EBUL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return (int)((z ^ (z >> 31)) & 0x7FFFFFFF);
    }

    // ---- saving and resuming ----

    private void SaveModel(TrainingModel<float> model, string directory)
    {
        model.CopyTo(_model);
        _model.SavePretrained(directory);
        if (_tokenizerDirectory is not null) Checkpoint.CopyTokenizerFiles(_tokenizerDirectory, directory);
    }

    private void SaveCheckpoint(TrainingModel<float> model, AdamW<float> optimizer, LearningRateSchedule schedule, State state, string directory)
    {
        string final = Path.Combine(directory, $"checkpoint-{state.Step}");
        string temp = Path.Combine(directory, $".checkpoint-{state.Step}.{Environment.ProcessId}.tmp");
        if (Directory.Exists(temp)) Directory.Delete(temp, true);
        SaveModel(model, temp);
        SafeTensorsWriter.Write(Path.Combine(temp, "optimizer.safetensors"), model.Slots.SelectMany(s => new[]
        {
            SafeTensor.Float32("exp_avg." + s.CheckpointName, s.Shape, optimizer.FirstMoment.AsSpan(s.Offset, s.Length)),
            SafeTensor.Float32("exp_avg_sq." + s.CheckpointName, s.Shape, optimizer.SecondMoment.AsSpan(s.Offset, s.Length)),
        }));
        var json = new JsonObject
        {
            ["global_step"] = state.Step, ["epoch"] = state.Epoch, ["batch_in_epoch"] = state.BatchInEpoch,
            ["optimizer_step"] = optimizer.Step, ["dropout_seed"] = model.Random.Seed.ToString(CultureInfo.InvariantCulture),
            ["dropout_position"] = state.DropoutPosition.ToString(CultureInfo.InvariantCulture),
            ["best_metric"] = state.BestMetric, ["best_step"] = state.BestStep, ["evaluations_without_gain"] = state.EvaluationsWithoutGain,
            ["seed"] = Options.Seed, ["batch_size"] = Options.BatchSize,
            // The schedule is a function of the optimiser step; its settings must not change on resume.
            ["scheduler"] = ScheduleJson(schedule),
            ["log_history"] = state.History.DeepClone(),
        };
        AtomicFile.WriteAllText(Path.Combine(temp, "trainer_state.json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        if (Directory.Exists(final)) Directory.Delete(final, true);
        Directory.Move(temp, final);
        // Keep only the newest checkpoint.
        foreach (var old in Directory.GetDirectories(directory, "checkpoint-*"))
            if (old != final && CheckpointStep(old) is long n && n < state.Step) Directory.Delete(old, true);
    }

    private static long? CheckpointStep(string path) =>
        long.TryParse(Path.GetFileName(path)["checkpoint-".Length..], NumberStyles.None, CultureInfo.InvariantCulture, out long n) ? n : null;

    /// <summary>The newest complete checkpoint-N directory, if any.</summary>
    public static string? LatestCheckpoint(string directory) =>
        !Directory.Exists(directory) ? null : Directory.GetDirectories(directory, "checkpoint-*")
            .Where(d => CheckpointStep(d) is not null && File.Exists(Path.Combine(d, "trainer_state.json")))
            .OrderByDescending(d => CheckpointStep(d)).FirstOrDefault();

    private static JsonObject ScheduleJson(LearningRateSchedule s) => new()
    {
        ["kind"] = s.Kind, ["base_rate"] = s.BaseRate, ["warmup_steps"] = s.WarmupSteps, ["training_steps"] = s.TrainingSteps,
    };

    private State Restore(string checkpoint, TrainingModel<float> model, AdamW<float> optimizer, LearningRateSchedule schedule)
    {
        JsonNode json;
        try
        {
            json = JsonNode.Parse(File.ReadAllText(Path.Combine(checkpoint, "trainer_state.json")))!;
        }
        catch (JsonException e)
        {
            throw new NBertException($"{checkpoint}/trainer_state.json: {e.Message}", e);
        }
        if ((int)json["seed"]! != Options.Seed || (int)json["batch_size"]! != Options.BatchSize)
            throw new NBertException($"{checkpoint}: written with seed {json["seed"]} and batch size {json["batch_size"]}; resume with the same settings.");
        if (json["scheduler"] is { } saved && !JsonNode.DeepEquals(saved, ScheduleJson(schedule)))
            throw new NBertException($"{checkpoint}: written with the learning-rate schedule {saved.ToJsonString()}, not {ScheduleJson(schedule).ToJsonString()}; resume with the same steps, rate and warm-up.");
        var restored = TrainingModel<float>.From(BertPreTrainedModel.FromPretrained(checkpoint, _model.Architecture));
        restored.Values.CopyTo(model.Values, 0);
        using (var file = new SafeTensorsFile(Path.Combine(checkpoint, "optimizer.safetensors")))
            foreach (var s in model.Slots)
            {
                file.ReadFloat32("exp_avg." + s.CheckpointName).CopyTo(optimizer.FirstMoment, s.Offset);
                file.ReadFloat32("exp_avg_sq." + s.CheckpointName).CopyTo(optimizer.SecondMoment, s.Offset);
            }
        optimizer.Step = (long)json["optimizer_step"]!;
        model.Random.Position = ulong.Parse((string)json["dropout_position"]!, CultureInfo.InvariantCulture);
        return new State
        {
            Step = (long)json["global_step"]!, Epoch = (int)json["epoch"]!, BatchInEpoch = (int)json["batch_in_epoch"]!,
            DropoutPosition = model.Random.Position, BestMetric = (double?)json["best_metric"], BestStep = (long)json["best_step"]!,
            EvaluationsWithoutGain = (int)json["evaluations_without_gain"]!, History = json["log_history"]!.AsArray().DeepClone().AsArray(),
        };
    }
}
