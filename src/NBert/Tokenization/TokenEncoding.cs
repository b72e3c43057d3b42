namespace NBert.Tokenization;

/// <summary>
/// The result of tokenizing one text or pair, with Hugging Face's fields. Offsets are UTF-16 indices
/// into the caller's string (<c>text[Start..End]</c> is the token's source; <c>(0, 0)</c> for special
/// and padding tokens); for a pair, <see cref="SequenceIds"/> says which text an offset refers to.
/// </summary>
public sealed class TokenEncoding
{
    /// <summary>Token ids (<c>input_ids</c>).</summary>
    public int[] InputIds { get; }
    /// <summary>0 for the first text and its special tokens, 1 for the second (<c>token_type_ids</c>).</summary>
    public int[] TokenTypeIds { get; }
    /// <summary>1 for a token, 0 for padding (<c>attention_mask</c>).</summary>
    public int[] AttentionMask { get; }
    /// <summary>The token strings, continuation pieces with their prefix (<c>##ing</c>).</summary>
    public string[] Tokens { get; }
    /// <summary>Each token's UTF-16 range [Start, End) in its text (<c>offset_mapping</c>).</summary>
    public (int Start, int End)[] Offsets { get; }
    /// <summary>Index of the word (pre-token) each token came from; null for special and padding tokens.</summary>
    public int?[] WordIds { get; }
    /// <summary>0 for the first text, 1 for the second; null for special and padding tokens.</summary>
    public int?[] SequenceIds { get; }
    /// <summary>1 where the post-processor added a special token or padding, else 0.</summary>
    public int[] SpecialTokensMask { get; }
    /// <summary>Further windows when truncation with a stride produced more than one (overflowing tokens).</summary>
    public IReadOnlyList<TokenEncoding> Overflowing { get; internal set; }

    /// <summary>How many tokens, special tokens and padding included.</summary>
    public int Length => InputIds.Length;

    /// <summary>When truncation dropped tokens (and kept no overflowing windows of them): how many tokens the text or
    /// pair had before, special tokens included; null when nothing was dropped. What lets a pipeline say what it cut.</summary>
    internal int? TruncatedFrom { get; set; }

    internal TokenEncoding(int[] ids, int[] typeIds, int[] attention, string[] tokens, (int, int)[] offsets,
        int?[] words, int?[] sequences, int[] special, IReadOnlyList<TokenEncoding>? overflowing = null)
    {
        InputIds = ids;
        TokenTypeIds = typeIds;
        AttentionMask = attention;
        Tokens = tokens;
        Offsets = offsets;
        WordIds = words;
        SequenceIds = sequences;
        SpecialTokensMask = special;
        Overflowing = overflowing ?? [];
    }

    /// <summary>Pads on the right to <paramref name="length"/>, this encoding and its overflowing windows
    /// (a new encoding; this one is left as it is).</summary>
    internal TokenEncoding PadTo(int length, int padId, int padTypeId, string padToken)
    {
        var overflowing = Overflowing.Select(o => o.PadTo(length, padId, padTypeId, padToken)).ToList();
        int n = Length;
        if (length <= n)
            return overflowing.Count == 0 ? this : new TokenEncoding(InputIds, TokenTypeIds, AttentionMask, Tokens, Offsets,
                WordIds, SequenceIds, SpecialTokensMask, overflowing) { TruncatedFrom = TruncatedFrom };
        T[] Pad<T>(T[] a, T fill)
        {
            var r = new T[length];
            a.CopyTo(r, 0);
            r.AsSpan(n).Fill(fill);
            return r;
        }
        return new TokenEncoding(Pad(InputIds, padId), Pad(TokenTypeIds, padTypeId), Pad(AttentionMask, 0),
            Pad(Tokens, padToken), Pad(Offsets, (0, 0)), Pad(WordIds, null), Pad(SequenceIds, null),
            Pad(SpecialTokensMask, 1), overflowing) { TruncatedFrom = TruncatedFrom };
    }
}
