namespace NBert.Tokenization;

/// <summary>
/// The model part of a tokenizer (tokenizer.json's <c>model</c>): the vocabulary and how a word becomes tokens.
/// <see cref="WordPiece"/> for BERT, <see cref="BytePairEncoding"/> for RoBERTa's byte-level BPE.
/// </summary>
public abstract class TokenizerModel
{
    private protected TokenizerModel() { }

    /// <summary>The highest id plus one (a gap in the ids counts too).</summary>
    public abstract int VocabSize { get; }

    /// <summary>Token to id, as the vocabulary file or tokenizer.json's <c>model.vocab</c> gives them.</summary>
    public abstract IReadOnlyDictionary<string, int> Vocab { get; }

    /// <summary>The token of an id; null outside the vocabulary or in a gap.</summary>
    public abstract string? IdToToken(int id);

    /// <summary>The id of a token (ordinal match); null when the vocabulary has none.</summary>
    public abstract int? TokenToId(string token);
}
