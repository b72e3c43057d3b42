using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using NBert.IO;

namespace NBert.Tests.IO;

public sealed class CheckpointIOTests : TempDirectoryTest
{
    [Fact]
    public void Reads_the_fixture_checkpoint()
    {
        using var st = new SafeTensorsFile(Fixtures.Path("model", "pretraining", "model.safetensors"));
        Assert.Equal(46, st.Tensors.Count);
        Assert.Equal("pt", st.Metadata["format"]);
        var words = st.Info("bert.embeddings.word_embeddings.weight");
        Assert.Equal(DType.F32, words.DType);
        Assert.Equal([4000, 32], words.Shape);
        Assert.Equal(4000 * 32, st.ReadFloat32(words.Name).Length);
    }

    [Fact]
    public void Pytorch_bin_holds_exactly_the_safetensors_weights()
    {
        using var st = new SafeTensorsFile(Fixtures.Path("model", "pretraining", "model.safetensors"));
        using var pt = new PyTorchCheckpoint(Fixtures.Path("model", "pretraining", "pytorch_model.bin"));
        Assert.Equal(st.Tensors.Select(t => t.Name).Order(), pt.Tensors.Select(t => t.Name).Where(n => !n.Contains("decoder")).Order());
        foreach (var t in st.Tensors)
        {
            Assert.Equal(t.Shape, pt.Info(t.Name).Shape);
            Assert.Equal(st.ReadFloat32(t.Name), pt.ReadFloat32(t.Name));
        }
    }

    [Fact]
    public void Written_files_read_back_with_aligned_header_and_pt_metadata()
    {
        string path = Temp("round.safetensors");
        SafeTensorsWriter.Write(path,
        [
            SafeTensor.Float32("w", [2, 3], [1f, -2f, 3.5f, 0f, float.MaxValue, 1e-30f]),
            SafeTensor.Int64("ids", [3], [101L, -1L, long.MaxValue]),
            SafeTensor.Float32("empty", [0, 4], []),
        ]);
        var bytes = File.ReadAllBytes(path);
        Assert.Equal(0, BinaryPrimitives.ReadInt64LittleEndian(bytes) % 8);
        using var st = new SafeTensorsFile(path);
        Assert.Equal("pt", st.Metadata["format"]);
        Assert.Equal([1f, -2f, 3.5f, 0f, float.MaxValue, 1e-30f], st.ReadFloat32("w"));
        Assert.Equal([101L, -1L, long.MaxValue], st.ReadInt64("ids"));
        Assert.Empty(st.ReadFloat32("empty"));
        Assert.Empty(Directory.GetFiles(Dir, "*.tmp"));
    }

    [Fact]
    public void Half_bfloat_double_and_int32_convert_to_float32()
    {
        string path = Temp("dtypes.safetensors");
        byte[] Le<T>(params T[] values) where T : struct => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
        SafeTensorsWriter.Write(path,
        [
            new SafeTensor("f16", DType.F16, [3], Le((Half)1.0, (Half)(-2.5), (Half)65504)),
            new SafeTensor("bf16", DType.BF16, [2], Le((ushort)0x3F80, (ushort)0xC0A0)), // 1.0, -5.0
            new SafeTensor("f64", DType.F64, [2], Le(0.1, -1e10)),
            new SafeTensor("i32", DType.I32, [2], Le(7, -3)),
        ]);
        using var st = new SafeTensorsFile(path);
        Assert.Equal([1f, -2.5f, 65504f], st.ReadFloat32("f16"));
        Assert.Equal([1f, -5f], st.ReadFloat32("bf16"));
        Assert.Equal([0.1f, -1e10f], st.ReadFloat32("f64"));
        Assert.Equal([7L, -3L], st.ReadInt64("i32"));
        Assert.Equal([7f, -3f], st.ReadFloat32("i32"));
        var ex = Assert.Throws<NBertException>(() => st.ReadInt64("f16"));
        Assert.Contains("'f16'", ex.Message);
    }

    private string Raw(string name, string header, int dataBytes, long? declaredLength = null)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + h.Length + dataBytes];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, declaredLength ?? h.Length);
        h.CopyTo(bytes, 8);
        string path = Temp(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    public static readonly TheoryData<string, int, long?, string> Corrupt = new()
    {
        { """{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}""", 8, 1_000_000, "header length" },
        { """{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]""", 8, null, "not valid JSON" },
        { """{"a": {"dtype": "Q7", "shape": [2], "data_offsets": [0, 8]}}""", 8, null, "'a': dtype Q7" },
        { """{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}}""", 8, null, "'a': data_offsets [0, 16] fall outside" },
        { """{"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}""", 8, null, "'a': holds 8 bytes but shape [3]" },
        { """{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}""", 8, null, "'b': its data overlaps tensor 'a'" },
        { """{"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}""", 8, null, "'a': shape has a bad dimension" },
        { """[1, 2]""", 0, null, "not a JSON object" },
    };

    [Theory, MemberData(nameof(Corrupt))]
    public void Corrupt_files_are_refused_naming_the_file_and_the_tensor(string header, int dataBytes, long? declared, string message)
    {
        string path = Raw("bad.safetensors", header, dataBytes, declared);
        var ex = Assert.Throws<NBertException>(() => new SafeTensorsFile(path));
        Assert.Contains(path, ex.Message);
        Assert.Contains(message, ex.Message);
    }

    [Fact]
    public void A_header_that_is_not_utf8_is_refused()
    {
        byte[] header = [.. Encoding.ASCII.GetBytes("{\""), 0xff, 0xfe, .. Encoding.ASCII.GetBytes("\": 1}")];
        var bytes = new byte[8 + header.Length];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, header.Length);
        header.CopyTo(bytes, 8);
        File.WriteAllBytes(Temp("latin.safetensors"), bytes);
        var ex = Assert.Throws<NBertException>(() => new SafeTensorsFile(Temp("latin.safetensors")));
        Assert.Contains("latin.safetensors", ex.Message);
        Assert.Contains("not valid UTF-8", ex.Message);
    }

    [Fact]
    public void A_shape_whose_element_count_overflows_is_refused_naming_the_tensor()
    {
        string path = Raw("huge.safetensors", """{"w": {"dtype": "F32", "shape": [2147483647, 2147483647, 2147483647], "data_offsets": [0, 8]}}""", 8);
        var ex = Assert.Throws<NBertException>(() => new SafeTensorsFile(path));
        Assert.Contains("'w'", ex.Message);
        Assert.Contains("[2147483647, 2147483647, 2147483647]", ex.Message);
    }

    [Fact]
    public void A_tensor_named_twice_is_refused_rather_than_the_last_one_winning()
    {
        string path = Raw("twice.safetensors",
            """{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}""", 8);
        var ex = Assert.Throws<NBertException>(() => new SafeTensorsFile(path));
        Assert.Contains("'w'", ex.Message);
        Assert.Contains("twice", ex.Message);
    }

    [Fact]
    public void A_file_shorter_than_its_header_length_is_refused()
    {
        string path = Temp("tiny.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Contains("fewer than the 8-byte header length", Assert.Throws<NBertException>(() => new SafeTensorsFile(path)).Message);
    }

    [Fact]
    public void Sharded_checkpoints_are_read_through_their_index()
    {
        SafeTensorsWriter.Write(Temp("model-00001-of-00002.safetensors"), [SafeTensor.Float32("a", [2], [1f, 2f])]);
        SafeTensorsWriter.Write(Temp("model-00002-of-00002.safetensors"), [SafeTensor.Float32("b", [1], [3f])]);
        File.WriteAllText(Temp(Checkpoint.SafeTensorsIndexName),
            """{"metadata": {"total_size": 12}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}""");
        using var source = Checkpoint.Open(Dir);
        Assert.Equal([1f, 2f], source.ReadFloat32("a"));
        Assert.Equal([3f], source.ReadFloat32("b"));
        File.Delete(Temp("model-00002-of-00002.safetensors"));
        var ex = Assert.Throws<MissingFileException>(() => Checkpoint.Open(Dir));
        Assert.Contains("model-00002-of-00002.safetensors", ex.Message);
    }

    [Theory]
    [InlineData("""{"weight_map": {"a": 1}}""", "'a'")]
    [InlineData("""[{"weight_map": {"a": "model-00001-of-00002.safetensors"}}]""", "not a JSON object")]
    [InlineData("""{"weight_map": ["a"]}""", "weight_map")]
    [InlineData("""{"weight_map": {"a": null}}""", "'a'")]
    [InlineData("""{"weight_map": {"a": "../model-00001-of-00002.safetensors"}}""", "not a file beside the index")]
    [InlineData("""{"weight_map": {"a": "model-00001-of-00002.safetensors", "a": "model-00001-of-00002.safetensors"}}""", "Duplicate property 'a'")]
    [InlineData("""{"weight_map": {"a": "model-00001-of-00002.safetensors"}""", "not valid JSON")]
    public void A_broken_shard_index_is_refused_naming_the_index_and_the_field(string index, string message)
    {
        SafeTensorsWriter.Write(Temp("model-00001-of-00002.safetensors"), [SafeTensor.Float32("a", [2], [1f, 2f])]);
        File.WriteAllText(Temp(Checkpoint.SafeTensorsIndexName), index);
        var ex = Assert.Throws<NBertException>(() => Checkpoint.Open(Dir));
        Assert.Contains(Checkpoint.SafeTensorsIndexName, ex.Message);
        Assert.Contains(message, ex.Message);
    }

    /// <summary>A pickle that would run <c>os.system("echo pwned")</c> if it were unpickled by Python.</summary>
    private string MaliciousBin()
    {
        var pkl = new MemoryStream();
        pkl.Write([0x80, 2]);                                   // PROTO 2
        pkl.Write(Encoding.ASCII.GetBytes("cposix\nsystem\n")); // GLOBAL posix.system (what os.system pickles as)
        var cmd = Encoding.UTF8.GetBytes("echo pwned > " + Temp("pwned"));
        pkl.WriteByte((byte)'X');
        pkl.Write(BitConverter.GetBytes(cmd.Length));
        pkl.Write(cmd);
        pkl.Write([0x85, (byte)'R', (byte)'.']);               // TUPLE1 REDUCE STOP
        string path = Temp("pytorch_model.bin");
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Create))
        using (var s = zip.CreateEntry("archive/data.pkl").Open())
            s.Write(pkl.ToArray());
        return path;
    }

    [Fact]
    public void A_pickle_that_calls_os_system_is_refused_naming_the_global_and_never_runs()
    {
        string path = MaliciousBin();
        var ex = Assert.Throws<NBertException>(() => new PyTorchCheckpoint(path));
        Assert.Contains("posix.system", ex.Message);
        Assert.Contains(path, ex.Message);
        Assert.False(File.Exists(Temp("pwned")));
    }

    [Fact]
    public void A_zip_without_data_pkl_or_a_non_zip_is_refused()
    {
        string path = Temp("x.bin");
        File.WriteAllText(path, "not a zip");
        Assert.Contains(path, Assert.Throws<NBertException>(() => new PyTorchCheckpoint(path)).Message);
        using (var zip = ZipFile.Open(Temp("y.bin"), ZipArchiveMode.Create)) zip.CreateEntry("other.txt");
        Assert.Contains("no data.pkl", Assert.Throws<NBertException>(() => new PyTorchCheckpoint(Temp("y.bin"))).Message);
    }
}
