using NBert.Cli;

namespace NBert.Tests.Cli;

/// <summary>Runs the nbert command in process, as the CLI tests drive it: exit code, standard output, standard error.</summary>
internal static class Nbert
{
    public static (int Code, string Out, string Err) Run(params string[] args) => RunWithInput("", args);

    public static (int Code, string Out, string Err) RunWithInput(string stdin, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(args, new StringReader(stdin), output, error);
        return (code, output.ToString(), error.ToString());
    }
}
