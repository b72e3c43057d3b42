using NBert.Hub;
using NBert.Modeling;
using NBert.Pipelines;
using NBert.Tokenization;

namespace NBert.Server;

/// <summary>What the batching loop computes for one queued input of an encoder: the pooled sentence vector, every
/// token's vector, or the classifier's logits.</summary>
internal enum EncoderOutput { Pooled, Tokens, Logits }

/// <summary>
/// The served model, and the one place where the server calls the NBert library: loading, tokenizing, the
/// encoder's forward pass over a batch, and the pipelines. Its task comes from the architecture in config.json,
/// as TEI's model type does: <c>embedding</c> (BertModel), <c>classifier</c> or <c>reranker</c> (sequence
/// classification with several labels or one), and NBert's heads: <c>fill-mask</c>, <c>token-classification</c>,
/// <c>question-answering</c>, <c>next-sentence</c>, <c>pretraining</c> (fill-mask and next-sentence).
/// </summary>
internal sealed class ServedModel : IDisposable
{
    public string ModelId { get; }
    public string Task { get; }
    public BertTokenizer Tokenizer { get; }
    public BertConfig Config { get; }
    /// <summary>The most tokens an input may have (special tokens included).</summary>
    public int MaxInputLength { get; }
    public Pooling Pooling { get; }

    private readonly BertPreTrainedModel _model;
    private readonly SentenceEmbeddings _pooler;
    private readonly FillMask? _fillMask;
    private readonly TokenClassification? _tokenClassification;
    private readonly QuestionAnswering? _questionAnswering;
    private readonly NextSentence? _nextSentence;

    private ServedModel(string modelId, string directory, Pooling? pooling)
    {
        ModelId = modelId;
        // sentence-transformers' files say how the model pools and how long its inputs may be (TEI reads them too).
        var own = SentenceTransformersConfig.Read(directory);
        Pooling = pooling ?? own?.Pooling ?? Pooling.Mean;
        Config = BertConfig.Load(Path.Combine(directory, "config.json"));
        BertArchitecture architecture;
        try
        {
            architecture = BertArchitectures.FromConfig(Config);
        }
        catch (NotSupportedException e)
        {
            throw new NBertException($"{directory}: {e.Message}", e);
        }
        Task = architecture switch
        {
            BertArchitecture.BertModel => "embedding",
            BertArchitecture.BertForSequenceClassification => Config.NumLabels == 1 ? "reranker" : "classifier",
            BertArchitecture.BertForMaskedLM => "fill-mask",
            BertArchitecture.BertForTokenClassification => "token-classification",
            BertArchitecture.BertForQuestionAnswering => "question-answering",
            BertArchitecture.BertForNextSentencePrediction => "next-sentence",
            _ => "pretraining",
        };
        Tokenizer = BertTokenizer.FromPretrained(directory);
        _model = BertPreTrainedModel.FromPretrained(directory, architecture);
        _pooler = new SentenceEmbeddings(Tokenizer, _model, new EmbeddingOptions { Pooling = Pooling, Normalize = false });
        if (Task is "fill-mask" or "pretraining") _fillMask = new FillMask(Tokenizer, _model);
        if (Task is "next-sentence" or "pretraining") _nextSentence = new NextSentence(Tokenizer, _model);
        if (Task == "token-classification") _tokenClassification = new TokenClassification(Tokenizer, _model);
        if (Task == "question-answering") _questionAnswering = new QuestionAnswering(Tokenizer, _model);
        // TEI's rule: sentence-transformers' max_seq_length when the model has one, else the position embeddings;
        // NBert also keeps to the tokenizer's model_max_length.
        int limit = Math.Min(Tokenizer.ModelMaxLength ?? Config.MaxPositionEmbeddings, Config.MaxPositionEmbeddings);
        if (own?.MaxLength is int own_length) limit = Math.Min(limit, own_length);
        MaxInputLength = limit;
    }

    /// <summary>Releases the model's packed weights (call it once no forward pass can run).</summary>
    public void Dispose() => _model.Dispose();

    /// <summary>Loads a model directory or name (through <see cref="ModelResolver"/>), pooling as
    /// <paramref name="pooling"/> says, else as the model's sentence-transformers files say, else by mean.</summary>
    public static ServedModel Load(string nameOrPath, Pooling? pooling) => new(nameOrPath, ModelResolver.Resolve(nameOrPath), pooling);

    /// <summary>Whether a route's task is this model's (TEI answers 424 otherwise).</summary>
    public bool Serves(string route) => route switch
    {
        "embed" => Task == "embedding",
        "predict" => Task is "classifier" or "reranker",
        "rerank" => Task == "reranker",
        "fill-mask" => Task is "fill-mask" or "pretraining",
        "next-sentence" => Task is "next-sentence" or "pretraining",
        _ => Task == route,
    };

    /// <summary>TEI's <c>model_type</c> for <c>/info</c>: <c>{"embedding": {"pooling": "mean"}}</c>, <c>{"classifier": {"id2label", "label2id"}}</c>, ...</summary>
    public object ModelType()
    {
        object details = Task == "embedding"
            ? new Dictionary<string, object> { ["pooling"] = Pooling.ToString().ToLowerInvariant() }
            : new Dictionary<string, object>
            {
                ["id2label"] = Config.Id2Label.Select((label, i) => (label, i)).ToDictionary(x => x.i.ToString(System.Globalization.CultureInfo.InvariantCulture), x => x.label),
                ["label2id"] = Config.Id2Label.Select((label, i) => (label, i)).ToDictionary(x => x.label, x => x.i),
            };
        return new Dictionary<string, object> { [Task] = details };
    }

    // ---- tokenization, on the request's thread ----

    /// <summary>A text or pair as the model will see it, truncated to <see cref="MaxInputLength"/> from the given side
    /// when <paramref name="truncate"/>, else refused (413) when longer, as TEI does.</summary>
    public TokenEncoding Encode(string text, string? pair, bool truncate, TruncationSide side, bool addSpecialTokens = true) =>
        Encode(text, pair, truncate, side, addSpecialTokens, limitTokens: true);

    /// <summary>A text's tokens for <c>/tokenize</c>: no truncation and no token limit (TEI checks only the characters).</summary>
    public TokenEncoding Tokenize(string text, bool addSpecialTokens) =>
        Encode(text, null, truncate: false, TruncationSide.Right, addSpecialTokens, limitTokens: false);

    private TokenEncoding Encode(string text, string? pair, bool truncate, TruncationSide side, bool addSpecialTokens, bool limitTokens)
    {
        if (text.Length == 0 && string.IsNullOrEmpty(pair)) throw ServerError.Empty("inputs");
        // TEI refuses (or cuts, when truncating) texts of more than 250 characters per token before tokenizing.
        long chars = CountChars(text) + (pair is null ? 0 : CountChars(pair)), charLimit = (long)MaxInputLength * 250;
        if (chars > charLimit)
        {
            if (!truncate) throw ServerError.TooLong($"`inputs` must have less than {charLimit} characters. Given: {chars}");
            text = Cut(text, (int)(pair is null ? charLimit : charLimit / 2));
            if (pair is not null) pair = Cut(pair, (int)(charLimit / 2));
        }
        var e = Tokenizer.Encode(text, pair, new EncodeOptions
        {
            AddSpecialTokens = addSpecialTokens,
            Truncation = truncate ? TruncationStrategy.LongestFirst : TruncationStrategy.None,
            MaxLength = truncate ? MaxInputLength : null,
            TruncationSide = side,
        });
        if (limitTokens && e.Length > MaxInputLength)
            throw ServerError.TooLong($"`inputs` must have less than {MaxInputLength} tokens. Given: {e.Length}");
        return e;
    }

    /// <summary>Token ids given instead of text: decoded and encoded again without special tokens, as TEI does.</summary>
    public TokenEncoding EncodeIds(int[] ids, bool truncate, TruncationSide side)
    {
        if (ids.Length == 0) throw ServerError.Empty("inputs");
        return Encode(Tokenizer.Decode(ids), null, truncate, side, addSpecialTokens: false);
    }

    public string Decode(int[] ids, bool skipSpecialTokens) => Tokenizer.Decode(ids, skipSpecialTokens);

    /// <summary>Code points, as TEI counts characters (<c>x-compute-characters</c>, the character limit).</summary>
    public static int CountChars(string s) => s.Length - s.Count(char.IsLowSurrogate);

    private static string Cut(string s, int codePoints)
    {
        int units = 0;
        for (int n = 0; n < codePoints && units < s.Length; n++) units += char.IsSurrogatePair(s, units) ? 2 : 1;
        return s[..units];
    }

    // ---- the forward pass, on the batching loop's thread ----

    /// <summary>A forward pass's fixed cost (dispatching each op to the engine's threads, small matrices), counted in
    /// tokens: about what MiniLM computes for 50 to 100 more tokens on two cores.</summary>
    private const int ForwardCostInTokens = 64;

    /// <summary>
    /// Runs the encoder over a batch and gives each row what it asked for: its pooled vector (not normalised; as
    /// <see cref="SentenceEmbeddings.Pool"/> computes it for <c>nbert embed</c>), its token vectors, or its logits.
    /// On a CPU a forward pass costs its padded tokens, so the rows run sorted by length, in the sub-batches (runs of
    /// the sorted rows, each padded to its longest) that minimise padded tokens plus
    /// <see cref="ForwardCostInTokens"/> per pass. Right padding gives a row the same bits in any sub-batch, so the
    /// split never changes an answer.
    /// </summary>
    public object[] RunEncoder(IReadOnlyList<TokenEncoding> encodings, IReadOnlyList<EncoderOutput> wanted)
    {
        var results = new object[encodings.Count];
        var order = Enumerable.Range(0, encodings.Count).OrderBy(i => encodings[i].Length).ToArray();
        int n = order.Length;
        // cost[j]: the least cost of the first j sorted rows; start[j]: where the last sub-batch of that split begins.
        var cost = new long[n + 1];
        var start = new int[n + 1];
        for (int j = 1; j <= n; j++)
        {
            cost[j] = long.MaxValue;
            long longest = encodings[order[j - 1]].Length;
            for (int i = 0; i < j; i++)
            {
                long c = cost[i] + (j - i) * longest + ForwardCostInTokens;
                if (c < cost[j]) (cost[j], start[j]) = (c, i);
            }
        }
        for (int j = n; j > 0; j = start[j]) RunPadded(order[start[j]..j], encodings, wanted, results);
        return results;
    }

    private void RunPadded(int[] rows, IReadOnlyList<TokenEncoding> encodings, IReadOnlyList<EncoderOutput> wanted, object[] results)
    {
        var padded = Tokenizer.Pad(rows.Select(i => encodings[i]).ToList(), new EncodeOptions { Padding = PaddingStrategy.Longest });
        var output = _model.Forward(ModelInputs.FromEncodings(padded));
        // Never NaN passed off as an answer: a model whose weights overflow fails the batch (424) naming them.
        _model.EnsureFinite((output.Logits ?? output.LastHiddenState)!.Data, output.Logits is null ? "hidden states" : "logits");
        int s = padded[0].Length, h = Config.HiddenSize, labels = Config.NumLabels;
        for (int r = 0; r < rows.Length; r++)
            results[rows[r]] = wanted[rows[r]] switch
            {
                EncoderOutput.Pooled => _pooler.Pool(output.LastHiddenState!.Data.AsSpan(r * s * h, s * h), padded[r].AttentionMask),
                EncoderOutput.Tokens => Enumerable.Range(0, encodings[rows[r]].Length)
                    .Select(t => output.LastHiddenState!.Data.AsSpan((r * s + t) * h, h).ToArray()).ToArray(),
                _ => output.Logits!.Data.AsSpan(r * labels, labels).ToArray(),
            };
    }

    // ---- the pipelines (fill-mask, NER, QA, NSP): each input's value exactly as `nbert ... --json` prints it ----

    public IReadOnlyList<object> FillMask(IReadOnlyList<string> texts, int topK, IReadOnlyList<string>? targets) =>
        _fillMask!.RunEachMask(texts, new FillMaskOptions { TopK = topK, Targets = targets }).Select(PipelineJson.FillMask).ToList();

    public IReadOnlyList<object> TokenClassification(IReadOnlyList<string> texts, Aggregation aggregation, int? stride) =>
        _tokenClassification!.Run(texts, new TokenClassificationOptions { Aggregation = aggregation, Stride = stride }).Cast<object>().ToList();

    public IReadOnlyList<object> QuestionAnswering(IReadOnlyList<(string Question, string Context)> inputs, QuestionAnsweringOptions options) =>
        _questionAnswering!.Run(inputs, options).Select(a => PipelineJson.QuestionAnswering(a, options.TopK)).ToList();

    public IReadOnlyList<object> NextSentence(IReadOnlyList<(string A, string B)> pairs) => _nextSentence!.Run(pairs).Cast<object>().ToList();

    /// <summary>The cosine similarity of two sentence vectors.</summary>
    public static float Cosine(float[] a, float[] b) => SentenceEmbeddings.CosineSimilarity(a, b);

    /// <summary>Scales a sentence vector to length 1, as <c>nbert embed --normalize</c> does.</summary>
    public static void Normalize(Span<float> v) => SentenceEmbeddings.Normalize(v);
}
