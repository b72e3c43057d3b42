namespace NBert.Tokenization;

/// <summary>Which text loses tokens when a text or pair is longer than the maximum length.</summary>
public enum TruncationStrategy
{
    /// <summary>Never truncate.</summary>
    None,
    /// <summary>Take tokens from the longer text first (Hugging Face's default, <c>truncation=True</c>).</summary>
    LongestFirst,
    /// <summary>Only truncate the first text.</summary>
    OnlyFirst,
    /// <summary>Only truncate the second text (question answering: the context).</summary>
    OnlySecond,
}

/// <summary>Which end of a text loses tokens when it is truncated (transformers' <c>truncation_side</c>, tokenizers'
/// <c>TruncationDirection</c>).</summary>
public enum TruncationSide
{
    /// <summary>Keep the start, drop the end (the default).</summary>
    Right,
    /// <summary>Keep the end, drop the start; with a stride, the overflowing windows walk back towards the start.</summary>
    Left,
}

/// <summary>How encodings are padded.</summary>
public enum PaddingStrategy
{
    /// <summary>No padding.</summary>
    None,
    /// <summary>To the longest encoding of the batch.</summary>
    Longest,
    /// <summary>To the maximum length.</summary>
    MaxLength,
}

/// <summary>
/// The arguments of a Hugging Face tokenizer call. Defaults are Hugging Face's: special tokens added,
/// no truncation unless <see cref="MaxLength"/> is given (then <c>longest_first</c>), no padding.
/// </summary>
public sealed record EncodeOptions
{
    /// <summary>The defaults (one shared instance; records are immutable).</summary>
    public static EncodeOptions Default { get; } = new();

    /// <summary>Surround the text with the post-processor's special tokens (<c>[CLS] A [SEP]</c>, <c>[CLS] A [SEP] B [SEP]</c>),
    /// transformers' <c>add_special_tokens</c>. Default true.</summary>
    public bool AddSpecialTokens { get; init; } = true;

    /// <summary>Null means "not said": truncate <c>longest_first</c> when <see cref="MaxLength"/> is set, as
    /// transformers does.</summary>
    public TruncationStrategy? Truncation { get; init; }

    /// <summary>Maximum length including special tokens; when null, truncation and <c>max_length</c>
    /// padding use the tokenizer's <c>model_max_length</c>.</summary>
    public int? MaxLength { get; init; }

    /// <summary>Which end of a text truncation removes tokens from.</summary>
    public TruncationSide TruncationSide { get; init; } = TruncationSide.Right;

    /// <summary>Tokens shared by consecutive overflowing windows (only with truncation).</summary>
    public int Stride { get; init; }

    /// <summary>Keep the windows that truncation cuts off in <see cref="TokenEncoding.Overflowing"/>
    /// (transformers' <c>return_overflowing_tokens</c>, off by default as there).</summary>
    public bool ReturnOverflowingTokens { get; init; }

    /// <summary>How to pad, on the right with the pad token and attention mask 0 (transformers' <c>padding</c>): not at
    /// all (the default), to the batch's longest (<c>EncodeBatch</c>), or to <see cref="MaxLength"/>.</summary>
    public PaddingStrategy Padding { get; init; } = PaddingStrategy.None;

    /// <summary>Round the padded length up to a multiple of this.</summary>
    public int? PadToMultipleOf { get; init; }
}
