using System.Diagnostics;
using System.Globalization;
using System.Text;
using BenchmarkDotNet.Attributes;
using NBert.Tensors;

namespace NBert.Benchmarks;

/// <summary>
/// One linear layer y = x · Wᵀ + b in float32 (<see cref="Sgemm"/>) and in int8 (<see cref="Int8Gemm"/>, activations
/// quantized per row inside the call, as a model would run it) on MiniLM's shapes at batch 32 x 64 tokens:
/// <c>-- bdn --filter *LinearBenchmarks*</c> for BenchmarkDotNet, or <c>-- linear</c> for the markdown table.
/// </summary>
[SimpleJob(warmupCount: 3, iterationCount: 10)]
public class LinearBenchmarks
{
    /// <summary>Tokens: a batch of 32 sequences of 64.</summary>
    public const int Rows = 32 * 64;

    /// <summary>(in, out) of MiniLM's (hidden 384, intermediate 1536) linear layers.</summary>
    public static readonly (int In, int Out)[] Shapes = [(384, 384), (384, 1536), (1536, 384)];

    public static IEnumerable<string> ShapeNames => Shapes.Select(s => $"{s.In}x{s.Out}");
    public static IEnumerable<int> ThreadCounts => new[] { 1, Environment.ProcessorCount }.Distinct();

    [ParamsSource(nameof(ShapeNames))]
    public string Shape { get; set; } = "384x384";

    [ParamsSource(nameof(ThreadCounts))]
    public int Threads { get; set; } = 1;

    private Layer _layer = null!;

    [GlobalSetup]
    public void Setup()
    {
        var parts = Shape.Split('x');
        _layer = new Layer(int.Parse(parts[0], CultureInfo.InvariantCulture), int.Parse(parts[1], CultureInfo.InvariantCulture));
        Threading.MaxThreads = Threads;
    }

    [Benchmark(Baseline = true)]
    public void Float32() => _layer.Float32();

    /// <summary>The path this machine picks (<see cref="Int8Gemm.Best"/>).</summary>
    [Benchmark]
    public void Int8() => _layer.Int8(Int8Gemm.Best, Threads);

    /// <summary>The AVX2 path forced, to compare with the wider ones where the machine has them.</summary>
    [Benchmark]
    public void Int8Avx2() => _layer.Int8(Int8Path.Avx2, Threads);

    /// <summary>One layer's data: activations with a few large channels, as BERT hidden states have.</summary>
    internal sealed class Layer
    {
        public readonly int In, Out;
        private readonly float[] _x, _bias, _y;
        private readonly PackedWeight _float32;
        private readonly Int8PackedWeight _int8;

        public Layer(int inFeatures, int outFeatures)
        {
            (In, Out) = (inFeatures, outFeatures);
            var rng = new Random(1);
            _x = new float[Rows * In];
            for (int i = 0; i < _x.Length; i++) _x[i] = (float)(rng.NextDouble() * 2 - 1) * (i % In < 3 ? 8 : 1);
            var w = new float[Out * In];
            for (int i = 0; i < w.Length; i++) w[i] = (float)(rng.NextDouble() * 2 - 1) * 0.05f;
            _bias = new float[Out];
            for (int i = 0; i < Out; i++) _bias[i] = (float)(rng.NextDouble() - 0.5);
            _y = new float[Rows * Out];
            _float32 = new PackedWeight(w, Out, In);
            _int8 = new Int8PackedWeight(w, Out, In);
        }

        public void Float32() => Sgemm.Multiply(Rows, _x, In, _float32, _y, Out, bias: _bias);

        public void Int8(Int8Path path, int threads) => Int8Gemm.Multiply(path, Rows, _x, In, _int8, _y, Out, false, _bias, threads);
    }

    /// <summary>The markdown table: GOP/s (2·m·in·out per call) for float32 and each vector int8 path this machine runs
    /// (the one it picks marked), and int8's speed over float32's; median of the rounds.</summary>
    public static string Run(int rounds, TextWriter log)
    {
        var paths = new[] { Int8Path.AvxVnni, Int8Path.Avx512BW, Int8Path.Avx2 }.Where(Int8Gemm.IsSupported).ToArray();
        string Name(Int8Path p) => p == Int8Gemm.Best ? $"{p} (picked)" : $"{p}";
        var sb = new StringBuilder();
        sb.AppendLine($"| layer (in x out), {Rows} rows | threads | float32 GFLOP/s | " +
            string.Join(" | ", paths.Select(p => $"int8 {Name(p)} GOP/s")) + " | " + string.Join(" | ", paths.Select(p => $"int8 {Name(p)} / float32")) + " |");
        sb.AppendLine("|---|---:|---:|" + string.Concat(Enumerable.Repeat("---:|", 2 * paths.Length)));
        foreach (int threads in ThreadCounts)
        {
            Threading.MaxThreads = threads;
            foreach (var (inFeatures, outFeatures) in Shapes)
            {
                var layer = new Layer(inFeatures, outFeatures);
                double ops = 2.0 * Rows * inFeatures * outFeatures;
                var float32 = new List<double>();
                var int8 = paths.Select(_ => new List<double>()).ToArray();
                for (int r = 0; r < rounds; r++)
                {
                    // Engines alternate within each round, so drift in the machine's speed hits them alike.
                    float32.Add(Time(layer.Float32));
                    for (int p = 0; p < paths.Length; p++)
                    {
                        var path = paths[p];
                        int8[p].Add(Time(() => layer.Int8(path, threads)));
                    }
                }
                double f = ops / EngineBenchmarks.Median(float32) / 1e9;
                var q = int8.Select(t => ops / EngineBenchmarks.Median(t) / 1e9).ToArray();
                string line = string.Create(CultureInfo.InvariantCulture,
                    $"| {inFeatures}x{outFeatures} | {threads} | {f:F1} | {string.Join(" | ", q.Select(v => v.ToString("F1", CultureInfo.InvariantCulture)))} | " +
                    $"{string.Join(" | ", q.Select(v => (v / f).ToString("F2", CultureInfo.InvariantCulture)))} |");
                log.WriteLine(line);
                sb.AppendLine(line);
            }
        }
        sb.AppendLine();
        sb.AppendLine($"int8 includes quantizing the activations (per row) in each call. Instruction sets: float32 {Sgemm.Best} SGEMM kernel, " +
            $"int8 {string.Join(" and ", paths)}.");
        return sb.ToString();
    }

    /// <summary>Seconds per call: calls repeated for about a quarter of a second, after one warm-up.</summary>
    private static double Time(Action action)
    {
        action();
        var watch = Stopwatch.StartNew();
        int n = 0;
        do { action(); n++; } while (watch.Elapsed.TotalSeconds < 0.25);
        return watch.Elapsed.TotalSeconds / n;
    }
}
