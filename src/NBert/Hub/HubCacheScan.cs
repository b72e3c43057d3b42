namespace NBert.Hub;

/// <summary>One commit held in the cache.</summary>
/// <param name="Commit">The commit hash (the snapshot folder's name).</param>
/// <param name="Refs">The branches and tags that point at it.</param>
/// <param name="Files">How many files its snapshot holds.</param>
/// <param name="Size">The bytes of those files.</param>
/// <param name="Path">The snapshot folder.</param>
public sealed record CachedRevision(string Commit, IReadOnlyList<string> Refs, int Files, long Size, string Path);

/// <summary>One repository held in the cache, as huggingface_hub's <c>scan_cache_dir</c> reports it.</summary>
/// <param name="Type">model, dataset or space.</param>
/// <param name="Repo">The repository id.</param>
/// <param name="Path">Its folder, <c>models--org--name</c>.</param>
/// <param name="SizeOnDisk">The bytes of its distinct files (a blob shared by several commits counts once).</param>
/// <param name="Files">How many distinct files.</param>
/// <param name="LastModified">When a file of it was last written.</param>
/// <param name="Revisions">Its commits.</param>
public sealed record CachedRepo(string Type, string Repo, string Path, long SizeOnDisk, int Files, DateTime LastModified, IReadOnlyList<CachedRevision> Revisions);

/// <summary>What a Hub cache holds, and removing repositories or commits from it (huggingface_hub's
/// <c>scan-cache</c> and <c>delete-cache</c>). Works on caches written by Python and by NBert alike.</summary>
public static class HubCacheScan
{
    private static readonly string[] Types = ["model", "dataset", "space"];

    /// <summary>The repositories under <paramref name="root"/>, by type and id; an empty list when there is no cache.</summary>
    public static IReadOnlyList<CachedRepo> Scan(string root)
    {
        if (!Directory.Exists(root)) return [];
        var repos = new List<CachedRepo>();
        foreach (string folder in Directory.EnumerateDirectories(root))
        {
            string name = Path.GetFileName(folder);
            int split = name.IndexOf("--", StringComparison.Ordinal);
            string? type = split < 0 ? null : Types.FirstOrDefault(t => t + "s" == name[..split]);
            if (type is not null) repos.Add(Describe(type, name[(split + 2)..].Replace("--", "/"), folder));
        }
        return [.. repos.OrderBy(r => r.Type).ThenBy(r => r.Repo, StringComparer.OrdinalIgnoreCase)];
    }

    /// <summary>
    /// Removes a repository from the cache, or with <paramref name="revision"/> (a commit, branch or tag) only that
    /// commit: its snapshot, the refs that point at it, its <c>.no_exist</c> markers and the blobs no other commit
    /// uses. Removing the last commit removes the repository. Returns the bytes freed.
    /// </summary>
    /// <exception cref="NBertException">The cache holds no such repository or revision.</exception>
    public static long Remove(string root, string repo, string? revision = null, string type = "model")
    {
        if (!RepoId.IsValid(repo)) throw new ArgumentException($"'{repo}' is not a Hub repository id.", nameof(repo));
        if (Array.IndexOf(Types, type) < 0) throw new ArgumentException($"'{type}' is not one of {string.Join(", ", Types)}.", nameof(type));
        if (revision is not null && !RepoId.IsValidRevision(revision)) throw new ArgumentException($"'{revision}' is not a revision name.", nameof(revision));
        var cache = new HubCache(root, repo, type);
        if (!Directory.Exists(cache.RepoFolder)) throw new NBertException($"The cache {root} holds no {type} '{repo}'.");
        var before = Describe(type, repo, cache.RepoFolder);
        if (revision is not null)
        {
            string commit = cache.CommitFor(revision) is { } c && Directory.Exists(cache.SnapshotDirectory(c)) ? c
                : throw new NBertException($"The cache holds no revision '{revision}' of {repo} (it has {string.Join(", ", before.Revisions.Select(r => r.Commit))}).");
            if (before.Revisions.Count > 1)
            {
                var keep = before.Revisions.Where(r => r.Commit != commit).SelectMany(r => Files(r.Path)).Select(Resolved).ToHashSet();
                long freed = 0;
                string blobs = Path.GetFullPath(Path.Combine(cache.RepoFolder, "blobs")) + Path.DirectorySeparatorChar;
                foreach (string file in Files(cache.SnapshotDirectory(commit)).Select(Resolved).Distinct().Where(f => !keep.Contains(f)))
                {
                    if (!File.Exists(file)) continue; // a link whose blob is gone: nothing to free, and the snapshot goes below
                    freed += new FileInfo(file).Length;
                    if (file.StartsWith(blobs, StringComparison.Ordinal)) File.Delete(file); // copies go with their snapshot
                }
                Directory.Delete(cache.SnapshotDirectory(commit), recursive: true);
                string noExist = Path.Combine(cache.RepoFolder, ".no_exist", commit);
                if (Directory.Exists(noExist)) Directory.Delete(noExist, recursive: true);
                foreach (var stale in Refs(cache.RepoFolder).Where(r => r.Commit == commit).ToList()) File.Delete(stale.Path);
                return freed;
            }
        }
        Directory.Delete(cache.RepoFolder, recursive: true); // links are removed, never followed
        string locks = Path.Combine(root, ".locks", Path.GetFileName(cache.RepoFolder));
        if (Directory.Exists(locks)) Directory.Delete(locks, recursive: true);
        return before.SizeOnDisk;
    }

    private static CachedRepo Describe(string type, string repo, string folder)
    {
        var refs = Refs(folder).ToList();
        var revisions = new List<CachedRevision>();
        var distinct = new Dictionary<string, long>();
        DateTime last = Directory.GetLastWriteTimeUtc(folder);
        string snapshots = Path.Combine(folder, "snapshots");
        if (Directory.Exists(snapshots))
            foreach (string snapshot in Directory.EnumerateDirectories(snapshots).Order(StringComparer.Ordinal))
            {
                long size = 0;
                int count = 0;
                foreach (string file in Files(snapshot))
                {
                    var info = new FileInfo(Resolved(file));
                    if (!info.Exists) continue; // a link to a blob that is gone
                    size += info.Length;
                    count++;
                    distinct[info.FullName] = info.Length;
                    if (info.LastWriteTimeUtc > last) last = info.LastWriteTimeUtc;
                }
                string commit = Path.GetFileName(snapshot);
                revisions.Add(new CachedRevision(commit, [.. refs.Where(r => r.Commit == commit).Select(r => r.Name)], count, size, snapshot));
            }
        return new CachedRepo(type, repo, folder, distinct.Values.Sum(), distinct.Count, last, revisions);
    }

    private static IEnumerable<(string Name, string Commit, string Path)> Refs(string folder)
    {
        string refs = Path.Combine(folder, "refs");
        if (!Directory.Exists(refs)) yield break;
        foreach (string path in Directory.EnumerateFiles(refs, "*", SearchOption.AllDirectories))
            if (!Path.GetFileName(path).EndsWith(".tmp", StringComparison.Ordinal))
                yield return (Path.GetRelativePath(refs, path).Replace(Path.DirectorySeparatorChar, '/'), File.ReadAllText(path).Trim(), path);
    }

    private static IEnumerable<string> Files(string snapshot) =>
        Directory.EnumerateFiles(snapshot, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 });

    /// <summary>The file a snapshot entry stands for: the blob a link points to, or the entry itself.</summary>
    private static string Resolved(string file) =>
        Path.GetFullPath(new FileInfo(file).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? file);
}
