using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using NBert.Modeling;
using NBert.Tensors;
using NBert.Training;
using Spectre.Console;
using NBert.Schema;

namespace NBert.Cli.Commands;

/// <summary>
/// <c>nbert bench</c>: NBert's own speed on this machine for a model: tokenization, inference and a training
/// step. The comparisons with other engines live in bench/NBert.Benchmarks (they need bench-only packages).
/// </summary>
public static class BenchCommand
{
    public static Command Create(TextWriter stdout)
    {
        var model = new Option<string>("--model") { Description = "The model: a directory, a built-in name (minilm, arctic-xs) or a Hugging Face Hub id (org/name[@revision])", DefaultValueFactory = _ => "minilm" };
        var threads = new Option<int?>("--threads") { Description = "Engine threads (default: all cores)" };
        var seconds = new Option<double>("--seconds") { Description = "Time spent on each measure", DefaultValueFactory = _ => 3 }.Above(0);
        var json = new Option<bool>("--json") { Description = "The figures as one JSON object" };
        var distributed = DataParallelRun.Option();
        var command = new Command("bench", "Measure tokenization, inference and training speed of a model on this machine (under mpirun: a data-parallel training step).")
        {
            model, threads, seconds, json, distributed,
        };
        command.SetAction(parse => DataParallelRun.Run(parse.GetValue(distributed), stdout, (parallel, stdout) =>
        {
            if (parse.GetValue(threads) is int t)
            {
                if (t < 1) throw new CliException($"--threads must be at least 1, not {t}.");
                Threading.MaxThreads = t;
            }
            double budget = parse.GetValue(seconds);
            if (!(budget > 0)) throw new CliException($"--seconds must be positive, not {budget}.");
            var directory = ModelCommands.Resolve(parse.GetValue(model)!);
            var tokenizer = TokenizeCommand.LoadTokenizer(directory);
            var encoder = ModelCommands.Load(directory, BertArchitecture.BertModel);
            var config = encoder.Config;

            // Sentences of vocabulary words (whole words only), so the measure needs no corpus.
            var rng = new Random(1);
            var words = Enumerable.Range(1000, Math.Max(1, tokenizer.VocabSize - 1000)).Select(tokenizer.IdToToken)
                .Where(w => w is { Length: > 1 } && char.IsLetter(w[0])).Take(5000).ToArray();
            var sentences = Enumerable.Range(0, 2000).Select(_ => string.Join(' ', Enumerable.Range(0, rng.Next(8, 40)).Select(_ => words[rng.Next(words.Length)])) + ".").ToList();
            long tokens = 0;
            var (_, tokenizeTime) = Measure(budget, () => tokens += tokenizer.EncodeBatch(sentences).Sum(e => (long)e.Length));
            double tokenizeRate = tokens / tokenizeTime;

            int s = Math.Min(128, config.MaxSequenceLength);
            var ids = Enumerable.Range(0, 32 * s).Select(_ => rng.Next(1000, config.VocabSize)).ToArray();
            var inputs = new ModelInputs(32, s, ids);
            encoder.Forward(inputs);
            var (forwards, forwardTime) = Measure(budget, () => encoder.Forward(inputs));

            BertPreTrainedModel classifier;
            using (ModelCommands.ExpectingNewHead())
                classifier = BertPreTrainedModel.FromPretrained(directory, BertArchitecture.BertForSequenceClassification, 1, c => c with { Id2Label = ["a", "b"] });
            var step = new TrainingStep<float>(TrainingModel<float>.From(classifier), new AdamWOptions { WeightDecay = 0.01 }, LearningRateSchedule.Create(SchedulerType.Constant, 1e-5, 0, 1));
            var batch = new TrainingBatch { Inputs = new ModelInputs(8, s, ids[..(8 * s)]), Labels = [0, 1, 0, 1, 0, 1, 0, 1] };
            // Under mpirun each step's gradients are summed over the ranks (as the trainer does; the sum is not divided,
            // which changes the update, not the time). Every rank must take the same number of steps: rank 0's count is
            // broadcast.
            Action trainingStep = parallel is null ? () => step.Run([batch]) : () => step.Run([batch], () => parallel.AllreduceSum(step.Model.Gradients));
            trainingStep();
            int steps;
            double stepTime;
            TimeSpan communication = TimeSpan.Zero;
            if (parallel is null) (steps, stepTime) = Measure(budget, trainingStep);
            else
            {
                var clock = Stopwatch.StartNew();
                trainingStep();
                var count = BitConverter.GetBytes(Math.Max(2, (int)Math.Ceiling(budget / clock.Elapsed.TotalSeconds)));
                parallel.Broadcast(count, 0);
                steps = BitConverter.ToInt32(count);
                var before = parallel.CommunicationTime;
                clock.Restart();
                for (int i = 0; i < steps; i++) trainingStep();
                stepTime = clock.Elapsed.TotalSeconds;
                communication = parallel.CommunicationTime - before;
            }
            int ranks = parallel?.WorldSize ?? 1;
            double trainingTokens = (double)ranks * 8 * s * steps / stepTime;

            var figures = new Dictionary<string, double>
            {
                ["tokenize_tokens_per_s"] = Math.Round(tokenizeRate),
                ["inference_sequences_per_s"] = Math.Round(forwards * 32 / forwardTime, 1),
                ["training_step_ms"] = Math.Round(stepTime / steps * 1000, 1),
                ["training_tokens_per_s"] = Math.Round(trainingTokens),
            };
            if (parallel is not null)
            {
                figures["ranks"] = ranks;
                figures["allreduce_share"] = Math.Round(communication.TotalSeconds / stepTime, 4);
            }
            if (parse.GetValue(json))
            {
                stdout.WriteLine(JsonSerializer.Serialize(figures));
                return Program.Ok;
            }
            var inv = CultureInfo.InvariantCulture;
            stdout.WriteLine($"{directory}: {config.NumHiddenLayers} layers, hidden {config.HiddenSize}; {Threading.MaxThreads} threads" +
                (parallel is null ? "" : $" per rank, {ranks} ranks"));
            var table = new Table().AddColumns("measure", "value", "what");
            table.AddRow("tokenization", $"{tokenizeRate.ToString("N0", inv)} tokens/s", "2,000 sentences of 8-40 words, batch encode");
            table.AddRow("inference", $"{(forwards * 32 / forwardTime).ToString("N1", inv)} sequences/s", $"BertModel forward, batch 32 x {s}");
            table.AddRow("training step", $"{(stepTime / steps * 1000).ToString("N0", inv)} ms", $"classification, batch 8 x {s}{(parallel is null ? "" : " per rank")}: forward, backward, " +
                (parallel is null ? "AdamW" : "gradient allreduce, AdamW"));
            table.AddRow("training", $"{trainingTokens.ToString("N0", inv)} tokens/s", parallel is null ? "the training step's tokens per second" : $"over all {ranks} ranks");
            if (parallel is not null)
                table.AddRow("allreduce", $"{(communication.TotalSeconds / stepTime * 100).ToString("N1", inv)} %", "share of the step spent summing gradients over the ranks");
            Program.Console(stdout).Write(table);
            return Program.Ok;
        }));
        return command;
    }

    /// <summary>Calls <paramref name="action"/> until <paramref name="seconds"/> have passed (at least twice); calls and time.</summary>
    private static (int Calls, double Seconds) Measure(double seconds, Action action)
    {
        var clock = Stopwatch.StartNew();
        int calls = 0;
        do
        {
            action();
            calls++;
        } while (clock.Elapsed.TotalSeconds < seconds || calls < 2);
        return (calls, clock.Elapsed.TotalSeconds);
    }
}
