using NBert.Modeling;
using NBert.Tokenization;

namespace NBert.Pipelines;

/// <summary>Runs a model over encodings in batches of similar lengths (sorted, so little padding), all cores per batch.</summary>
internal static class Batches
{
    /// <summary>Calls <paramref name="take"/> with each batch's rows (indices into <paramref name="encodings"/>), the
    /// padded encodings and the model's output. Outputs that are not finite are an error (<see cref="BertPreTrainedModel.EnsureFinite"/>).
    /// <paramref name="cancellationToken"/> is checked before each batch (<see cref="OperationCanceledException"/>).</summary>
    public static void Run(BertPreTrainedModel model, BertTokenizer tokenizer, IReadOnlyList<TokenEncoding> encodings, int batchSize,
        Action<int[], IReadOnlyList<TokenEncoding>, ModelOutput> take, CancellationToken cancellationToken)
    {
        foreach (var (rows, padded) in Plan(tokenizer, encodings, batchSize))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var output = model.Forward(ModelInputs.FromEncodings(padded));
            foreach (var (name, tensor) in output.Named()) model.EnsureFinite(tensor.Data, name);
            take(rows, padded, output);
        }
    }

    /// <summary>The batches: rows sorted by length, each batch padded to its longest.</summary>
    public static IEnumerable<(int[] Rows, IReadOnlyList<TokenEncoding> Padded)> Plan(BertTokenizer tokenizer, IReadOnlyList<TokenEncoding> encodings, int batchSize)
    {
        var order = Enumerable.Range(0, encodings.Count).OrderBy(i => encodings[i].Length).ToArray();
        for (int start = 0; start < order.Length; start += batchSize)
        {
            var rows = order.AsSpan(start, Math.Min(batchSize, order.Length - start)).ToArray();
            yield return (rows, tokenizer.Pad(rows.Select(i => encodings[i]).ToArray(), new EncodeOptions { Padding = PaddingStrategy.Longest }));
        }
    }

    /// <summary>The <paramref name="k"/> candidates with the highest values, best first (the lower id first among
    /// equal values), in one pass that keeps a sorted list of k (a full sort when k is large).</summary>
    public static List<(int Id, float Value)> TopK(IEnumerable<int> candidates, ReadOnlySpan<float> values, int k)
    {
        if (k > 64)
        {
            var all = new List<(int Id, float Value)>();
            foreach (int id in candidates) all.Add((id, values[id]));
            // Stable: among equal values the lower id (the earlier candidate) stays first, as the one-pass list keeps it.
            return all.OrderByDescending(c => c.Value).Take(k).ToList();
        }
        var best = new List<(int Id, float Value)>(k + 1);
        foreach (int id in candidates)
        {
            float v = values[id];
            if (best.Count == k && !(v > best[^1].Value)) continue;
            int at = best.Count;
            while (at > 0 && v > best[at - 1].Value) at--;
            best.Insert(at, (id, v));
            if (best.Count > k) best.RemoveAt(k);
        }
        return best;
    }

    /// <summary>Softmax of a row of float32 logits as numpy computes it in the pipelines: exp(x - max) / sum.</summary>
    public static float[] Softmax(ReadOnlySpan<float> logits)
    {
        var p = logits.ToArray();
        NBert.Tensors.Kernels.Softmax(p); // the max subtracted, as numpy's pipelines do: TensorPrimitives.SoftMax overflows above 88
        return p;
    }
}
