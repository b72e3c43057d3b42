using NBert.Hub;

namespace NBert.Tests.Hub;

/// <summary>The environment read as huggingface_hub reads it, and the names NBert takes as Hub repositories.</summary>
public sealed class HubSettingsTests : TempDirectoryTest
{
    private static HubSettings From(params (string Name, string Value)[] variables)
    {
        var env = variables.ToDictionary(v => v.Name, v => v.Value);
        return HubSettings.FromEnvironment(name => env.GetValueOrDefault(name));
    }

    [Fact]
    public void The_cache_is_hf_hub_cache_else_hf_home_hub_else_xdg_cache_else_the_home_cache()
    {
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        Assert.Equal(Path.Combine(home, ".cache", "huggingface", "hub"), From().CacheDirectory);
        Assert.Equal(Path.Combine("/x", "huggingface", "hub"), From(("XDG_CACHE_HOME", "/x")).CacheDirectory);
        Assert.Equal(Path.Combine("/h", "hub"), From(("XDG_CACHE_HOME", "/x"), ("HF_HOME", "/h")).CacheDirectory);
        Assert.Equal("/c", From(("XDG_CACHE_HOME", "/x"), ("HF_HOME", "/h"), ("HF_HUB_CACHE", "/c")).CacheDirectory);
        Assert.Equal(Path.Combine(home, "models"), From(("HF_HUB_CACHE", "~/models")).CacheDirectory);
    }

    [Fact]
    public void The_token_is_hf_token_else_the_token_file_in_hf_home()
    {
        Assert.Null(From(("HF_HOME", Dir)).Token);
        File.WriteAllText(Temp("token"), "hf_from_file\n");
        Assert.Equal("hf_from_file", From(("HF_HOME", Dir)).Token);
        Assert.Equal("hf_from_env", From(("HF_HOME", Dir), ("HF_TOKEN", "hf_from_env")).Token);
        File.WriteAllText(Temp("elsewhere"), "hf_from_path");
        Assert.Equal("hf_from_path", From(("HF_HOME", Dir), ("HF_TOKEN_PATH", Temp("elsewhere"))).Token);
    }

    [Fact]
    public void Endpoint_offline_and_timeouts()
    {
        var defaults = From();
        Assert.Equal("https://huggingface.co", defaults.Endpoint);
        Assert.False(defaults.Offline);
        Assert.Equal(TimeSpan.FromSeconds(10), defaults.MetadataTimeout);
        Assert.Equal("http://127.0.0.1:5000", From(("HF_ENDPOINT", "http://127.0.0.1:5000/")).Endpoint);
        foreach (string yes in new[] { "1", "true", "ON", "yes" }) Assert.True(From(("HF_HUB_OFFLINE", yes)).Offline);
        foreach (string no in new[] { "0", "false", "" }) Assert.False(From(("HF_HUB_OFFLINE", no)).Offline);
        Assert.True(From(("TRANSFORMERS_OFFLINE", "1")).Offline);
        Assert.False(From(("HF_HUB_OFFLINE", "0"), ("TRANSFORMERS_OFFLINE", "1")).Offline); // HF_HUB_OFFLINE first, as Python's 'or'
        Assert.Equal(TimeSpan.FromSeconds(2.5), From(("HF_HUB_ETAG_TIMEOUT", "2.5")).MetadataTimeout);
        Assert.Equal(TimeSpan.FromSeconds(30), From(("HF_HUB_DOWNLOAD_TIMEOUT", "30")).DownloadTimeout);
        Assert.Equal(TimeSpan.FromSeconds(10), From(("HF_HUB_DOWNLOAD_TIMEOUT", "0")).DownloadTimeout);
        var e = Assert.Throws<NBertException>(() => From(("HF_HUB_DOWNLOAD_TIMEOUT", "soon")));
        Assert.Contains("HF_HUB_DOWNLOAD_TIMEOUT", e.Message);
        foreach (string huge in new[] { "1e300", "5000000" })
            Assert.Contains("HF_HUB_ETAG_TIMEOUT", Assert.Throws<NBertException>(() => From(("HF_HUB_ETAG_TIMEOUT", huge))).Message);
        foreach (string bad in new[] { "notaurl", "ftp://example.com", "/relative" })
            Assert.Contains("HF_ENDPOINT", Assert.Throws<NBertException>(() => From(("HF_ENDPOINT", bad))).Message);
    }

    [Theory]
    [InlineData("bert-base-uncased", "bert-base-uncased", null)]
    [InlineData("google-bert/bert-base-uncased", "google-bert/bert-base-uncased", null)]
    [InlineData("org/name@v1.0", "org/name", "v1.0")]
    [InlineData("org/name@refs/pr/1", "org/name", "refs/pr/1")]
    [InlineData("org/name@0123456789abcdef0123456789abcdef01234567", "org/name", "0123456789abcdef0123456789abcdef01234567")]
    public void Hub_names_split_into_repository_and_revision(string text, string repo, string? revision)
    {
        Assert.True(RepoId.TryParse(text, out string? r, out string? rev));
        Assert.Equal((repo, revision), (r, rev));
    }

    [Theory]
    [InlineData("./model")]
    [InlineData("/data/model")]
    [InlineData("a/b/c")]
    [InlineData("org/-name")]
    [InlineData("org--x/name")]
    [InlineData("org/na..me")]
    [InlineData("org/name.git")]
    [InlineData("org/name@")]
    [InlineData("org/name@../x")]
    [InlineData("C:\\models\\bert")]
    [InlineData("with space")]
    public void Paths_and_malformed_names_are_not_hub_names(string text) => Assert.False(RepoId.TryParse(text, out _, out _));
}
