using System.Text.Json;
using System.Text.Json.Nodes;
using NBert.Modeling;
using NBert.Training;
using NBert.Tests.Cli;
using Xunit.Abstractions;

namespace NBert.Tests.Distributed;

/// <summary>
/// <c>mpirun -np 2 nbert pretrain|finetune</c> on loopback against one process with --gradient-accumulation-steps 2 and the
/// same per-process batch: with dropout off, both take the same samples in the same micro-batches (the MLM masks follow
/// from the step and the micro-batch's index, not from the process), so after 5 steps the weights agree to float32
/// rounding (summing two ranks' gradients instead of accumulating them in one buffer changes the order of additions).
/// </summary>
public sealed class DataParallelTrainingTests(ITestOutputHelper log) : TempDirectoryTest
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    /// <summary>The fixture's tiny BERT (vocabulary 4,000, 2 layers of 32), with dropout off unless <paramref name="dropout"/>.</summary>
    private string BaseModel(bool dropout = false)
    {
        string dir = Temp("base");
        Directory.CreateDirectory(dir);
        foreach (string name in new[] { "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt" })
            File.Copy(Fixtures.Path("model", "pretraining", name), Path.Combine(dir, name));
        var config = JsonNode.Parse(File.ReadAllText(Fixtures.Path("model", "pretraining", "config.json")))!;
        if (!dropout)
        {
            config["hidden_dropout_prob"] = 0.0;
            config["attention_probs_dropout_prob"] = 0.0;
        }
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        return dir;
    }

    private void WriteCorpus(string name, int documents, int seed)
    {
        var r = new Random(seed);
        string[] words = ["the", "people", "of", "this", "nation", "have", "shown", "great", "strength", "and", "courage", "in", "war", "peace"];
        File.WriteAllLines(Temp(name), Enumerable.Range(0, documents).SelectMany(_ =>
            Enumerable.Range(0, r.Next(2, 8)).Select(_ => string.Join(' ', Enumerable.Range(0, r.Next(4, 14)).Select(_ => words[r.Next(words.Length)])) + ".").Append("")));
    }

    private static (float Max, string Where) MaxDifference(string a, string b)
    {
        using var x = BertPreTrainedModel.FromPretrained(a);
        using var y = BertPreTrainedModel.FromPretrained(b);
        Assert.Equal(x.Parameters.Keys.Order(), y.Parameters.Keys.Order());
        return x.Parameters.Select(p => (Max: p.Value.Data.Zip(y.Parameters[p.Key].Data, (u, v) => Math.Abs(u - v)).Max(), Where: p.Key)).MaxBy(d => d.Max);
    }

    private static (int Code, string Out, string Err) TwoRanks(params string[] args)
    {
        var (code, output, error, _) = Mpirun.Run(2, Limit, Mpirun.Nbert, args);
        return (code, output, error);
    }

    private static List<JsonNode> Losses(string directory) =>
        File.ReadAllLines(Path.Combine(directory, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).Where(l => l["loss"] is not null).ToList();

    [MpiFact]
    public void Pretraining_on_two_ranks_equals_one_process_accumulating_two_micro_batches()
    {
        WriteCorpus("train.txt", 60, 1);
        string model = BaseModel();
        string[] common = ["pretrain", "--model", model, "--corpus", Temp("train.txt"), "--max-seq-length", "64", "--steps", "5", "--batch-size", "4",
            "--lr", "1e-3", "--warmup-steps", "1", "--logging-steps", "1", "--seed", "3", "--save-steps", "3"];
        var (code, output, error) = Nbert.Run([.. common, "--gradient-accumulation-steps", "2", "--out", Temp("one")]);
        Assert.True(code == 0, error + output);
        (code, output, error) = TwoRanks([.. common, "--out", Temp("two")]);
        Assert.True(code == 0, error + output);
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(output, "^wrote ", System.Text.RegularExpressions.RegexOptions.Multiline)); // rank 0 alone prints
        Assert.Empty(Directory.GetFiles(Temp("two"), "*.tmp")); // both ranks' instance files are gone

        var (moved, _) = MaxDifference(model, Temp("two"));
        var (difference, where) = MaxDifference(Temp("one"), Temp("two"));
        Assert.True(moved > 1e-3f, $"training moved the weights by only {moved}");
        log.WriteLine($"pretraining: 2 ranks vs 1 process x 2 micro-batches: max |difference| {difference:G3} ({where}); weights moved {moved:G3}");
        Assert.True(difference <= 1e-6f, $"2 ranks and 1 process with accumulation 2 differ by {difference} in {where}");
        // The logged loss is the mean over both ranks' micro-batches: the single process's mean over its two.
        var one = Losses(Temp("one"));
        var two = Losses(Temp("two"));
        Assert.Equal(5, two.Count);
        foreach (var (a, b) in one.Zip(two))
        {
            Assert.Equal((double)a["loss"]!, (double)b["loss"]!, 1e-5);
            Assert.Equal((double)a["mlm_loss"]!, (double)b["mlm_loss"]!, 1e-5);
        }
        var state = JsonNode.Parse(File.ReadAllText(Temp("two/checkpoint-3/trainer_state.json")))!;
        Assert.Equal(2, (int)state["world_size"]!);
        Assert.Equal(2, state["dropout_positions"]!.AsArray().Count);
    }

    /// <summary>
    /// A 2-rank run whose rank 1 is killed (SIGKILL) after a checkpoint was written: mpirun ends the other rank and exits
    /// non-zero, and <c>mpirun -np 2 ... --resume</c> continues from the newest complete checkpoint to the same weights and
    /// log as a run that was never interrupted, bit for bit. Checkpoints are written into <c>.checkpoint-N.PID.tmp/</c> and
    /// renamed to <c>checkpoint-N/</c> once complete (trainer_state.json last), so a write cut short is never resumed from.
    /// Dropout is on: each rank's stream (seed + rank) must continue from its position in the checkpoint.
    /// </summary>
    [MpiFact]
    public void Pretraining_on_two_ranks_resumes_bit_exactly_after_one_rank_is_killed()
    {
        WriteCorpus("train.txt", 60, 1);
        string model = BaseModel(dropout: true);
        string[] common = ["pretrain", "--model", model, "--corpus", Temp("train.txt"), "--max-seq-length", "64", "--steps", "12", "--batch-size", "4",
            "--lr", "1e-3", "--warmup-steps", "1", "--logging-steps", "1", "--seed", "3", "--save-steps", "2"];
        var (code, output, error) = TwoRanks([.. common, "--out", Temp("straight")]);
        Assert.True(code == 0, error + output);

        string killed = Temp("killed");
        using (var launch = Mpirun.Start(2, Mpirun.Nbert, [.. common, "--out", killed]))
        {
            // A step takes about 0.1-0.5 s here, so the run is still going when the first checkpoint appears.
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (Trainer.LatestCheckpoint(killed) is null && !launch.HasExited && clock.Elapsed < Limit) Thread.Sleep(10);
            var ranks = launch.RankProcesses();
            Assert.True(ranks.Count == 2 && !launch.HasExited, $"the run ended or lost a rank before it could be killed (ranks {string.Join(", ", ranks)})");
            using (var rank1 = System.Diagnostics.Process.GetProcessById(ranks[1])) rank1.Kill(); // SIGKILL
            var (killedCode, killedOutput, killedError, _) = launch.Wait(Limit);
            Assert.True(killedCode != 0, $"mpirun exited 0 after rank 1 was killed\n{killedOutput}\n{killedError}");
            Assert.DoesNotContain("wrote ", killedOutput);
            Assert.False(File.Exists(Path.Combine(killed, "model.safetensors")), "the run finished before rank 1 was killed");
            log.WriteLine($"after SIGKILL of rank 1 (pid {ranks[1]}): mpirun exit {killedCode}, newest checkpoint {Trainer.LatestCheckpoint(killed)}");
            // Rank 0 did not outlive mpirun (ended, or a zombie waiting to be reaped).
            static bool Running(int pid) => File.Exists($"/proc/{pid}/stat") && File.ReadAllText($"/proc/{pid}/stat") is var stat && stat[(stat.LastIndexOf(')') + 2)..][0] != 'Z';
            for (clock.Restart(); Running(ranks[0]) && clock.Elapsed < TimeSpan.FromSeconds(10);) Thread.Sleep(50);
            Assert.False(Running(ranks[0]), $"rank 0 (pid {ranks[0]}) is still running after mpirun ended");
        }
        string newest = Trainer.LatestCheckpoint(killed)!;
        long step = long.Parse(Path.GetFileName(newest)["checkpoint-".Length..], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(step, 2, 10);
        // What a write cut short leaves (or a copy in progress) is never resumed from, even at a later step: the temporary
        // folder of a checkpoint not yet renamed, complete but for the rename, and a checkpoint folder without trainer_state.json.
        string unrenamed = Path.Combine(killed, $".checkpoint-{step + 1}.99999.tmp");
        Directory.CreateDirectory(unrenamed);
        foreach (string file in Directory.GetFiles(newest)) File.Copy(file, Path.Combine(unrenamed, Path.GetFileName(file)));
        Directory.CreateDirectory(Path.Combine(killed, $"checkpoint-{step + 1}"));
        File.Copy(Path.Combine(newest, "model.safetensors"), Path.Combine(killed, $"checkpoint-{step + 1}", "model.safetensors"));

        (code, output, error) = TwoRanks([.. common, "--out", killed, "--resume"]);
        Assert.True(code == 0, error + output);
        Assert.Contains($"resumed from {newest} at step {step}", output);
        using (var straight = BertPreTrainedModel.FromPretrained(Temp("straight")))
        using (var resumed = BertPreTrainedModel.FromPretrained(killed))
            foreach (var (name, tensor) in straight.Parameters)
                Assert.True(tensor.Data.AsSpan().SequenceEqual(resumed.Parameters[name].Data), $"{name} differs from the uninterrupted run's");
        Assert.Equal(File.ReadAllLines(Path.Combine(Temp("straight"), "metrics.jsonl")), File.ReadAllLines(Path.Combine(killed, "metrics.jsonl")));
        Assert.Empty(Directory.GetDirectories(killed, ".checkpoint-*")); // rank 0 cleared the interrupted writes' folders

        // One process cannot resume a 2-process run: its data shards and dropout streams were per rank.
        (code, _, error) = Nbert.Run([.. common, "--out", killed, "--resume"]);
        Assert.Equal(2, code);
        Assert.Contains("written by a run of 2 processes, not 1", error);
        Assert.Contains("mpirun -np 2", error);
    }

    [MpiFact]
    public void Classification_on_two_ranks_equals_one_process_accumulating_two_micro_batches()
    {
        var r = new Random(4);
        string[] words = ["was", "with", "that", "for", "on", "as", "in", "to"];
        string Lines(int count) => string.Join("\n", Enumerable.Range(0, count).Select(i => JsonSerializer.Serialize(new
        {
            text = (i % 2 == 0 ? "he " : "it ") + string.Join(' ', Enumerable.Range(0, r.Next(2, 9)).Select(_ => words[r.Next(words.Length)])),
            label = i % 2 == 0 ? "good" : "bad",
        })));
        // 40 examples: 10 micro-batches of 4, 2 per step: 5 steps in the one epoch.
        File.WriteAllText(Temp("train.jsonl"), Lines(40));
        File.WriteAllText(Temp("dev.jsonl"), Lines(12));
        string model = BaseModel();
        string[] common = ["finetune", "--task", "classification", "--model", model, "--train", Temp("train.jsonl"), "--eval", Temp("dev.jsonl"),
            "--epochs", "1", "--batch-size", "4", "--lr", "2e-3", "--seed", "3"];
        var (code, output, error) = Nbert.Run([.. common, "--gradient-accumulation-steps", "2", "--out", Temp("one")]);
        Assert.True(code == 0, error + output);
        Assert.Contains("5 steps", output);
        (code, output, error) = TwoRanks([.. common, "--out", Temp("two")]);
        Assert.True(code == 0, error + output);
        Assert.Contains("5 steps", output);
        (code, output, error) = Nbert.Run([.. common, "--out", Temp("alone")]);
        Assert.True(code == 0, error + output); // one process, no accumulation: 10 steps of 4

        var (difference, where) = MaxDifference(Temp("one"), Temp("two"));
        var (unlike, _) = MaxDifference(Temp("alone"), Temp("two"));
        log.WriteLine($"classification: 2 ranks vs 1 process x 2 micro-batches: max |difference| {difference:G3} ({where}); vs no accumulation {unlike:G3}");
        Assert.True(difference <= 1e-6f, $"2 ranks and 1 process with accumulation 2 differ by {difference} in {where}");
        Assert.True(unlike > 1e-3f, $"one process without accumulation differs by only {unlike}: the test could not tell the runs apart");
        // Rank 0 evaluated and wrote the metrics; the evaluation is of the same weights.
        var evaluations = (string dir) => File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).Where(l => l["eval_accuracy"] is not null).ToList();
        Assert.Equal((double)evaluations(Temp("one")).Single()["eval_accuracy"]!, (double)evaluations(Temp("two")).Single()["eval_accuracy"]!);
    }

    /// <summary>
    /// The same equality in float64, where the trainer (float32) cannot go: tests/NBert.MpiCheck's train64 mode takes 5 steps
    /// with the trainer's sharding and micro-batch numbering, TrainingStep's per-rank step and the gradients summed over
    /// MPI, alone with accumulation 2 and on 2 ranks. Only the order of additions differs (the two micro-batches'
    /// gradients added in one buffer, or summed by MPI_Allreduce), so the weights agree to float64 rounding, within 1e-12
    /// (about 1e-16 measured; float32 would differ by about 1e-7).
    /// </summary>
    [MpiTheory]
    [InlineData("pretraining")]
    [InlineData("classification")]
    public void In_float64_two_ranks_equal_one_process_accumulating_two_micro_batches_within_1e_12(string task)
    {
        string Train(int ranks, int accumulation)
        {
            string file = Temp($"{ranks}.bin");
            var (code, output, error, _) = Mpirun.Run(ranks, Limit, Mpirun.MpiCheck, "train64", task, Fixtures.Path("model", "pretraining"), file,
                accumulation.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Assert.True(code == 0, $"exit {code}\n{output}\n{error}");
            Assert.Equal(5 * ranks, System.Text.RegularExpressions.Regex.Matches(output, @"step \d loss \S+ micro-batches 2\b").Count); // 2 micro-batches a step
            double moved = double.Parse(System.Text.RegularExpressions.Regex.Match(output, @"rank 0/\d: moved (\S+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(moved > 1e-3, $"training moved the weights by only {moved}");
            return file;
        }
        double[] Weights(string file) => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, double>(File.ReadAllBytes(file)).ToArray();
        var one = Weights(Train(1, 2));
        var two = Weights(Train(2, 1));
        Assert.Equal(one.Length, two.Length);
        Assert.True(one.Length > 100_000, $"only {one.Length} weights");
        int at = Enumerable.Range(0, one.Length).MaxBy(i => Math.Abs(one[i] - two[i]));
        double difference = Math.Abs(one[at] - two[at]);
        log.WriteLine($"{task} in float64: 2 ranks vs 1 process x 2 micro-batches: max |difference| {difference:G3} (weight {at} of {one.Length})");
        Assert.True(difference <= 1e-12, $"2 ranks and 1 process with accumulation 2 differ by {difference} at weight {at}");
    }

    [MpiFact]
    public void A_rank_that_cannot_start_ends_every_rank_with_exit_code_2()
    {
        // Bad input fails on every rank alike; what matters is that mpirun ends, non-zero, with the reason. The limit
        // (after which everything is killed and the test fails: a hang) covers starting 2 .NET processes on a loaded machine.
        var result = Mpirun.Run(2, Limit, Mpirun.Nbert, "pretrain", "--model", Temp("missing"), "--corpus", Temp("missing.txt"), "--out", Temp("out"));
        var (code, output, error, elapsed) = result;
        Assert.True(code == 2, $"exit {code}\n{output}\n{error}");
        Assert.Matches(@"rank [01]/2: ", error); // which rank failed (the first to abort ends the other), and why
        Assert.Contains("missing", error);
        // Timed from the failing rank's message (printed just before MPI_Abort), not from the start, which a loaded
        // machine stretches: MPI_Abort's notice to mpirun, its SIGTERM to the other rank and the exits take well under
        // a second here; 10 s bounds that on a loaded 2-core machine, while a rank left waiting would run to the limit.
        var ending = result.SinceErrorLine(@"^nbert: rank [01]/2: ");
        log.WriteLine($"mpirun ended {ending.TotalSeconds:F2} s after the failing rank's message ({elapsed.TotalSeconds:F1} s in all)");
        Assert.True(ending < TimeSpan.FromSeconds(10), $"mpirun ended {ending.TotalSeconds:F1} s after the failing rank's message");
    }

    /// <summary>
    /// Under mpirun a rank's standard output is Open MPI's pseudo-terminal: a .NET program that writes to the console there
    /// emits terminfo's keypad_xmit (ESC[?1h ESC= for TERM=xterm), which mpirun passes on into a file or pipe. nbert's
    /// ranks do not (checked on a cheap command; the bench test checks --json).
    /// </summary>
    [MpiFact]
    public void Under_mpirun_nbert_writes_no_terminal_escapes_to_standard_output()
    {
        var xterm = new Dictionary<string, string> { ["TERM"] = "xterm" };
        using (var plain = Mpirun.Start(1, Mpirun.MpiCheck, ["info"], xterm))
        {
            var (code, output, error, _) = plain.Wait(Limit);
            Assert.True(code == 0, $"exit {code}\n{output}\n{error}");
            // Without this the check below could not fail (no pseudo-terminal, or no terminfo entry for xterm: ncurses-base).
            Assert.True(output.Contains("\u001b[?1h\u001b="), $"a plain .NET program under mpirun printed no keypad_xmit: {output}");
        }
        using var launch = Mpirun.Start(2, Mpirun.Nbert, ["--version"], xterm);
        var (nbertCode, nbertOutput, nbertError, _) = launch.Wait(Limit);
        Assert.True(nbertCode == 0, nbertError + nbertOutput);
        Assert.DoesNotContain('\u001b', nbertOutput);
        Assert.Matches(@"^(\d+\.\d+\.\d+\S*\n){2}$", nbertOutput); // each rank's version line, nothing else
    }

    [MpiFact]
    public void Bench_under_mpirun_measures_a_data_parallel_step_and_its_allreduce_share()
    {
        // About 10 s on a quiet machine; the limit leaves room for a loaded one (tokenization, inference, then the steps).
        // TERM=xterm, as in a shell: the ranks' standard output is Open MPI's pseudo-terminal, yet --json must print JSON alone.
        using var launch = Mpirun.Start(2, Mpirun.Nbert, ["bench", "--model", Fixtures.Path("model", "pretraining"), "--seconds", "0.05", "--json", "--threads", "1"],
            new Dictionary<string, string> { ["TERM"] = "xterm" });
        var (code, output, error, _) = launch.Wait(TimeSpan.FromSeconds(120));
        Assert.True(code == 0, error + output);
        Assert.DoesNotContain('\u001b', output);
        var figures = JsonNode.Parse(output)!; // one JSON object and nothing else: rank 0 alone prints
        Assert.Equal(2, (double)figures["ranks"]!);
        double share = (double)figures["allreduce_share"]!;
        Assert.True(share is > 0 and < 1, $"allreduce share {share}");
        Assert.True((double)figures["training_tokens_per_s"]! > 0);
    }
}
