using System.Numerics.Tensors;
using NBert.Modeling;
using NBert.Tensors;
using NBert.Tokenization;
using NBert.Schema;
using NBert.Tasks;

namespace NBert.Pipelines;

/// <summary>
/// Feature extraction and sentence embeddings with a BERT encoder: token vectors, pooled sentence
/// vectors, cosine similarity and top-k semantic search. Texts are sorted by length before batching,
/// so little compute goes to padding; results come back in the caller's order. It is also
/// Microsoft.Extensions.AI's <c>IEmbeddingGenerator&lt;string, Embedding&lt;float&gt;&gt;</c>
/// (SentenceEmbeddings.Generator.cs).
/// </summary>
public sealed partial class SentenceEmbeddings : Pipeline
{
    /// <summary>A pipeline over a tokenizer and an encoder (any head's body is used as the encoder), pooling as
    /// <paramref name="options"/> say (by default: mean, not normalised, the model's length limit).</summary>
    public SentenceEmbeddings(BertTokenizer tokenizer, BertPreTrainedModel model, EmbeddingOptions? options = null) : base(tokenizer, model)
    {
        Options = Validate(options ?? new EmbeddingOptions());
    }

    /// <summary>Pooling, normalisation, truncation and prompts.</summary>
    public EmbeddingOptions Options { get; }
    /// <summary>The model's name where it is known (a Hub id, a built-in's id, a directory's name): what
    /// <see cref="Metadata"/> and each <c>Embedding</c> report.</summary>
    public string? ModelId { get; init; }

    /// <summary>The name <c>FromPretrained</c> was given (<c>minilm</c>, <c>org/name@v1</c>, a directory), which names
    /// the model as well as <see cref="ModelId"/> does.</summary>
    internal string? LoadedAs { get; init; }

    /// <summary>Whether <paramref name="name"/> names this pipeline's model (in any case): its <see cref="ModelId"/>, the
    /// name it was loaded by, or a built-in model's short or own name when the model is that built-in (<c>minilm</c> and
    /// <c>all-MiniLM-L6-v2</c> for sentence-transformers/all-MiniLM-L6-v2), as <c>nbert serve</c> takes any of them.</summary>
    internal bool IsNamed(string name) =>
        ModelId is null
        || string.Equals(name, ModelId, StringComparison.OrdinalIgnoreCase)
        || string.Equals(name, LoadedAs, StringComparison.OrdinalIgnoreCase)
        || string.Equals(IO.BuiltinModels.Find(name)?.HubId, ModelId, StringComparison.OrdinalIgnoreCase);

    /// <summary>The length of each sentence vector: the model's hidden size.</summary>
    public int Dimension => Model.Config.HiddenSize;

    /// <summary>Texts are truncated to this many tokens: <see cref="EmbeddingOptions.MaxLength"/>, at most the model's limit.</summary>
    public int MaxTokens => Math.Min(Options.MaxLength ?? MaxLength, MaxLength);

    /// <summary>A model by directory or name (a built-in name such as <c>minilm</c>, see <see cref="Hub.ModelResolver"/>),
    /// run as a bare encoder and pooling as the model's own files say (<see cref="ModelOptions"/>), changed by
    /// <paramref name="configure"/> when given (<c>o => o with { Normalize = true }</c>).</summary>
    public static SentenceEmbeddings FromPretrained(string nameOrDirectory, Func<EmbeddingOptions, EmbeddingOptions>? configure = null) =>
        FromPretrained(Hub.ModelResolver.ResolveModel(nameOrDirectory), configure);

    /// <summary>As <see cref="FromPretrained(string, Func{EmbeddingOptions, EmbeddingOptions}?)"/>, from files resolved
    /// already; <see cref="ModelId"/> is the resolved model's (<see cref="Hub.ResolvedModel.ModelId"/>).</summary>
    public static SentenceEmbeddings FromPretrained(Hub.ResolvedModel model, Func<EmbeddingOptions, EmbeddingOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var options = ModelOptions(model.Directory); // before the model loads: a bad sentence-transformers file costs nothing
        if (configure is not null) options = configure(options);
        return Load(model, BertArchitecture.BertModel, (t, m) => new SentenceEmbeddings(t, m, options) { ModelId = model.ModelId, LoadedAs = model.Name });
    }

    /// <summary>The embedding options a model directory gives: its sentence-transformers files (pooling, normalisation,
    /// max_seq_length, prompts) when it has them, else <see cref="EmbeddingOptions"/>'s defaults (what sentence-transformers
    /// does for a plain transformers model).</summary>
    /// <exception cref="NBertException">A sentence-transformers file is not valid or asks for what NBert does not compute.</exception>
    public static EmbeddingOptions ModelOptions(string directory) => SentenceTransformersConfig.Read(directory) ?? new EmbeddingOptions();

    /// <summary>Writes the model, the tokenizer and sentence-transformers' files for <see cref="Options"/> (modules.json,
    /// 1_Pooling/config.json, sentence_bert_config.json, config_sentence_transformers.json), so that
    /// <see cref="FromPretrained(string, Func{EmbeddingOptions, EmbeddingOptions}?)"/> and sentence-transformers load the same embedder again.</summary>
    public override void SavePretrained(string directory)
    {
        using var files = new StagedFiles(directory);
        Tokenizer.SavePretrained(files);
        Model.SavePretrained(files);
        SentenceTransformersConfig.Write(files, Options, MaxTokens, Dimension);
        files.Commit();
    }

    private static EmbeddingOptions Validate(EmbeddingOptions o)
    {
        if (o.MaxLength < 2) throw new ArgumentOutOfRangeException(nameof(o), $"MaxLength must leave room for [CLS] and [SEP], not {o.MaxLength}.");
        return o;
    }

    private EncodeOptions Encoding => new() { MaxLength = MaxTokens, Truncation = TruncationStrategy.LongestFirst };

    /// <summary>Token vectors of one text, [tokens, hidden] (transformers' feature-extraction pipeline).</summary>
    public FloatTensor TokenEmbeddings(string text)
    {
        var e = Tokenizer.Encode(text, options: Encoding);
        CheckTruncation([e], MaxTokens, _ => text);
        var hidden = Model.Forward(ModelInputs.FromEncodings([e])).LastHiddenState!;
        Model.EnsureFinite(hidden.Data, "hidden states");
        return new FloatTensor(hidden.Data, e.Length, Dimension);
    }

    /// <summary>One text's vector (with the default prompt, if the model has one).</summary>
    public float[] Embed(string text) => Single(() => Embed([text])[0], text);

    /// <summary>One vector per text, in the order given, each prefixed with the prompt <paramref name="promptName"/> names
    /// (sentence-transformers' <c>encode(..., prompt_name=...)</c>: <c>query</c> for arctic-embed's queries), or with the
    /// default prompt when null (if the model has one). <paramref name="cancellationToken"/> is checked before each batch.</summary>
    /// <exception cref="ArgumentException">The model has no prompt of that name.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public float[][] Embed(IReadOnlyList<string> texts, string? promptName = null, CancellationToken cancellationToken = default) =>
        Embed(texts, out _, cancellationToken, promptName);

    /// <summary>One vector per text, in the order given; <paramref name="tokens"/> counts the tokens the model read
    /// (special tokens included, padding not). Cancellation is checked before each batch.</summary>
    internal float[][] Embed(IReadOnlyList<string> texts, out long tokens, CancellationToken cancellationToken, string? promptName = null)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if ((promptName ?? Options.DefaultPromptName) is { } name)
        {
            string prompt = Options.Prompts.TryGetValue(name, out var p) ? p
                : throw new ArgumentException($"The model has no prompt '{name}'{(Options.Prompts.Count > 0 ? $" ({string.Join(", ", Options.Prompts.Keys)} are its prompts)" : "")}.", nameof(promptName));
            if (!Options.IncludePrompt)
                throw new NBertException("The model's pooling excludes the prompt's tokens (include_prompt false), which NBert does not do: embed without a prompt.");
            texts = texts.Select(t => prompt + t).ToArray();
        }
        var encodings = Tokenizer.EncodeBatch(texts, Encoding);
        CheckTruncation(encodings, MaxTokens, i => texts[i]);
        tokens = encodings.Sum(e => (long)e.Length);
        var order = Enumerable.Range(0, texts.Count).OrderBy(i => encodings[i].Length).ToArray();
        var result = new float[texts.Count][];
        for (int start = 0; start < order.Length; start += BatchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var rows = order.AsSpan(start, Math.Min(BatchSize, order.Length - start)).ToArray();
            var batch = Tokenizer.Pad(rows.Select(i => encodings[i]).ToArray(), new EncodeOptions { Padding = PaddingStrategy.Longest });
            var inputs = ModelInputs.FromEncodings(batch);
            int tokensPerText = inputs.SequenceLength * Dimension;
            var vectors = Model.ReadLastHiddenState(inputs, hidden =>
            {
                Model.EnsureFinite(hidden.AsSpan(0, rows.Length * tokensPerText), "hidden states");
                return batch.Select((e, r) => Pool(hidden.AsSpan(r * tokensPerText, tokensPerText), e.AttentionMask)).ToArray();
            });
            for (int r = 0; r < rows.Length; r++) result[rows[r]] = vectors[r];
        }
        return result;
    }

    /// <summary>
    /// One sentence vector from a sequence's token vectors ([tokens, hidden], padding included) and its attention
    /// mask, by <see cref="EmbeddingOptions.Pooling"/>, scaled to length 1 when <see cref="EmbeddingOptions.Normalize"/>.
    /// <see cref="Embed(IReadOnlyList{string}, string?, CancellationToken)"/> pools with it, and so can a caller that ran the model on its own batches.
    /// </summary>
    public float[] Pool(ReadOnlySpan<float> tokens, IReadOnlyList<int> mask)
    {
        int h = Dimension;
        var v = new float[h];
        switch (Options.Pooling)
        {
            case Pooling.Cls:
                tokens[..h].CopyTo(v);
                break;
            case Pooling.Mean:
                int count = 0;
                for (int t = 0; t < mask.Count; t++)
                    if (mask[t] == 1) { TensorPrimitives.Add(v, tokens.Slice(t * h, h), v); count++; }
                TensorPrimitives.Divide(v, Math.Max(count, 1), v);
                break;
            default:
                v.AsSpan().Fill(float.NegativeInfinity);
                for (int t = 0; t < mask.Count; t++)
                    if (mask[t] == 1) TensorPrimitives.Max(v, tokens.Slice(t * h, h), v);
                break;
        }
        if (Options.Normalize) Normalize(v);
        return v;
    }

    /// <summary>Scales a vector to length 1 in place (a zero vector stays zero).</summary>
    public static void Normalize(Span<float> v)
    {
        float norm = TensorPrimitives.Norm(v);
        if (norm > 0) TensorPrimitives.Divide(v, norm, v);
    }

    /// <summary>The cosine of the angle between two vectors, in [-1, 1] (sentence-transformers' <c>cos_sim</c>; for
    /// normalised vectors, their dot product). <see cref="ArgumentException"/> when the lengths differ or are zero.</summary>
    public static float CosineSimilarity(ReadOnlySpan<float> a, ReadOnlySpan<float> b) => TensorPrimitives.CosineSimilarity(a, b);

    /// <summary>The <paramref name="topK"/> corpus vectors most similar to the query, best first (ties by index).</summary>
    public static IReadOnlyList<(int Index, float Score)> Search(ReadOnlySpan<float> query, IReadOnlyList<float[]> corpus, int topK)
    {
        ArgumentNullException.ThrowIfNull(corpus);
        return Search(query, corpus.Count, i => corpus[i], topK);
    }

    /// <summary>As <see cref="Search(ReadOnlySpan{float}, IReadOnlyList{float[]}, int)"/>, over vectors held as memory
    /// (slices of one large buffer, a vector store's rows), read in place.</summary>
    public static IReadOnlyList<(int Index, float Score)> Search(ReadOnlySpan<float> query, IReadOnlyList<ReadOnlyMemory<float>> corpus, int topK)
    {
        ArgumentNullException.ThrowIfNull(corpus);
        return Search(query, corpus.Count, i => corpus[i].Span, topK);
    }

    /// <summary>As <see cref="Search(ReadOnlySpan{float}, IReadOnlyList{float[]}, int)"/>, over Microsoft.Extensions.AI
    /// embeddings (what <see cref="GenerateAsync"/> returns), their vectors read in place; pass a query embedding's
    /// <c>Vector.Span</c>.</summary>
    public static IReadOnlyList<(int Index, float Score)> Search(ReadOnlySpan<float> query, IReadOnlyList<Microsoft.Extensions.AI.Embedding<float>> corpus, int topK)
    {
        ArgumentNullException.ThrowIfNull(corpus);
        return Search(query, corpus.Count, i => corpus[i].Vector.Span, topK);
    }

    private delegate ReadOnlySpan<float> Row(int index);

    private static (int Index, float Score)[] Search(ReadOnlySpan<float> query, int count, Row row, int topK)
    {
        if (topK < 1) throw new ArgumentOutOfRangeException(nameof(topK), $"topK must be positive, not {topK}.");
        var scores = new (int Index, float Score)[count];
        for (int i = 0; i < count; i++) scores[i] = (i, CosineSimilarity(query, row(i)));
        return scores.OrderByDescending(s => s.Score).ThenBy(s => s.Index).Take(topK).ToArray();
    }
}
