using System.Diagnostics;
using System.Numerics.Tensors;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using NBert.Tokenization;

namespace NBert.Server;

internal sealed record Prediction([property: JsonPropertyName("score")] float Score, [property: JsonPropertyName("label")] string Label);

internal sealed record Rank(
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("text"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Text,
    [property: JsonPropertyName("score")] float Score);

internal sealed record SimpleToken(
    [property: JsonPropertyName("id")] int Id,
    [property: JsonPropertyName("text")] string Text,
    [property: JsonPropertyName("special")] bool Special,
    [property: JsonPropertyName("start")] int? Start,
    [property: JsonPropertyName("stop")] int? Stop);

internal sealed record OpenAiEmbedding(
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("embedding")] object Embedding,
    [property: JsonPropertyName("index")] int Index);

internal sealed record OpenAiUsage([property: JsonPropertyName("prompt_tokens")] int PromptTokens, [property: JsonPropertyName("total_tokens")] int TotalTokens);

internal sealed record OpenAiResponse(
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("data")] List<OpenAiEmbedding> Data,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("usage")] OpenAiUsage Usage);

/// <summary>
/// text-embeddings-inference's routes, with its request fields, defaults and response shapes
/// (router/src/http/server.rs and types.rs): <c>/embed</c>, <c>/embed_all</c>, <c>/predict</c>, <c>/rerank</c>,
/// <c>/similarity</c>, <c>/v1/embeddings</c>, <c>/tokenize</c>, <c>/decode</c> and <c>/info</c>.
/// </summary>
internal sealed class TeiRoutes(ServedModel model, BatchingQueue queue, Metrics metrics, ServerOptions options)
{
    private static readonly string Version =
        typeof(TeiRoutes).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0";

    private void Require(string route, string message)
    {
        if (!model.Serves(route)) throw ServerError.WrongModel($"{message} (the model served is for {model.Task})");
    }

    private void CheckBatch(int count, string field = "inputs")
    {
        if (count == 0) throw ServerError.Empty(field);
        if (count > options.MaxClientBatchSize) throw ServerError.BatchTooLarge(count, options.MaxClientBatchSize);
    }

    private int? Dimensions(JsonElement o)
    {
        int? d = RequestJson.Int(o, "dimensions", min: 1);
        if (d > model.Config.HiddenSize)
            throw ServerError.TooLong($"`dimensions` must be at most the model's hidden size {model.Config.HiddenSize}. Given: {d}");
        return d;
    }

    /// <summary>Tokenizes the inputs on this thread, queues them, and waits for the batching loop's results.</summary>
    private async Task<object[]> Run(Call call, IReadOnlyList<Func<TokenEncoding>> encode, int characters, EncoderOutput output)
    {
        long start = Stopwatch.GetTimestamp();
        var encodings = encode.Select(f => f()).ToList();
        var tokenization = Stopwatch.GetElapsedTime(start);
        foreach (var e in encodings) metrics.Observe("te_request_input_length", e.Length);
        var work = encodings.Select(e => new EncoderWork(e, output, call.Aborted)).ToList();
        foreach (var w in work) queue.Add(w);
        // The wait ends with the request too: a client that has gone away (or a stop that ran out of time) frees it.
        var done = await Task.WhenAll(work.Select(w => w.Done.Task)).WaitAsync(call.Aborted);
        int n = done.Length;
        call.Compute = new Compute(characters, encodings.Sum(e => e.Length), tokenization / n,
            TimeSpan.FromTicks((long)done.Average(d => d.Timing.Queue.Ticks)), TimeSpan.FromTicks((long)done.Average(d => d.Timing.Inference.Ticks)));
        return done.Select(d => d.Value).ToArray();
    }

    /// <summary>Embedding inputs (texts or token ids), each after <paramref name="prompt"/> when given.</summary>
    private Task<object[]> RunInputs(Call call, List<TextInput> inputs, bool truncate, TruncationSide side, EncoderOutput output, string? prompt) =>
        Run(call, inputs.Select((input, n) => (Func<TokenEncoding>)(() => input.Text is not null
                ? model.Encode(input.Text, null, truncate, side, prompt)
                : model.EncodeIds(input.Ids!, truncate, side, prompt, n))).ToList(),
            inputs.Sum(i => i.Chars), output);

    /// <summary>The prompt a request names in <c>prompt_name</c> (TEI's field), else the model's default prompt.</summary>
    private string? Prompt(JsonElement o) => model.Prompt(RequestJson.OptionalString(o, "prompt_name"));

    /// <summary>Matryoshka truncation to <paramref name="dimensions"/>, then the optional normalisation (as sentence-transformers' truncate_dim).</summary>
    private static float[] Finish(object pooled, int? dimensions, bool normalize)
    {
        var v = (float[])pooled;
        if (dimensions is int d && d < v.Length) v = v[..d];
        if (normalize) ServedModel.Normalize(v);
        return v;
    }

    public async Task<object> Embed(Call call, JsonElement body)
    {
        Require("embed", "Model is not an embedding model");
        var o = RequestJson.Object(body);
        var inputs = RequestJson.Inputs(RequestJson.Required(o, "inputs"), "inputs", out bool single);
        call.Inputs(single);
        bool truncate = RequestJson.OptionalBool(o, "truncate") ?? options.AutoTruncate, normalize = RequestJson.Bool(o, "normalize", true);
        var side = RequestJson.Direction(o);
        int? dimensions = Dimensions(o);
        CheckBatch(inputs.Count);
        var pooled = await RunInputs(call, inputs, truncate, side, EncoderOutput.Pooled, Prompt(o));
        return pooled.Select(p => Finish(p, dimensions, normalize)).ToList();
    }

    public async Task<object> EmbedAll(Call call, JsonElement body)
    {
        Require("embed", "Model is not an embedding model");
        var o = RequestJson.Object(body);
        var inputs = RequestJson.Inputs(RequestJson.Required(o, "inputs"), "inputs", out bool single);
        call.Inputs(single);
        bool truncate = RequestJson.OptionalBool(o, "truncate") ?? options.AutoTruncate;
        var side = RequestJson.Direction(o);
        CheckBatch(inputs.Count);
        return await RunInputs(call, inputs, truncate, side, EncoderOutput.Tokens, Prompt(o));
    }

    public async Task<object> OpenAiEmbeddings(Call call, JsonElement body)
    {
        Require("embed", "Model is not an embedding model");
        var o = RequestJson.Object(body);
        var inputs = RequestJson.Inputs(RequestJson.Required(o, "input"), "input", out bool single);
        call.Inputs(single);
        bool base64 = RequestJson.Optional(o, "encoding_format") switch
        {
            null => false,
            { ValueKind: JsonValueKind.String } f when f.GetString() == "float" => false,
            { ValueKind: JsonValueKind.String } f when f.GetString() == "base64" => true,
            _ => throw ServerError.WrongJson("encoding_format: expected \"float\" or \"base64\""),
        };
        int? dimensions = Dimensions(o);
        CheckBatch(inputs.Count, "input");
        // TEI's OpenAI route has no prompt_name: the model's default prompt, if it has one.
        var pooled = await RunInputs(call, inputs, options.AutoTruncate, TruncationSide.Right, EncoderOutput.Pooled, model.Prompt(null));
        var data = pooled.Select((p, i) =>
        {
            var v = Finish(p, dimensions, normalize: true);
            // base64: the little-endian float32 bytes, as OpenAI's and TEI's encoding_format "base64".
            return new OpenAiEmbedding("embedding", base64 ? Convert.ToBase64String(System.Runtime.InteropServices.MemoryMarshal.AsBytes(v.AsSpan())) : v, i);
        }).ToList();
        int tokens = call.Compute!.Value.Tokens ?? 0;
        return new OpenAiResponse("list", data, model.ModelId, new OpenAiUsage(tokens, tokens));
    }

    public async Task<object> Similarity(Call call, JsonElement body)
    {
        Require("embed", "Model is not an embedding model");
        var o = RequestJson.Object(body);
        var inputs = RequestJson.Object(RequestJson.Required(o, "inputs"), "inputs");
        string source = RequestJson.String(RequestJson.Required(inputs, "source_sentence"), "inputs.source_sentence");
        var sentences = RequestJson.Texts(RequestJson.Required(inputs, "sentences"), "inputs.sentences", out bool one);
        if (one) throw ServerError.WrongJson("inputs.sentences: expected an array of strings");
        var parameters = RequestJson.Optional(o, "parameters") is { } p ? RequestJson.Object(p, "parameters") : default(JsonElement?);
        bool truncate = (parameters is { } pp ? RequestJson.OptionalBool(pp, "truncate") : null) ?? options.AutoTruncate;
        var side = parameters is { } ps ? RequestJson.Direction(ps) : TruncationSide.Right;
        if (sentences.Count == 0) throw ServerError.Empty("inputs.sentences");
        CheckBatch(sentences.Count + 1);
        call.Inputs(single: false);
        var all = new List<TextInput> { new(source, null) };
        all.AddRange(sentences.Select(s => new TextInput(s, null)));
        var pooled = await RunInputs(call, all, truncate, side, EncoderOutput.Pooled, parameters is { } pn ? Prompt(pn) : model.Prompt(null));
        return pooled.Skip(1).Select(v => ServedModel.Cosine((float[])pooled[0], (float[])v)).ToList();
    }

    /// <summary>TEI's scores: softmax over several labels, sigmoid of one, or the logits with <c>raw_scores</c>.</summary>
    private static float[] Scores(float[] logits, bool raw)
    {
        if (raw) return logits;
        if (logits.Length == 1) return [1f / (1f + MathF.Exp(-logits[0]))];
        var p = logits.ToArray();
        NBert.Tensors.Kernels.Softmax(p); // the max subtracted first, as the pipelines do: a logit above 88 would give NaN
        return p;
    }

    public async Task<object> Predict(Call call, JsonElement body)
    {
        Require("predict", "Model is not a classifier model");
        var o = RequestJson.Object(body);
        var inputs = RequestJson.Sequences(RequestJson.Required(o, "inputs"), out bool single);
        call.Inputs(single);
        bool truncate = RequestJson.OptionalBool(o, "truncate") ?? options.AutoTruncate, raw = RequestJson.Bool(o, "raw_scores", false);
        var side = RequestJson.Direction(o);
        CheckBatch(inputs.Count);
        var logits = await Run(call, inputs.Select(i => (Func<TokenEncoding>)(() => model.Encode(i.Text, i.Pair, truncate, side))).ToList(),
            inputs.Sum(i => ServedModel.CountChars(i.Text) + (i.Pair is null ? 0 : ServedModel.CountChars(i.Pair))), EncoderOutput.Logits);
        var labels = model.Config.Id2Label;
        var predictions = logits.Select(l => Scores((float[])l, raw).Select((s, i) => new Prediction(s, labels[i])).OrderByDescending(x => x.Score).ToList()).ToList();
        return single ? predictions[0] : predictions;
    }

    public async Task<object> Rerank(Call call, JsonElement body)
    {
        Require("rerank", "model is not a re-ranker model");
        var o = RequestJson.Object(body);
        string query = RequestJson.String(RequestJson.Required(o, "query"), "query");
        var texts = RequestJson.Texts(RequestJson.Required(o, "texts"), "texts", out bool one);
        if (one) throw ServerError.WrongJson("texts: expected an array of strings");
        bool truncate = RequestJson.OptionalBool(o, "truncate") ?? options.AutoTruncate, raw = RequestJson.Bool(o, "raw_scores", false),
            returnText = RequestJson.Bool(o, "return_text", false);
        var side = RequestJson.Direction(o);
        CheckBatch(texts.Count, "texts");
        call.Inputs(single: false);
        var logits = await Run(call, texts.Select(t => (Func<TokenEncoding>)(() => model.Encode(query, t, truncate, side))).ToList(),
            texts.Sum(t => ServedModel.CountChars(query) + ServedModel.CountChars(t)), EncoderOutput.Logits);
        return logits.Select((l, i) => new Rank(i, returnText ? texts[i] : null, Scores((float[])l, raw)[0]))
            .OrderByDescending(r => r.Score).ToList(); // stable: equal scores keep the texts' order
    }

    public Task<object> Tokenize(Call call, JsonElement body)
    {
        var o = RequestJson.Object(body);
        var texts = RequestJson.Texts(RequestJson.Required(o, "inputs"), "inputs", out bool single);
        call.Inputs(single);
        bool special = RequestJson.Bool(o, "add_special_tokens", true);
        if (!single) CheckBatch(texts.Count);
        string? prompt = Prompt(o);
        return Task.FromResult<object>(texts.Select(input =>
        {
            var e = model.Tokenize(input, special, prompt);
            // The tokens are the prompted text's, as TEI gives them; start and stop count its characters (code points),
            // as TEI and Hugging Face count them, mapped from the UTF-16 offsets in one pass.
            string text = prompt + input;
            var codePoints = ServedModel.CodePointIndex(text);
            return Enumerable.Range(0, e.Length).Select(t =>
            {
                if (e.SpecialTokensMask[t] == 1) return new SimpleToken(e.InputIds[t], e.Tokens[t], true, null, null);
                var (start, end) = e.Offsets[t];
                return new SimpleToken(e.InputIds[t], text[start..end], false, codePoints[start], codePoints[end]);
            }).ToList();
        }).ToList());
    }

    public Task<object> Decode(Call call, JsonElement body)
    {
        var o = RequestJson.Object(body);
        var ids = RequestJson.Required(o, "ids");
        bool skip = RequestJson.Bool(o, "skip_special_tokens", true);
        bool single = ids.ValueKind != JsonValueKind.Array || ids.GetArrayLength() == 0 || ids[0].ValueKind != JsonValueKind.Array;
        call.Inputs(single);
        var lists = single ? [RequestJson.Ids(ids, "ids")] : ids.EnumerateArray().Select(x => RequestJson.Ids(x, "ids")).ToList();
        if (single && lists[0].Length == 0) throw ServerError.Empty("ids");
        if (!single) CheckBatch(lists.Count, "ids");
        if (lists.Any(l => l.Length == 0)) throw ServerError.TooLong("`input_ids` cannot be empty");
        // An id the vocabulary does not have is refused as /embed refuses it (422), not decoded as "".
        for (int n = 0; n < lists.Count; n++)
            for (int i = 0; i < lists[n].Length; i++)
                if (lists[n][i] >= model.Tokenizer.VocabSize)
                    throw ServerError.Refused($"`ids`: token id {lists[n][i]} ({(single ? "" : $"input {n + 1}, ")}position {i + 1}) is outside the " +
                        $"vocabulary 0..{model.Tokenizer.VocabSize - 1} (vocab_size {model.Tokenizer.VocabSize}).");
        return Task.FromResult<object>(lists.Select(l => model.Decode(l, skip)).ToList());
    }

    public object Info() => new Dictionary<string, object?>
    {
        ["model_id"] = model.ModelId,
        ["model_sha"] = null,
        ["model_dtype"] = "float32",
        ["model_type"] = model.ModelType(),
        ["max_concurrent_requests"] = options.MaxConcurrentRequests,
        ["max_input_length"] = model.MaxInputLength,
        ["max_batch_tokens"] = options.MaxBatchTokens,
        ["max_batch_requests"] = options.MaxBatchRequests,
        ["max_client_batch_size"] = options.MaxClientBatchSize,
        ["auto_truncate"] = options.AutoTruncate,
        ["tokenization_workers"] = Environment.ProcessorCount,
        ["version"] = Version,
        ["sha"] = null,
        ["docker_label"] = null,
    };
}
