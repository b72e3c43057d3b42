using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using NBert.Hub;
using Spectre.Console;

namespace NBert.Cli.Commands;

/// <summary>
/// <c>nbert download</c> and <c>nbert cache list|remove</c>: the Hugging Face Hub and its cache (shared with Python's
/// huggingface_hub and transformers), and the Hub settings and download progress every <c>--model NAME</c> uses.
/// </summary>
public static class HubCommands
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    private static readonly AsyncLocal<(HubSettings? Settings, TextWriter? Progress)> Current = new();

    /// <summary>Uses <paramref name="settings"/> (null: the environment's) and shows downloads on
    /// <paramref name="progress"/> (null: nowhere) for the rest of this command line. Set per call, so in-process
    /// runs in parallel (the tests) each keep their own.</summary>
    internal static void Use(HubSettings? settings, TextWriter? progress) => Current.Value = (settings, progress);

    /// <summary>The Hub settings for this command line: those given to <see cref="Program.Run"/>, else the environment's.</summary>
    internal static HubSettings Settings => Current.Value.Settings ?? HubSettings.FromEnvironment();

    /// <summary>A bar per file in the command line's progress display (<see cref="ProgressDisplay"/>) when standard
    /// error is a terminal; null otherwise.</summary>
    internal static IProgress<HubDownloadProgress>? Progress => Current.Value.Progress is not null && ProgressDisplay.IsShown ? new DownloadBars(name => ProgressDisplay.Bar(name)) : null;

    public static Command Download(TextWriter stdout)
    {
        var repo = new Argument<string>("REPO") { Description = "Hub repository: org/name or name, optionally @revision" };
        var files = new Argument<string[]>("FILE") { Description = "Files to download (default: what a BERT model needs: config.json, weights, tokenizer files)", Arity = ArgumentArity.ZeroOrMore };
        var revision = new Option<string?>("--revision") { Description = "Branch, tag or commit (default: main)" };
        var command = new Command("download", "Download a model from the Hugging Face Hub into the shared cache and print its snapshot directory.")
        {
            repo, files, revision,
        };
        command.SetAction(parse =>
        {
            string name = parse.GetValue(repo)!;
            if (!RepoId.TryParse(name, out string? id, out string? atRevision))
                throw new CliException($"'{name}' is not a Hub repository id (org/name or name, optionally @revision).");
            string? rev = parse.GetValue(revision);
            if (rev is not null && atRevision is not null && rev != atRevision)
                throw new CliException($"Two revisions given: '{atRevision}' in '{name}' and --revision '{rev}'.");
            rev ??= atRevision;
            if (rev is not null && !RepoId.IsValidRevision(rev)) throw new CliException($"--revision '{rev}' is not a branch, tag or commit.");
            string[] wanted = parse.GetValue(files) ?? [];
            if (wanted.FirstOrDefault(f => !RepoId.IsSafeFileName(f)) is { } bad) throw new CliException($"'{bad}' is not a file name inside a repository.");
            using var client = new HubClient(Settings) { Progress = Progress };
            var snapshot = wanted.Length == 0
                ? client.DownloadModelAsync(id, rev).GetAwaiter().GetResult()
                : client.DownloadAsync(id, rev, wanted).GetAwaiter().GetResult();
            stdout.WriteLine(snapshot.Directory);
            return Program.Ok;
        });
        return command;
    }

    public static Command Cache(TextWriter stdout)
    {
        var json = new Option<bool>("--json") { Description = "One JSON line per repository" };
        var list = new Command("list", "List the repositories in the cache (as huggingface-cli scan-cache): size, files, revisions and refs.") { json };
        list.SetAction(parse =>
        {
            string root = Settings.CacheDirectory;
            var repos = HubCacheScan.Scan(root);
            if (parse.GetValue(json))
            {
                var options = new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
                foreach (var r in repos) stdout.WriteLine(JsonSerializer.Serialize(r, options));
                return Program.Ok;
            }
            var table = new Table().AddColumns("repository", "type", "size", "files", "revisions", "last modified").Title(Markup.Escape(root));
            foreach (var r in repos)
                table.AddRow(Markup.Escape(r.Repo), r.Type, Size(r.SizeOnDisk), r.Files.ToString(Inv),
                    Markup.Escape(string.Join(", ", r.Revisions.Select(v => v.Commit[..Math.Min(8, v.Commit.Length)] + (v.Refs.Count > 0 ? $" ({string.Join(", ", v.Refs)})" : "")))),
                    r.LastModified.ToLocalTime().ToString("yyyy-MM-dd HH:mm", Inv));
            var console = Program.Console(stdout);
            if (!Program.IsTerminal) console.Profile.Width = 200; // a file or pipe gets whole lines, for grep
            console.Write(table);
            console.WriteLine($"{repos.Count} repositories, {Size(repos.Sum(r => r.SizeOnDisk))} on disk.");
            return Program.Ok;
        });

        var repo = new Argument<string>("REPO") { Description = "Repository id as 'nbert cache list' shows it" };
        var revision = new Option<string?>("--revision") { Description = "Remove only this commit (or the commit this branch or tag points at)" };
        var type = new Option<string>("--type") { Description = "model, dataset or space", DefaultValueFactory = _ => "model" };
        type.AcceptOnlyFromAmong("model", "dataset", "space");
        var remove = new Command("remove", "Remove a repository, or one of its revisions, from the cache (as huggingface-cli delete-cache).") { repo, revision, type };
        remove.SetAction(parse =>
        {
            string id = parse.GetValue(repo)!, root = Settings.CacheDirectory;
            if (!RepoId.IsValid(id)) throw new CliException($"'{id}' is not a Hub repository id (org/name or name).");
            if (parse.GetValue(revision) is { } named && !RepoId.IsValidRevision(named)) throw new CliException($"--revision '{named}' is not a branch, tag or commit.");
            long freed = HubCacheScan.Remove(root, id, parse.GetValue(revision), parse.GetValue(type)!);
            stdout.WriteLine($"removed {id}{(parse.GetValue(revision) is { } r ? "@" + r : "")} from {root}, freeing {Size(freed)}");
            return Program.Ok;
        });
        return new Command("cache", "The Hugging Face cache shared with Python (HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub).") { list, remove };
    }

    private static string Size(long bytes) =>
        bytes < 1000 ? $"{bytes} B" : bytes < 1_000_000 ? (bytes / 1e3).ToString("0.0 kB", Inv)
        : bytes < 1_000_000_000 ? (bytes / 1e6).ToString("0.0 MB", Inv) : (bytes / 1e9).ToString("0.00 GB", Inv);

    /// <summary>A download's progress as bars of the one progress display: a bar per file (repository and file), its
    /// bytes so far of the size the Hub gave.</summary>
    public sealed class DownloadBars(Func<string, IProgress<ProgressStep>> bar) : IProgress<HubDownloadProgress>
    {
        private readonly Dictionary<(string, string), IProgress<ProgressStep>> _bars = [];

        /// <summary>Moves the file's bar (made at its first report).</summary>
        public void Report(HubDownloadProgress p)
        {
            IProgress<ProgressStep> fileBar;
            lock (_bars)
                if (!_bars.TryGetValue((p.Repo, p.File), out fileBar!)) _bars[(p.Repo, p.File)] = fileBar = bar($"{p.Repo}: {p.File}");
            long? total = p.Total is > 0 ? p.Total : p.Completed ? p.Received : null;
            fileBar.Report(new ProgressStep(p.Received, total, total is long t ? $"{Size(p.Received)}/{Size(t)}" : Size(p.Received)));
        }
    }
}
