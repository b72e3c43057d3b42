using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NBert.Pipelines;

namespace NBert.Server;

/// <summary>
/// <c>nbert serve</c>: a model behind text-embeddings-inference's HTTP API on Kestrel, with dynamic batching
/// (<see cref="BatchingQueue"/>) and backpressure: at most <c>--max-concurrent-requests</c> requests in progress,
/// one more answered 429 at once. A stop (SIGTERM, Ctrl+C or <see cref="StopAsync"/>) drains: <c>/health</c> and new
/// requests answer 503 while the requests in progress finish, for at most <c>--shutdown-timeout</c>; then the
/// server stops.
/// </summary>
public sealed class InferenceServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ServerOptions _options;
    private readonly SemaphoreSlim _permits;
    private readonly TextWriter _log;
    private readonly byte[]? _authorization;
    private int _inFlight;
    private volatile bool _draining;

    internal ServedModel Model { get; }
    internal BatchingQueue Queue { get; }
    internal Metrics Metrics { get; }

    /// <summary>The address the server listens on (with the port it got when asked for port 0).</summary>
    public Uri Address { get; private set; } = null!;

    /// <summary>The model's task: embedding, classifier, reranker, fill-mask, token-classification, question-answering, next-sentence or pretraining.</summary>
    public string Task => Model.Task;

    private InferenceServer(ServerOptions options, ServedModel model, TextWriter log)
    {
        _options = options;
        _log = log;
        Model = model;
        Metrics = new Metrics(model.MaxInputLength);
        Queue = new BatchingQueue(model, Metrics, options.MaxBatchTokens, options.MaxBatchRequests);
        _permits = new SemaphoreSlim(options.MaxConcurrentRequests, options.MaxConcurrentRequests);
        _authorization = options.ApiKey is null ? null : Encoding.UTF8.GetBytes("Bearer " + options.ApiKey);

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = options.ShutdownTimeout);
        builder.Services.AddSingleton<IHostedService>(new Drain(this));
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = options.PayloadLimit;
            k.Listen(ParseHostname(options.Hostname), options.Port);
        });
        _app = builder.Build();
        _app.Use(Gate);
        Map(_app);
    }

    /// <summary>Loads the model and starts listening. Bad options or a model that cannot load throw
    /// (<see cref="ArgumentException"/>, <see cref="NBertException"/>, <see cref="FileNotFoundException"/>).</summary>
    public static async Task<InferenceServer> StartAsync(ServerOptions options, TextWriter? log = null)
    {
        options.Validate();
        ParseHostname(options.Hostname);
        var model = ServedModel.Load(options.Model, options.Pooling);
        if (model.MaxInputLength > options.MaxBatchTokens)
            throw new ArgumentException($"--max-batch-tokens ({options.MaxBatchTokens}) must be at least the model's maximum input length ({model.MaxInputLength}).");
        var server = new InferenceServer(options, model, log ?? TextWriter.Null);
        try
        {
            await server._app.StartAsync();
        }
        catch (IOException e)
        {
            server.Queue.Stop();
            throw new IOException($"cannot listen on {options.Hostname}:{options.Port}: {e.Message}", e);
        }
        string address = server._app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.Address = new Uri(address.Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal).Replace("[::]", "[::1]", StringComparison.Ordinal));
        return server;
    }

    private static IPAddress ParseHostname(string hostname) =>
        hostname == "localhost" ? IPAddress.Loopback
        : IPAddress.TryParse(hostname, out var ip) ? ip
        : throw new ArgumentException($"--hostname must be an IP address or localhost, not '{hostname}'.");

    /// <summary>Completes when the server has stopped (SIGTERM or Ctrl+C, then the drain).</summary>
    public Task WaitForShutdownAsync() => _app.WaitForShutdownAsync();

    /// <summary>Drains and stops, as SIGTERM does.</summary>
    public Task StopAsync() => _app.StopAsync();

    /// <summary>Stops the server (draining as <see cref="StopAsync"/> does) and the batching loop, then disposes the model
    /// once no batch can still be running on it; if the batch in progress outlasts <c>--shutdown-timeout</c>, the model
    /// is left to the garbage collector instead.</summary>
    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        Queue.Stop();
        // The model goes only once no batch can be running on it (a stop does not wait for the batch in progress).
        if (Queue.WaitStopped(_options.ShutdownTimeout)) Model.Dispose();
    }

    /// <summary>The drain, run when the host begins to stop and before Kestrel stops listening.</summary>
    private sealed class Drain(InferenceServer server) : IHostedLifecycleService
    {
        public async Task StoppingAsync(CancellationToken token)
        {
            server._draining = true;
            try
            {
                while (Volatile.Read(ref server._inFlight) > 0) await System.Threading.Tasks.Task.Delay(10, token);
            }
            catch (OperationCanceledException) { } // --shutdown-timeout: what is left fails below
            server.Queue.Stop();
        }

        public Task StartAsync(CancellationToken token) => System.Threading.Tasks.Task.CompletedTask;
        public Task StopAsync(CancellationToken token) => System.Threading.Tasks.Task.CompletedTask;
        public Task StartingAsync(CancellationToken token) => System.Threading.Tasks.Task.CompletedTask;
        public Task StartedAsync(CancellationToken token) => System.Threading.Tasks.Task.CompletedTask;
        public Task StoppedAsync(CancellationToken token) => System.Threading.Tasks.Task.CompletedTask;
    }

    /// <summary>Before every route: the API key (all but <c>/health</c>), the drain, and the count of requests in progress.</summary>
    private async Task Gate(HttpContext ctx, Func<Task> next)
    {
        bool health = ctx.Request.Path == "/health";
        if (!health && _authorization is not null &&
            !CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(ctx.Request.Headers.Authorization.ToString()), _authorization))
        {
            ctx.Response.StatusCode = StatusCodes.Status401Unauthorized;
            ctx.Response.Headers.WWWAuthenticate = "Bearer";
            return;
        }
        if (health)
        {
            await next();
            return;
        }
        Interlocked.Increment(ref _inFlight);
        try
        {
            if (_draining) await WriteError(ctx, ServerError.ShuttingDown(), openAi: ctx.Request.Path.StartsWithSegments("/v1"));
            else await next();
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }

    private void Map(WebApplication app)
    {
        var tei = new TeiRoutes(Model, Queue, Metrics, _options);
        var pipelines = new PipelineRoutes(Model, Queue, _options);
        void Post(string path, Func<Call, JsonElement, Task<object>> route, bool permit = true, bool openAi = false) =>
            app.MapPost(path, ctx => Serve(ctx, route, permit, openAi));
        Post("/embed", tei.Embed);
        Post("/embed_all", tei.EmbedAll);
        Post("/predict", tei.Predict);
        Post("/rerank", tei.Rerank);
        Post("/similarity", tei.Similarity);
        Post("/v1/embeddings", tei.OpenAiEmbeddings, openAi: true);
        Post("/tokenize", tei.Tokenize, permit: false);
        Post("/decode", tei.Decode, permit: false);
        Post("/fill-mask", pipelines.FillMask);
        Post("/token-classification", pipelines.TokenClassification);
        Post("/question-answering", pipelines.QuestionAnswering);
        Post("/next-sentence", pipelines.NextSentence);
        app.MapGet("/info", ctx => WriteJson(ctx, 200, tei.Info()));
        app.MapGet("/metrics", ctx =>
        {
            ctx.Response.ContentType = "text/plain; version=0.0.4";
            return ctx.Response.WriteAsync(Metrics.Render());
        });
        app.MapGet("/health", ctx => _draining || !Queue.IsRunning
            ? WriteError(ctx, new ServerError(ErrorType.Unhealthy, "unhealthy", "unhealthy"), openAi: false)
            : System.Threading.Tasks.Task.CompletedTask);
    }

    /// <summary>One POST route: the body read and parsed, a permit (429 when none is left), the route, then the JSON
    /// answer with TEI's headers, or TEI's error body. Whatever a client sends, the answer is a status code.</summary>
    private async Task Serve(HttpContext ctx, Func<Call, JsonElement, Task<object>> route, bool permit, bool openAi)
    {
        var call = new Call(ctx);
        bool held = false;
        try
        {
            var body = await ReadBody(ctx);
            if (permit)
            {
                held = _permits.Wait(0);
                if (!held) throw ServerError.Overloaded();
            }
            var value = await route(call, body);
            Metrics.Count("te_request_success", $"method=\"{call.Method}\"");
            if (call.Compute is { } c) Report(ctx, call, c);
            await WriteJson(ctx, 200, value);
        }
        catch (ServerError e)
        {
            Metrics.Count("te_request_failure", $"err=\"{e.MetricLabel}\"");
            await WriteError(ctx, e, openAi);
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
            // The client went away; its queued work was dropped.
        }
        catch (Exception e)
        {
            _log.WriteLine($"nbert serve: {ctx.Request.Path}: unexpected failure: {e}");
            await WriteError(ctx, new ServerError(ErrorType.Backend, $"Backend error: {e.Message}", "internal", 500), openAi);
        }
        finally
        {
            if (held) _permits.Release();
            Metrics.Count("te_request_count", $"method=\"{call.Method}\"");
        }
    }

    private async Task<JsonElement> ReadBody(HttpContext ctx)
    {
        byte[] bytes;
        try
        {
            using var buffer = new MemoryStream();
            await ctx.Request.Body.CopyToAsync(buffer, ctx.RequestAborted);
            bytes = buffer.ToArray();
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw ServerError.PayloadTooLarge(_options.PayloadLimit);
        }
        if (!System.Text.Unicode.Utf8.IsValid(bytes)) throw ServerError.NotJson("the body is not valid UTF-8");
        try
        {
            using var document = JsonDocument.Parse(bytes);
            return document.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw ServerError.NotJson(e.Message);
        }
    }

    /// <summary>TEI's response headers (milliseconds) and duration histograms.</summary>
    private void Report(HttpContext ctx, Call call, Compute c)
    {
        var total = Stopwatch.GetElapsedTime(call.Start);
        string Ms(TimeSpan t) => ((long)t.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
        var h = ctx.Response.Headers;
        h["x-compute-type"] = "cpu";
        h["x-compute-time"] = Ms(total);
        h["x-compute-characters"] = c.Characters.ToString(CultureInfo.InvariantCulture);
        if (c.Tokens is int tokens) h["x-compute-tokens"] = tokens.ToString(CultureInfo.InvariantCulture);
        h["x-total-time"] = Ms(total);
        h["x-tokenization-time"] = Ms(c.Tokenization);
        h["x-queue-time"] = Ms(c.Queue);
        h["x-inference-time"] = Ms(c.Inference);
        Metrics.Observe("te_request_duration", total.TotalSeconds);
        Metrics.Observe("te_request_tokenization_duration", c.Tokenization.TotalSeconds);
        Metrics.Observe("te_request_queue_duration", c.Queue.TotalSeconds);
        Metrics.Observe("te_request_inference_duration", c.Inference.TotalSeconds);
    }

    private static Task WriteJson(HttpContext ctx, int status, object value)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        return JsonSerializer.SerializeAsync(ctx.Response.Body, value, value.GetType(), PipelineJson.Options);
    }

    private static Task WriteError(HttpContext ctx, ServerError e, bool openAi) =>
        WriteJson(ctx, e.Status, openAi ? new OpenAiErrorBody(e.Message, e.Status, e.Type) : new ErrorBody(e.Message, e.Type));
}
