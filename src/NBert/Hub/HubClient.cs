using System.Globalization;
using System.Text.Json;

namespace NBert.Hub;

/// <summary>Files of one commit of a repository, in the cache.</summary>
/// <param name="Repo">The repository id.</param>
/// <param name="Revision">The revision asked for (a branch, tag or commit).</param>
/// <param name="Commit">The commit it resolved to.</param>
/// <param name="Directory">The snapshot directory, <c>snapshots/{commit}</c>: a model directory NBert and transformers load.</param>
/// <param name="Files">The files fetched (or found in the cache), relative to <paramref name="Directory"/>.</param>
public sealed record HubSnapshot(string Repo, string Revision, string Commit, string Directory, IReadOnlyList<string> Files);

/// <summary>How far a file's download has come, for a progress bar.</summary>
/// <param name="Repo">The repository id.</param>
/// <param name="File">The file in the repository.</param>
/// <param name="Received">Bytes on disk so far, a resumed download's earlier part included.</param>
/// <param name="Total">The file's size when the Hub gave it.</param>
/// <param name="Completed">True once, when the file is whole and checked.</param>
public readonly record struct HubDownloadProgress(string Repo, string File, long Received, long? Total, bool Completed);

/// <summary>
/// A client of the Hugging Face Hub that downloads files into the cache Python's huggingface_hub uses, and finds
/// them there later without downloading again (see docs/design.md). Each file is: looked up in the cache when its
/// revision is a commit; else described by a <c>HEAD</c> (commit, ETag, size, where the bytes are); fetched with
/// <c>GET</c> into <c>blobs/{etag}.incomplete</c> under a lock, resuming what is there, and stopped at once if it passes
/// the announced size (or <see cref="HubSettings.MaxFileSize"/>); checked (size, and SHA-256 for LFS files or the git
/// blob SHA-1 for the others); renamed to <c>blobs/{etag}</c>; and linked from <c>snapshots/{commit}/</c>. Offline
/// (<see cref="HubSettings.Offline"/>), or when the Hub cannot be reached or refuses, the cache answers alone, and
/// each file it gives is checked against its blob's name (the same hashes) first.
/// </summary>
public sealed class HubClient : IDisposable
{
    /// <summary>sentence-transformers' files at the top of a model repository (<see cref="Schema.SentenceTransformersConfig.TopLevelFileNames"/>).</summary>
    public static IReadOnlyList<string> SentenceTransformersFiles => Schema.SentenceTransformersConfig.TopLevelFileNames;

    /// <summary>The module folders modules.json names ("1_Pooling"), those that are plain relative folder names.</summary>
    private static IEnumerable<string> ModuleFolders(string modulesJson)
    {
        var folders = new List<string>();
        try
        {
            using var doc = JsonFile.Read(modulesJson);
            if (doc.RootElement.ValueKind != System.Text.Json.JsonValueKind.Array) return folders;
            foreach (var module in doc.RootElement.EnumerateArray())
                if (module.ValueKind == System.Text.Json.JsonValueKind.Object && module.TryGetProperty("path", out var p)
                    && p.ValueKind == System.Text.Json.JsonValueKind.String && p.GetString() is { Length: > 0 } folder
                    && RepoId.IsSafeFileName(folder.TrimEnd('/')))
                    folders.Add(folder.TrimEnd('/'));
        }
        catch (Exception e) when (e is NBertException or InvalidOperationException)
        {
            // Not for the client to judge: the embeddings pipeline reads modules.json and names what is wrong with it.
        }
        return folders;
    }

    /// <summary>The files a BERT directory may hold besides config.json and the weights; each is optional.</summary>
    public static IReadOnlyList<string> TokenizerFiles => IO.Checkpoint.TokenizerFiles;

    /// <summary>The weights in the order transformers looks for them: each single file before its sharded index.</summary>
    public static IReadOnlyList<(string File, string Index)> WeightFiles { get; } =
        [(IO.Checkpoint.SafeTensorsName, IO.Checkpoint.SafeTensorsIndexName), (IO.Checkpoint.PyTorchName, IO.Checkpoint.PyTorchIndexName)];

    private const int MaxResumes = 5;
    private readonly HttpClient _http;
    private readonly HubProtocol _protocol;

    /// <summary>The endpoint, token, cache and timeouts used.</summary>
    public HubSettings Settings { get; }

    /// <summary>Told about each file's download as it goes (about ten times a second, and once at the end).</summary>
    public IProgress<HubDownloadProgress>? Progress { get; init; }

    /// <summary>Snapshot files as symbolic links (the default) or as copies.</summary>
    internal bool UseSymlinks { get; init; } = true;

    /// <summary>A client with <paramref name="settings"/>, by default those of the environment (<see cref="HubSettings.FromEnvironment()"/>).</summary>
    public HubClient(HubSettings? settings = null)
        : this(settings ?? HubSettings.FromEnvironment(), new SocketsHttpHandler { AllowAutoRedirect = false, AutomaticDecompression = System.Net.DecompressionMethods.None })
    {
    }

    /// <summary>A client sending its requests through <paramref name="handler"/> (a proxy, a test double); the handler
    /// must not follow redirects itself, since the protocol reads them.</summary>
    public HubClient(HubSettings settings, HttpMessageHandler handler)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(handler);
        Settings = settings;
        _http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan }; // each request has its own timeouts
        _protocol = new HubProtocol(_http, settings);
    }

    /// <summary>The cache folder of a model repository.</summary>
    public HubCache Cache(string repo) => new(Settings.CacheDirectory, CheckRepo(repo)) { UseSymlinks = UseSymlinks };

    /// <summary>
    /// Downloads <paramref name="files"/> of <paramref name="repo"/> at <paramref name="revision"/> (a branch, tag or
    /// commit; null for main) into the cache, or finds them there, and returns the snapshot. All files come from the
    /// commit the first one resolved to, even if the branch moves meanwhile.
    /// </summary>
    /// <exception cref="HubException">A file does not exist, the repository cannot be read, the Hub cannot be reached
    /// and the cache does not hold the files, or a download is corrupt twice.</exception>
    public async Task<HubSnapshot> DownloadAsync(string repo, string? revision, IEnumerable<string> files, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(files);
        var cache = Cache(repo);
        revision = CheckRevision(revision);
        var wanted = files.Select(CheckFile).ToList();
        if (wanted.Count == 0) throw new ArgumentException("No files to download.", nameof(files));
        string commit = revision;
        foreach (string file in wanted) commit = (await FetchAsync(cache, commit, file, optional: false, cancellation).ConfigureAwait(false)).Commit;
        return new HubSnapshot(repo, revision, commit, cache.SnapshotDirectory(commit), wanted);
    }

    /// <summary>
    /// Downloads what a BERT model directory needs, as transformers' <c>from_pretrained</c> would: config.json, the
    /// weights (model.safetensors, else its sharded index and shards, else pytorch_model.bin, else its index and
    /// shards) and the tokenizer files the repository has (<see cref="TokenizerFiles"/>). A file the repository lacks
    /// is remembered in <c>.no_exist</c> and not asked for again at that commit.
    /// </summary>
    /// <exception cref="HubException">As <see cref="DownloadAsync"/>, and when the repository has no weights.</exception>
    public async Task<HubSnapshot> DownloadModelAsync(string repo, string? revision = null, CancellationToken cancellation = default)
    {
        var cache = Cache(repo);
        revision = CheckRevision(revision);
        // A snapshot already in the cache by commit (transformers may have written it) is used as it is: no request.
        bool cachedSnapshot = HubCache.IsCommit(revision) && File.Exists(cache.SnapshotPath(revision, "config.json"));
        string commit = (await FetchAsync(cache, revision, "config.json", optional: false, cancellation).ConfigureAwait(false)).Commit;
        var files = new List<string> { "config.json" };
        async Task<string?> Optional(string file)
        {
            var (path, _) = await FetchAsync(cache, commit, file, optional: true, cancellation).ConfigureAwait(false);
            if (path is not null) files.Add(file);
            return path;
        }
        bool weights = false;
        foreach (var (single, index) in WeightFiles)
        {
            if (await Optional(single).ConfigureAwait(false) is not null) { weights = true; break; }
            if (await Optional(index).ConfigureAwait(false) is not { } indexPath) continue;
            foreach (string shard in Shards(repo, index, indexPath))
            {
                await FetchAsync(cache, commit, shard, optional: false, cancellation).ConfigureAwait(false);
                files.Add(shard);
            }
            weights = true;
            break;
        }
        if (!weights)
        {
            var names = WeightFiles.SelectMany(w => new[] { w.File, w.Index }).ToList();
            // Only the Hub can say that a file is not there; offline (or unreachable), the cache may just lack it.
            throw names.All(n => cache.IsKnownMissing(commit, n))
                ? new HubException(HubError.EntryNotFound, $"{repo}@{revision} has no weights: none of {string.Join(", ", names)}.")
                : new HubException(HubError.NotInCache, $"{repo}@{revision}: the cache holds no weights for commit {commit} ({cache.SnapshotDirectory(commit)}), " +
                    $"and the Hub was not asked{(Settings.Offline ? " (HF_HUB_OFFLINE is set)" : " (it could not be reached)")}.");
        }
        foreach (string file in TokenizerFiles) await Optional(file).ConfigureAwait(false);
        // A sentence-transformers model says how it pools: modules.json names its modules, each with a folder whose
        // config.json (1_Pooling/config.json) the embeddings read. transformers does not fetch these, so a snapshot
        // it left is taken with whatever of them it has, without asking the Hub.
        async Task<string?> Extra(string file)
        {
            if (!cachedSnapshot) return await Optional(file).ConfigureAwait(false);
            string path = cache.SnapshotPath(commit, file);
            if (!File.Exists(path)) return null;
            files.Add(file);
            return path;
        }
        foreach (string file in SentenceTransformersFiles)
            if (await Extra(file).ConfigureAwait(false) is { } path && file == "modules.json")
                foreach (string folder in ModuleFolders(path))
                    await Extra($"{folder}/config.json").ConfigureAwait(false);
        return new HubSnapshot(repo, revision, commit, cache.SnapshotDirectory(commit), files);
    }

    /// <summary>
    /// Downloads what a tokenizer needs, as transformers' <c>AutoTokenizer.from_pretrained</c> would: config.json when the
    /// repository has one (the model's length limit), and the tokenizer files it has (<see cref="TokenizerFiles"/>); no
    /// weights.
    /// </summary>
    /// <exception cref="HubException">As <see cref="DownloadAsync"/>, and when the repository has neither tokenizer.json nor vocab.txt.</exception>
    public async Task<HubSnapshot> DownloadTokenizerAsync(string repo, string? revision = null, CancellationToken cancellation = default)
    {
        var cache = Cache(repo);
        revision = CheckRevision(revision);
        string commit = revision;
        var files = new List<string>();
        foreach (string file in TokenizerFiles.Prepend("config.json"))
        {
            var (path, at) = await FetchAsync(cache, commit, file, optional: true, cancellation).ConfigureAwait(false);
            commit = at; // the first answer names the commit: the other files come from the same one
            if (path is not null) files.Add(file);
        }
        if (!files.Contains("tokenizer.json") && !files.Contains("vocab.txt"))
            throw new HubException(HubError.EntryNotFound, $"{repo}@{revision} has no tokenizer: neither tokenizer.json nor vocab.txt.");
        return new HubSnapshot(repo, revision, commit, cache.SnapshotDirectory(commit), files);
    }

    /// <summary>One file at a revision: its path in the snapshot (null when it does not exist and is optional) and the commit.</summary>
    private async Task<(string? Path, string Commit)> FetchAsync(HubCache cache, string revision, string file, bool optional, CancellationToken cancellation)
    {
        // A commit's files never change, so what the cache holds for it needs no request (as huggingface_hub).
        if (HubCache.IsCommit(revision))
        {
            if (cache.IsKnownMissing(revision, file))
                return optional ? (null, revision) : throw Missing(cache.Repo, revision, file);
            if (CachedFile(cache, revision, file, null, null) is { } hit) return (hit, revision);
        }
        if (Settings.Offline) return FromCache(cache, revision, file, optional, null);
        FileMetadata meta;
        try
        {
            meta = await _protocol.HeadAsync(cache.Repo, revision, file, cancellation).ConfigureAwait(false);
        }
        catch (HubException e) when (e.Error == HubError.EntryNotFound)
        {
            if (e.Commit is { } commit && HubCache.IsCommit(commit))
            {
                cache.MarkMissing(commit, file);
                cache.WriteRef(revision, commit);
                if (optional) return (null, commit);
            }
            else if (optional && HubCache.IsCommit(revision)) return (null, revision);
            throw;
        }
        catch (HubException e) when (e.Error is HubError.Unreachable or HubError.RepositoryNotFound or HubError.Gated or HubError.Forbidden)
        {
            // As huggingface_hub: a Hub that is down, or a token that no longer works, does not stop a model already here.
            return FromCache(cache, revision, file, optional, e);
        }
        cache.WriteRef(revision, meta.Commit);
        if (CachedFile(cache, meta.Commit, file, meta.ETag, meta.Size) is { } cached) return (cached, meta.Commit);
        if (meta.Size > Settings.MaxFileSize)
            throw new HubException(HubError.TooLarge, $"{cache.Repo}@{revision}: {file} is {Count(meta.Size.Value)} bytes, more than the {Count(Settings.MaxFileSize)} " +
                "a file may have (HubSettings.MaxFileSize); nothing was downloaded.");
        await DownloadBlobAsync(cache, file, meta, cancellation).ConfigureAwait(false);
        cache.Link(meta.Commit, file, meta.ETag);
        return (cache.SnapshotPath(meta.Commit, file), meta.Commit);
    }

    /// <summary>A snapshot file that is there and checks out; null when it must be fetched. With no ETag given, a link's
    /// blob name is the ETag; a link to another blob than the Hub's ETag is stale.</summary>
    private static string? CachedFile(HubCache cache, string commit, string file, string? etag, long? size)
    {
        string pointer = cache.SnapshotPath(commit, file);
        if (!File.Exists(pointer)) return null;
        string? linked = cache.LinkedBlob(pointer) is { } blob ? Path.GetFileName(blob) : null;
        if (etag is not null && linked is not null && linked != etag) return null;
        return HubCache.Holds(pointer, etag ?? linked, size) ? pointer : null;
    }

    /// <summary>The file from the cache alone: offline, or when the Hub failed with <paramref name="failure"/>.</summary>
    private (string? Path, string Commit) FromCache(HubCache cache, string revision, string file, bool optional, HubException? failure)
    {
        string? commit = cache.CommitFor(revision);
        if (commit is not null && cache.IsKnownMissing(commit, file))
            return optional ? (null, commit) : throw Missing(cache.Repo, commit, file);
        string? pointer = commit is null ? null : cache.SnapshotPath(commit, file);
        if (pointer is not null && (File.Exists(pointer) || new FileInfo(pointer).LinkTarget is not null))
        {
            if (CachedFile(cache, commit!, file, null, null) is { } hit) return (hit, commit!);
            string fix = failure is null ? $"Download it again without HF_HUB_OFFLINE, or remove the model with 'nbert cache remove {cache.Repo}'."
                : $"The Hub could not be asked for it again ({failure.Message.TrimEnd('.')}).";
            // A link whose blob is gone is a file the cache lacks, not a damaged one.
            if (cache.LinkedBlob(pointer) is { } blob && !File.Exists(blob))
                throw new HubException(HubError.NotInCache, $"{cache.Repo}@{revision}: {file} is missing from the cache: {pointer} links to {blob}, which is not there. {fix}", failure);
            string problem = HubCache.Problem(pointer, cache.LinkedBlob(pointer) is { } linked ? Path.GetFileName(linked) : null, null) ?? "it does not check out";
            throw new HubException(HubError.Corrupt, $"{cache.Repo}@{revision}: {file} in the cache is damaged ({cache.LinkedBlob(pointer) ?? pointer}): {problem}. {fix}", failure);
        }
        // An optional file at a commit the cache has is simply absent there (transformers writes no marker offline either).
        if (optional && commit is not null && Directory.Exists(cache.SnapshotDirectory(commit))) return (null, commit);
        string where = $"{cache.Repo}@{revision}: {file} is not in the cache ({cache.RepoFolder})";
        throw failure is null
            ? new HubException(HubError.NotInCache, $"{where}, and HF_HUB_OFFLINE is set. Download it first without HF_HUB_OFFLINE.")
            : new HubException(failure.Error, $"{failure.Message.TrimEnd('.')}; and {file} is not in the cache ({cache.RepoFolder}).", failure);
    }

    /// <summary>Fetches the blob of <paramref name="meta"/> unless another process did meanwhile: under the blob's
    /// lock, into <c>{etag}.incomplete</c> (resumed from what is there), checked, then renamed. A corrupt download
    /// is thrown away and fetched again once.</summary>
    private async Task DownloadBlobAsync(HubCache cache, string file, FileMetadata meta, CancellationToken cancellation)
    {
        string blob = cache.BlobPath(meta.ETag);
        Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
        using var held = await FileLock.AcquireAsync(cache.LockPath(meta.ETag), cancellation).ConfigureAwait(false);
        if (File.Exists(blob))
        {
            if (HubCache.Holds(blob, meta.ETag, meta.Size)) return; // fetched by another process while we waited
            File.Delete(blob); // damaged: fetch it again
        }
        string incomplete = blob + ".incomplete";
        NBertLogging.Info("NBert.Hub", $"Downloading {cache.Repo}: {file} ({(meta.Size is long total ? Bytes(total) : "size not announced")}) from {meta.Location.GetLeftPart(UriPartial.Authority)}");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                await FetchBytesAsync(cache.Repo, file, meta, incomplete, cancellation).ConfigureAwait(false);
            }
            catch (HubProtocol.OversizeException e)
            {
                // Not retried: a server that sends more than it said would only do it again.
                File.Delete(incomplete);
                throw new HubException(meta.Size is null ? HubError.TooLarge : HubError.Corrupt, meta.Size is long announced
                    ? $"{cache.Repo}: {file}: the server sent more than the {Count(announced)} bytes it announced; the download was stopped there and nothing was kept."
                    : $"{cache.Repo}: {file}: the server announced no size and sent more than the {Count(Settings.MaxFileSize)} bytes a file may have " +
                      "(HubSettings.MaxFileSize); the download was stopped there and nothing was kept.", e);
            }
            if (HubCache.Holds(incomplete, meta.ETag, meta.Size)) break;
            long got = new FileInfo(incomplete).Length;
            File.Delete(incomplete);
            if (attempt == 2)
                throw new HubException(HubError.Corrupt, $"{cache.Repo}: {file} came with {got} bytes that do not match the Hub's " +
                    $"{(meta.Size is long s ? $"size ({s} bytes) " : "")}{(HubCache.IsSha256(meta.ETag) ? $"or SHA-256 ({meta.ETag}) " : HubCache.IsGitBlobId(meta.ETag) ? $"or git blob SHA-1 ({meta.ETag}) " : "")}twice; nothing was kept.");
        }
        File.Move(incomplete, blob, overwrite: true);
        NBertLogging.Info("NBert.Hub", $"Downloaded {cache.Repo}: {file} ({Bytes(new FileInfo(blob).Length)} in {clock.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s) to {blob}");
        HubCache.Remember(blob, meta.ETag); // checked just above as the .incomplete file: a waiter or a later load need not hash it again
        Progress?.Report(new HubDownloadProgress(cache.Repo, file, new FileInfo(blob).Length, meta.Size, Completed: true));
    }

    /// <summary>GETs the bytes missing from <paramref name="path"/>, resuming after a cut connection or a stall.</summary>
    private async Task FetchBytesAsync(string repo, string file, FileMetadata meta, string path, CancellationToken cancellation)
    {
        long lastReport = 0;
        void Received(long bytes)
        {
            long now = Environment.TickCount64;
            if (Progress is null || now - lastReport < 100) return;
            lastReport = now;
            Progress.Report(new HubDownloadProgress(repo, file, bytes, meta.Size, Completed: false));
        }
        for (int cuts = 0; ; cuts++)
        {
            long offset = File.Exists(path) ? new FileInfo(path).Length : 0;
            // All there: the check decides. An empty file is fetched all the same, so that it exists.
            if (meta.Size is long size && offset >= size && File.Exists(path)) return;
            try
            {
                await _protocol.GetAsync(meta.Location, path, offset, meta.Size ?? Settings.MaxFileSize, Received, cancellation).ConfigureAwait(false);
                if (meta.Size is long expected && new FileInfo(path).Length < expected)
                    throw new IOException($"{meta.Location}: the response ended after {new FileInfo(path).Length} of {expected} bytes.");
                return;
            }
            catch (Exception e) when (e is IOException or HubException { Error: HubError.Unreachable } && !cancellation.IsCancellationRequested)
            {
                if (cuts == MaxResumes)
                    throw new HubException(HubError.Unreachable, $"{repo}: the download of {file} was cut off {cuts + 1} times ({e.Message}); run again to resume it.", e);
                await Task.Delay(TimeSpan.FromMilliseconds(250 << cuts), cancellation).ConfigureAwait(false);
            }
        }
    }

    private static string Bytes(long n) => string.Create(CultureInfo.InvariantCulture, $"{n:N0} bytes");

    /// <summary>A number with thousands separators, whatever the culture: messages read the same everywhere.</summary>
    private static string Count(long n) => n.ToString("N0", CultureInfo.InvariantCulture);

    private HubException Missing(string repo, string commit, string file) =>
        new(HubError.EntryNotFound, $"{repo}@{commit}: no file '{file}' in the repository (as the cache remembers).");

    /// <summary>The shard files a sharded checkpoint's index names (its <c>weight_map</c> values).</summary>
    private static IEnumerable<string> Shards(string repo, string index, string path)
    {
        List<string> shards;
        try
        {
            // The same reading as loading the checkpoint (IO.ShardedTensorSource): every value a string, UTF-8, no key twice.
            shards = IO.ShardedTensorSource.ReadWeightMap(path).Select(p => p.File).Distinct().ToList();
        }
        catch (NBertException e)
        {
            throw new HubException(HubError.Protocol, $"{repo}: {index} is not a sharded checkpoint index: {e.Message}", e);
        }
        // A shard lies beside its index (as IO.ShardedTensorSource loads it): no folders, nothing outside.
        static bool Beside(string shard) => RepoId.IsSafeFileName(shard) && !shard.Contains('/');
        return shards.All(Beside) ? shards
            : throw new HubException(HubError.Protocol, $"{repo}: {index} names a shard that is not beside it ({NBertException.Quote(shards.First(s => !Beside(s)))}).");
    }

    private static string CheckRepo(string repo) =>
        RepoId.IsValid(repo) ? repo : throw new ArgumentException($"'{repo}' is not a Hub repository id (org/name or name).", nameof(repo));

    private static string CheckRevision(string? revision) =>
        revision is null ? RepoId.DefaultRevision
        : RepoId.IsValidRevision(revision) ? revision : throw new ArgumentException($"'{revision}' is not a revision (branch, tag or commit).", nameof(revision));

    private static string CheckFile(string file) =>
        RepoId.IsSafeFileName(file) ? file : throw new ArgumentException($"'{file}' is not a file name inside a repository.", nameof(file));

    /// <summary>Disposes the client's <see cref="HttpClient"/> (and with it a handler given to the constructor). Files
    /// already in the cache stay there.</summary>
    public void Dispose() => _http.Dispose();
}
