using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using NBert.Pipelines;

namespace NBert.Server;

/// <summary>
/// A model served with text-embeddings-inference's API, ready to be mapped into an ASP.NET Core application
/// (<see cref="TextEmbeddingsInferenceEndpoints.MapTextEmbeddingsInference"/>): the loaded model, its batching loop
/// (<see cref="BatchingQueue"/>), the metrics, and the permits of <see cref="ServerOptions.MaxConcurrentRequests"/>.
/// <see cref="InferenceServer"/> (<c>nbert serve</c>) hosts one on a Kestrel of its own; an application of your own maps
/// one beside its other endpoints and disposes it once the application has stopped. Of the options, the hosting ones
/// (<see cref="ServerOptions.Port"/>, <see cref="ServerOptions.Hostname"/>) are the host's business.
/// </summary>
public sealed class TextEmbeddingsInference : IDisposable
{
    private readonly SemaphoreSlim _permits;
    private readonly TextWriter _log;
    private readonly byte[]? _authorization;
    private int _inFlight;

    internal ServedModel Model { get; }
    internal BatchingQueue Queue { get; }
    internal Metrics Metrics { get; }
    /// <summary>Set when the host begins to stop (<see cref="InferenceServer"/>'s drain): new requests answer 503.</summary>
    internal volatile bool Draining;
    /// <summary>Requests in progress (<c>/health</c> not counted), which a drain waits for.</summary>
    internal int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>The logger of the application the routes were mapped into (category <c>NBert.Server</c>), when it has
    /// one: unexpected failures are logged there too.</summary>
    internal ILogger? HostLogger { get; set; }

    /// <summary>The options it was loaded with.</summary>
    public ServerOptions Options { get; }

    /// <summary>The model's task: embedding, classifier, reranker, fill-mask, token-classification, question-answering, next-sentence or pretraining.</summary>
    public string Task => Model.Task;

    private TextEmbeddingsInference(ServerOptions options, ServedModel model, TextWriter log)
    {
        Options = options;
        Model = model;
        _log = log;
        Metrics = new Metrics(model.MaxInputLength);
        _permits = new SemaphoreSlim(options.MaxConcurrentRequests, options.MaxConcurrentRequests);
        _authorization = options.ApiKey is null ? null : Encoding.UTF8.GetBytes("Bearer " + options.ApiKey);
        Queue = new BatchingQueue(model, Metrics, options.MaxBatchTokens, options.MaxBatchRequests);
    }

    /// <summary>Loads the model and starts its batching loop. Unexpected failures of a request are written to
    /// <paramref name="log"/>. Options out of range are refused before the model loads.</summary>
    /// <exception cref="ArgumentException">An option is out of range, or <see cref="ServerOptions.MaxBatchTokens"/> is below the model's maximum input length.</exception>
    /// <exception cref="NBertException">The model cannot be loaded (a <see cref="MissingFileException"/> for a missing file).</exception>
    public static TextEmbeddingsInference Load(ServerOptions options, TextWriter? log = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var model = ServedModel.Load(options);
        try
        {
            if (model.MaxInputLength > options.MaxBatchTokens)
                throw new ArgumentException($"--max-batch-tokens ({options.MaxBatchTokens}) must be at least the model's maximum input length ({model.MaxInputLength}).", nameof(options));
            return new TextEmbeddingsInference(options, model, log ?? TextWriter.Null);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Stops the batching loop (what still waits fails as unhealthy) and releases the model once no batch can
    /// be running on it; if the batch in progress outlasts <see cref="ServerOptions.ShutdownTimeout"/>, the model is left
    /// to the garbage collector instead. Call it after the application has stopped taking requests.</summary>
    public void Dispose()
    {
        Queue.Stop();
        if (Queue.WaitStopped(Options.ShutdownTimeout)) Model.Dispose();
    }

    /// <summary>The routes, each answered through <see cref="Answer"/>, as TEI's router maps them (router/src/http/server.rs):
    /// the task routes, the OpenAI route under both its names, <c>POST /</c> and <c>POST /invocations</c> (Inference
    /// Endpoints' and SageMaker's) to the route of the model's type, the health check under <c>/health</c>, <c>/</c> and
    /// <c>/ping</c> (GET and HEAD, as <c>/info</c>); any other path answers 404 and a known path asked with another method
    /// 405, each with TEI's error body.</summary>
    internal void Map(IEndpointRouteBuilder endpoints)
    {
        var tei = new TeiRoutes(Model, Queue, Metrics, Options);
        var pipelines = new PipelineRoutes(Model, Queue, Options);
        var known = new Dictionary<string, List<string>>(StringComparer.OrdinalIgnoreCase);
        void Add(string path, params string[] methods)
        {
            if (!known.TryGetValue(path, out var list)) known[path] = list = [];
            list.AddRange(methods);
        }
        void Post(string path, Func<Call, JsonElement, Task<object>> route, bool permit = true, bool openAi = false)
        {
            endpoints.MapPost(path, ctx => Answer(ctx, openAi, call => Serve(call, route, permit)));
            Add(path, HttpMethods.Post);
        }
        void Get(string path, Func<Call, Task> respond, bool health = false)
        {
            endpoints.MapMethods(path, [HttpMethods.Get, HttpMethods.Head], ctx => Answer(ctx, openAi: false, respond, health));
            Add(path, HttpMethods.Get, HttpMethods.Head);
        }
        Post("/embed", tei.Embed);
        Post("/embed_all", tei.EmbedAll);
        Post("/predict", tei.Predict);
        Post("/rerank", tei.Rerank);
        Post("/similarity", tei.Similarity);
        Post("/v1/embeddings", tei.OpenAiEmbeddings, openAi: true);
        Post("/embeddings", tei.OpenAiEmbeddings, openAi: true);
        Post("/tokenize", tei.Tokenize, permit: false);
        Post("/decode", tei.Decode, permit: false);
        Post("/fill-mask", pipelines.FillMask);
        Post("/token-classification", pipelines.TokenClassification);
        Post("/question-answering", pipelines.QuestionAnswering);
        Post("/next-sentence", pipelines.NextSentence);
        // TEI's default route for its model type; NBert's other heads get their own pipeline route there.
        Func<Call, JsonElement, Task<object>> byType = Model.Task switch
        {
            "classifier" => tei.Predict,
            "reranker" => tei.Rerank,
            "fill-mask" or "pretraining" => pipelines.FillMask,
            "token-classification" => pipelines.TokenClassification,
            "question-answering" => pipelines.QuestionAnswering,
            "next-sentence" => pipelines.NextSentence,
            _ => tei.Embed,
        };
        Post("/", byType);
        Post("/invocations", byType);
        Get("/info", call => WriteJson(call.Http, 200, tei.Info()));
        Get("/metrics", call =>
        {
            call.Http.Response.ContentType = "text/plain; version=0.0.4";
            return call.Http.Response.WriteAsync(Metrics.Render());
        });
        foreach (var path in new[] { "/health", "/", "/ping" })
            Get(path, _ => Draining || !Queue.IsRunning
                ? throw new ServerError(ErrorType.Unhealthy, "unhealthy", "unhealthy")
                : System.Threading.Tasks.Task.CompletedTask, health: true);
        endpoints.MapFallback(ctx =>
        {
            string path = ctx.Request.Path.HasValue ? ctx.Request.Path.Value! : "/";
            if (known.TryGetValue(path, out var methods))
            {
                ctx.Response.Headers.Allow = string.Join(", ", methods.Distinct());
                return WriteJson(ctx, 405, new ErrorBody($"Method {ctx.Request.Method} is not allowed on {path}: {string.Join(" or ", methods.Distinct())}", ErrorType.Validation));
            }
            return WriteJson(ctx, 404, new ErrorBody($"Not found: no route {NBertException.Quote(path, 200)}", ErrorType.Validation));
        });
    }

    /// <summary>
    /// Every route's answer: the API key (all but <c>/health</c>), the drain (503), the count of requests in progress,
    /// then <paramref name="respond"/>; whatever it throws becomes TEI's error body (the OpenAI route's with
    /// <paramref name="openAi"/>) and an unexpected failure is logged as well. Whatever a client sends, the answer is a
    /// status code.
    /// </summary>
    internal async Task Answer(HttpContext ctx, bool openAi, Func<Call, Task> respond, bool health = false)
    {
        if (!health && _authorization is not null &&
            !CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(ctx.Request.Headers.Authorization.ToString()), _authorization))
        {
            ctx.Response.StatusCode = StatusCodes.Status401Unauthorized;
            ctx.Response.Headers.WWWAuthenticate = "Bearer";
            return;
        }
        var call = new Call(ctx);
        if (!health) Interlocked.Increment(ref _inFlight);
        try
        {
            if (Draining && !health) throw ServerError.ShuttingDown();
            await respond(call);
        }
        // Every counted request ends as exactly one success (in Serve) or one failure (here), so that te_request_count
        // is te_request_success plus te_request_failure.
        catch (ServerError e)
        {
            if (call.Counted) Metrics.Count("te_request_failure", $"err=\"{e.MetricLabel}\"");
            await WriteError(ctx, e, openAi);
        }
        catch (Exception e) when (ctx.RequestAborted.IsCancellationRequested && e is OperationCanceledException or IOException)
        {
            // The client went away (mid-body or while its work waited): its queued work was dropped. Nothing to answer
            // and nothing to log: a peer may do this a thousand times.
            if (call.Counted) Metrics.Count("te_request_failure", "err=\"dropped\"");
        }
        catch (Exception e)
        {
            if (call.Counted) Metrics.Count("te_request_failure", "err=\"backend\"");
            _log.WriteLine($"nbert serve: {ctx.Request.Method} {ctx.Request.Path}: unexpected failure: {e}");
            HostLogger?.LogError(e, "{Method} {Path}: unexpected failure", ctx.Request.Method, ctx.Request.Path.Value);
            await WriteError(ctx, new ServerError(ErrorType.Backend, $"Backend error: {e.Message}", "internal", 500), openAi);
        }
        finally
        {
            if (!health) Interlocked.Decrement(ref _inFlight);
            if (call.Counted) Metrics.Count("te_request_count", $"method=\"{call.Method}\"");
        }
    }

    /// <summary>One POST route: the body read and parsed, a permit (429 when none is left), the route, then the JSON
    /// answer with TEI's headers (on success only, as TEI sets them).</summary>
    private async Task Serve(Call call, Func<Call, JsonElement, Task<object>> route, bool permit)
    {
        call.Counted = true;
        bool held = false;
        RequestBody? body = null;
        try
        {
            body = await RequestBody.ReadAsync(call.Http, Options.PayloadLimit);
            if (permit)
            {
                held = _permits.Wait(0);
                if (!held) throw ServerError.Overloaded();
            }
            var value = await route(call, body.Root);
            // The request's buffers go back to the pool before the answer is written: the route has read what it needs.
            body.Dispose();
            Metrics.Count("te_request_success", $"method=\"{call.Method}\"");
            if (call.Compute is { } c) Report(call, c);
            await WriteJson(call.Http, 200, value);
        }
        finally
        {
            body?.Dispose();
            if (held) _permits.Release();
        }
    }

    /// <summary>TEI's response headers, which a successful answer carries and an error never does (as in TEI).</summary>
    private static readonly string[] ComputeHeaders =
        ["x-compute-type", "x-compute-time", "x-compute-characters", "x-compute-tokens", "x-total-time", "x-tokenization-time", "x-queue-time", "x-inference-time"];

    /// <summary>TEI's response headers (milliseconds) and duration histograms.</summary>
    private void Report(Call call, Compute c)
    {
        var total = Stopwatch.GetElapsedTime(call.Start);
        string Ms(TimeSpan t) => ((long)t.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
        var h = call.Http.Response.Headers;
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

    private static Task WriteError(HttpContext ctx, ServerError e, bool openAi)
    {
        if (ctx.Response.HasStarted)
        {
            // Part of an answer is out: the connection is cut, so the client cannot take it for a whole one.
            ctx.Abort();
            return System.Threading.Tasks.Task.CompletedTask;
        }
        foreach (var header in ComputeHeaders) ctx.Response.Headers.Remove(header);
        return WriteJson(ctx, e.Status, openAi ? new OpenAiErrorBody(e.Message, e.Status, e.Type) : new ErrorBody(e.Message, e.Type));
    }
}

/// <summary>Maps text-embeddings-inference's routes into an ASP.NET Core application of your own.</summary>
public static class TextEmbeddingsInferenceEndpoints
{
    /// <summary>
    /// Maps <paramref name="inference"/>'s routes (<c>/embed</c>, <c>/predict</c>, <c>/v1/embeddings</c>, ...,
    /// <c>/info</c>, <c>/health</c>, <c>/metrics</c>, and the pipeline routes) with TEI's request and answer shapes,
    /// under <paramref name="endpoints"/>' prefix (<c>app.MapGroup("/tei").MapTextEmbeddingsInference(inference)</c>).
    /// The API key of its options, if any, is required on all but <c>/health</c>. The requests log through the
    /// application's <see cref="ILoggerFactory"/>: NBert's warnings during a request (<see cref="NBertLogging.Use"/>), and
    /// an unexpected failure as an error of the category <c>NBert.Server</c>. Wrap <see cref="TextEmbeddingsInference.Load"/>
    /// in <see cref="NBertLogging.Use"/> for the warnings of loading the model.
    /// </summary>
    /// <returns>The routes' group, for conventions such as <c>RequireAuthorization</c>.</returns>
    public static RouteGroupBuilder MapTextEmbeddingsInference(this IEndpointRouteBuilder endpoints, TextEmbeddingsInference inference)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentNullException.ThrowIfNull(inference);
        var group = endpoints.MapGroup("");
        inference.Map(group);
        if (endpoints.ServiceProvider.GetService<ILoggerFactory>() is { } loggerFactory)
        {
            inference.HostLogger = loggerFactory.CreateLogger("NBert.Server");
            inference.Queue.LoggerFactory = loggerFactory;
            // Each request's warnings go to the host's logging, not to standard error or another request's handler.
            ((IEndpointConventionBuilder)group).Add(endpoint =>
            {
                if (endpoint.RequestDelegate is not { } inner) return;
                endpoint.RequestDelegate = async ctx =>
                {
                    using (NBertLogging.Use(loggerFactory)) await inner(ctx);
                };
            });
        }
        return group;
    }
}
