using System.Buffers.Binary;
using System.IO.Compression;
using System.Text.Json.Nodes;
using Google.Protobuf;
using NBert.IO;
using NBert.Modeling;
using NBert.Tests.IO;
using Onnx;
using Xunit.Abstractions;
using NBert.Schema;

namespace NBert.Tests.Fuzz;

/// <summary>
/// Seeded mutations of the checkpoint fixtures (safetensors header and offsets, a sharded index,
/// pytorch_model.bin's pickle and zip, ONNX): every case loads or is refused with NBertException.
/// A checkpoint that loads must also run.
/// </summary>
public sealed class CheckpointFuzzTests(ITestOutputHelper output) : TempDirectoryTest
{
    private readonly FuzzHarness _fuzz = new(output);
    private static readonly string EncoderOnly = Fixtures.Path("model", "encoder_only");

    /// <summary>Loads the model in <paramref name="dir"/> and runs it on a short batch.</summary>
    internal static void LoadAndRun(string dir, BertArchitecture? architecture = null)
    {
        var model = BertPreTrainedModel.FromPretrained(dir, architecture);
        int v = model.Config.VocabSize;
        var ids = new[] { 2 % v, 7 % v, 11 % v, 3 % v };
        model.Forward(new ModelInputs(1, Math.Min(4, model.Config.MaxPositionEmbeddings), ids[..Math.Min(4, model.Config.MaxPositionEmbeddings)]));
    }

    private static long Size(params string[] paths) => paths.Where(File.Exists).Sum(p => new FileInfo(p).Length);

    [Fact]
    public void Safetensors_header_and_offsets()
    {
        File.Copy(Path.Combine(EncoderOnly, "config.json"), Temp("config.json"));
        byte[] original = File.ReadAllBytes(Path.Combine(EncoderOnly, "model.safetensors"));
        int headerLength = (int)BinaryPrimitives.ReadInt64LittleEndian(original);
        var header = JsonNode.Parse(original.AsSpan(8, headerLength))!;
        var data = original.AsMemory(8 + headerLength);
        string path = Temp("model.safetensors");
        _fuzz.Run("safetensors", 4000, r =>
        {
            byte[] bytes;
            switch (r.Next(10))
            {
                case < 6:
                {
                    // A changed header, its length written to match (or not, sometimes).
                    var json = Mutations.Json(r, header);
                    bytes = new byte[8 + json.Length + data.Length];
                    BinaryPrimitives.WriteInt64LittleEndian(bytes, r.Next(20) == 0 ? json.Length + r.Next(-8, 9) : json.Length);
                    json.CopyTo(bytes, 8);
                    data.Span.CopyTo(bytes.AsSpan(8 + json.Length));
                    break;
                }
                case < 9: bytes = Mutations.Bytes(r, original, 0, 8 + headerLength); break;
                default: bytes = Mutations.Bytes(r, original); break;
            }
            File.WriteAllBytes(path, bytes);
            return bytes.Length + Size(Temp("config.json"));
        }, () =>
        {
            using (var file = new SafeTensorsFile(path))
                foreach (var t in file.Tensors)
                    if (t.DType is DType.I64 or DType.I32) file.ReadInt64(t.Name); else file.ReadFloat32(t.Name);
            LoadAndRun(Dir);
        });
    }

    [Fact]
    public void Sharded_index()
    {
        File.Copy(Path.Combine(EncoderOnly, "config.json"), Temp("config.json"));
        var weightMap = new JsonObject();
        using (var source = new SafeTensorsFile(Path.Combine(EncoderOnly, "model.safetensors")))
            foreach (var group in source.Tensors.GroupBy(t => t.Name.StartsWith("embeddings.", StringComparison.Ordinal) ? 1 : 2))
            {
                string shard = $"model-0000{group.Key}-of-00002.safetensors";
                SafeTensorsWriter.Write(Temp(shard), group.Select(t => SafeTensor.Float32(t.Name, t.Shape, source.ReadFloat32(t.Name))).ToList());
                foreach (var t in group) weightMap[t.Name] = shard;
            }
        var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = 1234 }, ["weight_map"] = weightMap };
        byte[] original = System.Text.Encoding.UTF8.GetBytes(index.ToJsonString());
        string path = Temp(Checkpoint.SafeTensorsIndexName);
        long shards = Size(Temp("model-00001-of-00002.safetensors"), Temp("model-00002-of-00002.safetensors"), Temp("config.json"));
        _fuzz.Run("sharded index", 3000, r =>
        {
            var bytes = r.Next(10) < 8 ? Mutations.Json(r, index) : Mutations.Bytes(r, original);
            File.WriteAllBytes(path, bytes);
            return bytes.Length + shards;
        }, () => LoadAndRun(Dir));
    }

    [Fact]
    public void Pytorch_model_bin()
    {
        string source = Fixtures.Path("model", "pretraining");
        File.Copy(Path.Combine(source, "config.json"), Temp("config.json"));
        byte[] original = File.ReadAllBytes(Path.Combine(source, "pytorch_model.bin"));
        List<(string Name, byte[] Bytes)> entries;
        using (var zip = new ZipArchive(new MemoryStream(original)))
            entries = zip.Entries.Select(e =>
            {
                using var s = e.Open();
                var m = new MemoryStream();
                s.CopyTo(m);
                return (e.FullName, m.ToArray());
            }).ToList();
        int pickle = entries.FindIndex(e => e.Name.EndsWith("data.pkl", StringComparison.Ordinal));
        string path = Temp("pytorch_model.bin");
        bool run = false;
        _fuzz.Run("pytorch_model.bin", 4000, r =>
        {
            run = r.Next(4) == 0; // building and running the model too costs more than reading: a quarter of the cases
            byte[] bytes;
            if (r.Next(10) < 8)
            {
                // The pickle (or, sometimes, one storage's length) changed inside an intact zip.
                var changed = entries.ToList();
                if (r.Next(6) > 0) changed[pickle] = (changed[pickle].Name, Mutations.Bytes(r, changed[pickle].Bytes));
                else
                {
                    int i = r.Next(changed.Count);
                    changed[i] = (changed[i].Name, changed[i].Bytes[..r.Next(changed[i].Bytes.Length + 1)]);
                }
                var m = new MemoryStream();
                using (var zip = new ZipArchive(m, ZipArchiveMode.Create, leaveOpen: true))
                    foreach (var (name, content) in changed)
                        using (var s = zip.CreateEntry(name, r.Next(8) == 0 ? CompressionLevel.Fastest : CompressionLevel.NoCompression).Open())
                            s.Write(content);
                bytes = m.ToArray();
            }
            else
            {
                // The zip itself: its local headers at the start, or its central directory at the end.
                int end = original.Length, start = r.Next(2) == 0 ? 0 : Math.Max(0, end - 4096);
                bytes = Mutations.Bytes(r, original, start, r.Next(2) == 0 ? Math.Min(end, start + 4096) : end);
            }
            File.WriteAllBytes(path, bytes);
            return bytes.Length + Size(Temp("config.json"));
        }, () =>
        {
            using (var bin = new PyTorchCheckpoint(path))
                foreach (var t in bin.Tensors)
                    if (t.DType is DType.I64 or DType.I32) bin.ReadInt64(t.Name); else bin.ReadFloat32(t.Name);
            if (run) LoadAndRun(Dir);
        });
    }

    [Fact]
    public void Onnx()
    {
        byte[] original = TinyOnnx.Bytes.Value;
        var model = ModelProto.Parser.ParseFrom(original);
        string path = Temp("model.onnx"), vocab = Temp("vocab.txt"), output = Temp("imported");
        File.Copy(Path.Combine(EncoderOnly, "vocab.txt"), vocab);
        bool write = false;
        _fuzz.Run("onnx", 2500, r =>
        {
            var bytes = r.Next(10) < 6 ? ChangeGraph(r, model).ToByteArray() : Mutations.Bytes(r, original);
            File.WriteAllBytes(path, bytes);
            write = r.Next(5) == 0;
            return bytes.Length + Size(vocab);
        }, () =>
        {
            if (!write)
            {
                OnnxImport.Read(path);
                return;
            }
            if (Directory.Exists(output)) Directory.Delete(output, true);
            OnnxImport.ToDirectory(path, vocab, output);
            LoadAndRun(output);
        });
    }

    /// <summary>One to three changes to a copy of the graph: an initializer's shape, type, data, name or place,
    /// or a node's inputs, outputs, op type or attributes.</summary>
    private static ModelProto ChangeGraph(Random r, ModelProto original)
    {
        var model = original.Clone();
        var g = model.Graph;
        long[] dims = [0, 1, -1, 2, 3, 31, 32, 33, 4000, int.MaxValue, 1L << 33];
        string[] ops = ["MatMul", "Add", "Div", "Erf", "Sqrt", "Constant", "Tanh", "Pow", "Sigmoid", "Relu", ""];
        int edits = 1 + r.Next(3);
        for (int e = 0; e < edits; e++)
        {
            if (r.Next(2) == 0 && g.Initializer.Count > 0)
            {
                var t = g.Initializer[r.Next(g.Initializer.Count)];
                switch (r.Next(9))
                {
                    case 0: if (t.Dims.Count > 0) t.Dims[r.Next(t.Dims.Count)] = dims[r.Next(dims.Length)]; break;
                    case 1: if (r.Next(2) == 0) t.Dims.Add(dims[r.Next(dims.Length)]); else t.Dims.Clear(); break;
                    case 2: t.DataType = r.Next(17); break;
                    case 3: t.RawData = ByteString.CopyFrom(t.RawData.Span[..r.Next(t.RawData.Length + 1)]); break;
                    case 4: t.Name = g.Initializer[r.Next(g.Initializer.Count)].Name; break;
                    case 5: t.Name = $"encoder.layer.{dims[r.Next(dims.Length)]}.output.dense.{(r.Next(2) == 0 ? "bias" : "weight")}"; break;
                    case 6: t.DataLocation = TensorProto.Types.DataLocation.External; break;
                    case 7: t.FloatData.Add(1f); break;
                    default: g.Initializer.Remove(t); break;
                }
            }
            else if (g.Node.Count > 0)
            {
                var n = g.Node[r.Next(g.Node.Count)];
                switch (r.Next(7))
                {
                    case 0: if (n.Input.Count > 0) n.Input.RemoveAt(r.Next(n.Input.Count)); break;
                    case 1: if (n.Output.Count > 0) n.Output.RemoveAt(r.Next(n.Output.Count)); break;
                    case 2: n.OpType = ops[r.Next(ops.Length)]; break;
                    case 3: n.Attribute.Clear(); break;
                    case 4: if (n.Input.Count > 0) n.Input[r.Next(n.Input.Count)] = g.Initializer.Count > 0 ? g.Initializer[r.Next(g.Initializer.Count)].Name : ""; break;
                    case 5: if (n.Attribute.Count > 0 && n.Attribute[0].T is { } c) { c.DataType = r.Next(17); c.RawData = ByteString.CopyFrom(c.RawData.Span[..r.Next(c.RawData.Length + 1)]); } break;
                    default: g.Node.Remove(n); break;
                }
            }
        }
        return model;
    }
}
