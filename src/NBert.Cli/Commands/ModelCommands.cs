using System.CommandLine;
using System.Text.Json;
using NBert.Hub;
using NBert.IO;
using NBert.Modeling;
using Spectre.Console;
using NBert.Schema;

namespace NBert.Cli.Commands;

/// <summary><c>nbert forward</c>, <c>nbert init</c> and <c>nbert inspect</c>: running, creating and
/// describing checkpoints.</summary>
public static class ModelCommands
{
    private static readonly Dictionary<string, BertArchitecture?> Heads = new()
    {
        ["auto"] = null,
        ["base"] = BertArchitecture.BertModel,
        ["pretraining"] = BertArchitecture.BertForPreTraining,
        ["mlm"] = BertArchitecture.BertForMaskedLM,
        ["nsp"] = BertArchitecture.BertForNextSentencePrediction,
        ["sequence-classification"] = BertArchitecture.BertForSequenceClassification,
        ["token-classification"] = BertArchitecture.BertForTokenClassification,
        ["question-answering"] = BertArchitecture.BertForQuestionAnswering,
    };

    public static Command Forward(TextWriter stdout)
    {
        var model = new Option<string>("--model") { Description = "The model (config.json and weights): a directory, a built-in name (minilm, arctic-xs) or a Hugging Face Hub id (org/name[@revision])", Required = true };
        var inputs = new Option<string>("--inputs") { Description = "safetensors with input_ids [batch, sequence] and optional token_type_ids, attention_mask (I64 or I32)", Required = true };
        var output = new Option<string>("--output") { Description = "safetensors file to write the outputs to (float32)", Required = true };
        var hidden = new Option<bool>("--hidden-states") { Description = "Also write hidden_states.N" };
        var attentions = new Option<bool>("--attentions") { Description = "Also write attentions.N" };
        var head = new Option<string>("--head") { Description = "Which head to run; auto follows architectures in config.json", DefaultValueFactory = _ => "auto" };
        head.AcceptOnlyFromAmong([.. Heads.Keys]);
        var quantize = QuantizeOption.Create();
        var command = new Command("forward", "Run a model on a batch of ids and write its outputs, named as transformers names them.")
        {
            model, inputs, output, hidden, attentions, head, quantize,
        };
        command.SetAction(parse =>
        {
            var m = Load(Resolve(parse.GetValue(model)!), Heads[parse.GetValue(head)!]);
            m.Quantize(QuantizeOption.Value(parse, quantize));
            var batch = ReadInputs(parse.GetValue(inputs)!);
            ModelOutput result;
            try
            {
                result = m.Forward(batch, parse.GetValue(hidden), parse.GetValue(attentions));
            }
            catch (ArgumentException e) // an id or a type past the model's vocabulary: the inputs file's, named
            {
                throw new CliException($"{parse.GetValue(inputs)}: {e.Message}", e);
            }
            string path = parse.GetValue(output)!;
            SafeTensorsWriter.Write(path, result.Named().Select(t => SafeTensor.Float32(t.Name, t.Tensor.Shape, t.Tensor.Data)));
            stdout.WriteLine($"wrote {string.Join(", ", result.Named().Select(t => t.Name))} to {path}");
            if (m.Architecture == BertArchitecture.BertModel && !m.HasPoolingLayer)
                stdout.WriteLine("no pooler_output: the model has no pooler (its checkpoint holds no pooler weights)");
            return Program.Ok;
        });
        return command;
    }

    public static Command Init(TextWriter stdout)
    {
        var config = new Option<string>("--config") { Description = "config.json to build the model from", Required = true };
        var output = new Option<string>("--out") { Description = "Directory to write config.json and model.safetensors to", Required = true };
        var seed = new Option<int>("--seed") { Description = "Random seed", DefaultValueFactory = _ => 0 };
        var architecture = new Option<string?>("--architecture") { Description = "BertModel, BertForPreTraining, ... (default: the config's architectures, else BertModel)" };
        var vocab = new Option<string?>("--vocab") { Description = "vocab.txt to copy beside the weights" };
        var overwrite = OutputDirectory.OverwriteOption();
        var command = new Command("init", "Write a randomly initialised checkpoint (transformers' scheme) that transformers can load.")
        {
            config, output, seed, architecture, vocab, overwrite,
        };
        command.SetAction(parse =>
        {
            OutputDirectory.Check(parse.GetValue(output)!, parse.GetValue(overwrite));
            string configPath = parse.GetValue(config)!;
            var c = LoadConfig(configPath);
            BertArchitecture arch;
            try
            {
                arch = parse.GetValue(architecture) is { } name ? BertArchitectures.Parse(name) : BertArchitectures.FromConfig(c);
            }
            catch (NotSupportedException e) // --architecture names none that NBert has
            {
                throw new CliException($"--architecture: {e.Message}", e);
            }
            catch (NBertException e)
            {
                throw new CliException($"{configPath}: {e.Message}", e);
            }
            try
            {
                BertArchitectures.EnsureFitsInMemory(c, arch); // before anything is allocated
            }
            catch (NBertException e)
            {
                throw new CliException($"{configPath}: {e.Message}", e);
            }
            string? vocabPath = parse.GetValue(vocab);
            if (vocabPath is not null && !File.Exists(vocabPath)) throw new CliException($"vocabulary '{vocabPath}' does not exist.");
            string dir = parse.GetValue(output)!;
            var model = BertPreTrainedModel.FromConfig(c, arch, parse.GetValue(seed));
            using (var files = new StagedFiles(dir))
            {
                if (vocabPath is not null) files.Copy("vocab.txt", vocabPath);
                model.SavePretrained(files);
                files.Commit();
            }
            stdout.WriteLine($"wrote a random {arch} ({model.Parameters.Values.Sum(t => t.Length):N0} parameters, seed {parse.GetValue(seed)}) to {dir}");
            return Program.Ok;
        });
        return command;
    }

    public static Command ImportOnnx(TextWriter stdout)
    {
        var onnx = new Argument<string>("MODEL.onnx") { Description = "An ONNX export of a BERT, DistilBERT, RoBERTa or ELECTRA model (or of one of its heads: its base model is imported)" };
        var vocab = new Option<string>("--vocab", "--tokenizer") { Description = "Its tokenizer: vocab.txt, tokenizer.json, vocab.json (merges.txt beside it) or a folder holding them", Required = true };
        var output = new Option<string>("--out") { Description = "Directory to write the checkpoint to", Required = true };
        var heads = new Option<int?>("--heads") { Description = "Attention heads, when the graph does not say" }.AtLeast(1);
        var overwrite = OutputDirectory.OverwriteOption();
        var command = new Command("import-onnx", "Turn an ONNX BERT, DistilBERT, RoBERTa or ELECTRA into an ordinary checkpoint directory (config.json, model.safetensors, the tokenizer's files).")
        {
            onnx, vocab, output, heads, overwrite,
        };
        command.SetAction(parse =>
        {
            OutputDirectory.Check(parse.GetValue(output)!, parse.GetValue(overwrite));
            var result = OnnxImport.ToDirectory(parse.GetValue(onnx)!, parse.GetValue(vocab)!, parse.GetValue(output)!, parse.GetValue(heads));
            var c = result.Config;
            stdout.WriteLine($"wrote {parse.GetValue(output)}: a {FamilyNames.ClassName(c.Family, BertArchitecture.BertModel)}, {c.NumHiddenLayers} layers, hidden {c.HiddenSize}, {c.NumAttentionHeads} heads, " +
                $"intermediate {c.IntermediateSize}, vocabulary {c.VocabSize}{(c.ProjectsEmbeddings ? $", embeddings {c.EmbeddingWidth} projected to {c.HiddenSize}" : "")}");
            foreach (var note in result.Notes) stdout.WriteLine($"  {note}");
            return Program.Ok;
        });
        return command;
    }

    public static Command Inspect(TextWriter stdout)
    {
        var model = new Option<string>("--model") { Description = "The model: a directory, a built-in name (minilm, arctic-xs) or a Hugging Face Hub id (org/name[@revision])", Required = true };
        var json = new Option<bool>("--json") { Description = "One JSON object instead of tables" };
        var command = new Command("inspect", "Describe a checkpoint: config, parameter count, tensors and what loading it does.") { model, json };
        command.SetAction(parse =>
        {
            var resolved = Resolve(parse.GetValue(model)!);
            string dir = resolved.Directory;
            var m = Load(resolved, null);
            List<TensorInfo> tensors;
            using (var source = Checkpoint.Open(dir)) tensors = source.Tensors.ToList();
            long parameters = m.Parameters.Values.Sum(t => t.Length);
            var report = m.LoadReport!;
            var c = m.Config;
            if (parse.GetValue(json))
            {
                stdout.WriteLine(JsonSerializer.Serialize(new
                {
                    architecture = FamilyNames.ClassName(c.Family, m.Architecture),
                    config = new { c.VocabSize, c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads, c.IntermediateSize, c.MaxPositionEmbeddings, c.HiddenAct, labels = c.Id2Label },
                    parameters,
                    pooler = m.HasPoolingLayer,
                    tensors = tensors.Select(t => new { name = t.Name, dtype = t.DType.ToString(), shape = t.Shape }),
                    initialized = report.Initialized,
                    unexpected = report.Unexpected,
                    ignored = report.Ignored,
                    non_finite = report.NonFinite.Select(t => new { name = t.Name, count = t.Count, length = t.Length }),
                }, new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower }));
                return Program.Ok;
            }
            var console = Program.Console(stdout);
            var summary = new Table().AddColumns("field", "value").Title($"{Markup.Escape(dir)}: {FamilyNames.ClassName(c.Family, m.Architecture)}");
            foreach (var (k, v) in new (string, object?)[]
            {
                ("vocab_size", c.VocabSize), ("embedding_size", c.EmbeddingSize), ("hidden_size", c.HiddenSize), ("num_hidden_layers", c.NumHiddenLayers),
                ("num_attention_heads", c.NumAttentionHeads), ("intermediate_size", c.IntermediateSize),
                ("max_position_embeddings", c.MaxPositionEmbeddings), ("hidden_act", c.HiddenAct),
                ("labels", c.NumLabels <= 20 ? string.Join(", ", c.Id2Label) : $"{string.Join(", ", c.Id2Label.Take(20))}, ... ({c.NumLabels:N0} labels)"),
                ("pooler", m.HasPoolingLayer ? PoolerName(m) : "no pooler"),
                ("parameters", parameters.ToString("N0")),
            })
            {
                if (v is null) continue; // embedding_size: ELECTRA's only
                summary.AddRow(k, Markup.Escape(v.ToString() ?? ""));
            }
            console.Write(summary);
            var table = new Table().AddColumns("tensor", "dtype", "shape");
            foreach (var t in tensors) table.AddRow(Markup.Escape(t.Name), t.DType.ToString(), Markup.Escape($"[{string.Join(", ", t.Shape)}]"));
            console.Write(table);
            console.WriteLine(!report.Warnings.Any()
                ? "Load report: every parameter loaded, nothing unused."
                : string.Join(Environment.NewLine, report.Warnings.Select(w => "Load report: " + w)));
            return Program.Ok;
        });
        return command;
    }

    /// <summary>A directory or a model's name resolved, once per command (<see cref="ModelResolver"/>), with the command
    /// line's Hub settings: a built-in name, or a Hub name downloaded into the Hub cache with a progress bar on a terminal.</summary>
    public static ResolvedModel Resolve(string model) => ModelResolver.ResolveModel(model, HubCommands.Settings, HubCommands.Progress);

    /// <summary>As <see cref="Resolve"/>, for a command that needs only the tokenizer: a Hub repository's weights are not
    /// downloaded.</summary>
    public static ResolvedModel ResolveTokenizer(string model) => ModelResolver.ResolveTokenizerModel(model, HubCommands.Settings, HubCommands.Progress);

    /// <summary>Silences, until disposed, the library's warnings about a head being newly initialised or weights unused:
    /// a command about to train that head (finetune, pretrain, quickstart) or only measuring speed (bench) expects them.</summary>
    internal static IDisposable ExpectingNewHead() => NBertWarnings.Capture(_ => { });

    /// <summary>Loads a model (what cannot be loaded, the library says, and <see cref="Program.Fail"/> reports).</summary>
    public static BertPreTrainedModel Load(ResolvedModel model, BertArchitecture? architecture) =>
        BertPreTrainedModel.FromPretrained(model, architecture);

    internal static BertConfig LoadConfig(string path) => BertConfig.Load(path);

    /// <summary>input_ids [batch, sequence] (or [sequence]) and the optional tensors, as ints.</summary>
    public static ModelInputs ReadInputs(string path)
    {
        {
            using var file = new SafeTensorsFile(path);
            if (!file.Contains("input_ids")) throw new CliException($"{path}: no tensor 'input_ids'.");
            var shape = file.Info("input_ids").Shape;
            if (shape.Length is not (1 or 2)) throw new CliException($"{path}: input_ids must be [batch, sequence], not [{string.Join(", ", shape)}].");
            int batch = shape.Length == 2 ? shape[0] : 1, sequence = shape[^1];
            int[]? Ints(string name)
            {
                if (!file.Contains(name)) return null;
                var info = file.Info(name);
                if (info.ElementCount != (long)batch * sequence)
                    throw new CliException($"{path}: tensor '{name}' has shape [{string.Join(", ", info.Shape)}], but input_ids is [{batch}, {sequence}].");
                return file.ReadInt64(name).Select(v => v is < int.MinValue or > int.MaxValue
                    ? throw new CliException($"{path}: tensor '{name}' holds {v}, outside the int range.") : (int)v).ToArray();
            }
            return new ModelInputs(batch, sequence, Ints("input_ids")!, Ints("token_type_ids"), Ints("attention_mask"));
        }
    }

    /// <summary>The dense layer in the pooler's slot as the family names it (BERT's <c>pooler.dense</c>, DistilBERT's
    /// <c>pre_classifier</c>, RoBERTa's sequence classifier's <c>classifier.dense</c>), without the base model's prefix.</summary>
    private static string PoolerName(BertPreTrainedModel m)
    {
        string name = FamilyNames.CheckpointName("pooler.dense.weight", m.Architecture, m.Config.Family)[..^".weight".Length];
        string prefix = FamilyNames.BasePrefix(m.Config.Family) + ".";
        return name.StartsWith(prefix, StringComparison.Ordinal) ? name[prefix.Length..] : name;
    }
}
