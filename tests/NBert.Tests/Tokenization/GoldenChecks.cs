namespace NBert.Tests.Tokenization;

/// <summary>The tokenizer parity tests' comparison of a field against its golden: a mismatch is collected with the
/// case's label (not thrown), so that one run lists every field that differs.</summary>
internal static class GoldenChecks
{
    public static void Check<T>(List<string> failures, string label, string field, T[] expected, T[] actual)
    {
        if (!expected.SequenceEqual(actual))
            failures.Add($"{label}: {field}\n  expected [{string.Join(", ", expected)}]\n  actual   [{string.Join(", ", actual)}]");
    }

    public static void Check<T>(List<string> failures, string label, string field, T expected, T actual)
    {
        if (!EqualityComparer<T>.Default.Equals(expected, actual))
            failures.Add($"{label}: {field}\n  expected {expected}\n  actual   {actual}");
    }
}
