using BenchmarkDotNet.Running;
using NBert.Benchmarks;

// dotnet run -c Release --project bench/NBert.Benchmarks -- tokenizers [--rounds N] [--write docs/benchmarks.md]
// dotnet run -c Release --project bench/NBert.Benchmarks -- bdn [BenchmarkDotNet arguments]
string repo = Paths.RepoRoot();
if (args.Length > 0 && args[0] == "bdn")
{
    BenchmarkSwitcher.FromAssembly(typeof(Paths).Assembly).Run(args[1..]);
    return 0;
}
if (args.Length > 0 && args[0] == "embeddings")
{
    int embRounds = args.Contains("--rounds") ? int.Parse(args[Array.IndexOf(args, "--rounds") + 1]) : 3;
    string? embTarget = args.Contains("--write") ? args[Array.IndexOf(args, "--write") + 1] : null;
    var sentences = EmbeddingBenchmarks.Sentences(Corpus.LoadSotu(Path.Combine(repo, "bench", "data", "sotu")), 1000);
    string embTable = EmbeddingBenchmarks.Run(sentences, embRounds, Console.Out);
    string embSection = $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {TokenizerThroughput.Machine()}, .NET {Environment.Version}; ONNX Runtime 1.31.1.\n\n{embTable}\nReproduce:\n\n```sh\nbench/fetch-sotu.sh && dotnet run -c Release --project bench/NBert.Benchmarks -- embeddings --rounds {embRounds} --write docs/benchmarks.md\n```\n";
    Console.WriteLine(embSection);
    if (embTarget is not null) Paths.WriteSection(embTarget, "embeddings", embSection);
    return 0;
}
if (args.Length > 0 && args[0] == "pipelines")
{
    int pipeRounds = args.Contains("--rounds") ? int.Parse(args[Array.IndexOf(args, "--rounds") + 1]) : 3;
    string? pipeTarget = args.Contains("--write") ? args[Array.IndexOf(args, "--write") + 1] : null;
    var pipeSentences = EmbeddingBenchmarks.Sentences(Corpus.LoadSotu(Path.Combine(repo, "bench", "data", "sotu")), 2000);
    string pipeTable = PipelineBenchmarks.Run(pipeSentences, pipeRounds, Console.Out);
    string pipeSection = $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {TokenizerThroughput.Machine()}, .NET {Environment.Version}.\n\n{pipeTable}\nReproduce:\n\n```sh\nbench/fetch-sotu.sh && dotnet run -c Release --project bench/NBert.Benchmarks -- pipelines --rounds {pipeRounds} --write docs/benchmarks.md\n```\n";
    Console.WriteLine(pipeSection);
    if (pipeTarget is not null) Paths.WriteSection(pipeTarget, "pipelines", pipeSection);
    return 0;
}
if (args.Length > 0 && args[0] == "training")
{
    LibTorchLoader.Prepare();
    int trainRounds = args.Contains("--rounds") ? int.Parse(args[Array.IndexOf(args, "--rounds") + 1]) : 3;
    string? trainTarget = args.Contains("--write") ? args[Array.IndexOf(args, "--write") + 1] : null;
    string trainTable = TrainingBenchmarks.Run(trainRounds, Console.Out);
    string trainSection = $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {TokenizerThroughput.Machine()}, .NET {Environment.Version}, {Environment.ProcessorCount} cores; libtorch 2.10.0 through TorchSharp 0.107.0.\n\n{trainTable}\nReproduce:\n\n```sh\ndotnet run -c Release --project bench/NBert.Benchmarks -- training --rounds {trainRounds} --write docs/benchmarks.md\n```\n";
    Console.WriteLine(trainSection);
    if (trainTarget is not null) Paths.WriteSection(trainTarget, "training", trainSection);
    return 0;
}
if (args.Length > 0 && args[0] == "engine")
{
    // libtorch must be able to load before any TorchSharp type is touched.
    LibTorchLoader.Prepare();
    int engineRounds = args.Contains("--rounds") ? int.Parse(args[Array.IndexOf(args, "--rounds") + 1]) : 3;
    string? target = args.Contains("--write") ? args[Array.IndexOf(args, "--write") + 1] : null;
    string machine = $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {TokenizerThroughput.Machine()}, .NET {Environment.Version}, {Environment.ProcessorCount} cores; libtorch 2.10.0 through TorchSharp 0.107.0.";
    string command = $"dotnet run -c Release --project bench/NBert.Benchmarks -- engine --rounds {engineRounds} --write docs/benchmarks.md";
    string sgemm = EngineBenchmarks.Sgemm(engineRounds, Console.Out);
    string forward = EngineBenchmarks.Forward(engineRounds, Console.Out);
    string section = $"{machine}\n\n### SGEMM\n\n{sgemm}\n### bert-base forward, sequence 128\n\n{forward}\nReproduce:\n\n```sh\n{command}\n```\n";
    Console.WriteLine(section);
    if (target is not null) Paths.WriteSection(target, "engine", section);
    return 0;
}
if (args.Length == 0 || args[0] != "tokenizers")
{
    Console.Error.WriteLine("usage: tokenizers [--rounds N] [--data DIR] [--vocab FILE] [--tokenizer-json FILE] [--write FILE] | engine [--rounds N] [--write FILE] | embeddings [--rounds N] [--write FILE] | training [--rounds N] [--write FILE] | pipelines [--rounds N] [--write FILE] | bdn [...]");
    return 2;
}
string Arg(string name, string fallback)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}
int rounds = int.Parse(Arg("--rounds", "5"));
string data = Arg("--data", Path.Combine(repo, "bench", "data", "sotu"));
string vocab = Arg("--vocab", Paths.Vocab(repo));
string tokenizerJson = Arg("--tokenizer-json", Paths.TokenizerJson(repo));
string? write = Arg("--write", "") is { Length: > 0 } w ? w : null;

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
Console.WriteLine(table);
if (write is not null) Paths.WriteSection(write, "tokenizers", table);
return 0;

namespace NBert.Benchmarks
{
    public static class Paths
    {
        public static string RepoRoot()
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "NBert.sln"))) dir = dir.Parent;
            return dir?.FullName ?? Directory.GetCurrentDirectory();
        }

        public static string Vocab(string repo) => Path.Combine(repo, "models", "bert-base-uncased", "vocab.txt");

        /// <summary>bert-base-uncased's tokenizer.json, as Hugging Face saved it (for the Rust tokenizer).</summary>
        public static string TokenizerJson(string repo) =>
            Path.Combine(repo, "..", "shared", "fixtures", "tokenizer", "saved_uncased", "tokenizer.json");

        /// <summary>Replaces the text between <c>&lt;!-- name:begin --&gt;</c> and <c>&lt;!-- name:end --&gt;</c>
        /// (appending the section when absent), through a temporary file renamed over the original.</summary>
        public static void WriteSection(string path, string name, string content)
        {
            string begin = $"<!-- {name}:begin -->", end = $"<!-- {name}:end -->";
            string text = File.Exists(path) ? File.ReadAllText(path) : "# Benchmarks\n";
            int b = text.IndexOf(begin, StringComparison.Ordinal), e = text.IndexOf(end, StringComparison.Ordinal);
            string block = $"{begin}\n{content}{end}";
            text = b >= 0 && e > b ? text[..b] + block + text[(e + end.Length)..] : text.TrimEnd() + "\n\n" + block + "\n";
            string temp = path + ".tmp";
            File.WriteAllText(temp, text);
            File.Move(temp, path, overwrite: true);
        }
    }
}
