using System.CommandLine;
using System.Text.Encodings.Web;
using System.Text.Json;
using NBert.Hub;
using NBert.Tokenization;

namespace NBert.Cli.Commands;

/// <summary><c>nbert tokenize</c>: JSON lines in, one JSON line of token ids, types, mask, tokens and
/// offsets out per input line, in order.</summary>
public static class TokenizeCommand
{
    private static readonly string[] Truncations = ["longest_first", "only_first", "only_second", "none"];
    private static readonly string[] Paddings = ["none", "longest", "max_length"];

    public static Command Create(TextReader stdin, TextWriter stdout)
    {
        var model = new Option<string>("--model") { Description = "The model whose tokenizer to use: a directory, a built-in name (minilm, arctic-xs) or a Hugging Face Hub id (org/name[@revision])", Required = true };
        var maxLength = new Option<int?>("--max-length") { Description = "Maximum tokens per window, special tokens included (default: the model's model_max_length when truncating)" }.AtLeast(1);
        var truncation = new Option<string?>("--truncation") { Description = "Which text loses tokens: longest_first (default when --max-length or --stride is given), only_first, only_second, none" };
        truncation.AcceptOnlyFromAmong(Truncations);
        var stride = new Option<int?>("--stride") { Description = "Return overflowing windows that overlap by this many tokens (in \"overflow\")" }.AtLeast(0);
        var padding = new Option<string>("--padding") { Description = "none, longest (over the whole input) or max_length", DefaultValueFactory = _ => "none" };
        padding.AcceptOnlyFromAmong(Paddings);
        var noSpecial = new Option<bool>("--no-special-tokens") { Description = "Do not add [CLS] and [SEP]" };
        var input = new Option<string>("--input") { Description = "JSON lines {\"text\": ..., \"text_pair\": ...}; - for standard input", DefaultValueFactory = _ => "-" };

        var command = new Command("tokenize", "Tokenize JSON lines exactly as Hugging Face does. Offsets are UTF-16 indices into the input strings.")
        {
            model, maxLength, truncation, stride, padding, noSpecial, input,
        };
        command.SetAction(parse =>
        {
            var tokenizer = LoadTokenizer(ModelCommands.ResolveTokenizer(parse.GetValue(model)!)); // the weights are not needed
            var options = BuildOptions(parse.GetValue(maxLength), parse.GetValue(truncation), parse.GetValue(stride),
                parse.GetValue(padding)!, !parse.GetValue(noSpecial));
            string source = parse.GetValue(input)!;
            var items = JsonLinesInput.Read(source, stdin, (e, line) =>
                (Text: JsonLinesInput.RequiredString(e, "text"), Pair: JsonLinesInput.OptionalString(e, "text_pair"), Line: line));
            IReadOnlyList<TokenEncoding> encodings;
            try
            {
                encodings = tokenizer.EncodeBatch(items.Select(i => (i.Text, i.Pair)).ToArray(), options);
            }
            catch (BatchItemException e)
            {
                throw new CliException($"{JsonLinesInput.Name(source)}, line {items[e.Index].Line}: {e.InnerException!.Message}");
            }
            catch (ArgumentException e) // the options given do not fit this tokenizer (--max-length leaves no room, ...)
            {
                throw new CliException(e.Message, e);
            }
            bool withOverflow = parse.GetValue(stride) is not null;
            foreach (var encoding in encodings) stdout.WriteLine(ToJson(encoding, withOverflow));
            return Program.Ok;
        });
        return command;
    }

    /// <summary>Loads the tokenizer of a resolved model.</summary>
    public static BertTokenizer LoadTokenizer(ResolvedModel model) => BertTokenizer.FromPretrained(model);

    internal static EncodeOptions BuildOptions(int? maxLength, string? truncation, int? stride, string padding, bool addSpecial)
    {
        if (maxLength is <= 0) throw new CliException($"--max-length must be positive, not {maxLength}.");
        if (stride is < 0) throw new CliException($"--stride must not be negative, not {stride}.");
        // As transformers: giving a length or a stride without a strategy means longest_first.
        var strategy = truncation switch
        {
            "only_first" => TruncationStrategy.OnlyFirst,
            "only_second" => TruncationStrategy.OnlySecond,
            "none" => TruncationStrategy.None,
            "longest_first" => TruncationStrategy.LongestFirst,
            _ => maxLength is not null || stride is not null ? TruncationStrategy.LongestFirst : TruncationStrategy.None,
        };
        if (stride is not null && strategy == TruncationStrategy.None)
            throw new CliException("--stride needs truncation: drop '--truncation none' or drop --stride.");
        return new EncodeOptions
        {
            AddSpecialTokens = addSpecial,
            Truncation = strategy,
            MaxLength = maxLength,
            Stride = stride ?? 0,
            ReturnOverflowingTokens = stride is not null,
            Padding = padding switch { "longest" => PaddingStrategy.Longest, "max_length" => PaddingStrategy.MaxLength, _ => PaddingStrategy.None },
        };
    }

    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static string ToJson(TokenEncoding e, bool withOverflow)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, WriterOptions))
        {
            w.WriteStartObject();
            WriteFields(w, e);
            w.WriteStartArray("overflow");
            if (withOverflow)
                foreach (var o in e.Overflowing)
                {
                    w.WriteStartObject();
                    WriteFields(w, o);
                    w.WriteEndObject();
                }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(stream.GetBuffer(), 0, (int)stream.Length);
    }

    private static void WriteFields(Utf8JsonWriter w, TokenEncoding e)
    {
        void Ints(string name, int[] values)
        {
            w.WriteStartArray(name);
            foreach (int v in values) w.WriteNumberValue(v);
            w.WriteEndArray();
        }
        Ints("input_ids", e.InputIds);
        Ints("token_type_ids", e.TokenTypeIds);
        Ints("attention_mask", e.AttentionMask);
        w.WriteStartArray("tokens");
        foreach (var t in e.Tokens) w.WriteStringValue(t);
        w.WriteEndArray();
        w.WriteStartArray("offsets");
        foreach (var (start, end) in e.Offsets)
        {
            w.WriteStartArray();
            w.WriteNumberValue(start);
            w.WriteNumberValue(end);
            w.WriteEndArray();
        }
        w.WriteEndArray();
    }
}
