using System.Numerics;
using System.Numerics.Tensors;
using NBert.Modeling;
using NBert.Tensors;
using NBert.Schema;

namespace NBert.Training;

/// <summary>
/// A BERT model laid out for training, in the style of llm.c: every parameter and its gradient live in
/// two flat buffers (<see cref="Values"/>, <see cref="Gradients"/>) with the same layout; the forward pass
/// keeps each layer's activations in buffers reused from step to step; the backward pass walks the layers
/// in reverse with the explicit backward functions of <see cref="Ops"/>. Generic over float32 (training)
/// and float64 (checked against PyTorch's float64 gradients). Query, key and value are laid out side by
/// side, so each layer's attention input projection is one [3h, h] GEMM forward and backward.
/// Not thread-safe: a forward pass overwrites the activations of the last one (each pass runs on several threads itself).
/// </summary>
public sealed partial class TrainingModel<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The model's config, with the dropout probabilities given to <see cref="From"/> when there were any.</summary>
    public BertConfig Config { get; }
    /// <summary>The head being trained, which decides the parameters and the loss.</summary>
    public BertArchitecture Architecture { get; }
    /// <summary>Every parameter's name, shape and place in <see cref="Values"/> and <see cref="Gradients"/>, in layout order.</summary>
    public IReadOnlyList<ParameterSlot> Slots { get; }
    /// <summary>All parameters in one flat buffer (see <see cref="Slots"/>); the optimiser updates it in place.</summary>
    public T[] Values { get; }
    /// <summary>The loss's gradient for every parameter, laid out as <see cref="Values"/>; <see cref="Backward"/> adds into it.</summary>
    public T[] Gradients { get; }
    /// <summary>The dropout masks' random numbers; its position is part of a training run's state.</summary>
    public DropoutRandom Random { get; set; }

    /// <summary>The parameters holding NaN or infinity, with how many such values each holds.</summary>
    public IReadOnlyList<NonFiniteTensor> NonFiniteParameters()
    {
        var found = new List<NonFiniteTensor>();
        foreach (var s in Slots)
        {
            long count = 0;
            foreach (var v in Values.AsSpan(s.Offset, s.Length))
                if (!T.IsFinite(v)) count++;
            if (count > 0) found.Add(new NonFiniteTensor(s.CheckpointName, count, s.Length));
        }
        return found;
    }

    private readonly Dictionary<string, ParameterSlot> _byName;
    private readonly LayerSlots[] _layers;

    /// <summary>Offsets of one encoder layer's parameters.</summary>
    private readonly record struct LayerSlots(int Qkv, int QkvBias, int AttentionOutput, int AttentionOutputBias, int Norm1, int Norm1Bias,
        int Intermediate, int IntermediateBias, int Output, int OutputBias, int Norm2, int Norm2Bias);

    private TrainingModel(BertConfig config, BertArchitecture architecture, ulong seed)
    {
        if (architecture == BertArchitecture.BertModel)
            throw new ArgumentException("BertModel has no head and no loss to train; load the checkpoint as the architecture you want to train.");
        Config = config;
        Architecture = architecture;
        var specs = BertArchitectures.Parameters(config, architecture);
        // Layout: transformers' order, except that each layer's query, key and value weights (then biases)
        // are adjacent.
        var ordered = new List<ParameterSpec>();
        foreach (var spec in specs)
        {
            if (spec.Name.Contains(".attention.self.key.", StringComparison.Ordinal) || spec.Name.Contains(".attention.self.value.", StringComparison.Ordinal)
                || spec.Name.EndsWith(".attention.self.query.bias", StringComparison.Ordinal))
                continue;
            if (spec.Name.EndsWith(".attention.self.query.weight", StringComparison.Ordinal))
            {
                string l = spec.Name[..^"query.weight".Length];
                foreach (var suffix in new[] { "query.weight", "key.weight", "value.weight", "query.bias", "key.bias", "value.bias" })
                    ordered.Add(specs.First(s => s.Name == l + suffix));
                continue;
            }
            ordered.Add(spec);
        }
        var slots = new List<ParameterSlot>();
        int offset = 0;
        foreach (var spec in ordered)
        {
            int length = spec.Shape.Aggregate(1, (a, d) => checked(a * d));
            slots.Add(new ParameterSlot(spec.Name, BertArchitectures.CheckpointName(spec.Name, architecture), spec.Shape, offset, length));
            offset = checked(offset + length);
        }
        Slots = slots;
        _byName = slots.ToDictionary(s => s.Name, StringComparer.Ordinal);
        Values = new T[offset];
        Gradients = new T[offset];
        Random = new DropoutRandom(seed);
        _layers = Enumerable.Range(0, config.NumHiddenLayers).Select(i =>
        {
            string l = $"encoder.layer.{i}.";
            int O(string name) => _byName[l + name].Offset;
            return new LayerSlots(O("attention.self.query.weight"), O("attention.self.query.bias"), O("attention.output.dense.weight"),
                O("attention.output.dense.bias"), O("attention.output.LayerNorm.weight"), O("attention.output.LayerNorm.bias"),
                O("intermediate.dense.weight"), O("intermediate.dense.bias"), O("output.dense.weight"), O("output.dense.bias"),
                O("output.LayerNorm.weight"), O("output.LayerNorm.bias"));
        }).ToArray();
    }

    /// <summary>A training copy of a model's parameters (converted to T). <paramref name="seed"/> seeds dropout;
    /// <paramref name="dropout"/>, when given, replaces every dropout probability of the config for training.</summary>
    public static TrainingModel<T> From(BertPreTrainedModel model, int seed = 0, double? dropout = null)
    {
        var config = model.Config;
        if (dropout is double p)
        {
            if (!(p >= 0 && p < 1)) throw new ArgumentOutOfRangeException(nameof(dropout), $"Dropout must be in [0, 1), not {p}.");
            config = config with { HiddenDropoutProb = p, AttentionProbsDropoutProb = p, ClassifierDropout = null };
        }
        var result = new TrainingModel<T>(config, model.Architecture, unchecked((ulong)seed));
        foreach (var slot in result.Slots)
        {
            var source = model.Parameters[slot.Name].Data;
            var target = result.Values.AsSpan(slot.Offset, slot.Length);
            for (int i = 0; i < source.Length; i++) target[i] = T.CreateTruncating(source[i]);
        }
        return result;
    }

    /// <summary>Writes the parameters back into <paramref name="model"/> (as float32) and tells it they changed.</summary>
    public void CopyTo(BertPreTrainedModel model)
    {
        if (model.Architecture != Architecture || model.Config.HiddenSize != Config.HiddenSize || model.Config.NumHiddenLayers != Config.NumHiddenLayers)
            throw new ArgumentException("The model's architecture or shape differs from this training model's.");
        foreach (var slot in Slots)
        {
            var target = model.Parameters[slot.Name].Data;
            var source = Values.AsSpan(slot.Offset, slot.Length);
            for (int i = 0; i < target.Length; i++) target[i] = float.CreateTruncating(source[i]);
        }
        model.WeightsChanged();
    }

    /// <summary>A parameter's slot by the model's name (<c>encoder.layer.0.output.dense.weight</c>) or its checkpoint name
    /// (<c>bert.encoder.layer.0.output.dense.weight</c>, <c>classifier.weight</c>).</summary>
    /// <exception cref="KeyNotFoundException">No parameter has that name in this architecture.</exception>
    public ParameterSlot Slot(string name) =>
        _byName.TryGetValue(name, out var s) ? s : Slots.FirstOrDefault(x => x.CheckpointName == name)
            ?? throw new KeyNotFoundException($"No parameter '{name}' in {Architecture}.");

    /// <summary>A parameter's values, row-major in its <see cref="ParameterSlot.Shape"/>, as a writable view of <see cref="Values"/>.</summary>
    /// <exception cref="KeyNotFoundException">No parameter has that name (see <see cref="Slot"/>).</exception>
    public Span<T> Value(string name) => Values.AsSpan(Slot(name).Offset, Slot(name).Length);
    /// <summary>A parameter's gradient, as a writable view of <see cref="Gradients"/>.</summary>
    /// <exception cref="KeyNotFoundException">No parameter has that name (see <see cref="Slot"/>).</exception>
    public Span<T> Gradient(string name) => Gradients.AsSpan(Slot(name).Offset, Slot(name).Length);

    /// <summary>Sets every gradient to 0 (<c>optimizer.zero_grad()</c>), before the backward pass of a new step.</summary>
    public void ZeroGradients() => Gradients.AsSpan().Clear();

    private Span<T> W(int offset, int length) => Values.AsSpan(offset, length);
    private Span<T> G(int offset, int length) => Gradients.AsSpan(offset, length);
    private int Off(string name) => _byName[name].Offset;

    // ---- activations, kept from the forward pass for the backward pass ----

    private sealed class LayerActivations
    {
        public required T[] Qkv, Probs, KeptProbs, Context, Residual1, Mean1, Rstd1, Attended, Inner, Activated, Residual2, Mean2, Rstd2, Output;
        public required bool[] KeepProbs, Keep1, Keep2;
    }

    /// <summary>Buffers sized for the largest batch seen so far; a pass uses the first batch·sequence rows.</summary>
    private sealed class Activations
    {
        public int Batch, Sequence, RowCapacity, ProbabilityCapacity;
        public required T[] EmbeddingSum, Mean0, Rstd0, Embedded;
        public required bool[] Keep0;
        public required LayerActivations[] Layers;
        // gradient scratch: [m, h], [m, I] and [m, 3h]
        public required T[] DHidden, DAttended, DResidual, DInner, DPreActivation, DContext, DQkv;
    }

    private Activations? _acts;
    private TrainingBatch? _batch;
    private bool _training;
    private double _pHidden, _pAttention;

    private Activations Buffers(int b, int s)
    {
        var c = Config;
        int m = b * s, h = c.HiddenSize, inner = c.IntermediateSize, probs = b * c.NumAttentionHeads * s * s;
        if (_acts is { } a && m <= a.RowCapacity && probs <= a.ProbabilityCapacity)
        {
            (a.Batch, a.Sequence) = (b, s);
            return a;
        }
        m = Math.Max(m, _acts?.RowCapacity ?? 0);
        probs = Math.Max(probs, _acts?.ProbabilityCapacity ?? 0);
        _acts = null; // let the old buffers go before allocating new ones
        return _acts = new Activations
        {
            Batch = b,
            Sequence = s,
            RowCapacity = m,
            ProbabilityCapacity = probs,
            EmbeddingSum = new T[m * h], Mean0 = new T[m], Rstd0 = new T[m], Embedded = new T[m * h], Keep0 = new bool[m * h],
            Layers = Enumerable.Range(0, c.NumHiddenLayers).Select(_ => new LayerActivations
            {
                Qkv = new T[m * 3 * h], Probs = new T[probs], KeptProbs = new T[probs], Context = new T[m * h],
                Residual1 = new T[m * h], Mean1 = new T[m], Rstd1 = new T[m], Attended = new T[m * h],
                Inner = new T[m * inner], Activated = new T[m * inner], Residual2 = new T[m * h], Mean2 = new T[m], Rstd2 = new T[m],
                Output = new T[m * h], KeepProbs = new bool[probs], Keep1 = new bool[m * h], Keep2 = new bool[m * h],
            }).ToArray(),
            DHidden = new T[m * h], DAttended = new T[m * h], DResidual = new T[m * h], DInner = new T[m * inner], DPreActivation = new T[m * inner],
            DContext = new T[m * h], DQkv = new T[m * 3 * h],
        };
    }

    /// <summary>The encoder's output [batch·sequence, hidden] of the last forward pass.</summary>
    private T[] LastHidden => _acts!.Layers.Length == 0 ? _acts.Embedded : _acts.Layers[^1].Output;

    // ---- forward ----

    /// <summary>
    /// Runs the model on a batch and returns its loss, as transformers' forward with labels does, keeping
    /// the activations for <see cref="Backward"/>. <paramref name="training"/> is PyTorch's train mode:
    /// dropout on, with the config's probabilities; off, gradients are still available (eval mode).
    /// </summary>
    public TrainingLoss Forward(TrainingBatch batch, bool training = true)
    {
        var inputs = batch.Inputs;
        var c = Config;
        int b = inputs.Batch, s = inputs.SequenceLength, h = c.HiddenSize, m = b * s;
        if (s > c.MaxPositionEmbeddings)
            throw new ArgumentException($"Sequence length {s} exceeds max_position_embeddings {c.MaxPositionEmbeddings}: truncate the input.");
        _batch = batch;
        _training = training;
        _pHidden = training ? c.HiddenDropoutProb : 0;
        _pAttention = training ? c.AttentionProbsDropoutProb : 0;
        var a = Buffers(b, s);
        T eps = T.CreateTruncating(c.LayerNormEps);

        // Embeddings: word + position + token type, LayerNorm, dropout.
        var word = W(Off("embeddings.word_embeddings.weight"), c.VocabSize * h);
        var position = W(Off("embeddings.position_embeddings.weight"), c.MaxPositionEmbeddings * h);
        var types = W(Off("embeddings.token_type_embeddings.weight"), c.TypeVocabSize * h);
        for (int t = 0; t < m; t++)
        {
            int id = inputs.InputIds[t], type = inputs.TokenTypeIds?[t] ?? 0;
            if ((uint)id >= (uint)c.VocabSize) throw new ArgumentOutOfRangeException(nameof(batch), $"Input id {id} is outside 0..{c.VocabSize - 1}.");
            if ((uint)type >= (uint)c.TypeVocabSize) throw new ArgumentOutOfRangeException(nameof(batch), $"Token type id {type} is outside 0..{c.TypeVocabSize - 1}.");
            var row = a.EmbeddingSum.AsSpan(t * h, h);
            TensorPrimitives.Add(word.Slice(id * h, h), position.Slice(t % s * h, h), row);
            TensorPrimitives.Add(row, types.Slice(type * h, h), row);
        }
        LayerNorm(a.EmbeddingSum, a.Embedded, Off("embeddings.LayerNorm.weight"), Off("embeddings.LayerNorm.bias"), a.Mean0, a.Rstd0, m, eps);
        Dropout(a.Embedded, m * h, _pHidden, a.Keep0);

        var x = a.Embedded;
        for (int li = 0; li < c.NumHiddenLayers; li++)
        {
            LayerForward(_layers[li], a.Layers[li], x, inputs, eps);
            x = a.Layers[li].Output;
        }
        return HeadForward(batch);
    }

    private void LayerForward(LayerSlots p, LayerActivations l, T[] x, ModelInputs inputs, T eps)
    {
        var c = Config;
        int b = inputs.Batch, s = inputs.SequenceLength, m = b * s, h = c.HiddenSize, inner = c.IntermediateSize;
        Ops.LinearForward<T>(x, W(p.Qkv, 3 * h * h), W(p.QkvBias, 3 * h), l.Qkv, m, h, 3 * h);
        AttentionForward(l, inputs.AttentionMask, b, s);
        Ops.LinearForward<T>(l.Context, W(p.AttentionOutput, h * h), W(p.AttentionOutputBias, h), l.Residual1, m, h, h);
        Dropout(l.Residual1, m * h, _pHidden, l.Keep1);
        TensorPrimitives.Add(l.Residual1.AsSpan(0, m * h), x.AsSpan(0, m * h), l.Residual1);
        LayerNorm(l.Residual1, l.Attended, p.Norm1, p.Norm1Bias, l.Mean1, l.Rstd1, m, eps);
        Ops.LinearForward<T>(l.Attended, W(p.Intermediate, inner * h), W(p.IntermediateBias, inner), l.Inner, m, h, inner);
        var activation = c.Activation;
        Threading.ForRows(m, (r0, r1) => Schema.Activations.Forward<T>(activation, l.Inner.AsSpan(r0 * inner, (r1 - r0) * inner), l.Activated.AsSpan(r0 * inner, (r1 - r0) * inner)));
        Ops.LinearForward<T>(l.Activated, W(p.Output, h * inner), W(p.OutputBias, h), l.Residual2, m, inner, h);
        Dropout(l.Residual2, m * h, _pHidden, l.Keep2);
        TensorPrimitives.Add(l.Residual2.AsSpan(0, m * h), l.Attended.AsSpan(0, m * h), l.Residual2);
        LayerNorm(l.Residual2, l.Output, p.Norm2, p.Norm2Bias, l.Mean2, l.Rstd2, m, eps);
    }

    /// <summary>LayerNorm of rows, in parallel, keeping mean and 1/std.</summary>
    private void LayerNorm(T[] x, T[] y, int weight, int bias, T[] mean, T[] rstd, int rows, T eps)
    {
        int h = Config.HiddenSize;
        var values = Values;
        Threading.ForRows(rows, (r0, r1) => Ops.LayerNormForward<T>(x.AsSpan(r0 * h, (r1 - r0) * h), y.AsSpan(r0 * h, (r1 - r0) * h),
            values.AsSpan(weight, h), values.AsSpan(bias, h), eps, mean.AsSpan(r0, r1 - r0), rstd.AsSpan(r0, r1 - r0)));
    }

    private void LayerNormBackward(T[] dy, T[] x, T[] mean, T[] rstd, int weight, int bias, T[] dx, int rows)
    {
        int h = Config.HiddenSize;
        var values = Values;
        // The input gradient row by row in parallel; the parameter gradients, which every row adds to, in one pass.
        Threading.ForRows(rows, (r0, r1) => Ops.LayerNormBackward<T>(dy.AsSpan(r0 * h, (r1 - r0) * h), x.AsSpan(r0 * h, (r1 - r0) * h),
            mean.AsSpan(r0, r1 - r0), rstd.AsSpan(r0, r1 - r0), values.AsSpan(weight, h), dx.AsSpan(r0 * h, (r1 - r0) * h), default, default));
        Ops.LayerNormParameterBackward<T>(dy.AsSpan(0, rows * h), x.AsSpan(0, rows * h), mean, rstd, G(weight, h), G(bias, h));
    }

    /// <summary>Dropout in place on the first <paramref name="length"/> values when p > 0 (the mask kept in <paramref name="keep"/>).</summary>
    private void Dropout(T[] x, int length, double p, bool[] keep)
    {
        if (p <= 0) return;
        ulong start = Random.Take(length);
        var random = Random;
        Threading.ForRows(length / Config.HiddenSize, (r0, r1) =>
        {
            int h = Config.HiddenSize;
            Ops.DropoutForward<T>(x.AsSpan(r0 * h, (r1 - r0) * h), p, random, start + (ulong)(r0 * h), keep.AsSpan(r0 * h, (r1 - r0) * h));
        });
    }

    /// <summary>
    /// Self-attention over the fused [m, 3h] projection, one (sequence, head) pair per job:
    /// P = softmax(Q Kᵀ/√d + mask), dropout, context = P V.
    /// </summary>
    private void AttentionForward(LayerActivations l, int[]? mask, int batch, int s)
    {
        var c = Config;
        int heads = c.NumAttentionHeads, d = c.HeadSize, h = c.HiddenSize, ld = 3 * h;
        T scale = T.One / T.Sqrt(T.CreateTruncating(d));
        double p = _pAttention;
        ulong start = p > 0 ? Random.Take((long)batch * heads * s * s) : 0;
        var random = Random;
        WorkerPool.Shared.Run(batch * heads, Threading.MaxThreads, job =>
        {
            int bi = job / heads, hi = job % heads, row0 = bi * s * ld;
            var probs = l.Probs.AsSpan(job * s * s, s * s);
            Gemm.Multiply<T>(s, s, d, l.Qkv.AsSpan(row0 + hi * d), ld, false, l.Qkv.AsSpan(row0 + h + hi * d), ld, true, probs, s, serial: true);
            TensorPrimitives.Multiply(probs, scale, probs);
            Ops.MaskedSoftmax<T>(probs, s, mask is null ? default : mask.AsSpan(bi * s, s));
            Span<T> kept = probs;
            if (p > 0)
            {
                kept = l.KeptProbs.AsSpan(job * s * s, s * s);
                probs.CopyTo(kept);
                Ops.DropoutForward(kept, p, random, start + (ulong)(job * s * s), l.KeepProbs.AsSpan(job * s * s, s * s));
            }
            Gemm.Multiply<T>(s, d, s, kept, s, false, l.Qkv.AsSpan(row0 + 2 * h + hi * d), ld, false, l.Context.AsSpan(bi * s * h + hi * d), h, serial: true);
        });
    }

    // ---- backward ----

    /// <summary>
    /// Adds the gradient of <paramref name="lossScale"/> × the last forward's loss to <see cref="Gradients"/>
    /// (call <see cref="ZeroGradients"/> first unless accumulating over micro-batches).
    /// </summary>
    public void Backward(double lossScale = 1)
    {
        if (_batch is null || _acts is null) throw new InvalidOperationException("Backward needs a Forward first.");
        var c = Config;
        var a = _acts;
        var inputs = _batch.Inputs;
        int b = inputs.Batch, s = inputs.SequenceLength, m = b * s, h = c.HiddenSize;
        var dx = a.DHidden;
        Array.Clear(dx, 0, m * h);
        HeadBackward(lossScale, dx);

        for (int li = c.NumHiddenLayers - 1; li >= 0; li--)
        {
            var input = li == 0 ? a.Embedded : a.Layers[li - 1].Output;
            LayerBackward(_layers[li], a.Layers[li], input, inputs, dx);
        }

        // Embeddings: dropout, LayerNorm, then the three tables.
        var dSum = a.DResidual;
        Array.Clear(dSum, 0, m * h);
        DropoutBackwardInPlace(dx.AsSpan(0, m * h), _pHidden, a.Keep0);
        LayerNormBackward(dx, a.EmbeddingSum, a.Mean0, a.Rstd0, Off("embeddings.LayerNorm.weight"), Off("embeddings.LayerNorm.bias"), dSum, m);
        Ops.EmbeddingBackward<T>(dSum.AsSpan(0, m * h), inputs.InputIds, G(Off("embeddings.word_embeddings.weight"), c.VocabSize * h), h);
        var dPosition = G(Off("embeddings.position_embeddings.weight"), c.MaxPositionEmbeddings * h);
        var dTypes = G(Off("embeddings.token_type_embeddings.weight"), c.TypeVocabSize * h);
        for (int t = 0; t < m; t++)
        {
            var row = dSum.AsSpan(t * h, h);
            var pos = dPosition.Slice(t % s * h, h);
            TensorPrimitives.Add(pos, row, pos);
            var type = dTypes.Slice((inputs.TokenTypeIds?[t] ?? 0) * h, h);
            TensorPrimitives.Add(type, row, type);
        }
    }

    /// <summary>dy ← dy · keep/(1-p), when dropout was on.</summary>
    private static void DropoutBackwardInPlace(Span<T> dy, double p, ReadOnlySpan<bool> keep)
    {
        if (p <= 0) return;
        T scale = T.CreateTruncating(1 / (1 - p));
        for (int i = 0; i < dy.Length; i++) dy[i] = keep[i] ? dy[i] * scale : T.Zero;
    }

    /// <summary>One encoder layer backward: <paramref name="dx"/> holds d(output) on entry and d(input) on exit.</summary>
    private void LayerBackward(LayerSlots p, LayerActivations l, T[] input, ModelInputs inputs, T[] dx)
    {
        var c = Config;
        var a = _acts!;
        int b = inputs.Batch, s = inputs.SequenceLength, m = b * s, h = c.HiddenSize, inner = c.IntermediateSize;
        // Output LayerNorm: d(residual2). The residual's two branches: the attended input and the FFN output.
        var dRes = a.DResidual;
        Array.Clear(dRes, 0, m * h);
        LayerNormBackward(dx, l.Residual2, l.Mean2, l.Rstd2, p.Norm2, p.Norm2Bias, dRes, m);
        var dAttended = a.DAttended;
        Array.Copy(dRes, dAttended, m * h);
        DropoutBackwardInPlace(dRes.AsSpan(0, m * h), _pHidden, l.Keep2);
        // FFN: output dense, activation, intermediate dense.
        var dInner = a.DInner;
        Array.Clear(dInner, 0, m * inner);
        Ops.LinearBackward<T>(dRes, l.Activated, W(p.Output, h * inner), dInner, G(p.Output, h * inner), G(p.OutputBias, h), m, inner, h);
        var activation = c.Activation;
        var dPre = a.DPreActivation;
        Array.Clear(dPre, 0, m * inner);
        Threading.ForRows(m, (r0, r1) => Schema.Activations.Backward<T>(activation, dInner.AsSpan(r0 * inner, (r1 - r0) * inner),
            l.Inner.AsSpan(r0 * inner, (r1 - r0) * inner), dPre.AsSpan(r0 * inner, (r1 - r0) * inner)));
        Ops.LinearBackward<T>(dPre, l.Attended, W(p.Intermediate, inner * h), dAttended, G(p.Intermediate, inner * h), G(p.IntermediateBias, inner), m, h, inner);
        // Attention-output LayerNorm, residual, dropout, dense.
        Array.Clear(dRes, 0, m * h);
        LayerNormBackward(dAttended, l.Residual1, l.Mean1, l.Rstd1, p.Norm1, p.Norm1Bias, dRes, m);
        Array.Copy(dRes, dx, m * h); // the residual: d(input) starts as d(residual1)
        DropoutBackwardInPlace(dRes.AsSpan(0, m * h), _pHidden, l.Keep1);
        var dContext = a.DContext;
        Array.Clear(dContext, 0, m * h);
        Ops.LinearBackward<T>(dRes, l.Context, W(p.AttentionOutput, h * h), dContext, G(p.AttentionOutput, h * h), G(p.AttentionOutputBias, h), m, h, h);
        var dQkv = a.DQkv;
        Array.Clear(dQkv, 0, m * 3 * h);
        AttentionBackward(l, dContext, dQkv, inputs.AttentionMask, b, s);
        Ops.LinearBackward<T>(dQkv, input, W(p.Qkv, 3 * h * h), dx, G(p.Qkv, 3 * h * h), G(p.QkvBias, 3 * h), m, h, 3 * h);
    }
}
