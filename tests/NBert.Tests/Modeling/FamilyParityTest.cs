using System.Text.Json.Nodes;
using Google.Protobuf;
using NBert.IO;
using NBert.Modeling;
using NBert.Schema;
using NBert.Tokenization;
using NBert.Training;
using Onnx;

namespace NBert.Tests.Modeling;

/// <summary>
/// What the families' parity tests share: a family's fixture folder (<c>tests/fixtures/&lt;family&gt;</c>, made by
/// tools/FamilyReferences/make_references.py), its inputs and float64 references, and the comparison within a tolerance.
/// </summary>
public abstract class FamilyParityTest(string family) : TempDirectoryTest
{
    protected const double Float64Tolerance = 1e-6, Float32Tolerance = 1e-4;

    protected SafeTensorsFile Expected() => new(Fixtures.Path(family, "expected.safetensors"));

    /// <summary>The references' inputs; without token types for a family that takes none.</summary>
    protected static ModelInputs Inputs(SafeTensorsFile e, bool tokenTypes = true)
    {
        var shape = e.Info("input_ids").Shape;
        return new ModelInputs(shape[0], shape[1], Ints(e, "input_ids"), tokenTypes ? Ints(e, "token_type_ids") : null, Ints(e, "attention_mask"));
    }

    protected static int[] Ints(SafeTensorsFile e, string name) => e.ReadInt64(name).Select(v => (int)v).ToArray();

    protected static void Close(string what, ReadOnlySpan<double> expected, ReadOnlySpan<double> actual, double tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        double max = 0;
        for (int i = 0; i < expected.Length; i++) max = Math.Max(max, Math.Abs(expected[i] - actual[i]));
        Assert.True(max <= tolerance, $"{what}: max |difference| {max:E2} > {tolerance:E0}");
    }

    protected static void Close(string what, double[] expected, float[] actual) =>
        Close(what, expected, actual.Select(v => (double)v).ToArray(), Float32Tolerance);

    protected BertPreTrainedModel Load(string head) => BertPreTrainedModel.FromPretrained(Fixtures.Path(family, head));

    /// <summary>The one encoder in float64 over <paramref name="model"/>'s weights: the pass (its buffers) and the hidden
    /// states (the embeddings', then each layer's).</summary>
    private protected static (EncoderPass<double> Pass, List<double[]> States) Float64Body(BertPreTrainedModel model, ModelInputs inputs)
    {
        var layout = model.Layout;
        var values = new double[layout.Length];
        foreach (var slot in layout.Slots)
        {
            var data = model.Parameters[slot.Name].Data;
            for (int i = 0; i < data.Length; i++) values[slot.Offset + i] = data[i];
        }
        var pass = EncoderPass<double>.Kept(model.Config);
        pass.Start(inputs, 0, 0, null);
        var states = new List<double[]>();
        new Encoder<double>(layout).Forward(new FlatWeights<double>(values), pass, states);
        return (pass, states);
    }

    /// <summary>Loads the fixture's <paramref name="head"/>, saves it, and asserts that the file holds the fixture's tensor
    /// names and values and that config.json has every field of the fixture's with its value.</summary>
    protected (BertPreTrainedModel Model, string Directory) SaveAndCompareWithTheFixture(string head)
    {
        var model = Load(head);
        string dir = Temp(head);
        model.SavePretrained(dir);
        using (var saved = new SafeTensorsFile(Path.Combine(dir, "model.safetensors")))
        using (var original = new SafeTensorsFile(Fixtures.Path(family, head, "model.safetensors")))
        {
            Assert.Equal(original.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal), saved.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal));
            foreach (var t in original.Tensors) Assert.Equal(original.ReadFloat32(t.Name), saved.ReadFloat32(t.Name));
        }
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
        foreach (var (k, v) in Fixtures.Json(family, head, "config.json").AsObject())
            Assert.True(JsonNode.DeepEquals(v, config[k]), $"{k}: {v?.ToJsonString()} written as {config[k]?.ToJsonString()}");
        return (model, dir);
    }

    /// <summary>The masked-LM head on the training path in float64: its logits at every position (all labelled) and its
    /// loss on the fixture's labels within <see cref="Float64Tolerance"/> of the references. <paramref name="atEveryPosition"/>
    /// sees the model after the all-positions pass.</summary>
    protected void AssertMaskedLmOnTheTrainingPath(SafeTensorsFile e, ModelInputs inputs, Action<TrainingModel<double>>? atEveryPosition = null)
    {
        var mlm = TrainingModel<double>.From(Load("maskedlm"));
        mlm.Forward(new TrainingBatch { Inputs = inputs, Labels = new int[inputs.Batch * inputs.SequenceLength] }, training: false);
        atEveryPosition?.Invoke(mlm);
        Close("maskedlm.logits", e.ReadFloat64("maskedlm.logits"), mlm.MaskedLmLogits, Float64Tolerance);
        double loss = mlm.Forward(new TrainingBatch { Inputs = inputs, Labels = Ints(e, "maskedlm.labels") }, training: false).Loss;
        Assert.Equal(e.ReadFloat64("maskedlm.loss")[0], loss, Float64Tolerance);
    }

    /// <summary>The task heads (sequence and token classification, QA) on the training path in float64: logits and losses
    /// within <see cref="Float64Tolerance"/> of the references.</summary>
    protected void AssertTaskHeadsOnTheTrainingPath(SafeTensorsFile e, ModelInputs inputs)
    {
        var seq = TrainingModel<double>.From(Load("seqcls"));
        double loss = seq.Forward(new TrainingBatch { Inputs = inputs, Labels = Ints(e, "seqcls.labels") }, training: false).Loss;
        Close("seqcls.logits", e.ReadFloat64("seqcls.logits"), seq.Logits, Float64Tolerance);
        Assert.Equal(e.ReadFloat64("seqcls.loss")[0], loss, Float64Tolerance);

        var tok = TrainingModel<double>.From(Load("tokcls"));
        loss = tok.Forward(new TrainingBatch { Inputs = inputs, Labels = Ints(e, "tokcls.labels") }, training: false).Loss;
        Close("tokcls.logits", e.ReadFloat64("tokcls.logits"), tok.Logits, Float64Tolerance);
        Assert.Equal(e.ReadFloat64("tokcls.loss")[0], loss, Float64Tolerance);

        var qa = TrainingModel<double>.From(Load("qa"));
        loss = qa.Forward(new TrainingBatch
        {
            Inputs = inputs, StartPositions = Ints(e, "qa.start_positions"), EndPositions = Ints(e, "qa.end_positions"),
        }, training: false).Loss;
        var both = qa.Logits.ToArray();
        Close("qa.start_logits", e.ReadFloat64("qa.start_logits"), both.Where((_, i) => i % 2 == 0).ToArray(), Float64Tolerance);
        Close("qa.end_logits", e.ReadFloat64("qa.end_logits"), both.Where((_, i) => i % 2 == 1).ToArray(), Float64Tolerance);
        Assert.Equal(e.ReadFloat64("qa.loss")[0], loss, Float64Tolerance);
    }

    /// <summary>config.json fields no graph holds (dropouts, initialisation, special token ids, versions, ELECTRA's
    /// <c>summary_*</c> of the multiple-choice head's SequenceSummary): an import writes the family's defaults for them
    /// (transformers' config classes supply the same where they are missing).</summary>
    private static readonly HashSet<string> NotInTheGraph =
    [
        "attention_probs_dropout_prob", "hidden_dropout_prob", "attention_dropout", "dropout", "qa_dropout", "seq_classif_dropout",
        "classifier_dropout", "initializer_range", "bos_token_id", "eos_token_id", "transformers_version", "use_cache", "tie_weights_",
        "summary_type", "summary_use_proj", "summary_activation", "summary_last_dropout",
    ];

    /// <summary>
    /// The family's base model exported by NBert (<see cref="OnnxExport.Save"/>) and imported back through the ONNX import's
    /// entry points (<see cref="OnnxImport.Read"/> and <see cref="OnnxImport.ToDirectory"/> with the fixture's tokenizer
    /// folder): the family and every config field a graph can say as the fixture's config.json has them, the family's own
    /// checkpoint names and the same weights; the imported model's hidden states within 1e-5 of the original's (float32)
    /// and within 1e-4 of the float64 reference.
    /// </summary>
    protected void AssertBaseModelImportsBackFromOnnx(ModelFamily expectedFamily)
    {
        var original = (BertModel)Load("model");
        string onnx = Temp("model.onnx");
        OnnxExport.Save(original, onnx);
        var read = OnnxImport.Read(onnx);
        Assert.Equal(expectedFamily, read.Config.Family);
        Assert.Contains(read.Notes, n => n.StartsWith($"model_type {FamilyNames.ModelType(expectedFamily)}, from the", StringComparison.Ordinal));

        string dir = Temp("imported");
        OnnxImport.ToDirectory(onnx, Fixtures.Path(family, "model"), dir);
        var written = Fixtures.Json(family, "model", "config.json").AsObject();
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
        foreach (var (k, v) in written.Where(f => !NotInTheGraph.Contains(f.Key)))
            Assert.True(JsonNode.DeepEquals(v, config[k]), $"{k}: {v?.ToJsonString()} imported as {config[k]?.ToJsonString() ?? "nothing"}");
        // Only the family's fields: a DistilBERT's config has no hidden_size or type_vocab_size. (tie_word_embeddings is
        // every config's, written by transformers only where it is not the default.)
        Assert.Empty(config.Select(f => f.Key).Except(written.Select(f => f.Key))
            .Except(["classifier_dropout", "id2label", "label2id", "position_embedding_type", "tie_word_embeddings"]));
        using (var saved = new SafeTensorsFile(Path.Combine(dir, "model.safetensors")))
        using (var fixture = new SafeTensorsFile(Fixtures.Path(family, "model", "model.safetensors")))
        {
            Assert.Equal(fixture.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal), saved.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal));
            foreach (var t in fixture.Tensors) Assert.Equal(fixture.ReadFloat32(t.Name), saved.ReadFloat32(t.Name));
        }

        var imported = BertPreTrainedModel.FromPretrained(dir);
        Assert.Equal((expectedFamily, BertArchitecture.BertModel, original.HasPoolingLayer), (imported.Config.Family, imported.Architecture, imported.HasPoolingLayer));
        Assert.Empty(imported.LoadReport!.Initialized);
        Assert.Empty(imported.LoadReport.Unexpected);
        using var e = Expected();
        var inputs = Inputs(e, original.Config.HasTokenTypes);
        var before = original.Forward(inputs, outputHiddenStates: true);
        var after = ((BertModel)imported).Forward(inputs, outputHiddenStates: true);
        for (int i = 0; i < before.HiddenStates!.Count; i++)
        {
            Close($"imported hidden_states.{i}", before.HiddenStates[i].Data.Select(v => (double)v).ToArray(), after.HiddenStates![i].Data.Select(v => (double)v).ToArray(), 1e-5);
            Close($"imported hidden_states.{i}", e.ReadFloat64($"hidden_states.{i}"), after.HiddenStates[i].Data);
        }
        Close("imported last_hidden_state", e.ReadFloat64("last_hidden_state"), after.LastHiddenState!.Data);
        if (original.HasPoolingLayer) Close("imported pooler_output", e.ReadFloat64("pooler_output"), after.PoolerOutput!.Data);
        // The tokenizer came along: it encodes as the fixture's.
        var text = "The whale swam past Ishmael.";
        Assert.Equal(BertTokenizer.FromPretrained(Fixtures.Path(family, "model")).Encode(text).InputIds, BertTokenizer.FromPretrained(dir).Encode(text).InputIds);
    }

    /// <summary>
    /// A head's export as torch's exporter and optimum write it: the sequence classifier's encoder exported by NBert (names
    /// under the family's base-model prefix, <c>distilbert.</c> or <c>roberta.</c>), then each linear weight made an
    /// unnamed [in, out] initializer (<c>onnx::MatMul_N</c>) that MatMul reads directly, so its name comes from the bias
    /// it is added to. It imports to the family's base model with the head's body weights, the head's own ignored.
    /// </summary>
    protected void AssertTorchStyleHeadExportImportsToTheFamily(ModelFamily expectedFamily)
    {
        var head = Load("seqcls");
        var proto = ModelProto.Parser.ParseFrom(File.ReadAllBytes(ExportFeatures(head)));
        Assert.Contains(proto.Graph.Initializer, t => t.Name.StartsWith(FamilyNames.BasePrefix(expectedFamily) + ".", StringComparison.Ordinal));
        int unnamed = 0;
        foreach (var transpose in proto.Graph.Node.Where(n => n.OpType == "Transpose" && n.Input.Count == 1).ToList())
        {
            var weight = proto.Graph.Initializer.FirstOrDefault(t => t.Name == transpose.Input[0]);
            if (weight is null) continue;
            int rows = (int)weight.Dims[0], cols = (int)weight.Dims[1];
            var values = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(weight.RawData.Span).ToArray();
            var t = new float[values.Length];
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < cols; j++) t[j * rows + i] = values[i * cols + j];
            var replacement = new TensorProto { Name = $"onnx::MatMul_{unnamed++}", DataType = weight.DataType, RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(t.AsSpan())) };
            replacement.Dims.AddRange([cols, rows]);
            proto.Graph.Initializer.Remove(weight);
            proto.Graph.Initializer.Add(replacement);
            foreach (var user in proto.Graph.Node.Where(n => n.Input.Contains(transpose.Output[0])))
                for (int i = 0; i < user.Input.Count; i++)
                    if (user.Input[i] == transpose.Output[0]) user.Input[i] = replacement.Name;
            proto.Graph.Node.Remove(transpose);
        }
        Assert.True(unnamed > 4 * head.Config.NumHiddenLayers);
        string path = Temp("torch-style.onnx");
        File.WriteAllBytes(path, proto.ToByteArray());

        var read = OnnxImport.Read(path);
        Assert.Equal(expectedFamily, read.Config.Family);
        Assert.Contains(read.Notes, n => n.Contains($"initializers under {FamilyNames.BasePrefix(expectedFamily)}.", StringComparison.Ordinal));
        Assert.Contains(read.Notes, n => n.Contains("unnamed linear weights named from their biases", StringComparison.Ordinal));
        Assert.False(read.HasPooler); // the head's first-token layer (pre_classifier, classifier.dense) is the head's, not the base model's
        var body = BertArchitectures.Parameters(read.Config, BertArchitecture.BertModel, addPoolingLayer: false);
        Assert.Equal(body.Select(s => s.Name).Order(StringComparer.Ordinal), read.Parameters.Keys.Order(StringComparer.Ordinal));
        foreach (var s in body) Assert.Equal(head.Parameters[s.Name].Data, read.Parameters[s.Name].Data);
        var reference = Load("model").Config;
        Assert.Equal((reference.PadTokenId, reference.MaxSequenceLength, reference.HiddenAct, reference.LayerNormEps, reference.NumAttentionHeads),
            (read.Config.PadTokenId, read.Config.MaxSequenceLength, read.Config.HiddenAct, read.Config.LayerNormEps, read.Config.NumAttentionHeads));
    }

    /// <summary>A model's encoder exported by NBert (feature extraction) to a file in the test's folder.</summary>
    protected string ExportFeatures(BertPreTrainedModel model)
    {
        string path = Temp($"{model.Architecture}-features.onnx");
        OnnxExport.Save(model, path, new OnnxExportOptions { Task = OnnxTask.FeatureExtraction });
        return path;
    }
}
