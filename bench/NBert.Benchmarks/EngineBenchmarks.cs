using System.Diagnostics;
using System.Globalization;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Text;
using NBert.Modeling;
using NBert.Tensors;
using TorchSharp;
using static TorchSharp.torch;
using TTensor = TorchSharp.torch.Tensor;
using NBert.Schema;

namespace NBert.Benchmarks;

/// <summary>
/// NBert's engine against libtorch (TorchSharp 0.107, libtorch 2.10, MKL) in one process: SGEMM on the
/// BERT shapes, and a whole bert-base forward pass with the same weights. Engines alternate within each
/// round and the median round counts; both are given the same number of threads.
/// </summary>
public static class EngineBenchmarks
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>The median of timings (shared by the benchmark harnesses).</summary>
    internal static double Median(IEnumerable<double> values)
    {
        var s = values.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    /// <summary>Seconds per call: calls repeated for about <paramref name="seconds"/>, after one warm-up.</summary>
    private static double Time(Action action, double seconds = 0.25)
    {
        action();
        var watch = Stopwatch.StartNew();
        int n = 0;
        do { action(); n++; } while (watch.Elapsed.TotalSeconds < seconds);
        return watch.Elapsed.TotalSeconds / n;
    }

    private static void SetThreads(int threads)
    {
        Threading.MaxThreads = threads;
        torch.set_num_threads(threads);
    }

    public static string Sgemm(int rounds, TextWriter log)
    {
        var shapes = new List<(string Name, int M, int N, int K, bool Weight)>();
        foreach (int m in new[] { 128, 512, 4096 })
            foreach (var (n, k) in new[] { (768, 768), (3072, 768), (768, 3072) })
                shapes.Add(($"{m}x{n}x{k}", m, n, k, true));
        shapes.Add(("attention QKᵀ 128x128x64", 128, 128, 64, false));
        shapes.Add(("attention PV 128x64x128", 128, 64, 128, false));
        var rng = new Random(1);
        float[] Random(int n) { var a = new float[n]; for (int i = 0; i < n; i++) a[i] = (float)rng.NextDouble() - 0.5f; return a; }

        var sb = new StringBuilder();
        sb.AppendLine("| shape (M x N x K) | threads | NBert, weight packed once | NBert, packed per call | libtorch matmul | libtorch / NBert (packed) |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|");
        using var _ = torch.no_grad();
        foreach (int threads in new[] { 1, Environment.ProcessorCount }.Distinct())
        {
            SetThreads(threads);
            foreach (var (name, m, n, k, weight) in shapes)
            {
                // Linear layers: C = A · Wᵀ (W [n, k]); attention QKᵀ the same, PV: C = P · V (V [k, n]).
                var a = Random(m * k);
                var b = Random(n * k);
                var c = new float[m * n];
                bool transB = weight || name.Contains("QK");
                var packed = transB ? new PackedWeight(b, n, k) : null;
                using var ta = torch.tensor(a, [m, k]);
                using var tb = transB ? torch.tensor(b, [n, k]) : torch.tensor(b, [k, n]);
                var tbOp = transB ? tb.t() : tb;
                double flops = 2.0 * m * n * k;
                var nbertPacked = new List<double>();
                var nbertRaw = new List<double>();
                var torchTimes = new List<double>();
                for (int r = 0; r < rounds; r++)
                {
                    if (packed is not null) nbertPacked.Add(Time(() => NBert.Tensors.Sgemm.Multiply(m, a, k, packed, c, n)));
                    nbertRaw.Add(Time(() => NBert.Tensors.Sgemm.Multiply(m, n, k, a, k, b, transB ? k : n, transB, c, n)));
                    torchTimes.Add(Time(() => { using var r2 = ta.matmul(tbOp); }));
                }
                double gPacked = packed is null ? double.NaN : flops / Median(nbertPacked) / 1e9;
                double gRaw = flops / Median(nbertRaw) / 1e9, gTorch = flops / Median(torchTimes) / 1e9;
                double best = double.IsNaN(gPacked) ? gRaw : gPacked;
                string line = string.Create(Inv, $"| {name} | {threads} | {(double.IsNaN(gPacked) ? "-" : $"{gPacked:F1}")} | {gRaw:F1} | {gTorch:F1} | {gTorch / best:F2} |");
                log.WriteLine(line);
                sb.AppendLine(line);
            }
        }
        sb.AppendLine();
        sb.AppendLine("GFLOP/s, median of the rounds. The last column is libtorch's speed over NBert's: below 1, NBert is faster.");
        return sb.ToString();
    }

    /// <summary>
    /// The machine's measured float32 FMA peak: a loop of 12 independent FMA chains on registers only (no loads), per
    /// instruction set and thread count, GFLOP/s (2 per lane per FMA). What a GEMM could reach at best.
    /// </summary>
    public static (string Table, Dictionary<int, double> Peak) FmaPeak(TextWriter log)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| instruction set | threads | GFLOP/s |");
        sb.AppendLine("|---|---:|---:|");
        var peak = new Dictionary<int, double>();
        foreach (int threads in new[] { 1, Environment.ProcessorCount }.Distinct())
        {
            var sets = new List<(string Name, Func<long, float> Loop, int Lanes)>();
            if (Fma.IsSupported) sets.Add(("AVX2 + FMA (Vector256, vfmadd231ps ymm)", Fma256, 8));
            if (Avx512F.IsSupported) sets.Add(("AVX-512F (Vector512, vfmadd231ps zmm)", Fma512, 16));
            foreach (var (name, loop, lanes) in sets)
            {
                const long iterations = 20_000_000;
                loop(1000);
                var best = 0.0;
                for (int r = 0; r < 3; r++)
                {
                    var clock = Stopwatch.StartNew();
                    var workers = Enumerable.Range(0, threads).Select(_ => new Thread(() => loop(iterations))).ToList();
                    workers.ForEach(t => t.Start());
                    workers.ForEach(t => t.Join());
                    best = Math.Max(best, threads * iterations * 12.0 * lanes * 2 / clock.Elapsed.TotalSeconds / 1e9);
                }
                peak[threads] = Math.Max(peak.GetValueOrDefault(threads), best);
                string line = string.Create(Inv, $"| {name} | {threads} | {best:F1} |");
                log.WriteLine(line);
                sb.AppendLine(line);
            }
        }
        sb.AppendLine();
        sb.AppendLine("Best of 3 runs of 20 M iterations of 12 independent FMA chains on registers, one loop per thread.");
        return (sb.ToString(), peak);
    }

    private static float Fma256(long iterations)
    {
        Vector256<float> a = Vector256.Create(0.999999f), b = Vector256.Create(1e-7f);
        Vector256<float> c0 = Vector256.Create(0f), c1 = Vector256.Create(1f), c2 = Vector256.Create(2f), c3 = Vector256.Create(3f),
            c4 = Vector256.Create(4f), c5 = Vector256.Create(5f), c6 = Vector256.Create(6f), c7 = Vector256.Create(7f),
            c8 = Vector256.Create(8f), c9 = Vector256.Create(9f), c10 = Vector256.Create(10f), c11 = Vector256.Create(11f);
        for (long i = 0; i < iterations; i++)
        {
            c0 = Fma.MultiplyAdd(c0, a, b); c1 = Fma.MultiplyAdd(c1, a, b); c2 = Fma.MultiplyAdd(c2, a, b); c3 = Fma.MultiplyAdd(c3, a, b);
            c4 = Fma.MultiplyAdd(c4, a, b); c5 = Fma.MultiplyAdd(c5, a, b); c6 = Fma.MultiplyAdd(c6, a, b); c7 = Fma.MultiplyAdd(c7, a, b);
            c8 = Fma.MultiplyAdd(c8, a, b); c9 = Fma.MultiplyAdd(c9, a, b); c10 = Fma.MultiplyAdd(c10, a, b); c11 = Fma.MultiplyAdd(c11, a, b);
        }
        return Vector256.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
    }

    private static float Fma512(long iterations)
    {
        Vector512<float> a = Vector512.Create(0.999999f), b = Vector512.Create(1e-7f);
        Vector512<float> c0 = Vector512.Create(0f), c1 = Vector512.Create(1f), c2 = Vector512.Create(2f), c3 = Vector512.Create(3f),
            c4 = Vector512.Create(4f), c5 = Vector512.Create(5f), c6 = Vector512.Create(6f), c7 = Vector512.Create(7f),
            c8 = Vector512.Create(8f), c9 = Vector512.Create(9f), c10 = Vector512.Create(10f), c11 = Vector512.Create(11f);
        for (long i = 0; i < iterations; i++)
        {
            c0 = Avx512F.FusedMultiplyAdd(c0, a, b); c1 = Avx512F.FusedMultiplyAdd(c1, a, b); c2 = Avx512F.FusedMultiplyAdd(c2, a, b);
            c3 = Avx512F.FusedMultiplyAdd(c3, a, b); c4 = Avx512F.FusedMultiplyAdd(c4, a, b); c5 = Avx512F.FusedMultiplyAdd(c5, a, b);
            c6 = Avx512F.FusedMultiplyAdd(c6, a, b); c7 = Avx512F.FusedMultiplyAdd(c7, a, b); c8 = Avx512F.FusedMultiplyAdd(c8, a, b);
            c9 = Avx512F.FusedMultiplyAdd(c9, a, b); c10 = Avx512F.FusedMultiplyAdd(c10, a, b); c11 = Avx512F.FusedMultiplyAdd(c11, a, b);
        }
        return Vector512.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
    }

    /// <summary>bert-base's forward FLOPs at b x s (the linear layers and attention's two products; the pooler and the
    /// elementwise passes left out): 2·m·(4h² + 2hI) + 4·b·s²·h per layer.</summary>
    private static double ForwardFlops(BertConfig c, int batch, int sequence)
    {
        double m = batch * sequence, h = c.HiddenSize, inner = c.IntermediateSize;
        return c.NumHiddenLayers * (2 * m * (4 * h * h + 2 * h * inner) + 4.0 * batch * sequence * sequence * h);
    }

    public static string Forward(int rounds, TextWriter log, IReadOnlyDictionary<int, double> peak)
    {
        var config = new BertConfig(); // bert-base: 12 layers, hidden 768, 12 heads, intermediate 3072
        var model = BertPreTrainedModel.FromConfig(config, BertArchitecture.BertModel, seed: 1);
        using var torchModel = new TorchBert(model);
        const int sequence = 128;
        var sb = new StringBuilder();
        sb.AppendLine("| batch x sequence | threads | NBert latency | libtorch latency | NBert sequences/s | libtorch sequences/s | libtorch / NBert time | NBert GFLOP/s (of FMA peak) | max \\|difference\\| |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        var rng = new Random(2);
        foreach (int threads in new[] { 1, Environment.ProcessorCount }.Distinct())
        {
            SetThreads(threads);
            foreach (int batch in new[] { 1, 8 })
            {
                var ids = Enumerable.Range(0, batch * sequence).Select(_ => rng.Next(1000, config.VocabSize)).ToArray();
                var mask = Enumerable.Repeat(1, batch * sequence).ToArray();
                for (int b = 1; b < batch; b += 2) mask.AsSpan(b * sequence + sequence * 3 / 4, sequence / 4).Clear(); // some padding
                var inputs = new ModelInputs(batch, sequence, ids, attentionMask: mask);
                var nb = model.Forward(inputs).LastHiddenState!;
                var th = torchModel.Forward(ids, mask, batch, sequence);
                double diff = 0;
                for (int i = 0; i < nb.Data.Length; i++)
                    if (mask[i / config.HiddenSize] == 1) diff = Math.Max(diff, Math.Abs(nb.Data[i] - th[i]));
                var nTimes = new List<double>();
                var tTimes = new List<double>();
                for (int r = 0; r < rounds; r++)
                {
                    nTimes.Add(Time(() => model.Forward(inputs), 1.0));
                    tTimes.Add(Time(() => torchModel.Forward(ids, mask, batch, sequence), 1.0));
                }
                double nt = Median(nTimes), tt = Median(tTimes);
                double gflops = ForwardFlops(config, batch, sequence) / nt / 1e9;
                string line = string.Create(Inv, $"| {batch} x {sequence} | {threads} | {nt * 1e3:F1} ms | {tt * 1e3:F1} ms | {batch / nt:F1} | {batch / tt:F1} | {tt / nt:F2} | {gflops:F1} ({(peak.TryGetValue(threads, out double best) ? (gflops / best).ToString("P0", Inv) : "no FMA peak")}) | {diff:E1} |");
                log.WriteLine(line);
                sb.AppendLine(line);
            }
        }
        sb.AppendLine();
        sb.AppendLine("bert-base (random weights, seed 1), BertModel forward (last_hidden_state and pooler). libtorch runs the same weights with");
        sb.AppendLine("transformers' computation (linear, scaled_dot_product_attention, exact GELU, layer_norm) under no_grad. Above 1 in the");
        sb.AppendLine("time column, NBert is faster. The difference column compares last_hidden_state on unmasked positions. GFLOP/s counts");
        sb.AppendLine("the linear layers and attention's two products (2·m·(4h² + 2hI) + 4·b·s²·h a layer, padding included), against the");
        sb.AppendLine("best FMA peak of the same thread count above.");
        return sb.ToString();
    }

    /// <summary>BERT's forward pass written with libtorch's functional ops, on NBert's weights.</summary>
    private sealed class TorchBert : IDisposable
    {
        private readonly Dictionary<string, TTensor> _w;
        private readonly BertConfig _c;

        public TorchBert(BertPreTrainedModel model)
        {
            _c = model.Config;
            _w = model.Parameters.ToDictionary(p => p.Key, p => torch.tensor(p.Value.Data, p.Value.Shape.Select(d => (long)d).ToArray()));
        }

        public float[] Forward(int[] ids, int[] mask, int batch, int sequence)
        {
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            int h = _c.HiddenSize, heads = _c.NumAttentionHeads, d = h / heads;
            var idt = torch.tensor(ids.Select(i => (long)i).ToArray(), [batch * sequence]);
            var x = _w["embeddings.word_embeddings.weight"].index_select(0, idt).view(batch, sequence, h)
                + _w["embeddings.position_embeddings.weight"].narrow(0, 0, sequence)
                + _w["embeddings.token_type_embeddings.weight"][0];
            x = nn.functional.layer_norm(x, [h], _w["embeddings.LayerNorm.weight"], _w["embeddings.LayerNorm.bias"], _c.LayerNormEps);
            var m = torch.tensor(mask.Select(v => v == 1 ? 0f : float.MinValue).ToArray(), [batch, 1, 1, sequence]);
            for (int l = 0; l < _c.NumHiddenLayers; l++)
            {
                string p = $"encoder.layer.{l}";
                TTensor Heads(string name) => nn.functional.linear(x, _w[$"{p}.attention.self.{name}.weight"], _w[$"{p}.attention.self.{name}.bias"])
                    .view(batch, sequence, heads, d).transpose(1, 2);
                var ctx = nn.functional.scaled_dot_product_attention(Heads("query"), Heads("key"), Heads("value"), m)
                    .transpose(1, 2).reshape(batch, sequence, h);
                var a = nn.functional.layer_norm(nn.functional.linear(ctx, _w[$"{p}.attention.output.dense.weight"], _w[$"{p}.attention.output.dense.bias"]) + x,
                    [h], _w[$"{p}.attention.output.LayerNorm.weight"], _w[$"{p}.attention.output.LayerNorm.bias"], _c.LayerNormEps);
                var i = nn.functional.gelu(nn.functional.linear(a, _w[$"{p}.intermediate.dense.weight"], _w[$"{p}.intermediate.dense.bias"]));
                x = nn.functional.layer_norm(nn.functional.linear(i, _w[$"{p}.output.dense.weight"], _w[$"{p}.output.dense.bias"]) + a,
                    [h], _w[$"{p}.output.LayerNorm.weight"], _w[$"{p}.output.LayerNorm.bias"], _c.LayerNormEps);
            }
            var pooled = torch.tanh(nn.functional.linear(x.select(1, 0), _w["pooler.dense.weight"], _w["pooler.dense.bias"]));
            _ = pooled.data<float>()[0]; // the pooler runs too, as in NBert's forward
            return x.contiguous().data<float>().ToArray();
        }

        public void Dispose()
        {
            foreach (var t in _w.Values) t.Dispose();
        }
    }
}
