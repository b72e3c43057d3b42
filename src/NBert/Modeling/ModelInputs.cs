using NBert.Tensors;
using NBert.Tokenization;

namespace NBert.Modeling;

/// <summary>A batch for a BERT model: ids [batch, sequence], optional token types and attention mask
/// (all ones when absent; token types all zeros), as transformers' <c>input_ids</c>,
/// <c>token_type_ids</c> and <c>attention_mask</c>.</summary>
public sealed record ModelInputs
{
    /// <summary>Rows in the batch.</summary>
    public int Batch { get; }
    /// <summary>Tokens per row, padding included.</summary>
    public int SequenceLength { get; }
    /// <summary>Token ids, [batch, sequence] row-major (<c>input_ids</c>).</summary>
    public int[] InputIds { get; }
    /// <summary>Segment ids, [batch, sequence]: 0 for the first text, 1 for the second (<c>token_type_ids</c>); null
    /// means all zeros.</summary>
    public int[]? TokenTypeIds { get; }
    /// <summary>1 for a real token, 0 for padding, [batch, sequence] (<c>attention_mask</c>); null means all ones.</summary>
    public int[]? AttentionMask { get; }

    /// <summary>A batch from flat [batch, sequence] arrays, which are used as they are (not copied). Throws
    /// <see cref="ArgumentException"/> for sizes that are not positive, an array of another length, or a mask with values
    /// other than 0 and 1. Ids are checked against the model when it runs.</summary>
    public ModelInputs(int batch, int sequenceLength, int[] inputIds, int[]? tokenTypeIds = null, int[]? attentionMask = null)
    {
        if (batch <= 0 || sequenceLength <= 0) throw new ArgumentException($"A batch needs positive sizes, not [{batch}, {sequenceLength}].");
        long n = (long)batch * sequenceLength;
        void Check(int[]? a, string name)
        {
            if (a is not null && a.Length != n) throw new ArgumentException($"{name} has {a.Length} values, not batch x sequence = {n}.");
        }
        Check(inputIds ?? throw new ArgumentNullException(nameof(inputIds)), "input_ids");
        Check(tokenTypeIds, "token_type_ids");
        Check(attentionMask, "attention_mask");
        if (attentionMask is not null && attentionMask.Any(v => v is not (0 or 1)))
            throw new ArgumentException("attention_mask must hold only 0 and 1.");
        (Batch, SequenceLength, InputIds, TokenTypeIds, AttentionMask) = (batch, sequenceLength, inputIds, tokenTypeIds, attentionMask);
    }

    /// <summary>A batch from encodings of one length (pad them first).</summary>
    public static ModelInputs FromEncodings(IReadOnlyList<TokenEncoding> encodings)
    {
        if (encodings.Count == 0) throw new ArgumentException("No encodings.");
        int s = encodings[0].Length;
        if (encodings.Any(e => e.Length != s)) throw new ArgumentException("Encodings differ in length: pad them (PaddingStrategy.Longest).");
        return new ModelInputs(encodings.Count, s, encodings.SelectMany(e => e.InputIds).ToArray(),
            encodings.SelectMany(e => e.TokenTypeIds).ToArray(), encodings.SelectMany(e => e.AttentionMask).ToArray());
    }

    /// <summary>Row <paramref name="b"/> alone, as a batch of one.</summary>
    public ModelInputs Row(int b)
    {
        int s = SequenceLength;
        int[]? Slice(int[]? a) => a?.AsSpan(b * s, s).ToArray();
        return new ModelInputs(1, s, Slice(InputIds)!, Slice(TokenTypeIds), Slice(AttentionMask));
    }
}

/// <summary>A tokenizer's texts as a model's inputs: transformers' <c>tokenizer(texts, padding=True, truncation=True, return_tensors=...)</c>.</summary>
public static class TokenizerInputs
{
    /// <summary>
    /// Texts straight to a model's inputs, as transformers' <c>tokenizer(texts, padding=True, truncation=True)</c>:
    /// encoded on all cores, truncated to <paramref name="maxLength"/> (by default <see cref="BertTokenizer.MaxInputLength"/>, so the
    /// model's limit) unless <paramref name="truncation"/> is false, padded to the longest, with the attention mask.
    /// </summary>
    public static ModelInputs EncodeInputs(this BertTokenizer tokenizer, IReadOnlyList<string> texts, int? maxLength = null, bool truncation = true)
    {
        ArgumentNullException.ThrowIfNull(texts);
        return tokenizer.EncodeInputs(texts.Select(t => (t, (string?)null)).ToArray(), maxLength, truncation);
    }

    /// <summary>Texts or pairs (<c>TextPair</c> null for a single text) straight to a model's inputs: see
    /// <see cref="EncodeInputs(BertTokenizer, IReadOnlyList{string}, int?, bool)"/>; pairs lose tokens longest-first.</summary>
    public static ModelInputs EncodeInputs(this BertTokenizer tokenizer, IReadOnlyList<(string Text, string? TextPair)> inputs, int? maxLength = null, bool truncation = true)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        if (inputs.Count == 0) throw new ArgumentException("No texts to encode.", nameof(inputs));
        var options = new EncodeOptions
        {
            Padding = PaddingStrategy.Longest,
            Truncation = truncation ? TruncationStrategy.LongestFirst : TruncationStrategy.None,
            MaxLength = truncation ? maxLength ?? tokenizer.MaxInputLength : null,
        };
        return ModelInputs.FromEncodings(tokenizer.EncodeBatch(inputs, options));
    }
}
