using System.Text.Json;
using System.Text.Json.Nodes;
using NBert.IO;
using static NBert.Tests.Cli.Nbert;

namespace NBert.Tests.Cli;

/// <summary>
/// Issue 14's command-line cases: every one used to end in a stack trace, a NaN passed off as an answer, lost results
/// or an overwritten model. Each now exits with code 2 and one line that names the cause (or warns and goes on).
/// </summary>
public sealed class HostileInputTests : TempDirectoryTest
{
    private static string Model(string name) => Fixtures.Path("model", name);

    private static void AssertRefused((int Code, string Out, string Err) r, params string[] mentions)
    {
        Assert.True(r.Code == 2, $"exit {r.Code}\nstdout: {r.Out}\nstderr: {r.Err}");
        Assert.DoesNotContain("   at ", r.Err);
        Assert.StartsWith("nbert: ", r.Err);
        foreach (var m in mentions) Assert.Contains(m, r.Err);
    }

    /// <summary>A copy of a fixture model with one weight set to NaN.</summary>
    private string Poisoned(string name)
    {
        string dir = Temp($"nan-{name}");
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(Model(name))) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        string weights = Path.Combine(dir, "model.safetensors");
        List<SafeTensor> tensors;
        using (var file = new SafeTensorsFile(weights))
            tensors = file.Tensors.Select(t =>
            {
                var v = file.ReadFloat32(t.Name);
                if (t.Name.EndsWith("embeddings.LayerNorm.weight", StringComparison.Ordinal)) v[3] = float.NaN;
                return SafeTensor.Float32(t.Name, t.Shape, v);
            }).ToList();
        SafeTensorsWriter.Write(weights, tensors);
        return dir;
    }

    // ---- no NaN passed off as an answer ----

    [Theory]
    [InlineData("classify", "seqcls", new[] { "A fine film." })]
    [InlineData("ner", "tokcls", new[] { "Barack Obama was born in Hawaii." })]
    [InlineData("qa", "qa", new[] { "Who was born?", "Barack Obama was born in Hawaii." })]
    [InlineData("fill-mask", "pretraining", new[] { "Paris is the [MASK] of France." })]
    [InlineData("nsp", "pretraining", new[] { "He went home.", "It was late." })]
    [InlineData("embed", "pretraining", new[] { "A sentence." })]
    public void A_model_with_a_nan_weight_is_reported_not_answered(string command, string model, string[] texts)
    {
        string dir = Poisoned(model);
        foreach (var json in new[] { true, false })
        {
            var r = Run([command, "--model", dir, .. json ? new[] { "--json" } : [], .. texts]);
            AssertRefused(r, "not finite", "embeddings.LayerNorm.weight");
            Assert.Equal("", r.Out);
        }
    }

    [Fact]
    public void Similarity_and_evaluate_on_a_nan_model_are_refused()
    {
        string dir = Poisoned("seqcls");
        File.WriteAllLines(Temp("corpus.txt"), ["one line", "another line"]);
        AssertRefused(Run("similarity", "--model", dir, "--query", "a line", "--corpus", Temp("corpus.txt"), "--json"), "not finite");
        File.WriteAllLines(Temp("data.jsonl"), [JsonSerializer.Serialize(new { text = "good", label = "positive" }), JsonSerializer.Serialize(new { text = "bad", label = "negative" })]);
        AssertRefused(Run("evaluate", "--task", "classification", "--model", dir, "--data", Temp("data.jsonl"), "--json"), "not finite");
    }

    [Theory]
    [InlineData("classify", new[] { "A fine film." }, "classifier.weight")]
    [InlineData("ner", new[] { "Barack Obama was born in Hawaii." }, "classifier.weight")]
    [InlineData("qa", new[] { "Who was born?", "Barack Obama was born in Hawaii." }, "qa_outputs.weight")]
    [InlineData("fill-mask", new[] { "Paris is the [MASK] of France." }, "cls.predictions")]
    [InlineData("nsp", new[] { "He went home.", "It was late." }, "cls.seq_relationship.weight")]
    public void A_model_without_the_tasks_head_runs_with_a_warning_naming_the_new_weights(string command, string[] texts, string weight)
    {
        var (code, stdout, stderr) = Run([command, "--model", Model("encoder_only"), .. texts]);
        Assert.True(code == 0, stderr);
        Assert.Contains("warning:", stderr);
        Assert.Contains(weight, stderr);
        Assert.Contains("newly initialized", stderr);
        Assert.NotEqual("", stdout);
    }

    // ---- training that diverges, and bad numbers ----

    private void WriteClassification(string name, params object[] rows) =>
        File.WriteAllLines(Temp(name), rows.Select(r => JsonSerializer.Serialize(r)));

    private void WriteSentiment(string name, int count) =>
        WriteClassification(name, Enumerable.Range(0, count).Select(i => (object)new { text = i % 2 == 0 ? "he was with" : "it was on", label = i % 2 == 0 ? "good" : "bad" }).ToArray());

    [Fact]
    public void Fine_tuning_that_diverges_stops_with_the_step_and_keeps_the_log()
    {
        WriteSentiment("train.jsonl", 32);
        WriteSentiment("dev.jsonl", 8);
        var r = Run("finetune", "--task", "classification", "--model", Model("pretraining"), "--train", Temp("train.jsonl"), "--eval", Temp("dev.jsonl"),
            "--out", Temp("out"), "--epochs", "2", "--batch-size", "4", "--lr", "1e30", "--max-grad-norm", "0", "--warmup-ratio", "0");
        AssertRefused(r, "diverged", "--lr");
        foreach (var line in File.ReadAllLines(Temp("out/metrics.jsonl"))) JsonNode.Parse(line); // what was logged is valid JSON
    }

    [Fact]
    public void Overfit_that_diverges_stops_and_its_json_lines_stay_valid()
    {
        var r = Run("overfit", "--model", Model("pretraining"), "--batch", Fixtures.Path("training", "pretraining_grads.safetensors"), "--steps", "5",
            "--lr", "1e30", "--max-grad-norm", "0", "--json", "--out", Temp("out"));
        AssertRefused(r, "diverged", "--lr");
        foreach (var line in r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries)) JsonNode.Parse(line);
        Assert.False(Directory.Exists(Temp("out")));
    }

    [Fact]
    public void A_label_seen_only_in_the_evaluation_data_is_refused_and_one_training_label_is_warned_about()
    {
        WriteClassification("train.jsonl", new { text = "good one", label = "pos" }, new { text = "bad one", label = "neg" });
        WriteClassification("dev.jsonl", new { text = "odd one", label = "weird" });
        AssertRefused(Run("finetune", "--task", "classification", "--model", Model("pretraining"), "--train", Temp("train.jsonl"), "--eval", Temp("dev.jsonl"),
            "--out", Temp("out")), "dev.jsonl:1", "weird");
        WriteClassification("single.jsonl", new { text = "good one", label = "pos" }, new { text = "good two", label = "pos" });
        var r = Run("finetune", "--task", "classification", "--model", Model("pretraining"), "--train", Temp("single.jsonl"), "--eval", Temp("single.jsonl"),
            "--out", Temp("single"), "--epochs", "1");
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("only one label", r.Err);
    }

    [Fact]
    public void A_regression_label_beyond_float32_is_refused_naming_its_line()
    {
        WriteClassification("train.jsonl", new { text = "a", label = 0.5 }, new { text = "b", label = 1e308 });
        AssertRefused(Run("finetune", "--task", "classification", "--model", Model("pretraining"), "--train", Temp("train.jsonl"), "--eval", Temp("train.jsonl"),
            "--out", Temp("out")), "train.jsonl:2", "1E+308");
    }

    [Theory]
    [InlineData("--lr", "-1", "--lr")]
    [InlineData("--lr", "0", "--lr")]
    [InlineData("--save-steps", "0", "--save-steps")]
    [InlineData("--early-stopping", "0", "--early-stopping")]
    [InlineData("--eval-steps", "0", "--eval-steps")]
    [InlineData("--labels", "a,a,b,c", "'a' twice")]
    public void Bad_fine_tuning_options_name_themselves(string option, string value, string mention)
    {
        WriteSentiment("train.jsonl", 8);
        AssertRefused(Run("finetune", "--task", "classification", "--model", Model("pretraining"), "--train", Temp("train.jsonl"), "--eval", Temp("train.jsonl"),
            "--out", Temp("out"), option, value), mention);
        Assert.False(Directory.Exists(Temp("out")));
    }

    [Theory]
    [InlineData("--adam-beta2", "1")]
    [InlineData("--adam-beta1", "-0.1")]
    public void Adam_betas_of_one_are_refused_while_parsing_naming_the_option(string option, string value)
    {
        // The library requires [0, 1); refused while parsing, before the corpus is read or --out is made.
        File.WriteAllText(Temp("corpus.txt"), "One sentence here.\nAnother one there.\n");
        AssertRefused(Run("pretrain", "--config", Path.Combine(Model("pretraining"), "config.json"), "--vocab", Model("pretraining"),
            "--corpus", Temp("corpus.txt"), "--out", Temp("out"), option, value), option, "below 1");
        Assert.False(Directory.Exists(Temp("out")));
    }

    [Fact]
    public void Evaluate_refuses_a_zero_batch_and_a_fractional_label_on_a_single_label_model()
    {
        WriteClassification("data.jsonl", new { text = "a fine film", label = "positive" });
        AssertRefused(Run("evaluate", "--task", "classification", "--model", Model("seqcls"), "--data", Temp("data.jsonl"), "--batch-size", "0"), "--batch-size");
        WriteClassification("float.jsonl", new { text = "a fine film", label = 0.5 });
        AssertRefused(Run("evaluate", "--task", "classification", "--model", Model("seqcls"), "--data", Temp("float.jsonl")), "float.jsonl:1", "0.5");
    }

    [Theory]
    [InlineData("fill-mask", "--top-k", "abc")]
    [InlineData("tokenize", "--max-length", "99999999999")]
    [InlineData("qa", "--max-answer-len", "abc")]
    [InlineData("ner", "--stride", "1e3")]
    public void A_number_option_that_does_not_parse_is_a_usage_error(string command, string option, string value)
    {
        var r = Run(command, "--model", Model(command == "qa" ? "qa" : "pretraining"), option, value, "x [MASK] y", "context");
        AssertRefused(r, option, "expected a whole number");
    }

    [Fact]
    public void Qa_refuses_a_zero_question_length()
    {
        AssertRefused(Run("qa", "--model", Model("qa"), "--max-question-len", "0", "Who?", "Nobody knows."), "--max-question-len");
    }

    [Theory]
    [InlineData("NaN")]
    [InlineData("+1")]
    [InlineData("01")]
    [InlineData("1.")]
    public void Csv_labels_that_are_not_names_or_indices_are_refused_naming_the_line(string label)
    {
        File.WriteAllLines(Temp("train.csv"), ["text,label", "a good one,0", $"a strange one,{label}", "a bad one,1"]);
        AssertRefused(Run("finetune", "--task", "classification", "--model", Model("pretraining"), "--train", Temp("train.csv"), "--eval", Temp("train.csv"),
            "--out", Temp("out")), "train.csv:3", label);
    }

    [Fact]
    public void A_csv_row_with_too_few_fields_and_a_squad_answer_start_string_are_refused()
    {
        File.WriteAllLines(Temp("train.csv"), ["text,text_pair,label", "a,b,0", "only text", "c,d,1"]);
        AssertRefused(Run("finetune", "--task", "classification", "--model", Model("pretraining"), "--train", Temp("train.csv"), "--eval", Temp("train.csv"),
            "--out", Temp("out")), "train.csv:3");
        var squad = new { version = "v2.0", data = new[] { new { title = "t", paragraphs = new[] { new { context = "Paris is in France.", qas = new[] {
            new { id = "1", question = "Where is Paris?", answers = new[] { new { text = "France", answer_start = (object)"12" } }, is_impossible = false } } } } } } };
        File.WriteAllText(Temp("squad.json"), JsonSerializer.Serialize(squad));
        AssertRefused(Run("finetune", "--task", "qa", "--model", Model("pretraining"), "--train", Temp("squad.json"), "--eval", Temp("squad.json"),
            "--out", Temp("out")), "squad.json", "answer_start");
    }

    // ---- resuming ----

    private string TrainWithCheckpoint()
    {
        WriteSentiment("train.jsonl", 16);
        var r = Run("finetune", "--task", "classification", "--model", Model("pretraining"), "--train", Temp("train.jsonl"), "--eval", Temp("train.jsonl"),
            "--out", Temp("out"), "--epochs", "2", "--batch-size", "4", "--save-steps", "2");
        Assert.True(r.Code == 0, r.Err);
        return Trainer_checkpoint();
    }

    private string Trainer_checkpoint() => Directory.GetDirectories(Temp("out"), "checkpoint-*").Single();

    /// <summary>The same command as the run that wrote the checkpoint, resumed.</summary>
    private (int, string, string) Resume() =>
        Run("finetune", "--task", "classification", "--model", Model("pretraining"), "--train", Temp("train.jsonl"), "--eval", Temp("train.jsonl"),
            "--out", Temp("out"), "--epochs", "2", "--batch-size", "4", "--save-steps", "2", "--resume");

    [Theory]
    [InlineData("seed", null, "seed")]
    [InlineData("log_history", null, "log_history")]
    [InlineData("global_step", "\"abc\"", "global_step")]
    [InlineData("global_step", "-5", "global_step")]
    [InlineData("global_step", "1000000000000", "global_step")]
    [InlineData("epoch", "[1]", "epoch")]
    public void A_damaged_trainer_state_is_refused_naming_the_field(string field, string? value, string mention)
    {
        string checkpoint = TrainWithCheckpoint();
        string path = Path.Combine(checkpoint, "trainer_state.json");
        var state = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        if (value is null) state.Remove(field);
        else state[field] = JsonNode.Parse(value);
        File.WriteAllText(path, state.ToJsonString());
        AssertRefused(Resume(), "trainer_state.json", mention);
    }

    [Theory]
    [InlineData("missing")]
    [InlineData("wrong shape")]
    [InlineData("smaller")]
    public void A_damaged_optimizer_state_is_refused(string damage)
    {
        string checkpoint = TrainWithCheckpoint();
        string path = Path.Combine(checkpoint, "optimizer.safetensors");
        List<SafeTensor> tensors;
        using (var file = new SafeTensorsFile(path))
            tensors = file.Tensors.Select((t, i) => i != 0 ? SafeTensor.Float32(t.Name, t.Shape, file.ReadFloat32(t.Name)) : damage switch
            {
                "missing" => null!,
                "wrong shape" => SafeTensor.Float32(t.Name, [(int)t.ElementCount], file.ReadFloat32(t.Name)),
                _ => SafeTensor.Float32(t.Name, [1], [0f]),
            }).Where(t => t is not null).ToList();
        SafeTensorsWriter.Write(path, tensors);
        AssertRefused(Resume(), "optimizer.safetensors");
    }

    [Fact]
    public async Task Ctrl_c_during_fine_tuning_leaves_a_checkpoint_and_says_how_to_resume()
    {
        if (OperatingSystem.IsWindows()) return; // a console control event is not a signal there
        WriteSentiment("train.jsonl", 64);
        // A job started with & by a non-interactive shell ignores SIGINT, and so do its children: the runtime then
        // never sees the signal (as under nohup) and this run would finish normally. GNU env puts it back for the child.
        bool sigintIgnored = File.Exists("/proc/self/status") && File.ReadLines("/proc/self/status")
            .FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal)) is { } ignored
            && (Convert.ToUInt64(ignored["SigIgn:".Length..].Trim(), 16) & 0b10) != 0;
        var start = new System.Diagnostics.ProcessStartInfo(sigintIgnored ? "env" : "dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        if (sigintIgnored) foreach (var a in new[] { "--default-signal=INT", "dotnet" }) start.ArgumentList.Add(a);
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "nbert.dll"), "finetune", "--task", "classification", "--model", Model("pretraining"),
            "--train", Temp("train.jsonl"), "--eval", Temp("train.jsonl"), "--out", Temp("out"), "--epochs", "1000", "--batch-size", "4" })
            start.ArgumentList.Add(a);
        using var process = System.Diagnostics.Process.Start(start)!;
        try
        {
            var stderr = process.StandardError.ReadToEndAsync();
            string? line;
            while ((line = process.StandardOutput.ReadLine()) is not null && !line.StartsWith("step", StringComparison.Ordinal)) { }
            Assert.NotNull(line); // training has begun
            System.Diagnostics.Process.Start("kill", ["-INT", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!.WaitForExit();
            var rest = process.StandardOutput.ReadToEndAsync();
            Assert.True(process.WaitForExit(60_000), "nbert did not stop");
            Assert.Equal(130, process.ExitCode);
            Assert.Contains("--resume", await rest);
            Assert.NotNull(NBert.Training.Trainer.LatestCheckpoint(Temp("out")));
            Assert.DoesNotContain("   at ", await stderr);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true); // a 1000-epoch run must not outlive a failed test
        }
    }

    [Fact]
    public void Resume_without_a_checkpoint_is_refused_and_keeps_the_log()
    {
        WriteSentiment("train.jsonl", 8);
        Directory.CreateDirectory(Temp("out"));
        File.WriteAllText(Temp("out/metrics.jsonl"), "{\"step\": 1}\n");
        AssertRefused(Resume(), "no checkpoint");
        Assert.Equal("{\"step\": 1}\n", File.ReadAllText(Temp("out/metrics.jsonl")));
    }

    [Fact]
    public void Resume_without_a_checkpoint_is_refused_before_the_data_is_read()
    {
        // The training file does not exist: the refusal must be about the checkpoint, said before the data is prepared.
        Directory.CreateDirectory(Temp("out"));
        AssertRefused(Resume(), "no checkpoint to resume from");
        Assert.False(File.Exists(Temp("train.jsonl")));
    }

    [Fact]
    public void A_run_that_overwrites_another_drops_the_old_runs_checkpoints()
    {
        // Left in place, the old run's checkpoint-900 would be what --resume takes after the new run is interrupted.
        WriteSentiment("train.jsonl", 8);
        Directory.CreateDirectory(Temp("out/checkpoint-900"));
        File.WriteAllText(Temp("out/checkpoint-900/trainer_state.json"), "{}");
        var r = Run("finetune", "--task", "classification", "--model", Model("pretraining"), "--train", Temp("train.jsonl"), "--eval", Temp("train.jsonl"),
            "--out", Temp("out"), "--epochs", "1", "--batch-size", "4", "--save-steps", "1", "--overwrite");
        Assert.True(r.Item1 == 0, r.Item3);
        Assert.False(Directory.Exists(Temp("out/checkpoint-900")));
        Assert.EndsWith("checkpoint-2", NBert.Training.Trainer.LatestCheckpoint(Temp("out")));
    }

    [Fact]
    public void Fine_tuning_into_the_model_it_starts_from_is_refused()
    {
        string copy = Temp("model");
        Directory.CreateDirectory(copy);
        foreach (var f in Directory.GetFiles(Model("pretraining"))) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        var before = File.ReadAllBytes(Path.Combine(copy, "model.safetensors"));
        WriteSentiment("train.jsonl", 8);
        AssertRefused(Run("finetune", "--task", "classification", "--model", copy, "--train", Temp("train.jsonl"), "--eval", Temp("train.jsonl"),
            "--out", copy + "/"), "--out", "--model");
        Assert.Equal(before, File.ReadAllBytes(Path.Combine(copy, "model.safetensors")));
    }

    [Fact]
    public void Pretrain_and_overfit_refuse_to_write_into_the_model_they_start_from()
    {
        string copy = Temp("model");
        Directory.CreateDirectory(copy);
        foreach (var f in Directory.GetFiles(Model("pretraining"))) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        var before = File.ReadAllBytes(Path.Combine(copy, "model.safetensors"));
        File.WriteAllLines(Temp("corpus.txt"), ["One sentence here.", "Another one.", "", "A new document.", "And more."]);
        AssertRefused(Run("pretrain", "--model", copy, "--corpus", Temp("corpus.txt"), "--out", copy, "--steps", "1"), "--out", "--model");
        AssertRefused(Run("overfit", "--model", copy, "--batch", Fixtures.Path("training", "pretraining_grads.safetensors"), "--steps", "1", "--out", copy + "/"), "--out", "--model");
        Assert.Equal(before, File.ReadAllBytes(Path.Combine(copy, "model.safetensors")));
    }

    [Fact]
    public void An_out_directory_that_holds_files_is_refused_unless_overwrite_is_given()
    {
        Directory.CreateDirectory(Temp("mine"));
        File.WriteAllText(Temp("mine/config.json"), "{\"mine\": true}");
        File.WriteAllText(Temp("mine/notes.txt"), "my notes");
        WriteSentiment("train.jsonl", 8);
        File.WriteAllLines(Temp("corpus.txt"), ["one two three four five", "six seven eight nine ten"]);
        var refusals = new[]
        {
            Run("finetune", "--task", "classification", "--model", Model("pretraining"), "--train", Temp("train.jsonl"), "--eval", Temp("train.jsonl"), "--out", Temp("mine")),
            Run("init", "--config", Path.Combine(Model("pretraining"), "config.json"), "--out", Temp("mine")),
            Run("vocab", "--corpus", Temp("corpus.txt"), "--size", "40", "--out", Temp("mine")),
        };
        foreach (var r in refusals) AssertRefused(r, "already holds files", "--overwrite");
        Assert.Equal("{\"mine\": true}", File.ReadAllText(Temp("mine/config.json")));
        var ok = Run("init", "--config", Path.Combine(Model("pretraining"), "config.json"), "--out", Temp("mine"), "--overwrite");
        Assert.True(ok.Code == 0, ok.Err);
        Assert.Equal("my notes", File.ReadAllText(Temp("mine/notes.txt")));
    }

    // ---- streamed input keeps what came before a bad line ----

    [Theory]
    [InlineData(3)]
    [InlineData(301)]
    public void A_bad_json_line_comes_after_every_result_before_it(int bad)
    {
        var lines = Enumerable.Range(1, bad + 5).Select(i => i == bad ? "{not json" : JsonSerializer.Serialize(new { text = $"text number {i}" })).ToArray();
        File.WriteAllLines(Temp("in.jsonl"), lines);
        var r = Run("classify", "--model", Model("seqcls"), "--input", Temp("in.jsonl"), "--json");
        AssertRefused(r, $"line {bad}");
        Assert.Equal(bad - 1, r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
    }

    [Fact]
    public void An_input_the_pipeline_refuses_comes_after_every_result_before_it_and_is_named_by_its_line()
    {
        // Line 301 has no [MASK]: lines 257-300 share its chunk of 256 and must still be answered.
        var lines = Enumerable.Range(1, 305).Select(i => JsonSerializer.Serialize(new { text = i == 301 ? "no mask here" : $"sentence {i} is [MASK]." })).ToArray();
        File.WriteAllLines(Temp("in.jsonl"), lines);
        var r = Run("fill-mask", "--model", Model("pretraining"), "--input", Temp("in.jsonl"), "--json");
        AssertRefused(r, "line 301:", "no [MASK]");
        Assert.Equal(300, r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.DoesNotContain("(Parameter", r.Err);
        File.WriteAllLines(Temp("qa.jsonl"), [JsonSerializer.Serialize(new { question = "Who?", context = "Rollo led them." }), JsonSerializer.Serialize(new { question = " ", context = "x" })]);
        r = Run("qa", "--model", Model("qa"), "--json", "--input", Temp("qa.jsonl"));
        AssertRefused(r, "line 2:", "question is empty");
        Assert.Single(r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void Texts_and_input_together_are_refused()
    {
        File.WriteAllText(Temp("in.jsonl"), "{\"text\": \"x\"}\n");
        AssertRefused(Run("classify", "--model", Model("seqcls"), "--input", Temp("in.jsonl"), "A text."), "--input");
    }

    // ---- messages that say what happened ----

    [Fact]
    public void A_mask_cut_off_by_truncation_is_said_so_and_a_huge_input_is_not_echoed()
    {
        string text = string.Join(' ', Enumerable.Repeat("word", 300_000)) + " [MASK].";
        var r = Run("fill-mask", "--model", Model("pretraining"), text);
        AssertRefused(r, "truncat");
        Assert.True(r.Err.Length < 400, $"{r.Err.Length} characters of error");
    }

    [Fact]
    public void A_data_file_that_is_not_json_is_not_echoed_into_the_message()
    {
        File.WriteAllLines(Temp("big.json"), Enumerable.Range(0, 20_000).Select(i => $"some text number {i} with words,{i % 2}").Prepend("text,label"));
        var r = Run("evaluate", "--task", "qa", "--model", Model("qa"), "--data", Temp("big.json"));
        AssertRefused(r, "big.json", "not JSON");
        Assert.True(r.Err.Length < 400, $"{r.Err.Length} characters of error");
        File.WriteAllText(Temp("big.jsonl"), "{\"text\": " + new string('x', 100_000) + "\n");
        r = Run("classify", "--model", Model("seqcls"), "--input", Temp("big.jsonl"));
        AssertRefused(r, "line 1");
        Assert.True(r.Err.Length < 400, $"{r.Err.Length} characters of error");
    }

    [Fact]
    public void Empty_targets_and_an_impossible_mlm_probability_are_refused()
    {
        AssertRefused(Run("fill-mask", "--model", Model("pretraining"), "--targets", ",", "Paris is the [MASK] of France."), "--targets");
        File.WriteAllLines(Temp("corpus.txt"), ["One sentence here.", "Another one.", "", "A new document.", "And more."]);
        AssertRefused(Run("pretrain", "--model", Model("pretraining"), "--corpus", Temp("corpus.txt"), "--out", Temp("out"), "--mlm-probability", "2", "--steps", "1"),
            "--mlm-probability");
    }

    [Fact]
    public void Tokenize_names_the_first_line_that_cannot_be_truncated()
    {
        // Lines 2 and 2990 cannot be cut to 8 tokens by shortening the pair only: the first of them is the one to name,
        // although the batch is tokenized in parallel and 2990, being short, fails long before 2 has been tokenized.
        // In a process of its own, as a user runs it: the test host's warm thread pool hides the race.
        var lines = Enumerable.Range(1, 3000).Select(i => JsonSerializer.Serialize(new
        {
            text = i switch { 2 => string.Join(' ', Enumerable.Repeat("word", 400_000)), 2990 => string.Join(' ', Enumerable.Repeat("word", 20)), _ => "short" },
            text_pair = "a pair",
        }));
        File.WriteAllLines(Temp("in.jsonl"), lines);
        for (int attempt = 0; attempt < 2; attempt++)
            AssertRefused(RunProcess(null, "tokenize", "--model", Model("pretraining"), "--input", Temp("in.jsonl"), "--max-length", "8", "--truncation", "only_second"), "line 2:");
    }

    [Fact]
    public void A_bad_conll_tag_is_reported_at_its_own_line()
    {
        File.WriteAllLines(Temp("train.conll"), ["John B-PER", "lives O", "in O", "Paris B-LOC", "", "Mary B-PER", "works O", "at O", "Acme B-ORGANISATION"]);
        AssertRefused(Run("finetune", "--task", "ner", "--model", Model("pretraining"), "--train", Temp("train.conll"), "--eval", Temp("train.conll"),
            "--out", Temp("out"), "--labels", "O,B-PER,I-PER,B-LOC,I-LOC,B-ORG,I-ORG"), "train.conll:9", "B-ORGANISATION");
    }
}
