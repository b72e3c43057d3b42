namespace NBert.Tests;

/// <summary>A test class with its own temporary directory, deleted after each test.</summary>
public abstract class TempDirectoryTest : IDisposable
{
    protected string Dir { get; } = Directory.CreateTempSubdirectory("nbert-test-").FullName;

    protected string Temp(string name) => Path.Combine(Dir, name);

    public void Dispose()
    {
        Directory.Delete(Dir, true);
        GC.SuppressFinalize(this);
    }
}
