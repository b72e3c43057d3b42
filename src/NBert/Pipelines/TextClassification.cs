using System.Text.Json.Serialization;
using NBert.Modeling;
using NBert.Tokenization;

namespace NBert.Pipelines;

/// <summary>A label and its score, with transformers' field names.</summary>
public sealed record LabelScore([property: JsonPropertyName("label")] string Label, [property: JsonPropertyName("score")] float Score);

/// <summary>What turns a classifier's logits into scores (transformers' <c>function_to_apply</c>).</summary>
public enum ScoreFunction { Default, Softmax, Sigmoid, None }

/// <summary>
/// transformers' <c>text-classification</c> pipeline: logits of a text or pair, turned into scores by softmax
/// (several labels), sigmoid (one label, or multi-label problem_type) or nothing (regression), and the
/// <c>top_k</c> best labels (null: all, best first).
/// </summary>
public sealed class TextClassification(BertTokenizer tokenizer, BertPreTrainedModel model)
{
    public BertTokenizer Tokenizer { get; } = tokenizer;
    public BertPreTrainedModel Model { get; } = model.Architecture == BertArchitecture.BertForSequenceClassification ? model
        : throw new ArgumentException($"text-classification needs BertForSequenceClassification, not {model.Architecture}.");
    public int BatchSize { get; init; } = 32;

    public static TextClassification FromPretrained(string directory) =>
        new(BertTokenizer.FromPretrained(directory), BertPreTrainedModel.FromPretrained(directory, BertArchitecture.BertForSequenceClassification));

    /// <summary>The function transformers applies by default for this model's config.</summary>
    public ScoreFunction DefaultFunction => Model.Config.ProblemType switch
    {
        "regression" => ScoreFunction.None,
        "multi_label_classification" => ScoreFunction.Sigmoid,
        _ => Model.Config.NumLabels == 1 ? ScoreFunction.Sigmoid : ScoreFunction.Softmax,
    };

    public List<List<LabelScore>> Run(IReadOnlyList<(string Text, string? TextPair)> inputs, int? topK = 1, ScoreFunction function = ScoreFunction.Default)
    {
        if (topK is < 1) throw new ArgumentOutOfRangeException(nameof(topK), $"top_k must be at least 1, not {topK}.");
        var apply = function == ScoreFunction.Default ? DefaultFunction : function;
        var options = new EncodeOptions { MaxLength = Math.Min(Tokenizer.ModelMaxLength ?? 512, Model.Config.MaxPositionEmbeddings), Truncation = TruncationStrategy.LongestFirst };
        var encodings = Tokenizer.EncodeBatch(inputs, options);
        var results = new List<LabelScore>[inputs.Count];
        var labels = Model.Config.Id2Label;
        Batches.Run(Model, Tokenizer, encodings, BatchSize, (rows, _, output) =>
        {
            int n = labels.Count;
            for (int r = 0; r < rows.Length; r++)
            {
                var logits = output.Logits!.Data.AsSpan(r * n, n);
                float[] scores = apply switch
                {
                    ScoreFunction.Softmax => Batches.Softmax(logits),
                    ScoreFunction.Sigmoid => logits.ToArray().Select(x => 1f / (1f + MathF.Exp(-x))).ToArray(),
                    _ => logits.ToArray(),
                };
                results[rows[r]] = scores.Select((s, i) => new LabelScore(labels[i], s)).OrderByDescending(x => x.Score).Take(topK ?? n).ToList();
            }
        });
        return results.ToList();
    }
}

/// <summary>Next sentence prediction: the probability that B follows A (softmax of the NSP logits, index 0).</summary>
public sealed class NextSentence(BertTokenizer tokenizer, BertPreTrainedModel model)
{
    public BertTokenizer Tokenizer { get; } = tokenizer;
    public BertPreTrainedModel Model { get; } = model.Architecture is BertArchitecture.BertForNextSentencePrediction or BertArchitecture.BertForPreTraining ? model
        : throw new ArgumentException($"next-sentence needs BertForNextSentencePrediction or BertForPreTraining, not {model.Architecture}.");
    public int BatchSize { get; init; } = 32;

    public static NextSentence FromPretrained(string directory)
    {
        var config = BertConfig.Load(Path.Combine(directory, "config.json"));
        var arch = BertArchitectures.FromConfig(config) == BertArchitecture.BertForPreTraining ? BertArchitecture.BertForPreTraining : BertArchitecture.BertForNextSentencePrediction;
        return new NextSentence(BertTokenizer.FromPretrained(directory), BertPreTrainedModel.FromPretrained(directory, arch));
    }

    public List<float> Run(IReadOnlyList<(string A, string B)> pairs)
    {
        var options = new EncodeOptions { MaxLength = Math.Min(Tokenizer.ModelMaxLength ?? 512, Model.Config.MaxPositionEmbeddings), Truncation = TruncationStrategy.LongestFirst };
        var encodings = Tokenizer.EncodeBatch(pairs.Select(p => (p.A, (string?)p.B)).ToList(), options);
        var result = new float[pairs.Count];
        Batches.Run(Model, Tokenizer, encodings, BatchSize, (rows, _, output) =>
        {
            var logits = (output.SeqRelationshipLogits ?? output.Logits)!.Data;
            for (int r = 0; r < rows.Length; r++) result[rows[r]] = Batches.Softmax(logits.AsSpan(2 * r, 2))[0];
        });
        return result.ToList();
    }
}
