using System.Text.Json;
using System.Text.Json.Nodes;
using NBert.Modeling;
using NBert.Pipelines;
using NBert.Tests.Cli;
using NBert.Tokenization;
using NBert.Schema;
using NBert.Tasks;

namespace NBert.Tests.Server;

[CollectionDefinition("fixture servers")]
public sealed class FixtureServersCollection : ICollectionFixture<FixtureServers>;

/// <summary>
/// Every route of <c>nbert serve</c> over real HTTP on loopback, against the fixture models: TEI's request and response
/// shapes and defaults, answers equal to the library's, the pipeline routes equal to the CLI's <c>--json</c>.
/// </summary>
[Collection("fixture servers")]
public sealed class ServerRouteTests(FixtureServers servers)
{
    private static readonly string Encoder = Fixtures.Path("model", "encoder_only");
    private static readonly Lazy<SentenceEmbeddings> Library = new(() => SentenceEmbeddings.FromPretrained(Encoder, o => o with { Normalize = false }));

    internal static float[] Floats(JsonNode node) => node.AsArray().Select(x => x!.GetValue<float>()).ToArray();
    internal static int[] Bits(float[] v) => v.Select(BitConverter.SingleToInt32Bits).ToArray();

    [Fact]
    public async Task Embed_gives_a_vector_per_input_normalised_by_default_and_the_librarys_bits_unnormalised()
    {
        var one = await servers.Encoder.Post("/embed", new { inputs = "The man went to the store." });
        Assert.Equal(System.Net.HttpStatusCode.OK, one.Status);
        var v = Floats(one.Json.AsArray().Single()!);
        Assert.Equal(32, v.Length);
        Assert.Equal(1.0, Math.Sqrt(v.Sum(x => (double)x * x)), 5);
        Assert.Equal("9", one.Header("x-compute-tokens")); // [CLS] the man went to the store . [SEP]
        Assert.Equal("26", one.Header("x-compute-characters"));
        foreach (var h in new[] { "x-compute-time", "x-tokenization-time", "x-queue-time", "x-inference-time" }) Assert.NotNull(one.Header(h));

        string[] texts = ["The man went to the store.", "Penguins are flightless birds.", "x"];
        var raw = await servers.Encoder.Post("/embed", new { inputs = texts, normalize = false });
        var vectors = raw.Json.AsArray().Select(n => Floats(n!)).ToList();
        Assert.Equal(3, vectors.Count);
        for (int i = 0; i < texts.Length; i++) Assert.Equal(Bits(Library.Value.Embed(texts[i])), Bits(vectors[i]));

        var cut = await servers.Encoder.Post("/embed", new { inputs = texts[0], dimensions = 8 });
        var short8 = Floats(cut.Json[0]!);
        Assert.Equal(8, short8.Length);
        var expected = Library.Value.Embed(texts[0])[..8];
        SentenceEmbeddings.Normalize(expected);
        Assert.Equal(Bits(expected), Bits(short8));
    }

    [Fact]
    public async Task An_embedding_model_pools_as_its_sentence_transformers_files_say_unless_told()
    {
        string dir = Directory.CreateTempSubdirectory("nbert-st-").FullName;
        try
        {
            foreach (var file in Directory.GetFiles(Encoder)) File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
            SentenceTransformersConfig.Write(dir, new EmbeddingOptions { Pooling = Pooling.Cls, Normalize = true }, maxSeqLength: 64, dimension: 32);
            var library = SentenceEmbeddings.FromPretrained(dir, o => o with { Normalize = false });
            Assert.Equal(Pooling.Cls, library.Options.Pooling);
            await using (var server = await RunningServer.Start(dir))
            {
                var info = (await server.Get("/info")).Json;
                Assert.Equal("{\"embedding\":{\"pooling\":\"cls\"}}", info["model_type"]!.ToJsonString());
                Assert.Equal(64, info["max_input_length"]!.GetValue<int>());
                var v = Floats((await server.Post("/embed", new { inputs = "The man went to the store.", normalize = false })).Json[0]!);
                Assert.Equal(Bits(library.Embed("The man went to the store.")), Bits(v));
            }
            await using (var mean = await RunningServer.Start(dir, o => o with { Pooling = Pooling.Mean }))
                Assert.Equal("{\"embedding\":{\"pooling\":\"mean\"}}", (await mean.Get("/info")).Json["model_type"]!.ToJsonString());
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task A_plain_bert_directory_embeds_as_nbert_embed_and_the_library_do()
    {
        // No sentence-transformers files, no model_max_length, 1024 positions: the library's rule is mean pooling, not
        // normalised, and 512 tokens (the tokenizer's default limit); the server must not take the positions' 1024.
        string dir = Directory.CreateTempSubdirectory("nbert-plain-").FullName;
        try
        {
            var config = new BertConfig { VocabSize = 4000, HiddenSize = 32, NumHiddenLayers = 2, NumAttentionHeads = 4, IntermediateSize = 64, MaxPositionEmbeddings = 1024 };
            using (var model = BertPreTrainedModel.FromConfig(config, BertArchitecture.BertModel, seed: 7)) model.SavePretrained(dir);
            File.Copy(Path.Combine(Encoder, "vocab.txt"), Path.Combine(dir, "vocab.txt"));
            string text = string.Join(" ", Enumerable.Range(0, 700).Select(i => i % 3 == 0 ? "the man" : "store"));

            using var library = SentenceEmbeddings.FromPretrained(dir);
            Assert.Equal(512, library.MaxTokens);
            var expected = library.Embed(text);
            var (code, output, error) = Nbert.Run("embed", "--model", dir, "--json", text);
            Assert.True(code == 0, error);
            Assert.Equal(Bits(expected), Bits(Floats(JsonNode.Parse(output)!["embedding"]!)));

            await using var server = await RunningServer.Start(dir);
            var info = (await server.Get("/info")).Json;
            Assert.Equal(512, info["max_input_length"]!.GetValue<int>());
            Assert.Equal("{\"embedding\":{\"pooling\":\"mean\"}}", info["model_type"]!.ToJsonString());
            var served = Floats((await server.Post("/embed", new { inputs = text, truncate = true, normalize = false })).Json[0]!);
            Assert.Equal(Bits(expected), Bits(served));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task Info_of_a_classifier_whose_labels_repeat_maps_each_label_to_its_first_id()
    {
        string dir = Directory.CreateTempSubdirectory("nbert-labels-").FullName;
        try
        {
            string source = Fixtures.Path("model", "seqcls");
            foreach (var file in Directory.GetFiles(source)) File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
            config["id2label"] = new JsonObject { ["0"] = "bad", ["1"] = "good", ["2"] = "good" };
            config["label2id"] = new JsonObject { ["bad"] = 0, ["good"] = 1 };
            File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
            await using var server = await RunningServer.Start(dir);
            var info = await server.Get("/info");
            Assert.Equal(System.Net.HttpStatusCode.OK, info.Status);
            Assert.Equal("{\"classifier\":{\"id2label\":{\"0\":\"bad\",\"1\":\"good\",\"2\":\"good\"},\"label2id\":{\"bad\":0,\"good\":1}}}",
                info.Json["model_type"]!.ToJsonString());
            Assert.Equal(3, (await server.Post("/predict", new { inputs = "A fine film." })).Json.AsArray().Count);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task Token_ids_are_an_input_like_the_text_they_decode_to()
    {
        var tokenizer = BertTokenizer.FromPretrained(Encoder);
        int[] ids = tokenizer.Encode("The man went to the store.").InputIds;
        var byIds = await servers.Encoder.Post("/embed", $"{{\"inputs\": [{string.Join(",", ids)}]}}");
        var byText = await servers.Encoder.Post("/embed", new { inputs = "The man went to the store." });
        Assert.Equal(byText.Body, byIds.Body);
        var batch = await servers.Encoder.Post("/embed", $"{{\"inputs\": [[{string.Join(",", ids)}], \"x\"]}}");
        Assert.Equal(2, batch.Json.AsArray().Count);
    }

    [Fact]
    public async Task Long_inputs_are_refused_or_truncated_from_the_side_asked()
    {
        string text = string.Join(" ", Enumerable.Range(0, 200).Select(i => i % 2 == 0 ? "the" : "store"));
        string message = (await servers.Encoder.Post("/embed", new { inputs = text })).Error(413, "Validation");
        Assert.Equal("Input validation error: `inputs` must have less than 128 tokens. Given: 202", message);
        var right = Floats((await servers.Encoder.Post("/embed", new { inputs = text + " man", truncate = true, normalize = false })).Json[0]!);
        var left = Floats((await servers.Encoder.Post("/embed", new { inputs = text + " man", truncate = true, truncation_direction = "left", normalize = false })).Json[0]!);
        // Expected: the library's forward and pooling on the tokenizer's left-truncated encoding (which keeps "man").
        var e = Library.Value.Tokenizer.Encode(text + " man", options: new EncodeOptions { MaxLength = 128, TruncationSide = TruncationSide.Left });
        Assert.Equal("man", e.Tokens[^2]);
        var hidden = Library.Value.Model.Forward(ModelInputs.FromEncodings([e])).LastHiddenState!;
        Assert.Equal(Bits(Library.Value.Pool(hidden.Data, e.AttentionMask)), Bits(left));
        Assert.NotEqual(Bits(right), Bits(left));
        Assert.Equal(Bits(Library.Value.Embed(text + " man")), Bits(right)); // the library truncates at 128 on the right
    }

    [Fact]
    public async Task Embed_all_gives_every_tokens_vector()
    {
        var reply = await servers.Encoder.Post("/embed_all", new { inputs = new[] { "The man went to the store.", "x" } });
        var first = reply.Json[0]!.AsArray();
        Assert.Equal(9, first.Count);
        var expected = Library.Value.TokenEmbeddings("The man went to the store.");
        for (int t = 0; t < 9; t++) Assert.Equal(Bits(expected.Data.AsSpan(t * 32, 32).ToArray()), Bits(Floats(first[t]!)));
        Assert.Equal(3, reply.Json[1]!.AsArray().Count); // [CLS] x [SEP]
    }

    [Fact]
    public async Task Similarity_gives_the_cosine_of_each_sentence_to_the_source()
    {
        string[] sentences = ["The man went to the store.", "Penguins are flightless birds."];
        var reply = await servers.Encoder.Post("/similarity", new { inputs = new { source_sentence = "He bought a gallon of milk.", sentences } });
        var scores = Floats(reply.Json);
        var source = Library.Value.Embed("He bought a gallon of milk.");
        for (int i = 0; i < 2; i++) Assert.Equal(SentenceEmbeddings.CosineSimilarity(source, Library.Value.Embed(sentences[i])), scores[i]);
    }

    [Fact]
    public async Task OpenAI_embeddings_have_openais_shape_in_float_or_base64()
    {
        var reply = await servers.Encoder.Post("/v1/embeddings", new { input = new[] { "The man went to the store.", "x" }, model = "anything" });
        var json = reply.Json;
        Assert.Equal("list", json["object"]!.GetValue<string>());
        Assert.Equal("encoder_only", json["model"]!.GetValue<string>()); // the directory's name, as the library's metadata names it
        Assert.Equal(12, json["usage"]!["prompt_tokens"]!.GetValue<int>());
        Assert.Equal(12, json["usage"]!["total_tokens"]!.GetValue<int>());
        var data = json["data"]!.AsArray();
        Assert.Equal([0, 1], data.Select(d => d!["index"]!.GetValue<int>()));
        Assert.All(data, d => Assert.Equal("embedding", d!["object"]!.GetValue<string>()));
        var embed = await servers.Encoder.Post("/embed", new { inputs = new[] { "The man went to the store.", "x" } });
        Assert.Equal(embed.Json[0]!.ToJsonString(), data[0]!["embedding"]!.ToJsonString());

        var b64 = await servers.Encoder.Post("/v1/embeddings", new { input = "x", encoding_format = "base64", dimensions = 4 });
        var bytes = Convert.FromBase64String(b64.Json["data"]![0]!["embedding"]!.GetValue<string>());
        var decoded = Enumerable.Range(0, bytes.Length / 4).Select(i => BitConverter.ToSingle(bytes, i * 4)).ToArray();
        var asFloats = Floats((await servers.Encoder.Post("/v1/embeddings", new { input = "x", dimensions = 4 })).Json["data"]![0]!["embedding"]!);
        Assert.Equal(4, decoded.Length);
        Assert.Equal(Bits(asFloats), Bits(decoded));
    }

    [Fact]
    public async Task Predict_gives_labels_by_score_for_a_text_a_pair_or_a_batch()
    {
        var pipeline = TextClassification.FromPretrained(Fixtures.Path("model", "seqcls"));
        var single = await servers.Classifier.Post("/predict", new { inputs = "A fine film." });
        var predictions = single.Json.AsArray();
        Assert.Equal(3, predictions.Count);
        var expected = pipeline.Run("A fine film.", new TextClassificationOptions { TopK = null });
        Assert.Equal(expected.Select(x => (x.Label, x.Score)), predictions.Select(p => (p!["label"]!.GetValue<string>(), p["score"]!.GetValue<float>())));
        Assert.Equal(["score", "label"], predictions[0]!.AsObject().Select(kv => kv.Key)); // TEI's field order

        var pair = await servers.Classifier.Post("/predict", new { inputs = new[] { "A fine film.", "I liked it." } });
        var expectedPair = pipeline.Run("A fine film.", "I liked it.", new TextClassificationOptions { TopK = null });
        Assert.Equal(expectedPair.Select(x => x.Score), pair.Json.AsArray().Select(p => p!["score"]!.GetValue<float>()));

        var batch = await servers.Classifier.Post("/predict", new { inputs = new object[] { new[] { "A fine film." }, new[] { "A fine film.", "I liked it." } } });
        Assert.Equal(single.Json.ToJsonString(), batch.Json[0]!.ToJsonString());
        Assert.Equal(pair.Json.ToJsonString(), batch.Json[1]!.ToJsonString());

        var raw = await servers.Classifier.Post("/predict", new { inputs = "A fine film.", raw_scores = true });
        var model = pipeline.Model;
        var logits = model.Forward(ModelInputs.FromEncodings([pipeline.Tokenizer.Encode("A fine film.")])).Logits!.Data;
        Assert.Equal(logits.OrderByDescending(x => x), raw.Json.AsArray().Select(p => p!["score"]!.GetValue<float>()));
    }

    [Fact]
    public async Task Rerank_sorts_the_texts_by_the_cross_encoders_sigmoid_score()
    {
        string[] texts = ["The man went to the store.", "Penguins are flightless birds.", "He bought a gallon of milk.", "x"];
        var reply = await servers.Reranker.Post("/rerank", new { query = "Who went to the store?", texts, return_text = true });
        var ranks = reply.Json.AsArray();
        Assert.Equal([0, 1, 2, 3], ranks.Select(r => r!["index"]!.GetValue<int>()).Order());
        var scores = ranks.Select(r => r!["score"]!.GetValue<float>()).ToList();
        Assert.Equal(scores.OrderByDescending(s => s), scores);
        foreach (var r in ranks)
        {
            int i = r!["index"]!.GetValue<int>();
            Assert.Equal(texts[i], r["text"]!.GetValue<string>());
            // The same pair through /predict: one label, so a sigmoid.
            var predict = await servers.Reranker.Post("/predict", new { inputs = new[] { "Who went to the store?", texts[i] } });
            Assert.Equal(predict.Json[0]!["score"]!.GetValue<float>(), r["score"]!.GetValue<float>());
        }
        var bare = await servers.Reranker.Post("/rerank", new { query = "q", texts = new[] { "a" }, raw_scores = true });
        Assert.Equal(["index", "score"], bare.Json[0]!.AsObject().Select(kv => kv.Key));
        var sigmoid = (await servers.Reranker.Post("/rerank", new { query = "q", texts = new[] { "a" } })).Json[0]!["score"]!.GetValue<float>();
        Assert.Equal(1f / (1f + MathF.Exp(-bare.Json[0]!["score"]!.GetValue<float>())), sigmoid);
    }

    [Fact]
    public async Task Tokenize_and_decode_give_teis_tokens_and_texts()
    {
        var reply = await servers.Encoder.Post("/tokenize", new { inputs = "Paris, 😀 capital" });
        var tokens = reply.Json.AsArray().Single()!.AsArray();
        Assert.Equal("{\"id\":101,\"text\":\"[CLS]\",\"special\":true,\"start\":null,\"stop\":null}", tokens[0]!.ToJsonString());
        Assert.Equal("{\"id\":3000,\"text\":\"Paris\",\"special\":false,\"start\":0,\"stop\":5}", tokens[1]!.ToJsonString());
        // Offsets count characters: the emoji is one, so "capital" starts at 9.
        Assert.Equal("{\"id\":3007,\"text\":\"capital\",\"special\":false,\"start\":9,\"stop\":16}", tokens[^2]!.ToJsonString());
        var plain = await servers.Encoder.Post("/tokenize", new { inputs = new[] { "Paris", "capital" }, add_special_tokens = false });
        Assert.Equal([[3000], [3007]], plain.Json.AsArray().Select(t => t!.AsArray().Select(x => x!["id"]!.GetValue<int>()).ToArray()));

        var decoded = await servers.Encoder.Post("/decode", new { ids = new[] { 101, 3000, 3007, 102 } });
        Assert.Equal("[\"paris capital\"]", decoded.Body);
        var kept = await servers.Encoder.Post("/decode", new { ids = new[] { new[] { 101, 3000, 102 }, new[] { 3007 } }, skip_special_tokens = false });
        Assert.Equal("[\"[CLS] paris [SEP]\",\"capital\"]", kept.Body);
    }

    [Fact]
    public async Task Info_health_and_metrics_describe_the_server()
    {
        var info = (await servers.Encoder.Get("/info")).Json;
        Assert.Equal("{\"embedding\":{\"pooling\":\"mean\"}}", info["model_type"]!.ToJsonString());
        Assert.Equal(128, info["max_input_length"]!.GetValue<int>());
        Assert.Equal(512, info["max_concurrent_requests"]!.GetValue<int>());
        Assert.Equal(16384, info["max_batch_tokens"]!.GetValue<int>());
        Assert.Null(info["max_batch_requests"]);
        Assert.Equal(32, info["max_client_batch_size"]!.GetValue<int>());
        Assert.False(info["auto_truncate"]!.GetValue<bool>());
        Assert.Equal("float32", info["model_dtype"]!.GetValue<string>());
        Assert.Equal("encoder_only", info["model_id"]!.GetValue<string>());
        Assert.Equal("{\"classifier\":{\"id2label\":{\"0\":\"negative\",\"1\":\"neutral\",\"2\":\"positive\"},\"label2id\":{\"negative\":0,\"neutral\":1,\"positive\":2}}}",
            (await servers.Classifier.Get("/info")).Json["model_type"]!.ToJsonString());
        Assert.Equal("{\"reranker\":{\"id2label\":{\"0\":\"LABEL_0\"},\"label2id\":{\"LABEL_0\":0}}}", (await servers.Reranker.Get("/info")).Json["model_type"]!.ToJsonString());
        Assert.True((await servers.Pretraining.Get("/info")).Json["model_type"]!.AsObject().ContainsKey("pretraining"));

        var health = await servers.Encoder.Get("/health");
        Assert.Equal(System.Net.HttpStatusCode.OK, health.Status);
        Assert.Equal("", health.Body);

        await servers.Encoder.Post("/embed", new { inputs = "x" });
        string metrics = (await servers.Encoder.Get("/metrics")).Body;
        foreach (var line in new[] { "te_request_count{method=\"single\"}", "te_request_success{method=\"single\"}", "te_request_duration_bucket{le=\"+Inf\"}",
            "te_request_tokenization_duration_count", "te_request_queue_duration_count", "te_request_inference_duration_count",
            "te_batch_next_size_count", "te_batch_next_tokens_count", "te_request_input_length_count", "# TYPE te_queue_size gauge" })
            Assert.Contains(line, metrics);
    }

    /// <summary>The CLI's --json lines for the same inputs (in process).</summary>
    private static string[] Cli(params string[] args)
    {
        var (code, output, error) = Nbert.Run(args);
        Assert.True(code == 0, error);
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    [Fact]
    public async Task Pipeline_routes_answer_exactly_what_the_cli_prints_with_json()
    {
        string mlm = Fixtures.Path("model", "pretraining"), ner = Fixtures.Path("model", "tokcls"), qa = Fixtures.Path("model", "qa");
        string[] masked = ["The capital of France is [MASK].", "Paris is the [MASK] of [MASK]."];
        var fill = Cli(["fill-mask", "--model", mlm, "--json", "--top-k", "3", .. masked]);
        Assert.Equal(fill[0], (await servers.Pretraining.Post("/fill-mask", new { inputs = masked[0], parameters = new { top_k = 3 } })).Body);
        Assert.Equal($"[{string.Join(",", fill)}]", (await servers.Pretraining.Post("/fill-mask", new { inputs = masked, parameters = new { top_k = 3 } })).Body);
        var targets = Cli("fill-mask", "--model", mlm, "--json", "--targets", "paris,capital", masked[0]);
        Assert.Equal(targets[0], (await servers.Pretraining.Post("/fill-mask", new { inputs = masked[0], parameters = new { targets = new[] { "paris", "capital" } } })).Body);

        string[] sentences = ["Barack Obama was born in Hawaii.", "The store in Paris sells milk."];
        foreach (var aggregation in new[] { "none", "simple", "max" })
        {
            var lines = Cli(["ner", "--model", ner, "--json", "--aggregation", aggregation, .. sentences]);
            Assert.Equal($"[{string.Join(",", lines)}]",
                (await servers.TokenClassifier.Post("/token-classification", new { inputs = sentences, parameters = new { aggregation_strategy = aggregation } })).Body);
        }
        Assert.Equal(Cli("ner", "--model", ner, "--json", sentences[0])[0], (await servers.TokenClassifier.Post("/token-classification", new { inputs = sentences[0] })).Body);

        string context = "The man went to the store. He bought a gallon of milk in Paris.";
        var answer = Cli("qa", "--model", qa, "--json", "Where did he go?", context);
        Assert.Equal(answer[0], (await servers.QuestionAnswering.Post("/question-answering", new { inputs = new { question = "Where did he go?", context } })).Body);
        var top2 = Cli("qa", "--model", qa, "--json", "--top-k", "2", "--handle-impossible-answer", "What did he buy?", context);
        Assert.Equal($"[{top2[0]}]", (await servers.QuestionAnswering.Post("/question-answering",
            new { inputs = new[] { new { question = "What did he buy?", context } }, parameters = new { top_k = 2, handle_impossible_answer = true } })).Body);

        var nsp = Cli("nsp", "--model", mlm, "--json", "The man went to the store.", "He bought a gallon of milk.");
        Assert.Equal(nsp[0], (await servers.Pretraining.Post("/next-sentence", new { inputs = new { text = "The man went to the store.", text_pair = "He bought a gallon of milk." } })).Body);
    }

    [Fact]
    public async Task A_route_the_model_does_not_serve_answers_424()
    {
        (RunningServer Server, string Route)[] wrong =
        [
            (servers.Classifier, "/embed"), (servers.Classifier, "/embed_all"), (servers.Classifier, "/similarity"), (servers.Encoder, "/predict"),
            (servers.Classifier, "/rerank"), (servers.Encoder, "/fill-mask"), (servers.Encoder, "/token-classification"),
            (servers.Encoder, "/question-answering"), (servers.Encoder, "/next-sentence"),
        ];
        foreach (var (server, route) in wrong)
            Assert.Contains("the model served is for", (await server.Post(route, "{\"inputs\": \"x\", \"query\": \"q\", \"texts\": [\"a\"]}")).Error(424, "Backend"));
        var openAi = await servers.Classifier.Post("/v1/embeddings", new { input = "x" });
        Assert.Equal(424, (int)openAi.Status);
        Assert.Equal(424, openAi.Json["code"]!.GetValue<int>());
        Assert.Equal("Backend", openAi.Json["type"]!.GetValue<string>());
        Assert.StartsWith("Model is not an embedding model", openAi.Json["message"]!.GetValue<string>());
    }
}
