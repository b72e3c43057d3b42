using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using NBert.Server;

namespace NBert.Tests.Server;

/// <summary>
/// Dynamic batching and backpressure under load, over HTTP: many clients get exactly the answers they get alone;
/// a full server answers 429 and recovers; a client that goes away is dropped from the queue; a stop drains.
/// </summary>
public sealed partial class ServerConcurrencyTests
{
    private static readonly string Encoder = Fixtures.Path("model", "encoder_only");

    private static readonly string[] Words =
        "the man went to the store he bought a gallon of milk penguins are flightless birds paris is the capital of france . , what who".Split(' ');

    /// <summary>Holds the batching loop before its next batch until released; says when a batch is held.</summary>
    private sealed class Gate : IDisposable
    {
        public readonly ManualResetEventSlim Held = new(), Open = new();
        public Gate(RunningServer server) => server.Server.Queue.BeforeBatch = () =>
        {
            Held.Set();
            Open.Wait();
        };
        public void Dispose() => Open.Set();
    }

    private static async Task Until(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(20)) throw new TimeoutException($"waited 20 s for {what}");
            await Task.Delay(5);
        }
    }

    [GeneratedRegex(@"^te_batch_next_size_(sum|count) (\S+)$", RegexOptions.Multiline)]
    private static partial Regex BatchSizes();

    private static async Task<(double Sum, double Count)> Batches(RunningServer server)
    {
        var m = BatchSizes().Matches((await server.Get("/metrics")).Body).ToDictionary(x => x.Groups[1].Value, x => double.Parse(x.Groups[2].Value, CultureInfo.InvariantCulture));
        return (m["sum"], m["count"]);
    }

    [Fact]
    public async Task Sixty_four_clients_sending_2000_mixed_requests_each_get_the_answer_they_get_alone()
    {
        await using var server = await RunningServer.Start(Encoder);
        var rng = new Random(7);
        string Text() => string.Join(" ", Enumerable.Range(0, 1 + rng.Next(rng.Next(8) == 0 ? 80 : 16)).Select(_ => Words[rng.Next(Words.Length)]));
        string Short()
        {
            string t = Text();
            return t[..Math.Min(60, t.Length)]; // /v1/embeddings truncates only with --auto-truncate
        }
        string[] Texts(int n) => Enumerable.Range(0, n).Select(_ => Text()).ToArray();
        var requests = Enumerable.Range(0, 150).Select(i => (i % 6) switch
        {
            0 => ("/embed", JsonSerializer.Serialize(new { inputs = Text(), truncate = true })),
            1 => ("/embed", JsonSerializer.Serialize(new { inputs = Texts(2 + rng.Next(4)), normalize = false, truncate = true, truncation_direction = "left" })),
            2 => ("/embed_all", JsonSerializer.Serialize(new { inputs = Text(), truncate = true })),
            3 => ("/similarity", JsonSerializer.Serialize(new { inputs = new { source_sentence = Text(), sentences = Texts(3) }, parameters = new { truncate = true } })),
            4 => ("/v1/embeddings", JsonSerializer.Serialize(new { input = new[] { Short(), Short() }, dimensions = 16 })),
            _ => ("/tokenize", JsonSerializer.Serialize(new { inputs = Text() })),
        }).ToArray();
        // Alone: one request at a time.
        var alone = new string[requests.Length];
        for (int i = 0; i < requests.Length; i++)
        {
            var reply = await server.Post(requests[i].Item1, requests[i].Item2);
            Assert.True(reply.Status == HttpStatusCode.OK, reply.Body);
            alone[i] = reply.Body;
        }
        var before = await Batches(server);

        var order = Enumerable.Range(0, 2000).Select(i => i % requests.Length).OrderBy(_ => rng.Next()).ToArray();
        var answers = new string?[order.Length];
        var statuses = new HttpStatusCode[order.Length];
        int next = -1;
        await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(async () =>
        {
            for (int k; (k = Interlocked.Increment(ref next)) < order.Length;)
            {
                var (route, body) = requests[order[k]];
                var reply = await server.Post(route, body);
                (statuses[k], answers[k]) = (reply.Status, reply.Body);
            }
        })));

        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));
        int mismatched = Enumerable.Range(0, order.Length).Count(k => answers[k] != alone[order[k]]);
        Assert.Equal(0, mismatched);
        // They were batched: fewer forward passes than inputs.
        var after = await Batches(server);
        double inputs = after.Sum - before.Sum, passes = after.Count - before.Count;
        Assert.True(passes < inputs / 2, $"{inputs} inputs ran in {passes} forward passes");
    }

    [Fact]
    public async Task A_full_server_answers_429_at_once_and_recovers()
    {
        await using var server = await RunningServer.Start(Encoder, o => o with { MaxConcurrentRequests = 2 });
        using var gate = new Gate(server);
        var first = server.Post("/embed", new { inputs = "the man" });
        Assert.True(gate.Held.Wait(TimeSpan.FromSeconds(20)), "the first request never reached the model");
        var second = server.Post("/embed", new { inputs = "the store" });
        await Until(() => server.Server.Queue.Waiting().Length == 1, "the second request to queue");

        var clock = Stopwatch.StartNew();
        Assert.Equal("Model is overloaded", (await server.Post("/embed", new { inputs = "milk" })).Error(429, "Overloaded"));
        var openAi = await server.Post("/v1/embeddings", new { input = "milk" });
        Assert.Equal("{\"message\":\"Model is overloaded\",\"code\":429,\"type\":\"Overloaded\"}", openAi.Body);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), "429 comes at once");
        Assert.Equal(HttpStatusCode.OK, (await server.Post("/tokenize", new { inputs = "milk" })).Status); // no model work, no permit

        gate.Open.Set();
        Assert.Equal(HttpStatusCode.OK, (await first).Status);
        Assert.Equal(HttpStatusCode.OK, (await second).Status);
        Assert.Equal(HttpStatusCode.OK, (await server.Post("/embed", new { inputs = "milk" })).Status);
        Assert.Equal(2, server.Server.Metrics.Value("te_request_failure", "err=\"overloaded\""));
    }

    [Fact]
    public async Task A_client_that_goes_away_is_dropped_from_the_queue_before_its_work_runs()
    {
        await using var server = await RunningServer.Start(Encoder);
        using var gate = new Gate(server);
        var first = server.Post("/embed", new { inputs = "the man" });
        Assert.True(gate.Held.Wait(TimeSpan.FromSeconds(20)), "the first request never reached the model");
        using var leaving = new CancellationTokenSource();
        var abandoned = server.Post("/embed", new { inputs = "the store" }, leaving.Token);
        var staying = server.Post("/embed", new { inputs = "a gallon of milk" });
        await Until(() => server.Server.Queue.Waiting().Length == 2, "two requests to queue");

        leaving.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => abandoned);
        await Until(() => server.Server.Queue.Waiting().Any(w => w.Aborted.IsCancellationRequested), "the server to see the client leave");
        gate.Open.Set();
        Assert.Equal(HttpStatusCode.OK, (await first).Status);
        Assert.Equal(HttpStatusCode.OK, (await staying).Status);
        Assert.Equal(1, server.Server.Metrics.Value("te_request_failure", "err=\"dropped\""));
        Assert.Equal((2.0, 2.0), await Batches(server)); // the first alone, then "staying" alone: the abandoned input never ran
    }

    [Fact]
    public async Task A_stop_drains_the_requests_in_progress_answering_503_meanwhile()
    {
        await using var server = await RunningServer.Start(Encoder, o => o with { ShutdownTimeout = TimeSpan.FromSeconds(30) });
        using var gate = new Gate(server);
        var inProgress = server.Post("/embed", new { inputs = "the man" });
        gate.Held.Wait(TimeSpan.FromSeconds(20));
        var stop = server.Server.StopAsync();
        await Until(() => server.Get("/health").Result.Status == HttpStatusCode.ServiceUnavailable, "/health to say 503");
        Assert.Equal("unhealthy", (await server.Get("/health")).Error(503, "Unhealthy"));
        (await server.Post("/embed", new { inputs = "milk" })).Error(503, "Unhealthy");
        Assert.False(stop.IsCompleted);

        gate.Open.Set();
        Assert.Equal(HttpStatusCode.OK, (await inProgress).Status);
        await stop.WaitAsync(TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task A_stop_ends_within_the_shutdown_timeout_when_work_does_not_finish()
    {
        await using var server = await RunningServer.Start(Encoder, o => o with { ShutdownTimeout = TimeSpan.FromMilliseconds(500) });
        using var gate = new Gate(server);
        var stuck = server.Post("/embed", new { inputs = "the man" });
        gate.Held.Wait(TimeSpan.FromSeconds(20));
        var clock = Stopwatch.StartNew();
        await server.Server.StopAsync().WaitAsync(TimeSpan.FromSeconds(20));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"stopped after {clock.Elapsed}");
        await Assert.ThrowsAnyAsync<Exception>(() => stuck); // the connection was closed under it
    }

    [Fact]
    public async Task Nbert_serve_stops_cleanly_on_sigterm()
    {
        var start = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "nbert.dll"), "serve", "--model", Encoder, "--port", "0", "--hostname", "127.0.0.1"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        try
        {
            string line = (await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60)))!;
            var address = Regex.Match(line, @"on (http://\S+) ").Groups[1].Value;
            Assert.StartsWith("nbert serve: embedding model", line);
            using var client = new HttpClient { BaseAddress = new Uri(address) };
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/embed", new StringContent("{\"inputs\": \"x\"}", System.Text.Encoding.UTF8, "application/json"))).StatusCode);
            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)])!) await kill.WaitForExitAsync();
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(20));
            Assert.Equal(0, process.ExitCode);
            Assert.Equal("nbert serve: stopped", (await process.StandardOutput.ReadToEndAsync()).Trim());
        }
        finally
        {
            if (!process.HasExited) process.Kill();
        }
    }

    [Fact]
    public void Bad_options_and_models_are_refused_with_a_message()
    {
        var (code, _, error) = NBert.Tests.Cli.Nbert.Run("serve", "--model", Encoder, "--max-batch-tokens", "64");
        Assert.Equal(2, code);
        Assert.Equal("nbert: --max-batch-tokens (64) must be at least the model's maximum input length (128).", error.Trim());
        (code, _, error) = NBert.Tests.Cli.Nbert.Run("serve", "--model", Encoder, "--max-concurrent-requests", "0");
        Assert.Equal(2, code);
        Assert.Equal("nbert: --max-concurrent-requests must be at least 1, not 0.", error.Trim());
        (code, _, error) = NBert.Tests.Cli.Nbert.Run("serve", "--model", "/nonexistent/model");
        Assert.Equal(2, code);
        Assert.StartsWith("nbert: Model '/nonexistent/model' is not a directory", error.Trim());
        (code, _, error) = NBert.Tests.Cli.Nbert.Run("serve", "--model", Encoder, "--hostname", "example.com");
        Assert.Equal(2, code);
        Assert.Equal("nbert: --hostname must be an IP address or localhost, not 'example.com'.", error.Trim());
        // An address that is not this machine's (192.0.2.1 is for documentation only) is the user's mistake too.
        (code, _, error) = NBert.Tests.Cli.Nbert.Run("serve", "--model", Encoder, "--hostname", "192.0.2.1", "--port", "0");
        Assert.Equal(2, code);
        Assert.StartsWith("nbert: cannot listen on 192.0.2.1:0: ", error.Trim());
        // A timeout no timer can wait for is refused before the model loads, not an overflow.
        foreach (var (value, shown) in new[] { ("1e300", "1E+300"), ("Infinity", "Infinity"), ("-1", "-1"), ("86401", "86401") })
        {
            (code, _, error) = NBert.Tests.Cli.Nbert.Run("serve", "--model", "/nonexistent/model", "--shutdown-timeout", value);
            Assert.Equal(2, code);
            Assert.StartsWith($"nbert: --shutdown-timeout must be between 0 and 86400, not {shown}.", error.Trim());
        }
        Assert.Throws<ArgumentException>(() => new ServerOptions { Model = Encoder, ShutdownTimeout = TimeSpan.FromDays(2) }.Validate());
    }

    [Fact]
    public void The_model_option_says_every_way_to_name_a_model()
    {
        var (code, output, _) = NBert.Tests.Cli.Nbert.Run("serve", "--help");
        Assert.Equal(0, code);
        Assert.Contains("Model: a directory, a built-in name (minilm, arctic-xs) or a Hugging Face Hub id (org/name[@revision])", output);
    }

    [Fact]
    public async Task A_server_that_cannot_listen_leaves_nothing_running()
    {
        using var busy = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        busy.Start();
        int port = ((IPEndPoint)busy.LocalEndpoint).Port;
        var inference = TextEmbeddingsInference.Load(new ServerOptions { Model = Encoder, Hostname = "127.0.0.1", Port = port });
        Assert.True(inference.Queue.IsRunning);
        var e = await Assert.ThrowsAsync<IOException>(() => InferenceServer.StartAsync(inference));
        Assert.StartsWith($"cannot listen on 127.0.0.1:{port}: ", e.Message);
        // The server owned the model and its batching loop from the start: both are gone.
        Assert.False(inference.Queue.IsRunning);
        Assert.True(inference.Queue.WaitStopped(TimeSpan.FromSeconds(20)));
        Assert.True(inference.Model.IsDisposed);
    }
}
