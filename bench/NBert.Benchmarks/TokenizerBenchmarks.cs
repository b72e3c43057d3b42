using BenchmarkDotNet.Attributes;

namespace NBert.Benchmarks;

/// <summary>BenchmarkDotNet view of one thread tokenizing 1,000 SOTU chunks (about 1 MB): allocation
/// and time per engine (<c>-- bdn --filter *TokenizerBenchmarks*</c>).</summary>
[MemoryDiagnoser]
[SimpleJob(warmupCount: 2, iterationCount: 8)]
public class TokenizerBenchmarks
{
    private List<string> _chunks = [];
    private ITokenizerEngine _engine = null!;

    [Params("NBert", "FastBertTokenizer", "Microsoft.ML", "HF Rust")]
    public string Engine { get; set; } = "NBert";

    [GlobalSetup]
    public void Setup()
    {
        string repo = Paths.RepoRoot();
        _chunks = Corpus.LoadSotu(Path.Combine(repo, "bench", "data", "sotu")).Take(1000).ToList();
        string vocab = Paths.Vocab(repo);
        _engine = Engine switch
        {
            "NBert" => new NBertEngine(vocab),
            "FastBertTokenizer" => new FastBertEngine(vocab),
            "Microsoft.ML" => new MicrosoftMlEngine(vocab, withOffsets: false),
            _ => new HuggingFaceRustEngine(Paths.TokenizerJson(repo)),
        };
    }

    [GlobalCleanup]
    public void Cleanup() => _engine.Dispose();

    [Benchmark]
    public int Tokenize()
    {
        int n = 0;
        foreach (var chunk in _chunks) n += _engine.Encode(chunk).Length;
        return n;
    }
}
