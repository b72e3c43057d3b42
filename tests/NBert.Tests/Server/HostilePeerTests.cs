using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using NBert.Server;

namespace NBert.Tests.Server;

/// <summary>
/// Issue 29 (8) and 26 (5): what a hostile peer found, over real HTTP on loopback. A body the connection cannot
/// deliver answers 4xx with TEI's error body and leaves no stack trace in the log; a client that leaves mid-body is a
/// counted failure; every counted request is a success or a failure; a Content-Type other than JSON is 415; a name given
/// twice is refused; HEAD is served on /health and /info; /decode refuses ids outside the vocabulary; POST / and
/// /invocations go to the route of the model's type, as TEI maps them; an unknown route answers 404 with TEI's body.
/// </summary>
[Collection("fixture servers")]
public sealed class HostilePeerTests(FixtureServers servers)
{
    private static async Task<(InferenceServer Server, StringWriter Log)> StartLogged(string model)
    {
        var log = new StringWriter();
        var server = await InferenceServer.StartAsync(new ServerOptions { Model = model, Port = 0, Hostname = "127.0.0.1" }, log);
        return (server, log);
    }

    /// <summary>Sends raw bytes on a fresh connection and reads the answer until the server closes it or
    /// <paramref name="readFor"/> has passed.</summary>
    private static async Task<string> Raw(Uri address, byte[] request, bool closeAfterSending = false, int readFor = 10_000)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(address.Host, address.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(request);
        if (closeAfterSending)
        {
            tcp.Client.Close(); // gone mid-body: nothing more comes, not even a FIN-and-wait
            return "";
        }
        var answer = new MemoryStream();
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(readFor);
        try
        {
            int n;
            while ((n = await stream.ReadAsync(buffer, timeout.Token)) > 0)
            {
                answer.Write(buffer, 0, n);
                if (Encoding.ASCII.GetString(answer.ToArray()).Contains("\"error_type\"")) break;
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (IOException)
        {
        }
        return Encoding.UTF8.GetString(answer.ToArray());
    }

    private static async Task Until(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(20)) throw new TimeoutException($"waited 20 s for {what}");
            await Task.Delay(10);
        }
    }

    private static void AssertAddsUp(Metrics metrics) =>
        Assert.Equal(metrics.Total("te_request_count"), metrics.Total("te_request_success") + metrics.Total("te_request_failure"));

    [Fact]
    public async Task A_malformed_chunked_body_is_400_with_teis_body_and_no_stack_trace()
    {
        var (server, log) = await StartLogged(Fixtures.Path("model", "encoder_only"));
        await using var _ = server;
        string answer = await Raw(server.Address, Encoding.ASCII.GetBytes(
            "POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n{\"inputs\": \"a\"}\r\n0\r\n\r\n"));
        Assert.StartsWith("HTTP/1.1 400", answer);
        var body = JsonNode.Parse(answer[answer.IndexOf('{')..(answer.LastIndexOf('}') + 1)])!; // the body may come in chunks
        Assert.Equal("Validation", (string)body["error_type"]!);
        Assert.StartsWith("Failed to buffer the request body", (string)body["error"]!);
        await Until(() => server.Metrics.Total("te_request_count") == 1, "the request to be counted");
        Assert.Equal(1, server.Metrics.Value("te_request_failure", "err=\"body\""));
        AssertAddsUp(server.Metrics);
        Assert.Equal("", log.ToString());
    }

    [Fact]
    public async Task A_client_that_disconnects_mid_body_is_a_counted_failure_and_not_logged()
    {
        var (server, log) = await StartLogged(Fixtures.Path("model", "encoder_only"));
        await using var _ = server;
        for (int i = 0; i < 20; i++)
            await Raw(server.Address, Encoding.ASCII.GetBytes(
                "POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"inputs\": \"a"), closeAfterSending: true);
        await Until(() => server.Metrics.Total("te_request_count") == 20, "the 20 requests to be counted");
        Assert.Equal(0, server.Metrics.Total("te_request_success"));
        AssertAddsUp(server.Metrics);
        Assert.Equal("", log.ToString());
        Assert.Equal(HttpStatusCode.OK, (await new HttpClient { BaseAddress = server.Address }.GetAsync("/health")).StatusCode);
    }

    [Fact]
    public async Task A_content_type_other_than_json_is_415_and_json_with_a_charset_is_not()
    {
        var client = servers.Encoder.Client;
        foreach (var content in new HttpContent[]
        {
            new StringContent("{\"inputs\": \"a\"}", Encoding.UTF8, "text/plain"),
            new StringContent("inputs=a", Encoding.UTF8, "application/x-www-form-urlencoded"),
            new ByteArrayContent("{\"inputs\": \"a\"}"u8.ToArray()), // no Content-Type at all
        })
        {
            var response = await client.PostAsync("/embed", content);
            var reply = new Reply(response.StatusCode, await response.Content.ReadAsStringAsync(), response);
            Assert.Equal("Expected request with `Content-Type: application/json`", reply.Error(415, "Validation"));
        }
        var ok = await client.PostAsync("/embed", new StringContent("{\"inputs\": \"a\"}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal("application/json; charset=utf-8", ok.RequestMessage!.Content!.Headers.ContentType!.ToString());
    }

    [Fact]
    public async Task A_name_given_twice_is_refused_not_last_wins()
    {
        string message = (await servers.Encoder.Post("/embed", "{\"inputs\": \"a\", \"inputs\": \"b\"}")).Error(400, "Validation");
        Assert.Contains("inputs", message);
        (await servers.Classifier.Post("/predict", "{\"inputs\": \"a\", \"truncate\": true, \"truncate\": false}")).Error(400, "Validation");
    }

    [Fact]
    public async Task Head_is_served_on_health_and_info_and_get_on_the_health_aliases()
    {
        foreach (var path in new[] { "/health", "/info", "/", "/ping" })
        {
            var head = await servers.Encoder.Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, path));
            Assert.True(head.StatusCode == HttpStatusCode.OK, $"HEAD {path}: {(int)head.StatusCode}");
            Assert.Empty(await head.Content.ReadAsByteArrayAsync());
            Assert.Equal(HttpStatusCode.OK, (await servers.Encoder.Get(path)).Status);
        }
        Assert.Equal("application/json", (await servers.Encoder.Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/info"))).Content.Headers.ContentType!.MediaType);
    }

    [Fact]
    public async Task Decode_refuses_ids_outside_the_vocabulary_as_embed_does()
    {
        int vocab = (int)(await servers.Encoder.Post("/tokenize", new { inputs = "a" })).Json[0]![0]!["id"]!; // any id: it is in range
        Assert.Equal(HttpStatusCode.OK, (await servers.Encoder.Post("/decode", new { ids = new[] { vocab } })).Status);
        string message = (await servers.Encoder.Post("/decode", new { ids = new[] { 101, 1_000_000 } })).Error(422, "Tokenizer");
        Assert.Contains("token id 1000000 (position 2) is outside the vocabulary", message);
        message = (await servers.Encoder.Post("/decode", new { ids = new[] { new[] { 101 }, new[] { 5, 1_000_000 } } })).Error(422, "Tokenizer");
        Assert.Contains("(input 2, position 2)", message);
    }

    [Fact]
    public async Task Post_root_and_invocations_go_to_the_route_of_the_models_type_as_tei_maps_them()
    {
        foreach (var path in new[] { "/", "/invocations" })
        {
            Assert.Equal((await servers.Encoder.Post("/embed", new { inputs = "a penguin" })).Body, (await servers.Encoder.Post(path, new { inputs = "a penguin" })).Body);
            Assert.Equal((await servers.Classifier.Post("/predict", new { inputs = "a fine film" })).Body, (await servers.Classifier.Post(path, new { inputs = "a fine film" })).Body);
            var rerank = new { query = "birds", texts = new[] { "penguins", "cars" } };
            Assert.Equal((await servers.Reranker.Post("/rerank", rerank)).Body, (await servers.Reranker.Post(path, rerank)).Body);
            Assert.Equal((await servers.Pretraining.Post("/fill-mask", new { inputs = "Paris is the [MASK] of France." })).Body,
                (await servers.Pretraining.Post(path, new { inputs = "Paris is the [MASK] of France." })).Body);
            // The route's own errors, with its own status: an embedding body sent to a reranker lacks `query`.
            (await servers.Reranker.Post(path, new { inputs = "a" })).Error(422, "Tokenizer");
        }
        Assert.Equal((await servers.Encoder.Post("/v1/embeddings", new { input = "a" })).Json["data"]!.ToJsonString(),
            (await servers.Encoder.Post("/embeddings", new { input = "a" })).Json["data"]!.ToJsonString());
    }

    [Fact]
    public async Task An_unknown_route_is_404_and_a_wrong_method_405_each_with_teis_error_body()
    {
        var reply = await servers.Encoder.Post("/nope", "{}");
        Assert.Contains("/nope", reply.Error(404, "Validation"));
        reply = await servers.Encoder.Get("/embed");
        Assert.Contains("POST", reply.Error(405, "Validation"));
        Assert.Equal("POST", reply.Message.Content.Headers.Allow.Single());
    }
}
