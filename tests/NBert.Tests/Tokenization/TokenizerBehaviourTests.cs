using NBert.Tokenization;

namespace NBert.Tests.Tokenization;

/// <summary>Behaviour that the goldens do not spell out: loading, options, errors, word ids, batches.</summary>
public class TokenizerBehaviourTests
{
    private static readonly BertTokenizer Uncased = BertTokenizer.FromVocabFile(Fixtures.Path("tokenizer", "vocab.txt"));

    [Fact]
    public void Mask_written_in_the_text_is_the_mask_token()
    {
        var e = Uncased.Encode("My dog is [MASK].");
        Assert.Equal([101, 2026, 3899, 2003, 103, 1012, 102], e.InputIds);
        Assert.Equal("[MASK]", "My dog is [MASK]."[e.Offsets[4].Start..e.Offsets[4].End]);
        // Special tokens are matched case-sensitively in the raw text, as Hugging Face does.
        Assert.DoesNotContain(103, Uncased.Encode("My dog is [mask].").InputIds);
    }

    [Fact]
    public void Word_ids_and_sequence_ids_follow_words_and_texts()
    {
        var e = Uncased.Encode("unaffable dogs", "[MASK] here");
        Assert.Equal(["[CLS]", "una", "##ffa", "##ble", "dogs", "[SEP]", "[MASK]", "here", "[SEP]"], e.Tokens);
        Assert.Equal([null, 0, 0, 0, 1, null, 0, 1, null], e.WordIds);
        Assert.Equal([null, 0, 0, 0, 0, null, 1, 1, null], e.SequenceIds);
        Assert.Equal([1, 0, 0, 0, 0, 1, 0, 0, 1], e.SpecialTokensMask);
        Assert.Equal([0, 0, 0, 0, 0, 0, 1, 1, 1], e.TokenTypeIds);
    }

    [Fact]
    public void Without_special_tokens_only_the_text_is_encoded()
    {
        var e = Uncased.Encode("Hello, World!", options: new EncodeOptions { AddSpecialTokens = false });
        Assert.Equal(["hello", ",", "world", "!"], e.Tokens);
        Assert.Equal(e.Tokens, Uncased.Tokenize("Hello, World!"));
        var truncated = Uncased.Encode("Hello, World!", options: new EncodeOptions { AddSpecialTokens = false, MaxLength = 2 });
        Assert.Equal(["hello", ","], truncated.Tokens); // no room kept for special tokens
    }

    [Fact]
    public void Max_length_alone_truncates_longest_first_as_transformers_does()
    {
        var e = Uncased.Encode("The quick brown fox jumps over the lazy dog.", options: new EncodeOptions { MaxLength = 5 });
        Assert.Equal(["[CLS]", "the", "quick", "brown", "[SEP]"], e.Tokens);
        var none = Uncased.Encode("The quick brown fox", options: new EncodeOptions { MaxLength = 3, Truncation = TruncationStrategy.None });
        Assert.Equal(6, none.Length);
    }

    [Fact]
    public void Padding_to_a_multiple_and_to_the_longest_of_a_batch()
    {
        var e = Uncased.Encode("Hello, World!", options: new EncodeOptions { Padding = PaddingStrategy.Longest, PadToMultipleOf = 8 });
        Assert.Equal(8, e.Length);
        Assert.Equal([1, 1, 1, 1, 1, 1, 0, 0], e.AttentionMask);
        Assert.Equal("[PAD]", e.Tokens[^1]);
        Assert.Equal((0, 0), e.Offsets[^1]);
        Assert.Null(e.WordIds[^1]);
        var batch = Uncased.EncodeBatch(["a", "a b c d"], new EncodeOptions { Padding = PaddingStrategy.Longest });
        Assert.All(batch, x => Assert.Equal(6, x.Length));
    }

    [Fact]
    public void Batch_on_all_cores_equals_one_by_one()
    {
        var texts = Enumerable.Range(0, 500).Select(i => $"Sentence number {i}: naïve café, 日本語 {i * 7919}!").ToArray();
        var batch = Uncased.EncodeBatch(texts);
        for (int i = 0; i < texts.Length; i++)
        {
            var single = Uncased.Encode(texts[i]);
            Assert.Equal(single.InputIds, batch[i].InputIds);
            Assert.Equal(single.Offsets, batch[i].Offsets);
        }
    }

    [Fact]
    public void Impossible_truncation_and_bad_options_say_why()
    {
        var ex = Assert.Throws<ArgumentException>(() => Uncased.Encode("one two three four five six", "x",
            new EncodeOptions { MaxLength = 6, Truncation = TruncationStrategy.OnlySecond }));
        Assert.Contains("only_second", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => Uncased.Encode("one two three four five six",
            options: new EncodeOptions { MaxLength = 6, Truncation = TruncationStrategy.OnlySecond }));
        Assert.Contains("second text", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => Uncased.Encode("one two three four five six seven",
            options: new EncodeOptions { MaxLength = 6, Stride = 4 }));
        Assert.Contains("stride", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => Uncased.Encode("one", "two", new EncodeOptions { MaxLength = 2 }));
        Assert.Contains("special tokens", ex.Message);
    }

    [Fact]
    public void Stride_on_a_single_text_gives_overlapping_windows()
    {
        var e = Uncased.Encode("a b c d e f g h i j", options: new EncodeOptions { MaxLength = 6, Stride = 1, ReturnOverflowingTokens = true });
        string[][] windows = [e.Tokens, .. e.Overflowing.Select(o => o.Tokens)];
        Assert.Equal([["[CLS]", "a", "b", "c", "d", "[SEP]"], ["[CLS]", "d", "e", "f", "g", "[SEP]"],
            ["[CLS]", "g", "h", "i", "j", "[SEP]"]], windows);
    }

    [Fact]
    public void Overflowing_windows_are_kept_only_when_asked_for_as_in_transformers()
    {
        var options = new EncodeOptions { MaxLength = 6, Stride = 1 };
        Assert.Empty(Uncased.Encode("a b c d e f g h i j", options: options).Overflowing);
        Assert.Equal(2, Uncased.Encode("a b c d e f g h i j", options: options with { ReturnOverflowingTokens = true }).Overflowing.Count);
        // Without a stride, the rest is cut into windows that do not overlap.
        var plain = Uncased.Encode("a b c d e f g h i j", options: new EncodeOptions { MaxLength = 6, ReturnOverflowingTokens = true });
        Assert.Equal(["[CLS]", "e", "f", "g", "h", "[SEP]"], plain.Overflowing[0].Tokens);
    }

    [Fact]
    public void Over_long_words_become_unknown_and_decoding_merges_pieces()
    {
        var tokenizer = BertTokenizer.FromVocabulary(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "it", "'", "s"],
            new BertTokenizerOptions { MaxInputCharsPerWord = 10 });
        Assert.Equal(["un", "##aff", "##able"], tokenizer.Tokenize("unaffable"));
        Assert.Equal(["[UNK]"], tokenizer.Tokenize("unaffableunaffable")); // 18 chars > 10
        Assert.Equal(["[UNK]"], tokenizer.Tokenize("unx")); // no complete split
        // The decoder's clean-up works per token, so " ' s" stays (as in Hugging Face's golden "isn ' t").
        Assert.Equal("unaffable it ' s", tokenizer.Decode(tokenizer.Encode("unaffable it's").InputIds, skipSpecialTokens: true));
        Assert.Equal("[CLS] unaffable [SEP]", tokenizer.Decode(tokenizer.Encode("unaffable").InputIds));
    }

    [Fact]
    public void Vocab_with_crlf_line_ends_loads_like_lf()
    {
        string dir = Directory.CreateTempSubdirectory("nbert-crlf-").FullName;
        try
        {
            string lf = File.ReadAllText(Fixtures.Path("tokenizer", "vocab.txt"));
            File.WriteAllText(Path.Combine(dir, "vocab.txt"), lf.Replace("\n", "\r\n"));
            var crlf = BertTokenizer.FromPretrained(dir);
            Assert.Equal(Uncased.VocabSize, crlf.VocabSize);
            Assert.Equal(Uncased.Encode("Café au lait, naïve résumé").InputIds, crlf.Encode("Café au lait, naïve résumé").InputIds);
            Assert.Equal("[PAD]", crlf.IdToToken(0));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Tokenizer_config_options_are_read()
    {
        string dir = Directory.CreateTempSubdirectory("nbert-config-").FullName;
        try
        {
            File.Copy(Fixtures.Path("tokenizer", "vocab.txt"), Path.Combine(dir, "vocab.txt"));
            File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"),
                """{"do_lower_case": false, "model_max_length": 128, "mask_token": {"content": "[MASK]"}}""");
            var cased = BertTokenizer.FromPretrained(dir);
            Assert.Equal(128, cased.ModelMaxLength);
            Assert.False(cased.Normalizer.Lowercase);
            Assert.Equal(["[UNK]", "dog"], cased.Tokenize("Hello dog"));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Loading_errors_name_the_file_and_the_problem()
    {
        var missing = Assert.Throws<NBertException>(() => BertTokenizer.FromPretrained("/no/such/model"));
        Assert.Contains("/no/such/model", missing.Message);
        string dir = Directory.CreateTempSubdirectory("nbert-bad-").FullName;
        try
        {
            var empty = Assert.Throws<MissingFileException>(() => BertTokenizer.FromPretrained(dir));
            Assert.Contains("vocab.txt", empty.Message);
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), "{ not json");
            var bad = Assert.Throws<NBertException>(() => BertTokenizer.FromPretrained(dir));
            Assert.Contains("tokenizer.json", bad.Message);
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), """{"model": {"type": "Unigram", "vocab": []}}""");
            bad = Assert.Throws<NBertException>(() => BertTokenizer.FromPretrained(dir));
            Assert.Contains("model.type", bad.Message);
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), """{"model": {"type": "BPE", "vocab": {"a": 0}}}""");
            bad = Assert.Throws<NBertException>(() => BertTokenizer.FromPretrained(dir));
            Assert.Contains("model.merges", bad.Message);
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), """{"model": {"type": "WordPiece"}}""");
            bad = Assert.Throws<NBertException>(() => BertTokenizer.FromPretrained(dir));
            Assert.Contains("model.vocab", bad.Message);
            File.Delete(Path.Combine(dir, "tokenizer.json"));
            File.WriteAllText(Path.Combine(dir, "vocab.txt"), "a\nb\n");
            bad = Assert.Throws<NBertException>(() => BertTokenizer.FromPretrained(dir));
            Assert.Contains("[UNK]", bad.Message);
            Assert.Contains("vocab.txt", bad.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void The_fused_ascii_path_and_the_general_path_give_the_same_encodings()
    {
        // A normalized added token (that never occurs) sends every text through the general path.
        var vocab = BertTokenizer.ReadVocabLines(File.ReadAllText(Fixtures.Path("tokenizer", "vocab.txt")));
        var general = BertTokenizer.FromVocabulary(vocab, new BertTokenizerOptions
        {
            AddedTokens = [new AddedToken("\u2603never\u2603", vocab.Count, Special: false, Normalized: true)],
        });
        var texts = Fixtures.Json("tokenizer", "goldens.json")["variants"]!["uncased"]!["single"]!.AsArray()
            .Select(c => (string)c!["text"]!)
            .Concat(["UPPER lower MiXeD 123 a1b2 x\u0001y tab\there", "un-affable!!! (ok) [MASK]", new string('a', 150) + " b",
                "trailing\u0007", "\u0000lead", "ascii then caf\u00e9 then ascii", "end."])
            .ToArray();
        foreach (var text in texts)
        {
            var a = Uncased.Encode(text);
            var b = general.Encode(text);
            Assert.Equal(b.InputIds, a.InputIds);
            Assert.Equal(b.Offsets, a.Offsets);
            Assert.Equal(b.WordIds, a.WordIds);
        }
    }

    [Fact]
    public void Added_tokens_honour_lstrip_rstrip_single_word_and_normalized()
    {
        var tokenizer = BertTokenizer.FromVocabulary(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"], new BertTokenizerOptions
        {
            AddedTokens =
            [
                new AddedToken("<x>", 7, Special: false, LStrip: true, RStrip: true),
                new AddedToken("zz", 8, Special: false, SingleWord: true),
                new AddedToken("yy", 9, Special: false, Normalized: true),
            ],
        });
        var e = tokenizer.Encode("a  <x>  b", options: new EncodeOptions { AddSpecialTokens = false });
        Assert.Equal([5, 7, 6], e.InputIds);
        Assert.Equal((1, 8), e.Offsets[1]); // the stripped spaces belong to the token
        Assert.Equal([8, 5], tokenizer.Encode("zz a", options: new EncodeOptions { AddSpecialTokens = false }).InputIds);
        Assert.Equal([1], tokenizer.Encode("azz", options: new EncodeOptions { AddSpecialTokens = false }).InputIds);
        // Normalized added tokens match after lowercasing.
        var yy = tokenizer.Encode("a YY", options: new EncodeOptions { AddSpecialTokens = false });
        Assert.Equal([5, 9], yy.InputIds);
        Assert.Equal((2, 4), yy.Offsets[1]);
        Assert.Equal("a <x>", tokenizer.Decode([5, 7]));
    }
}
