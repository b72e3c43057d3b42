using System.Text.Json.Nodes;
using NBert.IO;
using NBert.Modeling;
using NBert.Pipelines;
using NBert.Schema;
using NBert.Training;

namespace NBert.Tests.Modeling;

/// <summary>
/// ELECTRA as a configuration of the one encoder, against <c>tests/fixtures/electra</c>: a small random checkpoint per
/// transformers class with ELECTRA's names and config (embedding_size 8 projected to hidden_size 16 by
/// embeddings_project, no pooler, gelu_new in the layers and the discriminator, the classification head's fixed GELU),
/// every head's outputs and losses computed in float64 by numpy following transformers' modeling_electra.py
/// (tools/FamilyReferences/make_references.py). NBert's float64 within 1e-6, its float32 inference within 1e-4.
/// </summary>
public sealed class ElectraParityTests() : FamilyParityTest("electra")
{
    private static readonly (string Head, BertArchitecture Architecture)[] Classes =
    [
        ("model", BertArchitecture.BertModel), ("pretraining", BertArchitecture.BertForPreTraining), ("maskedlm", BertArchitecture.BertForMaskedLM),
        ("seqcls", BertArchitecture.BertForSequenceClassification), ("tokcls", BertArchitecture.BertForTokenClassification),
        ("qa", BertArchitecture.BertForQuestionAnswering),
    ];

    [Fact]
    public void Every_class_loads_from_its_own_names_with_nothing_initialised_or_left_over()
    {
        foreach (var (head, architecture) in Classes)
        {
            var model = Load(head);
            Assert.Equal((ModelFamily.Electra, architecture), (model.Config.Family, model.Architecture));
            Assert.Empty(model.LoadReport!.Initialized);
            Assert.Empty(model.LoadReport.Unexpected);
            // ElectraModel has no pooler; the sequence classifier's classifier.dense fills the pooler's slot.
            Assert.Equal(head == "seqcls", model.HasPoolingLayer);
            Assert.Equal([16, 8], model.Parameters["embeddings_project.weight"].Shape);
        }
        var c = Load("model").Config;
        Assert.Equal((8, 16, true, 1e-12), (c.EmbeddingWidth, c.HiddenSize, c.ProjectsEmbeddings, c.LayerNormEps));
        Assert.IsType<ElectraForPreTraining>(Load("pretraining"));
        Assert.IsType<ElectraForPreTraining>(ElectraForPreTraining.FromPretrained(Fixtures.Path("electra", "pretraining")));
        var error = Assert.Throws<NBertException>(() => BertForPreTraining.FromPretrained(Fixtures.Path("electra", "pretraining")));
        Assert.Contains("ElectraForPreTraining.FromPretrained", error.Message);
        // ELECTRA has no next-sentence head: the message lists the classes it has.
        string dir = Temp("nsp");
        Directory.CreateDirectory(dir);
        var config = Fixtures.Json("electra", "model", "config.json").AsObject();
        config["architectures"] = new JsonArray("ElectraForNextSentencePrediction");
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        File.Copy(Fixtures.Path("electra", "model", "model.safetensors"), Path.Combine(dir, "model.safetensors"));
        error = Assert.Throws<NBertException>(() => BertPreTrainedModel.FromPretrained(dir));
        Assert.Contains("ElectraForNextSentencePrediction", error.Message);
        Assert.Contains("ElectraForPreTraining, ElectraForMaskedLM", error.Message);
        // The generator's head works in embedding_size: dense [8, 16], LayerNorm [8], the tied decoder [vocab, 8].
        var generator = Load("maskedlm");
        Assert.Equal([8, 16], generator.Parameters["cls.predictions.transform.dense.weight"].Shape);
        Assert.Equal([8], generator.Parameters["cls.predictions.transform.LayerNorm.weight"].Shape);
    }

    [Fact]
    public void Float32_inference_matches_the_float64_reference_for_every_head()
    {
        using var e = Expected();
        var inputs = Inputs(e);
        var output = ((BertModel)Load("model")).Forward(inputs, outputHiddenStates: true);
        Assert.Null(output.PoolerOutput);
        Close("last_hidden_state", e.ReadFloat64("last_hidden_state"), output.LastHiddenState.Data);
        for (int i = 0; i <= 2; i++) Close($"hidden_states.{i}", e.ReadFloat64($"hidden_states.{i}"), output.HiddenStates![i].Data);
        var discriminator = ((ElectraForPreTraining)Load("pretraining")).Forward(inputs);
        Assert.Equal([3, 10], discriminator.Logits.Shape);
        Close("pretraining.logits", e.ReadFloat64("pretraining.logits"), discriminator.Logits.Data);
        Close("maskedlm.logits", e.ReadFloat64("maskedlm.logits"), ((BertForMaskedLM)Load("maskedlm")).Forward(inputs).Logits.Data);
        Close("seqcls.logits", e.ReadFloat64("seqcls.logits"), ((BertForSequenceClassification)Load("seqcls")).Forward(inputs).Logits.Data);
        Close("tokcls.logits", e.ReadFloat64("tokcls.logits"), ((BertForTokenClassification)Load("tokcls")).Forward(inputs).Logits.Data);
        var qa = ((BertForQuestionAnswering)Load("qa")).Forward(inputs);
        Close("qa.start_logits", e.ReadFloat64("qa.start_logits"), qa.StartLogits.Data);
        Close("qa.end_logits", e.ReadFloat64("qa.end_logits"), qa.EndLogits.Data);
    }

    [Fact]
    public void Float64_body_and_its_projection_match_the_reference_within_1e_6()
    {
        using var e = Expected();
        var model = Load("model");
        var (pass, states) = Float64Body(model, Inputs(e));
        // Before embeddings_project (8 wide), then after it and each layer (16 wide).
        Close("embeddings_normed", e.ReadFloat64("embeddings_normed"), pass.EmbeddingNormed.AsSpan(0, 3 * 10 * 8), Float64Tolerance);
        for (int i = 0; i <= 2; i++) Close($"hidden_states.{i}", e.ReadFloat64($"hidden_states.{i}"), states[i], Float64Tolerance);
    }

    [Fact]
    public void Float64_heads_and_their_losses_match_the_reference_within_1e_6()
    {
        using var e = Expected();
        var inputs = Inputs(e);

        AssertMaskedLmOnTheTrainingPath(e, inputs);

        var discriminator = TrainingModel<double>.From(Load("pretraining"));
        double loss = discriminator.Forward(new TrainingBatch { Inputs = inputs, Labels = Ints(e, "pretraining.labels") }, training: false).Loss;
        Close("pretraining.logits", e.ReadFloat64("pretraining.logits"), discriminator.Logits, Float64Tolerance);
        Assert.Equal(e.ReadFloat64("pretraining.loss")[0], loss, Float64Tolerance);
        // The float32 model's outputs give the same loss through HeadLosses.Of (evaluation's path).
        var model = Load("pretraining");
        var batch = new TrainingBatch { Inputs = inputs, Labels = Ints(e, "pretraining.labels") };
        Assert.Equal(e.ReadFloat64("pretraining.loss")[0], HeadLosses.Of(model, model.Forward(inputs), batch), Float32Tolerance);

        AssertTaskHeadsOnTheTrainingPath(e, inputs);
    }

    [Fact]
    public void The_discriminator_loss_counts_only_the_tokens_the_mask_keeps()
    {
        using var e = Expected();
        var inputs = Inputs(e);
        var labels = Ints(e, "pretraining.labels");
        var model = TrainingModel<double>.From(Load("pretraining"));
        double loss = model.Forward(new TrainingBatch { Inputs = inputs, Labels = labels }, training: false).Loss;
        // Flipping the labels of masked tokens (padding, the hole) changes nothing; flipping a kept one does.
        var mask = inputs.AttentionMask!;
        var flipped = labels.Select((l, t) => mask[t] == 0 ? 1 - l : l).ToArray();
        Assert.Equal(loss, model.Forward(new TrainingBatch { Inputs = inputs, Labels = flipped }, training: false).Loss);
        flipped[1] = 1 - flipped[1];
        Assert.NotEqual(loss, model.Forward(new TrainingBatch { Inputs = inputs, Labels = flipped }, training: false).Loss);
        var bad = (int[])labels.Clone();
        bad[1] = -100;
        Assert.Contains("1 (replaced) or 0 (original)",
            Assert.Throws<ArgumentException>(() => model.Forward(new TrainingBatch { Inputs = inputs, Labels = bad }, training: false)).Message);
    }

    [Theory]
    [InlineData("model")]
    [InlineData("pretraining")]
    [InlineData("maskedlm")]
    [InlineData("seqcls")]
    [InlineData("tokcls")]
    [InlineData("qa")]
    public void SavePretrained_writes_electras_own_names_and_config_and_loads_back(string head)
    {
        var (model, dir) = SaveAndCompareWithTheFixture(head);
        using var e = Expected();
        var reloaded = BertPreTrainedModel.FromPretrained(dir);
        Assert.Empty(reloaded.LoadReport!.Initialized);
        Assert.Equal(model.Forward(Inputs(e)).LastHiddenState!.Data, reloaded.Forward(Inputs(e)).LastHiddenState!.Data);
        Assert.Equal(model.Forward(Inputs(e)).Logits?.Data, reloaded.Forward(Inputs(e)).Logits?.Data);
    }

    [Fact]
    public void Its_onnx_export_imports_back_to_the_same_family_config_and_hidden_states() => AssertBaseModelImportsBackFromOnnx(ModelFamily.Electra);

    [Fact]
    public void A_torch_style_export_of_a_head_imports_to_the_family_by_its_prefix_and_biases() => AssertTorchStyleHeadExportImportsToTheFamily(ModelFamily.Electra);

    /// <summary>Each head's whole export (its task's graph, the head included) imports to the ELECTRA base model with the
    /// head's body weights, embedding_size 8 from the word table and hidden_size 16 from the layers; hidden_act is read
    /// from the layers' gelu_new, not from the classifier's or the generator's exact GELU elsewhere in the graph.</summary>
    [Theory]
    [InlineData("pretraining")]
    [InlineData("maskedlm")]
    [InlineData("seqcls")]
    [InlineData("tokcls")]
    [InlineData("qa")]
    public void Each_heads_whole_export_imports_to_its_electra_body(string head)
    {
        var model = Load(head);
        string onnx = Temp($"{head}.onnx");
        OnnxExport.Save(model, onnx);
        var read = OnnxImport.Read(onnx);
        Assert.Equal((ModelFamily.Electra, 8, 16, "gelu_new", 2, 2), (read.Config.Family, read.Config.EmbeddingWidth, read.Config.HiddenSize,
            read.Config.HiddenAct, read.Config.NumHiddenLayers, read.Config.NumAttentionHeads));
        Assert.Contains("model_type electra, from the initializers under electra. and the position ids counted from 0", read.Notes);
        Assert.Contains("hidden_act gelu_new, from the ops after 'electra.encoder.layer.0.intermediate.dense'", read.Notes);
        Assert.False(read.HasPooler);
        var body = BertArchitectures.Parameters(read.Config, BertArchitecture.BertModel, addPoolingLayer: false);
        Assert.Equal(body.Select(s => s.Name).Order(StringComparer.Ordinal), read.Parameters.Keys.Order(StringComparer.Ordinal));
        foreach (var s in body) Assert.Equal(model.Parameters[s.Name].Data, read.Parameters[s.Name].Data);
    }

    /// <summary>
    /// An ELECTRA whose embedding_size equals its hidden_size has no embeddings_project. Exported bare (ElectraModel: no
    /// prefix, no pooler) its names and positions are BERT's, and it imports as the BERT it computes: a BertModel without
    /// a pooler whose hidden states are the original's within 1e-5. Exported from a head, its names are under electra.:
    /// it imports as an ELECTRA with embedding_size 16, written to config.json.
    /// </summary>
    [Fact]
    public void Without_a_projection_a_bare_export_imports_as_bert_and_a_heads_as_electra()
    {
        var config = BertConfig.Parse("""{"model_type": "electra", "hidden_size": 16, "embedding_size": 16, "num_attention_heads": 2, "num_hidden_layers": 2, "intermediate_size": 32, "vocab_size": 4000, "max_position_embeddings": 64, "hidden_act": "gelu_new"}""");
        var bare = (BertModel)BertPreTrainedModel.FromConfig(config, BertArchitecture.BertModel, seed: 3);
        Assert.False(bare.HasPoolingLayer);
        string onnx = Temp("bare.onnx");
        OnnxExport.Save(bare, onnx);
        var read = OnnxImport.Read(onnx);
        Assert.Equal((ModelFamily.Bert, 16, "gelu_new"), (read.Config.Family, read.Config.HiddenSize, read.Config.HiddenAct));
        Assert.Contains("model_type bert, from the initializer names (bert, roberta, electra alike) and the position ids counted from 0", read.Notes);
        Assert.False(read.HasPooler);
        string dir = Temp("bare");
        OnnxImport.ToDirectory(onnx, Fixtures.Path("electra", "model", "vocab.txt"), dir);
        var imported = (BertModel)BertPreTrainedModel.FromPretrained(dir);
        Assert.Equal((ModelFamily.Bert, false), (imported.Config.Family, imported.HasPoolingLayer));
        Assert.Empty(imported.LoadReport!.Initialized);
        using var e = Expected();
        var inputs = Inputs(e);
        var (before, after) = (bare.Forward(inputs, outputHiddenStates: true), imported.Forward(inputs, outputHiddenStates: true));
        for (int i = 0; i < before.HiddenStates!.Count; i++)
            Close($"hidden_states.{i}", before.HiddenStates[i].Data.Select(v => (double)v).ToArray(), after.HiddenStates![i].Data.Select(v => (double)v).ToArray(), 1e-5);

        var head = BertPreTrainedModel.FromConfig(config, BertArchitecture.BertForTokenClassification, seed: 3);
        OnnxExport.Save(head, Temp("tokcls.onnx"));
        read = OnnxImport.ToDirectory(Temp("tokcls.onnx"), Fixtures.Path("electra", "model"), Temp("tokcls"));
        Assert.Equal((ModelFamily.Electra, 16, 16, false), (read.Config.Family, read.Config.EmbeddingWidth, read.Config.HiddenSize, read.Config.ProjectsEmbeddings));
        Assert.DoesNotContain(read.Parameters.Keys, k => k.StartsWith("embeddings_project", StringComparison.Ordinal));
        var written = JsonNode.Parse(File.ReadAllText(Path.Combine(Temp("tokcls"), "config.json")))!;
        Assert.Equal(("electra", 16, 16), ((string)written["model_type"]!, (int)written["embedding_size"]!, (int)written["hidden_size"]!));
        var electra = BertPreTrainedModel.FromPretrained(Temp("tokcls"));
        Assert.Empty(electra.LoadReport!.Initialized);
        foreach (var (name, t) in electra.Parameters) Assert.Equal(head.Parameters[name].Data, t.Data);
    }

    [Fact]
    public void A_config_written_without_embedding_size_projects_nothing_and_a_fresh_one_saves_it()
    {
        // embedding_size == hidden_size: no embeddings_project, as ElectraModel builds it.
        var config = BertConfig.Parse("""{"model_type": "electra", "hidden_size": 16, "embedding_size": 16, "num_attention_heads": 2, "num_hidden_layers": 1, "intermediate_size": 32, "vocab_size": 50}""");
        Assert.False(config.ProjectsEmbeddings);
        var model = BertPreTrainedModel.FromConfig(config, BertArchitecture.BertForTokenClassification);
        Assert.DoesNotContain(model.Parameters.Keys, k => k.StartsWith("embeddings_project", StringComparison.Ordinal));
        // ElectraConfig's defaults where fields are missing (electra-small's discriminator: 128 projected to 256, 4 heads).
        var defaults = BertConfig.Parse("""{"model_type": "electra"}""");
        Assert.Equal((128, 256, 4, 1024), (defaults.EmbeddingWidth, defaults.HiddenSize, defaults.NumAttentionHeads, defaults.IntermediateSize));
        Assert.Equal(128, (int)JsonNode.Parse(defaults.ToJson())!["embedding_size"]!);
        Assert.Contains("embedding_size must be positive",
            Assert.Throws<NBertException>(() => BertConfig.Parse("""{"model_type": "electra", "embedding_size": 0}""")).Message);
    }

    [Fact]
    public void The_generator_fills_masks_through_the_pipeline()
    {
        var pipeline = FillMask.FromPretrained(Fixtures.Path("electra", "maskedlm"));
        var model = (BertForMaskedLM)Load("maskedlm");
        var tokenizer = NBert.Tokenization.BertTokenizer.FromPretrained(Fixtures.Path("electra", "maskedlm"));
        var inputs = tokenizer.EncodeInputs(["the whale [MASK] away."]);
        int at = Array.IndexOf(inputs.InputIds, tokenizer.TokenToId("[MASK]")!.Value);
        var logits = model.Forward(inputs).Logits.Data.AsSpan(at * 4000, 4000).ToArray();
        Assert.Equal(Array.IndexOf(logits, logits.Max()), pipeline.Run("the whale [MASK] away.")[0].Token);
        // The discriminator is not a fill-mask model.
        Assert.Contains("ElectraForPreTraining", Assert.Throws<ArgumentException>(() => FillMask.FromPretrained(Fixtures.Path("electra", "pretraining"))).Message);
    }

    [Fact]
    public void Int8_runs_the_projection_and_the_layers_near_float32()
    {
        using var e = Expected();
        var inputs = Inputs(e);
        foreach (var head in new[] { "model", "pretraining", "seqcls" })
        {
            var model = Load(head);
            var expected = model.Forward(inputs);
            model.Quantize(Quantization.Int8);
            var actual = model.Forward(inputs);
            // The projected embeddings and every layer: each token's hidden state within cosine 0.99 of float32's.
            var (x, y) = (expected.LastHiddenState!.Data, actual.LastHiddenState!.Data);
            for (int t = 0; t < x.Length / 16; t++)
            {
                float cosine = System.Numerics.Tensors.TensorPrimitives.CosineSimilarity<float>(x.AsSpan(t * 16, 16), y.AsSpan(t * 16, 16));
                Assert.True(cosine >= 0.99, $"{head} token {t}: cosine {cosine}");
            }
            Assert.NotEqual(x, y); // int8 ran
        }
    }

    [Fact]
    public void Its_tokenizer_is_wordpiece_and_the_classification_pipeline_agrees_with_the_model()
    {
        var pipeline = TextClassification.FromPretrained(Fixtures.Path("electra", "seqcls"));
        var model = (BertForSequenceClassification)Load("seqcls");
        var tokenizer = NBert.Tokenization.BertTokenizer.FromPretrained(Fixtures.Path("electra", "seqcls"));
        var encoding = tokenizer.Encode("The whale swam.", "Ishmael saw it.");
        Assert.Contains(1, encoding.TokenTypeIds); // ELECTRA takes BERT's pairs with token types
        var logits = model.Forward(tokenizer.EncodeInputs(["The whale swam."])).Logits.Data;
        Assert.Equal(model.Config.Id2Label[Array.IndexOf(logits, logits.Max())], pipeline.Run("The whale swam.")[0].Label);
    }
}
