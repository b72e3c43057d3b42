using NBert.Modeling;
using NBert.Tensors;
using NBert.Tokenization;
using NBert.Schema;

namespace NBert.Tests.Modeling;

/// <summary>The C# API of models (issue 17): typed loading and outputs, text to inputs in one call, names, disposal.</summary>
public sealed class TypedModelApiTests : TempDirectoryTest
{
    private static string Model(string name) => Fixtures.Path("model", name);

    [Fact]
    public void Each_head_loads_as_its_own_type_and_a_checkpoint_of_another_head_gives_its_encoder_with_a_warning()
    {
        BertForSequenceClassification seqcls = BertForSequenceClassification.FromPretrained(Model("seqcls"));
        Assert.Empty(seqcls.LoadReport!.Initialized);
        var warnings = new List<string>();
        BertForTokenClassification tokcls;
        using (NBertWarnings.Capture(warnings.Add))
            tokcls = BertForTokenClassification.FromPretrained(Model("qa"), configure: c => c with { Id2Label = ["O", "B-PER", "I-PER"] });
        Assert.Equal(BertArchitecture.BertForTokenClassification, tokcls.Architecture);
        Assert.Equal(["classifier.bias", "classifier.weight"], tokcls.LoadReport!.Initialized.Order());
        Assert.Contains(warnings, w => w.Contains("newly initialized") && w.Contains("classifier.weight"));
        Assert.Equal(BertPreTrainedModel.FromPretrained(Model("qa")).Parameters["encoder.layer.1.output.dense.weight"].Data,
            tokcls.Parameters["encoder.layer.1.output.dense.weight"].Data);
        // The untyped loader keeps returning what config.json names.
        Assert.IsType<BertForQuestionAnswering>(BertPreTrainedModel.FromPretrained(Model("qa")));
        Assert.IsType<BertModel>(BertModel.FromPretrained(Model("encoder_only")));
    }

    [Fact]
    public void Outputs_are_typed_and_not_nullable_for_what_each_head_computes()
    {
        var tokenizer = BertTokenizer.FromPretrained(Model("seqcls"));
        var inputs = tokenizer.EncodeInputs(["A fine film.", "Dull and long, and far too loud."]);
        SequenceClassifierOutput output = BertForSequenceClassification.FromPretrained(Model("seqcls")).Forward(inputs);
        FloatTensor logits = output.Logits;
        Assert.Equal([2, 3], logits.Shape);
        var p = logits.Softmax();
        Assert.Equal(logits.ArgMax(), p.ArgMax());
        QuestionAnsweringModelOutput qa = BertForQuestionAnswering.FromPretrained(Model("qa")).Forward(inputs);
        Assert.Equal([2, inputs.SequenceLength], qa.StartLogits.Shape);
        Assert.Equal(qa.EndLogits.Shape, qa.StartLogits.Shape);
        BertForPreTrainingOutput pre = BertForPreTraining.FromPretrained(Model("pretraining")).Forward(inputs);
        Assert.Equal([2, 2], pre.SeqRelationshipLogits.Shape);
        Assert.Equal(tokenizer.VocabSize, pre.PredictionLogits.Shape[2]);
        // The same values through the untyped base.
        BertPreTrainedModel untyped = BertPreTrainedModel.FromPretrained(Model("seqcls"));
        Assert.Equal(logits.Data, untyped.Forward(inputs).Logits!.Data);
    }

    [Fact]
    public void Encode_inputs_pads_masks_and_truncates_to_the_models_positions_by_default()
    {
        var tokenizer = BertTokenizer.FromPretrained(Model("seqcls"));
        var model = BertForSequenceClassification.FromPretrained(Model("seqcls"));
        Assert.Equal(128, tokenizer.MaxPositionEmbeddings);
        Assert.True(tokenizer.ModelMaxLength is null or > 128, "the fixture's tokenizer allows more than the model");
        string longText = string.Join(' ', Enumerable.Repeat("word", 1000));
        var inputs = tokenizer.EncodeInputs([longText, "short"]);
        Assert.Equal((2, 128), (inputs.Batch, inputs.SequenceLength));
        Assert.Equal(3, inputs.AttentionMask!.Skip(128).Sum()); // [CLS] short [SEP], then padding
        Assert.Equal([2, 3], model.Forward(inputs).Logits.Shape); // no "exceeds max_position_embeddings"
        var pairs = tokenizer.EncodeInputs([("A question?", (string?)"A context.")], maxLength: 16);
        Assert.Contains(1, pairs.TokenTypeIds!);
        Assert.Equal(inputs.InputIds.Take(128), ModelInputs.FromEncodings(tokenizer.EncodeBatch([longText],
            new EncodeOptions { MaxLength = 128, Truncation = TruncationStrategy.LongestFirst })).InputIds);
    }

    [Fact]
    public void Label2id_inverts_id2label()
    {
        var config = BertForSequenceClassification.FromPretrained(Model("seqcls")).Config;
        Assert.Equal(config.Id2Label.Count, config.Label2Id.Count);
        for (int i = 0; i < config.NumLabels; i++) Assert.Equal(i, config.Label2Id[config.Id2Label[i]]);
    }

    [Fact]
    public void Names_resolve_everywhere_and_an_unknown_one_lists_the_built_ins()
    {
        var error = Assert.Throws<NBertException>(() => BertPreTrainedModel.FromPretrained("no-such-model-here!"));
        Assert.Contains("minilm", error.Message);
        error = Assert.Throws<NBertException>(() => BertTokenizer.FromPretrained("./no/such/directory"));
        Assert.Contains("minilm", error.Message);
        Assert.Equal(384, BertModel.FromPretrained("minilm").Config.HiddenSize);
        Assert.Equal(30522, BertTokenizer.FromPretrained("minilm").VocabSize);
    }

    [Fact]
    public void A_disposed_model_refuses_to_run()
    {
        var model = BertForSequenceClassification.FromPretrained(Model("seqcls"));
        var inputs = BertTokenizer.FromPretrained(Model("seqcls")).EncodeInputs(["x"]);
        using (model) model.Forward(inputs);
        Assert.Throws<ObjectDisposedException>(() => model.Forward(inputs));
    }

    [Fact]
    public void Save_pretrained_with_the_tokenizer_round_trips_and_a_tokenizer_built_in_code_saves_too()
    {
        var model = BertForSequenceClassification.FromPretrained(Model("seqcls"));
        var tokenizer = BertTokenizer.FromPretrained(Model("seqcls"));
        model.SavePretrained(Temp("saved"), tokenizer);
        var reloaded = BertForSequenceClassification.FromPretrained(Temp("saved"));
        var again = BertTokenizer.FromPretrained(Temp("saved"));
        var inputs = tokenizer.EncodeInputs(["Was it good?"]);
        Assert.Equal(inputs.InputIds, again.EncodeInputs(["Was it good?"]).InputIds);
        Assert.Equal(model.Forward(inputs).Logits.Data, reloaded.Forward(inputs).Logits.Data);
        Assert.Equal(File.ReadAllBytes(Path.Combine(Model("seqcls"), "tokenizer.json")), File.ReadAllBytes(Temp("saved/tokenizer.json")));

        var built = BertTokenizer.FromVocabulary(File.ReadAllLines(Path.Combine(Model("seqcls"), "vocab.txt")),
            new BertTokenizerOptions { DoLowerCase = false, ModelMaxLength = 64, AddedTokens = [new AddedToken("<extra>", 4000)] });
        built.SavePretrained(Temp("built"));
        var loaded = BertTokenizer.FromPretrained(Temp("built"));
        const string text = "Hello <extra> World, Café!";
        Assert.Equal(built.Encode(text).InputIds, loaded.Encode(text).InputIds);
        Assert.Equal(64, loaded.ModelMaxLength);
        Assert.False(loaded.Normalizer.Lowercase);
    }

    [Fact]
    public void A_tokenizer_saved_over_another_leaves_none_of_the_others_files()
    {
        // The seqcls tokenizer (lower-casing, with tokenizer.json) first; then a cased one built in code over it. A
        // stale tokenizer.json left in place would be what FromPretrained reads.
        BertTokenizer.FromPretrained(Model("seqcls")).SavePretrained(Temp("saved"));
        var cased = BertTokenizer.FromVocabulary(File.ReadAllLines(Path.Combine(Model("seqcls"), "vocab.txt")), new BertTokenizerOptions { DoLowerCase = false });
        cased.SavePretrained(Temp("saved"));
        Assert.False(File.Exists(Temp("saved/tokenizer.json")));
        Assert.False(BertTokenizer.FromPretrained(Temp("saved")).Normalizer.Lowercase);
        // Saving a tokenizer into its own directory keeps its files.
        var own = BertTokenizer.FromPretrained(Temp("saved"));
        own.SavePretrained(Temp("saved"));
        Assert.True(File.Exists(Temp("saved/vocab.txt")));
    }
}
