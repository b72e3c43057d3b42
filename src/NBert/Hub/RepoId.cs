using System.Diagnostics.CodeAnalysis;
using System.Text.RegularExpressions;

namespace NBert.Hub;

/// <summary>Hub repository ids (<c>org/name</c> or <c>name</c>) as huggingface_hub's <c>validate_repo_id</c> accepts
/// them, and the <c>name@revision</c> form NBert accepts wherever a model is named.</summary>
public static partial class RepoId
{
    /// <summary>The revision used when none is named.</summary>
    public const string DefaultRevision = "main";

    /// <summary>Whether <paramref name="repo"/> is a valid repository id: one or two parts of letters, digits,
    /// <c>_ - .</c>, each starting and ending with a letter, digit or <c>_</c>; no <c>--</c> or <c>..</c>; at most 96 chars.</summary>
    public static bool IsValid(string? repo) =>
        repo is { Length: > 0 and <= 96 } && Pattern().IsMatch(repo) && !repo.Contains("--") && !repo.Contains("..") && !repo.EndsWith(".git", StringComparison.Ordinal);

    /// <summary>Splits <c>org/name@revision</c> into the repository and the revision (null when none is named).
    /// False when the text cannot be a repository id (a path such as <c>./model</c> or <c>/data/model</c>).</summary>
    public static bool TryParse(string text, [NotNullWhen(true)] out string? repo, out string? revision)
    {
        ArgumentNullException.ThrowIfNull(text);
        int at = text.IndexOf('@');
        repo = at < 0 ? text : text[..at];
        revision = at < 0 ? null : text[(at + 1)..];
        if (IsValid(repo) && (revision is null || IsValidRevision(revision))) return true;
        repo = null;
        return false;
    }

    /// <summary>A branch, tag or commit: not empty, no whitespace, control characters or <c>..</c> (it becomes a path under refs/).</summary>
    public static bool IsValidRevision(string revision) =>
        revision.Length > 0 && !revision.Any(c => char.IsWhiteSpace(c) || char.IsControl(c) || c == '\\')
        && revision.Split('/').All(part => part.Length > 0 && part != "." && part != "..");

    /// <summary>Whether a file name from a repository (or from an index it serves) is a plain relative path, so that
    /// it cannot address anything outside the snapshot folder.</summary>
    public static bool IsSafeFileName(string file) =>
        file.Length > 0 && !file.Contains('\\') && !file.Contains(':') && !Path.IsPathRooted(file)
        && file.Split('/').All(part => part.Length > 0 && part != "." && part != "..");

    [GeneratedRegex(@"^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?/)?[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")]
    private static partial Regex Pattern();
}
