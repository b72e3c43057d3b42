using NBert.Schema;
using NBert.Tensors;
using System.Text.Json;
using static NBert.NBertException;

namespace NBert.IO;

/// <summary>Opens the weights of a model directory, in the order transformers looks for them.</summary>
public static class Checkpoint
{
    /// <summary>The single safetensors file (transformers' <c>SAFE_WEIGHTS_NAME</c>), the one NBert writes.</summary>
    public const string SafeTensorsName = "model.safetensors";
    /// <summary>The index of a sharded safetensors checkpoint (transformers' <c>SAFE_WEIGHTS_INDEX_NAME</c>).</summary>
    public const string SafeTensorsIndexName = "model.safetensors.index.json";
    /// <summary>The single <c>torch.save</c> file (transformers' <c>WEIGHTS_NAME</c>).</summary>
    public const string PyTorchName = "pytorch_model.bin";
    /// <summary>The index of a sharded <c>torch.save</c> checkpoint (transformers' <c>WEIGHTS_INDEX_NAME</c>).</summary>
    public const string PyTorchIndexName = "pytorch_model.bin.index.json";

    /// <summary>model.safetensors, its sharded index, pytorch_model.bin, or its sharded index, the first that exists.
    /// Throws <see cref="MissingFileException"/> for a missing directory, <see cref="MissingFileException"/> when it
    /// holds none of them, and <see cref="NBertException"/> for a file that is not a valid checkpoint. Dispose the result.</summary>
    public static ITensorSource Open(string directory)
    {
        if (!Directory.Exists(directory)) throw new MissingFileException($"Model directory '{directory}' does not exist.", directory);
        string Path(string name) => System.IO.Path.Combine(directory, name);
        if (File.Exists(Path(SafeTensorsName))) return new SafeTensorsFile(Path(SafeTensorsName));
        if (File.Exists(Path(SafeTensorsIndexName))) return new ShardedTensorSource(Path(SafeTensorsIndexName), f => new SafeTensorsFile(f));
        if (File.Exists(Path(PyTorchName))) return new PyTorchCheckpoint(Path(PyTorchName));
        if (File.Exists(Path(PyTorchIndexName))) return new ShardedTensorSource(Path(PyTorchIndexName), f => new PyTorchCheckpoint(f));
        throw new MissingFileException($"Model directory '{directory}' has no weights: expected {SafeTensorsName}, {SafeTensorsIndexName} or {PyTorchName}.", Path(SafeTensorsName));
    }

    /// <summary>
    /// Why <paramref name="directory"/> cannot be loaded as a model, when it lacks config.json or weights (null when it has
    /// both): the missing files named, and, for the output of a training run that did not finish (checkpoint-N folders,
    /// metrics.jsonl), where its work is. Loaders say this before anything else, so that a folder holding only a run's log
    /// is not reported as lacking a tokenizer.
    /// </summary>
    /// <param name="directory">The model directory.</param>
    /// <param name="alsoMissing">What else the caller found missing, said after config.json and the weights (a tokenizer's files).</param>
    public static MissingFileException? MissingModel(string directory, string? alsoMissing = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (!Directory.Exists(directory)) return new MissingFileException($"Model directory '{directory}' does not exist.", directory);
        string config = System.IO.Path.Combine(directory, "config.json");
        bool hasConfig = File.Exists(config);
        bool hasWeights = new[] { SafeTensorsName, SafeTensorsIndexName, PyTorchName, PyTorchIndexName }.Any(f => File.Exists(System.IO.Path.Combine(directory, f)));
        if (hasConfig && hasWeights) return null;
        string weights = $"weights ({SafeTensorsName}, {SafeTensorsIndexName} or {PyTorchName})";
        string missing = (!hasConfig && !hasWeights ? $"no config.json, no {weights}" : !hasConfig ? "no config.json" : $"no {weights}")
            + (alsoMissing is null ? "" : $" and {alsoMissing}");
        string? checkpoint = Directory.GetDirectories(directory, "checkpoint-*")
            .Select(d => (Path: d, Step: long.TryParse(System.IO.Path.GetFileName(d)["checkpoint-".Length..], out long n) ? n : -1))
            .Where(d => d.Step >= 0 && File.Exists(System.IO.Path.Combine(d.Path, "config.json"))).OrderByDescending(d => d.Step).Select(d => d.Path).FirstOrDefault();
        string run = checkpoint is not null
            ? $"; it holds {System.IO.Path.GetFileName(checkpoint)}, the checkpoint of a training run that did not finish: resume the run (TrainerOptions.Resume, nbert --resume) or load {checkpoint}"
            : File.Exists(System.IO.Path.Combine(directory, "metrics.jsonl")) ? "; it holds metrics.jsonl, the log of a training run that wrote no model" : "";
        return new MissingFileException($"Model directory '{directory}' holds no model: {missing}{run}.",
            hasConfig ? System.IO.Path.Combine(directory, SafeTensorsName) : config);
    }

    /// <summary>Whether two paths name the same directory (a trailing separator or a relative form aside; case-insensitive
    /// where the file system usually is).</summary>
    public static bool IsSameDirectory(string a, string b) =>
        string.Equals(System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(a)), System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(b)),
            OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal);

    /// <summary>The tokenizer files that travel with a model directory, each optional (a tokenizer needs tokenizer.json or vocab.txt,
    /// or RoBERTa's vocab.json and merges.txt, which travel with them).</summary>
    public static IReadOnlyList<string> TokenizerFiles { get; } = ["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"];

    /// <summary>RoBERTa's vocabulary and merges, the byte-level BPE tokenizer's files when there is no tokenizer.json. They
    /// travel with a model directory like <see cref="TokenizerFiles"/>, but the Hub is asked for them only when a repository
    /// has neither tokenizer.json nor vocab.txt.</summary>
    internal static IReadOnlyList<string> BpeTokenizerFiles { get; } = ["vocab.json", "merges.txt"];

    /// <summary>Stages a model's weights, then its config.json, as transformers saves them: model.safetensors holds the
    /// parameters of <paramref name="layout"/> (the architecture's, see <see cref="BertArchitectures.Parameters"/>) under
    /// their checkpoint names, and config.json names <paramref name="architecture"/>.</summary>
    public static void StageModel(StagedFiles files, BertConfig config, BertArchitecture architecture, IEnumerable<ParameterSpec> layout,
        IReadOnlyDictionary<string, FloatTensor> parameters)
    {
        files.Write(SafeTensorsName, stream => SafeTensorsWriter.Write(stream,
            layout.Select(s => SafeTensor.Float32(FamilyNames.CheckpointName(s.Name, architecture, config.Family), s.Shape, parameters[s.Name].Data))));
        files.WriteAllText("config.json", (config with { Architectures = [FamilyNames.ClassName(config.Family, architecture)] }).ToJson() + "\n");
    }

    /// <summary>Stages copies of the tokenizer files of <paramref name="source"/> that exist into <paramref name="files"/>,
    /// so a saved model loads as a whole; returns whether there was any.</summary>
    public static bool StageTokenizerFiles(string source, StagedFiles files)
    {
        bool any = false, inPlace = IsSameDirectory(source, files.Directory);
        foreach (var name in TokenizerFiles.Concat(BpeTokenizerFiles))
        {
            string from = System.IO.Path.Combine(source, name);
            if (!File.Exists(from)) continue;
            any = true;
            if (!inPlace) files.Copy(name, from);
        }
        return any;
    }
}

/// <summary>A checkpoint split over several files, with an index <c>{"weight_map": {tensor: file}}</c>.</summary>
public sealed class ShardedTensorSource : ITensorSource
{
    private readonly Dictionary<string, ITensorSource> _byTensor = new(StringComparer.Ordinal);
    private readonly List<ITensorSource> _shards = new();

    /// <inheritdoc/>
    public IReadOnlyList<TensorInfo> Tensors { get; }

    /// <summary>Opens every shard that <paramref name="indexPath"/>'s <c>weight_map</c> names, with <paramref name="open"/>
    /// (for example <c>f =&gt; new SafeTensorsFile(f)</c>). A shard must be a file beside the index and hold the tensors
    /// mapped to it: otherwise <see cref="NBertException"/>, or <see cref="MissingFileException"/> for a missing shard
    /// (the shards opened so far are closed again).</summary>
    public ShardedTensorSource(string indexPath, Func<string, ITensorSource> open)
    {
        string dir = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        var map = ReadWeightMap(indexPath);
        var opened = new Dictionary<string, ITensorSource>(StringComparer.Ordinal);
        try
        {
            foreach (var (tensor, file) in map)
            {
                if (file.Length == 0 || file.Contains('/') || file.Contains('\\') || file.Contains("..") || file.Contains('\0'))
                    throw new NBertException($"{indexPath}: tensor '{Quote(tensor)}' maps to '{Quote(file)}', which is not a file beside the index.");
                if (!opened.TryGetValue(file, out var shard))
                {
                    string shardPath = Path.Combine(dir, file);
                    if (!File.Exists(shardPath)) throw new MissingFileException($"{indexPath}: shard '{Quote(file)}' (holding '{Quote(tensor)}') is missing.", shardPath);
                    opened[file] = shard = open(shardPath);
                    _shards.Add(shard);
                }
                if (!shard.Contains(tensor)) throw new NBertException($"{indexPath}: tensor '{Quote(tensor)}' is not in its shard '{Quote(file)}'.");
                _byTensor[tensor] = shard;
            }
        }
        catch
        {
            Dispose();
            throw;
        }
        Tensors = _byTensor.Select(p => p.Value.Info(p.Key)).ToList();
    }

    /// <summary>The index's <c>weight_map</c>, tensor to shard file, in file order; every error names the index.</summary>
    internal static List<(string Tensor, string File)> ReadWeightMap(string indexPath)
    {
        NBertException Error(string message) => new($"{indexPath}: {message}.");
        using var doc = JsonFile.Read(indexPath);
        try
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Error("not a JSON object");
            if (!doc.RootElement.TryGetProperty("weight_map", out var wm) || wm.ValueKind != JsonValueKind.Object)
                throw Error("no \"weight_map\" object (tensor name to shard file)");
            var map = new List<(string, string)>();
            foreach (var p in wm.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String)
                    throw Error($"weight_map['{Quote(p.Name)}'] is {p.Value.ValueKind.ToString().ToLowerInvariant()}, not a shard file name");
                map.Add((p.Name, p.Value.GetString()!));
            }
            return map;
        }
        catch (InvalidOperationException e)
        {
            throw new NBertException($"{indexPath}: a string cannot be read ({e.Message}).", e);
        }
    }

    /// <inheritdoc/>
    public bool Contains(string name) => _byTensor.ContainsKey(name);
    /// <inheritdoc/>
    public TensorInfo Info(string name) => Shard(name).Info(name);
    /// <inheritdoc/>
    public float[] ReadFloat32(string name) => Shard(name).ReadFloat32(name);
    /// <inheritdoc/>
    public long[] ReadInt64(string name) => Shard(name).ReadInt64(name);

    private ITensorSource Shard(string name) =>
        _byTensor.TryGetValue(name, out var s) ? s : throw new KeyNotFoundException($"No tensor '{name}' in the sharded checkpoint.");

    /// <summary>Closes every shard.</summary>
    public void Dispose()
    {
        foreach (var s in _shards) s.Dispose();
    }
}
