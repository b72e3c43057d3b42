using System.Text;
using NBert.Hub;

namespace NBert.Tests.Hub;

/// <summary>The hostile peer's Hub cases (issue 29, items 2-4): a server sending more than it announced, or no size
/// and no end; cached files damaged or missing offline, LFS or not; redirects to file: and ftp:.</summary>
public sealed class HubHostileTests(FakeHubFixture fixture) : HubTest(fixture)
{
    private sealed class MaxProgress : IProgress<HubDownloadProgress>
    {
        public long Max;
        public void Report(HubDownloadProgress value) => Interlocked.Exchange(ref Max, Math.Max(Volatile.Read(ref Max), value.Received));
    }

    private static Dictionary<string, byte[]> ModelWith(string file, byte[] bytes)
    {
        var files = FakeHub.FilesOf(Model("seqcls"));
        files[file] = bytes;
        return files;
    }

    /// <summary>The issue's case: a HEAD announcing X-Linked-Size 3000, then a 30 MB body, with its length announced or
    /// sent chunked. The download stops before any byte past 3,000 reaches the disk, is not tried again, and keeps nothing.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Bytes_past_the_announced_size_stop_the_download_at_once_and_nothing_is_kept(bool lengthAnnounced)
    {
        string repo = UniqueRepo("oversize");
        byte[] weights = new byte[3000];
        new Random(1).NextBytes(weights);
        Hub.AddCommit(repo, new() { ["model.safetensors"] = weights });
        Hub.Padding[(repo, "model.safetensors")] = (30_000_000 - 3000, lengthAnnounced);
        var progress = new MaxProgress();
        using var client = new HubClient(Settings()) { Progress = progress };

        var e = await Assert.ThrowsAsync<HubException>(() => client.DownloadAsync(repo, null, ["model.safetensors"]));
        Assert.Equal(HubError.Corrupt, e.Error);
        Assert.Contains("model.safetensors", e.Message);
        Assert.Contains("more than the 3,000 bytes it announced", e.Message);
        Assert.InRange(progress.Max, 0, 3000);
        Assert.Single(Hub.RequestsFor(repo), r => r is { Method: "GET", File: "model.safetensors" }); // not retried
        string blobs = Path.Combine(client.Cache(repo).RepoFolder, "blobs");
        Assert.Empty(Directory.Exists(blobs) ? Directory.GetFiles(blobs) : []);
    }

    [Fact]
    public async Task A_non_lfs_file_longer_than_its_content_length_header_is_refused_the_same_way()
    {
        string repo = UniqueRepo("oversize-small");
        Hub.AddModel(repo, Model("seqcls"));
        Hub.Padding[(repo, "vocab.txt")] = (5_000_000, false);
        using var client = Client();
        var e = await Assert.ThrowsAsync<HubException>(() => client.DownloadAsync(repo, null, ["vocab.txt"]));
        Assert.Equal(HubError.Corrupt, e.Error);
        Assert.Contains($"more than the {FixtureBytes("seqcls", "vocab.txt").Length.ToString("N0", System.Globalization.CultureInfo.InvariantCulture)} bytes it announced", e.Message);
        Assert.Single(Hub.RequestsFor(repo), r => r is { Method: "GET", File: "vocab.txt" });
        Assert.Empty(Directory.GetFiles(Path.Combine(client.Cache(repo).RepoFolder, "blobs")));
    }

    [Fact]
    public async Task Without_an_announced_size_the_cap_stops_the_download_and_under_it_the_file_is_fetched_and_checked()
    {
        string repo = UniqueRepo("unsized");
        byte[] vocab = FixtureBytes("seqcls", "vocab.txt");
        Hub.AddModel(repo, Model("seqcls"));
        Hub.Unsized[(repo, "vocab.txt")] = true;
        Hub.Unsized[(repo, "model.safetensors")] = true;

        // Under the default cap a file of unknown size downloads, and is checked against its ETag.
        using (var client = Client())
        {
            var snapshot = await client.DownloadAsync(repo, null, ["vocab.txt", "model.safetensors"]);
            Assert.Equal(vocab, File.ReadAllBytes(Path.Combine(snapshot.Directory, "vocab.txt")));
            Assert.Equal(FixtureBytes("seqcls", "model.safetensors"), File.ReadAllBytes(Path.Combine(snapshot.Directory, "model.safetensors")));
        }

        // An endless body with no size: the cap (here 100,000 bytes) stops it.
        string endless = UniqueRepo("endless");
        Hub.AddModel(endless, Model("seqcls"));
        Hub.Unsized[(endless, "model.safetensors")] = true;
        Hub.Padding[(endless, "model.safetensors")] = (50_000_000, false);
        var progress = new MaxProgress();
        using (var capped = new HubClient(Settings() with { MaxFileSize = 100_000 }) { Progress = progress })
        {
            var e = await Assert.ThrowsAsync<HubException>(() => capped.DownloadAsync(endless, null, ["model.safetensors"]));
            Assert.Equal(HubError.TooLarge, e.Error);
            Assert.Contains("announced no size", e.Message);
            Assert.Contains("100,000", e.Message);
            Assert.Contains("MaxFileSize", e.Message);
            Assert.InRange(progress.Max, 0, 100_000);
            Assert.Empty(Directory.GetFiles(Path.Combine(capped.Cache(endless).RepoFolder, "blobs")));
        }
    }

    [Fact]
    public async Task A_file_announced_larger_than_the_cap_is_refused_before_its_download()
    {
        string repo = UniqueRepo("toolarge");
        Hub.AddModel(repo, Model("seqcls"));
        using var client = new HubClient(Settings() with { MaxFileSize = 10_000 });
        var e = await Assert.ThrowsAsync<HubException>(() => client.DownloadModelAsync(repo));
        Assert.Equal(HubError.TooLarge, e.Error);
        Assert.Contains("model.safetensors", e.Message);
        Assert.Contains("10,000", e.Message);
        Assert.DoesNotContain(Hub.RequestsFor(repo), r => r is { Method: "GET", File: "model.safetensors" });
        Assert.Throws<ArgumentOutOfRangeException>(() => Settings() with { MaxFileSize = 0 });
    }

    /// <summary>The issue's case: truncate or append to <c>blobs/{git-sha1}</c> of a file not in LFS, then
    /// HF_HUB_OFFLINE=1: refused as damaged (it was served before), and online it is fetched again.</summary>
    [Theory]
    [InlineData("truncate")]
    [InlineData("append")]
    [InlineData("flip")] // same size, one byte changed: only the hash tells
    public async Task Offline_a_damaged_non_lfs_blob_is_refused_by_its_git_blob_sha1(string damage)
    {
        string repo = UniqueRepo("damaged-git");
        Hub.AddModel(repo, Model("seqcls"));
        byte[] vocab = FixtureBytes("seqcls", "vocab.txt");
        using var client = Client();
        var snapshot = await client.DownloadModelAsync(repo);
        string blob = client.Cache(repo).BlobPath(FakeHub.GitBlobId(vocab));
        byte[] damaged = damage switch
        {
            "truncate" => vocab[..(vocab.Length / 2)],
            "append" => [.. vocab, .. "extra\n"u8.ToArray()],
            _ => (byte[])vocab.Clone(),
        };
        if (damage == "flip") damaged[10] ^= 1;
        File.WriteAllBytes(blob, damaged);
        File.SetLastWriteTimeUtc(blob, DateTime.UtcNow.AddMinutes(1));

        using (var offline = Client(offline: true))
        {
            var e = await Assert.ThrowsAsync<HubException>(() => offline.DownloadModelAsync(repo));
            Assert.Equal(HubError.Corrupt, e.Error);
            Assert.Contains("vocab.txt", e.Message);
            Assert.Contains("damaged", e.Message);
            Assert.Contains(FakeHub.GitBlobId(vocab), e.Message);
            Assert.Contains("git blob SHA-1", e.Message);
            Assert.DoesNotContain("SHA-256", e.Message);
            Assert.Throws<HubException>(() => ModelResolver.Resolve(repo, Settings(offline: true)));
        }
        // Online the Hub's ETag does not match the blob either: it is fetched again.
        await client.DownloadModelAsync(repo);
        Assert.Equal(vocab, File.ReadAllBytes(Path.Combine(snapshot.Directory, "vocab.txt")));
        using (var offline = Client(offline: true)) await offline.DownloadModelAsync(repo);
    }

    [Theory]
    [InlineData("vocab.txt")]
    [InlineData("model.safetensors")]
    public async Task Offline_a_missing_blob_is_named_as_missing_not_as_damaged(string file)
    {
        string repo = UniqueRepo("missing-blob");
        Hub.AddModel(repo, Model("seqcls"));
        byte[] bytes = FixtureBytes("seqcls", file);
        using var client = Client();
        var snapshot = await client.DownloadModelAsync(repo);
        string blob = client.Cache(repo).BlobPath(FakeHub.IsLfs(file) ? FakeHub.Sha256(bytes) : FakeHub.GitBlobId(bytes));
        File.Delete(blob);

        using (var offline = Client(offline: true))
        {
            var e = await Assert.ThrowsAsync<HubException>(() => offline.DownloadModelAsync(repo));
            Assert.Equal(HubError.NotInCache, e.Error);
            Assert.Contains($"{file} is missing from the cache", e.Message);
            Assert.Contains(blob, e.Message);
            Assert.DoesNotContain("damaged", e.Message);
            Assert.DoesNotContain("SHA", e.Message);
        }
        await client.DownloadModelAsync(repo); // online: fetched again
        Assert.Equal(bytes, File.ReadAllBytes(Path.Combine(snapshot.Directory, file)));
    }

    /// <summary>The issue's case: a redirect to file:// or ftp:// ended in NotSupportedException (an internal error,
    /// exit 70); it is the server's protocol error, a HubException, from the Hub's HEAD or from the CDN's GET.</summary>
    [Theory]
    [InlineData("hub", "file:///etc/passwd")]
    [InlineData("hub", "ftp://127.0.0.1/model.safetensors")]
    [InlineData("cdn", "file:///etc/passwd")]
    [InlineData("cdn", "ftp://127.0.0.1/model.safetensors")]
    public async Task A_redirect_to_an_address_that_is_not_http_is_a_hub_protocol_error(string server, string location)
    {
        string repo = UniqueRepo("redirect");
        Hub.AddModel(repo, Model("seqcls"));
        Hub.Redirects[(repo, "model.safetensors")] = (server, location);
        using var client = Client();
        var e = await Assert.ThrowsAsync<HubException>(() => client.DownloadModelAsync(repo));
        Assert.Equal(HubError.Protocol, e.Error);
        Assert.Contains($"redirects to a {new Uri(location).Scheme}: address", e.Message);
        Assert.Contains("only http and https", e.Message);
        Assert.Empty(Directory.GetFiles(Path.Combine(client.Cache(repo).RepoFolder, "blobs"), "*.incomplete"));
    }
}
