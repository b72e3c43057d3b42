using System.Numerics;
using System.Numerics.Tensors;
using NBert.Schema;

namespace NBert.Training;

// Which gradients can be nonzero. A batch of short texts touches a few hundred of the word embeddings' rows (30,522 in
// BERT's vocabulary, half of MiniLM's parameters), and the embedding backward writes only those rows. Knowing that
// lets zeroing, the gradient norm and AdamW skip the others exactly: a skipped row's gradient is 0, and so is
// everything computed from it that is skipped (see AdamW's Update). It holds only while nothing but Backward writes
// the gradient buffer, so the public Gradients property gives the knowledge up, and only while the word embeddings
// are not also the masked-LM decoder (tied), whose gradient reaches every row.
public sealed partial class TrainingModel<T>
{
    private enum GradientState
    {
        /// <summary>Anything may be nonzero.</summary>
        Unknown,
        /// <summary>Every gradient is 0.</summary>
        Zero,
        /// <summary>Of the word embeddings, only the rows in <see cref="_touchedWordRows"/> may be nonzero.</summary>
        SparseWord,
    }

    private GradientState _gradientState = GradientState.Zero;
    private readonly List<int> _touchedWordRows = [];
    private bool[]? _wordRowTouched;

    /// <summary>The gradient buffer, for the optimiser step, without giving up what is known of its zeros.</summary>
    internal T[] GradientBuffer => _gradients;

    /// <summary>The word embeddings' slot.</summary>
    internal ParameterSlot WordEmbeddings => _layout.Embeddings.Word;

    /// <summary>The word embeddings' rows whose gradient may be nonzero, distinct, in the order first written; null when
    /// any row may be.</summary>
    internal IReadOnlyList<int>? TouchedWordRows => _gradientState switch
    {
        GradientState.Zero => [],
        GradientState.SparseWord => _touchedWordRows,
        _ => null,
    };

    /// <summary>Whether the word embeddings receive gradient only from the embedding lookup (not tied to a decoder).</summary>
    private bool WordGradientIsSparse => _layout.MaskedLm is not { } mlm || mlm.Decoder.WeightOffset != _layout.Embeddings.Word.Offset;

    /// <summary>Records that a backward pass wrote the word embeddings' rows of <paramref name="ids"/>.</summary>
    private void NoteWordRows(int[] ids)
    {
        if (_gradientState == GradientState.Unknown || !WordGradientIsSparse)
        {
            _gradientState = GradientState.Unknown;
            return;
        }
        _wordRowTouched ??= new bool[Config.VocabSize];
        foreach (int id in ids)
            if (!_wordRowTouched[id])
            {
                _wordRowTouched[id] = true;
                _touchedWordRows.Add(id);
            }
        _gradientState = GradientState.SparseWord;
    }

    /// <summary>Tells the model that every gradient is 0 (the optimiser cleared them as it read them).</summary>
    internal void GradientsCleared()
    {
        foreach (int row in _touchedWordRows) _wordRowTouched![row] = false;
        _touchedWordRows.Clear();
        _gradientState = GradientState.Zero;
    }

    private void ClearGradients()
    {
        switch (_gradientState)
        {
            case GradientState.Zero:
                break;
            case GradientState.SparseWord:
                var word = WordEmbeddings;
                int h = word.Shape[1]; // a word row: hidden_size, or ELECTRA's embedding_size
                _gradients.AsSpan(0, word.Offset).Clear();
                _gradients.AsSpan(word.Offset + word.Length).Clear();
                foreach (int row in _touchedWordRows) _gradients.AsSpan(word.Offset + row * h, h).Clear();
                break;
            default:
                _gradients.AsSpan().Clear();
                break;
        }
        GradientsCleared();
    }

    /// <summary>
    /// The global L2 norm of the gradients, bit for bit <see cref="GradientClipping.GlobalNorm{T}"/> over the whole buffer:
    /// the same chunks summed in the same order, leaving out the chunks of untouched word-embedding rows, which hold only
    /// zeros and would each add exactly 0.
    /// </summary>
    internal double GradientNorm()
    {
        if (TouchedWordRows is not { } rows) return GradientClipping.GlobalNorm<T>(_gradients);
        const int chunk = GradientClipping.NormChunk;
        var word = WordEmbeddings;
        int h = word.Shape[1];
        // Chunks lying wholly inside the word embeddings are summed only when a touched row reaches into them.
        int firstWordChunk = (word.Offset + chunk - 1) / chunk, endWordChunk = (word.Offset + word.Length) / chunk;
        var needed = new bool[Math.Max(0, endWordChunk - firstWordChunk)];
        foreach (int row in rows)
        {
            int start = word.Offset + row * h;
            for (int c = start / chunk; c <= (start + h - 1) / chunk; c++)
                if (c >= firstWordChunk && c < endWordChunk) needed[c - firstWordChunk] = true;
        }
        double sum = 0;
        for (int c = 0, start = 0; start < _gradients.Length; c++, start += chunk)
        {
            if (c >= firstWordChunk && c < endWordChunk && !needed[c - firstWordChunk]) continue;
            sum += GradientClipping.SumOfSquares<T>(_gradients.AsSpan(start, Math.Min(chunk, _gradients.Length - start)));
        }
        return Math.Sqrt(sum);
    }
}
