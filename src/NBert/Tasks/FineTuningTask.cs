using NBert.Modeling;
using NBert.Tokenization;
using NBert.Schema;

using NBert.Training;

namespace NBert.Tasks;

/// <summary>The fine-tuning tasks: sequence classification, named-entity recognition, extractive QA.</summary>
public enum FineTuningTaskKind
{
    /// <summary>Sequence classification (<c>BertForSequenceClassification</c>, run_glue): a text or pair to a class, classes or a number.</summary>
    Classification,
    /// <summary>Named-entity recognition (<c>BertForTokenClassification</c>, run_ner): a tag per word.</summary>
    Ner,
    /// <summary>Extractive question answering (<c>BertForQuestionAnswering</c>, run_qa): an answer span in a context.</summary>
    Qa,
}

/// <summary>
/// One fine-tuning task made ready: labels, encoded training and evaluation features, the head's
/// architecture and config, and the evaluation with the task's metrics. All data problems (a malformed
/// line, an unknown label, an answer not in its context) surface here, before any training.
/// </summary>
public sealed class FineTuningTask
{
    /// <summary>Which task this is.</summary>
    public FineTuningTaskKind Kind { get; }
    /// <summary>The head the task trains (see <see cref="ArchitectureOf"/>).</summary>
    public BertArchitecture Architecture => ArchitectureOf(Kind);
    /// <summary>The label names in id order, the head's <c>id2label</c>; for QA the two placeholders LABEL_0 and LABEL_1.</summary>
    public IReadOnlyList<string> Labels { get; }
    /// <summary>Classification: single-label, multi-label or regression; <see cref="ClassificationProblem.SingleLabel"/> for the other tasks.</summary>
    public ClassificationProblem Problem { get; }
    /// <summary>The encoded training features (empty for evaluation only); a QA example can give several windows.</summary>
    public IReadOnlyList<Feature> Train { get; }
    /// <summary>The encoded evaluation features (empty without evaluation data).</summary>
    public IReadOnlyList<Feature> Eval { get; }
    /// <summary>The tokenizer's [PAD] id, which <see cref="Feature.Collate"/> pads batches with.</summary>
    public int PadId { get; }
    private readonly IReadOnlyList<QuestionExample>? _evalQuestions;
    private readonly QuestionAnsweringData.Options _qa;
    private readonly bool _allowImpossible;

    private FineTuningTask(FineTuningTaskKind kind, IReadOnlyList<string> labels, ClassificationProblem problem, IReadOnlyList<Feature> train,
        IReadOnlyList<Feature> eval, int padId, IReadOnlyList<QuestionExample>? evalQuestions, QuestionAnsweringData.Options qa, bool allowImpossible)
    {
        (Kind, Labels, Problem, Train, Eval, PadId, _evalQuestions, _qa, _allowImpossible) = (kind, labels, problem, train, eval, padId, evalQuestions, qa, allowImpossible);
    }

    /// <summary>A task by the command line's name for it: <c>classification</c>, <c>ner</c> or <c>qa</c> (lower case).</summary>
    /// <exception cref="ArgumentException">Any other name; the message lists the three.</exception>
    public static FineTuningTaskKind ParseKind(string task) => task switch
    {
        "classification" => FineTuningTaskKind.Classification,
        "ner" => FineTuningTaskKind.Ner,
        "qa" => FineTuningTaskKind.Qa,
        _ => throw new ArgumentException($"Unknown task '{task}': classification, ner or qa."),
    };

    /// <summary>
    /// Reads and encodes the data. Labels come from <paramref name="labels"/>, else from the model's config
    /// when it was trained for this task, else from the data (sorted names). <paramref name="trainPath"/> may be
    /// null (evaluation only).
    /// </summary>
    public static FineTuningTask Prepare(FineTuningTaskKind kind, BertTokenizer tokenizer, BertConfig modelConfig, string? trainPath, string? evalPath,
        IReadOnlyList<string>? labels = null, int? maxLength = null, bool labelAllTokens = false, QuestionAnsweringData.Options? qaOptions = null) => kind switch
    {
        FineTuningTaskKind.Classification => Classification(tokenizer, modelConfig, trainPath is null ? null : ClassificationData.Read(trainPath),
            evalPath is null ? [] : ClassificationData.Read(evalPath), labels, maxLength),
        FineTuningTaskKind.Ner => TokenClassification(tokenizer, modelConfig, trainPath is null ? null : TokenClassificationData.Read(trainPath, labels),
            evalPath is null ? [] : TokenClassificationData.Read(evalPath, labels ?? (TrainedFor(kind, modelConfig) ? modelConfig.Id2Label : null)),
            labels, maxLength, labelAllTokens),
        _ => QuestionAnswering(tokenizer, modelConfig, trainPath is null ? null : QuestionAnsweringData.Read(trainPath),
            evalPath is null ? [] : QuestionAnsweringData.Read(evalPath), maxLength, qaOptions),
    };

    /// <summary>Whether the config is of a model fine-tuned for this task (its architecture, with named labels).</summary>
    private static bool TrainedFor(FineTuningTaskKind kind, BertConfig config) =>
        !config.Id2Label.Select((l, i) => l == $"LABEL_{i}").All(x => x)
        && BertArchitectures.Names(config, ArchitectureOf(kind));

    private static int Limit(FineTuningTaskKind kind, BertConfig config, int? maxLength) =>
        Math.Min(maxLength ?? (kind == FineTuningTaskKind.Qa ? 384 : 128), config.MaxSequenceLength);

    /// <summary>Sequence classification from examples in memory; <paramref name="train"/> null means evaluation only
    /// (the data must then fit the model's problem and labels).</summary>
    public static FineTuningTask Classification(BertTokenizer tokenizer, BertConfig modelConfig, IReadOnlyList<ClassificationExample>? train,
        IReadOnlyList<ClassificationExample> eval, IReadOnlyList<string>? labels = null, int? maxLength = null)
    {
        bool configLabels = TrainedFor(FineTuningTaskKind.Classification, modelConfig);
        int limit = Limit(FineTuningTaskKind.Classification, modelConfig, maxLength);
        var all = (train ?? []).Concat(eval);
        // Evaluation only: the data must fit the model's problem, whatever its labels look like.
        var problem = train is null ? ModelProblem(modelConfig) : modelConfig.ProblemType switch
        {
            "regression" when configLabels => ClassificationProblem.Regression,
            "multi_label_classification" when configLabels => ClassificationProblem.MultiLabel,
            _ => ClassificationData.Problem(all),
        };
        // Labels come from the training data, as run_glue's label_list: one seen only in evaluation could never be predicted.
        var names = labels ?? (configLabels || train is null ? modelConfig.Id2Label
            : problem == ClassificationProblem.Regression ? ["LABEL_0"] : ClassificationData.LabelNames(train));
        if (train is { Count: > 0 } && problem == ClassificationProblem.SingleLabel && labels is null && !configLabels && names.Count == 1)
            NBertWarnings.Raise($"The training data has only one label ('{NBertException.Quote(names[0])}'): the model can only learn to predict it.");
        return new FineTuningTask(FineTuningTaskKind.Classification, names, problem, ClassificationData.Encode(train ?? [], tokenizer, limit, names, problem),
            ClassificationData.Encode(eval, tokenizer, limit, names, problem), tokenizer.PadTokenId, null, new QuestionAnsweringData.Options(), false);
    }

    /// <summary>Token classification (NER) from tagged sentences in memory; <paramref name="train"/> null means evaluation only.</summary>
    public static FineTuningTask TokenClassification(BertTokenizer tokenizer, BertConfig modelConfig, IReadOnlyList<TaggedSentence>? train,
        IReadOnlyList<TaggedSentence> eval, IReadOnlyList<string>? labels = null, int? maxLength = null, bool labelAllTokens = false)
    {
        int limit = Limit(FineTuningTaskKind.Ner, modelConfig, maxLength);
        var names = labels ?? (TrainedFor(FineTuningTaskKind.Ner, modelConfig) || train is null ? modelConfig.Id2Label
            : TokenClassificationData.LabelNames(train));
        return new FineTuningTask(FineTuningTaskKind.Ner, names, default,
            TokenClassificationData.Encode(train ?? [], tokenizer, limit, names, labelAllTokens).Select(x => x.Feature).ToList(),
            TokenClassificationData.Encode(eval, tokenizer, limit, names).Select(x => x.Feature).ToList(), tokenizer.PadTokenId, null,
            new QuestionAnsweringData.Options(), false);
    }

    /// <summary>Extractive QA from questions in memory; <paramref name="train"/> null means evaluation only.</summary>
    public static FineTuningTask QuestionAnswering(BertTokenizer tokenizer, BertConfig modelConfig, IReadOnlyList<QuestionExample>? train,
        IReadOnlyList<QuestionExample> eval, int? maxLength = null, QuestionAnsweringData.Options? qaOptions = null)
    {
        var qa = (qaOptions ?? new QuestionAnsweringData.Options()) with { MaxSeqLength = Limit(FineTuningTaskKind.Qa, modelConfig, maxLength) };
        // SQuAD v2.0 (some questions without answers): the empty answer is a possible prediction.
        bool impossible = (train ?? []).Concat(eval).Any(q => q.Answers.Count == 0);
        return new FineTuningTask(FineTuningTaskKind.Qa, ["LABEL_0", "LABEL_1"], default, QuestionAnsweringData.Encode(train ?? [], tokenizer, qa),
            QuestionAnsweringData.Encode(eval, tokenizer, qa), tokenizer.PadTokenId, eval, qa, impossible);
    }

    /// <summary>The problem a classification model was trained for: its problem_type, else regression for one label
    /// and single-label classification for more, as transformers infers it.</summary>
    public static ClassificationProblem ModelProblem(BertConfig config) => config.ProblemType switch
    {
        "regression" => ClassificationProblem.Regression,
        "multi_label_classification" => ClassificationProblem.MultiLabel,
        "single_label_classification" => ClassificationProblem.SingleLabel,
        _ => config.NumLabels == 1 ? ClassificationProblem.Regression : ClassificationProblem.SingleLabel,
    };

    /// <summary>The head a task trains: <c>BertForSequenceClassification</c>, <c>BertForTokenClassification</c> or
    /// <c>BertForQuestionAnswering</c>.</summary>
    public static BertArchitecture ArchitectureOf(FineTuningTaskKind kind) => kind switch
    {
        FineTuningTaskKind.Classification => BertArchitecture.BertForSequenceClassification,
        FineTuningTaskKind.Ner => BertArchitecture.BertForTokenClassification,
        _ => BertArchitecture.BertForQuestionAnswering,
    };

    /// <summary>The model's config for this task: labels, problem type and architecture.</summary>
    public BertConfig Configure(BertConfig config) => config with
    {
        Id2Label = Kind == FineTuningTaskKind.Qa ? config.Id2Label : Labels.ToArray(),
        ProblemType = Kind != FineTuningTaskKind.Classification ? config.ProblemType : Problem switch
        {
            ClassificationProblem.Regression => "regression",
            ClassificationProblem.MultiLabel => "multi_label_classification",
            _ => "single_label_classification",
        },
        Architectures = [Architecture.ToString()],
    };

    /// <summary>A batch of training features.</summary>
    public TrainingBatch Batch(IReadOnlyList<int> indices) => Feature.Collate(indices.Select(i => Train[i]).ToList(), PadId);

    /// <summary>Scores the model on the evaluation features, <paramref name="batchSize"/> at a time; <paramref name="progress"/>
    /// hears how many of the <see cref="Eval"/> features are done after each batch.</summary>
    public Evaluation Evaluate(BertPreTrainedModel model, int batchSize = 32, IProgress<int>? progress = null) => Kind switch
    {
        FineTuningTaskKind.Classification => TaskEvaluation.Classification(model, Eval, Problem, batchSize, PadId, progress),
        FineTuningTaskKind.Ner => TaskEvaluation.TokenClassification(model, Eval, Labels, batchSize, PadId, progress),
        _ => TaskEvaluation.QuestionAnswering(model, _evalQuestions!, Eval, _qa, _allowImpossible, batchSize, PadId, progress).Evaluation,
    };
}
