using System.Collections.Concurrent;
using System.Numerics;
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
        if (p.Weights.Count == 1)
            return (new PackedWeight(parameters[p.Weights[0].Name].Data, p.Outputs, p.Inputs), parameters[p.Biases[0].Name].Data);
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
        return (new PackedWeight(weight, p.Outputs, p.Inputs), bias);
    }
}
