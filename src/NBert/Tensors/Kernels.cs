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
    /// GELU with the exact error function: x · Φ(x) = 0.5 x (1 + erf(x / √2)) (PyTorch's default), in one pass:
    /// erf(z) = 1 - t·P(t)·exp(-z²), t = 1/(1 + 0.3275911|z|) (Abramowitz and Stegun 7.1.26, |error| ≤ 1.5e-7, below
    /// float precision), with exp(-x²/2) from <see cref="ExpNonPositive(float)"/>. (Three TensorPrimitives passes for the
    /// exponential and one for the rest took 9% of int8 MiniLM embedding time; one pass reads each value once.)
    /// </summary>
    public static void Gelu(Span<float> x)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= x.Length; i += 8)
            {
                var xi = Vector256.Create<float>(x[i..]);
                (xi * Cdf(xi, ExpNonPositive(xi * xi * -0.5f))).CopyTo(x[i..]);
            }
        for (; i < x.Length; i++) x[i] *= Cdf(x[i], ExpNonPositive(x[i] * x[i] * -0.5f));
    }

    /// <summary>
    /// GELU's backward: dx += dy · (Φ(x) + x·φ(x)), with Φ from the same erf approximation as <see cref="Gelu"/> and
    /// φ(x) = e^(-x²/2)/√(2π), in one pass.
    /// </summary>
    public static void GeluBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx)
    {
        const float InvSqrt2Pi = 0.3989422804014327f;
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= x.Length; i += 8)
            {
                var xi = Vector256.Create<float>(x[i..]);
                var ei = ExpNonPositive(xi * xi * -0.5f);
                var di = Vector256.Create<float>(dx[i..]) + Vector256.Create<float>(dy[i..]) * (Cdf(xi, ei) + xi * InvSqrt2Pi * ei);
                di.CopyTo(dx[i..]);
            }
        for (; i < x.Length; i++)
        {
            float e = ExpNonPositive(x[i] * x[i] * -0.5f);
            dx[i] += dy[i] * (Cdf(x[i], e) + x[i] * InvSqrt2Pi * e);
        }
    }

    private const float Log2E = 1.44269504088896341f, Ln2Hi = 0.693145751953125f, Ln2Lo = 1.42860682030941723e-6f, ExpFloor = -87f;

    /// <summary>
    /// e^y for y ≤ 0 (GELU's exp(-x²/2)): y = n·ln 2 + r with n = round(y / ln 2) and |r| ≤ ln 2 / 2 (ln 2 in two parts,
    /// so r is exact to float precision), e^r by its Taylor series to r⁶ (relative error ≤ 1.2e-7), times 2ⁿ put into
    /// the exponent bits. Below -87 it returns e^-87 (≈ 1.6e-38, the smallest normal floats), which GELU multiplies
    /// away. The scalar and vector forms do the same IEEE operations in the same order, so a value's bits do not depend
    /// on where in a row it falls.
    /// </summary>
    private static float ExpNonPositive(float y)
    {
        y = MathF.Max(y, ExpFloor);
        float n = MathF.Round(y * Log2E);
        float r = y - n * Ln2Hi - n * Ln2Lo;
        float p = 1f + r * (1f + r * (0.5f + r * (1f / 6 + r * (1f / 24 + r * (1f / 120 + r * (1f / 720))))));
        return p * BitConverter.Int32BitsToSingle(((int)n + 127) << 23);
    }

    private static Vector256<float> ExpNonPositive(Vector256<float> y)
    {
        y = Vector256.Max(y, Vector256.Create(ExpFloor));
        var n = Vector256.Round(y * Log2E);
        var r = y - n * Ln2Hi - n * Ln2Lo;
        var p = Vector256<float>.One + r * (Vector256<float>.One + r * (Vector256.Create(0.5f) + r * (Vector256.Create(1f / 6) +
            r * (Vector256.Create(1f / 24) + r * (Vector256.Create(1f / 120) + r * (1f / 720))))));
        return p * ((Vector256.ConvertToInt32(n) + Vector256.Create(127)) << 23).AsSingle();
    }

    private const float P = 0.3275911f, A1 = 0.254829592f, A2 = -0.284496736f, A3 = 1.421413741f, A4 = -1.453152027f, A5 = 1.061405429f;

    /// <summary>Φ(x) = 0.5 (1 + erf(x/√2)) from x and e = exp(-x²/2); the same operations as the vector form.</summary>
    private static float Cdf(float x, float e)
    {
        float t = 1f / (1f + P * 0.70710678118654752f * MathF.Abs(x));
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
