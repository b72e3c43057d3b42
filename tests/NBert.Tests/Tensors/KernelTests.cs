using NBert.Tensors;
using NBert.Schema;

namespace NBert.Tests.Tensors;

/// <summary>Kernels against values computed in float64 with Python's math module.</summary>
public class KernelTests
{
    [Theory]
    [InlineData(0.5, 0.5204998778130465)]
    [InlineData(1.0, 0.8427007929497149)]
    [InlineData(2.0, 0.9953222650189527)]
    [InlineData(-1.5, -0.9661051464753108)]
    [InlineData(3.0, 0.9999779095030014)]
    [InlineData(-0.1, -0.1124629160182849)]
    public void Erf_is_accurate_to_double_precision(double x, double expected) =>
        Assert.InRange(Kernels.Erf(x), expected - 2e-15, expected + 2e-15);

    // x, exact GELU, tanh GELU, SiLU (Python, float64)
    public static readonly TheoryData<float, double, double, double> Activations = new()
    {
        { 1f, 0.8413447460685429, 0.8411919906082768, 0.7310585786300049 },
        { -1f, -0.15865525393145707, -0.15880800939172324, -0.2689414213699951 },
        { 2f, 1.9544997361036416, 1.954597694087775, 1.7615941559557646 },
        { -3f, -0.00404969409489031, -0.0036373920817729943, -0.14227761953270035 },
        { 0.3f, 0.18537342665668577, 0.18537092354275922, 0.1723327550434977 },
    };

    [Theory, MemberData(nameof(Activations))]
    public void Activations_match_pytorch(float x, double gelu, double geluTanh, double silu)
    {
        float[] Apply(Action<float[]> f) { var a = new[] { x }; f(a); return a; }
        Assert.InRange(Apply(a => Kernels.Gelu(a))[0], gelu - 1e-6, gelu + 1e-6);
        Assert.InRange(Apply(a => Kernels.GeluTanh(a))[0], geluTanh - 1e-6, geluTanh + 1e-6);
        Assert.InRange(Apply(a => Kernels.Silu(a))[0], silu - 1e-6, silu + 1e-6);
        Assert.Equal(Math.Max(x, 0f), Apply(a => Kernels.Relu(a))[0]);
    }

    [Fact]
    public void Gelu_over_a_grid_stays_within_float_precision_of_the_exact_form_and_its_vector_lanes_give_the_scalar_bits()
    {
        // -10..10 in steps of 1/64 (160 vectors of 8 and a scalar tail of 1), and values whose exp(-x²/2) underflows.
        var x = Enumerable.Range(-640, 1281).Select(i => i / 64f).Concat([-30f, -14f, 14f, 30f]).ToArray();
        var y = (float[])x.Clone();
        Kernels.Gelu(y);
        double worst = 0;
        for (int i = 0; i < x.Length; i++)
        {
            double exact = 0.5 * x[i] * (1 + Kernels.Erf(x[i] / Math.Sqrt(2)));
            worst = Math.Max(worst, Math.Abs(y[i] - exact) / Math.Max(1, Math.Abs(x[i])));
            var alone = new[] { x[i] };
            Kernels.Gelu(alone); // the scalar path
            Assert.Equal(BitConverter.SingleToInt32Bits(y[i]), BitConverter.SingleToInt32Bits(alone[0]));
        }
        Assert.True(worst < 2e-7, $"largest error {worst:E2} · max(1, |x|)");
        Assert.Equal(0f, y[^4]);
        Assert.Equal(30f, y[^1]);
    }

    [Fact]
    public void Masked_softmax_gives_masked_keys_zero_and_rows_summing_to_one()
    {
        var scores = new float[] { 1f, 2f, 3f, 4f, 0f, 0f, 0f, 0f };
        Ops.MaskedSoftmax<float>(scores, 4, [1, 1, 0, 1]);
        double e1 = Math.Exp(1 - 4), e2 = Math.Exp(2 - 4), e4 = 1, sum = e1 + e2 + e4;
        Assert.Equal([e1 / sum, e2 / sum, 0, e4 / sum], scores.Take(4).Select(v => Math.Round(v, 6)), new RoundedComparer());
        Assert.All(scores.Skip(4).Where((_, j) => j != 2), v => Assert.Equal(1f / 3, v, 6));
        Assert.Equal(0f, scores[6]);
    }

    private sealed class RoundedComparer : IEqualityComparer<double>
    {
        public bool Equals(double a, double b) => Math.Abs(a - b) < 1e-6;
        public int GetHashCode(double d) => 0;
    }

    [Fact]
    public void Layer_norm_uses_the_biased_variance_and_eps()
    {
        var x = new float[] { 1f, 2f, 3f, 4f, 10f, 10f, 10f, 10f };
        float[] weight = [1f, 2f, 0.5f, -1f], bias = [0f, 1f, 0f, 0.5f];
        Ops.LayerNormForward<float>(x, x, weight, bias, 1e-5f);
        double mean = 2.5, variance = 1.25, inv = 1 / Math.Sqrt(variance + 1e-5);
        double[] expected = [(1 - mean) * inv, (2 - mean) * inv * 2 + 1, (3 - mean) * inv * 0.5, (4 - mean) * inv * -1 + 0.5];
        for (int i = 0; i < 4; i++) Assert.Equal(expected[i], x[i], 5);
        Assert.Equal([0f, 1f, 0f, 0.5f], x.Skip(4)); // a constant row normalises to the bias
    }
}
