using NBert.Tensors;

namespace NBert.Tests.Tensors;

public class SgemmTests
{
    private static float[] Random(Random rng, int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();

    /// <summary>float64 reference: C = (accumulate ? C : 0) + op(A) · op(B).</summary>
    private static double[] Reference(int m, int n, int k, float[] a, int lda, float[] b, int ldb, bool transB, float[] c, int ldc, bool accumulate,
        bool transA = false)
    {
        var r = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = accumulate ? c[i * ldc + j] : 0;
                for (int p = 0; p < k; p++) s += (double)(transA ? a[p * lda + i] : a[i * lda + p]) * (transB ? b[j * ldb + p] : b[p * ldb + j]);
                r[i * n + j] = s;
            }
        return r;
    }

    public static readonly TheoryData<int, int, int, bool, bool, bool> Shapes = new()
    {
        { 1, 1, 1, false, false, false }, { 6, 16, 8, true, false, false }, { 7, 17, 9, false, false, false }, { 13, 37, 300, true, false, false },
        { 5, 3, 0, false, false, false }, { 5, 3, 0, true, true, false }, { 100, 70, 520, true, true, false }, { 97, 1030, 33, false, true, false },
        { 128, 64, 128, false, false, false }, { 250, 300, 64, true, false, false },
        // A transposed (weight gradients: dYᵀ · X), including an m split over threads.
        { 7, 17, 9, false, false, true }, { 13, 37, 300, true, false, true }, { 100, 70, 520, false, true, true }, { 600, 40, 100, false, true, true },
        { 6, 16, 8, true, false, true },
    };

    [Theory, MemberData(nameof(Shapes))]
    public void Matches_a_float64_reference_on_every_shape(int m, int n, int k, bool transB, bool accumulate, bool transA)
    {
        var rng = new Random(m * 1000 + n * 10 + k);
        // Leading dimensions wider than the matrices, as attention reads head slices of a wider buffer.
        int lda = (transA ? m : k) + 3, ldb = (transB ? k : n) + 5, ldc = n + 2;
        var a = Random(rng, (transA ? Math.Max(k, 1) : m) * lda);
        var b = Random(rng, (transB ? n : Math.Max(k, 1)) * ldb);
        var c = Random(rng, m * ldc);
        var expected = Reference(m, n, k, a, lda, b, ldb, transB, c, ldc, accumulate, transA);
        var serial = (float[])c.Clone();
        Sgemm.Multiply(m, n, k, a, lda, b, ldb, transB, c, ldc, accumulate, transA);
        Sgemm.MultiplySerial(m, n, k, a, lda, b, ldb, transB, serial, ldc, accumulate, transA);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                Assert.True(Math.Abs(c[i * ldc + j] - expected[i * n + j]) <= 1e-4 * Math.Max(1, Math.Sqrt(k)), $"({i},{j}): {c[i * ldc + j]} vs {expected[i * n + j]}");
                Assert.Equal(c[i * ldc + j], serial[i * ldc + j]);
            }
    }

    [Fact]
    public void Columns_beyond_n_in_a_wider_c_are_left_alone()
    {
        var rng = new Random(5);
        int m = 9, n = 20, k = 11, ldc = 24;
        var a = Random(rng, m * k);
        var b = Random(rng, n * k);
        var c = Enumerable.Repeat(42f, m * ldc).ToArray();
        Sgemm.Multiply(m, n, k, a, k, b, k, transB: true, c, ldc);
        for (int i = 0; i < m; i++)
            for (int j = n; j < ldc; j++) Assert.Equal(42f, c[i * ldc + j]);
    }

    [Theory]
    [InlineData(3, 40, 700)]     // n split over threads, several K blocks, a partial column panel
    [InlineData(300, 37, 260)]   // m split over threads
    [InlineData(128, 2000, 64)]  // more columns than one NC block
    public void A_weight_packed_once_gives_the_same_result_as_packing_on_the_fly(int m, int n, int k)
    {
        var rng = new Random(m + n + k);
        var a = Random(rng, m * k);
        var w = Random(rng, n * k);
        var expected = new float[m * n];
        Sgemm.Multiply(m, n, k, a, k, w, k, transB: true, expected, n);
        var packed = new PackedWeight(w, n, k);
        var c = new float[m * n];
        Sgemm.Multiply(m, a, k, packed, c, n);
        Assert.Equal(expected, c);
    }

    [Theory]
    [InlineData(3, 40, 700)]    // n split, several K blocks, an edge tile
    [InlineData(301, 37, 260)]  // m split, edge rows and columns
    [InlineData(7, 16, 0)]      // no k at all: just the bias
    public void The_bias_added_as_tiles_are_stored_equals_adding_it_afterwards(int m, int n, int k)
    {
        var rng = new Random(m * n + k);
        var a = Random(rng, Math.Max(1, m * k));
        var w = Random(rng, Math.Max(1, n * k));
        var bias = Random(rng, n);
        var packed = new PackedWeight(w, n, k);
        var expected = new float[m * n];
        Sgemm.Multiply(m, a, Math.Max(k, 1), packed, expected, n);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) expected[i * n + j] += bias[j];
        var c = Enumerable.Repeat(float.NaN, m * n).ToArray(); // overwritten, never read
        Sgemm.Multiply(m, a, Math.Max(k, 1), packed, c, n, bias: bias);
        // Same sum, other association of the last two float additions: within a couple of ulps.
        for (int i = 0; i < c.Length; i++)
            Assert.True(Math.Abs(expected[i] - c[i]) <= 1e-6 * Math.Max(1, Math.Abs(expected[i])), $"{i}: {c[i]} vs {expected[i]}");
    }

    [Fact]
    public void Too_small_buffers_are_refused()
    {
        Assert.Throws<ArgumentException>(() => Sgemm.Multiply(4, 4, 4, new float[15], 4, new float[16], 4, false, new float[16], 4));
        Assert.Throws<ArgumentException>(() => Sgemm.Multiply(4, 4, 4, new float[16], 3, new float[16], 4, false, new float[16], 4));
    }

    [Fact]
    public void A_row_gives_the_same_bits_in_any_position_of_the_product()
    {
        // K over one block of 256 (so the last block adds to C) with a bias: the edge tiles (a lone row, the
        // last rows, the last columns) must add in the full tile's order, or a sentence's output would depend on
        // the batch it ran in.
        var rng = new Random(3);
        int m = 13, n = 20, k = 300;
        var a = Random(rng, m * k);
        var w = Random(rng, n * k);
        var bias = Random(rng, n);
        var packed = new PackedWeight(w, n, k);
        var all = new float[m * n];
        Sgemm.Multiply(m, a, k, packed, all, n, bias: bias);
        for (int i = 0; i < m; i++)
        {
            var alone = new float[n];
            Sgemm.Multiply(1, a.AsSpan(i * k, k), k, packed, alone, n, bias: bias);
            Assert.Equal(all.AsSpan(i * n, n).ToArray().Select(BitConverter.SingleToInt32Bits), alone.Select(BitConverter.SingleToInt32Bits));
        }
    }
}

public class SgemmPathTests
{
    private static readonly Sgemm.Path[] Supported = Enum.GetValues<Sgemm.Path>().Where(Sgemm.IsSupported).ToArray();

    private static float[] Random(Random rng, int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();

    public static readonly TheoryData<int, int, int, bool, bool> Shapes = new()
    {
        // m, n, k, transB, accumulate. 12x32 tiles with every kind of edge: rows left over after pairs of 6-row panels
        // (25 = 12 + 12 + 1, 30 = 24 + 6), columns after pairs of 16-column panels (70 = 64 + 6, 48 = 32 + 16), more than
        // one block of k (300), of m (MC = 96) and of n (NC = 1024), and products split over threads.
        { 25, 70, 300, true, false }, { 30, 48, 17, false, true }, { 12, 32, 1, true, false }, { 1, 200, 64, true, true },
        { 200, 40, 260, false, false }, { 130, 1100, 40, true, false }, { 11, 31, 9, true, true }, { 97, 96, 128, false, false },
    };

    [Theory, MemberData(nameof(Shapes))]
    public void Every_kernel_matches_a_float64_reference_and_the_fma_kernels_give_the_same_bits(int m, int n, int k, bool transB, bool accumulate)
    {
        var rng = new Random(m * 100 + n + k);
        int lda = k + 3, ldb = (transB ? k : n) + 5, ldc = n + 2;
        var a = Random(rng, m * lda);
        var b = Random(rng, (transB ? n : k) * ldb);
        var c = Random(rng, m * ldc);
        var results = new Dictionary<(Sgemm.Path, int), float[]>();
        foreach (var path in Supported)
            foreach (int threads in new[] { 1, 2 })
            {
                var y = (float[])c.Clone();
                Sgemm.Multiply(path, threads, m, n, k, a, lda, b, ldb, transB, y, ldc, accumulate);
                results[(path, threads)] = y;
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++)
                    {
                        double s = accumulate ? c[i * ldc + j] : 0;
                        for (int p = 0; p < k; p++) s += (double)a[i * lda + p] * (transB ? b[j * ldb + p] : b[p * ldb + j]);
                        Assert.True(Math.Abs(y[i * ldc + j] - s) <= 1e-4 * Math.Max(1, Math.Sqrt(k)), $"{path}, {threads} threads, ({i},{j}): {y[i * ldc + j]} vs {s}");
                    }
            }
        // FMA kernels (AVX2 6x16, AVX-512 12x32) do the same operations per output in the same order: the same bits,
        // on any number of threads.
        var fma = results.Where(r => r.Key.Item1 != Sgemm.Path.Portable).ToArray();
        foreach (var (key, y) in fma)
            Assert.True(fma[0].Value.AsSpan().SequenceEqual(y), $"{key} differs from {fma[0].Key}");
    }

    [Fact]
    public void A_packed_weight_with_a_bias_gives_the_same_bits_on_the_avx2_and_avx512_kernels()
    {
        var rng = new Random(9);
        int m = 37, n = 100, k = 300;
        var a = Random(rng, m * k);
        var w = Random(rng, n * k);
        var bias = Random(rng, n);
        var packed = new PackedWeight(w, n, k);
        var reference = new float[m * n];
        Sgemm.Multiply(Sgemm.Path.Portable, 1, m, a, k, packed, reference, n, bias: bias);
        float[]? first = null;
        foreach (var path in Supported.Where(p => p != Sgemm.Path.Portable))
        {
            var y = new float[m * n];
            Sgemm.Multiply(path, 2, m, a, k, packed, y, n, bias: bias);
            for (int i = 0; i < y.Length; i++)
                Assert.True(Math.Abs(y[i] - reference[i]) <= 1e-4 * Math.Sqrt(k), $"{path} [{i}]: {y[i]} vs {reference[i]}");
            first ??= y;
            Assert.Equal(first, y);
        }
    }

    [Fact]
    public void The_best_kernel_is_the_widest_this_machine_supports()
    {
        Assert.Equal(new[] { Sgemm.Path.Avx512, Sgemm.Path.Avx2, Sgemm.Path.Portable }.First(Sgemm.IsSupported), Sgemm.Best);
        foreach (var path in Enum.GetValues<Sgemm.Path>().Where(p => !Sgemm.IsSupported(p)))
            Assert.Throws<PlatformNotSupportedException>(() => Sgemm.Multiply(path, 1, 1, 1, 1, new float[1], 1, new float[1], 1, false, new float[1], 1));
    }
}
