using System.Net;
using System.Net.Sockets;
using NBert.Hub;

namespace NBert.Tests.Hub;

/// <summary>One fake Hub for a whole test class (each test names its own repositories).</summary>
public sealed class FakeHubFixture : IAsyncLifetime
{
    public FakeHub Hub { get; private set; } = null!;

    public async Task InitializeAsync() => Hub = await FakeHub.StartAsync();

    public async Task DisposeAsync() => await Hub.DisposeAsync();
}

/// <summary>A Hub test: the fake Hub, a cache of its own in a temporary directory, and settings passed explicitly
/// (never the user's cache, never the process's environment).</summary>
public abstract class HubTest(FakeHubFixture fixture) : TempDirectoryTest, IClassFixture<FakeHubFixture>
{
    protected FakeHub Hub => fixture.Hub;

    protected string CacheRoot => Temp("hub");

    protected HubSettings Settings(string? token = null, bool offline = false, string? endpoint = null) => new()
    {
        Endpoint = endpoint ?? Hub.Endpoint,
        CacheDirectory = CacheRoot,
        Token = token,
        Offline = offline,
        MetadataTimeout = TimeSpan.FromSeconds(20),
        DownloadTimeout = TimeSpan.FromSeconds(20),
    };

    protected HubClient Client(string? token = null, bool offline = false, string? endpoint = null) => new(Settings(token, offline, endpoint));

    /// <summary>A repository name no other test uses.</summary>
    protected static string UniqueRepo(string name) => $"test-org/{name}-{Guid.NewGuid().ToString("N")[..8]}";

    protected static string Model(string name) => Fixtures.Path("model", name);

    /// <summary>An address where nothing listens: connections are refused at once.</summary>
    protected static string DeadEndpoint()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return $"http://127.0.0.1:{port}";
    }

    protected static byte[] FixtureBytes(string model, string file) => File.ReadAllBytes(Path.Combine(Model(model), file));
}
