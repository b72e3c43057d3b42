using NBert.IO;
using NBert.Modeling;
using NBert.Tensors;
using NBert.Schema;

namespace NBert.Tests.Modeling;

/// <summary>
/// Every tensor of <c>model/expected_forward.safetensors</c> (transformers in float64), computed by NBert
/// in float32, within max |difference| 1e-4.
/// </summary>
public sealed class ForwardParityTests : IDisposable
{
    private const double Tolerance = 1e-4;
    private readonly SafeTensorsFile _expected = new(Fixtures.Path("model", "expected_forward.safetensors"));

    public void Dispose() => _expected.Dispose();

    private ModelInputs Inputs(string prefix, bool withMaskAndTypes = true)
    {
        var info = _expected.Info(prefix + "input_ids");
        int[] Ints(string name) => _expected.ReadInt64(prefix + name).Select(v => (int)v).ToArray();
        return new ModelInputs(info.Shape[0], info.Shape[1], Ints("input_ids"),
            withMaskAndTypes ? Ints("token_type_ids") : null, withMaskAndTypes ? Ints("attention_mask") : null);
    }

    internal static double MaxDifference(float[] actual, float[] expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double max = 0;
        for (int i = 0; i < actual.Length; i++) max = Math.Max(max, Math.Abs((double)actual[i] - expected[i]));
        return max;
    }

    private void AssertClose(string name, FloatTensor? actual)
    {
        Assert.NotNull(actual);
        Assert.Equal(_expected.Info(name).Shape, actual.Shape);
        double diff = MaxDifference(actual.Data, _expected.ReadFloat32(name));
        Assert.True(diff <= Tolerance, $"{name}: max |difference| {diff:E2} > {Tolerance:E0}");
    }

    [Fact]
    public void Pretraining_model_matches_every_output_including_hidden_states_and_attentions()
    {
        var model = (BertForPreTraining)BertPreTrainedModel.FromPretrained(Fixtures.Path("model", "pretraining"));
        Assert.Empty(model.LoadReport!.Initialized);
        Assert.Empty(model.LoadReport.Unexpected);
        var output = model.Forward(Inputs(""), outputHiddenStates: true, outputAttentions: true);
        AssertClose("last_hidden_state", output.LastHiddenState);
        AssertClose("pooler_output", output.PoolerOutput);
        for (int i = 0; i <= 2; i++) AssertClose($"hidden_states.{i}", output.HiddenStates![i]);
        for (int i = 0; i <= 1; i++) AssertClose($"attentions.{i}", output.Attentions![i]);
        AssertClose("prediction_logits", output.PredictionLogits);
        AssertClose("seq_relationship_logits", output.SeqRelationshipLogits);
    }

    [Fact]
    public void Without_mask_and_token_types_the_defaults_are_all_ones_and_zeros()
    {
        var model = BertPreTrainedModel.FromPretrained(Fixtures.Path("model", "pretraining"), BertArchitecture.BertModel);
        AssertClose("default_args.last_hidden_state", model.Forward(Inputs("", withMaskAndTypes: false)).LastHiddenState);
    }

    [Theory]
    [InlineData("seqcls", "seqcls.logits")]
    [InlineData("tokcls", "tokcls.logits")]
    public void Classification_heads_match(string directory, string expected)
    {
        var model = BertPreTrainedModel.FromPretrained(Fixtures.Path("model", directory));
        Assert.Empty(model.LoadReport!.Initialized);
        AssertClose(expected, model.Forward(Inputs(directory + ".")).Logits);
    }

    [Fact]
    public void Question_answering_head_matches()
    {
        var model = BertPreTrainedModel.FromPretrained(Fixtures.Path("model", "qa"));
        var output = model.Forward(Inputs("qa."));
        AssertClose("qa.start_logits", output.StartLogits);
        AssertClose("qa.end_logits", output.EndLogits);
    }

    /// <summary>The same weights in every form transformers writes: legacy names, pickle, encoder only.</summary>
    [Theory]
    [InlineData("pretraining_legacy_names", null)]
    [InlineData("pretraining", "pytorch_model.bin")]
    [InlineData("encoder_only", null)]
    public void Every_checkpoint_form_gives_the_same_body_outputs(string directory, string? onlyFile)
    {
        string source = Fixtures.Path("model", directory);
        string dir = source;
        if (onlyFile is not null)
        {
            dir = Directory.CreateTempSubdirectory("nbert-bin-").FullName;
            File.Copy(Path.Combine(source, "config.json"), Path.Combine(dir, "config.json"));
            File.Copy(Path.Combine(source, onlyFile), Path.Combine(dir, onlyFile));
        }
        try
        {
            var model = BertPreTrainedModel.FromPretrained(dir, BertArchitecture.BertModel);
            Assert.Empty(model.LoadReport!.Initialized);
            var output = model.Forward(Inputs(""));
            AssertClose("last_hidden_state", output.LastHiddenState);
            AssertClose("pooler_output", output.PoolerOutput);
        }
        finally
        {
            if (onlyFile is not null) Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Legacy_checkpoint_gives_every_pretraining_output()
    {
        var model = BertPreTrainedModel.FromPretrained(Fixtures.Path("model", "pretraining_legacy_names"));
        Assert.Empty(model.LoadReport!.Initialized);
        Assert.Empty(model.LoadReport.Unexpected);
        var output = model.Forward(Inputs(""));
        AssertClose("prediction_logits", output.PredictionLogits);
        AssertClose("seq_relationship_logits", output.SeqRelationshipLogits);
    }

    [Fact]
    public void A_batch_of_three_gives_the_rows_of_three_single_runs()
    {
        var model = BertPreTrainedModel.FromPretrained(Fixtures.Path("model", "pretraining"));
        var inputs = Inputs("");
        var batch = model.Forward(inputs);
        for (int b = 0; b < inputs.Batch; b++)
        {
            var single = model.Forward(inputs.Row(b));
            int n = single.PredictionLogits!.Data.Length;
            Assert.Equal(batch.PredictionLogits!.Data.AsSpan(b * n, n).ToArray(), single.PredictionLogits.Data);
            Assert.Equal(batch.SeqRelationshipLogits!.Data.AsSpan(b * 2, 2).ToArray(), single.SeqRelationshipLogits!.Data);
        }
    }
}
