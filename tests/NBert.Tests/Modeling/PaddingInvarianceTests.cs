using NBert.Modeling;
using NBert.Tokenization;
using NBert.Schema;

namespace NBert.Tests.Modeling;

/// <summary>
/// A sequence's outputs are the same bits whether it runs alone or right-padded in a batch of any length: what
/// a server's dynamic batching relies on to answer a request the same whoever it is batched with.
/// </summary>
public class PaddingInvarianceTests
{
    private static readonly string[] Texts =
    [
        "Hello world.", "A much longer sentence that has quite a few more tokens than the first one does, surely.", "x",
        "Another sentence of medium length, here for the padding.", "The cat sat on the mat because the mat was warm and the floor was not.",
    ];

    private static int[] Bits(ReadOnlySpan<float> values) => values.ToArray().Select(BitConverter.SingleToInt32Bits).ToArray();

    [Theory]
    [InlineData("encoder_only", BertArchitecture.BertModel)]
    [InlineData("seqcls", BertArchitecture.BertForSequenceClassification)]
    public void A_sequence_gives_the_same_bits_alone_and_padded_in_a_batch(string fixture, BertArchitecture architecture)
    {
        string dir = Fixtures.Path("model", fixture);
        var tokenizer = BertTokenizer.FromPretrained(dir);
        var model = BertPreTrainedModel.FromPretrained(dir, architecture);
        var encodings = tokenizer.EncodeBatch(Texts);
        var batch = tokenizer.Pad(encodings, new EncodeOptions { Padding = PaddingStrategy.Longest });
        var together = model.Forward(ModelInputs.FromEncodings(batch));
        int s = batch[0].Length, h = model.Config.HiddenSize, labels = model.Config.NumLabels;
        Assert.True(encodings.Select(e => e.Length).Distinct().Count() >= 4, "the texts are padded by different amounts");
        for (int i = 0; i < Texts.Length; i++)
        {
            var alone = model.Forward(ModelInputs.FromEncodings([encodings[i]]));
            int n = encodings[i].Length;
            Assert.Equal(Bits(alone.LastHiddenState!.Data), Bits(together.LastHiddenState!.Data.AsSpan(i * s * h, n * h)));
            if (architecture == BertArchitecture.BertForSequenceClassification)
                Assert.Equal(Bits(alone.Logits!.Data), Bits(together.Logits!.Data.AsSpan(i * labels, labels)));
        }
    }
}
