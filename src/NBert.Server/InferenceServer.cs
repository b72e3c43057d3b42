using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace NBert.Server;

/// <summary>
/// <c>nbert serve</c>: a model behind text-embeddings-inference's HTTP API (<see cref="TextEmbeddingsInference"/>) on a
/// Kestrel of its own, with dynamic batching (<see cref="BatchingQueue"/>) and backpressure: at most
/// <c>--max-concurrent-requests</c> requests in progress, one more answered 429 at once. A stop (SIGTERM, Ctrl+C or
/// <see cref="StopAsync"/>) drains: <c>/health</c> and new requests answer 503 while the requests in progress finish,
/// for at most <c>--shutdown-timeout</c>; then the server stops.
/// </summary>
public sealed class InferenceServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly TextEmbeddingsInference _inference;

    internal TextEmbeddingsInference Inference => _inference;
    internal ServedModel Model => _inference.Model;
    internal BatchingQueue Queue => _inference.Queue;
    internal Metrics Metrics => _inference.Metrics;

    /// <summary>The address the server listens on (with the port it got when asked for port 0).</summary>
    public Uri Address { get; private set; } = null!;

    /// <summary>The model's task: embedding, classifier, reranker, fill-mask, token-classification, question-answering, next-sentence or pretraining.</summary>
    public string Task => _inference.Task;

    private InferenceServer(TextEmbeddingsInference inference, IPAddress address)
    {
        _inference = inference;
        var options = inference.Options;
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = options.ShutdownTimeout);
        builder.Services.AddSingleton<IHostedService>(new Drain(inference));
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = options.PayloadLimit;
            k.Listen(address, options.Port);
        });
        _app = builder.Build();
        // Not MapTextEmbeddingsInference: this host has no log providers, and nbert serve's warnings and failures go
        // to the log it was given (the CLI's standard error).
        inference.Map(_app.MapGroup(""));
    }

    /// <summary>Checks the options, loads the model and starts listening. Bad options or a model that cannot load
    /// throw (<see cref="ArgumentException"/>, <see cref="NBertException"/>, <see cref="MissingFileException"/>), and
    /// an address it cannot listen on (in use, or not this machine's) an <see cref="IOException"/>; nothing is left
    /// running then.</summary>
    public static async Task<InferenceServer> StartAsync(ServerOptions options, TextWriter? log = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        // The options first: a mistake in them is found before the model loads.
        options.Validate();
        return await StartAsync(TextEmbeddingsInference.Load(options, log));
    }

    /// <summary>Starts listening with <paramref name="inference"/>, which the server owns from here: if it cannot
    /// start, the web application and <paramref name="inference"/> are disposed before the exception leaves.</summary>
    internal static async Task<InferenceServer> StartAsync(TextEmbeddingsInference inference)
    {
        var options = inference.Options;
        InferenceServer? server = null;
        try
        {
            server = new InferenceServer(inference, ParseHostname(options.Hostname));
            try
            {
                await server._app.StartAsync();
            }
            catch (Exception e) when (e is IOException or SocketException)
            {
                // A port in use is an IOException, an address that is not this machine's a SocketException.
                throw new IOException($"cannot listen on {options.Hostname}:{options.Port}: {e.Message}", e);
            }
            string address = server._app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            server.Address = new Uri(address.Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal).Replace("[::]", "[::1]", StringComparison.Ordinal));
            return server;
        }
        catch
        {
            if (server is not null) await server._app.DisposeAsync();
            inference.Dispose();
            throw;
        }
    }

    private static IPAddress ParseHostname(string hostname) =>
        hostname == "localhost" ? IPAddress.Loopback
        : IPAddress.TryParse(hostname, out var ip) ? ip
        : throw new ArgumentException($"--hostname must be an IP address or localhost, not '{hostname}'.");

    /// <summary>Completes when the server has stopped (SIGTERM or Ctrl+C, then the drain).</summary>
    public Task WaitForShutdownAsync() => _app.WaitForShutdownAsync();

    /// <summary>Drains and stops, as SIGTERM does.</summary>
    public Task StopAsync() => _app.StopAsync();

    /// <summary>Stops the server (draining as <see cref="StopAsync"/> does), then the batching loop and the model
    /// (<see cref="TextEmbeddingsInference.Dispose"/>).</summary>
    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        _inference.Dispose();
    }

    /// <summary>The drain, run when the host begins to stop and before Kestrel stops listening.</summary>
    private sealed class Drain(TextEmbeddingsInference inference) : IHostedLifecycleService
    {
        public async Task StoppingAsync(CancellationToken token)
        {
            inference.Draining = true;
            try
            {
                while (inference.InFlight > 0) await System.Threading.Tasks.Task.Delay(10, token);
            }
            catch (OperationCanceledException) { } // --shutdown-timeout: what is left fails below
            inference.Queue.Stop();
        }

        public Task StartAsync(CancellationToken token) => System.Threading.Tasks.Task.CompletedTask;
        public Task StopAsync(CancellationToken token) => System.Threading.Tasks.Task.CompletedTask;
        public Task StartingAsync(CancellationToken token) => System.Threading.Tasks.Task.CompletedTask;
        public Task StartedAsync(CancellationToken token) => System.Threading.Tasks.Task.CompletedTask;
        public Task StoppedAsync(CancellationToken token) => System.Threading.Tasks.Task.CompletedTask;
    }
}
