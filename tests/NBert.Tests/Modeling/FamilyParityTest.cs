using NBert.IO;
using NBert.Modeling;

namespace NBert.Tests.Modeling;

/// <summary>
/// What the families' parity tests share: a family's fixture folder (<c>tests/fixtures/&lt;family&gt;</c>, made by
/// tools/FamilyReferences/make_references.py), its inputs and float64 references, and the comparison within a tolerance.
/// </summary>
public abstract class FamilyParityTest(string family) : TempDirectoryTest
{
    protected const double Float64Tolerance = 1e-6, Float32Tolerance = 1e-4;

    protected SafeTensorsFile Expected() => new(Fixtures.Path(family, "expected.safetensors"));

    /// <summary>The references' inputs; without token types for a family that takes none.</summary>
    protected static ModelInputs Inputs(SafeTensorsFile e, bool tokenTypes = true)
    {
        var shape = e.Info("input_ids").Shape;
        return new ModelInputs(shape[0], shape[1], Ints(e, "input_ids"), tokenTypes ? Ints(e, "token_type_ids") : null, Ints(e, "attention_mask"));
    }

    protected static int[] Ints(SafeTensorsFile e, string name) => e.ReadInt64(name).Select(v => (int)v).ToArray();

    protected static void Close(string what, ReadOnlySpan<double> expected, ReadOnlySpan<double> actual, double tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        double max = 0;
        for (int i = 0; i < expected.Length; i++) max = Math.Max(max, Math.Abs(expected[i] - actual[i]));
        Assert.True(max <= tolerance, $"{what}: max |difference| {max:E2} > {tolerance:E0}");
    }

    protected static void Close(string what, double[] expected, float[] actual) =>
        Close(what, expected, actual.Select(v => (double)v).ToArray(), Float32Tolerance);

    protected BertPreTrainedModel Load(string head) => BertPreTrainedModel.FromPretrained(Fixtures.Path(family, head));
}
