using System.Text.Json.Nodes;
using NBert.Tokenization;
using static NBert.Tests.Tokenization.GoldenChecks;

namespace NBert.Tests.Tokenization;

/// <summary>Every case of <c>tokenizer/goldens.json</c> (transformers 5.17 / tokenizers 0.23.2), identical.</summary>
public class TokenizerParityTests
{
    private static readonly JsonNode Goldens = Fixtures.Json("tokenizer", "goldens.json");
    public static readonly TheoryData<string> Variants = ["uncased", "cased", "uncased_keep_accents", "uncased_no_cjk_split"];

    internal static BertTokenizer ForVariant(string variant)
    {
        var o = Goldens["variants"]![variant]!["options"]!;
        var options = new BertTokenizerOptions
        {
            DoLowerCase = (bool)o["do_lower_case"]!,
            StripAccents = o["strip_accents"] is { } s ? (bool?)s : null,
            TokenizeChineseChars = o["tokenize_chinese_chars"] is { } c ? (bool)c : true,
        };
        return BertTokenizer.FromVocabFile(Fixtures.Path("tokenizer", "vocab.txt"), options);
    }

    [Theory, MemberData(nameof(Variants))]
    public void Singles_match_ids_tokens_offsets_types_and_decoding(string variant)
    {
        var tokenizer = ForVariant(variant);
        var cases = Goldens["variants"]![variant]!["single"]!.AsArray();
        Assert.Equal(40, cases.Count);
        var failures = new List<string>();
        foreach (var c in cases)
        {
            string text = (string)c!["text"]!;
            var e = tokenizer.Encode(text);
            Compare(failures, text, e, c, text, null);
            Check(failures, text, "tokens", c["tokens"]!.AsArray().Select(x => (string)x!).ToArray(), e.Tokens);
            Check(failures, text, "decoded", (string)c["decoded"]!, tokenizer.Decode(e.InputIds, skipSpecialTokens: true));
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Theory, MemberData(nameof(Variants))]
    public void Pairs_match_for_each_truncation_strategy_or_fail_as_Hugging_Face_does(string variant)
    {
        var tokenizer = ForVariant(variant);
        var cases = Goldens["variants"]![variant]!["pairs"]!.AsArray();
        Assert.Equal(60, cases.Count);
        var failures = new List<string>();
        foreach (var c in cases)
        {
            string a = (string)c!["a"]!, b = (string)c["b"]!;
            var strategy = (string)c["truncation"]! switch
            {
                "longest_first" => TruncationStrategy.LongestFirst,
                "only_first" => TruncationStrategy.OnlyFirst,
                "only_second" => TruncationStrategy.OnlySecond,
                var other => throw new InvalidOperationException(other),
            };
            var options = new EncodeOptions { MaxLength = (int)c["max_length"]!, Truncation = strategy, Padding = PaddingStrategy.MaxLength };
            string label = $"{c["truncation"]} ({a} | {b})";
            if (c["error"] is not null)
            {
                var ex = Record.Exception(() => tokenizer.Encode(a, b, options));
                if (ex is not ArgumentException) failures.Add($"{label}: expected an ArgumentException, got {ex?.GetType().Name ?? "none"}");
                continue;
            }
            var e = tokenizer.Encode(a, b, options);
            Compare(failures, label, e, c, a, b);
            Check(failures, label, "attention_mask", Fixtures.Ints(c["attention_mask"]), e.AttentionMask);
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Theory, MemberData(nameof(Variants))]
    public void Padded_batch_matches(string variant)
    {
        var tokenizer = ForVariant(variant);
        var batch = Goldens["variants"]![variant]!["batch"]!;
        var texts = batch["texts"]!.AsArray().Select(x => (string)x!).ToArray();
        var encodings = tokenizer.EncodeBatch(texts, new EncodeOptions
        {
            Truncation = TruncationStrategy.LongestFirst, MaxLength = (int)batch["max_length"]!, Padding = PaddingStrategy.Longest,
        });
        for (int i = 0; i < texts.Length; i++)
        {
            Assert.Equal(Fixtures.Ints(batch["input_ids"]![i]), encodings[i].InputIds);
            Assert.Equal(Fixtures.Ints(batch["attention_mask"]![i]), encodings[i].AttentionMask);
            Assert.Equal(Fixtures.Ints(batch["token_type_ids"]![i]), encodings[i].TokenTypeIds);
        }
    }

    public static readonly TheoryData<string> Sources = ["tokenizer.json", "vocab.txt"];

    /// <summary>
    /// The golden's windows come from tokenizers 0.23.2, whose truncation early exit (0.23.1+, tokenizers
    /// issue #2091, fix in PR #2098) stops tokenizing each text once max_length tokens exist, so its
    /// overflow ends after 64 context tokens although the context is 1,692 characters long. NBert keeps
    /// the documented behaviour (0.22.2 and the fix): windows cover the whole context. So the golden is
    /// compared exactly where that regression cannot reach (the first window, and the second window over
    /// every context token Hugging Face produced), and every window is checked against the context
    /// tokenized alone, cut into windows of the room left, each starting room - stride after the last.
    /// </summary>
    [Theory, MemberData(nameof(Sources))]
    public void Stride_windows_match_Hugging_Face_and_cover_the_whole_context(string source)
    {
        var tokenizer = source == "tokenizer.json"
            ? BertTokenizer.FromPretrained(Fixtures.Path("tokenizer", "saved_uncased"))
            : BertTokenizer.FromVocabFile(Fixtures.Path("tokenizer", "vocab.txt"));
        var o = Goldens["overflow"]!;
        string question = (string)o["question"]!, context = (string)o["context"]!;
        int maxLength = (int)o["max_length"]!, stride = (int)o["stride"]!;
        var e = tokenizer.Encode(question, context, new EncodeOptions
        {
            MaxLength = maxLength, Stride = stride, ReturnOverflowingTokens = true, Truncation = TruncationStrategy.OnlySecond, Padding = PaddingStrategy.MaxLength,
        });
        var windows = new[] { e }.Concat(e.Overflowing).ToArray();

        // 1. Hugging Face's windows, token for token, up to where its regression stopped tokenizing.
        var failures = new List<string>();
        var golden = o["input_ids"]!.AsArray();
        Assert.Equal(2, golden.Count);
        for (int w = 0; w < golden.Count; w++)
        {
            var seq = o["sequence_ids"]![w]!.AsArray().Select(x => x is null ? (int?)null : (int)x).ToArray();
            int n = w == 0 ? seq.Length : Array.FindLastIndex(seq, s => s == 1) + 1; // window 2: its context part
            JsonArray Head(string field) => new(o[field]![w]!.AsArray().Take(n).Select(x => x?.DeepClone()).ToArray());
            var expected = new JsonObject
            {
                ["input_ids"] = Head("input_ids"), ["token_type_ids"] = Head("token_type_ids"),
                ["offsets"] = Head("offsets"), ["sequence_ids"] = Head("sequence_ids"),
            };
            Compare(failures, $"window {w}", Prefix(windows[w], n), expected, question, context);
            if (w == 0) Check(failures, "window 0", "attention_mask", Fixtures.Ints(o["attention_mask"]![0]), windows[0].AttentionMask);
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));

        // 2. All windows: [CLS] question [SEP] context[start..start+room) [SEP], start stepping by room - stride.
        var q = tokenizer.Encode(question, options: new EncodeOptions { AddSpecialTokens = false });
        var c = tokenizer.Encode(context, options: new EncodeOptions { AddSpecialTokens = false });
        int room = maxLength - 3 - q.Length;
        int expectedWindows = 1 + (int)Math.Ceiling((c.Length - room) / (double)(room - stride));
        Assert.True(expectedWindows > 2, "the context must span several windows");
        Assert.Equal(expectedWindows, windows.Length);
        for (int w = 0; w < windows.Length; w++)
        {
            int start = w * (room - stride), count = Math.Min(room, c.Length - start);
            var win = windows[w];
            Assert.Equal(maxLength, win.Length);
            Assert.Equal([101, .. q.InputIds, 102, .. c.InputIds.AsSpan(start, count).ToArray(), 102], win.InputIds.Take(q.Length + count + 3));
            Assert.Equal(c.Offsets.AsSpan(start, count).ToArray(), win.Offsets.Skip(q.Length + 2).Take(count));
            Assert.All(win.SequenceIds.Skip(q.Length + 2).Take(count), s => Assert.Equal(1, s));
            Assert.All(win.TokenTypeIds.Skip(q.Length + 2).Take(count + 1), t => Assert.Equal(1, t));
            Assert.All(win.AttentionMask.Skip(q.Length + count + 3), m => Assert.Equal(0, m));
        }
        // The windows together cover the context: its last token is in the last window.
        Assert.Contains(c.Offsets[^1], windows[^1].Offsets);
    }

    [Fact]
    public void Saved_tokenizer_json_agrees_with_the_vocab_txt_tokenizer_on_every_golden_text()
    {
        var fromJson = BertTokenizer.FromPretrained(Fixtures.Path("tokenizer", "saved_uncased"));
        Assert.Equal(512, fromJson.ModelMaxLength);
        var failures = new List<string>();
        foreach (var c in Goldens["variants"]!["uncased"]!["single"]!.AsArray())
        {
            string text = (string)c!["text"]!;
            var e = fromJson.Encode(text);
            Compare(failures, text, e, c, text, null);
            Check(failures, text, "decoded", (string)c["decoded"]!, fromJson.Decode(e.InputIds, skipSpecialTokens: true));
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    /// <summary>The first <paramref name="n"/> tokens of an encoding, as an encoding of their own.</summary>
    private static TokenEncoding Prefix(TokenEncoding e, int n) => new(e.InputIds[..n], e.TokenTypeIds[..n], e.AttentionMask[..n],
        e.Tokens[..n], e.Offsets[..n], e.WordIds[..n], e.SequenceIds[..n], e.SpecialTokensMask[..n]);

    /// <summary>Compares ids, type ids, offsets (converted from code points) and, when given, sequence ids.</summary>
    internal static void Compare(List<string> failures, string label, TokenEncoding e, JsonNode expected, string a, string? b)
    {
        Check(failures, label, "input_ids", Fixtures.Ints(expected["input_ids"]), e.InputIds);
        Check(failures, label, "token_type_ids", Fixtures.Ints(expected["token_type_ids"]), e.TokenTypeIds);
        var sequenceIds = expected["sequence_ids"]?.AsArray().Select(x => x is null ? (int?)null : (int)x).ToArray();
        if (sequenceIds is not null) Check(failures, label, "sequence_ids", sequenceIds, e.SequenceIds);
        var offsets = expected["offsets"]!.AsArray();
        var converted = new (int, int)[offsets.Count];
        for (int i = 0; i < offsets.Count; i++)
        {
            int start = (int)offsets[i]![0]!, end = (int)offsets[i]![1]!;
            // For a pair, the expected sequence id (else type id) says which text the offsets point into.
            bool second = b is not null && (sequenceIds is not null ? sequenceIds[i] == 1 : (int)expected["token_type_ids"]![i]! == 1);
            converted[i] = start == 0 && end == 0 ? (0, 0) : Fixtures.CodePointsToUtf16(second ? b! : a, start, end);
        }
        Check(failures, label, "offsets", converted, e.Offsets);
    }
}
