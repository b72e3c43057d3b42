using System.Text.Json;
using NBert.Pipelines;

namespace NBert.Server;

/// <summary>
/// NBert's routes beyond TEI: <c>/fill-mask</c>, <c>/token-classification</c>, <c>/question-answering</c> and
/// <c>/next-sentence</c>. Each takes <c>{"inputs", "parameters"}</c> as Hugging Face's inference API does, and answers
/// for each input exactly what <c>nbert fill-mask/ner/qa/nsp --json</c> prints for it (the value itself for one
/// input, a list of them for a list). Requests with the same route and parameters run as one pipeline call.
/// </summary>
internal sealed class PipelineRoutes(ServedModel model, BatchingQueue queue, ServerOptions options)
{
    private void Require(string route)
    {
        if (!model.Serves(route)) throw ServerError.WrongModel($"Model is not a {route} model (the model served is for {model.Task})");
    }

    private static readonly JsonElement NoParameters = JsonDocument.Parse("{}").RootElement.Clone();

    private static JsonElement Parameters(JsonElement o) =>
        RequestJson.Optional(o, "parameters") is { } p ? RequestJson.Object(p, "parameters") : NoParameters;

    private async Task<object> Run(Call call, string group, IReadOnlyList<object> inputs, bool single, int characters,
        Func<IReadOnlyList<object>, IReadOnlyList<object>> run)
    {
        call.Inputs(single);
        if (inputs.Count == 0) throw ServerError.Empty("inputs");
        if (inputs.Count > options.MaxClientBatchSize) throw ServerError.BatchTooLarge(inputs.Count, options.MaxClientBatchSize);
        var work = new PipelineWork(group, inputs, run, call.Aborted);
        queue.Add(work);
        var (values, timing) = await work.Done.Task.WaitAsync(call.Aborted);
        // The pipelines tokenize inside the run, so their tokenization time is part of the inference time.
        call.Compute = new Compute(characters, null, TimeSpan.Zero, timing.Queue, timing.Inference);
        return single ? values[0] : values;
    }

    private static int Chars(IEnumerable<string> texts) => texts.Sum(ServedModel.CountChars);

    public Task<object> FillMask(Call call, JsonElement body)
    {
        Require("fill-mask");
        var o = RequestJson.Object(body);
        var texts = RequestJson.Texts(RequestJson.Required(o, "inputs"), "inputs", out bool single);
        var p = Parameters(o);
        int topK = RequestJson.Int(p, "top_k", min: 1) ?? 5;
        List<string>? targets = RequestJson.Optional(p, "targets") is { } t ? RequestJson.Texts(t, "parameters.targets", out _) : null;
        string group = $"fill-mask {topK} {(targets is null ? "" : JsonSerializer.Serialize(targets))}";
        return Run(call, group, texts, single, Chars(texts), all => model.FillMask(all.Cast<string>().ToList(), topK, targets));
    }

    public Task<object> TokenClassification(Call call, JsonElement body)
    {
        Require("token-classification");
        var o = RequestJson.Object(body);
        var texts = RequestJson.Texts(RequestJson.Required(o, "inputs"), "inputs", out bool single);
        var p = Parameters(o);
        var aggregation = RequestJson.Optional(p, "aggregation_strategy") switch
        {
            null => Aggregation.Simple, // as `nbert ner` and Hugging Face's inference API
            { ValueKind: JsonValueKind.String } a when Enum.TryParse<Aggregation>(a.GetString(), ignoreCase: true, out var value)
                && a.GetString()!.All(char.IsLetter) => value,
            _ => throw ServerError.WrongJson("parameters.aggregation_strategy: expected \"none\", \"simple\", \"first\", \"average\" or \"max\""),
        };
        int? stride = RequestJson.Int(p, "stride");
        string group = $"token-classification {aggregation} {stride}";
        return Run(call, group, texts, single, Chars(texts), all => model.TokenClassification(all.Cast<string>().ToList(), aggregation, stride));
    }

    public Task<object> QuestionAnswering(Call call, JsonElement body)
    {
        Require("question-answering");
        var o = RequestJson.Object(body);
        var (pairs, single) = Pairs(RequestJson.Required(o, "inputs"), "question", "context");
        var p = Parameters(o);
        var qa = new QuestionAnsweringOptions
        {
            TopK = RequestJson.Int(p, "top_k", min: 1) ?? 1,
            DocStride = RequestJson.Int(p, "doc_stride"),
            MaxAnswerLen = RequestJson.Int(p, "max_answer_len", min: 1) ?? 15,
            MaxSeqLen = RequestJson.Int(p, "max_seq_len", min: 1),
            MaxQuestionLen = RequestJson.Int(p, "max_question_len", min: 1) ?? 64,
            HandleImpossibleAnswer = RequestJson.Bool(p, "handle_impossible_answer", false),
            AlignToWords = RequestJson.Bool(p, "align_to_words", true),
        };
        string group = "question-answering " + JsonSerializer.Serialize(qa);
        return Run(call, group, pairs.Cast<object>().ToList(), single, Chars(pairs.SelectMany(x => new[] { x.A, x.B })),
            all => model.QuestionAnswering(all.Cast<(string, string)>().ToList(), qa));
    }

    public Task<object> NextSentence(Call call, JsonElement body)
    {
        Require("next-sentence");
        var o = RequestJson.Object(body);
        var (pairs, single) = Pairs(RequestJson.Required(o, "inputs"), "text", "text_pair");
        return Run(call, "next-sentence", pairs.Cast<object>().ToList(), single, Chars(pairs.SelectMany(x => new[] { x.A, x.B })),
            all => model.NextSentence(all.Cast<(string, string)>().ToList()));
    }

    /// <summary><c>{"a": ..., "b": ...}</c> (one input) or an array of them, with the field names of <c>nbert qa/nsp --input</c>.</summary>
    private static (List<(string A, string B)> Pairs, bool Single) Pairs(JsonElement inputs, string a, string b)
    {
        (string, string) One(JsonElement e)
        {
            var o = RequestJson.Object(e, "inputs");
            return (RequestJson.String(RequestJson.Required(o, a), $"inputs.{a}"), RequestJson.String(RequestJson.Required(o, b), $"inputs.{b}"));
        }
        if (inputs.ValueKind == JsonValueKind.Object) return ([One(inputs)], true);
        if (inputs.ValueKind != JsonValueKind.Array) throw ServerError.WrongJson($"inputs: expected {{\"{a}\", \"{b}\"}} or an array of them");
        return (inputs.EnumerateArray().Select(One).ToList(), false);
    }
}
