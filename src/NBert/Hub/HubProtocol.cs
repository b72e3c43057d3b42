using System.Net;
using System.Net.Http.Headers;
using System.Reflection;

namespace NBert.Hub;

/// <summary>What the Hub says about one file (huggingface_hub's <c>HfFileMetadata</c>): the commit it belongs to,
/// its ETag (the blob's name), its size, and the address to fetch its bytes from (a CDN for LFS files).</summary>
internal sealed record FileMetadata(string Commit, string ETag, long? Size, Uri Location);

/// <summary>
/// The HTTP side of the Hub protocol: the <c>HEAD .../resolve/{revision}/{file}</c> that gives a file's metadata,
/// the <c>GET</c> (with <c>Range</c> to resume) that fetches its bytes, and the Hub's errors as
/// <see cref="HubException"/>s. The token goes only to the endpoint's own host, never to the CDN it redirects to.
/// </summary>
internal sealed class HubProtocol(HttpClient http, HubSettings settings)
{
    private const int MaxRedirects = 10;
    private static readonly string UserAgent =
        $"nbert/{typeof(HubProtocol).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0"}; dotnet/{Environment.Version}";

    private readonly Uri _endpoint = new(settings.Endpoint.TrimEnd('/') + "/");

    /// <summary><c>{endpoint}/{repo}/resolve/{revision}/{file}</c>, the revision escaped whole (a branch may hold
    /// <c>/</c>) and the file segment by segment.</summary>
    public Uri FileUrl(string repo, string revision, string file) =>
        new(_endpoint, $"{repo}/resolve/{Uri.EscapeDataString(revision)}/{string.Join('/', file.Split('/').Select(Uri.EscapeDataString))}");

    /// <summary>The file's metadata. Relative redirects (a renamed repository) are followed; an absolute one is
    /// where the bytes are. Throws <see cref="HubException"/> for the Hub's errors and when it cannot be reached.</summary>
    public async Task<FileMetadata> HeadAsync(string repo, string revision, string file, CancellationToken cancellation)
    {
        Uri url = FileUrl(repo, revision, file);
        for (int hop = 0; hop <= MaxRedirects; hop++)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
            timeout.CancelAfter(settings.MetadataTimeout);
            using var response = await SendAsync(Request(HttpMethod.Head, url), timeout.Token, cancellation, settings.MetadataTimeout).ConfigureAwait(false);
            int status = (int)response.StatusCode;
            Uri? location = response.Headers.Location is { } l ? new Uri(url, l) : null;
            if (status is >= 300 and < 400 && location is not null) CheckRedirect(url, location);
            if (status is >= 300 and < 400 && location is not null && !response.Headers.Location!.IsAbsoluteUri)
            {
                url = location; // relative: the same Hub under another name
                continue;
            }
            if (status >= 400 || (status >= 300 && location is null)) throw Error(response, repo, revision, file);
            string commit = Header(response, "X-Repo-Commit")
                ?? throw new HubException(HubError.Protocol, $"{url}: the answer has no X-Repo-Commit header. Is HF_ENDPOINT ({settings.Endpoint}) a Hugging Face Hub?");
            // The commit names a snapshot folder: anything but a commit hash could name a path outside the cache.
            if (!HubCache.IsCommit(commit))
                throw new HubException(HubError.Protocol, $"{url}: X-Repo-Commit '{NBertException.Quote(commit)}' is not a commit hash. Is HF_ENDPOINT ({settings.Endpoint}) a Hugging Face Hub?");
            string etag = NormalizeETag(Header(response, "X-Linked-Etag") ?? Header(response, "ETag"))
                ?? throw new HubException(HubError.Protocol, $"{url}: the answer has no ETag, so the file cannot be cached reliably.");
            long? size = long.TryParse(Header(response, "X-Linked-Size") ?? Header(response, "Content-Length"), out long s) ? s : null;
            return new FileMetadata(commit, etag, size, status >= 300 ? location! : url);
        }
        throw new HubException(HubError.Protocol, $"{FileUrl(repo, revision, file)}: more than {MaxRedirects} redirects.");
    }

    /// <summary>Appends the file's bytes from <paramref name="offset"/> on to <paramref name="path"/> (a <c>Range</c>
    /// request when resuming; a server that ignores it sends everything and the file starts over). Redirects are
    /// followed here, by hand, so that the token is dropped when the host changes. A cut connection or a silence
    /// longer than the download timeout throws <see cref="IOException"/> with what arrived kept in the file. The file
    /// never grows past <paramref name="limit"/> bytes: a response that would take it further (by its Content-Length,
    /// or by what it sends) throws <see cref="OversizeException"/> before those bytes are written.</summary>
    public async Task GetAsync(Uri url, string path, long offset, long limit, Action<long> received, CancellationToken cancellation)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        HttpResponseMessage? response = null;
        try
        {
            for (int hop = 0; ; hop++)
            {
                var request = Request(HttpMethod.Get, url);
                if (offset > 0) request.Headers.Range = new RangeHeaderValue(offset, null);
                timeout.CancelAfter(settings.DownloadTimeout);
                response = await SendAsync(request, timeout.Token, cancellation, settings.DownloadTimeout).ConfigureAwait(false);
                if ((int)response.StatusCode is >= 300 and < 400 && response.Headers.Location is { } location && hop < MaxRedirects)
                {
                    url = CheckRedirect(url, new Uri(url, location));
                    response.Dispose();
                    continue;
                }
                break;
            }
            if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable) return; // already whole; the check decides
            if (!response.IsSuccessStatusCode)
            {
                // The metadata said the file is there, so this is the server's trouble (retried) or a refused link.
                string failure = $"{url.GetLeftPart(UriPartial.Path)}: the download failed with {(int)response.StatusCode} {response.ReasonPhrase}";
                throw (int)response.StatusCode >= 500
                    ? new HubException(HubError.Unreachable, failure + ".")
                    : new HubException(HubError.Forbidden, $"{failure}{(Header(response, "X-Error-Message") is { } m ? $" ({m.ReplaceLineEndings(" ")})" : "")}.");
            }
            bool partial = response.StatusCode == HttpStatusCode.PartialContent;
            if (partial && response.Content.Headers.ContentRange?.From != offset)
                throw new HubException(HubError.Protocol, $"{url}: asked for bytes from {offset}, the server sent '{response.Content.Headers.ContentRange}'.");
            if (!partial) offset = 0; // the whole file came back
            if (response.Content.Headers.ContentLength is long announced && offset + announced > limit)
                throw new OversizeException(offset + announced);
            await using var file = new FileStream(path, partial ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
            await using var body = await response.Content.ReadAsStreamAsync(cancellation).ConfigureAwait(false);
            byte[] buffer = new byte[1 << 16];
            while (true)
            {
                timeout.CancelAfter(settings.DownloadTimeout);
                int n;
                try
                {
                    n = await body.ReadAsync(buffer, timeout.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
                {
                    throw new IOException($"{url}: no data for {settings.DownloadTimeout.TotalSeconds:0.#} s (HF_HUB_DOWNLOAD_TIMEOUT).");
                }
                if (n == 0) break;
                // A server that sends more than it announced (or than any file may have) is stopped here, before
                // the extra bytes reach the disk: a hostile mirror cannot fill it.
                if (offset + n > limit) throw new OversizeException(offset + n);
                await file.WriteAsync(buffer.AsMemory(0, n), cancellation).ConfigureAwait(false);
                offset += n;
                received(offset);
            }
        }
        finally
        {
            response?.Dispose();
        }
    }

    /// <summary><paramref name="location"/>, when it is an http(s) address: a redirect to <c>file:</c> or <c>ftp:</c>
    /// (which HttpClient would refuse with NotSupportedException) is the server's error, not NBert's.</summary>
    private static Uri CheckRedirect(Uri from, Uri location) =>
        location.Scheme is "http" or "https" ? location
            : throw new HubException(HubError.Protocol,
                $"{from.GetLeftPart(UriPartial.Path)} redirects to a {NBertException.Quote(location.Scheme)}: address; only http and https redirects are followed.");

    /// <summary>A response that would take the file past its limit; <see cref="Size"/> is how far, at least.</summary>
    internal sealed class OversizeException(long size) : Exception($"The response would make the file at least {size} bytes long.")
    {
        public long Size { get; } = size;
    }

    private HttpRequestMessage Request(HttpMethod method, Uri url)
    {
        var request = new HttpRequestMessage(method, url);
        request.Headers.TryAddWithoutValidation("User-Agent", UserAgent);
        request.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity")); // sizes are the file's own
        if (settings.Token is { } token && SameOrigin(url, _endpoint))
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return request;
    }

    private static bool SameOrigin(Uri a, Uri b) =>
        a.Scheme == b.Scheme && string.Equals(a.Host, b.Host, StringComparison.OrdinalIgnoreCase) && a.Port == b.Port;

    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken timeout, CancellationToken cancellation, TimeSpan limit)
    {
        using (request)
        {
            try
            {
                return await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
            {
                throw new HubException(HubError.Unreachable, $"{settings.Endpoint} did not answer within {limit.TotalSeconds:0.#} s ({request.RequestUri}).");
            }
            catch (HttpRequestException e)
            {
                throw new HubException(HubError.Unreachable, $"cannot reach {request.RequestUri!.GetLeftPart(UriPartial.Authority)}: {e.Message}", e);
            }
        }
    }

    /// <summary>The Hub's error for a response, named by its X-Error-Code as huggingface_hub's hf_raise_for_status does.</summary>
    private HubException Error(HttpResponseMessage response, string repo, string revision, string file)
    {
        string? code = Header(response, "X-Error-Code"), message = Header(response, "X-Error-Message");
        string? commit = Header(response, "X-Repo-Commit");
        int status = (int)response.StatusCode;
        string what = $"{repo}@{revision}: {file}";
        string detail = message is null ? "" : $" ({message.ReplaceLineEndings(" ")})";
        string tokenAdvice = settings.Token is null
            ? "set HF_TOKEN to a token that can read it (or log in with 'hf auth login')"
            : "the token given (HF_TOKEN or $HF_HOME/token) cannot read it";
        return code switch
        {
            "RevisionNotFound" => new HubException(HubError.RevisionNotFound, $"{repo}: no branch, tag or commit '{revision}' on {settings.Endpoint}{detail}."),
            "EntryNotFound" => new HubException(HubError.EntryNotFound, $"{what}: no such file in the repository{detail}.") { Commit = commit },
            "GatedRepo" => new HubException(HubError.Gated, $"{repo} is gated: accept its conditions at {settings.Endpoint}/{repo}, then {tokenAdvice}{detail}."),
            "RepoNotFound" => new HubException(HubError.RepositoryNotFound, $"repository '{repo}' not found on {settings.Endpoint}, or private: {tokenAdvice}{detail}."),
            _ when status == 401 => new HubException(HubError.RepositoryNotFound, $"repository '{repo}' not found on {settings.Endpoint}, or private: {tokenAdvice}{detail}."),
            _ when status == 403 => new HubException(HubError.Forbidden, $"{what}: access refused (403): {tokenAdvice}{detail}."),
            _ when status == 404 => new HubException(HubError.EntryNotFound, $"{what}: not found (404){detail}.") { Commit = commit },
            _ => new HubException(HubError.Unreachable, $"{what}: {settings.Endpoint} answered {status} {response.ReasonPhrase}{detail}."),
        };
    }

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.NonValidated.TryGetValues(name, out var values) || response.Content.Headers.NonValidated.TryGetValues(name, out values)
            ? values.FirstOrDefault() : null;

    /// <summary>An ETag as a file name: without a weak <c>W/</c> prefix and without quotes (huggingface_hub's _normalize_etag).</summary>
    internal static string? NormalizeETag(string? etag)
    {
        if (etag is null) return null;
        if (etag.StartsWith("W/", StringComparison.Ordinal)) etag = etag[2..];
        etag = etag.Trim('"');
        return etag.Length > 0 && RepoId.IsSafeFileName(etag) && !etag.Contains('/') ? etag : null;
    }
}
