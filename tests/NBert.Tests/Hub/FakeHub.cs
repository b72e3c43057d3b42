using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace NBert.Tests.Hub;

/// <summary>
/// A Hugging Face Hub on loopback, speaking the protocol the real one speaks: two Kestrel listeners on 127.0.0.1
/// (the Hub, and a "CDN" on another port that LFS files redirect to with an absolute Location), X-Repo-Commit,
/// ETag (git blob id) or X-Linked-Etag (SHA-256) with X-Linked-Size, Range requests, relative redirects for renamed
/// repositories, and the X-Error-Code errors. Every request is logged; faults (a cut connection, corrupt bytes, a
/// held response) are injected per repository and file. One instance serves a whole test class; each test uses
/// its own repository names.
/// </summary>
public sealed class FakeHub : IAsyncDisposable
{
    /// <summary>A request as the server saw it.</summary>
    public sealed record Request(string Server, string Method, string Repo, string File, string? Range, string? Authorization);

    /// <summary>A repository: commits of files, and the branches and tags naming them.</summary>
    public sealed class Repo
    {
        public Dictionary<string, Dictionary<string, byte[]>> Commits { get; } = [];
        public Dictionary<string, string> Refs { get; } = [];
        /// <summary>When set, the repository is private: only this token reads it.</summary>
        public string? Token { get; init; }
        public bool Gated { get; init; }
    }

    private readonly WebApplication _hub, _cdn;
    private readonly ConcurrentDictionary<string, Repo> _repos = new();
    private readonly ConcurrentDictionary<string, string> _renamed = new();

    public string Endpoint { get; }
    public string CdnEndpoint { get; }
    public ConcurrentQueue<Request> Requests { get; } = new();

    /// <summary>(repo, file) → bytes after which the next response for it is cut off (once). The client may receive
    /// fewer: the abort can drop bytes the transport had not sent yet.</summary>
    public ConcurrentDictionary<(string, string), long> Cuts { get; } = new();
    /// <summary>(repo, file) → how many of the next responses for it carry a flipped byte.</summary>
    public ConcurrentDictionary<(string, string), int> Corruptions { get; } = new();
    /// <summary>(repo, file) → a status code the next GETs of its bytes get instead, and how many times.</summary>
    public ConcurrentDictionary<(string, string), (int Status, int Times)> Failures { get; } = new();
    /// <summary>(repo, file) → a task every response with its bytes waits for before sending them.</summary>
    public ConcurrentDictionary<(string, string), Task> Holds { get; } = new();
    /// <summary>(repo, file) → bytes each GET of it sends after the file's own, and whether its Content-Length counts
    /// them (false: sent chunked, with no length). The HEAD still announces the file's true size.</summary>
    public ConcurrentDictionary<(string, string), (long Extra, bool Announced)> Padding { get; } = new();
    /// <summary>Files whose HEAD and GET announce no size (no X-Linked-Size, no Content-Length: chunked).</summary>
    public ConcurrentDictionary<(string, string), bool> Unsized { get; } = new();
    /// <summary>(repo, file) → a redirect (302) that the Hub ("hub": the HEAD and GET of the file) or the CDN ("cdn": the
    /// GET of an LFS file's bytes) answers with instead, to any address (file:, ftp:).</summary>
    public ConcurrentDictionary<(string, string), (string Server, string Location)> Redirects { get; } = new();
    /// <summary>Called for each request as it arrives (before any hold).</summary>
    public Action<Request>? OnRequest { get; set; }

    private FakeHub(WebApplication hub, WebApplication cdn)
    {
        _hub = hub;
        _cdn = cdn;
        Endpoint = Address(hub);
        CdnEndpoint = Address(cdn);
    }

    public static async Task<FakeHub> StartAsync()
    {
        FakeHub? self = null;
        var hub = Build(ctx => self!.ServeHub(ctx));
        var cdn = Build(ctx => self!.ServeCdn(ctx));
        await hub.StartAsync();
        await cdn.StartAsync();
        self = new FakeHub(hub, cdn);
        return self;
    }

    private static WebApplication Build(RequestDelegate handle)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        app.Run(handle);
        return app;
    }

    private static string Address(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single().Replace("[::1]", "127.0.0.1");

    /// <summary>A repository whose main branch holds the files of a fixture model directory; returns the commit.</summary>
    public string AddModel(string repo, string fixtureDirectory, Repo? settings = null, string branch = "main")
    {
        return AddCommit(repo, FilesOf(fixtureDirectory), branch, settings);
    }

    /// <summary>A directory's files by name.</summary>
    public static Dictionary<string, byte[]> FilesOf(string directory) =>
        Directory.GetFiles(directory).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes);

    /// <summary>Adds a commit of <paramref name="files"/> to <paramref name="repo"/> and points <paramref name="branch"/> at it.</summary>
    public string AddCommit(string repo, Dictionary<string, byte[]> files, string branch = "main", Repo? settings = null)
    {
        var r = _repos.GetOrAdd(repo, _ => settings ?? new Repo());
        lock (r)
        {
            string commit = Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes($"{repo}/{r.Commits.Count}/{branch}")));
            r.Commits[commit] = files;
            r.Refs[branch] = commit;
            return commit;
        }
    }

    /// <summary>Makes <paramref name="oldName"/> redirect (relative 307) to <paramref name="newName"/>, as the Hub does for a renamed repository.</summary>
    public void Rename(string oldName, string newName) => _renamed[oldName] = newName;

    public IReadOnlyList<Request> RequestsFor(string repo) => Requests.Where(r => r.Repo == repo).ToList();

    /// <summary>What the Hub's ETag for a file is: the SHA-256 for LFS files (weights), else the git blob id.</summary>
    public static bool IsLfs(string file) => file.EndsWith(".safetensors", StringComparison.Ordinal) || file.EndsWith(".bin", StringComparison.Ordinal);

    public static string Sha256(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    public static string GitBlobId(byte[] bytes) =>
        Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {bytes.Length}\0"), .. bytes]));

    private async Task ServeHub(HttpContext ctx)
    {
        // The raw target keeps %2F in a revision such as refs%2Fpr%2F1 apart from the path's slashes.
        string target = ctx.Features.Get<IHttpRequestFeature>()!.RawTarget;
        string path = target.Split('?')[0].TrimStart('/');
        int resolve = path.IndexOf("/resolve/", StringComparison.Ordinal);
        if (resolve < 0) { ctx.Response.StatusCode = 404; return; }
        string repo = path[..resolve];
        string rest = path[(resolve + "/resolve/".Length)..];
        int slash = rest.IndexOf('/');
        string revision = Uri.UnescapeDataString(rest[..slash]), file = Uri.UnescapeDataString(rest[(slash + 1)..]);
        var request = Log("hub", ctx, repo, file);

        if (_renamed.TryGetValue(repo, out string? renamed))
        {
            ctx.Response.StatusCode = 307;
            ctx.Response.Headers.Location = $"/{renamed}/resolve/{rest}";
            return;
        }
        string? auth = request.Authorization;
        if (!_repos.TryGetValue(repo, out var r))
        {
            Error(ctx, auth is null ? 401 : 404, "RepoNotFound", "Repository not found"); // the real Hub: 401 when anonymous
            return;
        }
        if (r.Token is not null && auth != $"Bearer {r.Token}")
        {
            if (auth is null) Error(ctx, 401, "RepoNotFound", "Repository not found");
            else Error(ctx, 401, null, "Invalid credentials in Authorization header");
            return;
        }
        if (r.Gated)
        {
            Error(ctx, 403, "GatedRepo", "Access to this model is restricted.");
            return;
        }
        string? commit;
        lock (r) commit = r.Refs.TryGetValue(revision, out var c) ? c : r.Commits.ContainsKey(revision) ? revision : null;
        if (commit is null)
        {
            Error(ctx, 404, "RevisionNotFound", $"Invalid rev id: {revision}");
            return;
        }
        ctx.Response.Headers["X-Repo-Commit"] = commit;
        if (!r.Commits[commit].TryGetValue(file, out byte[]? bytes))
        {
            Error(ctx, 404, "EntryNotFound", $"{file} does not exist on \"{revision}\"");
            return;
        }
        bool redirected = Redirects.TryGetValue((repo, file), out var redirect) && redirect.Server == "hub";
        if (IsLfs(file) || redirected)
        {
            string sha = Sha256(bytes);
            ctx.Response.StatusCode = 302;
            ctx.Response.Headers.ETag = $"\"{GitBlobId(Encoding.ASCII.GetBytes($"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {bytes.Length}\n"))}\"";
            ctx.Response.Headers["X-Linked-Etag"] = $"\"{sha}\"";
            if (!Unsized.ContainsKey((repo, file))) ctx.Response.Headers["X-Linked-Size"] = bytes.Length.ToString();
            ctx.Response.Headers.Location = redirected ? redirect.Location : $"{CdnEndpoint}/{repo}/{Uri.EscapeDataString(file)}/{sha}?X-Amz-Signature=fake";
            return;
        }
        ctx.Response.Headers.ETag = $"\"{GitBlobId(bytes)}\"";
        await ServeBytes(ctx, repo, file, bytes);
    }

    private async Task ServeCdn(HttpContext ctx)
    {
        string[] parts = ctx.Request.Path.Value!.TrimStart('/').Split('/');
        string repo = string.Join('/', parts[..^2]), file = Uri.UnescapeDataString(parts[^2]), sha = parts[^1];
        Log("cdn", ctx, repo, file);
        if (Redirects.TryGetValue((repo, file), out var redirect) && redirect.Server == "cdn")
        {
            ctx.Response.StatusCode = 302;
            ctx.Response.Headers.Location = redirect.Location;
            return;
        }
        byte[]? bytes = null;
        if (_repos.TryGetValue(repo, out var r))
            lock (r) bytes = r.Commits.Values.SelectMany(c => c.Values).FirstOrDefault(b => Sha256(b) == sha);
        if (bytes is null) { ctx.Response.StatusCode = 404; return; }
        await ServeBytes(ctx, repo, file, bytes);
    }

    /// <summary>The file's bytes with Range support and the faults injected for it.</summary>
    private async Task ServeBytes(HttpContext ctx, string repo, string file, byte[] bytes)
    {
        if (HttpMethods.IsGet(ctx.Request.Method) && Failures.TryGetValue((repo, file), out var failure) && failure.Times > 0)
        {
            Failures[(repo, file)] = (failure.Status, failure.Times - 1);
            ctx.Response.StatusCode = failure.Status;
            return;
        }
        long start = 0;
        string? range = ctx.Request.Headers.Range;
        if (range is not null && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
        {
            start = long.Parse(range["bytes=".Length..^1]);
            if (start >= bytes.Length)
            {
                ctx.Response.StatusCode = 416;
                ctx.Response.Headers.ContentRange = $"bytes */{bytes.Length}";
                return;
            }
            ctx.Response.StatusCode = 206;
            ctx.Response.Headers.ContentRange = $"bytes {start}-{bytes.Length - 1}/{bytes.Length}";
        }
        ctx.Response.Headers.AcceptRanges = "bytes";
        Padding.TryGetValue((repo, file), out var padding);
        if (Unsized.ContainsKey((repo, file))) { }
        else if (HttpMethods.IsHead(ctx.Request.Method)) ctx.Response.ContentLength = bytes.Length - start;
        else if (padding.Extra == 0 || padding.Announced) ctx.Response.ContentLength = bytes.Length - start + padding.Extra;
        if (HttpMethods.IsHead(ctx.Request.Method)) return;
        if (padding.Extra > 0 && HttpMethods.IsGet(ctx.Request.Method))
        {
            await ctx.Response.Body.WriteAsync(bytes.AsMemory((int)start));
            var filler = new byte[1 << 16];
            try
            {
                for (long sent = 0; sent < padding.Extra && !ctx.RequestAborted.IsCancellationRequested; sent += filler.Length)
                    await ctx.Response.Body.WriteAsync(filler.AsMemory(0, (int)Math.Min(filler.Length, padding.Extra - sent)), ctx.RequestAborted);
            }
            catch (OperationCanceledException) { } // the client stopped reading and closed the connection
            return;
        }
        if (Holds.TryGetValue((repo, file), out var hold)) await hold;
        byte[] body = bytes[(int)start..];
        if (Corruptions.TryGetValue((repo, file), out int corrupt) && corrupt > 0)
        {
            Corruptions[(repo, file)] = corrupt - 1;
            body = (byte[])body.Clone();
            body[body.Length / 2] ^= 0xFF;
        }
        if (Cuts.TryRemove((repo, file), out long cut))
        {
            await ctx.Response.Body.WriteAsync(body.AsMemory(0, (int)Math.Min(cut, body.Length)));
            await ctx.Response.Body.FlushAsync();
            await Task.Delay(500); // let the transport send what was written: an abort drops what it still holds
            ctx.Abort(); // the connection drops mid-body
            return;
        }
        await ctx.Response.Body.WriteAsync(body);
    }

    private Request Log(string server, HttpContext ctx, string repo, string file)
    {
        var request = new Request(server, ctx.Request.Method, repo, file, ctx.Request.Headers.Range.FirstOrDefault(), ctx.Request.Headers.Authorization.FirstOrDefault());
        Requests.Enqueue(request);
        OnRequest?.Invoke(request);
        return request;
    }

    private static void Error(HttpContext ctx, int status, string? code, string message)
    {
        ctx.Response.StatusCode = status;
        if (code is not null) ctx.Response.Headers["X-Error-Code"] = code;
        ctx.Response.Headers["X-Error-Message"] = message;
    }

    public async ValueTask DisposeAsync()
    {
        await _hub.DisposeAsync();
        await _cdn.DisposeAsync();
    }
}
