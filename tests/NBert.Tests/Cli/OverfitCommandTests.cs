using System.Globalization;
using System.Text.Json.Nodes;
using NBert.IO;
using NBert.Modeling;
using static NBert.Tests.Cli.Nbert;
using NBert.Schema;

namespace NBert.Tests.Cli;

public sealed class OverfitCommandTests : TempDirectoryTest
{
    private static readonly JsonNode Expected = Fixtures.Json("training", "expected_training.json");

    private static string Batch => Fixtures.Path("training", "pretraining_grads.safetensors");
    private static string Pretraining => Fixtures.Path("model", "pretraining");

    [Fact]
    public void Two_steps_reproduce_pytorchs_losses_gradients_and_adamw_parameters()
    {
        // The defaults are the fixture's setup: lr 1e-3, weight decay 0.01, clipping at 1.0, eps 1e-8, constant rate.
        string grads = Temp("grads.safetensors"), output = Temp("out");
        var (code, stdout, error) = Run("overfit", "--model", Pretraining, "--batch", Batch, "--steps", "2", "--grads", grads, "--out", output, "--json");
        Assert.True(code == 0, error);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(2, lines.Count);
        Assert.InRange((double)lines[0]["loss"]!, (double)Expected["total_loss"]! - 1e-5, (double)Expected["total_loss"]! + 1e-5);
        Assert.InRange((double)lines[1]["loss"]!, (double)Expected["loss_step2"]! - 1e-5, (double)Expected["loss_step2"]! + 1e-5);
        Assert.InRange((double)lines[0]["grad_norm"]!, (double)Expected["grad_total_norm_before_clip_step1"]! - 1e-5, (double)Expected["grad_total_norm_before_clip_step1"]! + 1e-5);

        using var reference = new SafeTensorsFile(Batch);
        using var written = new SafeTensorsFile(grads);
        var expectedNames = reference.Tensors.Where(t => t.Name.StartsWith("grad.", StringComparison.Ordinal)).Select(t => t.Name[5..]).Order().ToList();
        Assert.Equal(expectedNames, written.Tensors.Select(t => t.Name).Order().ToList());
        foreach (var name in expectedNames)
        {
            Assert.Equal(DType.F32, written.Info(name).DType);
            Assert.True(Max(written.ReadFloat64(name), reference.ReadFloat64("grad." + name)) <= 1e-5, name);
        }

        // The checkpoint after two steps: the parameters of PyTorch's second AdamW step, and tokenizer files beside them.
        using var steps = new SafeTensorsFile(Fixtures.Path("training", "pretraining_adamw_steps.safetensors"));
        using var saved = new SafeTensorsFile(Path.Combine(output, "model.safetensors"));
        foreach (var name in expectedNames)
            Assert.True(Max(saved.ReadFloat64(name), steps.ReadFloat64("step2." + name)) <= 1e-5, name);
        Assert.True(File.Exists(Path.Combine(output, "vocab.txt")));
        var reloaded = BertPreTrainedModel.FromPretrained(output);
        Assert.Equal(BertArchitecture.BertForPreTraining, reloaded.Architecture);
        Assert.Empty(reloaded.LoadReport!.Initialized);
    }

    private static double Max(double[] a, double[] b)
    {
        Assert.Equal(b.Length, a.Length);
        return a.Zip(b, (x, y) => Math.Abs(x - y)).Max();
    }

    [Theory]
    [InlineData("seqcls")]
    [InlineData("tokcls")]
    [InlineData("qa")]
    public void Each_head_learns_its_batch(string head)
    {
        // The fine-tuning inputs and labels of the fixture as a batch file.
        using var forward = new SafeTensorsFile(Fixtures.Path("model", "expected_forward.safetensors"));
        var expected = Expected["finetune_losses"]!;
        var shape = forward.Info($"{head}.input_ids").Shape;
        var tensors = new List<SafeTensor>();
        foreach (var name in new[] { "input_ids", "token_type_ids", "attention_mask" })
            tensors.Add(SafeTensor.Int64(name, shape, forward.ReadInt64($"{head}.{name}")));
        long[] Flat(string key) => expected[$"{head}.{key}"]!.ToJsonString().Split(['[', ']', ','], StringSplitOptions.RemoveEmptyEntries)
            .Select(v => long.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        if (head == "qa")
        {
            tensors.Add(SafeTensor.Int64("start_positions", [shape[0]], Flat("start_positions")));
            tensors.Add(SafeTensor.Int64("end_positions", [shape[0]], Flat("end_positions")));
        }
        else
        {
            var labels = Flat("labels");
            tensors.Add(SafeTensor.Int64("labels", labels.Length == shape[0] ? [shape[0]] : shape, labels));
        }
        string batch = Temp("batch.safetensors");
        SafeTensorsWriter.Write(batch, tensors);

        var (code, stdout, error) = Run("overfit", "--model", Fixtures.Path("model", head), "--batch", batch, "--steps", "40", "--lr", "5e-3", "--out", Temp("out"), "--json");
        Assert.True(code == 0, error);
        var losses = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => (double)JsonNode.Parse(l)!["loss"]!).ToList();
        Assert.InRange(losses[0], (double)expected[$"{head}.loss"]! - 1e-5, (double)expected[$"{head}.loss"]! + 1e-5);
        Assert.True(losses[^1] < 0.1 * losses[0], $"{head}: loss went from {losses[0]} to {losses[^1]}");
    }

    [Fact]
    public void Text_output_prints_the_loss_at_every_step()
    {
        var (code, stdout, error) = Run("overfit", "--model", Pretraining, "--batch", Batch, "--steps", "3", "--out", Temp("out"),
            "--scheduler", "linear", "--warmup-steps", "1", "--dropout", "0.1");
        Assert.True(code == 0, error);
        // With dropout on, the losses differ from the fixture's (dropout off), but stay near it at first.
        Assert.Matches(@"step 1/3  loss 9\.0\d+  \(mlm 8\.\d+, nsp 0\.\d+\)  grad-norm 2\.\d+  lr 0\.00E\+000", stdout); // warm-up starts at 0
        Assert.Contains("lr 1.00E-003", stdout);
        Assert.Contains("lr 5.00E-004", stdout); // linear decay: (3 - 2) / (3 - 1)
        Assert.Matches(@"step 3/3  loss \d", stdout);
    }

    [Fact]
    public void Bad_input_names_the_problem_and_exits_2()
    {
        var (code, _, error) = Run("overfit", "--model", Pretraining, "--batch", Temp("missing.safetensors"), "--steps", "1", "--out", Temp("o"));
        Assert.Equal(2, code);
        Assert.Contains("missing.safetensors", error);

        (code, _, error) = Run("overfit", "--model", Fixtures.Path("model", "encoder_only"), "--batch", Batch, "--steps", "1", "--out", Temp("o"));
        Assert.Equal(2, code);
        Assert.Contains("no head", error);

        string noLabels = Temp("ids.safetensors");
        SafeTensorsWriter.Write(noLabels, [SafeTensor.Int64("input_ids", [1, 3], [2, 5, 3])]);
        (code, _, error) = Run("overfit", "--model", Pretraining, "--batch", noLabels, "--steps", "1", "--out", Temp("o"));
        Assert.Equal(2, code);
        Assert.Contains("next_sentence_label", error);

        (code, _, error) = Run("overfit", "--model", Pretraining, "--batch", Batch, "--steps", "0", "--out", Temp("o"));
        Assert.Equal(2, code);
        Assert.Contains("--steps", error);

        (code, _, error) = Run("overfit", "--model", Pretraining, "--batch", Batch, "--steps", "1", "--out", Temp("o"), "--scheduler", "cyclic");
        Assert.Equal(2, code);
        Assert.False(Directory.Exists(Temp("o")));
    }
}
