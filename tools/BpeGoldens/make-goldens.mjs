// Makes tests/fixtures/bpe: a small byte-level BPE trained by Hugging Face's Rust tokenizers (the npm package
// `tokenizers`, which binds the Rust crate) on the shipped Moby-Dick corpus, saved as tokenizer.json and as
// vocab.json + merges.txt, and the golden encodings NBert's tests compare against.
//
//   mkdir -p /tmp/bpe-gold && cd /tmp/bpe-gold && npm install tokenizers@0.23.2
//   node /path/to/repo/tools/BpeGoldens/make-goldens.mjs /path/to/repo
//
// `tokenizers` is resolved from the current directory, so the repository gets no node_modules.
import { createRequire } from 'module';
import fs from 'fs';
import path from 'path';
import zlib from 'zlib';
import os from 'os';

const require = createRequire(path.join(process.cwd(), 'resolve.js'));
const tk = require('tokenizers');
const tkVersion = JSON.parse(fs.readFileSync(require.resolve('tokenizers/package.json'), 'utf8')).version;
const repo = path.resolve(process.argv[2] ?? '.');
const out = path.join(repo, 'tests', 'fixtures', 'bpe');
fs.mkdirSync(out, { recursive: true });
const MERGES = 1739; // 4 specials + 256 bytes + 1739 merges + <mask> = 2,000 ids

// ---- 1. Train on the shipped corpus, keep the first MERGES merges ----
const corpusFile = path.join(repo, 'data', 'corpus', 'moby-dick.train.txt.gz');
const corpus = zlib.gunzipSync(fs.readFileSync(corpusFile)).toString('utf8');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'bpe-gold-'));
fs.writeFileSync(path.join(scratch, 'corpus.txt'), corpus);
const trainer = new tk.Tokenizer(tk.BPE.empty());
trainer.setPreTokenizer(tk.byteLevelPreTokenizer(false, true));
// Tokenizer.train uses the model's default trainer (no vocabulary limit): a shorter run of the same trainer would
// have learnt exactly the first merges, so they are kept and the rest dropped.
trainer.train([path.join(scratch, 'corpus.txt')]);
trainer.save(path.join(scratch, 'trained.json'), false);
const trained = JSON.parse(fs.readFileSync(path.join(scratch, 'trained.json'), 'utf8'));
const merges = trained.model.merges.slice(0, MERGES).map(m => (Array.isArray(m) ? m : m.split(' ')));

const vocab = {};
let next = 0;
for (const s of ['<s>', '<pad>', '</s>', '<unk>']) vocab[s] = next++;
const alphabet = tk.byteLevelAlphabet().slice().sort((a, b) => a.codePointAt(0) - b.codePointAt(0));
if (alphabet.length !== 256) throw new Error(`byte alphabet has ${alphabet.length} chars`);
for (const c of alphabet) vocab[c] = next++;
for (const [a, b] of merges) {
  if (!(a in vocab) || !(b in vocab)) throw new Error(`merge ${a} ${b} uses an unknown token`);
  if (!((a + b) in vocab)) vocab[a + b] = next++;
}
vocab['<mask>'] = next++;

// vocab.json and merges.txt as Hugging Face writes them (BPE.save): merges.txt starts with "#version: 0.2".
fs.writeFileSync(path.join(out, 'vocab.json'), JSON.stringify(vocab));
fs.writeFileSync(path.join(out, 'merges.txt'), '#version: 0.2\n' + merges.map(([a, b]) => `${a} ${b}`).join('\n') + '\n');

const specials = [['<s>', false], ['<pad>', false], ['</s>', false], ['<unk>', false], ['<mask>', true]];
function build({ addPrefixSpace, trimOffsets }) {
  const t = new tk.Tokenizer(tk.BPE.init(vocab, merges, { continuingSubwordPrefix: '', endOfWordSuffix: '', fuseUnk: false }));
  t.setPreTokenizer(tk.byteLevelPreTokenizer(addPrefixSpace, true));
  t.setPostProcessor(tk.robertaProcessing(['</s>', vocab['</s>']], ['<s>', vocab['<s>']], trimOffsets, addPrefixSpace));
  // As transformers' RobertaTokenizer: the mask token absorbs the space before it.
  t.addAddedTokens(specials.map(([s, lstrip]) => new tk.AddedToken(s, true, { leftStrip: lstrip, normalized: false })));
  // The node binding has no constructor for the ByteLevel decoder: it goes in through the JSON, as the Rust crate reads it.
  const file = path.join(scratch, 'built.json');
  t.save(file, false);
  const j = JSON.parse(fs.readFileSync(file, 'utf8'));
  j.decoder = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };
  return tk.Tokenizer.fromString(JSON.stringify(j));
}

// The variants: roberta-base's settings, add_prefix_space on, and offsets not trimmed.
const variants = {
  roberta: { addPrefixSpace: false, trimOffsets: true },
  prefix_space: { addPrefixSpace: true, trimOffsets: true },
  untrimmed: { addPrefixSpace: false, trimOffsets: false },
};
for (const [name, v] of Object.entries(variants)) {
  const dir = path.join(out, name);
  fs.mkdirSync(dir, { recursive: true });
  build(v).save(path.join(dir, 'tokenizer.json'), true);
}
// prefix_space's tokenizer.json gets the older merges format ("a b" strings), which the tokenizers of 2020-2024 wrote.
{
  const file = path.join(out, 'prefix_space', 'tokenizer.json');
  const j = JSON.parse(fs.readFileSync(file, 'utf8'));
  j.model.merges = j.model.merges.map(m => (Array.isArray(m) ? m.join(' ') : m));
  fs.writeFileSync(file, JSON.stringify(j, null, 2));
}
// Two variants for the BPE model's handling of chars it lacks: the byte chars of bytes 0x80 and up that no merge uses
// leave the vocabulary (their ids become gaps), and either become the unknown token (fused, with ignore_merges on)
// or are dropped (no unk_token). Only singles are made for them.
const inMerges = new Set(merges.flat().join(''));
const removed = alphabet.filter((c, b) => b >= 0x80 && !inMerges.has(c));
const charVariants = {
  unk_fused: { unk_token: '<unk>', fuse_unk: true, ignore_merges: true },
  dropped: { unk_token: null, fuse_unk: false, ignore_merges: false },
  normalized_specials: null,
};
for (const [name, model] of Object.entries(charVariants)) {
  const j = JSON.parse(fs.readFileSync(path.join(out, 'roberta', 'tokenizer.json'), 'utf8'));
  if (model === null) {
    // roberta-base's tokenizer.json marks <s>, <pad>, </s> and <unk> normalized: they are matched after the normalizer
    // (none here), in the pieces the raw tokens (<mask>) leave.
    for (const t of j.added_tokens) t.normalized = t.content !== '<mask>';
  } else {
    for (const c of removed) delete j.model.vocab[c];
    Object.assign(j.model, model);
  }
  const dir = path.join(out, name);
  fs.mkdirSync(dir, { recursive: true });
  tk.Tokenizer.fromString(JSON.stringify(j)).save(path.join(dir, 'tokenizer.json'), true);
}

// The roberta variant as transformers saves a RoBERTa tokenizer beside vocab.json and merges.txt.
fs.writeFileSync(path.join(out, 'tokenizer_config.json'), JSON.stringify({
  add_prefix_space: false, trim_offsets: true, errors: 'replace', model_max_length: 512, tokenizer_class: 'RobertaTokenizer',
  bos_token: '<s>', eos_token: '</s>', sep_token: '</s>', cls_token: '<s>', unk_token: '<unk>', pad_token: '<pad>',
  mask_token: { content: '<mask>', lstrip: true, rstrip: false, normalized: false, single_word: false, special: true },
}, null, 2) + '\n');

// ---- 2. Goldens ----
const moby = corpus.split('\n').filter(l => l.length > 0);
const longText = moby.slice(200, 206).join(' ');
const singles = [
  'Hello world', ' Hello world', 'Hello world ', '  leading and trailing  ', '', ' ', '   ', '\n', 'a\nb',
  'line one\nline two\n\nline four\n', 'tabs\tand\t\ttabs', 'multiple   spaces   here', 'Call me Ishmael.',
  "It's what they'll've done, isn't it? I'd say we're OK. I'm sure you've", "don't DON'T 'tis ' s", 'café naïve résumé',
  'Ñandú über Straße ÅNGSTRÖM', 'cafe\u0301 n\u0303o e\u0301\u0301 a\u0308\u0323', '日本語のテキスト 中文字符', '한국어 텍스트',
  'I ❤️ emoji 😀👍🏽 👨‍👩‍👧 🇫🇷', '𝐀𝐁𝐂 𠀀𠀁 x𠀀y 😀abc', '123 4567 ３４５ ½ ² 1.5e10', '!!! ... ??? ;-) (parens) [brackets] {braces}',
  'a\u00a0b \u3000c\u2028d \u2009e', '\u200b zero\u200dwidth', 'windows\r\nline\rend', 'The <mask> whale.', '<s>Hello</s>',
  'Hello<mask>', '  <mask>  ', '<s> <pad> </s>', 'https://example.com/path?q=1&r=2', 'naïve_café-42', 'Antidisestablishmentarianism',
  '   \n\t  ', 'ctrl\u0000\u0007chars', "Ishmael!Queequeg?Ahab.'s", moby[10], longText,
];
const json = o => JSON.parse(JSON.stringify(o));
function fields(e) {
  return {
    input_ids: e.getIds(), tokens: e.getTokens(), token_type_ids: e.getTypeIds(), attention_mask: e.getAttentionMask(),
    special_tokens_mask: e.getSpecialTokensMask(), offsets: e.getOffsets(), word_ids: e.getWordIds().map(x => x ?? null),
    sequence_ids: e.getSequenceIds().map(x => x ?? null),
  };
}
function withOverflow(e) { return { ...fields(e), overflowing: e.getOverflowing().map(fields) }; }

// tokenizers 0.23.1+ stops tokenizing a text once max_length tokens exist when truncation is on
// (huggingface/tokenizers#2091; PR #2098 restores 0.22.2): its `overflowing` then ends early. Windows are therefore
// made by the same library's post_process (truncation, RobertaProcessing, padding) applied to the whole texts'
// encodings, which is what encode does in 0.22.2 and with the fix. Where 0.23.2's own encode agrees (the first
// window), the script checks that it does.
function rawTokenizer(v) {
  const j = JSON.parse(fs.readFileSync(path.join(out, v, 'tokenizer.json'), 'utf8'));
  j.post_processor = null;
  return tk.Tokenizer.fromString(JSON.stringify(j));
}
const strategyName = { longest_first: 'LongestFirst', only_first: 'OnlyFirst', only_second: 'OnlySecond' };
async function windows(v, a, b, { maxLength, stride, strategy, direction, pad, overflow }) {
  const full = build(variants[v]);
  const raw = rawTokenizer(v);
  full.setTruncation(maxLength, { stride, strategy: strategyName[strategy], direction: (direction ?? 'Right').toLowerCase() });
  if (pad) full.setPadding({ maxLength, padId: vocab['<pad>'], padToken: '<pad>' });
  const ea = await raw.encode(a, null, { addSpecialTokens: false });
  const eb = b == null ? null : await raw.encode(b, null, { addSpecialTokens: false });
  let post;
  try { post = full.postProcess(ea, eb, true); } catch (err) { return { error: String(err.message ?? err) }; }
  const direct = await full.encode(a, b ?? null);
  if (JSON.stringify(fields(direct).input_ids) !== JSON.stringify(fields(post).input_ids))
    throw new Error(`first window differs between encode and post_process: ${a} | ${b}`);
  return overflow ? withOverflow(post) : fields(post);
}

const goldens = { tokenizers: tkVersion, corpus: 'data/corpus/moby-dick.train.txt.gz', merges: MERGES, vocab_size: next, removed_bytes: removed.length, variants: {} };
for (const v of Object.keys(charVariants)) {
  const t = tk.Tokenizer.fromFile(path.join(out, v, 'tokenizer.json'));
  const g = { options: charVariants[v], single: [], no_special: [] };
  for (const text of singles) {
    const e = await t.encode(text);
    g.single.push({ text, ...fields(e), decoded: await t.decode(e.getIds(), false), decoded_skip: await t.decode(e.getIds(), true) });
    g.no_special.push({ text, ...fields(await t.encode(text, null, { addSpecialTokens: false })) });
  }
  goldens.variants[v] = g;
}
for (const v of Object.keys(variants)) {
  const t = tk.Tokenizer.fromFile(path.join(out, v, 'tokenizer.json'));
  const g = { options: variants[v], single: [], pairs: [], no_special: [], batch: null, overflow: [] };
  for (const text of singles) {
    const e = await t.encode(text);
    g.single.push({ text, ...fields(e), decoded: await t.decode(e.getIds(), false), decoded_skip: await t.decode(e.getIds(), true) });
    const n = await t.encode(text, null, { addSpecialTokens: false });
    g.no_special.push({ text, ...fields(n) });
  }
  const pairs = [
    ['Who is Ahab?', 'Ahab is the captain of the Pequod, and he hunts the white whale.'],
    ['  spaced  question ', ' answer with  spaces '],
    ['日本語 😀', 'café <mask> naïve'],
    [longText, 'Short one.'],
    ['Short one.', longText],
    [moby[11], moby[12]],
  ];
  for (const [a, b] of pairs) {
    const plain = await t.encode(a, b);
    g.pairs.push({ a, b, truncation: null, max_length: null, ...fields(plain) });
    const n = await t.encode(a, b, { addSpecialTokens: false });
    g.pairs.push({ a, b, truncation: null, max_length: null, add_special_tokens: false, ...fields(n) });
    for (const strategy of ['longest_first', 'only_first', 'only_second'])
      for (const maxLength of [8, 13, 24, 40]) {
        const r = await windows(v, a, b, { maxLength, stride: 0, strategy, pad: true });
        g.pairs.push({ a, b, truncation: strategy, max_length: maxLength, ...r });
      }
  }
  // Padding to the longest of a batch, truncated longest_first.
  const batchTexts = ['Hello world', ' x', longText, '日本語 😀 e\u0301', ''];
  t.setTruncation(20, { strategy: 'LongestFirst' });
  t.setPadding({ padId: vocab['<pad>'], padToken: '<pad>' });
  const batch = await t.encodeBatch(batchTexts);
  t.disableTruncation(); t.disablePadding();
  g.batch = { texts: batchTexts, max_length: 20, encodings: batch.map(fields) };
  // Stride windows with overflow, single texts and pairs, both directions, every strategy.
  const question = 'What did the whale do to the ship?';
  for (const [a, b, strategy, maxLength, stride, direction] of [
    [longText, null, 'longest_first', 16, 4, 'Right'],
    [longText, null, 'longest_first', 16, 4, 'Left'],
    [longText, null, 'only_first', 23, 0, 'Right'],
    ['  spaced  ' + moby[13] + '  ', null, 'longest_first', 10, 3, 'Right'],
    ['日本語のテキスト 😀👍🏽 café naïve ' + moby[14], null, 'longest_first', 12, 5, 'Right'],
    [question, longText, 'only_second', 40, 8, 'Right'],
    [question, longText, 'only_second', 40, 8, 'Left'],
    [longText, question, 'only_first', 32, 6, 'Right'],
    [moby[13] + ' ' + moby[14], moby[20], 'longest_first', 30, 4, 'Right'],
    [moby[20], moby[15], 'longest_first', 25, 2, 'Left'],
  ]) {
    const r = await windows(v, a, b, { maxLength, stride, strategy, direction, pad: true, overflow: true });
    if (r.error) throw new Error(`overflow case failed: ${r.error}`);
    g.overflow.push({ a, b, truncation: strategy, max_length: maxLength, stride, direction: direction.toLowerCase(), ...r });
  }
  goldens.variants[v] = g;
}

// vocab.json + merges.txt, built as transformers' RobertaTokenizer builds them (BPE.from_file), must give the roberta
// variant's encodings.
{
  const model = await tk.BPE.fromFile(path.join(out, 'vocab.json'), path.join(out, 'merges.txt'));
  const t = new tk.Tokenizer(model);
  t.setPreTokenizer(tk.byteLevelPreTokenizer(false, true));
  t.setPostProcessor(tk.robertaProcessing(['</s>', vocab['</s>']], ['<s>', vocab['<s>']], true, false));
  t.addAddedTokens(specials.map(([s, lstrip]) => new tk.AddedToken(s, true, { leftStrip: lstrip, normalized: false })));
  for (const c of goldens.variants.roberta.single) {
    const e = await t.encode(c.text);
    if (JSON.stringify(fields(e)) !== JSON.stringify(json(Object.fromEntries(Object.entries(c).filter(([k]) => k in fields(e))))))
      throw new Error(`vocab.json + merges.txt differ from tokenizer.json on ${JSON.stringify(c.text)}`);
  }
}
fs.writeFileSync(path.join(out, 'goldens.json'), JSON.stringify(goldens) + '\n');
fs.rmSync(scratch, { recursive: true, force: true });
console.log(`wrote ${out}: ${next} ids, ${MERGES} merges, tokenizers ${tkVersion}`);
