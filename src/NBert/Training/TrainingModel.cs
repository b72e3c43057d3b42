using System.Numerics;
using NBert.Modeling;
using NBert.Schema;
using NBert.Tensors;

namespace NBert.Training;

/// <summary>
/// A BERT model laid out for training, in the style of llm.c: every parameter and its gradient live in two flat
/// buffers (<see cref="Values"/>, <see cref="Gradients"/>) in the one <see cref="ParameterLayout"/>. The forward and
/// backward passes are the encoder's and the heads' own (<c>Modeling.Encoder</c>, <c>Modeling.Heads</c>), the same code
/// inference runs, here with the activations kept per layer for the backward pass, dropout on in train mode, and the
/// weights read from the flat buffer. Generic over float32 (training) and float64 (checked against PyTorch's float64
/// gradients). Not thread-safe: a forward pass overwrites the activations of the last one (each pass runs on several
/// threads itself).
/// </summary>
public sealed partial class TrainingModel<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The model's config, with the dropout probabilities given to <see cref="From"/> when there were any.</summary>
    public BertConfig Config { get; }
    /// <summary>The head being trained, which decides the parameters and the loss.</summary>
    public BertArchitecture Architecture { get; }
    /// <summary>Every parameter's name, shape and place in <see cref="Values"/> and <see cref="Gradients"/>, in layout order.</summary>
    public IReadOnlyList<ParameterSlot> Slots => _layout.Slots;
    /// <summary>All parameters in one flat buffer (see <see cref="Slots"/>); the optimiser updates it in place.</summary>
    public T[] Values { get; }
    /// <summary>The loss's gradient for every parameter, laid out as <see cref="Values"/>; <see cref="Backward"/> adds into it.
    /// Reaching the buffer through this property (or <see cref="Gradient"/>) makes the next <see cref="ZeroGradients"/> clear all of
    /// it, since the caller may have written anywhere.</summary>
    public T[] Gradients
    {
        get
        {
            _gradientState = GradientState.Unknown;
            return _gradients;
        }
    }
    /// <summary>The dropout masks' random numbers; its position is part of a training run's state.</summary>
    public DropoutRandom Random { get; set; }

    private readonly T[] _gradients;
    private readonly ParameterLayout _layout;
    private readonly FlatWeights<T> _weights;
    private readonly Encoder<T> _encoder;
    private readonly EncoderPass<T> _pass;
    private TrainingBatch? _batch;
    private bool _training;

    private TrainingModel(BertConfig config, BertArchitecture architecture, ulong seed)
    {
        if (architecture == BertArchitecture.BertModel)
            throw new ArgumentException("BertModel has no head and no loss to train; load the checkpoint as the architecture you want to train.");
        Config = config;
        Architecture = architecture;
        _layout = new ParameterLayout(config, architecture);
        Values = new T[_layout.Length];
        _gradients = new T[_layout.Length];
        Random = new DropoutRandom(seed);
        _weights = new FlatWeights<T>(Values);
        _encoder = new Encoder<T>(_layout);
        _pass = EncoderPass<T>.Kept(config);
    }

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

    /// <summary>A training copy of a model's parameters (converted to T). <paramref name="seed"/> seeds dropout;
    /// <paramref name="dropout"/>, when given, replaces every dropout probability of the config for training.</summary>
    public static TrainingModel<T> From(BertPreTrainedModel model, int seed = 0, double? dropout = null)
    {
        if (model.Quantization != Quantization.None)
            throw new ArgumentException("An int8 model cannot be trained: its float32 weights were released when it was quantized. Load it again.", nameof(model));
        var config = model.Config;
        if (dropout is double p)
        {
            if (!(p >= 0 && p < 1)) throw new ArgumentOutOfRangeException(nameof(dropout), $"Dropout must be in [0, 1), not {p}.");
            config = config with { HiddenDropoutProb = p, AttentionProbsDropoutProb = p, ClassifierDropout = null };
        }
        var result = new TrainingModel<T>(config, model.Architecture, unchecked((ulong)seed));
        foreach (var slot in result.Slots)
        {
            var source = model.ParametersToRead[slot.Name].Data; // read only: a model sharing its weights keeps sharing them
            var target = result.Values.AsSpan(slot.Offset, slot.Length);
            for (int i = 0; i < source.Length; i++) target[i] = T.CreateTruncating(source[i]);
        }
        return result;
    }

    /// <summary>Lets the activations and gradient scratch kept for backward go (a later forward allocates them again).</summary>
    internal void ReleaseActivations()
    {
        _pass.Release();
        (_batch, _hidden, _paddedHidden, _paddedDHidden) = (null, [], [], []);
    }

    /// <summary>Writes the parameters back into <paramref name="model"/> (as float32) and tells it they changed.</summary>
    public void CopyTo(BertPreTrainedModel model)
    {
        if (model.Architecture != Architecture || model.Config.HiddenSize != Config.HiddenSize || model.Config.NumHiddenLayers != Config.NumHiddenLayers)
            throw new ArgumentException("The model's architecture or shape differs from this training model's.");
        if (model.Quantization != Quantization.None)
            throw new ArgumentException("An int8 model cannot take trained weights: load it again.", nameof(model));
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
        _layout.Contains(name) ? _layout[name] : Slots.FirstOrDefault(x => x.CheckpointName == name)
            ?? throw new KeyNotFoundException($"No parameter '{name}' in {Architecture}.");

    /// <summary>A parameter's values, row-major in its <see cref="ParameterSlot.Shape"/>, as a writable view of <see cref="Values"/>.</summary>
    /// <exception cref="KeyNotFoundException">No parameter has that name (see <see cref="Slot"/>).</exception>
    public Span<T> Value(string name) => Values.AsSpan(Slot(name).Offset, Slot(name).Length);
    /// <summary>A parameter's gradient, as a writable view of <see cref="Gradients"/>.</summary>
    /// <exception cref="KeyNotFoundException">No parameter has that name (see <see cref="Slot"/>).</exception>
    public Span<T> Gradient(string name) => Gradients.AsSpan(Slot(name).Offset, Slot(name).Length);

    /// <summary>Sets every gradient to 0 (<c>optimizer.zero_grad()</c>), before the backward pass of a new step. Of the word
    /// embeddings it clears only the rows the backward passes since the last clear wrote, the only ones that can be nonzero.</summary>
    public void ZeroGradients() => ClearGradients();

    /// <summary>
    /// Runs the model on a batch and returns its loss, as transformers' forward with labels does, keeping the
    /// activations for <see cref="Backward"/>. <paramref name="training"/> is PyTorch's train mode: dropout on, with
    /// the config's probabilities; off, gradients are still available (eval mode).
    /// </summary>
    public TrainingLoss Forward(TrainingBatch batch, bool training = true)
    {
        ArgumentNullException.ThrowIfNull(batch);
        _encoder.Check(batch.Inputs);
        // Backward needs this forward to have finished: one that threw leaves no batch behind.
        _batch = null;
        _training = training;
        _pass.Start(batch.Inputs, training ? Config.HiddenDropoutProb : 0, training ? Config.AttentionProbsDropoutProb : 0, Random, PaddingUnread(batch));
        _encoder.Forward(_weights, _pass);
        _hidden = _pass.Hidden;
        if (_pass.Compact)
        {
            // The heads read the padded layout [b·s, h]: the real rows in place, the padding's 0 (no loss reads them).
            int h = Config.HiddenSize;
            _hidden = Ensure(ref _paddedHidden, _pass.PaddedRows * h);
            Array.Clear(_hidden, 0, _pass.PaddedRows * h);
            for (int r = 0; r < _pass.Rows; r++) _pass.Hidden.AsSpan(r * h, h).CopyTo(_hidden.AsSpan(_pass.Token(r) * h, h));
        }
        var loss = HeadForward(batch);
        _batch = batch;
        return loss;
    }

    /// <summary>Whether the encoder may skip the padding's rows when nothing reads them (default); off runs every row,
    /// as inference does (tests compare the two).</summary>
    internal bool SkipsPadding { get; set; } = true;

    /// <summary>The rows the encoder ran over in the last forward (b · s, or the real tokens when it skipped the padding).</summary>
    internal int EncoderRows => _pass.Rows;

    // The last hidden state as the heads read it, [b·s, h]; for a compact pass, its rows spread into this buffer.
    private T[] _hidden = [], _paddedHidden = [], _paddedDHidden = [];

    /// <summary>Whether nothing reads the padding's outputs, so the encoder may run over the real tokens alone
    /// (<see cref="EncoderPass{T}.Compact"/>): the heads that read the pooled first token, and masked LM when no label
    /// sits on padding. Not QA (its softmax runs over every position, padding included, as transformers computes it)
    /// nor token classification (its <see cref="Logits"/> hold every position's, the padding's too, as inference's do).</summary>
    private bool PaddingUnread(TrainingBatch batch)
    {
        if (!SkipsPadding || batch.Inputs.AttentionMask is not { } mask || (_layout.Pooler is null && _layout.MaskedLm is null)) return false;
        if (_layout.MaskedLm is null || batch.Labels is not { } labels || labels.Length != mask.Length) return true;
        for (int t = 0; t < mask.Length; t++)
            if (mask[t] == 0 && labels[t] != -100) return false;
        return true;
    }

    /// <summary>
    /// Adds the gradient of <paramref name="lossScale"/> × the last forward's loss to <see cref="Gradients"/>
    /// (call <see cref="ZeroGradients"/> first unless accumulating over micro-batches).
    /// </summary>
    public void Backward(double lossScale = 1)
    {
        if (_batch is null) throw new InvalidOperationException("Backward needs a Forward first.");
        var dHidden = _pass.Gradients!.DHidden;
        int h = Config.HiddenSize;
        if (!_pass.Compact)
        {
            Array.Clear(dHidden, 0, _pass.Rows * h);
            HeadBackward(lossScale, dHidden);
        }
        else
        {
            var dPadded = Ensure(ref _paddedDHidden, _pass.PaddedRows * h);
            Array.Clear(dPadded, 0, _pass.PaddedRows * h);
            HeadBackward(lossScale, dPadded);
            for (int r = 0; r < _pass.Rows; r++) dPadded.AsSpan(_pass.Token(r) * h, h).CopyTo(dHidden.AsSpan(r * h, h));
        }
        _encoder.Backward(_weights, _gradients, _pass, dHidden);
        NoteWordRows(_batch.Inputs.InputIds);
    }
}
