using System.Text.Json.Serialization;
using NBert.Modeling;
using NBert.Tokenization;

namespace NBert.Pipelines;

/// <summary>One candidate for a [MASK], with transformers' field names.</summary>
public sealed record FillMaskCandidate(
    [property: JsonPropertyName("score")] float Score,
    [property: JsonPropertyName("token")] int Token,
    [property: JsonPropertyName("token_str")] string TokenStr,
    [property: JsonPropertyName("sequence")] string Sequence);

/// <summary>
/// transformers' <c>fill-mask</c> pipeline: the softmax over the vocabulary at each [MASK], the <c>top_k</c> best
/// (or the best among <c>targets</c>), each with the text it makes. One list per [MASK]; with several masks,
/// the sequence keeps the special tokens and the other masks, as transformers decodes it.
/// </summary>
public sealed class FillMask(BertTokenizer tokenizer, BertPreTrainedModel model)
{
    public BertTokenizer Tokenizer { get; } = tokenizer;
    public BertPreTrainedModel Model { get; } = Check(model);
    public int BatchSize { get; init; } = 32;

    private static BertPreTrainedModel Check(BertPreTrainedModel m) =>
        m.Architecture is BertArchitecture.BertForMaskedLM or BertArchitecture.BertForPreTraining ? m
            : throw new ArgumentException($"fill-mask needs a masked-LM head (BertForMaskedLM or BertForPreTraining), not {m.Architecture}.");

    public static FillMask FromPretrained(string directory)
    {
        var config = BertConfig.Load(Path.Combine(directory, "config.json"));
        var arch = BertArchitectures.FromConfig(config) == BertArchitecture.BertForPreTraining ? BertArchitecture.BertForPreTraining : BertArchitecture.BertForMaskedLM;
        return new FillMask(BertTokenizer.FromPretrained(directory), BertPreTrainedModel.FromPretrained(directory, arch));
    }

    /// <summary>The candidates for each [MASK] of each text (texts without a [MASK] are an error naming the text).</summary>
    public List<List<List<FillMaskCandidate>>> Run(IReadOnlyList<string> texts, int topK = 5, IReadOnlyList<string>? targets = null)
    {
        if (topK < 1) throw new ArgumentOutOfRangeException(nameof(topK), $"top_k must be at least 1, not {topK}.");
        int maskId = Tokenizer.TokenToId(Tokenizer.MaskToken) ?? throw new InvalidOperationException("The tokenizer has no mask token.");
        if (targets is { Count: 0 }) throw new ArgumentException("targets is empty: give at least one word, or none for the whole vocabulary.", nameof(targets));
        int[]? targetIds = targets is null ? null : TargetIds(targets);
        var options = new EncodeOptions { MaxLength = Math.Min(Tokenizer.ModelMaxLength ?? 512, Model.Config.MaxPositionEmbeddings), Truncation = TruncationStrategy.LongestFirst };
        var encodings = Tokenizer.EncodeBatch(texts, options);
        for (int i = 0; i < texts.Count; i++)
            if (!encodings[i].InputIds.Contains(maskId))
                throw new ArgumentException(texts[i].Contains(Tokenizer.MaskToken, StringComparison.Ordinal)
                    ? $"Text {i + 1}: its {Tokenizer.MaskToken} comes after the first {options.MaxLength} tokens, the most the model takes, so truncation cut it off: shorten the text (\"{NBertException.Quote(texts[i])}\")."
                    : $"Text {i + 1} has no {Tokenizer.MaskToken} token: \"{NBertException.Quote(texts[i])}\".");
        var results = new List<List<FillMaskCandidate>>[texts.Count];
        int vocab = Model.Config.VocabSize;
        var head = (BertHeadModel)Model;
        foreach (var (rows, padded) in Batches.Plan(Tokenizer, encodings, BatchSize))
        {
            // The vocabulary logits at the masks only.
            int s = padded[0].Length;
            var masks = rows.Select(row => Enumerable.Range(0, encodings[row].Length).Where(t => encodings[row].InputIds[t] == maskId).ToList()).ToList();
            var positions = masks.SelectMany((m, r) => m.Select(t => r * s + t)).ToList();
            var logits = head.PredictionLogitsAt(ModelInputs.FromEncodings(padded), positions);
            Model.EnsureFinite(logits, "prediction logits");
            int at = 0;
            for (int r = 0; r < rows.Length; r++)
            {
                var ids = encodings[rows[r]].InputIds;
                var perMask = new List<List<FillMaskCandidate>>();
                foreach (int m in masks[r])
                {
                    var probs = Batches.Softmax(logits.AsSpan(at++ * vocab, vocab));
                    var candidates = Batches.TopK(targetIds ?? Enumerable.Range(0, vocab), probs, topK);
                    perMask.Add(candidates.Select(c =>
                    {
                        var filled = (int[])ids.Clone();
                        filled[m] = c.Id;
                        return new FillMaskCandidate(c.Value, c.Id, Tokenizer.Decode([c.Id]), Tokenizer.Decode(filled, skipSpecialTokens: masks[r].Count == 1));
                    }).ToList());
                }
                results[rows[r]] = perMask;
            }
        }
        return results.ToList();
    }

    /// <summary>Each target's id: the word itself when it is in the vocabulary, else its first piece (as transformers does, with a warning there).</summary>
    private int[] TargetIds(IReadOnlyList<string> targets)
    {
        var ids = new List<int>();
        foreach (var target in targets)
        {
            if (Tokenizer.TokenToId(target) is int id) { ids.Add(id); continue; }
            var pieces = Tokenizer.Encode(target, options: new EncodeOptions { AddSpecialTokens = false }).InputIds;
            if (pieces.Length == 0) throw new ArgumentException($"The target \"{target}\" gives no token.");
            ids.Add(pieces[0]);
        }
        return ids.Distinct().ToArray();
    }
}
