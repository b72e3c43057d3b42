using System.Text.Json;
using NBert.Modeling;
using NBert.Schema;
using NBert.Tokenization;

using NBert.Training;

namespace NBert.Tasks;

/// <summary>Settings of a fine-tuning run: the trainer's, and how the data is encoded.</summary>
public sealed record FineTuningOptions : TrainerOptions
{
    /// <summary>Tokens per input (special tokens included): 128 by default, 384 for question answering; never more than
    /// the model's max_position_embeddings.</summary>
    public int? MaxLength { get; init; }
    /// <summary>Label names in id order; by default the names found in the data, sorted (NER: O first, then B-/I- by type).</summary>
    public IReadOnlyList<string>? Labels { get; init; }
    /// <summary>NER: label every piece of a word, not only the first (transformers' label_all_tokens).</summary>
    public bool LabelAllTokens { get; init; }
    /// <summary>Examples per forward pass when evaluating.</summary>
    public int EvalBatchSize { get; init; } = 32;
}

/// <summary>A fine-tuned model, the labels of its head (by id) and its last evaluation (null without evaluation data).</summary>
public sealed record FineTuned<TModel>(TModel Model, IReadOnlyList<string> Labels, Evaluation? Evaluation) where TModel : BertPreTrainedModel;

/// <summary>
/// Fine-tuning from data in memory, in one call per task, as transformers' Trainer is used for them: the model's encoder
/// gets the task's head (labels from the data), the examples are encoded, and the trainer runs, evaluating after each
/// epoch when evaluation data is given and keeping the best weights. Give <c>outputDirectory</c> to also write
/// checkpoints, metrics.jsonl and the best model there (with the tokenizer's files when it was loaded from a directory);
/// <see cref="TrainerOptions.Resume"/> continues the run that directory holds from its latest checkpoint, and a directory
/// holding another run is refused unless <see cref="TrainerOptions.OverwriteOutputDirectory"/> is set. <see cref="Run"/>
/// takes a task prepared from files (<see cref="FineTuningTask.Prepare"/>), which is what <c>nbert finetune</c> does.
/// </summary>
/// <remarks>
/// The model passed in is left as it was: the result holds a new one. Each method throws <see cref="ArgumentException"/>
/// for no training data, a null text or label, or words and tags of different counts (<see cref="ArgumentNullException"/> for
/// a null model, tokenizer or data; <see cref="ArgumentOutOfRangeException"/> for an option that cannot train, named as in
/// <c>TrainingArguments</c>);
/// <see cref="NBertException"/> for a tokenizer whose vocabulary is larger than the model's, for data that cannot be
/// encoded (an unknown label, an answer not in its context), for an
/// output directory that holds another run (or nothing to resume from, with <see cref="TrainerOptions.Resume"/>);
/// <see cref="TrainingDivergedException"/> when the loss stops being a number; and <see cref="TrainingCanceledException"/>
/// (an <see cref="OperationCanceledException"/> whose message names the checkpoint to resume from) when
/// <c>cancellationToken</c> is cancelled.
/// </remarks>
public static class FineTuning
{
    /// <summary>Sequence classification of single texts.</summary>
    public static FineTuned<BertForSequenceClassification> Classification(BertPreTrainedModel model, BertTokenizer tokenizer,
        IEnumerable<(string Text, string Label)> train, IEnumerable<(string Text, string Label)>? eval = null, FineTuningOptions? options = null,
        string? outputDirectory = null, IProgress<TrainerProgress>? progress = null, CancellationToken cancellationToken = default) =>
        Classification(model, tokenizer, train.Select(x => (x.Text, (string?)null, x.Label)), eval?.Select(x => (x.Text, (string?)null, x.Label)),
            options, outputDirectory, progress, cancellationToken);

    /// <summary>Sequence classification of texts or pairs (<c>TextPair</c> null for a single text).</summary>
    public static FineTuned<BertForSequenceClassification> Classification(BertPreTrainedModel model, BertTokenizer tokenizer,
        IEnumerable<(string Text, string? TextPair, string Label)> train, IEnumerable<(string Text, string? TextPair, string Label)>? eval = null,
        FineTuningOptions? options = null, string? outputDirectory = null, IProgress<TrainerProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        Check(model, tokenizer);
        var o = options ?? new FineTuningOptions();
        static List<ClassificationExample> Examples(IEnumerable<(string Text, string? TextPair, string Label)> items, string set) =>
            items.Select((x, i) => new ClassificationExample(x.Text ?? throw new ArgumentException($"{set}[{i}]: the text is null."), x.TextPair,
                JsonSerializer.SerializeToElement(x.Label ?? throw new ArgumentException($"{set}[{i}]: the label is null.")), $"{set}[{i}]")).ToList();
        var task = FineTuningTask.Classification(tokenizer, model.Config, Examples(train, "train"), eval is null ? [] : Examples(eval, "eval"), o.Labels, o.MaxLength);
        return Run<BertForSequenceClassification>(task, model, tokenizer, o, outputDirectory, progress, cancellationToken);
    }

    /// <summary>Token classification (NER) of pre-split words with a tag each (IOB2: B-PER, I-PER, O, ...).</summary>
    public static FineTuned<BertForTokenClassification> TokenClassification(BertPreTrainedModel model, BertTokenizer tokenizer,
        IEnumerable<(IReadOnlyList<string> Tokens, IReadOnlyList<string> Tags)> train, IEnumerable<(IReadOnlyList<string> Tokens, IReadOnlyList<string> Tags)>? eval = null,
        FineTuningOptions? options = null, string? outputDirectory = null, IProgress<TrainerProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        Check(model, tokenizer);
        var o = options ?? new FineTuningOptions();
        static List<TaggedSentence> Sentences(IEnumerable<(IReadOnlyList<string> Tokens, IReadOnlyList<string> Tags)> items, string set) =>
            items.Select((x, i) => x.Tokens.Count == x.Tags.Count ? new TaggedSentence(x.Tokens.ToArray(), x.Tags.ToArray(), $"{set}[{i}]")
                : throw new ArgumentException($"{set}[{i}]: {x.Tokens.Count} tokens but {x.Tags.Count} tags.")).ToList();
        var task = FineTuningTask.TokenClassification(tokenizer, model.Config, Sentences(train, "train"), eval is null ? [] : Sentences(eval, "eval"),
            o.Labels, o.MaxLength, o.LabelAllTokens);
        return Run<BertForTokenClassification>(task, model, tokenizer, o, outputDirectory, progress, cancellationToken);
    }

    /// <summary>Extractive question answering on SQuAD-like questions (no answers: unanswerable, as SQuAD v2.0).</summary>
    public static FineTuned<BertForQuestionAnswering> QuestionAnswering(BertPreTrainedModel model, BertTokenizer tokenizer,
        IEnumerable<QuestionExample> train, IEnumerable<QuestionExample>? eval = null, FineTuningOptions? options = null,
        string? outputDirectory = null, IProgress<TrainerProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        Check(model, tokenizer);
        var o = options ?? new FineTuningOptions();
        var task = FineTuningTask.QuestionAnswering(tokenizer, model.Config, train.ToList(), eval?.ToList() ?? [], o.MaxLength);
        return Run<BertForQuestionAnswering>(task, model, tokenizer, o, outputDirectory, progress, cancellationToken);
    }

    /// <summary>What can be refused before the data is encoded, which may take minutes.</summary>
    private static void Check(BertPreTrainedModel model, BertTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        model.EnsureTokenizerFits(tokenizer);
    }

    /// <summary>The model with the task's head. The head is new by design, and this run trains it: transformers'
    /// "newly initialized" warning would only alarm. Other warnings (checkpoint weights not used, NaN weights) are raised.</summary>
    internal static BertPreTrainedModel WithNewHead(BertPreTrainedModel model, BertArchitecture architecture, Func<BertConfig, BertConfig>? configure, int seed)
    {
        var warnings = new List<string>();
        BertPreTrainedModel head;
        using (NBertWarnings.Capture(warnings.Add)) head = model.WithArchitecture(architecture, configure, seed);
        var expected = new LoadReport(head.LoadReport?.Initialized ?? [], [], []).Warnings.ToHashSet();
        foreach (string warning in warnings.Where(w => !expected.Contains(w))) NBertWarnings.Raise(warning);
        return head;
    }

    private static FineTuned<TModel> Run<TModel>(FineTuningTask task, BertPreTrainedModel model, BertTokenizer tokenizer, FineTuningOptions o,
        string? outputDirectory, IProgress<TrainerProgress>? progress, CancellationToken cancellationToken) where TModel : BertPreTrainedModel
    {
        var result = Run(task, model, tokenizer, o, outputDirectory, progress, cancellationToken);
        return new FineTuned<TModel>((TModel)result.Model, result.Labels, result.Evaluation);
    }

    /// <summary>
    /// Fine-tunes <paramref name="model"/> for a task whose data is already encoded (<see cref="FineTuningTask.Prepare"/> reads
    /// it from files): the model gets the task's head (labels and problem type from the task; weights of a head it already
    /// has, of the same shape, are kept), and the trainer runs with <paramref name="options"/>, evaluating on the task's
    /// evaluation features (when there are any) with <see cref="FineTuningOptions.EvalBatchSize"/>. The options that say how
    /// data is encoded (<see cref="FineTuningOptions.MaxLength"/>, <see cref="FineTuningOptions.Labels"/>,
    /// <see cref="FineTuningOptions.LabelAllTokens"/>) were the task's to use and are ignored here. The one runner of every
    /// fine-tuning: the methods above and <c>nbert finetune</c> come here.
    /// </summary>
    /// <exception cref="ArgumentException">The task has no training features.</exception>
    public static FineTuned<BertPreTrainedModel> Run(FineTuningTask task, BertPreTrainedModel model, BertTokenizer tokenizer, FineTuningOptions? options = null,
        string? outputDirectory = null, IProgress<TrainerProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(task);
        Check(model, tokenizer);
        var o = options ?? new FineTuningOptions();
        o.Validate();
        if (o.EvalBatchSize < 1) throw new ArgumentOutOfRangeException("per_device_eval_batch_size", $"per_device_eval_batch_size must be at least 1, not {o.EvalBatchSize}.");
        if (task.Train.Count == 0) throw new ArgumentException("There is no training data.", nameof(task));
        var head = WithNewHead(model, task.Architecture, task.Configure, o.Seed);
        // The model given is not needed past this point: a caller that handed over its only reference (the CLI does)
        // lets its weights go while this trains the copy.
        model = null!;
        var trainer = new Trainer(head, tokenizer, task.Train.Count, (indices, _) => task.Batch(indices),
            task.Eval.Count == 0 ? null : m => task.Evaluate(m, o.EvalBatchSize), o);
        var evaluation = trainer.Train(outputDirectory, progress: progress, cancellationToken: cancellationToken);
        return new FineTuned<BertPreTrainedModel>(head, task.Labels, evaluation);
    }
}
