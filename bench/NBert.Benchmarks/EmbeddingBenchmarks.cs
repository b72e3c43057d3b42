using System.Diagnostics;
using System.Globalization;
using System.Numerics.Tensors;
using System.Text;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using NBert.IO;
using NBert.Modeling;
using NBert.Pipelines;
using NBert.Tokenization;
using NBert.Schema;
using NBert.Tasks;

namespace NBert.Benchmarks;

/// <summary>
/// Sentence embeddings with each built-in model (all-MiniLM-L6-v2, snowflake-arctic-embed-xs): NBert against ONNX
/// Runtime running the package's original ONNX and NBert's own export of the model (<c>OnnxExport</c>: float32, int8 and
/// int8-all, its pooling in the graph), 2 threads each, batch 1 and batch 32, on real English sentences. All get the
/// same token ids (NBert's tokenizer, truncated at 128), the same length-sorted batches and the model's own pooling (mean
/// for MiniLM, [CLS] for arctic), so the engines differ only in the model.
/// </summary>
public static class EmbeddingBenchmarks
{
    public static string Run(IReadOnlyList<string> sentences, int rounds, TextWriter log)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| model | engine | batch | sentences/s | ratio to NBert | lowest cosine to NBert |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|");
        foreach (var model in BuiltinModels.All) RunModel(model, sentences, rounds, log, sb);
        sb.AppendLine();
        sb.AppendLine($"{sentences.Count:N0} sentences from the State of the Union corpus (the first of 5 to 60 words), {Environment.ProcessorCount} threads per engine, " +
            $"median of {rounds} rounds; {InstructionSet()}.");
        sb.AppendLine("Ratio above 1: faster than NBert. Every engine gets NBert's token ids (at most 128), length-sorted batches " +
            "and the model's own pooling (MiniLM: mean, arctic-xs: [CLS]), normalised.");
        return sb.ToString();
    }

    /// <summary>The kernels NBert runs on here: the float32 SGEMM's (Avx512, Avx2 or Portable) and the int8 one.</summary>
    public static string InstructionSet() => $"NBert float32: {NBert.Tensors.Sgemm.Best} SGEMM kernel; NBert int8: {Int8Kernel} kernel";

    /// <summary>Which int8 kernel NBert's int8 rows run here (AvxVnni, Avx512BW, Avx2 or Scalar).</summary>
    private static string Int8Kernel => NBert.Tensors.Int8Gemm.Best.ToString();

    private static void RunModel(BuiltinModel model, IReadOnlyList<string> sentences, int rounds, TextWriter log, StringBuilder sb)
    {
        int threads = Environment.ProcessorCount;
        NBert.Tensors.Threading.MaxThreads = threads;
        var embedder = SentenceEmbeddings.FromPretrained(BuiltinModels.Prepare(model));
        var quantized = SentenceEmbeddings.FromPretrained(BuiltinModels.Prepare(model));
        quantized.Model.Quantize(NBert.Modeling.Quantization.Int8);
        bool cls = embedder.Options.Pooling == Pooling.Cls;
        string onnx = Path.Combine(Path.GetTempPath(), $"nbert-bench-{model.ShortName}-{Environment.ProcessId}.onnx");
        File.WriteAllBytes(onnx, AssemblyResources.Read(BuiltinModels.FindPackageAssembly(model), "model.onnx"));
        // NBert's exports of the same model: the sentence-embedding graph (its pooling and normalisation inside).
        var exports = new[] { ("float32", OnnxQuantization.None), ("int8", OnnxQuantization.Int8), ("int8-all", OnnxQuantization.Int8All) }
            .Select(e => (Name: $"ONNX Runtime on NBert's export, {e.Item1}", Path: Path.ChangeExtension(onnx, $".export-{e.Item1}.onnx"), Quantization: e.Item2)).ToArray();
        foreach (var e in exports)
            OnnxExport.Save(embedder.Model, e.Path, new OnnxExportOptions { Task = OnnxTask.SentenceEmbeddings, Embedding = embedder.Options, Quantization = e.Quantization });
        try
        {
            var engines = new List<(string Name, Func<IReadOnlyList<string>, int, float[][]> Embed)>
            {
                ("NBert", (texts, batch) => new SentenceEmbeddings(embedder.Tokenizer, embedder.Model,
                    embedder.Options with { MaxLength = 128 }) { BatchSize = batch }.Embed(texts)),
                ($"NBert int8 ({Int8Kernel})", (texts, batch) => new SentenceEmbeddings(quantized.Tokenizer, quantized.Model,
                    quantized.Options with { MaxLength = 128 }) { BatchSize = batch }.Embed(texts)),
            };
            var sessions = new List<InferenceSession>();
            foreach (var (name, level) in new[] { ("ONNX Runtime, default options", (GraphOptimizationLevel?)null), ("ONNX Runtime, all graph optimisations", GraphOptimizationLevel.ORT_ENABLE_ALL) })
            {
                var options = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1 };
                if (level is { } l) options.GraphOptimizationLevel = l;
                var session = new InferenceSession(onnx, options);
                sessions.Add(session);
                engines.Add((name, (texts, batch) => OrtEmbed(session, embedder.Tokenizer, texts, batch, cls)));
            }
            foreach (var e in exports)
            {
                var session = new InferenceSession(e.Path, new SessionOptions
                {
                    IntraOpNumThreads = threads, InterOpNumThreads = 1, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
                });
                sessions.Add(session);
                engines.Add((e.Name, (texts, batch) => OrtEmbed(session, embedder.Tokenizer, texts, batch, cls)));
            }
            // Same vectors first: the comparison is of the same computation.
            var reference = engines[0].Embed(sentences.Take(64).ToArray(), 32);
            var agreement = engines.Skip(1).Select(e => e.Embed(sentences.Take(64).ToArray(), 32))
                .Select(v => v.Zip(reference, (a, b) => TensorPrimitives.CosineSimilarity(a, b)).Min()).ToArray();

            foreach (int batch in new[] { 1, 32 })
            {
                var times = engines.Select(_ => new List<double>()).ToArray();
                for (int r = 0; r < rounds; r++)
                    for (int e = 0; e < engines.Count; e++)
                    {
                        engines[e].Embed(sentences.Take(16).ToArray(), batch); // warm
                        var watch = Stopwatch.StartNew();
                        engines[e].Embed(sentences, batch);
                        times[e].Add(watch.Elapsed.TotalSeconds);
                        log.WriteLine($"{model.ShortName} batch {batch} round {r + 1} {engines[e].Name}: {watch.Elapsed.TotalSeconds:F2} s");
                    }
                double nbert = sentences.Count / times[0].Order().ElementAt(rounds / 2);
                for (int e = 0; e < engines.Count; e++)
                {
                    double rate = sentences.Count / times[e].Order().ElementAt(rounds / 2);
                    sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                        $"| {model.Name} | {engines[e].Name} | {batch} | {rate:F1} | {rate / nbert:F2} | {(e == 0 ? "-" : agreement[e - 1].ToString("F6", CultureInfo.InvariantCulture))} |"));
                }
            }
            foreach (var s in sessions) s.Dispose();
        }
        finally
        {
            File.Delete(onnx);
            foreach (var e in exports) File.Delete(e.Path);
        }
    }

    private static float[][] OrtEmbed(InferenceSession session, BertTokenizer tokenizer, IReadOnlyList<string> texts, int batchSize, bool cls)
    {
        var encodings = tokenizer.EncodeBatch(texts, new EncodeOptions { MaxLength = 128, Truncation = TruncationStrategy.LongestFirst });
        var order = Enumerable.Range(0, texts.Count).OrderBy(i => encodings[i].Length).ToArray();
        var result = new float[texts.Count][];
        for (int start = 0; start < order.Length; start += batchSize)
        {
            var rows = order.Skip(start).Take(batchSize).ToArray();
            var batch = tokenizer.Pad(rows.Select(i => encodings[i]).ToArray(), new EncodeOptions { Padding = PaddingStrategy.Longest });
            int b = batch.Count, s = batch[0].Length;
            long[] Flat(Func<TokenEncoding, int[]> f) => batch.SelectMany(f).Select(v => (long)v).ToArray();
            var inputs = new List<NamedOnnxValue>
            {
                NamedOnnxValue.CreateFromTensor("input_ids", new DenseTensor<long>(Flat(e => e.InputIds), [b, s])),
                NamedOnnxValue.CreateFromTensor("attention_mask", new DenseTensor<long>(Flat(e => e.AttentionMask), [b, s])),
                NamedOnnxValue.CreateFromTensor("token_type_ids", new DenseTensor<long>(Flat(e => e.TokenTypeIds), [b, s])),
            };
            using var outputs = session.Run(inputs);
            if (outputs.FirstOrDefault(o => o.Name == "sentence_embedding") is { } pooled) // NBert's export pools in the graph
            {
                var vectors = pooled.AsTensor<float>().ToArray();
                int dimension = vectors.Length / b;
                for (int r = 0; r < b; r++) result[rows[r]] = vectors.AsSpan(r * dimension, dimension).ToArray();
                continue;
            }
            var hidden = outputs.First(o => o.Name == "last_hidden_state").AsTensor<float>().ToArray();
            int h = hidden.Length / (b * s);
            for (int r = 0; r < b; r++)
            {
                var v = new float[h];
                if (cls) hidden.AsSpan(r * s * h, h).CopyTo(v);
                else
                {
                    int count = 0;
                    for (int t = 0; t < s; t++)
                        if (batch[r].AttentionMask[t] == 1) { TensorPrimitives.Add(v, hidden.AsSpan((r * s + t) * h, h), v); count++; }
                    TensorPrimitives.Divide(v, count, v);
                }
                TensorPrimitives.Divide(v, TensorPrimitives.Norm(v), v);
                result[rows[r]] = v;
            }
        }
        return result;
    }

    /// <summary>The first sentences of 5 to 60 words from the corpus chunks.</summary>
    public static List<string> Sentences(IEnumerable<string> chunks, int count) => chunks
        .SelectMany(c => c.Split(". ", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        .Select(s => s.EndsWith('.') ? s : s + ".")
        .Where(s => s.Split(' ').Length is >= 5 and <= 60)
        .Take(count).ToList();
}
