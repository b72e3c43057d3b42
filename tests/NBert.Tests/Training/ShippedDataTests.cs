using NBert.Training;
using NBert.Tasks;

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
    [InlineData("train", 6731, 2437, 1232, 1412, 655)]
    [InlineData("dev", 843, 305, 196, 169, 66)]
    [InlineData("test", 877, 342, 194, 209, 101)]
    public void The_silver_ner_splits_load_as_iob2_with_their_documented_entities(string split, int count, int per, int loc, int org, int misc)
    {
        var examples = TokenClassificationData.Read(Path.Combine(Fixtures.RepoRoot, "data", "ner", $"{split}.jsonl.gz"));
        Assert.Equal(count, examples.Count);
        AssertIob2(examples, per, loc, org, misc);
    }

    [Fact]
    public void The_handwritten_ner_set_is_iob2_and_shares_no_sentence_with_the_training_text()
    {
        var examples = TokenClassificationData.Read(Path.Combine(Fixtures.RepoRoot, "data", "eval", "ner.jsonl"));
        Assert.Equal(70, examples.Count);
        AssertIob2(examples, per: 29, loc: 58, org: 57, misc: 15);
        // Brown's sentences are its tokens joined by spaces, in the NER splits and in the corpus alike.
        var training = new[] { "train", "dev", "test" }
            .SelectMany(s => TokenClassificationData.Read(Path.Combine(Fixtures.RepoRoot, "data", "ner", $"{s}.jsonl.gz")))
            .Select(e => string.Join(' ', e.Words))
            .Concat(CorpusSentences()).ToHashSet();
        Assert.All(examples, e => Assert.DoesNotContain(string.Join(' ', e.Words), training));
    }

    [Theory]
    [InlineData("train", QaTrain, QaTrainUnanswerable)]
    [InlineData("dev", 1000, QaDevUnanswerable)]
    [InlineData("test", 1000, QaTestUnanswerable)]
    public void The_generated_qa_splits_load_as_squad_v2_with_answers_at_their_offsets(string split, int count, int unanswerable)
    {
        // QuestionAnsweringData.Read checks every answer against its context at its offset.
        var questions = QuestionAnsweringData.Read(Path.Combine(Fixtures.RepoRoot, "data", "qa", $"{split}.json.gz"));
        Assert.Equal(count, questions.Count);
        Assert.Equal(unanswerable, questions.Count(q => q.Answers.Count == 0));
        Assert.All(questions, q => Assert.EndsWith("?", q.Question));
        Assert.Equal(count, questions.Select(q => q.Id).Distinct().Count());
    }

    [Fact]
    public void The_generated_qa_splits_share_no_sentence()
    {
        // Sentences, not only whole contexts: the speeches repeat themselves, and training passages that shared a
        // sentence with a test passage were in the set until build-qa.sh kept such passages out. A passage's sentences
        // have at least 4 words; shorter pieces are this split's cuts after "Mr." or an initial.
        var sentences = new[] { "train", "dev", "test" }.Select(s => QuestionAnsweringData.Read(Path.Combine(Fixtures.RepoRoot, "data", "qa", $"{s}.json.gz"))
            .Select(q => q.Context).Distinct().SelectMany(c => System.Text.RegularExpressions.Regex.Split(c, @"(?<=[.!?])\s+(?=[A-Z""])"))
            .Where(x => x.Split(' ').Length >= 4).ToHashSet()).ToList();
        Assert.Empty(sentences[0].Intersect(sentences[1]));
        Assert.Empty(sentences[0].Intersect(sentences[2]));
        Assert.Empty(sentences[1].Intersect(sentences[2]));
    }

    [Fact]
    public void The_handwritten_qa_set_is_squad_v2_a_fifth_unanswerable_and_shares_no_sentence_with_the_training_text()
    {
        var questions = QuestionAnsweringData.Read(Path.Combine(Fixtures.RepoRoot, "data", "eval", "qa.json"));
        Assert.Equal(144, questions.Count);
        Assert.Equal(29, questions.Count(q => q.Answers.Count == 0));
        Assert.Equal(29, questions.Select(q => q.Context).Distinct().Count());
        var trainingContexts = QuestionAnsweringData.Read(Path.Combine(Fixtures.RepoRoot, "data", "qa", "train.json.gz"))
            .Select(q => q.Context).Distinct().ToList();
        var corpus = CorpusSentences().ToHashSet();
        var sentences = questions.Select(q => q.Context).Distinct()
            .SelectMany(c => System.Text.RegularExpressions.Regex.Split(c, @"(?<!\b(?:St|Dr|Mr|Mrs|Ms)\.)(?<=[.!?])\s+(?=[A-Z])")).ToList();
        Assert.True(sentences.Count >= 80 && sentences.All(s => s.Length >= 15), $"{sentences.Count} sentences, the shortest '{sentences.MinBy(s => s.Length)}'");
        Assert.All(sentences, s =>
        {
            Assert.DoesNotContain(s, corpus);
            Assert.DoesNotContain(trainingContexts, c => c.Contains(s, StringComparison.Ordinal));
        });
    }

    private const int QaTrain = 24000, QaTrainUnanswerable = 7686, QaDevUnanswerable = 275, QaTestUnanswerable = 280;

    /// <summary>Every sentence of the shipped pre-training corpus (training and held-out parts).</summary>
    private static IEnumerable<string> CorpusSentences() =>
        Directory.GetFiles(Path.Combine(Fixtures.RepoRoot, "data", "corpus"), "*.txt.gz")
            .SelectMany(f => PretrainingCorpus.Documents([f])).SelectMany(d => d);

    /// <summary>Tags are O or B-/I- of the four CoNLL types, an I- tag continues an entity of its type, and the B- tags
    /// count as documented.</summary>
    private static void AssertIob2(List<TaggedSentence> examples, int per, int loc, int org, int misc)
    {
        Assert.All(examples.SelectMany(e => e.Tags), t => Assert.Matches("^(O|[BI]-(PER|LOC|ORG|MISC))$", t));
        Assert.All(examples, e => Assert.All(e.Tags.Select((t, i) => (t, i)).Where(x => x.t.StartsWith("I-")),
            x => Assert.True(x.i > 0 && e.Tags[x.i - 1].EndsWith(x.t[2..]), $"{x.t} after {(x.i > 0 ? e.Tags[x.i - 1] : "the start")} in {string.Join(' ', e.Words)}")));
        var entities = examples.SelectMany(e => e.Tags).Where(t => t.StartsWith("B-")).GroupBy(t => t[2..]).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(new Dictionary<string, int> { ["PER"] = per, ["LOC"] = loc, ["ORG"] = org, ["MISC"] = misc }, entities);
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
