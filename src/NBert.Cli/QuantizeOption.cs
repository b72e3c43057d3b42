using System.CommandLine;
using NBert.Modeling;

namespace NBert.Cli;

/// <summary><c>--quantize none|int8</c>, the one definition every inference command and <c>serve</c> share.</summary>
internal static class QuantizeOption
{
    public static Option<string> Create()
    {
        var option = new Option<string>("--quantize")
        {
            Description = "none: float32 as loaded; int8: the encoder's linear layers in int8 (weights per output channel, activations per token), about a quarter of the weight memory, embeddings within ~0.99 cosine of float32",
            DefaultValueFactory = _ => "none",
        };
        option.AcceptOnlyFromAmong("none", "int8");
        return option;
    }

    /// <summary>The quantization the option asks for.</summary>
    public static Quantization Value(ParseResult parse, Option<string> option) =>
        parse.GetValue(option) == "int8" ? Quantization.Int8 : Quantization.None;
}
