using System.CommandLine;
using NBert.Tokenization;
using NBert.Training;
using NBert.Tasks;

namespace NBert.Cli.Commands;

/// <summary><c>nbert vocab</c>: a WordPiece vocabulary trained on a corpus, for pre-training on a new domain.</summary>
public static class VocabCommand
{
    public static Command Create(TextWriter stdout)
    {
        var corpus = new Option<string[]>("--corpus") { Description = "Text files (.gz read as gzip)", Required = true, AllowMultipleArgumentsPerToken = true };
        var size = new Option<int>("--size") { Description = "Vocabulary size, special tokens included", DefaultValueFactory = _ => 8000 }.AtLeast(1);
        var lowercase = new Option<bool>("--lowercase") { Description = "Lowercase and strip accents (an uncased vocabulary)" };
        var minFrequency = new Option<int>("--min-frequency") { Description = "Merge only pairs seen at least this often", DefaultValueFactory = _ => 0 }.AtLeast(0);
        var output = new Option<string>("--out") { Description = "Directory for vocab.txt, tokenizer.json and tokenizer_config.json", Required = true };
        var overwrite = OutputDirectory.OverwriteOption();
        var command = new Command("vocab", "Train a WordPiece vocabulary on a corpus (writes files transformers loads).") { corpus, size, lowercase, minFrequency, output, overwrite };
        command.SetAction(parse =>
        {
            OutputDirectory.Check(parse.GetValue(output)!, parse.GetValue(overwrite));
            int n = parse.GetValue(size);
            if (n <= WordPieceTrainer.SpecialTokens.Length) throw new CliException($"--size must be above {WordPieceTrainer.SpecialTokens.Length}, not {n}.");
            var trainer = new WordPieceTrainer(n, parse.GetValue(lowercase), parse.GetValue(minFrequency));
            long lines = 0;
            try
            {
                foreach (var document in PretrainingCorpus.Documents(parse.GetValue(corpus)!))
                    foreach (var line in document)
                    {
                        trainer.Add(line);
                        lines++;
                    }
            }
            catch (Exception e) when (e is FileNotFoundException or IOException or NBertException)
            {
                throw new CliException(CliException.Reason(e), e);
            }
            if (trainer.Words == 0) throw new CliException($"{string.Join(", ", parse.GetValue(corpus)!)}: no words.");
            var vocab = trainer.Train();
            string outDir = parse.GetValue(output)!;
            try
            {
                WordPieceTrainer.Save(vocab, parse.GetValue(lowercase), outDir);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new CliException($"{outDir}: {CliException.Reason(e)}", e);
            }
            stdout.WriteLine($"{lines:N0} lines, {trainer.Words:N0} distinct words: a vocabulary of {vocab.Count:N0} tokens" +
                (vocab.Count < n ? $" (every pair merged before reaching {n:N0})" : "") + $"; wrote vocab.txt, tokenizer.json and tokenizer_config.json to {outDir}");
            return Program.Ok;
        });
        return command;
    }
}
