using System.Text.Json.Nodes;
using NBert.Modeling;
using NBert.Tokenization;
using Xunit.Abstractions;
using NBert.Schema;

namespace NBert.Tests.Fuzz;

/// <summary>
/// Seeded mutations of the JSON and text fixtures (config.json, tokenizer.json, tokenizer_config.json,
/// vocab.txt): every case loads or is refused with NBertException. What loads must also work: a model
/// runs, a tokenizer encodes and decodes.
/// </summary>
public sealed class TextFileFuzzTests(ITestOutputHelper output) : TempDirectoryTest
{
    private readonly FuzzHarness _fuzz = new(output);
    private static readonly string Pretraining = Fixtures.Path("model", "pretraining");

    static TextFileFuzzTests()
    {
        // The normalizer's per-character tables are built once per option set (about 27 MB of work, kept for
        // the process): build them all first, so a case that turns an option on is not charged for them.
        foreach (bool clean in new[] { false, true })
            foreach (bool chinese in new[] { false, true })
                foreach (bool? strip in new bool?[] { null, false, true })
                    foreach (bool lower in new[] { false, true })
                        BertNormalizer.For(new BertNormalizerOptions(clean, chinese, strip, lower));
    }

    private static long Size(params string[] paths) => paths.Where(File.Exists).Sum(p => new FileInfo(p).Length);

    /// <summary>A tokenizer that loaded must encode a text and a pair and decode them.</summary>
    private void LoadAndUse()
    {
        var tokenizer = BertTokenizer.FromPretrained(Dir);
        var single = tokenizer.Encode("Hello, World! [MASK] naïve café 中文 😀 don't ##stop");
        var pair = tokenizer.Encode("a?", "its [SEP] context, long enough to be cut into windows of a few tokens each.", new EncodeOptions { MaxLength = 16, Stride = 2,
            Truncation = TruncationStrategy.OnlySecond, ReturnOverflowingTokens = true, Padding = PaddingStrategy.MaxLength });
        tokenizer.Decode(single.InputIds, skipSpecialTokens: true);
        tokenizer.Decode(pair.InputIds);
    }

    [Fact]
    public void Config_json()
    {
        string source = Fixtures.Path("model", "seqcls");
        File.Copy(Path.Combine(source, "model.safetensors"), Temp("model.safetensors"));
        byte[] original = File.ReadAllBytes(Path.Combine(source, "config.json"));
        var config = JsonNode.Parse(original)!;
        double baseline = BertArchitectures.ParameterCount(BertConfig.Load(Path.Combine(source, "config.json")), BertArchitecture.BertForPreTraining);
        string path = Temp("config.json");
        _fuzz.Run("config.json", 5000, r =>
        {
            var bytes = r.Next(10) < 8 ? Mutations.Json(r, config) : Mutations.Bytes(r, original);
            File.WriteAllBytes(path, bytes);
            return bytes.Length + Size(Temp("model.safetensors"));
        }, () =>
        {
            var c = BertConfig.Load(path);
            // A valid config can describe a model of any size; run only those about the fixture's.
            if (Enum.GetValues<BertArchitecture>().Max(a => BertArchitectures.ParameterCount(c, a)) <= 4 * baseline)
                CheckpointFuzzTests.LoadAndRun(Dir);
        });
    }

    /// <summary>sentence-transformers' files, each mutated in turn: what loads gives options a pipeline accepts and
    /// embeds with (with its default prompt, and with each named one).</summary>
    [Fact]
    public void Sentence_transformers_files()
    {
        foreach (var f in Directory.GetFiles(Pretraining)) File.Copy(f, Temp(Path.GetFileName(f)));
        NBert.Schema.SentenceTransformersConfig.Write(Dir, new NBert.Schema.EmbeddingOptions
        {
            Pooling = NBert.Schema.Pooling.Cls, Normalize = true, Prompts = new Dictionary<string, string> { ["query"] = "query: " },
        }, maxSeqLength: 64, dimension: 32);
        var tokenizer = BertTokenizer.FromPretrained(Dir);
        var model = BertPreTrainedModel.FromPretrained(Dir, BertArchitecture.BertModel);
        var originals = NBert.Schema.SentenceTransformersConfig.FileNames.ToDictionary(f => f, f => File.ReadAllBytes(Path.Combine(Dir, f)));
        string? changed = null;
        _fuzz.Run("sentence-transformers files", 2000, r =>
        {
            if (changed is not null) File.WriteAllBytes(Path.Combine(Dir, changed), originals[changed]);
            changed = originals.Keys.ElementAt(r.Next(originals.Count));
            var original = originals[changed];
            var bytes = r.Next(10) < 8 ? Mutations.Json(r, JsonNode.Parse(original)!) : Mutations.Bytes(r, original);
            File.WriteAllBytes(Path.Combine(Dir, changed), bytes);
            return originals.Values.Sum(b => (long)b.Length) + bytes.Length;
        }, () =>
        {
            var options = NBert.Schema.SentenceTransformersConfig.Read(Dir)!;
            var embedder = new NBert.Pipelines.SentenceEmbeddings(tokenizer, model, options);
            try
            {
                embedder.Embed(["a text"]);
                foreach (var name in options.Prompts.Keys) embedder.Embed(["a text"], name);
            }
            catch (NBertException e) when (e.Message.Contains("include_prompt false", StringComparison.Ordinal))
            {
                // Refused as documented: a prompt excluded from pooling.
            }
        });
    }

    [Fact]
    public void Tokenizer_json()
    {
        File.Copy(Path.Combine(Pretraining, "tokenizer_config.json"), Temp("tokenizer_config.json"));
        byte[] original = File.ReadAllBytes(Path.Combine(Pretraining, "tokenizer.json"));
        var json = JsonNode.Parse(original)!;
        string path = Temp("tokenizer.json");
        _fuzz.Run("tokenizer.json", 2500, r =>
        {
            var bytes = r.Next(10) < 8 ? Mutations.Json(r, json) : Mutations.Bytes(r, original);
            File.WriteAllBytes(path, bytes);
            return bytes.Length + Size(Temp("tokenizer_config.json"));
        }, LoadAndUse);
    }

    [Fact]
    public void Byte_level_bpe_tokenizer_json()
    {
        byte[] original = File.ReadAllBytes(Fixtures.Path("bpe", "roberta", "tokenizer.json"));
        var json = JsonNode.Parse(original)!;
        string path = Temp("tokenizer.json");
        _fuzz.Run("bpe tokenizer.json", 1500, r =>
        {
            var bytes = r.Next(10) < 8 ? Mutations.Json(r, json) : Mutations.Bytes(r, original);
            File.WriteAllBytes(path, bytes);
            return bytes.Length;
        }, LoadAndUse);
    }

    [Fact]
    public void Vocab_json_and_merges_txt()
    {
        File.Copy(Fixtures.Path("bpe", "tokenizer_config.json"), Temp("tokenizer_config.json"));
        byte[] vocab = File.ReadAllBytes(Fixtures.Path("bpe", "vocab.json")), merges = File.ReadAllBytes(Fixtures.Path("bpe", "merges.txt"));
        var vocabJson = JsonNode.Parse(vocab)!;
        var mergeLines = File.ReadAllLines(Fixtures.Path("bpe", "merges.txt"));
        _fuzz.Run("vocab.json + merges.txt", 1500, r =>
        {
            bool mutateVocab = r.Next(2) == 0;
            File.WriteAllBytes(Temp("vocab.json"), !mutateVocab ? vocab : r.Next(10) < 8 ? Mutations.Json(r, vocabJson) : Mutations.Bytes(r, vocab));
            File.WriteAllBytes(Temp("merges.txt"), mutateVocab ? merges : r.Next(10) < 8 ? Mutations.Lines(r, mergeLines) : Mutations.Bytes(r, merges));
            return Size(Temp("vocab.json"), Temp("merges.txt"), Temp("tokenizer_config.json"));
        }, LoadAndUse);
    }

    [Fact]
    public void Tokenizer_config_json()
    {
        File.Copy(Path.Combine(Pretraining, "vocab.txt"), Temp("vocab.txt"));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Pretraining, "tokenizer_config.json")))!.AsObject();
        // The fields a saved BertTokenizer has beyond the fixture's: added tokens by id, a special token as an object.
        config["added_tokens_decoder"] = JsonNode.Parse("""
            {"0": {"content": "[PAD]", "lstrip": false, "normalized": false, "rstrip": false, "single_word": false, "special": true},
             "4000": {"content": "<new>", "lstrip": true, "normalized": true, "rstrip": false, "single_word": true, "special": false}}
            """);
        config["mask_token"] = JsonNode.Parse("""{"content": "[MASK]", "lstrip": true, "normalized": false, "rstrip": false, "single_word": false, "special": true}""");
        config["do_lower_case"] = true;
        config["strip_accents"] = null;
        var map = JsonNode.Parse("""{"cls_token": "[CLS]", "sep_token": {"content": "[SEP]"}, "unk_token": "[UNK]"}""")!;
        byte[] original = System.Text.Encoding.UTF8.GetBytes(config.ToJsonString());
        _fuzz.Run("tokenizer_config.json", 4000, r =>
        {
            bool special = r.Next(5) == 0;
            var bytes = r.Next(10) < 8 ? Mutations.Json(r, special ? map : config) : Mutations.Bytes(r, original);
            File.WriteAllBytes(Temp("tokenizer_config.json"), special ? original : bytes);
            File.WriteAllBytes(Temp("special_tokens_map.json"), special ? bytes : System.Text.Encoding.UTF8.GetBytes(map.ToJsonString()));
            return Size(Temp("tokenizer_config.json"), Temp("special_tokens_map.json"), Temp("vocab.txt"));
        }, LoadAndUse);
    }

    [Fact]
    public void Vocab_txt()
    {
        File.Copy(Path.Combine(Pretraining, "tokenizer_config.json"), Temp("tokenizer_config.json"));
        byte[] original = File.ReadAllBytes(Path.Combine(Pretraining, "vocab.txt"));
        var lines = File.ReadAllLines(Path.Combine(Pretraining, "vocab.txt"));
        string path = Temp("vocab.txt");
        _fuzz.Run("vocab.txt", 4000, r =>
        {
            var bytes = r.Next(10) < 8 ? Mutations.Lines(r, lines) : Mutations.Bytes(r, original);
            File.WriteAllBytes(path, bytes);
            return bytes.Length + Size(Temp("tokenizer_config.json"));
        }, LoadAndUse);
    }
}
