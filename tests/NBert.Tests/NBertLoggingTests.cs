using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using NBert.Hub;
using NBert.Modeling;
using NBert.Server;
using NBert.Tests.Hub;
using NBert.Tokenization;
using NBert.Schema;
using NBert.Tasks;

namespace NBert.Tests;

/// <summary>A logger provider that keeps what is logged (category, level, message), for the logging tests.</summary>
public sealed class RecordingLoggerProvider : ILoggerProvider
{
    public sealed record Entry(string Category, LogLevel Level, string Message, Exception? Exception);

    public ConcurrentQueue<Entry> Entries { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public ILoggerFactory Factory()
    {
        var factory = new LoggerFactory();
        factory.AddProvider(this);
        return factory;
    }

    public void Dispose() { }

    private sealed class Logger(RecordingLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner.Entries.Enqueue(new Entry(category, logLevel, formatter(state, exception), exception));
    }
}

/// <summary>Issue 29, item 2: NBert's warnings and progress through Microsoft.Extensions.Logging.</summary>
public sealed class NBertLoggingTests
{
    private static string Pretraining => Fixtures.Path("model", "pretraining");

    [Fact]
    public void Warnings_go_to_the_flows_logger_factory_as_warnings_and_the_innermost_scope_wins()
    {
        var log = new RecordingLoggerProvider();
        using var factory = log.Factory();
        using (NBertLogging.Use(factory))
            BertPreTrainedModel.FromPretrained(Fixtures.Path("model", "encoder_only"), BertArchitecture.BertForSequenceClassification);
        var warning = Assert.Single(log.Entries);
        Assert.Equal(("NBert", LogLevel.Warning), (warning.Category, warning.Level));
        Assert.Contains("newly initialized", warning.Message);
        Assert.Contains("classifier.weight", warning.Message);

        // A Capture inside the logger's scope takes the warnings; a Use inside a Capture gives them back to a logger.
        var captured = new List<string>();
        using (NBertLogging.Use(factory))
        using (NBertWarnings.Capture(captured.Add))
            BertPreTrainedModel.FromPretrained(Fixtures.Path("model", "encoder_only"), BertArchitecture.BertForSequenceClassification);
        Assert.Single(captured);
        Assert.Single(log.Entries);
        using (NBertWarnings.Capture(captured.Add))
        using (NBertLogging.Use(factory))
            BertPreTrainedModel.FromPretrained(Fixtures.Path("model", "encoder_only"), BertArchitecture.BertForSequenceClassification);
        Assert.Single(captured);
        Assert.Equal(2, log.Entries.Count);
        Assert.Throws<ArgumentNullException>(() => NBertLogging.Use(null!));
    }

    [Fact]
    public async Task The_process_wide_factory_takes_the_warnings_of_flows_without_a_scope_of_their_own()
    {
        var log = new RecordingLoggerProvider();
        using var factory = log.Factory();
        var captured = new List<string>();
        // A copy under a name of its own: other test classes running meanwhile may log to the process's factory too.
        var copy = Directory.CreateTempSubdirectory("nbert-logging-");
        foreach (string file in Directory.GetFiles(Fixtures.Path("model", "encoder_only"))) File.Copy(file, Path.Combine(copy.FullName, Path.GetFileName(file)));
        NBertLogging.LoggerFactory = factory;
        try
        {
            // A flow of its own (no Capture or Use of the test runner's around it), as an application's thread has.
            Task load;
            using (ExecutionContext.SuppressFlow())
                load = Task.Run(() => BertPreTrainedModel.FromPretrained(copy.FullName, BertArchitecture.BertForTokenClassification));
            await load;
            using (NBertWarnings.Capture(captured.Add)) // a scope still wins over the process's factory
                BertPreTrainedModel.FromPretrained(copy.FullName, BertArchitecture.BertForTokenClassification);
        }
        finally
        {
            NBertLogging.LoggerFactory = null;
            copy.Delete(recursive: true);
        }
        // Once: the load in the Capture scope went to its handler only.
        Assert.Single(log.Entries, e => e is { Category: "NBert", Level: LogLevel.Warning } && e.Message.StartsWith(copy.FullName, StringComparison.Ordinal) && e.Message.Contains("classifier.weight"));
        Assert.Contains(captured, w => w.Contains("classifier.weight"));
    }

    [Fact]
    public void Fine_tuning_does_not_warn_about_the_head_it_trains_but_does_about_unused_weights_and_logs_its_progress()
    {
        var log = new RecordingLoggerProvider();
        using var factory = log.Factory();
        var model = BertPreTrainedModel.FromPretrained(Pretraining);
        string[] words = ["was", "with", "that", "for"];
        var data = Enumerable.Range(0, 16).Select(i => ((i % 2 == 0 ? "he " : "it ") + words[i % 4], i % 2 == 0 ? "good" : "bad")).ToList();
        using (NBertLogging.Use(factory))
            FineTuning.Classification(model, BertTokenizer.FromPretrained(Pretraining), data, data,
                new FineTuningOptions { Epochs = 2, BatchSize = 8, LogSteps = 1, Seed = 1 });

        var warnings = log.Entries.Where(e => e.Level == LogLevel.Warning).Select(e => e.Message).ToList();
        Assert.DoesNotContain(warnings, w => w.Contains("newly initialized"));
        Assert.Contains(warnings, w => w.Contains("not used") && w.Contains("cls.predictions")); // the pre-training head is dropped
        var progress = log.Entries.Where(e => e.Category == "NBert.Training").ToList();
        Assert.All(progress, e => Assert.Equal(LogLevel.Information, e.Level));
        Assert.Contains(progress, e => e.Message.StartsWith("Train step 1/4 epoch", StringComparison.Ordinal) && e.Message.Contains(" loss "));
        Assert.Equal(2, progress.Count(e => e.Message.StartsWith("Evaluate step", StringComparison.Ordinal) && e.Message.Contains("eval_accuracy")));
        Assert.StartsWith("Done step 4/4", progress[^1].Message);

        // The same head made outside fine-tuning is warned about: that warning is dropped only where the head is trained.
        using (NBertLogging.Use(factory)) model.WithArchitecture(BertArchitecture.BertForSequenceClassification);
        Assert.Contains(log.Entries, e => e.Level == LogLevel.Warning && e.Message.Contains("newly initialized: classifier.weight"));
    }

    [Fact]
    public async Task Routes_mapped_into_an_application_log_nbert_warnings_through_the_hosts_logging()
    {
        var log = new RecordingLoggerProvider();
        using var inference = TextEmbeddingsInference.Load(new ServerOptions { Model = Pretraining });
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(log);
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        await using var app = builder.Build();
        app.MapTextEmbeddingsInference(inference);
        await app.StartAsync();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        using var client = new HttpClient { BaseAddress = new Uri(address) };
        var captured = new List<string>();
        using (NBertWarnings.Capture(captured.Add)) // what the test's own flow would catch: nothing, it goes to the host
        {
            var response = await client.PostAsync("/fill-mask", new StringContent("""{"inputs": "the man went to the [MASK].", "parameters": {"targets": ["zzzzqqq"]}}""",
                Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        await app.StopAsync();
        Assert.Empty(captured);
        var warning = Assert.Single(log.Entries, e => e.Level == LogLevel.Warning && e.Category.StartsWith("NBert", StringComparison.Ordinal));
        Assert.Contains("zzzzqqq", warning.Message);
        Assert.Contains("not in the model's vocabulary", warning.Message);
    }
}

/// <summary>The Hub client's progress as log lines.</summary>
public sealed class HubLoggingTests(FakeHubFixture fixture) : HubTest(fixture)
{
    [Fact]
    public async Task Each_download_is_logged_at_information_level_and_a_cached_file_is_not()
    {
        string repo = UniqueRepo("logged");
        Hub.AddModel(repo, Model("seqcls"));
        var log = new RecordingLoggerProvider();
        using var factory = log.Factory();
        using (NBertLogging.Use(factory))
        {
            using var client = Client();
            await client.DownloadModelAsync(repo);
            int size = FixtureBytes("seqcls", "model.safetensors").Length;
            var hub = log.Entries.Where(e => e.Category == "NBert.Hub").ToList();
            Assert.All(hub, e => Assert.Equal(LogLevel.Information, e.Level));
            Assert.Contains(hub, e => e.Message.StartsWith($"Downloading {repo}: model.safetensors ({size.ToString("N0", System.Globalization.CultureInfo.InvariantCulture)} bytes) from ", StringComparison.Ordinal));
            Assert.Contains(hub, e => e.Message.StartsWith($"Downloaded {repo}: model.safetensors", StringComparison.Ordinal));
            Assert.Equal(10, hub.Count); // five files, two lines each
            await client.DownloadModelAsync(repo);
            Assert.Equal(10, log.Entries.Count(e => e.Category == "NBert.Hub"));
        }
    }
}
