using System.Globalization;
using System.Text;

namespace NBert.Tokenization;

/// <summary>
/// The character classes Hugging Face's Rust <c>tokenizers</c> uses for BERT, written down once.
/// Each predicate names the Rust function it reproduces; the comments say where .NET differs.
/// </summary>
internal static class UnicodeRules
{
    /// <summary>Pre-tokenizer class of each BMP char: 0 word, 1 whitespace, 2 punctuation.</summary>
    private static readonly byte[] BmpClass = BuildBmpClass();

    public const byte Word = 0, Space = 1, Punct = 2;

    /// <summary>Rust's <c>char::is_whitespace</c> (the Unicode White_Space property).</summary>
    public static bool IsWhitespace(int cp) => cp switch
    {
        >= 0x09 and <= 0x0D => true,
        0x20 or 0x85 or 0xA0 or 0x1680 or 0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000 => true,
        >= 0x2000 and <= 0x200A => true,
        _ => false,
    };

    /// <summary>BertNormalizer's <c>is_control</c>: categories Cc, Cf and Co, except tab, LF and CR
    /// (which count as whitespace). Unassigned (Cn) code points are kept, as in the Rust crate.</summary>
    public static bool IsControl(int cp)
    {
        if (cp is '\t' or '\n' or '\r') return false;
        var cat = Category(cp);
        return cat is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.PrivateUse;
    }

    /// <summary>BertPreTokenizer's <c>is_bert_punc</c>: ASCII punctuation (which includes symbols such
    /// as <c>$ + &lt; = &gt; ^ ` | ~</c>) or a Unicode punctuation category (Pc Pd Ps Pe Pi Pf Po).</summary>
    public static bool IsPunctuation(int cp)
    {
        if (cp < 0x80) return cp is (>= 33 and <= 47) or (>= 58 and <= 64) or (>= 91 and <= 96) or (>= 123 and <= 126);
        return Category(cp) is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation
            or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation
            or UnicodeCategory.InitialQuotePunctuation or UnicodeCategory.FinalQuotePunctuation
            or UnicodeCategory.OtherPunctuation;
    }

    /// <summary>BertNormalizer's <c>is_chinese_char</c>: the CJK Unified Ideograph blocks that the
    /// original BERT code lists (not Japanese kana nor Korean Hangul).</summary>
    public static bool IsChinese(int cp) => cp is (>= 0x4E00 and <= 0x9FFF) or (>= 0x3400 and <= 0x4DBF)
        or (>= 0x20000 and <= 0x2A6DF) or (>= 0x2A700 and <= 0x2B73F) or (>= 0x2B740 and <= 0x2B81F)
        or (>= 0x2B820 and <= 0x2CEAF) or (>= 0xF900 and <= 0xFAFF) or (>= 0x2F800 and <= 0x2FA1F);

    /// <summary>Pre-tokenizer class of the code point starting at <paramref name="chars"/>[i].</summary>
    public static byte PreTokenClass(ReadOnlySpan<char> chars, int i, out int width)
    {
        char c = chars[i];
        if (char.IsHighSurrogate(c) && i + 1 < chars.Length && char.IsLowSurrogate(chars[i + 1]))
        {
            width = 2;
            int cp = char.ConvertToUtf32(c, chars[i + 1]);
            return IsPunctuation(cp) ? Punct : Word; // no whitespace outside the BMP
        }
        width = 1;
        return BmpClass[c];
    }

    /// <summary>Rust's <c>char::to_lowercase</c> on one code point: the full mapping, which differs
    /// from .NET's simple mapping only for U+0130 (capital I with dot above gives "i" + U+0307).</summary>
    public static void AppendLower(StringBuilder sb, int cp)
    {
        if (cp == 0x130) { sb.Append('i').Append('\u0307'); return; }
        var lower = Rune.ToLowerInvariant(new Rune(cp));
        Span<char> buf = stackalloc char[2];
        sb.Append(buf[..lower.EncodeToUtf16(buf)]);
    }

    public static UnicodeCategory Category(int cp) =>
        cp < 0x10000 ? CharUnicodeInfo.GetUnicodeCategory((char)cp) : CharUnicodeInfo.GetUnicodeCategory(cp);

    private static byte[] BuildBmpClass()
    {
        var table = new byte[0x10000];
        for (int c = 0; c < table.Length; c++)
            table[c] = IsWhitespace(c) ? Space : IsPunctuation(c) ? Punct : Word;
        return table;
    }
}
