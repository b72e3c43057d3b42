using NBert.Modeling;
using NBert.Tensors;
using NBert.Training;
using NBert.Schema;
using NBert.Tasks;

namespace NBert.Tests.Training;

/// <summary>
/// Finite-difference checks in float64: every op's backward against central differences of its forward,
/// then whole models (each head, each activation, attention masks, token types, dropout on with the same
/// masks for every evaluation) against central differences of their loss.
/// </summary>
public class GradientCheckTests
{
    private const double Step = 1e-5;

    private static double[] Random(int n, int seed, double scale = 1)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (r.NextDouble() * 2 - 1) * scale).ToArray();
    }

    /// <summary>Checks dL/dx for L = f(x) at every element of x, given the analytic gradient.</summary>
    private static void Check(double[] x, Func<double> loss, double[] analytic, string what, double tolerance = 1e-7)
    {
        for (int i = 0; i < x.Length; i++)
        {
            double keep = x[i];
            x[i] = keep + Step;
            double up = loss();
            x[i] = keep - Step;
            double down = loss();
            x[i] = keep;
            double numeric = (up - down) / (2 * Step);
            Assert.True(Math.Abs(numeric - analytic[i]) <= tolerance * (1 + Math.Abs(numeric)),
                $"{what}[{i}]: analytic {analytic[i]:R}, numeric {numeric:R}");
        }
    }

    /// <summary>Σ w·y, the scalar through which an op's output is checked.</summary>
    private static double Weighted(double[] y, double[] w) => y.Zip(w, (a, b) => a * b).Sum();

    [Fact]
    public void Linear()
    {
        int rows = 3, inputs = 5, outputs = 4;
        double[] x = Random(rows * inputs, 1), weight = Random(outputs * inputs, 2), bias = Random(outputs, 3), w = Random(rows * outputs, 4);
        double F()
        {
            var y = new double[rows * outputs];
            Ops.LinearForward<double>(x, weight, bias, y, rows, inputs, outputs);
            return Weighted(y, w);
        }
        double[] dx = new double[x.Length], dW = new double[weight.Length], db = new double[bias.Length];
        Ops.LinearBackward<double>(w, x, weight, dx, dW, db, rows, inputs, outputs);
        Check(x, F, dx, "dx");
        Check(weight, F, dW, "dW");
        Check(bias, F, db, "db");
    }

    [Fact]
    public void Layer_norm()
    {
        int rows = 3, n = 6;
        double[] x = Random(rows * n, 5, 2), weight = Random(n, 6), bias = Random(n, 7), w = Random(rows * n, 8);
        double F()
        {
            var y = new double[rows * n];
            Ops.LayerNormForward<double>(x, y, weight, bias, 1e-12);
            return Weighted(y, w);
        }
        double[] mean = new double[rows], rstd = new double[rows], y0 = new double[rows * n];
        Ops.LayerNormForward<double>(x, y0, weight, bias, 1e-12, mean, rstd);
        double[] dx = new double[x.Length], dW = new double[n], db = new double[n], dW2 = new double[n], db2 = new double[n];
        Ops.LayerNormBackward<double>(w, x, mean, rstd, weight, dx, dW, db);
        Ops.LayerNormParameterBackward<double>(w, x, mean, rstd, dW2, db2);
        Check(x, F, dx, "dx");
        Check(weight, F, dW, "dweight");
        Check(bias, F, db, "dbias");
        Assert.Equal(dW, dW2);
        Assert.Equal(db, db2);
    }

    [Theory]
    [InlineData(Activation.Gelu)]
    [InlineData(Activation.GeluTanh)]
    [InlineData(Activation.Relu)]
    [InlineData(Activation.Silu)]
    public void Activations(Activation activation)
    {
        double[] x = Random(40, 9, 4), w = Random(40, 10);
        double F()
        {
            var y = new double[x.Length];
            Schema.Activations.Forward<double>(activation, x, y);
            return Weighted(y, w);
        }
        var dx = new double[x.Length];
        Schema.Activations.Backward<double>(activation, w, x, dx);
        Check(x, F, dx, activation.ToString());
    }

    [Fact]
    public void Float32_gelu_backward_agrees_with_float64()
    {
        double[] x = Random(600, 11, 6);
        var dy = Enumerable.Repeat(1f, x.Length).ToArray();
        var dx = new float[x.Length];
        Kernels.GeluBackward(x.Select(v => (float)v).ToArray(), dy, dx);
        for (int i = 0; i < x.Length; i++) Assert.InRange(dx[i] - Activation.Gelu.Derivative(x[i]), -1e-6, 1e-6);
    }

    [Fact]
    public void Tanh()
    {
        double[] x = Random(12, 12, 2), w = Random(12, 13);
        double F() => Weighted(x.Select(Math.Tanh).ToArray(), w);
        var dx = new double[x.Length];
        Ops.TanhBackward<double>(w, x.Select(Math.Tanh).ToArray(), dx);
        Check(x, F, dx, "tanh");
    }

    [Fact]
    public void Masked_softmax()
    {
        int rows = 3, n = 5;
        int[] mask = [1, 1, 0, 1, 0];
        double[] x = Random(rows * n, 14, 3), w = Random(rows * n, 15);
        double[] Forward()
        {
            var y = (double[])x.Clone();
            Ops.MaskedSoftmax<double>(y, n, mask);
            return y;
        }
        var p = Forward();
        for (int r = 0; r < rows; r++)
        {
            Assert.Equal(0, p[r * n + 2]);
            Assert.Equal(1, p.Skip(r * n).Take(n).Sum(), 12);
        }
        var dx = new double[x.Length];
        Ops.SoftmaxBackward<double>(w, p, dx, n, 1.0);
        Check(x, () => Weighted(Forward(), w), dx, "softmax");
    }

    [Fact]
    public void Dropout_is_seeded_and_its_backward_uses_the_same_mask()
    {
        double[] x = Random(2000, 16), w = Random(2000, 17);
        var keep = new bool[x.Length];
        double[] Forward(ulong seed)
        {
            var y = (double[])x.Clone();
            Ops.DropoutForward<double>(y, 0.25, new DropoutRandom(seed), 0, keep);
            return y;
        }
        var y1 = Forward(7);
        Assert.Equal(y1, Forward(7));
        Assert.NotEqual(y1, Forward(8));
        Forward(7);
        double dropped = keep.Count(k => !k) / (double)keep.Length;
        Assert.InRange(dropped, 0.2, 0.3);
        for (int i = 0; i < x.Length; i++) Assert.Equal(keep[i] ? x[i] / 0.75 : 0, y1[i], 12);
        var dx = new double[x.Length];
        Ops.DropoutBackward<double>(w, 0.25, keep, dx);
        Check(x, () => Weighted(Forward(7), w), dx, "dropout");
    }

    [Fact]
    public void Embedding_backward_adds_rows_of_repeated_ids()
    {
        int width = 3;
        int[] ids = [2, 0, 2, 1];
        double[] table = Random(4 * width, 18), w = Random(ids.Length * width, 19);
        double F()
        {
            var y = new double[ids.Length * width];
            for (int i = 0; i < ids.Length; i++) table.AsSpan(ids[i] * width, width).CopyTo(y.AsSpan(i * width));
            return Weighted(y, w);
        }
        var dTable = new double[table.Length];
        Ops.EmbeddingBackward<double>(w, ids, dTable, width);
        Check(table, F, dTable, "dtable");
        Assert.All(dTable.Skip(3 * width), v => Assert.Equal(0, v)); // id 3 unused
    }

    [Fact]
    public void Cross_entropy_ignores_minus_100_and_averages_over_the_rest()
    {
        int classes = 4;
        int[] targets = [1, -100, 3, 0];
        double[] logits = Random(targets.Length * classes, 20, 3);
        var d = new double[logits.Length];
        double loss = Ops.CrossEntropy<double>(logits, classes, targets, d, dloss: 2);
        double expected = 0;
        foreach (int r in new[] { 0, 2, 3 })
        {
            var row = logits.Skip(r * classes).Take(classes).ToArray();
            expected += Math.Log(row.Sum(Math.Exp)) - row[targets[r]];
        }
        Assert.Equal(expected / 3, loss, 12);
        Assert.All(d.Skip(classes).Take(classes), v => Assert.Equal(0, v));
        Check(logits, () => 2 * Ops.CrossEntropy<double>(logits, classes, targets, default), d, "dlogits");
        Assert.Equal(0, Ops.CrossEntropy<double>(logits, classes, [-100, -100, -100, -100], new double[logits.Length]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Ops.CrossEntropy<double>(logits, classes, [4, 0, 0, 0], default));
    }

    [Fact]
    public void Mean_squared_error_and_binary_cross_entropy_with_logits()
    {
        double[] x = Random(6, 21, 30), y = Random(6, 22);
        var d = new double[x.Length];
        double mse = Ops.MeanSquaredError<double>(x, y, d);
        Assert.Equal(x.Zip(y, (a, b) => (a - b) * (a - b)).Average(), mse, 12);
        Check(x, () => Ops.MeanSquaredError<double>(x, y, default), d, "mse");

        double[] targets = [1, 0, 1, 1, 0, 0];
        Array.Clear(d);
        double bce = Ops.BinaryCrossEntropyWithLogits<double>(x, targets, d);
        // Stable for large logits (|x| up to 30), where log(sigmoid) would underflow.
        double reference = x.Zip(targets, (a, t) => -(t * -Math.Log(1 + Math.Exp(-a)) + (1 - t) * -Math.Log(1 + Math.Exp(a)))).Average();
        Assert.Equal(reference, bce, 10);
        Check(x, () => Ops.BinaryCrossEntropyWithLogits<double>(x, targets, default), d, "bce");
    }

    // ---- whole models ----

    private static BertConfig Tiny(string activation = "gelu", int labels = 3, string? problemType = null) => new()
    {
        VocabSize = 40, HiddenSize = 8, NumHiddenLayers = 2, NumAttentionHeads = 2, IntermediateSize = 12,
        MaxPositionEmbeddings = 10, TypeVocabSize = 2, HiddenAct = activation, HiddenDropoutProb = 0.2,
        AttentionProbsDropoutProb = 0.2, Id2Label = Enumerable.Range(0, labels).Select(i => $"L{i}").ToArray(), ProblemType = problemType,
        LayerNormEps = 1e-12,
    };

    private static TrainingBatch Batch(BertArchitecture architecture, BertConfig c)
    {
        int b = 2, s = 6;
        var r = new Random(23);
        var ids = Enumerable.Range(0, b * s).Select(_ => r.Next(c.VocabSize)).ToArray();
        int[] types = [0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0];
        int[] mask = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0];
        var inputs = new ModelInputs(b, s, ids, types, mask);
        return architecture switch
        {
            // ELECTRA's discriminator: 1 for a replaced token, 0 for an original (the masked tokens' labels count for nothing).
            BertArchitecture.BertForPreTraining when c.Family == ModelFamily.Electra => new TrainingBatch
            {
                Inputs = inputs, Labels = [0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 1],
            },
            BertArchitecture.BertForPreTraining => new TrainingBatch
            {
                Inputs = inputs, Labels = [-100, 5, -100, 7, -100, 5, 9, -100, -100, 3, -100, -100], NextSentenceLabel = [0, 1],
            },
            BertArchitecture.BertForMaskedLM => new TrainingBatch { Inputs = inputs, Labels = [-100, 5, 1, 7, -100, -100, 9, -100, 2, 3, -100, -100] },
            BertArchitecture.BertForNextSentencePrediction => new TrainingBatch { Inputs = inputs, Labels = [1, 0] },
            BertArchitecture.BertForSequenceClassification => c.ProblemType switch
            {
                "regression" => new TrainingBatch { Inputs = inputs, LabelValues = [0.5f, -1.25f] },
                "multi_label_classification" => new TrainingBatch { Inputs = inputs, LabelValues = [1, 0, 1, 0, 0, 1] },
                _ => new TrainingBatch { Inputs = inputs, Labels = [2, 0] },
            },
            BertArchitecture.BertForTokenClassification => new TrainingBatch { Inputs = inputs, Labels = [-100, 0, 1, 2, 1, -100, -100, 2, 2, 0, -100, -100] },
            _ => new TrainingBatch { Inputs = inputs, StartPositions = [1, 3], EndPositions = [2, 9] }, // 9 is past the sequence: ignored
        };
    }

    public static TheoryData<BertArchitecture, string, string?, int, ModelFamily> Models => new()
    {
        { BertArchitecture.BertForPreTraining, "gelu", null, 3, ModelFamily.Bert },
        { BertArchitecture.BertForPreTraining, "gelu_new", null, 3, ModelFamily.Bert },
        { BertArchitecture.BertForMaskedLM, "relu", null, 3, ModelFamily.Bert },
        { BertArchitecture.BertForNextSentencePrediction, "silu", null, 3, ModelFamily.Bert },
        { BertArchitecture.BertForSequenceClassification, "gelu", null, 3, ModelFamily.Bert },
        { BertArchitecture.BertForSequenceClassification, "gelu", "regression", 1, ModelFamily.Bert },
        { BertArchitecture.BertForSequenceClassification, "gelu", "multi_label_classification", 3, ModelFamily.Bert },
        { BertArchitecture.BertForTokenClassification, "gelu", null, 3, ModelFamily.Bert },
        { BertArchitecture.BertForQuestionAnswering, "gelu", null, 3, ModelFamily.Bert },
        // DistilBERT: no token types (the batch's are ignored), pre_classifier + ReLU, its head dropouts, none after out_lin.
        { BertArchitecture.BertForMaskedLM, "gelu", null, 3, ModelFamily.DistilBert },
        { BertArchitecture.BertForSequenceClassification, "gelu", null, 3, ModelFamily.DistilBert },
        { BertArchitecture.BertForSequenceClassification, "relu", "regression", 1, ModelFamily.DistilBert },
        { BertArchitecture.BertForTokenClassification, "gelu", null, 3, ModelFamily.DistilBert },
        { BertArchitecture.BertForQuestionAnswering, "gelu", null, 3, ModelFamily.DistilBert },
        // RoBERTa: positions from the ids (the batch's random ids include the padding id 1), the LM head's fixed GELU,
        // the classification head's dropout before classifier.dense.
        { BertArchitecture.BertForMaskedLM, "relu", null, 3, ModelFamily.Roberta },
        { BertArchitecture.BertForSequenceClassification, "gelu_new", null, 3, ModelFamily.Roberta },
        { BertArchitecture.BertForTokenClassification, "gelu", null, 3, ModelFamily.Roberta },
        { BertArchitecture.BertForQuestionAnswering, "gelu", null, 3, ModelFamily.Roberta },
        // ELECTRA: embedding_size 6 projected to hidden_size 8 (embeddings_project), the discriminator with hidden_act, the
        // generator's head back to embedding_size with its fixed GELU, the classification head's fixed GELU and its dropout
        // before classifier.dense.
        { BertArchitecture.BertForPreTraining, "gelu_new", null, 3, ModelFamily.Electra },
        { BertArchitecture.BertForPreTraining, "relu", null, 3, ModelFamily.Electra },
        { BertArchitecture.BertForMaskedLM, "relu", null, 3, ModelFamily.Electra },
        { BertArchitecture.BertForSequenceClassification, "gelu_new", null, 3, ModelFamily.Electra },
        { BertArchitecture.BertForTokenClassification, "gelu", null, 3, ModelFamily.Electra },
        { BertArchitecture.BertForQuestionAnswering, "gelu", null, 3, ModelFamily.Electra },
    };

    /// <summary>The tiny config as a model of <paramref name="family"/>.</summary>
    private static BertConfig InFamily(BertConfig c, ModelFamily family) => family switch
    {
        ModelFamily.DistilBert => c with { Family = family, TypeVocabSize = 0, ClassifierDropout = 0.3, QaDropout = 0.25 },
        ModelFamily.Roberta => c with { Family = family, PadTokenId = 1, ClassifierDropout = 0.3 },
        ModelFamily.Electra => c with { Family = family, EmbeddingSize = 6, ClassifierDropout = 0.3 },
        _ => c,
    };

    [Theory, MemberData(nameof(Models))]
    public void Every_parameter_gradient_of_a_model_matches_finite_differences(BertArchitecture architecture, string activation, string? problemType, int labels,
        ModelFamily family)
    {
        var config = InFamily(Tiny(activation, labels, problemType), family);
        var model = TrainingModel<double>.From(BertPreTrainedModel.FromConfig(config, architecture, seed: 3), seed: 99);
        // Values of order one everywhere (initialisation would leave LayerNorms at exactly 1 and 0).
        var r = new Random(5);
        for (int i = 0; i < model.Values.Length; i++) model.Values[i] = r.NextDouble() - 0.5;
        var batch = Batch(architecture, config);
        double Loss()
        {
            model.Random.Position = 0; // the same dropout masks for every evaluation
            return model.Forward(batch, training: true).Loss;
        }
        Loss();
        model.ZeroGradients();
        model.Backward(lossScale: 1.5);
        var analytic = (double[])model.Gradients.Clone();
        foreach (var slot in model.Slots)
        {
            // A few entries of each parameter, and every entry of small ones.
            var entries = slot.Length <= 16 ? Enumerable.Range(0, slot.Length) : Enumerable.Range(0, 6).Select(_ => r.Next(slot.Length));
            foreach (int e in entries)
            {
                int at = slot.Offset + e;
                double keep = model.Values[at];
                model.Values[at] = keep + Step;
                double up = Loss();
                model.Values[at] = keep - Step;
                double down = Loss();
                model.Values[at] = keep;
                double numeric = 1.5 * (up - down) / (2 * Step);
                Assert.True(Math.Abs(numeric - analytic[at]) <= 1e-6 * (1 + Math.Abs(numeric)),
                    $"{slot.CheckpointName}[{e}]: analytic {analytic[at]:R}, numeric {numeric:R}");
            }
        }
        // Positions past the sequence get no gradient (RoBERTa's start after pad_token_id + 1).
        int last = 6 + (config.PositionsFromPadding ? config.PadTokenId + 1 : 0);
        Assert.All(model.Gradient("embeddings.position_embeddings.weight")[(last * config.EmbeddingWidth)..].ToArray(), v => Assert.Equal(0, v));
    }
}

public class GradientAccumulationTests
{
    [Fact]
    public void Two_accumulated_half_batches_give_the_full_batch_gradient()
    {
        var config = new BertConfig
        {
            VocabSize = 30, HiddenSize = 8, NumHiddenLayers = 1, NumAttentionHeads = 2, IntermediateSize = 12, MaxPositionEmbeddings = 8,
            Id2Label = ["a", "b", "c"],
        };
        var model = TrainingModel<double>.From(BertPreTrainedModel.FromConfig(config, BertArchitecture.BertForSequenceClassification, seed: 1));
        var r = new Random(2);
        int[] ids = Enumerable.Range(0, 4 * 5).Select(_ => r.Next(30)).ToArray();
        TrainingBatch Rows(int first, int count) => new()
        {
            Inputs = new ModelInputs(count, 5, ids[(first * 5)..((first + count) * 5)]),
            Labels = new[] { 0, 2, 1, 2 }[first..(first + count)],
        };
        model.ZeroGradients();
        model.Forward(Rows(0, 4), training: false);
        model.Backward();
        var full = (double[])model.Gradients.Clone();
        model.ZeroGradients();
        foreach (var half in new[] { Rows(0, 2), Rows(2, 2) })
        {
            model.Forward(half, training: false);
            model.Backward(lossScale: 0.5);
        }
        for (int i = 0; i < full.Length; i++) Assert.Equal(full[i], model.Gradients[i], 12);
    }

    [Fact]
    public void A_training_step_clips_schedules_and_updates()
    {
        var config = new BertConfig
        {
            VocabSize = 30, HiddenSize = 8, NumHiddenLayers = 1, NumAttentionHeads = 2, IntermediateSize = 12, MaxPositionEmbeddings = 8,
            Id2Label = ["a", "b"],
        };
        var model = TrainingModel<double>.From(BertPreTrainedModel.FromConfig(config, BertArchitecture.BertForSequenceClassification, seed: 1));
        var batch = new TrainingBatch { Inputs = new ModelInputs(2, 3, [1, 2, 3, 4, 5, 6]), Labels = [0, 1] };
        var step = new TrainingStep<double>(model, new AdamWOptions { WeightDecay = 0.01 }, LearningRateSchedule.Create(SchedulerType.Linear, 1e-2, 2, 10))
        {
            MaxGradNorm = 1e-3,
            Dropout = false,
        };
        var before = (double[])model.Values.Clone();
        var first = step.Run([batch]);
        Assert.Equal(0, first.LearningRate); // warm-up starts at 0, as transformers' schedule
        Assert.Equal(before, model.Values);  // ... so the first update changes nothing
        // ... but AdamW's first moment is (1 - β1) x the clipped gradient, whose norm is clip_grad_norm_'s threshold
        // (the step clears the gradients, so the moment is where the clipping shows).
        Assert.True(first.GradientNorm > 1e-3);
        double moment = Math.Sqrt(step.Optimizer.FirstMoment.Sum(v => v * v));
        Assert.Equal((1 - 0.9) * 1e-3 * first.GradientNorm / (first.GradientNorm + 1e-6), moment, 12);
        var second = step.Run([batch]);
        Assert.Equal(5e-3, second.LearningRate, 15);
        Assert.True(second.GradientNorm > 1e-3);
        Assert.NotEqual(before, model.Values);
    }
}

public class BatchShapeTests
{
    [Fact]
    public void A_smaller_batch_after_a_larger_one_gives_what_a_fresh_model_gives()
    {
        var config = new BertConfig
        {
            VocabSize = 30, HiddenSize = 8, NumHiddenLayers = 2, NumAttentionHeads = 2, IntermediateSize = 12, MaxPositionEmbeddings = 16,
        };
        var pretrained = BertPreTrainedModel.FromConfig(config, BertArchitecture.BertForTokenClassification, seed: 4);
        TrainingBatch Batch(int b, int s, int seed)
        {
            var r = new Random(seed);
            return new TrainingBatch
            {
                Inputs = new ModelInputs(b, s, Enumerable.Range(0, b * s).Select(_ => r.Next(30)).ToArray()),
                Labels = Enumerable.Range(0, b * s).Select(_ => r.Next(3) - 1 == -1 ? -100 : r.Next(2)).ToArray(),
            };
        }
        // Dropout on (the config's 0.1), both models drawing from position 0 for the small batch.
        var reused = TrainingModel<double>.From(pretrained, seed: 1);
        reused.Forward(Batch(4, 12, 1));
        reused.Backward();
        var small = Batch(3, 5, 2);
        reused.Random.Position = 0;
        reused.ZeroGradients();
        double loss = reused.Forward(small).Loss;
        reused.Backward();

        var fresh = TrainingModel<double>.From(pretrained, seed: 1);
        Assert.Equal(loss, fresh.Forward(small).Loss, 14);
        fresh.ZeroGradients();
        fresh.Backward();
        Assert.Equal(3 * 5 * 2, fresh.Logits.Length);
        Assert.Equal(fresh.Logits.ToArray(), reused.Logits.ToArray());
        for (int i = 0; i < fresh.Gradients.Length; i++) Assert.Equal(fresh.Gradients[i], reused.Gradients[i], 14);
    }
}
