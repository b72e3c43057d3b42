using NBert.Modeling;
using NBert.Schema;

using NBert.Training;

namespace NBert.Tasks;

/// <summary>
/// One model input of a fine-tuning task, unpadded: ids and token types plus the targets of its task (a
/// class, float values, a label per token, or answer positions), and what evaluation needs to map
/// predictions back (the example it came from, word ids, context offsets).
/// </summary>
public sealed class Feature
{
    /// <summary>Token ids with the special tokens ([CLS] ... [SEP]), not padded (<c>input_ids</c>).</summary>
    public required int[] InputIds { get; init; }
    /// <summary>Segment ids, one per token: 0 for the first text, 1 for the second of a pair (<c>token_type_ids</c>).</summary>
    public required int[] TokenTypeIds { get; init; }
    /// <summary>Single-label classification: the class index.</summary>
    public int Label { get; init; } = -100;
    /// <summary>Regression [1] or multi-label [num_labels] targets.</summary>
    public float[]? Values { get; init; }
    /// <summary>Token classification: a label per token, -100 where none.</summary>
    public int[]? TokenLabels { get; init; }
    /// <summary>QA: the token index of the answer's first token in this window (<c>start_positions</c>); 0, the [CLS]
    /// token, when the answer is not in the window or there is none.</summary>
    public int StartPosition { get; init; }
    /// <summary>QA: the token index of the answer's last token in this window (<c>end_positions</c>); 0 as for
    /// <see cref="StartPosition"/>.</summary>
    public int EndPosition { get; init; }
    /// <summary>Index of the example this feature came from (QA contexts give several windows).</summary>
    public int Example { get; init; }
    /// <summary>QA: each token's character span in the context, or (-1, -1) for question, special and padding tokens.</summary>
    public (int Start, int End)[]? ContextOffsets { get; init; }

    /// <summary>The number of tokens, special tokens included.</summary>
    public int Length => InputIds.Length;

    /// <summary>Pads a list of features to the longest and stacks them into a batch with its targets.</summary>
    public static TrainingBatch Collate(IReadOnlyList<Feature> features, int padId)
    {
        if (features.Count == 0) throw new ArgumentException("An empty batch.", nameof(features));
        int b = features.Count, s = features.Max(f => f.Length);
        var ids = new int[b * s];
        var types = new int[b * s];
        var mask = new int[b * s];
        Array.Fill(ids, padId);
        bool tokens = features[0].TokenLabels is not null, values = features[0].Values is not null, qa = features[0].ContextOffsets is not null;
        var tokenLabels = tokens ? Enumerable.Repeat(-100, b * s).ToArray() : null;
        for (int i = 0; i < b; i++)
        {
            var f = features[i];
            f.InputIds.CopyTo(ids, i * s);
            f.TokenTypeIds.CopyTo(types, i * s);
            mask.AsSpan(i * s, f.Length).Fill(1);
            f.TokenLabels?.CopyTo(tokenLabels!, i * s);
        }
        return new TrainingBatch
        {
            Inputs = new ModelInputs(b, s, ids, types, mask),
            Labels = tokens ? tokenLabels : values || qa ? null : features.Select(f => f.Label).ToArray(),
            LabelValues = values ? features.SelectMany(f => f.Values!).ToArray() : null,
            StartPositions = qa ? features.Select(f => f.StartPosition).ToArray() : null,
            EndPositions = qa ? features.Select(f => f.EndPosition).ToArray() : null,
        };
    }
}
