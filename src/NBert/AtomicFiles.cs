using System.Text;

namespace NBert;

/// <summary>Writes a file under a temporary name in the same directory, then renames it over the target,
/// so a crash never leaves a half-written file where a good one was.</summary>
public static class AtomicFile
{
    /// <summary>Writes <paramref name="path"/> through <paramref name="write"/>: the stream is a new file named
    /// <c>{path}.{process id}.{guid}.tmp</c>, flushed to disk and then renamed over <paramref name="path"/> (replacing it).
    /// If <paramref name="write"/> throws, the temporary file is deleted, the exception propagates and
    /// <paramref name="path"/> is left as it was.</summary>
    public static void Write(string path, Action<Stream> write)
    {
        string full = System.IO.Path.GetFullPath(path);
        string temp = $"{full}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>Writes <paramref name="text"/> as UTF-8 (no byte order mark) the same way as <see cref="Write"/>.</summary>
    public static void WriteAllText(string path, string text) =>
        Write(path, s => s.Write(Encoding.UTF8.GetBytes(text)));
}

/// <summary>
/// Files written into one directory as a unit: each goes to a temporary name beside its target, and
/// <see cref="Commit"/> renames them all into place once every one was written. Disposing without a commit
/// deletes what was written, and the directory itself (with any parents) when this created it, so a
/// failure part way never leaves a half-written model (a config.json without its weights) behind.
/// </summary>
public sealed class StagedFiles : IDisposable
{
    private readonly List<(string Temp, string Target)> _files = new();
    private readonly List<string> _createdDirectories = new();
    private bool _committed;

    /// <summary>The directory the files go to (created now when missing).</summary>
    public string Directory { get; }

    /// <summary>Stages files for <paramref name="directory"/>, creating it (and any missing parents) now; what this
    /// created is removed again by <see cref="Dispose"/> when nothing was committed.</summary>
    public StagedFiles(string directory)
    {
        Directory = Path.GetFullPath(directory);
        for (var d = new DirectoryInfo(Directory); d is not null && !d.Exists; d = d.Parent) _createdDirectories.Add(d.FullName);
        System.IO.Directory.CreateDirectory(Directory);
    }

    /// <summary>Writes <paramref name="name"/> (a file name inside <see cref="Directory"/>, or a relative path of plain
    /// folder names such as <c>1_Pooling/config.json</c>) under a temporary name.</summary>
    public void Write(string name, Action<Stream> write)
    {
        ObjectDisposedException.ThrowIf(_committed, this);
        var parts = name.Split('/');
        if (name.Length == 0 || parts.Any(p => p.Length == 0 || p is "." or ".." || Path.GetFileName(p) != p))
            throw new ArgumentException($"'{name}' is not a file name or a relative path of plain names.", nameof(name));
        string target = Path.Combine([Directory, .. parts]);
        for (var d = new DirectoryInfo(Path.GetDirectoryName(target)!); d.FullName != Directory && !d.Exists; d = d.Parent!) _createdDirectories.Add(d.FullName);
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        if (_files.Any(f => f.Target == target)) throw new ArgumentException($"'{name}' is written twice.", nameof(name));
        string temp = $"{target}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        _files.Add((temp, target));
        using var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16);
        write(stream);
        stream.Flush(flushToDisk: true);
    }

    /// <summary>Writes a text file (UTF-8, no byte order mark).</summary>
    public void WriteAllText(string name, string text) => Write(name, s => s.Write(Encoding.UTF8.GetBytes(text)));

    /// <summary>Copies <paramref name="source"/> in as <paramref name="name"/>.</summary>
    public void Copy(string name, string source) => Write(name, s =>
    {
        using var from = File.OpenRead(source);
        from.CopyTo(s);
    });

    /// <summary>Whether <paramref name="name"/> has been written (staged) into this set.</summary>
    public bool Contains(string name) => _files.Any(f => f.Target == Path.GetFullPath(Path.Combine(Directory, name)));

    /// <summary>Deletes <paramref name="name"/> from the directory when the set is committed, unless it is written
    /// into the set: an old file of that name would otherwise be read beside the new ones (a stale tokenizer.json,
    /// which loaders prefer to vocab.txt).</summary>
    public void RemoveOnCommit(string name)
    {
        ObjectDisposedException.ThrowIf(_committed, this);
        _removals.Add(Path.GetFullPath(Path.Combine(Directory, name)));
    }

    private readonly List<string> _removals = new();

    /// <summary>Renames every file into place, in the order written: write the file whose presence says the
    /// directory is complete (config.json) last. A target that is a directory is refused before any rename.</summary>
    public void Commit()
    {
        ObjectDisposedException.ThrowIf(_committed, this);
        foreach (var (_, target) in _files)
            if (System.IO.Directory.Exists(target)) throw new IOException($"{target} is a directory, so the file cannot be written there.");
        foreach (string stale in _removals)
            if (!_files.Any(f => f.Target == stale) && File.Exists(stale)) File.Delete(stale);
        foreach (var (temp, target) in _files) File.Move(temp, target, overwrite: true);
        _committed = true;
    }

    /// <summary>Without a commit: deletes the temporary files, then the directories this created if they are empty.</summary>
    public void Dispose()
    {
        if (_committed) return;
        _committed = true;
        foreach (var (temp, _) in _files)
            if (File.Exists(temp)) File.Delete(temp);
        foreach (var dir in _createdDirectories.OrderByDescending(d => d.Length)) // deepest first
            if (System.IO.Directory.Exists(dir) && !System.IO.Directory.EnumerateFileSystemEntries(dir).Any()) System.IO.Directory.Delete(dir);
    }
}
