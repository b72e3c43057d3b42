using NBert.Tensors;
using NBert.Tokenization;

namespace NBert.Modeling;

/// <summary>A batch for a BERT model: ids [batch, sequence], optional token types and attention mask
/// (all ones when absent; token types all zeros), as transformers' <c>input_ids</c>,
/// <c>token_type_ids</c> and <c>attention_mask</c>.</summary>
public sealed record ModelInputs
{
    public int Batch { get; }
    public int SequenceLength { get; }
    public int[] InputIds { get; }
    public int[]? TokenTypeIds { get; }
    public int[]? AttentionMask { get; }

    public ModelInputs(int batch, int sequenceLength, int[] inputIds, int[]? tokenTypeIds = null, int[]? attentionMask = null)
    {
        if (batch <= 0 || sequenceLength <= 0) throw new ArgumentException($"A batch needs positive sizes, not [{batch}, {sequenceLength}].");
        long n = (long)batch * sequenceLength;
        void Check(int[]? a, string name)
        {
            if (a is not null && a.Length != n) throw new ArgumentException($"{name} has {a.Length} values, not batch x sequence = {n}.");
        }
        Check(inputIds ?? throw new ArgumentNullException(nameof(inputIds)), "input_ids");
        Check(tokenTypeIds, "token_type_ids");
        Check(attentionMask, "attention_mask");
        if (attentionMask is not null && attentionMask.Any(v => v is not (0 or 1)))
            throw new ArgumentException("attention_mask must hold only 0 and 1.");
        (Batch, SequenceLength, InputIds, TokenTypeIds, AttentionMask) = (batch, sequenceLength, inputIds, tokenTypeIds, attentionMask);
    }

    /// <summary>A batch from encodings of one length (pad them first).</summary>
    public static ModelInputs FromEncodings(IReadOnlyList<TokenEncoding> encodings)
    {
        if (encodings.Count == 0) throw new ArgumentException("No encodings.");
        int s = encodings[0].Length;
        if (encodings.Any(e => e.Length != s)) throw new ArgumentException("Encodings differ in length: pad them (PaddingStrategy.Longest).");
        return new ModelInputs(encodings.Count, s, encodings.SelectMany(e => e.InputIds).ToArray(),
            encodings.SelectMany(e => e.TokenTypeIds).ToArray(), encodings.SelectMany(e => e.AttentionMask).ToArray());
    }

    /// <summary>Row <paramref name="b"/> alone, as a batch of one.</summary>
    public ModelInputs Row(int b)
    {
        int s = SequenceLength;
        int[]? Slice(int[]? a) => a?.AsSpan(b * s, s).ToArray();
        return new ModelInputs(1, s, Slice(InputIds)!, Slice(TokenTypeIds), Slice(AttentionMask));
    }
}

/// <summary>A model's outputs, named as transformers names them; what a model does not compute is null.</summary>
public sealed record ModelOutput
{
    public FloatTensor? LastHiddenState { get; init; }
    /// <summary>tanh(dense([CLS] state)), [batch, hidden]; null for a <see cref="BertModel"/> without a pooling layer
    /// (<see cref="BertPreTrainedModel.HasPoolingLayer"/>) and for heads that do not use it.</summary>
    public FloatTensor? PoolerOutput { get; init; }
    /// <summary>Embedding output then each layer's output ([batch, sequence, hidden] each).</summary>
    public IReadOnlyList<FloatTensor>? HiddenStates { get; init; }
    /// <summary>Each layer's attention probabilities [batch, heads, sequence, sequence].</summary>
    public IReadOnlyList<FloatTensor>? Attentions { get; init; }
    public FloatTensor? PredictionLogits { get; init; }
    public FloatTensor? SeqRelationshipLogits { get; init; }
    public FloatTensor? Logits { get; init; }
    public FloatTensor? StartLogits { get; init; }
    public FloatTensor? EndLogits { get; init; }

    /// <summary>Every tensor with transformers' name (<c>hidden_states.0</c>, <c>attentions.1</c>, ...).</summary>
    public IEnumerable<(string Name, FloatTensor Tensor)> Named()
    {
        if (LastHiddenState is not null) yield return ("last_hidden_state", LastHiddenState);
        if (PoolerOutput is not null) yield return ("pooler_output", PoolerOutput);
        for (int i = 0; i < (HiddenStates?.Count ?? 0); i++) yield return ($"hidden_states.{i}", HiddenStates![i]);
        for (int i = 0; i < (Attentions?.Count ?? 0); i++) yield return ($"attentions.{i}", Attentions![i]);
        if (PredictionLogits is not null) yield return ("prediction_logits", PredictionLogits);
        if (SeqRelationshipLogits is not null) yield return ("seq_relationship_logits", SeqRelationshipLogits);
        if (Logits is not null) yield return ("logits", Logits);
        if (StartLogits is not null) yield return ("start_logits", StartLogits);
        if (EndLogits is not null) yield return ("end_logits", EndLogits);
    }
}
