using System.Text.Json.Nodes;
using NBert.Tokenization;
using static NBert.Tests.Tokenization.GoldenChecks;

namespace NBert.Tests.Tokenization;

/// <summary>
/// Every case of <c>bpe/goldens.json</c>: a byte-level BPE trained by Hugging Face's Rust tokenizers (npm
/// <c>tokenizers</c> 0.23.2, <c>tools/BpeGoldens</c>) and its encodings, compared field by field: ids, tokens, type ids,
/// offsets (code points in the golden, UTF-16 here), word and sequence ids, attention and special-tokens masks, every
/// overflowing window, and decoding.
/// </summary>
public class ByteLevelBpeParityTests
{
    private static readonly JsonNode Goldens = Fixtures.Json("bpe", "goldens.json");
    /// <summary>The three tokenizer.json variants, and roberta's vocab.json + merges.txt + tokenizer_config.json.</summary>
    public static readonly TheoryData<string> Variants = ["roberta", "prefix_space", "untrimmed", VocabAndMerges];
    private const string VocabAndMerges = "vocab.json+merges.txt";
    /// <summary>Variants with singles only: byte chars missing from the vocabulary, unknown (fused, and ignore_merges on) or
    /// dropped; and roberta-base's normalized special tokens.</summary>
    public static readonly TheoryData<string> SinglesOnly = ["unk_fused", "dropped", "normalized_specials"];

    private static BertTokenizer Load(string variant) =>
        BertTokenizer.FromPretrained(variant == VocabAndMerges ? Fixtures.Path("bpe") : Fixtures.Path("bpe", variant));
    private static JsonNode Variant(string variant) => Goldens["variants"]![variant == VocabAndMerges ? "roberta" : variant]!;

    [Fact]
    public void The_fixture_is_a_2000_id_byte_level_BPE()
    {
        var tokenizer = Load("roberta");
        var bpe = Assert.IsType<BytePairEncoding>(tokenizer.Model);
        Assert.Equal((int)Goldens["vocab_size"]!, tokenizer.VocabSize);
        Assert.Equal((int)Goldens["merges"]!, bpe.Merges.Count);
        Assert.Equal(("<s>", "</s>", "<pad>", "<mask>", "<unk>"), (tokenizer.ClsToken, tokenizer.SepToken, tokenizer.PadToken, tokenizer.MaskToken, tokenizer.UnkToken));
        Assert.Equal(1, tokenizer.PadTokenId);
        // The older merges layout ("a b" strings) and merges.txt load to the same merges, vocab.json to the same vocabulary.
        Assert.Equal(bpe.Merges, Assert.IsType<BytePairEncoding>(Load("prefix_space").Model).Merges);
        var files = Load(VocabAndMerges);
        Assert.Equal(bpe.Merges, Assert.IsType<BytePairEncoding>(files.Model).Merges);
        Assert.Equal(bpe.Vocab.OrderBy(e => e.Value), files.Model.Vocab.OrderBy(e => e.Value));
        Assert.Equal(512, files.ModelMaxLength);
        Assert.Equal(tokenizer.AddedTokens, files.AddedTokens);
    }

    [Theory, MemberData(nameof(Variants)), MemberData(nameof(SinglesOnly))]
    public void Singles_match_with_and_without_special_tokens_and_decode_alike(string variant)
    {
        var tokenizer = Load(variant);
        var failures = new List<string>();
        var singles = Variant(variant)["single"]!.AsArray();
        Assert.Equal(40, singles.Count);
        foreach (var c in singles)
        {
            string text = (string)c!["text"]!;
            var e = tokenizer.Encode(text);
            Compare(failures, Label(text), e, c, text, null);
            Check(failures, Label(text), "decoded", (string)c["decoded"]!, tokenizer.Decode(e.InputIds));
            Check(failures, Label(text), "decoded_skip", (string)c["decoded_skip"]!, tokenizer.Decode(e.InputIds, skipSpecialTokens: true));
        }
        foreach (var c in Variant(variant)["no_special"]!.AsArray())
        {
            string text = (string)c!["text"]!;
            Compare(failures, "no special tokens: " + Label(text), tokenizer.Encode(text, options: new EncodeOptions { AddSpecialTokens = false }), c, text, null);
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Theory, MemberData(nameof(Variants))]
    public void Pairs_match_for_each_truncation_strategy_or_fail_as_Hugging_Face_does(string variant)
    {
        var tokenizer = Load(variant);
        var failures = new List<string>();
        var pairs = Variant(variant)["pairs"]!.AsArray();
        Assert.Equal(84, pairs.Count);
        int errors = 0;
        foreach (var c in pairs)
        {
            string a = (string)c!["a"]!, b = (string)c["b"]!;
            var options = new EncodeOptions
            {
                AddSpecialTokens = c["add_special_tokens"] is not { } add || (bool)add,
                Truncation = Strategy((string?)c["truncation"]),
                MaxLength = (int?)c["max_length"],
                Padding = c["max_length"] is null ? PaddingStrategy.None : PaddingStrategy.MaxLength,
            };
            string label = $"{c["truncation"]} {c["max_length"]} ({Label(a)} | {Label(b)})";
            if (c["error"] is not null)
            {
                errors++;
                var ex = Record.Exception(() => tokenizer.Encode(a, b, options));
                if (ex is not ArgumentException) failures.Add($"{label}: expected an ArgumentException, got {ex?.GetType().Name ?? "none"}");
                continue;
            }
            Compare(failures, label, tokenizer.Encode(a, b, options), c, a, b);
        }
        Assert.True(errors > 0, "some pairs must be too long for only_first / only_second");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Theory, MemberData(nameof(Variants))]
    public void A_batch_pads_to_its_longest_with_the_pad_token(string variant)
    {
        var tokenizer = Load(variant);
        var batch = Variant(variant)["batch"]!;
        var texts = batch["texts"]!.AsArray().Select(x => (string)x!).ToArray();
        var encodings = tokenizer.EncodeBatch(texts, new EncodeOptions
        {
            Truncation = TruncationStrategy.LongestFirst, MaxLength = (int)batch["max_length"]!, Padding = PaddingStrategy.Longest,
        });
        var failures = new List<string>();
        for (int i = 0; i < texts.Length; i++) Compare(failures, Label(texts[i]), encodings[i], batch["encodings"]![i]!, texts[i], null);
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Theory, MemberData(nameof(Variants))]
    public void Stride_windows_match_every_overflowing_window(string variant)
    {
        var tokenizer = Load(variant);
        var failures = new List<string>();
        foreach (var c in Variant(variant)["overflow"]!.AsArray())
        {
            string a = (string)c!["a"]!;
            string? b = (string?)c["b"];
            var e = tokenizer.Encode(a, b, new EncodeOptions
            {
                Truncation = Strategy((string)c["truncation"]!), MaxLength = (int)c["max_length"]!, Stride = (int)c["stride"]!,
                TruncationSide = (string)c["direction"]! == "left" ? TruncationSide.Left : TruncationSide.Right,
                ReturnOverflowingTokens = true, Padding = PaddingStrategy.MaxLength,
            });
            string label = $"{c["truncation"]} {c["max_length"]}/{c["stride"]} {c["direction"]} ({Label(a)} | {Label(b ?? "")})";
            var expected = c["overflowing"]!.AsArray();
            Assert.True(expected.Count > 0, label);
            Check(failures, label, "windows", expected.Count, e.Overflowing.Count);
            Compare(failures, label + " window 0", e, c, a, b);
            for (int w = 0; w < Math.Min(expected.Count, e.Overflowing.Count); w++)
                Compare(failures, $"{label} window {w + 1}", e.Overflowing[w], expected[w]!, a, b);
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    internal static TruncationStrategy? Strategy(string? name) => name switch
    {
        null => null,
        "longest_first" => TruncationStrategy.LongestFirst,
        "only_first" => TruncationStrategy.OnlyFirst,
        "only_second" => TruncationStrategy.OnlySecond,
        var other => throw new InvalidOperationException(other),
    };

    private static string Label(string text) => text.Length > 40 ? System.Text.Json.JsonSerializer.Serialize(text[..40]) + "..." : System.Text.Json.JsonSerializer.Serialize(text);

    /// <summary>Every field of one encoding.</summary>
    internal static void Compare(List<string> failures, string label, TokenEncoding e, JsonNode expected, string a, string? b)
    {
        Check(failures, label, "input_ids", Fixtures.Ints(expected["input_ids"]), e.InputIds);
        Check(failures, label, "token_type_ids", Fixtures.Ints(expected["token_type_ids"]), e.TokenTypeIds);
        Check(failures, label, "attention_mask", Fixtures.Ints(expected["attention_mask"]), e.AttentionMask);
        Check(failures, label, "special_tokens_mask", Fixtures.Ints(expected["special_tokens_mask"]), e.SpecialTokensMask);
        int?[] Nullable(string field) => expected[field]!.AsArray().Select(x => x is null ? (int?)null : (int)x).ToArray();
        var sequenceIds = Nullable("sequence_ids");
        Check(failures, label, "sequence_ids", sequenceIds, e.SequenceIds);
        Check(failures, label, "word_ids", Nullable("word_ids"), e.WordIds);
        Check(failures, label, "tokens", expected["tokens"]!.AsArray().Select(x => (string)x!).ToArray(), e.Tokens);
        var offsets = expected["offsets"]!.AsArray();
        var converted = new (int, int)[offsets.Count];
        for (int i = 0; i < offsets.Count; i++)
        {
            int start = (int)offsets[i]![0]!, end = (int)offsets[i]![1]!;
            converted[i] = sequenceIds[i] is null ? (start, end) : Fixtures.CodePointsToUtf16(sequenceIds[i] == 1 ? b! : a, start, end);
        }
        Check(failures, label, "offsets", converted, e.Offsets);
    }
}
