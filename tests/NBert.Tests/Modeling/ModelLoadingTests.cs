using NBert.IO;
using NBert.Modeling;
using NBert.Schema;
using NBert.Tasks;

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

    [Theory]
    [InlineData("""{"architectures": [null]}""", "architectures[0] must be a string, not null")]
    [InlineData("""{"architectures": "BertModel"}""", "architectures must be a list of strings")]
    [InlineData("""{"num_labels": 1000000000}""", "num_labels 1000000000")]
    [InlineData("""{"num_labels": "3"}""", "num_labels must be an integer, not \"3\"")]
    [InlineData("""{"layer_norm_eps": -1}""", "layer_norm_eps must be a positive number, not -1")]
    [InlineData("""{"layer_norm_eps": 0}""", "layer_norm_eps must be a positive number")]
    [InlineData("""{"layer_norm_eps": 1e999}""", "layer_norm_eps must be a finite number")]
    [InlineData("""{"hidden_dropout_prob": 1.5}""", "hidden_dropout_prob must be a probability")]
    [InlineData("""{"attention_probs_dropout_prob": -0.1}""", "attention_probs_dropout_prob must be a probability")]
    [InlineData("""{"classifier_dropout": 2}""", "classifier_dropout must be a probability")]
    [InlineData("""{"initializer_range": -0.02}""", "initializer_range must be a non-negative number")]
    [InlineData("""{"hidden_size": "768"}""", "hidden_size must be an integer")]
    [InlineData("""{"hidden_size": 768.5}""", "hidden_size must be an integer")]
    [InlineData("""{"hidden_size": null}""", "hidden_size must be an integer, not null")]
    [InlineData("""{"vocab_size": 1e10}""", "vocab_size must be an integer")]
    [InlineData("""{"hidden_act": 5}""", "hidden_act must be a string")]
    [InlineData("""{"tie_word_embeddings": "yes"}""", "tie_word_embeddings must be true or false")]
    [InlineData("""{"problem_type": 3}""", "problem_type must be a string")]
    [InlineData("""{"id2label": {"0": 5}}""", "id2label['0'] must be a label name")]
    [InlineData("""{"id2label": ["a", "b"]}""", "id2label must be an object")]
    [InlineData("""{"pad_token_id": 40000}""", "pad_token_id 40000")]
    [InlineData("""{"vocab_size": 1000000000}""", "vocab_size 1000000000 x hidden_size 768")]
    [InlineData("""{"hidden_size": 1000000000, "num_attention_heads": 1}""", "hidden_size 1000000000")]
    [InlineData("""{"intermediate_size": 1000000000}""", "intermediate_size 1000000000 x hidden_size 768")]
    [InlineData("""{"max_position_embeddings": 1000000000}""", "max_position_embeddings 1000000000 x hidden_size 768")]
    [InlineData("""{"hidden_size": 12, "hidden_size": 24}""", "Duplicate property 'hidden_size'")]
    [InlineData("""[1, 2]""", "not a JSON object")]
    public void Fields_of_the_wrong_type_or_an_unusable_value_are_refused_naming_the_file_and_field(string json, string message)
    {
        string path = Path.Combine(Dir, "config.json");
        File.WriteAllText(path, json);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<NBertException>(() => BertConfig.Load(path));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20, "allocated more than 1 MiB to refuse a config");
        Assert.Contains(path, ex.Message);
        Assert.Contains(message, ex.Message);
    }

    [Fact]
    public void A_config_json_with_a_byte_order_mark_loads_and_one_that_is_not_utf8_is_refused()
    {
        string path = Path.Combine(Dir, "config.json");
        File.WriteAllBytes(path, [0xEF, 0xBB, 0xBF, .. "{\"num_labels\": 3}"u8]);
        Assert.Equal(3, BertConfig.Load(path).NumLabels);
        File.WriteAllBytes(path, [.. "{\"hidden_act\": \"gel"u8, 0xFF, .. "u\"}"u8]);
        var ex = Assert.Throws<NBertException>(() => BertConfig.Load(path));
        Assert.Contains($"{path}: not valid UTF-8 (byte 19)", ex.Message);
    }

    [Fact]
    public void Null_is_accepted_where_transformers_writes_none()
    {
        var c = BertConfig.Parse("""{"pad_token_id": null, "classifier_dropout": null, "problem_type": null, "architectures": null, "id2label": null, "num_labels": 3}""");
        Assert.Equal((0, null, null, 0, 3), (c.PadTokenId, c.ClassifierDropout, c.ProblemType, c.Architectures.Count, c.NumLabels));
        Assert.Equal(["LABEL_0", "LABEL_1", "LABEL_2"], c.Id2Label);
    }

    [Fact]
    public void An_architecture_nbert_does_not_have_is_refused_naming_config_json()
    {
        File.Copy(Fixtures.Path("model", "encoder_only", "model.safetensors"), Path.Combine(Dir, "model.safetensors"));
        File.WriteAllText(Path.Combine(Dir, "config.json"), File.ReadAllText(Fixtures.Path("model", "encoder_only", "config.json"))
            .Replace("\"BertModel\"", "\"GPT2LMHeadModel\""));
        var ex = Assert.Throws<NBertException>(() => BertPreTrainedModel.FromPretrained(Dir));
        Assert.Contains(Path.Combine(Dir, "config.json"), ex.Message);
        Assert.Contains("architectures names 'GPT2LMHeadModel'", ex.Message);
    }

    [Fact]
    public void A_model_too_large_for_memory_is_refused_before_allocating_naming_the_field()
    {
        var config = Tiny with { NumHiddenLayers = 1_000_000, HiddenSize = 768, NumAttentionHeads = 12, IntermediateSize = 3072 };
        long before = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<NBertException>(() => BertPreTrainedModel.FromConfig(config, BertArchitecture.BertModel));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20, "allocated more than 1 MiB to refuse");
        Assert.Contains("num_hidden_layers 1000000", ex.Message);
        Assert.Contains("GiB of memory available", ex.Message);
    }

    [Fact]
    public void The_parameter_count_from_the_config_is_the_sum_of_the_parameter_shapes()
    {
        // BERT, and each family's fixture config (ELECTRA's embeddings 8 wide projected to 16), tied and untied.
        var families = new[] { "distilbert", "roberta", "electra" }.Select(f => BertConfig.Load(Fixtures.Path(f, "model", "config.json")));
        var configs = new[] { Tiny }.Concat(families).SelectMany(c => new[] { c, c with { TieWordEmbeddings = false, Id2Label = ["a", "b", "c"] } });
        foreach (var config in configs)
            foreach (var a in Enum.GetValues<BertArchitecture>().Where(a => FamilyNames.Supports(config.Family, a)))
                Assert.Equal(BertArchitectures.Parameters(config, a).Sum(p => p.Shape.Aggregate(1L, (n, d) => n * d)),
                    (long)BertArchitectures.ParameterCount(config, a));
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

    /// <summary>The encoder_only fixture copied into <see cref="TempDirectoryTest.Dir"/> with some values replaced.</summary>
    private void DamagedCopy(params (string Tensor, int Index, float Value)[] damage)
    {
        using (var source = new SafeTensorsFile(Fixtures.Path("model", "encoder_only", "model.safetensors")))
            SafeTensorsWriter.Write(Path.Combine(Dir, "model.safetensors"), source.Tensors.Select(t =>
            {
                var values = source.ReadFloat32(t.Name);
                foreach (var (name, index, value) in damage)
                    if (name == t.Name) values[index] = value;
                return SafeTensor.Float32(t.Name, t.Shape, values);
            }).ToList());
        File.Copy(Fixtures.Path("model", "encoder_only", "config.json"), Path.Combine(Dir, "config.json"), overwrite: true);
    }

    [Fact]
    public void Non_finite_weights_are_reported_with_their_tensor_and_count()
    {
        DamagedCopy(("encoder.layer.1.output.dense.weight", 17, float.NaN),
            ("embeddings.word_embeddings.weight", 0, float.PositiveInfinity), ("embeddings.word_embeddings.weight", 4000 * 32 - 1, float.NegativeInfinity));
        var report = BertPreTrainedModel.FromPretrained(Dir).LoadReport!;
        Assert.Equal([new NonFiniteTensor("embeddings.word_embeddings.weight", 2, 4000 * 32), new NonFiniteTensor("encoder.layer.1.output.dense.weight", 1, 32 * 64)],
            report.NonFinite.OrderBy(t => t.Name, StringComparer.Ordinal));
        var warning = Assert.Single(report.Warnings);
        Assert.Contains("NaN or infinite", warning);
        Assert.Contains("encoder.layer.1.output.dense.weight (1 of 2,048 values)", warning);

        DamagedCopy();
        Assert.Empty(BertPreTrainedModel.FromPretrained(Dir).LoadReport!.NonFinite);
    }

    [Fact]
    public void Counting_non_finite_values_finds_every_one_wherever_it_lies()
    {
        var random = new Random(5);
        for (int length = 0; length < 70; length++)
        {
            var values = Enumerable.Range(0, length).Select(_ => (float)random.NextDouble() * 1e38f * (random.Next(2) * 2 - 1)).ToArray();
            int expected = 0;
            for (int i = 0; i < length; i++)
                if (random.Next(5) == 0)
                {
                    values[i] = random.Next(3) switch { 0 => float.NaN, 1 => float.PositiveInfinity, _ => BitConverter.Int32BitsToSingle(unchecked((int)0xFFC00001)) };
                    expected++;
                }
            Assert.Equal(expected, BertWeights.CountNonFinite(values));
        }
        Assert.Equal(0, BertWeights.CountNonFinite([float.MaxValue, float.MinValue, float.Epsilon, -0f]));
    }

    [Fact]
    public void A_checkpoint_without_a_pooler_gets_one_initialised_for_sequence_classification()
    {
        var model = BertPreTrainedModel.FromPretrained(Fixtures.Path("model", "tokcls"), BertArchitecture.BertForSequenceClassification);
        Assert.Contains("pooler.dense.weight", model.LoadReport!.Initialized);
        Assert.Equal(["pooler.dense.weight", "pooler.dense.bias"], model.LoadReport.Initialized); // the 9-label classifier loads
    }

    /// <summary>encoder_only's checkpoint without its pooler: what sentence-transformers saves (add_pooling_layer=False).</summary>
    private string WithoutPooler()
    {
        string dir = Temp("no-pooler");
        Directory.CreateDirectory(dir);
        using (var source = new SafeTensorsFile(Fixtures.Path("model", "encoder_only", "model.safetensors")))
            SafeTensorsWriter.Write(Path.Combine(dir, "model.safetensors"), source.Tensors.Where(t => !t.Name.StartsWith("pooler.", StringComparison.Ordinal))
                .Select(t => SafeTensor.Float32(t.Name, t.Shape, source.ReadFloat32(t.Name))).ToList());
        File.Copy(Fixtures.Path("model", "encoder_only", "config.json"), Path.Combine(dir, "config.json"));
        return dir;
    }

    [Fact]
    public void A_bert_model_checkpoint_without_pooler_weights_loads_without_a_pooler_and_saves_none()
    {
        var warnings = new List<string>();
        BertPreTrainedModel model;
        using (NBertWarnings.Capture(warnings.Add)) model = BertPreTrainedModel.FromPretrained(WithoutPooler());
        Assert.IsType<BertModel>(model);
        Assert.False(model.HasPoolingLayer);
        Assert.Empty(model.LoadReport!.Initialized); // no random pooler invented
        Assert.Empty(warnings);
        Assert.DoesNotContain(model.Parameters.Keys, k => k.StartsWith("pooler.", StringComparison.Ordinal));
        var inputs = new ModelInputs(1, 4, [2, 10, 11, 3], null, null);
        var output = model.Forward(inputs);
        Assert.Null(output.PoolerOutput);
        Assert.Equal(["last_hidden_state"], output.Named().Select(t => t.Name));
        // The encoder is the one with a pooler: same hidden states.
        var withPooler = BertPreTrainedModel.FromPretrained(Fixtures.Path("model", "encoder_only"));
        Assert.True(withPooler.HasPoolingLayer);
        Assert.Equal(withPooler.Forward(inputs).LastHiddenState!.Data, output.LastHiddenState!.Data);

        model.SavePretrained(Temp("saved"));
        using (var saved = new SafeTensorsFile(Path.Combine(Temp("saved"), "model.safetensors")))
            Assert.DoesNotContain(saved.Tensors, t => t.Name.StartsWith("pooler.", StringComparison.Ordinal));
        Assert.False(BertPreTrainedModel.FromPretrained(Temp("saved")).HasPoolingLayer);

        // The same model as a BertModel again keeps having none; a head that uses the pooler gets one, with the warning.
        Assert.False(model.WithArchitecture(BertArchitecture.BertModel).HasPoolingLayer);
        warnings.Clear();
        BertPreTrainedModel classifier;
        using (NBertWarnings.Capture(warnings.Add)) classifier = BertPreTrainedModel.FromPretrained(Temp("no-pooler"), BertArchitecture.BertForSequenceClassification);
        Assert.True(classifier.HasPoolingLayer);
        Assert.Contains("pooler.dense.weight", classifier.LoadReport!.Initialized);
        Assert.Contains(warnings, w => w.Contains("pooler.dense.weight", StringComparison.Ordinal));
    }

    [Fact]
    public void Only_a_bert_model_can_lack_its_pooler()
    {
        var parameters = BertWeights.Initialize(Tiny, BertArchitecture.BertForSequenceClassification, seed: 1);
        parameters.Remove("pooler.dense.weight");
        parameters.Remove("pooler.dense.bias");
        var ex = Assert.Throws<ArgumentException>(() => BertPreTrainedModel.Create(Tiny, BertArchitecture.BertForSequenceClassification, parameters, null));
        Assert.Contains("pooler.dense.weight", ex.Message);
        Assert.Throws<ArgumentException>(() => BertArchitectures.Parameters(Tiny, BertArchitecture.BertForPreTraining, addPoolingLayer: false));
        Assert.True(BertPreTrainedModel.FromConfig(Tiny, BertArchitecture.BertModel).HasPoolingLayer); // transformers' default
        Assert.False(BertPreTrainedModel.Create(Tiny, BertArchitecture.BertModel,
            BertWeights.Initialize(Tiny, BertArchitecture.BertModel, seed: 1, addPoolingLayer: false), null).HasPoolingLayer);
    }

    [Fact]
    public void Inspect_says_no_pooler()
    {
        string dir = WithoutPooler();
        var (code, output, _) = NBert.Tests.Cli.Nbert.Run("inspect", "--model", dir);
        Assert.Equal(0, code);
        Assert.Contains("no pooler", output);
        (code, output, _) = NBert.Tests.Cli.Nbert.Run("inspect", "--model", dir, "--json");
        Assert.Equal(0, code);
        Assert.False((bool)System.Text.Json.Nodes.JsonNode.Parse(output)!["pooler"]!);
        (code, output, _) = NBert.Tests.Cli.Nbert.Run("inspect", "--model", Fixtures.Path("model", "encoder_only"), "--json");
        Assert.True((bool)System.Text.Json.Nodes.JsonNode.Parse(output)!["pooler"]!);
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
        var tokenizer = NBert.Tokenization.BertTokenizer.FromPretrained(Fixtures.Path("model", "pretraining"));
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
    public void A_save_that_fails_leaves_neither_config_json_nor_temporary_files()
    {
        var model = BertPreTrainedModel.FromConfig(Tiny, BertArchitecture.BertModel, seed: 1);
        Directory.CreateDirectory(Path.Combine(Dir, "model.safetensors")); // the weights cannot be renamed into place
        Assert.Throws<IOException>(() => model.SavePretrained(Dir));
        Assert.Equal([Path.Combine(Dir, "model.safetensors")], Directory.GetFileSystemEntries(Dir));
    }

    [Fact]
    public void An_id_outside_the_vocabulary_is_named_with_the_models_vocabulary_size()
    {
        var model = BertPreTrainedModel.FromConfig(Tiny with { VocabSize = 100 }, BertArchitecture.BertModel, seed: 1);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => model.Forward(new ModelInputs(2, 3, [5, 6, 7, 101, 5, 6])));
        Assert.Contains("Input id 101 (sequence 1, position 0)", ex.Message);
        Assert.Contains("vocab_size 100", ex.Message);
        Assert.Contains("tokenizer", ex.Message);
    }

    [Fact]
    public void A_tokenizer_larger_than_the_models_vocabulary_is_refused_naming_both_sizes_and_an_id()
    {
        var tokenizer = NBert.Tokenization.BertTokenizer.FromPretrained(Fixtures.Path("model", "pretraining"));
        var model = BertPreTrainedModel.FromConfig(Tiny with { VocabSize = 100 }, BertArchitecture.BertModel, seed: 1);
        var ex = Assert.Throws<NBertException>(() => model.EnsureTokenizerFits(tokenizer));
        Assert.Contains($"The tokenizer has {tokenizer.VocabSize:N0} ids but the model's vocab_size is 100", ex.Message);
        Assert.Contains("such as 100 ([UNK])", ex.Message); // the lowest special token id past the model's vocabulary
        BertPreTrainedModel.FromConfig(Tiny, BertArchitecture.BertModel, seed: 1).EnsureTokenizerFits(tokenizer); // the pair that belongs together
    }

    [Fact]
    public void Attentions_that_would_overflow_one_array_are_refused_before_allocating()
    {
        var model = BertPreTrainedModel.FromConfig(Tiny, BertArchitecture.BertModel, seed: 1);
        var inputs = new ModelInputs(40_000, 128, new int[40_000 * 128]); // 40,000 x 4 heads x 128 x 128 > 2^31
        long before = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<ArgumentException>(() => model.Forward(inputs, outputAttentions: true));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20, "allocated more than 1 MiB to refuse");
        Assert.Contains("attentions of a layer (batch 40000 x heads 4 x sequence 128 x sequence 128)", ex.Message);
        Assert.Contains("2,621,440,000 values", ex.Message);
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
