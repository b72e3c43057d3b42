// What a transformers user writes first, with NBert: load a tokenizer and a sequence-classification model, tokenize a
// few sentences with padding and an attention mask, run the model, softmax, argmax, id2label.
//
//   dotnet run -- [MODEL]     (a directory, a built-in name or a Hub id; default: models/sentiment-minilm,
//                              which `nbert quickstart` leaves)
using NBert.Modeling;
using NBert.Tokenization;

string model = args.Length > 0 ? args[0] : Path.Combine("models", "sentiment-minilm");
if (args.Length == 0 && !Directory.Exists(model))
{
    Console.Error.WriteLine($"No model in '{Path.GetFullPath(model)}': run `nbert quickstart` in this folder first (it writes models/sentiment-minilm here), or give a model.");
    return 2;
}

string[] sentences = ["I loved every minute of it.", "The food was cold and the service was slow.", "It was fine, I guess."];
var tokenizer = BertTokenizer.FromPretrained(model);
var classifier = BertForSequenceClassification.FromPretrained(model);
var inputs = tokenizer.EncodeInputs(sentences);                 // padded to the longest, attention mask, truncated to the model's limit
var probabilities = classifier.Forward(inputs).Logits.Softmax(); // [sentences, labels]
foreach (var (row, label) in probabilities.ArgMax().Index())
    Console.WriteLine($"{classifier.Config.Id2Label[label]}\t{probabilities[row, label]:F4}\t{sentences[row]}");
return 0;
