using System.Buffers;
using System.Collections.Concurrent;
using System.Numerics.Tensors;
using NBert.IO;
using NBert.Tensors;
using NBert.Schema;

namespace NBert.Modeling;

/// <summary>
/// What every BERT architecture shares (transformers' <c>BertPreTrainedModel</c>): config, parameters
/// by transformers name, loading, random initialisation, saving, and the body's forward pass
/// (embeddings, encoder layers, pooler). The heads are the subclasses named as in transformers.
/// </summary>
public abstract class BertPreTrainedModel : IDisposable
{
    /// <summary>The model's config (config.json).</summary>
    public BertConfig Config { get; }
    /// <summary>Which transformers class this model is.</summary>
    public BertArchitecture Architecture { get; }
    /// <summary>Parameters by transformers name, without the <c>bert.</c> prefix of head models.</summary>
    public IReadOnlyDictionary<string, FloatTensor> Parameters { get; }
    /// <summary>What loading did; null for a model initialised in code.</summary>
    public LoadReport? LoadReport { get; init; }
    /// <summary>Whether the model has a pooling layer (<c>pooler.dense</c>): the heads that use it always do; a
    /// <see cref="BertModel"/> does unless its checkpoint has no pooler weights (transformers'
    /// <c>add_pooling_layer=False</c>, as sentence-transformers' models and many ONNX exports are saved). Without one,
    /// <see cref="ModelOutput.PoolerOutput"/> is null and <see cref="SavePretrained(string)"/> writes no pooler.</summary>
    public bool HasPoolingLayer { get; }

    // Derived from the parameters on first use, dropped by WeightsChanged: the encoder layers, and the
    // other linear weights (pooler, heads) packed for the GEMM.
    private Layer[]? _layers;
    private readonly ConcurrentDictionary<string, PackedWeight> _packed = new(StringComparer.Ordinal);

    private protected BertPreTrainedModel(BertConfig config, BertArchitecture architecture, IReadOnlyDictionary<string, FloatTensor> parameters)
    {
        config.Validate();
        Config = config;
        Architecture = architecture;
        Parameters = parameters;
        HasPoolingLayer = BertArchitectures.HasPooler(architecture)
            && (architecture != BertArchitecture.BertModel || parameters.ContainsKey("pooler.dense.weight") || parameters.ContainsKey("pooler.dense.bias"));
        foreach (var spec in Specs)
            if (!parameters.TryGetValue(spec.Name, out var t) || !t.Shape.SequenceEqual(spec.Shape))
                throw new ArgumentException($"Parameter '{spec.Name}' is missing or not of shape [{string.Join(", ", spec.Shape)}].");
    }

    private protected FloatTensor P(string name) => Parameters[name];

    /// <summary>This model's parameters, in transformers' order (without the pooler when it has none).</summary>
    private List<ParameterSpec> Specs => BertArchitectures.Parameters(Config, Architecture, HasPoolingLayer || Architecture != BertArchitecture.BertModel);

    /// <summary>Call after changing parameter values: drops what was derived from them (packed weights).</summary>
    public void WeightsChanged()
    {
        _layers = null;
        _packed.Clear();
    }

    private bool _disposed;

    /// <summary>Releases what the model derived from its weights for speed (packed copies of the weight matrices, about
    /// the size of the weights again); the model cannot run afterwards (<see cref="ObjectDisposedException"/>).</summary>
    public void Dispose()
    {
        _disposed = true;
        WeightsChanged();
        GC.SuppressFinalize(this);
    }

    // ---- loading and saving ----

    /// <summary>Loads a model (config.json plus weights) by directory or name (a built-in such as <c>minilm</c>, or a
    /// Hugging Face Hub id such as <c>bert-base-uncased</c>: see <see cref="Hub.ModelResolver"/>) as the class its
    /// config names, or as <paramref name="architecture"/>. Each head's class has a typed <c>FromPretrained</c> too.</summary>
    public static BertPreTrainedModel FromPretrained(string nameOrPath, BertArchitecture? architecture = null, int seed = 0) =>
        FromPretrained(nameOrPath, architecture, seed, configure: null);

    /// <summary>Loads a model with its config changed by <paramref name="configure"/> first (for example new labels for a
    /// classification head, which is then initialised as transformers initialises a missing head, with a warning).</summary>
    public static BertPreTrainedModel FromPretrained(string nameOrPath, BertArchitecture? architecture, int seed, Func<BertConfig, BertConfig>? configure)
    {
        string directory = Hub.ModelResolver.Resolve(nameOrPath);
        string configPath = Path.Combine(directory, "config.json");
        var config = BertConfig.Load(configPath);
        if (configure is not null) config = configure(config);
        BertArchitecture arch;
        try
        {
            arch = architecture ?? BertArchitectures.FromConfig(config);
            config.Validate();
            BertArchitectures.EnsureFitsInMemory(config, arch);
        }
        catch (NBertException e)
        {
            throw new NBertException($"{configPath}: {e.Message}", e);
        }
        using var source = Checkpoint.Open(directory);
        try
        {
            var (parameters, report) = BertWeights.Load(source, config, arch, seed);
            foreach (var warning in report.Warnings) NBertWarnings.Raise($"{directory}: {warning}");
            return Create(config, arch, parameters, report);
        }
        catch (NBertException e) when (!e.Message.StartsWith(directory, StringComparison.Ordinal))
        {
            // The checkpoint does not fit the config: name the model directory.
            throw new NBertException($"{directory}: {e.Message}", e);
        }
    }

    /// <summary>A randomly initialised model, with transformers' scheme, reproducible for a seed.</summary>
    public static BertPreTrainedModel FromConfig(BertConfig config, BertArchitecture architecture, int seed = 0) =>
        Create(config, architecture, BertWeights.Initialize(config, architecture, seed), null);

    internal static BertPreTrainedModel Create(BertConfig config, BertArchitecture arch, Dictionary<string, FloatTensor> p, LoadReport? report) => arch switch
    {
        BertArchitecture.BertModel => new BertModel(config, p) { LoadReport = report },
        BertArchitecture.BertForPreTraining => new BertForPreTraining(config, p) { LoadReport = report },
        BertArchitecture.BertForMaskedLM => new BertForMaskedLM(config, p) { LoadReport = report },
        BertArchitecture.BertForNextSentencePrediction => new BertForNextSentencePrediction(config, p) { LoadReport = report },
        BertArchitecture.BertForSequenceClassification => new BertForSequenceClassification(config, p) { LoadReport = report },
        BertArchitecture.BertForTokenClassification => new BertForTokenClassification(config, p) { LoadReport = report },
        _ => new BertForQuestionAnswering(config, p) { LoadReport = report },
    };

    /// <summary>
    /// This model as <paramref name="architecture"/> (with its config changed by <paramref name="configure"/>): every
    /// parameter of the same name and shape is kept (the encoder, the pooler, a head that fits), the others are
    /// initialised as transformers initialises a head a checkpoint lacks, with the warning. What loading a checkpoint of
    /// one head as another does, for a model already in memory. The parameters are copies: the two models are independent.
    /// </summary>
    public BertPreTrainedModel WithArchitecture(BertArchitecture architecture, Func<BertConfig, BertConfig>? configure = null, int seed = 0)
    {
        var config = configure is null ? Config : configure(Config);
        // A BertModel keeps having no pooler rather than gaining a random one; the heads that use it get one.
        var parameters = BertWeights.Initialize(config, architecture, seed,
            addPoolingLayer: architecture != BertArchitecture.BertModel || Parameters.ContainsKey("pooler.dense.weight"));
        var initialized = new List<string>();
        foreach (var (name, fresh) in parameters)
        {
            if (Parameters.TryGetValue(name, out var kept) && kept.Shape.SequenceEqual(fresh.Shape)) kept.Data.CopyTo(fresh.Data, 0);
            else initialized.Add(name);
        }
        var unused = Parameters.Keys.Where(k => !parameters.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
        var report = new LoadReport(initialized, unused, []);
        foreach (var warning in report.Warnings) NBertWarnings.Raise(warning);
        return Create(config, architecture, parameters, report);
    }

    /// <summary>Writes config.json and model.safetensors as transformers saves them (no pooler for a model without a
    /// pooling layer, which then loads back without one), as one unit: both are
    /// written to temporary names and renamed only when both succeeded, and a directory this creates is
    /// removed again if writing fails.</summary>
    public void SavePretrained(string directory) => SavePretrained(directory, tokenizer: null);

    /// <summary>Writes the model and, when given, <paramref name="tokenizer"/>'s files, as one unit: everything a later
    /// <see cref="FromPretrained(string, BertArchitecture?, int)"/> and a pipeline's <c>FromPretrained</c> need.</summary>
    public void SavePretrained(string directory, Tokenization.BertTokenizer? tokenizer)
    {
        using var files = new StagedFiles(directory);
        tokenizer?.SavePretrained(files);
        SavePretrained(files);
        files.Commit();
    }

    /// <summary>Stages model.safetensors, then config.json, into <paramref name="files"/>; the caller may add
    /// more files (a vocabulary) before committing them together.</summary>
    public void SavePretrained(StagedFiles files)
    {
        Checkpoint.StageModel(files, Config, Architecture, Specs, Parameters);
    }

    // ---- outputs that are not numbers ----

    /// <summary>The parameters holding NaN or infinity, with how many such values each holds (none for a sound model).</summary>
    public IReadOnlyList<NonFiniteTensor> NonFiniteParameters() =>
        Parameters.Select(p => new NonFiniteTensor(p.Key, BertWeights.CountNonFinite(p.Value.Data), p.Value.Length))
            .Where(t => t.Count > 0).OrderBy(t => t.Name, StringComparer.Ordinal).ToList();

    /// <summary>Throws an <see cref="NBertException"/> that names the cause when <paramref name="outputs"/> (values this
    /// model computed) hold NaN or infinity: a number that is not one must never pass for an answer.</summary>
    public void EnsureFinite(ReadOnlySpan<float> outputs, string what = "outputs")
    {
        if (TensorPrimitives.IsFiniteAll(outputs)) return;
        throw new NBertException(NotFiniteMessage(what, NonFiniteParameters()));
    }

    /// <summary>Why a model's <paramref name="what"/> are NaN or infinite, given the weights that are.</summary>
    internal static string NotFiniteMessage(string what, IReadOnlyList<NonFiniteTensor> nonFinite) =>
        nonFinite.Count > 0
            ? $"The model's {what} are not finite (NaN or infinity): its weights hold {nonFinite.Sum(n => n.Count):N0} non-finite values, in " +
              $"{string.Join(", ", nonFinite.Take(5).Select(n => n.Name))}{(nonFinite.Count > 5 ? $" and {nonFinite.Count - 5} more" : "")}. The checkpoint is damaged or its training diverged."
            : $"The model's {what} are not finite (NaN or infinity) although its weights are: check config.json (layer_norm_eps, hidden_act) and the inputs.";

    // ---- forward ----

    /// <summary>Runs the model on a batch (safe to call from several threads at once). Sequences longer than
    /// max_position_embeddings are refused. Each head's class has a <c>Forward</c> that returns its own output type.</summary>
    public ModelOutput Forward(ModelInputs inputs, bool outputHiddenStates = false, bool outputAttentions = false) =>
        Run(inputs, outputHiddenStates, outputAttentions);

    /// <summary>Checks, then the head's forward pass: what every <c>Forward</c> calls.</summary>
    private protected ModelOutput Run(ModelInputs inputs, bool outputHiddenStates, bool outputAttentions)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ObjectDisposedException.ThrowIf(_disposed, this);
        return ForwardCore(inputs, outputHiddenStates, outputAttentions);
    }

    /// <summary>The head's forward pass, returning its own output type.</summary>
    private protected abstract ModelOutput ForwardCore(ModelInputs inputs, bool outputHiddenStates, bool outputAttentions);

    /// <summary>One encoder layer's weights, resolved once: packed matrices and the vectors beside them.</summary>
    private sealed class Layer
    {
        public required PackedWeight Qkv, AttentionOutput, Intermediate, Output;
        public required float[] QkvBias, AttentionOutputBias, AttentionNormWeight, AttentionNormBias,
            IntermediateBias, OutputBias, OutputNormWeight, OutputNormBias;
    }

    // Packed once even when several threads make the first forward pass together (the losers' work is dropped).
    private Layer[] Layers => Volatile.Read(ref _layers) ?? (Interlocked.CompareExchange(ref _layers, PackLayers(), null) ?? _layers!);

    private Layer[] PackLayers() => Enumerable.Range(0, Config.NumHiddenLayers).Select(i =>
    {
        string l = $"encoder.layer.{i}";
        int h = Config.HiddenSize;
        // Query, key and value as one [3h, h] weight: one GEMM, and heads read their slices by stride.
        var qkv = new float[3 * h * h];
        var qkvBias = new float[3 * h];
        string[] parts = ["query", "key", "value"];
        for (int p = 0; p < 3; p++)
        {
            P($"{l}.attention.self.{parts[p]}.weight").Data.CopyTo(qkv, p * h * h);
            P($"{l}.attention.self.{parts[p]}.bias").Data.CopyTo(qkvBias, p * h);
        }
        return new Layer
        {
            Qkv = new PackedWeight(qkv, 3 * h, h),
            QkvBias = qkvBias,
            AttentionOutput = Pack($"{l}.attention.output.dense.weight"),
            AttentionOutputBias = P($"{l}.attention.output.dense.bias").Data,
            AttentionNormWeight = P($"{l}.attention.output.LayerNorm.weight").Data,
            AttentionNormBias = P($"{l}.attention.output.LayerNorm.bias").Data,
            Intermediate = Pack($"{l}.intermediate.dense.weight"),
            IntermediateBias = P($"{l}.intermediate.dense.bias").Data,
            Output = Pack($"{l}.output.dense.weight"),
            OutputBias = P($"{l}.output.dense.bias").Data,
            OutputNormWeight = P($"{l}.output.LayerNorm.weight").Data,
            OutputNormBias = P($"{l}.output.LayerNorm.bias").Data,
        };
    }).ToArray();

    private PackedWeight Pack(string name)
    {
        var t = P(name);
        return new PackedWeight(t.Data, t.Shape[0], t.Shape[1]);
    }

    /// <summary>input [rows, in] · weightᵀ + bias as a new [rows, out] array, the weight packed once.</summary>
    private protected float[] Dense(ReadOnlySpan<float> input, int rows, string weight, string bias)
    {
        var w = _packed.GetOrAdd(weight, Pack);
        // Every head's output passes here: the masked-LM logits (batch x sequence x vocab) are the largest.
        EnsureArray($"the output of {weight} (rows {rows} x {w.N})", (long)rows * w.N);
        var y = new float[rows * w.N];
        Linear(rows, input, w, P(bias).Data, y);
        return y;
    }

    /// <summary>y[m, out] = x[m, in] · Wᵀ + b (the bias added inside the GEMM).</summary>
    private static void Linear(int m, ReadOnlySpan<float> x, PackedWeight w, ReadOnlySpan<float> bias, Span<float> y) =>
        Sgemm.Multiply(m, x, w.K, w, y, w.N, bias: bias);

    /// <summary>The config's hidden_act, in place.</summary>
    private protected void Activate(Span<float> x) => Activations.Forward<float>(Config.Activation, x, x);

    /// <summary>
    /// The body: embeddings, every encoder layer, and the pooler when <paramref name="withPooler"/>.
    /// Scratch buffers come from the shared array pool, so a steady stream of calls allocates only outputs.
    /// </summary>
    private protected ModelOutput RunBody(ModelInputs inputs, bool withPooler, bool outputHiddenStates, bool outputAttentions)
    {
        var c = Config;
        int b = inputs.Batch, s = inputs.SequenceLength, h = c.HiddenSize, heads = c.NumAttentionHeads, d = c.HeadSize;
        if (s > c.MaxPositionEmbeddings)
            throw new ArgumentException($"Sequence length {s} exceeds max_position_embeddings {c.MaxPositionEmbeddings}: truncate the input.");
        // Every buffer below is one array indexed by int: refuse a batch that would overflow one, before allocating.
        EnsureArray("the hidden states (batch x sequence x hidden_size)", (long)b * s * h);
        EnsureArray("the query, key and value (batch x sequence x 3 x hidden_size)", (long)b * s * 3 * h);
        EnsureArray("the intermediate activations (batch x sequence x intermediate_size)", (long)b * s * c.IntermediateSize);
        EnsureArray("one head's attention scores (sequence x sequence)", (long)s * s);
        if (outputAttentions)
            EnsureArray($"the attentions of a layer (batch {b} x heads {heads} x sequence {s} x sequence {s})", (long)b * heads * s * s);
        int m = b * s;
        var x = new float[m * h];
        Embed(inputs, x);
        var hiddenStates = outputHiddenStates ? new List<FloatTensor> { new((float[])x.Clone(), b, s, h) } : null;
        var attentions = outputAttentions ? new List<FloatTensor>() : null;

        var pool = ArrayPool<float>.Shared;
        float[] qkv = pool.Rent(m * 3 * h), context = pool.Rent(m * h), attended = pool.Rent(m * h), inner = pool.Rent(m * c.IntermediateSize);
        try
        {
            float eps = (float)c.LayerNormEps;
            var layers = Layers; // one set for the whole pass, even if the weights change meanwhile
            for (int li = 0; li < c.NumHiddenLayers; li++)
            {
                var layer = layers[li];
                Linear(m, x, layer.Qkv, layer.QkvBias, qkv);
                var probs = outputAttentions ? new float[b * heads * s * s] : null;
                SelfAttention(qkv, context, inputs.AttentionMask, b, s, heads, d, probs);
                if (probs is not null) attentions!.Add(new FloatTensor(probs, b, heads, s, s));

                Linear(m, context, layer.AttentionOutput, layer.AttentionOutputBias, attended);
                ResidualLayerNorm(attended, x, m, h, layer.AttentionNormWeight, layer.AttentionNormBias, eps);

                int width = c.IntermediateSize;
                Linear(m, attended, layer.Intermediate, layer.IntermediateBias, inner);
                Threading.ForRows(m, (r0, r1) => Activate(inner.AsSpan(r0 * width, (r1 - r0) * width)));
                Linear(m, inner, layer.Output, layer.OutputBias, x);
                ResidualLayerNorm(x, attended, m, h, layer.OutputNormWeight, layer.OutputNormBias, eps);
                hiddenStates?.Add(new FloatTensor((float[])x.Clone(), b, s, h));
            }
        }
        finally
        {
            pool.Return(qkv);
            pool.Return(context);
            pool.Return(attended);
            pool.Return(inner);
        }

        FloatTensor? pooled = null;
        if (withPooler)
        {
            // The hidden state of each sequence's first token ([CLS]) through dense + tanh.
            var first = new float[b * h];
            for (int i = 0; i < b; i++) x.AsSpan(i * s * h, h).CopyTo(first.AsSpan(i * h));
            var y = Dense(first, b, "pooler.dense.weight", "pooler.dense.bias");
            Kernels.Tanh(y);
            pooled = new FloatTensor(y, b, h);
        }
        return new ModelOutput
        {
            LastHiddenState = new FloatTensor(x, b, s, h),
            PoolerOutput = pooled,
            HiddenStates = hiddenStates,
            Attentions = attentions,
        };
    }

    /// <summary>Refuses a batch whose <paramref name="what"/> would need more values than one array holds.</summary>
    private protected static void EnsureArray(string what, long count)
    {
        if (count > Array.MaxLength)
            throw new ArgumentException($"The batch is too large: {what} would be {count:N0} values, more than one array holds ({Array.MaxLength:N0}). " +
                "Run fewer or shorter sequences at a time.");
    }

    /// <summary>
    /// Refuses a tokenizer that can give ids this model cannot embed: a tokenizer and a model that do not
    /// belong together, which would otherwise fail only when such an id comes up. Call it where a tokenizer
    /// and a model are paired.
    /// </summary>
    public void EnsureTokenizerFits(NBert.Tokenization.BertTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (tokenizer.VocabSize <= Config.VocabSize) return;
        int example = new[] { tokenizer.ClsToken, tokenizer.SepToken, tokenizer.MaskToken, tokenizer.UnkToken, tokenizer.PadToken }
            .Select(tokenizer.TokenToId).OfType<int>().Where(id => id >= Config.VocabSize).DefaultIfEmpty(Config.VocabSize).Min();
        string token = tokenizer.IdToToken(example) is { } t ? $" ({NBertException.Quote(t)})" : "";
        throw new NBertException($"The tokenizer has {tokenizer.VocabSize:N0} ids but the model's vocab_size is {Config.VocabSize:N0}: " +
            $"they do not belong together, and ids from {Config.VocabSize:N0} up, such as {example}{token}, cannot be embedded.");
    }

    /// <summary>y = LayerNorm(y + residual), rows in parallel.</summary>
    private static void ResidualLayerNorm(float[] y, float[] residual, int m, int h, float[] weight, float[] bias, float eps) =>
        Threading.ForRows(m, (r0, r1) =>
        {
            var rows = y.AsSpan(r0 * h, (r1 - r0) * h);
            TensorPrimitives.Add(rows, residual.AsSpan(r0 * h, (r1 - r0) * h), rows);
            Kernels.LayerNorm(rows, weight, bias, eps);
        });

    /// <summary>word + position + token type embeddings, then LayerNorm.</summary>
    private void Embed(ModelInputs inputs, float[] x)
    {
        var c = Config;
        int s = inputs.SequenceLength, h = c.HiddenSize;
        var ids = inputs.InputIds;
        for (int t = 0; t < ids.Length; t++)
            if ((uint)ids[t] >= (uint)c.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(inputs), $"Input id {ids[t]} (sequence {t / s}, position {t % s}) is outside the model's " +
                    $"vocabulary 0..{c.VocabSize - 1} (vocab_size {c.VocabSize}): the ids come from a tokenizer with a larger vocabulary than the " +
                    "model's, or from another model's tokenizer.");
        Kernels.Gather(P("embeddings.word_embeddings.weight").Data, h, ids, x, "input id");
        var position = P("embeddings.position_embeddings.weight").Data;
        var types = P("embeddings.token_type_embeddings.weight").Data;
        for (int t = 0; t < inputs.InputIds.Length; t++)
        {
            var row = x.AsSpan(t * h, h);
            TensorPrimitives.Add(row, position.AsSpan(t % s * h, h), row);
            int type = inputs.TokenTypeIds?[t] ?? 0;
            if ((uint)type >= (uint)c.TypeVocabSize)
                throw new ArgumentOutOfRangeException(nameof(inputs), $"Token type id {type} is outside 0..{c.TypeVocabSize - 1}.");
            TensorPrimitives.Add(row, types.AsSpan(type * h, h), row);
        }
        Kernels.LayerNorm(x, P("embeddings.LayerNorm.weight").Data, P("embeddings.LayerNorm.bias").Data, (float)c.LayerNormEps);
    }

    /// <summary>
    /// Multi-head self-attention over the fused [m, 3h] query/key/value buffer: for each (sequence, head),
    /// in parallel, softmax(Q Kᵀ / √d + mask) V into <paramref name="context"/> [m, h].
    /// A right-padded sequence (mask 1…1 0…0) attends over its first n keys only: the scores, the softmax and
    /// the product with V run over n, not the padded length. The padded keys' weights are exactly 0 either way
    /// (exp underflows), but a softmax sum or a product over more (zero) terms groups its additions differently,
    /// so skipping them is what makes a sequence's output the same bits alone or padded in any batch (and is
    /// less work). Other masks add the mask's large negative value to the scores, as transformers does.
    /// </summary>
    private static void SelfAttention(float[] qkv, float[] context, int[]? mask, int batch, int s, int heads, int d, float[]? probs)
    {
        int h = heads * d, ld = 3 * h;
        float scale = 1f / MathF.Sqrt(d);
        var keys = new int[batch];
        for (int bi = 0; bi < batch; bi++) keys[bi] = mask is null ? s : ValidPrefix(mask.AsSpan(bi * s, s));
        WorkerPool.Shared.Run(batch * heads, Threading.MaxThreads, job =>
        {
            int bi = job / heads, hi = job % heads;
            var scores = ArrayPool<float>.Shared.Rent(s * s);
            try
            {
                var sc = scores.AsSpan(0, s * s);
                int row0 = bi * s * ld;
                int n = keys[bi];
                if (n > 0)
                {
                    Sgemm.MultiplySerial(s, n, d, qkv.AsSpan(row0 + hi * d), ld, qkv.AsSpan(row0 + h + hi * d), ld, transB: true, sc, s);
                    for (int i = 0; i < s; i++)
                    {
                        var row = sc.Slice(i * s, n);
                        TensorPrimitives.Multiply(row, scale, row);
                        Kernels.Softmax(row);
                        sc.Slice(i * s + n, s - n).Clear();
                    }
                }
                else
                {
                    n = s;
                    Sgemm.MultiplySerial(s, s, d, qkv.AsSpan(row0 + hi * d), ld, qkv.AsSpan(row0 + h + hi * d), ld, transB: true, sc, s);
                    TensorPrimitives.Multiply(sc, scale, sc);
                    Kernels.MaskedSoftmax(sc, s, mask!.AsSpan(bi * s, s));
                }
                if (probs is not null) sc.CopyTo(probs.AsSpan(job * s * s));
                Sgemm.MultiplySerial(s, d, n, sc, s, qkv.AsSpan(row0 + 2 * h + hi * d), ld, transB: false,
                    context.AsSpan(bi * s * h + hi * d), h);
            }
            finally
            {
                ArrayPool<float>.Shared.Return(scores);
            }
        });
    }

    /// <summary>n when the mask is n ≥ 1 ones followed only by zeros (right padding, or none); 0 otherwise.</summary>
    private static int ValidPrefix(ReadOnlySpan<int> mask)
    {
        int n = mask.IndexOf(0);
        if (n < 0) return mask.Length;
        return n > 0 && mask[n..].IndexOfAnyExcept(0) < 0 ? n : 0;
    }
}
