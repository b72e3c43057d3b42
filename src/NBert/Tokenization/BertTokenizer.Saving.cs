using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using NBert.IO;

namespace NBert.Tokenization;

public sealed partial class BertTokenizer
{
    /// <summary>
    /// Writes the tokenizer's files into <paramref name="directory"/> so that <see cref="FromPretrained(string)"/> (or
    /// transformers' <c>AutoTokenizer.from_pretrained</c>) loads the same tokenizer from it: the files it was loaded from
    /// (tokenizer.json, vocab.txt, tokenizer_config.json, special_tokens_map.json, those that exist), or, for a tokenizer
    /// built in code, vocab.txt, tokenizer_config.json and special_tokens_map.json written from what it holds. The files
    /// are written to temporary names and renamed together. A byte-level BPE tokenizer built from a tokenizer.json alone
    /// is written as RoBERTa's vocab.json and merges.txt with its config, when RoBERTa's settings describe it (else
    /// <see cref="NotSupportedException"/>).
    /// </summary>
    public void SavePretrained(string directory)
    {
        using var files = new StagedFiles(directory);
        SavePretrained(files);
        files.Commit();
    }

    /// <summary>Stages the tokenizer's files into <paramref name="files"/>, to be committed with others (a model's).</summary>
    public void SavePretrained(StagedFiles files)
    {
        ArgumentNullException.ThrowIfNull(files);
        // Tokenizer files of another tokenizer already in the directory go: FromPretrained would prefer a stale
        // tokenizer.json to the vocab.txt written here.
        bool inPlace = SourceDirectory is not null && Checkpoint.IsSameDirectory(SourceDirectory, files.Directory);
        if (!inPlace) foreach (string name in Checkpoint.TokenizerFiles.Concat(Checkpoint.BpeTokenizerFiles)) files.RemoveOnCommit(name);
        if (SourceDirectory is not null && Checkpoint.StageTokenizerFiles(SourceDirectory, files)) return;
        if (_bpe is not null)
        {
            SaveByteLevelBpe(files);
            return;
        }
        var vocab = Enumerable.Range(0, Model.VocabSize).Select(id => Model.IdToToken(id) ?? "").ToList();
        files.WriteAllText("vocab.txt", string.Join("\n", vocab) + "\n");
        var indented = new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        var decoder = AddedTokensDecoder();
        var config = new JsonObject
        {
            ["added_tokens_decoder"] = decoder,
            ["clean_up_tokenization_spaces"] = Decoder.Cleanup,
            ["cls_token"] = ClsToken,
            ["do_lower_case"] = Normalizer.Lowercase,
            ["mask_token"] = MaskToken,
            ["model_max_length"] = ModelMaxLength ?? 512,
            ["pad_token"] = PadToken,
            ["sep_token"] = SepToken,
            ["strip_accents"] = Normalizer.StripAccents,
            ["tokenize_chinese_chars"] = Normalizer.HandleChineseChars,
            ["tokenizer_class"] = "BertTokenizer",
            ["unk_token"] = UnkToken,
        };
        files.WriteAllText("tokenizer_config.json", config.ToJsonString(indented) + "\n");
        var map = new JsonObject { ["cls_token"] = ClsToken, ["mask_token"] = MaskToken, ["pad_token"] = PadToken, ["sep_token"] = SepToken, ["unk_token"] = UnkToken };
        files.WriteAllText("special_tokens_map.json", map.ToJsonString(indented) + "\n");
    }

    /// <summary>vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json as transformers'
    /// <c>RobertaTokenizer</c> writes them.</summary>
    private void SaveByteLevelBpe(StagedFiles files)
    {
        var options = _byteLevel!;
        var mask = AddedTokens.FirstOrDefault(t => t.Content == MaskToken);
        string? unlike =
            !options.UseRegex ? "its pre-tokenizer does not split words (use_regex false)"
            : options.AddPrefixSpace != options.TrimKeepsPrefixSpace ? "its pre-tokenizer and post-processor disagree on add_prefix_space"
            : PostProcessor is null || PostProcessor.Pair.Count != 6 || PostProcessor.Pair.Any(p => p.TypeId != 0) ? "its post-processor is not RobertaProcessing"
            : Normalizer != new BertNormalizerOptions(false, false, false, false) ? "it has a normalizer"
            : _bpe!.UnkToken is not null || _bpe.IgnoreMerges ? "its BPE has an unk_token or ignore_merges"
            : null;
        if (unlike is not null)
            throw new NotSupportedException($"This byte-level BPE tokenizer cannot be saved as vocab.json and merges.txt: {unlike}. Save the tokenizer.json it came from.");
        var indented = new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        var vocab = new JsonObject();
        foreach (var (token, id) in _bpe!.Vocab.OrderBy(e => e.Value)) vocab[token] = id;
        files.WriteAllText("vocab.json", vocab.ToJsonString(new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
        files.WriteAllText("merges.txt", "#version: 0.2\n" + string.Concat(_bpe.Merges.Select(m => $"{m.Left} {m.Right}\n")));
        var decoder = AddedTokensDecoder();
        var config = new JsonObject
        {
            ["add_prefix_space"] = options.AddPrefixSpace,
            ["added_tokens_decoder"] = decoder,
            ["bos_token"] = ClsToken,
            ["cls_token"] = ClsToken,
            ["eos_token"] = SepToken,
            ["errors"] = "replace",
            ["mask_token"] = new JsonObject
            {
                ["content"] = MaskToken, ["lstrip"] = mask?.LStrip ?? true, ["normalized"] = false, ["rstrip"] = false,
                ["single_word"] = false, ["special"] = true,
            },
            ["model_max_length"] = ModelMaxLength ?? 512,
            ["pad_token"] = PadToken,
            ["sep_token"] = SepToken,
            ["tokenizer_class"] = "RobertaTokenizer",
            ["trim_offsets"] = options.TrimOffsets,
            ["unk_token"] = UnkToken,
        };
        files.WriteAllText("tokenizer_config.json", config.ToJsonString(indented) + "\n");
        var map = new JsonObject
        {
            ["bos_token"] = ClsToken, ["cls_token"] = ClsToken, ["eos_token"] = SepToken, ["mask_token"] = MaskToken, ["pad_token"] = PadToken,
            ["sep_token"] = SepToken, ["unk_token"] = UnkToken,
        };
        files.WriteAllText("special_tokens_map.json", map.ToJsonString(indented) + "\n");
    }

    /// <summary>tokenizer_config.json's <c>added_tokens_decoder</c>: each added token by id, with its flags.</summary>
    private JsonObject AddedTokensDecoder()
    {
        var decoder = new JsonObject();
        foreach (var t in AddedTokens.OrderBy(t => t.Id))
            decoder[t.Id.ToString(CultureInfo.InvariantCulture)] = new JsonObject
            {
                ["content"] = t.Content, ["lstrip"] = t.LStrip, ["normalized"] = t.Normalized, ["rstrip"] = t.RStrip,
                ["single_word"] = t.SingleWord, ["special"] = t.Special,
            };
        return decoder;
    }
}
