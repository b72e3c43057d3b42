using System.Text;
using System.Text.Json.Nodes;
using NBert.Tokenization;

namespace NBert.Tests.Tokenization;

/// <summary>Broken and hostile tokenizer files: each is refused with a message naming the file and the field
/// or line, and nothing is sized from an id alone.</summary>
public sealed class TokenizerLoadingTests : TempDirectoryTest
{
    private static readonly string Source = Fixtures.Path("model", "pretraining");

    /// <summary>The fixture's tokenizer.json, changed by <paramref name="change"/>, with its tokenizer_config.json.</summary>
    private void TokenizerJson(Action<JsonObject> change)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Source, "tokenizer.json")))!.AsObject();
        change(json);
        File.WriteAllText(Temp("tokenizer.json"), json.ToJsonString());
        File.Copy(Path.Combine(Source, "tokenizer_config.json"), Temp("tokenizer_config.json"), overwrite: true);
    }

    /// <summary>The fixture's vocab.txt and its tokenizer_config.json, changed by <paramref name="change"/>.</summary>
    private void VocabWithConfig(Action<JsonObject> change)
    {
        File.Copy(Path.Combine(Source, "vocab.txt"), Temp("vocab.txt"), overwrite: true);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Source, "tokenizer_config.json")))!.AsObject();
        change(config);
        File.WriteAllText(Temp("tokenizer_config.json"), config.ToJsonString());
    }

    private NBertException Refused(string file, string message)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<NBertException>(() => BertTokenizer.FromPretrained(Dir));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 64 << 20, $"allocated {GC.GetAllocatedBytesForCurrentThread() - before:N0} bytes to refuse");
        Assert.Contains(Temp(file), ex.Message);
        Assert.Contains(message, ex.Message);
        return ex;
    }

    [Fact]
    public void The_unchanged_files_load_so_each_refusal_below_is_about_its_one_change()
    {
        TokenizerJson(_ => { });
        Assert.Equal(4000, BertTokenizer.FromPretrained(Dir).VocabSize);
        File.Delete(Temp("tokenizer.json"));
        VocabWithConfig(c => c["added_tokens_decoder"] = JsonNode.Parse("""{"4000": {"content": "<new>", "special": true}}"""));
        var tokenizer = BertTokenizer.FromPretrained(Dir);
        Assert.Equal(4001, tokenizer.VocabSize);
        Assert.Equal([4000], tokenizer.Encode("a <new>", options: new EncodeOptions { AddSpecialTokens = false }).InputIds[^1..]);
    }

    [Theory]
    [InlineData("""{"99999999999": {"content": "<x>"}}""", "added_tokens_decoder key '99999999999' is not a token id")]
    [InlineData("""{"-1": {"content": "<x>"}}""", "added_tokens_decoder key '-1' is not a token id")]
    [InlineData("""{"5": {"special": true}}""", "added_tokens_decoder['5'] has no content")]
    [InlineData("""{"5": {"content": 7}}""", "added_tokens_decoder['5'].content must be a string, not 7")]
    [InlineData("""{"5": "<x>"}""", "added_tokens_decoder['5'] must be an object")]
    [InlineData("""{"1500000000": {"content": "<x>"}}""", "added token '<x>' has id 1500000000, outside 0..4000")]
    public void A_broken_added_tokens_decoder_is_refused_naming_tokenizer_config_json(string decoder, string message)
    {
        VocabWithConfig(c => c["added_tokens_decoder"] = JsonNode.Parse(decoder));
        Refused("tokenizer_config.json", message);
    }

    [Theory]
    [InlineData("2147483647", "has id 2147483647, outside 0..4005")]
    [InlineData("-7", "added_tokens[5].id must not be negative, not -7")]
    [InlineData("1500000000", "has id 1500000000, outside 0..4005")]
    [InlineData("1.5e9", "added_tokens[5].id must be an integer (32-bit), not 1.5e9")]
    [InlineData("\"12\"", "added_tokens[5].id must be an integer (32-bit), not \"12\"")]
    public void An_added_token_id_outside_the_vocabulary_is_refused_without_allocating_for_it(string id, string message)
    {
        TokenizerJson(j => j["added_tokens"]!.AsArray().Add(JsonNode.Parse($$"""{"id": {{id}}, "content": "<x>", "special": true}""")));
        Refused("tokenizer.json", message);
    }

    public static readonly TheoryData<string, string, string> BrokenTokenizerJson = new()
    {
        { "model.vocab.[UNK]", "\"100\"", "model.vocab['[UNK]'] must be an integer (32-bit), not \"100\"" },
        { "model.vocab.[UNK]", "2000000000", "model.vocab['[UNK]'] has id 2000000000, far past the vocabulary's 4000 tokens" },
        { "model.vocab.[UNK]", "-1", "model.vocab['[UNK]'] has the negative id -1" },
        { "model.vocab", "[]", "model.vocab must be an object, not []" },
        { "model.unk_token", "3", "model.unk_token must be a string, not 3" },
        { "model.max_input_chars_per_word", "-5", "model.max_input_chars_per_word must not be negative" },
        { "normalizer.lowercase", "\"yes\"", "normalizer.lowercase must be true or false, not \"yes\"" },
        { "normalizer.type", "null", "normalizer.type is ''" },
        { "pre_tokenizer", "{}", "pre_tokenizer.type is 'null'" },
        { "post_processor.special_tokens.[CLS].ids", "[999999]", "special token '[CLS]' has id 999999" },
        { "post_processor.special_tokens.[CLS].ids", "[101, 102]", "has 2 ids but 1 tokens" },
        { "post_processor.single", "[{\"SpecialToken\": {\"id\": null}}]", "post_processor.single[0].SpecialToken has no id" },
        { "post_processor.single", "[5]", "post_processor.single[0] must be an object, not 5" },
        { "decoder.cleanup", "1", "decoder.cleanup must be true or false, not 1" },
        { "added_tokens", "{}", "added_tokens must be a list, not {}" },
    };

    [Theory, MemberData(nameof(BrokenTokenizerJson))]
    public void A_field_of_the_wrong_type_in_tokenizer_json_is_refused_naming_it(string field, string value, string message)
    {
        TokenizerJson(j =>
        {
            var parts = field.Split('.');
            var node = parts[..^1].Aggregate((JsonNode)j, (n, p) => n[p]!);
            node.AsObject()[parts[^1]] = JsonNode.Parse(value);
        });
        Refused("tokenizer.json", message);
    }

    [Theory]
    [InlineData(new byte[0], "The vocabulary is empty")]
    [InlineData(new byte[] { 0xEF, 0xBB, 0xBF }, "The vocabulary is empty")]
    [InlineData(new byte[] { (byte)'[', (byte)'C', (byte)'L', (byte)'S', (byte)']', 10, (byte)'a', 10, 0xC3, 0x28, 10 }, "line 3 is not valid UTF-8")]
    public void An_empty_or_undecodable_vocab_txt_is_refused_naming_the_file_and_line(byte[] content, string message)
    {
        File.WriteAllBytes(Temp("vocab.txt"), content);
        Refused("vocab.txt", message);
    }

    [Theory]
    [InlineData("[UNK]", "The unknown token '[UNK]' is not in the vocabulary")]
    [InlineData("[CLS]", "The vocabulary has no '[CLS]' (cls_token)")]
    public void A_vocab_txt_without_a_needed_special_token_is_refused_naming_it(string missing, string message)
    {
        File.WriteAllLines(Temp("vocab.txt"), File.ReadAllLines(Path.Combine(Source, "vocab.txt")).Where(l => l != missing));
        Refused("vocab.txt", message);
    }

    [Fact]
    public void Special_tokens_of_the_wrong_type_in_tokenizer_config_json_are_refused_naming_them()
    {
        VocabWithConfig(c => c["cls_token"] = 5);
        Refused("tokenizer_config.json", "cls_token must be a string, not 5");
        VocabWithConfig(c => c["mask_token"] = JsonNode.Parse("""{"lstrip": true}"""));
        Refused("tokenizer_config.json", "mask_token.content must be a string, not null");
        VocabWithConfig(c => c["do_lower_case"] = "false");
        Refused("tokenizer_config.json", "do_lower_case must be true or false");
        VocabWithConfig(c => c["model_max_length"] = "512");
        Refused("tokenizer_config.json", "model_max_length must be a number");
        File.WriteAllText(Temp("tokenizer_config.json"), """{"cls_token": "[CLS]", "cls_token": "[SEP]"}""");
        Refused("tokenizer_config.json", "Duplicate property 'cls_token'");
        File.WriteAllText(Temp("tokenizer_config.json"), "[]");
        Refused("tokenizer_config.json", "the top level must be a JSON object");
        File.WriteAllBytes(Temp("tokenizer_config.json"), [.. Encoding.ASCII.GetBytes("{\"cls_token\": \""), 0xff, .. Encoding.ASCII.GetBytes("\"}")]);
        Refused("tokenizer_config.json", "not valid UTF-8 (byte 15)");
    }
}
