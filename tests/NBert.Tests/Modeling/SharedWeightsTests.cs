using NBert.Modeling;
using NBert.Pipelines;
using NBert.Schema;

namespace NBert.Tests.Modeling;

/// <summary>Issue 29, item 7: a model loaded twice shares its weights and their packed copies, until the last holder is
/// disposed or a holder takes its parameters to change them.</summary>
public sealed class SharedWeightsTests : TempDirectoryTest
{
    /// <summary>A private copy of a fixture model, so that no other test holds or rewrites the same files.</summary>
    private string CopyOf(string fixture)
    {
        string directory = Temp(fixture);
        Directory.CreateDirectory(directory);
        foreach (var file in Directory.GetFiles(Fixtures.Path("model", fixture))) File.Copy(file, Path.Combine(directory, Path.GetFileName(file)));
        return directory;
    }

    private static float[] Logits(TextClassification cls) =>
        cls.Model.Forward(ModelInputs.FromEncodings([cls.Tokenizer.Encode("A fine film.")])).Logits!.Data;

    [Fact]
    public void Two_loads_share_one_set_of_weights_and_packed_copies_released_when_the_last_is_disposed()
    {
        string directory = CopyOf("seqcls");
        var a = TextClassification.FromPretrained(directory);
        var b = TextClassification.FromPretrained(directory);
        var shared = a.Model.Shared;
        Assert.NotNull(shared);
        Assert.Same(shared, b.Model.Shared);
        Assert.Equal(2, shared!.Holders);
        Assert.Same(a.Model.ParametersToRead, b.Model.ParametersToRead);
        Assert.Same(a.Model.Weights, b.Model.Weights); // the packed copies too
        Assert.Same(shared.Packed, a.Model.Weights);
        Assert.Equal(Logits(a), Logits(b));

        a.Dispose();
        Assert.Equal(1, shared.Holders);
        Assert.Same(shared, SharedWeights.Find(shared.EntryKey));
        var c = TextClassification.FromPretrained(directory); // joins the live entry
        Assert.Same(shared, c.Model.Shared);
        Assert.Equal(2, shared.Holders);
        b.Dispose();
        c.Dispose();
        Assert.Equal(0, shared.Holders);
        Assert.Null(SharedWeights.Find(shared.EntryKey)); // released: the next load reads the files again
        using var d = TextClassification.FromPretrained(directory);
        Assert.NotSame(shared, d.Model.Shared);
        Assert.NotSame(shared.Parameters, d.Model.ParametersToRead);
        Assert.Equal(1, d.Model.Shared!.Holders);
    }

    [Fact]
    public void A_holder_that_takes_its_parameters_gets_a_copy_so_its_writes_reach_no_other_model()
    {
        string directory = CopyOf("seqcls");
        using var a = TextClassification.FromPretrained(directory);
        using var b = TextClassification.FromPretrained(directory);
        var shared = a.Model.Shared!;
        var before = Logits(b);

        var parameters = a.Model.Parameters; // the public view: a's own copy from now on
        Assert.Null(a.Model.Shared);
        Assert.Equal(1, shared.Holders);
        Assert.NotSame(shared.Parameters["classifier.weight"].Data, parameters["classifier.weight"].Data);
        Assert.Equal(shared.Parameters["classifier.weight"].Data, parameters["classifier.weight"].Data);
        Assert.Equal(before, Logits(a)); // same values, packed again from a's copy
        Assert.NotSame(b.Model.Weights, a.Model.Weights);

        parameters["classifier.weight"].Data.AsSpan().Clear();
        parameters["classifier.bias"].Data.AsSpan().Clear();
        parameters["classifier.bias"].Data[0] = 5f;
        a.Model.WeightsChanged();
        Assert.Equal([5f, 0f, 0f], Logits(a));
        Assert.Equal(before, Logits(b)); // untouched
        Assert.Same(shared, b.Model.Shared);
    }

    [Fact]
    public void Only_the_same_files_architecture_and_seed_as_they_are_share()
    {
        string directory = CopyOf("pretraining");
        using var masked = BertPreTrainedModel.FromPretrained(directory, BertArchitecture.BertForMaskedLM);
        using var masked2 = BertPreTrainedModel.FromPretrained(directory, BertArchitecture.BertForMaskedLM);
        using var nsp = BertPreTrainedModel.FromPretrained(directory, BertArchitecture.BertForNextSentencePrediction);
        using var otherSeed = BertPreTrainedModel.FromPretrained(directory, BertArchitecture.BertForMaskedLM, seed: 1);
        using var configured = BertPreTrainedModel.FromPretrained(directory, BertArchitecture.BertForMaskedLM, 0, c => c);
        Assert.Same(masked.Shared, masked2.Shared);
        Assert.NotSame(masked.Shared, nsp.Shared);
        Assert.NotSame(masked.Shared, otherSeed.Shared);
        Assert.Null(configured.Shared);

        // Files written again (a fine-tuning's output, say) are new weights: read, not served from the earlier load.
        File.SetLastWriteTimeUtc(Path.Combine(directory, "model.safetensors"), DateTime.UtcNow.AddMinutes(1));
        using var rewritten = BertPreTrainedModel.FromPretrained(directory, BertArchitecture.BertForMaskedLM);
        Assert.NotSame(masked.Shared, rewritten.Shared);
        Assert.Equal(2, masked.Shared!.Holders);

        // Even with the same size and time of last write (the file system's clock is coarse): the bytes differ.
        string weights = Path.Combine(directory, "model.safetensors");
        configured.SavePretrained(directory);
        long length = new FileInfo(weights).Length;
        var times = Directory.GetFiles(directory).ToDictionary(f => f, File.GetLastWriteTimeUtc);
        using var saved = BertPreTrainedModel.FromPretrained(directory, BertArchitecture.BertForMaskedLM);
        configured.Parameters["cls.predictions.bias"].Data[0] += 1;
        configured.SavePretrained(directory);
        foreach (var (file, time) in times) File.SetLastWriteTimeUtc(file, time);
        Assert.Equal(length, new FileInfo(weights).Length);
        using var changed = BertPreTrainedModel.FromPretrained(directory, BertArchitecture.BertForMaskedLM);
        Assert.NotSame(saved.Shared, changed.Shared);
        Assert.Equal(configured.Parameters["cls.predictions.bias"].Data, changed.ParametersToRead["cls.predictions.bias"].Data);
    }

    [Fact]
    public void Quantizing_one_holder_leaves_the_other_float32()
    {
        string directory = CopyOf("seqcls");
        using var a = TextClassification.FromPretrained(directory);
        using var b = TextClassification.FromPretrained(directory);
        var before = Logits(b);
        a.Model.Quantize(Quantization.Int8);
        Assert.Equal(Quantization.None, b.Model.Quantization);
        Assert.Same(b.Model.Shared!.Packed, b.Model.Weights);
        Assert.Equal(before, Logits(b));
        Assert.NotEqual(before, Logits(a));
        Assert.Same(a.Model.Shared, b.Model.Shared); // its float32 embeddings are still the shared ones
    }

    [Fact]
    public void The_load_warnings_are_raised_by_every_load_that_shares()
    {
        string directory = CopyOf("encoder_only");
        var warnings = new List<string>();
        using (NBertWarnings.Capture(warnings.Add))
        {
            using var a = BertPreTrainedModel.FromPretrained(directory, BertArchitecture.BertForSequenceClassification);
            using var b = BertPreTrainedModel.FromPretrained(directory, BertArchitecture.BertForSequenceClassification);
            Assert.Same(a.Shared, b.Shared);
        }
        Assert.Equal(2, warnings.Count(w => w.Contains("newly initialized") && w.Contains("classifier.weight")));
    }
}
