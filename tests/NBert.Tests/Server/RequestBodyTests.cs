using System.Text;
using Microsoft.AspNetCore.Http;
using NBert.Server;
using Xunit.Abstractions;

namespace NBert.Tests.Server;

/// <summary>Issue 26 (5): a request body is read once into a pooled buffer and parsed once over it; what a request
/// allocates to read its body no longer grows with the body (before: a MemoryStream grown by doubling, its ToArray
/// copy and a cloned document, about four times the body).</summary>
public sealed class RequestBodyTests(ITestOutputHelper output)
{
    private static DefaultHttpContext Request(byte[] body, string contentType = "application/json")
    {
        var ctx = new DefaultHttpContext();
        ctx.Request.Method = "POST";
        ctx.Request.ContentType = contentType;
        ctx.Request.ContentLength = body.Length;
        ctx.Request.Body = new MemoryStream(body, writable: false);
        return ctx;
    }

    [Fact]
    public async Task Reading_a_1_MB_body_allocates_a_small_fraction_of_it()
    {
        // 1 MiB of JSON: 256 texts of 4 KiB.
        var text = new string('a', 4096 - 16);
        byte[] body = Encoding.UTF8.GetBytes("{\"inputs\": [" + string.Join(",", Enumerable.Repeat($"\"{text}\"", 256)) + "]}");
        // Warm up: the pool's first arrays, the JIT.
        for (int i = 0; i < 3; i++) (await RequestBody.ReadAsync(Request(body), 2_000_000)).Dispose();
        const int runs = 20;
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < runs; i++)
        {
            using var read = await RequestBody.ReadAsync(Request(body), 2_000_000);
            Assert.Equal(256, read.Root.GetProperty("inputs").GetArrayLength());
        }
        long perRequest = (GC.GetAllocatedBytesForCurrentThread() - before) / runs;
        output.WriteLine($"{perRequest:N0} bytes allocated per read of a {body.Length:N0}-byte body");
        Assert.True(perRequest < body.Length / 8, $"{perRequest:N0} bytes allocated to read a {body.Length:N0}-byte body");
    }

    [Fact]
    public async Task A_body_is_refused_for_its_content_type_before_it_is_read()
    {
        var ctx = Request("{\"inputs\": \"a\"}"u8.ToArray(), "text/plain");
        var e = await Assert.ThrowsAnyAsync<Exception>(() => RequestBody.ReadAsync(ctx, 2_000_000));
        Assert.Equal("Expected request with `Content-Type: application/json`", e.Message);
        Assert.Equal(0, ctx.Request.Body.Position);
    }

    [Theory]
    [InlineData("{\"inputs\": \"a\\ud800\"}")]
    [InlineData("{\"inputs\": \"a\\uDC00\"}")]
    [InlineData("{\"x\\ud800\": 1}")]
    public async Task A_lone_surrogate_escape_is_refused_while_the_body_is_read(string json)
    {
        var e = await Assert.ThrowsAnyAsync<Exception>(() => RequestBody.ReadAsync(Request(Encoding.UTF8.GetBytes(json)), 2_000_000));
        Assert.Contains("lone surrogate", e.Message);
    }
}
