using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NBert.Tensors;

/// <summary>
/// Single-precision matrix multiply, row-major: <c>C[m,n] (+)= op(A) · op(B)</c>, where op(A) is <c>A[m,k]</c>
/// or the transpose of <c>A[k,m]</c> (a weight gradient's Yᵀ·X), and op(B) is <c>B[k,n]</c> (NN) or the
/// transpose of <c>B[n,k]</c> (NT, a linear layer's weight).
/// Goto/BLIS structure: B is packed into 16-column micro-panels, A into 6-row micro-panels, and a 6x16
/// register-blocked micro-kernel (12 <c>Vector256</c> accumulators, FMA; a <c>Vector128</c> kernel where
/// AVX2 is missing) runs over them. Where AVX-512 is present, a 12x32 kernel (24 <c>Vector512</c> accumulators of the
/// 32 registers) covers two A panels by two B panels at once and the 6x16 kernel only the edges; every output gets
/// the same fused multiply-adds in the same order either way, so both give the same bits.
/// Pack buffers are per thread, so steady state allocates nothing.
/// </summary>
public static unsafe class Sgemm
{
    internal const int MR = 6, NR = 16;
    internal const int KC = 256, MC = 96, NC = 1024;

    /// <summary>The micro-kernels Sgemm can run (tests force each).</summary>
    internal enum Path
    {
        /// <summary>6x16 on <c>Vector128</c>, multiply then add (no FMA): where AVX2 and FMA are missing, and on Arm.</summary>
        Portable,
        /// <summary>6x16 on <c>Vector256</c> with FMA.</summary>
        Avx2,
        /// <summary>12x32 on <c>Vector512</c> with FMA, the 6x16 AVX2 kernel on the edges.</summary>
        Avx512,
    }

    /// <summary>The fastest path this machine runs.</summary>
    internal static Path Best { get; } = Avx512F.IsSupported && Fma.IsSupported ? Path.Avx512 : Fma.IsSupported ? Path.Avx2 : Path.Portable;

    internal static bool IsSupported(Path path) => path switch
    {
        Path.Portable => true,
        Path.Avx2 => Fma.IsSupported,
        Path.Avx512 => Avx512F.IsSupported && Fma.IsSupported,
        _ => false,
    };

    // Pack buffers per thread, 64-byte aligned so the kernel's 32-byte loads never straddle a cache line.
    [ThreadStatic] private static AlignedBuffer? _packA;
    [ThreadStatic] private static AlignedBuffer? _packB;

    /// <summary>Where op(B) comes from: a raw matrix packed on the fly, or a <see cref="PackedWeight"/>.</summary>
    private readonly struct BSource(float* raw, int ldb, bool transB, float* packed = null, int packedN = 0, int column = 0)
    {
        public readonly float* Raw = raw, Packed = packed;
        public readonly int Ldb = ldb, PackedN = packedN, Column = column;
        public readonly bool TransB = transB;

        /// <summary>The columns from <paramref name="start"/> on.</summary>
        public BSource From(int start) => Packed != null
            ? new BSource(null, Ldb, TransB, Packed, PackedN, Column + start)
            : new BSource(TransB ? Raw + (long)start * Ldb : Raw + start, Ldb, TransB);
    }

    /// <summary>
    /// C[m,n] (+)= A[m,k] · Wᵀ (+ bias) with W packed once (a linear layer's weight), multi-threaded. A bias
    /// is added as each tile is stored, saving a pass over C.
    /// </summary>
    public static void Multiply(int m, ReadOnlySpan<float> a, int lda, PackedWeight w, Span<float> c, int ldc,
        bool accumulate = false, ReadOnlySpan<float> bias = default)
    {
        Check(m, w.N, w.K, a.Length, lda, false, w.N * w.K, w.K, true, c.Length, ldc);
        if (!bias.IsEmpty && bias.Length < w.N) throw new ArgumentException($"A bias of {bias.Length} values for {w.N} outputs.");
        if (m == 0 || w.N == 0) return;
        fixed (float* pa = a, pc = c, pbias = bias)
            Multiply(m, w.N, w.K, pa, lda, false, new BSource(null, w.K, true, w.Pointer, w.PaddedN), pc, ldc, accumulate, Threading.MaxThreads, Best, pbias);
        GC.KeepAlive(w); // its memory is read through a raw pointer until here
    }

    /// <summary>Multi-threaded over the larger of m and n when the product is big enough.</summary>
    public static void Multiply(int m, int n, int k, ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, bool transB,
        Span<float> c, int ldc, bool accumulate = false, bool transA = false)
    {
        Check(m, n, k, a.Length, lda, transA, b.Length, ldb, transB, c.Length, ldc);
        if (m == 0 || n == 0) return;
        fixed (float* pa = a, pb = b, pc = c)
            Multiply(m, n, k, pa, lda, transA, new BSource(pb, ldb, transB), pc, ldc, accumulate, Threading.MaxThreads, Best);
    }

    /// <summary>The packed-weight product on a chosen path and number of threads (tests force each path).</summary>
    internal static void Multiply(Path path, int threads, int m, ReadOnlySpan<float> a, int lda, PackedWeight w, Span<float> c, int ldc,
        bool accumulate = false, ReadOnlySpan<float> bias = default)
    {
        if (!IsSupported(path)) throw new PlatformNotSupportedException($"This machine cannot run the {path} SGEMM kernel.");
        Check(m, w.N, w.K, a.Length, lda, false, w.N * w.K, w.K, true, c.Length, ldc);
        if (m == 0 || w.N == 0) return;
        fixed (float* pa = a, pc = c, pbias = bias)
            Multiply(m, w.N, w.K, pa, lda, false, new BSource(null, w.K, true, w.Pointer, w.PaddedN), pc, ldc, accumulate, threads, path, pbias);
        GC.KeepAlive(w);
    }

    /// <summary>The general product on a chosen path and number of threads (tests force each path).</summary>
    internal static void Multiply(Path path, int threads, int m, int n, int k, ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, bool transB,
        Span<float> c, int ldc, bool accumulate = false, bool transA = false)
    {
        if (!IsSupported(path)) throw new PlatformNotSupportedException($"This machine cannot run the {path} SGEMM kernel.");
        Check(m, n, k, a.Length, lda, transA, b.Length, ldb, transB, c.Length, ldc);
        if (m == 0 || n == 0) return;
        fixed (float* pa = a, pb = b, pc = c)
            Multiply(m, n, k, pa, lda, transA, new BSource(pb, ldb, transB), pc, ldc, accumulate, threads, path);
    }

    /// <summary>C[m,n] = A[m,k] · Bᵀ + bias with B [n,k] as it is (packed on the fly), multi-threaded: the same tiles, split
    /// and order of additions as the <see cref="PackedWeight"/> overload, so a weight used raw (training) or packed once
    /// (inference) gives the same bits.</summary>
    public static void Multiply(int m, int n, int k, ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, Span<float> c, int ldc,
        ReadOnlySpan<float> bias)
    {
        Check(m, n, k, a.Length, lda, false, b.Length, ldb, true, c.Length, ldc);
        if (!bias.IsEmpty && bias.Length < n) throw new ArgumentException($"A bias of {bias.Length} values for {n} outputs.");
        if (m == 0 || n == 0) return;
        fixed (float* pa = a, pb = b, pc = c, pbias = bias)
            Multiply(m, n, k, pa, lda, false, new BSource(pb, ldb, true), pc, ldc, false, Threading.MaxThreads, Best, pbias);
    }

    /// <summary>The same on one thread (for callers that parallelise outside, such as attention heads).</summary>
    public static void MultiplySerial(int m, int n, int k, ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, bool transB,
        Span<float> c, int ldc, bool accumulate = false, bool transA = false)
    {
        Check(m, n, k, a.Length, lda, transA, b.Length, ldb, transB, c.Length, ldc);
        if (m == 0 || n == 0) return;
        fixed (float* pa = a, pb = b, pc = c)
            Serial(m, n, k, pa, lda, transA, new BSource(pb, ldb, transB), pc, ldc, accumulate, Best);
    }

    private static void Check(int m, int n, int k, int aLength, int lda, bool transA, int bLength, int ldb, bool transB, int cLength, int ldc)
    {
        if (m < 0 || n < 0 || k < 0) throw new ArgumentOutOfRangeException(nameof(m), $"Negative size m={m} n={n} k={k}.");
        if (m == 0 || n == 0) return;
        if (lda < (transA ? m : k) || ldc < n || ldb < (transB ? k : n))
            throw new ArgumentException($"Leading dimensions too small: lda={lda} (k={k}), ldb={ldb}, ldc={ldc} (n={n}).");
        long needA = transA ? (long)(k - 1) * lda + m : (long)(m - 1) * lda + k, needC = (long)(m - 1) * ldc + n;
        long needB = transB ? (long)(n - 1) * ldb + k : (long)(k - 1) * ldb + n;
        if (k > 0 && (aLength < needA || bLength < needB) || cLength < needC)
            throw new ArgumentException($"Buffers too small for a {m}x{k} by {k}x{n} product.");
    }

    private static void Multiply(int m, int n, int k, float* a, int lda, bool transA, BSource b, float* c, int ldc, bool accumulate, int threads,
        Path path, float* bias = null)
    {
        long work = (long)m * n * k;
        if (threads <= 1 || work < 1L << 20)
        {
            Serial(m, n, k, a, lda, transA, b, c, ldc, accumulate, path, bias);
            return;
        }
        // Split the larger dimension into one chunk per thread (whole micro-panels).
        bool splitN = n >= m;
        int extent = splitN ? n : m, unit = splitN ? NR : MR;
        int units = (extent + unit - 1) / unit;
        int parts = Math.Min(threads, units);
        nint pa = (nint)a, pc = (nint)c, pbias = (nint)bias;
        WorkerPool.Shared.Run(parts, threads, part =>
        {
            int start = (int)((long)units * part / parts) * unit;
            int end = Math.Min(extent, (int)((long)units * (part + 1) / parts) * unit);
            if (start >= end) return;
            float* a0 = (float*)pa, c0 = (float*)pc, bias0 = (float*)pbias;
            if (splitN)
                Serial(m, end - start, k, a0, lda, transA, b.From(start), c0 + start, ldc, accumulate, path, bias0 == null ? null : bias0 + start);
            else
                Serial(end - start, n, k, transA ? a0 + start : a0 + (long)start * lda, lda, transA, b, c0 + (long)start * ldc, ldc, accumulate, path, bias0);
        });
    }

    private static void Serial(int m, int n, int k, float* a, int lda, bool transA, BSource b, float* c, int ldc, bool accumulate, Path path, float* bias = null)
    {
        if (k == 0)
        {
            for (int i = 0; i < m; i++)
            {
                var row = new Span<float>(c + (long)i * ldc, n);
                if (!accumulate) row.Clear();
                if (bias != null) TensorPrimitivesAdd(row, new ReadOnlySpan<float>(bias, n));
            }
            return;
        }
        float* pA = (_packA ??= new AlignedBuffer(MC * KC)).Pointer;
        float* pB = (_packB ??= new AlignedBuffer(KC * NC)).Pointer;
        {
            for (int jc = 0; jc < n; jc += NC)
            {
                int nc = Math.Min(NC, n - jc);
                for (int pc = 0; pc < k; pc += KC)
                {
                    int kc = Math.Min(KC, k - pc);
                    bool overwrite = pc == 0 && !accumulate;
                    float* panels = pB;
                    if (b.Packed != null)
                        panels = b.Packed + PackedWeight.Offset(pc, b.Column + jc, kc, b.PackedN);
                    else
                        PackB(b.Raw, b.Ldb, b.TransB, pc, kc, jc, nc, pB);
                    for (int ic = 0; ic < m; ic += MC)
                    {
                        int mc = Math.Min(MC, m - ic);
                        if (transA) PackTransposedA(a + (long)pc * lda + ic, lda, mc, kc, pA);
                        else PackA(a + (long)ic * lda + pc, lda, mc, kc, pA);
                        bool last = pc + kc == k;
                        int jr = 0;
                        if (path == Path.Avx512)
                            // Pairs of B panels (32 columns) while they last: 12x32 tiles over pairs of A panels, the
                            // remaining 6 rows (if any) as two 6x16 tiles.
                            for (; jr + 2 * NR <= nc; jr += 2 * NR)
                            {
                                int ir = 0;
                                for (; ir + 2 * MR <= mc; ir += 2 * MR)
                                    Kernel512(kc, pA + ir * kc, panels + jr * kc, c + (long)(ic + ir) * ldc + jc + jr, ldc, overwrite,
                                        bias != null && last ? bias + jc + jr : null);
                                for (; ir < mc; ir += MR)
                                    for (int half = 0; half < 2 * NR; half += NR)
                                        Kernel(kc, pA + ir * kc, panels + (jr + half) * kc, c + (long)(ic + ir) * ldc + jc + jr + half, ldc,
                                            Math.Min(MR, mc - ir), NR, overwrite, bias != null && last ? bias + jc + jr + half : null, Path.Avx2);
                            }
                        for (; jr < nc; jr += NR)
                        {
                            int cols = Math.Min(NR, nc - jr);
                            for (int ir = 0; ir < mc; ir += MR)
                            {
                                int rows = Math.Min(MR, mc - ir);
                                float* cTile = c + (long)(ic + ir) * ldc + jc + jr;
                                // The bias goes in with the last block of k, as the tile is stored for good.
                                float* biasTile = bias != null && last ? bias + jc + jr : null;
                                Kernel(kc, pA + ir * kc, panels + jr * kc, cTile, ldc, rows, cols, overwrite, biasTile,
                                    path == Path.Avx512 ? Path.Avx2 : path);
                            }
                        }
                    }
                }
            }
        }
    }

    /// <summary>Rows of A into micro-panels of MR rows: panel p holds [kc][MR], short panels padded with 0.</summary>
    private static void PackA(float* a, int lda, int mc, int kc, float* packed)
    {
        for (int ir = 0; ir < mc; ir += MR)
        {
            int rows = Math.Min(MR, mc - ir);
            float* dst = packed + ir * kc;
            if (rows == MR)
            {
                float* r0 = a + (long)ir * lda, r1 = r0 + lda, r2 = r1 + lda, r3 = r2 + lda, r4 = r3 + lda, r5 = r4 + lda;
                int p = 0;
                if (Avx.IsSupported)
                    // Eight k at a time: an 8x8 transpose of the six rows (and two zero rows) in registers, each
                    // column stored as 8 floats of which the next store overwrites the last two. The final
                    // chunk stays scalar so nothing is written past the panel.
                    for (; p + 8 < kc; p += 8, dst += 8 * MR)
                        Transpose6x8(r0 + p, r1 + p, r2 + p, r3 + p, r4 + p, r5 + p, dst);
                for (; p < kc; p++, dst += MR)
                {
                    dst[0] = r0[p]; dst[1] = r1[p]; dst[2] = r2[p]; dst[3] = r3[p]; dst[4] = r4[p]; dst[5] = r5[p];
                }
            }
            else
            {
                for (int p = 0; p < kc; p++, dst += MR)
                    for (int i = 0; i < MR; i++) dst[i] = i < rows ? a[(long)(ir + i) * lda + p] : 0f;
            }
        }
    }

    /// <summary>A stored transposed ([k, m]): each k already holds the panels' values side by side, so each row
    /// of A is read once, front to back, and dealt out to the panels.</summary>
    private static void PackTransposedA(float* a, int lda, int mc, int kc, float* packed)
    {
        int full = mc / MR * MR;
        for (int p = 0; p < kc; p++)
        {
            float* src = a + (long)p * lda;
            int ir = 0;
            for (; ir < full; ir += MR)
            {
                float* dst = packed + ir * kc + p * MR;
                dst[0] = src[ir]; dst[1] = src[ir + 1]; dst[2] = src[ir + 2]; dst[3] = src[ir + 3]; dst[4] = src[ir + 4]; dst[5] = src[ir + 5];
            }
            if (ir < mc)
            {
                float* dst = packed + ir * kc + p * MR;
                for (int i = 0; i < MR; i++) dst[i] = ir + i < mc ? src[ir + i] : 0f;
            }
        }
    }

    /// <summary>dst[j*6 + i] = row_i[j] for j in 0..7, i in 0..5 (writes 2 floats past the 48).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose6x8(float* r0, float* r1, float* r2, float* r3, float* r4, float* r5, float* dst) =>
        Transpose(Avx.LoadVector256(r0), Avx.LoadVector256(r1), Avx.LoadVector256(r2), Avx.LoadVector256(r3),
            Avx.LoadVector256(r4), Avx.LoadVector256(r5), default, default, dst, MR);

    /// <summary>dst[j * dstStride + i] = src[i * ld + j] for an 8x8 block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(float* src, int ld, float* dst, int dstStride) =>
        Transpose(Avx.LoadVector256(src), Avx.LoadVector256(src + ld), Avx.LoadVector256(src + 2L * ld), Avx.LoadVector256(src + 3L * ld),
            Avx.LoadVector256(src + 4L * ld), Avx.LoadVector256(src + 5L * ld), Avx.LoadVector256(src + 6L * ld), Avx.LoadVector256(src + 7L * ld),
            dst, dstStride);

    /// <summary>Stores column j of the 8x8 block a0..a7 (rows) at dst + j * dstStride: interleave pairs, then
    /// quads, then swap 128-bit halves. Stores go in order, so a stride below 8 overwrites the tail of the last.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose(Vector256<float> a0, Vector256<float> a1, Vector256<float> a2, Vector256<float> a3,
        Vector256<float> a4, Vector256<float> a5, Vector256<float> a6, Vector256<float> a7, float* dst, int dstStride)
    {
        var t0 = Avx.UnpackLow(a0, a1); var t1 = Avx.UnpackHigh(a0, a1);
        var t2 = Avx.UnpackLow(a2, a3); var t3 = Avx.UnpackHigh(a2, a3);
        var t4 = Avx.UnpackLow(a4, a5); var t5 = Avx.UnpackHigh(a4, a5);
        var t6 = Avx.UnpackLow(a6, a7); var t7 = Avx.UnpackHigh(a6, a7);
        var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44); var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44); var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(dst, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(dst + dstStride, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(dst + 2 * dstStride, Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(dst + 3 * dstStride, Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(dst + 4 * dstStride, Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(dst + 5 * dstStride, Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(dst + 6 * dstStride, Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(dst + 7 * dstStride, Avx.Permute2x128(u3, u7, 0x31));
    }

    /// <summary>Columns of op(B) into micro-panels of NR columns: panel q holds [kc][NR], padded with 0.</summary>
    internal static void PackB(float* b, int ldb, bool transB, int pc, int kc, int jc, int nc, float* packed)
    {
        for (int jr = 0; jr < nc; jr += NR)
        {
            int cols = Math.Min(NR, nc - jr);
            float* dst = packed + jr * kc;
            if (!transB)
            {
                // B[k, n]: each k gives NR contiguous floats.
                float* src = b + (long)pc * ldb + jc + jr;
                for (int p = 0; p < kc; p++, dst += NR, src += ldb)
                {
                    if (cols == NR)
                    {
                        Vector256.Store(Vector256.Load(src), dst);
                        Vector256.Store(Vector256.Load(src + 8), dst + 8);
                    }
                    else
                        for (int j = 0; j < NR; j++) dst[j] = j < cols ? src[j] : 0f;
                }
            }
            else
            {
                // B[n, k] (a weight): column j of op(B) is row j of B; gather NR rows into each k.
                float* src = b + (long)(jc + jr) * ldb + pc;
                if (cols == NR && Avx.IsSupported)
                {
                    // Eight k at a time: two 8x8 register transposes (rows 0-7, rows 8-15), the rest scalar.
                    int p = 0;
                    for (; p + 8 <= kc; p += 8)
                    {
                        Transpose8x8(src + p, ldb, dst + p * NR, NR);
                        Transpose8x8(src + 8L * ldb + p, ldb, dst + p * NR + 8, NR);
                    }
                    for (; p < kc; p++)
                        for (int j = 0; j < NR; j++) dst[p * NR + j] = src[(long)j * ldb + p];
                    continue;
                }
                for (int j = 0; j < NR; j++)
                {
                    if (j < cols)
                    {
                        float* row = src + (long)j * ldb;
                        for (int p = 0; p < kc; p++) dst[p * NR + j] = row[p];
                    }
                    else
                        for (int p = 0; p < kc; p++) dst[p * NR + j] = 0f;
                }
            }
        }
    }

    private static void TensorPrimitivesAdd(Span<float> x, ReadOnlySpan<float> y) => System.Numerics.Tensors.TensorPrimitives.Add(x, y, x);

    private static void Kernel(int kc, float* a, float* b, float* c, int ldc, int rows, int cols, bool overwrite, float* bias, Path path)
    {
        bool fma = path != Path.Portable;
        if (rows == MR && cols == NR)
        {
            if (fma) KernelAvx(kc, a, b, c, ldc, overwrite, bias);
            else Kernel128(kc, a, b, c, ldc, overwrite, bias);
            return;
        }
        // Edge tile: compute the full 6x16 into a local tile, then store the valid part. The additions go in
        // the full tile's order, (sum + bias) + C, so a row's values never depend on where it falls in the
        // matrix (a sentence gives the same bits alone or in a batch).
        float* tile = stackalloc float[MR * NR];
        if (fma) KernelAvx(kc, a, b, tile, NR, overwrite: true, null);
        else Kernel128(kc, a, b, tile, NR, overwrite: true, null);
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
            {
                float* dst = c + (long)i * ldc + j;
                float v = tile[i * NR + j];
                if (bias != null) v += bias[j];
                *dst = overwrite ? v : v + *dst;
            }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void KernelAvx(int kc, float* a, float* b, float* c, int ldc, bool overwrite, float* bias)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
            c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        // The C tile is read back only after the k loop: ask for its cache lines now, so that waiting for
        // them (from L3 or memory, as C is large and visited once per block of k) overlaps the arithmetic.
        for (int i = 0; i < MR; i++)
        {
            Sse.Prefetch0(c + (long)i * ldc);
            Sse.Prefetch0(c + (long)i * ldc + NR - 1);
        }
        // K unrolled by 4: the loop's own instructions would otherwise take a sixth of the issue slots.
        int p = 0;
        for (; p + 4 <= kc; p += 4, a += 4 * MR, b += 4 * NR)
        {
            Step(a, b, ref c00, ref c01, ref c10, ref c11, ref c20, ref c21, ref c30, ref c31, ref c40, ref c41, ref c50, ref c51);
            Step(a + MR, b + NR, ref c00, ref c01, ref c10, ref c11, ref c20, ref c21, ref c30, ref c31, ref c40, ref c41, ref c50, ref c51);
            Step(a + 2 * MR, b + 2 * NR, ref c00, ref c01, ref c10, ref c11, ref c20, ref c21, ref c30, ref c31, ref c40, ref c41, ref c50, ref c51);
            Step(a + 3 * MR, b + 3 * NR, ref c00, ref c01, ref c10, ref c11, ref c20, ref c21, ref c30, ref c31, ref c40, ref c41, ref c50, ref c51);
        }
        for (; p < kc; p++, a += MR, b += NR)
            Step(a, b, ref c00, ref c01, ref c10, ref c11, ref c20, ref c21, ref c30, ref c31, ref c40, ref c41, ref c50, ref c51);
        if (bias != null)
        {
            var bias0 = Avx.LoadVector256(bias);
            var bias1 = Avx.LoadVector256(bias + 8);
            c00 = Avx.Add(c00, bias0); c01 = Avx.Add(c01, bias1);
            c10 = Avx.Add(c10, bias0); c11 = Avx.Add(c11, bias1);
            c20 = Avx.Add(c20, bias0); c21 = Avx.Add(c21, bias1);
            c30 = Avx.Add(c30, bias0); c31 = Avx.Add(c31, bias1);
            c40 = Avx.Add(c40, bias0); c41 = Avx.Add(c41, bias1);
            c50 = Avx.Add(c50, bias0); c51 = Avx.Add(c51, bias1);
        }
        Store(c, c00, c01, overwrite); c += ldc;
        Store(c, c10, c11, overwrite); c += ldc;
        Store(c, c20, c21, overwrite); c += ldc;
        Store(c, c30, c31, overwrite); c += ldc;
        Store(c, c40, c41, overwrite); c += ldc;
        Store(c, c50, c51, overwrite);
    }

    /// <summary>One k of the 6x16 tile: two loads of B, six broadcasts of A, twelve FMAs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step(float* a, float* b, ref Vector256<float> c00, ref Vector256<float> c01, ref Vector256<float> c10, ref Vector256<float> c11,
        ref Vector256<float> c20, ref Vector256<float> c21, ref Vector256<float> c30, ref Vector256<float> c31,
        ref Vector256<float> c40, ref Vector256<float> c41, ref Vector256<float> c50, ref Vector256<float> c51)
    {
        var b0 = Avx.LoadVector256(b);
        var b1 = Avx.LoadVector256(b + 8);
        var x = Avx.BroadcastScalarToVector256(a);
        c00 = Fma.MultiplyAdd(x, b0, c00); c01 = Fma.MultiplyAdd(x, b1, c01);
        x = Avx.BroadcastScalarToVector256(a + 1);
        c10 = Fma.MultiplyAdd(x, b0, c10); c11 = Fma.MultiplyAdd(x, b1, c11);
        x = Avx.BroadcastScalarToVector256(a + 2);
        c20 = Fma.MultiplyAdd(x, b0, c20); c21 = Fma.MultiplyAdd(x, b1, c21);
        x = Avx.BroadcastScalarToVector256(a + 3);
        c30 = Fma.MultiplyAdd(x, b0, c30); c31 = Fma.MultiplyAdd(x, b1, c31);
        x = Avx.BroadcastScalarToVector256(a + 4);
        c40 = Fma.MultiplyAdd(x, b0, c40); c41 = Fma.MultiplyAdd(x, b1, c41);
        x = Avx.BroadcastScalarToVector256(a + 5);
        c50 = Fma.MultiplyAdd(x, b0, c50); c51 = Fma.MultiplyAdd(x, b1, c51);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, Vector256<float> lo, Vector256<float> hi, bool overwrite)
    {
        if (!overwrite)
        {
            lo = Avx.Add(lo, Avx.LoadVector256(c));
            hi = Avx.Add(hi, Avx.LoadVector256(c + 8));
        }
        Avx.Store(c, lo);
        Avx.Store(c + 8, hi);
    }

    /// <summary>
    /// 12x32 with AVX-512: rows 0-5 from the A panel at <paramref name="a"/> and rows 6-11 from the next one (kc·6 floats
    /// on), columns 0-15 from the B panel at <paramref name="b"/> and 16-31 from the next (kc·16 floats on). Each k: two
    /// loads of B, twelve broadcasts of A, 24 FMAs into 24 of the 32 registers (AVX2's 6x16 tile uses 12 of 16).
    /// Each output's FMAs, bias and C addition are those of <see cref="KernelAvx"/> in the same order, so the bits match.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel512(int kc, float* a, float* b, float* c, int ldc, bool overwrite, float* bias)
    {
        float* a1 = a + kc * MR, b1 = b + kc * NR;
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
            c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default,
            c60 = default, c61 = default, c70 = default, c71 = default, c80 = default, c81 = default,
            c90 = default, c91 = default, ca0 = default, ca1 = default, cb0 = default, cb1 = default;
        for (int i = 0; i < 2 * MR; i++)
        {
            Sse.Prefetch0(c + (long)i * ldc);
            Sse.Prefetch0(c + (long)i * ldc + 2 * NR - 1);
        }
        for (int p = 0; p < kc; p++, a += MR, a1 += MR, b += NR, b1 += NR)
        {
            var w0 = Vector512.Load(b);
            var w1 = Vector512.Load(b1);
            Fma512(a, w0, w1, ref c00, ref c01);
            Fma512(a + 1, w0, w1, ref c10, ref c11);
            Fma512(a + 2, w0, w1, ref c20, ref c21);
            Fma512(a + 3, w0, w1, ref c30, ref c31);
            Fma512(a + 4, w0, w1, ref c40, ref c41);
            Fma512(a + 5, w0, w1, ref c50, ref c51);
            Fma512(a1, w0, w1, ref c60, ref c61);
            Fma512(a1 + 1, w0, w1, ref c70, ref c71);
            Fma512(a1 + 2, w0, w1, ref c80, ref c81);
            Fma512(a1 + 3, w0, w1, ref c90, ref c91);
            Fma512(a1 + 4, w0, w1, ref ca0, ref ca1);
            Fma512(a1 + 5, w0, w1, ref cb0, ref cb1);
        }
        Vector512<float> bias0 = default, bias1 = default;
        if (bias != null)
        {
            bias0 = Vector512.Load(bias);
            bias1 = Vector512.Load(bias + NR);
        }
        Store512(c, c00, c01, overwrite, bias, bias0, bias1); c += ldc;
        Store512(c, c10, c11, overwrite, bias, bias0, bias1); c += ldc;
        Store512(c, c20, c21, overwrite, bias, bias0, bias1); c += ldc;
        Store512(c, c30, c31, overwrite, bias, bias0, bias1); c += ldc;
        Store512(c, c40, c41, overwrite, bias, bias0, bias1); c += ldc;
        Store512(c, c50, c51, overwrite, bias, bias0, bias1); c += ldc;
        Store512(c, c60, c61, overwrite, bias, bias0, bias1); c += ldc;
        Store512(c, c70, c71, overwrite, bias, bias0, bias1); c += ldc;
        Store512(c, c80, c81, overwrite, bias, bias0, bias1); c += ldc;
        Store512(c, c90, c91, overwrite, bias, bias0, bias1); c += ldc;
        Store512(c, ca0, ca1, overwrite, bias, bias0, bias1); c += ldc;
        Store512(c, cb0, cb1, overwrite, bias, bias0, bias1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Fma512(float* a, Vector512<float> w0, Vector512<float> w1, ref Vector512<float> c0, ref Vector512<float> c1)
    {
        var x = Vector512.Create(*a);
        c0 = Avx512F.FusedMultiplyAdd(x, w0, c0);
        c1 = Avx512F.FusedMultiplyAdd(x, w1, c1);
    }

    /// <summary>(sum + bias) + C, as <see cref="KernelAvx"/> and <see cref="Store"/> add them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store512(float* c, Vector512<float> lo, Vector512<float> hi, bool overwrite, float* bias, Vector512<float> bias0, Vector512<float> bias1)
    {
        if (bias != null)
        {
            lo += bias0;
            hi += bias1;
        }
        if (!overwrite)
        {
            lo += Vector512.Load(c);
            hi += Vector512.Load(c + NR);
        }
        lo.Store(c);
        hi.Store(c + NR);
    }

    /// <summary>The portable micro-kernel (SSE, Arm AdvSimd): the same tile with 128-bit vectors.</summary>
    private static void Kernel128(int kc, float* a, float* b, float* c, int ldc, bool overwrite, float* bias)
    {
        var acc = stackalloc Vector128<float>[MR * 4];
        for (int i = 0; i < MR * 4; i++) acc[i] = default;
        for (int p = 0; p < kc; p++, a += MR, b += NR)
        {
            var b0 = Vector128.Load(b); var b1 = Vector128.Load(b + 4); var b2 = Vector128.Load(b + 8); var b3 = Vector128.Load(b + 12);
            for (int i = 0; i < MR; i++)
            {
                var x = Vector128.Create(a[i]);
                var row = acc + i * 4;
                row[0] += x * b0; row[1] += x * b1; row[2] += x * b2; row[3] += x * b3;
            }
        }
        for (int i = 0; i < MR; i++, c += ldc)
            for (int q = 0; q < 4; q++)
            {
                var v = acc[i * 4 + q];
                if (bias != null) v += Vector128.Load(bias + q * 4);
                if (!overwrite) v += Vector128.Load(c + q * 4);
                v.Store(c + q * 4);
            }
    }
}

/// <summary>
/// A constant matrix W[n,k] (a linear layer's weight, used as Wᵀ) packed once in the layout the GEMM
/// micro-kernel reads: for each block of <c>KC</c> rows of Wᵀ, all 16-column panels, each [kc][16].
/// Multiplying by it skips packing B, which at 128 rows is a fifth of the time.
/// Immutable once built, so one instance can serve several threads; its pinned memory lives as long as it does.
/// </summary>
public sealed unsafe class PackedWeight
{
    /// <summary>Rows of W: the layer's output features (<c>out_features</c>), the columns of the product.</summary>
    public int N { get; }
    /// <summary>Columns of W: the layer's input features (<c>in_features</c>), the product's inner dimension.</summary>
    public int K { get; }
    private readonly AlignedBuffer _data;
    internal float* Pointer => _data.Pointer;
    internal int PaddedN { get; }

    /// <summary>Packs <paramref name="w"/>, row-major <c>[n, k]</c> as PyTorch stores <c>nn.Linear.weight</c>
    /// (<c>[out_features, in_features]</c>). The values are copied: later changes to <paramref name="w"/> are not seen.</summary>
    /// <exception cref="ArgumentException"><paramref name="w"/> holds fewer than n·k values.</exception>
    public PackedWeight(ReadOnlySpan<float> w, int n, int k)
    {
        if (w.Length < (long)n * k) throw new ArgumentException($"A {n}x{k} weight needs {(long)n * k} values, not {w.Length}.");
        N = n;
        K = k;
        PaddedN = (n + Sgemm.NR - 1) / Sgemm.NR * Sgemm.NR;
        _data = new AlignedBuffer(checked(PaddedN * k));
        float* pd = _data.Pointer;
        fixed (float* pw = w)
            for (int pc = 0; pc < k; pc += Sgemm.KC)
            {
                int kc = Math.Min(Sgemm.KC, k - pc);
                Sgemm.PackB(pw, k, transB: true, pc, kc, 0, n, pd + Offset(pc, 0, kc, PaddedN));
            }
    }

    /// <summary>Where the panels of columns from <paramref name="column"/> (a multiple of 16) start in the
    /// block of rows from <paramref name="pc"/> (of <paramref name="kc"/> rows): every earlier block holds KC
    /// rows of all <paramref name="paddedN"/> columns, and each panel before it kc rows of 16.</summary>
    internal static long Offset(int pc, int column, int kc, int paddedN) => (long)pc * paddedN + (long)column * kc;
}

/// <summary>Floats on the pinned object heap starting at a 64-byte boundary (a cache line): the array
/// never moves, so its pointer stays valid for as long as the buffer lives.</summary>
internal sealed unsafe class AlignedBuffer
{
    private readonly float[] _array;
    public float* Pointer { get; }
    public int Length { get; }

    public AlignedBuffer(int length)
    {
        Length = length;
        _array = GC.AllocateUninitializedArray<float>(length + 16, pinned: true);
        float* p = (float*)Unsafe.AsPointer(ref _array[0]);
        Pointer = (float*)(((nint)p + 63) & ~(nint)63);
    }
}
