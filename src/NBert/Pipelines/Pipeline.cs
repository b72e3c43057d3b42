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

    /// <summary>
    /// What happens to an input longer than the model takes (<see cref="MaxLength"/>, or an embedding model's own limit).
    /// True (the default, as transformers' pipelines and TEI's <c>truncate: true</c>): it is cut to the limit, and the call
    /// raises one warning (<see cref="NBertWarnings"/>) saying how many inputs it cut and from how many tokens. False (TEI's
    /// <c>truncate: false</c>): the call throws an <see cref="NBertException"/> naming the first such input and its token
    /// count, before the model runs. Windows of a <c>stride</c> (token classification, question answering's context) lose
    /// no tokens and are neither.
    /// </summary>
    public bool TruncateLongInputs { get; set; } = true;

    /// <summary>Warns once about the encodings that truncation cut (<see cref="TokenEncoding.TruncatedFrom"/>), or refuses
    /// the first of them when <see cref="TruncateLongInputs"/> is off. <paramref name="text"/> gives input i's text, for
    /// the refusal to quote.</summary>
    private protected void CheckTruncation(IReadOnlyList<TokenEncoding> encodings, int maxLength, Func<int, string> text)
    {
        List<(int Input, int Tokens)>? cut = null;
        for (int i = 0; i < encodings.Count; i++)
            if (encodings[i].TruncatedFrom is int tokens) (cut ??= []).Add((i, tokens));
        if (cut is null) return;
        bool single = encodings.Count == 1;
        if (!TruncateLongInputs)
        {
            var (input, count) = cut[0];
            throw new NBertException($"{(single ? "The input" : $"Input {input + 1}")} (\"{NBertException.Quote(text(input), 40)}\") has {count:N0} tokens, " +
                $"more than the {maxLength:N0} the model takes, and TruncateLongInputs is off: shorten it, or let the pipeline cut it to its first {maxLength:N0} tokens.");
        }
        string what = single
            ? $"Truncated the input from {cut[0].Tokens:N0} tokens to the {maxLength:N0} the model takes"
            : $"Truncated {cut.Count:N0} of {encodings.Count:N0} inputs to the {maxLength:N0} tokens the model takes (" +
              string.Join(", ", cut.Take(3).Select(c => $"input {c.Input + 1} had {c.Tokens:N0}")) + (cut.Count > 3 ? $", and {cut.Count - 3:N0} more" : "") + ")";
        NBertWarnings.Raise($"{what}: the rest was not read. " +
            "Set TruncateLongInputs to false to refuse such inputs instead.");
    }

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
            // The single input's own error, with the stack trace it was thrown with.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(reason);
            throw; // not reached
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
        // ELECTRA's pre-training head is its discriminator, neither masked-LM nor next-sentence: no pipeline takes it.
        : architectures.Contains(model.Architecture) && model is not ElectraForPreTraining ? model
        : throw new ArgumentException($"{task} needs {string.Join(" or ", architectures)}, not {FamilyNames.ClassName(model.Config.Family, model.Architecture)}.", nameof(model));

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
