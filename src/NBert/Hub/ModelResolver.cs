using NBert.IO;

namespace NBert.Hub;

/// <summary>
/// The one place where a model's name becomes a local directory, for every loader and command: an existing
/// directory is used as it is; a built-in name (<see cref="BuiltinModels"/>) is converted once into the cache;
/// anything else is an error that lists the built-in names.
/// </summary>
public static class ModelResolver
{
    /// <summary>The local directory holding <paramref name="nameOrPath"/>'s files.</summary>
    /// <exception cref="NBertException">The name is neither a directory nor a model NBert knows.</exception>
    public static string Resolve(string nameOrPath)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(nameOrPath);
        if (Directory.Exists(nameOrPath)) return nameOrPath;
        if (BuiltinModels.IsBuiltin(nameOrPath)) return BuiltinModels.Resolve(nameOrPath);
        throw new NBertException($"Model '{nameOrPath}' is not a directory and not a built-in model ({string.Join(", ", BuiltinModels.Names)}).");
    }

    /// <summary>The name a model goes by in metadata: a built-in's Hub id (sentence-transformers/all-MiniLM-L6-v2),
    /// a directory's own name, or the name as given.</summary>
    public static string ModelId(string nameOrPath)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(nameOrPath);
        if (Directory.Exists(nameOrPath)) return Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(nameOrPath)));
        return BuiltinModels.IsBuiltin(nameOrPath) ? BuiltinModels.MiniLmHubId : nameOrPath;
    }
}
