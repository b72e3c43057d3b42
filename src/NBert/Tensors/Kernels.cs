using System.Numerics.Tensors;

namespace NBert.Tensors;

/// <summary>
/// The elementwise and row-wise float32 kernels of a BERT forward pass. Each works in place on a span of
/// rows, allocates nothing, and computes what the PyTorch op of the same name computes.
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
        // exp(-z²) with z = x/√2, i.e. exp(-x²/2)
        TensorPrimitives.Multiply(v, v, e);
        TensorPrimitives.Multiply(e, -0.5f, e);
        TensorPrimitives.Exp(e, e);
        for (int i = 0; i < v.Length; i++)
        {
            float xi = v[i];
            float z = MathF.Abs(xi) * 0.70710678118654752f;
            float t = 1f / (1f + 0.3275911f * z);
            float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
            float erf = 1f - poly * e[i];
            v[i] = 0.5f * xi * (1f + (xi < 0 ? -erf : erf));
        }
    });

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

    public static void Relu(Span<float> x) => TensorPrimitives.Max(x, 0f, x);

    /// <summary>SiLU (swish): x · sigmoid(x).</summary>
    public static void Silu(Span<float> x) => InBlocks(x, static (v, sigmoid) =>
    {
        TensorPrimitives.Sigmoid(v, sigmoid);
        TensorPrimitives.Multiply(v, sigmoid, v);
    });

    public static void Tanh(Span<float> x) => TensorPrimitives.Tanh(x, x);

    /// <summary>
    /// The error function in double, |error| below 1.2e-7: erf(x) = 1 - t·exp(-x² + P(t)) with
    /// t = 1/(1 + |x|/2) (Numerical Recipes' erfc, Chebyshev-fitted). For reference and scalar use.
    /// </summary>
    public static float Erf(float x) => (float)Erf((double)x);

    public static double Erf(double x)
    {
        double z = Math.Abs(x);
        double t = 1.0 / (1.0 + 0.5 * z);
        double erfc = t * Math.Exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
            + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? 1.0 - erfc : erfc - 1.0;
    }

    /// <summary>
    /// Softmax of each row of <paramref name="scores"/> [rows, n] after adding the attention mask: a key
    /// position whose mask is 0 gets float.MinValue added, as transformers' extended attention mask does.
    /// </summary>
    public static void MaskedSoftmax(Span<float> scores, int n, ReadOnlySpan<int> keyMask)
    {
        for (int r = 0; r + n <= scores.Length; r += n)
        {
            var row = scores.Slice(r, n);
            if (!keyMask.IsEmpty)
                for (int j = 0; j < n; j++)
                    if (keyMask[j] == 0) row[j] += float.MinValue;
            Softmax(row);
        }
    }

    /// <summary>Softmax of one row, subtracting the maximum first.</summary>
    public static void Softmax(Span<float> row)
    {
        float max = TensorPrimitives.Max(row);
        TensorPrimitives.Subtract(row, max, row);
        TensorPrimitives.Exp(row, row);
        float sum = TensorPrimitives.Sum(row);
        TensorPrimitives.Divide(row, sum, row);
    }

    /// <summary>LayerNorm over the last dimension: (x - mean) / √(var + eps) · weight + bias, biased variance.</summary>
    public static void LayerNorm(Span<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, float eps)
    {
        int n = weight.Length;
        for (int r = 0; r + n <= x.Length; r += n)
        {
            var row = x.Slice(r, n);
            float mean = TensorPrimitives.Sum(row) / n;
            TensorPrimitives.Subtract(row, mean, row);
            float variance = TensorPrimitives.SumOfSquares(row) / n;
            float scale = 1f / MathF.Sqrt(variance + eps);
            TensorPrimitives.Multiply(row, scale, row);
            TensorPrimitives.FusedMultiplyAdd(row, weight, bias, row);
        }
    }

    /// <summary>output[i, :] = table[ids[i], :]; an id outside the table is an error naming it.</summary>
    public static void Gather(ReadOnlySpan<float> table, int width, ReadOnlySpan<int> ids, Span<float> output, string what)
    {
        int rows = table.Length / width;
        for (int i = 0; i < ids.Length; i++)
        {
            int id = ids[i];
            if ((uint)id >= (uint)rows) throw new ArgumentOutOfRangeException(nameof(ids), $"{what} {id} is outside 0..{rows - 1}.");
            table.Slice(id * width, width).CopyTo(output.Slice(i * width, width));
        }
    }
}
