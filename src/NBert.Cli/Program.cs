var t = NBert.Tokenization.BertTokenizer.FromVocabulary(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello"]);
Console.WriteLine(string.Join(",", t.Encode("hello").InputIds));
return 0;
