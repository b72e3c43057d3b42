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
    public T[] FirstMoment
    {
        get
        {
            _liveWordRows = null; // the caller may write the moments (a resumed run does)
            return _m;
        }
    }
    /// <summary>v, the running mean of the squared gradients (PyTorch's <c>exp_avg_sq</c>), laid out as <see cref="TrainingModel{T}.Values"/>.</summary>
    public T[] SecondMoment
    {
        get
        {
            _liveWordRows = null;
            return _v;
        }
    }
    private readonly T[] _m, _v;
    /// <summary>The moments, to read (a checkpoint), without giving up which word-embedding rows are known to be 0.</summary>
    internal T[] FirstMomentBuffer => _m;
    /// <summary>See <see cref="FirstMomentBuffer"/>.</summary>
    internal T[] SecondMomentBuffer => _v;
    private readonly bool[] _decays;
    private readonly IReadOnlyList<ParameterSlot> _slots;
    private readonly ParameterSlot _word;
    private readonly int _hidden;
    // The word embeddings' rows whose moments may be nonzero; null when not known (then rebuilt from the moments).
    private bool[]? _liveWordRows;

    /// <summary>An optimiser for <paramref name="model"/>'s parameters, with zero moments and no step taken.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The options are invalid (see <see cref="AdamWOptions.Validate"/>).</exception>
    public AdamW(TrainingModel<T> model, AdamWOptions options)
    {
        options.Validate();
        Options = options;
        _slots = model.Slots;
        _decays = model.Slots.Select(s => s.Decays).ToArray();
        _word = model.WordEmbeddings;
        _hidden = model.WordEmbeddings.Shape[1]; // a word row: hidden_size, or ELECTRA's embedding_size
        _m = new T[model.Values.Length];
        _v = new T[model.Values.Length];
    }

    /// <summary>One update of <paramref name="model"/>'s values from its gradients at learning rate <paramref name="lr"/>.
    /// Chunks of the flat buffers run in parallel, each vectorised; every element sees PyTorch's operations in PyTorch's order.</summary>
    public void Update(TrainingModel<T> model, double lr) => Update(model, lr, 1.0, clearGradients: false);

    /// <summary>
    /// <see cref="Update(TrainingModel{T}, double)"/> with the gradients multiplied by <paramref name="gradientScale"/> first
    /// (clipping's coefficient, rounded to T and multiplied as <c>clip_grad_norm_</c>'s in-place <c>mul_</c> does) and, when
    /// <paramref name="clearGradients"/>, each gradient set to 0 once read (<c>zero_grad</c>): one pass over the buffers
    /// instead of three, the same arithmetic.
    /// </summary>
    /// <remarks>
    /// A word-embedding row that no backward pass has written since the moments were 0 has a zero gradient and zero
    /// moments. PyTorch's update leaves such a row's moments 0 and its value p·(1 - lr·λ) - lr/(1-β₁ᵗ)·0/(0 + ε), that is
    /// the decay alone (ε &gt; 0), so the row gets the decay alone here, or nothing without weight decay. Rows once
    /// written keep decaying moments and are updated in full, as PyTorch does.
    /// </remarks>
    internal void Update(TrainingModel<T> model, double lr, double gradientScale, bool clearGradients)
    {
        Step++;
        var o = Options;
        double bias1 = 1 - Math.Pow(o.Beta1, Step), bias2 = 1 - Math.Pow(o.Beta2, Step);
        var k = new Constants(T.CreateTruncating(lr / bias1), T.CreateTruncating(Math.Sqrt(bias2)), T.CreateTruncating(o.Beta2),
            T.CreateTruncating(o.Epsilon), T.CreateTruncating(1 - o.Beta1), T.CreateTruncating(1 - o.Beta2), T.CreateTruncating(1 - lr * o.WeightDecay),
            T.CreateTruncating(gradientScale), gradientScale != 1, clearGradients);
        bool weightDecay = o.WeightDecay != 0;
        // The skip needs 0/(0 + ε) = 0 and a finite step size, or PyTorch's update would write NaN into the row.
        var rows = k.Epsilon > T.Zero && T.IsFinite(k.StepSize) ? model.TouchedWordRows : null;
        var work = WorkItems(rows, weightDecay);
        T[] p = model.Values, g = model.GradientBuffer, m = _m, v = _v;
        WorkerPool.Shared.Run(work.Count, Threading.MaxThreads, i =>
        {
            var (offset, length, decays, decayOnly) = work[i];
            if (decayOnly) TensorPrimitives.Multiply(p.AsSpan(offset, length), k.Decay, p.AsSpan(offset, length));
            else UpdateRange(p.AsSpan(offset, length), g.AsSpan(offset, length), m.AsSpan(offset, length), v.AsSpan(offset, length), decays, k);
        });
        if (clearGradients) model.GradientsCleared();
    }

    private readonly record struct Constants(T StepSize, T Bias2Sqrt, T Beta2, T Epsilon, T OneMinusBeta1, T OneMinusBeta2, T Decay,
        T GradientScale, bool Scales, bool Clears);

    private List<(int Offset, int Length, bool Decays, bool DecayOnly)>? _chunks;

    /// <summary>The slots but the word embeddings cut into pieces of at most 64K values, so that the threads share the work evenly.</summary>
    private List<(int Offset, int Length, bool Decays, bool DecayOnly)> OtherChunks(bool weightDecay) => _chunks ??= _slots
        .Select((slot, si) => (slot, si)).Where(x => x.slot.Offset != _word.Offset)
        .SelectMany(x => Pieces(x.slot.Offset, x.slot.Length, _decays[x.si] && weightDecay, false)).ToList();

    private static IEnumerable<(int Offset, int Length, bool Decays, bool DecayOnly)> Pieces(int offset, int length, bool decays, bool decayOnly) =>
        Enumerable.Range(0, (length + ChunkSize - 1) / ChunkSize).Select(c => (offset + c * ChunkSize, Math.Min(ChunkSize, length - c * ChunkSize), decays, decayOnly));

    /// <summary>This step's work: the other slots' chunks, then the word embeddings in runs of rows, in full where their
    /// moments may be nonzero or <paramref name="touched"/> (null: every row) says the gradient may be, decay only elsewhere.</summary>
    private List<(int Offset, int Length, bool Decays, bool DecayOnly)> WorkItems(IReadOnlyList<int>? touched, bool weightDecay)
    {
        var work = new List<(int Offset, int Length, bool Decays, bool DecayOnly)>(OtherChunks(weightDecay));
        bool decays = weightDecay && _word.Decays;
        if (touched is null)
        {
            _liveWordRows = null; // every row gets gradient and moments
            work.AddRange(Pieces(_word.Offset, _word.Length, decays, false));
            return work;
        }
        var live = _liveWordRows ??= LiveRows();
        foreach (int row in touched) live[row] = true;
        int h = _hidden, rowsPerPiece = Math.Max(1, ChunkSize / h);
        for (int r = 0; r < live.Length;)
        {
            bool isLive = live[r];
            int end = r + 1;
            while (end < live.Length && live[end] == isLive && end - r < rowsPerPiece) end++;
            if (isLive || decays) work.Add((_word.Offset + r * h, (end - r) * h, decays, !isLive));
            r = end;
        }
        return work;
    }

    /// <summary>The word embeddings' rows with a nonzero moment (or -0, which a full update would turn into +0).</summary>
    private bool[] LiveRows()
    {
        int h = _hidden;
        var live = new bool[_word.Length / h];
        for (int r = 0; r < live.Length; r++)
            live[r] = Nonzero(_m.AsSpan(_word.Offset + r * h, h)) || Nonzero(_v.AsSpan(_word.Offset + r * h, h));
        return live;

        static bool Nonzero(ReadOnlySpan<T> values)
        {
            foreach (var x in values)
                if (x != T.Zero || T.IsNegative(x)) return true;
            return false;
        }
    }

    private const int ChunkSize = 1 << 16;

    private static void UpdateRange(Span<T> p, Span<T> g, Span<T> m, Span<T> v, bool decays, Constants k)
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
            var scale = new Vector<T>(k.GradientScale);
            for (; i + Vector<T>.Count <= p.Length; i += Vector<T>.Count)
            {
                var gi = new Vector<T>(g[i..]);
                if (k.Scales) gi *= scale;
                if (k.Clears) Vector<T>.Zero.CopyTo(g[i..]);
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
            if (k.Scales) gi *= k.GradientScale;
            if (k.Clears) g[i] = T.Zero;
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
        for (int start = 0; start < gradients.Length; start += NormChunk)
            sum += SumOfSquares(gradients.Slice(start, Math.Min(NormChunk, gradients.Length - start)));
        return Math.Sqrt(sum);
    }

    /// <summary>The values summed in T at a time by <see cref="GlobalNorm{T}"/>; the chunks' sums add up in double.</summary>
    internal const int NormChunk = 4096;

    /// <summary>One chunk's sum of squares, as <see cref="GlobalNorm{T}"/> adds it.</summary>
    internal static double SumOfSquares<T>(ReadOnlySpan<T> chunk) where T : unmanaged, IFloatingPointIeee754<T> =>
        double.CreateTruncating(TensorPrimitives.SumOfSquares(chunk));

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
