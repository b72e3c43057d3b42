using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using NBert.Float64Reference;
using NBert.IO;
using NBert.Modeling;
using NBert.Pipelines;
using NBert.Tokenization;
using NBert.Schema;
using NBert.Tasks;

namespace NBert.Tests.Modeling;

/// <summary>
/// Both built-in models against ONNX Runtime 1.31.1 on their packages' own ONNX, and snowflake-arctic-embed-xs against
/// its float64 reference (<c>arctic/</c>, made by tools/Float64Reference, which is itself checked here against
/// transformers' float64 reference of all-MiniLM-L6-v2). The texts are the arctic fixture's: empty to 128 tokens,
/// padded together.
/// </summary>
public sealed class BuiltinParityTests
{
    private static string[] Texts => Fixtures.Json("arctic", "arctic_ref.json")["texts"]!.AsArray().Select(t => (string)t!).ToArray();

    private static double MaxOnUnmasked(float[] x, float[] y, int[] mask, int h)
    {
        double worst = 0;
        for (int i = 0; i < x.Length; i++)
            if (mask[i / h] == 1) worst = Math.Max(worst, Math.Abs(x[i] - y[i]));
        return worst;
    }

    [Fact]
    public void Arctic_xs_config_is_inferred_from_its_onnx_and_it_has_no_pooler()
    {
        var result = PackageModel.ArcticXs.Import.Result;
        var c = result.Config;
        Assert.Equal((6, 384, 12, 1536, 512, 30522, 2, "gelu", 1e-12), (c.NumHiddenLayers, c.HiddenSize, c.NumAttentionHeads,
            c.IntermediateSize, c.MaxPositionEmbeddings, c.VocabSize, c.TypeVocabSize, c.HiddenAct, c.LayerNormEps));
        Assert.False(result.HasPooler);
        Assert.Contains(result.Notes, n => n.StartsWith("ONNX IR version 6, opset ai.onnx 11 from pytorch 2.2.1", StringComparison.Ordinal));
        Assert.Contains(result.Notes, n => n.StartsWith("no pooler", StringComparison.Ordinal));
        var model = BertPreTrainedModel.FromPretrained(PackageModel.ArcticXs.Import.Model);
        Assert.False(model.HasPoolingLayer);
        Assert.Empty(model.LoadReport!.Initialized);
        Assert.DoesNotContain(model.Parameters.Keys, k => k.StartsWith("pooler.", StringComparison.Ordinal));
    }

    /// <summary>
    /// Against <c>arctic/</c> (float64 on the package's float32 weights): last_hidden_state on unmasked positions and the
    /// sentence embeddings of the built-in's own pooling ([CLS], normalised, read from its sentence-transformers files)
    /// within 1e-5.
    /// </summary>
    [Fact]
    public void Arctic_xs_matches_its_float64_reference()
    {
        using var reference = new SafeTensorsFile(Fixtures.Path("arctic", "arctic_ref.safetensors"));
        var shape = reference.Info("input_ids").Shape;
        int b = shape[0], s = shape[1], h = 384;
        int[] Ints(string name) => reference.ReadInt64(name).Select(v => (int)v).ToArray();
        var mask = Ints("attention_mask");
        var directory = PackageModel.ArcticXs.Builtin;
        var model = BertPreTrainedModel.FromPretrained(directory);
        var hidden = model.Forward(new ModelInputs(b, s, Ints("input_ids"), Ints("token_type_ids"), mask)).LastHiddenState!.Data;
        double lastHidden = MaxOnUnmasked(hidden, reference.ReadFloat32("last_hidden_state"), mask, h);
        Assert.True(lastHidden <= 1e-5, $"last_hidden_state: max |difference| {lastHidden:E2} from the float64 reference");

        // The ids the fixture holds are the ones the built-in's tokenizer gives.
        var tokenizer = BertTokenizer.FromPretrained(directory);
        var encodings = tokenizer.EncodeBatch(Texts, new EncodeOptions { MaxLength = 128, Truncation = TruncationStrategy.LongestFirst, Padding = PaddingStrategy.Longest });
        Assert.Equal(Ints("input_ids"), encodings.SelectMany(e => e.InputIds));

        var options = SentenceEmbeddings.ModelOptions(directory);
        Assert.Equal((Pooling.Cls, true, 512), (options.Pooling, options.Normalize, options.MaxLength));
        var embedder = new SentenceEmbeddings(tokenizer, model, options with { MaxLength = 128 }); // the fixture's truncation
        var expected = reference.ReadFloat64("sentence_embedding");
        var embedded = embedder.Embed(Texts).SelectMany(v => v).ToArray();
        double sentences = embedded.Select((v, i) => Math.Abs(v - expected[i])).Max();
        Assert.True(sentences <= 1e-5, $"sentence embeddings: max |difference| {sentences:E2} from the float64 reference");
        Console.WriteLine($"arctic-xs max |difference| from the float64 reference: last_hidden_state {lastHidden:E2}, sentence embeddings {sentences:E2}");
    }

    /// <summary>NBert against ONNX Runtime on the package's own ONNX: last_hidden_state on unmasked positions, and the
    /// sentence embeddings of each model's own pooling (ONNX Runtime's hidden states pooled in double), within 1e-5.</summary>
    [Theory]
    [InlineData("minilm")]
    [InlineData("arctic-xs")]
    public void Each_builtin_matches_onnx_runtime_on_its_package_onnx(string name)
    {
        var package = name == "minilm" ? PackageModel.MiniLm : PackageModel.ArcticXs;
        string directory = package.Builtin;
        var tokenizer = BertTokenizer.FromPretrained(directory);
        var encodings = tokenizer.EncodeBatch(Texts, new EncodeOptions { MaxLength = 128, Truncation = TruncationStrategy.LongestFirst, Padding = PaddingStrategy.Longest });
        var inputs = ModelInputs.FromEncodings(encodings);
        int b = inputs.Batch, s = inputs.SequenceLength, h = 384;
        var model = BertPreTrainedModel.FromPretrained(directory);
        var hidden = model.Forward(inputs).LastHiddenState!.Data;

        float[] ort;
        using (var session = new InferenceSession(package.Import.Onnx))
        {
            var feeds = new (string Name, int[] Values)[] { ("input_ids", inputs.InputIds), ("attention_mask", inputs.AttentionMask!), ("token_type_ids", inputs.TokenTypeIds!) }
                .Select(f => NamedOnnxValue.CreateFromTensor(f.Name, new DenseTensor<long>(f.Values.Select(v => (long)v).ToArray(), [b, s]))).ToList();
            using var results = session.Run(feeds);
            ort = results.First(r => r.Name == "last_hidden_state").AsTensor<float>().ToArray();
        }
        var mask = inputs.AttentionMask!;
        double lastHidden = MaxOnUnmasked(hidden, ort, mask, h);
        Assert.True(lastHidden <= 1e-5, $"{name} last_hidden_state: max |difference| {lastHidden:E2} from ONNX Runtime");

        var options = SentenceEmbeddings.ModelOptions(directory);
        Assert.Equal(name == "minilm" ? Pooling.Mean : Pooling.Cls, options.Pooling);
        var embedded = new SentenceEmbeddings(tokenizer, model, options with { MaxLength = 128 }).Embed(Texts).SelectMany(v => v).ToArray();
        var pooled = Float64Bert.SentenceEmbeddings(ort.Select(v => (double)v).ToArray(), b, s, h, mask.Select(v => (long)v).ToArray(),
            cls: options.Pooling == Pooling.Cls);
        double sentences = embedded.Select((v, i) => Math.Abs(v - pooled[i])).Max();
        Assert.True(sentences <= 1e-5, $"{name} sentence embeddings: max |difference| {sentences:E2} from ONNX Runtime's");
        Console.WriteLine($"{name} max |difference| from ONNX Runtime: last_hidden_state {lastHidden:E2}, sentence embeddings {sentences:E2}");
    }

    /// <summary>
    /// The float64 generator of the arctic fixture, run on the first rows of transformers' own float64 reference of
    /// all-MiniLM-L6-v2: pooler_output and the mean-pooled sentence embeddings agree to rounding (1e-12; measured over all
    /// 24 rows: 7.2e-16 and 4.4e-16), last_hidden_state to its float32 storage (5e-7; measured 2.2e-7).
    /// </summary>
    [Fact]
    public void The_float64_generator_reproduces_transformers_float64_reference()
    {
        var imported = PackageModel.MiniLm.Import.Result;
        var bert = new Float64Bert(imported.Parameters.ToDictionary(p => p.Key, p => (p.Value.Data, p.Value.Shape)),
            imported.Config.NumAttentionHeads, imported.Config.NumHiddenLayers, imported.Config.LayerNormEps);
        using var reference = new SafeTensorsFile(Fixtures.Path("minilm", "minilm_ref_public.safetensors"));
        int s = reference.Info("input_ids").Shape[1], b = 3, h = 384;
        long[] Rows(string name) => reference.ReadInt64(name)[..(b * s)];
        var mask = Rows("attention_mask");
        var (hidden, pooled) = bert.Forward(b, s, Rows("input_ids"), Rows("token_type_ids"), mask);
        var expected = reference.ReadFloat32("last_hidden_state");
        double lastHidden = 0;
        for (int i = 0; i < hidden.Length; i++)
            if (mask[i / h] == 1) lastHidden = Math.Max(lastHidden, Math.Abs(hidden[i] - expected[i]));
        var expectedPooler = reference.ReadFloat64("pooler_output");
        double pooler = pooled!.Select((v, i) => Math.Abs(v - expectedPooler[i])).Max();
        var expectedSentences = reference.ReadFloat64("sentence_embedding");
        double sentences = Float64Bert.SentenceEmbeddings(hidden, b, s, h, mask, cls: false).Select((v, i) => Math.Abs(v - expectedSentences[i])).Max();
        Assert.True(lastHidden <= 5e-7, $"last_hidden_state: {lastHidden:E2}");
        Assert.True(pooler <= 1e-12, $"pooler_output: {pooler:E2}");
        Assert.True(sentences <= 1e-12, $"sentence embeddings: {sentences:E2}");
        Assert.Equal(0.8427007929497149, Float64Bert.Erf(1), 15); // erf(1), a known value
    }
}
