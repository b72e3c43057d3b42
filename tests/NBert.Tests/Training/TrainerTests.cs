using System.Text.Json.Nodes;
using NBert.IO;
using NBert.Modeling;
using NBert.Training;
using NBert.Schema;
using NBert.Tasks;

namespace NBert.Tests.Training;

public sealed class TrainerTests : TempDirectoryTest
{
    private static readonly BertConfig Config = new()
    {
        VocabSize = 50, HiddenSize = 16, NumHiddenLayers = 2, NumAttentionHeads = 2, IntermediateSize = 32, MaxPositionEmbeddings = 16,
        Id2Label = ["neg", "pos"], // dropout stays at the default 0.1, so resuming must restore the dropout generator too
    };

    /// <summary>Sequences whose class is whether they start with token 7 or 8: learnable by a tiny model.</summary>
    private static List<Feature> Data(int count, int seed)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, count).Select(i =>
        {
            int length = r.Next(4, 12);
            var ids = Enumerable.Range(0, length).Select(_ => r.Next(10, 50)).ToArray();
            int label = i % 2;
            ids[0] = label == 1 ? 7 : 8;
            return new Feature { InputIds = ids, TokenTypeIds = new int[length], Label = label, Example = i };
        }).ToList();
    }

    private static Trainer Create(BertPreTrainedModel model, List<Feature> train, TrainerOptions options, Func<long, bool>? failAt = null,
        Func<BertPreTrainedModel, Evaluation>? evaluate = null) =>
        new(model, null, train.Count, (indices, step) =>
        {
            if (failAt?.Invoke(step) == true) throw new OperationCanceledException($"stopped at step {step}");
            return Feature.Collate(indices.Select(i => train[i]).ToList(), 0);
        }, evaluate, options);

    [Fact]
    public void A_resumed_run_ends_with_exactly_the_weights_of_an_uninterrupted_one()
    {
        var train = Data(40, 1);
        var options = new TrainerOptions { Epochs = 3, BatchSize = 8, LearningRate = 1e-3, WarmupRatio = 0.2, SaveSteps = 4, Seed = 5, LogSteps = 1 };
        var straight = BertPreTrainedModel.FromConfig(Config, BertArchitecture.BertForSequenceClassification, seed: 2);
        Create(straight, train, options).Train(Temp("straight"));

        var interrupted = BertPreTrainedModel.FromConfig(Config, BertArchitecture.BertForSequenceClassification, seed: 2);
        Assert.Throws<OperationCanceledException>(() => Create(interrupted, train, options, failAt: step => step == 10).Train(Temp("resumed")));
        Assert.Equal(Temp("resumed/checkpoint-8"), Trainer.LatestCheckpoint(Temp("resumed")));
        // A fresh process: the model as it was at the start, everything else from the checkpoint.
        var resumed = BertPreTrainedModel.FromConfig(Config, BertArchitecture.BertForSequenceClassification, seed: 2);
        Create(resumed, train, options).Train(Temp("resumed"), resume: true);

        foreach (var (name, tensor) in straight.Parameters)
            Assert.Equal(tensor.Data, resumed.Parameters[name].Data);
        var a = File.ReadAllLines(Temp("straight/metrics.jsonl"));
        var b = File.ReadAllLines(Temp("resumed/metrics.jsonl"));
        Assert.Equal(15, a.Length); // 3 epochs of 5 batches, logged every step
        Assert.Equal(a, b);         // steps 9 and 10 of the stopped run are not logged twice
        Assert.True(File.Exists(Temp("straight/loss.svg")));
        Assert.Contains("<polyline", File.ReadAllText(Temp("straight/loss.svg")));
        // Resuming with other settings is refused rather than silently changing the run.
        var other = BertPreTrainedModel.FromConfig(Config, BertArchitecture.BertForSequenceClassification, seed: 2);
        Assert.Contains("schedule", Assert.Throws<NBertException>(() =>
            Create(other, train, options with { LearningRate = 2e-3 }).Train(Temp("resumed"), resume: true)).Message);
        var reloaded = BertPreTrainedModel.FromPretrained(Temp("resumed"));
        Assert.Equal(straight.Parameters["classifier.weight"].Data, reloaded.Parameters["classifier.weight"].Data);
    }

    [Fact]
    public void The_best_model_is_kept_and_training_stops_when_the_metric_stops_improving()
    {
        var train = Data(16, 3);
        var model = BertPreTrainedModel.FromConfig(Config, BertArchitecture.BertForSequenceClassification, seed: 2);
        // A metric that peaks at the second evaluation: the saved model must be the one from then.
        double[] scores = [0.5, 0.9, 0.7, 0.6, 0.95];
        int calls = 0;
        float[]? atBest = null;
        var events = new List<TrainerProgress>();
        var trainer = Create(model, train, new TrainerOptions { Epochs = 10, BatchSize = 4, EvalSteps = 2, EarlyStoppingPatience = 2, LogSteps = 2 },
            evaluate: m =>
            {
                double score = scores[calls++];
                if (score == 0.9) atBest = m.Parameters["classifier.weight"].Data.ToArray();
                return new Evaluation(new Dictionary<string, double> { ["accuracy"] = score }, "accuracy");
            });
        trainer.Train(Temp("out"), progress: new Recorder<TrainerProgress>(events));
        Assert.Equal(4, calls); // 0.7 and 0.6 do not beat 0.9: stop after the fourth evaluation
        Assert.Equal(atBest, BertPreTrainedModel.FromPretrained(Temp("out")).Parameters["classifier.weight"].Data);
        Assert.Contains(events, e => e.Kind == TrainerProgressKind.Evaluate && e.Message?.Contains("stopping early") == true);
        var log = File.ReadAllLines(Temp("out/metrics.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal([0.5, 0.9, 0.7, 0.6], log.Where(l => l["eval_accuracy"] is not null).Select(l => (double)l["eval_accuracy"]!));
        Assert.All(events.Where(e => e.Kind == TrainerProgressKind.Train), e => Assert.NotNull(e.Remaining));
    }

    [Fact]
    public void Training_learns_a_simple_rule()
    {
        var train = Data(64, 4);
        var test = Data(32, 5);
        var model = BertPreTrainedModel.FromConfig(Config with { HiddenDropoutProb = 0, AttentionProbsDropoutProb = 0 },
            BertArchitecture.BertForSequenceClassification, seed: 2);
        Evaluation Evaluate(BertPreTrainedModel m)
        {
            var batch = Feature.Collate(test, 0);
            var logits = m.Forward(batch.Inputs).Logits!.Data;
            var predicted = Enumerable.Range(0, test.Count).Select(i => logits[2 * i + 1] > logits[2 * i] ? 1 : 0).ToList();
            return new Evaluation(new Dictionary<string, double> { ["accuracy"] = ClassificationMetrics.Accuracy(test.Select(f => f.Label).ToList(), predicted) }, "accuracy");
        }
        var result = Create(model, train, new TrainerOptions { Epochs = 10, BatchSize = 16, LearningRate = 1e-3, WarmupRatio = 0.1 }, evaluate: Evaluate).Train(Temp("learn"));
        Assert.True(result!.Main >= 0.9, $"accuracy {result.Main}");
    }
}

/// <summary>An <see cref="IProgress{T}"/> that keeps every report, in order, on the reporting thread.</summary>
internal sealed class Recorder<T>(List<T> reports) : IProgress<T>
{
    public void Report(T value) => reports.Add(value);
}
