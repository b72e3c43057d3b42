using System.Collections.Concurrent;
using System.Text;

namespace NBert.Tokenization;

/// <summary>Options of Hugging Face's <c>BertNormalizer</c>, with its defaults.</summary>
/// <param name="CleanText">Remove control characters and map every whitespace to a space.</param>
/// <param name="HandleChineseChars">Put spaces around CJK ideographs so each becomes a word.</param>
/// <param name="StripAccents">Decompose (NFD) and drop non-spacing marks; null follows <paramref name="Lowercase"/>.</param>
/// <param name="Lowercase">Lowercase every character.</param>
public sealed record BertNormalizerOptions(
    bool CleanText = true,
    bool HandleChineseChars = true,
    bool? StripAccents = null,
    bool Lowercase = true)
{
    /// <summary>Whether accents are stripped once the "follow lowercasing" default is applied.</summary>
    public bool StripsAccents => StripAccents ?? Lowercase;
}

/// <summary>
/// Text after normalisation, one UTF-16 char per slot, each slot remembering the span of the caller's
/// string it came from (Hugging Face's NormalizedString alignments). Reused between calls.
/// </summary>
internal sealed class NormalizedBuffer
{
    public char[] Chars = new char[256];
    public int[] Start = new int[256];
    public int[] End = new int[256];
    public int Length;

    public void Clear() => Length = 0;

    public void Append(char c, int start, int end)
    {
        if (Length == Chars.Length) Grow();
        Chars[Length] = c;
        Start[Length] = start;
        End[Length] = end;
        Length++;
    }

    public void Append(string s, int start, int end)
    {
        foreach (char c in s) Append(c, start, end);
    }

    private void Grow()
    {
        int n = Chars.Length * 2;
        Array.Resize(ref Chars, n);
        Array.Resize(ref Start, n);
        Array.Resize(ref End, n);
    }

    /// <summary>Drop very large arrays after a huge text so a thread does not keep them forever.</summary>
    public void Trim()
    {
        if (Chars.Length > 1 << 20) { Chars = new char[256]; Start = new int[256]; End = new int[256]; }
        Length = 0;
    }
}

/// <summary>
/// Hugging Face's <c>BertNormalizer</c>: clean_text, then spaces around CJK ideographs, then accent
/// stripping (NFD without non-spacing marks), then lowercasing; each step per code point, exactly as
/// the Rust implementation applies them. The result of every BMP character is precomputed once per
/// option set, so normalising is a table lookup per char.
/// </summary>
internal sealed class BertNormalizer
{
    private const byte Keep = 0, Removed = 1, Multi = 2;
    private static readonly ConcurrentDictionary<BertNormalizerOptions, BertNormalizer> Cache = new();

    private readonly byte[] _kind = new byte[0x10000];
    private readonly char[] _single = new char[0x10000];
    private readonly Dictionary<char, string> _multi = new();
    private readonly ConcurrentDictionary<int, string> _supplementary = new();

    public BertNormalizerOptions Options { get; }

    private BertNormalizer(BertNormalizerOptions options)
    {
        Options = options;
        for (int c = 0; c < 0x10000; c++)
        {
            if (char.IsSurrogate((char)c)) continue; // handled in Normalize
            string s = NormalizeCodePoint(c);
            if (s.Length == 0) _kind[c] = Removed;
            else if (s.Length == 1) { _kind[c] = Keep; _single[c] = s[0]; }
            else { _kind[c] = Multi; _multi[(char)c] = s; }
        }
    }

    public static BertNormalizer For(BertNormalizerOptions options) => Cache.GetOrAdd(options, o => new BertNormalizer(o));

    /// <summary>Normalises <paramref name="text"/>[start..end) and appends it to <paramref name="output"/>.</summary>
    public void Normalize(string text, int start, int end, NormalizedBuffer output)
    {
        for (int i = start; i < end; i++)
        {
            char c = text[i];
            if (!char.IsSurrogate(c))
            {
                byte kind = _kind[c];
                if (kind == Keep) output.Append(_single[c], i, i + 1);
                else if (kind == Multi) output.Append(_multi[c], i, i + 1);
                continue;
            }
            if (char.IsHighSurrogate(c) && i + 1 < end && char.IsLowSurrogate(text[i + 1]))
            {
                int cp = char.ConvertToUtf32(c, text[i + 1]);
                output.Append(_supplementary.GetOrAdd(cp, NormalizeCodePoint), i, i + 2);
                i++;
                continue;
            }
            // A lone surrogate cannot be valid text; treat it as the replacement character U+FFFD,
            // which is what a decoder would have produced (and which clean_text removes).
            if (!Options.CleanText) output.Append('\uFFFD', i, i + 1);
        }
    }

    /// <summary>Normalises a whole string (used for the content of normalized added tokens).</summary>
    public string Normalize(string text)
    {
        var buffer = new NormalizedBuffer();
        Normalize(text, 0, text.Length, buffer);
        return new string(buffer.Chars, 0, buffer.Length);
    }

    /// <summary>NFD; .NET refuses noncharacters such as U+FFFE, which NFD leaves as they are.</summary>
    private static string Decompose(string s)
    {
        try { return s.Normalize(NormalizationForm.FormD); }
        catch (ArgumentException) { return s; }
    }

    private string NormalizeCodePoint(int cp)
    {
        var o = Options;
        if (o.CleanText)
        {
            if (cp == 0 || cp == 0xFFFD || UnicodeRules.IsControl(cp)) return "";
            if (UnicodeRules.IsWhitespace(cp)) return " ";
        }
        string s = char.ConvertFromUtf32(cp);
        if (o.StripsAccents && cp >= 0x80)
        {
            var sb = new StringBuilder();
            foreach (var rune in Decompose(s).EnumerateRunes())
                if (Rune.GetUnicodeCategory(rune) != System.Globalization.UnicodeCategory.NonSpacingMark)
                    sb.Append(rune.ToString());
            s = sb.ToString();
        }
        if (o.Lowercase)
        {
            var sb = new StringBuilder();
            foreach (var rune in s.EnumerateRunes()) UnicodeRules.AppendLower(sb, rune.Value);
            s = sb.ToString();
        }
        // The Rust normalizer pads ideographs with spaces before stripping and lowercasing; neither
        // step touches a space, so padding last gives the same text.
        if (o.HandleChineseChars && UnicodeRules.IsChinese(cp)) s = " " + s + " ";
        return s;
    }
}
