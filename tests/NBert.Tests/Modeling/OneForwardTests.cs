using NBert.Modeling;
using NBert.Schema;
using NBert.Training;

namespace NBert.Tests.Modeling;

/// <summary>
/// Inference (a loaded model's packed weights, pooled scratch) and training (a flat buffer, activations kept) run the one
/// forward pass: every head gives the same bits both ways, the losses agree, and a sequence's outputs are the same bits
/// alone or padded in a batch, in training too (attention over the valid keys only).
/// </summary>
public class OneForwardTests
{
    private static readonly BertConfig Config = new()
    {
        VocabSize = 60, HiddenSize = 32, NumHiddenLayers = 2, NumAttentionHeads = 4, IntermediateSize = 48, MaxPositionEmbeddings = 16,
        TypeVocabSize = 2, Id2Label = ["a", "b", "c"],
    };

    /// <summary>Three right-padded sequences (9, 5 and 7 tokens) of a pair each, so token types and the mask matter.</summary>
    private static ModelInputs Inputs()
    {
        int[] lengths = [9, 5, 7];
        int s = 9;
        var random = new Random(5);
        var ids = new int[3 * s];
        var types = new int[3 * s];
        var mask = new int[3 * s];
        for (int b = 0; b < 3; b++)
            for (int t = 0; t < lengths[b]; t++)
            {
                ids[b * s + t] = random.Next(1, Config.VocabSize);
                types[b * s + t] = t >= lengths[b] / 2 ? 1 : 0;
                mask[b * s + t] = 1;
            }
        return new ModelInputs(3, s, ids, types, mask);
    }

    private static TrainingBatch Batch(ModelInputs inputs, BertArchitecture a)
    {
        int m = inputs.Batch * inputs.SequenceLength;
        var tokenLabels = Enumerable.Range(0, m).Select(t => inputs.AttentionMask![t] == 0 ? -100 : t % 3).ToArray();
        var masked = Enumerable.Range(0, m).Select(t => inputs.AttentionMask![t] != 0 && t % 4 == 1 ? t % Config.VocabSize : -100).ToArray();
        return a switch
        {
            BertArchitecture.BertForPreTraining => new TrainingBatch { Inputs = inputs, Labels = masked, NextSentenceLabel = [0, 1, 1] },
            BertArchitecture.BertForMaskedLM => new TrainingBatch { Inputs = inputs, Labels = masked },
            BertArchitecture.BertForNextSentencePrediction => new TrainingBatch { Inputs = inputs, Labels = [1, 0, 1] },
            BertArchitecture.BertForSequenceClassification => new TrainingBatch { Inputs = inputs, Labels = [2, 0, 1] },
            BertArchitecture.BertForTokenClassification => new TrainingBatch { Inputs = inputs, Labels = tokenLabels },
            _ => new TrainingBatch { Inputs = inputs, StartPositions = [2, 1, 6], EndPositions = [4, 3, 6] },
        };
    }

    public static TheoryData<BertArchitecture> Heads() =>
        [.. Enum.GetValues<BertArchitecture>().Where(a => a != BertArchitecture.BertModel)];

    [Theory]
    [MemberData(nameof(Heads))]
    public void Every_head_gives_the_same_bits_on_the_inference_and_the_training_path(BertArchitecture architecture)
    {
        using var model = BertPreTrainedModel.FromConfig(Config, architecture, seed: 3);
        var inputs = Inputs();
        var batch = Batch(inputs, architecture);
        var output = model.Forward(inputs);
        var training = TrainingModel<float>.From(model);
        var loss = training.Forward(batch, training: false);

        switch (output)
        {
            case QuestionAnsweringModelOutput qa:
            {
                var both = new float[2 * qa.StartLogits!.Length];
                QuestionAnsweringLogits.Merge<float>(qa.StartLogits.Data, qa.EndLogits!.Data, both);
                Assert.Equal(both, training.Logits.ToArray());
                break;
            }
            case BertForPreTrainingOutput pre:
                Assert.Equal(pre.SeqRelationshipLogits!.Data, training.Logits.ToArray());
                Assert.Equal(AtPositions(pre.PredictionLogits!.Data, training.MaskedLmPositions), training.MaskedLmLogits.ToArray());
                break;
            case MaskedLMOutput mlm:
                Assert.NotEmpty(training.MaskedLmPositions);
                Assert.Equal(AtPositions(mlm.Logits!.Data, training.MaskedLmPositions), training.MaskedLmLogits.ToArray());
                break;
            default:
                Assert.Equal(output.Logits!.Data, training.Logits.ToArray());
                break;
        }
        if (architecture is not (BertArchitecture.BertForPreTraining or BertArchitecture.BertForMaskedLM))
            Assert.Equal(loss.Loss, HeadLosses.Of(model, output, batch), 12);
    }

    [Theory]
    [InlineData(BertArchitecture.BertForSequenceClassification, ModelFamily.Bert)]
    [InlineData(BertArchitecture.BertForPreTraining, ModelFamily.Bert)]
    [InlineData(BertArchitecture.BertForMaskedLM, ModelFamily.Bert)]
    // ELECTRA: the embeddings 12 wide, projected to 32 (embeddings_project), over the real tokens alone too.
    [InlineData(BertArchitecture.BertForSequenceClassification, ModelFamily.Electra)]
    [InlineData(BertArchitecture.BertForMaskedLM, ModelFamily.Electra)]
    public void Training_over_the_real_tokens_alone_gives_the_padded_pass_loss_and_gradients(BertArchitecture architecture, ModelFamily family)
    {
        // A right-padded batch whose padding no loss reads runs its layers over the 21 real tokens, not 27 rows; with
        // dropout on, each row draws its numbers at its padded place, so the two passes drop the same values.
        double[] Step(bool skip, out double loss, out int rows)
        {
            var config = Config with { HiddenDropoutProb = 0.2, AttentionProbsDropoutProb = 0.2 };
            if (family == ModelFamily.Electra) config = config with { Family = family, EmbeddingSize = 12 };
            using var model = BertPreTrainedModel.FromConfig(config, architecture, seed: 6);
            var training = TrainingModel<double>.From(model, seed: 9);
            training.SkipsPadding = skip;
            loss = training.Forward(Batch(Inputs(), architecture)).Loss;
            training.Backward();
            rows = training.EncoderRows;
            return training.Gradients.ToArray();
        }
        var padded = Step(false, out double paddedLoss, out int paddedRows);
        var compact = Step(true, out double compactLoss, out int compactRows);
        Assert.Equal((27, 21), (paddedRows, compactRows));
        Assert.Equal(paddedLoss, compactLoss, 12);
        Assert.Equal(padded.Length, compact.Length);
        double worst = padded.Zip(compact, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(worst < 1e-12, $"largest gradient difference {worst}");
        Assert.Contains(compact, g => g != 0);
    }

    [Fact]
    public void A_forward_that_throws_leaves_nothing_for_backward_to_run_on()
    {
        using var model = BertPreTrainedModel.FromConfig(Config, BertArchitecture.BertForSequenceClassification, seed: 6);
        var training = TrainingModel<float>.From(model);
        var good = Batch(Inputs(), BertArchitecture.BertForSequenceClassification);
        training.Forward(good);
        var inputs = Inputs();
        inputs.InputIds[3] = Config.VocabSize; // outside the vocabulary
        Assert.ThrowsAny<ArgumentException>(() => training.Forward(Batch(inputs, BertArchitecture.BertForSequenceClassification)));
        Assert.Throws<InvalidOperationException>(() => training.Backward());
        training.Forward(good);
        training.ReleaseActivations();
        Assert.Throws<InvalidOperationException>(() => training.Backward());
    }

    private static float[] AtPositions(float[] logits, IReadOnlyList<int> positions) =>
        positions.SelectMany(p => logits.AsSpan(p * Config.VocabSize, Config.VocabSize).ToArray()).ToArray();

    [Fact]
    public void A_sequence_gives_the_same_bits_alone_or_padded_in_a_batch_in_training_too()
    {
        using var model = BertPreTrainedModel.FromConfig(Config, BertArchitecture.BertForTokenClassification, seed: 4);
        var inputs = Inputs();
        var training = TrainingModel<float>.From(model);
        training.Forward(Batch(inputs, BertArchitecture.BertForTokenClassification), training: false);
        var batched = training.Logits.ToArray();
        int s = inputs.SequenceLength, classes = Config.NumLabels;
        for (int b = 0; b < inputs.Batch; b++)
        {
            int n = inputs.AttentionMask!.Skip(b * s).Take(s).Count(v => v == 1);
            var alone = new ModelInputs(1, n, inputs.InputIds.Skip(b * s).Take(n).ToArray(), inputs.TokenTypeIds!.Skip(b * s).Take(n).ToArray(), Enumerable.Repeat(1, n).ToArray());
            training.Forward(new TrainingBatch { Inputs = alone, Labels = new int[n] }, training: false);
            Assert.Equal(batched.AsSpan(b * s * classes, n * classes).ToArray(), training.Logits.ToArray());
            Assert.Equal(batched.AsSpan(b * s * classes, n * classes).ToArray(), model.Forward(alone).Logits!.Data);
        }
    }
}
