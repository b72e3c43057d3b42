using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace NBert.IO;

/// <summary>Element types of checkpoint tensors (safetensors' names).</summary>
public enum DType { F32, F16, BF16, F64, I64, I32 }

/// <summary>Where a tensor is and what it holds.</summary>
public sealed record TensorInfo(string Name, DType DType, int[] Shape, long Offset, long ByteLength)
{
    public long ElementCount => Shape.Aggregate(1L, (n, d) => n * d);
    public override string ToString() => $"{Name} {DType} [{string.Join(", ", Shape)}]";
}

/// <summary>A set of named tensors that can be read as float32 (weights) or int64 (ids).</summary>
public interface ITensorSource : IDisposable
{
    IReadOnlyList<TensorInfo> Tensors { get; }
    bool Contains(string name);
    TensorInfo Info(string name);
    float[] ReadFloat32(string name);
    long[] ReadInt64(string name);
}

public static class DTypes
{
    public static int Size(DType t) => t switch { DType.F32 or DType.I32 => 4, DType.F16 or DType.BF16 => 2, _ => 8 };

    public static bool TryParse(string s, out DType t)
    {
        switch (s)
        {
            case "F32": t = DType.F32; return true;
            case "F16": t = DType.F16; return true;
            case "BF16": t = DType.BF16; return true;
            case "F64": t = DType.F64; return true;
            case "I64": t = DType.I64; return true;
            case "I32": t = DType.I32; return true;
            default: t = default; return false;
        }
    }

    /// <summary>Converts little-endian bytes of <paramref name="type"/> to float32.</summary>
    public static void ToFloat32(ReadOnlySpan<byte> bytes, DType type, Span<float> output)
    {
        switch (type)
        {
            case DType.F32: MemoryMarshal.Cast<byte, float>(bytes).CopyTo(output); break;
            case DType.F64: { var s = MemoryMarshal.Cast<byte, double>(bytes); for (int i = 0; i < s.Length; i++) output[i] = (float)s[i]; break; }
            case DType.F16: { var s = MemoryMarshal.Cast<byte, Half>(bytes); for (int i = 0; i < s.Length; i++) output[i] = (float)s[i]; break; }
            case DType.BF16: { var s = MemoryMarshal.Cast<byte, ushort>(bytes); for (int i = 0; i < s.Length; i++) output[i] = BitConverter.Int32BitsToSingle(s[i] << 16); break; }
            case DType.I64: { var s = MemoryMarshal.Cast<byte, long>(bytes); for (int i = 0; i < s.Length; i++) output[i] = s[i]; break; }
            case DType.I32: { var s = MemoryMarshal.Cast<byte, int>(bytes); for (int i = 0; i < s.Length; i++) output[i] = s[i]; break; }
        }
    }
}

/// <summary>
/// A memory-mapped <c>.safetensors</c> file: an 8-byte little-endian header length, a JSON header of
/// <c>{name: {dtype, shape, data_offsets}}</c> (plus <c>__metadata__</c>), then the data. Everything is
/// validated when opened, and every error names the file and, where there is one, the tensor.
/// </summary>
public sealed unsafe class SafeTensorsFile : ITensorSource
{
    private const long MaxHeader = 100L << 20;
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte* _base;
    private readonly long _dataStart;
    private readonly Dictionary<string, TensorInfo> _byName = new(StringComparer.Ordinal);

    public string Path { get; }
    public IReadOnlyList<TensorInfo> Tensors { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    public SafeTensorsFile(string path)
    {
        Path = path;
        var file = new FileInfo(path);
        if (!file.Exists) throw new FileNotFoundException($"{path}: no such safetensors file.", path);
        // A file in the Hub cache is a symbolic link to its blob: the size is the blob's, not the link's.
        long length = file.ResolveLinkTarget(returnFinalTarget: true) is FileInfo target ? target.Length : file.Length;
        if (length < 8) throw Error($"the file has {length} bytes, fewer than the 8-byte header length");
        _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* p = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            _base = p + _view.PointerOffset;
            long headerLength = BinaryPrimitives.ReadInt64LittleEndian(new ReadOnlySpan<byte>(_base, 8));
            if (headerLength <= 0 || headerLength > MaxHeader || 8 + headerLength > length)
                throw Error($"the header length {headerLength} does not fit a file of {length} bytes");
            _dataStart = 8 + headerLength;
            (Tensors, Metadata) = ParseHeader(new ReadOnlySpan<byte>(_base + 8, (int)headerLength), length - _dataStart);
            foreach (var t in Tensors) _byName[t.Name] = t;
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private NBertException Error(string message, string? tensor = null) =>
        new(tensor is null ? $"{Path}: {message}." : $"{Path}: tensor '{tensor}': {message}.");

    private (List<TensorInfo>, Dictionary<string, string>) ParseHeader(ReadOnlySpan<byte> json, long dataLength)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json.ToArray());
        }
        catch (JsonException e)
        {
            throw Error($"the header is not valid JSON ({e.Message})");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Error("the header is not a JSON object");
            var tensors = new List<TensorInfo>();
            var metadata = new Dictionary<string, string>();
            foreach (var entry in doc.RootElement.EnumerateObject())
            {
                if (entry.Name == "__metadata__")
                {
                    if (entry.Value.ValueKind != JsonValueKind.Object) throw Error("__metadata__ is not an object");
                    foreach (var m in entry.Value.EnumerateObject())
                        metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : throw Error($"__metadata__ value '{m.Name}' is not a string");
                    continue;
                }
                tensors.Add(ParseTensor(entry.Name, entry.Value, dataLength));
            }
            var ordered = tensors.OrderBy(t => t.Offset).ToList();
            for (int i = 1; i < ordered.Count; i++)
                if (ordered[i].Offset < ordered[i - 1].Offset + ordered[i - 1].ByteLength)
                    throw Error($"its data overlaps tensor '{ordered[i - 1].Name}'", ordered[i].Name);
            return (tensors, metadata);
        }
    }

    private TensorInfo ParseTensor(string name, JsonElement e, long dataLength)
    {
        if (e.ValueKind != JsonValueKind.Object) throw Error("the entry is not an object", name);
        if (!e.TryGetProperty("dtype", out var d) || d.ValueKind != JsonValueKind.String) throw Error("no dtype", name);
        if (!DTypes.TryParse(d.GetString()!, out var dtype))
            throw Error($"dtype {d.GetString()} is not supported (F32, F16, BF16, F64, I64, I32 are)", name);
        if (!e.TryGetProperty("shape", out var s) || s.ValueKind != JsonValueKind.Array) throw Error("no shape", name);
        var shape = new List<int>();
        foreach (var dim in s.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt32(out int v) || v < 0) throw Error($"shape has a bad dimension {dim}", name);
            shape.Add(v);
        }
        if (!e.TryGetProperty("data_offsets", out var o) || o.ValueKind != JsonValueKind.Array || o.GetArrayLength() != 2
            || !o[0].TryGetInt64(out long begin) || !o[1].TryGetInt64(out long end))
            throw Error("data_offsets must be [begin, end]", name);
        if (begin < 0 || end < begin || end > dataLength)
            throw Error($"data_offsets [{begin}, {end}] fall outside the {dataLength} bytes of data", name);
        long expected = shape.Aggregate(1L, (n, x) => checked(n * x)) * DTypes.Size(dtype);
        if (end - begin != expected)
            throw Error($"holds {end - begin} bytes but shape [{string.Join(", ", shape)}] of {dtype} needs {expected}", name);
        return new TensorInfo(name, dtype, [.. shape], begin, end - begin);
    }

    public bool Contains(string name) => _byName.ContainsKey(name);

    public TensorInfo Info(string name) =>
        _byName.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"{Path}: no tensor '{name}'.");

    /// <summary>The raw little-endian bytes of a tensor, straight from the mapping.</summary>
    public ReadOnlySpan<byte> Bytes(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var t = Info(name);
        return new ReadOnlySpan<byte>(_base + _dataStart + t.Offset, checked((int)t.ByteLength));
    }

    public float[] ReadFloat32(string name)
    {
        var t = Info(name);
        var result = new float[t.ElementCount];
        DTypes.ToFloat32(Bytes(name), t.DType, result);
        return result;
    }

    /// <summary>The tensor as float64, exactly for every dtype.</summary>
    public double[] ReadFloat64(string name) => Info(name).DType switch
    {
        DType.F64 => MemoryMarshal.Cast<byte, double>(Bytes(name)).ToArray(),
        DType.I64 or DType.I32 => Array.ConvertAll(ReadInt64(name), x => (double)x),
        _ => Array.ConvertAll(ReadFloat32(name), x => (double)x),
    };

    public long[] ReadInt64(string name)
    {
        var t = Info(name);
        var bytes = Bytes(name);
        return t.DType switch
        {
            DType.I64 => MemoryMarshal.Cast<byte, long>(bytes).ToArray(),
            DType.I32 => Array.ConvertAll(MemoryMarshal.Cast<byte, int>(bytes).ToArray(), x => (long)x),
            _ => throw Error($"is {t.DType}, but integer ids (I64 or I32) are needed", name),
        };
    }

    private bool _disposed;

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_view is not null)
        {
            if (_base != null) _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
    }
}

/// <summary>One tensor to write: its name, type, shape and little-endian bytes.</summary>
public sealed record SafeTensor(string Name, DType DType, int[] Shape, byte[] Data)
{
    public static SafeTensor Float32(string name, int[] shape, ReadOnlySpan<float> values) =>
        new(name, DType.F32, shape, MemoryMarshal.AsBytes(values).ToArray());

    public static SafeTensor Int64(string name, int[] shape, ReadOnlySpan<long> values) =>
        new(name, DType.I64, shape, MemoryMarshal.AsBytes(values).ToArray());
}

/// <summary>Writes safetensors files that transformers loads: header padded with spaces to a multiple of
/// 8 bytes, <c>__metadata__</c> <c>{"format": "pt"}</c>, written to a temporary name and renamed.</summary>
public static class SafeTensorsWriter
{
    public static void Write(string path, IEnumerable<SafeTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in list)
        {
            if (!names.Add(t.Name)) throw new ArgumentException($"Tensor '{t.Name}' appears twice.");
            long expected = t.Shape.Aggregate(1L, (n, x) => n * x) * DTypes.Size(t.DType);
            if (t.Data.Length != expected)
                throw new ArgumentException($"Tensor '{t.Name}': {t.Data.Length} bytes for shape [{string.Join(", ", t.Shape)}] of {t.DType} (needs {expected}).");
        }
        using var header = new MemoryStream();
        using (var w = new Utf8JsonWriter(header))
        {
            w.WriteStartObject();
            w.WriteStartObject("__metadata__");
            foreach (var (k, v) in metadata ?? new Dictionary<string, string> { ["format"] = "pt" }) w.WriteString(k, v);
            w.WriteEndObject();
            long offset = 0;
            foreach (var t in list)
            {
                w.WriteStartObject(t.Name);
                w.WriteString("dtype", t.DType.ToString());
                w.WriteStartArray("shape");
                foreach (int d in t.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + t.Data.Length);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += t.Data.Length;
            }
            w.WriteEndObject();
        }
        int padding = (int)((8 - header.Length % 8) % 8);
        AtomicFile.Write(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(length, header.Length + padding);
            stream.Write(length);
            header.Position = 0;
            header.CopyTo(stream);
            for (int i = 0; i < padding; i++) stream.WriteByte((byte)' ');
            foreach (var t in list) stream.Write(t.Data);
        });
    }
}

/// <summary>Writes a file under a temporary name in the same directory, then renames it over the target,
/// so a crash never leaves a half-written file where a good one was.</summary>
public static class AtomicFile
{
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

    public static void WriteAllText(string path, string text) =>
        Write(path, s => s.Write(Encoding.UTF8.GetBytes(text)));
}
