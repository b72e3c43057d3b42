using NBert.Schema;
using NBert.Tensors;

namespace NBert.Modeling;

/// <summary>
/// One checkpoint's loaded parameters and their packed copies, shared by every live model loaded from the same files
/// (<see cref="BertPreTrainedModel.FromPretrained(Hub.ResolvedModel, BertArchitecture?, int, Func{BertConfig, BertConfig}?)"/>):
/// loading MiniLM twice in one process (two pipelines, a server beside a library call) would otherwise hold its 91 MB of
/// weights and their packed copies twice. The arrays are only read while shared: a model hands out its
/// <see cref="BertPreTrainedModel.Parameters"/> only after copying them (copy on write, since a caller may write into
/// them), and so stops sharing. The cache keeps an entry while a holder has not been disposed, and only weakly, so
/// that models dropped without <see cref="BertPreTrainedModel.Dispose"/> are still collected.
/// </summary>
internal sealed class SharedWeights
{
    /// <summary>What makes two loads the same: the directory (full path) and Hub commit, the architecture and seed
    /// (which decide the heads a checkpoint lacks), and every top-level file's name, size, time of last write and a hash
    /// of its bytes (all of them up to 1 MiB, else the first and last 64 KiB), so that a directory written again (a
    /// fine-tuning's output, a checkpoint) is loaded again, even within the file system's clock tick.</summary>
    internal readonly record struct Key(string Directory, string? Commit, BertArchitecture Architecture, int Seed, string Files);

    private static readonly object Gate = new();
    private static readonly Dictionary<Key, WeakReference<SharedWeights>> Entries = [];

    private readonly Lazy<(Dictionary<string, FloatTensor> Parameters, LoadReport Report)> _load;
    private readonly Lazy<PackedWeights> _packed;

    private SharedWeights(Key key, Func<(Dictionary<string, FloatTensor>, LoadReport)> load)
    {
        EntryKey = key;
        _load = new(load, LazyThreadSafetyMode.ExecutionAndPublication);
        _packed = new(() => new PackedWeights(Parameters), LazyThreadSafetyMode.ExecutionAndPublication);
    }

    internal Key EntryKey { get; }

    /// <summary>Models that hold this entry and are not disposed (guarded by the cache's lock).</summary>
    internal int Holders { get; private set; }

    /// <summary>The parameters by name: read them only.</summary>
    public Dictionary<string, FloatTensor> Parameters => _load.Value.Parameters;

    /// <summary>What loading did (its warnings are raised again by every load that shares it, as a second load would).</summary>
    public LoadReport Report => _load.Value.Report;

    /// <summary>The weights packed for the GEMM, each layer on first use by any holder.</summary>
    public PackedWeights Packed => _packed.Value;

    /// <summary>The key of the model in <paramref name="directory"/>, or null when its files cannot be listed.</summary>
    public static Key? KeyOf(string directory, string? commit, BertArchitecture architecture, int seed)
    {
        try
        {
            var full = Path.GetFullPath(directory);
            var files = new DirectoryInfo(full).EnumerateFiles().OrderBy(f => f.Name, StringComparer.Ordinal)
                .Select(f => $"{f.Name}:{f.Length}:{f.LastWriteTimeUtc.Ticks}:{Fingerprint(f.FullName)}");
            return new Key(full, commit, architecture, seed, string.Join("|", files));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // loading reports what is wrong with the directory
        }
    }

    private static string Fingerprint(string path)
    {
        const int Whole = 1 << 20, Part = 64 << 10;
        using var file = File.OpenRead(path);
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        var buffer = new byte[Math.Min(file.Length, file.Length <= Whole ? Whole : Part)];
        file.ReadExactly(buffer);
        sha.AppendData(buffer);
        if (file.Length > Whole)
        {
            file.Seek(-Part, SeekOrigin.End);
            file.ReadExactly(buffer);
            sha.AppendData(buffer);
        }
        return Convert.ToHexString(sha.GetHashAndReset(), 0, 8);
    }

    /// <summary>The live entry of <paramref name="key"/>, or a new one that <paramref name="load"/> fills (once, however
    /// many threads ask at once), held once more by the caller; a load that fails is not kept.</summary>
    public static SharedWeights Acquire(Key key, Func<(Dictionary<string, FloatTensor>, LoadReport)> load)
    {
        SharedWeights entry;
        lock (Gate)
        {
            if (!Entries.TryGetValue(key, out var weak) || !weak.TryGetTarget(out entry!) || entry.Holders == 0)
            {
                // Entries whose models were collected undisposed are dropped as new ones come.
                foreach (var stale in Entries.Where(e => !e.Value.TryGetTarget(out _)).Select(e => e.Key).ToList()) Entries.Remove(stale);
                entry = new SharedWeights(key, load);
                Entries[key] = new WeakReference<SharedWeights>(entry);
            }
            entry.Holders++;
        }
        try
        {
            _ = entry._load.Value;
            return entry;
        }
        catch
        {
            entry.Release();
            throw;
        }
    }

    /// <summary>Drops one holder; the last one takes the entry out of the cache, so that its memory goes with the models
    /// that still reference it, and a later load reads the files again.</summary>
    public void Release()
    {
        lock (Gate)
        {
            if (Holders == 0) return;
            if (--Holders == 0 && Entries.TryGetValue(EntryKey, out var weak) && weak.TryGetTarget(out var current) && current == this)
                Entries.Remove(EntryKey);
        }
    }

    /// <summary>The live entry of <paramref name="key"/>, if any (for tests).</summary>
    internal static SharedWeights? Find(Key key)
    {
        lock (Gate)
            return Entries.TryGetValue(key, out var weak) && weak.TryGetTarget(out var entry) && entry.Holders > 0 ? entry : null;
    }
}
