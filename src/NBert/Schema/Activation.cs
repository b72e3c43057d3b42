using System.Numerics;
using System.Runtime.InteropServices;
using NBert.Tensors;

namespace NBert.Schema;

/// <summary>The activation functions BERT configs name (transformers' <c>ACT2FN</c> keys).</summary>
public enum Activation
{
    /// <summary>The exact GELU, x·Φ(x) with the error function (<c>gelu</c>, BERT's).</summary>
    Gelu,
    /// <summary>The tanh approximation of GELU (<c>gelu_new</c>, <c>gelu_pytorch_tanh</c>, <c>gelu_fast</c>).</summary>
    GeluTanh,
    /// <summary>max(0, x) (<c>relu</c>).</summary>
    Relu,
    /// <summary>x·sigmoid(x) (<c>silu</c>, <c>swish</c>).</summary>
    Silu,
    /// <summary>tanh(x) (<c>tanh</c>): BERT's pooler.</summary>
    Tanh,
}

/// <summary>Each <see cref="Activation"/> forward and backward, over spans (float32 through the vectorised kernels of
/// <see cref="Kernels"/>, float64 value by value), for the one encoder's training and inference passes alike.</summary>
public static class Activations
{
    /// <summary>y = act(x); x and y may be the same buffer.</summary>
    public static void Forward<T>(this Activation activation, ReadOnlySpan<T> x, Span<T> y) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!x.Overlaps(y)) x.CopyTo(y);
        if (typeof(T) == typeof(float))
        {
            // The inference kernels, so a float32 training forward computes what inference computes.
            var f = MemoryMarshal.Cast<T, float>(y);
            switch (activation)
            {
                case Activation.Gelu: Kernels.Gelu(f); return;
                case Activation.GeluTanh: Kernels.GeluTanh(f); return;
                case Activation.Relu: Kernels.Relu(f); return;
                case Activation.Tanh: System.Numerics.Tensors.TensorPrimitives.Tanh(f, f); return;
                default: Kernels.Silu(f); return;
            }
        }
        for (int i = 0; i < y.Length; i++) y[i] = Activate(activation, y[i]);
    }

    /// <summary>dx += dy · act'(x), from the activation's input x.</summary>
    public static void Backward<T>(this Activation activation, ReadOnlySpan<T> dy, ReadOnlySpan<T> x, Span<T> dx)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float) && activation == Activation.Gelu)
        {
            Kernels.GeluBackward(MemoryMarshal.Cast<T, float>(x),
                MemoryMarshal.Cast<T, float>(dy), MemoryMarshal.Cast<T, float>(dx));
            return;
        }
        for (int i = 0; i < x.Length; i++) dx[i] += dy[i] * Derivative(activation, x[i]);
    }

    private static readonly double SqrtHalf = Math.Sqrt(0.5), InvSqrt2Pi = 1 / Math.Sqrt(2 * Math.PI), SqrtTwoOverPi = Math.Sqrt(2 / Math.PI);

    /// <summary>One value of the activation, computed in double (the float64 path).</summary>
    public static T Activate<T>(this Activation activation, T value) where T : unmanaged, IFloatingPointIeee754<T>
    {
        double x = double.CreateTruncating(value);
        double y = activation switch
        {
            Activation.Gelu => 0.5 * x * (1 + Kernels.Erf(x * SqrtHalf)),
            Activation.GeluTanh => 0.5 * x * (1 + Math.Tanh(SqrtTwoOverPi * (x + 0.044715 * x * x * x))),
            Activation.Relu => Math.Max(x, 0),
            Activation.Tanh => Math.Tanh(x),
            _ => x / (1 + Math.Exp(-x)),
        };
        return T.CreateTruncating(y);
    }

    /// <summary>The activation's derivative at x.</summary>
    public static T Derivative<T>(this Activation activation, T value) where T : unmanaged, IFloatingPointIeee754<T>
    {
        double x = double.CreateTruncating(value);
        double d;
        switch (activation)
        {
            case Activation.Gelu:
                // d/dx x·Φ(x) = Φ(x) + x·φ(x)
                d = 0.5 * (1 + Kernels.Erf(x * SqrtHalf)) + x * InvSqrt2Pi * Math.Exp(-0.5 * x * x);
                break;
            case Activation.GeluTanh:
                double u = SqrtTwoOverPi * (x + 0.044715 * x * x * x), t = Math.Tanh(u);
                d = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SqrtTwoOverPi * (1 + 3 * 0.044715 * x * x);
                break;
            case Activation.Relu:
                d = x > 0 ? 1 : 0;
                break;
            case Activation.Tanh:
                double th = Math.Tanh(x);
                d = 1 - th * th;
                break;
            default:
                double s = 1 / (1 + Math.Exp(-x));
                d = s * (1 + x * (1 - s));
                break;
        }
        return T.CreateTruncating(d);
    }
}
