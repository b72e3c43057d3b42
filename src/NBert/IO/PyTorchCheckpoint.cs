using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using static NBert.NBertException;

namespace NBert.IO;

/// <summary>
/// A <c>pytorch_model.bin</c> as <c>torch.save</c> writes it: a zip holding <c>data.pkl</c> (the state
/// dict, pickled) and <c>data/N</c> (the raw storages). The pickle is read by <see cref="StateDictUnpickler"/>,
/// which interprets only what a state dict needs and never calls or imports anything.
/// </summary>
public sealed class PyTorchCheckpoint : ITensorSource
{
    /// <summary>A tensor checked against its storage when the file was opened: every element it reads lies inside.</summary>
    private sealed record Entry(TensorInfo Info, StateDictUnpickler.StorageRef Storage, ZipArchiveEntry Data, long Offset, long[] Stride);

    // Deflate expands by at most 1032:1, so a zip entry claiming more than that is lying about its size.
    private const long MaxDeflateRatio = 1032;
    private readonly ZipArchive _zip;
    private readonly string _prefix;
    private readonly Dictionary<string, Entry> _tensors = new(StringComparer.Ordinal);
    private readonly List<TensorInfo> _infos = new();

    /// <summary>The file, as given to the constructor.</summary>
    public string Path { get; }
    /// <inheritdoc/>
    public IReadOnlyList<TensorInfo> Tensors => _infos;

    /// <summary>Opens the zip and reads its state dict, checking every tensor against its storage.
    /// <see cref="MissingFileException"/> when the file is missing; <see cref="NBertException"/> naming the file for a
    /// legacy (pre-1.6, not zip) or big-endian checkpoint, a pickle that calls anything but the tensor rebuilders, or a
    /// tensor outside its storage. The zip stays open until <see cref="Dispose"/>; read from one thread at a time
    /// (<see cref="System.IO.Compression.ZipArchive"/> is not thread-safe).</summary>
    public PyTorchCheckpoint(string path)
    {
        Path = path;
        if (!File.Exists(path)) throw new MissingFileException($"{path}: no such file.", path);
        try
        {
            _zip = ZipFile.OpenRead(path);
            _ = _zip.Entries; // the central directory is read on first use: read (and check) it here
        }
        catch (Exception e) when (e is InvalidDataException or IOException and not FileNotFoundException or ArgumentException or NotSupportedException)
        {
            throw new NBertException($"{path}: not a PyTorch zip checkpoint ({e.Message}). Legacy (pre-1.6) torch.save files are not supported.", e);
        }
        try
        {
            var pkl = _zip.Entries.FirstOrDefault(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) || e.FullName == "data.pkl")
                ?? throw Error("no data.pkl inside: not a torch.save checkpoint");
            _prefix = pkl.FullName[..^"data.pkl".Length];
            var order = _zip.GetEntry(_prefix + "byteorder");
            if (order is not null && ReadAll(order) is var b && Encoding.ASCII.GetString(b).Trim() is var o && o != "little")
                throw Error($"byte order '{Quote(o)}' is not supported (little-endian only)");
            object root;
            try
            {
                root = new StateDictUnpickler(ReadAll(pkl)).Load();
            }
            catch (NBertException e)
            {
                throw new NBertException($"{path}: data.pkl: {e.Message}", e);
            }
            if (root is not Dictionary<object, object> dict)
                throw Error($"data.pkl holds a {root.GetType().Name}, not a state dict");
            foreach (var (key, value) in dict)
            {
                if (key is not string name) throw Error("a state dict key is not a string");
                if (value is not StateDictUnpickler.TensorRef tensor) throw Error($"'{Quote(name)}' is not a tensor");
                var entry = Check(name, tensor);
                _tensors[name] = entry;
                _infos.Add(entry.Info);
            }
        }
        catch
        {
            _zip.Dispose();
            throw;
        }
    }

    private NBertException Error(string message) => new($"{Path}: {message}.");

    /// <summary>
    /// Checks a tensor against its storage before anything is read: sizes and strides that are whole numbers,
    /// a storage entry as large as the storage claims, and every element the view reads inside it. So no
    /// later read can allocate more than the file holds or read outside it.
    /// </summary>
    private Entry Check(string name, StateDictUnpickler.TensorRef t)
    {
        NBertException Bad(string message) => Error($"tensor '{Quote(name)}': {message}");
        var storage = t.Storage;
        int size = DTypes.Size(storage.DType);
        var shape = new int[t.Size.Length];
        for (int d = 0; d < shape.Length; d++)
            shape[d] = t.Size[d] is >= 0 and <= int.MaxValue ? (int)t.Size[d] : throw Bad($"dimension {t.Size[d]} of its size is not a valid size");
        if (t.Stride.Any(s => s < 0)) throw Bad($"a negative stride ({string.Join(", ", t.Stride)}) is not supported");
        if (t.Offset < 0) throw Bad($"storage offset {t.Offset} is negative");
        if (storage.Elements < 0) throw Bad($"its storage claims {storage.Elements} elements");
        var data = _zip.GetEntry($"{_prefix}data/{storage.Key}") ?? throw Bad($"storage data/{Quote(storage.Key)} is missing");
        if (storage.Elements > data.Length / size)
            throw Bad($"storage data/{Quote(storage.Key)} has {data.Length} bytes, but its {storage.Elements} elements of {storage.DType} need more");
        if (data.Length > Math.Max(data.CompressedLength, 1) * MaxDeflateRatio)
            throw Bad($"storage data/{Quote(storage.Key)} claims {data.Length} bytes from {data.CompressedLength} compressed: the zip is corrupt");
        // Element count and the last element read; both bounded by the storage, so nothing below overflows.
        long elements = shape.Contains(0) ? 0 : 1, last = t.Offset;
        foreach (int dim in shape)
        {
            if (elements != 0 && elements > storage.Elements / Math.Max(dim, 1))
                throw Bad($"size [{string.Join(", ", shape)}] has more elements than its storage's {storage.Elements} (an expanded view is not supported)");
            elements *= dim;
        }
        if (elements > 0)
            for (int d = 0; d < shape.Length; d++)
            {
                if (shape[d] > 1 && t.Stride[d] > (storage.Elements - last) / (shape[d] - 1))
                    throw Bad($"size [{string.Join(", ", shape)}] with stride [{string.Join(", ", t.Stride)}] at offset {t.Offset} reads outside its storage of {storage.Elements} elements");
                last += (shape[d] - 1) * t.Stride[d];
            }
        if (elements > 0 && last >= storage.Elements)
            throw Bad($"size [{string.Join(", ", shape)}] with stride [{string.Join(", ", t.Stride)}] at offset {t.Offset} reads outside its storage of {storage.Elements} elements");
        var info = new TensorInfo(name, storage.DType, shape, t.Offset * size, elements * size);
        return new Entry(info, storage, data, t.Offset, t.Stride);
    }

    /// <summary>An entry's bytes: exactly as many as the zip's directory declares, or an error.</summary>
    private byte[] ReadAll(ZipArchiveEntry entry)
    {
        if (entry.Length > Array.MaxLength || entry.Length > Math.Max(entry.CompressedLength, 1) * MaxDeflateRatio)
            throw Error($"{Quote(entry.FullName)} claims {entry.Length} bytes from {entry.CompressedLength} compressed: the zip is corrupt or too large");
        try
        {
            using var s = entry.Open();
            var bytes = new byte[entry.Length];
            s.ReadExactly(bytes);
            if (s.ReadByte() >= 0) throw Error($"{Quote(entry.FullName)} holds more than the {entry.Length} bytes the zip declares");
            return bytes;
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or IOException and not FileNotFoundException or NotSupportedException)
        {
            throw new NBertException($"{Path}: {Quote(entry.FullName)} cannot be read ({e.Message}).", e);
        }
    }

    /// <inheritdoc/>
    public bool Contains(string name) => _tensors.ContainsKey(name);

    /// <inheritdoc/>
    public TensorInfo Info(string name) => Find(name).Info;

    private Entry Find(string name) => _tensors.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"{Path}: no tensor '{name}'.");

    /// <inheritdoc/>
    /// <remarks>Decompresses the tensor's storage (<c>data/N</c>) on each call and gathers the tensor's view of it (its
    /// offset and strides).</remarks>
    public float[] ReadFloat32(string name)
    {
        var t = Find(name);
        var result = new float[t.Info.ElementCount];
        DTypes.ToFloat32(Gather(t), t.Storage.DType, result);
        return result;
    }

    /// <inheritdoc/>
    public long[] ReadInt64(string name)
    {
        var t = Find(name);
        if (t.Storage.DType is not (DType.I64 or DType.I32)) throw Error($"tensor '{name}' is {t.Storage.DType}, not integer ids");
        var bytes = Gather(t);
        return t.Storage.DType == DType.I64
            ? System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(bytes).ToArray()
            : Array.ConvertAll(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(bytes).ToArray(), x => (long)x);
    }

    /// <summary>The tensor's elements in row-major order, from its storage, offset and strides (checked when opened).</summary>
    private byte[] Gather(Entry t)
    {
        int size = DTypes.Size(t.Storage.DType);
        var shape = t.Info.Shape;
        var result = new byte[t.Info.ByteLength];
        if (result.Length == 0) return result;
        var storage = ReadAll(t.Data);
        int rank = shape.Length;
        long expected = 1;
        bool contiguous = true;
        for (int d = rank - 1; d >= 0; d--)
        {
            if (shape[d] != 1 && t.Stride[d] != expected) contiguous = false;
            expected *= shape[d];
        }
        if (contiguous)
        {
            Buffer.BlockCopy(storage, checked((int)(t.Offset * size)), result, 0, result.Length);
            return result;
        }
        var index = new int[rank];
        for (long i = 0; i < t.Info.ElementCount; i++)
        {
            long at = t.Offset;
            for (int d = 0; d < rank; d++) at += index[d] * t.Stride[d];
            Buffer.BlockCopy(storage, (int)(at * size), result, (int)(i * size), size);
            for (int d = rank - 1; d >= 0; d--)
            {
                if (++index[d] < shape[d]) break;
                index[d] = 0;
            }
        }
        return result;
    }

    /// <summary>Closes the zip.</summary>
    public void Dispose() => _zip.Dispose();
}

/// <summary>
/// The pickle subset that <c>torch.save(state_dict)</c> writes (protocols 2 to 5): containers, numbers,
/// strings, persistent ids for storages, and REDUCE of exactly these globals:
/// <c>collections.OrderedDict</c>, <c>torch._utils._rebuild_tensor_v2</c>, <c>torch._utils._rebuild_parameter</c>
/// and the typed storages. Any other global is refused by name when it is read, before anything could use it.
/// </summary>
public sealed class StateDictUnpickler(byte[] data)
{
    /// <summary>A global the pickle names (<c>GLOBAL</c> or <c>STACK_GLOBAL</c>), one of the few allowed.</summary>
    /// <param name="Module">The Python module, such as <c>torch._utils</c>.</param>
    /// <param name="Name">The name in it, such as <c>_rebuild_tensor_v2</c>.</param>
    public sealed record Global(string Module, string Name);
    /// <summary>A storage the pickle refers to by persistent id.</summary>
    /// <param name="DType">The element type, from the storage class (<c>torch.FloatStorage</c> is F32).</param>
    /// <param name="Key">The storage's file in the zip, <c>data/{Key}</c>.</param>
    /// <param name="Elements">How many elements the storage claims (checked against the file before reading).</param>
    public sealed record StorageRef(DType DType, string Key, long Elements);
    /// <summary>A tensor as <c>_rebuild_tensor_v2</c> describes it: storage, offset, size and stride, unchecked.</summary>
    public sealed record TensorRef(StorageRef Storage, long Offset, long[] Size, long[] Stride);

    private static readonly Dictionary<string, DType?> Allowed = new()
    {
        ["collections.OrderedDict"] = null,
        ["torch._utils._rebuild_tensor_v2"] = null,
        ["torch._utils._rebuild_parameter"] = null,
        ["torch.FloatStorage"] = DType.F32,
        ["torch.DoubleStorage"] = DType.F64,
        ["torch.HalfStorage"] = DType.F16,
        ["torch.BFloat16Storage"] = DType.BF16,
        ["torch.LongStorage"] = DType.I64,
        ["torch.IntStorage"] = DType.I32,
    };

    private sealed class Mark;
    private static readonly Mark TheMark = new();
    private readonly List<object?> _stack = new();
    private readonly Dictionary<long, object?> _memo = new();
    private int _pos;

    /// <summary>Runs the pickle and returns its root: for a state dict, a <c>Dictionary&lt;object, object&gt;</c> of
    /// names to <see cref="TensorRef"/>s. Other values come back as <c>long</c>, <c>double</c>, <c>bool</c>,
    /// <c>string</c>, <c>List&lt;object?&gt;</c> and <c>object?[]</c> (tuples). Throws <see cref="NBertException"/> for
    /// an opcode or global that a state dict does not use, or a truncated pickle; nothing is ever called or imported.</summary>
    public object Load()
    {
        while (true)
        {
            byte op = Byte();
            switch (op)
            {
                case 0x80: Byte(); break;                                   // PROTO
                case 0x95: Length(BinaryPrimitives.ReadUInt64LittleEndian(Bytes(8)), "frame"); break; // FRAME: only its length is checked
                case (byte)'.': return Pop() ?? throw Bad("the pickle ends with None");
                case (byte)'(': _stack.Add(TheMark); break;                 // MARK
                case (byte)')': _stack.Add(Array.Empty<object?>()); break;  // EMPTY_TUPLE
                case (byte)']': _stack.Add(new List<object?>()); break;     // EMPTY_LIST
                case (byte)'}': _stack.Add(new Dictionary<object, object>()); break; // EMPTY_DICT
                case (byte)'N': _stack.Add(null); break;
                case 0x88: _stack.Add(true); break;
                case 0x89: _stack.Add(false); break;
                case (byte)'J': _stack.Add((long)BinaryPrimitives.ReadInt32LittleEndian(Bytes(4))); break;
                case (byte)'K': _stack.Add((long)Byte()); break;
                case (byte)'M': _stack.Add((long)BinaryPrimitives.ReadUInt16LittleEndian(Bytes(2))); break;
                case 0x8a: _stack.Add(Long1()); break;                      // LONG1
                case (byte)'G': _stack.Add(BinaryPrimitives.ReadDoubleBigEndian(Bytes(8))); break;
                case (byte)'X': _stack.Add(Encoding.UTF8.GetString(Bytes(Length(BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4)), "string")))); break;
                case 0x8c: _stack.Add(Encoding.UTF8.GetString(Bytes(Length(Byte(), "string")))); break;   // SHORT_BINUNICODE
                case (byte)'U': _stack.Add(Encoding.Latin1.GetString(Bytes(Length(Byte(), "string")))); break; // SHORT_BINSTRING
                case (byte)'T': _stack.Add(Encoding.Latin1.GetString(Bytes(Length(BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4)), "string")))); break;
                case (byte)'t': _stack.Add(PopToMark().ToArray()); break;   // TUPLE
                case 0x85: { var a = Pop(); _stack.Add(new[] { a }); break; }
                case 0x86: { var b = Pop(); var a = Pop(); _stack.Add(new[] { a, b }); break; }
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); _stack.Add(new[] { a, b, c }); break; }
                case (byte)'a': { var v = Pop(); AsList(Peek()).Add(v); break; }        // APPEND
                case (byte)'e': { var items = PopToMark(); AsList(Peek()).AddRange(items); break; } // APPENDS
                case (byte)'s': { var v = Pop(); var k = Pop(); AsDict(Peek())[Key(k)] = v!; break; }
                case (byte)'u':                                             // SETITEMS
                {
                    var items = PopToMark();
                    var dict = AsDict(Peek());
                    for (int i = 0; i + 1 < items.Count; i += 2) dict[Key(items[i])] = items[i + 1]!;
                    break;
                }
                case (byte)'c':                                             // GLOBAL "module\nname\n"
                {
                    string module = Line(), name = Line();
                    _stack.Add(Resolve(module, name));
                    break;
                }
                case 0x93:                                                  // STACK_GLOBAL
                {
                    var name = Pop() as string ?? throw Bad("STACK_GLOBAL without a name");
                    var module = Pop() as string ?? throw Bad("STACK_GLOBAL without a module");
                    _stack.Add(Resolve(module, name));
                    break;
                }
                case (byte)'R': { var args = Pop(); var f = Pop(); _stack.Add(Reduce(f, args as object?[] ?? throw Bad("REDUCE arguments are not a tuple"))); break; }
                case (byte)'b': Pop(); break;                               // BUILD: state of an OrderedDict (its _metadata); not needed
                case (byte)'Q': _stack.Add(PersistentLoad(Pop() as object?[] ?? throw Bad("persistent id is not a tuple"))); break;
                case (byte)'q': _memo[Byte()] = Peek(); break;              // BINPUT
                case (byte)'r': _memo[BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4))] = Peek(); break;
                case 0x94: _memo[_memo.Count] = Peek(); break;              // MEMOIZE
                case (byte)'h': _stack.Add(Memo(Byte())); break;            // BINGET
                case (byte)'j': _stack.Add(Memo(BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4)))); break;
                case (byte)'0': Pop(); break;                               // POP
                case (byte)'1': PopToMark(); break;                         // POP_MARK
                case (byte)'2': _stack.Add(Peek()); break;                  // DUP
                default:
                    throw Bad($"opcode 0x{op:x2} at byte {_pos - 1} is not part of a torch state dict");
            }
        }
    }

    private static NBertException Bad(string message) => new(message);

    /// <summary>The only place a name becomes something usable: anything not allowed stops here.</summary>
    private static Global Resolve(string module, string name)
    {
        string full = $"{module}.{name}";
        if (!Allowed.ContainsKey(full))
            throw Bad($"refusing global '{full}': a state dict only needs {string.Join(", ", Allowed.Keys)}. The file may be malicious.");
        return new Global(module, name);
    }

    private object Reduce(object? callable, object?[] args)
    {
        if (callable is not Global g) throw Bad("REDUCE of something that is not a known global");
        switch ($"{g.Module}.{g.Name}")
        {
            case "collections.OrderedDict":
                if (args.Length != 0) throw Bad("OrderedDict with arguments");
                return new Dictionary<object, object>();
            case "torch._utils._rebuild_parameter":
                return args.Length >= 1 && args[0] is TensorRef p ? p : throw Bad("_rebuild_parameter without a tensor");
            case "torch._utils._rebuild_tensor_v2":
            {
                if (args.Length < 4 || args[0] is not StorageRef storage) throw Bad("_rebuild_tensor_v2 without a storage");
                long offset = Int(args[1]);
                var shape = (args[2] as object?[] ?? throw Bad("tensor size is not a tuple")).Select(Int).ToArray();
                var stride = (args[3] as object?[] ?? throw Bad("tensor stride is not a tuple")).Select(Int).ToArray();
                if (shape.Length != stride.Length) throw Bad("tensor size and stride disagree");
                return new TensorRef(storage, offset, shape, stride);
            }
            default:
                throw Bad($"'{g.Module}.{g.Name}' cannot be called");
        }
    }

    private static object PersistentLoad(object?[] id)
    {
        // ('storage', storage_type, key, location, numel)
        if (id.Length < 5 || id[0] as string != "storage" || id[1] is not Global type || id[2] is not string key)
            throw Bad("persistent id is not ('storage', type, key, location, numel)");
        var dtype = Allowed.GetValueOrDefault($"{type.Module}.{type.Name}") ?? throw Bad($"'{type.Module}.{type.Name}' is not a storage type");
        return new StorageRef(dtype, key, Int(id[4]));
    }

    private static long Int(object? o) => o is long l ? l : throw Bad($"expected an integer, found {o?.GetType().Name ?? "None"}");
    private static object Key(object? k) => k ?? throw Bad("a dict key is None");
    private static List<object?> AsList(object? o) => o as List<object?> ?? throw Bad("APPEND to something that is not a list");
    private static Dictionary<object, object> AsDict(object? o) => o as Dictionary<object, object> ?? throw Bad("SETITEM on something that is not a dict");
    private object? Memo(long key) => _memo.TryGetValue(key, out var v) ? v : throw Bad($"memo {key} was never stored");

    private byte Byte() => _pos < data.Length ? data[_pos++] : throw Bad("the pickle is truncated");

    /// <summary>A length read from the pickle, refused unless that many bytes follow: nothing is ever sized
    /// from a length alone.</summary>
    private int Length(ulong n, string what) =>
        n <= (ulong)(data.Length - _pos) ? (int)n : throw Bad($"a {what} of {n} bytes runs past the end of the pickle ({data.Length - _pos} bytes remain)");

    private ReadOnlySpan<byte> Bytes(int n)
    {
        if (n < 0 || n > data.Length - _pos) throw Bad("the pickle is truncated");
        var s = data.AsSpan(_pos, n);
        _pos += n;
        return s;
    }

    private string Line()
    {
        int end = Array.IndexOf(data, (byte)'\n', _pos);
        if (end < 0) throw Bad("the pickle is truncated");
        string s = Encoding.ASCII.GetString(data, _pos, end - _pos);
        _pos = end + 1;
        return s;
    }

    private long Long1()
    {
        int n = Byte();
        if (n > 8) throw Bad("integer too large");
        var b = Bytes(n);
        long v = 0;
        for (int i = n - 1; i >= 0; i--) v = (v << 8) | b[i];
        if (n > 0 && n < 8 && (b[n - 1] & 0x80) != 0) v -= 1L << (8 * n); // sign
        return v;
    }

    private object? Pop()
    {
        if (_stack.Count == 0) throw Bad("stack underflow");
        var v = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        if (ReferenceEquals(v, TheMark)) throw Bad("unexpected MARK");
        return v;
    }

    private object? Peek() => _stack.Count > 0 ? _stack[^1] : throw Bad("stack underflow");

    private List<object?> PopToMark()
    {
        int mark = _stack.FindLastIndex(x => ReferenceEquals(x, TheMark));
        if (mark < 0) throw Bad("no MARK on the stack");
        var items = _stack.GetRange(mark + 1, _stack.Count - mark - 1);
        _stack.RemoveRange(mark, _stack.Count - mark);
        return items;
    }
}
