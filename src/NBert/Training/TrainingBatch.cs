using NBert.IO;
using NBert.Modeling;

namespace NBert.Training;

/// <summary>
/// A batch with its training targets, named as transformers' forward arguments: <c>labels</c> (masked-LM
/// targets [batch, sequence] with -100 where nothing is predicted; a class per sequence [batch]; a tag per
/// token [batch, sequence]), float labels for regression or multi-label classification,
/// <c>next_sentence_label</c> [batch], and <c>start_positions</c>/<c>end_positions</c> [batch] for QA.
/// </summary>
public sealed record TrainingBatch
{
    /// <summary>The model inputs: <c>input_ids</c>, <c>token_type_ids</c> and <c>attention_mask</c>, each [batch, sequence].</summary>
    public required ModelInputs Inputs { get; init; }
    /// <summary>Integer targets (<c>labels</c>): a class per sequence [batch], or per token [batch, sequence] for masked-LM
    /// and token classification, -100 where nothing is predicted. Null for QA and float labels.</summary>
    public int[]? Labels { get; init; }
    /// <summary>Float labels: [batch] for regression, [batch, num_labels] of 0/1 for multi-label classification.</summary>
    public float[]? LabelValues { get; init; }
    /// <summary>Next-sentence targets [batch] (<c>next_sentence_label</c>): 0 when B follows A, 1 when B is random.</summary>
    public int[]? NextSentenceLabel { get; init; }
    /// <summary>QA: each sequence's answer start token [batch] (<c>start_positions</c>), 0 ([CLS]) for no answer.</summary>
    public int[]? StartPositions { get; init; }
    /// <summary>QA: each sequence's answer end token [batch] (<c>end_positions</c>, inclusive), 0 ([CLS]) for no answer.</summary>
    public int[]? EndPositions { get; init; }

    /// <summary>Real (unpadded) tokens, for throughput figures.</summary>
    public int Tokens => Inputs.AttentionMask?.Count(v => v != 0) ?? Inputs.InputIds.Length;

    /// <summary>
    /// Reads a batch from a safetensors file: <c>input_ids</c> [batch, sequence] and optionally
    /// <c>token_type_ids</c>, <c>attention_mask</c>, <c>labels</c> (integer, or float for regression and
    /// multi-label), <c>next_sentence_label</c>, <c>start_positions</c>, <c>end_positions</c>.
    /// </summary>
    public static TrainingBatch Load(string path)
    {
        using var file = new SafeTensorsFile(path);
        if (!file.Contains("input_ids")) throw new NBertException($"{path}: no tensor 'input_ids'.");
        var idsInfo = file.Info("input_ids");
        if (idsInfo.Shape.Length != 2) throw new NBertException($"{path}: 'input_ids' must be [batch, sequence], not [{string.Join(", ", idsInfo.Shape)}].");
        int b = idsInfo.Shape[0], s = idsInfo.Shape[1];
        int[]? Ints(string name, params int[][] shapes)
        {
            if (!file.Contains(name)) return null;
            var info = file.Info(name);
            if (!shapes.Any(shape => shape.SequenceEqual(info.Shape)))
                throw new NBertException($"{path}: '{name}' has shape [{string.Join(", ", info.Shape)}], expected {string.Join(" or ", shapes.Select(x => $"[{string.Join(", ", x)}]"))}.");
            return Array.ConvertAll(file.ReadInt64(name), v => v is >= int.MinValue and <= int.MaxValue ? (int)v
                : throw new NBertException($"{path}: '{name}' holds {v}, outside the range of an int."));
        }
        var inputs = new ModelInputs(b, s, Ints("input_ids", [b, s])!, Ints("token_type_ids", [b, s]), Ints("attention_mask", [b, s]));
        int[]? labels = null;
        float[]? values = null;
        if (file.Contains("labels"))
        {
            var info = file.Info("labels");
            if (info.Shape.Length == 0 || info.Shape[0] != b)
                throw new NBertException($"{path}: 'labels' has shape [{string.Join(", ", info.Shape)}]; its first dimension must be the batch, {b}.");
            if (info.DType is DType.I64 or DType.I32) labels = Ints("labels", [b], [b, s]);
            else values = file.ReadFloat32("labels");
        }
        return new TrainingBatch
        {
            Inputs = inputs,
            Labels = labels,
            LabelValues = values,
            NextSentenceLabel = Ints("next_sentence_label", [b]),
            StartPositions = Ints("start_positions", [b]),
            EndPositions = Ints("end_positions", [b]),
        };
    }
}
