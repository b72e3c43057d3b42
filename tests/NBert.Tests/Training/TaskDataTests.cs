using NBert.Tokenization;
using NBert.Training;
using NBert.Schema;
using NBert.Tasks;

namespace NBert.Tests.Training;

public sealed class TaskDataTests : TempDirectoryTest
{
    private static readonly BertTokenizer Tokenizer = BertTokenizer.FromPretrained(Path.Combine(Fixtures.RepoRoot, "models", "bert-base-uncased"));

    [Fact]
    public void Classification_reads_json_lines_and_csv_with_names_or_indices()
    {
        File.WriteAllText(Temp("train.jsonl"), """
            {"text": "A fine film.", "label": "positive"}

            {"text": "Dull.", "text_pair": "Very dull.", "label": "negative"}
            {"text": "Index label", "label": 1}
            """);
        var examples = ClassificationData.Read(Temp("train.jsonl"));
        Assert.Equal(3, examples.Count);
        Assert.Equal($"{Temp("train.jsonl")}:3", examples[1].Source);
        var labels = ClassificationData.LabelNames(examples);
        Assert.Equal(["negative", "positive"], labels);
        Assert.Equal(ClassificationProblem.SingleLabel, ClassificationData.Problem(examples));
        var features = ClassificationData.Encode(examples, Tokenizer, 16, labels, ClassificationProblem.SingleLabel);
        Assert.Equal([1, 0, 1], features.Select(f => f.Label));
        Assert.Equal(Tokenizer.Encode("Dull.", "Very dull.").InputIds, features[1].InputIds);
        Assert.Contains(1, features[1].TokenTypeIds);

        File.WriteAllText(Temp("train.csv"), "text,label\n\"Quoted, with a comma\",positive\n\"Two\nlines\",negative\n");
        var csv = ClassificationData.Read(Temp("train.csv"));
        Assert.Equal(["Quoted, with a comma", "Two\nlines"], csv.Select(e => e.Text));
        Assert.Equal([1, 0], ClassificationData.Encode(csv, Tokenizer, 16, labels, ClassificationProblem.SingleLabel).Select(f => f.Label));

        var batch = Feature.Collate(features, Tokenizer.PadTokenId);
        Assert.Equal(features.Max(f => f.Length), batch.Inputs.SequenceLength);
        Assert.Equal([1, 0, 1], batch.Labels!);
        Assert.Equal(0, batch.Inputs.AttentionMask![features[0].Length]); // padding
    }

    [Fact]
    public void Regression_and_multi_label_targets()
    {
        File.WriteAllText(Temp("r.jsonl"), "{\"text\": \"a\", \"label\": 0.5}\n{\"text\": \"b\", \"label\": 2}\n");
        var r = ClassificationData.Read(Temp("r.jsonl"));
        Assert.Equal(ClassificationProblem.Regression, ClassificationData.Problem(r));
        Assert.Equal([0.5f, 2f], ClassificationData.Encode(r, Tokenizer, 8, ["LABEL_0"], ClassificationProblem.Regression).Select(f => f.Values![0]));

        File.WriteAllText(Temp("m.jsonl"), "{\"text\": \"a\", \"label\": [\"x\", \"z\"]}\n{\"text\": \"b\", \"label\": []}\n");
        var m = ClassificationData.Read(Temp("m.jsonl"));
        Assert.Equal(ClassificationProblem.MultiLabel, ClassificationData.Problem(m));
        var f = ClassificationData.Encode(m, Tokenizer, 8, ["x", "y", "z"], ClassificationProblem.MultiLabel);
        Assert.Equal([1f, 0f, 1f], f[0].Values!);
        Assert.Equal([1f, 0f, 1f, 0f, 0f, 0f], Feature.Collate(f, 0).LabelValues!);
    }

    [Fact]
    public void Bad_classification_data_names_file_and_line()
    {
        File.WriteAllText(Temp("bad.jsonl"), "{\"text\": \"ok\", \"label\": \"pos\"}\n{\"text\": \"x\", \"label\": \"maybe\"}\n");
        var e = Assert.Throws<NBertException>(() =>
            ClassificationData.Encode(ClassificationData.Read(Temp("bad.jsonl")), Tokenizer, 8, ["neg", "pos"], ClassificationProblem.SingleLabel));
        Assert.Contains("bad.jsonl:2", e.Message);
        Assert.Contains("maybe", e.Message);
        File.WriteAllText(Temp("broken.jsonl"), "{\"text\": \"ok\"}\n{\"text\": \n");
        Assert.Contains("broken.jsonl:2", Assert.Throws<NBertException>(() => ClassificationData.Read(Temp("broken.jsonl"))).Message);
        File.WriteAllText(Temp("nolabel.csv"), "sentence,label\nx,1\n");
        Assert.Contains("no column \"text\"", Assert.Throws<NBertException>(() => ClassificationData.Read(Temp("nolabel.csv"))).Message);
    }

    [Fact]
    public void Ner_labels_the_first_piece_of_each_word_as_run_ner()
    {
        File.WriteAllText(Temp("ner.conll"), "-DOCSTART- -X- O O\n\nJohanson NNP B-PER\nvisited VBD O\nWashington NNP B-LOC\n\nHi UH O\n");
        var sentences = TokenClassificationData.Read(Temp("ner.conll"));
        Assert.Equal(2, sentences.Count);
        Assert.Equal(["Johanson", "visited", "Washington"], sentences[0].Words);
        var labels = TokenClassificationData.LabelNames(sentences);
        Assert.Equal(["O", "B-LOC", "B-PER"], labels);
        var all = labels.Concat(["I-PER"]).ToList();
        var (feature, words) = TokenClassificationData.Encode(sentences, Tokenizer, 32, all)[0];
        var tokens = Tokenizer.Encode("Johanson visited Washington").Tokens;
        Assert.True(tokens.Count(t => t.StartsWith("##")) >= 1, string.Join(" ", tokens)); // Johanson is split into pieces
        Assert.Equal(tokens.Length, feature.Length);
        for (int t = 0; t < tokens.Length; t++)
        {
            if (tokens[t] is "[CLS]" or "[SEP]") { Assert.Null(words[t]); Assert.Equal(-100, feature.TokenLabels![t]); continue; }
            bool firstPiece = !tokens[t].StartsWith("##");
            Assert.Equal(firstPiece ? all.IndexOf(sentences[0].Tags[words[t]!.Value]) : -100, feature.TokenLabels![t]);
        }
        // --label-all-tokens: later pieces of a B- word get its I- label.
        var (allTokens, _) = TokenClassificationData.Encode(sentences, Tokenizer, 32, all, labelAllTokens: true)[0];
        Assert.Equal(all.IndexOf("I-PER"), allTokens.TokenLabels![2]);

        File.WriteAllText(Temp("bad.jsonl"), "{\"tokens\": [\"a\", \"b\"], \"tags\": [\"O\", \"B-FOO\"]}\n");
        var e = Assert.Throws<NBertException>(() => TokenClassificationData.Encode(TokenClassificationData.Read(Temp("bad.jsonl")), Tokenizer, 8, all));
        Assert.Contains("bad.jsonl:1", e.Message);
        Assert.Contains("B-FOO", e.Message);
    }

    private const string Context =
        "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, a region in France. " +
        "They were descended from Norse raiders and pirates from Denmark, Iceland and Norway who, under their leader Rollo, " +
        "agreed to swear fealty to King Charles III of West Francia.";

    private string Squad(string answer, int start, bool impossible = false) =>
        $$"""{"version": "v2.0", "data": [{"title": "Normans", "paragraphs": [{"context": {{System.Text.Json.JsonSerializer.Serialize(Context)}}, "qas": [{"id": "q1", "question": "Who was the Norse leader?", "answers": [{"text": "{{answer}}", "answer_start": {{start}}}], "is_impossible": {{(impossible ? "true" : "false")}}}, {"id": "q2", "question": "What is the capital of France?", "answers": [], "is_impossible": true}]}]}]}""";

    [Fact]
    public void Squad_answers_map_to_tokens_in_every_window_that_holds_them()
    {
        int start = Context.IndexOf("Rollo", StringComparison.Ordinal);
        File.WriteAllText(Temp("squad.json"), Squad("Rollo", start));
        var examples = QuestionAnsweringData.Read(Temp("squad.json"));
        Assert.Equal(2, examples.Count);
        Assert.Empty(examples[1].Answers);
        // Small windows so the context takes several.
        var options = new QuestionAnsweringData.Options { MaxSeqLength = 32, DocStride = 8 };
        var features = QuestionAnsweringData.Encode(examples, Tokenizer, options);
        var first = features.Where(f => f.Example == 0).ToList();
        Assert.True(first.Count > 2);
        int holding = 0;
        foreach (var f in first)
        {
            if (f.StartPosition == 0) { Assert.Equal(0, f.EndPosition); continue; }
            holding++;
            Assert.Equal("Rollo", Context[f.ContextOffsets![f.StartPosition].Start..f.ContextOffsets[f.EndPosition].End]);
        }
        Assert.InRange(holding, 1, 4);
        Assert.All(features.Where(f => f.Example == 1), f => Assert.Equal((0, 0), (f.StartPosition, f.EndPosition)));

        // Post-processing: logits that point at the span in one window give the span's text; for the
        // unanswerable question, a [CLS] score above every span gives "" with SQuAD v2.0.
        var logits = features.Select(f =>
        {
            var s = new float[f.Length];
            var e = new float[f.Length];
            if (f.StartPosition > 0) { s[f.StartPosition] = 5; e[f.EndPosition] = 5; }
            if (f.Example == 1) { s[0] = 9; e[0] = 9; }
            return (s, e);
        }).ToList();
        var answers = QuestionAnsweringData.Predict(examples, features, logits, options, allowImpossible: true);
        Assert.Equal(["Rollo", ""], answers);
    }

    [Fact]
    public void A_squad_answer_that_is_not_in_its_context_is_refused_by_question_id()
    {
        File.WriteAllText(Temp("bad.json"), Squad("Rollo", 3));
        var e = Assert.Throws<NBertException>(() => QuestionAnsweringData.Read(Temp("bad.json")));
        Assert.Contains("question q1", e.Message);
        Assert.Contains("not in its context", e.Message);
    }
}
