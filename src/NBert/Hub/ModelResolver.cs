using NBert.IO;

namespace NBert.Hub;

/// <summary>
/// The one place where a model's name becomes a local directory, for every loader and command, in this order:
/// an existing directory is used as it is; a built-in name (<see cref="BuiltinModels"/>) is converted once into
/// NBert's cache; anything else of the form <c>name</c> or <c>org/name</c>, with an optional <c>@revision</c>
/// (branch, tag or commit; main by default), is a Hugging Face Hub repository, resolved to its snapshot directory in
/// the Hub cache and downloaded when needed (<see cref="HubClient.DownloadModelAsync"/>).
/// </summary>
public static class ModelResolver
{
    /// <summary>The local directory holding <paramref name="nameOrPath"/>'s files, with the Hub settings of the environment.</summary>
    /// <exception cref="NBertException">The name is neither a directory, nor a built-in model, nor a Hub repository
    /// that can be read (a <see cref="HubException"/> says why: not found, private, offline and not cached, ...).</exception>
    public static string Resolve(string nameOrPath) => Resolve(nameOrPath, null);

    /// <summary>The local directory holding <paramref name="nameOrPath"/>'s files, using <paramref name="hub"/> (by
    /// default <see cref="HubSettings.FromEnvironment()"/>) for Hub names and telling <paramref name="progress"/> how
    /// downloads go.</summary>
    /// <exception cref="NBertException">As <see cref="Resolve(string)"/>.</exception>
    public static string Resolve(string nameOrPath, HubSettings? hub, IProgress<HubDownloadProgress>? progress = null, CancellationToken cancellation = default)
        => ResolveModel(nameOrPath, hub, progress, cancellation).Directory;

    /// <summary>
    /// The local directory holding <paramref name="nameOrPath"/>'s tokenizer: as <see cref="Resolve(string)"/>, but a Hub
    /// repository is fetched without its weights (config.json and the tokenizer files only), as transformers'
    /// <c>AutoTokenizer.from_pretrained</c> does, so a tokenizer-only repository loads too.
    /// </summary>
    /// <exception cref="NBertException">As <see cref="Resolve(string)"/>.</exception>
    public static string ResolveTokenizer(string nameOrPath, HubSettings? hub = null)
        => ResolveTokenizerModel(nameOrPath, hub).Directory;

    /// <summary>As <see cref="Resolve(string, HubSettings?, IProgress{HubDownloadProgress}?, CancellationToken)"/>, without blocking on a download.</summary>
    public static async Task<string> ResolveAsync(string nameOrPath, HubSettings? hub = null, IProgress<HubDownloadProgress>? progress = null, CancellationToken cancellation = default) =>
        (await ResolveModelAsync(nameOrPath, hub, progress, cancellation, tokenizerOnly: false).ConfigureAwait(false)).Directory;

    /// <summary>
    /// <paramref name="nameOrPath"/> resolved once, as <see cref="Resolve(string, HubSettings?, IProgress{HubDownloadProgress}?, CancellationToken)"/>
    /// does, with where its files came from; the loaders and pipelines take the result without resolving again.
    /// </summary>
    /// <exception cref="NBertException">As <see cref="Resolve(string)"/>.</exception>
    public static ResolvedModel ResolveModel(string nameOrPath, HubSettings? hub = null, IProgress<HubDownloadProgress>? progress = null, CancellationToken cancellation = default)
        // A directory or built-in completes at once; blocking on a download is safe: the client never resumes on a captured context.
        => ResolveModelAsync(nameOrPath, hub, progress, cancellation, tokenizerOnly: false).GetAwaiter().GetResult();

    /// <summary>As <see cref="ResolveModel"/>, but a Hub repository is fetched without its weights (config.json and the
    /// tokenizer files only), for a program that needs only the tokenizer.</summary>
    /// <exception cref="NBertException">As <see cref="Resolve(string)"/>.</exception>
    public static ResolvedModel ResolveTokenizerModel(string nameOrPath, HubSettings? hub = null, IProgress<HubDownloadProgress>? progress = null, CancellationToken cancellation = default)
        => ResolveModelAsync(nameOrPath, hub, progress, cancellation, tokenizerOnly: true).GetAwaiter().GetResult();

    /// <summary>How many names this thread's logical flow has resolved since the counter was set (tests count the
    /// resolutions of one command with it).</summary>
    internal static readonly AsyncLocal<System.Runtime.CompilerServices.StrongBox<int>?> Counter = new();

    private static async Task<ResolvedModel> ResolveModelAsync(string nameOrPath, HubSettings? hub, IProgress<HubDownloadProgress>? progress, CancellationToken cancellation, bool tokenizerOnly)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(nameOrPath);
        if (Counter.Value is { } counter) counter.Value++;
        if (Directory.Exists(nameOrPath)) return new ResolvedModel { Name = nameOrPath, Directory = nameOrPath };
        if (BuiltinModels.Find(nameOrPath) is { } builtin)
            return new ResolvedModel { Name = nameOrPath, Directory = BuiltinModels.Prepare(builtin), Repo = builtin.HubId };
        string notLocal = $"Model '{nameOrPath}' is not a directory and not a built-in model ({string.Join(", ", BuiltinModels.Names)})";
        if (!RepoId.TryParse(nameOrPath, out string? repo, out string? revision))
            throw new NBertException($"{notLocal}, nor a Hugging Face Hub name (org/name or name, optionally @revision).");
        using var client = new HubClient(hub ?? HubSettings.FromEnvironment()) { Progress = progress };
        try
        {
            var snapshot = tokenizerOnly
                ? await client.DownloadTokenizerAsync(repo, revision, cancellation).ConfigureAwait(false)
                : await client.DownloadModelAsync(repo, revision, cancellation).ConfigureAwait(false);
            return new ResolvedModel
            {
                Name = nameOrPath, Directory = snapshot.Directory, Repo = snapshot.Repo, Revision = snapshot.Revision, Commit = snapshot.Commit,
                TokenizerOnly = tokenizerOnly,
            };
        }
        catch (HubException e) when (e.Error is HubError.RepositoryNotFound or HubError.NotInCache or HubError.Unreachable)
        {
            // The name may have been meant as a path: say that it is not one, too.
            throw new HubException(e.Error, $"{notLocal}; as a Hub name: {e.Message}", e);
        }
    }

    /// <summary>The name a model goes by in metadata: a built-in's Hub id (sentence-transformers/all-MiniLM-L6-v2,
    /// Snowflake/snowflake-arctic-embed-xs),
    /// a directory's own name, or the name as given.</summary>
    public static string ModelId(string nameOrPath)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(nameOrPath);
        if (Directory.Exists(nameOrPath)) return Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(nameOrPath)));
        return BuiltinModels.Find(nameOrPath)?.HubId ?? nameOrPath;
    }
}
