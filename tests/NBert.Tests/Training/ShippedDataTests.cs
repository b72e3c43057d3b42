using NBert.Training;

namespace NBert.Tests.Training;

/// <summary>The data the repository ships (data/DATA.md) loads as documented.</summary>
public sealed class ShippedDataTests : TempDirectoryTest
{
    [Theory]
    [InlineData("train", 2400)]
    [InlineData("dev", 300)]
    [InlineData("test", 300)]
    public void The_sentiment_splits_load_with_binary_labels_from_all_three_domains(string split, int count)
    {
        var examples = ClassificationData.Read(Path.Combine(Fixtures.RepoRoot, "data", "sentiment", $"{split}.jsonl.gz"));
        Assert.Equal(count, examples.Count);
        Assert.Equal(ClassificationProblem.SingleLabel, ClassificationData.Problem(examples));
        Assert.Equal(["LABEL_0", "LABEL_1"], ClassificationData.LabelNames(examples)); // integer labels 0 and 1
        Assert.All(examples, e => Assert.False(string.IsNullOrWhiteSpace(e.Text)));
    }

    [Fact]
    public void Gzip_csv_is_read_like_plain_csv()
    {
        string text = "text,label\n\"a, b\",pos\nc,neg\n";
        using (var gz = new System.IO.Compression.GZipStream(File.Create(Temp("d.csv.gz")), System.IO.Compression.CompressionLevel.Fastest))
            gz.Write(System.Text.Encoding.UTF8.GetBytes(text));
        File.WriteAllText(Temp("d.csv"), text);
        Assert.Equal(ClassificationData.Read(Temp("d.csv")).Select(e => e.Text), ClassificationData.Read(Temp("d.csv.gz")).Select(e => e.Text));
    }
}
