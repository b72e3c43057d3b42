using NBert.Modeling;
using NBert.Pipelines;
using NBert.Schema;
using NBert.Tasks;

namespace NBert.Server;

/// <summary>
/// The options of <c>nbert serve</c>, named and defaulted as text-embeddings-inference's router names them
/// (<c>--max-concurrent-requests</c>, <c>--max-batch-tokens</c>, ...).
/// </summary>
public sealed record ServerOptions
{
    /// <summary>The model: a directory, a built-in name (<c>minilm</c>, <c>arctic-xs</c>) or a Hugging Face Hub id
    /// (<c>org/name[@revision]</c>).</summary>
    public required string Model { get; init; }
    /// <summary>The Hub settings a Hub name in <see cref="Model"/> is resolved with; null: the environment's
    /// (<see cref="NBert.Hub.HubSettings.FromEnvironment()"/>).</summary>
    public NBert.Hub.HubSettings? Hub { get; init; }
    /// <summary>Told how the model's download goes, when <see cref="Model"/> is a Hub name not yet in the cache.</summary>
    public IProgress<NBert.Hub.HubDownloadProgress>? DownloadProgress { get; init; }
    /// <summary>The TCP port; 0 picks a free one (<see cref="InferenceServer.Address"/> says which).</summary>
    public int Port { get; init; } = 3000;
    /// <summary>The address to listen on: an IP address, or <c>localhost</c>.</summary>
    public string Hostname { get; init; } = "0.0.0.0";
    /// <summary>Requests in progress at once; one more is answered 429 at once.</summary>
    public int MaxConcurrentRequests { get; init; } = 512;
    /// <summary>The most tokens one forward pass takes, counted padded (rows × the longest row).</summary>
    public int MaxBatchTokens { get; init; } = 16384;
    /// <summary>The most inputs one forward pass takes; null: as many as the tokens allow.</summary>
    public int? MaxBatchRequests { get; init; }
    /// <summary>The most inputs one request may carry.</summary>
    public int MaxClientBatchSize { get; init; } = 32;
    /// <summary>Truncate inputs longer than the model's maximum when the request does not say (<c>truncate</c>).</summary>
    public bool AutoTruncate { get; init; }
    /// <summary>The largest request body in bytes; a larger one is answered 413.</summary>
    public long PayloadLimit { get; init; } = 2_000_000;
    /// <summary>When set, every route but <c>/health</c> needs <c>Authorization: Bearer KEY</c> (401 otherwise).</summary>
    public string? ApiKey { get; init; }
    /// <summary>How an embedding model's token vectors become a sentence vector (as <c>nbert embed --pooling</c>); null:
    /// as the model's sentence-transformers files say (<c>1_Pooling/config.json</c>, as TEI reads it), else mean.</summary>
    public Pooling? Pooling { get; init; }
    /// <summary>How the model's linear layers run (<see cref="BertPreTrainedModel.Quantize"/>): float32 by default, or
    /// int8 for about a quarter of the weight memory (<c>nbert serve --quantize int8</c>).</summary>
    public Quantization Quantization { get; init; }
    /// <summary>How long a stop (SIGTERM) waits for requests in progress before it ends them; at most
    /// <see cref="MaxShutdownTimeout"/>.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The longest <see cref="ShutdownTimeout"/>: a day (the host's timers cannot wait much longer than
    /// 49 days, and no drain needs to).</summary>
    public static TimeSpan MaxShutdownTimeout { get; } = TimeSpan.FromDays(1);

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first option out of range (or a hostname that is
    /// neither an IP address nor localhost).</summary>
    public void Validate()
    {
        static void Positive(long value, string option)
        {
            if (value < 1) throw new ArgumentException($"--{option} must be at least 1, not {value}.");
        }
        if (Hostname != "localhost" && !System.Net.IPAddress.TryParse(Hostname, out _))
            throw new ArgumentException($"--hostname must be an IP address or localhost, not '{Hostname}'.");
        if (Port is < 0 or > 65535) throw new ArgumentException($"--port must be in 0..65535, not {Port}.");
        Positive(MaxConcurrentRequests, "max-concurrent-requests");
        Positive(MaxBatchTokens, "max-batch-tokens");
        if (MaxBatchRequests is int r) Positive(r, "max-batch-requests");
        Positive(MaxClientBatchSize, "max-client-batch-size");
        Positive(PayloadLimit, "payload-limit");
        if (ApiKey is { Length: 0 }) throw new ArgumentException("--api-key must not be empty.");
        if (ShutdownTimeout < TimeSpan.Zero || ShutdownTimeout > MaxShutdownTimeout)
            throw new ArgumentException($"--shutdown-timeout must be between 0 and {MaxShutdownTimeout.TotalSeconds} seconds, not {ShutdownTimeout.TotalSeconds}.");
    }
}
