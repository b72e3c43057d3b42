using NBert.Modeling;
using NBert.Tokenization;

using NBert.Training;

namespace NBert.Tasks;

/// <summary>
/// Pre-training's one runner (<c>nbert pretrain</c> comes here): masked-LM batches of the instances, with next-sentence
/// labels for a <c>BertForPreTraining</c> model and without for a <c>BertForMaskedLM</c> one, through the
/// <see cref="Trainer"/>. The masks of a micro-batch follow from the seed and its number in the run (step and index in the
/// step), never from a stream that depends on what ran before or in which process, so a resumed or data-parallel run
/// masks what an uninterrupted single process would.
/// </summary>
public static class Pretraining
{
    /// <summary>Why an ELECTRA discriminator is not pre-trained here: its objective, replaced-token detection, trains it on the
    /// tokens a generator trained beside it substitutes, a two-model loop NBert does not run. An ELECTRA pre-trains with
    /// masked LM as <c>ElectraForMaskedLM</c> (the generator's head), as transformers' <c>run_mlm.py</c> would.</summary>
    public const string ElectraNotPretrained = "ELECTRA's discriminator (ElectraForPreTraining) is pre-trained by replaced-token detection against a " +
        "generator trained beside it, which NBert does not run; pre-training supports masked LM and next sentence for BERT, and masked LM for " +
        "DistilBERT, RoBERTa and ELECTRA (ElectraForMaskedLM, the generator's head).";

    /// <summary>
    /// Pre-trains <paramref name="model"/> in place on <paramref name="train"/>, scoring it on <paramref name="heldOut"/>
    /// (when given) every <see cref="TrainerOptions.EvalSteps"/> steps and at the end, min(64, batch size) instances at a
    /// time (<see cref="PretrainingEvaluation"/>). Output directory, resuming, overwriting, progress and cancellation are
    /// the trainer's (<see cref="Trainer.Train"/>).
    /// </summary>
    /// <returns>The last evaluation, if any.</returns>
    /// <exception cref="ArgumentException">The model is neither <c>BertForPreTraining</c> nor <c>BertForMaskedLM</c> (an ELECTRA
    /// discriminator is neither: see <see cref="ElectraNotPretrained"/>); there are no instances.</exception>
    public static Evaluation? Run(BertPreTrainedModel model, BertTokenizer tokenizer, IReadOnlyList<PretrainingInstance> train, MaskedLmCollator collator,
        IReadOnlyList<PretrainingInstance>? heldOut = null, TrainerOptions? options = null, string? outputDirectory = null,
        IProgress<TrainerProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(collator);
        if (model is ElectraForPreTraining)
            throw new ArgumentException(ElectraNotPretrained, nameof(model));
        bool nsp = model.Architecture switch
        {
            Schema.BertArchitecture.BertForPreTraining => true,
            Schema.BertArchitecture.BertForMaskedLM => false,
            var other => throw new ArgumentException($"Pre-training trains BertForPreTraining or BertForMaskedLM, not {other}.", nameof(model)),
        };
        model.EnsureTokenizerFits(tokenizer);
        var o = options ?? new TrainerOptions();
        int seed = o.Seed, evalBatch = Math.Min(64, o.BatchSize);
        var trainer = new Trainer(model, tokenizer, train.Count,
            (indices, microBatch) => collator.Collate(indices.Select(i => train[i]).ToList(), new Random(Trainer.DeriveSeed(seed, microBatch, 0x4D4C4D)), nsp),
            heldOut is null ? null : m => PretrainingEvaluation.Evaluate(m, heldOut, collator, nsp, evalBatch, seed), o);
        return trainer.Train(outputDirectory, progress: progress, cancellationToken: cancellationToken);
    }
}

/// <summary>
/// A pre-training corpus in BERT's convention: one sentence per line, a blank line between documents;
/// plain text or gzip (by the <c>.gz</c> extension). Read as a stream, one document at a time.
/// </summary>
public static class PretrainingCorpus
{
    /// <summary>The documents of the files in order, each as its non-blank lines (sentences); read lazily, through
    /// <see cref="DataFiles.Lines(string, int)"/> (gzip, strict UTF-8, no line over <see cref="DataFiles.MaxLineBytes"/>).</summary>
    /// <exception cref="MissingFileException">A file does not exist (raised when enumeration reaches it).</exception>
    /// <exception cref="NBertException">A line is not UTF-8 or too long (the message names the file and the line).</exception>
    public static IEnumerable<List<string>> Documents(IEnumerable<string> paths)
    {
        foreach (var path in paths)
        {
            if (!File.Exists(path)) throw new MissingFileException($"{path}: no such corpus file.", path);
            var document = new List<string>();
            foreach (var (line, _) in DataFiles.Lines(path))
            {
                if (line.Trim().Length == 0)
                {
                    if (document.Count > 0) yield return document;
                    document = [];
                }
                else document.Add(line);
            }
            if (document.Count > 0) yield return document;
        }
    }

    /// <summary>Each document's sentences as WordPiece ids (no special tokens), dropping sentences with no tokens.</summary>
    public static IEnumerable<List<int[]>> Tokenized(IEnumerable<List<string>> documents, BertTokenizer tokenizer)
    {
        var options = new EncodeOptions { AddSpecialTokens = false };
        foreach (var document in documents)
        {
            var ids = tokenizer.EncodeBatch(document, options).Select(e => e.InputIds).Where(x => x.Length > 0).ToList();
            if (ids.Count > 0) yield return ids;
        }
    }
}

/// <summary>A pre-training example: segment A, segment B (empty without NSP), and whether B is a random continuation.</summary>
public sealed record PretrainingInstance(int[] A, int[] B, bool IsRandomNext);

/// <summary>
/// Sentence-pair instances as Google's <c>create_pretraining_data.py</c> builds them: sentences of a document
/// gathered up to a target length of <c>max_seq_length - 3</c> (shorter with probability
/// <c>short_seq_prob</c>), split at a random point into A and B; half of the time B comes from another random
/// document and the unused sentences are put back; the pair trimmed by <c>truncate_seq_pair</c> (the longer
/// side loses a token at its front or back at random). Without NSP, A alone fills <c>max_seq_length - 2</c>.
/// Documents are read in shards, so the corpus never has to fit in memory; random B segments come from the
/// same shard. With <c>dupe_factor</c> above 1 each shard is passed over that many times (other split points,
/// other random B segments) before its instances are shuffled together. Deterministic for a seed.
/// </summary>
public sealed class InstanceBuilder(int maxSeqLength = 128, double shortSeqProbability = 0.1, bool nextSentencePrediction = true, int seed = 12345,
    int documentsPerShard = 100_000, int dupeFactor = 1)
{
    /// <summary>The instances of <paramref name="documents"/> (each a list of sentences as WordPiece ids, as
    /// <see cref="PretrainingCorpus.Tokenized"/> gives them), lazily, a shard at a time. Lengths count tokens without
    /// [CLS] and [SEP].</summary>
    /// <exception cref="ArgumentOutOfRangeException"><c>maxSeqLength</c> below 5 with NSP (3 without), or <c>dupeFactor</c>
    /// below 1; raised when enumeration starts.</exception>
    public IEnumerable<PretrainingInstance> Build(IEnumerable<List<int[]>> documents)
    {
        if (maxSeqLength < (nextSentencePrediction ? 5 : 3)) throw new ArgumentOutOfRangeException(nameof(maxSeqLength), $"max_seq_length {maxSeqLength} is too short.");
        if (dupeFactor < 1) throw new ArgumentOutOfRangeException(nameof(dupeFactor), $"dupe_factor must be at least 1, not {dupeFactor}.");
        var rng = new Random(seed);
        var shard = new List<List<int[]>>();
        foreach (var document in documents)
        {
            shard.Add(document);
            if (shard.Count < documentsPerShard) continue;
            foreach (var instance in BuildShard(shard, rng)) yield return instance;
            shard = [];
        }
        foreach (var instance in BuildShard(shard, rng)) yield return instance;
    }

    private List<PretrainingInstance> BuildShard(List<List<int[]>> documents, Random rng)
    {
        var instances = new List<PretrainingInstance>();
        for (int pass = 0; pass < dupeFactor; pass++)
            for (int d = 0; d < documents.Count; d++) FromDocument(documents, d, rng, instances);
        rng.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(instances));
        return instances;
    }

    private void FromDocument(List<List<int[]>> documents, int index, Random rng, List<PretrainingInstance> instances)
    {
        var document = documents[index];
        int maxTokens = maxSeqLength - (nextSentencePrediction ? 3 : 2);
        int target = rng.NextDouble() < shortSeqProbability ? rng.Next(2, maxTokens + 1) : maxTokens;
        var chunk = new List<int[]>();
        int length = 0;
        for (int i = 0; i < document.Count; i++)
        {
            chunk.Add(document[i]);
            length += document[i].Length;
            if (i != document.Count - 1 && length < target) continue;
            if (!nextSentencePrediction)
            {
                var a = chunk.SelectMany(x => x).ToList();
                Truncate(a, [], maxTokens, rng);
                instances.Add(new PretrainingInstance(a.ToArray(), [], false));
            }
            else
            {
                int aEnd = chunk.Count >= 2 ? rng.Next(1, chunk.Count) : 1;
                var a = chunk.Take(aEnd).SelectMany(x => x).ToList();
                var b = new List<int>();
                bool randomNext = false;
                if (chunk.Count == 1 || rng.NextDouble() < 0.5)
                {
                    randomNext = true;
                    int targetB = target - a.Count;
                    int other = index;
                    for (int tries = 0; tries < 10 && other == index; tries++) other = rng.Next(documents.Count);
                    var random = documents[other];
                    for (int j = rng.Next(random.Count); j < random.Count; j++)
                    {
                        b.AddRange(random[j]);
                        if (b.Count >= targetB) break;
                    }
                    i -= chunk.Count - aEnd; // the sentences not used go back
                }
                else b.AddRange(chunk.Skip(aEnd).SelectMany(x => x));
                Truncate(a, b, maxTokens, rng);
                if (a.Count >= 1 && b.Count >= 1) instances.Add(new PretrainingInstance(a.ToArray(), b.ToArray(), randomNext));
            }
            chunk.Clear();
            length = 0;
        }
    }

    /// <summary>truncate_seq_pair: until the pair fits, the longer side loses its first or last token at random.</summary>
    private static void Truncate(List<int> a, List<int> b, int maxTokens, Random rng)
    {
        while (a.Count + b.Count > maxTokens)
        {
            var longer = a.Count > b.Count ? a : b;
            if (rng.NextDouble() < 0.5) longer.RemoveAt(0);
            else longer.RemoveAt(longer.Count - 1);
        }
    }
}

/// <summary>
/// Masked-LM batches as transformers' <c>DataCollatorForLanguageModeling</c> makes them: each token that is not
/// special or padding is chosen with probability <c>mlm_probability</c>; of those, 80% become [MASK], 10% a
/// random token and 10% stay; labels are the original ids there and -100 elsewhere. With whole-word masking
/// (<c>DataCollatorForWholeWordMask</c>), whole words (a piece and its ## continuations) are chosen until
/// 15% of the tokens are. <c>max_predictions_per_seq</c> caps the targets per sequence. NSP labels: 0 when B
/// follows A, 1 when it is random. Immutable once built: threads may share it, each with its own <see cref="Random"/>.
/// </summary>
public sealed class MaskedLmCollator
{
    private readonly int _cls, _sep, _mask, _pad, _vocab;
    private readonly bool[] _continuation;
    /// <summary>The share of tokens chosen as targets (<c>mlm_probability</c>, 0.15).</summary>
    public double Probability { get; init; } = 0.15;
    /// <summary>Choose whole words rather than single pieces (<c>DataCollatorForWholeWordMask</c>); off by default.</summary>
    public bool WholeWordMask { get; init; }
    /// <summary>The most targets per sequence (<c>max_predictions_per_seq</c>); null: no cap beyond 512 with whole-word masking.</summary>
    public int? MaxPredictionsPerSequence { get; init; }

    /// <summary>A collator for <paramref name="tokenizer"/>'s vocabulary: its [CLS], [SEP], [MASK] and [PAD] ids, and which
    /// pieces continue a word (<c>##</c>).</summary>
    /// <exception cref="NBertException">The vocabulary lacks the [CLS], [SEP] or [MASK] token (a vocabulary that cannot
    /// be pre-trained is bad input, not a mistake in the calling code).</exception>
    public MaskedLmCollator(BertTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        int Id(string token) => tokenizer.TokenToId(token) ?? throw new NBertException($"The vocabulary has no {token} token: pre-training masks with it.");
        (_cls, _sep, _mask, _pad, _vocab) = (Id(tokenizer.ClsToken), Id(tokenizer.SepToken), Id(tokenizer.MaskToken), tokenizer.PadTokenId, tokenizer.VocabSize);
        _continuation = Enumerable.Range(0, _vocab).Select(i => tokenizer.IdToToken(i)?.StartsWith("##", StringComparison.Ordinal) == true).ToArray();
    }

    /// <summary>[CLS] A [SEP] (B [SEP]) for each instance, padded to the longest, masked with <paramref name="random"/>.</summary>
    public TrainingBatch Collate(IReadOnlyList<PretrainingInstance> instances, Random random, bool withNextSentenceLabels)
    {
        int b = instances.Count;
        int s = instances.Max(x => x.A.Length + x.B.Length + (x.B.Length > 0 ? 3 : 2));
        var ids = new int[b * s];
        var types = new int[b * s];
        var mask = new int[b * s];
        var labels = Enumerable.Repeat(-100, b * s).ToArray();
        Array.Fill(ids, _pad);
        for (int i = 0; i < b; i++)
        {
            var x = instances[i];
            int at = i * s, n = 0;
            ids[at + n++] = _cls;
            foreach (int id in x.A) ids[at + n++] = id;
            ids[at + n++] = _sep;
            if (x.B.Length > 0)
            {
                int bStart = n;
                foreach (int id in x.B) ids[at + n++] = id;
                ids[at + n++] = _sep;
                types.AsSpan(at + bStart, n - bStart).Fill(1);
            }
            mask.AsSpan(at, n).Fill(1);
            Mask(ids.AsSpan(at, n), labels.AsSpan(at, n), random);
        }
        return new TrainingBatch
        {
            Inputs = new ModelInputs(b, s, ids, types, mask),
            Labels = labels,
            NextSentenceLabel = withNextSentenceLabels ? instances.Select(x => x.IsRandomNext ? 1 : 0).ToArray() : null,
        };
    }

    private bool Special(int id) => id == _cls || id == _sep || id == _pad;

    private void Mask(Span<int> ids, Span<int> labels, Random random)
    {
        var chosen = new List<int>();
        if (WholeWordMask)
        {
            // Words: a piece and the ## pieces after it. Chosen in random order until 15% of the tokens are.
            var words = new List<List<int>>();
            for (int t = 0; t < ids.Length; t++)
            {
                if (Special(ids[t])) continue;
                if (words.Count > 0 && _continuation[ids[t]] && words[^1][^1] == t - 1) words[^1].Add(t);
                else words.Add([t]);
            }
            int candidates = words.Sum(w => w.Count);
            int toPredict = Math.Min(MaxPredictionsPerSequence ?? 512, Math.Max(1, (int)Math.Round(candidates * Probability)));
            var order = words.ToArray();
            random.Shuffle(order);
            foreach (var word in order)
            {
                if (chosen.Count >= toPredict) break;
                if (chosen.Count + word.Count > toPredict) continue;
                chosen.AddRange(word);
            }
        }
        else
        {
            for (int t = 0; t < ids.Length; t++)
                if (!Special(ids[t]) && random.NextDouble() < Probability) chosen.Add(t);
            if (MaxPredictionsPerSequence is int max && chosen.Count > max)
            {
                var array = chosen.ToArray();
                random.Shuffle(array);
                chosen = array.Take(max).Order().ToList();
            }
        }
        foreach (int t in chosen)
        {
            labels[t] = ids[t];
            double r = random.NextDouble();
            if (r < 0.8) ids[t] = _mask;
            else if (r < 0.9) ids[t] = random.Next(_vocab);
        }
    }
}

/// <summary>
/// Pre-training instances kept in a file rather than in memory: written once as they are built, then read
/// back by index through a memory map. Memory holds one offset per instance, whatever the corpus size.
/// </summary>
public sealed class PretrainingInstanceFile : IReadOnlyList<PretrainingInstance>, IDisposable
{
    private readonly long[] _offsets;
    private readonly System.IO.MemoryMappedFiles.MemoryMappedFile? _map;
    private readonly System.IO.MemoryMappedFiles.MemoryMappedViewAccessor? _view;
    /// <summary>The file the instances are in.</summary>
    public string Path { get; }
    /// <summary>The number of instances.</summary>
    public int Count => _offsets.Length;
    /// <summary>The tokens of all instances, A and B, without special tokens.</summary>
    public long Tokens { get; }

    private PretrainingInstanceFile(string path, long[] offsets, long tokens)
    {
        (Path, _offsets, Tokens) = (path, offsets, tokens);
        if (offsets.Length == 0) return;
        _map = System.IO.MemoryMappedFiles.MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, System.IO.MemoryMappedFiles.MemoryMappedFileAccess.Read);
        _view = _map.CreateViewAccessor(0, 0, System.IO.MemoryMappedFiles.MemoryMappedFileAccess.Read);
    }

    /// <summary>Writes the instances to <paramref name="path"/> (each: length of A, length of B, random-next flag, the ids).</summary>
    public static PretrainingInstanceFile Write(string path, IEnumerable<PretrainingInstance> instances)
    {
        var offsets = new List<long>();
        long tokens = 0;
        using (var writer = new BinaryWriter(new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16)))
            foreach (var x in instances)
            {
                offsets.Add(writer.BaseStream.Position);
                writer.Write(x.A.Length);
                writer.Write(x.B.Length);
                writer.Write(x.IsRandomNext ? 1 : 0);
                foreach (int id in x.A) writer.Write(id);
                foreach (int id in x.B) writer.Write(id);
                tokens += x.A.Length + x.B.Length;
            }
        return new PretrainingInstanceFile(path, offsets.ToArray(), tokens);
    }

    /// <summary>Instance <paramref name="index"/> (0-based), read from the file.</summary>
    /// <exception cref="IndexOutOfRangeException"><paramref name="index"/> is outside 0..<see cref="Count"/> - 1.</exception>
    public PretrainingInstance this[int index]
    {
        get
        {
            long at = _offsets[index];
            int a = _view!.ReadInt32(at), b = _view.ReadInt32(at + 4);
            bool random = _view.ReadInt32(at + 8) != 0;
            var ids = new int[a + b];
            _view.ReadArray(at + 12, ids, 0, a + b);
            return new PretrainingInstance(ids[..a], ids[a..], random);
        }
    }

    /// <summary>The instances in order, each read from the file as it is reached.</summary>
    public IEnumerator<PretrainingInstance> GetEnumerator()
    {
        for (int i = 0; i < Count; i++) yield return this[i];
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>Unmaps the file (which stays on disk); no instance can be read afterwards.</summary>
    public void Dispose()
    {
        _view?.Dispose();
        _map?.Dispose();
    }
}
