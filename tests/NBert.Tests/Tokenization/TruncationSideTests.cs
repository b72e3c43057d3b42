using NBert.Tokenization;

namespace NBert.Tests.Tokenization;

/// <summary>Left truncation (transformers' <c>truncation_side="left"</c>, tokenizers' <c>TruncationDirection::Left</c>):
/// a text keeps its end, and stride windows walk back from the end to the start.</summary>
public class TruncationSideTests
{
    private static readonly BertTokenizer Uncased = BertTokenizer.FromVocabFile(Fixtures.Path("tokenizer", "vocab.txt"));

    private static string Text(TokenEncoding e) => string.Join(" ", e.Tokens);

    [Fact]
    public void Left_truncation_keeps_the_end_of_the_text()
    {
        var options = new EncodeOptions { MaxLength = 5, TruncationSide = TruncationSide.Left };
        Assert.Equal("[CLS] five six seven [SEP]", Text(Uncased.Encode("one two three four five six seven", options: options)));
        Assert.Equal("[CLS] one two three [SEP]", Text(Uncased.Encode("one two three four five six seven", options: options with { TruncationSide = TruncationSide.Right })));
        // Offsets still index the text: the kept tokens are its last three words.
        var e = Uncased.Encode("one two three four five six seven", options: options);
        Assert.Equal("five", "one two three four five six seven"[e.Offsets[1].Start..e.Offsets[1].End]);
    }

    [Fact]
    public void Left_stride_windows_walk_back_from_the_end_and_cover_the_start()
    {
        var options = new EncodeOptions { MaxLength = 5, Stride = 1, TruncationSide = TruncationSide.Left, ReturnOverflowingTokens = true };
        var e = Uncased.Encode("one two three four five six seven", options: options);
        Assert.Equal("[CLS] five six seven [SEP]", Text(e));
        // Room for 3 tokens, each window ending 3 - 1 = 2 tokens before the last, the last one starting at the text's start.
        Assert.Equal(["[CLS] three four five [SEP]", "[CLS] one two three [SEP]"], e.Overflowing.Select(Text));
    }

    [Fact]
    public void Left_truncation_of_a_pair_keeps_the_end_of_each_text()
    {
        var options = new EncodeOptions { MaxLength = 9, Truncation = TruncationStrategy.LongestFirst, TruncationSide = TruncationSide.Left };
        // 4 + 6 tokens into 6: longest_first leaves 3 and 3, each from its end.
        Assert.Equal("[CLS] two three four [SEP] d e f [SEP]", Text(Uncased.Encode("one two three four", "a b c d e f", options)));
        var onlySecond = options with { Truncation = TruncationStrategy.OnlySecond };
        Assert.Equal("[CLS] one two three four [SEP] e f [SEP]", Text(Uncased.Encode("one two three four", "a b c d e f", onlySecond)));
    }
}
