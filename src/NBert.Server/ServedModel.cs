using NBert.Hub;
using NBert.Modeling;
using NBert.Pipelines;
using NBert.Tokenization;
using NBert.Schema;
using NBert.Tasks;

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
    /// <summary>The model's name in answers (<c>/info</c>'s <c>model_id</c>, <c>/v1/embeddings</c>' <c>model</c>), as the
    /// library's embedding metadata names it (<see cref="ModelResolver.ModelId"/>).</summary>
    public string ModelId { get; }
    public string Task { get; }
    public BertTokenizer Tokenizer { get; }
    public BertConfig Config { get; }
    /// <summary>The most tokens an input may have (special tokens included): the library's limit for the model
    /// (<see cref="SentenceEmbeddings.MaxTokens"/>: sentence-transformers' max_seq_length when the model has one, else
    /// the tokenizer's, at most the position embeddings), so <c>/embed</c> truncates where <c>nbert embed</c> does.</summary>
    public int MaxInputLength => _embeddings.MaxTokens;
    public Pooling Pooling => _embeddings.Options.Pooling;

    private readonly BertPreTrainedModel _model;
    /// <summary>The library's embedder over the served model: its options are the model's own (the one defaults rule
    /// of <see cref="SentenceEmbeddings.ModelOptions"/>), never normalised (a request says whether to normalise).</summary>
    private readonly SentenceEmbeddings _embeddings;
    private readonly FillMask? _fillMask;
    private readonly TokenClassification? _tokenClassification;
    private readonly QuestionAnswering? _questionAnswering;
    private readonly NextSentence? _nextSentence;

    private ServedModel(ResolvedModel source, Pooling? pooling, Quantization quantization)
    {
        ModelId = source.ModelId;
        string directory = source.Directory;
        string configPath = Path.Combine(directory, "config.json");
        Config = BertConfig.Load(configPath);
        BertArchitecture architecture;
        try
        {
            architecture = BertArchitectures.FromConfig(Config);
        }
        catch (NBertException e)
        {
            throw new NBertException($"{configPath}: {e.Message}", e);
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
        // An embedding model pools, truncates and prompts as its sentence-transformers files say (TEI reads them too),
        // else by the library's defaults; the other heads take the library's defaults (the model's length limit).
        var own = Task == "embedding" ? SentenceEmbeddings.ModelOptions(directory) : new EmbeddingOptions();
        Tokenizer = BertTokenizer.FromPretrained(source);
        _model = BertPreTrainedModel.FromPretrained(source, architecture);
        try
        {
            _model.Quantize(quantization);
            _embeddings = new SentenceEmbeddings(Tokenizer, _model, own with { Pooling = pooling ?? own.Pooling, Normalize = false });
            if (Task is "fill-mask" or "pretraining") _fillMask = new FillMask(Tokenizer, _model);
            if (Task is "next-sentence" or "pretraining") _nextSentence = new NextSentence(Tokenizer, _model);
            if (Task == "token-classification") _tokenClassification = new TokenClassification(Tokenizer, _model);
            if (Task == "question-answering") _questionAnswering = new QuestionAnswering(Tokenizer, _model);
        }
        catch
        {
            _model.Dispose();
            throw;
        }
    }

    /// <summary>Releases the model's packed weights (call it once no forward pass can run).</summary>
    public void Dispose()
    {
        IsDisposed = true;
        _model.Dispose();
    }

    /// <summary>Whether <see cref="Dispose"/> has run (the model can no longer run).</summary>
    internal bool IsDisposed { get; private set; }

    /// <summary>Loads a model directory or name (through <see cref="ModelResolver"/>), pooling as
    /// <paramref name="pooling"/> says, else as the model's sentence-transformers files say, else by mean.</summary>
    public static ServedModel Load(string nameOrPath, Pooling? pooling, Quantization quantization = Quantization.None) =>
        new(ModelResolver.ResolveModel(nameOrPath), pooling, quantization);

    /// <summary>Loads the model of <paramref name="options"/>, resolved once with its Hub settings and progress.</summary>
    public static ServedModel Load(ServerOptions options) =>
        new(ModelResolver.ResolveModel(options.Model, options.Hub, options.DownloadProgress), options.Pooling, options.Quantization);

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

    /// <summary>TEI's <c>model_type</c> for <c>/info</c>: <c>{"embedding": {"pooling": "mean"}}</c>, <c>{"classifier": {"id2label", "label2id"}}</c>, ...
    /// A label given to several ids maps to the first in label2id, as <see cref="BertConfig.Label2Id"/> says.</summary>
    public object ModelType()
    {
        object details = Task == "embedding"
            ? new Dictionary<string, object> { ["pooling"] = Pooling.ToString().ToLowerInvariant() }
            : new Dictionary<string, object>
            {
                ["id2label"] = Config.Id2Label.Select((label, i) => (label, i)).ToDictionary(x => x.i.ToString(System.Globalization.CultureInfo.InvariantCulture), x => x.label),
                ["label2id"] = Config.Label2Id,
            };
        return new Dictionary<string, object> { [Task] = details };
    }

    // ---- tokenization, on the request's thread ----

    /// <summary>
    /// The text an embedding input is prefixed with: the prompt <paramref name="promptName"/> names, else the model's
    /// default prompt (sentence-transformers' <c>default_prompt_name</c>), else none; as <see cref="SentenceEmbeddings.Embed(IReadOnlyList{string}, string?, CancellationToken)"/>
    /// and TEI choose it. A name the model does not have is TEI's validation error (413), naming the model's prompts.
    /// </summary>
    public string? Prompt(string? promptName)
    {
        var options = _embeddings.Options;
        if ((promptName ?? options.DefaultPromptName) is not { } name) return null;
        if (!options.Prompts.TryGetValue(name, out var prompt))
            throw ServerError.Invalid($"`prompt_name` is '{name}', which is not one of the model's prompts " +
                (options.Prompts.Count == 0 ? "(it has none)" : $"({string.Join(", ", options.Prompts.Keys)})"));
        if (!options.IncludePrompt)
            throw ServerError.Refused("The model's pooling excludes the prompt's tokens (include_prompt false), which NBert does not do: embed without a prompt.");
        return prompt;
    }

    /// <summary>A text or pair as the model will see it (after <paramref name="prompt"/>, when given), truncated to
    /// <see cref="MaxInputLength"/> from the given side when <paramref name="truncate"/>, else refused (413) when
    /// longer, as TEI does.</summary>
    public TokenEncoding Encode(string text, string? pair, bool truncate, TruncationSide side, string? prompt = null) =>
        Encode(text, pair, truncate, side, addSpecialTokens: true, limitTokens: true, prompt);

    /// <summary>A text's tokens for <c>/tokenize</c>, of the text after <paramref name="prompt"/> (when given): no
    /// truncation and no token limit (TEI checks only the characters).</summary>
    public TokenEncoding Tokenize(string text, bool addSpecialTokens, string? prompt) =>
        Encode(text, null, truncate: false, TruncationSide.Right, addSpecialTokens, limitTokens: false, prompt);

    private TokenEncoding Encode(string text, string? pair, bool truncate, TruncationSide side, bool addSpecialTokens, bool limitTokens, string? prompt)
    {
        if (text.Length == 0 && string.IsNullOrEmpty(pair)) throw ServerError.Empty("inputs");
        // TEI refuses (or cuts, when truncating) texts of more than 250 characters per token before tokenizing; the
        // prompt is added after the check.
        long chars = CountChars(text) + (pair is null ? 0 : CountChars(pair)), charLimit = (long)MaxInputLength * 250;
        if (chars > charLimit)
        {
            if (!truncate) throw ServerError.TooLong($"`inputs` must have less than {charLimit} characters. Given: {chars}");
            text = Cut(text, (int)(pair is null ? charLimit : charLimit / 2));
            if (pair is not null) pair = Cut(pair, (int)(charLimit / 2));
        }
        var e = Tokenizer.Encode(prompt + text, pair, new EncodeOptions
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

    /// <summary>
    /// Token ids given instead of text (input <paramref name="input"/> of the request): decoded and encoded again, as
    /// TEI does (without special tokens; with a prompt, the special tokens are dropped from the ids and added around
    /// the prompted text). An id outside the vocabulary is refused (422, naming it): Hugging Face's decoder would
    /// drop it without a word, and the model would see other text than was sent.
    /// </summary>
    public TokenEncoding EncodeIds(int[] ids, bool truncate, TruncationSide side, string? prompt, int input)
    {
        if (ids.Length == 0) throw ServerError.Empty("inputs");
        for (int i = 0; i < ids.Length; i++)
            if (ids[i] >= Tokenizer.VocabSize)
                throw ServerError.Refused($"`inputs`: token id {ids[i]} (input {input + 1}, position {i + 1}) is outside the " +
                    $"vocabulary 0..{Tokenizer.VocabSize - 1} (vocab_size {Tokenizer.VocabSize}).");
        return prompt is null
            ? Encode(Tokenizer.Decode(ids), null, truncate, side, addSpecialTokens: false, limitTokens: true, prompt: null)
            : Encode(Tokenizer.Decode(ids, skipSpecialTokens: true), null, truncate, side, addSpecialTokens: true, limitTokens: true, prompt);
    }

    public string Decode(int[] ids, bool skipSpecialTokens) => Tokenizer.Decode(ids, skipSpecialTokens);

    /// <summary>Code points, as TEI counts characters (<c>x-compute-characters</c>, the character limit).</summary>
    public static int CountChars(string s)
    {
        int n = s.Length;
        foreach (char c in s)
            if (char.IsLowSurrogate(c)) n--;
        return n;
    }

    /// <summary>For each UTF-16 index of <paramref name="s"/> (and its end), the code points before it, so that
    /// <c>/tokenize</c> turns every token's offsets into TEI's character offsets in one pass over the text.</summary>
    public static int[] CodePointIndex(string s)
    {
        var index = new int[s.Length + 1];
        for (int i = 0; i < s.Length; i++) index[i + 1] = index[i] + (char.IsLowSurrogate(s[i]) ? 0 : 1);
        return index;
    }

    private static string Cut(string s, int codePoints)
    {
        int units = 0;
        for (int n = 0; n < codePoints && units < s.Length; n++) units += char.IsSurrogatePair(s, units) ? 2 : 1;
        return s[..units];
    }

    // ---- the forward pass, on the batching loop's thread ----

    /// <summary>
    /// Runs the encoder over the batch the queue chose and gives each row what it asked for: its pooled vector (not
    /// normalised; as <see cref="SentenceEmbeddings.Pool"/> computes it for <c>nbert embed</c>), its token vectors, or its
    /// logits. The rows go in by length, in runs whose longest row is at most 1.25x the shortest (+ 8 tokens), each run
    /// one padded forward: requests arrive in any order, and one forward padded to the batch's longest row spent most
    /// of its time on padding (64 clients at 0.58x of the in-process rate, against 0.88x when rows were sorted). TEI's
    /// own backends run the batch without padding at all. Right padding gives a row the same bits in any batch, so the
    /// runs change no answer.
    /// </summary>
    public object[] RunEncoder(IReadOnlyList<TokenEncoding> encodings, IReadOnlyList<EncoderOutput> wanted)
    {
        var results = new object[encodings.Count];
        int[] order = [.. Enumerable.Range(0, encodings.Count).OrderBy(i => encodings[i].Length)];
        for (int start = 0, i = 1; i <= order.Length; i++)
            if (i == order.Length || encodings[order[i]].Length > encodings[order[start]].Length * 5 / 4 + 8)
            {
                RunPadded(order[start..i], encodings, wanted, results);
                start = i;
            }
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
                EncoderOutput.Pooled => _embeddings.Pool(output.LastHiddenState!.Data.AsSpan(r * s * h, s * h), padded[r].AttentionMask),
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
