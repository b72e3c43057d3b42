using System.IO.Compression;
using System.Text;
using NBert.IO;

namespace NBert.Tests.IO;

/// <summary>Hostile and broken <c>pytorch_model.bin</c> files: lengths past the end, sizes no storage backs.</summary>
public sealed class StateDictPickleTests : TempDirectoryTest
{
    /// <summary>Pickle opcodes written by hand, as <c>torch.save</c> writes them (protocol 2).</summary>
    internal sealed class Pickle
    {
        private readonly MemoryStream _bytes = new();

        public Pickle Op(params byte[] bytes) { _bytes.Write(bytes); return this; }
        public Pickle Op(char op) => Op((byte)op);
        public Pickle Global(string module, string name) => Op('c').Op(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));
        public Pickle Str(string s)
        {
            var b = Encoding.UTF8.GetBytes(s);
            return Op('X').Op(BitConverter.GetBytes(b.Length)).Op(b);
        }
        public Pickle Int(long v) => v is >= 0 and < 256 ? Op('K', (byte)v) : Op(0x8a, 8).Op(BitConverter.GetBytes(v));
        private Pickle Op(char op, byte b) => Op((byte)op, b);
        public Pickle Tuple(params long[] values)
        {
            Op('(');
            foreach (var v in values) Int(v);
            return Op('t');
        }

        /// <summary><c>OrderedDict</c> of one tensor <paramref name="name"/> over storage "0".</summary>
        public static byte[] StateDict(string name, long numel, long[] shape, long[] stride, long offset = 0, string storage = "FloatStorage")
        {
            var p = new Pickle().Op(0x80, 2).Global("collections", "OrderedDict").Op(')').Op('R').Op('(');
            p.Str(name).Global("torch._utils", "_rebuild_tensor_v2").Op('(');
            p.Op('(').Str("storage").Global("torch", storage).Str("0").Str("cpu").Int(numel).Op('t').Op('Q');
            p.Int(offset).Tuple(shape).Tuple(stride).Op(0x89).Global("collections", "OrderedDict").Op(')').Op('R').Op('t').Op('R');
            return p.Op('u').Op('.').ToArray();
        }

        public byte[] ToArray() => _bytes.ToArray();
    }

    private string Bin(byte[] pickle, byte[]? storage = null)
    {
        string path = Temp("pytorch_model.bin");
        File.Delete(path);
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        using (var s = zip.CreateEntry("archive/data.pkl", CompressionLevel.NoCompression).Open()) s.Write(pickle);
        if (storage is not null)
            using (var s = zip.CreateEntry("archive/data/0", CompressionLevel.NoCompression).Open()) s.Write(storage);
        return path;
    }

    [Fact]
    public void A_hand_written_state_dict_loads_so_the_refusals_below_are_about_their_one_change()
    {
        var values = new[] { 1f, 2f, 3f, 4f, 5f, 6f };
        var storage = System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
        using var bin = new PyTorchCheckpoint(Bin(Pickle.StateDict("w", 6, [2, 3], [3, 1]), storage));
        Assert.Equal([2, 3], bin.Info("w").Shape);
        Assert.Equal(values, bin.ReadFloat32("w"));
        using var transposed = new PyTorchCheckpoint(Bin(Pickle.StateDict("w", 6, [3, 2], [1, 3]), storage));
        Assert.Equal([1f, 4f, 2f, 5f, 3f, 6f], transposed.ReadFloat32("w"));
    }

    public static readonly TheoryData<byte[], string> Truncated = new()
    {
        { [0x80, 2, (byte)'X', 0xff, 0xff, 0xff, 0x7f, (byte)'a', (byte)'.'], "2147483647" },   // BINUNICODE of 2^31 - 1 bytes
        { [0x80, 2, (byte)'X', 0xff, 0xff, 0xff, 0xff, (byte)'a', (byte)'.'], "4294967295" },   // BINUNICODE of 2^32 - 1 bytes
        { [0x80, 2, (byte)'T', 0x00, 0x00, 0x00, 0x80, (byte)'.'], "2147483648" },              // BINSTRING
        { [0x80, 2, 0x8c, 0xff, (byte)'a', (byte)'.'], "255" },                                  // SHORT_BINUNICODE
        { [0x80, 4, 0x95, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, (byte)'.'], "frame" }, // FRAME of 2^63 - 1 bytes
        { [0x80, 2, 0x8a, 0xff, 1, 2, (byte)'.'], "integer" },                                   // LONG1 of 255 bytes
    };

    [Theory, MemberData(nameof(Truncated))]
    public void A_length_larger_than_the_bytes_that_remain_is_refused_before_anything_is_allocated(byte[] pickle, string named)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<NBertException>(() => new StateDictUnpickler(pickle).Load());
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20, "allocated more than 1 MiB for a 10-byte pickle");
        Assert.Contains(named, ex.Message);
        string path = Bin(pickle);
        Assert.Contains(path, Assert.Throws<NBertException>(() => new PyTorchCheckpoint(path)).Message);
    }

    public static readonly TheoryData<long, long[], long[], long, string> Unbacked = new()
    {
        { 1L << 40, [2, 3], [3, 1], 0, "storage data/0 has 24 bytes" },                 // numel far beyond the stored bytes
        { 6, [1 << 30], [0], 0, "more elements than its storage" },                       // a broadcast view of 4 GiB over 24 bytes
        { 6, [3, 2], [3, 1], 0, "reads outside its storage" },                           // strides that step past the end
        { 6, [2, 3], [3, 1], 1, "reads outside its storage" },                           // offset past the end
        { 6, [2, 3], [3, 1], -1, "offset -1" },
        { 6, [1L << 40, 1], [1, 1], 0, "dimension 1099511627776" },                         // a dimension beyond an int
        { 6, [3, -2], [1, 1], 0, "dimension -2" },
        { 6, [2, 3], [-3, 1], 0, "stride" },
        { -6, [2, 3], [3, 1], 0, "-6 elements" },
    };

    [Theory, MemberData(nameof(Unbacked))]
    public void A_tensor_its_storage_cannot_back_is_refused_when_opened(long numel, long[] shape, long[] stride, long offset, string message)
    {
        var storage = new byte[24];
        string path = Bin(Pickle.StateDict("w", numel, shape, stride, offset), storage);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<NBertException>(() => new PyTorchCheckpoint(path));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20, "allocated more than 1 MiB for a tiny checkpoint");
        Assert.Contains(path, ex.Message);
        Assert.Contains("'w'", ex.Message);
        Assert.Contains(message, ex.Message);
    }
}
