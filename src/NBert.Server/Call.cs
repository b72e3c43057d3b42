using System.Diagnostics;
using Microsoft.AspNetCore.Http;

namespace NBert.Server;

/// <summary>What a request computed, for TEI's response headers (<c>x-compute-tokens</c>, <c>x-queue-time</c>, ...)
/// and the duration histograms: times are per input, averaged over a batch, as TEI reports them.</summary>
internal readonly record struct Compute(int Characters, int? Tokens, TimeSpan Tokenization, TimeSpan Queue, TimeSpan Inference);

/// <summary>One request in progress: its context, when it started, whether it carried one input or a batch, and
/// what it computed.</summary>
internal sealed class Call(HttpContext http)
{
    public HttpContext Http { get; } = http;
    public long Start { get; } = Stopwatch.GetTimestamp();
    public CancellationToken Aborted => Http.RequestAborted;
    /// <summary>TEI's <c>method</c> label: "single" or "batch".</summary>
    public string Method { get; set; } = "single";
    public Compute? Compute { get; set; }
    /// <summary>Whether the request counts in <c>te_request_count</c> and <c>te_request_failure</c>: the POST routes', as TEI counts them.</summary>
    public bool Counted { get; set; }

    public void Inputs(bool single) => Method = single ? "single" : "batch";
}
