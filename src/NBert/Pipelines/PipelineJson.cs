using System.Text.Encodings.Web;
using System.Text.Json;

namespace NBert.Pipelines;

/// <summary>
/// The JSON value of each pipeline for one input, in one place: what <c>nbert fill-mask/classify/ner/qa/nsp --json</c>
/// print (one line per input) and what <c>nbert serve</c>'s pipeline routes answer, so the two cannot drift apart.
/// The shapes follow transformers' pipelines: one mask gives its candidates, several a list per mask; question
/// answering with top_k 1 gives the answer itself; the other pipelines' records are their own values.
/// </summary>
public static class PipelineJson
{
    /// <summary>The serializer options: non-ASCII text written as it is (transformers' <c>ensure_ascii=False</c>).</summary>
    public static JsonSerializerOptions Options { get; } = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>fill-mask's value for one text: the candidates of its mask, or a list per mask when it has several.</summary>
    public static object FillMask(IReadOnlyList<IReadOnlyList<FillMaskCandidate>> perMask) => perMask.Count == 1 ? perMask[0] : perMask;

    /// <summary>question-answering's value for one question: the best answer when <paramref name="topK"/> is 1, else the list.</summary>
    public static object QuestionAnswering(IReadOnlyList<QaAnswer> answers, int topK) => topK == 1 && answers.Count > 0 ? answers[0] : answers;

    /// <summary>A value as one line of JSON.</summary>
    public static string Serialize(object value) => JsonSerializer.Serialize(value, value.GetType(), Options);
}
