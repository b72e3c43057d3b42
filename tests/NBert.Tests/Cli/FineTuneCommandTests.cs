using System.Text.Json;
using System.Text.Json.Nodes;
using NBert.Modeling;
using static NBert.Tests.Cli.Nbert;
using NBert.Schema;

namespace NBert.Tests.Cli;

/// <summary>nbert finetune and nbert evaluate on the tiny fixture model (its encoder, new heads).</summary>
public sealed class FineTuneCommandTests : TempDirectoryTest
{
    private static string Base => Fixtures.Path("model", "pretraining");

    /// <summary>"good" texts start with "he", "bad" ones with "it": a rule the tiny model learns in a few epochs.</summary>
    private void WriteSentiment(string name, int count, int seed, string? badLabelAt = null)
    {
        var r = new Random(seed);
        string[] words = ["was", "with", "that", "for", "on", "as", "in", "to"];
        var lines = Enumerable.Range(0, count).Select(i =>
        {
            string label = badLabelAt is not null && i == 1 ? badLabelAt : i % 2 == 0 ? "good" : "bad";
            string text = (i % 2 == 0 ? "he " : "it ") + string.Join(' ', Enumerable.Range(0, r.Next(2, 6)).Select(_ => words[r.Next(words.Length)]));
            return JsonSerializer.Serialize(new { text, label });
        });
        File.WriteAllLines(Temp(name), lines);
    }

    [Fact]
    public void Classification_fine_tunes_keeps_the_best_model_and_evaluates_it()
    {
        WriteSentiment("train.jsonl", 64, 1);
        WriteSentiment("dev.jsonl", 24, 2);
        var (code, stdout, error) = Run("finetune", "--task", "classification", "--model", Base, "--train", Temp("train.jsonl"), "--eval", Temp("dev.jsonl"),
            "--out", Temp("out"), "--epochs", "6", "--batch-size", "8", "--lr", "2e-3", "--seed", "3");
        Assert.True(code == 0, error + stdout);
        Assert.Contains("labels bad, good", stdout);
        Assert.Matches(@"step +\d+/48  epoch [\d.]+  loss [\d.]+  lr [\d.eE+-]+  [\d,]+ tokens/s", stdout);
        Assert.Contains("eval at step 8: loss", stdout);

        var config = JsonNode.Parse(File.ReadAllText(Temp("out/config.json")))!;
        Assert.Equal("BertForSequenceClassification", (string)config["architectures"]![0]!);
        Assert.Equal("good", (string)config["id2label"]!["1"]!);
        Assert.Equal(0, (int)config["label2id"]!["bad"]!);
        Assert.True(File.Exists(Temp("out/vocab.txt")));
        Assert.True(File.Exists(Temp("out/loss.svg")));
        Assert.Single(Directory.GetDirectories(Temp("out"), "checkpoint-*"));

        // The saved model is the best evaluation's: nbert evaluate gives its accuracy again.
        var evals = File.ReadAllLines(Temp("out/metrics.jsonl")).Select(l => JsonNode.Parse(l)!).Where(l => l["eval_accuracy"] is not null).ToList();
        double best = evals.Max(l => (double)l["eval_accuracy"]!);
        Assert.True(best >= 0.9, $"best accuracy {best}");
        (code, stdout, error) = Run("evaluate", "--task", "classification", "--model", Temp("out"), "--data", Temp("dev.jsonl"), "--json");
        Assert.True(code == 0, error);
        Assert.Equal(best, (double)JsonNode.Parse(stdout)!["accuracy"]!, 5);
        Assert.Equal(BertArchitecture.BertForSequenceClassification, BertPreTrainedModel.FromPretrained(Temp("out")).Architecture);
    }

    /// <summary>A DistilBERT fine-tunes through the same command as a BERT (its pre_classifier and classifier replaced for
    /// the new labels), saves under DistilBERT's names and config, and classifies through the same pipeline command.</summary>
    [Fact]
    public void A_distilbert_fine_tunes_and_classifies_through_the_same_commands()
    {
        WriteSentiment("train.jsonl", 64, 1);
        WriteSentiment("dev.jsonl", 24, 2);
        var (code, stdout, error) = Run("finetune", "--task", "classification", "--model", Fixtures.Path("distilbert", "model"), "--train", Temp("train.jsonl"),
            "--eval", Temp("dev.jsonl"), "--out", Temp("out"), "--epochs", "6", "--batch-size", "8", "--lr", "2e-3", "--seed", "3");
        Assert.True(code == 0, error + stdout);
        var config = JsonNode.Parse(File.ReadAllText(Temp("out/config.json")))!;
        Assert.Equal("DistilBertForSequenceClassification", (string)config["architectures"]![0]!);
        Assert.Equal("distilbert", (string)config["model_type"]!);
        Assert.Equal(16, (int)config["dim"]!);
        using (var saved = new NBert.IO.SafeTensorsFile(Temp("out/model.safetensors")))
        {
            var names = saved.Tensors.Select(t => t.Name).ToHashSet();
            Assert.Contains("pre_classifier.weight", names);
            Assert.Contains("distilbert.transformer.layer.1.ffn.lin2.weight", names);
            Assert.DoesNotContain(names, n => n.StartsWith("bert.", StringComparison.Ordinal));
        }
        var evals = File.ReadAllLines(Temp("out/metrics.jsonl")).Select(l => JsonNode.Parse(l)!).Where(l => l["eval_accuracy"] is not null).ToList();
        double best = evals.Max(l => (double)l["eval_accuracy"]!);
        Assert.True(best >= 0.9, $"best accuracy {best}");
        (code, stdout, error) = Run("classify", "--model", Temp("out"), "he was with that");
        Assert.True(code == 0, error);
        Assert.Contains("good", stdout);
    }

    /// <summary>A RoBERTa (byte-level BPE, positions from pad_token_id + 1) fine-tunes and saves under its own names too,
    /// its classifier.dense and classifier.out_proj new for the task's labels.</summary>
    [Fact]
    public void A_roberta_fine_tunes_through_the_same_command()
    {
        WriteSentiment("train.jsonl", 64, 1);
        WriteSentiment("dev.jsonl", 24, 2);
        var (code, stdout, error) = Run("finetune", "--task", "classification", "--model", Fixtures.Path("roberta", "model"), "--train", Temp("train.jsonl"),
            "--eval", Temp("dev.jsonl"), "--out", Temp("out"), "--epochs", "12", "--batch-size", "8", "--lr", "2e-3", "--seed", "3");
        Assert.True(code == 0, error + stdout);
        var config = JsonNode.Parse(File.ReadAllText(Temp("out/config.json")))!;
        Assert.Equal("RobertaForSequenceClassification", (string)config["architectures"]![0]!);
        Assert.Equal("roberta", (string)config["model_type"]!);
        using (var saved = new NBert.IO.SafeTensorsFile(Temp("out/model.safetensors")))
        {
            var names = saved.Tensors.Select(t => t.Name).ToHashSet();
            Assert.Contains("classifier.dense.weight", names);
            Assert.Contains("classifier.out_proj.weight", names);
            Assert.Contains("roberta.encoder.layer.1.output.dense.weight", names);
            Assert.DoesNotContain(names, n => n.Contains("pooler", StringComparison.Ordinal));
        }
        Assert.True(File.Exists(Temp("out/merges.txt")) || File.Exists(Temp("out/tokenizer.json")));
        var evals = File.ReadAllLines(Temp("out/metrics.jsonl")).Select(l => JsonNode.Parse(l)!).Where(l => l["eval_accuracy"] is not null).ToList();
        double best = evals.Max(l => (double)l["eval_accuracy"]!);
        Assert.True(best >= 0.9, $"best accuracy {best}");
    }

    /// <summary>An ELECTRA (embedding_size 8 projected to hidden_size 16) fine-tunes through the same command as a BERT, its
    /// ElectraClassificationHead (classifier.dense, classifier.out_proj) new for the task's labels, saves under ELECTRA's
    /// names and config, and classifies through the same pipeline command.</summary>
    [Fact]
    public void An_electra_fine_tunes_and_classifies_through_the_same_commands()
    {
        WriteSentiment("train.jsonl", 64, 1);
        WriteSentiment("dev.jsonl", 24, 2);
        var (code, stdout, error) = Run("finetune", "--task", "classification", "--model", Fixtures.Path("electra", "model"), "--train", Temp("train.jsonl"),
            "--eval", Temp("dev.jsonl"), "--out", Temp("out"), "--epochs", "12", "--batch-size", "8", "--lr", "2e-3", "--seed", "3");
        Assert.True(code == 0, error + stdout);
        var config = JsonNode.Parse(File.ReadAllText(Temp("out/config.json")))!;
        Assert.Equal("ElectraForSequenceClassification", (string)config["architectures"]![0]!);
        Assert.Equal("electra", (string)config["model_type"]!);
        Assert.Equal(8, (int)config["embedding_size"]!);
        using (var saved = new NBert.IO.SafeTensorsFile(Temp("out/model.safetensors")))
        {
            var names = saved.Tensors.Select(t => t.Name).ToHashSet();
            Assert.Contains("classifier.dense.weight", names);
            Assert.Contains("classifier.out_proj.weight", names);
            Assert.Contains("electra.embeddings_project.weight", names);
            Assert.Contains("electra.encoder.layer.1.output.dense.weight", names);
            Assert.DoesNotContain(names, n => n.Contains("pooler", StringComparison.Ordinal) || n.StartsWith("bert.", StringComparison.Ordinal));
        }
        var evals = File.ReadAllLines(Temp("out/metrics.jsonl")).Select(l => JsonNode.Parse(l)!).Where(l => l["eval_accuracy"] is not null).ToList();
        double best = evals.Max(l => (double)l["eval_accuracy"]!);
        Console.WriteLine($"electra: best eval accuracy {best} over {evals.Count} evaluations");
        Assert.True(best >= 0.9, $"best accuracy {best}");
        (code, stdout, error) = Run("classify", "--model", Temp("out"), "he was with that");
        Assert.True(code == 0, error);
        Assert.Contains("good", stdout);
    }

    [Fact]
    public void Bad_data_is_refused_before_training_with_file_and_line()
    {
        WriteSentiment("train.jsonl", 16, 1);
        WriteSentiment("dev.jsonl", 8, 2, badLabelAt: "so-so");
        var (code, _, error) = Run("finetune", "--task", "classification", "--model", Base, "--train", Temp("train.jsonl"), "--eval", Temp("dev.jsonl"),
            "--out", Temp("out"), "--labels", "bad,good");
        Assert.Equal(2, code);
        Assert.Contains("dev.jsonl:2", error);
        Assert.Contains("so-so", error);
        Assert.False(Directory.Exists(Temp("out")));

        File.WriteAllText(Temp("squad.json"), """{"data": [{"paragraphs": [{"context": "he was in it", "qas": [{"id": "x7", "question": "who", "answers": [{"text": "she", "answer_start": 0}]}]}]}]}""");
        (code, _, error) = Run("finetune", "--task", "qa", "--model", Base, "--train", Temp("squad.json"), "--eval", Temp("squad.json"), "--out", Temp("out"));
        Assert.Equal(2, code);
        Assert.Contains("x7", error);

        (code, _, error) = Run("evaluate", "--task", "ner", "--model", Base, "--data", Temp("dev.jsonl"));
        Assert.Equal(2, code);
        Assert.Contains("BertForTokenClassification", error);
    }

    [Fact]
    public void Ner_and_qa_fine_tune_and_report_their_metrics()
    {
        // NER: "he" is a person, "it" a thing.
        var r = new Random(4);
        string[] words = ["was", "with", "that", "for", "on"];
        File.WriteAllLines(Temp("ner.conll"), Enumerable.Range(0, 40).SelectMany(i =>
        {
            var lines = Enumerable.Range(0, 4).Select(_ => r.Next(3) switch { 0 => "he B-PER", 1 => "it B-MISC", _ => words[r.Next(5)] + " O" }).ToList();
            lines.Add("");
            return lines;
        }));
        var (code, stdout, error) = Run("finetune", "--task", "ner", "--model", Base, "--train", Temp("ner.conll"), "--eval", Temp("ner.conll"),
            "--out", Temp("ner"), "--epochs", "4", "--batch-size", "8", "--lr", "3e-3");
        Assert.True(code == 0, error + stdout);
        Assert.Contains("labels O, B-MISC, B-PER", stdout);
        Assert.Matches(@"eval at step \d+: loss [\d.]+  precision [\d.]+  recall [\d.]+  f1 [\d.]+", stdout);
        (code, stdout, error) = Run("evaluate", "--task", "ner", "--model", Temp("ner"), "--data", Temp("ner.conll"), "--json");
        Assert.True(code == 0, error);
        Assert.True((double)JsonNode.Parse(stdout)!["f1"]! > 0.9, stdout);

        // QA: the answer is always the word after "in".
        var qas = Enumerable.Range(0, 24).Select(i =>
        {
            string before = string.Join(' ', Enumerable.Range(0, 1 + i % 4).Select(_ => words[r.Next(5)]));
            string context = $"{before} in it {words[r.Next(5)]}";
            return new { context, qas = new[] { new { id = $"q{i}", question = "who", answers = new[] { new { text = "it", answer_start = before.Length + 4 } } } } };
        });
        File.WriteAllText(Temp("qa.json"), JsonSerializer.Serialize(new { version = "1.1", data = new[] { new { title = "t", paragraphs = qas } } }));
        (code, stdout, error) = Run("finetune", "--task", "qa", "--model", Base, "--train", Temp("qa.json"), "--eval", Temp("qa.json"),
            "--out", Temp("qa"), "--epochs", "8", "--batch-size", "8", "--lr", "3e-3", "--max-length", "32");
        Assert.True(code == 0, error + stdout);
        Assert.Matches(@"eval at step \d+: loss [\d.]+  exact_match [\d.]+  f1 [\d.]+", stdout);
        (code, stdout, error) = Run("evaluate", "--task", "qa", "--model", Temp("qa"), "--data", Temp("qa.json"), "--json", "--max-length", "32");
        Assert.True(code == 0, error);
        Assert.True((double)JsonNode.Parse(stdout)!["exact_match"]! > 80, stdout);
    }
}
