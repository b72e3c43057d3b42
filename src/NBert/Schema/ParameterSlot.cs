namespace NBert.Schema;

/// <summary>
/// Where one parameter lives in a training model's flat buffers. <see cref="Name"/> is the
/// model's name (without the <c>bert.</c> prefix), <see cref="CheckpointName"/> the name transformers gives
/// it in this architecture.
/// </summary>
public sealed record ParameterSlot(string Name, string CheckpointName, int[] Shape, int Offset, int Length)
{
    /// <summary>transformers' default parameter groups: no weight decay for biases and LayerNorm weights.</summary>
    public bool Decays => !CheckpointName.Contains("bias", StringComparison.Ordinal) && !CheckpointName.Contains("LayerNorm.weight", StringComparison.Ordinal);
}
