using System.Text.Json.Nodes;
using NBert.IO;
using NBert.Modeling;
using NBert.Pipelines;
using NBert.Schema;
using NBert.Tensors;
using NBert.Tokenization;
using NBert.Training;

namespace NBert.Tests.Modeling;

/// <summary>
/// RoBERTa as a configuration of the one encoder, against <c>tests/fixtures/roberta</c>: a small random checkpoint per
/// transformers class with RoBERTa's names and config (positions from pad_token_id + 1, one token type, gelu_new in the
/// layers and the LM head's fixed GELU), every head's outputs and losses computed in float64 by numpy following
/// transformers' modeling_roberta.py (tools/FamilyReferences/make_references.py). NBert's float64 within 1e-6, its float32
/// inference within 1e-4; the byte-level BPE tokenizer from vocab.json + merges.txt.
/// </summary>
public sealed class RobertaParityTests() : FamilyParityTest("roberta")
{

    [Fact]
    public void Every_class_loads_from_its_own_names_with_nothing_initialised_or_left_over()
    {
        foreach (var (head, architecture) in new[]
        {
            ("model", BertArchitecture.BertModel), ("maskedlm", BertArchitecture.BertForMaskedLM), ("seqcls", BertArchitecture.BertForSequenceClassification),
            ("tokcls", BertArchitecture.BertForTokenClassification), ("qa", BertArchitecture.BertForQuestionAnswering),
        })
        {
            var model = Load(head);
            Assert.Equal((ModelFamily.Roberta, architecture), (model.Config.Family, model.Architecture));
            Assert.Empty(model.LoadReport!.Initialized);
            Assert.Empty(model.LoadReport.Unexpected);
            // RobertaModel's pooler; the sequence classifier's classifier.dense in the pooler's slot; no pooler elsewhere.
            Assert.Equal(head is "model" or "seqcls", model.HasPoolingLayer);
        }
        var c = Load("model").Config;
        Assert.Equal((1, 1, 38, 1e-5), (c.PadTokenId, c.TypeVocabSize, c.MaxSequenceLength, c.LayerNormEps));
    }

    [Fact]
    public void Position_ids_start_after_padding_idx_and_skip_padding()
    {
        using var e = Expected();
        var inputs = Inputs(e);
        Assert.Equal(Ints(e, "position_ids"), EncoderPass<float>.PaddingPositions(inputs.InputIds, inputs.SequenceLength, 1));
        // 38 tokens fit the 40 positions; 39 are refused, naming the offset.
        var model = (BertModel)Load("model");
        model.Forward(new ModelInputs(1, 38, Enumerable.Repeat(5, 38).ToArray()));
        var error = Assert.Throws<ArgumentException>(() => model.Forward(new ModelInputs(1, 39, Enumerable.Repeat(5, 39).ToArray())));
        Assert.Contains("pad_token_id + 1", error.Message);
    }

    [Fact]
    public void Float32_inference_matches_the_float64_reference_for_every_head()
    {
        using var e = Expected();
        var inputs = Inputs(e);
        var output = ((BertModel)Load("model")).Forward(inputs, outputHiddenStates: true);
        Close("last_hidden_state", e.ReadFloat64("last_hidden_state"), output.LastHiddenState!.Data);
        Close("pooler_output", e.ReadFloat64("pooler_output"), output.PoolerOutput!.Data);
        for (int i = 0; i <= 2; i++) Close($"hidden_states.{i}", e.ReadFloat64($"hidden_states.{i}"), output.HiddenStates![i].Data);
        Close("maskedlm.logits", e.ReadFloat64("maskedlm.logits"), ((BertForMaskedLM)Load("maskedlm")).Forward(inputs).Logits!.Data);
        Close("seqcls.logits", e.ReadFloat64("seqcls.logits"), ((BertForSequenceClassification)Load("seqcls")).Forward(inputs).Logits!.Data);
        Close("tokcls.logits", e.ReadFloat64("tokcls.logits"), ((BertForTokenClassification)Load("tokcls")).Forward(inputs).Logits!.Data);
        var qa = ((BertForQuestionAnswering)Load("qa")).Forward(inputs);
        Close("qa.start_logits", e.ReadFloat64("qa.start_logits"), qa.StartLogits!.Data);
        Close("qa.end_logits", e.ReadFloat64("qa.end_logits"), qa.EndLogits!.Data);
    }

    [Fact]
    public void Float64_body_matches_the_reference_within_1e_6()
    {
        using var e = Expected();
        var model = Load("model");
        var (pass, states) = Float64Body(model, Inputs(e));
        for (int i = 0; i <= 2; i++) Close($"hidden_states.{i}", e.ReadFloat64($"hidden_states.{i}"), states[i], Float64Tolerance);
    }

    [Fact]
    public void Float64_heads_and_their_losses_match_the_reference_within_1e_6()
    {
        using var e = Expected();
        var inputs = Inputs(e);

        AssertMaskedLmOnTheTrainingPath(e, inputs);

        AssertTaskHeadsOnTheTrainingPath(e, inputs);
    }

    [Theory]
    [InlineData("model")]
    [InlineData("maskedlm")]
    [InlineData("seqcls")]
    [InlineData("tokcls")]
    [InlineData("qa")]
    public void SavePretrained_writes_robertas_own_names_and_config_and_loads_back(string head)
    {
        var (model, dir) = SaveAndCompareWithTheFixture(head);
        using var e = Expected();
        Assert.Equal(model.Forward(Inputs(e)).LastHiddenState!.Data, BertPreTrainedModel.FromPretrained(dir).Forward(Inputs(e)).LastHiddenState!.Data);
    }

    [Fact]
    public void Older_checkpoints_with_lm_head_decoder_bias_and_a_pooler_load_as_transformers_loads_them()
    {
        // roberta-base's checkpoint: RobertaForMaskedLM with roberta.pooler.dense (unused by the head) and the decoder's
        // bias written twice.
        string dir = Temp("old");
        Directory.CreateDirectory(dir);
        File.Copy(Fixtures.Path("roberta", "maskedlm", "config.json"), Path.Combine(dir, "config.json"));
        using (var source = new SafeTensorsFile(Fixtures.Path("roberta", "maskedlm", "model.safetensors")))
        {
            var tensors = source.Tensors.Select(t => SafeTensor.Float32(t.Name, t.Shape, source.ReadFloat32(t.Name))).ToList();
            tensors.Add(SafeTensor.Float32("lm_head.decoder.bias", [2000], source.ReadFloat32("lm_head.bias")));
            tensors.Add(SafeTensor.Float32("roberta.pooler.dense.weight", [16, 16], new float[256]));
            tensors.Add(SafeTensor.Float32("roberta.pooler.dense.bias", [16], new float[16]));
            using var stream = File.Create(Path.Combine(dir, "model.safetensors"));
            SafeTensorsWriter.Write(stream, tensors);
        }
        var model = BertPreTrainedModel.FromPretrained(dir);
        Assert.Empty(model.LoadReport!.Initialized);
        Assert.Equal(["roberta.pooler.dense.bias", "roberta.pooler.dense.weight"], model.LoadReport.Unexpected);
        Assert.Contains("lm_head.decoder.bias", model.LoadReport.Ignored);
        var asBase = BertPreTrainedModel.FromPretrained(dir, BertArchitecture.BertModel);
        Assert.True(asBase.HasPoolingLayer); // the prefixed pooler is RobertaModel's
        Assert.Empty(asBase.LoadReport!.Initialized);
    }

    [Fact]
    public void Long_texts_are_truncated_to_the_tokens_robertas_positions_hold()
    {
        // max_position_embeddings 40 less pad_token_id + 1: 38 tokens, as the model takes.
        Assert.Equal(38, BertTokenizer.FromPretrained(Fixtures.Path("roberta", "seqcls")).MaxInputLength);
        var pipeline = TextClassification.FromPretrained(Fixtures.Path("roberta", "seqcls"));
        Assert.Equal(38, pipeline.MaxLength);
        string text = string.Join(" ", Enumerable.Repeat("Call me Ishmael.", 40));
        Assert.Equal(3, pipeline.Run(text, new TextClassificationOptions { TopK = null }).Count);
    }

    [Fact]
    public void Its_tokenizer_is_byte_level_bpe_from_vocab_json_and_merges_txt_with_robertas_pairs()
    {
        var tokenizer = BertTokenizer.FromPretrained(Fixtures.Path("roberta", "seqcls"));
        var pair = tokenizer.Encode("The whale swam.", "Ishmael saw it.");
        var single = tokenizer.Encode("The whale swam.");
        var second = tokenizer.Encode("Ishmael saw it.");
        // <s> A </s></s> B </s>, one token type.
        Assert.Equal([.. single.InputIds, 2, .. second.InputIds[1..]], pair.InputIds);
        Assert.Equal(0, pair.InputIds[0]);
        Assert.All(pair.TokenTypeIds, t => Assert.Equal(0, t));
        var pipeline = TextClassification.FromPretrained(Fixtures.Path("roberta", "seqcls"));
        var model = (BertForSequenceClassification)Load("seqcls");
        var logits = model.Forward(tokenizer.EncodeInputs(["The whale swam."])).Logits!.Data;
        Assert.Equal(model.Config.Id2Label[Array.IndexOf(logits, logits.Max())], pipeline.Run("The whale swam.")[0].Label);
    }

    [Fact]
    public void Its_onnx_export_imports_back_to_the_same_family_config_and_hidden_states() => AssertBaseModelImportsBackFromOnnx(ModelFamily.Roberta);

    [Fact]
    public void A_torch_style_export_of_a_head_imports_to_the_family_by_its_prefix_and_biases() => AssertTorchStyleHeadExportImportsToTheFamily(ModelFamily.Roberta);
}
