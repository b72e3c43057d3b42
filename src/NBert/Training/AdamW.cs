using System.Numerics;
using System.Numerics.Tensors;

namespace NBert.Training;

/// <summary>AdamW's hyper-parameters, with PyTorch's and transformers' defaults.</summary>
public sealed record AdamWOptions
{
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double Epsilon { get; init; } = 1e-8;
    /// <summary>Decoupled weight decay, applied to the parameters whose <see cref="ParameterSlot.Decays"/> is true.</summary>
    public double WeightDecay { get; init; } = 0.0;

    public void Validate()
    {
        if (!(Beta1 is >= 0 and < 1)) throw new ArgumentOutOfRangeException(nameof(Beta1), $"beta1 must be in [0, 1), not {Beta1}.");
        if (!(Beta2 is >= 0 and < 1)) throw new ArgumentOutOfRangeException(nameof(Beta2), $"beta2 must be in [0, 1), not {Beta2}.");
        if (!(Epsilon >= 0)) throw new ArgumentOutOfRangeException(nameof(Epsilon), $"epsilon must be non-negative, not {Epsilon}.");
        if (!(WeightDecay >= 0)) throw new ArgumentOutOfRangeException(nameof(WeightDecay), $"weight decay must be non-negative, not {WeightDecay}.");
    }
}

/// <summary>
/// <c>torch.optim.AdamW</c>, step for step: decoupled weight decay (p ← p·(1 - lr·λ)), moment updates,
/// bias correction, p ← p - lr/(1-β₁ᵗ) · m / (√v / √(1-β₂ᵗ) + ε), in PyTorch's order of operations.
/// Biases and LayerNorm weights are not decayed (transformers' parameter groups). The moments use the
/// model's flat layout.
/// </summary>
public sealed class AdamW<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public AdamWOptions Options { get; }
    /// <summary>Steps taken (t).</summary>
    public long Step { get; set; }
    public T[] FirstMoment { get; }
    public T[] SecondMoment { get; }
    private readonly bool[] _decays;
    private readonly IReadOnlyList<ParameterSlot> _slots;

    public AdamW(TrainingModel<T> model, AdamWOptions options)
    {
        options.Validate();
        Options = options;
        _slots = model.Slots;
        _decays = model.Slots.Select(s => s.Decays).ToArray();
        FirstMoment = new T[model.Values.Length];
        SecondMoment = new T[model.Values.Length];
    }

    /// <summary>One update of <paramref name="model"/>'s values from its gradients at learning rate <paramref name="lr"/>.</summary>
    public void Update(TrainingModel<T> model, double lr)
    {
        Step++;
        var o = Options;
        double bias1 = 1 - Math.Pow(o.Beta1, Step), bias2 = 1 - Math.Pow(o.Beta2, Step);
        T stepSize = T.CreateTruncating(lr / bias1), bias2Sqrt = T.CreateTruncating(Math.Sqrt(bias2));
        T beta2 = T.CreateTruncating(o.Beta2), eps = T.CreateTruncating(o.Epsilon);
        T oneMinusBeta1 = T.CreateTruncating(1 - o.Beta1), oneMinusBeta2 = T.CreateTruncating(1 - o.Beta2);
        T decay = T.CreateTruncating(1 - lr * o.WeightDecay);
        for (int si = 0; si < _slots.Count; si++)
        {
            var slot = _slots[si];
            var p = model.Values.AsSpan(slot.Offset, slot.Length);
            var g = model.Gradients.AsSpan(slot.Offset, slot.Length);
            var m = FirstMoment.AsSpan(slot.Offset, slot.Length);
            var v = SecondMoment.AsSpan(slot.Offset, slot.Length);
            bool decays = _decays[si] && o.WeightDecay != 0;
            for (int i = 0; i < p.Length; i++)
            {
                T gi = g[i];
                if (decays) p[i] *= decay;
                m[i] += (gi - m[i]) * oneMinusBeta1;  // lerp_, as PyTorch
                v[i] = v[i] * beta2 + oneMinusBeta2 * gi * gi;
                T denom = T.Sqrt(v[i]) / bias2Sqrt + eps;
                p[i] -= stepSize * m[i] / denom;
            }
        }
    }
}

/// <summary><c>torch.nn.utils.clip_grad_norm_</c> over all of a model's gradients.</summary>
public static class GradientClipping
{
    /// <summary>The global L2 norm of <paramref name="gradients"/>.</summary>
    public static double GlobalNorm<T>(ReadOnlySpan<T> gradients) where T : unmanaged, IFloatingPointIeee754<T>
    {
        // Sum in double, in chunks, so that float32 gradients of a large model lose nothing to the sum.
        double sum = 0;
        for (int start = 0; start < gradients.Length; start += 4096)
            sum += double.CreateTruncating(TensorPrimitives.SumOfSquares(gradients.Slice(start, Math.Min(4096, gradients.Length - start))));
        return Math.Sqrt(sum);
    }

    /// <summary>Scales the gradients by max_norm / (norm + 1e-6) when that is below 1, as PyTorch; returns
    /// the norm before clipping.</summary>
    public static double ClipGlobalNorm<T>(Span<T> gradients, double maxNorm) where T : unmanaged, IFloatingPointIeee754<T>
    {
        double norm = GlobalNorm<T>(gradients);
        double coefficient = maxNorm / (norm + 1e-6);
        if (coefficient < 1) TensorPrimitives.Multiply(gradients, T.CreateTruncating(coefficient), gradients);
        return norm;
    }
}
