using System.CommandLine;
using System.Globalization;

namespace NBert.Cli;

/// <summary>
/// Ranges for numeric options, checked while the command line is parsed, so that a bad value is refused before any
/// work with a message naming the option as the user typed it ("--save-steps must be at least 1, not 0"), rather
/// than the library's parameter name.
/// </summary>
internal static class OptionChecks
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>The value (when given) must be at least <paramref name="min"/>.</summary>
    public static Option<int> AtLeast(this Option<int> option, int min) => Check(option, v => v >= min, $"at least {min}");

    /// <inheritdoc cref="AtLeast(Option{int}, int)"/>
    public static Option<int?> AtLeast(this Option<int?> option, int min) => Check(option, v => v is not int x || x >= min, $"at least {min}");

    /// <inheritdoc cref="AtLeast(Option{int}, int)"/>
    public static Option<long?> AtLeast(this Option<long?> option, long min) => Check(option, v => v is not long x || x >= min, $"at least {min}");

    /// <summary>The value must be a finite number above <paramref name="min"/>.</summary>
    public static Option<double> Above(this Option<double> option, double min) =>
        Check(option, v => double.IsFinite(v) && v > min, $"a number above {min.ToString(Inv)}");

    /// <summary>The value must be a finite number of at least <paramref name="min"/>.</summary>
    public static Option<double> AtLeast(this Option<double> option, double min) =>
        Check(option, v => double.IsFinite(v) && v >= min, $"a number of at least {min.ToString(Inv)}");

    /// <summary>The value must lie in [<paramref name="min"/>, <paramref name="max"/>] (or the open interval).</summary>
    public static Option<double> Between(this Option<double> option, double min, double max, bool open = false) =>
        Check(option, v => open ? v > min && v < max : v >= min && v <= max,
            open ? $"between {min.ToString(Inv)} and {max.ToString(Inv)} (both excluded)" : $"between {min.ToString(Inv)} and {max.ToString(Inv)}");

    /// <summary>The value must lie in [<paramref name="min"/>, <paramref name="max"/>), as Adam's betas and dropout do.</summary>
    public static Option<double> AtLeastAndBelow(this Option<double> option, double min, double max) =>
        Check(option, v => v >= min && v < max, $"at least {min.ToString(Inv)} and below {max.ToString(Inv)}");

    private static Option<T> Check<T>(Option<T> option, Func<T, bool> valid, string what)
    {
        option.Validators.Add(result =>
        {
            if (result.Implicit) return; // the default value, which the command chose
            T value;
            try
            {
                value = result.GetValueOrDefault<T>();
            }
            catch (InvalidOperationException)
            {
                return; // not a number at all: the parser reports that itself ("Cannot parse argument 'abc' for option '--lr'")
            }
            if (!valid(value))
                result.AddError($"{option.Name} must be {what}, not {Convert.ToString(value, Inv)}.");
        });
        return option;
    }
}

/// <summary>An <see cref="IProgress{T}"/> that reports on the training thread, in order (the framework's
/// <see cref="Progress{T}"/> posts each report to the thread pool, so console lines could come out of order).</summary>
internal sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
