using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace NBert.Hub;

/// <summary>
/// One repository's folder in the cache huggingface_hub and transformers use, in their exact layout:
/// <code>
/// {cache}/models--{org}--{name}/
///   blobs/{etag}                     each file's bytes once, named by its ETag (SHA-256 for LFS files, else git blob SHA-1)
///   snapshots/{commit}/{file}        relative symbolic links to the blobs (copies where links fail)
///   refs/{revision}                  the commit a branch or tag pointed to when last seen
///   .no_exist/{commit}/{file}        empty markers: the file is not in that commit
/// {cache}/.locks/models--{org}--{name}/{etag}.lock
/// </code>
/// </summary>
public sealed partial class HubCache
{
    /// <summary>The cache root (<see cref="HubSettings.CacheDirectory"/>).</summary>
    public string Root { get; }

    /// <summary>The repository id, <c>org/name</c> or <c>name</c>.</summary>
    public string Repo { get; }

    /// <summary><c>{root}/models--{org}--{name}</c>.</summary>
    public string RepoFolder { get; }

    /// <summary>Whether snapshot files are symbolic links; false makes them copies (the fallback where links fail,
    /// and a way to test it).</summary>
    internal bool UseSymlinks { get; init; } = true;

    /// <summary>The cache of one model repository under <paramref name="root"/>.</summary>
    public HubCache(string root, string repo, string repoType = "model")
    {
        Root = root;
        Repo = repo;
        RepoFolder = Path.Combine(root, FolderName(repo, repoType));
    }

    /// <summary>huggingface_hub's folder name: <c>models--org--name</c>.</summary>
    public static string FolderName(string repo, string repoType = "model") => $"{repoType}s--{repo.Replace("/", "--")}";

    /// <summary>Whether <paramref name="revision"/> is a full commit hash (40 lowercase hex digits).</summary>
    public static bool IsCommit(string revision) => CommitPattern().IsMatch(revision);

    /// <summary>Where a blob with this ETag lives.</summary>
    public string BlobPath(string etag) => Path.Combine(RepoFolder, "blobs", etag);

    /// <summary>Where a file of a commit's snapshot lives.</summary>
    public string SnapshotPath(string commit, string file) => Path.Combine(RepoFolder, "snapshots", commit, Local(file));

    /// <summary>The snapshot directory of a commit.</summary>
    public string SnapshotDirectory(string commit) => Path.Combine(RepoFolder, "snapshots", commit);

    private string NoExistPath(string commit, string file) => Path.Combine(RepoFolder, ".no_exist", commit, Local(file));

    private string RefPath(string revision) => Path.Combine(RepoFolder, "refs", Local(revision));

    internal string LockPath(string etag) => Path.Combine(Root, ".locks", Path.GetFileName(RepoFolder), etag + ".lock");

    private static string Local(string relative) => relative.Replace('/', Path.DirectorySeparatorChar);

    /// <summary>The commit <paramref name="revision"/> names in the cache: itself for a commit hash, else what
    /// <c>refs/{revision}</c> holds; null when the cache does not know it.</summary>
    public string? CommitFor(string revision)
    {
        if (IsCommit(revision)) return revision;
        string path = RefPath(revision);
        if (!File.Exists(path)) return null;
        // Anything but a commit hash (a damaged ref, or "../x") would put snapshot paths outside the cache: not known.
        string commit = File.ReadAllText(path).Trim();
        return IsCommit(commit) ? commit : null;
    }

    /// <summary>Records that <paramref name="revision"/> now points at <paramref name="commit"/> (nothing for a commit hash).</summary>
    internal void WriteRef(string revision, string commit)
    {
        if (revision == commit || CommitFor(revision) == commit) return;
        string path = RefPath(revision);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        NBert.AtomicFile.WriteAllText(path, commit); // no newline: huggingface_hub reads the file as it is
    }

    /// <summary>Whether the cache remembers that <paramref name="file"/> is not in <paramref name="commit"/>.</summary>
    public bool IsKnownMissing(string commit, string file) => File.Exists(NoExistPath(commit, file));

    internal void MarkMissing(string commit, string file)
    {
        string path = NoExistPath(commit, file);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using (File.Open(path, FileMode.OpenOrCreate)) { }
    }

    /// <summary>Points <c>snapshots/{commit}/{file}</c> at the blob: a relative symbolic link as huggingface_hub
    /// makes (the cache folder can then be moved), or a copy where links cannot be made. The link is made under a
    /// temporary name and renamed over the old one, so a reader never sees a missing or half-made file.</summary>
    internal void Link(string commit, string file, string etag)
    {
        string pointer = SnapshotPath(commit, file), blob = BlobPath(etag);
        string directory = Path.GetDirectoryName(pointer)!;
        Directory.CreateDirectory(directory);
        string temp = Path.Combine(directory, $".{Path.GetFileName(pointer)}.{Guid.NewGuid():N}.tmp");
        try
        {
            if (!UseSymlinks || !TryCreateSymlink(temp, Path.GetRelativePath(directory, blob))) File.Copy(blob, temp);
            File.Move(temp, pointer, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp) || IsSymlink(temp)) File.Delete(temp);
        }
    }

    private static bool TryCreateSymlink(string path, string target)
    {
        try
        {
            File.CreateSymbolicLink(path, target);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            return false; // Windows without developer mode, or a file system without links: copy instead
        }
    }

    private static bool IsSymlink(string path) => new FileInfo(path) is { LinkTarget: not null };

    /// <summary>The blob a snapshot file is a link to, or null for a copy (or a link out of the cache).</summary>
    internal string? LinkedBlob(string pointer)
    {
        string? target = new FileInfo(pointer).LinkTarget;
        if (target is null) return null;
        string full = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(pointer)!, target));
        return Path.GetDirectoryName(full) == Path.GetFullPath(Path.Combine(RepoFolder, "blobs")) ? full : null;
    }

    /// <summary>
    /// Whether a cached file holds what its name promises (<see cref="Problem"/> finds nothing wrong).
    /// </summary>
    internal static bool Holds(string path, string? etag, long? expectedSize) => Problem(path, etag, expectedSize) is null;

    /// <summary>
    /// What is wrong with a cached file, or null when it holds what its name promises: the file (or the blob a link
    /// points to) must exist, have <paramref name="expectedSize"/> bytes when that is known, and hash to
    /// <paramref name="etag"/>: the SHA-256 of its bytes for an LFS file (a 64-digit ETag), the git blob SHA-1
    /// (<c>"blob {length}\0"</c> then the bytes) for any other file (a 40-digit ETag). The ETag is the blob's name,
    /// so a link into <c>blobs/</c> can be checked offline; a copy can be checked only against an ETag the Hub just
    /// gave. A check is remembered for the process while the file's length and time stamp stay the same, so a model's
    /// tokenizer and weights resolving the same name hash once.
    /// </summary>
    internal static string? Problem(string path, string? etag, long? expectedSize)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget is not null) info = (FileInfo?)info.ResolveLinkTarget(returnFinalTarget: true) ?? info;
        if (!info.Exists) return $"{info.FullName} is missing";
        if (expectedSize is long size && info.Length != size) return string.Create(System.Globalization.CultureInfo.InvariantCulture, $"it has {info.Length:N0} bytes, not the {size:N0} the Hub gave");
        if (etag is null) return null;
        bool lfs = IsSha256(etag);
        if (!lfs && !IsGitBlobId(etag)) return null; // an ETag that is no hash (another server's) names the file, nothing more
        var key = (info.FullName, info.Length, info.LastWriteTimeUtc, lfs);
        if (!Verified.TryGetValue(key, out string? hash))
        {
            using var stream = new FileStream(info.FullName, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
            hash = lfs ? Convert.ToHexStringLower(SHA256.HashData(stream)) : GitBlobId(stream, info.Length);
            Verified[key] = hash;
        }
        return hash == etag ? null : lfs ? $"its SHA-256 is {hash}, not the {etag} it is named by"
            : $"its git blob SHA-1 is {hash}, not the {etag} it is named by";
    }

    /// <summary>The git blob id of a file: the SHA-1 of <c>"blob {length}\0"</c> and its bytes, what git (and so the
    /// Hub's ETag of a file not in LFS) names it by.</summary>
    internal static string GitBlobId(Stream content, long length)
    {
        // SHA-1 is what git names blobs by; it checks the file against that name, not for security.
        using var sha1 = IncrementalHash.CreateHash(HashAlgorithmName.SHA1);
        sha1.AppendData(System.Text.Encoding.ASCII.GetBytes($"blob {length.ToString(System.Globalization.CultureInfo.InvariantCulture)}\0"));
        byte[] buffer = new byte[1 << 16];
        for (int n; (n = content.Read(buffer)) > 0;) sha1.AppendData(buffer, 0, n);
        return Convert.ToHexStringLower(sha1.GetHashAndReset());
    }

    /// <summary>Records that the file at <paramref name="path"/> was just checked against <paramref name="etag"/> under
    /// another name (its <c>.incomplete</c> download, renamed): <see cref="Holds"/> need not hash it again.</summary>
    internal static void Remember(string path, string etag)
    {
        var info = new FileInfo(path);
        if (info.Exists && (IsSha256(etag) || IsGitBlobId(etag))) Verified[(info.FullName, info.Length, info.LastWriteTimeUtc, IsSha256(etag))] = etag;
    }

    /// <summary>Whether an ETag is a git blob id (40 hexadecimal digits): the Hub's ETag of a file not in LFS.</summary>
    internal static bool IsGitBlobId(string etag) => CommitPattern().IsMatch(etag);

    /// <summary>Whether an ETag is an LFS object id (a SHA-256 of the content), rather than a git blob id.</summary>
    internal static bool IsSha256(string etag) => Sha256Pattern().IsMatch(etag);

    private static readonly ConcurrentDictionary<(string, long, DateTime, bool), string> Verified = new();

    [GeneratedRegex("^[0-9a-f]{40}$")]
    private static partial Regex CommitPattern();

    [GeneratedRegex("^[0-9a-f]{64}$")]
    private static partial Regex Sha256Pattern();
}
