using NBert.IO;
using NBert.Tensors;
using NBert.Schema;

namespace NBert.Modeling;

/// <summary>A checkpoint tensor holding NaN or infinite values, and how many.</summary>
public sealed record NonFiniteTensor(string Name, long Count, long Length);

/// <summary>What loading a checkpoint did, as transformers' loading info: parameters the checkpoint lacked
/// (initialised), its tensors the model does not use, and the ones dropped on purpose.</summary>
public sealed record LoadReport(IReadOnlyList<string> Initialized, IReadOnlyList<string> Unexpected, IReadOnlyList<string> Ignored)
{
    /// <summary>Loaded parameters holding NaN or infinite values, by their checkpoint name. One such weight
    /// makes every output NaN, so a caller that will print answers should refuse such a model.</summary>
    public IReadOnlyList<NonFiniteTensor> NonFinite { get; init; } = [];

    /// <summary>What a user should be told: newly initialised weights, unused weights, non-finite weights.</summary>
    public IEnumerable<string> Warnings
    {
        get
        {
            if (NonFinite.Count > 0)
                yield return $"Some weights are NaN or infinite, so every output would be NaN: {string.Join(", ", NonFinite.Select(t => $"{t.Name} ({t.Count:N0} of {t.Length:N0} values)"))}. The checkpoint is damaged.";
            if (Initialized.Count > 0)
                yield return $"Some weights were not in the checkpoint and were newly initialized: {string.Join(", ", Initialized)}. Train the model before using its predictions.";
            if (Unexpected.Count > 0)
                yield return $"Some checkpoint weights were not used: {string.Join(", ", Unexpected)}.";
        }
    }
}

/// <summary>Checkpoint names to parameters and back, with transformers' conventions.</summary>
public static class BertWeights
{
    /// <summary>
    /// Reads the parameters of <paramref name="architecture"/> from a checkpoint: optional <c>bert.</c>
    /// prefix, legacy LayerNorm <c>gamma</c>/<c>beta</c>, <c>decoder.bias</c> as <c>cls.predictions.bias</c>,
    /// a decoder weight tied to the word embeddings, <c>position_ids</c> buffers ignored. A missing head (or
    /// pooler) is initialised as transformers does; missing embeddings or encoder weights are an error. A
    /// <see cref="BertArchitecture.BertModel"/> checkpoint with no pooler weights at all loads without a pooling layer
    /// (as sentence-transformers' exports are saved), rather than with an invented random one.
    /// </summary>
    public static (Dictionary<string, FloatTensor> Parameters, LoadReport Report) Load(ITensorSource source, BertConfig config,
        BertArchitecture architecture, int seed = 0)
    {
        config.Validate();
        BertArchitectures.EnsureFitsInMemory(config, architecture);
        var byCanonical = new Dictionary<string, string>(StringComparer.Ordinal);
        var ignored = new List<string>();
        var toModelName = ModelNames(config, architecture);
        foreach (var t in source.Tensors)
        {
            string? canonical = toModelName(t.Name);
            if (canonical is null) { ignored.Add(t.Name); continue; }
            // Two names for one parameter (cls.predictions.bias and decoder.bias): the first one wins.
            if (!byCanonical.TryAdd(canonical, t.Name)) ignored.Add(t.Name);
        }
        bool pooler = BertArchitectures.AddPoolingLayer(architecture, byCanonical.Keys);
        var specs = BertArchitectures.Parameters(config, architecture, pooler);
        var parameters = new Dictionary<string, FloatTensor>(StringComparer.Ordinal);
        var initialized = new List<string>();
        var nonFinite = new List<NonFiniteTensor>();
        var rng = new NormalRandom(seed);
        foreach (var spec in specs)
        {
            if (byCanonical.Remove(spec.Name, out var name))
            {
                var info = source.Info(name);
                if (!info.Shape.SequenceEqual(spec.Shape))
                    throw new NBertException($"Checkpoint tensor '{name}' has shape [{string.Join(", ", info.Shape)}], but the config needs [{string.Join(", ", spec.Shape)}] for {spec.Name}.");
                var values = source.ReadFloat32(name);
                if (CountNonFinite(values) is > 0 and long bad) nonFinite.Add(new NonFiniteTensor(name, bad, values.Length));
                parameters[spec.Name] = new FloatTensor(values, spec.Shape);
            }
            else if (spec.IsEncoder)
                throw new NBertException($"The checkpoint has no '{spec.Name}' (nor 'bert.{spec.Name}'): it is not a {architecture} checkpoint for this config.");
            else
            {
                parameters[spec.Name] = Initialize(spec, config, rng);
                initialized.Add(ReportName(spec.Name, config, architecture));
            }
        }
        var unexpected = byCanonical.Values.Order(StringComparer.Ordinal).ToList();
        return (parameters, new LoadReport(initialized, unexpected, ignored) { NonFinite = nonFinite });
    }

    /// <summary>The name a load report gives a parameter: BERT's model name, or another family's own checkpoint name
    /// (a DistilBERT's new sequence head is <c>pre_classifier.weight</c>, as transformers' warning says).</summary>
    internal static string ReportName(string parameter, BertConfig config, BertArchitecture architecture) =>
        config.Family == ModelFamily.Bert ? parameter : FamilyNames.CheckpointName(parameter, architecture, config.Family);

    /// <summary>How many values are NaN or infinite: those whose exponent bits are all ones.</summary>
    internal static long CountNonFinite(ReadOnlySpan<float> values)
    {
        var bits = System.Runtime.InteropServices.MemoryMarshal.Cast<float, uint>(values);
        const uint Exponent = 0x7F80_0000;
        long count = 0;
        int i = 0;
        if (System.Numerics.Vector.IsHardwareAccelerated)
        {
            var mask = new System.Numerics.Vector<uint>(Exponent);
            int width = System.Numerics.Vector<uint>.Count;
            for (; i <= bits.Length - width; i += width)
            {
                var e = new System.Numerics.Vector<uint>(bits.Slice(i, width)) & mask;
                if (System.Numerics.Vector.EqualsAny(e, mask))
                    for (int j = i; j < i + width; j++) count += (bits[j] & Exponent) == Exponent ? 1 : 0;
            }
        }
        for (; i < bits.Length; i++) count += (bits[i] & Exponent) == Exponent ? 1 : 0;
        return count;
    }

    /// <summary>Random parameters with transformers' scheme: normal(0, initializer_range) weights and
    /// embeddings (the padding row zeroed), zero biases, LayerNorm weight 1. <paramref name="addPoolingLayer"/>: as in
    /// <see cref="BertArchitectures.Parameters"/>.</summary>
    public static Dictionary<string, FloatTensor> Initialize(BertConfig config, BertArchitecture architecture, int seed, bool addPoolingLayer = true)
    {
        config.Validate();
        BertArchitectures.EnsureFitsInMemory(config, architecture);
        var rng = new NormalRandom(seed);
        return BertArchitectures.Parameters(config, architecture, addPoolingLayer).ToDictionary(s => s.Name, s => Initialize(s, config, rng), StringComparer.Ordinal);
    }

    private static FloatTensor Initialize(ParameterSpec spec, BertConfig config, NormalRandom rng)
    {
        var t = FloatTensor.Zeros(spec.Shape);
        switch (spec.Init)
        {
            case Init.Ones: t.Data.AsSpan().Fill(1f); break;
            case Init.Sinusoidal:
            {
                // transformers' create_sinusoidal_embeddings, computed in double as numpy does there.
                int dim = spec.Shape[1];
                for (int pos = 0; pos < spec.Shape[0]; pos++)
                    for (int j = 0; j < dim; j++)
                    {
                        double angle = pos / Math.Pow(10000, 2.0 * (j / 2) / dim);
                        t.Data[pos * dim + j] = (float)(j % 2 == 0 ? Math.Sin(angle) : Math.Cos(angle));
                    }
                break;
            }
            case Init.Normal:
            case Init.EmbeddingWithPadding:
                for (int i = 0; i < t.Data.Length; i++) t.Data[i] = (float)(rng.Next() * config.InitializerRange);
                int width = spec.Shape[^1];
                if (spec.Init == Init.EmbeddingWithPadding && config.PadTokenId >= 0 && config.PadTokenId < spec.Shape[0])
                    t.Data.AsSpan(config.PadTokenId * width, width).Clear();
                break;
        }
        return t;
    }

    /// <summary>
    /// A checkpoint name to the model name of the parameter it stands for (null for what transformers drops), in the
    /// config's family. BERT's rules are <see cref="Canonical"/>; another family's names are those
    /// <see cref="FamilyNames.CheckpointName"/> gives the architecture's parameters (with or without the base model's
    /// prefix, as transformers loads a head's checkpoint as a base model and back); a name that is none of them is kept
    /// as it is, to be reported unused.
    /// </summary>
    internal static Func<string, string?> ModelNames(BertConfig config, BertArchitecture architecture)
    {
        if (config.Family == ModelFamily.Bert) return name => Canonical(name, config);
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var spec in BertArchitectures.Parameters(config with { TieWordEmbeddings = false }, architecture))
        {
            map.TryAdd(FamilyNames.CheckpointName(spec.Name, architecture, config.Family), spec.Name);
            map.TryAdd(FamilyNames.CheckpointName(spec.Name, architecture == BertArchitecture.BertModel
                ? BertArchitecture.BertForMaskedLM : BertArchitecture.BertModel, config.Family), spec.Name);
        }
        // Older RoBERTa checkpoints hold the decoder's bias twice, as lm_head.bias and lm_head.decoder.bias (the first wins).
        if (config.Family == ModelFamily.Roberta) map.TryAdd("lm_head.decoder.bias", "cls.predictions.bias");
        string tiedDecoder = FamilyNames.CheckpointName("cls.predictions.decoder.weight", architecture, config.Family);
        return name =>
        {
            if (name.EndsWith("position_ids", StringComparison.Ordinal)) return null;
            if (config.TieWordEmbeddings && name == tiedDecoder) return null; // tied to the word embeddings
            return map.GetValueOrDefault(name, name);
        };
    }

    /// <summary>The parameter a BERT checkpoint name stands for, or null for what transformers drops.</summary>
    internal static string? Canonical(string name, BertConfig config)
    {
        if (name.EndsWith("position_ids", StringComparison.Ordinal)) return null;
        if (name.StartsWith("bert.", StringComparison.Ordinal)) name = name["bert.".Length..];
        if (name.EndsWith(".gamma", StringComparison.Ordinal)) name = name[..^".gamma".Length] + ".weight";
        else if (name.EndsWith(".beta", StringComparison.Ordinal)) name = name[..^".beta".Length] + ".bias";
        if (name == "cls.predictions.decoder.bias") return "cls.predictions.bias";
        if (name == "cls.predictions.decoder.weight" && config.TieWordEmbeddings) return null; // tied to the word embeddings
        return name;
    }

    /// <summary>Standard normal numbers from a seed (Box-Muller over System.Random), reproducible.</summary>
    internal sealed class NormalRandom(int seed)
    {
        private readonly Random _random = new(seed);
        private double? _spare;

        public double Next()
        {
            if (_spare is double s) { _spare = null; return s; }
            double u1 = 1.0 - _random.NextDouble(), u2 = _random.NextDouble();
            double r = Math.Sqrt(-2.0 * Math.Log(u1));
            _spare = r * Math.Sin(2 * Math.PI * u2);
            return r * Math.Cos(2 * Math.PI * u2);
        }
    }
}
