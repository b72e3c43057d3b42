using System.Numerics;
using System.Numerics.Tensors;
using NBert.Schema;
using NBert.Tensors;

namespace NBert.Modeling;

/// <summary>
/// The heads' logits, each written once for inference and training (losses are separate: <c>Training.HeadLosses</c>).
/// The classifiers (next sentence, sequence and token classification, QA's start/end) are one linear layer each,
/// <see cref="Weights{T}.Linear"/>; here are the two with more steps, the pooler and the masked-LM head, with their
/// backward. Buffers are the caller's: a training model keeps them for backward, inference passes temporaries.
/// </summary>
internal static class Heads<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>A step applied to a buffer in place (dropout, in training).</summary>
    public delegate void InPlace(Span<T> x);

    /// <summary>The pooler: each sequence's first token ([CLS]) [b, h] into <paramref name="first"/>, then dense and the
    /// family's activation (<see cref="BertConfig.PoolerActivation"/>: BERT's tanh, DistilBERT's <c>pre_classifier</c> ReLU)
    /// into <paramref name="pooled"/> [b, h]. <paramref name="pre"/>, when not empty, keeps the dense output before the
    /// activation (for the backward pass).</summary>
    public static void Pooler(Weights<T> w, LinearParameters p, Activation activation, ReadOnlySpan<T> hidden, int b, int s, Span<T> first,
        Span<T> pooled, Span<T> pre = default, InPlace? beforeDense = null)
    {
        int h = p.Inputs, n = b * h;
        for (int i = 0; i < b; i++) hidden.Slice(i * s * h, h).CopyTo(first.Slice(i * h, h));
        beforeDense?.Invoke(first[..n]); // training: RoBERTa's dropout on <s> before classifier.dense
        w.Linear(p, first[..n], b, pooled);
        if (!pre.IsEmpty) pooled[..n].CopyTo(pre);
        if (activation == Activation.Tanh) TensorPrimitives.Tanh<T>(pooled[..n], pooled[..n]);
        else activation.Forward<T>(pooled[..n], pooled[..n]);
    }

    /// <summary>The pooler backward: from d(pooled) [b, h] to its parameters' gradients and d(first tokens), added to
    /// <paramref name="dHidden"/> [m, h]. <paramref name="pre"/> is the forward's dense output (tanh's derivative is read
    /// from <paramref name="pooled"/>); <paramref name="dPre"/> and <paramref name="dFirst"/> are scratch of [b, h].</summary>
    public static void PoolerBackward(FlatWeights<T> w, T[] grads, LinearParameters p, Activation activation, ReadOnlySpan<T> dPooled,
        ReadOnlySpan<T> first, ReadOnlySpan<T> pre, ReadOnlySpan<T> pooled, int b, int s, Span<T> dPre, Span<T> dFirst, Span<T> dHidden,
        double inputDropout = 0, ReadOnlySpan<bool> inputKeep = default)
    {
        int h = p.Inputs, n = b * h;
        dPre[..n].Clear();
        dFirst[..n].Clear();
        if (activation == Activation.Tanh) Ops.TanhBackward<T>(dPooled[..n], pooled[..n], dPre[..n]);
        else activation.Backward<T>(dPooled[..n], pre[..n], dPre[..n]);
        Encoder<T>.LinearBackward(w, grads, p, dPre[..n], first[..n], dFirst[..n], b);
        Encoder<T>.DropoutBackwardInPlace(dFirst[..n], inputDropout, inputKeep);
        for (int i = 0; i < b; i++)
        {
            var row = dHidden.Slice(i * s * h, h);
            TensorPrimitives.Add(row, dFirst.Slice(i * h, h), row);
        }
    }

    /// <summary>ELECTRA's discriminator (<c>discriminator_predictions</c>) on <paramref name="m"/> rows of
    /// <paramref name="hidden"/> [m, h]: dense, the config's activation, <c>dense_prediction</c>: one logit per token into
    /// <paramref name="logits"/> [m]. <paramref name="dense"/> keeps the pre-activation (for the backward pass).</summary>
    public static void Discriminator(Weights<T> w, DiscriminatorParameters p, Activation activation, ReadOnlySpan<T> hidden, int m,
        Span<T> dense, Span<T> activated, Span<T> logits)
    {
        int n = m * p.Dense.Outputs;
        w.Linear(p.Dense, hidden[..(m * p.Dense.Inputs)], m, dense);
        activation.Forward<T>(dense[..n], activated[..n]);
        w.Linear(p.Prediction, activated[..n], m, logits);
    }

    /// <summary>The discriminator backward, from d(logits) [m] to its parameters' gradients and d(hidden) [m, h], added to
    /// <paramref name="dHidden"/>; <paramref name="dActivated"/> and <paramref name="dDense"/> are scratch of [m, h].</summary>
    public static void DiscriminatorBackward(FlatWeights<T> w, T[] grads, DiscriminatorParameters p, Activation activation, ReadOnlySpan<T> dLogits,
        ReadOnlySpan<T> hidden, ReadOnlySpan<T> dense, ReadOnlySpan<T> activated, int m, Span<T> dActivated, Span<T> dDense, Span<T> dHidden)
    {
        int n = m * p.Dense.Outputs;
        dActivated[..n].Clear();
        Encoder<T>.LinearBackward(w, grads, p.Prediction, dLogits[..m], activated[..n], dActivated[..n], m);
        dDense[..n].Clear();
        activation.Backward<T>(dActivated[..n], dense[..n], dDense[..n]);
        Encoder<T>.LinearBackward(w, grads, p.Dense, dDense[..n], hidden[..(m * p.Dense.Inputs)], dHidden[..(m * p.Dense.Inputs)], m);
    }

    /// <summary>Copies the rows <paramref name="rows"/> (indices into b·s) of <paramref name="hidden"/> [m, h] into <paramref name="output"/> [rows, h].</summary>
    public static void Gather(ReadOnlySpan<T> hidden, IReadOnlyList<int> rows, int h, Span<T> output)
    {
        for (int i = 0; i < rows.Count; i++) hidden.Slice(rows[i] * h, h).CopyTo(output.Slice(i * h, h));
    }

    /// <summary>
    /// The masked-LM head (<c>cls.predictions</c>) on <paramref name="r"/> rows of <paramref name="input"/> [r, h]:
    /// transform dense, activation, LayerNorm, then the decoder (the word embeddings when tied) plus its bias, into
    /// <paramref name="logits"/> [r, vocab]. <paramref name="dense"/> and <paramref name="activated"/> may be one buffer
    /// (inference); <paramref name="mean"/> and <paramref name="rstd"/> keep LayerNorm's statistics when not empty.
    /// </summary>
    public static void MaskedLm(Weights<T> w, MaskedLmParameters p, BertConfig c, ReadOnlySpan<T> input, int r,
        Span<T> dense, Span<T> activated, Span<T> normed, Span<T> mean, Span<T> rstd, Span<T> logits)
    {
        // The transform's width: the hidden size, or ELECTRA's embedding_size (its generator maps back to it).
        int h = p.Transform.Outputs;
        w.Linear(p.Transform, input[..(r * p.Transform.Inputs)], r, dense);
        c.MaskedLmActivation.Forward<T>(dense[..(r * h)], activated[..(r * h)]);
        Ops.LayerNormForward<T>(activated[..(r * h)], normed[..(r * h)], w.Values(p.Norm.Weight), w.Values(p.Norm.Bias),
            T.CreateTruncating(c.LayerNormEps), mean.IsEmpty ? default : mean[..r], rstd.IsEmpty ? default : rstd[..r]);
        w.Linear(p.Decoder, normed[..(r * h)], r, logits);
    }

    /// <summary>The masked-LM head backward, from d(logits) [r, vocab] to the parameters' gradients and d(input) [r, h]
    /// (overwritten). The other spans are the forward's (kept) and scratch of [r, transform width].</summary>
    public static void MaskedLmBackward(FlatWeights<T> w, T[] grads, MaskedLmParameters p, BertConfig c, ReadOnlySpan<T> dLogits, int r,
        ReadOnlySpan<T> input, ReadOnlySpan<T> dense, ReadOnlySpan<T> activated, ReadOnlySpan<T> normed, ReadOnlySpan<T> mean, ReadOnlySpan<T> rstd,
        Span<T> dNormed, Span<T> dActivated, Span<T> dDense, Span<T> dInput)
    {
        int h = p.Transform.Outputs, n = r * h, ni = r * p.Transform.Inputs;
        dNormed[..n].Clear();
        Encoder<T>.LinearBackward(w, grads, p.Decoder, dLogits, normed[..n], dNormed[..n], r);
        dActivated[..n].Clear();
        Ops.LayerNormBackward<T>(dNormed[..n], activated[..n], mean[..r], rstd[..r], w.Values(p.Norm.Weight), dActivated[..n],
            grads.AsSpan(p.Norm.Weight.Offset, h), grads.AsSpan(p.Norm.Bias.Offset, h));
        dDense[..n].Clear();
        c.MaskedLmActivation.Backward<T>(dActivated[..n], dense[..n], dDense[..n]);
        dInput[..ni].Clear();
        Encoder<T>.LinearBackward(w, grads, p.Transform, dDense[..n], input[..ni], dInput[..ni], r);
    }
}

/// <summary>QA's one linear layer gives [rows, 2] (start, end) logits; the head's outputs, and the loss, are the two columns.</summary>
internal static class QuestionAnsweringLogits
{
    /// <summary>The start and end columns of [rows, 2] logits.</summary>
    public static void Split<T>(ReadOnlySpan<T> both, Span<T> start, Span<T> end)
    {
        for (int i = 0; i < start.Length; i++)
        {
            start[i] = both[2 * i];
            end[i] = both[2 * i + 1];
        }
    }

    /// <summary>The columns' gradients back into [rows, 2].</summary>
    public static void Merge<T>(ReadOnlySpan<T> dStart, ReadOnlySpan<T> dEnd, Span<T> dBoth)
    {
        for (int i = 0; i < dStart.Length; i++)
        {
            dBoth[2 * i] = dStart[i];
            dBoth[2 * i + 1] = dEnd[i];
        }
    }
}
