using NBert.Hub;
using NBert.Modeling;
using NBert.Pipelines;
using NBert.Schema;
using NBert.Tasks;
using NBert.Tokenization;
using NBert.Training;

namespace NBert.Tests;

/// <summary>
/// The exception contract of docs/design.md ("The error contract"), case by case: bad input (files, models, texts, an
/// output directory) is an <see cref="NBertException"/> or a documented subtype naming the file or input; a mistake in the
/// calling code is an <see cref="ArgumentException"/>; a single-text call never names its text "Input 1".
/// </summary>
public sealed class ExceptionContractTests : TempDirectoryTest
{
    private static string Model(string name) => Fixtures.Path("model", name);

    [Fact]
    public void A_missing_file_or_directory_is_a_MissingFileException_naming_it()
    {
        string missing = Temp("no-such.jsonl");
        void Check(Action load, string path)
        {
            var e = Assert.Throws<MissingFileException>(load);
            Assert.IsAssignableFrom<NBertException>(e);
            Assert.Equal(path, e.FileName);
            Assert.Contains(path, e.Message);
        }
        Check(() => ClassificationData.Read(missing), missing);
        Check(() => TokenClassificationData.Read(missing), missing);
        Check(() => QuestionAnsweringData.Read(missing), missing);
        Check(() => DataFiles.Lines(missing).ToList(), missing);
        Check(() => PretrainingCorpus.Documents([missing]).ToList(), missing);
        Check(() => BertConfig.Load(missing), missing);
        Check(() => new NBert.IO.SafeTensorsFile(missing), missing);
        Check(() => ResolvedModel.FromDirectory(Temp("no-such-dir")), Temp("no-such-dir"));
        Check(() => BertPreTrainedModel.FromPretrained(new ResolvedModel { Name = "x", Directory = Temp("no-such-dir") }), Temp("no-such-dir"));
    }

    [Fact]
    public void A_folder_holding_only_a_training_log_names_the_missing_config_and_weights_not_the_tokenizer()
    {
        string run = Temp("run");
        Directory.CreateDirectory(run);
        File.WriteAllText(Path.Combine(run, "metrics.jsonl"), "{\"step\": 10, \"loss\": 0.5}\n");
        foreach (var load in new Action[]
        {
            () => TextClassification.FromPretrained(run),
            () => SentenceEmbeddings.FromPretrained(run),
            () => BertPreTrainedModel.FromPretrained(run),
            () => BertTokenizer.FromPretrained(run),
        })
        {
            var e = Assert.Throws<MissingFileException>(load);
            Assert.StartsWith($"Model directory '{run}' holds no model: no config.json, no weights (model.safetensors", e.Message);
            Assert.Contains("metrics.jsonl, the log of a training run that wrote no model", e.Message);
            Assert.Equal(Path.Combine(run, "config.json"), e.FileName);
        }

        // With a checkpoint of the run that did not finish, the message says where the work is and how to go on.
        string checkpoint = Path.Combine(run, "checkpoint-15");
        Directory.CreateDirectory(checkpoint);
        foreach (var name in new[] { "config.json", "model.safetensors", "vocab.txt" }) File.Copy(Path.Combine(Model("seqcls"), name), Path.Combine(checkpoint, name));
        File.WriteAllText(Path.Combine(checkpoint, "trainer_state.json"), "{}");
        var withCheckpoint = Assert.Throws<MissingFileException>(() => TextClassification.FromPretrained(run));
        Assert.Contains($"it holds checkpoint-15, the checkpoint of a training run that did not finish: resume the run", withCheckpoint.Message);
        Assert.Contains($"or load {checkpoint}", withCheckpoint.Message);
        using var fromCheckpoint = TextClassification.FromPretrained(checkpoint); // as the message says

        // Config without weights: the weights are named, and nothing else is.
        string config = Temp("config-only");
        Directory.CreateDirectory(config);
        File.Copy(Path.Combine(Model("seqcls"), "config.json"), Path.Combine(config, "config.json"));
        File.Copy(Path.Combine(Model("seqcls"), "vocab.txt"), Path.Combine(config, "vocab.txt"));
        var noWeights = Assert.Throws<MissingFileException>(() => TextClassification.FromPretrained(config));
        Assert.Equal($"Model directory '{config}' holds no model: no weights (model.safetensors, model.safetensors.index.json or pytorch_model.bin).", noWeights.Message);
    }

    [Fact]
    public void A_null_single_text_is_an_ArgumentNullException_naming_the_parameter()
    {
        using var cls = TextClassification.FromPretrained(Model("seqcls"));
        using var ner = TokenClassification.FromPretrained(Model("tokcls"));
        using var qa = QuestionAnswering.FromPretrained(Model("qa"));
        using var fill = FillMask.FromPretrained(Model("pretraining"));
        using var nsp = NextSentence.FromPretrained(Model("pretraining"));
        using var embed = SentenceEmbeddings.FromPretrained(Model("encoder_only"));
        void Null(Action call, string parameter)
        {
            var e = Assert.Throws<ArgumentNullException>(call); // exactly this type, not a BatchItemException
            Assert.Equal(parameter, e.ParamName);
            Assert.DoesNotContain("Input 1", e.Message);
        }
        Null(() => cls.Run((string)null!), "text");
        Null(() => cls.Run("a text", (string)null!), "textPair");
        Null(() => cls.Run(null!, "a pair"), "text");
        Null(() => ner.Run((string)null!), "text");
        Null(() => qa.Run(null!, "a context"), "question");
        Null(() => qa.Run("a question?", null!), "context");
        Null(() => fill.Run((string)null!), "text");
        Null(() => fill.RunEachMask((string)null!), "text");
        Null(() => nsp.Run(null!, "b"), "a");
        Null(() => nsp.Run("a", null!), "b");
        Null(() => embed.Embed((string)null!), "text");
    }

    [Fact]
    public void A_single_text_that_is_refused_is_not_called_Input_1_while_a_list_names_the_input()
    {
        using var fill = FillMask.FromPretrained(Model("pretraining"));
        using var qa = QuestionAnswering.FromPretrained(Model("qa"));
        var single = Assert.Throws<ArgumentException>(() => fill.Run("no mask here"));
        Assert.DoesNotContain("Input", single.Message);
        Assert.Contains("[MASK]", single.Message);
        Assert.DoesNotContain("Input", Assert.Throws<ArgumentException>(() => fill.Run("two [MASK] and [MASK]")).Message);
        Assert.Equal("the question is empty.", Assert.Throws<ArgumentException>(() => qa.Run(" ", "a context")).Message);

        // In a list, the refused input is named by its position (1-based), with the same reason.
        var list = Assert.Throws<BatchItemException>(() => fill.Run(["Paris is the [MASK] of France.", "no mask here"]));
        Assert.Equal(1, list.Index);
        Assert.Equal($"Input 2: {single.Message}", list.Message);
    }

    [Fact]
    public void Mistakes_in_the_calling_code_are_ArgumentExceptions()
    {
        var tokenizer = BertTokenizer.FromPretrained(Model("pretraining"));
        var model = BertPreTrainedModel.FromPretrained(Model("pretraining"));
        (string, string)[] data = [("he was", "good"), ("it was", "bad")];
        Assert.Throws<ArgumentNullException>(() => FineTuning.Classification(null!, tokenizer, data));
        Assert.Throws<ArgumentNullException>(() => FineTuning.Classification(model, null!, data));
        Assert.Equal("per_device_train_batch_size", Assert.Throws<ArgumentOutOfRangeException>(() =>
            FineTuning.Classification(model, tokenizer, data, options: new FineTuningOptions { BatchSize = 0 })).ParamName);
        Assert.Throws<ArgumentException>(() => FineTuning.Classification(model, tokenizer, Array.Empty<(string, string)>()));
        Assert.Throws<ArgumentException>(() => FineTuning.Classification(model, tokenizer, data, options: new FineTuningOptions { Resume = true, Epochs = 1 }));
        Assert.Throws<ArgumentException>(() => Pretraining.Run(BertPreTrainedModel.FromPretrained(Model("seqcls")), tokenizer, [new PretrainingInstance([5], [6], false)],
            new MaskedLmCollator(tokenizer)));
        Assert.Throws<ArgumentNullException>(() => TextClassification.FromPretrained((ResolvedModel)null!));
        Assert.Throws<ArgumentNullException>(() => tokenizer.Encode(null!));
    }
}
