using NBert.Modeling;
using NBert.Pipelines;

namespace NBert.Tests.Pipelines;

/// <summary>Pipeline options beyond the goldens: targets, score functions, next sentence, stride windows.</summary>
public class PipelineBehaviourTests
{
    [Fact]
    public void Fill_mask_targets_keep_the_targets_probabilities()
    {
        var fill = FillMask.FromPretrained(Fixtures.Path("model", "pretraining"));
        var all = fill.Run("My dog is [MASK].");
        var targets = new[] { all[3].TokenStr, all[1].TokenStr };
        var chosen = fill.Run("My dog is [MASK].", new FillMaskOptions { Targets = targets });
        Assert.Equal([all[1].Token, all[3].Token], chosen.Select(c => c.Token)); // best first
        Assert.Equal(all[1].Score, chosen[0].Score);
        // More candidates than there are: all of them, not an error.
        Assert.Equal(2, fill.Run("My dog is [MASK].", new FillMaskOptions { Targets = targets, TopK = int.MaxValue }).Count);
        Assert.Equal(fill.Tokenizer.VocabSize, fill.Run("My dog is [MASK].", new FillMaskOptions { TopK = int.MaxValue }).Count);
        // A target that is not a token: its first piece, with transformers' warning.
        var warnings = new List<string>();
        using (NBertWarnings.Capture(warnings.Add)) fill.Run("My dog is [MASK].", new FillMaskOptions { Targets = ["zzzzqqq"] });
        Assert.Contains(warnings, w => w.Contains("zzzzqqq") && w.Contains("not in the model's vocabulary"));
    }

    [Fact]
    public void Text_classification_applies_softmax_sigmoid_or_nothing()
    {
        var cls = TextClassification.FromPretrained(Fixtures.Path("model", "seqcls"));
        const string input = "A fine film.";
        var logits = cls.Model.Forward(Tokenize(cls, "A fine film.")).Logits!.Data;
        var raw = cls.Run(input, new TextClassificationOptions { TopK = null, Function = ScoreFunction.None });
        var labels = cls.Model.Config.Id2Label;
        foreach (var r in raw) Assert.Equal(logits[labels.ToList().IndexOf(r.Label)], r.Score, 5);
        var sigmoid = cls.Run(input, new TextClassificationOptions { TopK = null, Function = ScoreFunction.Sigmoid });
        foreach (var s in sigmoid) Assert.Equal(1 / (1 + Math.Exp(-logits[labels.ToList().IndexOf(s.Label)])), s.Score, 5);
        Assert.Equal(1.0, cls.Run(input, new TextClassificationOptions { TopK = null }).Sum(x => x.Score), 5); // softmax by default for 3 labels
        Assert.Equal(ScoreFunction.Softmax, cls.DefaultFunction);
    }

    private static ModelInputs Tokenize(TextClassification cls, string text) => ModelInputs.FromEncodings([cls.Tokenizer.Encode(text)]);

    [Fact]
    public void Next_sentence_is_the_softmax_of_the_nsp_logits_at_index_0()
    {
        var nsp = NextSentence.FromPretrained(Fixtures.Path("model", "pretraining"));
        var p = nsp.Run([("He went home.", "It was late."), ("The cat sat.", "Stocks fell sharply.")]);
        var logits = nsp.Model.Forward(ModelInputs.FromEncodings([nsp.Tokenizer.Encode("He went home.", "It was late.")])).SeqRelationshipLogits!.Data;
        Assert.Equal(Math.Exp(logits[0]) / (Math.Exp(logits[0]) + Math.Exp(logits[1])), p[0].Score, 5);
        Assert.Equal(p[0].Score >= 0.5f, p[0].IsNext);
        Assert.Equal(2, p.Count);
    }

    [Fact]
    public void A_text_longer_than_the_model_is_tagged_through_overlapping_windows()
    {
        var ner = TokenClassification.FromPretrained(Fixtures.Path("model", "tokcls"));
        string text = string.Join(" ", Enumerable.Repeat("John Smith and Mary Jones work at the United Nations in New York.", 20));
        Assert.True(ner.Tokenizer.Encode(text).Length > ner.Model.Config.MaxPositionEmbeddings);
        var entities = ner.Run(text, new TokenClassificationOptions { Aggregation = Aggregation.Simple, Stride = 16 });
        Assert.True(entities[^1].End > text.Length - 20, $"the last entity ends at {entities[^1].End} of {text.Length}");
        Assert.All(entities.Zip(entities.Skip(1)), p => Assert.True(p.Second.Start >= p.First.End, "entities overlap"));
        // Without a stride the text is truncated, so entities stop early.
        var truncated = ner.Run(text, new TokenClassificationOptions { Aggregation = Aggregation.Simple });
        Assert.True(truncated[^1].End < text.Length / 2);
    }
}
