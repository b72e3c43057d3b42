using System.Numerics.Tensors;
using NBert.Modeling;
using NBert.Schema;
using NBert.Tensors;

namespace NBert.Training;

public sealed partial class TrainingModel<T>
{
    // Head activations of the last forward pass. The loss's gradient with respect to the logits is computed in the
    // forward pass (for a loss scale of 1) and scaled in Backward.
    private T[] _first = [], _pooled = [], _poolerPre = [], _classifierInput = [], _logits = [], _dLogits = [], _qaStart = [], _qaEnd = [], _dQaStart = [], _dQaEnd = [];
    private bool[] _classifierKeep = [], _poolerInputKeep = [];
    private double _poolerInputDropout;
    private double _classifierDropout;
    private LinearParameters? _classifier;
    private int _classifierRows;
    private int[] _mlmRows = [];
    private T[] _mlmInput = [], _mlmDense = [], _mlmActivated = [], _mlmMean = [], _mlmRstd = [], _mlmNormed = [], _mlmLogits = [], _mlmDLogits = [];
    // ELECTRA's discriminator: its dense layer's output before and after the activation [m, h].
    private T[] _discriminatorDense = [], _discriminatorActivated = [];

    // Gradient scratch of the heads, kept between steps.
    private T[] _dPooled = [], _dPoolerInput = [], _dFirst = [], _dClassifierInput = [], _dMlmNormed = [], _dMlmActivated = [], _dMlmDense = [], _dMlmInput = [];

    /// <summary>A buffer of at least <paramref name="length"/> values, grown when needed and kept.</summary>
    private static T[] Ensure(ref T[] buffer, int length)
    {
        if (buffer.Length < length) buffer = new T[length];
        return buffer;
    }

    /// <summary>Like <see cref="Ensure"/>, with its first <paramref name="length"/> values cleared.</summary>
    private static Span<T> Zeroed(ref T[] buffer, int length)
    {
        var span = Ensure(ref buffer, length).AsSpan(0, length);
        span.Clear();
        return span;
    }

    private int _logitsLength, _mlmLogitsLength;

    /// <summary>The last forward pass's head logits, row-major: sequence classification and NSP [batch, classes],
    /// token classification [batch·sequence, labels], QA [batch·sequence, 2] (start, end). For pre-training, the NSP logits.</summary>
    public ReadOnlySpan<T> Logits => _logits.AsSpan(0, _logitsLength);

    /// <summary>The last forward pass's masked-LM logits [rows, vocab] at the positions <see cref="MaskedLmPositions"/>
    /// (those with a label): the only positions the loss needs.</summary>
    public ReadOnlySpan<T> MaskedLmLogits => _mlmLogits.AsSpan(0, _mlmLogitsLength);

    /// <summary>Token indices (batch·sequence) of the rows of <see cref="MaskedLmLogits"/>.</summary>
    public IReadOnlyList<int> MaskedLmPositions => _mlmRows;

    private double ClassifierDropoutProbability => _training ? Config.HeadDropout(Architecture) : 0;

    private TrainingLoss HeadForward(TrainingBatch batch)
    {
        var c = Config;
        int b = batch.Inputs.Batch, s = batch.Inputs.SequenceLength, m = b * s, h = c.HiddenSize;
        var x = _hidden;
        _classifier = null;
        if (_layout.Pooler is { } pooler)
        {
            _poolerInputDropout = _training ? c.PoolerInputDropout(Architecture) : 0;
            if (_poolerInputKeep.Length < b * h) _poolerInputKeep = new bool[b * h];
            Heads<T>.InPlace? dropout = _poolerInputDropout > 0
                ? first => Ops.DropoutForward<T>(first, _poolerInputDropout, Random, Random.Take(first.Length), _poolerInputKeep)
                : null;
            Heads<T>.Pooler(_weights, pooler, c.PoolerActivation, x, b, s, Ensure(ref _first, b * h), Ensure(ref _pooled, b * h), Ensure(ref _poolerPre, b * h), dropout);
        }
        switch (Architecture)
        {
            case BertArchitecture.BertForPreTraining when _layout.Discriminator is { } discriminator:
            {
                var labels = batch.Labels ?? throw new ArgumentException("ElectraForPreTraining's loss needs 'labels' [batch, sequence]: 1 for a replaced token, 0 for an original.");
                var logits = Ensure(ref _logits, m).AsSpan(0, m);
                _logitsLength = m;
                Heads<T>.Discriminator(_weights, discriminator, c.Activation, x, m, Ensure(ref _discriminatorDense, m * h),
                    Ensure(ref _discriminatorActivated, m * h), logits);
                return new TrainingLoss(HeadLosses.Discriminator<T>(logits, labels, batch.Inputs.AttentionMask, Zeroed(ref _dLogits, m)));
            }
            case BertArchitecture.BertForPreTraining:
            {
                if (batch.Labels is null || batch.NextSentenceLabel is null)
                    throw new ArgumentException("BertForPreTraining's loss needs both 'labels' (masked-LM targets) and 'next_sentence_label'.");
                double mlm = MaskedLmForward(batch.Labels, m);
                var logits = ClassifierLogits(_pooled, b, _layout.NextSentence!, dropout: 0);
                double nsp = HeadLosses.Classification<T>(logits, 2, batch.NextSentenceLabel, Zeroed(ref _dLogits, logits.Length), "cls.seq_relationship");
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
                var logits = ClassifierLogits(_pooled, b, _layout.NextSentence!, dropout: 0);
                double nsp = HeadLosses.Classification<T>(logits, 2, labels, Zeroed(ref _dLogits, logits.Length), "cls.seq_relationship");
                return new TrainingLoss(nsp, null, nsp);
            }
            case BertArchitecture.BertForSequenceClassification:
            {
                var logits = ClassifierLogits(_pooled, b, _layout.Classifier!, ClassifierDropoutProbability);
                return new TrainingLoss(HeadLosses.SequenceClassification<T>(c, logits, batch, Zeroed(ref _dLogits, logits.Length)));
            }
            case BertArchitecture.BertForTokenClassification:
            {
                var labels = batch.Labels ?? throw new ArgumentException("BertForTokenClassification's loss needs 'labels' [batch, sequence].");
                var logits = ClassifierLogits(x, m, _layout.Classifier!, ClassifierDropoutProbability);
                return new TrainingLoss(HeadLosses.Classification<T>(logits, c.NumLabels, labels, Zeroed(ref _dLogits, logits.Length), "classifier"));
            }
            default:
            {
                var logits = ClassifierLogits(x, m, _layout.QaOutputs!, ClassifierDropoutProbability);
                var start = Ensure(ref _qaStart, m).AsSpan(0, m);
                var end = Ensure(ref _qaEnd, m).AsSpan(0, m);
                QuestionAnsweringLogits.Split(logits, start, end);
                return new TrainingLoss(HeadLosses.QuestionAnswering<T>(start, end, batch, Zeroed(ref _dQaStart, m), Zeroed(ref _dQaEnd, m)));
            }
        }
    }

    private void HeadBackward(double lossScale, T[] dx)
    {
        var c = Config;
        var inputs = _batch!.Inputs;
        int b = inputs.Batch, s = inputs.SequenceLength, m = b * s, h = c.HiddenSize;
        T scale = T.CreateTruncating(lossScale);
        if (Architecture == BertArchitecture.BertForQuestionAnswering)
            QuestionAnsweringLogits.Merge<T>(_dQaStart.AsSpan(0, m), _dQaEnd.AsSpan(0, m), Ensure(ref _dLogits, 2 * m).AsSpan(0, 2 * m));
        if (_layout.MaskedLm is not null) MaskedLmBackward(scale, dx);
        if (_layout.Discriminator is { } discriminator)
        {
            var d = _dLogits.AsSpan(0, m);
            TensorPrimitives.Multiply<T>(d, scale, d);
            Heads<T>.DiscriminatorBackward(_weights, _gradients, discriminator, c.Activation, d, _hidden, _discriminatorDense, _discriminatorActivated, m,
                Ensure(ref _dMlmActivated, m * h), Ensure(ref _dMlmDense, m * h), dx);
            return;
        }
        if (_classifier is null) return;
        // The heads of a model with a pooler (pre-training, next sentence, sequence classification) classify the pooled
        // output; the others (token classification, QA) every token.
        if (_layout.Pooler is null)
        {
            ClassifierBackward(scale, dx);
            return;
        }
        var dPooled = Zeroed(ref _dPooled, b * h);
        ClassifierBackward(scale, dPooled);
        Heads<T>.PoolerBackward(_weights, _gradients, _layout.Pooler!, c.PoolerActivation, dPooled, _first, _poolerPre, _pooled, b, s,
            Ensure(ref _dPoolerInput, b * h), Ensure(ref _dFirst, b * h), dx, _poolerInputDropout, _poolerInputKeep);
    }

    // ---- a linear classifier: NSP, sequence and token classification, QA's start and end ----

    /// <summary>logits = dropout(input) · Wᵀ + b over <paramref name="rows"/> rows, kept for the backward pass.</summary>
    private Span<T> ClassifierLogits(ReadOnlySpan<T> input, int rows, LinearParameters p, double dropout)
    {
        int h = Config.HiddenSize, classes = p.Outputs;
        var x = Ensure(ref _classifierInput, rows * h).AsSpan(0, rows * h);
        input[..(rows * h)].CopyTo(x);
        (_classifier, _classifierRows, _classifierDropout) = (p, rows, dropout);
        if (dropout > 0)
        {
            if (_classifierKeep.Length < rows * h) _classifierKeep = new bool[rows * h];
            Ops.DropoutForward<T>(x, dropout, Random, Random.Take(rows * h), _classifierKeep);
        }
        var logits = Ensure(ref _logits, rows * classes).AsSpan(0, rows * classes);
        _logitsLength = rows * classes;
        _weights.Linear(p, x, rows, logits);
        return logits;
    }

    /// <summary>From the logits' gradient (kept by the forward pass) to the classifier's input, whose gradient
    /// <paramref name="dInput"/> it adds to.</summary>
    private void ClassifierBackward(T scale, Span<T> dInput)
    {
        var p = _classifier!;
        int h = Config.HiddenSize, rows = _classifierRows;
        var d = _dLogits.AsSpan(0, rows * p.Outputs);
        TensorPrimitives.Multiply<T>(d, scale, d);
        var dx = Zeroed(ref _dClassifierInput, rows * h);
        Encoder<T>.LinearBackward(_weights, _gradients, p, d, _classifierInput.AsSpan(0, rows * h), dx, rows);
        if (_classifierDropout > 0) Ops.DropoutBackward<T>(dx, _classifierDropout, _classifierKeep, dInput[..(rows * h)]);
        else TensorPrimitives.Add(dInput[..(rows * h)], dx, dInput[..(rows * h)]);
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
        int r = _mlmRows.Length;
        _mlmLogitsLength = r * v;
        if (r == 0) return 0;
        var input = Ensure(ref _mlmInput, r * h);
        Heads<T>.Gather(_hidden, _mlmRows, h, input);
        var logits = Ensure(ref _mlmLogits, r * v).AsSpan(0, r * v);
        int width = _layout.MaskedLm!.Transform.Outputs; // ELECTRA's generator: embedding_size
        Heads<T>.MaskedLm(_weights, _layout.MaskedLm!, c, input, r, Ensure(ref _mlmDense, r * width), Ensure(ref _mlmActivated, r * width),
            Ensure(ref _mlmNormed, r * width), Ensure(ref _mlmMean, r), Ensure(ref _mlmRstd, r), logits);
        return HeadLosses.MaskedLm<T>(logits, v, _mlmRows.Select(t => labels[t]).ToArray(), Zeroed(ref _mlmDLogits, r * v));
    }

    private void MaskedLmBackward(T scale, T[] dx)
    {
        var c = Config;
        int h = c.HiddenSize, v = c.VocabSize, r = _mlmRows.Length, t = _layout.MaskedLm!.Transform.Outputs;
        if (r == 0) return;
        var d = _mlmDLogits.AsSpan(0, r * v);
        TensorPrimitives.Multiply<T>(d, scale, d);
        var dInput = Ensure(ref _dMlmInput, r * h);
        Heads<T>.MaskedLmBackward(_weights, _gradients, _layout.MaskedLm!, c, d, r, _mlmInput, _mlmDense, _mlmActivated, _mlmNormed, _mlmMean, _mlmRstd,
            Ensure(ref _dMlmNormed, r * t), Ensure(ref _dMlmActivated, r * t), Ensure(ref _dMlmDense, r * t), dInput);
        for (int i = 0; i < r; i++)
        {
            var row = dx.AsSpan(_mlmRows[i] * h, h);
            TensorPrimitives.Add(row, dInput.AsSpan(i * h, h), row);
        }
    }
}
