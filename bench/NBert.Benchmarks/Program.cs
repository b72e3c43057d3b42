using BenchmarkDotNet.Running;
using NBert.Benchmarks;

// dotnet run -c Release --project bench/NBert.Benchmarks -- tokenizers [--rounds N] [--write docs/benchmarks.md]
// dotnet run -c Release --project bench/NBert.Benchmarks -- linear [--rounds N] [--write docs/benchmarks.md]   (float32 vs int8 linear layers)
// dotnet run -c Release --project bench/NBert.Benchmarks -- bdn [BenchmarkDotNet arguments]
string repo = Paths.RepoRoot();
string command = args.Length > 0 ? args[0] : "";
if (command == "bdn")
{
    BenchmarkSwitcher.FromAssembly(typeof(Paths).Assembly).Run(args[1..]);
    return 0;
}
string Arg(string name, string fallback)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}
int rounds = int.Parse(Arg("--rounds", command == "tokenizers" ? "5" : "3"));
string? write = Arg("--write", "") is { Length: > 0 } w ? w : null;
string Measured(string peers) => $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {TokenizerThroughput.Machine()}, .NET {Environment.Version}{peers}.";
string Reproduce(string before) =>
    $"Reproduce:\n\n```sh\n{before}dotnet run -c Release --project bench/NBert.Benchmarks -- {command} --rounds {rounds} --write docs/benchmarks.md\n```\n";
int Publish(string section)
{
    Console.WriteLine(section);
    if (write is not null) Paths.WriteSection(write, command, section);
    return 0;
}
string libTorch = $", {Environment.ProcessorCount} cores; libtorch 2.10.0 through TorchSharp 0.107.0";
switch (command)
{
    case "embeddings":
    {
        var sentences = EmbeddingBenchmarks.Sentences(Corpus.LoadSotu(Path.Combine(repo, "bench", "data", "sotu")), 1000);
        return Publish($"{Measured("; ONNX Runtime 1.31.1")}\n\n{EmbeddingBenchmarks.Run(sentences, rounds, Console.Out)}\n{Reproduce("bench/fetch-sotu.sh && ")}");
    }
    case "pipelines":
    {
        var sentences = EmbeddingBenchmarks.Sentences(Corpus.LoadSotu(Path.Combine(repo, "bench", "data", "sotu")), 2000);
        return Publish($"{Measured("")}\n\n{PipelineBenchmarks.Run(sentences, rounds, Console.Out)}\n{Reproduce("bench/fetch-sotu.sh && ")}");
    }
    case "training":
        LibTorchLoader.Prepare();
        return Publish($"{Measured(libTorch)}\n\n{TrainingBenchmarks.Run(rounds, Console.Out)}\n{Reproduce("")}");
    case "engine":
    {
        // libtorch must be able to load before any TorchSharp type is touched.
        LibTorchLoader.Prepare();
        var (fma, peak) = EngineBenchmarks.FmaPeak(Console.Out);
        string sgemm = EngineBenchmarks.Sgemm(rounds, Console.Out);
        string forward = EngineBenchmarks.Forward(rounds, Console.Out, peak);
        return Publish($"{Measured(libTorch)}\n\n### FMA peak\n\n{fma}\n### SGEMM\n\n{sgemm}\n### bert-base forward, sequence 128\n\n{forward}\n{Reproduce("")}");
    }
    case "linear":
        return Publish($"{Measured("")}\n\n{LinearBenchmarks.Run(rounds, Console.Out)}\n{Reproduce("")}");
    case "tokenizers":
        break;
    default:
        Console.Error.WriteLine("usage: tokenizers [--rounds N] [--data DIR] [--vocab FILE] [--tokenizer-json FILE] [--write FILE] | engine [--rounds N] [--write FILE] | embeddings [--rounds N] [--write FILE] | training [--rounds N] [--write FILE] | pipelines [--rounds N] [--write FILE] | linear [--rounds N] [--write FILE] | bdn [...]");
        return 2;
}
string data = Arg("--data", Path.Combine(repo, "bench", "data", "sotu"));
string vocab = Arg("--vocab", Paths.Vocab(repo));
string tokenizerJson = Arg("--tokenizer-json", Paths.TokenizerJson(repo));

var chunks = Corpus.LoadSotu(data);
long chars = chunks.Sum(c => (long)c.Length);
Console.WriteLine($"{chunks.Count:N0} chunks, {chars:N0} characters");
ITokenizerEngine[] engines =
[
    new NBertEngine(vocab), new FastBertEngine(vocab), new MicrosoftMlEngine(vocab, withOffsets: false),
    new MicrosoftMlEngine(vocab, withOffsets: true), new HuggingFaceRustEngine(tokenizerJson),
];
var results = TokenizerThroughput.Measure(chunks, engines, rounds, Console.Out);
foreach (var e in engines) e.Dispose();
string table = TokenizerThroughput.ToMarkdown(results, chunks.Count, chars, rounds,
    $"bench/fetch-sotu.sh && dotnet run -c Release --project bench/NBert.Benchmarks -- tokenizers --rounds {rounds} --write docs/benchmarks.md");
Console.WriteLine();
return Publish(table);
