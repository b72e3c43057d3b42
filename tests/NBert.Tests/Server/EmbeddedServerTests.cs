using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using NBert.Pipelines;
using NBert.Server;

namespace NBert.Tests.Server;

/// <summary>NBert.Server as a library: TEI's routes mapped into an ASP.NET Core application the test builds, beside
/// the application's own endpoints, under a prefix, answering over real HTTP as <c>nbert serve</c> does.</summary>
public sealed class EmbeddedServerTests
{
    private static readonly string Encoder = Fixtures.Path("model", "encoder_only");

    [Fact]
    public async Task The_routes_map_into_an_application_of_your_own()
    {
        using var inference = TextEmbeddingsInference.Load(new ServerOptions { Model = Encoder, PayloadLimit = 10_000, ApiKey = "k" });
        Assert.Equal("embedding", inference.Task);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        await using var app = builder.Build();
        app.MapGet("/", () => "the application's own");
        app.MapGroup("/tei").MapTextEmbeddingsInference(inference);
        await app.StartAsync();
        try
        {
            string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            using var client = new HttpClient { BaseAddress = new Uri(address) };
            client.DefaultRequestHeaders.Authorization = new("Bearer", "k");
            async Task<Reply> Post(string path, string json)
            {
                var response = await client.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
                return new Reply(response.StatusCode, await response.Content.ReadAsStringAsync(), response);
            }

            Assert.Equal("the application's own", await client.GetStringAsync("/"));
            var embed = await Post("/tei/embed", "{\"inputs\": \"The man went to the store.\", \"normalize\": false}");
            using var library = SentenceEmbeddings.FromPretrained(Encoder, o => o with { Normalize = false });
            Assert.Equal(ServerRouteTests.Bits(library.Embed("The man went to the store.")), ServerRouteTests.Bits(ServerRouteTests.Floats(embed.Json[0]!)));
            Assert.Equal("9", embed.Header("x-compute-tokens"));
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/tei/health")).StatusCode);
            Assert.Contains("\"model_id\":\"encoder_only\"", await client.GetStringAsync("/tei/info"));
            Assert.Contains("te_request_count", await client.GetStringAsync("/tei/metrics"));
            // The options hold here too: the payload limit (whatever the host's own) and the API key. The client waits for
            // "100 Continue" before sending the oversized body, as a careful client does: the 413 comes before any of it,
            // so the connection is not closed under a body still being written (which failed this test on a loaded machine).
            client.DefaultRequestHeaders.ExpectContinue = true;
            Assert.StartsWith("Failed to buffer the request body", (await Post("/tei/embed", "{\"inputs\": \"" + new string('a', 20_000) + "\"}")).Error(413, "Validation"));
            client.DefaultRequestHeaders.ExpectContinue = false;
            client.DefaultRequestHeaders.Authorization = null;
            Assert.Equal(HttpStatusCode.Unauthorized, (await Post("/tei/embed", "{\"inputs\": \"x\"}")).Status);
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/tei/health")).StatusCode);
        }
        finally
        {
            await app.StopAsync();
        }
    }
}
