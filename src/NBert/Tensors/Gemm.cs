using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace NBert.Tensors;

/// <summary>
/// <c>C[m,n] (+)= op(A) · op(B)</c> for the training code, which is generic over float32 and float64:
/// float32 goes to <see cref="Sgemm"/>; float64 (used to check gradients against float64 references on
/// small shapes) to a plain vectorised loop.
/// </summary>
public static class Gemm
{
    /// <summary>
    /// <c>C[m,n] = op(A) · op(B)</c>, or <c>+=</c> with <paramref name="accumulate"/>, over row-major buffers. Safe to call
    /// from several threads on different outputs.
    /// </summary>
    /// <param name="m">Rows of C and of op(A).</param>
    /// <param name="n">Columns of C and of op(B).</param>
    /// <param name="k">The inner dimension: columns of op(A), rows of op(B).</param>
    /// <param name="a">A as <c>[m, k]</c>, or <c>[k, m]</c> when <paramref name="transA"/>.</param>
    /// <param name="lda">A's row stride in elements (its column count for a dense matrix).</param>
    /// <param name="transA">Use Aᵀ (A stored <c>[k, m]</c>), as in a weight gradient dyᵀ · x.</param>
    /// <param name="b">B as <c>[k, n]</c>, or <c>[n, k]</c> when <paramref name="transB"/>.</param>
    /// <param name="ldb">B's row stride in elements.</param>
    /// <param name="transB">Use Bᵀ (B stored <c>[n, k]</c>), as a linear layer's weight <c>[out_features, in_features]</c> is used.</param>
    /// <param name="c">C as <c>[m, n]</c>.</param>
    /// <param name="ldc">C's row stride in elements.</param>
    /// <param name="accumulate">Add the product to C instead of overwriting it.</param>
    /// <param name="serial">Stay on the calling thread (float32; float64 always does), for callers that parallelise outside.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is negative.</exception>
    /// <exception cref="ArgumentException">A buffer or leading dimension is too small for the shapes.</exception>
    public static void Multiply<T>(int m, int n, int k, ReadOnlySpan<T> a, int lda, bool transA, ReadOnlySpan<T> b, int ldb, bool transB,
        Span<T> c, int ldc, bool accumulate = false, bool serial = false) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float))
        {
            var af = MemoryMarshal.Cast<T, float>(a);
            var bf = MemoryMarshal.Cast<T, float>(b);
            var cf = MemoryMarshal.Cast<T, float>(c);
            if (serial) Sgemm.MultiplySerial(m, n, k, af, lda, bf, ldb, transB, cf, ldc, accumulate, transA);
            else Sgemm.Multiply(m, n, k, af, lda, bf, ldb, transB, cf, ldc, accumulate, transA);
        }
        else
            Reference(m, n, k, a, lda, transA, b, ldb, transB, c, ldc, accumulate);
    }

    /// <summary>The straightforward product (rows of C as sums of rows of B, or as dot products).</summary>
    private static void Reference<T>(int m, int n, int k, ReadOnlySpan<T> a, int lda, bool transA, ReadOnlySpan<T> b, int ldb, bool transB,
        Span<T> c, int ldc, bool accumulate) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (m < 0 || n < 0 || k < 0) throw new ArgumentOutOfRangeException(nameof(m), $"Negative size m={m} n={n} k={k}.");
        if (m == 0 || n == 0) return;
        if (lda < (transA ? m : k) || ldb < (transB ? k : n) || ldc < n
            || (k > 0 && (a.Length < (transA ? (long)(k - 1) * lda + m : (long)(m - 1) * lda + k)
                || b.Length < (transB ? (long)(n - 1) * ldb + k : (long)(k - 1) * ldb + n)))
            || c.Length < (long)(m - 1) * ldc + n)
            throw new ArgumentException($"Buffers or leading dimensions too small for a {m}x{k} by {k}x{n} product.");
        Span<T> column = k <= 1024 ? stackalloc T[k] : new T[k];
        for (int i = 0; i < m; i++)
        {
            var row = c.Slice(i * ldc, n);
            if (!accumulate) row.Clear();
            for (int p = 0; p < k; p++) column[p] = transA ? a[p * lda + i] : a[i * lda + p];
            if (transB)
                for (int j = 0; j < n; j++) row[j] += TensorPrimitives.Dot<T>(column, b.Slice(j * ldb, k));
            else
                for (int p = 0; p < k; p++)
                    TensorPrimitives.FusedMultiplyAdd(b.Slice(p * ldb, n), column[p], row, row);
        }
    }
}
