using System.IO.Compression;
using NBert.Tokenization;
using NBert.Training;
using NBert.Tasks;

namespace NBert.Tests.Training;

public sealed class PretrainingDataTests : TempDirectoryTest
{
    private static readonly BertTokenizer Tokenizer = BertTokenizer.FromPretrained(Path.Combine(Fixtures.RepoRoot, "models", "bert-base-uncased"));

    /// <summary>Documents whose sentences are distinct numbered words, so every token says where it came from.</summary>
    private static List<List<int[]>> Documents(int count, int seed)
    {
        var r = new Random(seed);
        int next = 2000;
        return Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, r.Next(1, 12))
            .Select(_ => Enumerable.Range(0, r.Next(3, 20)).Select(_ => next++).ToArray()).ToList()).ToList();
    }

    [Fact]
    public void The_corpus_is_read_as_documents_of_sentences_plain_or_gzip()
    {
        string text = "First sentence.\nSecond one.\n\n\nOther document.\n   \nThird doc.";
        File.WriteAllText(Temp("c.txt"), text);
        using (var gz = new GZipStream(File.Create(Temp("c.txt.gz")), CompressionLevel.Fastest))
            gz.Write(System.Text.Encoding.UTF8.GetBytes(text));
        foreach (var file in new[] { "c.txt", "c.txt.gz" })
        {
            var docs = PretrainingCorpus.Documents([Temp(file)]).ToList();
            Assert.Equal([["First sentence.", "Second one."], ["Other document."], ["Third doc."]], docs);
        }
        var ids = PretrainingCorpus.Tokenized(PretrainingCorpus.Documents([Temp("c.txt")]), Tokenizer).ToList();
        Assert.Equal(Tokenizer.Encode("Second one.", options: new EncodeOptions { AddSpecialTokens = false }).InputIds, ids[0][1]);
        Assert.Throws<MissingFileException>(() => PretrainingCorpus.Documents([Temp("missing.txt")]).ToList());
    }

    [Fact]
    public void Instances_follow_googles_builder()
    {
        var documents = Documents(200, 1);
        var position = new Dictionary<int, (int Doc, int Index)>();
        var flat = documents.Select(d => d.SelectMany(x => x).ToArray()).ToList();
        for (int d = 0; d < flat.Count; d++)
            for (int i = 0; i < flat[d].Length; i++) position[flat[d][i]] = (d, i);

        var instances = new InstanceBuilder(maxSeqLength: 64, seed: 7).Build(documents).ToList();
        Assert.Equal(instances.Select(x => x.A.Length + x.B.Length), new InstanceBuilder(maxSeqLength: 64, seed: 7).Build(documents).Select(x => x.A.Length + x.B.Length));
        Assert.All(instances, x => Assert.True(x.A.Length >= 1 && x.B.Length >= 1 && x.A.Length + x.B.Length <= 61));
        double random = instances.Count(x => x.IsRandomNext) / (double)instances.Count;
        Assert.InRange(random, 0.4, 0.75); // half of multi-sentence chunks, and every single-sentence chunk
        Assert.Contains(instances, x => x.A.Length + x.B.Length < 40); // short_seq_prob
        foreach (var x in instances)
        {
            // A and B are each a contiguous run of one document; an actual next B follows A in the same document.
            var a = x.A.Select(t => position[t]).ToList();
            Assert.All(a.Zip(a.Skip(1)), p => Assert.Equal((p.First.Doc, p.First.Index + 1), p.Second));
            var b = x.B.Select(t => position[t]).ToList();
            Assert.All(b.Zip(b.Skip(1)), p => Assert.Equal((p.First.Doc, p.First.Index + 1), p.Second));
            // (truncation may take tokens from A's end or B's front, so B starts at or after A's end)
            if (!x.IsRandomNext) Assert.True(b[0].Doc == a[^1].Doc && b[0].Index > a[^1].Index);
            else Assert.NotEqual(a[0].Doc, b[0].Doc);
        }

        var single = new InstanceBuilder(maxSeqLength: 64, nextSentencePrediction: false, seed: 7).Build(documents).ToList();
        Assert.All(single, x => Assert.True(x.B.Length == 0 && x.A.Length is >= 1 and <= 62));
    }

    [Fact]
    public void A_dupe_factor_passes_over_the_corpus_again_with_other_pairs()
    {
        var documents = Documents(100, 4);
        var once = new InstanceBuilder(maxSeqLength: 64, seed: 5).Build(documents).ToList();
        var thrice = new InstanceBuilder(maxSeqLength: 64, seed: 5, dupeFactor: 3).Build(documents).ToList();
        // Every pass covers every sentence, so three passes hold each token about three times.
        long tokens = once.Sum(x => (long)x.A.Length + x.B.Length), tokens3 = thrice.Sum(x => (long)x.A.Length + x.B.Length);
        Assert.InRange(tokens3, 2.7 * tokens, 3.3 * tokens);
        // The passes draw other split points: the instances are not three copies of one pass.
        var distinct = thrice.Select(x => string.Join(",", x.A) + "|" + string.Join(",", x.B)).Distinct().Count();
        Assert.True(distinct > 1.5 * once.Count, $"{distinct} distinct instances from 3 passes of {once.Count}");
        Assert.Equal(thrice.Select(x => x.A.Length), new InstanceBuilder(maxSeqLength: 64, seed: 5, dupeFactor: 3).Build(documents).Select(x => x.A.Length));
        Assert.Throws<ArgumentOutOfRangeException>(() => new InstanceBuilder(dupeFactor: 0).Build(documents).ToList());
    }

    [Fact]
    public void Instances_written_to_a_file_read_back_the_same()
    {
        var instances = new InstanceBuilder(maxSeqLength: 64, seed: 9).Build(Documents(50, 3)).ToList();
        using (var file = PretrainingInstanceFile.Write(Temp("i.bin"), instances))
        {
            Assert.Equal(instances.Count, file.Count);
            Assert.Equal(instances.Sum(x => (long)x.A.Length + x.B.Length), file.Tokens);
            for (int i = instances.Count - 1; i >= 0; i--)
            {
                Assert.Equal(instances[i].A, file[i].A);
                Assert.Equal(instances[i].B, file[i].B);
                Assert.Equal(instances[i].IsRandomNext, file[i].IsRandomNext);
            }
            // Enumerated in order, as the list it is.
            Assert.Equal(instances.Select(x => x.A.Concat(x.B)), file.Select(x => x.A.Concat(x.B)));
        }
        using var empty = PretrainingInstanceFile.Write(Temp("e.bin"), []);
        Assert.Empty(empty);
    }

    [Fact]
    public void The_masked_lm_collator_masks_15_percent_80_10_10_and_never_special_tokens()
    {
        var instances = new InstanceBuilder(maxSeqLength: 128, seed: 3).Build(Documents(400, 2).Select(d => d.Select(s => s.Select(t => t % 28000 + 1000).ToArray()).ToList())).ToList();
        var collator = new MaskedLmCollator(Tokenizer);
        int mask = Tokenizer.TokenToId("[MASK]")!.Value, cls = Tokenizer.TokenToId("[CLS]")!.Value, sep = Tokenizer.TokenToId("[SEP]")!.Value;
        long candidates = 0, chosen = 0, masked = 0, same = 0;
        for (int start = 0; start + 32 <= instances.Count; start += 32)
        {
            var part = instances.Skip(start).Take(32).ToList();
            var batch = collator.Collate(part, new Random(start), withNextSentenceLabels: true);
            int s = batch.Inputs.SequenceLength;
            Assert.Equal(part.Select(x => x.IsRandomNext ? 1 : 0), batch.NextSentenceLabel!);
            for (int i = 0; i < part.Count; i++)
            {
                var original = new[] { cls }.Concat(part[i].A).Append(sep).Concat(part[i].B).Append(sep).ToArray();
                for (int t = 0; t < s; t++)
                {
                    int at = i * s + t, label = batch.Labels![at], id = batch.Inputs.InputIds[at];
                    if (t >= original.Length)
                    {
                        Assert.Equal(-100, label);
                        Assert.Equal(0, batch.Inputs.AttentionMask![at]);
                        continue;
                    }
                    Assert.Equal(t > part[i].A.Length + 1 ? 1 : 0, batch.Inputs.TokenTypeIds![at]);
                    if (original[t] == cls || original[t] == sep) { Assert.Equal(-100, label); Assert.Equal(original[t], id); continue; }
                    candidates++;
                    if (label == -100) { Assert.Equal(original[t], id); continue; }
                    chosen++;
                    Assert.Equal(original[t], label);
                    if (id == mask) masked++;
                    else if (id == original[t]) same++;
                }
            }
        }
        Assert.InRange(chosen / (double)candidates, 0.14, 0.16);
        Assert.InRange(masked / (double)chosen, 0.77, 0.83);
        Assert.InRange(same / (double)chosen, 0.08, 0.12);
    }

    [Fact]
    public void Whole_word_masking_masks_every_piece_of_a_chosen_word()
    {
        var words = Tokenizer.Encode("unbelievably tokenization johanson embeddings playing", options: new EncodeOptions { AddSpecialTokens = false });
        Assert.Contains(words.Tokens, t => t.StartsWith("##"));
        var instance = new PretrainingInstance(Enumerable.Repeat(words.InputIds, 6).SelectMany(x => x).ToArray(), [], false);
        var collator = new MaskedLmCollator(Tokenizer) { WholeWordMask = true };
        for (int seed = 0; seed < 20; seed++)
        {
            var batch = collator.Collate([instance], new Random(seed), withNextSentenceLabels: false);
            var labelled = batch.Labels!.Select(l => l != -100).ToArray();
            Assert.Contains(true, labelled);
            for (int t = 1; t < labelled.Length - 1; t++)
                if (Tokenizer.IdToToken(instance.A[t - 1])!.StartsWith("##")) Assert.Equal(labelled[t - 1], labelled[t]);
        }
    }
}
