using System.Text.Json.Serialization;
using NBert.Modeling;
using NBert.Tokenization;
using NBert.Schema;

namespace NBert.Pipelines;

/// <summary>One candidate for a [MASK], with transformers' field names.</summary>
public sealed record FillMaskCandidate(
    [property: JsonPropertyName("score")] float Score,
    [property: JsonPropertyName("token")] int Token,
    [property: JsonPropertyName("token_str")] string TokenStr,
    [property: JsonPropertyName("sequence")] string Sequence);

/// <summary>Options of <see cref="FillMask"/>, with transformers' defaults.</summary>
public sealed record FillMaskOptions
{
    /// <summary>Candidates per [MASK], best first (<c>top_k</c>).</summary>
    public int TopK { get; init; } = 5;
    /// <summary>Only these words are scored (<c>targets</c>): a word the vocabulary lacks stands for its first piece.</summary>
    public IReadOnlyList<string>? Targets { get; init; }
}

/// <summary>
/// transformers' <c>fill-mask</c> pipeline: the softmax over the vocabulary at each [MASK], the <c>top_k</c> best
/// (or the best among <c>targets</c>), each with the text it makes. <see cref="Run(string, FillMaskOptions?)"/> takes
/// texts with one [MASK]; <see cref="RunEachMask(string, FillMaskOptions?)"/> gives a list per [MASK] (with several
/// masks, the sequence keeps the special tokens and the other masks, as transformers decodes it).
/// </summary>
public sealed class FillMask : Pipeline
{
    /// <summary>A pipeline over a tokenizer and a <see cref="BertForMaskedLM"/> or <see cref="BertForPreTraining"/>.</summary>
    public FillMask(BertTokenizer tokenizer, BertPreTrainedModel model)
        : base(tokenizer, Require(model, "fill-mask", BertArchitecture.BertForMaskedLM, BertArchitecture.BertForPreTraining)) { }

    /// <summary>Loads a masked-LM (or pre-training) model and its tokenizer by directory or name.</summary>
    public static FillMask FromPretrained(string nameOrPath) => FromPretrained(Hub.ModelResolver.ResolveModel(nameOrPath));

    /// <summary>Loads a masked-LM (or pre-training) model and its tokenizer from files resolved already.</summary>
    public static FillMask FromPretrained(Hub.ResolvedModel model) =>
        Load(model, BertArchitecture.BertForMaskedLM, (t, m) => new FillMask(t, m), orAsConfigured: BertArchitecture.BertForPreTraining);

    /// <summary>The candidates for the [MASK] of a text that has one.</summary>
    public IReadOnlyList<FillMaskCandidate> Run(string text, FillMaskOptions? options = null) => Single(() => Run([text], options)[0], text);

    /// <summary>The candidates for the [MASK] of each text (each must have exactly one), in the order given.</summary>
    public IReadOnlyList<IReadOnlyList<FillMaskCandidate>> Run(IReadOnlyList<string> texts, FillMaskOptions? options = null) =>
        Run(texts, options, exactlyOneMask: true).Select(p => p[0]).ToList();

    /// <summary>The candidates for each [MASK] of a text, a list per mask.</summary>
    public IReadOnlyList<IReadOnlyList<FillMaskCandidate>> RunEachMask(string text, FillMaskOptions? options = null) => Single(() => RunEachMask([text], options)[0], text);

    /// <summary>The candidates for each [MASK] of each text (a text without one is an error naming it), in the order given.</summary>
    public IReadOnlyList<IReadOnlyList<IReadOnlyList<FillMaskCandidate>>> RunEachMask(IReadOnlyList<string> texts, FillMaskOptions? options = null) =>
        Run(texts, options, exactlyOneMask: false);

    /// <summary>Every text's masks are checked before the model runs: a text with none, or with several where one
    /// is wanted, costs no forward pass.</summary>
    private IReadOnlyList<IReadOnlyList<IReadOnlyList<FillMaskCandidate>>> Run(IReadOnlyList<string> texts, FillMaskOptions? options, bool exactlyOneMask)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var o = options ?? new FillMaskOptions();
        int topK = o.TopK;
        var targets = o.Targets;
        if (topK < 1) throw new ArgumentOutOfRangeException(nameof(options), $"top_k must be at least 1, not {topK}.");
        int maskId = Tokenizer.TokenToId(Tokenizer.MaskToken) ?? throw new NBertException($"The tokenizer has no mask token ({Tokenizer.MaskToken} is not in its vocabulary): fill-mask needs one.");
        if (targets is { Count: 0 }) throw new ArgumentException("targets is empty: give at least one word, or none for the whole vocabulary.", nameof(options));
        int[]? targetIds = targets is null ? null : TargetIds(targets);
        var encodeOptions = new EncodeOptions { MaxLength = MaxLength, Truncation = TruncationStrategy.LongestFirst };
        var encodings = Tokenizer.EncodeBatch(texts, encodeOptions);
        for (int i = 0; i < texts.Count; i++)
            if (!encodings[i].InputIds.Contains(maskId))
                throw new BatchItemException(i, new ArgumentException(texts[i].Contains(Tokenizer.MaskToken, StringComparison.Ordinal)
                    ? $"its {Tokenizer.MaskToken} comes after the first {MaxLength} tokens, the most the model takes, so truncation cut it off: shorten the text (\"{NBertException.Quote(texts[i])}\")."
                    : $"no {Tokenizer.MaskToken} token in \"{NBertException.Quote(texts[i])}\"."));
        if (exactlyOneMask)
            for (int i = 0; i < texts.Count; i++)
                if (encodings[i].InputIds.Count(id => id == maskId) is var count and not 1)
                    throw new BatchItemException(i, new ArgumentException($"the text has {count} {Tokenizer.MaskToken} tokens: RunEachMask gives candidates for each."));
        var results = new IReadOnlyList<IReadOnlyList<FillMaskCandidate>>[texts.Count];
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
                var perMask = new List<IReadOnlyList<FillMaskCandidate>>();
                foreach (int m in masks[r])
                {
                    var probs = Batches.Softmax(logits.AsSpan(at++ * vocab, vocab));
                    // More than there are candidates is all of them (transformers caps top_k at the targets too).
                    var candidates = Batches.TopK(targetIds ?? Enumerable.Range(0, vocab), probs, Math.Min(topK, targetIds?.Length ?? vocab));
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
        return results;
    }

    /// <summary>Each target's id: the word itself when it is in the vocabulary, else its first piece (as transformers does, with a warning there).</summary>
    private int[] TargetIds(IReadOnlyList<string> targets)
    {
        var ids = new List<int>();
        foreach (var target in targets)
        {
            if (Tokenizer.TokenToId(target) is int id) { ids.Add(id); continue; }
            var pieces = Tokenizer.Encode(target, options: new EncodeOptions { AddSpecialTokens = false }).InputIds;
            if (pieces.Length == 0) throw new ArgumentException($"The target \"{NBertException.Quote(target)}\" gives no token.", "options");
            // As transformers warns: the word is not a token, so its first piece stands for it.
            NBertWarnings.Raise($"The target \"{NBertException.Quote(target)}\" is not in the model's vocabulary: its first piece, \"{Tokenizer.IdToToken(pieces[0])}\", stands for it.");
            ids.Add(pieces[0]);
        }
        return ids.Distinct().ToArray();
    }
}
