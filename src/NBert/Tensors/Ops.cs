using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace NBert.Tensors;

/// <summary>
/// The layers of a BERT training step as plain functions over flat row-major buffers, each forward
/// paired with its backward (the llm.c style). Generic over float32 (training) and float64 (checks).
/// Every backward <b>adds</b> into its gradient outputs, so a value used twice (a residual, a tied
/// weight) simply receives both contributions; callers clear gradient buffers before a pass.
/// </summary>
public static class Ops
{
    // ---- linear layers ----

    /// <summary>y[rows, out] = x[rows, in] · Wᵀ + b, W stored [out, in] as in PyTorch.</summary>
    public static void LinearForward<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> weight, ReadOnlySpan<T> bias, Span<T> y, int rows, int inputs, int outputs)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Gemm.Multiply(rows, outputs, inputs, x, inputs, false, weight, inputs, true, y, outputs);
        if (!bias.IsEmpty)
            for (int r = 0; r < rows; r++)
            {
                var row = y.Slice(r * outputs, outputs);
                TensorPrimitives.Add(row, bias[..outputs], row);
            }
    }

    /// <summary>dx += dy · W; dW += dyᵀ · x; db += Σ_rows dy. <paramref name="dx"/> may be empty (an input
    /// that needs no gradient).</summary>
    public static void LinearBackward<T>(ReadOnlySpan<T> dy, ReadOnlySpan<T> x, ReadOnlySpan<T> weight, Span<T> dx, Span<T> dWeight, Span<T> dBias,
        int rows, int inputs, int outputs) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!dx.IsEmpty) Gemm.Multiply(rows, inputs, outputs, dy, outputs, false, weight, inputs, false, dx, inputs, accumulate: true);
        Gemm.Multiply(outputs, inputs, rows, dy, outputs, true, x, inputs, false, dWeight, inputs, accumulate: true);
        if (!dBias.IsEmpty)
            for (int r = 0; r < rows; r++)
            {
                var g = dBias[..outputs];
                TensorPrimitives.Add(g, dy.Slice(r * outputs, outputs), g);
            }
    }

    // ---- layer norm ----

    /// <summary>
    /// y = (x - mean) / √(var + eps) · weight + bias over rows of weight.Length (biased variance, as
    /// PyTorch). When <paramref name="mean"/> and <paramref name="rstd"/> are given, each row's mean and
    /// 1/√(var + eps) are kept for the backward pass. x and y may be the same buffer.
    /// </summary>
    public static void LayerNormForward<T>(ReadOnlySpan<T> x, Span<T> y, ReadOnlySpan<T> weight, ReadOnlySpan<T> bias, T eps,
        Span<T> mean = default, Span<T> rstd = default) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = weight.Length;
        T count = T.CreateTruncating(n);
        for (int r = 0, i = 0; r + n <= x.Length; r += n, i++)
        {
            var row = y.Slice(r, n);
            T mu = TensorPrimitives.Sum(x.Slice(r, n)) / count;
            TensorPrimitives.Subtract(x.Slice(r, n), mu, row);
            T inv = T.One / T.Sqrt(TensorPrimitives.SumOfSquares<T>(row) / count + eps);
            TensorPrimitives.Multiply(row, inv, row);
            TensorPrimitives.FusedMultiplyAdd(row, weight, bias, row);
            if (!mean.IsEmpty)
            {
                mean[i] = mu;
                rstd[i] = inv;
            }
        }
    }

    /// <summary>dx += rstd · (g - mean(g) - x̂ · mean(g · x̂)) with g = dy · weight, and, unless they are empty,
    /// dweight += Σ dy · x̂ and dbias += Σ dy (see <see cref="LayerNormParameterBackward{T}"/>).</summary>
    public static void LayerNormBackward<T>(ReadOnlySpan<T> dy, ReadOnlySpan<T> x, ReadOnlySpan<T> mean, ReadOnlySpan<T> rstd, ReadOnlySpan<T> weight,
        Span<T> dx, Span<T> dWeight, Span<T> dBias) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = weight.Length;
        T count = T.CreateTruncating(n);
        Span<T> xhat = n <= 2048 ? stackalloc T[n] : new T[n];
        Span<T> g = n <= 2048 ? stackalloc T[n] : new T[n];
        for (int r = 0, i = 0; r + n <= x.Length; r += n, i++)
        {
            var dyRow = dy.Slice(r, n);
            TensorPrimitives.Subtract(x.Slice(r, n), mean[i], xhat);
            TensorPrimitives.Multiply(xhat, rstd[i], xhat);
            if (!dWeight.IsEmpty)
            {
                TensorPrimitives.FusedMultiplyAdd(dyRow, xhat, dWeight, dWeight);
                TensorPrimitives.Add(dBias, dyRow, dBias);
            }
            TensorPrimitives.Multiply(dyRow, weight, g);
            T gMean = TensorPrimitives.Sum<T>(g) / count;
            T gxMean = TensorPrimitives.Dot<T>(g, xhat) / count;
            // dx += rstd · (g - gMean - x̂ · gxMean)
            TensorPrimitives.Subtract(g, gMean, g);
            TensorPrimitives.MultiplyAdd(xhat, -gxMean, g, g);
            var dxRow = dx.Slice(r, n);
            TensorPrimitives.MultiplyAdd(g, rstd[i], dxRow, dxRow);
        }
    }

    /// <summary>LayerNorm's parameter gradients alone: dweight += Σ_rows dy · x̂, dbias += Σ_rows dy. Split from
    /// <see cref="LayerNormBackward{T}"/> so the input gradient can run over rows in parallel.</summary>
    public static void LayerNormParameterBackward<T>(ReadOnlySpan<T> dy, ReadOnlySpan<T> x, ReadOnlySpan<T> mean, ReadOnlySpan<T> rstd,
        Span<T> dWeight, Span<T> dBias) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = dWeight.Length;
        Span<T> xhat = n <= 2048 ? stackalloc T[n] : new T[n];
        for (int r = 0, i = 0; r + n <= x.Length; r += n, i++)
        {
            var dyRow = dy.Slice(r, n);
            TensorPrimitives.Subtract(x.Slice(r, n), mean[i], xhat);
            TensorPrimitives.Multiply(xhat, rstd[i], xhat);
            TensorPrimitives.FusedMultiplyAdd(dyRow, xhat, dWeight, dWeight);
            TensorPrimitives.Add(dBias, dyRow, dBias);
        }
    }

    /// <summary>dx += dy · (1 - y²) from tanh's output y.</summary>
    public static void TanhBackward<T>(ReadOnlySpan<T> dy, ReadOnlySpan<T> y, Span<T> dx) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = 0; i < y.Length; i++) dx[i] += dy[i] * (T.One - y[i] * y[i]);
    }

    // ---- softmax and attention ----

    /// <summary>
    /// Softmax of each row of <paramref name="scores"/> [rows, n], in place, after adding the attention
    /// mask: a key whose mask is 0 gets the type's lowest value added, as transformers' extended mask does.
    /// </summary>
    public static void MaskedSoftmax<T>(Span<T> scores, int n, ReadOnlySpan<int> keyMask) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T lowest = typeof(T) == typeof(float) ? T.CreateTruncating(float.MinValue) : T.CreateTruncating(double.MinValue);
        for (int r = 0; r + n <= scores.Length; r += n)
        {
            var row = scores.Slice(r, n);
            if (!keyMask.IsEmpty)
                for (int j = 0; j < n; j++)
                    if (keyMask[j] == 0) row[j] += lowest;
            Softmax(row);
        }
    }

    /// <summary>Softmax of one row, subtracting the maximum first.</summary>
    public static void Softmax<T>(Span<T> row) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T max = TensorPrimitives.Max<T>(row);
        TensorPrimitives.Subtract(row, max, row);
        TensorPrimitives.Exp<T>(row, row);
        T sum = TensorPrimitives.Sum<T>(row);
        TensorPrimitives.Divide(row, sum, row);
    }

    /// <summary>Softmax backward per row of n: dx += p · (dp - Σ dp·p), times <paramref name="scale"/>.</summary>
    public static void SoftmaxBackward<T>(ReadOnlySpan<T> dp, ReadOnlySpan<T> p, Span<T> dx, int n, T scale) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int r = 0; r + n <= p.Length; r += n)
        {
            var pr = p.Slice(r, n);
            var dpr = dp.Slice(r, n);
            T dot = TensorPrimitives.Dot<T>(dpr, pr);
            var dxr = dx.Slice(r, n);
            for (int j = 0; j < n; j++) dxr[j] += scale * pr[j] * (dpr[j] - dot);
        }
    }

    // ---- embeddings ----

    /// <summary>table gradient rows += dy rows, for the ids that selected them.</summary>
    public static void EmbeddingBackward<T>(ReadOnlySpan<T> dy, ReadOnlySpan<int> ids, Span<T> dTable, int width) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = 0; i < ids.Length; i++)
        {
            var row = dTable.Slice(ids[i] * width, width);
            TensorPrimitives.Add(row, dy.Slice(i * width, width), row);
        }
    }

    // ---- dropout ----

    /// <summary>
    /// Inverted dropout, as <c>nn.Dropout</c> in training: each value is zeroed with probability p and the
    /// rest scaled by 1/(1-p). The keep mask comes from <paramref name="random"/>'s values from
    /// <paramref name="start"/> on and is stored for the backward pass.
    /// </summary>
    public static void DropoutForward<T>(Span<T> x, double p, DropoutRandom random, ulong start, Span<bool> keep) where T : unmanaged, IFloatingPointIeee754<T>
    {
        random.Fill(keep[..x.Length], p, start);
        DropoutApply(x, p, keep);
    }

    /// <summary>x = x · keep / (1 - p) with a mask already drawn: <see cref="DropoutForward"/>'s arithmetic, so that
    /// backward can rebuild a dropout's output from its input and mask instead of keeping it.</summary>
    public static void DropoutApply<T>(Span<T> x, double p, ReadOnlySpan<bool> keep) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T scale = T.CreateTruncating(1 / (1 - p));
        for (int i = 0; i < x.Length; i++) x[i] = keep[i] ? x[i] * scale : T.Zero;
    }

    /// <summary>dx += dy · keep / (1 - p).</summary>
    public static void DropoutBackward<T>(ReadOnlySpan<T> dy, double p, ReadOnlySpan<bool> keep, Span<T> dx) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T scale = T.CreateTruncating(1 / (1 - p));
        for (int i = 0; i < dy.Length; i++)
            if (keep[i]) dx[i] += dy[i] * scale;
    }

    // ---- losses (each returns the mean loss and, when dlogits is given, adds its gradient times dloss) ----

    /// <summary>
    /// Cross-entropy over rows of <paramref name="classes"/> logits with integer targets; rows whose target is
    /// <paramref name="ignoreIndex"/> count for nothing, and the loss is the mean over the others
    /// (<c>nn.CrossEntropyLoss</c>). With no counted row the loss is 0 and there is no gradient
    /// (PyTorch would give NaN, which would poison training).
    /// </summary>
    public static double CrossEntropy<T>(ReadOnlySpan<T> logits, int classes, ReadOnlySpan<int> targets, Span<T> dlogits, double dloss = 1,
        int ignoreIndex = -100) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int counted = 0;
        for (int r = 0; r < targets.Length; r++)
        {
            int t = targets[r];
            if (t == ignoreIndex) continue;
            if ((uint)t >= (uint)classes)
                throw new ArgumentOutOfRangeException(nameof(targets), $"Target {t} is outside 0..{classes - 1} (and is not the ignore index {ignoreIndex}).");
            counted++;
        }
        if (counted == 0) return 0;
        double total = 0;
        T gradScale = T.CreateTruncating(dloss / counted);
        // Each row's exponentials (shifted by its maximum), vectorised, in one scratch row.
        var rented = System.Buffers.ArrayPool<T>.Shared.Rent(classes);
        var e = rented.AsSpan(0, classes);
        try
        {
            for (int r = 0; r < targets.Length; r++)
            {
                int t = targets[r];
                if (t == ignoreIndex) continue;
                var row = logits.Slice(r * classes, classes);
                T max = TensorPrimitives.Max(row);
                TensorPrimitives.Subtract(row, max, e);
                TensorPrimitives.Exp<T>(e, e);
                T sum = TensorPrimitives.Sum<T>(e);
                total += double.CreateTruncating(T.Log(sum) + max - row[t]);
                if (dlogits.IsEmpty) continue;
                // d/dlogits = scale · (softmax - one-hot(target))
                var g = dlogits.Slice(r * classes, classes);
                TensorPrimitives.MultiplyAdd(e, gradScale / sum, g, g);
                g[t] -= gradScale;
            }
        }
        finally
        {
            System.Buffers.ArrayPool<T>.Shared.Return(rented);
        }
        return total / counted;
    }

    /// <summary>Mean squared error over all values (<c>nn.MSELoss</c>, regression).</summary>
    public static double MeanSquaredError<T>(ReadOnlySpan<T> predictions, ReadOnlySpan<T> targets, Span<T> dpredictions, double dloss = 1)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        double total = 0;
        T gradScale = T.CreateTruncating(2 * dloss / predictions.Length);
        for (int i = 0; i < predictions.Length; i++)
        {
            T diff = predictions[i] - targets[i];
            total += double.CreateTruncating(diff * diff);
            if (!dpredictions.IsEmpty) dpredictions[i] += gradScale * diff;
        }
        return total / predictions.Length;
    }

    /// <summary>Binary cross-entropy on logits, mean over all values (<c>nn.BCEWithLogitsLoss</c>, multi-label):
    /// max(x, 0) - x·y + log(1 + e^-|x|), the stable form.</summary>
    public static double BinaryCrossEntropyWithLogits<T>(ReadOnlySpan<T> logits, ReadOnlySpan<T> targets, Span<T> dlogits, double dloss = 1)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        double total = 0;
        T gradScale = T.CreateTruncating(dloss / logits.Length);
        for (int i = 0; i < logits.Length; i++)
        {
            T x = logits[i], y = targets[i];
            total += double.CreateTruncating(T.Max(x, T.Zero) - x * y + T.Log(T.One + T.Exp(-T.Abs(x))));
            if (!dlogits.IsEmpty) dlogits[i] += gradScale * (T.One / (T.One + T.Exp(-x)) - y);
        }
        return total / logits.Length;
    }
}
