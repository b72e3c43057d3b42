using System.Diagnostics;
using System.Text.Json.Nodes;
using NBert.Cli;
using NBert.Hub;
using NBert.Pipelines;
using NBert.Tests.Cli;

namespace NBert.Tests.Hub;

/// <summary><c>nbert download</c>, <c>nbert cache list|remove</c>, <c>--model org/name</c>, in process and as real
/// processes (two at once; online and then with HF_HUB_OFFLINE=1).</summary>
public sealed class HubCommandTests(FakeHubFixture fixture) : HubTest(fixture)
{
    private (int Code, string Out, string Err) Run(HubSettings settings, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(args, new StringReader(""), output, error, settings);
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public void Download_prints_the_snapshot_and_cache_list_and_remove_work_on_it()
    {
        string repo = UniqueRepo("cli");
        string first = Hub.AddModel(repo, Model("seqcls"));
        var (code, stdout, stderr) = Run(Settings(), "download", repo);
        Assert.True(code == 0, stderr);
        string snapshot = stdout.Trim();
        Assert.Equal(Path.Combine(CacheRoot, $"models--{repo.Replace("/", "--")}", "snapshots", first), snapshot);
        Assert.True(File.Exists(Path.Combine(snapshot, "model.safetensors")));

        // Two files only, at a second revision named with @.
        var files = FakeHub.FilesOf(Model("seqcls"));
        files["config.json"] = [.. files["config.json"], (byte)'\n'];
        string second = Hub.AddCommit(repo, files, branch: "v2");
        (code, stdout, stderr) = Run(Settings(), "download", $"{repo}@v2", "config.json", "vocab.txt");
        Assert.True(code == 0, stderr);
        Assert.EndsWith(second, stdout.Trim());
        Assert.Equal(["config.json", "vocab.txt"], Directory.GetFiles(stdout.Trim()).Select(Path.GetFileName).Order());

        (code, stdout, stderr) = Run(Settings(), "cache", "list", "--json");
        Assert.True(code == 0, stderr);
        var listed = JsonNode.Parse(stdout.Split('\n').Single(l => l.Contains(repo)))!;
        Assert.Equal("model", (string)listed["type"]!);
        Assert.Equal(2, listed["revisions"]!.AsArray().Count);
        var mainRevision = listed["revisions"]!.AsArray().Single(r => (string)r!["commit"]! == first)!;
        Assert.Equal(["main"], mainRevision["refs"]!.AsArray().Select(r => (string)r!));
        // vocab.txt is the same blob in both commits: counted once.
        long distinct = new[] { "config.json", "model.safetensors", "tokenizer.json", "vocab.txt", "tokenizer_config.json" }.Sum(f => FixtureBytes("seqcls", f).LongLength) + files["config.json"].Length;
        Assert.Equal(distinct, (long)listed["size_on_disk"]!);
        (code, stdout, _) = Run(Settings(), "cache", "list");
        Assert.Equal(0, code);
        Assert.Contains(repo, stdout);

        // Removing v2 frees only its own config.json; the shared vocab.txt stays with main.
        (code, stdout, stderr) = Run(Settings(), "cache", "remove", repo, "--revision", "v2");
        Assert.True(code == 0, stderr);
        Assert.Contains($"freeing {files["config.json"].Length} B", stdout);
        var left = HubCacheScan.Scan(CacheRoot).Single(r => r.Repo == repo);
        Assert.Equal([first], left.Revisions.Select(r => r.Commit));
        Assert.Equal(FixtureBytes("seqcls", "vocab.txt"), File.ReadAllBytes(Path.Combine(snapshot, "vocab.txt")));

        (code, _, stderr) = Run(Settings(), "cache", "remove", repo);
        Assert.True(code == 0, stderr);
        Assert.DoesNotContain(HubCacheScan.Scan(CacheRoot), r => r.Repo == repo);
        (code, _, stderr) = Run(Settings(), "cache", "remove", repo);
        Assert.Equal(2, code);
        Assert.Contains("holds no model", stderr);
    }

    [Fact]
    public void Hub_errors_exit_2_with_one_line_that_says_what_to_do()
    {
        string missing = UniqueRepo("cli-missing");
        foreach (var (settings, args, expected) in new (HubSettings, string[], string)[]
        {
            (Settings(), ["download", missing], "not found"),
            (Settings(offline: true), ["download", missing], "HF_HUB_OFFLINE"),
            (Settings(), ["download", "./not/a/repo"], "not a Hub repository id"),
            (Settings(), ["classify", "--model", missing, "text"], "minilm"),
            (Settings(offline: true), ["classify", "--model", missing, "text"], "not in the cache"),
            (Settings(endpoint: DeadEndpoint()), ["inspect", "--model", missing], "cannot reach"),
        })
        {
            var (code, stdout, stderr) = Run(settings, args);
            Assert.Equal(2, code);
            Assert.Empty(stdout);
            Assert.StartsWith("nbert: ", stderr);
            Assert.Contains(expected, stderr);
            Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
    }

    /// <summary>The hostile peer's findings as the CLI shows them: a redirect to file: was "internal error:
    /// NotSupportedException" (exit 70), a damaged vocab.txt offline was used (exit 0), 30 MB past an announced 3,000
    /// bytes were written twice. Each is now a Hub error: exit 2 with one line.</summary>
    [Fact]
    public void Hostile_hub_answers_exit_2_with_one_line()
    {
        string redirect = UniqueRepo("cli-redirect");
        Hub.AddModel(redirect, Model("seqcls"));
        Hub.Redirects[(redirect, "model.safetensors")] = ("hub", "file:///etc/passwd");
        string oversize = UniqueRepo("cli-oversize");
        Hub.AddModel(oversize, Model("seqcls"));
        Hub.Padding[(oversize, "vocab.txt")] = (30_000_000, false);
        string damaged = UniqueRepo("cli-damaged");
        Hub.AddModel(damaged, Model("seqcls"));
        Assert.Equal(0, Run(Settings(), "download", damaged).Code);
        string blob = new HubCache(CacheRoot, damaged).BlobPath(FakeHub.GitBlobId(FixtureBytes("seqcls", "vocab.txt")));
        File.AppendAllText(blob, "appended\n");

        foreach (var (settings, args, expected) in new (HubSettings, string[], string)[]
        {
            (Settings(), ["download", redirect], "redirects to a file: address"),
            (Settings(), ["download", oversize, "vocab.txt"], "bytes it announced"),
            (Settings(offline: true), ["classify", "--model", damaged, "text"], "git blob SHA-1"),
        })
        {
            var (code, stdout, stderr) = Run(settings, args);
            Assert.True(code == 2, $"{string.Join(' ', args)}: exit {code}, {stderr}");
            Assert.Empty(stdout);
            Assert.StartsWith("nbert: ", stderr);
            Assert.Contains(expected, stderr);
            Assert.DoesNotContain("internal error", stderr);
            Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
    }

    [Fact]
    public async Task Classify_with_a_hub_name_works_against_the_hub_and_then_offline_from_the_cache()
    {
        string repo = UniqueRepo("classify");
        Hub.AddModel(repo, Model("seqcls"));
        string expected = System.Text.Json.JsonSerializer.Serialize(
            TextClassification.FromPretrained(Model("seqcls")).Run("A fine film.", new TextClassificationOptions { TopK = null }));
        var env = new Dictionary<string, string?> { ["HF_ENDPOINT"] = Hub.Endpoint, ["HF_HUB_CACHE"] = CacheRoot, ["HF_HOME"] = Temp("hf-home") };

        var (code, stdout, stderr) = await Nbert.RunProcessAsync(env, "classify", "--model", repo, "--json", "--top-k", "all", "A fine film.");
        Assert.True(code == 0, stderr);
        Assert.Equal(expected, stdout.Trim());
        int requests = Hub.Requests.Count;

        env["HF_HUB_OFFLINE"] = "1";
        env["HF_ENDPOINT"] = DeadEndpoint();
        (code, stdout, stderr) = await Nbert.RunProcessAsync(env, "classify", "--model", repo, "--json", "--top-k", "all", "A fine film.");
        Assert.True(code == 0, stderr);
        Assert.Equal(expected, stdout.Trim());
        Assert.Equal(requests, Hub.Requests.Count);
    }

    [Fact]
    public async Task Two_processes_downloading_the_same_model_at_once_end_with_one_good_copy()
    {
        string repo = UniqueRepo("two-processes");
        Hub.AddModel(repo, Model("seqcls"));
        // The weights are held until both processes have asked for their metadata: both then want the blob at once.
        var bothAsked = new TaskCompletionSource();
        Hub.Holds[(repo, "model.safetensors")] = bothAsked.Task;
        Hub.OnRequest += r =>
        {
            if (r.Repo == repo && Hub.RequestsFor(repo).Count(x => x is { Method: "HEAD", File: "model.safetensors" }) >= 2) bothAsked.TrySetResult();
        };
        var env = new Dictionary<string, string?> { ["HF_ENDPOINT"] = Hub.Endpoint, ["HF_HUB_CACHE"] = CacheRoot, ["HF_HOME"] = Temp("hf-home") };
        var runs = await Task.WhenAll(Nbert.RunProcessAsync(env, "download", repo), Nbert.RunProcessAsync(env, "download", repo));
        foreach (var (code, _, stderr) in runs) Assert.True(code == 0, stderr);
        Assert.Single(runs.Select(r => r.Out.Trim()).Distinct());
        Assert.True(bothAsked.Task.IsCompleted);

        string snapshot = runs[0].Out.Trim();
        foreach (var (file, bytes) in FakeHub.FilesOf(Model("seqcls")))
            Assert.Equal(bytes, File.ReadAllBytes(Path.Combine(snapshot, file)));
        Assert.Single(Hub.RequestsFor(repo), r => r is { Method: "GET", File: "model.safetensors" });
        string blobs = Path.Combine(CacheRoot, $"models--{repo.Replace("/", "--")}", "blobs");
        Assert.Equal(5, Directory.GetFiles(blobs).Length); // one blob per file, nothing .incomplete
    }
}
