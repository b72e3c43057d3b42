using System.Collections.Concurrent;
using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using NBert.Schema;
using NBert.Tensors;

namespace NBert.Modeling;

/// <summary>
/// How the one forward pass (<see cref="Encoder{T}"/>, <see cref="Heads{T}"/>) reaches a model's parameters: the values
/// of a slot, and a linear layer y = x · Wᵀ + b. Inference and training differ here only, in data: a loaded model's
/// weights packed once for the GEMM (<see cref="PackedWeights"/>), or a training model's flat buffer
/// (<see cref="FlatWeights{T}"/>).
/// </summary>
internal abstract class Weights<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>A parameter's values, row-major in its shape.</summary>
    public abstract ReadOnlySpan<T> Values(ParameterSlot slot);

    /// <summary>y[rows, out] = x[rows, in] · Wᵀ + b.</summary>
    public abstract void Linear(LinearParameters p, ReadOnlySpan<T> x, int rows, Span<T> y);

    /// <summary>sum = row <paramref name="index"/> of the embedding table <paramref name="table"/> + <paramref name="add"/>
    /// (a table may be stored in int8: the one place its rows are read).</summary>
    public virtual void AddEmbeddingRow(ParameterSlot table, int index, ReadOnlySpan<T> add, Span<T> sum)
    {
        int width = add.Length;
        TensorPrimitives.Add(Values(table).Slice(index * width, width), add, sum);
    }
}

/// <summary>
/// Training's parameters: one flat buffer in <see cref="ParameterLayout"/> order, which the optimiser updates in place
/// after every step. Weights are multiplied as they are, not packed once per step: the GEMM packs the panels it reads
/// on the fly, in the same tiles and order as a packed weight, so a float32 training forward gives the inference
/// forward's bits (packing ahead would copy all 22.7 M of MiniLM's values every step for the same arithmetic).
/// </summary>
internal sealed class FlatWeights<T>(T[] values) : Weights<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>All parameters, laid out as the <see cref="ParameterLayout"/>.</summary>
    public T[] Buffer => values;

    public override ReadOnlySpan<T> Values(ParameterSlot slot) => values.AsSpan(slot.Offset, slot.Length);

    /// <summary>A linear layer's whole weight [out, in] (stacked parts are adjacent in the layout).</summary>
    public ReadOnlySpan<T> Weight(LinearParameters p) => values.AsSpan(p.WeightOffset, p.Outputs * p.Inputs);

    /// <summary>A linear layer's whole bias [out].</summary>
    public ReadOnlySpan<T> Bias(LinearParameters p) => values.AsSpan(p.BiasOffset, p.Outputs);

    public override void Linear(LinearParameters p, ReadOnlySpan<T> x, int rows, Span<T> y)
    {
        if (typeof(T) == typeof(float))
            Sgemm.Multiply(rows, p.Outputs, p.Inputs, MemoryMarshal.Cast<T, float>(x), p.Inputs, MemoryMarshal.Cast<T, float>(Weight(p)), p.Inputs,
                MemoryMarshal.Cast<T, float>(y), p.Outputs, MemoryMarshal.Cast<T, float>(Bias(p)));
        else
            Ops.LinearForward(x, Weight(p), Bias(p), y, rows, p.Inputs, p.Outputs);
    }
}

/// <summary>
/// A loaded model's parameters by name, each linear layer's weight packed once for the GEMM on first use (query, key
/// and value stacked into one [3h, h] weight) with its bias added as tiles are stored. Safe across threads: concurrent
/// first uses may pack twice, and one copy is kept.
/// </summary>
internal sealed class PackedWeights(IReadOnlyDictionary<string, FloatTensor> parameters) : Weights<float>
{
    private readonly ConcurrentDictionary<string, (PackedWeight Weight, float[] Bias)> _packed = new(StringComparer.Ordinal);

    public override ReadOnlySpan<float> Values(ParameterSlot slot) => parameters[slot.Name].Data;

    public override void Linear(LinearParameters p, ReadOnlySpan<float> x, int rows, Span<float> y)
    {
        var (weight, bias) = _packed.GetOrAdd(p.Weights[0].Name, _ => Pack(p));
        Sgemm.Multiply(rows, x, p.Inputs, weight, y, p.Outputs, bias: bias);
    }

    private (PackedWeight, float[]) Pack(LinearParameters p)
    {
        var (weight, bias) = Concatenate(parameters, p);
        return (new PackedWeight(weight, p.Outputs, p.Inputs), bias);
    }

    /// <summary>A linear layer's weight [out, in] and bias [out]: the parameters' own arrays for a single part, the parts
    /// stacked in new arrays for query, key and value.</summary>
    internal static (float[] Weight, float[] Bias) Concatenate(IReadOnlyDictionary<string, FloatTensor> parameters, LinearParameters p)
    {
        if (p.Weights.Count == 1)
            return (parameters[p.Weights[0].Name].Data, parameters[p.Biases[0].Name].Data);
        var weight = new float[p.Outputs * p.Inputs];
        var bias = new float[p.Outputs];
        int w = 0, b = 0;
        foreach (var part in p.Weights)
        {
            parameters[part.Name].Data.CopyTo(weight, w);
            w += part.Length;
        }
        foreach (var part in p.Biases)
        {
            parameters[part.Name].Data.CopyTo(bias, b);
            b += part.Length;
        }
        return (weight, bias);
    }
}

/// <summary>
/// A loaded model's parameters for int8 inference: the linear layers of the encoder, the pooler and the masked-LM
/// transform quantized once (int8 per output channel, <see cref="Int8PackedWeight"/>) and run by <see cref="Int8Gemm"/>,
/// whose activations are quantized per row at run time; everything else through float32 (<see cref="PackedWeights"/>):
/// embeddings, LayerNorm, the attention products inside <see cref="Encoder{T}"/>, and the task heads' output layers
/// (classifier, question answering, next sentence, and the masked-LM decoder, which is tied to the word embeddings: the
/// float32 table stays for the embedding lookup anyway, so an int8 copy would add memory, and the decoder's 30,522
/// outputs rank tokens by small differences that a per-row activation scale would blur). Those heads hold a few
/// thousand values at most, or share the embeddings, so they weigh nothing in memory. The word-embedding table, half of
/// a small model's parameters, is stored in int8 too (one scale per token's row, dequantized as a row is looked up),
/// unless a masked-LM decoder is tied to it.
/// </summary>
internal sealed class Int8Weights : Weights<float>
{
    private readonly PackedWeights _float32;
    private readonly Dictionary<string, (Int8PackedWeight Weight, float[] Bias)> _int8 = new(StringComparer.Ordinal);
    private readonly (string Name, sbyte[] Values, float[] Scales, int Width)? _words;

    /// <summary>Quantizes the layers now (once), keeping no reference to their float32 weights, which
    /// <see cref="Kept"/> leaves out so that the caller can release them.</summary>
    public Int8Weights(IReadOnlyDictionary<string, FloatTensor> parameters, ParameterLayout layout)
    {
        var layers = new List<LinearParameters>();
        foreach (var l in layout.Layers) layers.AddRange([l.Qkv, l.AttentionOutput, l.Intermediate, l.Output]);
        if (layout.Pooler is { } pooler) layers.Add(pooler);
        if (layout.MaskedLm is { } mlm) layers.Add(mlm.Transform);
        var quantized = new HashSet<string>(StringComparer.Ordinal);
        var word = layout.Embeddings.Word;
        if (layout.MaskedLm is null && parameters.TryGetValue(word.Name, out var table))
        {
            int rows = word.Shape[0], width = word.Shape[1];
            var (values, scales) = Int8Quantization.QuantizeWeight(table.Data, rows, width);
            _words = (word.Name, values, scales, width);
            quantized.Add(word.Name);
        }
        foreach (var p in layers)
        {
            var (weight, bias) = PackedWeights.Concatenate(parameters, p);
            _int8[p.Weights[0].Name] = (new Int8PackedWeight(weight, p.Outputs, p.Inputs), bias);
            foreach (var part in p.Weights) quantized.Add(part.Name);
        }
        Kept = parameters.Where(kv => !quantized.Contains(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        _float32 = new PackedWeights(Kept);
    }

    /// <summary>The parameters still read in float32: all but the quantized layers' weights.</summary>
    public IReadOnlyDictionary<string, FloatTensor> Kept { get; }

    public override ReadOnlySpan<float> Values(ParameterSlot slot) => _float32.Values(slot);

    public override void AddEmbeddingRow(ParameterSlot table, int index, ReadOnlySpan<float> add, Span<float> sum)
    {
        if (_words is not { } words || !string.Equals(table.Name, words.Name, StringComparison.Ordinal))
        {
            base.AddEmbeddingRow(table, index, add, sum);
            return;
        }
        var row = words.Values.AsSpan(index * words.Width, words.Width);
        float scale = words.Scales[index];
        for (int i = 0; i < row.Length; i++) sum[i] = row[i] * scale + add[i];
    }

    public override void Linear(LinearParameters p, ReadOnlySpan<float> x, int rows, Span<float> y)
    {
        if (_int8.TryGetValue(p.Weights[0].Name, out var layer))
            Int8Gemm.Multiply(rows, x, p.Inputs, layer.Weight, y, p.Outputs, bias: layer.Bias);
        else
            _float32.Linear(p, x, rows, y);
    }
}
