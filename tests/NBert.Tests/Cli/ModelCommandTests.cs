using System.Text.Json.Nodes;
using NBert.IO;
using NBert.Modeling;
using NBert.Tests.Modeling;
using static NBert.Tests.Cli.Nbert;
using NBert.Schema;

namespace NBert.Tests.Cli;

public sealed class ModelCommandTests : TempDirectoryTest
{
    [Theory]
    [InlineData("distilbert", "DistilBertForSequenceClassification", "pre_classifier")]
    [InlineData("roberta", "RobertaForSequenceClassification", "classifier.dense")]
    [InlineData("electra", "ElectraForSequenceClassification", "classifier.dense")]
    public void Inspect_names_a_familys_class_and_its_layer_in_the_poolers_slot(string family, string architecture, string pooler)
    {
        var (code, output, _) = Run("inspect", "--model", Fixtures.Path(family, "seqcls"), "--json");
        Assert.Equal(0, code);
        Assert.Equal(architecture, (string)JsonNode.Parse(output)!["architecture"]!);
        (code, output, _) = Run("inspect", "--model", Fixtures.Path(family, "seqcls"));
        Assert.Equal(0, code);
        Assert.Contains(pooler, output);
        Assert.Equal(family == "electra", output.Contains("embedding_size", StringComparison.Ordinal)); // ELECTRA's field only
    }

    [Fact]
    public void Forward_writes_transformers_outputs_matching_the_goldens()
    {
        string output = Temp("out.safetensors");
        var (code, _, error) = Run("forward", "--model", Fixtures.Path("model", "pretraining"), "--inputs",
            Fixtures.Path("model", "expected_forward.safetensors"), "--output", output, "--hidden-states", "--attentions");
        Assert.True(code == 0, error);
        using var expected = new SafeTensorsFile(Fixtures.Path("model", "expected_forward.safetensors"));
        using var actual = new SafeTensorsFile(output);
        foreach (var name in new[] { "last_hidden_state", "pooler_output", "hidden_states.2", "attentions.1", "prediction_logits", "seq_relationship_logits" })
        {
            Assert.Equal(DType.F32, actual.Info(name).DType);
            Assert.True(ForwardParityTests.MaxDifference(actual.ReadFloat32(name), expected.ReadFloat32(name)) <= 1e-4, name);
        }
    }

    [Fact]
    public void The_head_option_picks_the_architecture()
    {
        string output = Temp("qa.safetensors");
        string inputs = Temp("qa-inputs.safetensors");
        using (var expected = new SafeTensorsFile(Fixtures.Path("model", "expected_forward.safetensors")))
        {
            var shape = expected.Info("qa.input_ids").Shape;
            SafeTensorsWriter.Write(inputs, new[] { "input_ids", "token_type_ids", "attention_mask" }.Select(n =>
                SafeTensor.Int64(n, shape, expected.ReadInt64("qa." + n))));
        }
        Assert.Equal(0, Run("forward", "--model", Fixtures.Path("model", "qa"), "--inputs", inputs, "--output", output).Code);
        using (var st = new SafeTensorsFile(output))
            Assert.Equal(["end_logits", "last_hidden_state", "start_logits"], st.Tensors.Select(t => t.Name).Order());
        // The QA checkpoint has no pooler (transformers builds QA with add_pooling_layer=False): as a BertModel it has
        // none either, rather than a random one, and the command says why pooler_output is missing.
        var (code, stdout, _) = Run("forward", "--model", Fixtures.Path("model", "qa"), "--inputs", inputs, "--output", output, "--head", "base");
        Assert.Equal(0, code);
        Assert.Contains("no pooler_output: the model has no pooler", stdout);
        using (var st = new SafeTensorsFile(output))
            Assert.Equal(["last_hidden_state"], st.Tensors.Select(t => t.Name));
        Assert.Equal(0, Run("forward", "--model", Fixtures.Path("model", "seqcls"), "--inputs", inputs, "--output", output, "--head", "base").Code);
        using (var st = new SafeTensorsFile(output))
            Assert.Equal(["last_hidden_state", "pooler_output"], st.Tensors.Select(t => t.Name).Order());
    }

    [Fact]
    public void Init_writes_a_checkpoint_that_loads_back_with_the_same_weights()
    {
        string dir = Temp("random");
        var (code, output, error) = Run("init", "--config", Fixtures.Path("model", "seqcls", "config.json"), "--out", dir,
            "--seed", "3", "--vocab", Fixtures.Path("model", "seqcls", "vocab.txt"));
        Assert.True(code == 0, error);
        Assert.Contains("BertForSequenceClassification", output);
        Assert.True(File.Exists(Path.Combine(dir, "vocab.txt")));
        var loaded = BertPreTrainedModel.FromPretrained(dir);
        Assert.Empty(loaded.LoadReport!.Initialized);
        var fresh = BertPreTrainedModel.FromConfig(loaded.Config, BertArchitecture.BertForSequenceClassification, seed: 3);
        Assert.Equal(fresh.Parameters["classifier.weight"].Data, loaded.Parameters["classifier.weight"].Data);
        Assert.Equal(["negative", "neutral", "positive"], loaded.Config.Id2Label);
    }

    [Theory]
    [InlineData("hidden_size", 1_000_000_000, "hidden_size 1000000000")]
    [InlineData("vocab_size", 1_000_000_000, "vocab_size 1000000000")]
    [InlineData("intermediate_size", 1_000_000_000, "intermediate_size 1000000000")]
    [InlineData("max_position_embeddings", 1_000_000_000, "max_position_embeddings 1000000000")]
    [InlineData("num_hidden_layers", 1_000_000, "num_hidden_layers 1000000")]
    [InlineData("num_labels", 1_000_000_000, "num_labels 1000000000")]
    public void Init_refuses_a_model_that_cannot_fit_before_allocating_and_writes_nothing(string field, int value, string message)
    {
        var config = JsonNode.Parse(File.ReadAllText(Fixtures.Path("model", "seqcls", "config.json")))!.AsObject();
        config.Remove("id2label");
        config.Remove("label2id");
        config[field] = value;
        if (field == "hidden_size") config["num_attention_heads"] = 1;
        File.WriteAllText(Temp("config.json"), config.ToJsonString());
        string dir = Temp("out");
        long before = GC.GetAllocatedBytesForCurrentThread();
        var (code, _, error) = Run("init", "--config", Temp("config.json"), "--out", dir);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 64 << 20, "allocated more than 64 MiB to refuse");
        Assert.Equal(2, code);
        Assert.Contains(Temp("config.json"), error);
        Assert.Contains(message, error);
        Assert.False(Directory.Exists(dir));
    }

    [Fact]
    public void Init_that_fails_while_writing_leaves_no_half_written_folder()
    {
        string dir = Temp("out");
        Directory.CreateDirectory(Path.Combine(dir, "model.safetensors")); // the weights cannot be renamed into place
        var (code, _, error) = Run("init", "--config", Fixtures.Path("model", "seqcls", "config.json"), "--out", dir,
            "--vocab", Fixtures.Path("model", "seqcls", "vocab.txt"), "--overwrite");
        Assert.NotEqual(0, code);
        Assert.Contains("model.safetensors", error);
        Assert.Equal([Path.Combine(dir, "model.safetensors")], Directory.GetFileSystemEntries(dir));
    }

    [Fact]
    public void Inspect_shows_config_tensors_and_load_report_as_tables_or_json()
    {
        var (code, output, _) = Run("inspect", "--model", Fixtures.Path("model", "tokcls"));
        Assert.Equal(0, code);
        Assert.Contains("BertForTokenClassification", output);
        Assert.Contains("bert.encoder.layer.0.attention.self.query.weight", output);
        Assert.Contains("[32, 32]", output);
        Assert.Contains("every parameter loaded", output);
        (code, output, _) = Run("inspect", "--model", Fixtures.Path("model", "tokcls"), "--json");
        Assert.Equal(0, code);
        var json = JsonNode.Parse(output)!;
        Assert.Equal("BertForTokenClassification", (string)json["architecture"]!);
        Assert.Equal(9, json["config"]!["labels"]!.AsArray().Count);
        Assert.True((long)json["parameters"]! > 100_000);
    }

    [Fact]
    public void Inspect_reports_non_finite_weights()
    {
        string dir = Temp("nan");
        Directory.CreateDirectory(dir);
        using (var source = new SafeTensorsFile(Fixtures.Path("model", "encoder_only", "model.safetensors")))
            SafeTensorsWriter.Write(Path.Combine(dir, "model.safetensors"), source.Tensors.Select(t =>
            {
                var values = source.ReadFloat32(t.Name);
                if (t.Name == "encoder.layer.0.attention.self.query.bias") values[3] = float.NaN;
                return SafeTensor.Float32(t.Name, t.Shape, values);
            }).ToList());
        File.Copy(Fixtures.Path("model", "encoder_only", "config.json"), Path.Combine(dir, "config.json"));
        var (code, output, _) = Run("inspect", "--model", dir);
        Assert.Equal(0, code);
        Assert.Contains("NaN or infinite", output);
        Assert.Contains("encoder.layer.0.attention.self.query.bias (1 of 32 values)", output);
        (code, output, _) = Run("inspect", "--model", dir, "--json");
        Assert.Equal(0, code);
        var nonFinite = JsonNode.Parse(output)!["non_finite"]!.AsArray().Single()!;
        Assert.Equal(("encoder.layer.0.attention.self.query.bias", 1L), ((string)nonFinite["name"]!, (long)nonFinite["count"]!));
    }

    [Fact]
    public void Bad_files_and_inputs_exit_2_naming_the_file_or_tensor()
    {
        string model = Fixtures.Path("model", "pretraining");
        string output = Temp("o.safetensors");
        // no such model
        var r = Run("forward", "--model", Temp("nope"), "--inputs", Temp("x"), "--output", output);
        Assert.Equal(2, r.Code);
        Assert.Contains("nope", r.Err);
        // corrupt inputs
        File.WriteAllText(Temp("corrupt.safetensors"), "garbage that is long enough");
        r = Run("forward", "--model", model, "--inputs", Temp("corrupt.safetensors"), "--output", output);
        Assert.Equal(2, r.Code);
        Assert.Contains("corrupt.safetensors", r.Err);
        // float ids
        SafeTensorsWriter.Write(Temp("float.safetensors"), [SafeTensor.Float32("input_ids", [1, 3], [101f, 5f, 102f])]);
        r = Run("forward", "--model", model, "--inputs", Temp("float.safetensors"), "--output", output);
        Assert.Equal(2, r.Code);
        Assert.Contains("input_ids", r.Err);
        // too long for max_position_embeddings
        SafeTensorsWriter.Write(Temp("long.safetensors"), [SafeTensor.Int64("input_ids", [1, 200], new long[200])]);
        r = Run("forward", "--model", model, "--inputs", Temp("long.safetensors"), "--output", output);
        Assert.Equal(2, r.Code);
        Assert.Contains("max_position_embeddings", r.Err);
        // mismatched mask
        SafeTensorsWriter.Write(Temp("mask.safetensors"), [SafeTensor.Int64("input_ids", [1, 3], [101, 5, 102]), SafeTensor.Int64("attention_mask", [1, 2], [1, 1])]);
        r = Run("forward", "--model", model, "--inputs", Temp("mask.safetensors"), "--output", output);
        Assert.Equal(2, r.Code);
        Assert.Contains("attention_mask", r.Err);
        // unknown head, unknown architecture, missing config
        Assert.Equal(2, Run("forward", "--model", model, "--inputs", Temp("mask.safetensors"), "--output", output, "--head", "gpt").Code);
        r = Run("init", "--config", Fixtures.Path("model", "qa", "config.json"), "--out", Temp("i"), "--architecture", "GPT2LMHeadModel");
        Assert.Equal(2, r.Code);
        Assert.Contains("GPT2LMHeadModel", r.Err);
        r = Run("init", "--config", Temp("no-config.json"), "--out", Temp("i"));
        Assert.Equal(2, r.Code);
        Assert.Contains("no-config.json", r.Err);
        Assert.False(File.Exists(output));
    }
}
