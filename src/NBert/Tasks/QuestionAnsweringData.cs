using System.Text.Json;
using NBert.Tokenization;
using NBert.Schema;

namespace NBert.Tasks;

/// <summary>A SQuAD question: its context and gold answers (none: unanswerable, SQuAD v2.0).</summary>
public sealed record QuestionExample(string Id, string Question, string Context, IReadOnlyList<(string Text, int Start)> Answers);

/// <summary>
/// Extractive QA data in SQuAD v1.1 / v2.0 JSON, turned into windows as transformers' run_qa does: question
/// first, the context truncated only, <c>max_seq_length</c> 384 with <c>doc_stride</c> 128, the question cut to
/// <c>max_query_length</c> 64 tokens; the answer's start and end tokens found through the offsets, and
/// <c>[CLS]</c> (0) for windows without the answer and for unanswerable questions.
/// </summary>
public static class QuestionAnsweringData
{
    /// <summary>How questions and contexts become windows, and how answers are picked from the logits (run_qa's arguments).</summary>
    public sealed record Options
    {
        /// <summary>Tokens per window, question, context and special tokens included (<c>max_seq_length</c>, 384).</summary>
        public int MaxSeqLength { get; init; } = 384;
        /// <summary>Context tokens shared by consecutive windows of a long context (<c>doc_stride</c>, 128).</summary>
        public int DocStride { get; init; } = 128;
        /// <summary>Question tokens kept; the rest is cut (<c>max_query_length</c>, 64).</summary>
        public int MaxQueryLength { get; init; } = 64;
        /// <summary>The longest answer predicted, in tokens (<c>max_answer_length</c>, 30).</summary>
        public int MaxAnswerLength { get; init; } = 30;
        /// <summary>Start and end candidates per window considered when predicting (<c>n_best_size</c>, 20).</summary>
        public int NBest { get; init; } = 20;
    }

    /// <summary>Reads SQuAD JSON (<c>{"data": [{"paragraphs": [{"context", "qas"}]}]}</c>; a further <c>.gz</c> is read as gzip).
    /// Questions marked <c>is_impossible</c> get no answers; a question without an <c>id</c> gets "#n".</summary>
    /// <exception cref="MissingFileException">There is no such file.</exception>
    /// <exception cref="NBertException">The file is not SQuAD JSON, or an answer is not in its context at its
    /// <c>answer_start</c>; the message names the file and question.</exception>
    public static List<QuestionExample> Read(string path)
    {
        if (!File.Exists(path)) throw new MissingFileException($"{path}: no such data file.", path);
        JsonElement root;
        try
        {
            using var stream = DataFiles.OpenRead(path);
            root = JsonDocument.Parse(stream).RootElement;
        }
        catch (JsonException e)
        {
            throw new NBertException($"{path}: not JSON ({NBertException.Quote(e.Message, 160)}).", e);
        }
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("data", out var data) || data.ValueKind != JsonValueKind.Array)
            throw new NBertException($"{path}: not SQuAD JSON (no \"data\" list).");
        var result = new List<QuestionExample>();
        foreach (var article in data.EnumerateArray())
            foreach (var paragraph in Array(article, "paragraphs", path))
            {
                string context = String(paragraph, "context", path, "a paragraph");
                foreach (var qa in Array(paragraph, "qas", path))
                {
                    if (qa.ValueKind != JsonValueKind.Object) throw new NBertException($"{path}: a question must be an object, not {qa.ValueKind.ToString().ToLowerInvariant()}.");
                    string id = qa.TryGetProperty("id", out var idValue) ? idValue.ToString() : $"#{result.Count}";
                    string where = $"{path}: question {id}";
                    string question = String(qa, "question", path, $"question {id}");
                    bool impossible = qa.TryGetProperty("is_impossible", out var imp) && imp.ValueKind == JsonValueKind.True;
                    var answers = new List<(string, int)>();
                    if (!impossible && qa.TryGetProperty("answers", out var list) && list.ValueKind == JsonValueKind.Array)
                        foreach (var a in list.EnumerateArray())
                        {
                            if (a.ValueKind != JsonValueKind.Object) throw new NBertException($"{where}: an answer must be an object with \"text\" and \"answer_start\".");
                            string text = String(a, "text", path, $"an answer of question {id}");
                            int start = a.TryGetProperty("answer_start", out var s) && s.ValueKind == JsonValueKind.Number && s.TryGetInt32(out int v) ? v
                                : throw new NBertException($"{where}: an answer's \"answer_start\" must be an integer, not {(a.TryGetProperty("answer_start", out var bad) ? bad.GetRawText() : "missing")}.");
                            if (start < 0 || start + text.Length > context.Length || string.CompareOrdinal(context, start, text, 0, text.Length) != 0)
                                throw new NBertException($"{where}: the answer '{text}' is not in its context at {start}.");
                            answers.Add((text, start));
                        }
                    result.Add(new QuestionExample(id, question, context, answers));
                }
            }
        return result;
    }

    private static IEnumerable<JsonElement> Array(JsonElement e, string name, string path) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var a) && a.ValueKind == JsonValueKind.Array
            ? a.EnumerateArray() : throw new NBertException($"{path}: expected a list \"{name}\".");

    private static string String(JsonElement e, string name, string path, string what) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var s) && s.ValueKind == JsonValueKind.String ? s.GetString()!
            : throw new NBertException($"{path}: {what} has no string \"{name}\".");

    /// <summary>The windows of every example with their answer positions (the first gold answer) and context offsets.</summary>
    public static List<Feature> Encode(IReadOnlyList<QuestionExample> examples, BertTokenizer tokenizer, Options options)
    {
        var encodeOptions = new EncodeOptions
        {
            MaxLength = options.MaxSeqLength, Stride = options.DocStride, Truncation = TruncationStrategy.OnlySecond, ReturnOverflowingTokens = true,
        };
        var features = new List<Feature>();
        for (int i = 0; i < examples.Count; i++)
        {
            var ex = examples[i];
            string question = tokenizer.CutAfterTokens(ex.Question.TrimStart(), options.MaxQueryLength);
            TokenEncoding first;
            try
            {
                first = tokenizer.Encode(question, ex.Context, encodeOptions);
            }
            catch (ArgumentException e)
            {
                throw new NBertException($"question {ex.Id}: {e.Message}", e);
            }
            foreach (var window in new[] { first }.Concat(first.Overflowing))
            {
                var offsets = new (int, int)[window.Length];
                int contextStart = -1, contextEnd = -1;
                for (int t = 0; t < window.Length; t++)
                {
                    bool context = window.SequenceIds[t] == 1;
                    offsets[t] = context ? window.Offsets[t] : (-1, -1);
                    if (context)
                    {
                        if (contextStart < 0) contextStart = t;
                        contextEnd = t;
                    }
                }
                int startPosition = 0, endPosition = 0;
                if (ex.Answers.Count > 0 && contextStart >= 0)
                {
                    var (text, startChar) = ex.Answers[0];
                    int endChar = startChar + text.Length;
                    if (offsets[contextStart].Item1 <= startChar && offsets[contextEnd].Item2 >= endChar)
                    {
                        int s = contextStart;
                        while (s <= contextEnd && offsets[s].Item1 <= startChar) s++;
                        int e = contextEnd;
                        while (e >= contextStart && offsets[e].Item2 >= endChar) e--;
                        (startPosition, endPosition) = (s - 1, e + 1);
                    }
                }
                features.Add(new Feature
                {
                    InputIds = window.InputIds, TokenTypeIds = window.TokenTypeIds, StartPosition = startPosition, EndPosition = endPosition,
                    Example = i, ContextOffsets = offsets,
                });
            }
        }
        return features;
    }

    /// <summary>
    /// The answer of each example from its windows' start and end logits, as run_qa's post-processing: the
    /// <c>n_best</c> starts and ends of each window, spans inside the context with end ≥ start and at most
    /// <c>max_answer_length</c> tokens, scored start + end logit. With <paramref name="allowImpossible"/>
    /// (SQuAD v2.0), the empty answer wins when the null score (the [CLS] logits, lowest over windows) beats
    /// the best span.
    /// </summary>
    public static List<string> Predict(IReadOnlyList<QuestionExample> examples, IReadOnlyList<Feature> features,
        IReadOnlyList<(float[] Start, float[] End)> logits, Options options, bool allowImpossible)
    {
        var best = new (double Score, string Text)?[examples.Count];
        var nullScore = Enumerable.Repeat(double.PositiveInfinity, examples.Count).ToArray();
        for (int f = 0; f < features.Count; f++)
        {
            var feature = features[f];
            var (start, end) = logits[f];
            int ex = feature.Example;
            var offsets = feature.ContextOffsets!;
            nullScore[ex] = Math.Min(nullScore[ex], start[0] + end[0]);
            var starts = TopIndices(start, feature.Length, options.NBest);
            var ends = TopIndices(end, feature.Length, options.NBest);
            foreach (int s in starts)
                foreach (int e in ends)
                {
                    if (offsets[s].Start < 0 || offsets[e].Start < 0 || e < s || e - s + 1 > options.MaxAnswerLength) continue;
                    double score = start[s] + end[e];
                    if (best[ex] is null || score > best[ex]!.Value.Score)
                        best[ex] = (score, examples[ex].Context[offsets[s].Start..offsets[e].End]);
                }
        }
        var result = new List<string>(examples.Count);
        for (int i = 0; i < examples.Count; i++)
        {
            if (best[i] is not { } b) result.Add("");
            else result.Add(allowImpossible && nullScore[i] > b.Score ? "" : b.Text);
        }
        return result;
    }

    private static int[] TopIndices(float[] values, int length, int n) =>
        Enumerable.Range(0, length).OrderByDescending(i => values[i]).ThenBy(i => i).Take(n).ToArray();
}
