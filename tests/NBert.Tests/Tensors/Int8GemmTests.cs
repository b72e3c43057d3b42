using NBert.Tensors;
using Xunit.Abstractions;

namespace NBert.Tests.Tensors;

public class Int8QuantizationTests
{
    [Fact]
    public void A_row_is_scaled_by_its_largest_magnitude_and_rounded_half_to_even()
    {
        // max |x| = 127: scale 1, so each value is just rounded; halves go to the even neighbour.
        float[] x = [2.5f, -3.5f, 127f, 0.5f, 1.5f, -127f, 0f, -0.5f, 126.5f, 3.49f];
        var q = new sbyte[x.Length];
        Assert.Equal(1f, Int8Quantization.QuantizeRow(x, q));
        Assert.Equal(new sbyte[] { 2, -4, 127, 0, 2, -127, 0, 0, 126, 3 }, q);

        float[] y = [0.5f, -2f, 1.1f];
        Assert.Equal(2f / 127, Int8Quantization.QuantizeRow(y, q));
        Assert.Equal(new sbyte[] { 32, -127, 70 }, q[..3]); // 0.5·127/2 = 31.75, 1.1·127/2 = 69.85
    }

    [Fact]
    public void The_vector_loop_gives_each_value_the_integer_of_the_scalar_rule()
    {
        var rng = new Random(11);
        foreach (int length in new[] { 31, 32, 33, 101, 384, 1536 })
        {
            var x = Enumerable.Range(0, length).Select(_ => (float)((rng.NextDouble() * 2 - 1) * 3)).ToArray();
            // Values exactly on a half step, which the rounding must send to the even side on both loops.
            float max = x.Max(MathF.Abs);
            for (int i = 0; i < length; i += 7) x[i] = (MathF.Floor(x[i] / (max / 127)) + 0.5f) * (max / 127);
            var q = new sbyte[length];
            float scale = Int8Quantization.QuantizeRow(x, q);
            Assert.Equal(x.Max(MathF.Abs) / 127, scale);
            for (int i = 0; i < length; i++)
            {
                Assert.Equal(Int8Quantization.Level(x[i], scale), q[i]);
                Assert.Equal((sbyte)Math.Clamp((int)Math.Round(x[i] / scale, MidpointRounding.ToEven), -127, 127), q[i]);
                Assert.True(Math.Abs(x[i] - q[i] * scale) <= scale / 2 * 1.0001, $"{i}: {x[i]} -> {q[i]} · {scale}");
            }
            Assert.Equal(127, q.Max(v => Math.Abs((int)v)));
        }
    }

    [Fact]
    public void A_negated_row_quantizes_to_the_negated_integers_and_never_to_minus_128()
    {
        var rng = new Random(4);
        var x = Enumerable.Range(0, 77).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var q = new sbyte[77];
        var negated = new sbyte[77];
        float s1 = Int8Quantization.QuantizeRow(x, q), s2 = Int8Quantization.QuantizeRow(x.Select(v => -v).ToArray(), negated);
        Assert.Equal(s1, s2);
        Assert.Equal(q.Select(v => -v), negated.Select(v => (int)v));
        Assert.DoesNotContain(q, v => v == -128);
    }

    [Fact]
    public void A_zero_or_underflowing_row_has_scale_1_and_zeros()
    {
        var q = new sbyte[40];
        Assert.Equal(1f, Int8Quantization.QuantizeRow(new float[40], q));
        Assert.All(q, v => Assert.Equal(0, v));
        Assert.Equal(1f, Int8Quantization.QuantizeRow(Enumerable.Repeat(1e-44f, 40).ToArray(), q));
        Assert.All(q, v => Assert.Equal(0, v));
        Assert.Equal(1f, Int8Quantization.QuantizeRow([], q));
    }

    [Fact]
    public void A_non_finite_activation_row_gives_scale_nan_and_a_non_finite_weight_is_refused_naming_its_row()
    {
        var q = Enumerable.Repeat((sbyte)5, 40).ToArray();
        var x = Enumerable.Repeat(0.25f, 40).ToArray();
        x[33] = float.NaN;
        Assert.True(float.IsNaN(Int8Quantization.QuantizeRow(x, q)));
        Assert.All(q, v => Assert.Equal(0, v));
        var w = new float[3 * 4];
        w[6] = float.PositiveInfinity;
        var e = Assert.Throws<ArgumentException>(() => Int8Quantization.QuantizeWeight(w, 3, 4));
        Assert.Contains("row 1", e.Message);
        Assert.Throws<ArgumentException>(() => Int8Quantization.QuantizeWeight(new float[11], 3, 4));
    }

    [Fact]
    public void A_weight_is_quantized_row_by_row()
    {
        float[] w = [1.1f, -2f, 0.5f, 0f, 0f, 0f, 3f, 3f, -1.4f];
        var (values, scales) = Int8Quantization.QuantizeWeight(w, 3, 3);
        Assert.Equal(new[] { 2f / 127, 1f, 3f / 127 }, scales);
        Assert.Equal(new sbyte[] { 70, -127, 32, 0, 0, 0, 127, 127, -59 }, values); // 69.85, 31.75, -59.27
        var back = new float[3];
        Int8Quantization.DequantizeRow(values.AsSpan(6, 3), scales[2], back);
        Assert.Equal(new[] { 127 * (3f / 127), 127 * (3f / 127), -59 * (3f / 127) }, back);
    }
}

public class Int8GemmTests(ITestOutputHelper output)
{
    private static readonly Int8Path[] Supported = Enum.GetValues<Int8Path>().Where(Int8Gemm.IsSupported).ToArray();

    private static float[] Random(Random rng, int n, double range = 1) =>
        Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() * 2 - 1) * range)).ToArray();

    /// <summary>The definition, computed here from the rule's integers: exact integer sums (in long), then
    /// (float)sum · (scale_x · scale_w) + bias + C, the operations in that order; for a row with huge channels, then
    /// + (float)sum_r · (scale_r · scale_w), the same for its remainder r = x − xq · scale_x.</summary>
    private static float[] Reference(int m, int n, int k, float[] a, int lda, float[] w, float[]? bias, float[] c, int ldc, bool accumulate)
    {
        var (wq, ws) = Int8Quantization.QuantizeWeight(w, n, k, Int8Quantization.EngineWeightLevel);
        var result = (float[])c.Clone();
        var xq = new sbyte[k];
        var rq = new sbyte[k];
        var remainder = new float[k];
        for (int i = 0; i < m; i++)
        {
            var x = a.AsSpan(i * lda, k);
            float xs = Int8Quantization.QuantizeRow(x, xq);
            bool twice = Int8Quantization.NeedsSecondPass(x);
            for (int p = 0; p < k; p++) remainder[p] = x[p] - xq[p] * xs;
            float rs = Int8Quantization.QuantizeRow(remainder, rq);
            for (int j = 0; j < n; j++)
            {
                float v = Sum(xq, j) * (xs * ws[j]);
                if (bias != null) v += bias[j];
                if (accumulate) v += c[i * ldc + j];
                if (twice) v += Sum(rq, j) * (rs * ws[j]);
                result[i * ldc + j] = v;
            }
        }
        return result;

        int Sum(sbyte[] q, int j)
        {
            long sum = 0;
            for (int p = 0; p < k; p++) sum += q[p] * wq[j * k + p];
            Assert.InRange(sum, int.MinValue, int.MaxValue);
            return (int)sum;
        }
    }

    private static void AssertSameBits(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{what}: element {i} is {actual[i]:R}, not {expected[i]:R}");
    }

    [Fact]
    public void The_best_path_is_the_fastest_this_machine_supports()
    {
        output.WriteLine($"Avx2 {System.Runtime.Intrinsics.X86.Avx2.IsSupported}, Avx512F {System.Runtime.Intrinsics.X86.Avx512F.IsSupported}, " +
            $"Avx512BW {System.Runtime.Intrinsics.X86.Avx512BW.IsSupported}, AvxVnni {System.Runtime.Intrinsics.X86.AvxVnni.IsSupported}; " +
            $"best int8 path {Int8Gemm.Best}; paths tested here: {string.Join(", ", Supported)}");
        var expected = new[] { Int8Path.AvxVnni, Int8Path.Avx512BW, Int8Path.Avx2, Int8Path.Scalar }.First(Int8Gemm.IsSupported);
        Assert.Equal(expected, Int8Gemm.Best);
        Assert.Contains(Int8Path.Scalar, Supported);
        foreach (var path in Enum.GetValues<Int8Path>().Where(p => !Int8Gemm.IsSupported(p)))
            Assert.Throws<PlatformNotSupportedException>(() =>
                Int8Gemm.Multiply(path, 1, new float[4], 4, new Int8PackedWeight(new float[4], 1, 4), new float[1], 1, false, default, 1));
    }

    public static readonly TheoryData<int, int, int, bool, bool> Shapes = new()
    {
        // m, out, in, bias, accumulate. A lone row, inputs not a multiple of 4 or 32, outputs not a multiple of a tile.
        { 1, 1, 1, false, false }, { 1, 384, 384, true, false }, { 5, 13, 7, true, false }, { 7, 37, 33, false, true },
        { 9, 31, 3, true, true }, { 13, 100, 65, true, false }, { 4, 5, 0, true, false }, { 97, 129, 130, true, false },
        // Big enough to be split over threads: by rows (m > out) and by columns.
        { 300, 50, 31, true, false }, { 3, 1000, 70, true, true }, { 61, 70, 1030, false, false }, { 130, 96, 384, true, false },
    };

    [Fact]
    public void A_row_with_a_few_huge_channels_takes_a_second_pass_and_one_without_does_not()
    {
        // 384 values within ±1 and one channel at 400: max / rms = 400 / sqrt((400² + 383/3) / 384) ≈ 19.5 > 16.
        var rng = new Random(5);
        var row = Random(rng, 384);
        Assert.False(Int8Quantization.NeedsSecondPass(row));
        row[7] = 400;
        Assert.True(Int8Quantization.NeedsSecondPass(row));
        row[7] = 20; // 20 / sqrt((400 + 383/3) / 384) ≈ 17.0 > 16, still; at 15 it is 13.6
        Assert.True(Int8Quantization.NeedsSecondPass(row));
        row[7] = 15;
        Assert.False(Int8Quantization.NeedsSecondPass(row));

        // On that row, the second pass cuts the error that quantizing the activations adds (against the product with
        // the int8 weights, taken as they are) by 10x or more.
        row[7] = 400;
        var w = Random(rng, 64 * 384, 0.2);
        var (wq, ws) = Int8Quantization.QuantizeWeight(w, 64, 384, Int8Quantization.EngineWeightLevel);
        var exact = new double[64];
        for (int j = 0; j < 64; j++)
            for (int p = 0; p < 384; p++) exact[j] += (double)row[p] * wq[j * 384 + p] * ws[j];
        var y = new float[64];
        Int8Gemm.Multiply(1, row, 384, new Int8PackedWeight(w, 64, 384), y, 64);
        var xq = new sbyte[384];
        float xs = Int8Quantization.QuantizeRow(row, xq);
        double onePass = 0, twoPasses = 0;
        for (int j = 0; j < 64; j++)
        {
            double once = 0;
            for (int p = 0; p < 384; p++) once += (double)xq[p] * wq[j * 384 + p];
            onePass += Math.Pow(once * xs * ws[j] - exact[j], 2);
            twoPasses += Math.Pow(y[j] - exact[j], 2);
        }
        output.WriteLine($"error of the product on the row: one pass {Math.Sqrt(onePass):G4}, two passes {Math.Sqrt(twoPasses):G4}");
        Assert.True(twoPasses * 100 < onePass, $"two passes {Math.Sqrt(twoPasses):G4}, one pass {Math.Sqrt(onePass):G4}");
    }

    [Theory, MemberData(nameof(Shapes))]
    public void Every_path_gives_the_definitions_bits_on_every_shape(int m, int n, int k, bool withBias, bool accumulate)
    {
        var rng = new Random(m * 7919 + n * 31 + k);
        // Leading dimensions wider than the matrices, as attention reads slices of a wider buffer.
        int lda = k + 3, ldc = n + 2;
        var a = Random(rng, Math.Max(1, m * lda), 4);
        // Every third row has one huge channel, as BERT's [CLS] and [SEP] states do: those rows take the second pass.
        if (k >= 2)
            for (int i = 0; i < m; i += 3) a[i * lda + i % k] = 400;
        var w = Random(rng, n * k, 0.2);
        var bias = withBias ? Random(rng, n) : null;
        var c = Random(rng, m * ldc);
        // Columns of C beyond n must come back untouched.
        for (int i = 0; i < m; i++) c[i * ldc + n] = c[i * ldc + n + 1] = 42f;
        var expected = Reference(m, n, k, a, lda, w, bias, c, ldc, accumulate);
        var packed = new Int8PackedWeight(w, n, k);
        foreach (var path in Supported)
            foreach (int threads in new[] { 1, 2 })
            {
                var y = (float[])c.Clone();
                Int8Gemm.Multiply(path, m, a, lda, packed, y, ldc, accumulate, bias, threads);
                AssertSameBits(expected, y, $"{path}, {threads} thread(s), m={m} out={n} in={k}");
            }
    }

    [Fact]
    public unsafe void The_packed_weight_holds_the_rules_integers_scales_and_column_sums_and_zero_padding()
    {
        // What the vector paths subtract (128 · the column's integer sum); the padding columns and inputs must be
        // zeros, which add nothing to a sum. The weights have 63 levels (EngineWeightLevel), the rule's 7-bit form.
        var rng = new Random(2);
        int n = 37, k = 10;
        var w = Random(rng, n * k);
        var (values, scales) = Int8Quantization.QuantizeWeight(w, n, k, Int8Quantization.EngineWeightLevel);
        Assert.Equal(Int8Quantization.EngineWeightLevel, values.Max(v => Math.Abs((int)v)));
        var packed = new Int8PackedWeight(w, n, k);
        Assert.Equal((12, 64), (packed.PaddedK, packed.PaddedN));
        for (int j = 0; j < packed.PaddedN; j++)
        {
            Assert.Equal(j < n ? scales[j] : 0f, packed.Scales[j]);
            Assert.Equal(j < n ? 128 * values.Skip(j * k).Take(k).Sum(v => v) : 0, packed.ColumnSums128[j]);
            for (int p = 0; p < packed.PaddedK; p++)
            {
                sbyte stored = packed.Pointer[j / 16 * packed.PaddedK * 16 + p / 4 * 64 + j % 16 * 4 + p % 4];
                Assert.Equal(j < n && p < k ? values[j * k + p] : 0, stored);
            }
        }
    }

    [Fact]
    public unsafe void The_offset_and_column_sum_correction_give_the_exact_sums()
    {
        // What the vector kernels compute, lane by lane, in scalar form: each activation byte with its top bit
        // flipped, read as unsigned (x + 128), times the packed weight, summed, minus ColumnSums128. Extreme and
        // random activations, every column of a weight with padding.
        var rng = new Random(12);
        int n = 21, k = 9;
        var w = Random(rng, n * k);
        w[0] = 1f; w[1] = -1f; // row 0 reaches ±63
        var (values, _) = Int8Quantization.QuantizeWeight(w, n, k, Int8Quantization.EngineWeightLevel);
        var packed = new Int8PackedWeight(w, n, k);
        var rows = new[] { Enumerable.Repeat((sbyte)127, k).ToArray(), Enumerable.Repeat((sbyte)-127, k).ToArray(),
            Enumerable.Range(0, k).Select(_ => (sbyte)rng.Next(-127, 128)).ToArray() };
        foreach (var x in rows)
            for (int j = 0; j < n; j++)
            {
                int offsetSum = 0, exact = 0;
                for (int p = 0; p < packed.PaddedK; p++)
                {
                    sbyte xp = p < k ? x[p] : (sbyte)0;
                    byte unsigned = (byte)(xp ^ unchecked((sbyte)0x80));
                    Assert.Equal(xp + 128, unsigned);
                    offsetSum += unsigned * packed.Pointer[j / 16 * packed.PaddedK * 16 + p / 4 * 64 + j % 16 * 4 + p % 4];
                    if (p < k) exact += x[p] * values[j * k + p];
                }
                Assert.Equal(exact, offsetSum - packed.ColumnSums128[j]);
            }
    }

    [Fact]
    public void Extreme_values_do_not_saturate_the_integer_sums()
    {
        // Every quantized value is at its extreme (rows of equal magnitudes): activations ±127, offset to 1 or 255, and
        // weights ±63, so each vpmaddubsw pair reaches 2·255·63 = 32,130, just inside int16's 32,767, and a long row
        // sums to ±in·127·63 in int32. 127-level weights would clip such pairs at 32,767 and give other sums.
        var rng = new Random(8);
        int m = 11, n = 40, k = 4099;
        var sign = () => rng.Next(2) == 0 ? -1f : 1f;
        var a = new float[m * k];
        for (int i = 0; i < m; i++)
        {
            float magnitude = 0.5f + i;
            for (int p = 0; p < k; p++)
                // Rows 0 and 1 all one sign, the others mixed; row 2 alternates in pairs (+ + - - ...).
                a[i * k + p] = magnitude * (i == 0 ? 1 : i == 1 ? -1 : i == 2 ? (p / 2 % 2 == 0 ? 1 : -1) : sign());
        }
        var w = new float[n * k];
        for (int j = 0; j < n; j++)
            for (int p = 0; p < k; p++)
                w[j * k + p] = 0.25f * (j == 0 ? 1 : j == 1 ? -1 : j == 2 ? (p / 2 % 2 == 0 ? 1 : -1) : sign());
        var packed = new Int8PackedWeight(w, n, k);
        var expected = new float[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                long sum = 0;
                for (int p = 0; p < k; p++) sum += (a[i * k + p] > 0 ? 127 : -127) * (w[j * k + p] > 0 ? 63 : -63);
                expected[i * n + j] = (int)sum * ((0.5f + i) / 127 * (0.25f / 63));
            }
        Assert.Equal(k * 127f * 63f * ((0.5f / 127) * (0.25f / 63)), expected[0]); // all +: in·127·63
        Assert.Equal(-k * 127f * 63f * ((0.5f / 127) * (0.25f / 63)), expected[1]); // + by -
        foreach (var path in Supported)
        {
            var y = new float[m * n];
            Int8Gemm.Multiply(path, m, a, k, packed, y, n, false, default, 1);
            AssertSameBits(expected, y, path.ToString());
        }
    }

    [Fact]
    public void A_row_gives_the_same_bits_alone_or_in_a_batch_on_the_default_path()
    {
        var rng = new Random(3);
        int m = 29, n = 70, k = 300;
        var a = Random(rng, m * k);
        var w = Random(rng, n * k);
        var bias = Random(rng, n);
        var packed = new Int8PackedWeight(w, n, k);
        var all = new float[m * n];
        Int8Gemm.Multiply(m, a, k, packed, all, n, bias: bias);
        for (int i = 0; i < m; i++)
        {
            var alone = new float[n];
            Int8Gemm.Multiply(1, a.AsSpan(i * k, k), k, packed, alone, n, bias: bias);
            AssertSameBits(all.AsSpan(i * n, n).ToArray(), alone, $"row {i}");
        }
    }

    [Fact]
    public void A_row_with_a_nan_gives_a_nan_row_and_the_others_are_unaffected()
    {
        var rng = new Random(6);
        int m = 3, n = 20, k = 40;
        var a = Random(rng, m * k);
        var packed = new Int8PackedWeight(Random(rng, n * k), n, k);
        var clean = new float[m * n];
        Int8Gemm.Multiply(m, a, k, packed, clean, n);
        a[k + 5] = float.NaN;
        var y = new float[m * n];
        Int8Gemm.Multiply(m, a, k, packed, y, n);
        Assert.All(y.AsSpan(n, n).ToArray(), v => Assert.True(float.IsNaN(v)));
        AssertSameBits(clean[..n], y[..n], "row 0");
        AssertSameBits(clean[(2 * n)..], y[(2 * n)..], "row 2");
    }

    [Fact]
    public void Bad_sizes_are_refused()
    {
        Assert.Throws<ArgumentException>(() => new Int8PackedWeight(new float[10], 3, 4));
        Assert.Throws<ArgumentException>(() => new Int8PackedWeight(new float[Int8Gemm.MaxK + 1], 1, Int8Gemm.MaxK + 1));
        var packed = new Int8PackedWeight(new float[12], 3, 4);
        Assert.Throws<ArgumentException>(() => Int8Gemm.Multiply(2, new float[7], 4, packed, new float[6], 3));   // A short
        Assert.Throws<ArgumentException>(() => Int8Gemm.Multiply(2, new float[8], 3, packed, new float[6], 3));   // lda < in
        Assert.Throws<ArgumentException>(() => Int8Gemm.Multiply(2, new float[8], 4, packed, new float[5], 3));   // C short
        Assert.Throws<ArgumentException>(() => Int8Gemm.Multiply(2, new float[8], 4, packed, new float[6], 3, bias: new float[2]));
    }
}
