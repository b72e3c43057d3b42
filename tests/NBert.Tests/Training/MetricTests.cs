using NBert.Training;
using NBert.Schema;
using NBert.Tasks;

namespace NBert.Tests.Training;

/// <summary>Metrics against values worked out by hand from scikit-learn's, seqeval's and the official SQuAD script's definitions.</summary>
public class MetricTests
{
    [Fact]
    public void Accuracy_and_macro_f1_as_scikit_learn()
    {
        int[] gold = [0, 1, 2, 0, 1, 2, 0];
        int[] pred = [0, 2, 1, 0, 0, 1, 0];
        Assert.Equal(3.0 / 7, ClassificationMetrics.Accuracy(gold, pred), 12);
        // Label 0: tp 3, fp 1 → 6/7; labels 1 and 2: no true positive → 0. Mean 2/7.
        Assert.Equal(2.0 / 7, ClassificationMetrics.MacroF1(gold, pred), 12);
        // A predicted label that never occurs in gold still counts: label 1 gives 2/3, label 3 gives 0.
        Assert.Equal(1.0 / 3, ClassificationMetrics.MacroF1([1, 1], [1, 3]), 12);
    }

    [Fact]
    public void Seqeval_reads_entities_leniently_as_its_default_mode()
    {
        Assert.Equal([new Entity("PER", 0, 1), new Entity("LOC", 3, 3)], SeqEval.Entities(["B-PER", "I-PER", "O", "B-LOC"]));
        // I- after O starts an entity; a type change splits; B after I starts a new one.
        Assert.Equal([new Entity("PER", 1, 2), new Entity("LOC", 3, 3), new Entity("LOC", 4, 4)],
            SeqEval.Entities(["O", "I-PER", "I-PER", "I-LOC", "B-LOC"]));
        // Sequences are joined with O, so an entity never spans two sentences.
        Assert.Equal([new Entity("PER", 0, 0), new Entity("PER", 2, 2)], SeqEval.Entities(new[] { new[] { "B-PER" }, new[] { "I-PER" } }));
    }

    [Fact]
    public void Seqeval_micro_scores_match_its_readme_example()
    {
        string[][] gold = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]];
        string[][] pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]];
        var s = SeqEval.Score(gold, pred);
        Assert.Equal(0.5, s.F1, 12);
        Assert.Equal(0.5, s.Precision, 12);
        Assert.Equal(0.5, s.Recall, 12);
        Assert.Equal(0, SeqEval.Score([["O"]], [["O"]]).F1);
    }

    [Fact]
    public void Squad_scores_as_the_official_script()
    {
        Assert.Equal("denver broncos", SquadMetrics.Normalize("The Denver Broncos!"));
        Assert.Equal("stadium", SquadMetrics.Normalize("  an   stadium. "));
        Assert.Equal(1, SquadMetrics.ExactMatch("the Broncos", "Broncos"));
        // tokens: pred [denver, broncos, won], gold [broncos]: precision 1/3, recall 1 → 0.5
        Assert.Equal(0.5, SquadMetrics.F1("Denver Broncos won", "The Broncos"), 12);
        Assert.Equal((0.0, 0.5), SquadMetrics.Score("Denver Broncos won", ["Carolina", "the Broncos"]));
        // Unanswerable: only the empty prediction scores.
        Assert.Equal((1.0, 1.0), SquadMetrics.Score("", []));
        Assert.Equal((0.0, 0.0), SquadMetrics.Score("Denver", []));
        // Repeated tokens count once each: pred [a1 a1 b], gold [a1 b b] → same 2, P 2/3, R 2/3.
        Assert.Equal(2.0 / 3, SquadMetrics.F1("x x y", "x y y"), 12);
    }
}
