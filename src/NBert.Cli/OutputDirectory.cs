using System.CommandLine;

namespace NBert.Cli;

/// <summary>
/// What a command may write into its <c>--out</c> directory. As transformers' example scripts refuse a non-empty
/// output_dir without <c>--overwrite_output_dir</c>, a directory that already holds files is refused unless
/// <c>--overwrite</c> is given (or <c>--resume</c>, which continues the run it holds), and the model a command starts
/// from is never its output.
/// </summary>
internal static class OutputDirectory
{
    /// <summary>The <c>--overwrite</c> option of a command that writes into <c>--out</c>.</summary>
    public static Option<bool> OverwriteOption() =>
        new("--overwrite") { Description = "Write into --out even when it already holds files (files of the same names are replaced)" };

    /// <summary>Refuses <paramref name="outDir"/> when it is <paramref name="modelDirectory"/>, a file, or a directory that
    /// already holds files (unless <paramref name="overwrite"/> or <paramref name="resume"/>).</summary>
    public static void Check(string outDir, bool overwrite, string? modelDirectory = null, bool resume = false, bool resumable = false)
    {
        if (modelDirectory is not null && NBert.IO.Checkpoint.IsSameDirectory(outDir, modelDirectory))
            throw new CliException($"--out {outDir} is the model directory of --model: this would overwrite the model it starts from; give another --out.");
        if (File.Exists(outDir)) throw new CliException($"--out {outDir} is a file, not a directory.");
        // Said before the data is prepared (which can take minutes), with the trainer's own words.
        if (resume && NBert.Training.Trainer.LatestCheckpoint(outDir) is null)
            throw new CliException($"--out {outDir} holds no checkpoint to resume from (a checkpoint-N folder with trainer_state.json); train without --resume to start afresh.");
        if (resume || overwrite || !Directory.Exists(outDir) || !Directory.EnumerateFileSystemEntries(outDir).Any()) return;
        throw new CliException($"--out {outDir} already holds files, which this could replace: give another directory, or --overwrite to write there anyway" +
            (resumable ? " (--resume continues the run it holds)." : "."));
    }
}
