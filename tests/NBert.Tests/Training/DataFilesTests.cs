using System.IO.Compression;
using System.Text;
using NBert.Tasks;

namespace NBert.Tests.Training;

/// <summary>Issue 26 (3) and 29 (10): the one data reader: gzip, streaming in bounded memory, strict UTF-8 and a
/// bounded line, each bad line named by file and number.</summary>
public sealed class DataFilesTests : TempDirectoryTest
{
    private string Write(string name, byte[] bytes)
    {
        string path = Temp(name);
        if (name.EndsWith(".gz", StringComparison.Ordinal))
        {
            using var gz = new GZipStream(File.Create(path), CompressionLevel.Fastest);
            gz.Write(bytes);
        }
        else File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void Lines_are_numbered_from_one_without_their_breaks_the_bom_or_a_missing_last_break_and_gzip_reads_the_same()
    {
        byte[] text = [.. Encoding.UTF8.Preamble, .. Encoding.UTF8.GetBytes("first\r\n\nthird é\nlast")];
        (string, int)[] expected = [("first", 1), ("", 2), ("third é", 3), ("last", 4)];
        Assert.Equal(expected, DataFiles.Lines(Write("a.txt", text)).ToArray());
        Assert.Equal(expected, DataFiles.Lines(Write("a.txt.gz", text)).ToArray());
        Assert.Empty(DataFiles.Lines(Write("empty.txt", [])));
    }

    [Fact]
    public void Invalid_utf8_is_refused_with_its_file_and_line()
    {
        byte[] text = [.. "ok\nstill ok\nbad "u8, 0xC3, 0x28, .. " here\nnever read\n"u8];
        foreach (string name in new[] { "bad.jsonl", "bad.jsonl.gz" })
        {
            string path = Write(name, text);
            var lines = new List<int>();
            var e = Assert.Throws<NBertException>(() => { foreach (var (_, n) in DataFiles.Lines(path)) lines.Add(n); });
            Assert.Equal([1, 2], lines);
            Assert.StartsWith($"{path}:3: not valid UTF-8 (byte 5 of the line", e.Message);
        }
    }

    [Fact]
    public void A_line_over_the_maximum_is_refused_when_the_maximum_is_reached_not_loaded_whole()
    {
        string path = Write("long.txt", [.. "short\n"u8, .. Enumerable.Repeat((byte)'x', 101), .. "\nshort\n"u8]);
        var e = Assert.Throws<NBertException>(() => DataFiles.Lines(path, maxLineBytes: 100).ToList());
        Assert.StartsWith($"{path}:2: the line is longer than 100 bytes", e.Message);
        Assert.Equal(3, DataFiles.Lines(path, maxLineBytes: 101).Count());

        // A line that never ends (a stream with no line break, ever): refused after MaxLineBytes, with the bytes read
        // bounded by the maximum and one read, not by the stream.
        var endless = new GeneratedStream(long.MaxValue, [.. Enumerable.Repeat((byte)'y', 4096)]);
        e = Assert.Throws<NBertException>(() => DataFiles.Lines(endless, "standard input").First());
        Assert.StartsWith($"standard input:1: the line is longer than {DataFiles.MaxLineBytes:N0} bytes", e.Message);
        Assert.InRange(endless.Position, DataFiles.MaxLineBytes, DataFiles.MaxLineBytes + (1 << 20));
    }

    [Fact]
    public void A_2_GB_corpus_streams_through_in_bounded_memory()
    {
        // 2 GiB of 4 KiB lines, generated as they are read: loaded whole, it would take 4 GiB of strings. What bounds the
        // memory is measured on the reader itself, not on the process's heap (other tests share it): the stream is never
        // read more than a buffer ahead of the lines handed out, and a line handed out is not kept.
        const long size = 2L << 30;
        const int lineLength = 4096;
        byte[] line = [.. Enumerable.Range(0, lineLength - 1).Select(i => (byte)('a' + i % 26)), (byte)'\n'];
        var stream = new GeneratedStream(size, line);
        long lines = 0, characters = 0, aheadPeak = 0;
        WeakReference? first = null;
        foreach (var (text, number) in DataFiles.Lines(stream, "corpus"))
        {
            lines++;
            characters += text.Length;
            Assert.Equal(lines, number);
            first ??= new WeakReference(text);
            aheadPeak = Math.Max(aheadPeak, stream.Position - lines * lineLength);
        }
        Assert.Equal(size / lineLength, lines);
        Assert.Equal(size - lines, characters);
        Assert.True(aheadPeak <= 1 << 20, $"the reader ran {aheadPeak} bytes ahead of the lines it handed out");
        GC.Collect();
        Assert.False(first!.IsAlive, "the first line is still referenced after 2 GiB more were read");
    }

    [Fact]
    public void Json_lines_name_the_bad_line()
    {
        string path = Write("d.jsonl.gz", "{\"text\": \"a\"}\n\n[1, 2]\n"u8.ToArray());
        var e = Assert.Throws<NBertException>(() => DataFiles.JsonObjects(path).ToList());
        Assert.Equal($"{path}:3: not a JSON object.", e.Message);
    }

    /// <summary>A read-only stream of <c>length</c> bytes: <c>period</c> over and over, made as it is read.</summary>
    private sealed class GeneratedStream(long length, byte[] period) : Stream
    {
        private long _position;

        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = (int)Math.Min(count, length - _position);
            for (int done = 0; done < n;)
            {
                int from = (int)((_position + done) % period.Length), take = Math.Min(n - done, period.Length - from);
                Buffer.BlockCopy(period, from, buffer, offset + done, take);
                done += take;
            }
            _position += n;
            return n;
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => _position; set => throw new NotSupportedException(); } // bytes read so far
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
