namespace NBert;

/// <summary>
/// Bad input to NBert: a file that is corrupt or not what it claims to be, a field of config.json or a line
/// of training data that cannot be used, a model that does not fit the task. The message names the file,
/// field, line or option and says what to do. Every loader throws this type (or <see cref="FileNotFoundException"/>
/// for a file that is not there) and nothing else for anything a file can contain. A wrong argument passed
/// from code (a negative batch size, say) is an <see cref="ArgumentException"/>, as .NET's own APIs do.
/// </summary>
public class NBertException : Exception
{
    /// <summary>An error with a message that names what is wrong.</summary>
    public NBertException(string message) : base(message) { }

    /// <summary>An error with a message that names what is wrong, and the exception that revealed it.</summary>
    public NBertException(string message, Exception? inner) : base(message, inner) { }

    /// <summary>At most <paramref name="max"/> characters of a text for a message (an input may be megabytes long),
    /// with its length when it was cut.</summary>
    public static string Quote(string text, int max = 80)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentOutOfRangeException.ThrowIfLessThan(max, 4); // room for a character and the "..."
        if (text.Length <= max) return text;
        int cut = max - 3;
        if (char.IsHighSurrogate(text[cut - 1])) cut--;
        return $"{text[..cut]}... ({text.Length:N0} characters)";
    }
}
