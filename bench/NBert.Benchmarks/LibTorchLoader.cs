using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace NBert.Benchmarks;

/// <summary>
/// Makes TorchSharp 0.107 (libtorch 2.10) load on Debian 12 (bench only; see shared/notes/engine-notes.md).
/// Its libLibTorchSharp.so asks for GLIBCXX_3.4.32 (GCC 13's libstdc++) for one symbol,
/// <c>std::ios_base_library_init()</c>, which GCC 12's libstdc++ lacks. So: mark that version need weak
/// in the build output's copy of the library, and provide the symbol from a tiny shim library built with
/// g++ and loaded with RTLD_GLOBAL before TorchSharp loads its natives.
/// </summary>
public static class LibTorchLoader
{
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlagWeak = 0x2;

    public static void Prepare()
    {
        foreach (var so in Directory.GetFiles(AppContext.BaseDirectory, "libLibTorchSharp.so", SearchOption.AllDirectories))
            MarkVersionWeak(so, "GLIBCXX_3.4.32");
        string shim = Path.Combine(AppContext.BaseDirectory, "libnbert-iosinit.so");
        if (!File.Exists(shim)) BuildShim(shim);
        if (dlopen(shim, RtldNow | RtldGlobal) == 0)
            throw new InvalidOperationException($"Could not load {shim}: {Marshal.PtrToStringAnsi(dlerror())}");
    }

    private const int RtldNow = 2, RtldGlobal = 0x100;

    [DllImport("libc", EntryPoint = "dlopen")]
    private static extern nint dlopen(string file, int mode);

    [DllImport("libc", EntryPoint = "dlerror")]
    private static extern nint dlerror();

    private static void BuildShim(string output)
    {
        string source = Path.Combine(Path.GetTempPath(), $"nbert-iosinit-{Environment.ProcessId}.cpp");
        // <iostream> already initialises the streams, so the function has nothing left to do.
        File.WriteAllText(source, "#include <iostream>\nnamespace std { void ios_base_library_init() {} }\n");
        var p = Process.Start(new ProcessStartInfo("g++", $"-shared -fPIC -O2 -o \"{output}\" \"{source}\"") { RedirectStandardError = true })
            ?? throw new InvalidOperationException("g++ is needed to build the libtorch shim.");
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        File.Delete(source);
        if (p.ExitCode != 0) throw new InvalidOperationException($"g++ failed building the libtorch shim: {err}");
    }

    /// <summary>Sets VER_FLG_WEAK on the <paramref name="version"/> entry of the ELF64 .gnu.version_r section.</summary>
    public static bool MarkVersionWeak(string path, string version)
    {
        var elf = File.ReadAllBytes(path);
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[4] != 2) return false; // ELF64 only
        long shoff = BinaryPrimitives.ReadInt64LittleEndian(elf.AsSpan(0x28));
        int shentsize = BinaryPrimitives.ReadUInt16LittleEndian(elf.AsSpan(0x3A)), shnum = BinaryPrimitives.ReadUInt16LittleEndian(elf.AsSpan(0x3C));
        Span<byte> Section(int i) => elf.AsSpan((int)(shoff + (long)i * shentsize), shentsize);
        bool changed = false;
        for (int i = 0; i < shnum; i++)
        {
            var sh = Section(i);
            if (BinaryPrimitives.ReadUInt32LittleEndian(sh[4..]) != ShtGnuVerneed) continue;
            long offset = BinaryPrimitives.ReadInt64LittleEndian(sh[0x18..]);
            int link = (int)BinaryPrimitives.ReadUInt32LittleEndian(sh[0x28..]);
            int count = (int)BinaryPrimitives.ReadUInt32LittleEndian(sh[0x2C..]);
            long strings = BinaryPrimitives.ReadInt64LittleEndian(Section(link)[0x18..]);
            long need = offset;
            for (int n = 0; n < count; n++)
            {
                int auxCount = BinaryPrimitives.ReadUInt16LittleEndian(elf.AsSpan((int)need + 2));
                long aux = need + BinaryPrimitives.ReadUInt32LittleEndian(elf.AsSpan((int)need + 8));
                for (int a = 0; a < auxCount; a++)
                {
                    long name = strings + BinaryPrimitives.ReadUInt32LittleEndian(elf.AsSpan((int)aux + 8));
                    int end = Array.IndexOf(elf, (byte)0, (int)name);
                    if (Encoding.ASCII.GetString(elf, (int)name, end - (int)name) == version)
                    {
                        var flags = elf.AsSpan((int)aux + 4, 2);
                        ushort f = BinaryPrimitives.ReadUInt16LittleEndian(flags);
                        if ((f & VerFlagWeak) == 0)
                        {
                            BinaryPrimitives.WriteUInt16LittleEndian(flags, (ushort)(f | VerFlagWeak));
                            changed = true;
                        }
                    }
                    aux += BinaryPrimitives.ReadUInt32LittleEndian(elf.AsSpan((int)aux + 12));
                }
                need += BinaryPrimitives.ReadUInt32LittleEndian(elf.AsSpan((int)need + 12));
            }
        }
        if (changed) File.WriteAllBytes(path, elf);
        return changed;
    }
}
