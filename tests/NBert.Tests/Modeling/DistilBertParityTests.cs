using System.Text.Json.Nodes;
using NBert.IO;
using NBert.Modeling;
using NBert.Pipelines;
using NBert.Schema;
using NBert.Tensors;
using NBert.Training;

namespace NBert.Tests.Modeling;

/// <summary>
/// DistilBERT as a configuration of the one encoder, against <c>tests/fixtures/distilbert</c>: a small random checkpoint
/// per transformers class with DistilBERT's own names and config, and every head's outputs and losses computed in float64
/// by numpy following transformers' modeling_distilbert.py (tools/FamilyReferences/make_references.py). NBert's float64
/// within 1e-6, its float32 inference within 1e-4.
/// </summary>
public sealed class DistilBertParityTests() : FamilyParityTest("distilbert")
{
    private static readonly string[] Heads = ["model", "maskedlm", "seqcls", "tokcls", "qa"];

    [Fact]
    public void Every_class_loads_from_its_own_names_with_nothing_initialised_or_left_over()
    {
        var expected = new Dictionary<string, BertArchitecture>
        {
            ["model"] = BertArchitecture.BertModel, ["maskedlm"] = BertArchitecture.BertForMaskedLM,
            ["seqcls"] = BertArchitecture.BertForSequenceClassification, ["tokcls"] = BertArchitecture.BertForTokenClassification,
            ["qa"] = BertArchitecture.BertForQuestionAnswering,
        };
        foreach (var head in Heads)
        {
            var model = Load(head);
            Assert.Equal(ModelFamily.DistilBert, model.Config.Family);
            Assert.Equal(expected[head], model.Architecture);
            Assert.Empty(model.LoadReport!.Initialized);
            Assert.Empty(model.LoadReport.Unexpected);
            Assert.False(model.Config.HasTokenTypes);
            Assert.DoesNotContain("embeddings.token_type_embeddings.weight", model.Parameters.Keys);
            // No pooler but the sequence classifier's pre_classifier.
            Assert.Equal(head == "seqcls", model.HasPoolingLayer);
        }
        var c = Load("seqcls").Config;
        Assert.Equal((16, 2, 2, 32, "gelu"), (c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads, c.IntermediateSize, c.HiddenAct));
        Assert.Equal((0.2, 0.1, 1e-12), (c.ClassifierDropout!.Value, c.QaDropout, c.LayerNormEps));
    }

    [Fact]
    public void Float32_inference_matches_the_float64_reference_for_every_head()
    {
        using var e = Expected();
        var inputs = Inputs(e);
        var body = (BertModel)Load("model");
        var output = body.Forward(inputs, outputHiddenStates: true);
        Close("last_hidden_state", e.ReadFloat64("last_hidden_state"), output.LastHiddenState!.Data);
        for (int i = 0; i <= 2; i++) Close($"hidden_states.{i}", e.ReadFloat64($"hidden_states.{i}"), output.HiddenStates![i].Data);
        Assert.Null(output.PoolerOutput);
        Close("maskedlm.logits", e.ReadFloat64("maskedlm.logits"), ((BertForMaskedLM)Load("maskedlm")).Forward(inputs).Logits!.Data);
        Close("seqcls.logits", e.ReadFloat64("seqcls.logits"), ((BertForSequenceClassification)Load("seqcls")).Forward(inputs).Logits!.Data);
        Close("tokcls.logits", e.ReadFloat64("tokcls.logits"), ((BertForTokenClassification)Load("tokcls")).Forward(inputs).Logits!.Data);
        var qa = ((BertForQuestionAnswering)Load("qa")).Forward(inputs);
        Close("qa.start_logits", e.ReadFloat64("qa.start_logits"), qa.StartLogits!.Data);
        Close("qa.end_logits", e.ReadFloat64("qa.end_logits"), qa.EndLogits!.Data);
    }

    [Fact]
    public void Token_type_ids_are_ignored_as_distilbert_takes_none()
    {
        using var e = Expected();
        var model = (BertForSequenceClassification)Load("seqcls");
        Assert.Equal(model.Forward(Inputs(e, tokenTypes: false)).Logits!.Data, model.Forward(Inputs(e)).Logits!.Data);
    }

    [Fact]
    public void Float64_body_matches_the_reference_within_1e_6()
    {
        using var e = Expected();
        var model = Load("model");
        var (pass, states) = Float64Body(model, Inputs(e));
        for (int i = 0; i <= 2; i++) Close($"hidden_states.{i}", e.ReadFloat64($"hidden_states.{i}"), states[i], Float64Tolerance);
        Close("last_hidden_state", e.ReadFloat64("last_hidden_state"), pass.Hidden.AsSpan(0, states[2].Length), Float64Tolerance);
    }

    [Fact]
    public void Float64_heads_and_their_losses_match_the_reference_within_1e_6()
    {
        using var e = Expected();
        var inputs = Inputs(e);
        int m = inputs.Batch * inputs.SequenceLength;

        // Every position labelled, so the masked-LM logits are computed at all of them.
        AssertMaskedLmOnTheTrainingPath(e, inputs, mlm => Assert.Equal(Enumerable.Range(0, m), mlm.MaskedLmPositions));

        AssertTaskHeadsOnTheTrainingPath(e, inputs);
    }

    [Theory]
    [InlineData("model")]
    [InlineData("maskedlm")]
    [InlineData("seqcls")]
    [InlineData("tokcls")]
    [InlineData("qa")]
    public void SavePretrained_writes_distilberts_own_names_and_config_and_loads_back(string head)
    {
        var model = Load(head);
        string dir = Temp(head);
        model.SavePretrained(dir);
        using (var saved = new SafeTensorsFile(Path.Combine(dir, "model.safetensors")))
        using (var original = new SafeTensorsFile(Fixtures.Path("distilbert", head, "model.safetensors")))
        {
            Assert.Equal(original.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal), saved.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal));
            foreach (var t in original.Tensors) Assert.Equal(original.ReadFloat32(t.Name), saved.ReadFloat32(t.Name));
        }
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
        var fixture = Fixtures.Json("distilbert", head, "config.json").AsObject();
        // Every field transformers wrote comes back with its value (and none of BERT's names appear).
        foreach (var (k, v) in fixture)
            Assert.True(JsonNode.DeepEquals(v, config[k]), $"{k}: {v?.ToJsonString()} written as {config[k]?.ToJsonString()}");
        foreach (var bertName in new[] { "hidden_size", "num_hidden_layers", "type_vocab_size", "hidden_act", "intermediate_size" })
            Assert.False(config.ContainsKey(bertName), bertName);
        using var e = Expected();
        var inputs = Inputs(e);
        Assert.Equal(model.Forward(inputs).LastHiddenState!.Data, BertPreTrainedModel.FromPretrained(dir).Forward(inputs).LastHiddenState!.Data);
    }

    [Fact]
    public void A_new_head_is_reported_under_distilberts_names()
    {
        var model = BertPreTrainedModel.FromPretrained(Fixtures.Path("distilbert", "model"), BertArchitecture.BertForSequenceClassification);
        Assert.Equal(["pre_classifier.weight", "pre_classifier.bias", "classifier.weight", "classifier.bias"], model.LoadReport!.Initialized);
        var asQa = model.WithArchitecture(BertArchitecture.BertForQuestionAnswering);
        Assert.Equal(["qa_outputs.weight", "qa_outputs.bias"], asQa.LoadReport!.Initialized);
        Assert.Equal(["classifier.bias", "classifier.weight", "pre_classifier.bias", "pre_classifier.weight"], asQa.LoadReport.Unexpected);
    }

    [Fact]
    public void A_head_distilbert_lacks_is_refused_naming_the_class()
    {
        var e = Assert.Throws<NBertException>(() => BertPreTrainedModel.FromPretrained(Fixtures.Path("distilbert", "model"), BertArchitecture.BertForPreTraining));
        Assert.Contains("DistilBertForPreTraining", e.Message);
        string dir = Temp("nsp");
        Directory.CreateDirectory(dir);
        var config = Fixtures.Json("distilbert", "model", "config.json").AsObject();
        config["architectures"] = new JsonArray("DistilBertForNextSentencePrediction");
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        e = Assert.Throws<NBertException>(() => BertConfig.Load(Path.Combine(dir, "config.json")) is var c ? BertArchitectures.FromConfig(c) : default);
        Assert.Contains("DistilBertForSequenceClassification", e.Message);
    }

    [Fact]
    public void Bad_config_fields_are_named_as_distilbert_names_them_and_unknown_families_are_refused()
    {
        var e = Assert.Throws<NBertException>(() => BertConfig.Parse("""{"model_type": "distilbert", "dim": 30, "n_heads": 4}"""));
        Assert.Contains("dim 30 is not a multiple of n_heads 4", e.Message);
        e = Assert.Throws<NBertException>(() => BertConfig.Parse("""{"model_type": "distilbert", "activation": "mish"}"""));
        Assert.Contains("activation 'mish' is not supported", e.Message);
        e = Assert.Throws<NBertException>(() => BertConfig.Parse("""{"model_type": "distilbert", "n_layers": "six"}"""));
        Assert.Contains("n_layers must be an integer", e.Message);
        e = Assert.Throws<NBertException>(() => BertConfig.Parse("""{"model_type": "albert"}"""));
        Assert.Contains("model_type 'albert' is not supported: bert, distilbert, roberta and electra are", e.Message);
    }

    [Fact]
    public void Sinusoidal_position_embeddings_are_initialised_as_transformers_does()
    {
        var config = BertConfig.Parse("""{"model_type": "distilbert", "dim": 8, "n_heads": 2, "n_layers": 1, "hidden_dim": 16, "vocab_size": 20, "max_position_embeddings": 6, "sinusoidal_pos_embds": true}""");
        Assert.True(config.SinusoidalPositions);
        var table = BertPreTrainedModel.FromConfig(config, BertArchitecture.BertModel).Parameters["embeddings.position_embeddings.weight"].Data;
        // create_sinusoidal_embeddings: sin(pos / 10000^(2(j/2)/dim)) in even columns, cos in odd ones.
        Assert.Equal(MathF.Sin(3f), table[3 * 8 + 0], 6);
        Assert.Equal(MathF.Cos(3f), table[3 * 8 + 1], 6);
        Assert.Equal((float)Math.Cos(5 / Math.Pow(10000, 6.0 / 8)), table[5 * 8 + 7], 6);
        Assert.Contains("\"sinusoidal_pos_embds\": true", config.ToJson());
    }

    [Fact]
    public void The_text_classification_pipeline_runs_a_distilbert_with_berts_tokenizer()
    {
        var pipeline = TextClassification.FromPretrained(Fixtures.Path("distilbert", "seqcls"));
        var model = (BertForSequenceClassification)Load("seqcls");
        var tokenizer = NBert.Tokenization.BertTokenizer.FromPretrained(Fixtures.Path("distilbert", "seqcls"));
        string text = "the movie was surprisingly good";
        var expected = model.Forward(tokenizer.EncodeInputs([text])).Logits!.Data;
        var best = expected.Select((v, i) => (v, i)).MaxBy(x => x.v).i;
        var result = pipeline.Run(text);
        Assert.Equal(model.Config.Id2Label[best], result[0].Label);
    }

    [Fact]
    public void Int8_keeps_distilbert_close_to_float32()
    {
        using var e = Expected();
        var inputs = Inputs(e);
        var float32 = (BertForTokenClassification)Load("tokcls");
        var int8 = (BertForTokenClassification)Load("tokcls");
        int8.Quantize(Quantization.Int8);
        var a = float32.Forward(inputs).Logits!.Data;
        var b = int8.Forward(inputs).Logits!.Data;
        double max = a.Zip(b, (x, y) => Math.Abs(x - y)).Max();
        Assert.True(max > 0 && max < 0.1, $"int8 against float32: max |difference| {max}");
    }

    [Fact]
    public void Its_onnx_export_imports_back_to_the_same_family_config_and_hidden_states() => AssertBaseModelImportsBackFromOnnx(ModelFamily.DistilBert);

    [Fact]
    public void A_torch_style_export_of_a_head_imports_to_the_family_by_its_prefix_and_biases() => AssertTorchStyleHeadExportImportsToTheFamily(ModelFamily.DistilBert);
}
