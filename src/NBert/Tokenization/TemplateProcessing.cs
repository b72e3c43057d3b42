namespace NBert.Tokenization;

/// <summary>One piece of a template: a special token, or sequence A or B, with the type id it gets.</summary>
public readonly record struct TemplatePiece(bool IsSequence, string Id, int TypeId)
{
    public static TemplatePiece Special(string token, int typeId = 0) => new(false, token, typeId);
    public static TemplatePiece Sequence(string ab, int typeId) => new(true, ab, typeId);
}

/// <summary>
/// Hugging Face's TemplateProcessing post-processor: how special tokens surround one text or a pair.
/// BERT's is <c>[CLS] A [SEP]</c> and <c>[CLS] A [SEP] B:1 [SEP]:1</c>.
/// </summary>
public sealed class TemplateProcessing
{
    public IReadOnlyList<TemplatePiece> Single { get; }
    public IReadOnlyList<TemplatePiece> Pair { get; }
    /// <summary>The ids and token strings each special-token name stands for.</summary>
    public IReadOnlyDictionary<string, (int[] Ids, string[] Tokens)> SpecialTokens { get; }

    public TemplateProcessing(IReadOnlyList<TemplatePiece> single, IReadOnlyList<TemplatePiece> pair,
        IReadOnlyDictionary<string, (int[] Ids, string[] Tokens)> specialTokens)
    {
        foreach (var piece in single.Concat(pair))
        {
            if (piece.IsSequence && piece.Id is not ("A" or "B"))
                throw new ArgumentException($"Template sequence '{piece.Id}' must be A or B.");
            if (!piece.IsSequence && !specialTokens.ContainsKey(piece.Id))
                throw new ArgumentException($"Template special token '{piece.Id}' has no entry in special_tokens.");
        }
        if (single.Any(p => p.IsSequence && p.Id == "B"))
            throw new ArgumentException("The single-sequence template cannot use sequence B.");
        Single = single;
        Pair = pair;
        SpecialTokens = specialTokens;
    }

    /// <summary>BERT's template with the given [CLS] and [SEP] tokens.</summary>
    public static TemplateProcessing Bert(string cls, int clsId, string sep, int sepId) => new(
        [TemplatePiece.Special(cls), TemplatePiece.Sequence("A", 0), TemplatePiece.Special(sep)],
        [TemplatePiece.Special(cls), TemplatePiece.Sequence("A", 0), TemplatePiece.Special(sep),
         TemplatePiece.Sequence("B", 1), TemplatePiece.Special(sep, 1)],
        new Dictionary<string, (int[], string[])> { [cls] = ([clsId], [cls]), [sep] = ([sepId], [sep]) });

    /// <summary>How many tokens the template adds around one text (pair: false) or a pair (true).</summary>
    public int AddedTokens(bool pair) =>
        (pair ? Pair : Single).Where(p => !p.IsSequence).Sum(p => SpecialTokens[p.Id].Ids.Length);

    /// <summary>
    /// Applies the template to every combination of windows as Hugging Face does: the main encoding is
    /// (A, B); its overflowing windows are, in order, each A window with B and then with each B window,
    /// then A with each B window.
    /// </summary>
    internal TokenEncoding Process(TokenEncoding a, TokenEncoding? b, bool addSpecialTokens)
    {
        var main = Apply(a, b, addSpecialTokens);
        var overflowing = new List<TokenEncoding>();
        foreach (var ao in a.Overflowing)
        {
            overflowing.Add(Apply(ao, b, addSpecialTokens));
            if (b is not null)
                foreach (var bo in b.Overflowing) overflowing.Add(Apply(ao, bo, addSpecialTokens));
        }
        if (b is not null)
            foreach (var bo in b.Overflowing) overflowing.Add(Apply(a, bo, addSpecialTokens));
        main.Overflowing = overflowing;
        return main;
    }

    private TokenEncoding Apply(TokenEncoding a, TokenEncoding? b, bool addSpecialTokens)
    {
        var parts = new List<TokenEncoding>();
        foreach (var piece in b is null ? Single : Pair)
        {
            if (piece.IsSequence)
            {
                var (source, sequenceId) = piece.Id == "A" ? (a, 0) : (b!, 1);
                parts.Add(source.WithSequence(piece.TypeId, sequenceId));
            }
            else if (addSpecialTokens)
            {
                var (ids, tokens) = SpecialTokens[piece.Id];
                int n = ids.Length;
                parts.Add(new TokenEncoding(ids, Enumerable.Repeat(piece.TypeId, n).ToArray(),
                    Enumerable.Repeat(1, n).ToArray(), tokens, new (int, int)[n], new int?[n], new int?[n],
                    Enumerable.Repeat(1, n).ToArray()));
            }
        }
        return parts.Count == 0 ? TokenEncoding.CreateEmpty() : TokenEncoding.Concat(parts);
    }
}
