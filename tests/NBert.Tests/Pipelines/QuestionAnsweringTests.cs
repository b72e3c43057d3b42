using NBert.Pipelines;
using NBert.Tokenization;

namespace NBert.Tests.Pipelines;

/// <summary>
/// The QA pipeline has no golden in transformers 5: these cases are computed by hand from the documented
/// transformers 4 algorithm, with logits chosen so the expected answer and score can be written down.
/// </summary>
public class QuestionAnsweringTests
{
    private static readonly BertTokenizer Tokenizer = BertTokenizer.FromPretrained(Path.Combine(Fixtures.RepoRoot, "models", "bert-base-uncased"));
    private const string Question = "Who led the Norse raiders?";
    private const string Context =
        "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, a region in France. " +
        "They were descended from Norse raiders and pirates from Denmark, Iceland and Norway who, under their leader Rollo Johanson, " +
        "agreed to swear fealty to King Charles III of West Francia. Through generations of assimilation and mixing with the native " +
        "Frankish and Roman-Gaulish populations, their descendants would gradually merge with the Carolingian-based cultures of West Francia.";

    private static List<TokenEncoding> Windows(int maxLength, int stride)
    {
        var e = Tokenizer.Encode(Question, Context, new EncodeOptions
        {
            MaxLength = maxLength, Stride = stride, Truncation = TruncationStrategy.OnlySecond, ReturnOverflowingTokens = true,
        });
        return [e, .. e.Overflowing];
    }

    /// <summary>Token index of the context character position in a window, or -1.</summary>
    private static int TokenAt(TokenEncoding w, int charIndex)
    {
        for (int t = 0; t < w.Length; t++)
            if (w.SequenceIds[t] == 1 && w.Offsets[t].Start <= charIndex && charIndex < w.Offsets[t].End) return t;
        return -1;
    }

    private static int Allowed(TokenEncoding w) => Enumerable.Range(0, w.Length).Count(t => w.SequenceIds[t] == 1 || t == 0);

    [Fact]
    public void The_answer_is_found_in_the_window_that_holds_it_whole_with_the_softmax_product_score()
    {
        int start = Context.IndexOf("Rollo Johanson", StringComparison.Ordinal), end = start + "Rollo Johanson".Length;
        // The first window length (stride 8) at which a window ends inside the answer.
        int length = Enumerable.Range(24, 24).First(l => Windows(l, 8).Any(w => TokenAt(w, start) >= 0 && TokenAt(w, end - 1) < 0));
        var windows = Windows(length, 8);
        Assert.True(windows.Count >= 6); // a context many windows long
        // The window that holds the whole answer, and an earlier one that holds only its start.
        int whole = windows.FindIndex(w => TokenAt(w, start) >= 0 && TokenAt(w, end - 1) >= 0);
        int partial = windows.FindIndex(w => TokenAt(w, start) >= 0 && TokenAt(w, end - 1) < 0);
        Assert.True(whole >= 0 && partial >= 0, $"whole {whole}, partial {partial}");
        var logits = windows.Select(w => (new float[w.Length], new float[w.Length])).ToList();
        logits[whole].Item1[TokenAt(windows[whole], start)] = 8;
        logits[whole].Item2[TokenAt(windows[whole], end - 1)] = 8;
        if (partial >= 0) logits[partial].Item1[TokenAt(windows[partial], start)] = 8; // its end cannot be there
        var answers = QuestionAnswering.Answers(Context, windows, logits, new QuestionAnsweringOptions { MaxAnswerLen = 15 });
        var best = Assert.Single(answers);
        Assert.Equal("Rollo Johanson", best.Answer);
        Assert.Equal((start, end), (best.Start, best.End));
        // softmax over the allowed tokens ([CLS] and context): e^8 / (e^8 + (n - 1)), for start and for end.
        int n = Allowed(windows[whole]);
        double p = Math.Exp(8) / (Math.Exp(8) + n - 1);
        Assert.Equal(p * p, best.Score, 5);
    }

    [Fact]
    public void An_impossible_answer_wins_with_the_lowest_cls_score_when_allowed()
    {
        var windows = Windows(maxLength: 48, stride: 16);
        var logits = windows.Select(w =>
        {
            var s = new float[w.Length];
            var e = new float[w.Length];
            s[0] = e[0] = 6; // [CLS]
            return (s, e);
        }).ToList();
        logits[1].Item1[0] = logits[1].Item2[0] = 5; // the lowest null score is window 1's
        var answers = QuestionAnswering.Answers(Context, windows, logits, new QuestionAnsweringOptions { HandleImpossibleAnswer = true, TopK = 2 });
        Assert.Equal(2, answers.Count);
        Assert.Equal(("", 0, 0), (answers[0].Answer, answers[0].Start, answers[0].End));
        int n = Allowed(windows[1]);
        double p = Math.Exp(5) / (Math.Exp(5) + n - 1);
        Assert.Equal(p * p, answers[0].Score, 5);
        Assert.True(answers[1].Answer.Length > 0 && answers[1].Score < answers[0].Score);

        var without = QuestionAnswering.Answers(Context, windows, logits, new QuestionAnsweringOptions());
        Assert.NotEqual("", Assert.Single(without).Answer);
    }

    [Fact]
    public void Spans_widen_to_whole_words_unless_align_to_words_is_off()
    {
        var windows = Windows(maxLength: 384, stride: 128);
        var w = Assert.Single(windows);
        int at = Context.IndexOf("Johanson", StringComparison.Ordinal);
        // the last piece of "johanson" alone
        int last = Enumerable.Range(0, w.Length).Last(t => w.SequenceIds[t] == 1 && w.Offsets[t].End == at + "Johanson".Length);
        Assert.StartsWith("##", w.Tokens[last]);
        var s = new float[w.Length];
        var e = new float[w.Length];
        s[last] = e[last] = 9;
        var aligned = QuestionAnswering.Answers(Context, windows, [(s, e)], new QuestionAnsweringOptions());
        Assert.Equal("Johanson", aligned[0].Answer);
        var raw = QuestionAnswering.Answers(Context, windows, [(s, e)], new QuestionAnsweringOptions { AlignToWords = false });
        Assert.Equal(Context[w.Offsets[last].Start..w.Offsets[last].End], raw[0].Answer);
        Assert.True(raw[0].Answer.Length < "Johanson".Length);
    }

    [Fact]
    public void Spans_longer_than_max_answer_len_or_ending_before_they_start_are_never_chosen()
    {
        var w = Assert.Single(Windows(maxLength: 384, stride: 128));
        var context = Enumerable.Range(0, w.Length).Where(t => w.SequenceIds[t] == 1).ToList();
        var s = new float[w.Length];
        var e = new float[w.Length];
        s[context[20]] = 9;
        e[context[10]] = 9;  // before the start
        e[context[40]] = 8;  // 21 tokens long: over 15
        e[context[30]] = 2;  // 11 tokens: allowed
        var best = QuestionAnswering.Answers(Context, [w], [(s, e)], new QuestionAnsweringOptions { AlignToWords = false })[0];
        Assert.Equal(w.Offsets[context[20]].Start, best.Start);
        Assert.Equal(w.Offsets[context[30]].End, best.End);
    }

    [Fact]
    public void The_pipeline_runs_end_to_end_on_a_long_context()
    {
        var qa = QuestionAnswering.FromPretrained(Fixtures.Path("model", "qa"));
        string longContext = string.Join(" ", Enumerable.Repeat(Context, 6));
        var results = qa.Run([(Question, longContext), ("Where is Normandy?", Context)], new QuestionAnsweringOptions { TopK = 3, HandleImpossibleAnswer = true });
        Assert.Equal(2, results.Count);
        foreach (var (answers, context) in results.Zip([longContext, Context]))
        {
            Assert.Equal(3, answers.Count);
            Assert.All(answers, a => Assert.Equal(context[a.Start..a.End], a.Answer));
            Assert.All(answers, a => Assert.InRange(a.Score, 0f, 1f));
            Assert.Equal(answers.OrderByDescending(a => a.Score).Select(a => a.Score), answers.Select(a => a.Score));
        }
        Assert.Equal(0, Assert.Throws<NBert.Tokenization.BatchItemException>(() => qa.Run([("", Context)])).Index); // the empty question, named by its place
    }
}
