using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;

namespace NBert.Distributed;

/// <summary>
/// The processes of one <c>mpirun</c> (MPI_COMM_WORLD), through a minimal binding of Open MPI's C API loaded at run time
/// from <c>libmpi.so.40</c> (or the library <c>NBERT_MPI_LIBRARY</c> names): rank and size, in-place allreduce (sum) of
/// floats and doubles, broadcast, barrier and abort. A process started without <c>mpirun</c> (no
/// <c>OMPI_COMM_WORLD_SIZE</c> in its environment) is a world of one: nothing is loaded and every collective is a no-op.
/// </summary>
/// <remarks>
/// Open MPI's handles (<c>MPI_COMM_WORLD</c>, <c>MPI_FLOAT</c>, <c>MPI_SUM</c>, ...) are the addresses of exported globals
/// (<c>ompi_mpi_comm_world</c>, <c>ompi_mpi_float</c>, <c>ompi_mpi_op_sum</c>), which <see cref="NativeLibrary.GetExport"/>
/// gives, and <c>MPI_IN_PLACE</c> is the address 1. MPICH's handles are integer constants from its <c>mpi.h</c> instead
/// (<c>MPI_COMM_WORLD</c> 0x44000000, <c>MPI_FLOAT</c> 0x4c00040a, <c>MPI_SUM</c> 0x58000003, <c>MPI_IN_PLACE</c> -1),
/// passed as 32-bit integers: supporting it means a second handle table, nothing else. MPI is initialised once per
/// process (MPI cannot be initialised again after MPI_Finalize), with MPI_THREAD_SERIALIZED: calls are serialised by a
/// lock, so any thread may make them. Errors come back as return codes (MPI_ERRORS_RETURN) and become
/// <see cref="NBertException"/>s naming the call.
/// </remarks>
public sealed unsafe partial class MpiWorld : IDisposable
{
    /// <summary>The environment variable mpirun (Open MPI) sets in every process it starts: the number of processes.</summary>
    public const string SizeVariable = "OMPI_COMM_WORLD_SIZE";
    private const int Success = 0, ThreadSerialized = 2, MaxErrorString = 256;

    private static readonly object s_lock = new();
    private static MpiWorld? s_world;

    private readonly Native? _mpi;
    private bool _finalized;

    /// <summary>This process's rank, 0 to <see cref="Size"/> - 1.</summary>
    public int Rank { get; }
    /// <summary>The number of processes.</summary>
    public int Size { get; }
    /// <summary>Whether MPI is loaded and initialised (false for a world of one started without mpirun).</summary>
    public bool IsMpi => _mpi is not null;

    /// <summary>Whether this process was started by Open MPI's mpirun (its environment has <c>OMPI_COMM_WORLD_SIZE</c>).</summary>
    public static bool IsLaunchedByMpirun => Environment.GetEnvironmentVariable(SizeVariable) is { Length: > 0 };

    private MpiWorld(Native? mpi, int rank, int size) => (_mpi, Rank, Size) = (mpi, rank, size);

    /// <summary>
    /// The world of this process: MPI is loaded and initialised when the process runs under mpirun, or when
    /// <paramref name="require"/> is set (then a process started alone is an MPI singleton of size 1); otherwise a world
    /// of one without MPI. Every call returns the same world until it is disposed.
    /// </summary>
    /// <exception cref="NBertException">The MPI library cannot be loaded, or MPI_Init_thread fails.</exception>
    public static MpiWorld Start(bool require = false)
    {
        lock (s_lock)
        {
            if (s_world is { _finalized: false } world) return world;
            if (s_world is { IsMpi: true })
                throw new NBertException("MPI was finalised in this process and cannot be initialised again (MPI allows one MPI_Init per process).");
            if (!require && !IsLaunchedByMpirun) return s_world = new MpiWorld(null, 0, 1);
            var mpi = Native.Load();
            int provided;
            mpi.Check(mpi.InitThread(null, null, ThreadSerialized, &provided), "MPI_Init_thread");
            // Errors are return codes from here on (the default handler aborts every process without a message we control).
            mpi.Check(mpi.CommSetErrhandler(mpi.CommWorld, mpi.ErrorsReturn), "MPI_Comm_set_errhandler");
            if (provided < ThreadSerialized)
                throw new NBertException($"MPI_Init_thread: the MPI library gives thread level {provided}, below MPI_THREAD_SERIALIZED (2).");
            int rank, size;
            mpi.Check(mpi.CommRank(mpi.CommWorld, &rank), "MPI_Comm_rank");
            mpi.Check(mpi.CommSize(mpi.CommWorld, &size), "MPI_Comm_size");
            return s_world = new MpiWorld(mpi, rank, size);
        }
    }

    /// <summary>Sums <paramref name="values"/> over all ranks, in place (MPI_Allreduce with MPI_IN_PLACE and MPI_SUM): every
    /// rank ends with the same sums.</summary>
    /// <exception cref="NBertException">MPI_Allreduce fails (a rank died, the network failed).</exception>
    public void AllreduceSum(Span<float> values)
    {
        if (_mpi is not { } mpi) return;
        fixed (float* p = values) Chunks(p, values.Length, sizeof(float), (data, count) => mpi.Allreduce(Native.InPlace, data, count, mpi.Float, mpi.Sum, mpi.CommWorld), "MPI_Allreduce");
    }

    /// <summary>Sums <paramref name="values"/> over all ranks, in place (MPI_Allreduce with MPI_IN_PLACE and MPI_SUM).</summary>
    /// <exception cref="NBertException">MPI_Allreduce fails.</exception>
    public void AllreduceSum(Span<double> values)
    {
        if (_mpi is not { } mpi) return;
        fixed (double* p = values) Chunks(p, values.Length, sizeof(double), (data, count) => mpi.Allreduce(Native.InPlace, data, count, mpi.Double, mpi.Sum, mpi.CommWorld), "MPI_Allreduce");
    }

    /// <summary>Every rank's <paramref name="values"/> become rank <paramref name="root"/>'s (MPI_Bcast).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="root"/> is not a rank.</exception>
    /// <exception cref="NBertException">MPI_Bcast fails.</exception>
    public void Broadcast(Span<float> values, int root = 0)
    {
        CheckRoot(root);
        if (_mpi is not { } mpi) return;
        fixed (float* p = values) Chunks(p, values.Length, sizeof(float), (data, count) => mpi.Bcast(data, count, mpi.Float, root, mpi.CommWorld), "MPI_Bcast");
    }

    /// <summary>Every rank's <paramref name="values"/> become rank <paramref name="root"/>'s (MPI_Bcast).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="root"/> is not a rank.</exception>
    /// <exception cref="NBertException">MPI_Bcast fails.</exception>
    public void Broadcast(Span<double> values, int root = 0)
    {
        CheckRoot(root);
        if (_mpi is not { } mpi) return;
        fixed (double* p = values) Chunks(p, values.Length, sizeof(double), (data, count) => mpi.Bcast(data, count, mpi.Double, root, mpi.CommWorld), "MPI_Bcast");
    }

    /// <summary>Every rank's <paramref name="bytes"/> become rank <paramref name="root"/>'s (MPI_Bcast of MPI_BYTE).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="root"/> is not a rank.</exception>
    /// <exception cref="NBertException">MPI_Bcast fails.</exception>
    public void Broadcast(Span<byte> bytes, int root = 0)
    {
        CheckRoot(root);
        if (_mpi is not { } mpi) return;
        fixed (byte* p = bytes) Chunks(p, bytes.Length, 1, (data, count) => mpi.Bcast(data, count, mpi.Byte, root, mpi.CommWorld), "MPI_Bcast");
    }

    /// <summary>Waits until every rank has called it (MPI_Barrier).</summary>
    /// <exception cref="NBertException">MPI_Barrier fails.</exception>
    public void Barrier()
    {
        if (_mpi is not { } mpi) return;
        lock (s_lock) mpi.Check(mpi.Barrier(mpi.CommWorld), "MPI_Barrier");
    }

    /// <summary>
    /// Ends every process of the world with <paramref name="errorCode"/> (MPI_Abort): what a rank that fails calls, so
    /// that the others, blocked in a collective, do not wait for it forever. It takes no lock, so it works while another
    /// thread is blocked in a collective. In a world of one it exits the process.
    /// </summary>
    [DoesNotReturn]
    public void Abort(int errorCode)
    {
        Console.Out.Flush();
        Console.Error.Flush();
        if (_mpi is { } mpi) mpi.Abort(mpi.CommWorld, errorCode);
        Environment.Exit(errorCode);
        throw new InvalidOperationException("unreachable");
    }

    /// <summary>Finalises MPI (MPI_Finalize) after a barrier-free shutdown; the world cannot be used afterwards.</summary>
    public void Dispose()
    {
        lock (s_lock)
        {
            if (_finalized) return;
            _finalized = true;
            if (_mpi is { } mpi) mpi.Check(mpi.Finalize(), "MPI_Finalize");
        }
    }

    private void CheckRoot(int root)
    {
        if (root < 0 || root >= Size) throw new ArgumentOutOfRangeException(nameof(root), $"root must be a rank, 0 to {Size - 1}, not {root}.");
    }

    private delegate int Collective(void* data, int count);

    /// <summary>MPI counts are ints: a longer buffer goes in pieces of at most int.MaxValue elements.</summary>
    private void Chunks(void* data, int length, int elementSize, Collective call, string name)
    {
        ObjectDisposedException.ThrowIf(_finalized, this);
        lock (s_lock)
            for (long offset = 0; offset < length; offset += int.MaxValue)
                _mpi!.Check(call((byte*)data + offset * elementSize, (int)Math.Min(int.MaxValue, length - offset)), name);
    }

    /// <summary>Open MPI's entry points and handles, resolved from the loaded library.</summary>
    private sealed class Native
    {
        /// <summary>Open MPI's MPI_IN_PLACE: <c>(void *) 1</c>.</summary>
        public static readonly void* InPlace = (void*)1;
        private const int RtldNow = 2, RtldGlobal = 0x100;

        public nint CommWorld, Float, Double, Byte, Sum, ErrorsReturn;
        public delegate* unmanaged<int*, byte***, int, int*, int> InitThread;
        public delegate* unmanaged<int> Finalize;
        public delegate* unmanaged<nint, int*, int> CommRank, CommSize;
        public delegate* unmanaged<nint, nint, int> CommSetErrhandler;
        public delegate* unmanaged<void*, void*, int, nint, nint, nint, int> Allreduce;
        public delegate* unmanaged<void*, int, nint, int, nint, int> Bcast;
        public delegate* unmanaged<nint, int> Barrier;
        public delegate* unmanaged<nint, int, int> Abort;
        public delegate* unmanaged<int, byte*, int*, int> ErrorString;

        public static Native Load()
        {
            string name = Environment.GetEnvironmentVariable("NBERT_MPI_LIBRARY") is { Length: > 0 } custom ? custom : "libmpi.so.40";
            // RTLD_GLOBAL, as mpi4py does: Open MPI's plugins (mca_*.so), which it opens itself, resolve symbols of
            // libmpi that a library opened RTLD_LOCAL (NativeLibrary.Load's default) does not expose to them.
            nint handle = OperatingSystem.IsLinux() ? Dl.Open(name, RtldNow | RtldGlobal) : 0;
            if (handle == 0 && !NativeLibrary.TryLoad(name, out handle))
                throw new NBertException($"Cannot load the MPI library {name}{(OperatingSystem.IsLinux() ? $" ({Dl.LastError()})" : "")}: install Open MPI " +
                    "(Debian and Ubuntu: apt-get install openmpi-bin), or set NBERT_MPI_LIBRARY to the path of Open MPI's libmpi.so.");
            nint Export(string symbol) => NativeLibrary.TryGetExport(handle, symbol, out nint address) ? address
                : throw new NBertException($"{name} has no symbol {symbol}: NBert's MPI binding needs Open MPI (4.x or 5.x); MPICH and its derivatives are not supported.");
            return new Native
            {
                CommWorld = Export("ompi_mpi_comm_world"), Float = Export("ompi_mpi_float"), Double = Export("ompi_mpi_double"), Byte = Export("ompi_mpi_byte"),
                Sum = Export("ompi_mpi_op_sum"), ErrorsReturn = Export("ompi_mpi_errors_return"),
                InitThread = (delegate* unmanaged<int*, byte***, int, int*, int>)Export("MPI_Init_thread"),
                Finalize = (delegate* unmanaged<int>)Export("MPI_Finalize"),
                CommRank = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_rank"),
                CommSize = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_size"),
                CommSetErrhandler = (delegate* unmanaged<nint, nint, int>)Export("MPI_Comm_set_errhandler"),
                Allreduce = (delegate* unmanaged<void*, void*, int, nint, nint, nint, int>)Export("MPI_Allreduce"),
                Bcast = (delegate* unmanaged<void*, int, nint, int, nint, int>)Export("MPI_Bcast"),
                Barrier = (delegate* unmanaged<nint, int>)Export("MPI_Barrier"),
                Abort = (delegate* unmanaged<nint, int, int>)Export("MPI_Abort"),
                ErrorString = (delegate* unmanaged<int, byte*, int*, int>)Export("MPI_Error_string"),
            };
        }

        /// <summary>Turns an MPI error code into an exception naming the call and with MPI's own description.</summary>
        public void Check(int code, string call)
        {
            if (code == Success) return;
            byte* text = stackalloc byte[MaxErrorString];
            int length = 0;
            string reason = ErrorString(code, text, &length) == Success ? System.Text.Encoding.UTF8.GetString(text, Math.Clamp(length, 0, MaxErrorString)) : "unknown error";
            throw new NBertException($"{call} failed with MPI error {code}: {reason}.");
        }
    }

    /// <summary>The dynamic loader, for dlopen's RTLD_GLOBAL (in libc since glibc 2.34).</summary>
    private static partial class Dl
    {
        [LibraryImport("libc.so.6", EntryPoint = "dlopen", StringMarshalling = StringMarshalling.Utf8)]
        private static partial nint DlOpen(string file, int mode);
        [LibraryImport("libc.so.6", EntryPoint = "dlerror")]
        private static partial nint DlError();

        public static nint Open(string file, int mode)
        {
            try
            {
                return DlOpen(file, mode);
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                return 0; // an older glibc keeps dlopen in libdl: NativeLibrary.TryLoad follows
            }
        }

        public static string LastError()
        {
            try
            {
                return Marshal.PtrToStringUTF8(DlError()) ?? "not found";
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                return "not found";
            }
        }
    }
}
