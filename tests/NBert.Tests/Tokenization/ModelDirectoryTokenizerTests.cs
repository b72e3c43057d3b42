using System.Text.Json.Nodes;
using NBert.Tokenization;

namespace NBert.Tests.Tokenization;

/// <summary>
/// The tokenizers saved beside the tiny checkpoints in <c>model/*/</c> reproduce the inputs Hugging Face
/// fed those models (<c>model/expected_forward.safetensors</c>), whether loaded from tokenizer.json or
/// from vocab.txt with tokenizer_config.json.
/// </summary>
public class ModelDirectoryTokenizerTests
{
    public static readonly TheoryData<string, bool> Directories = Build();

    private static TheoryData<string, bool> Build()
    {
        var data = new TheoryData<string, bool>();
        foreach (var dir in new[] { "pretraining", "pretraining_legacy_names", "encoder_only", "seqcls", "tokcls", "qa" })
        {
            data.Add(dir, true);
            data.Add(dir, false);
        }
        return data;
    }

    private static readonly JsonNode Spec = Fixtures.Json("model", "expected_forward.json");
    private static readonly Dictionary<string, long[][]> Inputs = Fixtures.ReadInt64Tensors(Fixtures.Path("model", "expected_forward.safetensors"));

    private static BertTokenizer Load(string dir, bool tokenizerJson)
    {
        string path = Fixtures.Path("model", dir);
        if (tokenizerJson) return BertTokenizer.FromPretrained(path);
        // The same directory without tokenizer.json: vocab.txt + tokenizer_config.json.
        string copy = Directory.CreateTempSubdirectory("nbert-vocab-").FullName;
        try
        {
            foreach (var name in new[] { "vocab.txt", "tokenizer_config.json" })
                File.Copy(Path.Combine(path, name), Path.Combine(copy, name));
            return BertTokenizer.FromPretrained(copy);
        }
        finally { Directory.Delete(copy, true); }
    }

    [Theory, MemberData(nameof(Directories))]
    public void Reproduces_the_inputs_of_every_head(string dir, bool tokenizerJson)
    {
        var tokenizer = Load(dir, tokenizerJson);
        Assert.Equal(4000, tokenizer.VocabSize);
        Assert.Equal(512, tokenizer.ModelMaxLength);
        var longest = new EncodeOptions { Padding = PaddingStrategy.Longest };

        var pairs = Spec["nsp_pairs"]!.AsArray().Select(p => ((string)p![0]!, (string?)(string)p[1]!)).ToArray();
        AssertBatch(tokenizer.EncodeBatch(pairs, longest), "");
        AssertBatch(tokenizer.EncodeBatch(Texts("cls_texts"), longest), "seqcls.");
        AssertBatch(tokenizer.EncodeBatch(Texts("ner_texts"), longest), "tokcls.");
        var qa = Spec["qa"]!.AsArray().Select(q => ((string)q!["question"]!, (string?)(string)q["context"]!)).ToArray();
        AssertBatch(tokenizer.EncodeBatch(qa, new EncodeOptions
        {
            MaxLength = (int)Spec["qa_max_length"]!, Truncation = TruncationStrategy.OnlySecond, Padding = PaddingStrategy.MaxLength,
        }), "qa.");
    }

    private static string[] Texts(string field) => Spec[field]!.AsArray().Select(t => (string)t!).ToArray();

    private static void AssertBatch(IReadOnlyList<TokenEncoding> encodings, string prefix)
    {
        var ids = Inputs[prefix + "input_ids"];
        Assert.Equal(ids.Length, encodings.Count);
        for (int i = 0; i < ids.Length; i++)
        {
            Assert.Equal(ids[i].Select(x => (int)x), encodings[i].InputIds);
            Assert.Equal(Inputs[prefix + "token_type_ids"][i].Select(x => (int)x), encodings[i].TokenTypeIds);
            Assert.Equal(Inputs[prefix + "attention_mask"][i].Select(x => (int)x), encodings[i].AttentionMask);
        }
    }
}
