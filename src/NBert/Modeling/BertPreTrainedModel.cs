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
    /// <summary>Parameters by transformers name, without the <c>bert.</c> prefix of head models. After
    /// <see cref="Quantize"/> to int8, without the weights of the layers it quantized (released to save memory). Their
    /// values may be changed in place (then call <see cref="WeightsChanged"/>): a model that shares its weights with other
    /// loads of the same files (<see cref="FromPretrained(Hub.ResolvedModel, BertArchitecture?, int, Func{BertConfig, BertConfig}?)"/>)
    /// copies them the first time this is read, and stops sharing them, so that no write reaches another model.</summary>
    public IReadOnlyDictionary<string, FloatTensor> Parameters
    {
        get
        {
            Unshare();
            return _parameters;
        }
    }

    /// <summary>The parameters as they are, shared with other loads or not: for reading only.</summary>
    internal IReadOnlyDictionary<string, FloatTensor> ParametersToRead => _parameters;
    /// <summary>How the model's linear layers run: float32 as loaded, or int8 after <see cref="Quantize"/>.</summary>
    public Quantization Quantization { get; private set; }
    /// <summary>What loading did; null for a model initialised in code.</summary>
    public LoadReport? LoadReport { get; init; }
    /// <summary>Whether the model has a pooling layer (<c>pooler.dense</c>): the heads that use it always do; a
    /// <see cref="BertModel"/> does unless its checkpoint has no pooler weights (transformers'
    /// <c>add_pooling_layer=False</c>, as sentence-transformers' models and many ONNX exports are saved). Without one,
    /// <see cref="ModelOutput.PoolerOutput"/> is null and <see cref="SavePretrained(string)"/> writes no pooler.</summary>
    public bool HasPoolingLayer { get; }

    // The one forward pass, over this model's layout; the weights packed for it on first use, dropped by WeightsChanged.
    private readonly ParameterLayout _layout;
    private readonly Encoder<float> _encoder;
    private Weights<float>? _weights;
    private IReadOnlyDictionary<string, FloatTensor> _parameters;
    // The loaded weights this model shares with other loads of the same files (null once it has its own), and whether
    // _parameters' arrays are that entry's: they must not be written then.
    private SharedWeights? _shared;
    private bool _arraysShared;
    private readonly object _unsharing = new();

    private protected BertPreTrainedModel(BertConfig config, BertArchitecture architecture, IReadOnlyDictionary<string, FloatTensor> parameters)
    {
        config.Validate();
        Config = config;
        Architecture = architecture;
        _parameters = parameters;
        bool addPoolingLayer = BertArchitectures.AddPoolingLayer(architecture, parameters.Keys);
        HasPoolingLayer = BertArchitectures.HasPooler(config, architecture) && addPoolingLayer;
        _layout = new ParameterLayout(config, architecture, addPoolingLayer);
        foreach (var slot in _layout.Slots)
            if (!parameters.TryGetValue(slot.Name, out var t) || !t.Shape.SequenceEqual(slot.Shape))
                throw new ArgumentException($"Parameter '{slot.Name}' is missing or not of shape [{string.Join(", ", slot.Shape)}].");
        _encoder = new Encoder<float>(_layout);
    }

    /// <summary>This model's parameters in the one layout (without the pooler when it has none), grouped by the step that uses them.</summary>
    internal ParameterLayout Layout => _layout;

    /// <summary>This model's parameters, in transformers' order (without the pooler when it has none).</summary>
    private List<ParameterSpec> Specs => BertArchitectures.Parameters(Config, Architecture, BertArchitectures.AddPoolingLayer(Architecture, _parameters.Keys));

    /// <summary>The weights this model shares with other loads, while it does (for tests).</summary>
    internal SharedWeights? Shared => _shared;

    /// <summary>Gives the model its own copy of the parameters it shares, and lets go of the shared ones.</summary>
    private void Unshare()
    {
        if (!_arraysShared) return;
        lock (_unsharing)
        {
            if (!_arraysShared) return;
            _parameters = _parameters.ToDictionary(p => p.Key, p => new FloatTensor((float[])p.Value.Data.Clone(), p.Value.Shape), StringComparer.Ordinal);
            // An int8 model keeps its quantized layers, which read the shared arrays only; a float32 one packs its copy.
            if (Quantization == Quantization.None) _weights = null;
            _arraysShared = false;
            _shared?.Release();
            _shared = null;
        }
    }

    /// <summary>Call after changing parameter values: drops what was derived from them (packed weights).</summary>
    /// <exception cref="InvalidOperationException">The model is quantized: its float32 weights were released.</exception>
    public void WeightsChanged()
    {
        EnsureNotQuantized("have its weights changed");
        _weights = null;
    }

    /// <summary>
    /// Converts the model in place for int8 inference (<see cref="Quantization.Int8"/>), as ONNX Runtime's dynamic
    /// quantization does: the weights of the encoder's linear layers, the pooler and the masked-LM transform are quantized
    /// now to int8 per output channel, and the activations entering them per row (token) at run time; embeddings,
    /// LayerNorm, softmax, GELU, attention's products and the task heads' output layers stay float32. The quantized
    /// layers' float32 weights are released (<see cref="Parameters"/> no longer has them), so the model then runs only
    /// forward: it cannot be saved, trained, converted or quantized back. <see cref="Quantization.None"/> leaves a
    /// float32 model as it is.
    /// </summary>
    /// <exception cref="InvalidOperationException">The model is already int8 and <paramref name="quantization"/> asks for float32.</exception>
    public void Quantize(Quantization quantization)
    {
        if (quantization == Quantization) return;
        if (quantization != Quantization.Int8)
        {
            if (!Enum.IsDefined(quantization)) throw new ArgumentOutOfRangeException(nameof(quantization), $"No quantization {quantization}.");
            throw new InvalidOperationException("An int8 model cannot go back to float32: its float32 weights were released. Load it again.");
        }
        ObjectDisposedException.ThrowIf(_disposed, this);
        var weights = new Int8Weights(_parameters, _layout);
        _weights = weights;
        _parameters = weights.Kept; // still the shared arrays, if they were: the model keeps reading them only
        Quantization = quantization;
    }

    /// <summary>Refuses what needs the float32 weights that quantizing released.</summary>
    private protected void EnsureNotQuantized(string what)
    {
        if (Quantization != Quantization.None)
            throw new InvalidOperationException($"A {Quantization} model cannot {what}: its float32 weights were released when it was quantized. Load it again.");
    }

    private bool _disposed;

    /// <summary>Releases what the model derived from its weights for speed (packed copies of the weight matrices, about
    /// the size of the weights again); the model cannot run afterwards (<see cref="ObjectDisposedException"/>).</summary>
    public void Dispose()
    {
        _disposed = true;
        _weights = null;
        lock (_unsharing)
        {
            _shared?.Release();
            _shared = null;
        }
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
    public static BertPreTrainedModel FromPretrained(string nameOrPath, BertArchitecture? architecture, int seed, Func<BertConfig, BertConfig>? configure) =>
        FromPretrained(Hub.ModelResolver.ResolveModel(nameOrPath), architecture, seed, configure);

    /// <summary>Loads a model from files resolved already (<see cref="Hub.ModelResolver.ResolveModel"/>), as
    /// <see cref="FromPretrained(string, BertArchitecture?, int, Func{BertConfig, BertConfig}?)"/> does, without resolving
    /// the name again.</summary>
    public static BertPreTrainedModel FromPretrained(Hub.ResolvedModel model, BertArchitecture? architecture = null, int seed = 0, Func<BertConfig, BertConfig>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        string directory = model.Directory;
        // Both missing files named at once, and a training run's output recognised.
        if (Checkpoint.MissingModel(directory) is { } missing) throw missing;
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
        (Dictionary<string, FloatTensor>, LoadReport) Load()
        {
            using var source = Checkpoint.Open(directory);
            try
            {
                return BertWeights.Load(source, config, arch, seed);
            }
            catch (NBertException e) when (!e.Message.StartsWith(directory, StringComparison.Ordinal))
            {
                // The checkpoint does not fit the config: name the model directory.
                throw new NBertException($"{directory}: {e.Message}", e);
            }
        }
        // A config changed in code may differ from the files' in any field, so only a load of the files as they are shares.
        if (configure is null && SharedWeights.KeyOf(directory, model.Commit, arch, seed) is { } key)
        {
            var shared = SharedWeights.Acquire(key, Load);
            try
            {
                foreach (var warning in shared.Report.Warnings) NBertWarnings.Raise($"{directory}: {warning}");
                var result = Create(config, arch, shared.Parameters, shared.Report);
                result._shared = shared;
                result._arraysShared = true;
                return result;
            }
            catch
            {
                shared.Release();
                throw;
            }
        }
        var (parameters, report) = Load();
        foreach (var warning in report.Warnings) NBertWarnings.Raise($"{directory}: {warning}");
        return Create(config, arch, parameters, report);
    }

    /// <summary>A randomly initialised model, with transformers' scheme, reproducible for a seed.</summary>
    public static BertPreTrainedModel FromConfig(BertConfig config, BertArchitecture architecture, int seed = 0) =>
        Create(config, architecture, BertWeights.Initialize(config, architecture, seed), null);

    internal static BertPreTrainedModel Create(BertConfig config, BertArchitecture arch, Dictionary<string, FloatTensor> p, LoadReport? report) => arch switch
    {
        BertArchitecture.BertModel => new BertModel(config, p) { LoadReport = report },
        BertArchitecture.BertForPreTraining when config.Family == ModelFamily.Electra => new ElectraForPreTraining(config, p) { LoadReport = report },
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
        EnsureNotQuantized("change architecture");
        var config = configure is null ? Config : configure(Config);
        // A BertModel keeps having no pooler rather than gaining a random one; the heads that use it get one.
        var parameters = BertWeights.Initialize(config, architecture, seed,
            addPoolingLayer: BertArchitectures.AddPoolingLayer(architecture, _parameters.Keys));
        var initialized = new List<string>();
        foreach (var (name, fresh) in parameters)
        {
            if (_parameters.TryGetValue(name, out var kept) && kept.Shape.SequenceEqual(fresh.Shape)) kept.Data.CopyTo(fresh.Data, 0);
            else initialized.Add(BertWeights.ReportName(name, config, architecture));
        }
        var unused = _parameters.Keys.Where(k => !parameters.ContainsKey(k)).Select(k => BertWeights.ReportName(k, Config, Architecture))
            .Order(StringComparer.Ordinal).ToList();
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
        EnsureNotQuantized("be saved");
        using var files = new StagedFiles(directory);
        tokenizer?.SavePretrained(files);
        SavePretrained(files);
        files.Commit();
    }

    /// <summary>Stages model.safetensors, then config.json, into <paramref name="files"/>; the caller may add
    /// more files (a vocabulary) before committing them together.</summary>
    public void SavePretrained(StagedFiles files)
    {
        Checkpoint.StageModel(files, Config, Architecture, Specs, _parameters);
    }

    // ---- outputs that are not numbers ----

    /// <summary>The parameters holding NaN or infinity, with how many such values each holds (none for a sound model).</summary>
    public IReadOnlyList<NonFiniteTensor> NonFiniteParameters() =>
        _parameters.Select(p => new NonFiniteTensor(p.Key, BertWeights.CountNonFinite(p.Value.Data), p.Value.Length))
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

    /// <summary>The weights as the forward pass reads them, packed on first use (by one thread or several at once) and
    /// kept until <see cref="WeightsChanged"/>.</summary>
    internal Weights<float> Weights
    {
        get
        {
            var w = Volatile.Read(ref _weights);
            if (w is not null) return w;
            // The one switch between float32 and int8: an int8 model builds its weights in Quantize and keeps them. A model
            // that shares its parameters shares their packed copies too.
            var shared = _shared;
            Interlocked.CompareExchange(ref _weights, shared is not null && _arraysShared && Quantization == Quantization.None
                ? shared.Packed : new PackedWeights(_parameters), null);
            return _weights!;
        }
    }

    /// <summary>input [rows, in] through a linear layer of the layout, as a new [rows, out] array.</summary>
    private protected float[] Dense(LinearParameters p, ReadOnlySpan<float> input, int rows)
    {
        // Every head's output passes here: the masked-LM logits (batch x sequence x vocab) are the largest.
        EnsureArray($"the output of {p.Weights[0].Name} (rows {rows} x {p.Outputs})", (long)rows * p.Outputs);
        var y = new float[rows * p.Outputs];
        Weights.Linear(p, input, rows, y);
        return y;
    }

    /// <summary>
    /// The body: embeddings, every encoder layer, and the pooler when <paramref name="withPooler"/>, through the one
    /// encoder (<see cref="Encoder{T}"/>) with scratch from the array pool, so a steady stream of calls allocates only outputs.
    /// </summary>
    private protected ModelOutput RunBody(ModelInputs inputs, bool withPooler, bool outputHiddenStates, bool outputAttentions)
    {
        // Here too, not only in Forward: fill-mask's PredictionLogitsAt reaches the body without Forward.
        ObjectDisposedException.ThrowIf(_disposed, this);
        _encoder.Check(inputs, outputAttentions);
        int b = inputs.Batch, s = inputs.SequenceLength, h = Config.HiddenSize;
        var hiddenStates = outputHiddenStates ? new List<float[]>() : null;
        var attentions = outputAttentions ? new List<float[]>() : null;
        var weights = Weights; // one set for the whole pass, even if the weights change meanwhile
        float[] x;
        using (var pass = EncoderPass<float>.Scratch(Config, inputs))
        {
            _encoder.Forward(weights, pass, hiddenStates, attentions);
            x = pass.Hidden;
        }
        FloatTensor? pooled = null;
        if (withPooler)
        {
            var y = new float[b * h];
            Heads<float>.Pooler(weights, _layout.Pooler!, Config.PoolerActivation, x, b, s, new float[b * h], y);
            pooled = new FloatTensor(y, b, h);
        }
        return new ModelOutput
        {
            LastHiddenState = new FloatTensor(x, b, s, h),
            PoolerOutput = pooled,
            HiddenStates = hiddenStates?.Select(a => new FloatTensor(a, b, s, h)).ToList(),
            Attentions = attentions?.Select(a => new FloatTensor(a, b, Config.NumAttentionHeads, s, s)).ToList(),
        };
    }

    /// <summary>
    /// The body's last hidden state lent to <paramref name="read"/> for the call only: its first batch x sequence x hidden
    /// values are the states, in pooled scratch returned afterwards, and no pooler runs. A pipeline that reduces the
    /// states (sentence embeddings) reads them here: a stream of batches through <see cref="Forward"/> allocates a new
    /// [b, s, h] array each, large enough for the large-object heap, whose collections took 6% of int8 embedding time.
    /// </summary>
    internal TResult ReadLastHiddenState<TResult>(ModelInputs inputs, Func<float[], TResult> read)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ObjectDisposedException.ThrowIf(_disposed, this);
        _encoder.Check(inputs);
        var weights = Weights;
        using var pass = EncoderPass<float>.Scratch(Config, inputs, lendOutput: true);
        _encoder.Forward(weights, pass);
        return read(pass.Hidden);
    }

    /// <summary>Refuses a batch whose <paramref name="what"/> would need more values than one array holds.</summary>
    private protected static void EnsureArray(string what, long count) => Encoder<float>.EnsureArray(what, count);

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
}
