using System.Buffers;
using System.Numerics.Tensors;
using NBert.Modeling;
using NBert.Tensors;
using NBert.Schema;

namespace NBert.Training;

/// <summary>The loss of one forward pass; for pre-training also its two parts.</summary>
public readonly record struct TrainingLoss(double Loss, double? MaskedLmLoss = null, double? NextSentenceLoss = null);

public sealed partial class TrainingModel<T>
{
    // Head activations of the last forward pass. The loss's gradient with respect to the logits is computed
    // in the forward pass (for a loss scale of 1) and scaled in Backward.
    private T[] _first = [], _pooled = [], _classifierInput = [], _logits = [], _dLogits = [];
    private bool[] _classifierKeep = [];
    private double _classifierDropout;
    private int[] _mlmRows = [];
    private int[] _mlmTargets = [];
    private T[] _mlmInput = [], _mlmDense = [], _mlmActivated = [], _mlmMean = [], _mlmRstd = [], _mlmNormed = [], _mlmLogits = [], _mlmDLogits = [];

    // Gradient scratch of the heads, kept between steps.
    private T[] _dPooled = [], _dPoolerInput = [], _dFirst = [], _dClassifierInput = [], _qaColumn = [], _dQaColumn = [],
        _dMlmNormed = [], _dMlmActivated = [], _dMlmDense = [], _dMlmInput = [];

    /// <summary>A buffer of at least <paramref name="length"/> values, grown when needed and kept.</summary>
    private static T[] Ensure(ref T[] buffer, int length)
    {
        if (buffer.Length < length) buffer = new T[length];
        return buffer;
    }

    /// <summary>Like <see cref="Ensure"/>, with its first <paramref name="length"/> values cleared.</summary>
    private static T[] Zeroed(ref T[] buffer, int length)
    {
        Array.Clear(Ensure(ref buffer, length), 0, length);
        return buffer;
    }

    private bool UsesPooler => BertArchitectures.HasPooler(Architecture);
    private int _logitsLength, _mlmLogitsLength;

    /// <summary>The last forward pass's head logits, row-major: sequence classification and NSP [batch, classes],
    /// token classification [batch·sequence, labels], QA [batch·sequence, 2] (start, end). For pre-training, the NSP logits.</summary>
    public ReadOnlySpan<T> Logits => _logits.AsSpan(0, _logitsLength);

    /// <summary>The last forward pass's masked-LM logits [rows, vocab] at the positions <see cref="MaskedLmPositions"/>
    /// (those with a label): the only positions the loss needs.</summary>
    public ReadOnlySpan<T> MaskedLmLogits => _mlmLogits.AsSpan(0, _mlmLogitsLength);

    /// <summary>Token indices (batch·sequence) of the rows of <see cref="MaskedLmLogits"/>.</summary>
    public IReadOnlyList<int> MaskedLmPositions => _mlmRows;

    private TrainingLoss HeadForward(TrainingBatch batch)
    {
        var c = Config;
        var inputs = batch.Inputs;
        int b = inputs.Batch, s = inputs.SequenceLength, m = b * s, h = c.HiddenSize;
        var x = LastHidden;
        if (UsesPooler) PoolerForward(x, b, s);
        switch (Architecture)
        {
            case BertArchitecture.BertForPreTraining:
            {
                if (batch.Labels is null || batch.NextSentenceLabel is null)
                    throw new ArgumentException("BertForPreTraining's loss needs both 'labels' (masked-LM targets) and 'next_sentence_label'.");
                double mlm = MaskedLmForward(batch.Labels, m);
                double nsp = ClassifierForward(_pooled, b, "cls.seq_relationship", 2, dropout: 0, batch.NextSentenceLabel);
                return new TrainingLoss(mlm + nsp, mlm, nsp);
            }
            case BertArchitecture.BertForMaskedLM:
            {
                double mlm = MaskedLmForward(batch.Labels ?? throw new ArgumentException("BertForMaskedLM's loss needs 'labels'."), m);
                return new TrainingLoss(mlm, mlm);
            }
            case BertArchitecture.BertForNextSentencePrediction:
            {
                var labels = batch.Labels ?? batch.NextSentenceLabel ?? throw new ArgumentException("BertForNextSentencePrediction's loss needs 'labels'.");
                double nsp = ClassifierForward(_pooled, b, "cls.seq_relationship", 2, dropout: 0, labels);
                return new TrainingLoss(nsp, null, nsp);
            }
            case BertArchitecture.BertForSequenceClassification:
                return new TrainingLoss(SequenceClassificationForward(batch, b));
            case BertArchitecture.BertForTokenClassification:
                return new TrainingLoss(ClassifierForward(x, m, "classifier", c.NumLabels, ClassifierDropoutProbability,
                    batch.Labels ?? throw new ArgumentException("BertForTokenClassification's loss needs 'labels' [batch, sequence].")));
            default:
                return new TrainingLoss(QuestionAnsweringForward(batch, x, b, s));
        }
    }

    private double ClassifierDropoutProbability => _training ? Config.ClassifierDropout ?? Config.HiddenDropoutProb : 0;

    private void HeadBackward(double lossScale, T[] dx)
    {
        var c = Config;
        var inputs = _batch!.Inputs;
        int b = inputs.Batch, s = inputs.SequenceLength, m = b * s, h = c.HiddenSize;
        T scale = T.CreateTruncating(lossScale);
        T[]? dPooled = UsesPooler ? Zeroed(ref _dPooled, b * h) : null;
        switch (Architecture)
        {
            case BertArchitecture.BertForPreTraining:
                MaskedLmBackward(scale, dx);
                ClassifierBackward(scale, dPooled!, b, "cls.seq_relationship", 2);
                break;
            case BertArchitecture.BertForMaskedLM:
                MaskedLmBackward(scale, dx);
                break;
            case BertArchitecture.BertForNextSentencePrediction:
                ClassifierBackward(scale, dPooled!, b, "cls.seq_relationship", 2);
                break;
            case BertArchitecture.BertForSequenceClassification:
                ClassifierBackward(scale, dPooled!, b, "classifier", c.NumLabels);
                break;
            case BertArchitecture.BertForTokenClassification:
                ClassifierBackward(scale, dx, m, "classifier", c.NumLabels);
                break;
            default:
                ClassifierBackward(scale, dx, m, "qa_outputs", 2);
                break;
        }
        if (dPooled is not null) PoolerBackward(dPooled, dx, b, s);
    }

    // ---- pooler: tanh(dense(first token)) ----

    private void PoolerForward(T[] x, int b, int s)
    {
        int h = Config.HiddenSize;
        var first = Ensure(ref _first, b * h);
        for (int i = 0; i < b; i++) x.AsSpan(i * s * h, h).CopyTo(first.AsSpan(i * h));
        var pooled = Ensure(ref _pooled, b * h);
        Ops.LinearForward<T>(first.AsSpan(0, b * h), W(Off("pooler.dense.weight"), h * h), W(Off("pooler.dense.bias"), h), pooled, b, h, h);
        TensorPrimitives.Tanh<T>(pooled.AsSpan(0, b * h), pooled.AsSpan(0, b * h));
    }

    private void PoolerBackward(T[] dPooled, T[] dx, int b, int s)
    {
        int h = Config.HiddenSize;
        var dPre = Zeroed(ref _dPoolerInput, b * h).AsSpan(0, b * h);
        Ops.TanhBackward<T>(dPooled.AsSpan(0, b * h), _pooled.AsSpan(0, b * h), dPre);
        var dFirst = Zeroed(ref _dFirst, b * h);
        int w = Off("pooler.dense.weight");
        Ops.LinearBackward<T>(dPre, _first.AsSpan(0, b * h), W(w, h * h), dFirst.AsSpan(0, b * h), G(w, h * h), G(Off("pooler.dense.bias"), h), b, h, h);
        for (int i = 0; i < b; i++)
        {
            var row = dx.AsSpan(i * s * h, h);
            TensorPrimitives.Add(row, dFirst.AsSpan(i * h, h), row);
        }
    }

    // ---- a linear classifier with cross-entropy: NSP, sequence and token classification ----

    /// <summary>logits = dropout(input) · Wᵀ + b over <paramref name="rows"/> rows; cross-entropy with -100 ignored.</summary>
    private double ClassifierForward(T[] input, int rows, string prefix, int classes, double dropout, int[] labels)
    {
        if (labels.Length != rows) throw new ArgumentException($"{prefix}: {labels.Length} labels for {rows} rows.");
        var logits = ClassifierLogits(input, rows, prefix, classes, dropout);
        var d = Ensure(ref _dLogits, rows * classes).AsSpan(0, rows * classes);
        d.Clear();
        return Ops.CrossEntropy<T>(logits, classes, labels, d);
    }

    private Span<T> ClassifierLogits(T[] input, int rows, string prefix, int classes, double dropout)
    {
        int h = Config.HiddenSize;
        var x = Ensure(ref _classifierInput, rows * h);
        input.AsSpan(0, rows * h).CopyTo(x);
        _classifierDropout = dropout;
        if (dropout > 0)
        {
            if (_classifierKeep.Length < rows * h) _classifierKeep = new bool[rows * h];
            Ops.DropoutForward<T>(x.AsSpan(0, rows * h), dropout, Random, Random.Take(rows * h), _classifierKeep);
        }
        var logits = Ensure(ref _logits, rows * classes);
        _logitsLength = rows * classes;
        Ops.LinearForward<T>(x.AsSpan(0, rows * h), W(Off(prefix + ".weight"), classes * h), W(Off(prefix + ".bias"), classes), logits, rows, h, classes);
        return logits.AsSpan(0, rows * classes);
    }

    /// <summary>From the logits' gradient (kept by the forward pass) to the classifier's input, whose
    /// gradient <paramref name="dInput"/> it adds to.</summary>
    private void ClassifierBackward(T scale, T[] dInput, int rows, string prefix, int classes)
    {
        int h = Config.HiddenSize;
        var d = _dLogits.AsSpan(0, rows * classes);
        TensorPrimitives.Multiply<T>(d, scale, d);
        var dx = Zeroed(ref _dClassifierInput, rows * h).AsSpan(0, rows * h);
        int w = Off(prefix + ".weight");
        Ops.LinearBackward<T>(d, _classifierInput.AsSpan(0, rows * h), W(w, classes * h), dx, G(w, classes * h), G(Off(prefix + ".bias"), classes), rows, h, classes);
        if (_classifierDropout > 0) Ops.DropoutBackward<T>(dx, _classifierDropout, _classifierKeep, dInput.AsSpan(0, rows * h));
        else TensorPrimitives.Add(dInput.AsSpan(0, rows * h), dx, dInput.AsSpan(0, rows * h));
    }

    // ---- sequence classification: single-label, regression, multi-label (transformers' problem_type) ----

    private double SequenceClassificationForward(TrainingBatch batch, int b)
    {
        var c = Config;
        int classes = c.NumLabels;
        string problem = c.ProblemType ?? (classes == 1 ? "regression" : batch.Labels is not null ? "single_label_classification" : "multi_label_classification");
        if (problem == "single_label_classification")
            return ClassifierForward(_pooled, b, "classifier", classes, ClassifierDropoutProbability,
                batch.Labels ?? throw new ArgumentException("Single-label classification needs integer 'labels' [batch]."));
        var targetValues = batch.LabelValues ?? batch.Labels?.Select(v => (float)v).ToArray()
            ?? throw new ArgumentException($"{problem} needs 'labels'.");
        if (targetValues.Length != b * classes)
            throw new ArgumentException($"{problem}: {targetValues.Length} label values for a batch of {b} with {classes} labels (need [batch, num_labels]).");
        var targets = Array.ConvertAll(targetValues, v => T.CreateTruncating(v));
        var logits = ClassifierLogits(_pooled, b, "classifier", classes, ClassifierDropoutProbability);
        var d = Ensure(ref _dLogits, b * classes).AsSpan(0, b * classes);
        d.Clear();
        return problem switch
        {
            "regression" => Ops.MeanSquaredError<T>(logits, targets, d),
            "multi_label_classification" => Ops.BinaryCrossEntropyWithLogits<T>(logits, targets, d),
            _ => throw new ArgumentException($"Unknown problem_type '{problem}': regression, single_label_classification or multi_label_classification."),
        };
    }

    // ---- question answering: start and end logits, each a cross-entropy over the sequence ----

    private double QuestionAnsweringForward(TrainingBatch batch, T[] x, int b, int s)
    {
        if (batch.StartPositions is null || batch.EndPositions is null)
            throw new ArgumentException("BertForQuestionAnswering's loss needs 'start_positions' and 'end_positions'.");
        if (batch.StartPositions.Length != b || batch.EndPositions.Length != b)
            throw new ArgumentException($"start_positions and end_positions need one value per sequence ({b}).");
        int m = b * s;
        var logits = ClassifierLogits(x, m, "qa_outputs", 2, dropout: 0);
        var d = Ensure(ref _dLogits, m * 2).AsSpan(0, m * 2);
        d.Clear();
        // As transformers: positions outside the sequence are clamped to s, which is then ignored.
        double total = 0;
        var column = Ensure(ref _qaColumn, m).AsSpan(0, m);
        var dColumn = Ensure(ref _dQaColumn, m).AsSpan(0, m);
        for (int which = 0; which < 2; which++)
        {
            var positions = (which == 0 ? batch.StartPositions : batch.EndPositions).Select(p => Math.Clamp(p, 0, s)).ToArray();
            for (int t = 0; t < m; t++) column[t] = logits[2 * t + which];
            dColumn.Clear();
            total += Ops.CrossEntropy<T>(column, s, positions, dColumn, dloss: 0.5, ignoreIndex: s);
            for (int t = 0; t < m; t++) d[2 * t + which] = dColumn[t];
        }
        return total / 2;
    }

    // ---- masked-LM head, on the labelled positions only (the others add nothing to loss or gradients) ----

    private double MaskedLmForward(int[] labels, int m)
    {
        var c = Config;
        int h = c.HiddenSize, v = c.VocabSize;
        if (labels.Length != m) throw new ArgumentException($"Masked-LM 'labels' need one value per token ({m}), not {labels.Length}.");
        var rows = new List<int>();
        for (int t = 0; t < m; t++)
            if (labels[t] != -100) rows.Add(t);
        _mlmRows = rows.ToArray();
        _mlmTargets = rows.Select(t => labels[t]).ToArray();
        int r = _mlmRows.Length;
        _mlmLogitsLength = r * v;
        if (r == 0) return 0;
        var x = LastHidden;
        var input = Ensure(ref _mlmInput, r * h);
        for (int i = 0; i < r; i++) x.AsSpan(_mlmRows[i] * h, h).CopyTo(input.AsSpan(i * h));
        var dense = Ensure(ref _mlmDense, r * h);
        Ops.LinearForward<T>(input.AsSpan(0, r * h), W(Off("cls.predictions.transform.dense.weight"), h * h), W(Off("cls.predictions.transform.dense.bias"), h), dense, r, h, h);
        var activated = Ensure(ref _mlmActivated, r * h);
        Schema.Activations.Forward<T>(c.Activation, dense.AsSpan(0, r * h), activated.AsSpan(0, r * h));
        var normed = Ensure(ref _mlmNormed, r * h);
        LayerNorm(activated, normed, Off("cls.predictions.transform.LayerNorm.weight"), Off("cls.predictions.transform.LayerNorm.bias"),
            Ensure(ref _mlmMean, r), Ensure(ref _mlmRstd, r), r, T.CreateTruncating(c.LayerNormEps));
        var logits = Ensure(ref _mlmLogits, r * v);
        Ops.LinearForward<T>(normed.AsSpan(0, r * h), W(DecoderOffset, v * h), W(Off("cls.predictions.bias"), v), logits, r, h, v);
        var d = Ensure(ref _mlmDLogits, r * v).AsSpan(0, r * v);
        d.Clear();
        return Ops.CrossEntropy<T>(logits.AsSpan(0, r * v), v, _mlmTargets, d);
    }

    private int DecoderOffset => Config.TieWordEmbeddings ? Off("embeddings.word_embeddings.weight") : Off("cls.predictions.decoder.weight");

    private void MaskedLmBackward(T scale, T[] dx)
    {
        var c = Config;
        int h = c.HiddenSize, v = c.VocabSize, r = _mlmRows.Length;
        if (r == 0) return;
        var d = _mlmDLogits.AsSpan(0, r * v);
        TensorPrimitives.Multiply<T>(d, scale, d);
        var dNormed = Zeroed(ref _dMlmNormed, r * h);
        Ops.LinearBackward<T>(d, _mlmNormed.AsSpan(0, r * h), W(DecoderOffset, v * h), dNormed.AsSpan(0, r * h), G(DecoderOffset, v * h), G(Off("cls.predictions.bias"), v), r, h, v);
        var dActivated = Zeroed(ref _dMlmActivated, r * h);
        LayerNormBackward(dNormed, _mlmActivated, _mlmMean, _mlmRstd, Off("cls.predictions.transform.LayerNorm.weight"),
            Off("cls.predictions.transform.LayerNorm.bias"), dActivated, r);
        var dDense = Zeroed(ref _dMlmDense, r * h).AsSpan(0, r * h);
        Schema.Activations.Backward<T>(c.Activation, dActivated.AsSpan(0, r * h), _mlmDense.AsSpan(0, r * h), dDense);
        var dInput = Zeroed(ref _dMlmInput, r * h);
        int w = Off("cls.predictions.transform.dense.weight");
        Ops.LinearBackward<T>(dDense, _mlmInput.AsSpan(0, r * h), W(w, h * h), dInput.AsSpan(0, r * h), G(w, h * h), G(Off("cls.predictions.transform.dense.bias"), h), r, h, h);
        for (int i = 0; i < r; i++)
        {
            var row = dx.AsSpan(_mlmRows[i] * h, h);
            TensorPrimitives.Add(row, dInput.AsSpan(i * h, h), row);
        }
    }

    // ---- attention backward ----

    /// <summary>
    /// From d(context) to d(Q, K, V) in the fused [m, 3h] layout, one (sequence, head) pair per job (each
    /// writes its own slice): dP' = dC Vᵀ, dV = P'ᵀ dC, dropout, dS = softmax backward / √d, dQ = dS K, dK = dSᵀ Q.
    /// </summary>
    private void AttentionBackward(LayerActivations l, T[] dContext, T[] dQkv, int[]? mask, int batch, int s)
    {
        var c = Config;
        int heads = c.NumAttentionHeads, d = c.HeadSize, h = c.HiddenSize, ld = 3 * h;
        T scale = T.One / T.Sqrt(T.CreateTruncating(d));
        double p = _pAttention;
        WorkerPool.Shared.Run(batch * heads, Threading.MaxThreads, job =>
        {
            int bi = job / heads, hi = job % heads, row0 = bi * s * ld;
            var pool = ArrayPool<T>.Shared;
            T[] dKeptBuffer = pool.Rent(s * s), dScoresBuffer = pool.Rent(s * s);
            try
            {
                var probs = l.Probs.AsSpan(job * s * s, s * s);
                ReadOnlySpan<T> kept = p > 0 ? l.KeptProbs.AsSpan(job * s * s, s * s) : probs;
                var dC = dContext.AsSpan(bi * s * h + hi * d);
                var dKept = dKeptBuffer.AsSpan(0, s * s);
                Gemm.Multiply<T>(s, s, d, dC, h, false, l.Qkv.AsSpan(row0 + 2 * h + hi * d), ld, true, dKept, s, serial: true);
                Gemm.Multiply<T>(s, d, s, kept, s, true, dC, h, false, dQkv.AsSpan(row0 + 2 * h + hi * d), ld, accumulate: true, serial: true);
                DropoutBackwardInPlace(dKept, p, l.KeepProbs.AsSpan(job * s * s, s * s)); // now d(probabilities)
                var dScores = dScoresBuffer.AsSpan(0, s * s);
                dScores.Clear();
                Ops.SoftmaxBackward<T>(dKept, probs, dScores, s, scale);
                Gemm.Multiply<T>(s, d, s, dScores, s, false, l.Qkv.AsSpan(row0 + h + hi * d), ld, false, dQkv.AsSpan(row0 + hi * d), ld, accumulate: true, serial: true);
                Gemm.Multiply<T>(s, d, s, dScores, s, true, l.Qkv.AsSpan(row0 + hi * d), ld, false, dQkv.AsSpan(row0 + h + hi * d), ld, accumulate: true, serial: true);
            }
            finally
            {
                pool.Return(dKeptBuffer);
                pool.Return(dScoresBuffer);
            }
        });
    }
}
