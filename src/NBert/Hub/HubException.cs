namespace NBert.Hub;

/// <summary>What went wrong with the Hub or its cache, as huggingface_hub distinguishes it.</summary>
public enum HubError
{
    /// <summary>No such repository, or a private one without a token that may read it (<c>RepoNotFound</c>, 401).</summary>
    RepositoryNotFound,
    /// <summary>No such branch, tag or commit (<c>RevisionNotFound</c>).</summary>
    RevisionNotFound,
    /// <summary>The repository has no such file (<c>EntryNotFound</c>).</summary>
    EntryNotFound,
    /// <summary>The repository is gated: its conditions must be accepted on the Hub (<c>GatedRepo</c>).</summary>
    Gated,
    /// <summary>The token was refused, or does not give access (403).</summary>
    Forbidden,
    /// <summary>The Hub could not be reached or answered with a server error, and the cache cannot stand in.</summary>
    Unreachable,
    /// <summary>Offline (<c>HF_HUB_OFFLINE</c>) and the file is not in the cache.</summary>
    NotInCache,
    /// <summary>A download or a cached file does not have the size or hash the Hub gave (SHA-256 for LFS files, the git
    /// blob SHA-1 for the others), or a server sent more bytes than it announced.</summary>
    Corrupt,
    /// <summary>The server's answer lacks what the protocol needs (commit, ETag), or redirects to an address that is not
    /// http(s).</summary>
    Protocol,
    /// <summary>A file is larger than <see cref="HubSettings.MaxFileSize"/>.</summary>
    TooLarge,
}

/// <summary>A Hub download or cache lookup that failed; the message says what to do.</summary>
public sealed class HubException(HubError error, string message, Exception? inner = null) : NBertException(message, inner)
{
    /// <summary>Which kind of failure this is.</summary>
    public HubError Error { get; } = error;

    /// <summary>The commit the server named in its answer (X-Repo-Commit), when it did: an EntryNotFound for a
    /// known commit is remembered in <c>.no_exist</c>.</summary>
    internal string? Commit { get; init; }
}
