using System.Diagnostics;
using System.Globalization;
using System.Text;
using NBert.Modeling;
using NBert.Tensors;
using NBert.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using TTensor = TorchSharp.torch.Tensor;
using NBert.Schema;

namespace NBert.Benchmarks;

/// <summary>
/// One pre-training step (forward, masked-LM + NSP loss, backward, global-norm clipping, AdamW) in NBert and
/// in libtorch (TorchSharp 0.107, libtorch 2.10) on the same weights and batch, alternating within each
/// round; the median round counts. Dropout 0.1 is on in both, as in real pre-training.
/// </summary>
public static class TrainingBenchmarks
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    private static double Time(Action action, int calls)
    {
        var watch = Stopwatch.StartNew();
        for (int i = 0; i < calls; i++) action();
        return watch.Elapsed.TotalSeconds / calls;
    }

    public static readonly (string Name, BertConfig Config)[] Shapes =
    [
        ("bert-base", new BertConfig()),
        ("MiniLM-L6 (all-MiniLM-L6-v2's shape)", new BertConfig { NumHiddenLayers = 6, HiddenSize = 384, IntermediateSize = 1536 }),
    ];

    public static TrainingBatch Batch(BertConfig c, int batch, int sequence, int seed)
    {
        var rng = new Random(seed);
        int m = batch * sequence;
        var ids = Enumerable.Range(0, m).Select(_ => rng.Next(1000, c.VocabSize)).ToArray();
        var types = Enumerable.Range(0, m).Select(t => t % sequence < sequence / 2 ? 0 : 1).ToArray();
        var mask = Enumerable.Repeat(1, m).ToArray();
        for (int b = 1; b < batch; b += 2) mask.AsSpan(b * sequence + sequence * 3 / 4, sequence / 4).Clear();
        // 15% of the real tokens are masked-LM targets, as BERT's pre-training data has them.
        var labels = Enumerable.Range(0, m).Select(t => mask[t] == 1 && rng.NextDouble() < 0.15 ? rng.Next(1000, c.VocabSize) : -100).ToArray();
        var nsp = Enumerable.Range(0, batch).Select(_ => rng.Next(2)).ToArray();
        return new TrainingBatch { Inputs = new ModelInputs(batch, sequence, ids, types, mask), Labels = labels, NextSentenceLabel = nsp };
    }

    /// <summary>A fine-tuning batch like quickstart's: short texts of 8 to <paramref name="sequence"/> tokens, right-padded,
    /// one token type, a label each.</summary>
    public static TrainingBatch ClassificationBatch(BertConfig c, int batch, int sequence, int seed)
    {
        var rng = new Random(seed);
        int m = batch * sequence;
        var ids = new int[m];
        var mask = new int[m];
        for (int b = 0; b < batch; b++)
        {
            int length = rng.Next(8, sequence + 1);
            for (int t = 0; t < length; t++)
            {
                // Zipf-like ids, as words in reviews: most tokens come from a few hundred common rows.
                ids[b * sequence + t] = 1000 + (int)Math.Min(c.VocabSize - 1001, Math.Exp(rng.NextDouble() * Math.Log(c.VocabSize - 1000)));
                mask[b * sequence + t] = 1;
            }
        }
        var labels = Enumerable.Range(0, batch).Select(_ => rng.Next(2)).ToArray();
        return new TrainingBatch { Inputs = new ModelInputs(batch, sequence, ids, new int[m], mask), Labels = labels };
    }

    public static string Run(int rounds, TextWriter log)
    {
        var sb = new StringBuilder();
        sb.AppendLine(Header);
        foreach (var (name, config) in Shapes)
            Measure(sb, log, rounds, name, config, BertArchitecture.BertForPreTraining, Batch(config, 8, 128, seed: 2));
        sb.AppendLine();
        sb.AppendLine("BertForPreTraining with random weights (seed 1); a batch of 8 sequences of 128 with padding in every other sequence,");
        sb.AppendLine("token types, 15% of real tokens as masked-LM targets and NSP labels. A step is forward with dropout 0.1, masked-LM +");
        sb.AppendLine("NSP cross-entropy, backward, clipping to norm 1, AdamW (weight decay 0.01 except biases and LayerNorm weights).");
        sb.AppendLine("libtorch runs the same weights through transformers' computation with autograd and `torch.optim.AdamW`; both compute");
        sb.AppendLine("the vocabulary logits only at the masked-LM targets (stock transformers computes them at every position, which would");
        sb.AppendLine("make libtorch's step slower still). Above 1 in the ratio column, NBert is faster.");
        sb.AppendLine();
        sb.AppendLine("Fine-tuning (quickstart's step): BertForSequenceClassification with 2 labels in MiniLM's shape.");
        sb.AppendLine();
        sb.AppendLine(Header);
        var (miniName, mini) = Shapes[1];
        var fineTuning = mini with { Id2Label = ["negative", "positive"] };
        foreach (var (batch, sequence) in new[] { (32, 64), (8, 128) })
            Measure(sb, log, rounds, miniName, fineTuning, BertArchitecture.BertForSequenceClassification, ClassificationBatch(fineTuning, batch, sequence, seed: 2));
        sb.AppendLine();
        sb.AppendLine("Short texts of 8 to s tokens right-padded to s, ids drawn Zipf-like from the vocabulary (a few hundred rows of the");
        sb.AppendLine("30,522-row word embeddings per batch, as reviews), one token type, a label each. A step is forward with dropout 0.1,");
        sb.AppendLine("cross-entropy, backward, clipping to norm 1, AdamW with weight decay 0.01, as quickstart runs it.");
        return sb.ToString();
    }

    private const string Header = "| model | batch x sequence | threads | NBert step | libtorch step | libtorch / NBert time | NBert tokens/s | loss difference (dropout off) |\n|---|---|---:|---:|---:|---:|---:|---:|";

    /// <summary>One table row per thread count: NBert's and libtorch's steps on the same weights and batch, alternating.</summary>
    private static void Measure(StringBuilder sb, TextWriter log, int rounds, string name, BertConfig config, BertArchitecture architecture, TrainingBatch data)
    {
        var model = BertPreTrainedModel.FromConfig(config, architecture, seed: 1);
        var options = new AdamWOptions { WeightDecay = 0.01 };
        var schedule = LearningRateSchedule.Create(SchedulerType.Constant, 1e-4, 0, 1000);
        var nbert = new TrainingStep<float>(TrainingModel<float>.From(model, seed: 3), options, schedule);
        using var torchStep = new TorchTrainingStep(model, options, 1e-4);

        // Same computation: the first loss with dropout off agrees.
        double nLoss = nbert.Model.Forward(data, training: false).Loss;
        double tLoss = torchStep.Loss(data);
        double lossDiff = Math.Abs(nLoss - tLoss);
        int batch = data.Inputs.Batch, sequence = data.Inputs.SequenceLength;
        log.WriteLine($"{name} {architecture} {batch} x {sequence}: first loss NBert {nLoss:F6}, libtorch {tLoss:F6}");

        foreach (int threads in new[] { 1, Environment.ProcessorCount }.Distinct())
        {
            Threading.MaxThreads = threads;
            torch.set_num_threads(threads);
            nbert.Run([data]);
            torchStep.Step(data);
            int calls = name == "bert-base" ? 1 : 4;
            var nTimes = new List<double>();
            var tTimes = new List<double>();
            for (int r = 0; r < rounds; r++)
            {
                nTimes.Add(Time(() => nbert.Run([data]), calls));
                Thread.Sleep(200); // let the other engine's spinning threads go quiet
                tTimes.Add(Time(() => torchStep.Step(data), calls));
                Thread.Sleep(200);
            }
            double nt = EngineBenchmarks.Median(nTimes), tt = EngineBenchmarks.Median(tTimes);
            string line = string.Create(Inv,
                $"| {name} | {batch} x {sequence} | {threads} | {nt * 1e3:F0} ms | {tt * 1e3:F0} ms | {tt / nt:F2} | {data.Tokens / nt:F0} | {lossDiff:E1} |");
            log.WriteLine(line);
            sb.AppendLine(line);
        }
    }

    /// <summary>BertForPreTraining's or BertForSequenceClassification's training step in libtorch: functional ops on leaf
    /// parameters, autograd, AdamW.</summary>
    private sealed class TorchTrainingStep : IDisposable
    {
        private readonly Dictionary<string, Parameter> _p;
        private readonly BertConfig _c;
        private readonly optim.Optimizer _optimizer;

        private readonly bool _classifier;

        public TorchTrainingStep(BertPreTrainedModel model, AdamWOptions options, double lr)
        {
            _c = model.Config;
            _classifier = model.Architecture == BertArchitecture.BertForSequenceClassification;
            _p = model.Parameters.ToDictionary(p => p.Key, p => new Parameter(torch.tensor(p.Value.Data, p.Value.Shape.Select(d => (long)d).ToArray())));
            bool NoDecay(string n) => n.Contains("bias") || n.Contains("LayerNorm.weight");
            var groups = new[]
            {
                new AdamW.ParamGroup(_p.Where(kv => !NoDecay(kv.Key)).Select(kv => kv.Value), new AdamW.Options { weight_decay = options.WeightDecay }),
                new AdamW.ParamGroup(_p.Where(kv => NoDecay(kv.Key)).Select(kv => kv.Value), new AdamW.Options { weight_decay = 0.0 }),
            };
            _optimizer = torch.optim.AdamW(groups, lr, options.Beta1, options.Beta2, options.Epsilon);
        }

        private TTensor Forward(TrainingBatch data, bool training)
        {
            var inputs = data.Inputs;
            int batch = inputs.Batch, sequence = inputs.SequenceLength, h = _c.HiddenSize, heads = _c.NumAttentionHeads, d = h / heads;
            double p = training ? 0.1 : 0.0;
            var ids = torch.tensor(inputs.InputIds.Select(i => (long)i).ToArray(), [batch * sequence]);
            var types = torch.tensor((inputs.TokenTypeIds ?? new int[batch * sequence]).Select(i => (long)i).ToArray(), [batch * sequence]);
            var x = (_p["embeddings.word_embeddings.weight"].index_select(0, ids) + _p["embeddings.token_type_embeddings.weight"].index_select(0, types))
                .view(batch, sequence, h) + _p["embeddings.position_embeddings.weight"].narrow(0, 0, sequence);
            x = nn.functional.dropout(nn.functional.layer_norm(x, [h], _p["embeddings.LayerNorm.weight"], _p["embeddings.LayerNorm.bias"], _c.LayerNormEps), p, training);
            var m = torch.tensor(inputs.AttentionMask!.Select(v => v == 1 ? 0f : float.MinValue).ToArray(), [batch, 1, 1, sequence]);
            for (int l = 0; l < _c.NumHiddenLayers; l++)
            {
                string n = $"encoder.layer.{l}";
                TTensor Heads(string name) => nn.functional.linear(x, _p[$"{n}.attention.self.{name}.weight"], _p[$"{n}.attention.self.{name}.bias"])
                    .view(batch, sequence, heads, d).transpose(1, 2);
                var ctx = nn.functional.scaled_dot_product_attention(Heads("query"), Heads("key"), Heads("value"), m, p)
                    .transpose(1, 2).reshape(batch, sequence, h);
                var attended = nn.functional.dropout(nn.functional.linear(ctx, _p[$"{n}.attention.output.dense.weight"], _p[$"{n}.attention.output.dense.bias"]), p, training);
                var a = nn.functional.layer_norm(attended + x, [h], _p[$"{n}.attention.output.LayerNorm.weight"], _p[$"{n}.attention.output.LayerNorm.bias"], _c.LayerNormEps);
                var i = nn.functional.gelu(nn.functional.linear(a, _p[$"{n}.intermediate.dense.weight"], _p[$"{n}.intermediate.dense.bias"]));
                var o = nn.functional.dropout(nn.functional.linear(i, _p[$"{n}.output.dense.weight"], _p[$"{n}.output.dense.bias"]), p, training);
                x = nn.functional.layer_norm(o + a, [h], _p[$"{n}.output.LayerNorm.weight"], _p[$"{n}.output.LayerNorm.bias"], _c.LayerNormEps);
            }
            var pooled = torch.tanh(nn.functional.linear(x.select(1, 0), _p["pooler.dense.weight"], _p["pooler.dense.bias"]));
            if (_classifier)
            {
                var classLogits = nn.functional.linear(nn.functional.dropout(pooled, p, training), _p["classifier.weight"], _p["classifier.bias"]);
                return nn.functional.cross_entropy(classLogits, torch.tensor(data.Labels!.Select(v => (long)v).ToArray()));
            }
            var nspLogits = nn.functional.linear(pooled, _p["cls.seq_relationship.weight"], _p["cls.seq_relationship.bias"]);
            // Masked-LM head on the target positions only.
            var rows = Enumerable.Range(0, data.Labels!.Length).Where(t => data.Labels[t] != -100).ToArray();
            var selected = x.reshape(batch * sequence, h).index_select(0, torch.tensor(rows.Select(r => (long)r).ToArray()));
            var t = nn.functional.gelu(nn.functional.linear(selected, _p["cls.predictions.transform.dense.weight"], _p["cls.predictions.transform.dense.bias"]));
            t = nn.functional.layer_norm(t, [h], _p["cls.predictions.transform.LayerNorm.weight"], _p["cls.predictions.transform.LayerNorm.bias"], _c.LayerNormEps);
            var logits = nn.functional.linear(t, _p["embeddings.word_embeddings.weight"], _p["cls.predictions.bias"]);
            var targets = torch.tensor(rows.Select(r => (long)data.Labels[r]).ToArray());
            var nspTargets = torch.tensor(data.NextSentenceLabel!.Select(v => (long)v).ToArray());
            return nn.functional.cross_entropy(logits, targets) + nn.functional.cross_entropy(nspLogits, nspTargets);
        }

        public double Loss(TrainingBatch data)
        {
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            return Forward(data, training: false).item<float>();
        }

        public void Step(TrainingBatch data)
        {
            using var scope = torch.NewDisposeScope();
            _optimizer.zero_grad();
            var loss = Forward(data, training: true);
            loss.backward();
            nn.utils.clip_grad_norm_(_p.Values, 1.0);
            _optimizer.step();
        }

        public void Dispose()
        {
            foreach (var t in _p.Values) t.Dispose();
        }
    }
}
