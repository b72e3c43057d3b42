using System.Text.Json.Serialization;
using NBert.Modeling;
using NBert.Tokenization;
using NBert.Schema;

namespace NBert.Pipelines;

/// <summary>An answer span with its score and character offsets into the context (transformers' field names).</summary>
public sealed record QaAnswer(
    [property: JsonPropertyName("score")] float Score,
    [property: JsonPropertyName("start")] int Start,
    [property: JsonPropertyName("end")] int End,
    [property: JsonPropertyName("answer")] string Answer);

/// <summary>The question-answering pipeline's arguments, with transformers 4's defaults.</summary>
public sealed record QuestionAnsweringOptions
{
    /// <summary>How many answers to return, best first (<c>top_k</c>, at least 1). Default 1.</summary>
    public int TopK { get; init; } = 1;
    /// <summary>Null: min(128, max_seq_len / 2).</summary>
    public int? DocStride { get; init; }
    /// <summary>The longest answer, in tokens (<c>max_answer_len</c>, at least 1). Default 15.</summary>
    public int MaxAnswerLen { get; init; } = 15;
    /// <summary>Null: min(the tokenizer's model_max_length, 384).</summary>
    public int? MaxSeqLen { get; init; }
    /// <summary>Questions are cut to this many tokens (<c>max_question_len</c>, at least 1). Default 64.</summary>
    public int MaxQuestionLen { get; init; } = 64;
    /// <summary>Let the empty answer (<c>""</c> at 0..0, scored by the [CLS] token) compete, for questions the context
    /// may not answer, as SQuAD 2.0 models are trained (<c>handle_impossible_answer</c>). Default false.</summary>
    public bool HandleImpossibleAnswer { get; init; }
    /// <summary>Widen each answer to whole words (<c>align_to_words</c>); false gives the tokens' exact characters.
    /// Default true.</summary>
    public bool AlignToWords { get; init; } = true;
}

/// <summary>
/// The extractive question-answering pipeline as transformers 4 had it: the question first and only the
/// context truncated, in windows of <c>max_seq_len</c> overlapping by <c>doc_stride</c>. In each window, start
/// and end logits outside the context (question, separators, padding) are pushed to -10000 and softmaxed; a
/// span scores start probability × end probability, with end ≥ start and at most <c>max_answer_len</c>
/// tokens; the best spans of all windows compete. With <c>handle_impossible_answer</c>, the empty answer
/// competes with the [CLS] score (lowest over windows). Spans are widened to whole words unless
/// <c>align_to_words</c> is off.
/// </summary>
public sealed class QuestionAnswering : Pipeline
{
    /// <summary>A pipeline over a tokenizer and a <see cref="BertForQuestionAnswering"/>.</summary>
    public QuestionAnswering(BertTokenizer tokenizer, BertPreTrainedModel model)
        : base(tokenizer, Require(model, "question-answering", BertArchitecture.BertForQuestionAnswering)) { }

    /// <summary>Loads a question-answering model and its tokenizer by directory or name.</summary>
    public static QuestionAnswering FromPretrained(string nameOrPath) => FromPretrained(Hub.ModelResolver.ResolveModel(nameOrPath));

    /// <summary>Loads a question-answering model and its tokenizer from files resolved already.</summary>
    public static QuestionAnswering FromPretrained(Hub.ResolvedModel model) =>
        Load(model, BertArchitecture.BertForQuestionAnswering, (t, m) => new QuestionAnswering(t, m));

    /// <summary>The best <c>top_k</c> answers to a question from its context, best first.</summary>
    public IReadOnlyList<QaAnswer> Run(string question, string context, QuestionAnsweringOptions? options = null) => SinglePair(() => Run([(question, context)], options)[0], question, context);

    /// <summary>The best <c>top_k</c> answers of each (question, context), in the order given; <paramref name="cancellationToken"/>
    /// is checked before each batch.</summary>
    public IReadOnlyList<IReadOnlyList<QaAnswer>> Run(IReadOnlyList<(string Question, string Context)> inputs, QuestionAnsweringOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var o = options ?? new QuestionAnsweringOptions();
        if (o.TopK < 1) throw new ArgumentOutOfRangeException(nameof(options), $"top_k must be at least 1, not {o.TopK}.");
        if (o.MaxAnswerLen < 1) throw new ArgumentOutOfRangeException(nameof(options), $"max_answer_len must be at least 1, not {o.MaxAnswerLen}.");
        if (o.MaxQuestionLen < 1) throw new ArgumentOutOfRangeException(nameof(options), $"max_question_len must be at least 1, not {o.MaxQuestionLen}.");
        if (o.DocStride is < 0) throw new ArgumentOutOfRangeException(nameof(options), $"doc_stride must not be negative, not {o.DocStride}.");
        if (o.MaxSeqLen is < 4) throw new ArgumentOutOfRangeException(nameof(options), $"max_seq_len must leave room for [CLS], two [SEP] and a token, not {o.MaxSeqLen}.");
        int maxSeqLen = Math.Min(o.MaxSeqLen ?? Math.Min(Tokenizer.ModelMaxLength ?? 384, 384), Model.Config.MaxSequenceLength);
        int docStride = o.DocStride ?? Math.Min(maxSeqLen / 2, 128);
        if (docStride > maxSeqLen) throw new ArgumentException($"doc_stride ({docStride}) is larger than max_seq_len ({maxSeqLen}).", nameof(options));
        var encodeOptions = new EncodeOptions
        {
            MaxLength = maxSeqLen, Stride = docStride, Truncation = TruncationStrategy.OnlySecond, ReturnOverflowingTokens = true,
        };
        var windows = new List<(int Input, TokenEncoding Encoding)>();
        for (int i = 0; i < inputs.Count; i++)
        {
            var (question, context) = inputs[i];
            if (string.IsNullOrWhiteSpace(question)) throw new BatchItemException(i, new ArgumentException("the question is empty."));
            if (string.IsNullOrWhiteSpace(context)) throw new BatchItemException(i, new ArgumentException("the context is empty."));
            TokenEncoding first;
            try
            {
                first = Tokenizer.Encode(Tokenizer.CutAfterTokens(question, o.MaxQuestionLen), context, encodeOptions);
            }
            catch (ArgumentException e)
            {
                throw new BatchItemException(i, new ArgumentException($"{e.Message} (the question leaves no room for the context: raise max_seq_len or lower max_question_len).", e));
            }
            foreach (var w in new[] { first }.Concat(first.Overflowing)) windows.Add((i, w));
        }
        var logits = new (float[] Start, float[] End)[windows.Count];
        Batches.Run(Model, Tokenizer, windows.Select(w => w.Encoding).ToList(), BatchSize, (rows, padded, output) =>
        {
            int s = padded[0].Length;
            for (int r = 0; r < rows.Length; r++)
            {
                int n = windows[rows[r]].Encoding.Length;
                logits[rows[r]] = (output.StartLogits!.Data.AsSpan(r * s, n).ToArray(), output.EndLogits!.Data.AsSpan(r * s, n).ToArray());
            }
        }, cancellationToken);
        return Enumerable.Range(0, inputs.Count).Select(i =>
        {
            var mine = Enumerable.Range(0, windows.Count).Where(w => windows[w].Input == i).ToList();
            return Answers(inputs[i].Context, mine.Select(w => windows[w].Encoding).ToList(), mine.Select(w => logits[w]).ToList(), o);
        }).ToList();
    }

    /// <summary>The answers of one context from its windows' encodings and start/end logits.</summary>
    public static List<QaAnswer> Answers(string context, IReadOnlyList<TokenEncoding> windows, IReadOnlyList<(float[] Start, float[] End)> logits,
        QuestionAnsweringOptions o)
    {
        var answers = new List<QaAnswer>();
        float minNull = float.PositiveInfinity;
        for (int w = 0; w < windows.Count; w++)
        {
            var e = windows[w];
            int n = e.Length;
            // Allowed: context tokens and [CLS] (index 0), as transformers' p_mask.
            var allowed = new bool[n];
            for (int t = 0; t < n; t++) allowed[t] = e.SequenceIds[t] == 1 || t == 0;
            var start = Probabilities(logits[w].Start, allowed);
            var end = Probabilities(logits[w].End, allowed);
            minNull = Math.Min(minNull, start[0] * end[0]);
            start[0] = end[0] = 0;
            foreach (var (s, t, score) in BestSpans(start, end, o.TopK, o.MaxAnswerLen))
            {
                if (!allowed[s] || !allowed[t]) continue;
                var (from, to) = o.AlignToWords ? WordSpan(e, s, t) : (e.Offsets[s].Start, e.Offsets[t].End);
                answers.Add(new QaAnswer(score, from, to, context[from..to]));
            }
        }
        if (o.HandleImpossibleAnswer) answers.Add(new QaAnswer(minNull, 0, 0, ""));
        return answers.OrderByDescending(a => a.Score).Take(o.TopK).ToList(); // stable, as Python's sorted
    }

    private static float[] Probabilities(float[] logits, bool[] allowed)
    {
        var masked = logits.Select((x, i) => allowed[i] ? x : -10000f).ToArray();
        return Batches.Softmax(masked);
    }

    /// <summary>The top_k (start, end) of start[s]·end[e] with s ≤ e &lt; s + max_answer_len, best first; among equal
    /// scores the lower flattened index first (numpy's argmax).</summary>
    private static IEnumerable<(int Start, int End, float Score)> BestSpans(float[] start, float[] end, int topK, int maxAnswerLen)
    {
        var spans = new List<(int, int, float)>();
        for (int s = 0; s < start.Length; s++)
            for (int e = s; e < Math.Min(end.Length, s + maxAnswerLen); e++)
                spans.Add((s, e, start[s] * end[e]));
        // Candidates outside the band score 0 in transformers' matrix; they only matter when fewer than top_k spans score above 0.
        return spans.OrderByDescending(x => x.Item3).ThenBy(x => x.Item1).ThenBy(x => x.Item2).Take(topK);
    }

    /// <summary>The characters of the whole words that tokens s and t belong to (within this window).</summary>
    private static (int Start, int End) WordSpan(TokenEncoding e, int s, int t)
    {
        if (e.WordIds[s] is not int first || e.WordIds[t] is not int last) return (e.Offsets[s].Start, e.Offsets[t].End);
        int from = e.Offsets[s].Start, to = e.Offsets[t].End;
        for (int i = 0; i < e.Length; i++)
        {
            if (e.SequenceIds[i] != 1) continue;
            if (e.WordIds[i] == first) from = Math.Min(from, e.Offsets[i].Start);
            if (e.WordIds[i] == last) to = Math.Max(to, e.Offsets[i].End);
        }
        return (from, to);
    }
}
