using NBert.IO;
using NBert.Modeling;

namespace NBert.Tests.Modeling;

public sealed class ModelLoadingTests : TempDirectoryTest
{
    private static BertConfig Tiny => BertConfig.Load(Fixtures.Path("model", "pretraining", "config.json"));

    [Fact]
    public void Config_json_gives_transformers_fields_and_defaults()
    {
        var c = BertConfig.Load(Fixtures.Path("model", "tokcls", "config.json"));
        Assert.Equal((4000, 32, 2, 4, 64, 128), (c.VocabSize, c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads, c.IntermediateSize, c.MaxPositionEmbeddings));
        Assert.Equal(Activation.Gelu, c.Activation);
        Assert.Equal(["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"], c.Id2Label);
        Assert.Equal(BertArchitecture.BertForTokenClassification, BertArchitectures.FromConfig(c));
        var defaults = BertConfig.Parse("{}");
        Assert.Equal((30522, 768, 12, 3072, 512, 2), (defaults.VocabSize, defaults.HiddenSize, defaults.NumHiddenLayers, defaults.IntermediateSize, defaults.MaxPositionEmbeddings, defaults.NumLabels));
        Assert.Equal(3, BertConfig.Parse("""{"num_labels": 3}""").NumLabels);
        Assert.Equal(Activation.GeluTanh, BertConfig.Parse("""{"hidden_act": "gelu_pytorch_tanh"}""").Activation);
        Assert.Equal(Activation.Silu, BertConfig.Parse("""{"hidden_act": "silu"}""").Activation);
    }

    [Theory]
    [InlineData("""{"position_embedding_type": "relative_key"}""", "relative_key")]
    [InlineData("""{"hidden_act": "mish"}""", "mish")]
    [InlineData("""{"hidden_size": 30, "num_attention_heads": 4}""", "num_attention_heads")]
    [InlineData("""{"problem_type": "ranking"}""", "ranking")]
    [InlineData("""{"id2label": {"0": "a", "5": "b"}}""", "id2label")]
    public void Unsupported_or_inconsistent_configs_are_refused_naming_the_field(string json, string named)
    {
        string path = Path.Combine(Dir, "config.json");
        File.WriteAllText(path, json);
        var ex = Assert.Throws<NBertException>(() => BertConfig.Load(path));
        Assert.Contains(named, ex.Message);
        Assert.Contains(path, ex.Message);
    }

    [Fact]
    public void A_missing_head_is_initialised_and_reported_and_unused_weights_are_listed()
    {
        var model = BertPreTrainedModel.FromPretrained(Fixtures.Path("model", "seqcls"), BertArchitecture.BertForPreTraining);
        var report = model.LoadReport!;
        Assert.Contains("cls.predictions.bias", report.Initialized);
        Assert.Contains("cls.seq_relationship.weight", report.Initialized);
        Assert.Equal(["classifier.bias", "classifier.weight"], report.Unexpected);
        Assert.Equal(2, report.Warnings.Count());
        Assert.All(model.Parameters["cls.predictions.bias"].Data, v => Assert.Equal(0f, v));
        var std = Math.Sqrt(model.Parameters["cls.seq_relationship.weight"].Data.Select(v => (double)v * v).Average());
        Assert.InRange(std, 0.01, 0.04); // normal(0, initializer_range = 0.02)
    }

    [Fact]
    public void A_checkpoint_without_a_pooler_gets_one_initialised_for_sequence_classification()
    {
        var model = BertPreTrainedModel.FromPretrained(Fixtures.Path("model", "tokcls"), BertArchitecture.BertForSequenceClassification);
        Assert.Contains("pooler.dense.weight", model.LoadReport!.Initialized);
        Assert.Equal(["pooler.dense.weight", "pooler.dense.bias"], model.LoadReport.Initialized); // the 9-label classifier loads
    }

    [Fact]
    public void Missing_encoder_weights_and_wrong_shapes_are_errors_naming_the_tensor()
    {
        using (var source = new SafeTensorsFile(Fixtures.Path("model", "encoder_only", "model.safetensors")))
        {
            var kept = source.Tensors.Where(t => t.Name != "encoder.layer.1.output.dense.weight")
                .Select(t => SafeTensor.Float32(t.Name, t.Shape, source.ReadFloat32(t.Name)));
            SafeTensorsWriter.Write(Path.Combine(Dir, "model.safetensors"), kept);
        }
        File.Copy(Fixtures.Path("model", "encoder_only", "config.json"), Path.Combine(Dir, "config.json"));
        var ex = Assert.Throws<NBertException>(() => BertPreTrainedModel.FromPretrained(Dir));
        Assert.Contains("encoder.layer.1.output.dense.weight", ex.Message);

        File.WriteAllText(Path.Combine(Dir, "config.json"), File.ReadAllText(Fixtures.Path("model", "encoder_only", "config.json")).Replace("\"vocab_size\": 4000", "\"vocab_size\": 4001"));
        File.Copy(Fixtures.Path("model", "encoder_only", "model.safetensors"), Path.Combine(Dir, "model.safetensors"), overwrite: true);
        ex = Assert.Throws<NBertException>(() => BertPreTrainedModel.FromPretrained(Dir));
        Assert.Contains("embeddings.word_embeddings.weight", ex.Message);
        Assert.Contains("[4000, 32]", ex.Message);
    }

    [Fact]
    public void Padded_encodings_make_a_batch_with_their_ids_types_and_mask()
    {
        var tokenizer = NBert.Tokenization.BertTokenizer.FromDirectory(Fixtures.Path("model", "pretraining"));
        var encodings = tokenizer.EncodeBatch([("The man went to the store.", "He bought milk."), ("Hi", null)],
            new NBert.Tokenization.EncodeOptions { Padding = NBert.Tokenization.PaddingStrategy.Longest });
        var batch = ModelInputs.FromEncodings(encodings);
        Assert.Equal((2, encodings[0].Length), (batch.Batch, batch.SequenceLength));
        Assert.Equal(encodings.SelectMany(e => e.InputIds), batch.InputIds);
        Assert.Equal(encodings.SelectMany(e => e.TokenTypeIds), batch.TokenTypeIds!);
        Assert.Equal(encodings.SelectMany(e => e.AttentionMask), batch.AttentionMask!);
        Assert.Throws<ArgumentException>(() => ModelInputs.FromEncodings([encodings[0], tokenizer.Encode("Hi")]));
    }

    [Fact]
    public void Too_long_sequences_and_bad_ids_are_refused()
    {
        var model = BertPreTrainedModel.FromConfig(Tiny, BertArchitecture.BertModel, seed: 1);
        var ex = Assert.Throws<ArgumentException>(() => model.Forward(new ModelInputs(1, 129, new int[129])));
        Assert.Contains("max_position_embeddings 128", ex.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Forward(new ModelInputs(1, 2, [5, 4000])));
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Forward(new ModelInputs(1, 2, [5, 6], tokenTypeIds: [0, 2])));
        Assert.Throws<ArgumentException>(() => new ModelInputs(2, 3, new int[5]));
    }

    [Fact]
    public void Saved_models_reload_to_the_same_outputs_with_transformers_names()
    {
        var model = BertPreTrainedModel.FromConfig(Tiny, BertArchitecture.BertForPreTraining, seed: 7);
        model.SavePretrained(Dir);
        using (var st = new SafeTensorsFile(Path.Combine(Dir, "model.safetensors")))
        {
            Assert.Contains(st.Tensors, t => t.Name == "bert.embeddings.word_embeddings.weight");
            Assert.Contains(st.Tensors, t => t.Name == "cls.predictions.bias");
            Assert.DoesNotContain(st.Tensors, t => t.Name.Contains("decoder")); // tied to the word embeddings
            Assert.Equal("pt", st.Metadata["format"]);
        }
        var reloaded = BertPreTrainedModel.FromPretrained(Dir);
        Assert.IsType<BertForPreTraining>(reloaded);
        Assert.Empty(reloaded.LoadReport!.Initialized);
        var inputs = new ModelInputs(2, 5, [101, 7, 8, 9, 102, 101, 10, 102, 0, 0], attentionMask: [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
        Assert.Equal(model.Forward(inputs).PredictionLogits!.Data, reloaded.Forward(inputs).PredictionLogits!.Data);
        // The same seed gives the same weights; another seed other weights.
        Assert.Equal(model.Parameters["encoder.layer.0.attention.self.query.weight"].Data,
            BertPreTrainedModel.FromConfig(Tiny, BertArchitecture.BertForPreTraining, seed: 7).Parameters["encoder.layer.0.attention.self.query.weight"].Data);
        Assert.NotEqual(model.Parameters["encoder.layer.0.attention.self.query.weight"].Data,
            BertPreTrainedModel.FromConfig(Tiny, BertArchitecture.BertForPreTraining, seed: 8).Parameters["encoder.layer.0.attention.self.query.weight"].Data);
    }
}
