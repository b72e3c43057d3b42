using NBert.IO;
using NBert.Modeling;
using NBert.Training;

namespace NBert.Tests.Training;

/// <summary>
/// Training against PyTorch's float64 references in shared/fixtures/training: losses, every gradient, the
/// global norm, and the parameters after two clipped AdamW steps. Computed here in float64 too
/// (<see cref="TrainingModel{T}"/> with T = double), with dropout off as in the fixture.
/// </summary>
public class TrainingParityTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const double Tolerance = 1e-5;
    private static readonly System.Text.Json.Nodes.JsonNode Expected = Fixtures.Json("training", "expected_training.json");

    private static TrainingModel<T> Load<T>(string model) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T> =>
        TrainingModel<T>.From(BertPreTrainedModel.FromPretrained(Fixtures.Path("model", model)));

    private static TrainingBatch PretrainingBatch() => TrainingBatch.Load(Fixtures.Path("training", "pretraining_grads.safetensors"));

    private static double MaxDifference(ReadOnlySpan<double> actual, double[] expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double max = 0;
        for (int i = 0; i < expected.Length; i++) max = Math.Max(max, Math.Abs(actual[i] - expected[i]));
        return max;
    }

    [Fact]
    public void Pretraining_losses_and_every_gradient_match_pytorch()
    {
        var model = Load<double>("pretraining");
        var loss = model.Forward(PretrainingBatch(), training: false);
        Assert.InRange(loss.MaskedLmLoss!.Value, (double)Expected["mlm_loss"]! - Tolerance, (double)Expected["mlm_loss"]! + Tolerance);
        Assert.InRange(loss.NextSentenceLoss!.Value, (double)Expected["nsp_loss"]! - Tolerance, (double)Expected["nsp_loss"]! + Tolerance);
        Assert.InRange(loss.Loss, (double)Expected["total_loss"]! - Tolerance, (double)Expected["total_loss"]! + Tolerance);
        model.ZeroGradients();
        model.Backward();

        using var grads = new SafeTensorsFile(Fixtures.Path("training", "pretraining_grads.safetensors"));
        var names = grads.Tensors.Select(t => t.Name).Where(n => n.StartsWith("grad.", StringComparison.Ordinal)).ToList();
        Assert.Equal(model.Slots.Count, names.Count);
        var failures = new List<string>();
        double worst = 0;
        foreach (var name in names)
        {
            string parameter = name["grad.".Length..];
            double diff = MaxDifference(model.Gradient(parameter), grads.ReadFloat64(name));
            worst = Math.Max(worst, diff);
            if (diff > Tolerance) failures.Add($"{parameter}: {diff:E2}");
        }
        output.WriteLine($"float64: loss {Math.Abs(loss.Loss - (double)Expected["total_loss"]!):E2}, largest gradient difference {worst:E2}");
        Assert.True(failures.Count == 0, "Gradients differ: " + string.Join("; ", failures));
        double norm = GradientClipping.GlobalNorm<double>(model.Gradients);
        double expectedNorm = (double)Expected["grad_total_norm_before_clip_step1"]!;
        Assert.InRange(norm, expectedNorm - Tolerance, expectedNorm + Tolerance);
    }

    [Fact]
    public void Two_clipped_adamw_steps_match_pytorch()
    {
        var model = Load<double>("pretraining");
        var batch = PretrainingBatch();
        var adamw = Expected["adamw"]!;
        var optimizer = new AdamW<double>(model, new AdamWOptions
        {
            Beta1 = (double)adamw["betas"]![0]!, Beta2 = (double)adamw["betas"]![1]!,
            Epsilon = (double)adamw["eps"]!, WeightDecay = (double)adamw["weight_decay"]!,
        });
        using var steps = new SafeTensorsFile(Fixtures.Path("training", "pretraining_adamw_steps.safetensors"));
        string[] expectedNorms = ["grad_total_norm_before_clip_step1", "grad_total_norm_before_clip_step2"];
        for (int step = 1; step <= 2; step++)
        {
            model.ZeroGradients();
            var loss = model.Forward(batch, training: false);
            if (step == 2)
                Assert.InRange(loss.Loss, (double)Expected["loss_step2"]! - Tolerance, (double)Expected["loss_step2"]! + Tolerance);
            model.Backward();
            double norm = GradientClipping.ClipGlobalNorm<double>(model.Gradients, (double)adamw["max_grad_norm"]!);
            double expectedNorm = (double)Expected[expectedNorms[step - 1]]!;
            Assert.InRange(norm, expectedNorm - Tolerance, expectedNorm + Tolerance);
            optimizer.Update(model, (double)adamw["lr"]!);

            var failures = new List<string>();
            double worst = 0;
            foreach (var slot in model.Slots)
            {
                double diff = MaxDifference(model.Value(slot.Name), steps.ReadFloat64($"step{step}.{slot.CheckpointName}"));
                worst = Math.Max(worst, diff);
                if (diff > Tolerance) failures.Add($"{slot.CheckpointName}: {diff:E2}");
            }
            output.WriteLine($"step {step}: norm difference {Math.Abs(norm - expectedNorm):E2}, largest parameter difference {worst:E2}");
            Assert.True(failures.Count == 0, $"Parameters after step {step} differ: " + string.Join("; ", failures));
        }
    }

    [Fact]
    public void Float32_gradients_stay_within_the_tolerance_of_pytorchs_float64()
    {
        var model = Load<float>("pretraining");
        var loss = model.Forward(PretrainingBatch(), training: false);
        Assert.InRange(loss.Loss, (double)Expected["total_loss"]! - 1e-4, (double)Expected["total_loss"]! + 1e-4);
        model.ZeroGradients();
        model.Backward();
        using var grads = new SafeTensorsFile(Fixtures.Path("training", "pretraining_grads.safetensors"));
        double worst = 0;
        foreach (var slot in model.Slots)
        {
            var expected = grads.ReadFloat64("grad." + slot.CheckpointName);
            var actual = model.Gradient(slot.Name);
            for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs(actual[i] - expected[i]));
        }
        output.WriteLine($"float32: loss {Math.Abs(loss.Loss - (double)Expected["total_loss"]!):E2}, largest gradient difference {worst:E2}");
        Assert.InRange(worst, 0, Tolerance);
    }

    [Theory]
    [InlineData("seqcls")]
    [InlineData("tokcls")]
    [InlineData("qa")]
    public void Fine_tuning_losses_match_pytorch(string head)
    {
        var model = Load<double>(head);
        var expected = Expected["finetune_losses"]!; // keys "seqcls.labels", "seqcls.loss", ...
        using var file = new SafeTensorsFile(Fixtures.Path("model", "expected_forward.safetensors"));
        int[] Ints(string name) => Array.ConvertAll(file.ReadInt64($"{head}.{name}"), v => (int)v);
        int[] Flat(string key)
        {
            var values = new List<int>();
            void Walk(System.Text.Json.JsonElement e)
            {
                if (e.ValueKind == System.Text.Json.JsonValueKind.Array) foreach (var item in e.EnumerateArray()) Walk(item);
                else values.Add(e.GetInt32());
            }
            Walk(System.Text.Json.JsonDocument.Parse(expected[$"{head}.{key}"]!.ToJsonString()).RootElement);
            return values.ToArray();
        }
        var shape = file.Info($"{head}.input_ids").Shape;
        var batch = new TrainingBatch
        {
            Inputs = new ModelInputs(shape[0], shape[1], Ints("input_ids"), Ints("token_type_ids"), Ints("attention_mask")),
            Labels = head == "qa" ? null : Flat("labels"),
            StartPositions = head == "qa" ? Flat("start_positions") : null,
            EndPositions = head == "qa" ? Flat("end_positions") : null,
        };
        double loss = model.Forward(batch, training: false).Loss;
        double reference = (double)expected[$"{head}.loss"]!;
        output.WriteLine($"{head}: loss {loss:R}, reference {reference:R}, difference {Math.Abs(loss - reference):E2}");
        Assert.InRange(loss, reference - Tolerance, reference + Tolerance);
    }

    [Fact]
    public void The_linear_warmup_schedule_is_transformers_exactly()
    {
        var s = Expected["linear_schedule"]!;
        var schedule = LearningRateSchedule.Create(SchedulerType.Linear, (double)s["base_lr"]!, (int)s["num_warmup_steps"]!, (int)s["num_training_steps"]!);
        var expected = s["lr_per_step"]!.AsArray().Select(v => (double)v!).ToArray();
        Assert.Equal(101, expected.Length);
        for (int step = 0; step < expected.Length; step++) Assert.Equal(expected[step], schedule.At(step));
    }
}
