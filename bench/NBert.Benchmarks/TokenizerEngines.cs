using System.Text.Json.Nodes;

namespace NBert.Benchmarks;

/// <summary>One tokenizer under test: text in, ids out (special tokens included).</summary>
public interface ITokenizerEngine : IDisposable
{
    string Name { get; }
    /// <summary>What the engine produces besides ids.</summary>
    string Produces { get; }
    int[] Encode(string text);
}

public sealed class NBertEngine(string vocabPath) : ITokenizerEngine
{
    private readonly NBert.Tokenization.BertTokenizer _tokenizer = NBert.Tokenization.BertTokenizer.FromVocabFile(vocabPath);
    public string Name => "NBert";
    public string Produces => "ids, types, mask, tokens, offsets, word ids";
    public int[] Encode(string text) => _tokenizer.Encode(text).InputIds;
    public void Dispose() { }
}

public sealed class FastBertEngine : ITokenizerEngine
{
    private readonly FastBertTokenizer.BertTokenizer _tokenizer = new();
    public FastBertEngine(string vocabPath)
    {
        using var reader = File.OpenText(vocabPath);
        _tokenizer.LoadVocabulary(reader, convertInputToLowercase: true);
    }
    public string Name => "FastBertTokenizer 1.2.6";
    public string Produces => "ids, mask, types";
    public int[] Encode(string text)
    {
        var (ids, _, _) = _tokenizer.Encode(text, maximumTokens: 4096);
        var span = ids.Span;
        var result = new int[span.Length];
        for (int i = 0; i < span.Length; i++) result[i] = (int)span[i];
        return result;
    }
    public void Dispose() { }
}

public sealed class MicrosoftMlEngine(string vocabPath, bool withOffsets) : ITokenizerEngine
{
    private readonly Microsoft.ML.Tokenizers.BertTokenizer _tokenizer = Microsoft.ML.Tokenizers.BertTokenizer.Create(vocabPath,
        new Microsoft.ML.Tokenizers.BertOptions { LowerCaseBeforeTokenization = true });
    public string Name => withOffsets ? "Microsoft.ML.Tokenizers 2.0.1 (EncodeToTokens)" : "Microsoft.ML.Tokenizers 2.0.1 (EncodeToIds)";
    public string Produces => withOffsets ? "ids, tokens, offsets" : "ids";
    public int[] Encode(string text)
    {
        if (!withOffsets) return [.. _tokenizer.EncodeToIds(text)];
        // EncodeToTokens adds no [CLS]/[SEP]; add them so the ids compare with the other engines'.
        var tokens = _tokenizer.EncodeToTokens(text, out _);
        var ids = new int[tokens.Count + 2];
        ids[0] = _tokenizer.ClassificationTokenId;
        for (int i = 0; i < tokens.Count; i++) ids[i + 1] = tokens[i].Id;
        ids[^1] = _tokenizer.SeparatorTokenId;
        return ids;
    }
    public void Dispose() { }
}

/// <summary>Hugging Face's Rust tokenizers through Tokenizers.DotNet (native code: bench only).</summary>
public sealed class HuggingFaceRustEngine : ITokenizerEngine
{
    private readonly Tokenizers.DotNet.Tokenizer _tokenizer;
    private readonly string _cleanJson;

    public HuggingFaceRustEngine(string tokenizerJson)
    {
        // A saved tokenizer.json may carry truncation/padding from its last call; the Rust library would
        // apply them, so they are removed (transformers ignores them too).
        var root = JsonNode.Parse(File.ReadAllText(tokenizerJson))!.AsObject();
        root["truncation"] = null;
        root["padding"] = null;
        _cleanJson = Path.Combine(Path.GetTempPath(), $"nbert-bench-{Environment.ProcessId}-tokenizer.json");
        File.WriteAllText(_cleanJson, root.ToJsonString());
        _tokenizer = new Tokenizers.DotNet.Tokenizer(_cleanJson);
    }

    public string Name => "Tokenizers.DotNet 1.4.1 (HF Rust)";
    public string Produces => "ids";
    public int[] Encode(string text) => Array.ConvertAll(_tokenizer.Encode(text), x => (int)x);

    public void Dispose()
    {
        _tokenizer.Dispose();
        File.Delete(_cleanJson);
    }
}
