using System.Text.Json.Nodes;
using NBert.Modeling;
using NBert.Schema;
using NBert.Tasks;
using NBert.Training;

namespace NBert.Tests.Training;

/// <summary>TrainerOptions.GradientAccumulationSteps (transformers' gradient_accumulation_steps): N micro-batches of B make
/// one optimiser step that equals one step on a batch of N × B, the schedule and checkpoints count optimiser steps, and
/// a resumed run continues bit-exactly.</summary>
public sealed class TrainerAccumulationTests : TempDirectoryTest
{
    private static readonly BertConfig Config = new()
    {
        VocabSize = 50, HiddenSize = 16, NumHiddenLayers = 2, NumAttentionHeads = 2, IntermediateSize = 32, MaxPositionEmbeddings = 16,
        Id2Label = ["neg", "pos"],
    };
    private static readonly BertConfig NoDropout = Config with { HiddenDropoutProb = 0, AttentionProbsDropoutProb = 0 };

    private static List<Feature> Data(int count, int seed)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, count).Select(i =>
        {
            int length = r.Next(4, 12);
            var ids = Enumerable.Range(0, length).Select(_ => r.Next(10, 50)).ToArray();
            ids[0] = i % 2 == 1 ? 7 : 8;
            return new Feature { InputIds = ids, TokenTypeIds = new int[length], Label = i % 2, Example = i };
        }).ToList();
    }

    private static Trainer Create(BertPreTrainedModel model, List<Feature> train, TrainerOptions options, List<long>? numbers = null, long? failAt = null) =>
        new(model, null, train.Count, (indices, microBatch) =>
        {
            if (microBatch == failAt) throw new OperationCanceledException($"stopped at micro-batch {microBatch}");
            numbers?.Add(microBatch);
            return Feature.Collate(indices.Select(i => train[i]).ToList(), 0);
        }, null, options);

    private static float MaxDifference(BertPreTrainedModel a, BertPreTrainedModel b) =>
        a.Parameters.Max(p => p.Value.Data.Zip(b.Parameters[p.Key].Data, (x, y) => Math.Abs(x - y)).Max());

    [Fact]
    public void Two_micro_batches_of_B_make_the_same_step_as_one_batch_of_2B()
    {
        var train = Data(32, 1);
        var options = new TrainerOptions { MaxSteps = 1, LearningRate = 1e-3, Seed = 3 };
        var start = BertPreTrainedModel.FromConfig(NoDropout, BertArchitecture.BertForSequenceClassification, seed: 2);
        var whole = BertPreTrainedModel.FromConfig(NoDropout, BertArchitecture.BertForSequenceClassification, seed: 2);
        Create(whole, train, options with { BatchSize = 8 }).Train();
        var accumulated = BertPreTrainedModel.FromConfig(NoDropout, BertArchitecture.BertForSequenceClassification, seed: 2);
        var numbers = new List<long>();
        var trainer = Create(accumulated, train, options with { BatchSize = 4, GradientAccumulationSteps = 2 }, numbers);
        Assert.Equal(4, trainer.StepsPerEpoch); // 8 micro-batches of 4, 2 per step
        trainer.Train();
        Assert.Equal([0L, 1L], numbers); // one optimiser step took micro-batches 0 and 1
        var single = BertPreTrainedModel.FromConfig(NoDropout, BertArchitecture.BertForSequenceClassification, seed: 2);
        Create(single, train, options with { BatchSize = 4 }).Train();

        float moved = MaxDifference(start, whole), accumulation = MaxDifference(whole, accumulated), halfBatch = MaxDifference(whole, single);
        Assert.True(moved > 1e-4f, $"the step moved the weights by only {moved}");
        Assert.True(accumulation < 1e-6f, $"accumulating 2 x 4 differs from one batch of 8 by {accumulation}");
        Assert.True(halfBatch > 100 * accumulation, $"a step on 4 examples differs from one on 8 by only {halfBatch}: the test cannot tell accumulation from no accumulation");
    }

    [Fact]
    public void A_resumed_run_with_accumulation_ends_with_exactly_the_weights_of_an_uninterrupted_one()
    {
        // 40 items in micro-batches of 4 make 10 per epoch; 3 per step: 4 steps, the last of each epoch with 1 micro-batch.
        // Dropout stays on: the dropout generator's position must be restored too.
        var train = Data(40, 2);
        var options = new TrainerOptions { Epochs = 2, BatchSize = 4, GradientAccumulationSteps = 3, LearningRate = 1e-3, WarmupRatio = 0.25, SaveSteps = 3, Seed = 5, LogSteps = 1 };
        var straight = BertPreTrainedModel.FromConfig(Config, BertArchitecture.BertForSequenceClassification, seed: 2);
        var numbers = new List<long>();
        var trainer = Create(straight, train, options, numbers);
        Assert.Equal((4, 8L), (trainer.StepsPerEpoch, trainer.TotalSteps));
        trainer.Train(Temp("straight"));
        Assert.Equal([0L, 1, 2, 3, 4, 5, 6, 7, 8, 9], numbers.Take(10)); // steps 0-2 take 3 micro-batches each, step 3 one
        Assert.Equal(20, numbers.Count);

        var interrupted = BertPreTrainedModel.FromConfig(Config, BertArchitecture.BertForSequenceClassification, seed: 2);
        Assert.Throws<OperationCanceledException>(() => Create(interrupted, train, options, failAt: 5 * 3 + 1).Train(Temp("resumed")));
        Assert.Equal(Temp("resumed/checkpoint-3"), Trainer.LatestCheckpoint(Temp("resumed")));
        var resumed = BertPreTrainedModel.FromConfig(Config, BertArchitecture.BertForSequenceClassification, seed: 2);
        Create(resumed, train, options).Train(Temp("resumed"), resume: true);

        foreach (var (name, tensor) in straight.Parameters)
            Assert.Equal(tensor.Data, resumed.Parameters[name].Data);
        Assert.Equal(File.ReadAllLines(Temp("straight/metrics.jsonl")), File.ReadAllLines(Temp("resumed/metrics.jsonl")));
        Assert.Equal(8, File.ReadAllLines(Temp("straight/metrics.jsonl")).Length); // a line per optimiser step
        var state = JsonNode.Parse(File.ReadAllText(Temp("straight/checkpoint-6/trainer_state.json")))!;
        Assert.Equal(3, (int)state["gradient_accumulation_steps"]!);

        var other = BertPreTrainedModel.FromConfig(Config, BertArchitecture.BertForSequenceClassification, seed: 2);
        Assert.Contains("gradient_accumulation_steps 3, not 2", Assert.Throws<NBertException>(() =>
            Create(other, train, options with { GradientAccumulationSteps = 2 }).Train(Temp("resumed"), resume: true)).Message);
    }

    [Fact]
    public void Accumulation_below_one_is_refused_with_transformers_name()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new TrainerOptions { GradientAccumulationSteps = 0 }.Validate());
        Assert.Equal("gradient_accumulation_steps", e.ParamName);
    }
}
