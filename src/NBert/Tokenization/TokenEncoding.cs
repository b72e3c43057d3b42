namespace NBert.Tokenization;

/// <summary>
/// The result of tokenizing one text or pair, with Hugging Face's fields. Offsets are UTF-16 indices
/// into the caller's string (<c>text[Start..End]</c> is the token's source; <c>(0, 0)</c> for special
/// and padding tokens); for a pair, <see cref="SequenceIds"/> says which text an offset refers to.
/// </summary>
public sealed class TokenEncoding
{
    public int[] InputIds { get; }
    public int[] TokenTypeIds { get; }
    public int[] AttentionMask { get; }
    public string[] Tokens { get; }
    public (int Start, int End)[] Offsets { get; }
    /// <summary>Index of the word (pre-token) each token came from; null for special and padding tokens.</summary>
    public int?[] WordIds { get; }
    /// <summary>0 for the first text, 1 for the second; null for special and padding tokens.</summary>
    public int?[] SequenceIds { get; }
    /// <summary>1 where the post-processor added a special token or padding, else 0.</summary>
    public int[] SpecialTokensMask { get; }
    /// <summary>Further windows when truncation with a stride produced more than one (overflowing tokens).</summary>
    public IReadOnlyList<TokenEncoding> Overflowing { get; internal set; }

    public int Length => InputIds.Length;

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

    internal static TokenEncoding CreateEmpty() => new([], [], [], [], [], [], [], []);

    internal TokenEncoding Slice(int start, int length) => new(
        InputIds.AsSpan(start, length).ToArray(), TokenTypeIds.AsSpan(start, length).ToArray(),
        AttentionMask.AsSpan(start, length).ToArray(), Tokens.AsSpan(start, length).ToArray(),
        Offsets.AsSpan(start, length).ToArray(), WordIds.AsSpan(start, length).ToArray(),
        SequenceIds.AsSpan(start, length).ToArray(), SpecialTokensMask.AsSpan(start, length).ToArray());

    /// <summary>
    /// Hugging Face's <c>Encoding::truncate</c> (right side): keep the first <paramref name="maxLength"/>
    /// tokens; with a stride, the rest becomes overflowing windows of <paramref name="maxLength"/> tokens,
    /// each starting <c>maxLength - stride</c> after the previous one.
    /// </summary>
    internal TokenEncoding Truncate(int maxLength, int stride)
    {
        if (maxLength >= Length) return this;
        if (maxLength == 0) return new TokenEncoding([], [], [], [], [], [], [], [], [this]);
        if (stride >= maxLength)
            throw new ArgumentException($"stride ({stride}) must be less than the room left for this text ({maxLength} tokens once special tokens are counted): lower the stride or raise max_length.");
        var windows = new List<TokenEncoding>();
        int step = maxLength - stride;
        for (int start = 0; ; start += step)
        {
            int stop = Math.Min(start + maxLength, Length);
            windows.Add(Slice(start, stop - start));
            if (stop == Length) break;
        }
        var first = windows[0];
        first.Overflowing = windows.Skip(1).ToList();
        return first;
    }

    /// <summary>Concatenates encodings (no overflow handling: the post-processor combines windows).</summary>
    internal static TokenEncoding Concat(IReadOnlyList<TokenEncoding> parts)
    {
        if (parts.Count == 1) return parts[0];
        T[] Join<T>(Func<TokenEncoding, T[]> field) => parts.SelectMany(field).ToArray();
        return new TokenEncoding(Join(e => e.InputIds), Join(e => e.TokenTypeIds), Join(e => e.AttentionMask),
            Join(e => e.Tokens), Join(e => e.Offsets), Join(e => e.WordIds), Join(e => e.SequenceIds),
            Join(e => e.SpecialTokensMask));
    }

    /// <summary>Copy with every token's type id and sequence id set (what TemplateProcessing does to A and B).</summary>
    internal TokenEncoding WithSequence(int typeId, int? sequenceId) => new(InputIds,
        Enumerable.Repeat(typeId, Length).ToArray(), AttentionMask, Tokens, Offsets, WordIds,
        Enumerable.Repeat(sequenceId, Length).ToArray(), SpecialTokensMask);

    /// <summary>Pads on the right to <paramref name="length"/>, this encoding and its overflowing windows.</summary>
    internal TokenEncoding PadTo(int length, int padId, int padTypeId, string padToken)
    {
        var overflowing = Overflowing.Select(o => o.PadTo(length, padId, padTypeId, padToken)).ToList();
        int n = Length;
        if (length <= n) { Overflowing = overflowing; return this; }
        T[] Pad<T>(T[] a, T fill)
        {
            var r = new T[length];
            a.CopyTo(r, 0);
            r.AsSpan(n).Fill(fill);
            return r;
        }
        return new TokenEncoding(Pad(InputIds, padId), Pad(TokenTypeIds, padTypeId), Pad(AttentionMask, 0),
            Pad(Tokens, padToken), Pad(Offsets, (0, 0)), Pad(WordIds, null), Pad(SequenceIds, null),
            Pad(SpecialTokensMask, 1), overflowing);
    }
}
