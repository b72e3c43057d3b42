namespace NBert.Hub;

/// <summary>
/// A model's name resolved once to the local directory that holds its files (<see cref="ModelResolver.ResolveModel"/>),
/// with where they came from. Every loader and pipeline takes one, so that a program (or a command of <c>nbert</c>)
/// resolves a name once, with its own Hub settings and progress, and loads the tokenizer and the model from the same
/// files without resolving again.
/// </summary>
public sealed record ResolvedModel
{
    /// <summary>The name or path as it was given (<c>minilm</c>, <c>org/name@v1</c>, <c>models/mine</c>).</summary>
    public required string Name { get; init; }

    /// <summary>The local directory holding the files: the directory given, a built-in's converted copy, or a Hub
    /// snapshot in the Hub cache.</summary>
    public required string Directory { get; init; }

    /// <summary>The Hugging Face Hub repository the files are from (a built-in's original repository too); null for a
    /// local directory.</summary>
    public string? Repo { get; init; }

    /// <summary>The revision asked for on the Hub (<c>main</c> by default); null when not from the Hub.</summary>
    public string? Revision { get; init; }

    /// <summary>The commit the Hub snapshot is at; null when not from the Hub.</summary>
    public string? Commit { get; init; }

    /// <summary>True when only the tokenizer's files (and config.json) were fetched, as
    /// <see cref="ModelResolver.ResolveTokenizerModel"/> does: the weights may be missing.</summary>
    public bool TokenizerOnly { get; init; }

    /// <summary>The name the model goes by in metadata (the model id of its embeddings, the server's <c>/info</c>): the
    /// Hub repository when there is one, else the directory's own name.</summary>
    public string ModelId => Repo ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(Directory)));

    /// <summary>A local directory as a resolved model: no resolver runs (the directory must exist).</summary>
    /// <exception cref="MissingFileException">There is no such directory.</exception>
    public static ResolvedModel FromDirectory(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        if (!System.IO.Directory.Exists(directory)) throw new MissingFileException($"Model directory '{directory}' does not exist.", directory);
        return new ResolvedModel { Name = directory, Directory = directory };
    }
}
