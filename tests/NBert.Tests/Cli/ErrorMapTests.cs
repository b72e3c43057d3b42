using NBert.Cli;
using NBert.Hub;
using NBert.Training;
using static NBert.Tests.Cli.Nbert;

namespace NBert.Tests.Cli;

/// <summary>Issue 26: one map from exceptions to exit codes (<see cref="Program.Fail"/>). Bad input (the library's
/// <see cref="NBertException"/> and subtypes, the command line's <see cref="CliException"/>, a missing or unreadable
/// file) exits 2 with its message; anything else, an <see cref="ArgumentException"/> from the library included, is
/// a bug: exit 70, reported as one.</summary>
public sealed class ErrorMapTests
{
    public static TheoryData<Exception> BadInput() => new()
    {
        new NBertException("config.json: hidden_size must be positive."),
        new HubException(HubError.RepositoryNotFound, "no such repository"),
        new TrainingDivergedException(3, double.NaN, double.NaN, "diverged"),
        new CliException("--labels names 'a' twice."),
        new FileNotFoundException("Could not find file 'x.csv'."),
        new DirectoryNotFoundException("Could not find a part of the path 'y'."),
        new UnauthorizedAccessException("Access to the path 'z' is denied."),
        new InvalidDataException("The archive entry was compressed using an unsupported compression method."),
    };

    [Theory]
    [MemberData(nameof(BadInput))]
    public void Bad_input_exits_2_with_its_message(Exception e)
    {
        var error = new StringWriter();
        Assert.Equal(Program.BadInput, Program.Fail(e, error));
        Assert.Equal($"nbert: {e.Message}{Environment.NewLine}", error.ToString());
    }

    public static TheoryData<Exception> Bugs() => new()
    {
        new ArgumentException("Value does not fall within the expected range.", "count"),
        new ArgumentOutOfRangeException("index"),
        new InvalidOperationException("Backward needs a Forward first."),
        new NullReferenceException(),
        new KeyNotFoundException("No parameter 'x'."),
        new NotSupportedException("nope"),
    };

    [Theory]
    [MemberData(nameof(Bugs))]
    public void A_library_bug_exits_70_not_2(Exception e)
    {
        var error = new StringWriter();
        Assert.Equal(Program.InternalError, Program.Fail(e, error));
        Assert.StartsWith($"nbert: internal error: {e.GetType().Name}: ", error.ToString());
        Assert.Contains("This is a bug in nbert", error.ToString());
        Assert.DoesNotContain("   at ", error.ToString());
    }

    [Fact]
    public void A_pipeline_option_that_does_not_fit_the_model_is_a_usage_error_naming_it()
    {
        // --stride is checked against the model's length only when the pipeline runs: the ArgumentException about
        // the options it was given is the command line's to report (exit 2), not a bug.
        var r = Run("ner", "--model", Fixtures.Path("model", "tokcls"), "--stride", "100000", "Barack Obama was born in Hawaii.");
        Assert.True(r.Code == Program.BadInput, $"exit {r.Code}: {r.Err}");
        Assert.Contains("stride must be in 0..", r.Err);
        Assert.DoesNotContain("internal error", r.Err);
    }
}
