using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;
using NBert.Schema;
using NBert.Tensors;

namespace NBert.Modeling;

/// <summary>
/// BERT's body, forward and backward, written once (the llm.c layout: each step a plain function over flat row-major
/// buffers, its backward beside it). Shapes, stated once: b sequences of s tokens, m rows (b·s, or the real tokens of a compact pass: EncoderPass.Rows), hidden h, heads of d,
/// intermediate I. Inference and training run the same steps; what differs is data: the <see cref="Weights{T}"/> (packed
/// float32, or a flat training buffer), the <see cref="EncoderPass{T}"/> buffers (kept per layer for backward, or one
/// set of pooled scratch reused by every layer) and the dropout probabilities (0 outside training).
/// Attention runs over each sequence's valid keys only (a right-padded mask's n ones), forward and backward, so a
/// sequence's outputs and gradients are the same bits alone or padded in any batch.
/// </summary>
internal sealed class Encoder<T>(ParameterLayout layout) where T : unmanaged, IFloatingPointIeee754<T>
{
    private BertConfig C => layout.Config;

    /// <summary>Refuses a batch too long for the position table, or whose buffers would overflow one array.</summary>
    public void Check(ModelInputs inputs, bool outputAttentions = false)
    {
        var c = C;
        int b = inputs.Batch, s = inputs.SequenceLength, h = c.HiddenSize;
        if (s > c.MaxSequenceLength)
            throw new ArgumentException(c.PositionsFromPadding
                ? $"Sequence length {s} exceeds the {c.MaxSequenceLength} tokens that max_position_embeddings {c.MaxPositionEmbeddings} holds " +
                  $"(RoBERTa's positions start at pad_token_id + 1 = {c.PadTokenId + 1}): truncate the input."
                : $"Sequence length {s} exceeds max_position_embeddings {c.MaxPositionEmbeddings}: truncate the input.");
        EnsureArray("the hidden states (batch x sequence x hidden_size)", (long)b * s * h);
        EnsureArray("the query, key and value (batch x sequence x 3 x hidden_size)", (long)b * s * 3 * h);
        EnsureArray("the intermediate activations (batch x sequence x intermediate_size)", (long)b * s * c.IntermediateSize);
        EnsureArray("one head's attention scores (sequence x sequence)", (long)s * s);
        if (outputAttentions)
            EnsureArray($"the attentions of a layer (batch {b} x heads {c.NumAttentionHeads} x sequence {s} x sequence {s})", (long)b * c.NumAttentionHeads * s * s);
    }

    /// <summary>Refuses a batch whose <paramref name="what"/> would need more values than one array holds.</summary>
    public static void EnsureArray(string what, long count)
    {
        if (count > Array.MaxLength)
            throw new ArgumentException($"The batch is too large: {what} would be {count:N0} values, more than one array holds ({Array.MaxLength:N0}). " +
                "Run fewer or shorter sequences at a time.");
    }

    // ---- forward ----

    /// <summary>
    /// Embeddings and every layer; the last hidden state [m, h] is <see cref="EncoderPass{T}.Hidden"/> afterwards.
    /// <paramref name="hiddenStates"/> and <paramref name="attentions"/>, when given, receive a copy of each layer's
    /// output (the embeddings' first) and each layer's attention probabilities [b, heads, s, s]. Attentions are for
    /// inference passes (a kept pass's backward needs its own probabilities), hidden states for passes that are not
    /// compact (whose rows are not [b·s, h]).
    /// </summary>
    public void Forward(Weights<T> w, EncoderPass<T> pass, List<T[]>? hiddenStates = null, List<T[]>? attentions = null)
    {
        if ((pass.KeepsActivations && attentions is not null) || (pass.Compact && hiddenStates is not null))
            throw new ArgumentException("Attentions are for inference passes, hidden states for passes that are not compact.");
        Embed(w, pass);
        int mh = pass.Rows * C.HiddenSize;
        hiddenStates?.Add(pass.Embedded.AsSpan(0, mh).ToArray());
        var x = pass.Embedded;
        for (int li = 0; li < layout.Layers.Count; li++)
        {
            var l = pass.Layer(li);
            // Kept buffers have an output per layer; scratch reuses the embeddings' buffer (x is read before it is written).
            var output = pass.KeepsActivations ? l.Output : pass.Embedded;
            T[]? probs = attentions is null ? null : new T[pass.Batch * C.NumAttentionHeads * pass.Sequence * pass.Sequence];
            LayerForward(w, layout.Layers[li], l, x, output, pass, probs);
            if (probs is not null) attentions!.Add(probs);
            x = output;
            hiddenStates?.Add(x.AsSpan(0, mh).ToArray());
        }
        pass.Hidden = x;
    }

    /// <summary>word + position + token type embeddings, LayerNorm, dropout, in the embedding width e; then ELECTRA's
    /// <c>embeddings_project</c> to the hidden size when e != h.</summary>
    private void Embed(Weights<T> w, EncoderPass<T> pass)
    {
        var c = C;
        var e = layout.Embeddings;
        var inputs = pass.Inputs;
        int s = pass.Sequence, width = c.EmbeddingWidth, m = pass.Rows;
        var position = w.Values(e.Position);
        var types = e.TokenType is null ? default : w.Values(e.TokenType); // none in DistilBERT, which ignores token_type_ids
        var sum = pass.EmbeddingSum;
        for (int r = 0; r < m; r++)
        {
            int t = pass.Token(r);
            int id = inputs.InputIds[t], type = inputs.TokenTypeIds?[t] ?? 0;
            if ((uint)id >= (uint)c.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(pass), $"Input id {id} (sequence {t / s}, position {t % s}) is outside the model's " +
                    $"vocabulary 0..{c.VocabSize - 1} (vocab_size {c.VocabSize}): the ids come from a tokenizer with a larger vocabulary than the " +
                    "model's, or from another model's tokenizer.");
            if (e.TokenType is not null && (uint)type >= (uint)c.TypeVocabSize)
                throw new ArgumentOutOfRangeException(nameof(pass), $"Token type id {type} is outside 0..{c.TypeVocabSize - 1}.");
            var row = sum.AsSpan(r * width, width);
            w.AddEmbeddingRow(e.Word, id, position.Slice(pass.Position(t) * width, width), row);
            if (e.TokenType is not null) TensorPrimitives.Add(row, types.Slice(type * width, width), row);
        }
        var normed = e.Projection is null ? pass.Embedded : pass.EmbeddingNormed;
        LayerNorm(w, e.Norm, sum, normed, pass.Mean0, pass.Rstd0, m, width);
        Dropout(pass, normed, m * width, pass.HiddenDropout, pass.Keep0, width);
        if (e.Projection is { } projection) w.Linear(projection, normed.AsSpan(0, m * width), m, pass.Embedded);
    }

    /// <summary>One encoder layer, <paramref name="x"/> [m, h] to <paramref name="output"/> [m, h] (they may be one
    /// buffer: x is last read before output is first written).</summary>
    private void LayerForward(Weights<T> w, EncoderLayerParameters p, LayerBuffers<T> l, T[] x, T[] output, EncoderPass<T> pass, T[]? probs)
    {
        int m = pass.Rows, h = C.HiddenSize, inner = C.IntermediateSize;
        w.Linear(p.Qkv, x.AsSpan(0, m * h), m, l.Qkv);
        AttentionForward(l, pass, probs ?? l.Probs);
        w.Linear(p.AttentionOutput, l.Context.AsSpan(0, m * h), m, l.Residual1);
        Dropout(pass, l.Residual1, m * h, AttentionOutputDropout(pass), l.Keep1);
        LayerNorm(w, p.AttentionNorm, l.Residual1, l.Attended, l.Mean1, l.Rstd1, m, residual: x);
        w.Linear(p.Intermediate, l.Attended.AsSpan(0, m * h), m, l.Inner);
        var activation = C.Activation;
        var (pre, post) = (l.Inner, l.Activated);
        Threading.ForRows(m, (r0, r1) => activation.Forward<T>(pre.AsSpan(r0 * inner, (r1 - r0) * inner), post.AsSpan(r0 * inner, (r1 - r0) * inner)));
        w.Linear(p.Output, l.Activated.AsSpan(0, m * inner), m, l.Residual2);
        Dropout(pass, l.Residual2, m * h, pass.HiddenDropout, l.Keep2);
        LayerNorm(w, p.OutputNorm, l.Residual2, output, l.Mean2, l.Rstd2, m, residual: l.Attended);
    }

    /// <summary>The dropout after the attention's output layer: the hidden dropout, where the family has it.</summary>
    private double AttentionOutputDropout(EncoderPass<T> pass) => C.AttentionOutputDropout ? pass.HiddenDropout : 0;

    /// <summary>LayerNorm of <paramref name="rows"/> rows of <paramref name="width"/> (default: the hidden size), in parallel;
    /// mean and 1/std kept when the buffers are given. With <paramref name="residual"/>, x += residual first, row by row in
    /// the same parallel pass (x then holds the sum, which backward reads).</summary>
    public void LayerNorm(Weights<T> w, NormParameters p, T[] x, T[] y, T[]? mean, T[]? rstd, int rows, int width = 0, T[]? residual = null)
    {
        int h = width > 0 ? width : C.HiddenSize;
        T eps = T.CreateTruncating(C.LayerNormEps);
        Threading.ForRows(rows, (r0, r1) =>
        {
            var rowsOfX = x.AsSpan(r0 * h, (r1 - r0) * h);
            if (residual is not null) TensorPrimitives.Add(rowsOfX, residual.AsSpan(r0 * h, (r1 - r0) * h), rowsOfX);
            Ops.LayerNormForward<T>(rowsOfX, y.AsSpan(r0 * h, (r1 - r0) * h), w.Values(p.Weight), w.Values(p.Bias), eps,
                mean is null ? default : mean.AsSpan(r0, r1 - r0), rstd is null ? default : rstd.AsSpan(r0, r1 - r0));
        });
    }

    /// <summary>Dropout in place on the first <paramref name="length"/> values (rows of <paramref name="width"/>, default the
    /// hidden size) when p &gt; 0, the mask kept in <paramref name="keep"/>.</summary>
    private void Dropout(EncoderPass<T> pass, T[] x, int length, double p, bool[]? keep, int width = 0)
    {
        if (p <= 0) return;
        var random = pass.Random!;
        int h = width > 0 ? width : C.HiddenSize;
        // Numbers for every token of the padded batch, each row's at its token's place (a compact pass skips the padding's).
        ulong start = random.Take((long)pass.PaddedRows * h);
        if (!pass.Compact)
            Threading.ForRows(length / h, (r0, r1) =>
                Ops.DropoutForward<T>(x.AsSpan(r0 * h, (r1 - r0) * h), p, random, start + (ulong)(r0 * h), keep.AsSpan(r0 * h, (r1 - r0) * h)));
        else
            Threading.ForRows(length / h, (r0, r1) =>
            {
                for (int r = r0; r < r1; r++)
                    Ops.DropoutForward<T>(x.AsSpan(r * h, h), p, random, start + (ulong)pass.Token(r) * (ulong)h, keep.AsSpan(r * h, h));
            });
    }

    /// <summary>
    /// Self-attention over the fused [m, 3h] query/key/value buffer, one (sequence, head) job at a time in parallel:
    /// P = softmax(Q Kᵀ / √d + mask), dropout, context = P V into [m, h]. A right-padded sequence (mask 1…1 0…0) attends
    /// over its first n keys only: the scores, the softmax and the product with V run over n, not s (the padded keys'
    /// weights would be exactly 0, but a sum over more zero terms groups its additions differently). Other masks add the
    /// mask's large negative value to the scores over all s keys, as transformers does. <paramref name="probs"/> [b·heads,
    /// s, s], when given, keeps each job's probabilities (training, or attentions asked for); otherwise pooled scratch.
    /// </summary>
    private void AttentionForward(LayerBuffers<T> l, EncoderPass<T> pass, T[]? probs)
    {
        int batch = pass.Batch, s = pass.Sequence, heads = C.NumAttentionHeads, d = C.HeadSize, h = C.HiddenSize, ld = 3 * h;
        T scale = T.One / T.Sqrt(T.CreateTruncating(d));
        double p = pass.AttentionDropout;
        var random = pass.Random;
        ulong start = p > 0 ? random!.Take((long)batch * heads * s * s) : 0;
        var keys = pass.ValidKeys;
        var mask = pass.Inputs.AttentionMask;
        var qkv = l.Qkv;
        var context = l.Context;
        var keepProbs = l.KeepProbs;
        WorkerPool.Shared.Run(batch * heads, Threading.MaxThreads, job =>
        {
            int bi = job / heads, hi = job % heads, row0 = pass.RowStart(bi) * ld, queries = pass.Queries(bi);
            T[]? rented = probs is null ? ArrayPool<T>.Shared.Rent(s * s) : null;
            // The probabilities after dropout are scratch: backward rebuilds them from the kept probabilities and mask.
            T[]? keptBuffer = p > 0 ? ArrayPool<T>.Shared.Rent(s * s) : null;
            try
            {
                var sc = probs is null ? rented.AsSpan(0, s * s) : probs.AsSpan(job * s * s, s * s);
                int n = keys[bi];
                var q = qkv.AsSpan(row0 + hi * d);
                var k = qkv.AsSpan(row0 + h + hi * d);
                if (n > 0)
                {
                    Gemm.Multiply<T>(queries, n, d, q, ld, false, k, ld, true, sc, s, serial: true);
                    for (int i = 0; i < queries; i++)
                    {
                        var row = sc.Slice(i * s, n);
                        TensorPrimitives.Multiply(row, scale, row);
                        Ops.Softmax(row);
                        sc.Slice(i * s + n, s - n).Clear();
                    }
                }
                else
                {
                    n = s;
                    Gemm.Multiply<T>(s, s, d, q, ld, false, k, ld, true, sc, s, serial: true);
                    TensorPrimitives.Multiply(sc, scale, sc);
                    Ops.MaskedSoftmax<T>(sc, s, mask!.AsSpan(bi * s, s));
                }
                Span<T> kept = sc;
                if (p > 0)
                {
                    kept = keptBuffer.AsSpan(0, s * s);
                    sc.CopyTo(kept);
                    // Row by row over the keys used, each row's random numbers at the same place whatever n is.
                    for (int i = 0; i < queries; i++)
                        Ops.DropoutForward(kept.Slice(i * s, n), p, random!, start + (ulong)(job * s * s + i * s), keepProbs.AsSpan(job * s * s + i * s, n));
                }
                Gemm.Multiply<T>(queries, d, n, kept, s, false, qkv.AsSpan(row0 + 2 * h + hi * d), ld, false, context.AsSpan(pass.RowStart(bi) * h + hi * d), h, serial: true);
            }
            finally
            {
                if (rented is not null) ArrayPool<T>.Shared.Return(rented);
                if (keptBuffer is not null) ArrayPool<T>.Shared.Return(keptBuffer);
            }
        });
    }

    // ---- backward (training: flat weights and gradients in the same layout) ----

    /// <summary>
    /// Adds the gradients of the body's parameters to <paramref name="grads"/>, from d(last hidden state) in
    /// <paramref name="dHidden"/> [m, h] (overwritten: it holds d(embeddings) at the end).
    /// </summary>
    public void Backward(FlatWeights<T> w, T[] grads, EncoderPass<T> pass, T[] dHidden)
    {
        var c = C;
        var inputs = pass.Inputs;
        int s = pass.Sequence, m = pass.Rows, h = c.HiddenSize;
        var g = pass.Gradients!;
        for (int li = c.NumHiddenLayers - 1; li >= 0; li--)
        {
            var input = li == 0 ? pass.Embedded : pass.Layer(li - 1).Output;
            LayerBackward(w, grads, layout.Layers[li], pass.Layer(li), input, pass, dHidden);
        }
        // Embeddings: ELECTRA's projection, dropout, LayerNorm, then the three tables (all e wide).
        var e = layout.Embeddings;
        int width = c.EmbeddingWidth;
        var dNormed = dHidden;
        if (e.Projection is { } projection)
        {
            dNormed = g.DEmbedding;
            Array.Clear(dNormed, 0, m * width);
            LinearBackward(w, grads, projection, dHidden.AsSpan(0, m * h), pass.EmbeddingNormed.AsSpan(0, m * width), dNormed, m);
        }
        var dSum = g.DResidual;
        Array.Clear(dSum, 0, m * width);
        DropoutBackwardInPlace(dNormed.AsSpan(0, m * width), pass.HiddenDropout, pass.Keep0);
        LayerNormBackward(w, grads, e.Norm, dNormed, pass.EmbeddingSum, pass.Mean0!, pass.Rstd0!, dSum, m, width);
        Ops.EmbeddingBackward<T>(dSum.AsSpan(0, m * width), pass.Compact ? pass.RowIds : inputs.InputIds,
            grads.AsSpan(e.Word.Offset, e.Word.Length), width);
        var dPosition = grads.AsSpan(e.Position.Offset, e.Position.Length);
        var dTypes = e.TokenType is null ? default : grads.AsSpan(e.TokenType.Offset, e.TokenType.Length);
        for (int r = 0; r < m; r++)
        {
            int t = pass.Token(r);
            var row = dSum.AsSpan(r * width, width);
            var pos = dPosition.Slice(pass.Position(t) * width, width);
            TensorPrimitives.Add(pos, row, pos);
            if (e.TokenType is null) continue;
            var type = dTypes.Slice((inputs.TokenTypeIds?[t] ?? 0) * width, width);
            TensorPrimitives.Add(type, row, type);
        }
    }

    /// <summary>LayerNorm backward over rows (of <paramref name="width"/>, default the hidden size): the input gradient added
    /// to <paramref name="dx"/> row by row in parallel; the parameter gradients, which every row adds to, in one pass.</summary>
    public void LayerNormBackward(FlatWeights<T> w, T[] grads, NormParameters p, T[] dy, T[] x, T[] mean, T[] rstd, T[] dx, int rows, int width = 0)
    {
        int h = width > 0 ? width : C.HiddenSize;
        var values = w.Buffer;
        int weight = p.Weight.Offset;
        Threading.ForRows(rows, (r0, r1) => Ops.LayerNormBackward<T>(dy.AsSpan(r0 * h, (r1 - r0) * h), x.AsSpan(r0 * h, (r1 - r0) * h),
            mean.AsSpan(r0, r1 - r0), rstd.AsSpan(r0, r1 - r0), values.AsSpan(weight, h), dx.AsSpan(r0 * h, (r1 - r0) * h), default, default));
        Ops.LayerNormParameterBackward<T>(dy.AsSpan(0, rows * h), x.AsSpan(0, rows * h), mean, rstd,
            grads.AsSpan(p.Weight.Offset, h), grads.AsSpan(p.Bias.Offset, h));
    }

    /// <summary>dx += dy · W; dW += dyᵀ · x; db += Σ dy, for a linear layer of the layout.</summary>
    public static void LinearBackward(FlatWeights<T> w, T[] grads, LinearParameters p, ReadOnlySpan<T> dy, ReadOnlySpan<T> x, Span<T> dx, int rows) =>
        Ops.LinearBackward<T>(dy, x, w.Weight(p), dx, grads.AsSpan(p.WeightOffset, p.Outputs * p.Inputs), grads.AsSpan(p.BiasOffset, p.Outputs),
            rows, p.Inputs, p.Outputs);

    /// <summary>dy ← dy · keep/(1-p), when dropout was on.</summary>
    public static void DropoutBackwardInPlace(Span<T> dy, double p, ReadOnlySpan<bool> keep)
    {
        if (p <= 0) return;
        T scale = T.CreateTruncating(1 / (1 - p));
        for (int i = 0; i < dy.Length; i++) dy[i] = keep[i] ? dy[i] * scale : T.Zero;
    }

    /// <summary>One encoder layer backward: <paramref name="dx"/> holds d(output) on entry and d(input) on exit.</summary>
    private void LayerBackward(FlatWeights<T> w, T[] grads, EncoderLayerParameters p, LayerBuffers<T> l, T[] input, EncoderPass<T> pass, T[] dx)
    {
        var c = C;
        var g = pass.Gradients!;
        int m = pass.Rows, h = c.HiddenSize, inner = c.IntermediateSize;
        // Output LayerNorm: d(residual2). The residual's two branches: the attended input and the FFN output.
        var dRes = g.DResidual;
        Array.Clear(dRes, 0, m * h);
        LayerNormBackward(w, grads, p.OutputNorm, dx, l.Residual2, l.Mean2!, l.Rstd2!, dRes, m);
        var dAttended = g.DAttended;
        Array.Copy(dRes, dAttended, m * h);
        DropoutBackwardInPlace(dRes.AsSpan(0, m * h), pass.HiddenDropout, l.Keep2);
        // FFN: output dense, activation, intermediate dense.
        var dInner = g.DInner;
        Array.Clear(dInner, 0, m * inner);
        var activation = c.Activation;
        var (pre, post) = (l.Inner, l.Activated);
        // The layers share one activation output buffer (the last layer's forward is in it): this layer's again.
        Threading.ForRows(m, (r0, r1) => activation.Forward<T>(pre.AsSpan(r0 * inner, (r1 - r0) * inner), post.AsSpan(r0 * inner, (r1 - r0) * inner)));
        LinearBackward(w, grads, p.Output, dRes.AsSpan(0, m * h), post.AsSpan(0, m * inner), dInner, m);
        var dPre = g.DPreActivation;
        Array.Clear(dPre, 0, m * inner);
        Threading.ForRows(m, (r0, r1) => activation.Backward<T>(dInner.AsSpan(r0 * inner, (r1 - r0) * inner),
            pre.AsSpan(r0 * inner, (r1 - r0) * inner), dPre.AsSpan(r0 * inner, (r1 - r0) * inner)));
        LinearBackward(w, grads, p.Intermediate, dPre.AsSpan(0, m * inner), l.Attended.AsSpan(0, m * h), dAttended, m);
        // Attention-output LayerNorm, residual, dropout, dense.
        Array.Clear(dRes, 0, m * h);
        LayerNormBackward(w, grads, p.AttentionNorm, dAttended, l.Residual1, l.Mean1!, l.Rstd1!, dRes, m);
        Array.Copy(dRes, dx, m * h); // the residual: d(input) starts as d(residual1)
        DropoutBackwardInPlace(dRes.AsSpan(0, m * h), AttentionOutputDropout(pass), l.Keep1);
        var dContext = g.DContext;
        Array.Clear(dContext, 0, m * h);
        LinearBackward(w, grads, p.AttentionOutput, dRes.AsSpan(0, m * h), l.Context.AsSpan(0, m * h), dContext, m);
        var dQkv = g.DQkv;
        Array.Clear(dQkv, 0, m * 3 * h);
        AttentionBackward(l, pass, dContext, dQkv);
        LinearBackward(w, grads, p.Qkv, dQkv.AsSpan(0, m * 3 * h), input.AsSpan(0, m * h), dx, m);
    }

    /// <summary>
    /// From d(context) to d(Q, K, V) in the fused [m, 3h] layout, one (sequence, head) job at a time (each writes its
    /// own slice), over the n keys the forward pass used: dP' = dC Vᵀ, dV = P'ᵀ dC, dropout, dS = softmax backward / √d,
    /// dQ = dS K, dK = dSᵀ Q.
    /// </summary>
    private void AttentionBackward(LayerBuffers<T> l, EncoderPass<T> pass, T[] dContext, T[] dQkv)
    {
        int batch = pass.Batch, s = pass.Sequence, heads = C.NumAttentionHeads, d = C.HeadSize, h = C.HiddenSize, ld = 3 * h;
        T scale = T.One / T.Sqrt(T.CreateTruncating(d));
        double p = pass.AttentionDropout;
        var keys = pass.ValidKeys;
        var (qkv, allProbs, keepProbs) = (l.Qkv, l.Probs!, l.KeepProbs);
        WorkerPool.Shared.Run(batch * heads, Threading.MaxThreads, job =>
        {
            int bi = job / heads, hi = job % heads, row0 = pass.RowStart(bi) * ld, queries = pass.Queries(bi);
            int n = keys[bi] > 0 ? keys[bi] : s;
            var pool = ArrayPool<T>.Shared;
            T[] dKeptBuffer = pool.Rent(s * s), dScoresBuffer = pool.Rent(s * s);
            T[]? keptBuffer = p > 0 ? pool.Rent(s * s) : null;
            try
            {
                var probs = allProbs.AsSpan(job * s * s, s * s);
                ReadOnlySpan<T> kept = probs;
                if (p > 0)
                {
                    // The forward's probabilities after dropout, rebuilt with its arithmetic (the same bits), not kept
                    // per layer: 6.3 MB a layer at MiniLM's 32 x 64.
                    var rebuilt = keptBuffer.AsSpan(0, s * s);
                    probs.CopyTo(rebuilt);
                    for (int i = 0; i < queries; i++)
                        Ops.DropoutApply(rebuilt.Slice(i * s, n), p, keepProbs.AsSpan(job * s * s + i * s, n));
                    kept = rebuilt;
                }
                var dC = dContext.AsSpan(pass.RowStart(bi) * h + hi * d);
                var dKept = dKeptBuffer.AsSpan(0, s * s);
                Gemm.Multiply<T>(queries, n, d, dC, h, false, qkv.AsSpan(row0 + 2 * h + hi * d), ld, true, dKept, s, serial: true);
                Gemm.Multiply<T>(n, d, queries, kept, s, true, dC, h, false, dQkv.AsSpan(row0 + 2 * h + hi * d), ld, accumulate: true, serial: true);
                var dScores = dScoresBuffer.AsSpan(0, s * s);
                for (int i = 0; i < queries; i++)
                {
                    var dRow = dKept.Slice(i * s, n);
                    if (p > 0) DropoutBackwardInPlace(dRow, p, keepProbs.AsSpan(job * s * s + i * s, n)); // now d(probabilities)
                    var dsRow = dScores.Slice(i * s, n);
                    dsRow.Clear();
                    Ops.SoftmaxBackward<T>(dRow, probs.Slice(i * s, n), dsRow, n, scale);
                }
                Gemm.Multiply<T>(queries, d, n, dScores, s, false, qkv.AsSpan(row0 + h + hi * d), ld, false, dQkv.AsSpan(row0 + hi * d), ld, accumulate: true, serial: true);
                Gemm.Multiply<T>(n, d, queries, dScores, s, true, qkv.AsSpan(row0 + hi * d), ld, false, dQkv.AsSpan(row0 + h + hi * d), ld, accumulate: true, serial: true);
            }
            finally
            {
                pool.Return(dKeptBuffer);
                pool.Return(dScoresBuffer);
                if (keptBuffer is not null) pool.Return(keptBuffer);
            }
        });
    }

    /// <summary>n when the mask is n ≥ 1 ones followed only by zeros (right padding, or none); 0 otherwise.</summary>
    public static int ValidPrefix(ReadOnlySpan<int> mask)
    {
        int n = mask.IndexOf(0);
        if (n < 0) return mask.Length;
        return n > 0 && mask[n..].IndexOfAnyExcept(0) < 0 ? n : 0;
    }
}
