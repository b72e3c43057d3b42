using System.Text;
using NBert.Hub;
using NBert.Modeling;

namespace NBert.Tests.Hub;

/// <summary>Offline mode, the cache standing in for an unreachable Hub, tokens, the Hub's errors, a cache written in
/// transformers' layout, and the resolver's messages.</summary>
public sealed class HubAccessTests(FakeHubFixture fixture) : HubTest(fixture)
{
    [Fact]
    public async Task Offline_a_cached_model_resolves_through_refs_without_any_request_and_an_uncached_one_fails()
    {
        string repo = UniqueRepo("offline");
        string commit = Hub.AddModel(repo, Model("seqcls"));
        using (var client = Client()) await client.DownloadModelAsync(repo);
        int before = Hub.Requests.Count;

        using var offline = Client(offline: true);
        var snapshot = await offline.DownloadModelAsync(repo);
        Assert.Equal(commit, snapshot.Commit);
        Assert.Equal(["config.json", "model.safetensors", "tokenizer.json", "vocab.txt", "tokenizer_config.json"], snapshot.Files);
        Assert.Equal(before, Hub.Requests.Count);

        var e = await Assert.ThrowsAsync<HubException>(() => offline.DownloadModelAsync(repo, "v2"));
        Assert.Equal(HubError.NotInCache, e.Error);
        Assert.Contains("not in the cache", e.Message);
        Assert.Contains("HF_HUB_OFFLINE", e.Message);
        e = await Assert.ThrowsAsync<HubException>(() => offline.DownloadModelAsync(UniqueRepo("never-downloaded")));
        Assert.Equal(HubError.NotInCache, e.Error);
        Assert.Equal(before, Hub.Requests.Count);

        // Only config.json was fetched: offline, the weights are missing from the cache, not from the repository.
        string partial = UniqueRepo("config-only");
        Hub.AddModel(partial, Model("seqcls"));
        using (var client = Client()) await client.DownloadAsync(partial, null, ["config.json"]);
        e = await Assert.ThrowsAsync<HubException>(() => offline.DownloadModelAsync(partial));
        Assert.Equal(HubError.NotInCache, e.Error);
        Assert.Contains("holds no weights", e.Message);
        Assert.Contains("HF_HUB_OFFLINE", e.Message);
    }

    [Fact]
    public async Task When_the_hub_cannot_be_reached_the_cache_stands_in_and_without_it_the_error_says_so()
    {
        string repo = UniqueRepo("unreachable");
        string commit = Hub.AddModel(repo, Model("seqcls"));
        using (var client = Client()) await client.DownloadModelAsync(repo);
        string dead = DeadEndpoint();
        using var down = Client(endpoint: dead);
        Assert.Equal(commit, (await down.DownloadModelAsync(repo)).Commit);

        var e = await Assert.ThrowsAsync<HubException>(() => down.DownloadModelAsync(UniqueRepo("not-cached")));
        Assert.Equal(HubError.Unreachable, e.Error);
        Assert.Contains("cannot reach", e.Message);
        Assert.Contains("not in the cache", e.Message);
    }

    [Fact]
    public async Task A_private_repository_needs_the_token_which_goes_to_the_hub_and_never_to_the_cdn()
    {
        string repo = UniqueRepo("private");
        Hub.AddModel(repo, Model("seqcls"), new FakeHub.Repo { Token = "hf_secret" });

        using (var anonymous = Client())
        {
            var e = await Assert.ThrowsAsync<HubException>(() => anonymous.DownloadModelAsync(repo));
            Assert.Equal(HubError.RepositoryNotFound, e.Error);
            Assert.Contains("private", e.Message);
            Assert.Contains("set HF_TOKEN", e.Message);
        }
        using (var wrong = Client(token: "hf_wrong"))
        {
            var e = await Assert.ThrowsAsync<HubException>(() => wrong.DownloadModelAsync(repo));
            Assert.Equal(HubError.RepositoryNotFound, e.Error);
            Assert.Contains("token", e.Message);
            Assert.Contains("cannot read it", e.Message);
            Assert.Contains("Invalid credentials", e.Message); // the Hub's own X-Error-Message
        }
        using (var probe = Client()) Assert.False(Directory.Exists(Path.Combine(probe.Cache(repo).RepoFolder, "snapshots")));

        using var right = Client(token: "hf_secret");
        var snapshot = await right.DownloadModelAsync(repo);
        Assert.Equal(FixtureBytes("seqcls", "model.safetensors"), File.ReadAllBytes(Path.Combine(snapshot.Directory, "model.safetensors")));
        var requests = Hub.RequestsFor(repo);
        Assert.Contains(requests, r => r is { Server: "hub", Authorization: "Bearer hf_secret" });
        Assert.All(requests.Where(r => r.Server == "cdn"), r => Assert.Null(r.Authorization));
        Assert.Contains(requests, r => r.Server == "cdn");

        // A token that stops working does not stop a model already in the cache (huggingface_hub's behaviour).
        using var expired = Client(token: "hf_wrong");
        Assert.Equal(snapshot.Directory, (await expired.DownloadModelAsync(repo)).Directory);
    }

    [Fact]
    public async Task The_hubs_errors_become_clear_messages()
    {
        using var client = Client();
        string missing = UniqueRepo("does-not-exist");
        var e = await Assert.ThrowsAsync<HubException>(() => client.DownloadModelAsync(missing));
        Assert.Equal(HubError.RepositoryNotFound, e.Error);
        Assert.Contains($"repository '{missing}' not found", e.Message);

        string repo = UniqueRepo("errors");
        Hub.AddModel(repo, Model("seqcls"));
        e = await Assert.ThrowsAsync<HubException>(() => client.DownloadModelAsync(repo, "no-such-branch"));
        Assert.Equal(HubError.RevisionNotFound, e.Error);
        Assert.Contains("'no-such-branch'", e.Message);

        e = await Assert.ThrowsAsync<HubException>(() => client.DownloadAsync(repo, null, ["missing.json"]));
        Assert.Equal(HubError.EntryNotFound, e.Error);
        Assert.Contains("missing.json", e.Message);

        string gated = UniqueRepo("gated");
        Hub.AddModel(gated, Model("seqcls"), new FakeHub.Repo { Gated = true });
        e = await Assert.ThrowsAsync<HubException>(() => client.DownloadModelAsync(gated));
        Assert.Equal(HubError.Gated, e.Error);
        Assert.Contains("accept its conditions", e.Message);

        Assert.All(new[] { e.Message }, m => Assert.DoesNotContain('\n', m));
    }

    [Fact]
    public async Task A_cache_written_in_transformers_layout_is_used_as_it_is_without_any_request()
    {
        // What huggingface_hub leaves after from_pretrained: blobs by ETag, relative links, refs/main without a
        // newline, .no_exist markers, a lock folder.
        string repo = UniqueRepo("from-python");
        string commit = "0123456789abcdef0123456789abcdef01234567";
        string folder = Path.Combine(CacheRoot, $"models--{repo.Replace("/", "--")}");
        Directory.CreateDirectory(Path.Combine(folder, "blobs"));
        Directory.CreateDirectory(Path.Combine(folder, "snapshots", commit));
        Directory.CreateDirectory(Path.Combine(folder, "refs"));
        Directory.CreateDirectory(Path.Combine(folder, ".no_exist", commit));
        Directory.CreateDirectory(Path.Combine(CacheRoot, ".locks", Path.GetFileName(folder)));
        foreach (string file in new[] { "config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "tokenizer.json" })
        {
            byte[] bytes = FixtureBytes("seqcls", file);
            string etag = FakeHub.IsLfs(file) ? FakeHub.Sha256(bytes) : FakeHub.GitBlobId(bytes);
            File.WriteAllBytes(Path.Combine(folder, "blobs", etag), bytes);
            File.CreateSymbolicLink(Path.Combine(folder, "snapshots", commit, file), $"../../blobs/{etag}");
        }
        File.WriteAllText(Path.Combine(folder, "refs", "main"), commit);
        File.WriteAllBytes(Path.Combine(folder, ".no_exist", commit, "special_tokens_map.json"), []);
        int before = Hub.Requests.Count;

        using (var offline = Client(offline: true))
        {
            var snapshot = await offline.DownloadModelAsync(repo);
            Assert.Equal(Path.Combine(folder, "snapshots", commit), snapshot.Directory);
            Assert.Equal(["config.json", "model.safetensors", "tokenizer.json", "vocab.txt", "tokenizer_config.json"], snapshot.Files);
        }
        using (var online = Client())
            Assert.Equal(commit, (await online.DownloadModelAsync(repo, commit)).Commit);
        Assert.Equal(Path.Combine(folder, "snapshots", commit), ModelResolver.Resolve($"{repo}@{commit}", Settings()));
        Assert.Equal(before, Hub.Requests.Count);
        Assert.Empty(BertPreTrainedModel.FromPretrained(Path.Combine(folder, "snapshots", commit)).LoadReport!.Initialized);
    }

    [Fact]
    public void The_resolver_says_what_a_name_is_not_and_lists_the_built_in_models()
    {
        var e = Assert.Throws<NBertException>(() => ModelResolver.Resolve("./no/such/dir", Settings()));
        Assert.Contains("not a directory", e.Message);
        Assert.Contains("minilm", e.Message);
        Assert.Contains("Hub name", e.Message);

        string missing = UniqueRepo("nowhere");
        var hub = Assert.Throws<HubException>(() => ModelResolver.Resolve(missing, Settings()));
        Assert.Equal(HubError.RepositoryNotFound, hub.Error);
        Assert.Contains("not a directory", hub.Message);
        Assert.Contains("minilm", hub.Message);
        Assert.Contains("not found", hub.Message);

        hub = Assert.Throws<HubException>(() => ModelResolver.Resolve(missing, Settings(offline: true)));
        Assert.Equal(HubError.NotInCache, hub.Error);
        Assert.Contains("all-MiniLM-L6-v2", hub.Message);

        // A directory wins over a Hub name that reads the same.
        Assert.Equal(Model("seqcls"), ModelResolver.Resolve(Model("seqcls"), Settings(offline: true)));
    }
}
