using System.Globalization;

namespace NBert.Hub;

/// <summary>
/// Where the Hugging Face Hub is and how to talk to it, read from the same environment variables as Python's
/// huggingface_hub (<see cref="FromEnvironment()"/>), so that NBert and transformers share one cache and one login.
/// Code that wants other values builds its own (the tests do, rather than change the process's environment):
/// <c>HubSettings.FromEnvironment() with { Offline = true }</c>. <c>new HubSettings()</c> holds huggingface_hub's
/// defaults and ignores the environment.
/// </summary>
public sealed record HubSettings
{
    /// <summary>The Hub's address: <c>HF_ENDPOINT</c>, by default https://huggingface.co.</summary>
    public string Endpoint { get; init; } = DefaultEndpoint;

    /// <summary>The access token sent as <c>Authorization: Bearer</c> to the endpoint (never to the CDN it
    /// redirects to): <c>HF_TOKEN</c>, else the file <c>HF_TOKEN_PATH</c>, else <c>$HF_HOME/token</c>
    /// (where <c>hf auth login</c> writes it). Null sends none.</summary>
    public string? Token { get; init; }

    /// <summary><c>HF_HUB_OFFLINE</c> (else <c>TRANSFORMERS_OFFLINE</c>): no request at all; names resolve from the
    /// cache (<c>refs/</c>) or fail.</summary>
    public bool Offline { get; init; }

    /// <summary>The cache root holding <c>models--{org}--{name}</c>: <c>HF_HUB_CACHE</c>, else <c>$HF_HOME/hub</c>,
    /// else <c>$XDG_CACHE_HOME/huggingface/hub</c>, else <c>~/.cache/huggingface/hub</c>.</summary>
    public string CacheDirectory { get; init; } = DefaultCacheDirectory(_ => null);

    /// <summary>How long to wait for a file's metadata (the HEAD): <c>HF_HUB_ETAG_TIMEOUT</c>, 10 s by default.</summary>
    public TimeSpan MetadataTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a download may go without receiving a byte: <c>HF_HUB_DOWNLOAD_TIMEOUT</c>, 10 s by default.</summary>
    public TimeSpan DownloadTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The most bytes one file may have, 20 GiB by default (a float32 BERT-large checkpoint is 1.3 GB, and the Hub
    /// shards larger weights into files of a few GB). A file the Hub announces as larger is refused before its download
    /// starts; a download whose size the server does not announce stops as soon as it passes this. A download always
    /// stops at once when it passes the size the server announced (<c>X-Linked-Size</c>, else <c>Content-Length</c>).
    /// huggingface_hub has no such limit. Must be positive.
    /// </summary>
    public long MaxFileSize
    {
        get;
        init => field = value > 0 ? value : throw new ArgumentOutOfRangeException(nameof(MaxFileSize), value, "The largest file size must be positive.");
    } = DefaultMaxFileSize;

    /// <summary>20 GiB: <see cref="MaxFileSize"/>'s default.</summary>
    public const long DefaultMaxFileSize = 20L << 30;

    /// <summary>https://huggingface.co</summary>
    public const string DefaultEndpoint = "https://huggingface.co";

    /// <summary>The settings the process's environment gives, read as huggingface_hub reads them.</summary>
    public static HubSettings FromEnvironment() => FromEnvironment(Environment.GetEnvironmentVariable);

    /// <summary>The settings an environment gives; <paramref name="getenv"/> returns a variable's value or null.</summary>
    public static HubSettings FromEnvironment(Func<string, string?> getenv)
    {
        ArgumentNullException.ThrowIfNull(getenv);
        string? Get(string name) => getenv(name) is { Length: > 0 } v ? v : null;
        return new HubSettings
        {
            Endpoint = CheckEndpoint((Get("HF_ENDPOINT") ?? DefaultEndpoint).TrimEnd('/')),
            Token = ReadToken(Get),
            Offline = IsTrue(Get("HF_HUB_OFFLINE") ?? Get("TRANSFORMERS_OFFLINE")), // as huggingface_hub reads it
            CacheDirectory = DefaultCacheDirectory(Get),
            MetadataTimeout = Seconds(Get, "HF_HUB_ETAG_TIMEOUT"),
            DownloadTimeout = Seconds(Get, "HF_HUB_DOWNLOAD_TIMEOUT"),
        };
    }

    /// <summary>$HF_HOME: <c>HF_HOME</c>, else <c>$XDG_CACHE_HOME/huggingface</c>, else <c>~/.cache/huggingface</c>.</summary>
    private static string HfHome(Func<string, string?> get) =>
        Expand(get("HF_HOME") ?? Path.Combine(get("XDG_CACHE_HOME") ?? Path.Combine(UserHome(), ".cache"), "huggingface"));

    private static string DefaultCacheDirectory(Func<string, string?> get) =>
        Expand(get("HF_HUB_CACHE") ?? get("HUGGINGFACE_HUB_CACHE") ?? Path.Combine(HfHome(get), "hub"));

    private static string? ReadToken(Func<string, string?> get)
    {
        if ((get("HF_TOKEN") ?? get("HUGGING_FACE_HUB_TOKEN"))?.Trim() is { Length: > 0 } token) return token;
        string file = Expand(get("HF_TOKEN_PATH") ?? Path.Combine(HfHome(get), "token"));
        try
        {
            return File.Exists(file) && File.ReadAllText(file).Trim() is { Length: > 0 } stored ? stored : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // an unreadable token file is no token, as in huggingface_hub
        }
    }

    // huggingface_hub's _is_true: "1", "ON", "YES", "TRUE" in any case.
    private static bool IsTrue(string? value) =>
        value is not null && new[] { "1", "ON", "YES", "TRUE" }.Contains(value.Trim().ToUpperInvariant());

    private static TimeSpan Seconds(Func<string, string?> get, string name)
    {
        string? value = get(name);
        if (value is null) return TimeSpan.FromSeconds(10);
        if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double s) || s < 0 || !double.IsFinite(s))
            throw new NBertException($"Environment variable {name}='{NBertException.Quote(value)}' is not a number of seconds.");
        // A timer waits at most int.MaxValue milliseconds (about 24.8 days); half of that is the limit here, and
        // anything longer is a mistake, not a wish.
        if (s > MaxSeconds)
            throw new NBertException($"Environment variable {name}={NBertException.Quote(value)} seconds is more than a timeout can be ({MaxSeconds:N0} s, about 12 days).");
        return TimeSpan.FromSeconds(s == 0 ? 10 : s); // 0 means the default, as in huggingface_hub
    }

    private const double MaxSeconds = int.MaxValue / 1000.0 / 2;

    /// <summary>HF_ENDPOINT must be an absolute http(s) address.</summary>
    private static string CheckEndpoint(string endpoint) =>
        Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" ? endpoint
            : throw new NBertException($"Environment variable HF_ENDPOINT='{NBertException.Quote(endpoint)}' is not an http(s) address such as {DefaultEndpoint}.");

    private static string Expand(string path) =>
        path == "~" ? UserHome() : path.StartsWith("~/", StringComparison.Ordinal) ? Path.Combine(UserHome(), path[2..]) : path;

    private static string UserHome() => Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
}
