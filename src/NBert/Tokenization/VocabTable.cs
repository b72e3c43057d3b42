using System.Runtime.InteropServices;

namespace NBert.Tokenization;

/// <summary>
/// Token-to-id lookup tuned for WordPiece, which looks up short spans of a word millions of times.
/// A general dictionary touches three or four cache lines per lookup (bucket, entry, key string);
/// here a token of up to 8 ASCII chars (most of a BERT vocabulary) is packed into the 64-bit key of
/// its slot, so a lookup reads one 16-byte slot. Other tokens keep a 64-bit hash as key and are
/// confirmed against a pool of their chars.
/// </summary>
internal sealed class VocabTable
{
    [StructLayout(LayoutKind.Sequential)]
    private struct Slot
    {
        public ulong Key;
        public int Id;
        public short Length; // 0 = empty slot
        public short Packed; // 1 when Key holds the chars themselves
    }

    private const int MaxPacked = 8;
    private readonly Slot[] _slots;
    private readonly int[] _poolOffset; // per slot, for tokens that are not packed
    private readonly char[] _pool;
    private readonly int _shift;

    public VocabTable(IEnumerable<(string Token, int Id)> entries)
    {
        var list = entries.Where(e => e.Token.Length is > 0 and <= short.MaxValue).ToList();
        int bits = Math.Max(4, (int)Math.Ceiling(Math.Log2(Math.Max(8, list.Count) * 2.0)));
        _slots = new Slot[1 << bits];
        _poolOffset = new int[1 << bits];
        _shift = 64 - bits;
        var pool = new List<char>();
        foreach (var (token, id) in list)
        {
            bool packed = TryPack(token, out ulong key);
            if (!packed) key = Hash(token);
            int slot = Find(key, packed, token, pool);
            if (_slots[slot].Length != 0) { _slots[slot].Id = id; continue; } // a repeated token: the last id wins
            _slots[slot] = new Slot { Key = key, Id = id, Length = (short)token.Length, Packed = (short)(packed ? 1 : 0) };
            if (!packed)
            {
                _poolOffset[slot] = pool.Count;
                pool.AddRange(token);
            }
        }
        _pool = [.. pool];
    }

    public bool TryGet(ReadOnlySpan<char> s, out int id)
    {
        if (TryPack(s, out ulong packed)) return TryGetPacked(packed, s.Length, out id);
        ulong key = Hash(s);
        int mask = _slots.Length - 1;
        for (int i = Index(key, s.Length); ; i = (i + 1) & mask)
        {
            ref readonly Slot slot = ref _slots[i];
            if (slot.Length == 0) break;
            if (slot.Key == key && slot.Length == s.Length && slot.Packed == 0 && _pool.AsSpan(_poolOffset[i], s.Length).SequenceEqual(s))
            {
                id = slot.Id;
                return true;
            }
        }
        id = -1;
        return false;
    }

    /// <summary>Lookup of an ASCII piece of at most 8 chars already packed by <see cref="TryPack"/>.</summary>
    public bool TryGetPacked(ulong packed, int length, out int id)
    {
        int mask = _slots.Length - 1;
        for (int i = Index(packed, length); ; i = (i + 1) & mask)
        {
            ref readonly Slot slot = ref _slots[i];
            if (slot.Length == 0) break;
            if (slot.Key == packed && slot.Length == length && slot.Packed != 0)
            {
                id = slot.Id;
                return true;
            }
        }
        id = -1;
        return false;
    }

    /// <summary>Packs up to 8 ASCII chars into one ulong (a byte each); false for longer or non-ASCII text.</summary>
    public static bool TryPack(ReadOnlySpan<char> s, out ulong key)
    {
        key = 0;
        if (s.Length > MaxPacked) return false;
        int any = 0;
        for (int i = 0; i < s.Length; i++)
        {
            any |= s[i];
            key |= (ulong)s[i] << (8 * i);
        }
        return any < 0x80;
    }

    private int Index(ulong key, int length) => (int)(((key ^ (ulong)length) * 0x9E3779B97F4A7C15UL) >> _shift);

    /// <summary>The slot holding <paramref name="token"/>, or the empty slot where it belongs.</summary>
    private int Find(ulong key, bool packed, string token, List<char> pool)
    {
        int mask = _slots.Length - 1;
        for (int i = Index(key, token.Length); ; i = (i + 1) & mask)
        {
            ref readonly Slot slot = ref _slots[i];
            if (slot.Length == 0) return i;
            if (slot.Key == key && slot.Length == token.Length && (slot.Packed != 0) == packed
                && (packed || CollectionsMarshal.AsSpan(pool).Slice(_poolOffset[i], token.Length).SequenceEqual(token)))
                return i;
        }
    }

    private static ulong Hash(ReadOnlySpan<char> s)
    {
        ulong h = 0xCBF29CE484222325UL ^ (ulong)s.Length;
        var words = MemoryMarshal.Cast<char, ulong>(s);
        foreach (ulong w in words) h = (h ^ w) * 0x100000001B3UL * 0x9E3779B97F4A7C15UL;
        for (int i = words.Length * 4; i < s.Length; i++) h = (h ^ s[i]) * 0x100000001B3UL;
        return h ^ (h >> 29);
    }
}
