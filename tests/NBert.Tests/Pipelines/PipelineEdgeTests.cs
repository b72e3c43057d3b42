using Microsoft.Extensions.AI;
using NBert.IO;
using NBert.Pipelines;

namespace NBert.Tests.Pipelines;

/// <summary>Issue 29, items 4 and 5: truncation is told (one warning per call) or refused, every list call can be
/// cancelled between batches, the embedding generator takes its model's aliases, and search reads vectors in place.</summary>
public sealed class PipelineEdgeTests
{
    private const string Sentence = "The film was long, slow and in the end rather moving. ";

    /// <summary>A text of <paramref name="repeats"/> sentences (13 tokens each).</summary>
    private static string Long(int repeats) => string.Concat(Enumerable.Repeat(Sentence, repeats));

    private static List<string> Warnings(Action run)
    {
        var warnings = new List<string>();
        using (NBertWarnings.Capture(warnings.Add)) run();
        return warnings;
    }

    [Fact]
    public void Classification_warns_once_per_call_with_how_many_inputs_it_cut_and_from_how_many_tokens()
    {
        using var cls = TextClassification.FromPretrained(Fixtures.Path("model", "seqcls")).WithBatchSize(1);
        string a = Long(20), b = "Short and sweet.", c = Long(40);
        int tokensA = cls.Tokenizer.Encode(a).Length, tokensC = cls.Tokenizer.Encode(c).Length, max = cls.MaxLength;
        Assert.Equal(128, max); // the model's max_position_embeddings, below the tokenizer's 512
        Assert.True(tokensA > max && tokensC > tokensA);

        var warnings = Warnings(() => cls.Run([a, b, c]));
        Assert.Equal(
            $"Truncated 2 of 3 inputs to the 128 tokens the model takes (input 1 had {tokensA:N0}, input 3 had {tokensC:N0}): the rest was not read. " +
            "Set TruncateLongInputs to false to refuse such inputs instead.", Assert.Single(warnings));

        var single = Assert.Single(Warnings(() => cls.Run(c)));
        Assert.StartsWith($"Truncated the input from {tokensC:N0} tokens to the 128 the model takes: ", single);
        // More than three cut: the first three by position, and how many more.
        var many = Assert.Single(Warnings(() => cls.Run([a, a, b, a, c, c])));
        Assert.Contains($"Truncated 5 of 6 inputs to the 128 tokens the model takes (input 1 had {tokensA:N0}, input 2 had {tokensA:N0}, input 4 had {tokensA:N0}, and 2 more)", many);
        // Nothing cut, nothing said; a pair that fits is not truncated either.
        Assert.Empty(Warnings(() => cls.Run([b, b])));
        Assert.Empty(Warnings(() => cls.Run([(b, b)])));
        // The answer is the truncated text's: the same as for the text cut by hand to the model's length.
        var head = cls.Tokenizer.Decode(cls.Tokenizer.Encode(a, options: new() { MaxLength = max }).InputIds, skipSpecialTokens: true);
        using (NBertWarnings.Capture(_ => { }))
            Assert.Equal(cls.Run(head, new() { TopK = null }).Select(l => l.Score), cls.Run(a, new() { TopK = null }).Select(l => l.Score));
    }

    [Fact]
    public void Turning_truncation_off_refuses_the_first_long_input_by_position_and_token_count_before_the_model_runs()
    {
        using var cls = TextClassification.FromPretrained(Fixtures.Path("model", "seqcls"));
        cls.TruncateLongInputs = false;
        string a = Long(20), c = Long(40);
        int tokensA = cls.Tokenizer.Encode(a).Length;
        var e = Assert.Throws<NBertException>(() => cls.Run(["fine", a, c]));
        Assert.Equal($"Input 2 (\"{NBertException.Quote(a, 40)}\") has {tokensA:N0} tokens, more than the 128 the model takes, and " +
            "TruncateLongInputs is off: shorten it, or let the pipeline cut it to its first 128 tokens.", e.Message);
        var one = Assert.Throws<NBertException>(() => cls.Run(a));
        Assert.StartsWith($"The input (\"{NBertException.Quote(a, 40)}\") has {tokensA:N0} tokens", one.Message);
        // Inputs that fit run as before, and no warning is raised either way.
        Assert.Empty(Warnings(() => Assert.Single(cls.Run(["fine"]))));
    }

    [Fact]
    public void Every_pipeline_tells_or_refuses_its_truncation_and_windows_are_not_truncation()
    {
        string text = Long(30);
        using (var ner = TokenClassification.FromPretrained(Fixtures.Path("model", "tokcls")))
        {
            int tokens = ner.Tokenizer.Encode(text).Length;
            Assert.StartsWith($"Truncated the input from {tokens:N0} tokens to the {ner.MaxLength}", Assert.Single(Warnings(() => ner.Run(text))));
            Assert.Empty(Warnings(() => ner.Run(text, new TokenClassificationOptions { Stride = 16 })));
            ner.TruncateLongInputs = false;
            Assert.Throws<NBertException>(() => ner.Run(text));
            Assert.NotEmpty(ner.Run(text, new TokenClassificationOptions { Stride = 16, IgnoreLabels = [] })); // windows lose nothing
        }
        using (var fill = FillMask.FromPretrained(Fixtures.Path("model", "pretraining")))
        {
            string masked = "My dog is [MASK]. " + text;
            int tokens = fill.Tokenizer.Encode(masked).Length;
            Assert.StartsWith($"Truncated 1 of 2 inputs to the {fill.MaxLength} tokens the model takes (input 2 had {tokens:N0})",
                Assert.Single(Warnings(() => fill.Run(["My cat is [MASK].", masked]))));
            fill.TruncateLongInputs = false;
            Assert.Contains($"Input 2 (", Assert.Throws<NBertException>(() => fill.Run(["My cat is [MASK].", masked])).Message);
        }
        using (var nsp = NextSentence.FromPretrained(Fixtures.Path("model", "pretraining")))
        {
            int tokens = nsp.Tokenizer.Encode(text, "It was late.").Length;
            Assert.StartsWith($"Truncated the input from {tokens:N0} tokens", Assert.Single(Warnings(() => nsp.Run(text, "It was late."))));
            nsp.TruncateLongInputs = false;
            Assert.Contains($"has {tokens:N0} tokens", Assert.Throws<NBertException>(() => nsp.Run(text, "It was late.")).Message);
        }
        using (var qa = QuestionAnswering.FromPretrained(Fixtures.Path("model", "qa")))
        {
            // The context is read in windows, so a long one is neither warned about nor refused.
            qa.TruncateLongInputs = false;
            Assert.Empty(Warnings(() => Assert.Single(qa.Run([("What was the film?", text)]))));
        }
    }

    [Fact]
    public async Task Embeddings_and_the_generator_warn_at_the_models_own_limit_or_refuse()
    {
        using var embedder = SentenceEmbeddings.FromPretrained("minilm");
        Assert.Equal(256, embedder.MaxTokens); // sentence-transformers' max_seq_length, not the 512 positions
        string text = Long(30);
        int tokens = embedder.Tokenizer.Encode(text).Length;
        Assert.True(tokens is > 256 and < 512);
        Assert.Equal($"Truncated 1 of 2 inputs to the 256 tokens the model takes (input 2 had {tokens:N0}): the rest was not read. " +
            "Set TruncateLongInputs to false to refuse such inputs instead.", Assert.Single(Warnings(() => embedder.Embed(["short", text]))));
        Assert.Single(Warnings(() => embedder.TokenEmbeddings(text)));

        var generated = new List<string>();
        using (NBertWarnings.Capture(generated.Add)) await embedder.GenerateAsync(["short", text]);
        Assert.Equal(Warnings(() => embedder.Embed(["short", text])), generated);

        embedder.TruncateLongInputs = false;
        var e = await Assert.ThrowsAsync<NBertException>(() => embedder.GenerateAsync(["short", text]));
        Assert.StartsWith($"Input 2 (\"{NBertException.Quote(text, 40)}\") has {tokens:N0} tokens, more than the 256 the model takes", e.Message);
        Assert.Throws<NBertException>(() => embedder.Embed(text));
    }

    [Fact]
    public void A_cancelled_token_stops_every_list_call_before_its_first_batch()
    {
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        var token = cancelled.Token;
        using var cls = TextClassification.FromPretrained(Fixtures.Path("model", "seqcls"));
        Assert.Throws<OperationCanceledException>(() => cls.Run(["a", "b"], cancellationToken: token));
        Assert.Throws<OperationCanceledException>(() => cls.Run([("a", (string?)"b")], cancellationToken: token));
        using var ner = TokenClassification.FromPretrained(Fixtures.Path("model", "tokcls"));
        Assert.Throws<OperationCanceledException>(() => ner.Run(["John lives in Paris."], cancellationToken: token));
        using var fill = FillMask.FromPretrained(Fixtures.Path("model", "pretraining"));
        Assert.Throws<OperationCanceledException>(() => fill.Run(["My dog is [MASK]."], cancellationToken: token));
        Assert.Throws<OperationCanceledException>(() => fill.RunEachMask(["My [MASK] is [MASK]."], cancellationToken: token));
        using var nsp = NextSentence.FromPretrained(Fixtures.Path("model", "pretraining"));
        Assert.Throws<OperationCanceledException>(() => nsp.Run([("He went home.", "It was late.")], token));
        using var qa = QuestionAnswering.FromPretrained(Fixtures.Path("model", "qa"));
        Assert.Throws<OperationCanceledException>(() => qa.Run([("Who?", "John lives in Paris.")], cancellationToken: token));
        using var embedder = SentenceEmbeddings.FromPretrained("minilm");
        Assert.Throws<OperationCanceledException>(() => embedder.Embed(["a"], cancellationToken: token));
        // The same calls with a live token answer.
        Assert.Equal(2, cls.Run(["a", "b"], cancellationToken: CancellationToken.None).Count);
        Assert.Single(embedder.Embed(["a"], promptName: null, CancellationToken.None));
    }

    [Fact]
    public void A_token_cancelled_during_a_call_stops_it_between_batches()
    {
        using var cls = TextClassification.FromPretrained(Fixtures.Path("model", "seqcls")).WithBatchSize(1);
        var texts = Enumerable.Range(0, 4000).Select(i => $"{i} {Long(2)}").ToList();
        var watch = System.Diagnostics.Stopwatch.StartNew();
        cls.Run(texts.Take(400).ToList());
        var tenth = watch.Elapsed; // a tenth of the work, uncancelled
        using var soon = new CancellationTokenSource();
        // Cancelled once tokenizing is done and some batches have run: the rest of the 4,000 batches must not run.
        var run = Task.Run(() => cls.Run(texts, cancellationToken: soon.Token));
        Thread.Sleep(tenth);
        soon.Cancel();
        watch.Restart();
        Assert.ThrowsAny<OperationCanceledException>(() => run.GetAwaiter().GetResult());
        Assert.True(watch.Elapsed < tenth * 5, $"the call went on for {watch.Elapsed.TotalMilliseconds:F0} ms after cancellation (a tenth of it takes {tenth.TotalMilliseconds:F0} ms)");
    }

    [Theory]
    [InlineData("minilm")]
    [InlineData("MiniLM")]
    [InlineData("all-MiniLM-L6-v2")]
    [InlineData("sentence-transformers/all-MiniLM-L6-v2")]
    public async Task The_generator_takes_its_models_aliases(string alias)
    {
        using var generator = SentenceEmbeddings.FromPretrained("minilm");
        var plain = await generator.GenerateAsync(["A short text."]);
        var named = await generator.GenerateAsync(["A short text."], new EmbeddingGenerationOptions { ModelId = alias });
        Assert.Equal(plain[0].Vector.ToArray(), named[0].Vector.ToArray());
        // Another built-in's alias names another model.
        var e = await Assert.ThrowsAsync<ArgumentException>(() => generator.GenerateAsync(["x"], new EmbeddingGenerationOptions { ModelId = "arctic-xs" }));
        Assert.Contains("'sentence-transformers/all-MiniLM-L6-v2' (loaded as 'minilm'), not 'arctic-xs'", e.Message);
    }

    [Fact]
    public async Task A_model_loaded_from_a_directory_answers_to_that_path_and_its_directory_name()
    {
        string directory = Fixtures.Path("model", "encoder_only");
        using var embedder = SentenceEmbeddings.FromPretrained(directory);
        Assert.Single(await embedder.GenerateAsync(["x"], new EmbeddingGenerationOptions { ModelId = directory }));
        Assert.Single(await embedder.GenerateAsync(["x"], new EmbeddingGenerationOptions { ModelId = "encoder_only" }));
        await Assert.ThrowsAsync<ArgumentException>(() => embedder.GenerateAsync(["x"], new EmbeddingGenerationOptions { ModelId = "minilm" }));
    }

    [Fact]
    public async Task Search_reads_generated_embeddings_and_memory_in_place_with_the_same_answer()
    {
        using var generator = SentenceEmbeddings.FromPretrained("minilm");
        string[] corpus = ["A cat sat on the mat.", "Stocks fell sharply today.", "The kitten slept on the rug.", "Rain is expected tomorrow."];
        var embeddings = await generator.GenerateAsync(corpus);
        var query = (await generator.GenerateAsync(["Where did the cat sleep?"]))[0];
        var expected = SentenceEmbeddings.Search(query.Vector.ToArray(), embeddings.Select(e => e.Vector.ToArray()).ToList(), 3);
        Assert.Equal(expected, SentenceEmbeddings.Search(query.Vector.Span, embeddings, 3));
        Assert.Equal(expected, SentenceEmbeddings.Search(query.Vector.Span, embeddings.Select(e => e.Vector).ToList(), 3));
        Assert.Equal([0, 2], expected.Take(2).Select(h => h.Index).Order());

        // Slices of one buffer (a vector store's rows): 2,000 x 384 floats are 3 MB; searching them must not copy them.
        var rng = new Random(1);
        var buffer = new float[2000 * 384];
        for (int i = 0; i < buffer.Length; i++) buffer[i] = (float)rng.NextDouble() - 0.5f;
        var rows = Enumerable.Range(0, 2000).Select(i => (ReadOnlyMemory<float>)buffer.AsMemory(i * 384, 384)).ToList();
        var byArrays = SentenceEmbeddings.Search(buffer.AsSpan(5 * 384, 384), rows.Select(r => r.ToArray()).ToList(), 5);
        SentenceEmbeddings.Search(buffer.AsSpan(5 * 384, 384), rows, 5); // warm up
        long before = GC.GetAllocatedBytesForCurrentThread();
        var hits = SentenceEmbeddings.Search(buffer.AsSpan(5 * 384, 384), rows, 5);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(byArrays, hits);
        Assert.Equal(5, hits[0].Index);
        // The scores and the sort: about 16 bytes per row, not the 1,536 bytes a row's copy would take.
        Assert.True(allocated < 200_000, $"{allocated:N0} bytes allocated to search 2,000 rows");
    }
}
