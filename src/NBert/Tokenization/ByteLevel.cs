using System.Globalization;
using System.Text;

namespace NBert.Tokenization;

/// <summary>
/// Hugging Face's ByteLevel pre-tokenizer, post-processing of offsets and decoder (GPT-2's, which RoBERTa uses): words
/// split by GPT-2's pattern, each UTF-8 byte shown as one printable char (a space is <c>Ġ</c>).
/// </summary>
/// <param name="AddPrefixSpace">Prepend a space to each piece of text that does not start with one (<c>add_prefix_space</c>),
/// so the first word is tokenized like the others.</param>
/// <param name="UseRegex">Split with GPT-2's pattern (<c>use_regex</c>); false keeps each piece of text whole.</param>
/// <param name="TrimOffsets">The post-processor's <c>trim_offsets</c>: offsets leave out the spaces a token starts or ends with.</param>
/// <param name="TrimKeepsPrefixSpace">The post-processor's <c>add_prefix_space</c>: trimming keeps the one space of a text's
/// first token.</param>
internal sealed record ByteLevelOptions(bool AddPrefixSpace, bool UseRegex, bool TrimOffsets, bool TrimKeepsPrefixSpace)
{
    /// <summary>The char each byte is shown as: printable Latin-1 bytes as themselves, the others from U+0100 on.</summary>
    public static readonly char[] ByteToChar = BuildByteToChar();
    /// <summary>The byte of each char of <see cref="ByteToChar"/>; -1 for any other char.</summary>
    private static readonly short[] CharToByte = BuildCharToByte();
    public const char SpaceChar = '\u0120';

    private static char[] BuildByteToChar()
    {
        var table = new char[256];
        int shifted = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is (>= '!' and <= '~') or (>= 0xA1 and <= 0xAC) or (>= 0xAE and <= 0xFF);
            table[b] = printable ? (char)b : (char)(256 + shifted++);
        }
        return table;
    }

    private static short[] BuildCharToByte()
    {
        var table = new short[512];
        table.AsSpan().Fill(-1);
        for (int b = 0; b < 256; b++) table[ByteToChar[b]] = (short)b;
        return table;
    }

    /// <summary>GPT-2's pattern <c>'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+</c>, as the
    /// Rust crate's Oniguruma runs it (alternatives in order, over code points, <c>\s</c> the White_Space property).
    /// Returns the length in chars of the match at <paramref name="at"/> in <paramref name="text"/>.</summary>
    public static int MatchLength(ReadOnlySpan<char> text, int at)
    {
        char c = text[at];
        if (c == '\'' && at + 1 < text.Length)
        {
            char d = text[at + 1];
            if (d is 's' or 't' or 'm' or 'd') return 2;
            if (at + 2 < text.Length && (d, text[at + 2]) is ('r', 'e') or ('v', 'e') or ('l', 'l')) return 3;
        }
        int first = at;
        byte kind = Kind(text, at, out int width);
        if (c == ' ' && at + 1 < text.Length)
        {
            byte nextKind = Kind(text, at + 1, out int nextWidth);
            if (nextKind != Space) { first = at + 1; kind = nextKind; width = nextWidth; }
        }
        if (kind != Space)
        {
            int end = first + width;
            while (end < text.Length && Kind(text, end, out int w) == kind) end += w;
            return end - at;
        }
        // A whitespace run: all of it at the end of the text, else all but its last char (which goes with the next
        // word), unless that leaves nothing (\s+ then takes the one char).
        int stop = at + width, last = at;
        while (stop < text.Length && Kind(text, stop, out int w) == Space) { last = stop; stop += w; }
        if (stop == text.Length || last == at) return stop - at;
        return last - at;
    }

    private const byte Letter = 0, Number = 1, Space = 2, Other = 3;

    private static byte Kind(ReadOnlySpan<char> text, int at, out int width)
    {
        int cp = text[at];
        width = 1;
        if (char.IsHighSurrogate(text[at]) && at + 1 < text.Length && char.IsLowSurrogate(text[at + 1]))
        {
            cp = char.ConvertToUtf32(text[at], text[at + 1]);
            width = 2;
        }
        if (cp < 0x80)
            return cp is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') ? Letter : cp is >= '0' and <= '9' ? Number
                : UnicodeRules.IsWhitespace(cp) ? Space : Other;
        if (UnicodeRules.IsWhitespace(cp)) return Space;
        return CharUnicodeInfo.GetUnicodeCategory(cp) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => Letter,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => Number,
            _ => Other,
        };
    }

    /// <summary>
    /// RobertaProcessing's (and ByteLevel's) <c>trim_offsets</c> for one token: its start moves past the spaces the token
    /// starts with and its end back before those it ends with, counted in code points of <paramref name="text"/>. The
    /// one space of the first token (<paramref name="first"/>: first of its window, or starting the text) stays when
    /// <see cref="TrimKeepsPrefixSpace"/>, since add_prefix_space put it there.
    /// </summary>
    public (int Start, int End) Trim(string text, int start, int end, int leading, int trailing, bool first)
    {
        if (leading == 1 && TrimKeepsPrefixSpace && (first || start == 0)) leading = 0;
        if (leading > 0) start = Math.Min(Step(text, start, leading), end);
        if (trailing > 0 && Back(text, end, trailing) is int back) end = Math.Max(back, start);
        return (start, end);
    }

    /// <summary>The spaces a token starts and ends with: <c>Ġ</c> or whitespace chars.</summary>
    public static (int Leading, int Trailing) Spaces(ReadOnlySpan<char> token)
    {
        int leading = 0;
        while (leading < token.Length && IsSpace(token[leading])) leading++;
        int trailing = 0;
        while (trailing < token.Length && IsSpace(token[token.Length - 1 - trailing])) trailing++;
        return (leading, trailing);
    }

    private static bool IsSpace(char c) => c == SpaceChar || UnicodeRules.IsWhitespace(c);

    /// <summary><paramref name="count"/> code points after <paramref name="at"/> (no further than the text's end).</summary>
    private static int Step(string text, int at, int count)
    {
        for (; count > 0 && at < text.Length; count--)
            at += char.IsHighSurrogate(text[at]) && at + 1 < text.Length && char.IsLowSurrogate(text[at + 1]) ? 2 : 1;
        return at + count;
    }

    /// <summary><paramref name="count"/> code points before <paramref name="at"/>; null when the text has fewer.</summary>
    private static int? Back(string text, int at, int count)
    {
        for (; count > 0; count--)
        {
            if (at <= 0) return null;
            at -= at >= 2 && char.IsLowSurrogate(text[at - 1]) && char.IsHighSurrogate(text[at - 2]) ? 2 : 1;
        }
        return at;
    }

    /// <summary>The ByteLevel decoder: each token's chars back to bytes (a token with a char outside the byte alphabet,
    /// such as an added token, as its own UTF-8), then UTF-8 with U+FFFD for invalid bytes.</summary>
    public static string Decode(IEnumerable<string> tokens)
    {
        var bytes = new List<byte>();
        foreach (var token in tokens)
        {
            bool mapped = true;
            foreach (char c in token)
                if (c >= CharToByte.Length || CharToByte[c] < 0) { mapped = false; break; }
            if (mapped) foreach (char c in token) bytes.Add((byte)CharToByte[c]);
            else bytes.AddRange(Encoding.UTF8.GetBytes(token));
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}
