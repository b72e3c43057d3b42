using NBert.Modeling;
using NBert.Tokenization;

namespace NBert.Training;

/// <summary>The fine-tuning tasks: sequence classification, named-entity recognition, extractive QA.</summary>
public enum FineTuningTaskKind { Classification, Ner, Qa }

/// <summary>
/// One fine-tuning task made ready: labels, encoded training and evaluation features, the head's
/// architecture and config, and the evaluation with the task's metrics. All data problems (a malformed
/// line, an unknown label, an answer not in its context) surface here, before any training.
/// </summary>
public sealed class FineTuningTask
{
    public FineTuningTaskKind Kind { get; }
    public BertArchitecture Architecture => ArchitectureOf(Kind);
    public IReadOnlyList<string> Labels { get; }
    public ClassificationProblem Problem { get; }
    public IReadOnlyList<Feature> Train { get; }
    public IReadOnlyList<Feature> Eval { get; }
    public int PadId { get; }
    private readonly IReadOnlyList<QuestionExample>? _evalQuestions;
    private readonly QuestionAnsweringData.Options _qa;
    private readonly bool _allowImpossible;

    private FineTuningTask(FineTuningTaskKind kind, IReadOnlyList<string> labels, ClassificationProblem problem, IReadOnlyList<Feature> train,
        IReadOnlyList<Feature> eval, int padId, IReadOnlyList<QuestionExample>? evalQuestions, QuestionAnsweringData.Options qa, bool allowImpossible)
    {
        (Kind, Labels, Problem, Train, Eval, PadId, _evalQuestions, _qa, _allowImpossible) = (kind, labels, problem, train, eval, padId, evalQuestions, qa, allowImpossible);
    }

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
        IReadOnlyList<string>? labels = null, int? maxLength = null, bool labelAllTokens = false, QuestionAnsweringData.Options? qaOptions = null)
    {
        bool configLabels = !modelConfig.Id2Label.Select((l, i) => l == $"LABEL_{i}").All(x => x)
            && modelConfig.Architectures.Count > 0 && modelConfig.Architectures[0] == ArchitectureOf(kind).ToString();
        int limit = Math.Min(maxLength ?? (kind == FineTuningTaskKind.Qa ? 384 : 128), modelConfig.MaxPositionEmbeddings);
        var qa = (qaOptions ?? new QuestionAnsweringData.Options()) with { MaxSeqLength = kind == FineTuningTaskKind.Qa ? limit : 384 };
        switch (kind)
        {
            case FineTuningTaskKind.Classification:
            {
                var train = trainPath is null ? [] : ClassificationData.Read(trainPath);
                var eval = evalPath is null ? [] : ClassificationData.Read(evalPath);
                // Evaluation only: the data must fit the model's problem, whatever its labels look like.
                var problem = trainPath is null ? ModelProblem(modelConfig) : modelConfig.ProblemType switch
                {
                    "regression" when configLabels => ClassificationProblem.Regression,
                    "multi_label_classification" when configLabels => ClassificationProblem.MultiLabel,
                    _ => ClassificationData.Problem(train.Concat(eval)),
                };
                var names = labels ?? (configLabels || trainPath is null ? modelConfig.Id2Label
                    : problem == ClassificationProblem.Regression ? ["LABEL_0"] : ClassificationData.LabelNames(train.Concat(eval)));
                return new FineTuningTask(kind, names, problem, ClassificationData.Encode(train, tokenizer, limit, names, problem),
                    ClassificationData.Encode(eval, tokenizer, limit, names, problem), tokenizer.PadTokenId, null, qa, false);
            }
            case FineTuningTaskKind.Ner:
            {
                var train = trainPath is null ? [] : TokenClassificationData.Read(trainPath, labels);
                var eval = evalPath is null ? [] : TokenClassificationData.Read(evalPath, labels ?? (configLabels ? modelConfig.Id2Label : null));
                var names = labels ?? (configLabels || trainPath is null ? modelConfig.Id2Label : TokenClassificationData.LabelNames(train.Concat(eval)));
                return new FineTuningTask(kind, names, default,
                    TokenClassificationData.Encode(train, tokenizer, limit, names, labelAllTokens).Select(x => x.Feature).ToList(),
                    TokenClassificationData.Encode(eval, tokenizer, limit, names).Select(x => x.Feature).ToList(), tokenizer.PadTokenId, null, qa, false);
            }
            default:
            {
                var train = trainPath is null ? [] : QuestionAnsweringData.Read(trainPath);
                var eval = evalPath is null ? [] : QuestionAnsweringData.Read(evalPath);
                // SQuAD v2.0 (some questions without answers): the empty answer is a possible prediction.
                bool impossible = train.Concat(eval).Any(q => q.Answers.Count == 0);
                return new FineTuningTask(kind, ["LABEL_0", "LABEL_1"], default, QuestionAnsweringData.Encode(train, tokenizer, qa),
                    QuestionAnsweringData.Encode(eval, tokenizer, qa), tokenizer.PadTokenId, eval, qa, impossible);
            }
        }
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

    /// <summary>Scores the model on the evaluation features.</summary>
    public Evaluation Evaluate(TrainingModel<float> model, int batchSize = 32) => Kind switch
    {
        FineTuningTaskKind.Classification => TaskEvaluation.Classification(model, Eval, Problem, batchSize, PadId),
        FineTuningTaskKind.Ner => TaskEvaluation.TokenClassification(model, Eval, Labels, batchSize, PadId),
        _ => TaskEvaluation.QuestionAnswering(model, _evalQuestions!, Eval, _qa, _allowImpossible, batchSize, PadId).Evaluation,
    };
}
