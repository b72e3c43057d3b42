namespace NBert.Hub;

/// <summary>
/// An exclusive lock between processes, held as an open lock file. On Unix .NET takes <c>flock(LOCK_EX)</c> for
/// <see cref="FileShare.None"/>, the same lock Python's filelock takes, so NBert and huggingface_hub also exclude
/// each other; on Windows the open itself is exclusive. The operating system releases it when the process dies,
/// so a crash never leaves a stale lock. The file is left in place, as filelock leaves it: deleting it would let
/// a third process lock a new file while a second still holds the old one.
/// </summary>
internal sealed class FileLock : IDisposable
{
    private readonly FileStream _stream;

    private FileLock(FileStream stream) => _stream = stream;

    /// <summary>Waits until the lock at <paramref name="path"/> is free, then holds it until disposed.</summary>
    public static async Task<FileLock> AcquireAsync(string path, CancellationToken cancellation)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        while (true)
        {
            try
            {
                return new FileLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            }
            catch (IOException) when (File.Exists(path))
            {
                // Held by another process (or thread): poll, as filelock does.
                await Task.Delay(50, cancellation).ConfigureAwait(false);
            }
        }
    }

    public void Dispose() => _stream.Dispose();
}
