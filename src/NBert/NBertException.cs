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

    /// <summary>At most 80 characters of a value taken from a file (a name, a token, a number's text), so a
    /// message quoting it stays one line however long the value is.</summary>
    internal static string Quote(string value) => value.Length <= 80 ? value : value[..77] + "...";
}
