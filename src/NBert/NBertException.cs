namespace NBert;

/// <summary>
/// Bad input to NBert: a file that is corrupt, missing or not what it claims to be, a field of config.json or a line
/// of training data that cannot be used, a model that does not fit the task, an output directory that holds another
/// run. The message names the file, field, line or option and says what to do. Every loader throws this type (or a
/// subtype: <see cref="MissingFileException"/> for a file or directory that is not there, <c>HubException</c> for the
/// Hub, <c>TrainingDivergedException</c>) and nothing else for anything a file can contain. A wrong argument passed
/// from code (a null, a negative batch size, an option that cannot work) is an <see cref="ArgumentException"/>, as
/// .NET's own APIs do. docs/design.md, "The error contract", lists the cases.
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

/// <summary>A file or directory NBert was pointed at, or one a model needs, is not there: a data file, a model directory
/// without config.json or weights, a built-in model whose package is not installed. <see cref="FileName"/> is its path
/// (for a built-in model, the package's assembly file); the message names it and says how to get it.</summary>
public sealed class MissingFileException : NBertException
{
    /// <summary>A missing file or directory and a message naming it.</summary>
    public MissingFileException(string message, string fileName) : base(message) => FileName = fileName;

    /// <summary>The path that is not there.</summary>
    public string FileName { get; }
}
