using NBert.Pipelines;
using NBert.Server;
using NBert.Tokenization;
using NBert.Schema;
using NBert.Tasks;

namespace NBert.Tests.Server;

/// <summary>How the batching loop chooses a batch: the oldest input, then its neighbours in length order by least
/// padding, within the token budget (rows × longest).</summary>
public sealed class BatchingQueueTests
{
    [Fact]
    public async Task A_batch_is_the_oldest_input_and_its_nearest_lengths_within_the_token_budget()
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
            // Around the oldest (40): 38 adds 2 tokens of padding, then 9 adds 31; 8 would make 4 x 40 > 120.
            Assert.Equal([c], queue.Waiting());
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
