using System.Net;
using System.Text;

namespace NBert.Tests.Server;

/// <summary>
/// Every error code of <c>nbert serve</c> over HTTP, with text-embeddings-inference's status codes and bodies
/// (router/src/http/server.rs: Empty 400, Validation 413, Tokenizer 422, Backend 424, Overloaded 429, Unhealthy 503),
/// and malformed or oversized bodies that never bring the server down.
/// </summary>
[Collection("fixture servers")]
public sealed class ServerErrorTests(FixtureServers servers)
{
    private RunningServer Encoder => servers.Encoder;

    [Fact]
    public async Task Empty_inputs_are_400()
    {
        Assert.Equal("Input validation error: `inputs` cannot be empty", (await Encoder.Post("/embed", "{\"inputs\": []}")).Error(400, "Empty"));
        (await Encoder.Post("/embed", "{\"inputs\": \"\"}")).Error(400, "Empty");
        (await Encoder.Post("/embed_all", "{\"inputs\": [\"a\", \"\"]}")).Error(400, "Empty");
        (await Encoder.Post("/tokenize", "{\"inputs\": []}")).Error(400, "Empty");
        (await Encoder.Post("/decode", "{\"ids\": []}")).Error(400, "Empty");
        (await Encoder.Post("/similarity", "{\"inputs\": {\"source_sentence\": \"a\", \"sentences\": []}}")).Error(400, "Empty");
        (await servers.Reranker.Post("/rerank", "{\"query\": \"q\", \"texts\": []}")).Error(400, "Empty");
        (await servers.Pretraining.Post("/fill-mask", "{\"inputs\": []}")).Error(400, "Empty");
    }

    [Fact]
    public async Task Inputs_over_a_limit_are_413()
    {
        string tooLong = string.Join(" ", Enumerable.Repeat("store", 130));
        Assert.Equal("Input validation error: `inputs` must have less than 128 tokens. Given: 132",
            (await Encoder.Post("/embed", new { inputs = tooLong })).Error(413, "Validation"));
        (await servers.Classifier.Post("/predict", new { inputs = new[] { tooLong, "x" } })).Error(413, "Validation");
        var batch = Enumerable.Repeat("x", 33).ToArray();
        Assert.Equal("batch size 33 > maximum allowed batch size 32", (await Encoder.Post("/embed", new { inputs = batch })).Error(413, "Validation"));
        (await Encoder.Post("/similarity", new { inputs = new { source_sentence = "x", sentences = batch[..32] } })).Error(413, "Validation");
        (await servers.Reranker.Post("/rerank", new { query = "q", texts = batch })).Error(413, "Validation");
        (await servers.TokenClassifier.Post("/token-classification", new { inputs = batch })).Error(413, "Validation");
        (await Encoder.Post("/embed", new { inputs = "x", dimensions = 33 })).Error(413, "Validation");
        (await Encoder.Post("/decode", new { ids = new[] { new[] { 1 }, Array.Empty<int>() } })).Error(413, "Validation");
        var openAi = await Encoder.Post("/v1/embeddings", new { input = batch });
        Assert.Equal(413, (int)openAi.Status);
        Assert.Equal("{\"message\":\"batch size 33 > maximum allowed batch size 32\",\"code\":413,\"type\":\"Validation\"}", openAi.Body);
    }

    [Fact]
    public async Task Bodies_over_the_payload_limit_are_413_and_the_server_goes_on()
    {
        foreach (int size in new[] { 2_000_001, 10_000_000 })
        {
            string json = "{\"inputs\": \"" + new string('a', size) + "\"}";
            var request = new HttpRequestMessage(HttpMethod.Post, "/embed") { Content = new StringContent(json, Encoding.UTF8, "application/json") };
            request.Headers.ExpectContinue = true; // the server refuses on the Content-Length, before the body is sent
            var response = await Encoder.Client.SendAsync(request);
            var reply = new Reply(response.StatusCode, await response.Content.ReadAsStringAsync(), response);
            Assert.StartsWith("Failed to buffer the request body: length limit exceeded", reply.Error(413, "Validation"));
        }
        Assert.Equal(HttpStatusCode.OK, (await Encoder.Post("/embed", new { inputs = "x" })).Status);
    }

    [Fact]
    public async Task Malformed_bodies_are_400_and_wrong_fields_422()
    {
        Assert.StartsWith("Failed to parse the request body as JSON", (await Encoder.Post("/embed", "{\"inputs\": ")).Error(400, "Validation"));
        (await Encoder.Post("/embed", "")).Error(400, "Validation");
        (await Encoder.Post("/embed", "not json")).Error(400, "Validation");
        var invalidUtf8 = new ByteArrayContent([.. "{\"inputs\": \""u8, 0xC3, 0x28, 0xFF, .. "\"}"u8]);
        invalidUtf8.Headers.ContentType = new("application/json");
        var response = await Encoder.Client.PostAsync("/embed", invalidUtf8);
        Assert.Equal("Failed to parse the request body as JSON: the body is not valid UTF-8",
            new Reply(response.StatusCode, await response.Content.ReadAsStringAsync(), response).Error(400, "Validation"));

        foreach (var (route, body) in new[]
        {
            ("/embed", "{}"), ("/embed", "[1, 2]"), ("/embed", "{\"inputs\": 5}"), ("/embed", "{\"inputs\": [\"a\", 5]}"), ("/embed", "{\"inputs\": {\"a\": 1}}"),
            ("/embed", "{\"inputs\": \"a\", \"normalize\": \"yes\"}"), ("/embed", "{\"inputs\": \"a\", \"truncate\": 1}"),
            ("/embed", "{\"inputs\": \"a\", \"truncation_direction\": \"up\"}"), ("/embed", "{\"inputs\": [-1]}"), ("/embed", "{\"inputs\": \"a\", \"dimensions\": 0}"),
            ("/v1/embeddings", "{\"input\": \"a\", \"encoding_format\": \"hex\"}"), ("/decode", "{\"ids\": [\"a\"]}"), ("/tokenize", "{\"inputs\": [[1]]}"),
            ("/similarity", "{\"inputs\": [\"a\"]}"), ("/similarity", "{\"inputs\": {\"source_sentence\": \"a\", \"sentences\": \"b\"}}"),
        })
        {
            var reply = await Encoder.Post(route, body);
            Assert.True((int)reply.Status == 422, $"{route} {body}: {(int)reply.Status} {reply.Body}");
            Assert.StartsWith("Failed to deserialize the JSON body into the target type", (reply.Json["error"] ?? reply.Json["message"])!.GetValue<string>());
        }
        foreach (var body in new[] { "{\"inputs\": [\"a\", \"b\", \"c\"]}", "{\"inputs\": [[\"a\", \"b\", \"c\"]]}", "{\"inputs\": []}" })
            (await servers.Classifier.Post("/predict", body)).Error(422, "Tokenizer");
        (await servers.TokenClassifier.Post("/token-classification", "{\"inputs\": \"a\", \"parameters\": {\"aggregation_strategy\": \"best\"}}")).Error(422, "Tokenizer");
        (await servers.QuestionAnswering.Post("/question-answering", "{\"inputs\": {\"question\": \"q\"}}")).Error(422, "Tokenizer");
        // Inputs the pipeline refuses: a text without [MASK], an empty question.
        Assert.Contains("[MASK]", (await servers.Pretraining.Post("/fill-mask", "{\"inputs\": \"no mask here\"}")).Error(422, "Tokenizer"));
        (await servers.QuestionAnswering.Post("/question-answering", "{\"inputs\": {\"question\": \" \", \"context\": \"c\"}}")).Error(422, "Tokenizer");
        Assert.Equal(HttpStatusCode.OK, (await Encoder.Get("/health")).Status);
    }

    [Fact]
    public async Task A_lone_surrogate_is_a_body_that_is_not_json_text_400_as_tei_answers_it()
    {
        // System.Text.Json reads "\ud800" as JSON and fails only when the string is read; TEI's parser refuses it (400).
        foreach (var (route, body, where) in new[]
        {
            ("/embed", "{\"inputs\": \"a\\ud800\"}", "$.inputs"), ("/embed", "{\"inputs\": [\"a\", \"\\udc00b\"]}", "$.inputs[1]"),
            ("/tokenize", "{\"inputs\": \"\\ud800\\ud800\"}", "$.inputs"), ("/embed", "{\"inputs\": \"a\", \"x\\ud800\": 1}", "$"),
        })
        {
            string message = (await Encoder.Post(route, body)).Error(400, "Validation");
            Assert.StartsWith($"Failed to parse the request body as JSON: {where}: a ", message);
            Assert.Contains("lone surrogate", message);
        }
        string pipeline = (await servers.Pretraining.Post("/fill-mask", "{\"inputs\": \"[MASK] \\ud800\"}")).Error(400, "Validation");
        Assert.StartsWith("Failed to parse the request body as JSON: $.inputs: a ", pipeline);
        var openAi = await Encoder.Post("/v1/embeddings", "{\"input\": \"\\ud800\"}");
        Assert.Equal(400, (int)openAi.Status);
        Assert.Equal("Validation", openAi.Json["type"]!.GetValue<string>());
        // A surrogate pair is one character.
        var pair = await Encoder.Post("/embed", "{\"inputs\": \"a \\ud83d\\ude00\"}");
        Assert.Equal(HttpStatusCode.OK, pair.Status);
        Assert.Equal("3", pair.Header("x-compute-characters"));
    }

    [Fact]
    public async Task Token_ids_outside_the_vocabulary_are_422_naming_the_id_never_dropped()
    {
        // The fixture's vocabulary has 4000 ids; Hugging Face's decoder would drop 4000 and embed [2, 3] instead.
        string message = (await Encoder.Post("/embed", "{\"inputs\": [[2, 4000, 3]]}")).Error(422, "Tokenizer");
        Assert.Equal("`inputs`: token id 4000 (input 1, position 2) is outside the vocabulary 0..3999 (vocab_size 4000).", message);
        Assert.Contains("token id 999999999 (input 2, position 1)", (await Encoder.Post("/embed", "{\"inputs\": [\"x\", [999999999]]}")).Error(422, "Tokenizer"));
        (await Encoder.Post("/embed_all", "{\"inputs\": [4000]}")).Error(422, "Tokenizer");
        Assert.Equal(422, (int)(await Encoder.Post("/v1/embeddings", "{\"input\": [4000]}")).Status);
        Assert.Equal(HttpStatusCode.OK, (await Encoder.Post("/embed", "{\"inputs\": [[2, 3999, 3]]}")).Status);
    }

    [Fact]
    public async Task A_text_the_library_refuses_is_422_with_the_librarys_message_and_a_huge_top_k_gives_every_candidate()
    {
        const string text = "The capital of France has no mask.";
        using var fillMask = NBert.Pipelines.FillMask.FromPretrained(Fixtures.Path("model", "pretraining"));
        var refusal = Assert.ThrowsAny<ArgumentException>(() => fillMask.RunEachMask([text]));
        string message = (await servers.Pretraining.Post("/fill-mask", new { inputs = text })).Error(422, "Tokenizer");
        Assert.Equal(NBert.Cli.CliException.Reason(refusal), message);

        var all = await servers.Pretraining.Post("/fill-mask", new { inputs = "The capital of France is [MASK].", parameters = new { top_k = int.MaxValue } });
        Assert.Equal(HttpStatusCode.OK, all.Status);
        Assert.Equal(fillMask.Tokenizer.VocabSize, all.Json.AsArray().Count);
    }

    [Fact]
    public async Task Errors_carry_no_compute_headers_as_tei_sets_them_on_success_only()
    {
        var ok = await Encoder.Post("/embed", new { inputs = "x" });
        Assert.NotNull(ok.Header("x-compute-time"));
        foreach (var reply in new[] { await Encoder.Post("/embed", new { inputs = string.Join(" ", Enumerable.Repeat("store", 130)) }), await Encoder.Post("/embed", "{}") })
        {
            Assert.False(reply.Status == HttpStatusCode.OK);
            Assert.DoesNotContain(reply.Message.Headers, h => h.Key.StartsWith("x-", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task A_get_route_that_fails_answers_teis_error_body_and_is_logged()
    {
        var log = new StringWriter();
        using var inference = NBert.Server.TextEmbeddingsInference.Load(new NBert.Server.ServerOptions { Model = Fixtures.Path("model", "encoder_only") }, log);
        var ctx = new Microsoft.AspNetCore.Http.DefaultHttpContext();
        ctx.Request.Method = "GET";
        ctx.Request.Path = "/info";
        ctx.Response.Body = new MemoryStream();
        await inference.Answer(ctx, openAi: false, _ => throw new InvalidOperationException("it broke"));
        Assert.Equal(500, ctx.Response.StatusCode);
        Assert.Equal("{\"error\":\"Backend error: it broke\",\"error_type\":\"Backend\"}", Encoding.UTF8.GetString(((MemoryStream)ctx.Response.Body).ToArray()));
        Assert.Contains("nbert serve: GET /info: unexpected failure: System.InvalidOperationException: it broke", log.ToString());
    }

    [Fact]
    public async Task Unknown_routes_are_404_and_wrong_methods_405()
    {
        Assert.Equal(HttpStatusCode.NotFound, (await Encoder.Post("/nope", "{}")).Status);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await Encoder.Get("/embed")).Status);
    }

    [Fact]
    public async Task An_api_key_is_required_on_every_route_but_health()
    {
        await using var server = await RunningServer.Start(Fixtures.Path("model", "encoder_only"), o => o with { ApiKey = "s3cret" });
        Assert.Equal(HttpStatusCode.Unauthorized, (await server.Post("/embed", new { inputs = "x" })).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await server.Get("/info")).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await server.Get("/metrics")).Status);
        Assert.Equal(HttpStatusCode.OK, (await server.Get("/health")).Status);
        server.Client.DefaultRequestHeaders.Authorization = new("Bearer", "wrong");
        Assert.Equal(HttpStatusCode.Unauthorized, (await server.Post("/embed", new { inputs = "x" })).Status);
        server.Client.DefaultRequestHeaders.Authorization = new("Bearer", "s3cret");
        Assert.Equal(HttpStatusCode.OK, (await server.Post("/embed", new { inputs = "x" })).Status);
        Assert.Equal(HttpStatusCode.OK, (await server.Get("/info")).Status);
    }

    [Fact]
    public async Task A_model_that_computes_nan_answers_424_naming_the_weights_never_nan()
    {
        string dir = Directory.CreateTempSubdirectory("nbert-nan-").FullName;
        try
        {
            string source = Fixtures.Path("model", "encoder_only");
            var model = NBert.Modeling.BertPreTrainedModel.FromPretrained(source);
            model.Parameters["encoder.layer.0.output.dense.weight"].Data[0] = float.NaN;
            model.SavePretrained(dir);
            foreach (var file in new[] { "tokenizer.json", "tokenizer_config.json", "vocab.txt" }) File.Copy(Path.Combine(source, file), Path.Combine(dir, file));
            await using var server = await RunningServer.Start(dir);
            string message = (await server.Post("/embed", new { inputs = "the man" })).Error(424, "Backend");
            Assert.Contains("not finite", message);
            Assert.Contains("encoder.layer.0.output.dense.weight", message);
            Assert.Equal(HttpStatusCode.OK, (await server.Post("/tokenize", new { inputs = "the man" })).Status);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
