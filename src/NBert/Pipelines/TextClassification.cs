using System.Text.Json.Serialization;
using NBert.Modeling;
using NBert.Tokenization;
using NBert.Schema;

namespace NBert.Pipelines;

/// <summary>A label and its score, with transformers' field names.</summary>
public sealed record LabelScore([property: JsonPropertyName("label")] string Label, [property: JsonPropertyName("score")] float Score);

/// <summary>What turns a classifier's logits into scores (transformers' <c>function_to_apply</c>).</summary>
public enum ScoreFunction
{
    /// <summary>What the model's config implies: sigmoid for one label or multi-label, none for regression, else softmax.</summary>
    Default,
    /// <summary>Probabilities over the labels that sum to 1.</summary>
    Softmax,
    /// <summary>A probability per label, each on its own.</summary>
    Sigmoid,
    /// <summary>The raw logits.</summary>
    None,
}

/// <summary>Options of <see cref="TextClassification"/>, with transformers' defaults.</summary>
public sealed record TextClassificationOptions
{
    /// <summary>How many labels to return, best first (<c>top_k</c>); null returns every label.</summary>
    public int? TopK { get; init; } = 1;
    /// <summary>How logits become scores (<c>function_to_apply</c>).</summary>
    public ScoreFunction Function { get; init; } = ScoreFunction.Default;
}

/// <summary>
/// transformers' <c>text-classification</c> pipeline: logits of a text or pair, turned into scores by softmax
/// (several labels), sigmoid (one label, or multi-label problem_type) or nothing (regression), and the
/// <c>top_k</c> best labels (null: all, best first).
/// </summary>
public sealed class TextClassification : Pipeline
{
    /// <summary>A pipeline over a tokenizer and a <see cref="BertForSequenceClassification"/>.</summary>
    public TextClassification(BertTokenizer tokenizer, BertPreTrainedModel model)
        : base(tokenizer, Require(model, "text-classification", BertArchitecture.BertForSequenceClassification)) { }

    /// <summary>Loads a sequence-classification model and its tokenizer by directory or name.</summary>
    public static TextClassification FromPretrained(string nameOrPath) => FromPretrained(Hub.ModelResolver.ResolveModel(nameOrPath));

    /// <summary>Loads a sequence-classification model and its tokenizer from files resolved already.</summary>
    public static TextClassification FromPretrained(Hub.ResolvedModel model) =>
        Load(model, BertArchitecture.BertForSequenceClassification, (t, m) => new TextClassification(t, m));

    /// <summary>The function transformers applies by default for this model's config.</summary>
    public ScoreFunction DefaultFunction => Model.Config.ProblemType switch
    {
        "regression" => ScoreFunction.None,
        "multi_label_classification" => ScoreFunction.Sigmoid,
        _ => Model.Config.NumLabels == 1 ? ScoreFunction.Sigmoid : ScoreFunction.Softmax,
    };

    /// <summary>The labels of one text, best first.</summary>
    public IReadOnlyList<LabelScore> Run(string text, TextClassificationOptions? options = null) => Single(() => Run([(text, null)], options)[0], text);

    /// <summary>The labels of one pair of texts, best first.</summary>
    public IReadOnlyList<LabelScore> Run(string text, string textPair, TextClassificationOptions? options = null) => SinglePair(() => Run([(text, textPair)], options)[0], text, textPair);

    /// <summary>The labels of each text, in the order given.</summary>
    // Preferred when a collection expression fits both list overloads (cls.Run([]) would otherwise be CS0121).
    [System.Runtime.CompilerServices.OverloadResolutionPriority(1)]
    public IReadOnlyList<IReadOnlyList<LabelScore>> Run(IReadOnlyList<string> texts, TextClassificationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(texts);
        return Run(texts.Select(t => (t, (string?)null)).ToArray(), options);
    }

    /// <summary>The labels of each text or pair (<c>TextPair</c> null for a single text), in the order given.</summary>
    public IReadOnlyList<IReadOnlyList<LabelScore>> Run(IReadOnlyList<(string Text, string? TextPair)> inputs, TextClassificationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var o = options ?? new TextClassificationOptions();
        if (o.TopK is < 1) throw new ArgumentOutOfRangeException(nameof(options), $"top_k must be at least 1, not {o.TopK}.");
        var apply = o.Function == ScoreFunction.Default ? DefaultFunction : o.Function;
        var encodings = Tokenizer.EncodeBatch(inputs, new EncodeOptions { MaxLength = MaxLength, Truncation = TruncationStrategy.LongestFirst });
        var results = new IReadOnlyList<LabelScore>[inputs.Count];
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
                results[rows[r]] = scores.Select((s, i) => new LabelScore(labels[i], s)).OrderByDescending(x => x.Score).Take(o.TopK ?? n).ToList();
            }
        });
        return results;
    }
}

/// <summary>Next sentence prediction's answer for one pair, with the JSON names of NBert's nsp output.</summary>
/// <param name="IsNext">Whether B follows A: the probability is at least 0.5.</param>
/// <param name="Score">The probability that B follows A.</param>
public sealed record NextSentencePrediction(
    [property: JsonPropertyName("is_next")] bool IsNext,
    [property: JsonPropertyName("score")] float Score);

/// <summary>Next sentence prediction: the probability that B follows A (softmax of the NSP logits, index 0).</summary>
public sealed class NextSentence : Pipeline
{
    /// <summary>A pipeline over a tokenizer and a <see cref="BertForNextSentencePrediction"/> or <see cref="BertForPreTraining"/>.</summary>
    public NextSentence(BertTokenizer tokenizer, BertPreTrainedModel model)
        : base(tokenizer, Require(model, "next-sentence", BertArchitecture.BertForNextSentencePrediction, BertArchitecture.BertForPreTraining)) { }

    /// <summary>Loads a pre-training or next-sentence model and its tokenizer by directory or name.</summary>
    public static NextSentence FromPretrained(string nameOrPath) => FromPretrained(Hub.ModelResolver.ResolveModel(nameOrPath));

    /// <summary>Loads a pre-training or next-sentence model and its tokenizer from files resolved already.</summary>
    public static NextSentence FromPretrained(Hub.ResolvedModel model) =>
        Load(model, BertArchitecture.BertForNextSentencePrediction, (t, m) => new NextSentence(t, m), orAsConfigured: BertArchitecture.BertForPreTraining);

    /// <summary>Whether <paramref name="b"/> follows <paramref name="a"/>, and how likely.</summary>
    public NextSentencePrediction Run(string a, string b) => SinglePair(() => Run([(a, b)])[0], a, b);

    /// <summary>For each pair, whether B follows A, in the order given.</summary>
    public IReadOnlyList<NextSentencePrediction> Run(IReadOnlyList<(string A, string B)> pairs)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        var encodings = Tokenizer.EncodeBatch(pairs.Select(p => (p.A, (string?)p.B)).ToList(), new EncodeOptions { MaxLength = MaxLength, Truncation = TruncationStrategy.LongestFirst });
        var result = new NextSentencePrediction[pairs.Count];
        Batches.Run(Model, Tokenizer, encodings, BatchSize, (rows, _, output) =>
        {
            var logits = (output.SeqRelationshipLogits ?? output.Logits)!.Data;
            for (int r = 0; r < rows.Length; r++)
            {
                float p = Batches.Softmax(logits.AsSpan(2 * r, 2))[0];
                result[rows[r]] = new NextSentencePrediction(p >= 0.5f, p);
            }
        });
        return result;
    }
}
