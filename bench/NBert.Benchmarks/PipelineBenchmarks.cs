using System.Diagnostics;
using System.Globalization;
using System.Text;
using NBert.IO;
using NBert.Modeling;
using NBert.Pipelines;
using NBert.Tensors;
using NBert.Tokenization;
using NBert.Schema;

namespace NBert.Benchmarks;

/// <summary>
/// Throughput of each pipeline on all-MiniLM-L6-v2's encoder (the built-in model; heads newly initialised,
/// which costs the same as trained ones) over State of the Union sentences, on 1 thread and on all cores.
/// </summary>
public static class PipelineBenchmarks
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static string Run(IReadOnlyList<string> sentences, int rounds, TextWriter log)
    {
        string directory = BuiltinModels.Resolve("minilm");
        var tokenizer = BertTokenizer.FromPretrained(directory);
        BertPreTrainedModel Model(BertArchitecture a, int labels = 2) =>
            BertPreTrainedModel.FromPretrained(directory, a, seed: 1, c => c with { Id2Label = Enumerable.Range(0, labels).Select(i => $"LABEL_{i}").ToArray() });
        var classify = new TextClassification(tokenizer, Model(BertArchitecture.BertForSequenceClassification));
        var ner = new TokenClassification(tokenizer, Model(BertArchitecture.BertForTokenClassification, 9));
        var fill = new FillMask(tokenizer, Model(BertArchitecture.BertForMaskedLM));
        var qa = new QuestionAnswering(tokenizer, Model(BertArchitecture.BertForQuestionAnswering));
        var embed = new SentenceEmbeddings(tokenizer, Model(BertArchitecture.BertModel));
        var masked = sentences.Select(s =>
        {
            var words = s.Split(' ');
            words[words.Length / 2] = "[MASK]";
            return string.Join(' ', words);
        }).ToList();
        var pairs = sentences.Select(s => (s, (string?)null)).ToList();
        // QA: a question against a paragraph of five sentences.
        var paragraphs = Enumerable.Range(0, sentences.Count / 5).Select(i => ("What did the president ask of Congress?", string.Join(' ', sentences.Skip(5 * i).Take(5)))).ToList();
        var cases = new (string Name, int Count, Action Run)[]
        {
            ("text-classification", sentences.Count, () => classify.Run(pairs)),
            ("token-classification (simple)", sentences.Count, () => ner.Run(sentences, new TokenClassificationOptions { Aggregation = Aggregation.Simple })),
            ("fill-mask (top 5)", masked.Count, () => fill.Run(masked)),
            ("question-answering (5-sentence contexts)", paragraphs.Count, () => qa.Run(paragraphs)),
            ("sentence embeddings", sentences.Count, () => embed.Embed(sentences)),
        };
        var sb = new StringBuilder();
        sb.AppendLine("| pipeline | inputs | 1 thread, inputs/s | " + Environment.ProcessorCount + " threads, inputs/s |");
        sb.AppendLine("|---|---:|---:|---:|");
        foreach (var (name, count, run) in cases)
        {
            var perThreads = new List<double>();
            foreach (int threads in new[] { 1, Environment.ProcessorCount })
            {
                Threading.MaxThreads = threads;
                run(); // warm-up
                var times = new List<double>();
                for (int r = 0; r < rounds; r++)
                {
                    var clock = Stopwatch.StartNew();
                    run();
                    times.Add(clock.Elapsed.TotalSeconds);
                }
                perThreads.Add(count / EngineBenchmarks.Median(times));
            }
            string line = string.Create(Inv, $"| {name} | {count:N0} | {perThreads[0]:N0} | {perThreads[1]:N0} |");
            log.WriteLine(line);
            sb.AppendLine(line);
        }
        sb.AppendLine();
        sb.AppendLine($"all-MiniLM-L6-v2's encoder (6 layers, hidden 384) with new heads; {sentences.Count:N0} State of the Union sentences");
        sb.AppendLine("(QA: a fixed question against paragraphs of five of them), batches of 32 sorted by length, median of the rounds.");
        return sb.ToString();
    }
}
