using System.Buffers;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace NBert.Server;

/// <summary>
/// A request's JSON body, read once into one buffer from the shared pool and parsed once over that buffer (no copy
/// into a stream, an array and a cloned document, as before): the route reads its fields from <see cref="Root"/>, then
/// <see cref="Dispose"/> gives the document's and the body's buffers back, so that a burst of large bodies leaves
/// nothing behind but the pool's arrays.
/// </summary>
internal sealed class RequestBody : IDisposable
{
    private byte[]? _buffer;
    private readonly JsonDocument _document;

    private RequestBody(byte[] buffer, JsonDocument document) => (_buffer, _document) = (buffer, document);

    /// <summary>The body's JSON value; valid until <see cref="Dispose"/>.</summary>
    public JsonElement Root => _document.RootElement;

    /// <summary>Duplicate names are refused (TEI's serde refuses a field given twice; last-wins would let two
    /// readers of one body see two requests).</summary>
    private static readonly JsonDocumentOptions Parsing = new() { AllowDuplicateProperties = false };

    /// <summary>
    /// Reads and parses the body, as TEI's (axum's) JSON extractor does: a Content-Type other than JSON is 415 before
    /// anything is read; a body over <paramref name="payloadLimit"/> 413; a body the connection cannot deliver (malformed
    /// chunks, too slow, cut off) the 4xx Kestrel gives it; not UTF-8, not JSON, a name given twice or a string that is
    /// not text, 400. Each is a <see cref="ServerError"/> (TEI's error body, no stack trace in the log).
    /// </summary>
    public static async Task<RequestBody> ReadAsync(HttpContext ctx, long payloadLimit)
    {
        var request = ctx.Request;
        if (!IsJson(request.ContentType)) throw ServerError.UnsupportedMediaType();
        // The payload limit holds in an application of your own too, whatever its server's own limit.
        if (ctx.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit) limit.MaxRequestBodySize = payloadLimit;
        if (request.ContentLength > payloadLimit) throw ServerError.PayloadTooLarge(payloadLimit);
        // Content-Length's size at once (the pool rounds it up to a power of two), else grown as a chunked body comes.
        byte[] buffer = ArrayPool<byte>.Shared.Rent((int)Math.Clamp((request.ContentLength ?? 0) + 1, 4096, payloadLimit + 1));
        try
        {
            int length = 0;
            while (true)
            {
                if (length == buffer.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent((int)Math.Min((long)buffer.Length * 2, payloadLimit + 1));
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }
                int read = await request.Body.ReadAsync(buffer.AsMemory(length), ctx.RequestAborted);
                if (read == 0) break;
                length += read;
                if (length > payloadLimit) throw ServerError.PayloadTooLarge(payloadLimit);
            }
            var bytes = buffer.AsMemory(0, length);
            if (!System.Text.Unicode.Utf8.IsValid(bytes.Span)) throw ServerError.NotJson("the body is not valid UTF-8");
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(bytes, Parsing);
            }
            catch (JsonException e)
            {
                throw ServerError.NotJson(e.Message);
            }
            catch (InvalidOperationException e)
            {
                // Looking for duplicates decodes each name, and a name with a lone surrogate does not decode: parsed
                // again without that look, the check below names where it is.
                using (var lax = JsonDocument.Parse(bytes)) RequestJson.CheckText(lax.RootElement);
                throw ServerError.NotJson(e.Message);
            }
            try
            {
                // Only an escape can make a string that is not text (the bytes are valid UTF-8): the strings are
                // decoded to be checked only when the body has an escaped surrogate at all.
                if (HasEscapedSurrogate(bytes.Span)) RequestJson.CheckText(document.RootElement);
            }
            catch
            {
                document.Dispose();
                throw;
            }
            return new RequestBody(buffer, document);
        }
        catch (BadHttpRequestException e)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw e.StatusCode == StatusCodes.Status413PayloadTooLarge ? ServerError.PayloadTooLarge(payloadLimit) : ServerError.BadBody(e.StatusCode, e.Message);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    /// <summary>Whether <paramref name="json"/> holds <c>\uD800</c>-<c>\uDFFF</c> (either case): the only way a JSON
    /// string of valid UTF-8 can hold a lone surrogate. A false alarm (an escaped backslash before "ud800") only costs the
    /// full check.</summary>
    private static bool HasEscapedSurrogate(ReadOnlySpan<byte> json)
    {
        for (int at = json.IndexOf("\\u"u8); at >= 0; )
        {
            var rest = json[(at + 2)..];
            if (rest.Length >= 2 && (rest[0] | 0x20) == 'd' && (rest[1] is (byte)'8' or (byte)'9' || (rest[1] | 0x20) is >= 'a' and <= 'f')) return true;
            int next = rest.IndexOf("\\u"u8);
            at = next < 0 ? -1 : at + 2 + next;
        }
        return false;
    }

    /// <summary>application/json, or a JSON-suffixed type (application/problem+json), as axum's extractor accepts.</summary>
    private static bool IsJson(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var type) && type.MediaType is { } media
        && (media.Equals("application/json", StringComparison.OrdinalIgnoreCase)
            || (media.StartsWith("application/", StringComparison.OrdinalIgnoreCase) && media.EndsWith("+json", StringComparison.OrdinalIgnoreCase)));

    public void Dispose()
    {
        if (_buffer is null) return;
        _document.Dispose();
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = null;
    }
}
