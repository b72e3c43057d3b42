using NBert.Cli.Commands;
using NBert.Hub;

namespace NBert.Tests.Hub;

/// <summary>The HEAD's metadata as huggingface_hub reads it, ETag normalisation, the download timeout, and the
/// progress line on a terminal.</summary>
public sealed class HubProtocolTests(FakeHubFixture fixture) : HubTest(fixture)
{
    private int _gets;

    [Fact]
    public async Task Head_gives_commit_etag_size_and_where_the_bytes_are()
    {
        string repo = UniqueRepo("head");
        string commit = Hub.AddModel(repo, Model("seqcls"));
        using var http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false });
        var protocol = new HubProtocol(http, Settings());

        byte[] config = FixtureBytes("seqcls", "config.json");
        var small = await protocol.HeadAsync(repo, "main", "config.json", default);
        Assert.Equal(new FileMetadata(commit, FakeHub.GitBlobId(config), config.Length, protocol.FileUrl(repo, "main", "config.json")), small);

        byte[] weights = FixtureBytes("seqcls", "model.safetensors");
        var lfs = await protocol.HeadAsync(repo, "main", "model.safetensors", default);
        Assert.Equal((commit, FakeHub.Sha256(weights), (long?)weights.Length), (lfs.Commit, lfs.ETag, lfs.Size)); // X-Linked-*, not the redirect's own
        Assert.StartsWith(Hub.CdnEndpoint + "/", lfs.Location.ToString());
        Assert.DoesNotContain(Hub.RequestsFor(repo), r => r.Server == "cdn"); // the absolute redirect is not followed by HEAD

        Assert.Equal($"{Hub.Endpoint}/{repo}/resolve/refs%2Fpr%2F1/sub%20dir/a%2Bb.json", protocol.FileUrl(repo, "refs/pr/1", "sub dir/a+b.json").AbsoluteUri);
    }

    [Theory]
    [InlineData("\"abc123\"", "abc123")]
    [InlineData("W/\"abc123\"", "abc123")]
    [InlineData("abc123", "abc123")]
    [InlineData("\"../../x\"", null)]
    [InlineData("\"\"", null)]
    public void ETags_lose_weak_prefix_and_quotes_and_must_be_safe_file_names(string header, string? expected) =>
        Assert.Equal(expected, HubProtocol.NormalizeETag(header));

    [Fact]
    public async Task A_stalled_download_times_out_and_is_tried_again()
    {
        string repo = UniqueRepo("stall");
        Hub.AddModel(repo, Model("seqcls"));
        // The first GET of the weights answers nothing until a second one arrives, which only a client that gave up
        // waiting sends.
        var retried = new TaskCompletionSource();
        Hub.Holds[(repo, "model.safetensors")] = retried.Task;
        Hub.OnRequest += r =>
        {
            if (r is { Method: "GET", File: "model.safetensors" } && r.Repo == repo) Interlocked.Increment(ref _gets);
            if (Volatile.Read(ref _gets) >= 2) retried.TrySetResult();
        };
        using var client = new HubClient(Settings() with { DownloadTimeout = TimeSpan.FromSeconds(2) });
        var snapshot = await client.DownloadModelAsync(repo);
        Assert.Equal(FixtureBytes("seqcls", "model.safetensors"), File.ReadAllBytes(Path.Combine(snapshot.Directory, "model.safetensors")));
        // At least the stalled GET and its retry (a loaded machine may need another within the five allowed).
        Assert.InRange(Hub.RequestsFor(repo).Count(r => r is { Method: "GET", File: "model.safetensors" }), 2, 6);
    }

    [Fact]
    public async Task A_server_error_during_the_download_is_retried_and_a_refused_download_is_an_error()
    {
        string repo = UniqueRepo("get-errors");
        Hub.AddModel(repo, Model("seqcls"));
        Hub.Failures[(repo, "model.safetensors")] = (503, 1);
        using var client = Client();
        var snapshot = await client.DownloadModelAsync(repo);
        Assert.Equal(FixtureBytes("seqcls", "model.safetensors"), File.ReadAllBytes(Path.Combine(snapshot.Directory, "model.safetensors")));
        Assert.Equal(2, Hub.RequestsFor(repo).Count(r => r is { Method: "GET", File: "model.safetensors" }));

        string refused = UniqueRepo("get-refused");
        Hub.AddModel(refused, Model("seqcls"));
        Hub.Failures[(refused, "model.safetensors")] = (403, 1); // a CDN link that expired, say
        var e = await Assert.ThrowsAsync<HubException>(() => client.DownloadModelAsync(refused));
        Assert.Equal(HubError.Forbidden, e.Error);
        Assert.Contains("the download failed with 403", e.Message);
        Assert.StartsWith(Hub.CdnEndpoint, e.Message);
        Assert.DoesNotContain("X-Amz-Signature", e.Message); // the signed query stays out of messages
    }

    [Fact]
    public void Download_progress_is_a_bar_per_file_of_the_one_progress_display()
    {
        var bars = new Dictionary<string, List<NBert.Cli.ProgressStep>>();
        var progress = new HubCommands.DownloadBars(name =>
        {
            var steps = bars[name] = [];
            return new SyncProgress<NBert.Cli.ProgressStep>(steps.Add);
        });
        progress.Report(new HubDownloadProgress("org/m", "model.safetensors", 250_000, 1_000_000, false));
        progress.Report(new HubDownloadProgress("org/m", "vocab.txt", 10, null, false));
        progress.Report(new HubDownloadProgress("org/m", "model.safetensors", 1_000_000, 1_000_000, true));
        progress.Report(new HubDownloadProgress("org/m", "vocab.txt", 20, null, true));
        Assert.Equal(["org/m: model.safetensors", "org/m: vocab.txt"], bars.Keys.Order());
        Assert.Equal([new(250_000, 1_000_000, "250.0 kB/1.0 MB"), new(1_000_000, 1_000_000, "1.0 MB/1.0 MB")], bars["org/m: model.safetensors"]);
        // No size from the Hub: the bar pulses until the file is complete.
        Assert.Equal([new(10, null, "10 B"), new(20, 20, "20 B/20 B")], bars["org/m: vocab.txt"]);
    }

    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
