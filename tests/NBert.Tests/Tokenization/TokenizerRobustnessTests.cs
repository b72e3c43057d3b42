using System.Text;
using CsCheck;
using NBert.Tokenization;

namespace NBert.Tests.Tokenization;

/// <summary>Text a user may really send: empty, odd, broken or huge. Nothing throws; offsets stay sane.</summary>
public class TokenizerRobustnessTests
{
    private static readonly BertTokenizer Uncased = BertTokenizer.FromVocabFile(Fixtures.Path("tokenizer", "vocab.txt"));
    private static readonly BertTokenizer Cased = BertTokenizer.FromVocabFile(Fixtures.Path("tokenizer", "vocab.txt"),
        new BertTokenizerOptions { DoLowerCase = false });

    [Theory]
    [InlineData("")]
    [InlineData(" ")]
    [InlineData(" \t\r\n\u00A0\u3000\u2028 ")]
    [InlineData("\0\u0001\u0007\u200b\u200d\uFFFD")]
    public void Empty_whitespace_and_control_only_text_gives_just_the_special_tokens(string text)
    {
        var e = Uncased.Encode(text);
        Assert.Equal([101, 102], e.InputIds);
        Assert.Equal([(0, 0), (0, 0)], e.Offsets);
        Assert.Equal("", Uncased.Decode(e.InputIds, skipSpecialTokens: true));
    }

    [Fact]
    public void Control_characters_inside_words_are_dropped_and_offsets_skip_them()
    {
        const string text = "control\u0000chars\u0001here\u0007";
        var e = Uncased.Encode(text, options: new EncodeOptions { AddSpecialTokens = false });
        Assert.Equal("controlcharshere", Uncased.Decode(e.InputIds).Replace(" ", "").Replace("##", ""));
        Assert.Equal(0, e.Offsets[0].Start);
        Assert.Equal(text.Length - 1, e.Offsets[^1].End); // the trailing BEL is not part of the last token
    }

    // By index: xunit serialises a lone surrogate as U+FFFD, which would make two cases one.
    private static readonly string[] BrokenTexts = ["abc\uD800def", "abc\uDC00def", "\uD83D", "x\uDE00\uD83D"];

    [Theory]
    [InlineData(0)] // lone high surrogate
    [InlineData(1)] // lone low surrogate
    [InlineData(2)] // truncated emoji
    [InlineData(3)] // reversed pair
    public void Lone_surrogates_are_treated_as_invalid_text_and_removed(int index)
    {
        string text = BrokenTexts[index];
        foreach (var tokenizer in new[] { Uncased, Cased })
        {
            var e = tokenizer.Encode(text, options: new EncodeOptions { AddSpecialTokens = false });
            foreach (var (start, end) in e.Offsets) Assert.DoesNotContain(text[start..end], c => char.IsSurrogate(c));
            Assert.Equal(text.Count(c => !char.IsSurrogate(c)) > 0, e.Length > 0);
        }
    }

    [Fact]
    public void An_emoji_keeps_both_halves_of_its_surrogate_pair_in_one_token()
    {
        const string text = "I love 😀 it";
        var e = Uncased.Encode(text, options: new EncodeOptions { AddSpecialTokens = false });
        Assert.Equal(["i", "love", "[UNK]", "it"], e.Tokens);
        Assert.Equal("😀", text[e.Offsets[2].Start..e.Offsets[2].End]);
    }

    [Fact]
    public void A_ten_megabyte_text_is_tokenized_whole()
    {
        const string paragraph = "The quick brown fox jumps over the lazy dog. Café au lait, naïve résumé — déjà vu! 日本語 😀 ";
        int perParagraph = Uncased.Encode(paragraph, options: new EncodeOptions { AddSpecialTokens = false }).Length;
        int copies = 10_000_000 / paragraph.Length + 1;
        var text = new StringBuilder(paragraph.Length * copies).Insert(0, paragraph, copies).ToString();
        Assert.True(text.Length >= 10_000_000);
        var e = Uncased.Encode(text);
        Assert.Equal(perParagraph * copies + 2, e.Length);
        Assert.Equal(e.InputIds.AsSpan(1, perParagraph).ToArray(), e.InputIds.AsSpan(1 + perParagraph * (copies - 1), perParagraph).ToArray());
        Assert.Equal(text.Length - paragraph.Length, e.Offsets[1 + perParagraph * (copies - 1)].Start);
    }

    /// <summary>Pieces that stress every step: any UTF-16 unit (lone surrogates too), any code point,
    /// and hand-picked troublemakers (special-token fragments, combining marks, CJK, zero-width).</summary>
    private static readonly Gen<string> Piece = Gen.OneOf(
        Gen.Char.Select(c => c.ToString()),
        Gen.Int[0, 0x10FFFF].Where(cp => cp is < 0xD800 or > 0xDFFF).Select(char.ConvertFromUtf32),
        Gen.Char['a', 'z'].Select(c => c.ToString()),
        Gen.OneOf(" ", "\t", "\r\n", "\0", "[MASK]", "[CLS", "SEP]", "##", "é", "e\u0301", "\u0130", "日本",
            "😀", "\u200b", "\uFFFE", "ﬁ", "Ⅻ", "𝔘𝔫𝔦", "ǅ", "ß", "ﷺ", "a".PadRight(120, 'b')));

    private static readonly Gen<string> RandomText = Piece.Array[0, 40].Select(string.Concat);

    [Fact]
    public void Random_unicode_never_throws_and_offsets_stay_inside_and_ordered()
    {
        RandomText.Select(RandomText).Sample((a, b) =>
        {
            foreach (var tokenizer in new[] { Uncased, Cased })
            {
                CheckEncoding(tokenizer, tokenizer.Encode(a), a, null);
                CheckEncoding(tokenizer, tokenizer.Encode(a, b), a, b);
                var windows = tokenizer.Encode(a, b, new EncodeOptions { MaxLength = 16, Stride = 2, Truncation = TruncationStrategy.LongestFirst, ReturnOverflowingTokens = true });
                foreach (var w in windows.Overflowing.Prepend(windows))
                {
                    Assert.True(w.Length <= 16);
                    CheckEncoding(tokenizer, w, a, b);
                }
                _ = tokenizer.Decode(tokenizer.Encode(a).InputIds, skipSpecialTokens: true);
            }
        }, iter: 1500);
    }

    private static void CheckEncoding(BertTokenizer tokenizer, TokenEncoding e, string a, string? b)
    {
        var last = new (int Start, int End)[2];
        for (int i = 0; i < e.Length; i++)
        {
            Assert.InRange(e.InputIds[i], 0, tokenizer.VocabSize - 1);
            if (e.SequenceIds[i] is not int seq) { Assert.Equal((0, 0), e.Offsets[i]); continue; }
            string text = seq == 0 ? a : b!;
            var (start, end) = e.Offsets[i];
            Assert.InRange(start, 0, text.Length);
            Assert.InRange(end, start + 1, text.Length);
            // Non-decreasing within one text (pieces from one source character, such as the jamo of a
            // Hangul syllable, share its offsets).
            Assert.True(start >= last[seq].Start && end >= last[seq].End, $"offsets ({start}, {end}) after {last[seq]}");
            last[seq] = (start, end);
        }
    }
}
