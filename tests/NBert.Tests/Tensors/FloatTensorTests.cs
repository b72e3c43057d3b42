using System.Numerics.Tensors; // beside NBert.Tensors without a clash: the type is FloatTensor, not Tensor (CS0104)
using NBert.Tensors;

namespace NBert.Tests.Tensors;

public sealed class FloatTensorTests
{
    private static readonly FloatTensor Logits = new([1f, 2f, 0.5f, -1f, 3f, 3f], 2, 3);

    [Fact]
    public void Rows_are_spans_over_the_data()
    {
        Assert.Equal([-1f, 3f, 3f], Logits.Row(1).ToArray());
        var hidden = new FloatTensor(Enumerable.Range(0, 24).Select(i => (float)i).ToArray(), 2, 3, 4);
        Assert.Equal([20f, 21f, 22f, 23f], hidden.Row(1, 2).ToArray());
        Assert.Equal(hidden.Row(1, 2).ToArray(), hidden.FlatRow(5).ToArray());
        hidden.Row(0, 0)[1] = 100f;
        Assert.Equal(100f, hidden[0, 0, 1]);
        Assert.Equal((6, 4), (hidden.RowCount, hidden.RowLength));
        Assert.Throws<ArgumentException>(() => hidden.Row(1));
        Assert.Throws<IndexOutOfRangeException>(() => hidden.Row(2, 0));
    }

    [Fact]
    public void Softmax_of_large_logits_is_finite()
    {
        // exp(100) overflows float: without the row's maximum subtracted first this row was NaN, 0, 0.
        var p = new FloatTensor([100f, 0f, -1f, 1000f, 999f, -1000f], 2, 3).Softmax();
        Assert.All(p.Data, v => Assert.True(float.IsFinite(v), $"{v}"));
        Assert.Equal(1.0, p[0, 0], 6);
        Assert.Equal(1 / (1 + Math.Exp(-1)), p[1, 0], 6);
        Assert.Equal(1f, NBert.Pipelines.Batches.Softmax([100f, 0f, -1f])[0], 6);
    }

    [Fact]
    public void Softmax_sigmoid_and_argmax_work_along_the_last_dimension()
    {
        var p = Logits.Softmax();
        Assert.Equal(Logits.Shape, p.Shape);
        double z = Math.Exp(1) + Math.Exp(2) + Math.Exp(0.5);
        Assert.Equal(Math.Exp(2) / z, p[0, 1], 6);
        Assert.Equal(1f, TensorPrimitives.Sum<float>(p.Row(1)), 6);
        Assert.Equal([1, 1], Logits.ArgMax()); // the first of equal values
        Assert.Equal(1 / (1 + Math.Exp(1)), Logits.Sigmoid()[1, 0], 6);
        Assert.Equal(1f, Logits[0, 0]); // the source is unchanged
    }

    [Fact]
    public void ToString_shows_the_shape_and_the_leading_values()
    {
        Assert.Equal("FloatTensor [2, 3] [[1, 2, 0.5], [-1, 3, 3]]", Logits.ToString());
        var big = FloatTensor.Zeros(3, 10);
        Assert.Equal("FloatTensor [3, 10] [[0, 0, 0, 0, ...], [0, 0, 0, 0, ...], [0, 0, 0, 0, ...]]", big.ToString());
        Assert.Equal("FloatTensor [] 2.5", new FloatTensor([2.5f]).ToString());
    }
}
