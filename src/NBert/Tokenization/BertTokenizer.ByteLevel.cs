using System.Text;

namespace NBert.Tokenization;

public sealed partial class BertTokenizer
{
    /// <summary>
    /// Adds a token whose source is <paramref name="start"/>..<paramref name="end"/> of <paramref name="text"/> and whose
    /// string is <paramref name="token"/> (an added token's matched text, spaces it absorbed included, or a BPE token),
    /// with the offsets trimmed as the byte-level post-processor trims them, for the token first in its window or not.
    /// </summary>
    private void AddMatched(string text, int id, int start, int end, ReadOnlySpan<char> token, TokenSink sink, int word)
    {
        if (_byteLevel is not { TrimOffsets: true } options)
        {
            sink.Add(id, start, end, word);
            return;
        }
        var (leading, trailing) = ByteLevelOptions.Spaces(token);
        var (s, e) = options.Trim(text, start, end, leading, trailing, first: false);
        var (fs, fe) = options.Trim(text, start, end, leading, trailing, first: true);
        sink.Add(id, s, e, fs, fe, word);
    }

    /// <summary>An added token found in the text (raw) or in the normalised text: its string is the text it matched, as
    /// Hugging Face's split gives it (<c>" &lt;mask&gt;"</c> with the space an lstrip absorbed; the normalised form).</summary>
    private void AddAddedToken(string text, AddedToken token, int start, int end, ReadOnlySpan<char> matched, TokenSink sink, int word)
    {
        AddMatched(text, token.Id, start, end, matched, sink, word);
        if (!matched.SequenceEqual(token.Content)) sink.Texts[sink.Count - 1] = matched.ToString();
    }

    /// <summary>Byte-level BPE of <c>text[from..to)</c>: the normalizer (if any) into a buffer with alignments,
    /// normalized added tokens, then the ByteLevel pre-tokenizer and BPE on each piece between them.</summary>
    private void EncodeByteLevel(string text, int from, int to, Scratch scratch, ref int word)
    {
        var buffer = scratch.Normalized;
        buffer.Clear();
        _normalizer.Normalize(text, from, to, buffer);
        if (_normalizedMatcher.IsEmpty)
        {
            PreTokenizeByteLevel(text, buffer, 0, buffer.Length, scratch, ref word);
            return;
        }
        _normalizedMatcher.FindAll(buffer.Chars.AsSpan(0, buffer.Length), 0, buffer.Length, scratch.NormalizedMatches);
        int position = 0;
        foreach (var (start, end, token) in scratch.NormalizedMatches)
        {
            PreTokenizeByteLevel(text, buffer, position, start, scratch, ref word);
            AddAddedToken(text, token, buffer.Start[start], buffer.End[end - 1], buffer.Chars.AsSpan(start, end - start), scratch.Tokens, word++);
            position = end;
        }
        PreTokenizeByteLevel(text, buffer, position, buffer.Length, scratch, ref word);
    }

    /// <summary>
    /// The ByteLevel pre-tokenizer on one piece of normalised text, <c>buffer[from..to)</c>: a space in front when
    /// add_prefix_space asks for one (it shares the first char's span, as Hugging Face's prepend aligns it), GPT-2's
    /// split, each word's UTF-8 bytes as byte chars (every byte with its char's span), then BPE.
    /// </summary>
    private void PreTokenizeByteLevel(string text, NormalizedBuffer buffer, int from, int to, Scratch scratch, ref int word)
    {
        if (from >= to) return;
        var options = _byteLevel!;
        bool prefix = options.AddPrefixSpace && buffer.Chars[from] != ' ';
        int length = to - from + (prefix ? 1 : 0);
        if (scratch.Piece.Length < length)
        {
            int n = Math.Max(length, scratch.Piece.Length * 2);
            scratch.Piece = new char[n];
            scratch.PieceStart = new int[n];
            scratch.PieceEnd = new int[n];
        }
        var piece = scratch.Piece;
        int k = 0;
        if (prefix) (piece[0], scratch.PieceStart[0], scratch.PieceEnd[0], k) = (' ', buffer.Start[from], buffer.End[from], 1);
        buffer.Chars.AsSpan(from, to - from).CopyTo(piece.AsSpan(k));
        buffer.Start.AsSpan(from, to - from).CopyTo(scratch.PieceStart.AsSpan(k));
        buffer.End.AsSpan(from, to - from).CopyTo(scratch.PieceEnd.AsSpan(k));
        var span = piece.AsSpan(0, length);
        for (int at = 0; at < length;)
        {
            int matched = options.UseRegex ? ByteLevelOptions.MatchLength(span, at) : length;
            EncodeByteLevelWord(text, at, at + matched, scratch, word++);
            at += matched;
        }
    }

    /// <summary>One pre-token, <c>scratch.Piece[from..to)</c>, as byte chars through BPE.</summary>
    private void EncodeByteLevelWord(string text, int from, int to, Scratch scratch, int word)
    {
        int maxBytes = (to - from) * 3;
        if (scratch.Bytes.Length < maxBytes)
        {
            int n = Math.Max(maxBytes, scratch.Bytes.Length * 2);
            scratch.Bytes = new char[n];
            scratch.ByteStart = new int[n];
            scratch.ByteEnd = new int[n];
        }
        Span<byte> utf8 = stackalloc byte[4];
        int count = 0;
        for (int i = from; i < to;)
        {
            // A lone surrogate reads as U+FFFD, which is what a decoder would have made of it.
            var status = Rune.DecodeFromUtf16(scratch.Piece.AsSpan(i, to - i), out var rune, out int width);
            if (status != System.Buffers.OperationStatus.Done) (rune, width) = (Rune.ReplacementChar, 1);
            int start = scratch.PieceStart[i], end = scratch.PieceEnd[i + width - 1];
            int bytes = rune.EncodeToUtf8(utf8);
            for (int b = 0; b < bytes; b++, count++)
                (scratch.Bytes[count], scratch.ByteStart[count], scratch.ByteEnd[count]) = (ByteLevelOptions.ByteToChar[utf8[b]], start, end);
            i += width;
        }
        var sink = scratch.Tokens;
        foreach (var (id, first, length) in _bpe!.Tokenize(scratch.Bytes.AsSpan(0, count)))
            AddMatched(text, id, scratch.ByteStart[first], scratch.ByteEnd[first + length - 1], _bpe.IdToToken(id), sink, word);
    }
}
