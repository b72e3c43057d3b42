namespace NBert.Tokenization;

/// <summary>One piece of a template: a special token, or sequence A or B, with the type id it gets.</summary>
public readonly record struct TemplatePiece(bool IsSequence, string Id, int TypeId)
{
    /// <summary>A special token, named by its key in <see cref="TemplateProcessing.SpecialTokens"/> (<c>[CLS]</c>).</summary>
    public static TemplatePiece Special(string token, int typeId = 0) => new(false, token, typeId);
    /// <summary>The first (<c>"A"</c>) or second (<c>"B"</c>) text, its tokens given <paramref name="typeId"/>.</summary>
    public static TemplatePiece Sequence(string ab, int typeId) => new(true, ab, typeId);
}

/// <summary>
/// Hugging Face's TemplateProcessing post-processor: how special tokens surround one text or a pair.
/// BERT's is <c>[CLS] A [SEP]</c> and <c>[CLS] A [SEP] B:1 [SEP]:1</c>.
/// </summary>
public sealed class TemplateProcessing
{
    /// <summary>The template for one text (<c>single</c>).</summary>
    public IReadOnlyList<TemplatePiece> Single { get; }
    /// <summary>The template for a pair of texts (<c>pair</c>).</summary>
    public IReadOnlyList<TemplatePiece> Pair { get; }
    /// <summary>The ids and token strings each special-token name stands for.</summary>
    public IReadOnlyDictionary<string, (int[] Ids, string[] Tokens)> SpecialTokens { get; }

    /// <summary>A post-processor from its two templates and the special tokens they name; <see cref="ArgumentException"/>
    /// for a sequence other than A or B, B in the single template, or a special token without an entry.</summary>
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

    /// <summary>RoBERTa's template (Hugging Face's RobertaProcessing): <c>&lt;s&gt; A &lt;/s&gt;</c> and
    /// <c>&lt;s&gt; A &lt;/s&gt; &lt;/s&gt; B &lt;/s&gt;</c>, every type id 0.</summary>
    public static TemplateProcessing Roberta(string cls, int clsId, string sep, int sepId) => new(
        [TemplatePiece.Special(cls), TemplatePiece.Sequence("A", 0), TemplatePiece.Special(sep)],
        [TemplatePiece.Special(cls), TemplatePiece.Sequence("A", 0), TemplatePiece.Special(sep), TemplatePiece.Special(sep),
         TemplatePiece.Sequence("B", 0), TemplatePiece.Special(sep)],
        new Dictionary<string, (int[], string[])> { [cls] = ([clsId], [cls]), [sep] = ([sepId], [sep]) });

    /// <summary>The template of a tokenizer without post-processor: the texts as they are, B with type id 1.</summary>
    internal static TemplateProcessing Plain { get; } = new([TemplatePiece.Sequence("A", 0)],
        [TemplatePiece.Sequence("A", 0), TemplatePiece.Sequence("B", 1)], new Dictionary<string, (int[], string[])>());

    /// <summary>How many tokens the template adds around one text (pair: false) or a pair (true).</summary>
    public int AddedTokens(bool pair) =>
        (pair ? Pair : Single).Where(p => !p.IsSequence).Sum(p => SpecialTokens[p.Id].Ids.Length);

    /// <summary>
    /// Applies the template to every combination of windows as Hugging Face does: the main encoding is
    /// (A, B); its overflowing windows are, in order, each further A window with B and then with each
    /// further B window, then A with each further B window. Windows are ranges of <paramref name="sink"/>.
    /// </summary>
    internal TokenEncoding Process(TokenSink sink, List<(int Start, int Length)> a, List<(int Start, int Length)>? b,
        bool addSpecialTokens, string[] tokenOf)
    {
        var main = Build(sink, a[0], b?[0], addSpecialTokens, tokenOf);
        if (a.Count == 1 && (b is null || b.Count == 1)) return main;
        var overflowing = new List<TokenEncoding>();
        for (int i = 1; i < a.Count; i++)
        {
            overflowing.Add(Build(sink, a[i], b?[0], addSpecialTokens, tokenOf));
            if (b is not null)
                for (int j = 1; j < b.Count; j++) overflowing.Add(Build(sink, a[i], b[j], addSpecialTokens, tokenOf));
        }
        if (b is not null)
            for (int j = 1; j < b.Count; j++) overflowing.Add(Build(sink, a[0], b[j], addSpecialTokens, tokenOf));
        main.Overflowing = overflowing;
        return main;
    }

    /// <summary>One encoding: every field written once, straight from the sink.</summary>
    private TokenEncoding Build(TokenSink sink, (int Start, int Length) a, (int Start, int Length)? b, bool addSpecialTokens, string[] tokenOf)
    {
        var pieces = b is null ? Single : Pair;
        int n = 0;
        foreach (var piece in pieces)
            n += piece.IsSequence ? (piece.Id == "A" ? a.Length : b!.Value.Length) : addSpecialTokens ? SpecialTokens[piece.Id].Ids.Length : 0;
        var ids = new int[n];
        var types = new int[n];
        var attention = new int[n];
        var tokens = new string[n];
        var offsets = new (int, int)[n];
        var words = new int?[n];
        var sequences = new int?[n];
        var special = new int[n];
        attention.AsSpan().Fill(1);
        int k = 0;
        foreach (var piece in pieces)
        {
            if (piece.IsSequence)
            {
                bool isA = piece.Id == "A";
                var (start, length) = isA ? a : b!.Value;
                int sequence = isA ? 0 : 1;
                sink.Ids.AsSpan(start, length).CopyTo(ids.AsSpan(k));
                types.AsSpan(k, length).Fill(piece.TypeId);
                for (int i = 0; i < length; i++, k++)
                {
                    int t = start + i;
                    tokens[k] = sink.Texts[t] ?? tokenOf[sink.Ids[t]];
                    offsets[k] = i == 0 ? (sink.FirstStarts[t], sink.FirstEnds[t]) : (sink.Starts[t], sink.Ends[t]);
                    words[k] = sink.Words[t];
                    sequences[k] = sequence;
                }
            }
            else if (addSpecialTokens)
            {
                var (specialIds, specialTokens) = SpecialTokens[piece.Id];
                for (int i = 0; i < specialIds.Length; i++, k++)
                {
                    ids[k] = specialIds[i];
                    types[k] = piece.TypeId;
                    tokens[k] = specialTokens[i];
                    special[k] = 1;
                }
            }
        }
        return new TokenEncoding(ids, types, attention, tokens, offsets, words, sequences, special);
    }
}
