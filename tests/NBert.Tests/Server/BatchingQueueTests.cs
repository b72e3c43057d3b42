using NBert.Pipelines;
using NBert.Server;
using NBert.Tokenization;
using NBert.Schema;
using NBert.Tasks;

namespace NBert.Tests.Server;

/// <summary>How the batching loop chooses a batch, as TEI's queue does: inputs in arrival order while the batch padded to
/// its longest (rows × longest) stays within the token budget; the first that does not fit starts the next batch.</summary>
public sealed class BatchingQueueTests
{
    [Fact]
    public async Task A_batch_takes_inputs_in_arrival_order_while_the_padded_tokens_fit()
    {
        var model = ServedModel.Load(Fixtures.Path("model", "encoder_only"), Pooling.Mean);
        var queue = new BatchingQueue(model, new Metrics(model.MaxInputLength), maxBatchTokens: 120, maxBatchRequests: null);
        using var held = new SemaphoreSlim(0);
        using var open = new SemaphoreSlim(0);
        queue.BeforeBatch = () =>
        {
            held.Release();
            open.Wait();
        };
        EncoderWork Add(int words)
        {
            var e = model.Encode(string.Join(" ", Enumerable.Repeat("store", words)), null, truncate: false, TruncationSide.Right);
            var w = new EncoderWork(e, EncoderOutput.Pooled, CancellationToken.None);
            queue.Add(w);
            return w;
        }
        try
        {
            var first = Add(3);
            Assert.True(held.Wait(TimeSpan.FromSeconds(20)));
            // While the first runs: lengths 40, 8, 38, 9 (words + [CLS] and [SEP]) arrive in this order.
            var (b, c, d, e) = (Add(38), Add(6), Add(36), Add(7));
            open.Release();
            Assert.True(held.Wait(TimeSpan.FromSeconds(20)));
            // In arrival order: 40, then 8 (2 x 40 = 80), then 38 (3 x 40 = 120); 9 would make 4 x 40 > 120, so it waits
            // (and nothing after it may overtake it).
            Assert.Equal([e], queue.Waiting());
            open.Release();
            Assert.True(held.Wait(TimeSpan.FromSeconds(20)));
            Assert.Empty(queue.Waiting());
            open.Release();
            foreach (var w in new[] { first, b, c, d, e }) Assert.Equal(32, ((float[])(await w.Done.Task).Value).Length);
        }
        finally
        {
            queue.Stop();
            open.Release(10);
        }
    }
}
