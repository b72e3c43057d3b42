using NBert.Modeling;
using NBert.Tokenization;
using NBert.Training;
using NBert.Tasks;

namespace NBert.Tests.Training;

/// <summary>Fine-tuning from data in memory (<see cref="FineTuning"/>), on the tiny fixture model.</summary>
public sealed class FineTuningApiTests : TempDirectoryTest
{
    private static string Base => Fixtures.Path("model", "pretraining");

    /// <summary>"good" texts start with "he", "bad" ones with "it": a rule the tiny model learns in a few epochs.</summary>
    private static List<(string Text, string Label)> Sentiment(int count, int seed)
    {
        var r = new Random(seed);
        string[] words = ["was", "with", "that", "for", "on", "as", "in", "to"];
        return Enumerable.Range(0, count).Select(i => ((i % 2 == 0 ? "he " : "it ") + string.Join(' ', Enumerable.Range(0, r.Next(2, 6)).Select(_ => words[r.Next(words.Length)])),
            i % 2 == 0 ? "good" : "bad")).ToList();
    }

    [Fact]
    public void Classification_from_tuples_learns_the_rule_reports_progress_and_writes_nothing()
    {
        var reports = new List<TrainerProgress>();
        var result = FineTuning.Classification(BertPreTrainedModel.FromPretrained(Base), BertTokenizer.FromPretrained(Base), Sentiment(64, 1), Sentiment(24, 2),
            new FineTuningOptions { Epochs = 6, BatchSize = 8, LearningRate = 2e-3, Seed = 3, LogSteps = 4 }, progress: new Recorder<TrainerProgress>(reports));

        Assert.IsType<BertForSequenceClassification>(result.Model);
        Assert.Equal(["bad", "good"], result.Labels);
        Assert.Equal(["bad", "good"], result.Model.Config.Id2Label);
        Assert.True(result.Evaluation!.Metrics["accuracy"] >= 0.9, $"accuracy {result.Evaluation.Metrics["accuracy"]}");
        Assert.Contains(reports, r => r.Kind == TrainerProgressKind.Train && r.Loss is > 0);
        Assert.Equal(6, reports.Count(r => r.Kind == TrainerProgressKind.Evaluate));
        Assert.Equal(TrainerProgressKind.Done, reports[^1].Kind);
        Assert.Empty(Directory.GetFileSystemEntries(Dir));

        // The model kept is the best evaluation's: scoring it again gives that accuracy.
        var best = reports.Where(r => r.Kind == TrainerProgressKind.Evaluate).Max(r => r.Evaluation!.Metrics["accuracy"]);
        var task = FineTuningTask.Classification(BertTokenizer.FromPretrained(Base), result.Model.Config, null,
            Sentiment(24, 2).Select((x, i) => new ClassificationExample(x.Text, null, System.Text.Json.JsonSerializer.SerializeToElement(x.Label), $"{i}")).ToList());
        Assert.Equal(best, task.Evaluate(result.Model).Metrics["accuracy"]);
    }

    [Fact]
    public void With_an_output_directory_the_model_ends_with_the_best_weights_it_saved_not_the_last_checkpoints()
    {
        // Accuracy reaches its best before the last epoch; every evaluation writes a checkpoint, which used to leave
        // the last checkpoint's weights in the returned model while the directory held the best.
        var result = FineTuning.Classification(BertPreTrainedModel.FromPretrained(Base), BertTokenizer.FromPretrained(Base), Sentiment(64, 1), Sentiment(24, 2),
            new FineTuningOptions { Epochs = 6, BatchSize = 8, LearningRate = 2e-3, Seed = 3 }, outputDirectory: Temp("out"));
        using var saved = BertPreTrainedModel.FromPretrained(Temp("out"));
        Assert.Equal(TrainingModel<float>.From(saved).Values, TrainingModel<float>.From(result.Model).Values);
    }

    [Fact]
    public void Fine_tuning_into_the_directory_the_tokenizer_came_from_is_refused()
    {
        string copy = Temp("model");
        Directory.CreateDirectory(copy);
        foreach (var f in Directory.GetFiles(Base)) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        var e = Assert.Throws<NBertException>(() => FineTuning.Classification(BertPreTrainedModel.FromPretrained(copy), BertTokenizer.FromPretrained(copy),
            Sentiment(8, 1), options: new FineTuningOptions { Epochs = 1 }, outputDirectory: copy));
        Assert.Contains("overwrite", e.Message);
        Assert.Equal(File.ReadAllBytes(Path.Combine(Base, "model.safetensors")), File.ReadAllBytes(Path.Combine(copy, "model.safetensors")));
    }

    [Fact]
    public void A_cancelled_run_stops_before_its_next_step_and_leaves_a_checkpoint_to_resume_from()
    {
        using var cancel = new CancellationTokenSource();
        var reports = new List<TrainerProgress>();
        var progress = new Recorder<TrainerProgress>(reports);
        var watcher = new InlineCancel(r => { if (r.Kind == TrainerProgressKind.Train && r.Step >= 4) cancel.Cancel(); progress.Report(r); });
        Assert.Throws<OperationCanceledException>(() => FineTuning.Classification(BertPreTrainedModel.FromPretrained(Base), BertTokenizer.FromPretrained(Base),
            Sentiment(64, 1), options: new FineTuningOptions { Epochs = 3, BatchSize = 8, LogSteps = 2 }, outputDirectory: Temp("out"),
            progress: watcher, cancellationToken: cancel.Token));
        Assert.Equal(4, reports.Where(r => r.Kind == TrainerProgressKind.Train).Max(r => r.Step));
        Assert.Equal(Temp("out/checkpoint-4"), Trainer.LatestCheckpoint(Temp("out")));
    }

    private sealed class InlineCancel(Action<TrainerProgress> report) : IProgress<TrainerProgress>
    {
        public void Report(TrainerProgress value) => report(value);
    }

    [Fact]
    public void Token_classification_and_question_answering_take_examples_in_memory()
    {
        var tokenizer = BertTokenizer.FromPretrained(Base);
        string[][] words = [["john", "lives", "in", "paris"], ["mary", "was", "in", "london"], ["he", "went", "to", "berlin"]];
        string[][] tags = [["B-PER", "O", "O", "B-LOC"], ["B-PER", "O", "O", "B-LOC"], ["O", "O", "O", "B-LOC"]];
        var sentences = words.Zip(tags, (w, t) => ((IReadOnlyList<string>)w, (IReadOnlyList<string>)t)).ToList();
        var ner = FineTuning.TokenClassification(BertPreTrainedModel.FromPretrained(Base), tokenizer, sentences, sentences,
            new FineTuningOptions { Epochs = 2, BatchSize = 2 });
        Assert.Equal(["O", "B-LOC", "B-PER"], ner.Labels);
        Assert.Equal(3, ner.Model.Config.NumLabels);
        Assert.True(ner.Evaluation!.Metrics.ContainsKey("f1"));
        Assert.Throws<ArgumentException>(() => FineTuning.TokenClassification(BertPreTrainedModel.FromPretrained(Base), tokenizer,
            [(["one", "two"], ["O"])]));

        string context = "The film was made in paris in 1990 by john.";
        var questions = new[]
        {
            new QuestionExample("1", "where was the film made?", context, [("paris", context.IndexOf("paris", StringComparison.Ordinal))]),
            new QuestionExample("2", "who made the film?", context, [("john", context.IndexOf("john", StringComparison.Ordinal))]),
            new QuestionExample("3", "who won the war?", context, []),
        };
        var qa = FineTuning.QuestionAnswering(BertPreTrainedModel.FromPretrained(Base), tokenizer, questions, questions,
            new FineTuningOptions { Epochs = 1, BatchSize = 2, MaxLength = 64 });
        Assert.IsType<BertForQuestionAnswering>(qa.Model);
        Assert.True(qa.Evaluation!.Metrics.ContainsKey("exact_match"));
    }
}
