using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace NBert.Tensors;

/// <summary>
/// The elementwise and row-wise float32 kernels of a BERT forward pass. Each works in place on a span of
/// rows, allocates nothing, and computes what the PyTorch op of the same name computes.
/// They keep no state, so several threads may call them on different buffers.
/// </summary>
public static class Kernels
{
    private const int Block = 256;

    private delegate void BlockKernel(Span<float> block, Span<float> scratch);

    /// <summary>Applies <paramref name="kernel"/> to blocks of 256 values, each with a stack scratch block
    /// of the same length (vectorised steps need somewhere to put intermediate values).</summary>
    private static void InBlocks(Span<float> x, BlockKernel kernel)
    {
        Span<float> scratch = stackalloc float[Block];
        for (int start = 0; start < x.Length; start += Block)
        {
            int n = Math.Min(Block, x.Length - start);
            kernel(x.Slice(start, n), scratch[..n]);
        }
    }

    /// <summary>
    /// GELU with the exact error function: x · Φ(x) = 0.5 x (1 + erf(x / √2)) (PyTorch's default). Vectorised
    /// in blocks: erf(z) = 1 - t·P(t)·exp(-z²), t = 1/(1 + 0.3275911|z|) (Abramowitz and Stegun 7.1.26,
    /// |error| ≤ 1.5e-7, below float precision).
    /// </summary>
    public static void Gelu(Span<float> x) => InBlocks(x, static (v, e) =>
    {
        ExpMinusHalfSquare(v, e);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= v.Length; i += 8)
            {
                var xi = Vector256.Create<float>(v[i..]);
                (xi * Cdf(xi, Vector256.Create<float>(e[i..]))).CopyTo(v[i..]);
            }
        for (; i < v.Length; i++) v[i] *= Cdf(v[i], e[i]);
    });

    /// <summary>
    /// GELU's backward: dx += dy · (Φ(x) + x·φ(x)), with Φ from the same erf approximation as
    /// <see cref="Gelu"/> and φ(x) = e^(-x²/2)/√(2π), vectorised in blocks.
    /// </summary>
    public static void GeluBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx)
    {
        Span<float> scratch = stackalloc float[Block];
        const float InvSqrt2Pi = 0.3989422804014327f;
        for (int start = 0; start < x.Length; start += Block)
        {
            int n = Math.Min(Block, x.Length - start);
            var v = x.Slice(start, n);
            var g = dy.Slice(start, n);
            var d = dx.Slice(start, n);
            var e = scratch[..n];
            ExpMinusHalfSquare(v, e);
            int i = 0;
            if (Vector256.IsHardwareAccelerated)
                for (; i + 8 <= n; i += 8)
                {
                    var xi = Vector256.Create<float>(v[i..]);
                    var ei = Vector256.Create<float>(e[i..]);
                    var di = Vector256.Create<float>(d[i..]) + Vector256.Create<float>(g[i..]) * (Cdf(xi, ei) + xi * InvSqrt2Pi * ei);
                    di.CopyTo(d[i..]);
                }
            for (; i < n; i++) d[i] += g[i] * (Cdf(v[i], e[i]) + v[i] * InvSqrt2Pi * e[i]);
        }
    }

    /// <summary>e = exp(-x²/2), which both Φ's erf (as exp(-z²) at z = x/√2) and φ need.</summary>
    private static void ExpMinusHalfSquare(ReadOnlySpan<float> x, Span<float> e)
    {
        TensorPrimitives.Multiply(x, x, e);
        TensorPrimitives.Multiply(e, -0.5f, e);
        TensorPrimitives.Exp(e, e);
    }

    private const float P = 0.3275911f, A1 = 0.254829592f, A2 = -0.284496736f, A3 = 1.421413741f, A4 = -1.453152027f, A5 = 1.061405429f;

    /// <summary>Φ(x) = 0.5 (1 + erf(x/√2)) from x and e = exp(-x²/2).</summary>
    private static float Cdf(float x, float e)
    {
        float t = 1f / (1f + P * MathF.Abs(x) * 0.70710678118654752f);
        float erf = 1f - t * (A1 + t * (A2 + t * (A3 + t * (A4 + t * A5)))) * e;
        return 0.5f * (1f + (x < 0 ? -erf : erf));
    }

    private static Vector256<float> Cdf(Vector256<float> x, Vector256<float> e)
    {
        var t = Vector256<float>.One / (Vector256<float>.One + Vector256.Create(P * 0.70710678118654752f) * Vector256.Abs(x));
        var poly = t * (Vector256.Create(A1) + t * (Vector256.Create(A2) + t * (Vector256.Create(A3) + t * (Vector256.Create(A4) + t * A5))));
        var erf = Vector256<float>.One - poly * e;
        var signed = Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256<float>.Zero), -erf, erf);
        return Vector256.Create(0.5f) * (Vector256<float>.One + signed);
    }

    /// <summary>GELU's tanh approximation: 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))) (gelu_new, gelu_pytorch_tanh).</summary>
    public static void GeluTanh(Span<float> x) => InBlocks(x, static (v, u) =>
    {
        TensorPrimitives.Multiply(v, v, u);
        TensorPrimitives.Multiply(u, 0.044715f, u);
        TensorPrimitives.Add(u, 1f, u);                         // 1 + 0.044715 x²
        TensorPrimitives.Multiply(u, v, u);                     // x + 0.044715 x³
        TensorPrimitives.Multiply(u, 0.7978845608028654f, u);
        TensorPrimitives.Tanh(u, u);
        TensorPrimitives.Add(u, 1f, u);
        TensorPrimitives.Multiply(u, v, u);
        TensorPrimitives.Multiply(u, 0.5f, v);
    });

    /// <summary>ReLU in place: max(x, 0) (<c>hidden_act</c> "relu").</summary>
    public static void Relu(Span<float> x) => TensorPrimitives.Max(x, 0f, x);

    /// <summary>SiLU (swish): x · sigmoid(x).</summary>
    public static void Silu(Span<float> x) => InBlocks(x, static (v, sigmoid) =>
    {
        TensorPrimitives.Sigmoid(v, sigmoid);
        TensorPrimitives.Multiply(v, sigmoid, v);
    });

    /// <summary>The error function, to float precision.</summary>
    public static float Erf(float x) => (float)Erf((double)x);

    /// <summary>
    /// The error function in double, to about 1e-15: erf(x) = 2/√π · e^(-x²) · Σ (2x²)ⁿ x / (1·3·…·(2n+1)),
    /// a series of positive terms (no cancellation); beyond |x| = 6, erf is ±1 in double. Scalar: the
    /// float64 training path and references use it; float32 GELU has its own vectorised approximation.
    /// </summary>
    public static double Erf(double x)
    {
        double z = Math.Abs(x);
        if (double.IsNaN(x)) return x;
        if (z >= 6) return Math.Sign(x);
        double z2 = 2 * z * z, term = z, sum = z;
        for (int n = 1; term > sum * 1e-17; n++)
        {
            term *= z2 / (2 * n + 1);
            sum += term;
        }
        double erf = 2 / Math.Sqrt(Math.PI) * Math.Exp(-z * z) * sum;
        return x < 0 ? -erf : erf;
    }

    /// <summary>Softmax of one row, subtracting the maximum first.</summary>
    public static void Softmax(Span<float> row) => Ops.Softmax(row);
}
