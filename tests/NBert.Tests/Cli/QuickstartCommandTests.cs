using System.Text.Json;
using System.Text.Json.Nodes;
using static NBert.Tests.Cli.Nbert;

namespace NBert.Tests.Cli;

/// <summary>nbert quickstart, without its fine-tuning (minutes with MiniLM): a sentiment model already in --out
/// is reused, scored on the shipped test split, and tried on examples.</summary>
public sealed class QuickstartCommandTests : TempDirectoryTest
{
    [Fact]
    public void A_sentiment_model_in_out_is_reused_and_scored_on_the_shipped_test_split()
    {
        // A quick sentiment model: the tiny fixture encoder, one epoch on the shipped dev split.
        string data = Path.Combine(Fixtures.RepoRoot, "data", "sentiment");
        var (code, stdout, error) = Run("finetune", "--task", "classification", "--model", Fixtures.Path("model", "pretraining"),
            "--train", Path.Combine(data, "dev.jsonl.gz"), "--eval", Path.Combine(data, "dev.jsonl.gz"), "--labels", "negative,positive",
            "--out", Temp("models/sentiment"), "--epochs", "1", "--max-length", "64");
        Assert.True(code == 0, error + stdout);

        (code, stdout, error) = Run("quickstart", "--out", Temp("models/sentiment"), "--json");
        Assert.True(code == 0, error + stdout);
        var result = JsonNode.Parse(stdout)!;
        Assert.False((bool)result["trained"]!);
        // The accuracy it prints is nbert evaluate's on data/sentiment/test.jsonl.gz.
        (code, var evaluation, error) = Run("evaluate", "--task", "classification", "--model", Temp("models/sentiment"),
            "--data", Path.Combine(data, "test.jsonl.gz"), "--max-length", "64", "--json");
        Assert.True(code == 0, error);
        Assert.Equal((double)JsonNode.Parse(evaluation)!["accuracy"]!, (double)result["test_accuracy"]!, 6);
        var examples = result["examples"]!.AsArray();
        Assert.Equal(4, examples.Count);
        Assert.All(examples, e => Assert.Contains((string)e!["label"]!, new[] { "negative", "positive" }));
        // Embeddings come from the built-in MiniLM: the nearest test sentences are ranked by cosine.
        var cosines = result["similar"]!.AsArray().Select(s => (double)s!["cosine"]!).ToList();
        Assert.Equal(3, cosines.Count);
        Assert.Equal(cosines.OrderDescending(), cosines);
        Assert.True(cosines[0] > 0.4, $"closest cosine {cosines[0]}");
        // No NER or QA model beside it: the table output says how to make them.
        (code, stdout, error) = Run("quickstart", "--out", Temp("models/sentiment"));
        Assert.True(code == 0, error);
        Assert.Contains("Reusing", stdout);
        Assert.Contains("nbert finetune --task ner", stdout);
        Assert.Contains("nbert finetune --task qa", stdout);
    }

    [Fact]
    public void Bad_options_exit_2_before_any_work()
    {
        var (code, _, error) = Run("quickstart", "--retrain", "--epochs", "0", "--out", Temp("m"));
        Assert.Equal(2, code);
        Assert.Contains("--epochs must be at least 1", error);
        Assert.False(Directory.Exists(Temp("m")));
    }
}
