using System.Text.Json.Nodes;
using NBert.Modeling;
using static NBert.Tests.Cli.Nbert;
using NBert.Schema;

namespace NBert.Tests.Cli;

public sealed class PretrainCommandTests : TempDirectoryTest
{
    private void WriteCorpus(string name, int documents, int seed)
    {
        var r = new Random(seed);
        string[] words = ["the", "people", "of", "this", "nation", "have", "shown", "great", "strength", "and", "courage", "in", "war", "peace"];
        File.WriteAllLines(Temp(name), Enumerable.Range(0, documents).SelectMany(_ =>
            Enumerable.Range(0, r.Next(2, 8)).Select(_ => string.Join(' ', Enumerable.Range(0, r.Next(4, 14)).Select(_ => words[r.Next(words.Length)])) + ".").Append("")));
    }

    [Fact]
    public void Pretrains_from_scratch_evaluates_held_out_text_and_resumes()
    {
        WriteCorpus("train.txt", 60, 1);
        WriteCorpus("held.txt", 10, 2);
        File.WriteAllText(Temp("config.json"), """{"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64}""");
        string[] args = ["pretrain", "--config", Temp("config.json"), "--vocab", Path.Combine(Fixtures.RepoRoot, "models", "bert-base-uncased"),
            "--corpus", Temp("train.txt"), "--eval-corpus", Temp("held.txt"), "--out", Temp("out"), "--max-seq-length", "64",
            "--steps", "12", "--batch-size", "8", "--lr", "1e-3", "--warmup-steps", "2", "--save-steps", "6", "--eval-steps", "6",
            "--logging-steps", "4", "--logging-first-step"];
        var (code, stdout, error) = Run(args);
        Assert.True(code == 0, error + stdout);
        Assert.Contains("BertForPreTraining", stdout);
        Assert.Matches(@"eval at step 6: mlm_loss [\d.]+  masked_accuracy [\d.]+  nsp_loss [\d.]+  nsp_accuracy [\d.]+", stdout);
        var config = JsonNode.Parse(File.ReadAllText(Temp("out/config.json")))!;
        Assert.Equal(30522, (int)config["vocab_size"]!); // follows the vocabulary
        Assert.Equal("BertForPreTraining", (string)config["architectures"]![0]!);
        Assert.True(File.Exists(Temp("out/vocab.txt")));
        Assert.True(File.Exists(Temp("out/checkpoint-12/optimizer.safetensors")));
        Assert.Empty(Directory.GetFiles(Temp("out"), "*.tmp")); // the instance file is gone
        var logged = File.ReadAllLines(Temp("out/metrics.jsonl")).Select(l => JsonNode.Parse(l)!).Where(l => l["loss"] is not null).ToList();
        Assert.Equal([1, 4, 8, 12], logged.Select(l => (int)l["step"]!));
        var losses = logged.Select(l => (double)l["loss"]!).ToList();
        Assert.True(losses[^1] < losses[0], string.Join(", ", losses));

        // Resuming a finished run has nothing left to do.
        (code, stdout, error) = Run([.. args, "--resume"]);
        Assert.True(code == 0, error);
        Assert.Contains("resumed from", stdout);
        Assert.DoesNotContain("step 1/12", stdout);

        // MLM only.
        (code, stdout, error) = Run("pretrain", "--model", Temp("out"), "--corpus", Temp("train.txt"), "--out", Temp("mlm"), "--no-nsp",
            "--steps", "2", "--batch-size", "4", "--whole-word-mask", "--max-seq-length", "64");
        Assert.True(code == 0, error + stdout);
        Assert.Equal(BertArchitecture.BertForMaskedLM, BertPreTrainedModel.FromPretrained(Temp("mlm")).Architecture);
    }

    /// <summary>A DistilBERT pre-trains with masked LM only (it has no next-sentence head), without being told --no-nsp,
    /// and saves as a DistilBertForMaskedLM.</summary>
    [Fact]
    public void A_distilbert_pretrains_with_masked_lm_only()
    {
        WriteCorpus("train.txt", 30, 1);
        var (code, stdout, error) = Run("pretrain", "--model", Fixtures.Path("distilbert", "model"), "--corpus", Temp("train.txt"), "--out", Temp("out"),
            "--steps", "3", "--batch-size", "4", "--max-seq-length", "64", "--logging-steps", "1");
        Assert.True(code == 0, error + stdout);
        var config = JsonNode.Parse(File.ReadAllText(Temp("out/config.json")))!;
        Assert.Equal("DistilBertForMaskedLM", (string)config["architectures"]![0]!);
        var model = BertPreTrainedModel.FromPretrained(Temp("out"));
        Assert.Equal((ModelFamily.DistilBert, BertArchitecture.BertForMaskedLM), (model.Config.Family, model.Architecture));
        Assert.Empty(model.LoadReport!.Initialized);
    }

    /// <summary>An ELECTRA pre-trains with masked LM as ElectraForMaskedLM (the generator's head, new on a discriminator's
    /// body, as transformers' run_mlm.py loads it), without next sentence, and saves under ELECTRA's names; its discriminator
    /// objective (replaced-token detection against a generator) is not one NBert runs, and the library says so.</summary>
    [Fact]
    public void An_electra_pretrains_with_masked_lm_as_its_generator_head()
    {
        WriteCorpus("train.txt", 30, 1);
        var (code, stdout, error) = Run("pretrain", "--model", Fixtures.Path("electra", "pretraining"), "--corpus", Temp("train.txt"), "--out", Temp("out"),
            "--steps", "3", "--batch-size", "4", "--max-seq-length", "64", "--logging-steps", "1");
        Assert.True(code == 0, error + stdout);
        var config = JsonNode.Parse(File.ReadAllText(Temp("out/config.json")))!;
        Assert.Equal("ElectraForMaskedLM", (string)config["architectures"]![0]!);
        Assert.Equal(8, (int)config["embedding_size"]!);
        using (var saved = new NBert.IO.SafeTensorsFile(Temp("out/model.safetensors")))
        {
            var names = saved.Tensors.Select(t => t.Name).ToHashSet();
            Assert.Contains("generator_predictions.dense.weight", names);
            Assert.Contains("generator_lm_head.bias", names);
            Assert.Contains("electra.embeddings_project.weight", names);
            Assert.DoesNotContain(names, n => n.StartsWith("discriminator_predictions", StringComparison.Ordinal));
        }
        var model = BertPreTrainedModel.FromPretrained(Temp("out"));
        Assert.Equal((ModelFamily.Electra, BertArchitecture.BertForMaskedLM), (model.Config.Family, model.Architecture));
        Assert.Empty(model.LoadReport!.Initialized);
        var discriminator = BertPreTrainedModel.FromPretrained(Fixtures.Path("electra", "pretraining"));
        Assert.Contains("replaced-token detection", Assert.Throws<ArgumentException>(() => NBert.Tasks.Pretraining.Run(discriminator,
            NBert.Tokenization.BertTokenizer.FromPretrained(Fixtures.Path("electra", "pretraining")), [],
            new NBert.Tasks.MaskedLmCollator(NBert.Tokenization.BertTokenizer.FromPretrained(Fixtures.Path("electra", "pretraining"))))).Message);
    }

    [Fact]
    public void Pretrain_refuses_bad_arguments_with_exit_code_2()
    {
        var (code, _, error) = Run("pretrain", "--corpus", Temp("missing.txt"), "--out", Temp("o"));
        Assert.Equal(2, code);
        Assert.Contains("--model", error);
        (code, _, error) = Run("pretrain", "--model", Fixtures.Path("model", "pretraining"), "--corpus", Temp("missing.txt"), "--out", Temp("o"));
        Assert.Equal(2, code);
        Assert.Contains("missing.txt", error);
        File.WriteAllText(Temp("c.txt"), "a b c.\n");
        (code, _, error) = Run("pretrain", "--model", Fixtures.Path("model", "pretraining"), "--corpus", Temp("c.txt"), "--out", Temp("o"), "--max-seq-length", "512");
        Assert.Equal(2, code);
        Assert.Contains("max_position_embeddings", error);
        (code, _, error) = Run("pretrain", "--model", Fixtures.Path("model", "pretraining"), "--corpus", Temp("c.txt"), "--out", Temp("o"), "--dupe-factor", "0");
        Assert.Equal(2, code);
        Assert.Contains("--dupe-factor must be at least 1", error);
    }
}
