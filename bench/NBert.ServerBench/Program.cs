using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Runtime.Intrinsics;
using System.Text;
using System.Text.RegularExpressions;
using NBert.Benchmarks;
using NBert.Hub;
using NBert.Pipelines;
using NBert.Server;

// dotnet run -c Release --project bench/NBert.ServerBench -- [--sentences 1000] [--rounds 3] [--write docs/benchmarks.md]
// MiniLM sentence embeddings through `nbert serve`'s /embed with 1, 8 and 64 concurrent clients (one sentence a
// request), against the same process's in-process pipeline (SentenceEmbeddings.Embed, batches of 32). Then the server's
// allocations per request: the same requests sent from a child process (this program with --client), so that what this
// process allocates meanwhile is the server's alone.
var inv = CultureInfo.InvariantCulture;
string Arg(string name, string fallback)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}
int count = int.Parse(Arg("--sentences", "1000"), inv), rounds = int.Parse(Arg("--rounds", "3"), inv);
string? write = Arg("--write", "") is { Length: > 0 } w ? w : null;
string repo = Paths.RepoRoot();

// The embeddings benchmark's sentences: the first of 5 to 60 words in the State of the Union corpus.
var sentences = Corpus.LoadSotu(Path.Combine(repo, "bench", "data", "sotu"))
    .SelectMany(c => c.Split(". ", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
    .Select(s => s.EndsWith('.') ? s : s + ".")
    .Where(s => s.Split(' ').Length is >= 5 and <= 60)
    .Take(count).ToList();

// A run's clients in another process: `--client URL --clients N` warms up (JIT, one connection per client), prints
// "ready", waits for a line on standard input, sends every sentence to /embed from N clients, prints "done".
if (Arg("--client", "") is { Length: > 0 } url)
{
    int clientCount = int.Parse(Arg("--clients", "1"), inv);
    using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256 }) { BaseAddress = new Uri(url), Timeout = TimeSpan.FromMinutes(10) };
    async Task Send(IReadOnlyList<string> texts)
    {
        int next = -1;
        await Task.WhenAll(Enumerable.Range(0, clientCount).Select(_ => Task.Run(async () =>
        {
            for (int k; (k = Interlocked.Increment(ref next)) < texts.Count;)
            {
                using var response = await client.PostAsJsonAsync("/embed", new { inputs = texts[k] });
                response.EnsureSuccessStatusCode();
                await response.Content.ReadAsByteArrayAsync();
            }
        })));
    }
    await Send(sentences.Take(Math.Max(2 * clientCount, 32)).ToList());
    Console.WriteLine("ready");
    Console.ReadLine();
    await Send(sentences);
    Console.WriteLine("done");
    return 0;
}

var pipeline = SentenceEmbeddings.FromPretrained(ModelResolver.Resolve("minilm"));
await using var server = await InferenceServer.StartAsync(new ServerOptions { Model = "minilm", Port = 0, Hostname = "127.0.0.1" });
using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256 }) { BaseAddress = server.Address, Timeout = TimeSpan.FromMinutes(10) };

double InProcess()
{
    var clock = Stopwatch.StartNew();
    pipeline.Embed(sentences);
    return sentences.Count / clock.Elapsed.TotalSeconds;
}

async Task<(double Sum, double Count)> BatchSizes()
{
    string metrics = await http.GetStringAsync("/metrics");
    double Read(string what) => double.Parse(Regex.Match(metrics, $@"^te_batch_next_size_{what} (\S+)$", RegexOptions.Multiline).Groups[1].Value, inv);
    return (Read("sum"), Read("count"));
}

// The HTTP, JSON and tokenization a request costs without the model: /tokenize from 64 clients.
async Task<double> TokenizeOnly()
{
    int next = -1;
    var clock = Stopwatch.StartNew();
    await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(async () =>
    {
        for (int k; (k = Interlocked.Increment(ref next)) < sentences.Count;)
        {
            using var response = await http.PostAsJsonAsync("/tokenize", new { inputs = sentences[k] });
            response.EnsureSuccessStatusCode();
            await response.Content.ReadAsByteArrayAsync();
        }
    })));
    return sentences.Count / clock.Elapsed.TotalSeconds;
}

async Task<(double PerSecond, double P50, double P99, double MeanBatch)> Served(int clients)
{
    var latencies = new double[sentences.Count];
    int next = -1;
    var before = await BatchSizes();
    // Bytes allocated per request, server and client together (both in this process): issue 26 compares it before
    // and after the body is read once into a pooled buffer. Not a timing: it does not depend on the machine's load.
    long allocated = GC.GetTotalAllocatedBytes(precise: true);
    var clock = Stopwatch.StartNew();
    await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => Task.Run(async () =>
    {
        for (int k; (k = Interlocked.Increment(ref next)) < sentences.Count;)
        {
            long start = Stopwatch.GetTimestamp();
            using var response = await http.PostAsJsonAsync("/embed", new { inputs = sentences[k] });
            response.EnsureSuccessStatusCode();
            await response.Content.ReadAsByteArrayAsync();
            latencies[k] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
    })));
    double perSecond = sentences.Count / clock.Elapsed.TotalSeconds;
    Console.Error.WriteLine(string.Create(inv, $"{clients} clients: {(GC.GetTotalAllocatedBytes(precise: true) - allocated) / sentences.Count:N0} bytes allocated per request"));
    var after = await BatchSizes();
    Array.Sort(latencies);
    return (perSecond, latencies[latencies.Length / 2], latencies[(int)Math.Ceiling(latencies.Length * 0.99) - 1],
        (after.Sum - before.Sum) / (after.Count - before.Count));
}

// The bytes the server's process allocates per /embed request (GC.GetTotalAllocatedBytes, precise), with the clients in
// a child process started from this program; sampled once the child is warmed up and again when its last response is in.
// This process runs nothing else meanwhile (the pipeline is idle), so the difference is the server's: Kestrel, the
// routes, the batching queue and the model.
async Task<double> ServerBytesPerRequest(int clients)
{
    string self = Environment.ProcessPath!;
    var start = new ProcessStartInfo(self) { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
    if (Path.GetFileNameWithoutExtension(self) == "dotnet") start.ArgumentList.Add(System.Reflection.Assembly.GetEntryAssembly()!.Location);
    foreach (string a in new[] { "--client", server.Address.ToString(), "--clients", clients.ToString(inv), "--sentences", count.ToString(inv) })
        start.ArgumentList.Add(a);
    using var child = Process.Start(start)!;
    if (await child.StandardOutput.ReadLineAsync() != "ready") throw new InvalidOperationException("the client process did not start");
    long allocated = GC.GetTotalAllocatedBytes(precise: true);
    await child.StandardInput.WriteLineAsync("go");
    await child.StandardInput.FlushAsync();
    string? done = await child.StandardOutput.ReadLineAsync();
    long bytes = GC.GetTotalAllocatedBytes(precise: true) - allocated;
    await child.WaitForExitAsync();
    if (done != "done" || child.ExitCode != 0) throw new InvalidOperationException($"the client process failed (exit {child.ExitCode})");
    return (double)bytes / sentences.Count;
}

double Median(IEnumerable<double> xs)
{
    var s = xs.Order().ToArray();
    return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
}

// Warm-up (JIT, packed weights), then rounds interleaving the modes, medians over rounds. The machine's load average
// goes into the table: the cores may be shared with other work.
string Load() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "?";
string loadBefore = Load();
InProcess();
await Served(8);
var tokenizeOnly = new List<double>();
int[] clientCounts = [1, 8, 64];
var inProcess = new List<double>();
var served = clientCounts.ToDictionary(c => c, _ => new List<(double PerSecond, double P50, double P99, double MeanBatch)>());
for (int r = 0; r < rounds; r++)
{
    inProcess.Add(InProcess());
    tokenizeOnly.Add(await TokenizeOnly());
    Console.Error.WriteLine(string.Create(inv, $"round {r + 1}: in-process {inProcess[^1]:F1}/s"));
    foreach (int c in clientCounts)
    {
        served[c].Add(await Served(c));
        Console.Error.WriteLine(string.Create(inv, $"round {r + 1}: {c} clients {served[c][^1].PerSecond:F1}/s, p50 {served[c][^1].P50:F1} ms, p99 {served[c][^1].P99:F1} ms, mean batch {served[c][^1].MeanBatch:F1}"));
    }
}

// Allocations after the timed rounds, once per client count: they do not depend on the machine's load as timings do.
var serverBytes = new Dictionary<int, double>();
foreach (int c in clientCounts)
{
    serverBytes[c] = await ServerBytesPerRequest(c);
    Console.Error.WriteLine(string.Create(inv, $"{c} clients in a child process: the server allocated {serverBytes[c]:N0} bytes per request"));
}

string cpu = File.Exists("/proc/cpuinfo") ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "?" : "?";
string isa = Vector512.IsHardwareAccelerated ? "AVX-512 present; NBert's kernels use AVX2/FMA" : Vector256.IsHardwareAccelerated ? "AVX2/FMA" : "no AVX2";
double pipelineRate = Median(inProcess);
var sb = new StringBuilder();
sb.AppendLine(string.Create(inv, $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {cpu} ({isa}), .NET {Environment.Version}, {Environment.ProcessorCount} cores."));
sb.AppendLine();
sb.AppendLine("| mode | clients | sentences/s | p50 latency | p99 latency | mean batch | vs in-process | server allocations per request |");
sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|");
sb.AppendLine(string.Create(inv, $"| in-process `SentenceEmbeddings.Embed` (batches of 32) | - | {pipelineRate:F1} | - | - | 32 | 1.00 | - |"));
// Ratios within a round, then their median: the machine's load drifts between rounds.
foreach (int c in clientCounts)
{
    double rate = Median(served[c].Select(x => x.PerSecond));
    double ratio = Median(Enumerable.Range(0, rounds).Select(r => served[c][r].PerSecond / inProcess[r]));
    sb.AppendLine(string.Create(inv, $"| `nbert serve`, POST /embed, one sentence a request | {c} | {rate:F1} | {Median(served[c].Select(x => x.P50)):F1} ms | {Median(served[c].Select(x => x.P99)):F1} ms | {Median(served[c].Select(x => x.MeanBatch)):F1} | {ratio:F2} | {serverBytes[c] / 1024:F1} KiB |"));
}
sb.AppendLine(string.Create(inv, $"| `nbert serve`, POST /tokenize (HTTP, JSON and tokenization, no model) | 64 | {Median(tokenizeOnly):F0} | - | - | - | - | - |"));
double scale = Median(Enumerable.Range(0, rounds).Select(r => served[64][r].PerSecond / served[1][r].PerSecond));
sb.AppendLine();
sb.AppendLine(string.Create(inv, $"all-MiniLM-L6-v2, {sentences.Count:N0} State of the Union sentences (the first of 5 to 60 words, as in the embeddings table), server and clients in one process on the same cores,"));
sb.AppendLine(string.Create(inv, $"default options (--max-batch-tokens 16384), HTTP/1.1 on loopback; median of {rounds} interleaved rounds, ratios taken within a round."));
sb.AppendLine(string.Create(inv, $"64 clients give {scale:F1}x the throughput of one."));
sb.AppendLine(string.Create(inv, $"Server allocations per request: the bytes the server's process allocated (GC.GetTotalAllocatedBytes, precise) while a child process, warmed up first, sent the {sentences.Count:N0} sentences to /embed"));
sb.AppendLine("with that many clients, divided by the requests; once per client count, after the timed rounds (whose clients share the server's process, so their allocations are not the server's alone).");
sb.AppendLine(string.Create(inv, $"Load average (1 min) before the run {loadBefore}, after it {Load()} (the run itself keeps about {Environment.ProcessorCount} threads busy; more means other work shared the cores)."));
sb.AppendLine();
sb.AppendLine("Reproduce:");
sb.AppendLine();
sb.AppendLine("```sh");
sb.AppendLine($"bench/fetch-sotu.sh && dotnet run -c Release --project bench/NBert.ServerBench -- --sentences {count} --rounds {rounds} --write docs/benchmarks.md");
sb.AppendLine("```");
Console.WriteLine(sb);
if (write is not null) Paths.WriteSection(Path.Combine(repo, write), "server", sb.ToString());
return 0;
