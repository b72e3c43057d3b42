using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using static NBert.NBertException;

namespace NBert.IO;

/// <summary>Element types of checkpoint tensors (safetensors' names).</summary>
public enum DType
{
    /// <summary>32-bit float (<c>torch.float32</c>), what NBert computes in and writes.</summary>
    F32,
    /// <summary>IEEE 16-bit float (<c>torch.float16</c>); read as float32.</summary>
    F16,
    /// <summary>bfloat16 (<c>torch.bfloat16</c>); read as float32.</summary>
    BF16,
    /// <summary>64-bit float (<c>torch.float64</c>); read as float32.</summary>
    F64,
    /// <summary>64-bit integer (<c>torch.int64</c>), as ids and buffers such as <c>position_ids</c> are stored.</summary>
    I64,
    /// <summary>32-bit integer (<c>torch.int32</c>).</summary>
    I32,
}

/// <summary>Where a tensor is and what it holds.</summary>
public sealed record TensorInfo(string Name, DType DType, int[] Shape, long Offset, long ByteLength)
{
    /// <summary>The product of <see cref="Shape"/> (1 for a scalar, whose shape is empty).</summary>
    public long ElementCount => Shape.Aggregate(1L, (n, d) => n * d);
    /// <summary>The name, type and shape, such as <c>pooler.dense.bias F32 [768]</c>.</summary>
    public override string ToString() => $"{Name} {DType} [{string.Join(", ", Shape)}]";
}

/// <summary>A set of named tensors that can be read as float32 (weights) or int64 (ids).</summary>
/// <remarks>Names are the checkpoint's own (transformers' state-dict keys, with any <c>bert.</c> prefix). Open one with
/// <see cref="Checkpoint.Open"/>; disposing it releases the file.</remarks>
public interface ITensorSource : IDisposable
{
    /// <summary>Every tensor the source holds, in the order the file lists them.</summary>
    IReadOnlyList<TensorInfo> Tensors { get; }
    /// <summary>Whether there is a tensor called <paramref name="name"/> (ordinal comparison).</summary>
    bool Contains(string name);
    /// <summary>The tensor's type and shape; <see cref="KeyNotFoundException"/> when there is none of that name.</summary>
    TensorInfo Info(string name);
    /// <summary>The tensor's values as a new float32 array in row-major order, converted from whatever type it is stored
    /// in; <see cref="KeyNotFoundException"/> when there is none of that name.</summary>
    float[] ReadFloat32(string name);
    /// <summary>The tensor's values as a new int64 array in row-major order; only an integer tensor (I64 or I32) can be
    /// read so, others are an <see cref="NBertException"/>.</summary>
    long[] ReadInt64(string name);
}

/// <summary>Helpers for <see cref="DType"/>.</summary>
public static class DTypes
{
    /// <summary>Bytes per element of <paramref name="t"/>.</summary>
    public static int Size(DType t) => t switch { DType.F32 or DType.I32 => 4, DType.F16 or DType.BF16 => 2, _ => 8 };

    /// <summary>A safetensors <c>dtype</c> string (case-sensitive: <c>F32</c>, <c>F16</c>, <c>BF16</c>, <c>F64</c>,
    /// <c>I64</c>, <c>I32</c>) as a <see cref="DType"/>; false for any other (<c>BOOL</c>, <c>U8</c>, ...).</summary>
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

    /// <summary>The file, as given to the constructor.</summary>
    public string Path { get; }
    /// <inheritdoc/>
    public IReadOnlyList<TensorInfo> Tensors { get; }
    /// <summary>The header's <c>__metadata__</c> (transformers writes <c>{"format": "pt"}</c>); empty when there is none.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Maps <paramref name="path"/> read-only and checks its whole header: every tensor's type, shape and byte
    /// range, with no overlaps. <see cref="MissingFileException"/> when the file is missing; <see cref="NBertException"/>,
    /// naming the file and the tensor, when it is not a valid safetensors file. The file stays mapped (and, on Windows,
    /// cannot be replaced) until <see cref="Dispose"/>; reads from several threads at once are safe until then.</summary>
    public SafeTensorsFile(string path)
    {
        Path = path;
        var file = new FileInfo(path);
        if (!file.Exists) throw new MissingFileException($"{path}: no such safetensors file.", path);
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
        // Checked first: System.Text.Json only notices bad UTF-8 when a string is read, and then throws
        // InvalidOperationException, which is no message for a corrupt file.
        if (!Utf8.IsValid(json)) throw Error("the header is not valid UTF-8");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json.ToArray());
        }
        catch (JsonException e)
        {
            throw Error($"the header is not valid JSON ({NBertException.Quote(e.Message, 160)})");
        }
        using (doc)
        {
            try
            {
                return ParseEntries(doc.RootElement, dataLength);
            }
            catch (InvalidOperationException e)
            {
                // A string that cannot be read (an escaped lone surrogate, say).
                throw Error($"the header holds a string that cannot be read ({e.Message})");
            }
        }
    }

    private (List<TensorInfo>, Dictionary<string, string>) ParseEntries(JsonElement root, long dataLength)
    {
        if (root.ValueKind != JsonValueKind.Object) throw Error("the header is not a JSON object");
        var tensors = new List<TensorInfo>();
        var metadata = new Dictionary<string, string>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var entry in root.EnumerateObject())
        {
            // JSON readers keep the last of two equal keys; a tensor named twice is refused, not guessed.
            if (!names.Add(entry.Name)) throw Error("the name appears twice in the header", entry.Name);
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

    private TensorInfo ParseTensor(string name, JsonElement e, long dataLength)
    {
        if (e.ValueKind != JsonValueKind.Object) throw Error("the entry is not an object", name);
        if (!e.TryGetProperty("dtype", out var d) || d.ValueKind != JsonValueKind.String) throw Error("no dtype", name);
        if (!DTypes.TryParse(d.GetString()!, out var dtype))
            throw Error($"dtype {Quote(d.GetString()!)} is not supported (F32, F16, BF16, F64, I64, I32 are)", name);
        if (!e.TryGetProperty("shape", out var s) || s.ValueKind != JsonValueKind.Array) throw Error("no shape", name);
        var shape = new List<int>();
        foreach (var dim in s.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt32(out int v) || v < 0) throw Error($"shape has a bad dimension {Quote(dim.GetRawText())}", name);
            shape.Add(v);
        }
        if (!e.TryGetProperty("data_offsets", out var o) || o.ValueKind != JsonValueKind.Array || o.GetArrayLength() != 2
            || o[0].ValueKind != JsonValueKind.Number || o[1].ValueKind != JsonValueKind.Number
            || !o[0].TryGetInt64(out long begin) || !o[1].TryGetInt64(out long end))
            throw Error("data_offsets must be [begin, end]", name);
        if (begin < 0 || end < begin || end > dataLength)
            throw Error($"data_offsets [{begin}, {end}] fall outside the {dataLength} bytes of data", name);
        string shapeText = $"[{string.Join(", ", shape)}]";
        // The element count can overflow a long (three dimensions of 2^31 do): stop before it does.
        long limit = long.MaxValue / 8, elements = shape.Contains(0) ? 0 : 1;
        foreach (int dim in shape)
        {
            if (elements != 0 && elements > limit / dim)
                throw Error($"shape {shapeText} has more elements than any file can hold", name);
            elements *= dim;
        }
        long expected = elements * DTypes.Size(dtype);
        if (end - begin != expected)
            throw Error($"holds {end - begin} bytes but shape {shapeText} of {dtype} needs {expected}", name);
        return new TensorInfo(name, dtype, [.. shape], begin, end - begin);
    }

    /// <inheritdoc/>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <inheritdoc/>
    public TensorInfo Info(string name) =>
        _byName.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"{Path}: no tensor '{name}'.");

    /// <summary>The raw little-endian bytes of a tensor, straight from the mapping (at most 2 GiB: a span's limit).</summary>
    public ReadOnlySpan<byte> Bytes(string name)
    {
        var t = Info(name);
        if (t.ByteLength > int.MaxValue) throw Error($"holds {t.ByteLength} bytes, more than one span can address (2 GiB)", name);
        return Span(t, 0, t.ByteLength);
    }

    private ReadOnlySpan<byte> Span(TensorInfo t, long from, long length)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new ReadOnlySpan<byte>(_base + _dataStart + t.Offset + from, checked((int)length));
    }

    /// <inheritdoc/>
    public float[] ReadFloat32(string name)
    {
        var t = Info(name);
        if (t.ElementCount > Array.MaxLength) throw Error($"has {t.ElementCount} elements, more than one .NET array holds", name);
        var result = new float[t.ElementCount];
        // In chunks: an F16 or F64 tensor can exceed the 2 GiB a span addresses while its float32 copy does not.
        int size = DTypes.Size(t.DType);
        const int Chunk = 1 << 26;
        for (long at = 0; at < result.LongLength; at += Chunk)
        {
            int n = (int)Math.Min(Chunk, result.LongLength - at);
            DTypes.ToFloat32(Span(t, at * size, (long)n * size), t.DType, result.AsSpan((int)at, n));
        }
        return result;
    }

    /// <summary>The tensor as float64, exactly for every dtype.</summary>
    public double[] ReadFloat64(string name) => Info(name).DType switch
    {
        DType.F64 => MemoryMarshal.Cast<byte, double>(Bytes(name)).ToArray(),
        DType.I64 or DType.I32 => Array.ConvertAll(ReadInt64(name), x => (double)x),
        _ => Array.ConvertAll(ReadFloat32(name), x => (double)x),
    };

    /// <inheritdoc/>
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

    /// <summary>Unmaps the file. Reading a tensor afterwards throws <see cref="ObjectDisposedException"/>, and spans from
    /// <see cref="Bytes"/> must no longer be used.</summary>
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

/// <summary>One tensor to write: its name, type, shape and little-endian values. The values are held as
/// the array they came in (float, long or raw bytes), so a tensor of more than 2 GiB, which no byte array
/// can hold, is still written.</summary>
public sealed class SafeTensor
{
    private readonly Array _values;
    // The part of _values written: all of it but for a view (Float32View).
    private readonly int _start;
    private readonly long _count;

    /// <summary>The name in the file.</summary>
    public string Name { get; }
    /// <summary>The element type in the file.</summary>
    public DType DType { get; }
    /// <summary>The shape in the file.</summary>
    public int[] Shape { get; }
    /// <summary>How many bytes the values take in the file.</summary>
    public long ByteLength => _count * _values switch { float[] => 4, long[] => 8, _ => 1 }; // Buffer.ByteLength stops at 2 GiB

    /// <summary>A tensor from its raw little-endian bytes.</summary>
    public SafeTensor(string name, DType dtype, int[] shape, byte[] data) : this(name, dtype, shape, (Array)data) { }

    private SafeTensor(string name, DType dtype, int[] shape, Array values)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(values);
        (Name, DType, Shape, _values, _count) = (name, dtype, shape, values, values.LongLength);
    }

    private SafeTensor(string name, int[] shape, ArraySegment<float> values) : this(name, DType.F32, shape, values.Array!) =>
        (_start, _count) = (values.Offset, values.Count);

    /// <summary>A float32 tensor over part of an array, not copied (leave it unchanged until written): a checkpoint writes
    /// each parameter's optimiser moments straight from the flat buffers instead of copying them all first.</summary>
    internal static SafeTensor Float32View(string name, int[] shape, ArraySegment<float> values) => new(name, shape, values);

    /// <summary>A float32 tensor over <paramref name="values"/> itself (not copied: leave it unchanged until written).</summary>
    public static SafeTensor Float32(string name, int[] shape, float[] values) => new(name, DType.F32, shape, (Array)values);

    /// <summary>A float32 tensor from a copy of <paramref name="values"/>.</summary>
    public static SafeTensor Float32(string name, int[] shape, ReadOnlySpan<float> values) => new(name, DType.F32, shape, (Array)values.ToArray());

    /// <summary>An int64 tensor over <paramref name="values"/> itself (not copied).</summary>
    public static SafeTensor Int64(string name, int[] shape, long[] values) => new(name, DType.I64, shape, (Array)values);

    /// <summary>An int64 tensor from a copy of <paramref name="values"/>.</summary>
    public static SafeTensor Int64(string name, int[] shape, ReadOnlySpan<long> values) => new(name, DType.I64, shape, (Array)values.ToArray());

    /// <summary>Writes the values' bytes, in pieces of at most 1 GiB (a span of bytes cannot pass 2 GiB).</summary>
    internal void WriteTo(Stream stream)
    {
        switch (_values)
        {
            case byte[] b: stream.Write(b); break;
            case float[] f: WriteChunks<float>(stream, f.AsSpan(_start, (int)_count)); break;
            case long[] l: WriteChunks<long>(stream, l); break;
            default: throw new InvalidOperationException($"Unexpected value array {_values.GetType()}.");
        }
    }

    private static void WriteChunks<T>(Stream stream, ReadOnlySpan<T> values) where T : unmanaged
    {
        int chunk = (1 << 30) / System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        for (int at = 0; at < values.Length; at += chunk)
            stream.Write(MemoryMarshal.AsBytes(values.Slice(at, Math.Min(chunk, values.Length - at))));
    }
}

/// <summary>Writes safetensors files that transformers loads: header padded with spaces to a multiple of
/// 8 bytes, <c>__metadata__</c> <c>{"format": "pt"}</c>, written to a temporary name and renamed.</summary>
public static class SafeTensorsWriter
{
    /// <summary>Writes <paramref name="path"/> under a temporary name, renamed when complete.</summary>
    public static void Write(string path, IEnumerable<SafeTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        AtomicFile.Write(path, stream => Write(stream, list, metadata));
    }

    /// <summary>Writes the file's bytes to <paramref name="stream"/> (for a caller that names and renames it).</summary>
    public static void Write(Stream stream, IEnumerable<SafeTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in list)
        {
            if (!names.Add(t.Name)) throw new ArgumentException($"Tensor '{t.Name}' appears twice.");
            long expected = t.Shape.Aggregate(1L, (n, x) => n * x) * DTypes.Size(t.DType);
            if (t.Shape.Any(d => d < 0) || t.ByteLength != expected)
                throw new ArgumentException($"Tensor '{t.Name}': {t.ByteLength} bytes for shape [{string.Join(", ", t.Shape)}] of {t.DType} (needs {expected}).");
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
                w.WriteNumberValue(offset + t.ByteLength);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += t.ByteLength;
            }
            w.WriteEndObject();
        }
        int padding = (int)((8 - header.Length % 8) % 8);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(length, header.Length + padding);
        stream.Write(length);
        header.Position = 0;
        header.CopyTo(stream);
        for (int i = 0; i < padding; i++) stream.WriteByte((byte)' ');
        foreach (var t in list) t.WriteTo(stream);
    }
}
