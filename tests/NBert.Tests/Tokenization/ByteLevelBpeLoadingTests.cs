using System.Text.Json.Nodes;
using NBert.Tokenization;

namespace NBert.Tests.Tokenization;

/// <summary>Byte-level BPE files: what NBert cannot reproduce is refused naming the field, broken files name the file
/// and line, and a tokenizer saves to files that load to the same tokenizer.</summary>
public sealed class ByteLevelBpeLoadingTests : TempDirectoryTest
{
    private static readonly JsonNode Goldens = Fixtures.Json("bpe", "goldens.json");

    /// <summary>The roberta fixture's tokenizer.json, changed by <paramref name="change"/>, in the temporary directory.</summary>
    private string Changed(Action<JsonObject> change)
    {
        var json = JsonNode.Parse(File.ReadAllText(Fixtures.Path("bpe", "roberta", "tokenizer.json")))!.AsObject();
        change(json);
        File.WriteAllText(Temp("tokenizer.json"), json.ToJsonString());
        return Temp("tokenizer.json");
    }

    public static readonly TheoryData<string, string, string> Unsupported = new()
    {
        { "pre_tokenizer", """{"type": "Metaspace", "replacement": "▁"}""", "pre_tokenizer.type" },
        { "pre_tokenizer", "null", "pre_tokenizer.type" },
        { "decoder", """{"type": "WordPiece", "prefix": "##"}""", "decoder.type" },
        { "post_processor", """{"type": "ByteLevel", "trim_offsets": true}""", "post_processor.type" },
        { "normalizer", """{"type": "NFKC"}""", "normalizer.type" },
        { "model.continuing_subword_prefix", "\"##\"", "model.continuing_subword_prefix" },
        { "model.end_of_word_suffix", "\"</w>\"", "model.end_of_word_suffix" },
        { "model.dropout", "0.1", "model.dropout" },
        { "model.byte_fallback", "true", "model.byte_fallback" },
        { "model.unk_token", "\"<nope>\"", "<nope>" },
        { "model.merges", """["Ġ t h"]""", "model.merges[0]" },
        { "model.merges", """[["Ġ", "zzz"]]""", "zzz" },
        { "model.merges", """[42]""", "model.merges[0]" },
    };

    [Theory, MemberData(nameof(Unsupported))]
    public void What_NBert_cannot_reproduce_is_refused_naming_the_field(string field, string value, string named)
    {
        string path = Changed(json =>
        {
            var parent = field.StartsWith("model.", StringComparison.Ordinal) ? json["model"]!.AsObject() : json;
            parent[field.Split('.')[^1]] = JsonNode.Parse(value);
        });
        var ex = Assert.Throws<NBertException>(() => BertTokenizer.FromPretrained(Dir));
        Assert.Contains(path, ex.Message);
        Assert.Contains(named, ex.Message);
    }

    [Fact]
    public void A_WordPiece_model_with_RobertaProcessing_or_a_ByteLevel_pre_tokenizer_is_refused()
    {
        var bert = JsonNode.Parse(File.ReadAllText(Fixtures.Path("model", "pretraining", "tokenizer.json")))!.AsObject();
        bert["post_processor"] = JsonNode.Parse("""{"type": "RobertaProcessing", "sep": ["[SEP]", 102], "cls": ["[CLS]", 101]}""");
        File.WriteAllText(Temp("tokenizer.json"), bert.ToJsonString());
        Assert.Contains("RobertaProcessing", Assert.Throws<NBertException>(() => BertTokenizer.FromPretrained(Dir)).Message);
        bert["post_processor"] = null;
        bert["pre_tokenizer"] = JsonNode.Parse("""{"type": "ByteLevel"}""");
        File.WriteAllText(Temp("tokenizer.json"), bert.ToJsonString());
        Assert.Contains("pre_tokenizer.type", Assert.Throws<NBertException>(() => BertTokenizer.FromPretrained(Dir)).Message);
    }

    [Fact]
    public void Broken_vocab_json_and_merges_txt_name_the_file_and_line()
    {
        File.Copy(Fixtures.Path("bpe", "vocab.json"), Temp("vocab.json"));
        var lines = File.ReadAllLines(Fixtures.Path("bpe", "merges.txt")).ToList();
        lines.Insert(5, "Ġ a b");
        File.WriteAllLines(Temp("merges.txt"), lines);
        var ex = Assert.Throws<NBertException>(() => BertTokenizer.FromPretrained(Dir));
        Assert.Contains(Temp("merges.txt"), ex.Message);
        Assert.Contains("line 6", ex.Message);

        lines[5] = "Ġ nosuchtoken";
        File.WriteAllLines(Temp("merges.txt"), lines);
        ex = Assert.Throws<NBertException>(() => BertTokenizer.FromPretrained(Dir));
        Assert.Contains(Temp("merges.txt"), ex.Message);
        Assert.Contains("nosuchtoken", ex.Message);

        File.Copy(Fixtures.Path("bpe", "merges.txt"), Temp("merges.txt"), overwrite: true);
        File.WriteAllText(Temp("vocab.json"), """{"<s>": 0, "</s>": "two"}""");
        ex = Assert.Throws<NBertException>(() => BertTokenizer.FromPretrained(Dir));
        Assert.Contains(Temp("vocab.json"), ex.Message);
        Assert.Contains("</s>", ex.Message);
    }

    public static readonly TheoryData<string> Variants = ["roberta", "prefix_space", "untrimmed"];

    /// <summary>A tokenizer built from a tokenizer.json alone has no directory to copy: it writes RoBERTa's vocab.json,
    /// merges.txt and config, which load to a tokenizer giving the same encodings and decodings.</summary>
    [Theory, MemberData(nameof(Variants))]
    public void Saving_writes_vocab_json_and_merges_txt_that_load_to_the_same_tokenizer(string variant)
    {
        var original = BertTokenizer.FromTokenizerJson(Fixtures.Path("bpe", variant, "tokenizer.json"));
        original.SavePretrained(Dir);
        Assert.True(File.Exists(Temp("vocab.json")) && File.Exists(Temp("merges.txt")) && File.Exists(Temp("tokenizer_config.json")));
        Assert.False(File.Exists(Temp("tokenizer.json")) || File.Exists(Temp("vocab.txt")));
        var loaded = BertTokenizer.FromPretrained(Dir);
        Assert.Equal(original.AddedTokens, loaded.AddedTokens);
        var failures = new List<string>();
        var g = Goldens["variants"]![variant]!;
        foreach (var c in g["single"]!.AsArray())
        {
            string text = (string)c!["text"]!;
            var e = loaded.Encode(text);
            ByteLevelBpeParityTests.Compare(failures, text, e, c, text, null);
            if (loaded.Decode(e.InputIds) != (string)c["decoded"]!) failures.Add($"{text}: decoded '{loaded.Decode(e.InputIds)}'");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        // Saved again in place, the files stay as they are.
        loaded.SavePretrained(Dir);
        Assert.Equal(original.Encode("Call me Ishmael.").InputIds, BertTokenizer.FromPretrained(Dir).Encode("Call me Ishmael.").InputIds);
    }

    [Fact]
    public void A_tokenizer_that_RoBERTas_files_cannot_describe_is_not_saved_as_them()
    {
        string path = Changed(json => json["pre_tokenizer"]!["use_regex"] = false);
        var tokenizer = BertTokenizer.FromTokenizerJson(path);
        // Without the split, a text is one word: "a b" is the pieces of "a b", not of "a" and " b".
        Assert.Single(tokenizer.Encode("ab", options: new EncodeOptions { AddSpecialTokens = false }).WordIds.Distinct());
        Assert.Throws<NotSupportedException>(() => tokenizer.SavePretrained(Temp("out")));
    }

    [Fact]
    public void Lone_surrogates_read_as_U_FFFD_and_nothing_throws()
    {
        var tokenizer = BertTokenizer.FromPretrained(Fixtures.Path("bpe", "roberta"));
        var lone = tokenizer.Encode("a\uD800b", options: new EncodeOptions { AddSpecialTokens = false });
        var replaced = tokenizer.Encode("a\uFFFDb", options: new EncodeOptions { AddSpecialTokens = false });
        Assert.Equal(replaced.InputIds, lone.InputIds);
        Assert.Equal(replaced.Offsets, lone.Offsets);
        Assert.Equal("a\uFFFDb", tokenizer.Decode(lone.InputIds));
    }
}
