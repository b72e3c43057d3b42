using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace NBert.Tensors;

/// <summary>
/// The one int8 quantization rule of NBert, shared by the int8 engine (the int8 GEMM, <c>Int8Gemm</c>) and the ONNX export of
/// a quantized model.
/// <para>
/// <b>Symmetric, per row, L levels each side.</b> A row is one output channel of a linear layer's weight
/// (a row of the <c>[out_features, in_features]</c> matrix PyTorch stores), or one token's activations at run time.
/// For a row <c>x</c>: <c>scale = max|x| / L</c>, and each value becomes
/// <c>q = clamp(round_half_to_even(x / scale), -L, L)</c>, so <c>x ≈ q · scale</c>. The zero point is 0 and
/// -128 is never used: the range is symmetric, so a value and its negation quantize to negated integers.
/// L is 127 (<see cref="MaxLevel"/>) for activations, the int8 word-embedding table and the ONNX export's weights, and
/// 63 (<see cref="EngineWeightLevel"/>, 7 bits) for the weights of the engine's own int8 linear layers, which keeps the
/// byte products of <c>Int8Gemm</c>'s kernels exact without a sign trick (see there).
/// A row whose scale is 0 (all zeros, or values so small that max/L underflows) gets scale 1 and all-zero values.
/// </para>
/// <para>
/// Weights must be finite (a NaN or infinity is refused, naming the row). Activations are quantized on every call;
/// a row holding a NaN or an infinity gets scale NaN and zero values, so the layer's output row is NaN, as float32's
/// would be, rather than a finite value computed from garbage.
/// </para>
/// <para>
/// In ONNX terms (what the export writes): weights as an int8 initializer with a float per-channel scale along axis
/// 0 and zero point 0; this is the form of ONNX Runtime's <c>quantize_dynamic</c> with <c>per_channel=True</c> and
/// symmetric int8 weights, except that NBert's activations are scaled per row (token), not per tensor.
/// </para>
/// </summary>
internal static class Int8Quantization
{
    /// <summary>The largest integer used: values lie in [-127, 127].</summary>
    public const int MaxLevel = 127;

    /// <summary>The largest integer of the engine's int8 linear-layer weights: [-63, 63]. Against activations offset to
    /// 0..255, a pair of byte products is at most 2·255·63 = 32,130, inside vpmaddubsw's int16 (see <c>Int8Gemm</c>).
    /// On all-MiniLM-L6-v2 this cost 0.0014 of the lowest sentence-embedding cosine to float32 (0.99468 to 0.99328 on
    /// the 40 fixture texts) and made the kernels 1.8x faster than 127 levels with the sign trick.</summary>
    public const int EngineWeightLevel = 63;

    /// <summary>The scale for a row whose largest magnitude is <paramref name="maxAbs"/>: maxAbs / level, 1 for a row
    /// that quantizes to zeros, NaN for a non-finite row.</summary>
    public static float Scale(float maxAbs, int level = MaxLevel)
    {
        if (!float.IsFinite(maxAbs)) return float.NaN;
        float scale = maxAbs / level;
        return scale > 0 ? scale : 1f;
    }

    /// <summary>Quantizes one row into <paramref name="q"/> (the same length) with <paramref name="level"/> levels each
    /// side (1 to 127) and returns its scale.</summary>
    public static float QuantizeRow(ReadOnlySpan<float> x, Span<sbyte> q, int level = MaxLevel)
    {
        if (level is < 1 or > MaxLevel) throw new ArgumentOutOfRangeException(nameof(level), $"{level} levels: 1 to {MaxLevel}.");
        return QuantizeRow(x, q, level, x.IsEmpty ? 0 : MathF.Abs(TensorPrimitives.MaxMagnitude(x)), offset: false);
    }

    /// <summary>
    /// The same with the row's largest magnitude already known (the engine also needs it for
    /// <see cref="NeedsSecondPass(ReadOnlySpan{float}, float)"/>); with <paramref name="offset"/> each integer is stored
    /// as x + 128 read as an unsigned byte (its top bit flipped), the form the int8 kernels multiply.
    /// </summary>
    internal static unsafe float QuantizeRow(ReadOnlySpan<float> x, Span<sbyte> q, int level, float maxAbs, bool offset)
    {
        if (q.Length < x.Length) throw new ArgumentException($"{q.Length} int8 values for a row of {x.Length}.");
        if (x.IsEmpty) return 1f;
        sbyte flip = offset ? unchecked((sbyte)0x80) : (sbyte)0;
        float scale = Scale(maxAbs, level);
        if (float.IsNaN(scale))
        {
            q[..x.Length].Fill(flip);
            return scale;
        }
        int i = 0;
        if (Vector256.IsHardwareAccelerated && x.Length >= 32)
        {
            // 32 at a time, the same operations as the scalar loop below (an IEEE division, rounding half to even),
            // so a value's integer does not depend on where in the row it falls.
            var s = Vector256.Create(scale);
            var top = Vector256.Create(level);
            var flips = Vector256.Create(flip);
            fixed (float* px = x)
                for (; i + 32 <= x.Length; i += 32)
                {
                    var words = Vector256.Narrow(Vector256.Narrow(Levels(px + i, s, top), Levels(px + i + 8, s, top)),
                        Vector256.Narrow(Levels(px + i + 16, s, top), Levels(px + i + 24, s, top)));
                    (words ^ flips).CopyTo(q[i..]);
                }
        }
        for (; i < x.Length; i++) q[i] = (sbyte)(Level(x[i], scale, level) ^ flip);
        return scale;
    }

    private static unsafe Vector256<int> Levels(float* x, Vector256<float> scale, Vector256<int> level) =>
        Vector256.Min(Vector256.Max(Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(x) / scale)), -level), level);

    /// <summary>A row whose largest magnitude is more than this many times its root mean square gets a second pass.</summary>
    public const float SecondPassRatio = 16;

    /// <summary>
    /// Whether one scale for the whole row leaves its typical values too few levels: max|x| &gt; 16 · rms(x). A token's
    /// hidden state in BERT is mostly like that when a few channels carry huge values (the [CLS] and [SEP] tokens'
    /// "massive activations"): at a ratio of 16 the typical value gets about 8 of the 127 levels, a relative error near
    /// 4%, which is what kept all-MiniLM-L6-v2's int8 embedding of a short text at cosine 0.986. <see cref="Int8Gemm"/>
    /// quantizes such a row's remainder (x − q·scale, at most half a level in every channel) once more and adds its
    /// product: two int8 passes for those rows only, which gives them about 14 bits.
    /// </summary>
    public static bool NeedsSecondPass(ReadOnlySpan<float> x) => !x.IsEmpty && NeedsSecondPass(x, MathF.Abs(TensorPrimitives.MaxMagnitude(x)));

    /// <summary>The same with the row's largest magnitude <paramref name="max"/> already known.</summary>
    internal static bool NeedsSecondPass(ReadOnlySpan<float> x, float max)
    {
        if (x.IsEmpty) return false;
        // max > ratio · sqrt(sumsq / n)  <=>  n · max² > ratio² · sumsq (no square root, no division).
        return (double)x.Length * max * max > (double)SecondPassRatio * SecondPassRatio * TensorPrimitives.SumOfSquares(x);
    }

    /// <summary>One value's integer: clamp(round_half_to_even(x / scale), -level, level).</summary>
    public static sbyte Level(float x, float scale, int level = MaxLevel) => (sbyte)Math.Clamp((int)MathF.Round(x / scale), -level, level);

    /// <summary>
    /// Quantizes a weight <c>[rows, cols]</c> (row-major, a linear layer's <c>[out_features, in_features]</c>) per row with
    /// <paramref name="level"/> levels each side: the integers row-major into <paramref name="q"/>, one scale per row
    /// into <paramref name="scales"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The buffers are too small, or the weight holds a NaN or an infinity.</exception>
    public static void QuantizeWeight(ReadOnlySpan<float> w, int rows, int cols, Span<sbyte> q, Span<float> scales, int level = MaxLevel)
    {
        if (rows < 0 || cols < 0) throw new ArgumentOutOfRangeException(nameof(rows), $"A {rows}x{cols} weight.");
        long count = (long)rows * cols;
        if (w.Length < count || q.Length < count || scales.Length < rows)
            throw new ArgumentException($"A {rows}x{cols} weight needs {count} values, {count} int8 values and {rows} scales, " +
                $"not {w.Length}, {q.Length} and {scales.Length}.");
        for (int r = 0; r < rows; r++)
        {
            var row = w.Slice(r * cols, cols);
            if (HasNonFinite(row, out int at))
                throw new ArgumentException($"The weight's row {r} holds {row[at]} at column {at}: only finite weights can be quantized.");
            scales[r] = QuantizeRow(row, q.Slice(r * cols, cols), level);
        }
    }

    /// <summary><see cref="QuantizeWeight(ReadOnlySpan{float}, int, int, Span{sbyte}, Span{float}, int)"/> into new arrays.</summary>
    public static (sbyte[] Values, float[] Scales) QuantizeWeight(ReadOnlySpan<float> w, int rows, int cols, int level = MaxLevel)
    {
        var q = new sbyte[(long)rows * cols];
        var scales = new float[rows];
        QuantizeWeight(w, rows, cols, q, scales, level);
        return (q, scales);
    }

    /// <summary>The float32 values a quantized row stands for: q · scale.</summary>
    public static void DequantizeRow(ReadOnlySpan<sbyte> q, float scale, Span<float> x)
    {
        for (int i = 0; i < q.Length; i++) x[i] = q[i] * scale;
    }

    private static bool HasNonFinite(ReadOnlySpan<float> row, out int at)
    {
        for (at = 0; at < row.Length; at++)
            if (!float.IsFinite(row[at])) return true;
        return false;
    }
}
