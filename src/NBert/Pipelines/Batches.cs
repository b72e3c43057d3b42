using NBert.Modeling;
using NBert.Tokenization;

namespace NBert.Pipelines;

/// <summary>Runs a model over encodings in batches of similar lengths (sorted, so little padding), all cores per batch.</summary>
internal static class Batches
{
    /// <summary>Calls <paramref name="take"/> with each batch's rows (indices into <paramref name="encodings"/>), the
    /// padded encodings and the model's output.</summary>
    public static void Run(BertPreTrainedModel model, BertTokenizer tokenizer, IReadOnlyList<TokenEncoding> encodings, int batchSize,
        Action<int[], IReadOnlyList<TokenEncoding>, ModelOutput> take)
    {
        var order = Enumerable.Range(0, encodings.Count).OrderBy(i => encodings[i].Length).ToArray();
        for (int start = 0; start < order.Length; start += batchSize)
        {
            var rows = order.AsSpan(start, Math.Min(batchSize, order.Length - start)).ToArray();
            var padded = tokenizer.Pad(rows.Select(i => encodings[i]).ToArray(), new EncodeOptions { Padding = PaddingStrategy.Longest });
            take(rows, padded, model.Forward(ModelInputs.FromEncodings(padded)));
        }
    }

    /// <summary>Softmax of a row of float32 logits as numpy computes it in the pipelines: exp(x - max) / sum.</summary>
    public static float[] Softmax(ReadOnlySpan<float> logits)
    {
        var p = logits.ToArray();
        System.Numerics.Tensors.TensorPrimitives.SoftMax(logits, p);
        return p;
    }
}
