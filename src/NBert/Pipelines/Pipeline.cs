using NBert.Modeling;
using NBert.Tokenization;
using NBert.Schema;

namespace NBert.Pipelines;

/// <summary>
/// What every pipeline shares, as transformers' <c>Pipeline</c>: a tokenizer and a model that fit each other, loaded
/// together by name or directory (<c>FromPretrained</c>), saved together (<see cref="SavePretrained"/>). Each pipeline
/// takes one input (a string, or a pair) or a list of them, with an options record, and returns records with
/// transformers' field names. Pipelines are safe to call from several threads at once: the tokenizer and the model
/// are read-only while they run, and every call has buffers of its own.
/// </summary>
public abstract class Pipeline : IDisposable
{
    /// <summary>A pipeline over a tokenizer and a model; a tokenizer with more ids than the model's vocabulary is refused.</summary>
    private protected Pipeline(BertTokenizer tokenizer, BertPreTrainedModel model)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(model);
        model.EnsureTokenizerFits(tokenizer);
        Tokenizer = tokenizer;
        Model = model;
    }

    /// <summary>The tokenizer inputs go through.</summary>
    public BertTokenizer Tokenizer { get; }
    /// <summary>The model with the task's head.</summary>
    public BertPreTrainedModel Model { get; }

    /// <summary>Inputs per forward pass; inputs of similar length are batched together (the results keep the callers' order).</summary>
    public int BatchSize
    {
        get => _batchSize;
        set => _batchSize = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(BatchSize), $"BatchSize must be at least 1, not {value}.");
    }
    private int _batchSize = 32;

    /// <summary>The most tokens an input is given: the tokenizer's <see cref="BertTokenizer.MaxInputLength"/>
    /// (model_max_length, 512 when unknown), at most the model's max_position_embeddings.</summary>
    public int MaxLength => Math.Min(Tokenizer.MaxInputLength, Model.Config.MaxSequenceLength);

    /// <summary>Writes the model and the tokenizer to <paramref name="directory"/>, so that the pipeline's
    /// <c>FromPretrained(directory)</c> (or transformers' <c>pipeline(model=directory)</c>) loads it again.</summary>
    public virtual void SavePretrained(string directory) => Model.SavePretrained(directory, Tokenizer);

    /// <summary>Whether <see cref="Dispose"/> disposes the model: true when the pipeline loaded it itself.</summary>
    private protected bool OwnsModel { get; private set; }

    /// <summary>Releases the model when the pipeline loaded it (<c>FromPretrained</c>); a model passed to the
    /// constructor stays the caller's to dispose.</summary>
    public void Dispose()
    {
        if (OwnsModel) Model.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>A single-text call, made through the list call: a null text is an <see cref="ArgumentNullException"/>, and a
    /// text the list call refuses (a <see cref="BatchItemException"/>, "Input 1: ...") is refused with the reason alone.</summary>
    private protected static T Single<T>(Func<T> run, string? text, [System.Runtime.CompilerServices.CallerArgumentExpression(nameof(text))] string name = "")
    {
        ArgumentNullException.ThrowIfNull(text, name);
        try
        {
            return run();
        }
        catch (BatchItemException e) when (e.Index == 0 && e.InnerException is ArgumentException reason)
        {
            throw reason;
        }
    }

    /// <summary><see cref="Single{T}"/> for a call on a pair of texts, neither of which may be null.</summary>
    private protected static T SinglePair<T>(Func<T> run, string? text, string? second,
        [System.Runtime.CompilerServices.CallerArgumentExpression(nameof(text))] string name = "",
        [System.Runtime.CompilerServices.CallerArgumentExpression(nameof(second))] string secondName = "")
    {
        ArgumentNullException.ThrowIfNull(second, secondName);
        return Single(run, text, name);
    }

    /// <summary>The architecture a pipeline of <paramref name="task"/> needs, or an error naming what it got.</summary>
    private protected static BertPreTrainedModel Require(BertPreTrainedModel model, string task, params BertArchitecture[] architectures) =>
        model is null ? throw new ArgumentNullException(nameof(model))
        : architectures.Contains(model.Architecture) ? model
        : throw new ArgumentException($"{task} needs {string.Join(" or ", architectures)}, not {model.Architecture}.", nameof(model));

    /// <summary>
    /// Every pipeline's <c>FromPretrained</c>: the tokenizer and the model of <paramref name="source"/>, the model as
    /// <paramref name="architecture"/> (or as <paramref name="orAsConfigured"/> when config.json names that one: a
    /// pre-training checkpoint serves fill-mask and next-sentence with its own heads), made into a pipeline by
    /// <paramref name="create"/>, which then owns the model. If <paramref name="create"/> throws, the model is disposed
    /// before the exception leaves.
    /// </summary>
    internal static TPipeline Load<TPipeline>(Hub.ResolvedModel source, BertArchitecture architecture,
        Func<BertTokenizer, BertPreTrainedModel, TPipeline> create, BertArchitecture? orAsConfigured = null) where TPipeline : Pipeline
    {
        ArgumentNullException.ThrowIfNull(source);
        if (orAsConfigured is { } alternative
            && BertArchitectures.FromConfig(BertConfig.Load(Path.Combine(source.Directory, "config.json"))) == alternative)
            architecture = alternative;
        var tokenizer = BertTokenizer.FromPretrained(source);
        var model = BertPreTrainedModel.FromPretrained(source, architecture);
        try
        {
            var pipeline = create(tokenizer, model);
            pipeline.OwnsModel = true;
            return pipeline;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
