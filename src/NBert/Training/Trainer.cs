using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using NBert.IO;
using NBert.Modeling;
using NBert.Tokenization;

namespace NBert.Training;

/// <summary>The trainer's settings, with transformers' TrainingArguments defaults where it has them.</summary>
public record TrainerOptions
{
    /// <summary>Passes over the training data (<c>num_train_epochs</c>).</summary>
    public int Epochs { get; init; } = 3;
    /// <summary>Optimiser steps to take; when set, it overrides <see cref="Epochs"/>.</summary>
    public long? MaxSteps { get; init; }
    /// <summary>Examples per micro-batch, one forward and backward pass (<c>per_device_train_batch_size</c>): an optimiser
    /// step takes <see cref="BatchSize"/> × <see cref="GradientAccumulationSteps"/> examples (× the processes of a data-parallel run).</summary>
    public int BatchSize { get; init; } = 32;
    /// <summary>Micro-batches whose gradients are accumulated into one optimiser step (<c>gradient_accumulation_steps</c>):
    /// each micro-batch's loss is divided by their number, and steps, the schedule, logging, evaluation and checkpoints
    /// count optimiser steps.</summary>
    public int GradientAccumulationSteps { get; init; } = 1;
    /// <summary>The peak learning rate, reached after warm-up (<c>learning_rate</c>).</summary>
    public double LearningRate { get; init; } = 5e-5;
    /// <summary>Warm-up as a fraction of all steps (ignored when <see cref="WarmupSteps"/> is set).</summary>
    public double WarmupRatio { get; init; }
    /// <summary>Warm-up in steps; overrides <see cref="WarmupRatio"/>.</summary>
    public int? WarmupSteps { get; init; }
    /// <summary>How the learning rate changes after warm-up (<c>lr_scheduler_type</c>).</summary>
    public SchedulerType Scheduler { get; init; } = SchedulerType.Linear;
    /// <summary>AdamW's betas, epsilon and weight decay.</summary>
    public AdamWOptions AdamW { get; init; } = new();
    /// <summary>Clip the gradients' global norm to this (<c>max_grad_norm</c>); 0 turns clipping off.</summary>
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
    /// <summary>
    /// The processes of a data-parallel run (NBert.Distributed's MPI implementation under mpirun); null: this process
    /// alone. Each step then has <see cref="GradientAccumulationSteps"/> × world-size micro-batches, process r taking the
    /// r-th share of those one process would take; see <see cref="Trainer"/>.
    /// </summary>
    public IDataParallel? DataParallel { get; init; }
    /// <summary>
    /// Continue from the latest <c>checkpoint-N/</c> in the output directory (transformers' <c>resume_from_checkpoint</c>):
    /// the weights, AdamW's moments, the schedule, the data position and the dropout generator come from it, so the run ends
    /// with exactly the weights of one that was never stopped. The settings must be the run's own (seed, batch size,
    /// accumulation, schedule); a directory without a checkpoint is refused.
    /// </summary>
    public bool Resume { get; init; }
    /// <summary>
    /// Start afresh in an output directory that holds another run's checkpoints, metrics.jsonl or model, replacing them
    /// (transformers' <c>overwrite_output_dir</c>, <c>nbert --overwrite</c>). Without it (nor <see cref="Resume"/>) such a
    /// directory is refused, since a fresh run would delete the other run's checkpoints.
    /// </summary>
    public bool OverwriteOutputDirectory { get; init; }

    /// <summary>Refuses settings that cannot train, naming the setting as transformers' TrainingArguments does.</summary>
    public void Validate()
    {
        static void AtLeastOne(int? value, string name)
        {
            if (value is < 1) throw new ArgumentOutOfRangeException(name, $"{name} must be at least 1, not {value}.");
        }
        AtLeastOne(BatchSize, "per_device_train_batch_size");
        AtLeastOne(GradientAccumulationSteps, "gradient_accumulation_steps");
        if (MaxSteps is null) AtLeastOne(Epochs, "num_train_epochs");
        if (MaxSteps is < 1) throw new ArgumentOutOfRangeException("max_steps", $"max_steps must be at least 1, not {MaxSteps}.");
        if (!(double.IsFinite(LearningRate) && LearningRate > 0))
            throw new ArgumentOutOfRangeException("learning_rate", $"learning_rate must be a positive number, not {LearningRate}.");
        if (!(WarmupRatio is >= 0 and <= 1)) throw new ArgumentOutOfRangeException("warmup_ratio", $"warmup_ratio must be in [0, 1], not {WarmupRatio}.");
        if (WarmupSteps is < 0) throw new ArgumentOutOfRangeException("warmup_steps", $"warmup_steps must not be negative, not {WarmupSteps}.");
        if (!(MaxGradNorm >= 0 && !double.IsNaN(MaxGradNorm))) throw new ArgumentOutOfRangeException("max_grad_norm", $"max_grad_norm must be 0 (no clipping) or more, not {MaxGradNorm}.");
        AtLeastOne(EvalSteps, "eval_steps");
        AtLeastOne(SaveSteps, "save_steps");
        AtLeastOne(EarlyStoppingPatience, "early_stopping_patience");
        AtLeastOne(LogSteps, "logging_steps");
    }
}

/// <summary>Training stopped because the loss or the gradients stopped being numbers (NaN or infinity): the learning
/// rate is too high for the data, or clipping is off. What was logged before that step stays in metrics.jsonl.</summary>
public sealed class TrainingDivergedException(long step, double loss, double gradientNorm, string message) : NBertException(message)
{
    /// <summary>The step (1-based) whose loss or gradient norm was not finite.</summary>
    public long Step { get; } = step;
    /// <summary>That step's loss.</summary>
    public double Loss { get; } = loss;
    /// <summary>That step's gradient norm, before clipping.</summary>
    public double GradientNorm { get; } = gradientNorm;
}

/// <summary>Training stopped because its <see cref="CancellationToken"/> was cancelled. The message says where the run so
/// far is kept: <see cref="Checkpoint"/>, which a run with <see cref="TrainerOptions.Resume"/> continues from (null when
/// nothing was saved: no output directory, or cancelled before the first step).</summary>
public sealed class TrainingCanceledException(long step, string? checkpoint, string message, CancellationToken token)
    : OperationCanceledException(message, token)
{
    /// <summary>The optimiser steps taken before the run stopped.</summary>
    public long Step { get; } = step;
    /// <summary>The checkpoint that holds the run so far (rank 0 writes it in a data-parallel run); null when none was written.</summary>
    public string? Checkpoint { get; } = checkpoint;
}

/// <summary>An evaluation: metric values by name and which of them decides the best checkpoint.</summary>
public sealed record Evaluation(IReadOnlyDictionary<string, double> Metrics, string MainMetric, bool HigherIsBetter = true)
{
    /// <summary>The value of <see cref="MainMetric"/> (transformers' <c>metric_for_best_model</c>).</summary>
    /// <exception cref="KeyNotFoundException"><see cref="Metrics"/> has no such metric.</exception>
    public double Main => Metrics[MainMetric];

    /// <summary>Whether this evaluation beats a best main metric so far.</summary>
    public bool Beats(double? best) => best is not double b || (HigherIsBetter ? Main > b : Main < b);
}

/// <summary>What a <see cref="TrainerProgress"/> report is about.</summary>
public enum TrainerProgressKind
{
    /// <summary>Training resumed from a checkpoint.</summary>
    Resume,
    /// <summary>The mean training loss over the last logging steps.</summary>
    Train,
    /// <summary>An evaluation of the current weights.</summary>
    Evaluate,
    /// <summary>Training ended (all steps taken, or stopped early).</summary>
    Done,
}

/// <summary>What the trainer reports as it goes: the step, the loss, the rate, speed and time left, or an evaluation.</summary>
/// <param name="Kind">What this report is about.</param>
/// <param name="Step">Optimiser steps taken so far.</param>
/// <param name="TotalSteps">Optimiser steps the run takes.</param>
/// <param name="Epoch">Epochs done, with the fraction of the current one.</param>
/// <param name="Loss">The mean training loss since the last report (<see cref="TrainerProgressKind.Train"/>).</param>
/// <param name="LearningRate">The learning rate of the last step.</param>
/// <param name="TokensPerSecond">Training speed since the run (or the resumed run) started.</param>
/// <param name="Elapsed">Time since the run (or the resumed run) started.</param>
/// <param name="Remaining">Estimated time to the last step.</param>
/// <param name="Evaluation">The evaluation (<see cref="TrainerProgressKind.Evaluate"/>, and the last one at <see cref="TrainerProgressKind.Done"/>).</param>
/// <param name="Message">A sentence for people: resumed from where, stopped early why, the best result.</param>
public sealed record TrainerProgress(TrainerProgressKind Kind, long Step, long TotalSteps, double Epoch, double? Loss, double? LearningRate,
    double? TokensPerSecond, TimeSpan Elapsed, TimeSpan? Remaining, Evaluation? Evaluation, string? Message);

/// <summary>
/// Fine-tuning and pre-training loop: shuffled batches per epoch, <see cref="TrainingStep{T}"/> per batch,
/// evaluation with the task's metrics, the best model kept in the output directory, early stopping, and
/// resumable checkpoints. A checkpoint holds the model, AdamW's moments and step, the dropout generator's
/// position and the data position (epoch, batch), written to a temporary directory that is then renamed;
/// a resumed run therefore ends with exactly the weights of one that was never stopped. The data order of an
/// epoch and anything the batch function draws depend only on the seed, the epoch and the step.
/// Not thread-safe: run one <see cref="Train"/> at a time, and do not use the model elsewhere while it trains.
/// <para>
/// Data-parallel (<see cref="TrainerOptions.DataParallel"/>): rank 0's initial weights are broadcast; a step's micro-batches
/// are those one process with gradient_accumulation_steps × world size would take, rank r taking the r-th consecutive
/// share; each rank's gradients (each micro-batch's loss divided by the step's micro-batches) are summed over the ranks
/// before clipping and AdamW, so every rank takes the same step and the weights equal a single process's with that
/// accumulation. The logged loss is the mean over all the step's micro-batches. Dropout streams are seeded with seed +
/// rank and each rank's position is in the checkpoint. Only rank 0 writes (checkpoints, metrics.jsonl, the model) and
/// reports progress; rank 0 evaluates and broadcasts the result. Resuming needs the same world size. An exception on any
/// rank ends them all (<see cref="IDataParallel.Fail"/>), since the others would wait for it forever.
/// </para>
/// </summary>
public sealed class Trainer
{
    private readonly BertPreTrainedModel _model;
    private readonly BertTokenizer? _tokenizer;
    private readonly int _count;
    private readonly Func<IReadOnlyList<int>, long, TrainingBatch> _batch;
    private readonly Func<BertPreTrainedModel, Evaluation>? _evaluate;
    /// <summary>The settings of this run.</summary>
    public TrainerOptions Options { get; }
    private IProgress<TrainerProgress>? _progress;
    private bool _stoppedTogether;

    /// <param name="model">The model to train; its parameters are updated in place.</param>
    /// <param name="tokenizer">The tokenizer whose files are saved beside every saved model (null: none).</param>
    /// <param name="count">Training items.</param>
    /// <param name="batch">Builds the micro-batch of the given item indices; its second argument numbers the micro-batch in the run,
    /// step × <see cref="TrainerOptions.GradientAccumulationSteps"/> + its index in the step (0-based; the step itself without
    /// accumulation), so that what it draws (MLM masks) depends on the seed, the step and the micro-batch alone.</param>
    /// <param name="evaluate">Evaluates the model it is given, which holds the current weights (the model being trained,
    /// run on the inference path); null for no evaluation.</param>
    /// <param name="options">The run's settings.</param>
    /// <exception cref="ArgumentOutOfRangeException">A setting cannot train (see <see cref="TrainerOptions.Validate"/>).</exception>
    /// <exception cref="ArgumentException"><paramref name="count"/> is below 1: there is no training data.</exception>
    public Trainer(BertPreTrainedModel model, BertTokenizer? tokenizer, int count, Func<IReadOnlyList<int>, long, TrainingBatch> batch,
        Func<BertPreTrainedModel, Evaluation>? evaluate, TrainerOptions options)
    {
        options.Validate();
        if (count < 1) throw new ArgumentException("There is no training data.", nameof(count));
        (_model, _tokenizer, _count, _batch, _evaluate, Options) = (model, tokenizer, count, batch, evaluate, options);
    }

    private sealed class State
    {
        public long Step;
        public int Epoch, BatchInEpoch;
        /// <summary>Each rank's dropout generator position after the last step (gathered every step, so rank 0 can checkpoint them).</summary>
        public ulong[] DropoutPositions = [0];
        public double? BestMetric;
        public long BestStep;
        public int EvaluationsWithoutGain;
        public JsonArray History = [];
    }

    /// <summary>Micro-batches per pass over the data: items / <see cref="TrainerOptions.BatchSize"/>, rounded up (the last
    /// may be smaller, as transformers' default <c>dataloader_drop_last=False</c>).</summary>
    private int MicroBatchesPerEpoch => MicroBatchesPerEpochOf(_count, Options);
    private static int MicroBatchesPerEpochOf(int count, TrainerOptions o) => (count + o.BatchSize - 1) / o.BatchSize;
    /// <summary>Micro-batches per optimiser step, over all processes: <see cref="TrainerOptions.GradientAccumulationSteps"/> × world size.</summary>
    private int MicroBatchesPerStep => MicroBatchesPerStepOf(Options);
    private static int MicroBatchesPerStepOf(TrainerOptions o) => o.GradientAccumulationSteps * (o.DataParallel?.WorldSize ?? 1);
    private int WorldSize => Options.DataParallel?.WorldSize ?? 1;
    private int Rank => Options.DataParallel?.Rank ?? 0;
    /// <summary>Optimiser steps per pass over the data: micro-batches (items / <see cref="TrainerOptions.BatchSize"/>, rounded
    /// up) / (<see cref="TrainerOptions.GradientAccumulationSteps"/> × data-parallel processes), rounded up; the last step of an epoch may take fewer
    /// micro-batches, and the last micro-batch fewer items (transformers' default <c>dataloader_drop_last=False</c>).</summary>
    public int StepsPerEpoch => StepsPerEpochOf(_count, Options);
    private static int StepsPerEpochOf(int count, TrainerOptions o) => (MicroBatchesPerEpochOf(count, o) + MicroBatchesPerStepOf(o) - 1) / MicroBatchesPerStepOf(o);
    /// <summary>Optimiser steps of the whole run: <see cref="TrainerOptions.MaxSteps"/> when set, else epochs × <see cref="StepsPerEpoch"/>.
    /// The learning-rate schedule decays over these.</summary>
    public long TotalSteps => Options.MaxSteps ?? (long)Options.Epochs * StepsPerEpoch;

    /// <summary>The optimiser steps a run over <paramref name="count"/> training items with <paramref name="options"/> takes:
    /// a trainer's <see cref="TotalSteps"/>, for a runner to announce before it starts.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A setting cannot train (see <see cref="TrainerOptions.Validate"/>).</exception>
    /// <exception cref="ArgumentException"><paramref name="count"/> is below 1.</exception>
    public static long TotalStepsFor(int count, TrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (count < 1) throw new ArgumentException("There is no training data.", nameof(count));
        return options.MaxSteps ?? (long)options.Epochs * StepsPerEpochOf(count, options);
    }

    /// <summary>
    /// Trains the model in place. With an <paramref name="outputDirectory"/>, writes there the best model (or the last,
    /// without evaluation) with tokenizer files, <c>checkpoint-N/</c> to resume from, <c>metrics.jsonl</c> and
    /// <c>loss.svg</c>; with <paramref name="resume"/>, continues from the latest checkpoint there. A fresh run into a
    /// directory that holds another run's checkpoints, metrics.jsonl or model is refused unless
    /// <see cref="TrainerOptions.OverwriteOutputDirectory"/> is set, when those checkpoints and metrics.jsonl are removed
    /// first. Without a directory, nothing is written. Either way the model ends with the best evaluation's weights (the last
    /// ones without evaluation). <paramref name="cancellationToken"/> is checked before every step: a cancelled run writes a
    /// checkpoint to resume from (when it has an output directory) and throws <see cref="TrainingCanceledException"/>, whose
    /// message names it.
    /// </summary>
    /// <param name="outputDirectory">Where the model, checkpoints and logs go; null: nothing is written.</param>
    /// <param name="resume">Continue from the latest checkpoint in <paramref name="outputDirectory"/>; null: <see cref="TrainerOptions.Resume"/>.</param>
    /// <param name="progress">Receives the loss, evaluations and the end, on the training thread.</param>
    /// <param name="cancellationToken">Stops the run before its next step.</param>
    /// <returns>The last evaluation, if any.</returns>
    /// <exception cref="NBertException">The output directory holds another run (see above), or is the one the tokenizer came
    /// from; resuming without a checkpoint there, or from one written with other settings.</exception>
    /// <exception cref="ArgumentException">Resuming without an output directory.</exception>
    public Evaluation? Train(string? outputDirectory = null, bool? resume = null, IProgress<TrainerProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        bool resuming = resume ?? Options.Resume;
        if (Options.DataParallel is not { WorldSize: > 1 } group) return TrainProcess(outputDirectory, resuming, progress, cancellationToken);
        try
        {
            return TrainProcess(outputDirectory, resuming, Rank == 0 ? progress : null, cancellationToken);
        }
        catch (OperationCanceledException) when (_stoppedTogether)
        {
            throw; // every rank stopped at the same step: nobody waits for anybody
        }
        catch (Exception e)
        {
            group.Fail(e); // the other ranks may be blocked in a collective this one will never join
            throw;
        }
    }

    private Evaluation? TrainProcess(string? outputDirectory, bool resume, IProgress<TrainerProgress>? progress, CancellationToken cancellationToken)
    {
        if (resume && outputDirectory is null) throw new ArgumentException("Resuming needs the output directory that holds the checkpoints.", nameof(resume));
        if (outputDirectory is not null && _tokenizer?.SourceDirectory is { } source && Checkpoint.IsSameDirectory(outputDirectory, source))
            throw new NBertException($"{outputDirectory} is the directory the model's tokenizer (and so, most likely, the model) came from: training would overwrite it; write elsewhere.");
        // Only rank 0 writes, so only it looks: if it refuses, the group ends with it.
        if (outputDirectory is not null && !resume && !Options.OverwriteOutputDirectory && Rank == 0 && PreviousRun(outputDirectory) is { Count: > 0 } found)
            throw new NBertException($"{outputDirectory} holds another run ({string.Join(", ", found)}), which a fresh run would replace: " +
                "resume it (TrainerOptions.Resume, nbert --resume), overwrite it (TrainerOptions.OverwriteOutputDirectory, nbert --overwrite), or write elsewhere.");
        if (outputDirectory is not null) Directory.CreateDirectory(outputDirectory);
        _progress = progress;
        _stoppedTogether = false;
        var o = Options;
        long total = TotalSteps;
        int warmup = o.WarmupSteps ?? (int)Math.Ceiling(o.WarmupRatio * total);
        var group = o.DataParallel;
        bool writes = Rank == 0;
        // Dropout differs per rank (seed + rank); the weights are rank 0's on every rank.
        var model = TrainingModel<float>.From(_model, unchecked(o.Seed + Rank));
        group?.Broadcast(System.Runtime.InteropServices.MemoryMarshal.AsBytes(model.Values.AsSpan()), 0);
        var step = new TrainingStep<float>(model, o.AdamW, LearningRateSchedule.Create(o.Scheduler, o.LearningRate, warmup, (int)Math.Min(total, int.MaxValue)))
        {
            MaxGradNorm = o.MaxGradNorm,
        };
        var state = new State();
        state.DropoutPositions = new ulong[WorldSize];
        // Only rank 0 writes; the others train and read checkpoints.
        string? metricsPath = outputDirectory is null || !writes ? null : Path.Combine(outputDirectory, "metrics.jsonl");
        string? saveDirectory = writes ? outputDirectory : null;
        // A checkpoint is written into .checkpoint-N.PID.tmp/ and renamed once complete: such a folder is a write that a
        // killed process left unfinished, never resumed from (LatestCheckpoint reads checkpoint-N/ alone), and goes now.
        if (saveDirectory is not null)
            foreach (string unfinished in Directory.EnumerateDirectories(saveDirectory, ".checkpoint-*.tmp").ToList()) Directory.Delete(unfinished, recursive: true);
        if (resume)
        {
            // transformers raises too: starting afresh would throw away metrics.jsonl and the steps already taken.
            string checkpoint = LatestCheckpoint(outputDirectory!)
                ?? throw new NBertException($"{outputDirectory}: no checkpoint to resume from (a checkpoint-N folder with trainer_state.json); train without resuming to start afresh.");
            state = Restore(checkpoint, model, step.Optimizer, step.Schedule, total);
            // The log as it was at the checkpoint: lines written after it, by the run that stopped, go.
            if (metricsPath is not null) AtomicFile.WriteAllText(metricsPath, string.Concat(state.History.Select(h => h!.ToJsonString() + "\n")));
            Report(TrainerProgressKind.Resume, state, total, null, null, null, TimeSpan.Zero, null, null, $"resumed from {checkpoint} at step {state.Step}");
        }
        else if (saveDirectory is not null)
        {
            // A fresh run: the log and the checkpoints of a run it replaces go, so that this run, if interrupted, is
            // never resumed from the other's (resuming takes the highest step, and the other's may be higher).
            if (File.Exists(metricsPath)) File.Delete(metricsPath);
            foreach (string old in Directory.EnumerateDirectories(saveDirectory, "checkpoint-*")) Directory.Delete(old, recursive: true);
        }

        var clock = Stopwatch.StartNew();
        long startStep = state.Step;
        double lossSum = 0;
        int lossCount = 0;
        long tokens = 0;
        int[] order = Permutation(o.Seed, state.Epoch, _count);
        Evaluation? last = null;
        StepResult? lastGood = null;
        bool stop = false, cancelled = false;
        while (state.Step < total && !stop)
        {
            // Data-parallel, the ranks stop together: at the step after any of them was cancelled (the flag travels with the step's sums).
            if (group is null ? cancellationToken.IsCancellationRequested : cancelled)
            {
                if (saveDirectory is not null && state.Step > 0) SaveCheckpoint(model, step.Optimizer, step.Schedule, state, saveDirectory);
                _stoppedTogether = group is not null;
                throw Cancelled(state.Step, outputDirectory, cancellationToken.IsCancellationRequested ? cancellationToken : new CancellationToken(true));
            }
            if (state.BatchInEpoch >= StepsPerEpoch)
            {
                state.Epoch++;
                state.BatchInEpoch = 0;
                order = Permutation(o.Seed, state.Epoch, _count);
            }
            // The step's micro-batches: consecutive slices of the epoch's order, each numbered by the step and its index
            // in the step (what the batch function draws from, e.g. MLM masks, depends on that number alone). Rank r takes
            // the r-th share of gradient_accumulation_steps of them (the last step of an epoch may leave a rank none).
            var batches = LocalMicroBatches(order, o.BatchSize, o.GradientAccumulationSteps, WorldSize, Rank, state.BatchInEpoch, state.Step, out int microBatches)
                .Select(m => _batch(m.Items, m.Number)).ToList();
            long stepTokens = batches.Sum(b => (long)b.Tokens);
            var r = step.Run(batches, microBatches, group is null ? null : local => Reduce(group, model, local, ref stepTokens, state, ref cancelled, cancellationToken));
            if (!double.IsFinite(r.Loss) || !double.IsFinite(r.GradientNorm))
                Diverged(r, state, lastGood, lossSum, lossCount, metricsPath, outputDirectory);
            lastGood = r;
            state.Step++;
            state.BatchInEpoch++;
            if (group is null) state.DropoutPositions[0] = model.Random.Position;
            lossSum += r.Loss;
            lossCount++;
            tokens += stepTokens;
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
                Report(TrainerProgressKind.Train, state, total, loss, r.LearningRate, tokens / elapsed.TotalSeconds, elapsed, remaining, null, null);
                lossSum = 0;
                lossCount = 0;
            }

            bool evaluateNow = _evaluate is not null && (o.EvalSteps is int every ? state.Step % every == 0 : state.BatchInEpoch == StepsPerEpoch);
            if (evaluateNow || (_evaluate is not null && state.Step == total && last is null))
            {
                // Evaluation runs the inference forward (no activations kept for backward, no gradients) on the
                // current weights, copied into the model being trained; data-parallel, on rank 0 alone.
                Evaluation EvaluateCurrent()
                {
                    // The activations kept for backward go while the model is evaluated (the next step allocates them
                    // again): the evaluation's packed weights and scratch would otherwise come on top of them.
                    model.ReleaseActivations();
                    GC.Collect();
                    model.CopyTo(_model);
                    var evaluation = _evaluate!(_model);
                    // The weights the evaluation packed for the inference forward are stale after the next step.
                    _model.WeightsChanged();
                    return evaluation;
                }
                last = group is null ? EvaluateCurrent() : EvaluateOnRankZero(group, EvaluateCurrent);
                var entry = new JsonObject { ["step"] = state.Step, ["epoch"] = Math.Round(epoch, 4) };
                foreach (var (k, v) in last.Metrics) entry["eval_" + k] = v;
                Log(metricsPath, state, entry);
                if (last.Beats(state.BestMetric))
                {
                    state.BestMetric = last.Main;
                    state.BestStep = state.Step;
                    state.EvaluationsWithoutGain = 0;
                    KeepBest(model, saveDirectory);
                }
                else if (++state.EvaluationsWithoutGain >= (o.EarlyStoppingPatience ?? int.MaxValue))
                    stop = true;
                Report(TrainerProgressKind.Evaluate, state, total, null, null, null, clock.Elapsed, remaining, last,
                    stop ? $"no better {last.MainMetric} in {state.EvaluationsWithoutGain} evaluations: stopping early (best {state.BestMetric:F4} at step {state.BestStep})" : null);
            }
            if (saveDirectory is not null && (evaluateNow || stop || (o.SaveSteps is int save && state.Step % save == 0)))
                SaveCheckpoint(model, step.Optimizer, step.Schedule, state, saveDirectory);
        }
        // What only training needed goes before the model takes its final weights (which may load a checkpoint) and
        // before the caller goes on: the optimiser's moments (2 x the parameters) and the activations kept for backward.
        step = null!;
        model.ReleaseActivations();
        CollectLargeGarbage();
        bool evaluated = _evaluate is not null && state.BestMetric is not null;
        if (group is not null && evaluated && _best is null && saveDirectory is null)
            model.CopyTo(_model); // a rank other than 0 whose best predates a resume: rank 0's best comes below
        else EndWithBest(model, saveDirectory, evaluated);
        if (group is not null && evaluated)
        {
            // Every rank ends with rank 0's best weights (the others kept the same in memory, unless it predates a resume).
            var best = TrainingModel<float>.From(_model);
            group.Broadcast(System.Runtime.InteropServices.MemoryMarshal.AsBytes(best.Values.AsSpan()), 0);
            if (!writes) best.CopyTo(_model);
        }
        if (metricsPath is not null && File.Exists(metricsPath)) LossCurve.Write(Path.Combine(outputDirectory!, "loss.svg"), metricsPath);
        model = null!;
        CollectLargeGarbage();
        Report(TrainerProgressKind.Done, state, total, null, null, null, clock.Elapsed, TimeSpan.Zero, last,
            last is null ? null : $"best {last.MainMetric} {state.BestMetric:F4} at step {state.BestStep}");
        return last;
    }

    /// <summary>A full, compacting collection that returns the freed memory to the system. Training's buffers (the
    /// optimiser's moments, the activations kept for backward, a loaded best checkpoint) are hundreds of MB on the
    /// large-object heap, which only a full collection frees: without one, what comes next (restoring the best weights,
    /// the caller loading or evaluating a model) adds to them. Aggressive, because only that mode gives the freed regions
    /// back to the system at once (a forced collection keeps them committed for reuse: quickstart then peaked 70 MB
    /// higher); it runs twice per run, after minutes of training.</summary>
    private static void CollectLargeGarbage() => GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);

    /// <summary>What a cancelled run says: where its checkpoint is and how to go on.</summary>
    private static TrainingCanceledException Cancelled(long step, string? outputDirectory, CancellationToken token)
    {
        string? checkpoint = outputDirectory is not null && step > 0 ? Path.Combine(outputDirectory, $"checkpoint-{step}") : null;
        string message = checkpoint is not null
            ? $"Training was cancelled after step {step}: {checkpoint} holds the run so far; the same run with TrainerOptions.Resume (nbert --resume) continues it."
            : step == 0 ? "Training was cancelled before its first step: there is nothing to resume."
            : $"Training was cancelled after step {step}, without an output directory: nothing was saved to resume from.";
        return new TrainingCanceledException(step, checkpoint, message, token);
    }

    /// <summary>What of another run <paramref name="directory"/> holds: its checkpoints, metrics.jsonl, a model.</summary>
    private static List<string> PreviousRun(string directory)
    {
        if (!Directory.Exists(directory)) return [];
        var found = Directory.GetDirectories(directory, "checkpoint-*").Select(Path.GetFileName).Order(StringComparer.Ordinal).Take(3).ToList();
        foreach (string name in (string[])["metrics.jsonl", "config.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"])
            if (File.Exists(Path.Combine(directory, name))) found.Add(name);
        return found!;
    }

    /// <summary>Logs the finite losses not logged yet, draws the loss curve so far, and stops with the step that diverged.</summary>
    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void Diverged(StepResult r, State state, StepResult? lastGood, double lossSum, int lossCount, string? metricsPath, string? outputDirectory)
    {
        if (lastGood is { } g && lossCount > 0)
            Log(metricsPath, state, new JsonObject
            {
                ["step"] = state.Step, ["epoch"] = Math.Round(state.Epoch + (double)state.BatchInEpoch / StepsPerEpoch, 4),
                ["loss"] = lossSum / lossCount, ["learning_rate"] = g.LearningRate, ["grad_norm"] = g.GradientNorm,
            });
        if (metricsPath is not null && File.Exists(metricsPath)) LossCurve.Write(Path.Combine(outputDirectory!, "loss.svg"), metricsPath);
        long at = state.Step + 1;
        throw new TrainingDivergedException(at, r.Loss, r.GradientNorm,
            $"Training diverged at step {at}: the loss is {r.Loss.ToString(CultureInfo.InvariantCulture)} and the gradient norm " +
            $"{r.GradientNorm.ToString(CultureInfo.InvariantCulture)}. Lower the learning rate (now {Options.LearningRate.ToString("G3", CultureInfo.InvariantCulture)}) " +
            $"or clip the gradients (max_grad_norm {Options.MaxGradNorm.ToString(CultureInfo.InvariantCulture)})" + (metricsPath is null ? "." : $"; {metricsPath} keeps what was logged before it."));
    }

    /// <summary>
    /// After backward, data-parallel: sums the gradients (<see cref="IDataParallel.AllreduceSum(Span{float})"/>) and, in one
    /// message of doubles, the step's loss totals, tokens, every rank's dropout position (as two exact 32-bit halves) and
    /// whether any rank was cancelled.
    /// </summary>
    private double[] Reduce(IDataParallel group, TrainingModel<float> model, double[] local, ref long tokens, State state, ref bool cancelled,
        CancellationToken cancellationToken)
    {
        group.AllreduceSum(model.Gradients);
        int world = group.WorldSize, rank = group.Rank;
        var sums = new double[local.Length + 2 + 2 * world];
        local.CopyTo(sums, 0);
        int at = local.Length;
        sums[at] = tokens;
        sums[at + 1] = cancellationToken.IsCancellationRequested ? 1 : 0;
        ulong position = model.Random.Position;
        sums[at + 2 + 2 * rank] = position >> 32;
        sums[at + 3 + 2 * rank] = position & 0xFFFFFFFF;
        group.AllreduceSum(sums);
        tokens = (long)sums[at];
        cancelled = sums[at + 1] > 0;
        for (int r = 0; r < world; r++) state.DropoutPositions[r] = ((ulong)sums[at + 2 + 2 * r] << 32) | (ulong)sums[at + 3 + 2 * r];
        return sums;
    }

    /// <summary>
    /// The micro-batches <paramref name="rank"/> takes at optimiser step <paramref name="step"/>, the
    /// <paramref name="batchInEpoch"/>-th of its epoch: the step's micro-batches are consecutive slices of
    /// <paramref name="batchSize"/> items of the epoch's <paramref name="order"/>, accumulation × world size of them (the last
    /// step of an epoch may have fewer, and leave a rank none), and rank r takes the r-th share of accumulation. Each is
    /// numbered step × micro-batches per step + its index in the step, what the batch function draws from.
    /// </summary>
    /// <param name="microBatchesInStep">The step's micro-batches over all ranks, which each loss is divided by.</param>
    internal static List<(int[] Items, long Number)> LocalMicroBatches(int[] order, int batchSize, int accumulation, int worldSize, int rank, int batchInEpoch,
        long step, out int microBatchesInStep)
    {
        int perStep = accumulation * worldSize, perEpoch = (order.Length + batchSize - 1) / batchSize;
        int firstMicroBatch = batchInEpoch * perStep;
        microBatchesInStep = Math.Min(perStep, perEpoch - firstMicroBatch);
        var mine = new List<(int[], long)>(accumulation);
        for (int j = rank * accumulation; j < Math.Min(microBatchesInStep, (rank + 1) * accumulation); j++)
        {
            int first = (firstMicroBatch + j) * batchSize;
            mine.Add((order.AsSpan(first, Math.Min(batchSize, order.Length - first)).ToArray(), step * perStep + j));
        }
        return mine;
    }

    /// <summary>Rank 0 evaluates (the weights are the same on every rank) and sends the result to the others, which need it
    /// for the best step and early stopping.</summary>
    private static Evaluation EvaluateOnRankZero(IDataParallel group, Func<Evaluation> evaluate)
    {
        // Binary, not JSON: a metric may be NaN, which JSON cannot carry.
        byte[] payload = [];
        if (group.Rank == 0)
        {
            var e = evaluate();
            using var buffer = new MemoryStream();
            using (var writer = new BinaryWriter(buffer))
            {
                writer.Write(e.MainMetric);
                writer.Write(e.HigherIsBetter);
                writer.Write(e.Metrics.Count);
                foreach (var (name, value) in e.Metrics)
                {
                    writer.Write(name);
                    writer.Write(value);
                }
            }
            payload = buffer.ToArray();
        }
        var length = BitConverter.GetBytes(payload.Length);
        group.Broadcast(length, 0);
        if (group.Rank != 0) payload = new byte[BitConverter.ToInt32(length)];
        group.Broadcast(payload, 0);
        using var reader = new BinaryReader(new MemoryStream(payload));
        string main = reader.ReadString();
        bool higher = reader.ReadBoolean();
        var metrics = new Dictionary<string, double>();
        for (int i = reader.ReadInt32(); i > 0; i--) metrics[reader.ReadString()] = reader.ReadDouble();
        return new Evaluation(metrics, main, higher);
    }

    private void Report(TrainerProgressKind kind, State s, long total, double? loss, double? lr, double? tokensPerSecond, TimeSpan elapsed, TimeSpan? remaining,
        Evaluation? evaluation, string? message)
    {
        var progress = new TrainerProgress(kind, s.Step, total, s.Epoch + (double)s.BatchInEpoch / StepsPerEpoch, loss, lr, tokensPerSecond,
            elapsed, remaining, evaluation, message);
        _progress?.Report(progress);
        NBertLogging.Info("NBert.Training", Describe(progress));
    }

    /// <summary>A progress report as one log line, as transformers' Trainer logs its loss and evaluation dictionaries.</summary>
    internal static string Describe(TrainerProgress p)
    {
        var line = new System.Text.StringBuilder(string.Create(CultureInfo.InvariantCulture, $"{p.Kind} step {p.Step}/{p.TotalSteps} epoch {p.Epoch:F2}"));
        if (p.Loss is double loss) line.Append(CultureInfo.InvariantCulture, $" loss {loss:F4}");
        if (p.LearningRate is double lr) line.Append(CultureInfo.InvariantCulture, $" learning_rate {lr:G3}");
        if (p.Evaluation is { } e)
            foreach (var (name, value) in e.Metrics.OrderBy(m => m.Key, StringComparer.Ordinal)) line.Append(CultureInfo.InvariantCulture, $" eval_{name} {value:F4}");
        if (p.Message is { } m) line.Append(": ").Append(m);
        return line.ToString();
    }

    /// <summary>Adds a line to the run's history (trainer_state.json's log_history) and, with an output directory, to metrics.jsonl.</summary>
    private static void Log(string? path, State state, JsonObject entry)
    {
        state.History.Add(entry.DeepClone());
        if (path is not null) File.AppendAllText(path, entry.ToJsonString() + "\n");
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

    // Without an output directory, the best evaluation's weights, kept in memory (each evaluation puts the current
    // weights into the model it evaluates).
    private float[]? _best;

    /// <summary>The current weights are the best so far: saved into the output directory, or kept in memory without one.</summary>
    private void KeepBest(TrainingModel<float> model, string? directory)
    {
        if (directory is not null) SaveModel(model, directory);
        else if (_evaluate is null) model.CopyTo(_model);
        else model.Values.CopyTo(_best ??= new float[model.Values.Length], 0);
    }

    /// <summary>At the end: the model takes the best weights (the last ones without evaluation).</summary>
    private void EndWithBest(TrainingModel<float> model, string? directory, bool evaluated)
    {
        if (!evaluated)
        {
            if (directory is not null) SaveModel(model, directory);
            else model.CopyTo(_model);
        }
        else if (directory is not null) RestoreBest(directory);
        else
        {
            _best!.CopyTo(model.Values, 0);
            model.CopyTo(_model);
            _best = null;
        }
    }

    /// <summary>The model takes the best weights back from <paramref name="directory"/>: each checkpoint saved since
    /// (and a resumed run's start) put other weights into it.</summary>
    private void RestoreBest(string directory)
    {
        using var best = BertPreTrainedModel.FromPretrained(directory, _model.Architecture);
        foreach (var (name, tensor) in _model.Parameters) best.Parameters[name].Data.CopyTo(tensor.Data, 0);
        _model.WeightsChanged();
    }

    private void SaveModel(TrainingModel<float> model, string directory)
    {
        model.CopyTo(_model);
        _model.SavePretrained(directory, _tokenizer);
    }

    private void SaveCheckpoint(TrainingModel<float> model, AdamW<float> optimizer, LearningRateSchedule schedule, State state, string directory)
    {
        string final = Path.Combine(directory, $"checkpoint-{state.Step}");
        string temp = Path.Combine(directory, $".checkpoint-{state.Step}.{Environment.ProcessId}.tmp");
        if (Directory.Exists(temp)) Directory.Delete(temp, true);
        SaveModel(model, temp);
        SafeTensorsWriter.Write(Path.Combine(temp, "optimizer.safetensors"), model.Slots.SelectMany(s => new[]
        {
            SafeTensor.Float32View("exp_avg." + s.CheckpointName, s.Shape, new ArraySegment<float>(optimizer.FirstMomentBuffer, s.Offset, s.Length)),
            SafeTensor.Float32View("exp_avg_sq." + s.CheckpointName, s.Shape, new ArraySegment<float>(optimizer.SecondMomentBuffer, s.Offset, s.Length)),
        }));
        var json = new JsonObject
        {
            ["global_step"] = state.Step, ["epoch"] = state.Epoch, ["batch_in_epoch"] = state.BatchInEpoch,
            ["optimizer_step"] = optimizer.Step, ["dropout_seed"] = model.Random.Seed.ToString(CultureInfo.InvariantCulture),
            ["dropout_position"] = state.DropoutPositions[0].ToString(CultureInfo.InvariantCulture),
            // Data-parallel: every rank's position (rank r's generator is seeded with seed + r), and how many ranks there were.
            ["world_size"] = WorldSize,
            ["dropout_positions"] = new JsonArray(state.DropoutPositions.Select(p => (JsonNode?)p.ToString(CultureInfo.InvariantCulture)).ToArray()),
            ["best_metric"] = state.BestMetric, ["best_step"] = state.BestStep, ["evaluations_without_gain"] = state.EvaluationsWithoutGain,
            ["seed"] = Options.Seed, ["batch_size"] = Options.BatchSize, ["gradient_accumulation_steps"] = Options.GradientAccumulationSteps,
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
        ["kind"] = s.Name, ["base_rate"] = s.BaseRate, ["warmup_steps"] = s.WarmupSteps, ["training_steps"] = s.TrainingSteps,
    };

    private State Restore(string checkpoint, TrainingModel<float> model, AdamW<float> optimizer, LearningRateSchedule schedule, long total)
    {
        string statePath = Path.Combine(checkpoint, "trainer_state.json");
        JsonObject json;
        try
        {
            json = JsonNode.Parse(File.ReadAllText(statePath)) as JsonObject ?? throw new NBertException($"{statePath}: not a JSON object.");
        }
        catch (JsonException e)
        {
            throw new NBertException($"{statePath}: not valid JSON ({NBertException.Quote(e.Message, 160)}).", e);
        }
        long Integer(string field, long min, long max)
        {
            long n;
            if (json[field] is JsonValue v && v.TryGetValue(out long whole)) n = whole;
            else if (json[field] is JsonValue w && w.TryGetValue(out double d) && d == Math.Floor(d) && Math.Abs(d) < 9e18) n = (long)d;
            else throw new NBertException($"{statePath}: \"{field}\" must be an integer, not {json[field]?.ToJsonString() ?? "missing"}.");
            if (n < min || n > max) throw new NBertException($"{statePath}: \"{field}\" is {n}, outside {min}..{max}.");
            return n;
        }
        ulong Unsigned(string field) => json[field] is JsonValue v && v.TryGetValue(out string? text) && ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out ulong u) ? u
            : throw new NBertException($"{statePath}: \"{field}\" must be a whole number in a string, not {json[field]?.ToJsonString() ?? "missing"}.");

        long seed = Integer("seed", int.MinValue, int.MaxValue), batchSize = Integer("batch_size", 1, int.MaxValue);
        if (seed != Options.Seed || batchSize != Options.BatchSize)
            throw new NBertException($"{checkpoint}: written with seed {seed} and batch size {batchSize}; resume with the same settings.");
        // Checkpoints from before gradient accumulation have no such field: they took one micro-batch per step.
        long accumulation = json["gradient_accumulation_steps"] is null ? 1 : Integer("gradient_accumulation_steps", 1, int.MaxValue);
        if (accumulation != Options.GradientAccumulationSteps)
            throw new NBertException($"{checkpoint}: written with gradient_accumulation_steps {accumulation}, not {Options.GradientAccumulationSteps}; resume with the same settings.");
        if (json["scheduler"] is { } saved && !JsonNode.DeepEquals(saved, ScheduleJson(schedule)))
            throw new NBertException($"{checkpoint}: written with the learning-rate schedule {saved.ToJsonString()}, not {ScheduleJson(schedule).ToJsonString()}; resume with the same steps, rate and warm-up.");
        long globalStep = Integer("global_step", 0, total);
        var state = new State
        {
            Step = globalStep,
            Epoch = (int)Integer("epoch", 0, int.MaxValue),
            BatchInEpoch = (int)Integer("batch_in_epoch", 0, StepsPerEpoch),
            BestStep = Integer("best_step", 0, globalStep),
            EvaluationsWithoutGain = (int)Integer("evaluations_without_gain", 0, int.MaxValue),
            BestMetric = json["best_metric"] switch
            {
                null => null,
                JsonValue v when v.TryGetValue(out double d) && double.IsFinite(d) => d,
                var other => throw new NBertException($"{statePath}: \"best_metric\" must be a number or null, not {other.ToJsonString()}."),
            },
            History = json["log_history"] is JsonArray history && history.All(h => h is JsonObject) ? history.DeepClone().AsArray()
                : throw new NBertException($"{statePath}: \"log_history\" must be a list of objects, not {json["log_history"]?.ToJsonString() ?? "missing"}."),
        };
        long optimizerStep = Integer("optimizer_step", 0, globalStep);
        // Checkpoints from before data-parallel training have neither field: one process.
        long worldSize = json["world_size"] is null ? 1 : Integer("world_size", 1, int.MaxValue);
        if (worldSize != WorldSize)
            throw new NBertException($"{checkpoint}: written by a run of {worldSize} process{(worldSize == 1 ? "" : "es")}, not {WorldSize}: resume with the same number " +
                $"(mpirun -np {worldSize}{(worldSize == 1 ? ", or without mpirun" : "")}); the data each process reads and the dropout streams depend on it.");
        ulong dropoutPosition = Unsigned("dropout_position");
        var positions = new ulong[WorldSize];
        if (json["dropout_positions"] is null) positions[0] = dropoutPosition;
        else if (json["dropout_positions"] is JsonArray savedPositions && savedPositions.Count == WorldSize)
            for (int r = 0; r < WorldSize; r++)
                positions[r] = savedPositions[r] is JsonValue v && v.TryGetValue(out string? text) && ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out ulong u) ? u
                    : throw new NBertException($"{statePath}: \"dropout_positions\"[{r}] must be a whole number in a string, not {savedPositions[r]?.ToJsonString() ?? "null"}.");
        else throw new NBertException($"{statePath}: \"dropout_positions\" must be a list of {WorldSize} whole numbers in strings, not {json["dropout_positions"]!.ToJsonString()}.");

        BertPreTrainedModel weights;
        try
        {
            weights = BertPreTrainedModel.FromPretrained(checkpoint, _model.Architecture);
        }
        catch (ArgumentException e)
        {
            throw new NBertException($"{checkpoint}: its weights do not fit this model ({e.Message}).", e);
        }
        if (weights.LoadReport is { Initialized.Count: > 0 } report)
            throw new NBertException($"{checkpoint}: its weights lack {string.Join(", ", report.Initialized.Take(5))}.");
        foreach (var slot in model.Slots)
            if (!weights.Parameters.TryGetValue(slot.Name, out var tensor) || tensor.Length != slot.Length)
                throw new NBertException($"{checkpoint}: its model has no parameter '{slot.CheckpointName}' of {slot.Length:N0} values.");
        string optimizerPath = Path.Combine(checkpoint, "optimizer.safetensors");
        using (var file = new SafeTensorsFile(optimizerPath))
            foreach (var slot in model.Slots)
                foreach (var (name, target) in new[] { ("exp_avg." + slot.CheckpointName, optimizer.FirstMoment), ("exp_avg_sq." + slot.CheckpointName, optimizer.SecondMoment) })
                {
                    if (!file.Contains(name)) throw new NBertException($"{optimizerPath}: no tensor '{name}'.");
                    var info = file.Info(name);
                    if (!info.Shape.SequenceEqual(slot.Shape))
                        throw new NBertException($"{optimizerPath}: '{name}' has shape [{string.Join(", ", info.Shape)}], not [{string.Join(", ", slot.Shape)}].");
                    file.ReadFloat32(name).CopyTo(target, slot.Offset);
                }
        foreach (var slot in model.Slots) weights.Parameters[slot.Name].Data.CopyTo(model.Values, slot.Offset);
        optimizer.Step = optimizerStep;
        model.Random.Position = positions[Rank];
        state.DropoutPositions = positions;
        return state;
    }
}
