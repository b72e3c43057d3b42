using System.Numerics;
using NBert.Schema;
using NBert.Tensors;

namespace NBert.Modeling;

/// <summary>One encoder layer's buffers of a pass: the activations backward needs when kept, scratch otherwise.</summary>
internal sealed class LayerBuffers<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>[m, 3h] query, key, value; [m, h] context, residuals, attended; [m, I] intermediate before and after the
    /// activation (after it: one buffer shared by every layer, also in kept passes).</summary>
    public required T[] Qkv, Context, Residual1, Attended, Inner, Activated, Residual2;
    /// <summary>The layer's output [m, h] (kept passes only: scratch passes write into the embeddings' buffer).</summary>
    public T[] Output = [];
    /// <summary>Attention probabilities [b·heads, s, s] (before dropout: backward rebuilds them after it from
    /// <see cref="KeepProbs"/>); LayerNorm means and 1/std (kept passes only).</summary>
    public T[]? Probs, Mean1, Rstd1, Mean2, Rstd2;
    /// <summary>Dropout masks (kept passes only).</summary>
    public bool[]? KeepProbs, Keep1, Keep2;
}

/// <summary>Gradient scratch of a kept pass, reused from step to step.</summary>
internal sealed class GradientBuffers<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public required T[] DHidden, DAttended, DResidual, DInner, DPreActivation, DContext, DQkv;
    /// <summary>d(the embeddings before ELECTRA's projection) [m, embedding_size]; empty without a projection.</summary>
    public T[] DEmbedding = [];
}

/// <summary>
/// The data of one pass through <see cref="Encoder{T}"/>: the batch, dropout, and the buffers. A kept pass (training)
/// has buffers per layer (the activation's output one buffer for all), sized for the largest batch seen and reused, and
/// may be <see cref="Compact"/> (the real tokens' rows only); a scratch pass (inference) has one set rented
/// from <see cref="ScratchPool{T}"/>, used by every layer in turn and returned on <see cref="Dispose"/>, so a steady stream
/// of calls allocates only its outputs, any number of threads can run passes at once, and an idle process lets the
/// scratch of its largest batches go.
/// </summary>
internal sealed class EncoderPass<T> : IDisposable where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly BertConfig _config;
    private LayerBuffers<T>[] _layers = [];
    private readonly List<T[]> _rented = [];
    private int _rowCapacity, _probabilityCapacity;

    /// <summary>Whether each layer keeps its activations for the backward pass.</summary>
    public bool KeepsActivations { get; }
    public ModelInputs Inputs { get; private set; } = null!;
    public int Batch => Inputs.Batch;
    public int Sequence => Inputs.SequenceLength;
    /// <summary>The rows the layers run over: every token of the padded batch, or only the real ones when <see cref="Compact"/>.</summary>
    public int Rows => Compact ? _rowStarts[Batch] : Inputs.Batch * Inputs.SequenceLength;
    /// <summary>b · s, the padded batch's tokens (what dropout draws random numbers for, compact or not).</summary>
    public int PaddedRows => Inputs.Batch * Inputs.SequenceLength;

    /// <summary>
    /// Whether the rows are only the real tokens of a right-padded batch, sequence after sequence (training's choice,
    /// when nothing reads the padding's outputs): each linear layer, LayerNorm and activation then runs over Σ n_b rows
    /// instead of b · s (a batch of short reviews padded to its longest is about 2.6 x that), and attention over n_b
    /// queries. A real token's values do not depend on the padding's rows, and dropout draws each row's numbers at its
    /// padded place, so the real rows are the padded pass's; the weight gradients sum the same terms less the padding's
    /// zeros, in other groups.
    /// </summary>
    public bool Compact { get; private set; }
    private int[] _rowStarts = [], _tokens = [];

    /// <summary>A compact pass's input ids, one per row.</summary>
    public int[] RowIds { get; private set; } = [];

    /// <summary>The first row of sequence <paramref name="sequence"/>.</summary>
    public int RowStart(int sequence) => Compact ? _rowStarts[sequence] : sequence * Sequence;
    /// <summary>How many rows (queries) sequence <paramref name="sequence"/> has.</summary>
    public int Queries(int sequence) => Compact ? ValidKeys[sequence] : Sequence;
    /// <summary>Row <paramref name="row"/>'s token: its index into the padded batch (b · s).</summary>
    public int Token(int row) => Compact ? _tokens[row] : row;
    /// <summary>Per sequence, the n of a right-padded mask (its keys 0..n-1 are attended), or 0 for another mask.</summary>
    public int[] ValidKeys { get; private set; } = [];
    /// <summary>Each token's position id [b·s] (indexed by padded token, see <see cref="Token"/>) where the family counts
    /// them from the input ids (RoBERTa); null for 0..s-1.</summary>
    public int[]? PositionIds { get; private set; }

    /// <summary>The position id of token <paramref name="t"/> (an index into b·s).</summary>
    public int Position(int t) => PositionIds?[t] ?? t % Sequence;
    public double HiddenDropout { get; private set; }
    public double AttentionDropout { get; private set; }
    public DropoutRandom? Random { get; private set; }

    /// <summary>word + position + type [m, e] (e: <see cref="BertConfig.EmbeddingWidth"/>); the encoder's input [m, h], the
    /// embeddings after LayerNorm and dropout (a scratch pass's output too), projected from <see cref="EmbeddingNormed"/>
    /// when the family projects them (ELECTRA).</summary>
    public T[] EmbeddingSum = [], Embedded = [];
    /// <summary>ELECTRA's embeddings after LayerNorm and dropout, before <c>embeddings_project</c> [m, e]; empty otherwise.</summary>
    public T[] EmbeddingNormed = [];
    public T[]? Mean0, Rstd0;
    public bool[]? Keep0;
    /// <summary>The last hidden state [m, h] after <see cref="Encoder{T}.Forward"/>.</summary>
    public T[] Hidden = [];
    /// <summary>Gradient scratch (kept passes).</summary>
    public GradientBuffers<T>? Gradients;

    private EncoderPass(BertConfig config, bool keep)
    {
        _config = config;
        KeepsActivations = keep;
    }

    /// <summary>A pass that keeps every layer's activations; <see cref="Start"/> sizes it for each batch.</summary>
    public static EncoderPass<T> Kept(BertConfig config) => new(config, keep: true);

    /// <summary>An inference pass over <paramref name="inputs"/> with pooled scratch; its output, <see cref="Embedded"/> then
    /// <see cref="Hidden"/>, is a fresh array of exactly [m, h] the caller keeps, or with <paramref name="lendOutput"/>
    /// pooled scratch too (at least [m, h]), valid until the pass is disposed.</summary>
    public static EncoderPass<T> Scratch(BertConfig config, ModelInputs inputs, bool lendOutput = false)
    {
        var pass = new EncoderPass<T>(config, keep: false);
        pass.SetInputs(inputs, 0, 0, null);
        int m = pass.Rows, h = config.HiddenSize, inner = config.IntermediateSize, e = config.EmbeddingWidth;
        pass.EmbeddingSum = pass.Rent(m * e);
        if (config.ProjectsEmbeddings) pass.EmbeddingNormed = pass.Rent(m * e);
        pass.Embedded = lendOutput ? pass.Rent(m * h) : new T[m * h];
        var qkv = pass.Rent(m * 3 * h);
        var innerBuffer = pass.Rent(m * inner);
        pass._layers = [new LayerBuffers<T>
        {
            Qkv = qkv, Context = pass.Rent(m * h), Residual1 = pass.Rent(m * h), Attended = pass.Rent(m * h),
            Inner = innerBuffer, Activated = innerBuffer, Residual2 = pass.Rent(m * h),
        }];
        return pass;
    }

    /// <summary>Prepares a kept pass for a batch, growing its buffers when the batch is larger than any before (and
    /// allocating them again, as large as before, after <see cref="Release"/>).</summary>
    public void Start(ModelInputs inputs, double hiddenDropout, double attentionDropout, DropoutRandom? random, bool compact = false)
    {
        SetInputs(inputs, hiddenDropout, attentionDropout, random);
        SetCompact(compact);
        var c = _config;
        int m = Rows, probs = Batch * c.NumAttentionHeads * Sequence * Sequence;
        if (_layers.Length > 0 && m <= _rowCapacity && probs <= _probabilityCapacity) return;
        // A growth takes a quarter more than asked: a compact pass's rows are the batch's real tokens, which set a new
        // record now and then all through a run (about ln(steps) times), and each growth reallocates every buffer.
        bool grown = _layers.Length > 0;
        if (grown && m > _rowCapacity) m = Math.Max(m, _rowCapacity + _rowCapacity / 4);
        if (grown && probs > _probabilityCapacity) probs = Math.Max(probs, _probabilityCapacity + _probabilityCapacity / 4);
        m = Math.Max(m, _rowCapacity);
        probs = Math.Max(probs, _probabilityCapacity);
        // Let the old buffers go before allocating new ones, and collect them now: each growth would otherwise leave the
        // old set, hundreds of MB of large-object heap, committed beside the new one until a full collection happens to run.
        Release();
        (_rowCapacity, _probabilityCapacity) = (m, probs);
        if (grown) GC.Collect();
        int h = c.HiddenSize, inner = c.IntermediateSize, e = c.EmbeddingWidth;
        EmbeddingSum = new T[m * e];
        Embedded = new T[m * h];
        if (c.ProjectsEmbeddings) EmbeddingNormed = new T[m * e];
        (Mean0, Rstd0, Keep0) = (new T[m], new T[m], new bool[m * e]);
        // The activation's output is one buffer for all layers: backward computes it again from the layer's input to
        // it (the same bits), which costs one activation pass per layer and saves an [m, I] buffer per layer.
        var activated = new T[m * inner];
        _layers = Enumerable.Range(0, c.NumHiddenLayers).Select(_ => new LayerBuffers<T>
        {
            Qkv = new T[m * 3 * h], Context = new T[m * h], Residual1 = new T[m * h], Attended = new T[m * h],
            Inner = new T[m * inner], Activated = activated, Residual2 = new T[m * h], Output = new T[m * h],
            Probs = new T[probs], Mean1 = new T[m], Rstd1 = new T[m], Mean2 = new T[m], Rstd2 = new T[m],
            KeepProbs = new bool[probs], Keep1 = new bool[m * h], Keep2 = new bool[m * h],
        }).ToArray();
        Gradients = new GradientBuffers<T>
        {
            DHidden = new T[m * h], DAttended = new T[m * h], DResidual = new T[m * Math.Max(h, e)], DInner = new T[m * inner],
            DPreActivation = new T[m * inner], DContext = new T[m * h], DQkv = new T[m * 3 * h],
            DEmbedding = c.ProjectsEmbeddings ? new T[m * e] : [],
        };
    }

    /// <summary>Lets a kept pass's buffers go; the next <see cref="Start"/> allocates them again, as large as before (the
    /// largest batch so far). Hundreds of MB in training: let go while the model is evaluated, and when the run ends.</summary>
    public void Release()
    {
        _layers = [];
        Gradients = null;
        (EmbeddingSum, Embedded, EmbeddingNormed, Hidden, Mean0, Rstd0, Keep0) = ([], [], [], [], null, null, null);
    }

    /// <summary>Makes the pass <see cref="Compact"/> when asked and the batch is right-padded (every mask 1…1 0…0 with at
    /// least one 1) with some padding.</summary>
    private void SetCompact(bool compact)
    {
        Compact = false;
        var keys = ValidKeys;
        int s = Sequence;
        if (!compact || keys.Any(n => n == 0) || keys.Sum() == PaddedRows) return;
        var starts = new int[Batch + 1];
        for (int bi = 0; bi < Batch; bi++) starts[bi + 1] = starts[bi] + keys[bi];
        var tokens = new int[starts[Batch]];
        for (int bi = 0; bi < Batch; bi++)
            for (int t = 0; t < keys[bi]; t++) tokens[starts[bi] + t] = bi * s + t;
        (_rowStarts, _tokens, Compact) = (starts, tokens, true);
        RowIds = Array.ConvertAll(tokens, t => Inputs.InputIds[t]);
    }

    private void SetInputs(ModelInputs inputs, double hiddenDropout, double attentionDropout, DropoutRandom? random)
    {
        Inputs = inputs;
        (HiddenDropout, AttentionDropout, Random) = (hiddenDropout, attentionDropout, random);
        int s = inputs.SequenceLength;
        var keys = new int[inputs.Batch];
        for (int bi = 0; bi < keys.Length; bi++)
            keys[bi] = inputs.AttentionMask is null ? s : Encoder<T>.ValidPrefix(inputs.AttentionMask.AsSpan(bi * s, s));
        ValidKeys = keys;
        PositionIds = _config.PositionsFromPadding ? PaddingPositions(inputs.InputIds, s, _config.PadTokenId) : null;
    }

    /// <summary>transformers' <c>create_position_ids_from_input_ids</c>: cumsum(ids != pad) · (ids != pad) + pad, per sequence.</summary>
    internal static int[] PaddingPositions(int[] ids, int s, int pad)
    {
        var positions = new int[ids.Length];
        for (int row = 0; row < ids.Length; row += s)
            for (int t = row, count = 0; t < row + s; t++)
                positions[t] = ids[t] == pad ? pad : pad + ++count;
        return positions;
    }

    /// <summary>Layer <paramref name="index"/>'s buffers (a scratch pass has one set for all).</summary>
    public LayerBuffers<T> Layer(int index) => KeepsActivations ? _layers[index] : _layers[0];

    private T[] Rent(int length)
    {
        var a = ScratchPool<T>.Shared.Rent(length);
        _rented.Add(a);
        return a;
    }

    /// <summary>Returns a scratch pass's rented buffers to the pool.</summary>
    public void Dispose()
    {
        foreach (var a in _rented) ScratchPool<T>.Shared.Return(a);
        _rented.Clear();
    }
}
