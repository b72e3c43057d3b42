using System.CommandLine;
using NBert.Pipelines;
using NBert.Server;
using NBert.Schema;
using NBert.Tasks;

namespace NBert.Cli.Commands;

/// <summary>
/// <c>nbert serve</c>: the model behind text-embeddings-inference's HTTP API (<see cref="InferenceServer"/>), with
/// TEI's options and defaults. Runs until SIGTERM or Ctrl+C, then drains the requests in progress.
/// </summary>
public static class ServeCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var model = new Option<string>("--model")
        {
            Description = "Model: a directory, a built-in name (minilm, arctic-xs) or a Hugging Face Hub id (org/name[@revision])",
            Required = true,
        };
        var port = new Option<int>("--port") { Description = "TCP port (0: any free port)", DefaultValueFactory = _ => 3000 };
        var hostname = new Option<string>("--hostname") { Description = "Address to listen on: an IP address or localhost", DefaultValueFactory = _ => "0.0.0.0" };
        var maxConcurrent = new Option<int>("--max-concurrent-requests") { Description = "Requests in progress at once; one more is answered 429", DefaultValueFactory = _ => 512 };
        var maxBatchTokens = new Option<int>("--max-batch-tokens") { Description = "Most tokens in one forward pass (rows x longest row)", DefaultValueFactory = _ => 16384 };
        var maxBatchRequests = new Option<int?>("--max-batch-requests") { Description = "Most inputs in one forward pass (default: as the tokens allow)" };
        var maxClientBatch = new Option<int>("--max-client-batch-size") { Description = "Most inputs in one request", DefaultValueFactory = _ => 32 };
        var autoTruncate = new Option<bool>("--auto-truncate") { Description = "Truncate inputs over the model's maximum length unless a request says truncate: false" };
        var payloadLimit = new Option<long>("--payload-limit") { Description = "Largest request body in bytes", DefaultValueFactory = _ => 2_000_000 };
        var apiKey = new Option<string?>("--api-key") { Description = "Require Authorization: Bearer KEY on every route but /health (default: $API_KEY)" };
        var pooling = new Option<string?>("--pooling") { Description = "Sentence vectors of an embedding model: cls, mean or max (default: the model's own, sentence-transformers' 1_Pooling/config.json, else mean)" };
        pooling.AcceptOnlyFromAmong("cls", "mean", "max");
        var shutdown = new Option<double>("--shutdown-timeout") { Description = "Seconds a stop waits for requests in progress", DefaultValueFactory = _ => 30 }
            .Between(0, ServerOptions.MaxShutdownTimeout.TotalSeconds);
        var quantize = QuantizeOption.Create();
        var command = new Command("serve", "Serve a model over HTTP with text-embeddings-inference's API (/embed, /predict, /rerank, /v1/embeddings, ...), dynamic batching and backpressure.")
        {
            model, port, hostname, maxConcurrent, maxBatchTokens, maxBatchRequests, maxClientBatch, autoTruncate, payloadLimit, apiKey, pooling, shutdown, quantize,
        };
        command.SetAction(parse =>
        {
            var options = new ServerOptions
            {
                Model = parse.GetValue(model)!,
                Port = parse.GetValue(port),
                Hostname = parse.GetValue(hostname)!,
                MaxConcurrentRequests = parse.GetValue(maxConcurrent),
                MaxBatchTokens = parse.GetValue(maxBatchTokens),
                MaxBatchRequests = parse.GetValue(maxBatchRequests),
                MaxClientBatchSize = parse.GetValue(maxClientBatch),
                AutoTruncate = parse.GetValue(autoTruncate),
                PayloadLimit = parse.GetValue(payloadLimit),
                ApiKey = parse.GetValue(apiKey) ?? (Environment.GetEnvironmentVariable("API_KEY") is { Length: > 0 } key ? key : null),
                Pooling = parse.GetValue(pooling) is { } p ? Enum.Parse<Pooling>(p, ignoreCase: true) : null,
                ShutdownTimeout = TimeSpan.FromSeconds(parse.GetValue(shutdown)),
                Hub = HubCommands.Settings, // the command line's, as every other command resolves with
                DownloadProgress = HubCommands.Progress,
                Quantization = QuantizeOption.Value(parse, quantize),
            };
            try
            {
                options.Validate();
            }
            catch (ArgumentException e)
            {
                throw new CliException(e.Message, e); // an option given on the command line, named as given
            }
            InferenceServer server;
            try
            {
                server = InferenceServer.StartAsync(options, stderr).GetAwaiter().GetResult();
            }
            catch (ArgumentException e) when (e.ParamName == "options")
            {
                throw new CliException(CliException.Reason(e), e); // an option that does not fit the model (--max-batch-tokens)
            }
            stdout.WriteLine($"nbert serve: {server.Task} model '{options.Model}' on {server.Address} (Ctrl+C or SIGTERM stops it)");
            stdout.Flush();
            server.WaitForShutdownAsync().GetAwaiter().GetResult();
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
            stdout.WriteLine("nbert serve: stopped");
            return Program.Ok;
        });
        return command;
    }
}
