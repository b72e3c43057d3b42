using NBert.Hub;
using NBert.IO;
using NBert.Modeling;
using NBert.Schema;

namespace NBert.Tests.Hub;

/// <summary>Downloading from a fake Hub on loopback into huggingface_hub's cache layout: fresh, cached, resumed,
/// corrupt, by branch and commit, sharded, concurrent.</summary>
public sealed class HubDownloadTests(FakeHubFixture fixture) : HubTest(fixture)
{
    [Fact]
    public void A_tokenizer_is_fetched_without_the_weights_and_a_tokenizer_only_repository_loads()
    {
        string repo = UniqueRepo("tok");
        Hub.AddModel(repo, Model("seqcls"));
        string directory = ModelResolver.ResolveTokenizer(repo, Settings());
        Assert.DoesNotContain(Hub.RequestsFor(repo), r => r.File.EndsWith(".safetensors", StringComparison.Ordinal) || r.File.EndsWith(".bin", StringComparison.Ordinal));
        Assert.Equal(NBert.Tokenization.BertTokenizer.FromPretrained(Model("seqcls")).Encode("A fine film.").InputIds,
            NBert.Tokenization.BertTokenizer.FromPretrained(directory).Encode("A fine film.").InputIds);
        Assert.Equal(128, NBert.Tokenization.BertTokenizer.FromPretrained(directory).MaxPositionEmbeddings); // config.json came too

        string only = UniqueRepo("tokonly");
        Hub.AddCommit(only, FakeHub.FilesOf(Model("seqcls")).Where(f => f.Key.StartsWith("tokenizer", StringComparison.Ordinal) || f.Key == "vocab.txt")
            .ToDictionary(f => f.Key, f => f.Value));
        var tokenizerOnly = NBert.Tokenization.BertTokenizer.FromPretrained(ModelResolver.ResolveTokenizer(only, Settings()));
        Assert.Equal(NBert.Tokenization.BertTokenizer.FromPretrained(Model("seqcls")).Encode("A fine film.").InputIds, tokenizerOnly.Encode("A fine film.").InputIds);
        Assert.Null(tokenizerOnly.MaxPositionEmbeddings); // no config.json in that repository
        Assert.Throws<HubException>(() => ModelResolver.Resolve(only, Settings())); // as a model it has no weights
    }

    [Theory]
    [InlineData("""{"weight_map": {"a": null}}""")]
    [InlineData("""{"weight_map": {"a": 5}}""")]
    [InlineData("""{"weight_map": {"a": "../../evil"}}""")]
    [InlineData("""[1, 2]""")]
    public async Task A_broken_shard_index_from_the_hub_is_refused_as_a_protocol_error(string index)
    {
        string repo = UniqueRepo("badindex");
        var files = FakeHub.FilesOf(Model("seqcls"));
        files.Remove("model.safetensors");
        files["model.safetensors.index.json"] = System.Text.Encoding.UTF8.GetBytes(index);
        Hub.AddCommit(repo, files);
        using var client = new HubClient(Settings());
        var e = await Assert.ThrowsAsync<HubException>(() => client.DownloadModelAsync(repo));
        Assert.Equal(HubError.Protocol, e.Error);
        Assert.Contains("model.safetensors.index.json", e.Message);
    }

    [Fact]
    public async Task A_sentence_transformers_repository_brings_its_pooling_files_and_embeds_as_they_say()
    {
        string repo = UniqueRepo("st");
        var files = FakeHub.FilesOf(Model("encoder_only"));
        files["modules.json"] = System.Text.Encoding.UTF8.GetBytes("""
            [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
             {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
            """);
        files["1_Pooling/config.json"] = System.Text.Encoding.UTF8.GetBytes("""{"word_embedding_dimension": 32, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}""");
        Hub.AddCommit(repo, files);
        using var client = new HubClient(Settings());
        var snapshot = await client.DownloadModelAsync(repo);
        Assert.Contains("modules.json", snapshot.Files);
        Assert.Contains("1_Pooling/config.json", snapshot.Files);
        Assert.Equal(NBert.Schema.Pooling.Cls, NBert.Pipelines.SentenceEmbeddings.ModelOptions(snapshot.Directory).Pooling);
    }

    [Fact]
    public async Task A_fresh_download_writes_pythons_cache_layout_and_a_second_run_makes_no_get()
    {
        string repo = UniqueRepo("seqcls");
        string commit = Hub.AddModel(repo, Model("seqcls"));
        var progress = new List<HubDownloadProgress>();
        using (var client = new HubClient(Settings()) { Progress = new SyncProgress(progress) })
        {
            var snapshot = await client.DownloadModelAsync(repo);
            string folder = Path.Combine(CacheRoot, $"models--{repo.Replace("/", "--")}");
            Assert.Equal(Path.Combine(folder, "snapshots", commit), snapshot.Directory);
            Assert.Equal(commit, snapshot.Commit);
            Assert.Equal(["config.json", "model.safetensors", "tokenizer.json", "vocab.txt", "tokenizer_config.json"], snapshot.Files);

            // Every snapshot file is a relative link to blobs/{etag}, holding the fixture's bytes.
            foreach (string file in snapshot.Files)
            {
                byte[] bytes = FixtureBytes("seqcls", file);
                string etag = FakeHub.IsLfs(file) ? FakeHub.Sha256(bytes) : FakeHub.GitBlobId(bytes);
                Assert.Equal(Path.Combine("..", "..", "blobs", etag), new FileInfo(Path.Combine(snapshot.Directory, file)).LinkTarget);
                Assert.Equal(bytes, File.ReadAllBytes(Path.Combine(folder, "blobs", etag)));
            }
            Assert.Equal(commit, File.ReadAllText(Path.Combine(folder, "refs", "main"))); // no newline, as Python writes it
            Assert.True(File.Exists(Path.Combine(folder, ".no_exist", commit, "special_tokens_map.json")));
            Assert.False(File.Exists(Path.Combine(folder, ".no_exist", commit, "model.safetensors")));
            Assert.Empty(Directory.GetFiles(Path.Combine(folder, "blobs"), "*.incomplete"));
            Assert.True(File.Exists(Path.Combine(CacheRoot, ".locks", Path.GetFileName(folder), FakeHub.Sha256(FixtureBytes("seqcls", "model.safetensors")) + ".lock")));
            Assert.Contains(progress, p => p is { File: "model.safetensors", Completed: true } && p.Received == p.Total && p.Total == FixtureBytes("seqcls", "model.safetensors").Length);

            // The weights came from the CDN (the absolute redirect), the small files from the Hub itself.
            var gets = Hub.RequestsFor(repo).Where(r => r.Method == "GET").ToList();
            Assert.Equal(["cdn"], gets.Where(r => r.File == "model.safetensors").Select(r => r.Server));
            Assert.All(gets.Where(r => r.File != "model.safetensors"), r => Assert.Equal("hub", r.Server));
            Assert.Equal(5, gets.Count);

            var model = BertPreTrainedModel.FromPretrained(snapshot.Directory);
            Assert.Empty(model.LoadReport!.Initialized);
        }

        int before = Hub.RequestsFor(repo).Count;
        using (var client = Client())
        {
            var again = await client.DownloadModelAsync(repo);
            Assert.Equal(commit, again.Commit);
        }
        // One HEAD (config.json at main, to learn the commit); the rest is the commit's, which the cache holds.
        var second = Hub.RequestsFor(repo).Skip(before).ToList();
        Assert.Equal([("HEAD", "config.json")], second.Select(r => (r.Method, r.File)));
    }

    [Fact]
    public async Task A_revision_is_a_branch_or_a_commit_and_a_cached_commit_needs_no_request()
    {
        string repo = UniqueRepo("revisions");
        string first = Hub.AddModel(repo, Model("seqcls"));
        var files = FakeHub.FilesOf(Model("seqcls"));
        files["config.json"] = System.Text.Encoding.UTF8.GetBytes(File.ReadAllText(Path.Combine(Model("seqcls"), "config.json")).Replace("\"positive\"", "\"good\""));
        string second = Hub.AddCommit(repo, files, branch: "v2");
        using var client = Client();

        var v2 = await client.DownloadModelAsync(repo, "v2");
        Assert.Equal(second, v2.Commit);
        Assert.Contains("good", BertConfig.Load(Path.Combine(v2.Directory, "config.json")).Id2Label);
        var folder = client.Cache(repo);
        Assert.Equal(second, folder.CommitFor("v2"));
        Assert.Null(folder.CommitFor("main"));

        var byCommit = await client.DownloadModelAsync(repo, first);
        Assert.Equal(first, byCommit.Commit);
        Assert.Contains("positive", BertConfig.Load(Path.Combine(byCommit.Directory, "config.json")).Id2Label);
        // The weights are the same file in both commits: one blob, two links.
        Assert.Single(Directory.GetFiles(Path.Combine(folder.RepoFolder, "blobs"), "*", SearchOption.TopDirectoryOnly),
            b => Path.GetFileName(b) == FakeHub.Sha256(files["model.safetensors"]));
        Assert.Single(Hub.RequestsFor(repo), r => r is { Method: "GET", File: "model.safetensors" });

        int before = Hub.RequestsFor(repo).Count;
        Assert.Equal(byCommit.Directory, (await client.DownloadModelAsync(repo, first)).Directory);
        Assert.Equal(before, Hub.RequestsFor(repo).Count);

        // Through the resolver: name@revision.
        Assert.Equal(v2.Directory, ModelResolver.Resolve($"{repo}@v2", Settings()));
    }

    [Fact]
    public async Task A_download_cut_in_the_middle_resumes_with_a_range_request()
    {
        string repo = UniqueRepo("cut");
        Hub.AddModel(repo, Model("seqcls"));
        byte[] weights = FixtureBytes("seqcls", "model.safetensors");
        Hub.Cuts[(repo, "model.safetensors")] = 200_000;
        using var client = Client();
        var snapshot = await client.DownloadModelAsync(repo);
        Assert.Equal(weights, File.ReadAllBytes(Path.Combine(snapshot.Directory, "model.safetensors")));
        // The second GET asks for the rest: from what arrived before the cut (at most the 200,000 bytes sent), not from 0.
        var gets = Hub.RequestsFor(repo).Where(r => r is { Method: "GET", File: "model.safetensors" }).ToList();
        Assert.Equal(2, gets.Count);
        Assert.Null(gets[0].Range);
        Assert.Matches("^bytes=[0-9]+-$", gets[1].Range);
        long resumedAt = long.Parse(gets[1].Range!["bytes=".Length..^1]);
        Assert.InRange(resumedAt, 1, 200_000);
    }

    [Fact]
    public async Task A_partial_download_left_by_an_earlier_process_is_resumed()
    {
        string repo = UniqueRepo("partial");
        Hub.AddModel(repo, Model("seqcls"));
        byte[] weights = FixtureBytes("seqcls", "model.safetensors");
        string blobs = Path.Combine(CacheRoot, $"models--{repo.Replace("/", "--")}", "blobs");
        Directory.CreateDirectory(blobs);
        File.WriteAllBytes(Path.Combine(blobs, FakeHub.Sha256(weights) + ".incomplete"), weights[..300_000]);
        using var client = Client();
        var snapshot = await client.DownloadModelAsync(repo);
        Assert.Equal(weights, File.ReadAllBytes(Path.Combine(snapshot.Directory, "model.safetensors")));
        Assert.Equal(["bytes=300000-"], Hub.RequestsFor(repo).Where(r => r is { Method: "GET", File: "model.safetensors" }).Select(g => g.Range));
        Assert.Empty(Directory.GetFiles(blobs, "*.incomplete"));
    }

    [Fact]
    public async Task A_corrupt_download_is_refused_and_fetched_again_and_twice_corrupt_keeps_nothing()
    {
        string repo = UniqueRepo("corrupt");
        Hub.AddModel(repo, Model("seqcls"));
        byte[] weights = FixtureBytes("seqcls", "model.safetensors");
        Hub.Corruptions[(repo, "model.safetensors")] = 1;
        using (var client = Client())
        {
            var snapshot = await client.DownloadModelAsync(repo);
            Assert.Equal(weights, File.ReadAllBytes(Path.Combine(snapshot.Directory, "model.safetensors")));
            Assert.Equal(2, Hub.RequestsFor(repo).Count(r => r is { Method: "GET", File: "model.safetensors" }));
        }

        string other = UniqueRepo("corrupt-twice");
        string otherCommit = Hub.AddModel(other, Model("seqcls"));
        Hub.Corruptions[(other, "model.safetensors")] = 2;
        using (var client = Client())
        {
            var e = await Assert.ThrowsAsync<HubException>(() => client.DownloadModelAsync(other));
            Assert.Equal(HubError.Corrupt, e.Error);
            Assert.Contains(FakeHub.Sha256(weights), e.Message);
            Assert.Contains("model.safetensors", e.Message);
            var folder = client.Cache(other).RepoFolder;
            Assert.Empty(Directory.GetFiles(Path.Combine(folder, "blobs"), FakeHub.Sha256(weights) + "*"));
            Assert.False(File.Exists(client.Cache(other).SnapshotPath(otherCommit, "model.safetensors")));
        }
    }

    [Theory]
    [InlineData(false)] // same size, one byte changed: only the SHA-256 tells
    [InlineData(true)]  // truncated: the size tells
    public async Task A_damaged_blob_in_the_cache_is_refused_and_fetched_again(bool truncate)
    {
        string repo = UniqueRepo("damaged");
        string commit = Hub.AddModel(repo, Model("seqcls"));
        byte[] weights = FixtureBytes("seqcls", "model.safetensors");
        using var client = Client();
        var snapshot = await client.DownloadModelAsync(repo);
        string blob = client.Cache(repo).BlobPath(FakeHub.Sha256(weights));
        byte[] damaged = truncate ? weights[..1000] : (byte[])weights.Clone();
        if (!truncate) damaged[5000] ^= 1;
        File.WriteAllBytes(blob, damaged);
        File.SetLastWriteTimeUtc(blob, DateTime.UtcNow.AddMinutes(1)); // a new time stamp, as any rewrite gives

        // Offline it is refused with a message that says what to do.
        using (var offline = Client(offline: true))
        {
            var e = await Assert.ThrowsAsync<HubException>(() => offline.DownloadModelAsync(repo));
            Assert.Equal(HubError.Corrupt, e.Error);
            Assert.Contains("model.safetensors", e.Message);
        }
        // Online it is fetched again.
        Assert.Equal(snapshot.Directory, (await client.DownloadModelAsync(repo)).Directory);
        Assert.Equal(weights, File.ReadAllBytes(Path.Combine(snapshot.Directory, "model.safetensors")));
        Assert.Equal(2, Hub.RequestsFor(repo).Count(r => r is { Method: "GET", File: "model.safetensors" }));
        Assert.Equal(commit, snapshot.Commit);
    }

    [Fact]
    public async Task A_sharded_checkpoint_and_a_pytorch_bin_are_fetched_in_transformers_order()
    {
        // Shards written from the fixture's tensors, with their index.
        string repo = UniqueRepo("sharded");
        var files = new Dictionary<string, byte[]>();
        foreach (string f in new[] { "config.json", "vocab.txt", "tokenizer_config.json" }) files[f] = FixtureBytes("seqcls", f);
        using (var source = new SafeTensorsFile(Path.Combine(Model("seqcls"), "model.safetensors")))
        {
            var tensors = source.Tensors.ToList();
            var map = new Dictionary<string, string>();
            for (int part = 0; part < 2; part++)
            {
                string name = $"model-0000{part + 1}-of-00002.safetensors", path = Temp(name);
                var mine = tensors.Where((_, i) => i % 2 == part).ToList();
                SafeTensorsWriter.Write(path, mine.Select(t => new SafeTensor(t.Name, t.DType, t.Shape, source.Bytes(t.Name).ToArray())));
                files[name] = File.ReadAllBytes(path);
                foreach (var t in mine) map[t.Name] = name;
            }
            files["model.safetensors.index.json"] = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(new { metadata = new { total_size = 0 }, weight_map = map });
        }
        Hub.AddCommit(repo, files);
        using var client = Client();
        var snapshot = await client.DownloadModelAsync(repo);
        Assert.Equal(["config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "vocab.txt", "tokenizer_config.json"], snapshot.Files);
        var expected = BertPreTrainedModel.FromPretrained(Model("seqcls"));
        var loaded = BertPreTrainedModel.FromPretrained(snapshot.Directory);
        Assert.Equal(expected.Parameters["classifier.weight"].Data, loaded.Parameters["classifier.weight"].Data);

        // Only pytorch_model.bin: the safetensors names are asked for once each, then the .bin.
        string bin = UniqueRepo("bin");
        Hub.AddCommit(bin, new() { ["config.json"] = FixtureBytes("pretraining", "config.json"), ["pytorch_model.bin"] = FixtureBytes("pretraining", "pytorch_model.bin") });
        var binSnapshot = await client.DownloadModelAsync(bin);
        Assert.Equal(["config.json", "pytorch_model.bin"], binSnapshot.Files);
        Assert.Equal(["config.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"],
            Hub.RequestsFor(bin).Where(r => r.Method == "HEAD").Select(r => r.File).Take(4));
        BertPreTrainedModel.FromPretrained(binSnapshot.Directory);

        // No weights at all is an error that lists what was looked for.
        string none = UniqueRepo("no-weights");
        Hub.AddCommit(none, new() { ["config.json"] = FixtureBytes("seqcls", "config.json") });
        var e = await Assert.ThrowsAsync<HubException>(() => client.DownloadModelAsync(none));
        Assert.Contains("has no weights", e.Message);
        Assert.Contains("pytorch_model.bin", e.Message);
    }

    [Fact]
    public async Task Downloads_of_the_same_model_at_once_in_one_process_fetch_each_file_once()
    {
        string repo = UniqueRepo("threads");
        Hub.AddModel(repo, Model("seqcls"));
        var release = new TaskCompletionSource();
        Hub.Holds[(repo, "model.safetensors")] = release.Task;
        // The first GET waits for the others' HEADs (up to the 60 s below): its timeout must outlast that, or on a loaded
        // machine it is tried again and counted twice.
        var downloads = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            using var client = new HubClient(Settings() with { DownloadTimeout = TimeSpan.FromSeconds(90) });
            return await client.DownloadModelAsync(repo);
        })).ToList();
        // Hold the weights until all four have asked for their metadata, so that they really overlap.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (Hub.RequestsFor(repo).Count(r => r is { Method: "HEAD", File: "model.safetensors" }) < 4 && DateTime.UtcNow < deadline) await Task.Delay(20);
        release.SetResult();
        var snapshots = await Task.WhenAll(downloads);
        Assert.Single(snapshots.Select(s => s.Directory).Distinct());
        Assert.Single(Hub.RequestsFor(repo), r => r is { Method: "GET", File: "model.safetensors" });
        Assert.Equal(FixtureBytes("seqcls", "model.safetensors"), File.ReadAllBytes(Path.Combine(snapshots[0].Directory, "model.safetensors")));
    }

    [Fact]
    public async Task Where_links_cannot_be_made_snapshot_files_are_copies_that_are_found_again()
    {
        string repo = UniqueRepo("copies");
        Hub.AddModel(repo, Model("seqcls"));
        using (var client = new HubClient(Settings()) { UseSymlinks = false })
        {
            var snapshot = await client.DownloadModelAsync(repo);
            string weights = Path.Combine(snapshot.Directory, "model.safetensors");
            Assert.Null(new FileInfo(weights).LinkTarget);
            Assert.Equal(FixtureBytes("seqcls", "model.safetensors"), File.ReadAllBytes(weights));
        }
        int before = Hub.RequestsFor(repo).Count;
        using (var client = Client())
            await client.DownloadModelAsync(repo);
        Assert.DoesNotContain(Hub.RequestsFor(repo).Skip(before), r => r.Method == "GET");
    }

    [Fact]
    public async Task DownloadAsync_fetches_named_files_and_a_missing_one_is_an_error_remembered_in_no_exist()
    {
        string repo = UniqueRepo("files");
        string commit = Hub.AddModel(repo, Model("seqcls"));
        using var client = Client();
        var snapshot = await client.DownloadAsync(repo, null, ["vocab.txt", "config.json"]);
        Assert.Equal(commit, snapshot.Commit);
        Assert.Equal(FixtureBytes("seqcls", "vocab.txt"), File.ReadAllBytes(Path.Combine(snapshot.Directory, "vocab.txt")));
        Assert.False(File.Exists(Path.Combine(snapshot.Directory, "model.safetensors")));

        var e = await Assert.ThrowsAsync<HubException>(() => client.DownloadAsync(repo, null, ["nope.txt"]));
        Assert.Equal(HubError.EntryNotFound, e.Error);
        Assert.Contains("nope.txt", e.Message);
        Assert.True(client.Cache(repo).IsKnownMissing(commit, "nope.txt"));
        int before = Hub.RequestsFor(repo).Count;
        e = await Assert.ThrowsAsync<HubException>(() => client.DownloadAsync(repo, commit, ["nope.txt"]));
        Assert.Equal(HubError.EntryNotFound, e.Error);
        Assert.Equal(before, Hub.RequestsFor(repo).Count); // remembered: not asked again at that commit

        await Assert.ThrowsAsync<ArgumentException>(() => client.DownloadAsync(repo, null, ["../escape.txt"]));
        await Assert.ThrowsAsync<ArgumentException>(() => client.DownloadAsync("not a repo", null, ["config.json"]));
    }

    [Fact]
    public async Task A_renamed_repository_is_followed_through_its_relative_redirect()
    {
        string repo = UniqueRepo("new-name"), old = UniqueRepo("old-name");
        string commit = Hub.AddModel(repo, Model("seqcls"));
        Hub.Rename(old, repo);
        using var client = Client();
        var snapshot = await client.DownloadModelAsync(old);
        Assert.Equal(commit, snapshot.Commit);
        Assert.StartsWith(client.Cache(old).RepoFolder, snapshot.Directory); // cached under the name asked for, as Python does
        Assert.Contains(Hub.RequestsFor(repo), r => r.Method == "HEAD");
    }

    private sealed class SyncProgress(List<HubDownloadProgress> list) : IProgress<HubDownloadProgress>
    {
        public void Report(HubDownloadProgress value)
        {
            lock (list) list.Add(value);
        }
    }

    [Fact]
    public async Task An_empty_file_is_downloaded_as_an_empty_file()
    {
        // Its size, 0, is "all there" before any byte arrives: the file must still be fetched so that it exists.
        string repo = UniqueRepo("empty");
        Hub.AddCommit(repo, new Dictionary<string, byte[]> { ["config.json"] = FixtureBytes("seqcls", "config.json"), ["empty.txt"] = [] });
        using var client = Client();
        var snapshot = await client.DownloadAsync(repo, null, ["empty.txt"]);
        Assert.Empty(File.ReadAllBytes(Path.Combine(snapshot.Directory, "empty.txt")));
    }

    [Fact]
    public async Task A_commit_that_is_not_a_hash_is_refused_before_it_names_a_folder()
    {
        // X-Repo-Commit becomes snapshots/{commit}: "../../x" would put the snapshot outside the cache.
        string repo = UniqueRepo("badcommit");
        var settings = new FakeHub.Repo();
        Hub.AddCommit(repo, new Dictionary<string, byte[]> { ["config.json"] = FixtureBytes("seqcls", "config.json") }, settings: settings);
        lock (settings)
        {
            settings.Commits["../../outside"] = settings.Commits.Values.First();
            settings.Refs["main"] = "../../outside";
        }
        using var client = Client();
        var e = await Assert.ThrowsAsync<HubException>(() => client.DownloadAsync(repo, null, ["config.json"]));
        Assert.Equal(HubError.Protocol, e.Error);
        Assert.Contains("is not a commit hash", e.Message);
        Assert.False(Directory.Exists(Path.Combine(CacheRoot, "outside")));
    }
}
