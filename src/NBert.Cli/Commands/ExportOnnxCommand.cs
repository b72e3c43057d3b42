using System.CommandLine;
using NBert.Modeling;
using NBert.Schema;
using NBert.Tokenization;

namespace NBert.Cli.Commands;

/// <summary><c>nbert export-onnx</c>: a model out to ONNX, in the folder optimum writes.</summary>
public static class ExportOnnxCommand
{
    private static readonly Dictionary<string, OnnxTask> Tasks = Enum.GetValues<OnnxTask>().ToDictionary(OnnxExport.ToolName);

    public static Command Create(TextWriter stdout)
    {
        var model = new Option<string>("--model") { Description = "The model: a directory, a built-in name (minilm, arctic-xs) or a Hugging Face Hub id (org/name[@revision])", Required = true };
        var output = new Option<string>("--out") { Description = "Directory to write model.onnx, config.json and the tokenizer's files to", Required = true };
        var task = new Option<string>("--task")
        {
            Description = "What the graph computes; auto: the model's own head, or sentence-embeddings for a BertModel with sentence-transformers' files",
            DefaultValueFactory = _ => "auto",
        };
        task.AcceptOnlyFromAmong([.. Tasks.Keys]);
        var opset = new Option<int>("--opset") { Description = "ONNX opset, 17 to 21", DefaultValueFactory = _ => 17 };
        opset.Validators.Add(result =>
        {
            if (!result.Implicit && result.GetValueOrDefault<int>() is var v && v is < 17 or > 21)
                result.AddError($"--opset must be between 17 (the first with LayerNormalization) and 21, not {v}.");
        });
        var quantize = new Option<string?>("--quantize")
        {
            Description = "int8: dynamic int8 quantization (ONNX Runtime's quantize_dynamic form) of the attention, pooler and heads, the feed-forward layers kept float32; int8-all: of every linear layer (smallest, least accurate)",
        };
        quantize.AcceptOnlyFromAmong("int8", "int8-all");
        var overwrite = OutputDirectory.OverwriteOption();
        var command = new Command("export-onnx", "Export a model to ONNX (float32 or int8), with its config and tokenizer, as optimum does.")
        {
            model, output, task, opset, quantize, overwrite,
        };
        command.SetAction(parse =>
        {
            string outDir = parse.GetValue(output)!;
            OutputDirectory.Check(outDir, parse.GetValue(overwrite)); // before a Hub model is downloaded
            var source = ModelCommands.Resolve(parse.GetValue(model)!);
            string dir = source.Directory;
            OutputDirectory.Check(outDir, parse.GetValue(overwrite), modelDirectory: dir);
            var m = ModelCommands.Load(source, null);
            // What cannot be read, the library says and Program.Fail reports (exit 2).
            var tokenizer = BertTokenizer.FromPretrained(source);
            var embedding = SentenceTransformersConfig.Read(dir);
            var chosen = Tasks[parse.GetValue(task)!];
            // As optimum exports a sentence-transformers model: its pooling and normalisation in the graph.
            if (chosen == OnnxTask.Auto)
                chosen = embedding is not null && m.Architecture == BertArchitecture.BertModel ? OnnxTask.SentenceEmbeddings : OnnxExport.TaskFor(m);
            var options = new OnnxExportOptions { Task = chosen, Opset = parse.GetValue(opset), Quantization = parse.GetValue(quantize) switch { "int8" => OnnxQuantization.Int8, "int8-all" => OnnxQuantization.Int8All, _ => OnnxQuantization.None }, Embedding = embedding };
            try
            {
                OnnxExport.ToDirectory(m, tokenizer, outDir, options);
            }
            catch (ArgumentException e)
            {
                throw new CliException($"--task {OnnxExport.ToolName(chosen)}: {CliException.Reason(e)}", e);
            }
            string onnx = Path.Combine(outDir, OnnxExport.ModelFileName), data = onnx + "_data";
            long bytes = new FileInfo(onnx).Length + (File.Exists(data) ? new FileInfo(data).Length : 0);
            stdout.WriteLine($"wrote {onnx} ({bytes / 1e6:N1} MB{(File.Exists(data) ? ", weights in model.onnx_data" : "")}): {Schema.FamilyNames.ClassName(m.Config.Family, m.Architecture)} as {OnnxExport.ToolName(chosen)}, " +
                $"{parse.GetValue(quantize) ?? "float32"}, opset {options.Opset}");
            stdout.WriteLine($"  inputs: input_ids, attention_mask{(m.Config.HasTokenTypes ? ", token_type_ids" : "")} (int64, [batch_size, sequence_length])");
            stdout.WriteLine($"  outputs: {string.Join(", ", OnnxExport.OutputNames(m, chosen))}");
            if (chosen == OnnxTask.SentenceEmbeddings)
            {
                var e = embedding ?? new EmbeddingOptions();
                stdout.WriteLine($"  pooling: {e.Pooling.ToString().ToLowerInvariant()}{(e.Normalize ? ", normalised" : "")}");
            }
            return Program.Ok;
        });
        return command;
    }
}
