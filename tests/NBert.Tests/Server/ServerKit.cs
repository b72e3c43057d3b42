using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using NBert.Server;

namespace NBert.Tests.Server;

/// <summary>An HTTP answer: status, body text, headers.</summary>
internal sealed record Reply(HttpStatusCode Status, string Body, HttpResponseMessage Message)
{
    public JsonNode Json => JsonNode.Parse(Body)!;
    public string? Header(string name) => Message.Headers.TryGetValues(name, out var v) ? v.Single() : null;

    /// <summary>TEI's error body: asserts the status and the error type, gives the message.</summary>
    public string Error(int status, string type)
    {
        Assert.True((int)Status == status, $"expected {status}, got {(int)Status}: {Body}");
        Assert.Equal(type, Json["error_type"]!.GetValue<string>());
        return Json["error"]!.GetValue<string>();
    }
}

/// <summary>A real server on 127.0.0.1 (a free port) and an HttpClient talking to it.</summary>
internal sealed class RunningServer : IAsyncDisposable
{
    public InferenceServer Server { get; }
    public HttpClient Client { get; }

    private RunningServer(InferenceServer server)
    {
        Server = server;
        Client = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromSeconds(60) };
    }

    public static async Task<RunningServer> Start(string model, Func<ServerOptions, ServerOptions>? configure = null)
    {
        var options = new ServerOptions { Model = model, Port = 0, Hostname = "127.0.0.1" };
        return new RunningServer(await InferenceServer.StartAsync(configure?.Invoke(options) ?? options));
    }

    public Task<Reply> Post(string path, object body, CancellationToken token = default) =>
        Post(path, body as string ?? JsonSerializer.Serialize(body), token);

    public async Task<Reply> Post(string path, string json, CancellationToken token = default)
    {
        var response = await Client.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"), token);
        return new Reply(response.StatusCode, await response.Content.ReadAsStringAsync(token), response);
    }

    public async Task<Reply> Get(string path)
    {
        var response = await Client.GetAsync(path);
        return new Reply(response.StatusCode, await response.Content.ReadAsStringAsync(), response);
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
    }
}

/// <summary>The fixture models behind servers, started once for a test class.</summary>
public sealed class FixtureServers : IAsyncLifetime
{
    internal RunningServer Encoder { get; private set; } = null!;
    internal RunningServer Classifier { get; private set; } = null!;
    internal RunningServer Reranker { get; private set; } = null!;
    internal RunningServer Pretraining { get; private set; } = null!;
    internal RunningServer TokenClassifier { get; private set; } = null!;
    internal RunningServer QuestionAnswering { get; private set; } = null!;
    private readonly string _dir = Directory.CreateTempSubdirectory("nbert-serve-").FullName;

    /// <summary>A cross-encoder: the fixture encoder with a one-label classification head (newly initialised, seed 0).</summary>
    public static string MakeReranker(string dir)
    {
        string source = Fixtures.Path("model", "encoder_only");
        foreach (var file in Directory.GetFiles(source)) File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
        config["architectures"] = new JsonArray("BertForSequenceClassification");
        config["id2label"] = new JsonObject { ["0"] = "LABEL_0" };
        config["label2id"] = new JsonObject { ["LABEL_0"] = 0 };
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        return dir;
    }

    public async Task InitializeAsync()
    {
        Encoder = await RunningServer.Start(Fixtures.Path("model", "encoder_only"));
        Classifier = await RunningServer.Start(Fixtures.Path("model", "seqcls"));
        Reranker = await RunningServer.Start(MakeReranker(_dir));
        Pretraining = await RunningServer.Start(Fixtures.Path("model", "pretraining"));
        TokenClassifier = await RunningServer.Start(Fixtures.Path("model", "tokcls"));
        QuestionAnswering = await RunningServer.Start(Fixtures.Path("model", "qa"));
    }

    public async Task DisposeAsync()
    {
        foreach (var s in new[] { Encoder, Classifier, Reranker, Pretraining, TokenClassifier, QuestionAnswering })
            if (s is not null) await s.DisposeAsync();
        Directory.Delete(_dir, true);
    }
}
