namespace NBert.Benchmarks;

/// <summary>Where the benchmarks find the repository and its files, and how they write their sections of docs/benchmarks.md
/// (shared with bench/NBert.ServerBench, which links this file).</summary>
public static class Paths
{
    public static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "NBert.sln"))) dir = dir.Parent;
        return dir?.FullName ?? Directory.GetCurrentDirectory();
    }

    public static string Vocab(string repo) => Path.Combine(repo, "models", "bert-base-uncased", "vocab.txt");

    /// <summary>bert-base-uncased's tokenizer.json, as Hugging Face saved it (for the Rust tokenizer).</summary>
    public static string TokenizerJson(string repo) =>
        Path.Combine(repo, "..", "shared", "fixtures", "tokenizer", "saved_uncased", "tokenizer.json");

    /// <summary>Replaces the text between <c>&lt;!-- name:begin --&gt;</c> and <c>&lt;!-- name:end --&gt;</c>
    /// (appending the section when absent), through a temporary file renamed over the original.</summary>
    public static void WriteSection(string path, string name, string content)
    {
        string begin = $"<!-- {name}:begin -->", end = $"<!-- {name}:end -->";
        string text = File.Exists(path) ? File.ReadAllText(path) : "# Benchmarks\n";
        int b = text.IndexOf(begin, StringComparison.Ordinal), e = text.IndexOf(end, StringComparison.Ordinal);
        string block = $"{begin}\n{content}{end}";
        text = b >= 0 && e > b ? text[..b] + block + text[(e + end.Length)..] : text.TrimEnd() + "\n\n" + block + "\n";
        string temp = path + ".tmp";
        File.WriteAllText(temp, text);
        File.Move(temp, path, overwrite: true);
    }
}
