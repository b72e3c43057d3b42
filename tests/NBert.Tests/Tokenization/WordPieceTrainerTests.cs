using NBert.Cli;
using NBert.Tokenization;

namespace NBert.Tests.Tokenization;

public sealed class WordPieceTrainerTests : TempDirectoryTest
{
    private static readonly string[] Lines =
    [
        "The lowest prices were found in the lower town, the lowest of all.",
        "Newer and newest: the widest rivers run wider than the wide sea.",
        "Café CAFÉ café! Tokyo 東京 is large; the low road and the new road.",
    ];

    [Fact]
    public void Merges_the_most_frequent_pairs_into_a_vocabulary_of_the_requested_size()
    {
        var trainer = new WordPieceTrainer(80, lowercase: true);
        foreach (var line in Lines.Concat(Enumerable.Repeat("the the the lowest lowest", 5))) trainer.Add(line);
        var vocab = trainer.Train();
        Assert.Equal(80, vocab.Count);
        Assert.Equal(WordPieceTrainer.SpecialTokens, vocab.Take(5));
        Assert.Equal(vocab.Count, vocab.Distinct().Count());
        // The alphabet is there (each CJK character its own word), accents stripped when lowercasing.
        Assert.Contains("東", vocab);
        Assert.Contains("##e", vocab);
        Assert.DoesNotContain("é", vocab);
        // The most frequent words become single tokens first.
        Assert.Contains("the", vocab);
        Assert.Contains("lowest", vocab);
        int the = vocab.IndexOf("the"), lowest = vocab.IndexOf("lowest");
        Assert.True(the < lowest);
    }

    [Fact]
    public void The_saved_tokenizer_loads_from_tokenizer_json_and_from_vocab_txt_alike()
    {
        File.WriteAllLines(Temp("corpus.txt"), Lines.SelectMany(l => Enumerable.Repeat(l, 3).Append("")));
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(["vocab", "--corpus", Temp("corpus.txt"), "--size", "60", "--lowercase", "--out", Temp("tok")], new StringReader(""), output, error);
        Assert.True(code == 0, error.ToString());
        Assert.Contains("a vocabulary of 60 tokens", output.ToString());
        Directory.CreateDirectory(Temp("vocab-only"));
        File.Copy(Temp("tok/vocab.txt"), Temp("vocab-only/vocab.txt"));
        File.Copy(Temp("tok/tokenizer_config.json"), Temp("vocab-only/tokenizer_config.json"));
        var fromJson = BertTokenizer.FromPretrained(Temp("tok"));
        var fromVocab = BertTokenizer.FromPretrained(Temp("vocab-only"));
        Assert.Equal(60, fromJson.VocabSize);
        foreach (var text in Lines.Append("The lowest café, unknown ×"))
        {
            var a = fromJson.Encode(text, "the new road");
            var b = fromVocab.Encode(text, "the new road");
            Assert.Equal(a.InputIds, b.InputIds);
            Assert.Equal(a.TokenTypeIds, b.TokenTypeIds);
        }
        // Corpus text never needs [UNK]; an unseen character does.
        Assert.DoesNotContain(fromJson.TokenToId("[UNK]")!.Value, Lines.SelectMany(l => fromJson.Encode(l).InputIds));
        Assert.Contains("[UNK]", fromJson.Encode("×").Tokens);
        Assert.Equal("[CLS]", fromJson.Encode("the").Tokens[0]);
    }

    [Fact]
    public void Bad_arguments_exit_2()
    {
        var error = new StringWriter();
        Assert.Equal(2, Program.Run(["vocab", "--corpus", Temp("none.txt"), "--out", Temp("o")], new StringReader(""), new StringWriter(), error));
        Assert.Contains("none.txt", error.ToString());
        File.WriteAllText(Temp("c.txt"), "a b\n");
        Assert.Equal(2, Program.Run(["vocab", "--corpus", Temp("c.txt"), "--size", "3", "--out", Temp("o")], new StringReader(""), new StringWriter(), new StringWriter()));
    }
}
