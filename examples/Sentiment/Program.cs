// What a transformers user writes first, with NBert: load a tokenizer and a sequence-classification model,
// tokenize a few sentences with padding and an attention mask, run the model, softmax, argmax, id2label.
//
//   dotnet run -- [MODEL_DIRECTORY]     (default: models/sentiment-minilm, which `nbert quickstart` leaves)
using System.Numerics.Tensors;
using NBert.Modeling;
using NBert.Tokenization;

string directory = args.Length > 0 ? args[0] : Path.Combine("models", "sentiment-minilm");
if (!Directory.Exists(directory))
{
    Console.Error.WriteLine($"No model in '{directory}': run `nbert quickstart` first, or give a model directory.");
    return 2;
}

var tokenizer = BertTokenizer.FromPretrained(directory);
var model = BertPreTrainedModel.FromPretrained(directory);

string[] sentences = ["I loved every minute of it.", "The food was cold and the service was slow.", "It was fine, I guess."];
var inputs = ModelInputs.FromEncodings(tokenizer.EncodeBatch(sentences,
    new EncodeOptions { Padding = PaddingStrategy.Longest, Truncation = TruncationStrategy.LongestFirst, MaxLength = 128 }));
var logits = model.Forward(inputs).Logits!;

int labels = model.Config.NumLabels;
for (int i = 0; i < sentences.Length; i++)
{
    var probabilities = new float[labels];
    TensorPrimitives.SoftMax(logits.Data.AsSpan(i * labels, labels), probabilities);
    int best = TensorPrimitives.IndexOfMax(probabilities);
    Console.WriteLine($"{model.Config.Id2Label[best]}\t{probabilities[best]:F4}\t{sentences[i]}");
}
return 0;
