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
        var e = Assert.Throws<TrainingCanceledException>(() => FineTuning.Classification(BertPreTrainedModel.FromPretrained(Base), BertTokenizer.FromPretrained(Base),
            Sentiment(64, 1), options: new FineTuningOptions { Epochs = 3, BatchSize = 8, LogSteps = 2 }, outputDirectory: Temp("out"),
            progress: watcher, cancellationToken: cancel.Token));
        Assert.Equal(4, reports.Where(r => r.Kind == TrainerProgressKind.Train).Max(r => r.Step));
        Assert.Equal(Temp("out/checkpoint-4"), Trainer.LatestCheckpoint(Temp("out")));
        // The exception says where the run so far is and how to go on.
        Assert.Equal(4, e.Step);
        Assert.Equal(Temp("out/checkpoint-4"), e.Checkpoint);
        Assert.Contains(Temp("out/checkpoint-4"), e.Message);
        Assert.Contains("Resume", e.Message);
        Assert.Equal(cancel.Token, e.CancellationToken);
    }

    private static FineTuned<BertForSequenceClassification> Classify(string? outputDirectory, FineTuningOptions options, CancellationToken token = default,
        IProgress<TrainerProgress>? progress = null) =>
        FineTuning.Classification(BertPreTrainedModel.FromPretrained(Base), BertTokenizer.FromPretrained(Base), Sentiment(40, 1), Sentiment(12, 2),
            options, outputDirectory, progress, token);

    private static readonly FineTuningOptions Resumable = new() { Epochs = 3, BatchSize = 8, LearningRate = 2e-3, Seed = 3, LogSteps = 1, SaveSteps = 2 };

    [Fact]
    public void A_run_cancelled_mid_way_and_resumed_ends_with_exactly_the_weights_of_an_uninterrupted_one()
    {
        // The fixture's dropout is on (0.1), so the dropout generator's position must come back too.
        Assert.True(BertPreTrainedModel.FromPretrained(Base).Config.HiddenDropoutProb > 0);
        var straight = Classify(Temp("straight"), Resumable);

        using var cancel = new CancellationTokenSource();
        var cancelled = Assert.Throws<TrainingCanceledException>(() => Classify(Temp("resumed"), Resumable, cancel.Token,
            new InlineCancel(r => { if (r.Kind == TrainerProgressKind.Train && r.Step == 7) cancel.Cancel(); })));
        Assert.Equal(Temp("resumed/checkpoint-7"), cancelled.Checkpoint);
        var reports = new List<TrainerProgress>();
        var resumed = Classify(Temp("resumed"), Resumable with { Resume = true }, progress: new Recorder<TrainerProgress>(reports));

        Assert.Equal(TrainerProgressKind.Resume, reports[0].Kind);
        Assert.Equal(7, reports[0].Step);
        Assert.Equal(15, reports[^1].Step); // 3 epochs of 5 batches
        var expected = TrainingModel<float>.From(straight.Model).Values;
        Assert.Equal(expected, TrainingModel<float>.From(resumed.Model).Values);
        using var saved = BertPreTrainedModel.FromPretrained(Temp("resumed"));
        Assert.Equal(expected, TrainingModel<float>.From(saved).Values);
        Assert.Equal(straight.Evaluation!.Metrics, resumed.Evaluation!.Metrics);
        Assert.Equal(File.ReadAllLines(Temp("straight/metrics.jsonl")), File.ReadAllLines(Temp("resumed/metrics.jsonl")));
    }

    [Fact]
    public void A_fresh_run_into_a_directory_holding_another_run_is_refused_unless_told_to_overwrite()
    {
        using (var cancel = new CancellationTokenSource())
            Assert.Throws<TrainingCanceledException>(() => Classify(Temp("out"), Resumable, cancel.Token,
                new InlineCancel(r => { if (r.Kind == TrainerProgressKind.Train && r.Step == 3) cancel.Cancel(); })));
        string checkpoint = Temp("out/checkpoint-3");
        Assert.True(Directory.Exists(checkpoint));

        // Another run's checkpoints: refused, naming the folder, what it holds and what to do; nothing deleted.
        var e = Assert.Throws<NBertException>(() => Classify(Temp("out"), Resumable with { Seed = 4 }));
        Assert.Contains(Temp("out"), e.Message);
        Assert.Contains("checkpoint-3", e.Message);
        Assert.Contains("Resume", e.Message);
        Assert.Contains("OverwriteOutputDirectory", e.Message);
        Assert.True(Directory.Exists(checkpoint));

        // A finished model alone (no checkpoints) is another run's too.
        Directory.CreateDirectory(Temp("model"));
        foreach (var name in new[] { "config.json", "model.safetensors" }) File.Copy(Path.Combine(Base, name), Temp("model/" + name));
        Assert.Contains("config.json, model.safetensors", Assert.Throws<NBertException>(() => Classify(Temp("model"), Resumable)).Message);
        // Unrelated files are not a run: a directory holding only notes trains.
        Directory.CreateDirectory(Temp("notes"));
        File.WriteAllText(Temp("notes/README.txt"), "mine");
        Classify(Temp("notes"), Resumable with { Epochs = 1 });
        Assert.True(File.Exists(Temp("notes/README.txt")));

        // Overwriting: the other run's checkpoints and log go as the run starts, and the result is a run of its own.
        var fresh = Classify(Temp("out"), Resumable with { Seed = 4, OverwriteOutputDirectory = true });
        Assert.False(Directory.Exists(checkpoint));
        Assert.Equal(Temp("out/checkpoint-15"), Trainer.LatestCheckpoint(Temp("out")));
        var alone = Classify(Temp("alone"), Resumable with { Seed = 4 });
        Assert.Equal(TrainingModel<float>.From(alone.Model).Values, TrainingModel<float>.From(fresh.Model).Values);
        Assert.Equal(File.ReadAllLines(Temp("alone/metrics.jsonl")), File.ReadAllLines(Temp("out/metrics.jsonl")));

        // Resuming where there is nothing to resume from is refused too.
        Assert.Contains("no checkpoint", Assert.Throws<NBertException>(() => Classify(Temp("empty"), Resumable with { Resume = true })).Message);
    }

    [Fact]
    public void Cancelling_without_an_output_directory_says_nothing_was_saved()
    {
        using var cancel = new CancellationTokenSource();
        var e = Assert.Throws<TrainingCanceledException>(() => Classify(null, Resumable, cancel.Token,
            new InlineCancel(r => { if (r.Kind == TrainerProgressKind.Train && r.Step == 2) cancel.Cancel(); })));
        Assert.Null(e.Checkpoint);
        Assert.Contains("nothing was saved", e.Message);
        cancel.Dispose();
        using var before = new CancellationTokenSource();
        before.Cancel();
        Assert.Contains("before its first step", Assert.Throws<TrainingCanceledException>(() => Classify(Temp("x"), Resumable, before.Token)).Message);
    }

    [Fact]
    public void The_runner_takes_a_task_prepared_from_files_and_trains_what_the_in_memory_call_trains()
    {
        var train = Sentiment(40, 1);
        var eval = Sentiment(12, 2);
        static string Jsonl(IEnumerable<(string Text, string Label)> items) =>
            string.Concat(items.Select(x => System.Text.Json.JsonSerializer.Serialize(new { text = x.Text, label = x.Label }) + "\n"));
        File.WriteAllText(Temp("train.jsonl"), Jsonl(train));
        File.WriteAllText(Temp("eval.jsonl"), Jsonl(eval));
        var tokenizer = BertTokenizer.FromPretrained(Base);
        var model = BertPreTrainedModel.FromPretrained(Base);
        var task = FineTuningTask.Prepare(FineTuningTaskKind.Classification, tokenizer, model.Config, Temp("train.jsonl"), Temp("eval.jsonl"));
        var options = Resumable with { Epochs = 2 };
        Assert.Equal(10, Trainer.TotalStepsFor(task.Train.Count, options));
        var fromFiles = FineTuning.Run(task, model, tokenizer, options);
        var inMemory = FineTuning.Classification(BertPreTrainedModel.FromPretrained(Base), tokenizer, train, eval, options);
        Assert.IsType<BertForSequenceClassification>(fromFiles.Model);
        Assert.Equal(inMemory.Labels, fromFiles.Labels);
        Assert.Equal(TrainingModel<float>.From(inMemory.Model).Values, TrainingModel<float>.From(fromFiles.Model).Values);
        // The model passed in is left as it was.
        Assert.Equal(TrainingModel<float>.From(BertPreTrainedModel.FromPretrained(Base)).Values, TrainingModel<float>.From(model).Values);

        // Evaluation reports its progress in features, ending with all of them.
        var done = new List<int>();
        task.Evaluate(fromFiles.Model, 5, new Recorder<int>(done));
        Assert.Equal([5, 10, 12], done);
        Assert.Throws<ArgumentOutOfRangeException>(() => FineTuning.Run(task, model, tokenizer, options with { EvalBatchSize = 0 }));
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
