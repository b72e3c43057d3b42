using NBert.IO;

namespace NBert.Tests.IO;

public sealed class StagedFilesTests : TempDirectoryTest
{
    [Fact]
    public void Files_appear_only_when_committed()
    {
        using (var files = new StagedFiles(Dir))
        {
            files.WriteAllText("a.txt", "a");
            files.WriteAllText("b.txt", "b");
            Assert.Empty(Directory.GetFiles(Dir, "*.txt"));
            files.Commit();
        }
        Assert.Equal(["a.txt", "b.txt"], Directory.GetFiles(Dir).Select(Path.GetFileName).Order());
        Assert.Equal("b", File.ReadAllText(Temp("b.txt")));
    }

    [Fact]
    public void A_failure_part_way_removes_what_was_written_and_the_directories_it_created()
    {
        string target = Temp(Path.Combine("new", "model"));
        var ex = Assert.Throws<InvalidOperationException>(() =>
        {
            using var files = new StagedFiles(target);
            files.WriteAllText("config.json", "{}");
            files.Write("model.safetensors", _ => throw new InvalidOperationException("disk full"));
            files.Commit();
        });
        Assert.Equal("disk full", ex.Message);
        Assert.False(Directory.Exists(Temp("new")));
        Assert.Empty(Directory.GetFileSystemEntries(Dir));
    }

    [Fact]
    public void A_failure_in_an_existing_directory_keeps_it_and_its_files()
    {
        File.WriteAllText(Temp("config.json"), "old");
        Assert.Throws<InvalidOperationException>(() =>
        {
            using var files = new StagedFiles(Dir);
            files.WriteAllText("config.json", "new");
            files.Write("model.safetensors", _ => throw new InvalidOperationException("disk full"));
        });
        Assert.Equal(["config.json"], Directory.GetFileSystemEntries(Dir).Select(Path.GetFileName));
        Assert.Equal("old", File.ReadAllText(Temp("config.json")));
    }
}
