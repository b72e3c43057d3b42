using NBert.Cli;
using static NBert.Tests.Cli.Nbert;

namespace NBert.Tests.Cli;

/// <summary>Issue 26 (4): one progress display (Spectre.Console's bars) behind an IProgress-shaped reporter, off when
/// standard error is not a terminal.</summary>
public sealed class ProgressDisplayTests : TempDirectoryTest
{
    [Fact]
    public void Bars_are_drawn_on_the_writer_given_and_end_complete()
    {
        var writer = new StringWriter();
        ProgressDisplay.Use(writer);
        Assert.True(ProgressDisplay.IsShown);
        var bar = ProgressDisplay.Bar("embedding corpus.txt");
        for (int i = 1; i <= 4; i++) bar.Report(new ProgressStep(i, 4, $"{i} lines"));
        ProgressDisplay.End();
        string drawn = writer.ToString();
        Assert.Contains("embedding corpus.txt: 4 lines", drawn);
        Assert.Contains("100%", drawn);
        Assert.False(ProgressDisplay.IsShown);
    }

    [Fact]
    public void No_bar_is_drawn_when_standard_error_is_not_a_terminal()
    {
        ProgressDisplay.Use(null);
        Assert.False(ProgressDisplay.IsShown);
        ProgressDisplay.Bar("anything").Report(new ProgressStep(1, 2)); // a reporter that shows nothing
        ProgressDisplay.End();

        // A command's standard error, redirected (as here): the summary line, no bar and no escape codes.
        string input = Temp("in.jsonl");
        File.WriteAllLines(input, Enumerable.Range(0, 600).Select(i => $"{{\"text\": \"text number {i}\"}}"));
        var r = Run("embed", "--model", Fixtures.Path("model", "pretraining"), "--json", "--input", input);
        Assert.True(r.Code == 0, r.Err);
        Assert.DoesNotContain('\r', r.Err);
        Assert.DoesNotContain('\u001b', r.Err);
        Assert.Matches(@"(^|\n)600 inputs in \S+ s \(\S+/s\)\n$", r.Err);
    }
}
