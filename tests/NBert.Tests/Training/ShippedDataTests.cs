using NBert.Training;

namespace NBert.Tests.Training;

/// <summary>The data the repository ships (data/DATA.md) loads as documented.</summary>
public sealed class ShippedDataTests : TempDirectoryTest
{
    [Theory]
    [InlineData("train", 2400)]
    [InlineData("dev", 300)]
    [InlineData("test", 300)]
    public void The_sentiment_splits_load_with_binary_labels_from_all_three_domains(string split, int count)
    {
        var examples = ClassificationData.Read(Path.Combine(Fixtures.RepoRoot, "data", "sentiment", $"{split}.jsonl.gz"));
        Assert.Equal(count, examples.Count);
        Assert.Equal(ClassificationProblem.SingleLabel, ClassificationData.Problem(examples));
        Assert.Equal(["LABEL_0", "LABEL_1"], ClassificationData.LabelNames(examples)); // integer labels 0 and 1
        Assert.All(examples, e => Assert.False(string.IsNullOrWhiteSpace(e.Text)));
    }

    [Theory]
    [InlineData("brown", 475, 25)]
    [InlineData("sotu", 221, 12)]
    [InlineData("moby-dick", 131, 7)]
    public void The_pretraining_corpus_holds_every_20th_document_out(string name, int train, int heldOut)
    {
        string Corpus(string part) => Path.Combine(Fixtures.RepoRoot, "data", "corpus", $"{name}.{part}.txt.gz");
        var trainDocs = PretrainingCorpus.Documents([Corpus("train")]).ToList();
        var heldDocs = PretrainingCorpus.Documents([Corpus("heldout")]).ToList();
        Assert.Equal(train, trainDocs.Count);
        Assert.Equal(heldOut, heldDocs.Count);
        // No sentence-level leak: a held-out document's opening sentence is nowhere in training.
        var trainSentences = trainDocs.SelectMany(d => d).ToHashSet();
        Assert.All(heldDocs, d => Assert.DoesNotContain(d.First(s => s.Length > 40), trainSentences));
        Assert.All(trainDocs.Concat(heldDocs).SelectMany(d => d), s => Assert.False(string.IsNullOrWhiteSpace(s)));
    }

    [Theory]
    [InlineData("train", 5990)]
    [InlineData("dev", 750)]
    [InlineData("test", 750)]
    public void The_silver_ner_splits_load_as_iob2_with_four_entity_types(string split, int count)
    {
        var examples = TokenClassificationData.Read(Path.Combine(Fixtures.RepoRoot, "data", "ner", $"{split}.jsonl.gz"));
        Assert.Equal(count, examples.Count);
        var tags = examples.SelectMany(e => e.Tags).ToHashSet();
        Assert.All(tags, t => Assert.Matches("^(O|[BI]-(PER|LOC|ORG|MISC))$", t));
        Assert.Equal(["LOC", "MISC", "ORG", "PER"], tags.Where(t => t.StartsWith("B-")).Select(t => t[2..]).Order());
        // IOB2: an I- tag continues an entity of the same type.
        Assert.All(examples, e => Assert.All(e.Tags.Select((t, i) => (t, i)).Where(x => x.t.StartsWith("I-")),
            x => Assert.EndsWith(x.t[2..], e.Tags[x.i - 1])));
    }

    [Theory]
    [InlineData("train", 1200)]
    [InlineData("dev", 300)]
    [InlineData("test", 300)]
    public void The_synthetic_qa_splits_load_as_squad_v2_with_answers_at_their_offsets(string split, int count)
    {
        var questions = QuestionAnsweringData.Read(Path.Combine(Fixtures.RepoRoot, "data", "qa", $"{split}.json.gz"));
        Assert.Equal(count, questions.Count);
        Assert.InRange(questions.Count(q => q.Answers.Count == 0), count / 4, count * 3 / 5);
        Assert.All(questions.Where(q => q.Answers.Count > 0), q => Assert.Equal(q.Answers[0].Text, q.Context.Substring(q.Answers[0].Start, q.Answers[0].Text.Length)));
    }

    [Fact]
    public void Gzip_csv_is_read_like_plain_csv()
    {
        string text = "text,label\n\"a, b\",pos\nc,neg\n";
        using (var gz = new System.IO.Compression.GZipStream(File.Create(Temp("d.csv.gz")), System.IO.Compression.CompressionLevel.Fastest))
            gz.Write(System.Text.Encoding.UTF8.GetBytes(text));
        File.WriteAllText(Temp("d.csv"), text);
        Assert.Equal(ClassificationData.Read(Temp("d.csv")).Select(e => e.Text), ClassificationData.Read(Temp("d.csv.gz")).Select(e => e.Text));
    }
}
