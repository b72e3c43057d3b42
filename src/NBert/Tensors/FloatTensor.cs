namespace NBert.Tensors;

/// <summary>A float32 tensor: flat row-major data and its shape. Model outputs are tensors.</summary>
public sealed class FloatTensor
{
    public float[] Data { get; }
    public int[] Shape { get; }

    public FloatTensor(float[] data, params int[] shape)
    {
        long n = shape.Aggregate(1L, (a, d) => a * d);
        if (shape.Any(d => d < 0) || data.Length != n)
            throw new ArgumentException($"{data.Length} values do not fill shape [{string.Join(", ", shape)}].");
        Data = data;
        Shape = shape;
    }

    public static FloatTensor Zeros(params int[] shape) => new(new float[shape.Aggregate(1L, (a, d) => a * d)], shape);

    public int Rank => Shape.Length;
    public long Length => Data.Length;

    /// <summary>The value at an index (one int per dimension).</summary>
    public float this[params int[] index]
    {
        get => Data[Offset(index)];
        set => Data[Offset(index)] = value;
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

    public override string ToString() => $"FloatTensor [{string.Join(", ", Shape)}]";
}
