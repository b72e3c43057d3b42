using System.CommandLine;
using NBert.Modeling;
using NBert.Tokenization;
using NBert.Training;
using NBert.Schema;
using NBert.Tasks;

namespace NBert.Cli.Commands;

/// <summary><c>nbert pretrain</c>: masked-LM (+ NSP) pre-training on a corpus in BERT's format.</summary>
public static class PretrainCommand
{
    public static Command Create(TextWriter stdout)
    {
        var model = new Option<string?>("--model") { Description = "The model to continue pre-training (a directory, a built-in name (minilm, arctic-xs) or a Hugging Face Hub id (org/name[@revision])); else --config and --vocab" };
        var config = new Option<string?>("--config") { Description = "config.json of a model to pre-train from scratch (vocab_size follows the vocabulary)" };
        var vocab = new Option<string?>("--vocab") { Description = "Directory with the tokenizer (vocab.txt or tokenizer.json), with --config" };
        var corpus = new Option<string[]>("--corpus") { Description = "Corpus files: a sentence per line, blank lines between documents (.gz read as gzip)", Required = true, AllowMultipleArgumentsPerToken = true };
        var evalCorpus = new Option<string[]>("--eval-corpus") { Description = "Held-out corpus files for masked-token and NSP accuracy", AllowMultipleArgumentsPerToken = true };
        var evalInstances = new Option<int>("--eval-instances") { Description = "Held-out instances to score", DefaultValueFactory = _ => 2000 }.AtLeast(1);
        var output = new Option<string>("--out") { Description = "Output directory (model, tokenizer files, checkpoints, metrics.jsonl, loss.svg)", Required = true };
        var maxSeqLength = new Option<int>("--max-seq-length") { DefaultValueFactory = _ => 128 }.AtLeast(8);
        var mlmProbability = new Option<double>("--mlm-probability") { DefaultValueFactory = _ => 0.15 }.Between(0, 1, open: true);
        var wholeWord = new Option<bool>("--whole-word-mask") { Description = "Mask whole words (all their pieces)" };
        var noNsp = new Option<bool>("--no-nsp") { Description = "Masked-LM only (RoBERTa style): single segments, BertForMaskedLM" };
        var dupeFactor = new Option<int>("--dupe-factor") { Description = "Passes over the corpus, each with other pairs and split points (Google's dupe_factor)", DefaultValueFactory = _ => 1 }.AtLeast(1);
        var shortSeq = new Option<double>("--short-seq-prob") { DefaultValueFactory = _ => 0.1 }.Between(0, 1);
        var maxPredictions = new Option<int?>("--max-predictions-per-seq") { Description = "Cap on masked-LM targets per sequence" }.AtLeast(1);
        var steps = new Option<long?>("--steps") { Description = "Optimiser steps (default: one pass over the instances)" }.AtLeast(1);
        var batchSize = new Option<int>("--batch-size") { Description = "Instances per micro-batch (per process under mpirun)", DefaultValueFactory = _ => 32 }.AtLeast(1);
        var accumulation = FineTuneCommands.GradientAccumulationOption();
        var lr = new Option<double>("--lr") { DefaultValueFactory = _ => 1e-4 }.Above(0);
        var warmup = new Option<int>("--warmup-steps") { DefaultValueFactory = _ => 0 }.AtLeast(0);
        var weightDecay = new Option<double>("--weight-decay") { DefaultValueFactory = _ => 0.01 }.AtLeast(0.0);
        var beta1 = new Option<double>("--adam-beta1") { DefaultValueFactory = _ => 0.9 }.AtLeastAndBelow(0, 1);
        var beta2 = new Option<double>("--adam-beta2") { DefaultValueFactory = _ => 0.999 }.AtLeastAndBelow(0, 1);
        var epsilon = new Option<double>("--adam-epsilon") { DefaultValueFactory = _ => 1e-8 }.Above(0);
        var maxGradNorm = new Option<double>("--max-grad-norm") { DefaultValueFactory = _ => 1.0 }.AtLeast(0.0);
        var evalSteps = new Option<int?>("--eval-steps") { Description = "Evaluate on the held-out corpus every N steps (default: at the end)" }.AtLeast(1);
        var saveSteps = new Option<int?>("--save-steps") { Description = "Write a resumable checkpoint every N steps" }.AtLeast(1);
        var resume = new Option<bool>("--resume") { Description = "Continue from the latest checkpoint in --out" };
        var overwrite = OutputDirectory.OverwriteOption();
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 42 };
        var loggingSteps = new Option<int>("--logging-steps") { Description = "Log the mean training loss every N steps", DefaultValueFactory = _ => 10 }.AtLeast(1);
        var loggingFirstStep = new Option<bool>("--logging-first-step") { Description = "Also log the first step's loss" };
        var distributed = DataParallelRun.Option();
        var command = new Command("pretrain", "Pre-train BERT with masked-LM and next-sentence prediction on your own corpus.")
        {
            model, config, vocab, corpus, evalCorpus, evalInstances, output, maxSeqLength, mlmProbability, wholeWord, noNsp, dupeFactor, shortSeq, maxPredictions,
            steps, batchSize, accumulation, lr, warmup, weightDecay, beta1, beta2, epsilon, maxGradNorm, evalSteps, saveSteps, resume, overwrite, seed, loggingSteps, loggingFirstStep,
            distributed,
        };
        command.SetAction(parse => DataParallelRun.Run(parse.GetValue(distributed), stdout, (parallel, stdout) =>
        {
            string outDir = parse.GetValue(output)!;
            var source = parse.GetValue(model) is { } m ? ModelCommands.Resolve(m) : null;
            OutputDirectory.Check(outDir, parse.GetValue(overwrite), source?.Directory, parse.GetValue(resume), resumable: true);
            // Every rank has looked at --out before rank 0 writes into it (else a later rank would find it not empty).
            parallel?.World.Barrier();
            var family = source is not null ? ModelCommands.LoadConfig(Path.Combine(source.Directory, "config.json")).Family
                : parse.GetValue(config) is { } configPath ? ModelCommands.LoadConfig(configPath).Family : ModelFamily.Bert;
            // A family without a next-sentence head (DistilBERT, RoBERTa) pre-trains with masked LM alone, as --no-nsp; so does an
            // ELECTRA, as ElectraForMaskedLM (its pre-training head is the discriminator, whose objective needs a generator).
            bool nsp = !parse.GetValue(noNsp) && FamilyNames.Supports(family, BertArchitecture.BertForNextSentencePrediction);
            var architecture = nsp ? BertArchitecture.BertForPreTraining : BertArchitecture.BertForMaskedLM;
            int seedValue = parse.GetValue(seed);
            var (pretrained, tokenizer) = LoadModel(source, parse.GetValue(config), parse.GetValue(vocab), architecture, seedValue);
            int maxLength = parse.GetValue(maxSeqLength);
            if (maxLength > pretrained.Config.MaxSequenceLength)
                throw new CliException($"--max-seq-length {maxLength} exceeds the {pretrained.Config.MaxSequenceLength} tokens the model's max_position_embeddings {pretrained.Config.MaxPositionEmbeddings} holds.");
            IEnumerable<PretrainingInstance> Instances(string[] files, int instanceSeed) =>
                new InstanceBuilder(maxLength, parse.GetValue(shortSeq), nsp, instanceSeed, dupeFactor: parse.GetValue(dupeFactor)).Build(PretrainingCorpus.Tokenized(PretrainingCorpus.Documents(files), tokenizer));
            Directory.CreateDirectory(outDir);
            // The corpus streams through the builder into a file: memory holds an offset per instance, not the corpus.
            // Each rank of a data-parallel run has its own (ranks on other machines may share a process id).
            string instancesPath = Path.Combine(outDir, $"instances.{Environment.ProcessId}{(parallel is null ? "" : $".rank{parallel.Rank}")}.tmp");
            using var cleanup = new DeleteOnDispose(instancesPath); // disposed last: after the map is closed
            using var train = PretrainingInstanceFile.Write(instancesPath, Instances(parse.GetValue(corpus)!, seedValue));
            if (train.Count == 0) throw new CliException($"{string.Join(", ", parse.GetValue(corpus)!)}: no instances (is the corpus empty?).");
            var held = parse.GetValue(evalCorpus) is { Length: > 0 } evalFiles
                ? Instances(evalFiles, seedValue + 1).Take(parse.GetValue(evalInstances)).ToList() : null;
            var collator = new MaskedLmCollator(tokenizer)
            {
                Probability = parse.GetValue(mlmProbability), WholeWordMask = parse.GetValue(wholeWord), MaxPredictionsPerSequence = parse.GetValue(maxPredictions),
            };
            long PerStep() => (long)parse.GetValue(batchSize) * parse.GetValue(accumulation) * (parallel?.WorldSize ?? 1);
            var options = FineTuneCommands.Options(() => new TrainerOptions
            {
                // One pass over the instances by default: each step takes batch size x accumulation x processes instances.
                MaxSteps = parse.GetValue(steps) ?? (train.Count + PerStep() - 1) / PerStep(),
                BatchSize = parse.GetValue(batchSize), GradientAccumulationSteps = parse.GetValue(accumulation), LearningRate = parse.GetValue(lr), WarmupSteps = parse.GetValue(warmup),
                AdamW = new AdamWOptions
                {
                    WeightDecay = parse.GetValue(weightDecay), Beta1 = parse.GetValue(beta1), Beta2 = parse.GetValue(beta2), Epsilon = parse.GetValue(epsilon),
                },
                MaxGradNorm = parse.GetValue(maxGradNorm), Seed = seedValue, EvalSteps = parse.GetValue(evalSteps) ?? int.MaxValue,
                SaveSteps = parse.GetValue(saveSteps), LogSteps = parse.GetValue(loggingSteps), LogFirstStep = parse.GetValue(loggingFirstStep), DataParallel = parallel,
                Resume = parse.GetValue(resume), OverwriteOutputDirectory = parse.GetValue(overwrite),
            });
            stdout.WriteLine($"{architecture}: {pretrained.Parameters.Values.Sum(p => p.Length):N0} parameters, vocabulary {tokenizer.VocabSize:N0}; " +
                $"{train.Count:N0} training instances ({train.Tokens:N0} tokens){(held is null ? "" : $", {held.Count:N0} held out")}; {options.MaxSteps:N0} steps");
            using var interruption = new Interruption();
            try
            {
                Pretraining.Run(pretrained, tokenizer, train, collator, held, options, outDir, FineTuneCommands.TrainingProgress(stdout), interruption.Token);
            }
            catch (OperationCanceledException) when (interruption.Token.IsCancellationRequested)
            {
                return Interruption.Stopped(stdout, outDir);
            }
            catch (TrainingDivergedException e)
            {
                throw FineTuneCommands.Diverged(e, parse.GetValue(lr), parse.GetValue(maxGradNorm), outDir);
            }
            stdout.WriteLine($"wrote {outDir}");
            return Program.Ok;
        }));
        return command;
    }

    /// <summary>Deletes a temporary file when disposed.</summary>
    private sealed class DeleteOnDispose(string path) : IDisposable
    {
        public void Dispose()
        {
            if (File.Exists(path)) File.Delete(path);
        }
    }

    private static (BertPreTrainedModel Model, BertTokenizer Tokenizer) LoadModel(NBert.Hub.ResolvedModel? model, string? config, string? vocab,
        BertArchitecture architecture, int seed)
    {
        if (model is not null)
        {
            if (config is not null) throw new CliException("Give either --model or --config with --vocab, not both.");
            using (ModelCommands.ExpectingNewHead())
                return (ModelCommands.Load(model, architecture), TokenizeCommand.LoadTokenizer(model));
        }
        if (config is null || vocab is null) throw new CliException("Give --model DIR, or --config CONFIG.json with --vocab DIR.");
        var tokenizer = TokenizeCommand.LoadTokenizer(ModelCommands.ResolveTokenizer(vocab));
        var c = BertConfig.Load(config) with { VocabSize = tokenizer.VocabSize, Architectures = [architecture.ToString()] };
        return (BertPreTrainedModel.FromConfig(c, architecture, seed), tokenizer);
    }
}
