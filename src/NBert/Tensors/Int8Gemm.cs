using System.Numerics.Tensors;
using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NBert.Tensors;

/// <summary>The integer kernels <see cref="Int8Gemm"/> can run; each gives the same int32 sums, bit for bit.</summary>
internal enum Int8Path
{
    /// <summary>Plain C#: the reference the vector paths are tested against.</summary>
    Scalar,
    /// <summary>vpmaddubsw + vpmaddwd on 256-bit vectors.</summary>
    Avx2,
    /// <summary>The same on 512-bit vectors.</summary>
    Avx512BW,
    /// <summary>vpdpbusd on 256-bit vectors (Intel Alder Lake / Sapphire Rapids and later, AMD Zen 5).</summary>
    AvxVnni,
}

/// <summary>
/// Linear layers in int8: <c>y[m, out] = dequant(x_q[m, in] · W_qᵀ) + bias</c>, where W is quantized once
/// (<see cref="Int8PackedWeight"/>, 63 levels: <see cref="Int8Quantization.EngineWeightLevel"/>) and each row of x (one
/// token) on every call (127 levels), both by <see cref="Int8Quantization"/>'s rule. The products are summed exactly in
/// int32 and turned into float32 once per output:
/// <c>y[i, j] = (float)sum_k(xq[i, k] · wq[j, k]) · (scale_x[i] · scale_w[j]) + bias[j]</c>. A row with a few huge
/// channels (<see cref="Int8Quantization.NeedsSecondPass(ReadOnlySpan{float})"/>) then gets a second pass on its remainder, added to y.
/// <para>
/// <b>Why the integer sums never saturate.</b> The byte multiplies (vpmaddubsw; vpdpbusd with VNNI) take one
/// <i>unsigned</i> operand, so activations are stored offset, u = x + 128 (0..255: the integer with its top bit
/// flipped), and 128·sum_k wq[j, k] (<see cref="Int8PackedWeight.ColumnSums128"/>) comes off each sum at the end. Without
/// VNNI, vpmaddubsw adds adjacent pairs of u·w into int16 with saturation: weights of 63 levels keep a pair within
/// 2·255·63 = 32,130 &lt; 32,767, so it is exact, and vpmaddwd by ones widens pairs to int32. (With 127-level weights a
/// pair would reach 64,770; the alternative, a sign trick with |x| times w·sign(x), cost three more instructions per
/// row and weight vector and ran at 0.55x of this form.) vpdpbusd adds four products straight into int32. int32 holds
/// a whole row's sum for <c>in ≤ 65,536</c> (65,536·255·63 &lt; 2³¹). Every path therefore yields the same integers,
/// and one shared step turns them into float32, so every path gives the same bits.
/// </para>
/// <para>
/// Layout: the weight is packed into panels of 16 output columns; within a panel, for each group of four inputs,
/// 16 columns × 4 bytes (64 bytes: two 256-bit or one 512-bit vector, one int32 lane per column). Activations are
/// quantized into a row-major buffer of offset bytes (inputs padded to a multiple of four with offset zeros, which
/// meet zero weights), and the kernels broadcast four bytes of a row at a time. Tiles: AVX2 4 rows × 16 columns,
/// AVX-VNNI 6 × 16, AVX-512BW 8 × 32.
/// </para>
/// </summary>
internal static unsafe class Int8Gemm
{
    /// <summary>Columns per packed panel, and per pair of panels (the unit of column work).</summary>
    internal const int Panel = 16, PanelPair = 32;
    /// <summary>The longest input row whose int32 sums are exact on every path (see the class comment).</summary>
    internal const int MaxK = 65536;
    /// <summary>Rows that every path's tile height divides (4, 6, 8): the unit rows are split in over threads.</summary>
    private const int RowUnit = 24;

    /// <summary>The fastest path this machine runs. On AMD's Zen 4, which splits each 512-bit operation in two 256-bit
    /// halves, the AVX-512BW kernel (8 x 32) still ran 2-16% faster than the AVX2 one (4 x 16) at one and two threads
    /// on MiniLM's shapes (<c>bench linear</c>): the taller tile loads each weight vector for twice the rows.</summary>
    internal static Int8Path Best { get; } =
        AvxVnni.IsSupported ? Int8Path.AvxVnni
        : Avx512BW.IsSupported ? Int8Path.Avx512BW
        : Avx2.IsSupported ? Int8Path.Avx2 : Int8Path.Scalar;

    internal static bool IsSupported(Int8Path path) => path switch
    {
        Int8Path.Scalar => true,
        Int8Path.Avx2 => Avx2.IsSupported,
        Int8Path.Avx512BW => Avx512BW.IsSupported,
        Int8Path.AvxVnni => AvxVnni.IsSupported,
        _ => false,
    };

    /// <summary>
    /// C[m, out] (+)= dequant(quant(A[m, in]) · W_qᵀ) (+ bias): a linear layer in int8, multi-threaded, with the same
    /// call shape as <see cref="Sgemm.Multiply(int, ReadOnlySpan{float}, int, PackedWeight, Span{float}, int, bool, ReadOnlySpan{float})"/>.
    /// </summary>
    public static void Multiply(int m, ReadOnlySpan<float> a, int lda, Int8PackedWeight w, Span<float> c, int ldc,
        bool accumulate = false, ReadOnlySpan<float> bias = default) =>
        Multiply(Best, m, a, lda, w, c, ldc, accumulate, bias, Threading.MaxThreads);

    /// <summary>The same on a chosen path and number of threads (tests force each path).</summary>
    internal static void Multiply(Int8Path path, int m, ReadOnlySpan<float> a, int lda, Int8PackedWeight w, Span<float> c, int ldc,
        bool accumulate, ReadOnlySpan<float> bias, int threads)
    {
        if (!IsSupported(path)) throw new PlatformNotSupportedException($"This machine cannot run the {path} int8 kernel.");
        int n = w.N, k = w.K;
        if (m < 0) throw new ArgumentOutOfRangeException(nameof(m), $"Negative row count {m}.");
        if (m == 0 || n == 0) return;
        if (lda < k || ldc < n) throw new ArgumentException($"Leading dimensions too small: lda={lda} (in={k}), ldc={ldc} (out={n}).");
        if (a.Length < (long)(m - 1) * lda + k || c.Length < (long)(m - 1) * ldc + n)
            throw new ArgumentException($"Buffers too small for {m} rows of {k} inputs and {n} outputs.");
        if (!bias.IsEmpty && bias.Length < n) throw new ArgumentException($"A bias of {bias.Length} values for {n} outputs.");

        int kp = w.PaddedK;
        var quantized = ArrayPool<sbyte>.Shared.Rent(checked(m * kp));
        var scales = ArrayPool<float>.Shared.Rent(m);
        var twice = ArrayPool<bool>.Shared.Rent(m);
        try
        {
            fixed (float* pa = a, pc = c, pbias = bias, ps = scales)
            fixed (sbyte* pq = quantized)
            fixed (bool* pt = twice)
            {
                QuantizeRows(m, pa, lda, k, kp, pq, ps, pt, threads);
                Run(path, m, pq, kp, ps, w, pc, ldc, accumulate, pbias, threads);
                SecondPass(path, m, pa, lda, k, kp, pq, ps, pt, w, pc, ldc, threads);
            }
        }
        finally
        {
            ArrayPool<sbyte>.Shared.Return(quantized);
            ArrayPool<float>.Shared.Return(scales);
            ArrayPool<bool>.Shared.Return(twice);
        }
        GC.KeepAlive(w); // its memory is read through a raw pointer until here
    }

    /// <summary>Each row of A into int8 with its own scale, stored offset (x + 128, see the class comment), and whether it
    /// needs a second pass (<see cref="Int8Quantization.NeedsSecondPass(ReadOnlySpan{float})"/>); the padding inputs (k..kp) are offset zeros,
    /// which meet zero weights.</summary>
    private static void QuantizeRows(int m, float* a, int lda, int k, int kp, sbyte* q, float* scales, bool* twice, int threads)
    {
        nint pa = (nint)a, pq = (nint)q, ps = (nint)scales, pt = (nint)twice;
        void Rows(int r0, int r1)
        {
            for (int i = r0; i < r1; i++)
            {
                var row = new Span<sbyte>((sbyte*)pq + (long)i * kp, kp);
                var x = new ReadOnlySpan<float>((float*)pa + (long)i * lda, k);
                float max = k == 0 ? 0 : MathF.Abs(TensorPrimitives.MaxMagnitude(x));
                ((float*)ps)[i] = Int8Quantization.QuantizeRow(x, row, Int8Quantization.MaxLevel, max, offset: true);
                ((bool*)pt)[i] = Int8Quantization.NeedsSecondPass(x, max);
                row[k..].Fill(OffsetZero);
            }
        }
        if (threads <= 1 || (long)m * k < 1 << 16) Rows(0, m);
        else Threading.ForRows(m, Rows);
    }

    /// <summary>Zero as an offset byte (0 + 128).</summary>
    private const sbyte OffsetZero = unchecked((sbyte)0x80);

    /// <summary>The signed integer an offset byte stands for.</summary>
    private static int Unoffset(sbyte stored) => (byte)stored - 128;

    /// <summary>
    /// For the rows that need it, the remainder r = x − q·scale (float32) quantized by the same rule and multiplied by
    /// the same weight, its product added to C: C[i] += dequant(quant(r) · W_qᵀ). On every path and thread count the
    /// same rows take it and the same operations follow, so the paths still give the same bits.
    /// </summary>
    private static void SecondPass(Int8Path path, int m, float* a, int lda, int k, int kp, sbyte* q, float* scales, bool* twice,
        Int8PackedWeight w, float* c, int ldc, int threads)
    {
        int count = 0;
        for (int i = 0; i < m; i++) if (twice[i]) count++;
        if (count == 0) return;
        int n = w.N;
        var rows = ArrayPool<int>.Shared.Rent(count);
        var remainder = ArrayPool<float>.Shared.Rent(k);
        var quantized = ArrayPool<sbyte>.Shared.Rent(checked(count * kp));
        var scales2 = ArrayPool<float>.Shared.Rent(count);
        var products = ArrayPool<float>.Shared.Rent(checked(count * n));
        try
        {
            for (int i = 0, t = 0; i < m; i++)
            {
                if (!twice[i]) continue;
                rows[t] = i;
                float* x = a + (long)i * lda;
                sbyte* xq = q + (long)i * kp;
                float scale = scales[i];
                for (int p = 0; p < k; p++) remainder[p] = x[p] - Unoffset(xq[p]) * scale;
                var row = quantized.AsSpan(t * kp, kp);
                var r = remainder.AsSpan(0, k);
                scales2[t] = Int8Quantization.QuantizeRow(r, row, Int8Quantization.MaxLevel, MathF.Abs(TensorPrimitives.MaxMagnitude(r)), offset: true);
                row[k..].Fill(OffsetZero);
                t++;
            }
            fixed (sbyte* pq = quantized)
            fixed (float* ps = scales2, py = products)
                Run(path, count, pq, kp, ps, w, py, n, accumulate: false, bias: null, threads);
            for (int t = 0; t < count; t++)
            {
                var target = new Span<float>(c + (long)rows[t] * ldc, n);
                TensorPrimitives.Add(target, products.AsSpan(t * n, n), target);
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(rows);
            ArrayPool<float>.Shared.Return(remainder);
            ArrayPool<sbyte>.Shared.Return(quantized);
            ArrayPool<float>.Shared.Return(scales2);
            ArrayPool<float>.Shared.Return(products);
        }
    }

    private static void Run(Int8Path path, int m, sbyte* q, int kp, float* rowScales, Int8PackedWeight w, float* c, int ldc, bool accumulate,
        float* bias, int threads)
    {
        int pairs = w.PaddedN / PanelPair;
        long work = (long)m * w.N * w.K;
        if (threads <= 1 || work < 1L << 20)
        {
            Serial(path, 0, m, 0, pairs, q, kp, rowScales, w, c, ldc, accumulate, bias);
            return;
        }
        // Split the larger dimension into one chunk per thread: whole pairs of panels, or rows in units every tile divides.
        bool splitN = (long)pairs * PanelPair >= m;
        int units = splitN ? pairs : (m + RowUnit - 1) / RowUnit;
        int parts = Math.Min(threads, units);
        nint pq = (nint)q, ps = (nint)rowScales, pc = (nint)c, pb = (nint)bias;
        WorkerPool.Shared.Run(parts, threads, part =>
        {
            int start = (int)((long)units * part / parts), end = (int)((long)units * (part + 1) / parts);
            if (start >= end) return;
            if (splitN) Serial(path, 0, m, start, end, (sbyte*)pq, kp, (float*)ps, w, (float*)pc, ldc, accumulate, (float*)pb);
            else Serial(path, start * RowUnit, Math.Min(m, end * RowUnit), 0, pairs, (sbyte*)pq, kp, (float*)ps, w, (float*)pc, ldc, accumulate, (float*)pb);
        });
    }

    /// <summary>Rows [r0, r1) by pairs of panels [p0, p1): blocks of columns whose weights stay in L2, and within a
    /// block each strip of rows against every panel (the strip stays in L1).</summary>
    private static void Serial(Int8Path path, int r0, int r1, int p0, int p1, sbyte* q, int kp, float* rowScales, Int8PackedWeight w,
        float* c, int ldc, bool accumulate, float* bias)
    {
        int mr = path switch { Int8Path.Avx2 => 4, Int8Path.AvxVnni => 6, _ => 8 };
        int groups = kp / 4;
        int pairBytes = PanelPair * kp;
        int pairsPerBlock = Math.Max(1, (256 << 10) / Math.Max(1, pairBytes));
        int* tile = stackalloc int[8 * PanelPair];
        for (int jb = p0; jb < p1; jb += pairsPerBlock)
        {
            int jEnd = Math.Min(p1, jb + pairsPerBlock);
            for (int i = r0; i < r1; i += mr)
            {
                int rows = Math.Min(mr, r1 - i);
                sbyte* a = q + (long)i * kp;
                for (int pair = jb; pair < jEnd; pair++)
                {
                    sbyte* panel0 = w.Pointer + (long)pair * pairBytes, panel1 = panel0 + pairBytes / 2;
                    int j0 = pair * PanelPair;
                    switch (path)
                    {
                        case Int8Path.Avx2:
                            KernelAvx2(a, kp, rows, panel0, groups, w.ColumnSums128 + j0, tile);
                            KernelAvx2(a, kp, rows, panel1, groups, w.ColumnSums128 + j0 + Panel, tile + Panel);
                            break;
                        case Int8Path.AvxVnni:
                            KernelVnni(a, kp, rows, panel0, groups, w.ColumnSums128 + j0, tile);
                            KernelVnni(a, kp, rows, panel1, groups, w.ColumnSums128 + j0 + Panel, tile + Panel);
                            break;
                        case Int8Path.Avx512BW:
                            KernelAvx512(a, kp, rows, panel0, panel1, groups, w.ColumnSums128 + j0, tile);
                            break;
                        default:
                            KernelScalar(a, kp, rows, panel0, groups, tile);
                            break;
                    }
                    Dequantize(tile, rows, Math.Min(PanelPair, w.N - j0), rowScales + i, w.Scales + j0,
                        bias == null ? null : bias + j0, c + (long)i * ldc + j0, ldc, accumulate);
                }
            }
        }
    }

    /// <summary>
    /// The one step from int32 sums to float32, shared by every path: y = (float)sum · (scale_x · scale_w) (+ bias)
    /// (+ C), in that order. Vector and scalar lanes do the same IEEE operations, so an output's bits do not depend
    /// on where it falls in a tile.
    /// </summary>
    private static void Dequantize(int* tile, int rows, int cols, float* rowScales, float* colScales, float* bias, float* c, int ldc, bool accumulate)
    {
        for (int r = 0; r < rows; r++, tile += PanelPair, c += ldc)
        {
            float sa = rowScales[r];
            int j = 0;
            if (Vector256.IsHardwareAccelerated)
            {
                var vsa = Vector256.Create(sa);
                for (; j + 8 <= cols; j += 8)
                {
                    var v = Vector256.ConvertToSingle(Vector256.Load(tile + j)) * (vsa * Vector256.Load(colScales + j));
                    if (bias != null) v += Vector256.Load(bias + j);
                    if (accumulate) v += Vector256.Load(c + j);
                    v.Store(c + j);
                }
            }
            for (; j < cols; j++)
            {
                float v = tile[j] * (sa * colScales[j]);
                if (bias != null) v += bias[j];
                if (accumulate) v += c[j];
                c[j] = v;
            }
        }
    }

    /// <summary>The reference: tile[r, 0..31] = exact int32 dot products of row r (offset bytes, turned back into
    /// signed values) with the pair of panels.</summary>
    private static void KernelScalar(sbyte* a, int lda, int rows, sbyte* panel0, int groups, int* tile)
    {
        for (int r = 0; r < rows; r++)
        {
            sbyte* x = a + (long)r * lda;
            for (int col = 0; col < PanelPair; col++)
            {
                // Column col lives in panel col / 16 (the two panels are adjacent), at lane col % 16 of each group.
                sbyte* wcol = panel0 + (long)(col / Panel) * groups * 64 + col % Panel * 4;
                int sum = 0;
                for (int g = 0; g < groups; g++)
                    for (int t = 0; t < 4; t++)
                        sum += Unoffset(x[g * 4 + t]) * wcol[g * 64 + t];
                tile[r * PanelPair + col] = sum;
            }
        }
    }

    /// <summary>4 rows × 16 columns: per group of four inputs, u (x + 128) times w by vpmaddubsw, pairs widened by
    /// vpmaddwd with ones, added into int32; 128 · (the column's weight sum) comes off at the end.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void KernelAvx2(sbyte* a, int lda, int rows, sbyte* panel, int groups, int* columnSums128, int* tile)
    {
        // Rows past the end read the last real row again; their sums are never stored.
        sbyte* a0 = a, a1 = a + (long)Math.Min(1, rows - 1) * lda, a2 = a + (long)Math.Min(2, rows - 1) * lda, a3 = a + (long)Math.Min(3, rows - 1) * lda;
        var ones = Vector256.Create((short)1);
        Vector256<int> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        for (int g = 0; g < groups; g++, panel += 64)
        {
            var b0 = Avx.LoadVector256(panel);
            var b1 = Avx.LoadVector256(panel + 32);
            int at = g * 4;
            StepAvx2(a0 + at, b0, b1, ones, ref c00, ref c01);
            StepAvx2(a1 + at, b0, b1, ones, ref c10, ref c11);
            StepAvx2(a2 + at, b0, b1, ones, ref c20, ref c21);
            StepAvx2(a3 + at, b0, b1, ones, ref c30, ref c31);
        }
        var s0 = Vector256.Load(columnSums128);
        var s1 = Vector256.Load(columnSums128 + 8);
        StoreRow(tile, c00 - s0, c01 - s1);
        if (rows > 1) StoreRow(tile + PanelPair, c10 - s0, c11 - s1);
        if (rows > 2) StoreRow(tile + 2 * PanelPair, c20 - s0, c21 - s1);
        if (rows > 3) StoreRow(tile + 3 * PanelPair, c30 - s0, c31 - s1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StepAvx2(sbyte* u4, Vector256<sbyte> b0, Vector256<sbyte> b1, Vector256<short> ones, ref Vector256<int> c0, ref Vector256<int> c1)
    {
        var u = Vector256.Create(*(int*)u4).AsByte();
        c0 = Avx2.Add(c0, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u, b0), ones));
        c1 = Avx2.Add(c1, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u, b1), ones));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(int* row, Vector256<int> lo, Vector256<int> hi)
    {
        lo.Store(row);
        hi.Store(row + 8);
    }

    /// <summary>6 rows × 16 columns with vpdpbusd: u (x + 128) times w, four products per int32 lane in one
    /// instruction; 128 · (the column's weight sum) comes off at the end.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void KernelVnni(sbyte* a, int lda, int rows, sbyte* panel, int groups, int* columnSums128, int* tile)
    {
        var rowPointers = stackalloc sbyte*[6];
        for (int r = 0; r < 6; r++) rowPointers[r] = a + (long)Math.Min(r, rows - 1) * lda;
        sbyte* a0 = rowPointers[0], a1 = rowPointers[1], a2 = rowPointers[2], a3 = rowPointers[3], a4 = rowPointers[4], a5 = rowPointers[5];
        Vector256<int> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
            c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int g = 0; g < groups; g++, panel += 64)
        {
            var b0 = Avx.LoadVector256(panel);
            var b1 = Avx.LoadVector256(panel + 32);
            int at = g * 4;
            StepVnni(a0 + at, b0, b1, ref c00, ref c01);
            StepVnni(a1 + at, b0, b1, ref c10, ref c11);
            StepVnni(a2 + at, b0, b1, ref c20, ref c21);
            StepVnni(a3 + at, b0, b1, ref c30, ref c31);
            StepVnni(a4 + at, b0, b1, ref c40, ref c41);
            StepVnni(a5 + at, b0, b1, ref c50, ref c51);
        }
        var s0 = Vector256.Load(columnSums128);
        var s1 = Vector256.Load(columnSums128 + 8);
        StoreRow(tile, c00 - s0, c01 - s1);
        if (rows > 1) StoreRow(tile + PanelPair, c10 - s0, c11 - s1);
        if (rows > 2) StoreRow(tile + 2 * PanelPair, c20 - s0, c21 - s1);
        if (rows > 3) StoreRow(tile + 3 * PanelPair, c30 - s0, c31 - s1);
        if (rows > 4) StoreRow(tile + 4 * PanelPair, c40 - s0, c41 - s1);
        if (rows > 5) StoreRow(tile + 5 * PanelPair, c50 - s0, c51 - s1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StepVnni(sbyte* u4, Vector256<sbyte> b0, Vector256<sbyte> b1, ref Vector256<int> c0, ref Vector256<int> c1)
    {
        var u = Vector256.Create(*(int*)u4).AsByte();
        c0 = AvxVnni.MultiplyWideningAndAdd(c0, u, b0);
        c1 = AvxVnni.MultiplyWideningAndAdd(c1, u, b1);
    }

    /// <summary>8 rows × 32 columns (one 512-bit vector per panel and group): u (x + 128) times w by vpmaddubsw, as on
    /// AVX2.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void KernelAvx512(sbyte* a, int lda, int rows, sbyte* panel0, sbyte* panel1, int groups, int* columnSums128, int* tile)
    {
        var rowPointers = stackalloc sbyte*[8];
        for (int r = 0; r < 8; r++) rowPointers[r] = a + (long)Math.Min(r, rows - 1) * lda;
        sbyte* a0 = rowPointers[0], a1 = rowPointers[1], a2 = rowPointers[2], a3 = rowPointers[3],
            a4 = rowPointers[4], a5 = rowPointers[5], a6 = rowPointers[6], a7 = rowPointers[7];
        var ones = Vector512.Create((short)1);
        Vector512<int> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default,
            c40 = default, c41 = default, c50 = default, c51 = default, c60 = default, c61 = default, c70 = default, c71 = default;
        for (int g = 0; g < groups; g++, panel0 += 64, panel1 += 64)
        {
            var b0 = Vector512.Load(panel0);
            var b1 = Vector512.Load(panel1);
            int at = g * 4;
            StepAvx512(a0 + at, b0, b1, ones, ref c00, ref c01);
            StepAvx512(a1 + at, b0, b1, ones, ref c10, ref c11);
            StepAvx512(a2 + at, b0, b1, ones, ref c20, ref c21);
            StepAvx512(a3 + at, b0, b1, ones, ref c30, ref c31);
            StepAvx512(a4 + at, b0, b1, ones, ref c40, ref c41);
            StepAvx512(a5 + at, b0, b1, ones, ref c50, ref c51);
            StepAvx512(a6 + at, b0, b1, ones, ref c60, ref c61);
            StepAvx512(a7 + at, b0, b1, ones, ref c70, ref c71);
        }
        var s0 = Vector512.Load(columnSums128);
        var s1 = Vector512.Load(columnSums128 + 16);
        StoreRow512(tile, c00 - s0, c01 - s1);
        if (rows > 1) StoreRow512(tile + PanelPair, c10 - s0, c11 - s1);
        if (rows > 2) StoreRow512(tile + 2 * PanelPair, c20 - s0, c21 - s1);
        if (rows > 3) StoreRow512(tile + 3 * PanelPair, c30 - s0, c31 - s1);
        if (rows > 4) StoreRow512(tile + 4 * PanelPair, c40 - s0, c41 - s1);
        if (rows > 5) StoreRow512(tile + 5 * PanelPair, c50 - s0, c51 - s1);
        if (rows > 6) StoreRow512(tile + 6 * PanelPair, c60 - s0, c61 - s1);
        if (rows > 7) StoreRow512(tile + 7 * PanelPair, c70 - s0, c71 - s1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StepAvx512(sbyte* u4, Vector512<sbyte> b0, Vector512<sbyte> b1, Vector512<short> ones, ref Vector512<int> c0, ref Vector512<int> c1)
    {
        var u = Vector512.Create(*(int*)u4).AsByte();
        c0 += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(u, b0), ones);
        c1 += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(u, b1), ones);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow512(int* row, Vector512<int> lo, Vector512<int> hi)
    {
        lo.Store(row);
        hi.Store(row + 16);
    }
}

/// <summary>
/// A linear layer's weight W[out, in] in int8, quantized once by <see cref="Int8Quantization"/> (per output channel, 63
/// levels: <see cref="Int8Quantization.EngineWeightLevel"/>)
/// and packed in the layout <see cref="Int8Gemm"/>'s kernels read: a quarter of float32's memory, plus one scale and
/// one column sum per output. Immutable once built, so one instance can serve several threads.
/// </summary>
internal sealed unsafe class Int8PackedWeight
{
    /// <summary>Rows of W: the layer's output features, the columns of the product.</summary>
    public int N { get; }
    /// <summary>Columns of W: the layer's input features, the product's inner dimension.</summary>
    public int K { get; }
    /// <summary>K rounded up to a multiple of 4 (a group of four inputs per int32 lane).</summary>
    internal int PaddedK { get; }
    /// <summary>N rounded up to a multiple of 32 (a pair of 16-column panels); the padding columns are zeros.</summary>
    internal int PaddedN { get; }
    private readonly byte[] _memory;
    internal sbyte* Pointer { get; }
    private readonly float[] _scales;
    private readonly int[] _columnSums128;
    /// <summary>Each output's scale (PaddedN values, 0 for padding), pinned.</summary>
    internal float* Scales { get; }
    /// <summary>128 · sum_k wq[j, k] per output (PaddedN values), which the vector paths' offset activations add.</summary>
    internal int* ColumnSums128 { get; }

    /// <summary>Quantizes and packs <paramref name="w"/>, row-major <c>[n, k]</c> as PyTorch stores <c>nn.Linear.weight</c>.</summary>
    /// <exception cref="ArgumentException"><paramref name="w"/> holds fewer than n·k values or a non-finite value, or k is above 65,536.</exception>
    public Int8PackedWeight(ReadOnlySpan<float> w, int n, int k)
    {
        if (n < 0 || k < 0) throw new ArgumentOutOfRangeException(nameof(n), $"A {n}x{k} weight.");
        if (k > Int8Gemm.MaxK) throw new ArgumentException($"An int8 weight takes at most {Int8Gemm.MaxK} inputs (exact int32 sums), not {k}.");
        if (w.Length < (long)n * k) throw new ArgumentException($"A {n}x{k} weight needs {(long)n * k} values, not {w.Length}.");
        N = n;
        K = k;
        PaddedK = (k + 3) / 4 * 4;
        PaddedN = (n + Int8Gemm.PanelPair - 1) / Int8Gemm.PanelPair * Int8Gemm.PanelPair;
        var (q, scales) = Int8Quantization.QuantizeWeight(w, n, k, Int8Quantization.EngineWeightLevel);
        _memory = GC.AllocateArray<byte>(checked(PaddedN * PaddedK + 64), pinned: true);
        _scales = GC.AllocateArray<float>(PaddedN, pinned: true);
        _columnSums128 = GC.AllocateArray<int>(PaddedN, pinned: true);
        byte* start = (byte*)Unsafe.AsPointer(ref _memory[0]);
        Pointer = (sbyte*)(((nint)start + 63) & ~(nint)63);
        Scales = (float*)Unsafe.AsPointer(ref _scales[0]);
        ColumnSums128 = (int*)Unsafe.AsPointer(ref _columnSums128[0]);
        scales.CopyTo(_scales, 0);
        int groups = PaddedK / 4;
        for (int j = 0; j < n; j++)
        {
            // Column j: panel j / 16, lane j % 16 of each group's 64 bytes.
            sbyte* dst = Pointer + (long)(j / Int8Gemm.Panel) * groups * 64 + j % Int8Gemm.Panel * 4;
            int sum = 0;
            for (int p = 0; p < k; p++)
            {
                sbyte v = q[(long)j * k + p];
                dst[p / 4 * 64 + p % 4] = v;
                sum += v;
            }
            _columnSums128[j] = 128 * sum;
        }
    }
}
