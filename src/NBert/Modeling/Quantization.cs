namespace NBert.Modeling;

/// <summary>How a model's linear layers run (<see cref="BertPreTrainedModel.Quantize"/>).</summary>
public enum Quantization
{
    /// <summary>float32, as loaded.</summary>
    None,
    /// <summary>int8 weights (one scale per output channel) and int8 activations (one scale per row, computed at run time),
    /// multiplied in integers and rescaled to float32: about a quarter of float32's weight memory.</summary>
    Int8,
}
