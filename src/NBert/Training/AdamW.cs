using System.Numerics;
using System.Numerics.Tensors;
using NBert.Tensors;
using NBert.Schema;

namespace NBert.Training;

/// <summary>AdamW's hyper-parameters, with transformers' <c>TrainingArguments</c> defaults.</summary>
public sealed record AdamWOptions
{
    /// <summary>Decay rate of the first moment, the gradients' running mean (<c>adam_beta1</c>, 0.9); in [0, 1).</summary>
    public double Beta1 { get; init; } = 0.9;
    /// <summary>Decay rate of the second moment, the squared gradients' running mean (<c>adam_beta2</c>, 0.999); in [0, 1).</summary>
    public double Beta2 { get; init; } = 0.999;
    /// <summary>Added to the denominator for numerical stability (<c>adam_epsilon</c>, 1e-8).</summary>
    public double Epsilon { get; init; } = 1e-8;
    /// <summary>Decoupled weight decay, applied to the parameters whose <see cref="ParameterSlot.Decays"/> is true
    /// (<c>weight_decay</c>, 0 as in transformers; PyTorch's own default is 0.01).</summary>
    public double WeightDecay { get; init; } = 0.0;

    /// <summary>Refuses values AdamW cannot use.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A beta outside [0, 1), or a negative or NaN epsilon or weight decay;
    /// the parameter name is the property's.</exception>
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
/// model's flat layout. Not thread-safe: one update at a time (each update runs on several threads itself).
/// </summary>
public sealed class AdamW<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The hyper-parameters, validated.</summary>
    public AdamWOptions Options { get; }
    /// <summary>Steps taken (t).</summary>
    public long Step { get; set; }
    /// <summary>m, the running mean of the gradients (PyTorch's <c>exp_avg</c>), laid out as <see cref="TrainingModel{T}.Values"/>
    /// (see <see cref="ParameterSlot.Offset"/>).</summary>
    public T[] FirstMoment { get; }
    /// <summary>v, the running mean of the squared gradients (PyTorch's <c>exp_avg_sq</c>), laid out as <see cref="TrainingModel{T}.Values"/>.</summary>
    public T[] SecondMoment { get; }
    private readonly bool[] _decays;
    private readonly IReadOnlyList<ParameterSlot> _slots;

    /// <summary>An optimiser for <paramref name="model"/>'s parameters, with zero moments and no step taken.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The options are invalid (see <see cref="AdamWOptions.Validate"/>).</exception>
    public AdamW(TrainingModel<T> model, AdamWOptions options)
    {
        options.Validate();
        Options = options;
        _slots = model.Slots;
        _decays = model.Slots.Select(s => s.Decays).ToArray();
        FirstMoment = new T[model.Values.Length];
        SecondMoment = new T[model.Values.Length];
    }

    /// <summary>One update of <paramref name="model"/>'s values from its gradients at learning rate <paramref name="lr"/>.
    /// Chunks of the flat buffers run in parallel, each vectorised; every element sees PyTorch's operations in PyTorch's order.</summary>
    public void Update(TrainingModel<T> model, double lr)
    {
        Step++;
        var o = Options;
        double bias1 = 1 - Math.Pow(o.Beta1, Step), bias2 = 1 - Math.Pow(o.Beta2, Step);
        var k = new Constants(T.CreateTruncating(lr / bias1), T.CreateTruncating(Math.Sqrt(bias2)), T.CreateTruncating(o.Beta2),
            T.CreateTruncating(o.Epsilon), T.CreateTruncating(1 - o.Beta1), T.CreateTruncating(1 - o.Beta2), T.CreateTruncating(1 - lr * o.WeightDecay));
        var chunks = Chunks(o.WeightDecay != 0);
        T[] p = model.Values, g = model.Gradients, m = FirstMoment, v = SecondMoment;
        WorkerPool.Shared.Run(chunks.Count, Threading.MaxThreads, i =>
        {
            var (offset, length, decays) = chunks[i];
            UpdateRange(p.AsSpan(offset, length), g.AsSpan(offset, length), m.AsSpan(offset, length), v.AsSpan(offset, length), decays, k);
        });
    }

    private readonly record struct Constants(T StepSize, T Bias2Sqrt, T Beta2, T Epsilon, T OneMinusBeta1, T OneMinusBeta2, T Decay);

    private List<(int Offset, int Length, bool Decays)>? _chunks;

    /// <summary>The slots cut into pieces of at most 64K values, so that the threads share the work evenly.</summary>
    private List<(int Offset, int Length, bool Decays)> Chunks(bool weightDecay) => _chunks ??= _slots.SelectMany((slot, si) =>
        Enumerable.Range(0, (slot.Length + ChunkSize - 1) / ChunkSize).Select(c =>
            (slot.Offset + c * ChunkSize, Math.Min(ChunkSize, slot.Length - c * ChunkSize), _decays[si] && weightDecay))).ToList();

    private const int ChunkSize = 1 << 16;

    private static void UpdateRange(Span<T> p, ReadOnlySpan<T> g, Span<T> m, Span<T> v, bool decays, Constants k)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var stepSize = new Vector<T>(k.StepSize);
            var bias2Sqrt = new Vector<T>(k.Bias2Sqrt);
            var beta2 = new Vector<T>(k.Beta2);
            var eps = new Vector<T>(k.Epsilon);
            var oneMinusBeta1 = new Vector<T>(k.OneMinusBeta1);
            var oneMinusBeta2 = new Vector<T>(k.OneMinusBeta2);
            var decay = new Vector<T>(k.Decay);
            for (; i + Vector<T>.Count <= p.Length; i += Vector<T>.Count)
            {
                var gi = new Vector<T>(g[i..]);
                var pi = new Vector<T>(p[i..]);
                var mi = new Vector<T>(m[i..]);
                var vi = new Vector<T>(v[i..]);
                if (decays) pi *= decay;
                mi += (gi - mi) * oneMinusBeta1;
                vi = vi * beta2 + oneMinusBeta2 * gi * gi;
                var denom = Vector.SquareRoot(vi) / bias2Sqrt + eps;
                pi -= stepSize * mi / denom;
                pi.CopyTo(p[i..]);
                mi.CopyTo(m[i..]);
                vi.CopyTo(v[i..]);
            }
        }
        for (; i < p.Length; i++)
        {
            T gi = g[i];
            if (decays) p[i] *= k.Decay;
            m[i] += (gi - m[i]) * k.OneMinusBeta1; // lerp_, as PyTorch
            v[i] = v[i] * k.Beta2 + k.OneMinusBeta2 * gi * gi;
            T denom = T.Sqrt(v[i]) / k.Bias2Sqrt + k.Epsilon;
            p[i] -= k.StepSize * m[i] / denom;
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
