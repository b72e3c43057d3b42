using NBert.Modeling;
using NBert.Schema;
using NBert.Training;

namespace NBert.Tests.Training;

/// <summary>
/// The optimiser step that skips untouched word-embedding rows and fuses clipping and zeroing into AdamW gives the bits of
/// the plain step: clear every gradient, backward, <c>clip_grad_norm_</c> over the whole buffer, dense AdamW.
/// </summary>
public class SparseGradientTests
{
    // 2,000 x 16 word embeddings span several of the norm's 4096-value chunks, so whole chunks are left out.
    private static readonly BertConfig Config = new()
    {
        VocabSize = 2000, HiddenSize = 16, NumHiddenLayers = 1, NumAttentionHeads = 2, IntermediateSize = 24, MaxPositionEmbeddings = 8,
        Id2Label = ["a", "b"],
    };

    // Batches touching different rows, so that rows written once keep decaying moments afterwards.
    private static readonly TrainingBatch[] Batches =
    [
        new() { Inputs = new ModelInputs(2, 4, [101, 5, 1700, 102, 101, 1999, 6, 102]), Labels = [0, 1] },
        new() { Inputs = new ModelInputs(2, 4, [101, 300, 301, 102, 101, 900, 0, 0], attentionMask: [1, 1, 1, 1, 1, 1, 0, 0]), Labels = [1, 1] },
        new() { Inputs = new ModelInputs(1, 4, [101, 5, 1234, 102]), Labels = [0] },
        new() { Inputs = new ModelInputs(2, 4, [101, 7, 8, 102, 101, 1700, 300, 102]), Labels = [1, 0] },
    ];

    [Theory]
    [InlineData(0.01, 0.05)] // weight decay: untouched rows still decay; clipping on
    [InlineData(0.0, 0.05)]  // no decay: untouched rows are left alone
    [InlineData(0.01, 1e6)]  // clipping never scales
    [InlineData(0.01, 0.0)]  // no clipping
    public void StepsMatchTheDenseStepBitForBit(double weightDecay, double maxGradNorm)
    {
        var source = BertPreTrainedModel.FromConfig(Config, BertArchitecture.BertForSequenceClassification, seed: 3);
        var options = new AdamWOptions { WeightDecay = weightDecay };
        var schedule = LearningRateSchedule.Create(SchedulerType.Linear, 1e-2, 1, 10);

        var fast = TrainingModel<float>.From(source, seed: 9);
        var step = new TrainingStep<float>(fast, options, schedule) { MaxGradNorm = maxGradNorm };

        var plain = TrainingModel<float>.From(source, seed: 9);
        var optimizer = new AdamW<float>(plain, options);
        foreach (var batch in Batches)
        {
            var result = step.Run([batch]);

            plain.ZeroGradients();
            var loss = plain.Forward(batch, training: true);
            plain.Backward();
            double norm = maxGradNorm > 0
                ? GradientClipping.ClipGlobalNorm<float>(plain.Gradients, maxGradNorm)
                : GradientClipping.GlobalNorm<float>(plain.Gradients);
            optimizer.Update(plain, schedule.At(optimizer.Step));

            Assert.Equal(loss.Loss, result.Loss);
            Assert.Equal(norm, result.GradientNorm);
            AssertBits(plain.Values, fast.Values);
            AssertBits(optimizer.FirstMoment, step.Optimizer.FirstMoment);
            AssertBits(optimizer.SecondMoment, step.Optimizer.SecondMoment);
        }
        Assert.All(fast.Gradients, g => Assert.Equal(0f, g)); // cleared by the update
        // A row no batch touched: with weight decay it only decays, without it stays as loaded.
        var word = fast.Slot("embeddings.word_embeddings.weight");
        Assert.All(step.Optimizer.FirstMoment.AsSpan(word.Offset + 1500 * 16, 16).ToArray(), m => Assert.Equal(0f, m));
    }

    [Fact]
    public void ResumedMomentsAreUpdatedInFull()
    {
        // Moments written from outside (a resumed run) are read back to know which rows are live.
        var source = BertPreTrainedModel.FromConfig(Config, BertArchitecture.BertForSequenceClassification, seed: 4);
        var options = new AdamWOptions { WeightDecay = 0.01 };
        var schedule = LearningRateSchedule.Create(SchedulerType.Constant, 1e-2, 0, 10);
        var fast = TrainingModel<float>.From(source, seed: 1);
        var step = new TrainingStep<float>(fast, options, schedule) { MaxGradNorm = 1 };
        var plain = TrainingModel<float>.From(source, seed: 1);
        var optimizer = new AdamW<float>(plain, options);
        var random = new Random(5);
        for (int i = 0; i < 100; i++)
        {
            float value = (float)random.NextDouble() * 1e-3f;
            int at = fast.Slot("embeddings.word_embeddings.weight").Offset + random.Next(2000 * 16);
            step.Optimizer.FirstMoment[at] = optimizer.FirstMoment[at] = value;
            step.Optimizer.SecondMoment[at] = optimizer.SecondMoment[at] = value * value;
        }
        foreach (var batch in Batches)
        {
            step.Run([batch]);
            plain.ZeroGradients();
            plain.Forward(batch, training: true);
            plain.Backward();
            GradientClipping.ClipGlobalNorm<float>(plain.Gradients, 1);
            optimizer.Update(plain, schedule.At(optimizer.Step));
        }
        AssertBits(plain.Values, fast.Values);
        AssertBits(optimizer.FirstMoment, step.Optimizer.FirstMoment);
    }

    [Fact]
    public void ZeroingClearsWhatTheCallerWrote()
    {
        var model = TrainingModel<float>.From(BertPreTrainedModel.FromConfig(Config, BertArchitecture.BertForSequenceClassification, seed: 2));
        model.Forward(Batches[0]);
        model.Backward();
        var word = model.Slot("embeddings.word_embeddings.weight");
        model.Gradients[word.Offset + 1000 * 16 + 3] = 1; // a row the batch did not touch
        model.ZeroGradients();
        Assert.All(model.Gradients, g => Assert.Equal(0f, g));
        model.Forward(Batches[1]);
        model.Backward();
        model.ZeroGradients(); // only the rows this batch wrote, of the word embeddings

        Assert.All(model.Gradients, g => Assert.Equal(0f, g));
    }

    private static void AssertBits(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"Value {i} differs: {expected[i]:R} expected, {actual[i]:R}.");
    }
}
