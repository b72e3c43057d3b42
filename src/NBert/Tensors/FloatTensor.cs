using System.Globalization;
using System.Numerics.Tensors;
using System.Text;

namespace NBert.Tensors;

/// <summary>
/// A float32 tensor: flat row-major data and its shape. Model outputs are tensors: <c>logits</c> [batch, labels],
/// <c>last_hidden_state</c> [batch, sequence, hidden], and so on. A row is the innermost vector (one sequence's logits,
/// one token's hidden state), read as a span without copying; <see cref="Softmax"/>, <see cref="Sigmoid"/> and
/// <see cref="ArgMax"/> work along it, as <c>logits.softmax(-1)</c> and <c>logits.argmax(-1)</c> do in PyTorch.
/// </summary>
public sealed class FloatTensor
{
    /// <summary>The values, row-major (the last dimension varies fastest).</summary>
    public float[] Data { get; }
    /// <summary>The size of each dimension.</summary>
    public int[] Shape { get; }

    /// <summary>A tensor over <paramref name="data"/> (not copied), which must hold exactly the shape's element count.</summary>
    public FloatTensor(float[] data, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(shape);
        long n = shape.Aggregate(1L, (a, d) => a * d);
        if (shape.Any(d => d < 0) || data.Length != n)
            throw new ArgumentException($"{data.Length} values do not fill shape [{string.Join(", ", shape)}].");
        Data = data;
        Shape = shape;
    }

    /// <summary>A tensor of zeros.</summary>
    public static FloatTensor Zeros(params int[] shape) => new(new float[shape.Aggregate(1L, (a, d) => a * d)], shape);

    /// <summary>The number of dimensions.</summary>
    public int Rank => Shape.Length;
    /// <summary>The number of values.</summary>
    public long Length => Data.Length;
    /// <summary>The length of a row: the last dimension (1 for a scalar).</summary>
    public int RowLength => Shape.Length == 0 ? 1 : Shape[^1];
    /// <summary>The number of rows: every dimension but the last, multiplied.</summary>
    public int RowCount => RowLength == 0 ? 0 : Data.Length / RowLength;

    /// <summary>The value at an index (one int per dimension).</summary>
    public float this[params int[] index]
    {
        get => Data[Offset(index)];
        set => Data[Offset(index)] = value;
    }

    /// <summary>The innermost vector at the given leading indices, without copying: for logits [batch, labels],
    /// <c>Row(i)</c> is sequence i's logits; for hidden states [batch, sequence, hidden], <c>Row(i, t)</c> is token t's vector.</summary>
    public Span<float> Row(params int[] index)
    {
        if (index.Length != Math.Max(Shape.Length - 1, 0))
            throw new ArgumentException($"A row of a rank-{Shape.Length} tensor takes {Math.Max(Shape.Length - 1, 0)} indices, not {index.Length}.", nameof(index));
        return Data.AsSpan(checked((int)Offset([.. index, 0])), RowLength);
    }

    /// <summary>Row number <paramref name="row"/> of the tensor seen as [<see cref="RowCount"/>, <see cref="RowLength"/>].</summary>
    public Span<float> FlatRow(int row)
    {
        if ((uint)row >= (uint)RowCount) throw new ArgumentOutOfRangeException(nameof(row), $"Row {row} outside 0..{RowCount - 1}.");
        return Data.AsSpan(row * RowLength, RowLength);
    }

    /// <summary>Softmax along the last dimension (probabilities that sum to 1 in each row), as a new tensor.</summary>
    /// <remarks>The row's maximum is subtracted first (TensorPrimitives.SoftMax does not, and a logit above about 88
    /// overflows float's exp to NaN).</remarks>
    public FloatTensor Softmax() => PerRow((x, y) => { x.CopyTo(y); Kernels.Softmax(y); });

    /// <summary>The logistic sigmoid of every value, as a new tensor (multi-label and one-label heads).</summary>
    public FloatTensor Sigmoid() => PerRow((x, y) => TensorPrimitives.Sigmoid(x, y));

    /// <summary>The index of the largest value of each row (the first of equal ones): one int per row.</summary>
    public int[] ArgMax()
    {
        var result = new int[RowCount];
        for (int r = 0; r < result.Length; r++) result[r] = TensorPrimitives.IndexOfMax<float>(FlatRow(r));
        return result;
    }

    private FloatTensor PerRow(Action<ReadOnlySpan<float>, Span<float>> f)
    {
        var y = new float[Data.Length];
        for (int r = 0; r < RowCount; r++) f(FlatRow(r), y.AsSpan(r * RowLength, RowLength));
        return new FloatTensor(y, (int[])Shape.Clone());
    }

    private long Offset(int[] index)
    {
        if (index.Length != Shape.Length) throw new ArgumentException($"{index.Length} indices for a rank-{Shape.Length} tensor.");
        long at = 0;
        for (int d = 0; d < index.Length; d++)
        {
            if ((uint)index[d] >= (uint)Shape[d]) throw new IndexOutOfRangeException($"Index {index[d]} outside dimension {d} of size {Shape[d]}.");
            at = at * Shape[d] + index[d];
        }
        return at;
    }

    /// <summary>The shape and the leading values, nested as the dimensions are, with "..." where more follow
    /// (as PyTorch prints a tensor): <c>FloatTensor [2, 3] [[0.1, -1.2, 3], [0.5, 0, -0.25]]</c>.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder("FloatTensor [").Append(string.Join(", ", Shape)).Append("] ");
        if (Shape.Length == 0) return sb.Append(Data[0].ToString("G6", CultureInfo.InvariantCulture)).ToString();
        const int Shown = 4;
        void Write(int dimension, long offset, long stride)
        {
            long inner = stride / Math.Max(Shape[dimension], 1);
            sb.Append('[');
            int n = Shape[dimension];
            for (int i = 0; i < Math.Min(n, Shown); i++)
            {
                if (i > 0) sb.Append(", ");
                if (dimension == Shape.Length - 1) sb.Append(Data[offset + i].ToString("G6", CultureInfo.InvariantCulture));
                else Write(dimension + 1, offset + i * inner, inner);
            }
            if (n > Shown) sb.Append(", ...");
            sb.Append(']');
        }
        Write(0, 0, Data.Length);
        return sb.ToString();
    }
}
