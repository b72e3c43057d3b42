using System.Text.Json.Serialization;

namespace NBert.Server;

/// <summary>text-embeddings-inference's error kinds. The JSON names them as TEI does: <c>"Validation"</c>, ...</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ErrorType>))]
public enum ErrorType
{
    /// <summary>The server cannot serve (it is shutting down): 503.</summary>
    Unhealthy,
    /// <summary>The model cannot do this (a route its head does not serve), or inference failed: 424.</summary>
    Backend,
    /// <summary>Too many requests in progress: 429.</summary>
    Overloaded,
    /// <summary>An input over a limit (tokens, characters, batch size, payload): 413, as TEI answers it.</summary>
    Validation,
    /// <summary>The request cannot be tokenized or its JSON does not fit the route: 422.</summary>
    Tokenizer,
    /// <summary>Nothing to do (an empty input or batch): 400.</summary>
    Empty,
}

/// <summary>
/// A request that cannot be answered, with TEI's error kind, message and status code. Every route's failures go
/// through it, so the body is always <c>{"error", "error_type"}</c> (<c>{"message", "code", "type"}</c> on the
/// OpenAI route), and <see cref="MetricLabel"/> is the <c>err</c> label of <c>te_request_failure</c>.
/// </summary>
internal sealed class ServerError(ErrorType type, string message, string metricLabel, int? status = null) : Exception(message)
{
    public ErrorType Type { get; } = type;
    public int Status { get; } = status ?? StatusOf(type);
    public string MetricLabel { get; } = metricLabel;

    /// <summary>TEI's mapping of error kinds to status codes (router/src/http/server.rs).</summary>
    public static int StatusOf(ErrorType type) => type switch
    {
        ErrorType.Unhealthy => 503,
        ErrorType.Backend => 424,
        ErrorType.Overloaded => 429,
        ErrorType.Tokenizer => 422,
        ErrorType.Validation => 413,
        _ => 400,
    };

    public static ServerError Empty(string field) => new(ErrorType.Empty, $"Input validation error: `{field}` cannot be empty", "validation");
    public static ServerError BatchTooLarge(int size, int max) =>
        new(ErrorType.Validation, $"batch size {size} > maximum allowed batch size {max}", "batch_size");
    public static ServerError TooLong(string message) => new(ErrorType.Validation, $"Input validation error: {message}", "validation");
    /// <summary>A value TEI's validation refuses that is not over a limit (an unknown <c>prompt_name</c>): still 413, as
    /// TEI answers every validation error.</summary>
    public static ServerError Invalid(string message) => new(ErrorType.Validation, $"Input validation error: {message}", "validation");
    public static ServerError Overloaded() => new(ErrorType.Overloaded, "Model is overloaded", "overloaded");
    public static ServerError WrongModel(string message) => new(ErrorType.Backend, message, "model_type");
    public static ServerError Inference(string message) => new(ErrorType.Backend, $"Backend error: {message}", "inference");
    public static ServerError ShuttingDown() => new(ErrorType.Unhealthy, "unhealthy: the server is shutting down", "unhealthy");
    public static ServerError PayloadTooLarge(long limit) =>
        new(ErrorType.Validation, $"Failed to buffer the request body: length limit exceeded (--payload-limit {limit} bytes)", "payload", 413);
    /// <summary>A Content-Type other than JSON: 415, as axum's JSON extractor answers (a cross-site form post cannot
    /// send application/json without a CORS preflight).</summary>
    public static ServerError UnsupportedMediaType() =>
        new(ErrorType.Validation, "Expected request with `Content-Type: application/json`", "content_type", 415);
    /// <summary>A body the connection could not deliver (malformed chunked framing, too slow, cut short): Kestrel's
    /// status for it (400, 408), with TEI's error body.</summary>
    public static ServerError BadBody(int status, string message) =>
        new(ErrorType.Validation, $"Failed to buffer the request body: {message}", "body", status);
    /// <summary>The body is not JSON (or not UTF-8): 400, as axum's JSON extractor answers.</summary>
    public static ServerError NotJson(string message) =>
        new(ErrorType.Validation, $"Failed to parse the request body as JSON: {message}", "validation", 400);
    /// <summary>The JSON does not fit the route (a missing field, a wrong type): 422, as axum's JSON extractor answers.</summary>
    public static ServerError WrongJson(string message) =>
        new(ErrorType.Tokenizer, $"Failed to deserialize the JSON body into the target type: {message}", "validation", 422);
    /// <summary>An input the pipeline refuses (fill-mask without [MASK], an empty question): 422.</summary>
    public static ServerError Refused(string message) => new(ErrorType.Tokenizer, message, "validation", 422);
    /// <summary>The library's refusal of an input, in its words (without the " (Parameter 'options')" .NET appends, which
    /// names the code's parameter, not anything the client sent): 422.</summary>
    public static ServerError Refused(ArgumentException e)
    {
        string suffix = e.ParamName is { } name ? $" (Parameter '{name}')" : "";
        return Refused(suffix.Length > 0 && e.Message.EndsWith(suffix, StringComparison.Ordinal) ? e.Message[..^suffix.Length] : e.Message);
    }
}

/// <summary>TEI's error body.</summary>
internal sealed record ErrorBody(
    [property: JsonPropertyName("error")] string Error,
    [property: JsonPropertyName("error_type")] ErrorType ErrorType);

/// <summary>The OpenAI-compatible route's error body (TEI's <c>OpenAICompatErrorResponse</c>).</summary>
internal sealed record OpenAiErrorBody(
    [property: JsonPropertyName("message")] string Message,
    [property: JsonPropertyName("code")] int Code,
    [property: JsonPropertyName("type")] ErrorType Type);
