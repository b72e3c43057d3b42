using System.Buffers;

namespace NBert.Tokenization;

/// <summary>A token matched as a whole in the text before WordPiece runs (Hugging Face's AddedToken).</summary>
/// <param name="Content">The text to match.</param>
/// <param name="Id">Its id.</param>
/// <param name="Special">Special tokens are dropped by decoding with skipSpecialTokens.</param>
/// <param name="Normalized">Matched in the normalised text (true) or in the raw text (false).</param>
/// <param name="SingleWord">Only match when not inside a word.</param>
/// <param name="LStrip">Absorb the whitespace before the match.</param>
/// <param name="RStrip">Absorb the whitespace after the match.</param>
public sealed record AddedToken(string Content, int Id, bool Special = true, bool Normalized = false,
    bool SingleWord = false, bool LStrip = false, bool RStrip = false);

/// <summary>
/// Finds added tokens in a text as Hugging Face's AddedVocabulary does: leftmost-longest, non
/// overlapping matches; a match refused by <see cref="AddedToken.SingleWord"/> still consumes its span.
/// </summary>
internal sealed class AddedTokenMatcher
{
    private readonly Dictionary<char, (string Pattern, AddedToken Token)[]> _byFirstChar;
    private readonly SearchValues<char> _firstChars;

    public bool IsEmpty => _byFirstChar.Count == 0;

    /// <param name="patterns">each token with the text to look for (its content, normalised or not).</param>
    public AddedTokenMatcher(IEnumerable<(string Pattern, AddedToken Token)> patterns)
    {
        _byFirstChar = patterns.Where(p => p.Pattern.Length > 0)
            .GroupBy(p => p.Pattern[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(p => p.Pattern.Length).ToArray());
        _firstChars = SearchValues.Create(_byFirstChar.Keys.ToArray());
    }

    /// <summary>Matches in <paramref name="text"/>[from..to), in order, as (start, end, token).</summary>
    public void FindAll(ReadOnlySpan<char> text, int from, int to, List<(int Start, int End, AddedToken Token)> matches)
    {
        matches.Clear();
        if (IsEmpty) return;
        int i = from, previousEnd = from;
        while (i < to)
        {
            int k = text[i..to].IndexOfAny(_firstChars);
            if (k < 0) break;
            i += k;
            (string Pattern, AddedToken Token)? hit = null;
            foreach (var candidate in _byFirstChar[text[i]])
                if (text[i..to].StartsWith(candidate.Pattern, StringComparison.Ordinal)) { hit = candidate; break; }
            if (hit is null) { i++; continue; }
            var (pattern, token) = hit.Value;
            int start = i, end = i + pattern.Length;
            i = end;
            if (token.SingleWord && ((start > from && IsWordChar(text[start - 1])) || (end < to && IsWordChar(text[end]))))
                continue;
            if (token.LStrip)
                while (start > previousEnd && UnicodeRules.IsWhitespace(text[start - 1])) start--;
            if (token.RStrip)
                while (end < to && UnicodeRules.IsWhitespace(text[end])) end++;
            matches.Add((start, end, token));
            previousEnd = i = end;
        }
    }

    private static bool IsWordChar(char c) => char.IsLetterOrDigit(c) || c == '_' || char.GetUnicodeCategory(c) is
        System.Globalization.UnicodeCategory.NonSpacingMark or System.Globalization.UnicodeCategory.SpacingCombiningMark;
}
