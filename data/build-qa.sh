#!/usr/bin/env bash
# Builds data/qa, extractive QA in the SQuAD v2.0 format generated from REAL text by the unsupervised-QA methods
# (Lewis et al. 2019, "Unsupervised Question Answering by Cloze Translation"; Fabbri et al. 2020, "Template-Based
# Question Generation from Retrieved Sentences"): passages of the shipped corpora (data/corpus: Brown, the State of
# the Union addresses, Moby-Dick; training parts only), answers found in their sentences by npm compromise 14.17.0
# (people, places, organisations, numbers, noun phrases) and patterns (dates, years), each answer's sentence turned
# into a question by its answer type, and a third of the questions unanswerable. Needs npm, node and data/corpus;
# the output is committed and a rebuild writes the same bytes. See data/DATA.md for what it is and is not.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund compromise@14.17.0 >/dev/null)
cp "$here"/corpus/{brown,sotu,moby-dick}.train.txt.gz "$tmp/"
cd "$tmp" && node --input-type=module - "$here/qa" <<'JS'
import fs from "fs";
import path from "path";
import zlib from "zlib";
import nlp from "compromise";
const dest = process.argv[2];

// ---- determinism: one seeded generator per split (mulberry32), never Math.random ----
function generator(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: n => Math.floor(next() * n), pick: xs => xs[Math.floor(next() * xs.length)] };
}

// ---- text: documents of sentences; Brown's tokens (". , ;" standing apart) are joined back as prose ----
function detokenize(s) {
  let open = true;
  return s.split(" ").reduce((out, w) => {
    if (w === '"') { const r = open ? out + (out ? " " : "") + '"' : out + '"'; open = !open; return r; }
    const glue = out === "" || out.endsWith('"') && !open || out.endsWith("(") || /^([.,;:!?)%]|'s$|n't$|'$)/.test(w);
    return out + (glue ? "" : " ") + w;
  }, "").replace(/" (?=[^"]*$)/, '"');
}
const corpus = name => zlib.gunzipSync(fs.readFileSync(`${name}.train.txt.gz`)).toString("utf8").split("\n\n")
  .map(d => d.split("\n").filter(s => s.trim() !== "")).filter(d => d.length > 0);
const sources = [
  { name: "brown", documents: corpus("brown").map(d => d.map(detokenize)), share: 0.45 },
  { name: "sotu", documents: corpus("sotu"), share: 0.40 },
  { name: "moby-dick", documents: corpus("moby-dick"), share: 0.15 },
];
const splitOf = d => d % 10 === 0 ? "test" : d % 10 === 1 ? "dev" : "train";
const sizes = { train: 24000, dev: 1000, test: 1000 };   // questions; DATA.md says what one epoch of 24,000 costs

// Passages: runs of 2 to 4 consecutive sentences of at most 60 words in all (a short paragraph; the QA recipe's
// 192 tokens hold one with its question); a sentence of more than 40 words or fewer than 4, or one without a small
// letter, ends a run and is not used.
const words = s => s.split(" ").length;
function passages(document) {
  const result = [];
  let run = [];
  const flush = () => { if (run.length >= 2) result.push(run); run = []; };
  for (const s of document) {
    if (words(s) > 40 || words(s) < 4 || !/[a-z]/.test(s)) { flush(); continue; }
    if (run.length === 4 || words(run.concat([s]).join(" ")) > 60) flush();
    run.push(s);
  }
  flush();
  return result;
}

// ---- answers: typed spans of a sentence ----
const stop = new Set(("a an the of in on at to for from by with and or but as is was were are be been being it its this that these " +
  "those he she they we you i his her their our my your him them us me there here which who whom what when where how not no " +
  "have has had do does did will would shall should can could may might must so if then than also very all any some such only " +
  "into upon over under about after before up out more most one").split(" "));
const content = text => text.toLowerCase().match(/[a-z][a-z'-]+/g)?.filter(w => !stop.has(w) && w.length > 2) ?? [];
const months = "January|February|March|April|May|June|July|August|September|October|November|December";
const datePattern = new RegExp(`\\b(?:(?:${months}) \\d{1,2}, \\d{4}|(?:${months}) \\d{1,2}|(?:${months}),? \\d{4}|(?:${months})|1[5-9]\\d\\d|20[0-2]\\d)\\b`, "g");
const titles = /^(Mr|Mrs|Ms|Dr|Gen|Col|Capt|Lt|Sen|Rep|Gov|Rev|Prof|President|Judge|Senator|Governor|Secretary|Captain|King|Queen|Mayor|General)\.?$/;
const locatives = /^(in|at|from|to|near|into|across|throughout)$/i, temporals = /^(in|on|during|since|until|by|before|after)$/i;

// Trims a compromise match to its words: no surrounding punctuation or quotes, no possessive ending.
function trimmed(sentence, start, length) {
  let a = start, b = start + length;
  while (a < b && /[\s"'“‘(\[,;:]/.test(sentence[a])) a++;
  while (b > a && /[\s"'”’)\],;:!?]/.test(sentence[b - 1])) b--;
  if (b > a && sentence[b - 1] === "." && !/\b[A-Z]\.$|\b(?:[A-Za-z]\.){2,}$|\b(?:Jr|Sr|Inc|Co|Corp|Ltd|St)\.$/.test(sentence.slice(a, b))) b--;
  return { start: a, end: b, text: sentence.slice(a, b) };
}

function answers(sentence) {
  const doc = nlp(sentence), found = [];
  const add = (type, start, length) => {
    const t = trimmed(sentence, start, length);
    if (t.text.length < 2 || /["“”]/.test(t.text) || /'s$|’s$/.test(t.text) || sentence.slice(t.end, t.end + 2) === "'s") return;
    if (/[\p{L}\p{N}-]/u.test(sentence[t.start - 1] ?? " ") || /[\p{L}\p{N}-]/u.test(sentence[t.end] ?? " ")) return;   // whole words only
    if (t.text.split(" ").length > 6 || t.end - t.start >= sentence.length - 2) return;
    if (found.some(f => f.start < t.end && t.start < f.end)) return;   // the first type given to a span wins
    found.push({ type, ...t });
  };
  for (const m of doc.people().json({ offset: true })) {
    // A person's name without its title ("President Lincoln" answers as "Lincoln"); a title alone is no name.
    const ws = m.text.split(" "), skip = ws.findIndex(w => !titles.test(w.replace(/[,.]$/, "")) || w === ws[ws.length - 1]);
    if (ws.slice(skip).some(w => /^[A-Z]/.test(w)) && !titles.test(ws[ws.length - 1].replace(/[,.]$/, ""))) {
      const cut = ws.slice(0, skip).join(" ").length + (skip > 0 ? 1 : 0);
      add("person", m.offset.start + cut, m.offset.length - cut);
    }
  }
  for (const m of doc.organizations().json({ offset: true })) add("organization", m.offset.start, m.offset.length);
  for (const m of doc.places().json({ offset: true })) add("place", m.offset.start, m.offset.length);
  for (const m of sentence.matchAll(datePattern)) add(/^\d+$/.test(m[0]) ? "year" : "date", m.index, m[0].length);
  for (const m of doc.money().json({ offset: true })) add("money", m.offset.start, m.offset.length);
  for (const m of sentence.matchAll(/\b\d+(?:\.\d+)? percent\b|\b\d+(?:\.\d+)?%/g)) add("percent", m.index, m[0].length);
  // A count: a number before a plural noun ("thirty men", "16 years"); the noun goes into "how many".
  for (const m of doc.match("#Value+ #Adjective? #Plural").json({ offset: true, terms: { offset: true } })) {
    const value = m.terms.filter(t => t.tags.includes("Value")), noun = m.terms.slice(value.length).map(t => t.text).join(" ");
    if (value.length === 0 || value.length !== m.terms.findIndex(t => !t.tags.includes("Value"))) continue;
    const start = value[0].offset.start, end = value[value.length - 1].offset.start + value[value.length - 1].offset.length;
    const text = sentence.slice(start, end);
    if (!/^[\d,.]+$|^[a-z-]+(?: [a-z-]+)?$/i.test(text) || /^(one|a|an)$/i.test(text) || /^1[5-9]\d\d$|^20\d\d$/.test(text)) continue;
    if (!/^[a-z -]+$/.test(noun.toLowerCase()) || noun.split(" ").length > 2) continue;
    add("count:" + noun.toLowerCase(), start, end - start);
  }
  for (const m of doc.nouns().json({ offset: true })) {
    const t = trimmed(sentence, m.offset.start, m.offset.length);
    if (/^(?:i|we|you|he|she|it|they|me|us|him|her|them|this|that|these|those|there|which|who|what|something|nothing|anything|everything|one|all)$/i.test(t.text)) continue;
    if (content(t.text).length === 0 || t.text.split(" ").length > 5) continue;
    add("thing", m.offset.start, m.offset.length);
  }
  return found;
}

// ---- questions: the answer's clause, the answer replaced by a question word ----
// A subject answer gives "Who appointed Stanton?"; an object or adverbial answer after a plain subject and verb is
// fronted with the verb inverted ("When was the bill passed?", "What did we restructure?"); any other keeps the
// question word where the answer stood ("In 1861, Lincoln appointed whom as Secretary of War?"), Lewis et al.'s
// cloze with its blank filled by the question word.
const auxiliaries = new Set("is are was were am will would shall should can could may might must has have had do does did".split(" "));
const subjectTags = ["Determiner", "Adjective", "Noun", "Pronoun", "Possessive", "Value", "ProperNoun"];
const terms = text => nlp(text).json({ terms: true }).flatMap(s => s.terms);
function question(sentence, a) {
  // The clause around the answer ends at ; : a dash or a sentence end inside the line; a long one is cut at commas.
  const breaks = /[;:]|--| - |[.!?]["')]* (?=["'(]?[A-Z])/g;
  let from = 0, to = sentence.length;
  for (const m of sentence.matchAll(breaks)) {
    if (m.index + m[0].length <= a.start) from = m.index + m[0].length;
    else if (m.index >= a.end) { to = Math.min(to, m.index); break; }
    else return null;
  }
  if (words(sentence.slice(from, to)) > 18) {
    const before = sentence.lastIndexOf(",", a.start), after = sentence.indexOf(",", a.end);
    if (before >= from && words(sentence.slice(before + 1, to)) >= 6) from = before + 1;
    if (after >= 0 && after < to && words(sentence.slice(from, after)) >= 6) to = after;
  }
  if (words(sentence.slice(from, to)) > 24) return null;
  const pre = sentence.slice(from, a.start).trim().split(" ").filter(w => w !== "");
  const post = sentence.slice(a.end, to).trim().replace(/[.!?"')]+$/, "").split(" ").filter(w => w !== "");
  let wh, inSitu;
  const last = pre[pre.length - 1] ?? "";
  switch (a.type) {
    case "person": wh = "who"; inSitu = pre.length > 0 && !/,$/.test(last) ? "whom" : "who"; break;
    case "place": if (locatives.test(last)) { pre.pop(); wh = inSitu = "where"; } else wh = inSitu = "what place"; break;
    case "organization": wh = inSitu = "what organization"; break;
    case "year": if (/^(in|during)$/i.test(last)) { pre.pop(); wh = inSitu = "in what year"; } else wh = inSitu = "what year"; break;
    case "date": if (/^(in|on|during)$/i.test(last)) { pre.pop(); wh = inSitu = "when"; } else wh = inSitu = "what date"; break;
    case "money": wh = inSitu = "how much"; break;
    case "percent": wh = inSitu = "what percentage"; break;
    case "thing": wh = inSitu = "what"; break;
    default: wh = inSitu = "how many " + a.type.slice(6); post.splice(0, a.type.slice(6).split(" ").length); break;
  }
  if (pre.length + post.length < 3) return null;
  while (pre.length > 1 && /^(and|but|or|so|yet|then)$/i.test(pre[0])) pre.shift();   // "but the capital is Canberra"
  if (/^(the|a|an)$/i.test(pre[pre.length - 1] ?? "") && !/^(who|whom)$/.test(wh)) pre.pop();   // "the United States" asks "what place"
  const clean = ws => ws.join(" ").replace(/^[,"'(]+\s*|[\s,"']+$/g, "").replace(/\s+/g, " ").trim();
  // A clause's first word loses its capital unless it is a name (compromise does not know every name; the models
  // trained here are uncased anyway).
  const lowerFirst = (ws, t) => { if (ws.length > 0 && t && !t.tags.includes("ProperNoun") && ws[0] !== "I") ws[0] = ws[0].toLowerCase(); return ws; };
  let q = null;
  const postTerms = post.length > 0 ? terms(post.join(" ")) : [];
  const introduction = pre.length === 0 || /,$/.test(last) || (pre.length === 1 && /^(and|but|then|so)$/i.test(last));
  if (introduction && postTerms.length > 0 && postTerms.slice(0, 2).some(t => t.tags.includes("Verb"))) {
    // The answer is the clause's subject.
    if (a.type === "thing" || a.type.startsWith("count:") || a.type === "money" || a.type === "percent" || a.type === "person" || a.type === "organization")
      q = `${wh} ${clean(post)}${pre.length > 1 ? " " + clean(pre.filter(w => !/^(and|but|then|so)$/i.test(w))) : ""}`;
  } else if (pre.length > 0) {
    const t = terms(pre.join(" "));
    let i = 0;
    while (i < t.length && !t[i].tags.includes("Verb") && subjectTags.some(x => t[i].tags.includes(x))) i++;
    let j = i;
    while (j < t.length && (t[j].tags.includes("Auxiliary") || t[j].tags.includes("Modal"))) j++;
    const adverb = j < t.length && t[j].tags.includes("Adverb") ? 1 : 0;
    const v = j + adverb;
    const simple = t.length === pre.length && i >= 1 && i <= 5;
    if (simple && v < t.length && t[v].tags.includes("Verb") && t.slice(v + 1).every(x => !x.tags.includes("Verb"))) {
      const subject = lowerFirst(pre.slice(0, i), t[0]), rest = pre.slice(v + 1);
      const auxs = pre.slice(i, j).map(w => w.toLowerCase()), adv = pre.slice(j, j + adverb), verb = pre[v];
      if (auxs.length > 0) q = `${wh} ${auxs[0]} ${clean([...subject, ...auxs.slice(1), ...adv, verb, ...rest, ...post])}`;
      else if (auxiliaries.has(verb.toLowerCase())) q = `${wh} ${verb.toLowerCase()} ${clean([...subject, ...adv, ...rest, ...post])}`;
      else {
        // compromise conjugates a verb better with a subject before it ("renewed" alone reads as an adjective).
        const infinitive = nlp(`they ${verb}`).verbs().toInfinitive().text().toLowerCase().replace(/^they /, "");
        const tense = t[v].tags.includes("PastTense") ? "did" : /s$/.test(verb) && t[v].tags.includes("PresentTense") ? "does" : "do";
        if (/^[a-z-]+$/.test(infinitive) && (infinitive !== verb.toLowerCase() || !t[v].tags.includes("PastTense"))) q = `${wh} ${tense} ${clean([...subject, ...adv, infinitive, ...rest, ...post])}`;
      }
    }
    if (q === null && a.type !== "thing") q = `${clean(lowerFirst([...pre], t[0]))} ${inSitu}${post.length > 0 ? " " + clean(post) : ""}`;
  }
  if (q === null) return null;
  q = q.replace(/ ,/g, ",").replace(/,+$/, "").replace(/"/g, "").replace(/\s+/g, " ").trim();
  if (!terms(q).some(x => x.tags.includes("Verb"))) return null;   // a salutation or a heading is no question
  if (q.toLowerCase().includes(a.text.toLowerCase()) || q.split(" ").length < 4 || /[.!?]/.test(q.slice(0, -1).replace(/\b(?:[A-Z][a-z]{0,3}|[A-Z])\./g, ""))) return null;
  return q[0].toUpperCase() + q.slice(1) + "?";
}

// ---- building a split ----
function build(split, seed) {
  const rng = generator(seed);
  // Passages of each source, each with its document, sentences and answers (found lazily: compromise is slow).
  const bySource = sources.map(src => {
    const list = [];
    src.documents.forEach((doc, d) => {
      if (splitOf(d) !== split) return;
      passages(doc).forEach((sentences, p) => list.push({ source: src.name, document: d, index: p, sentences }));
    });
    return { ...src, passages: list };
  });
  // A sentence that a later split's documents also hold (the speeches repeat themselves) keeps its passage out of
  // this split, so that no context of dev or test is trained on; the questions after such a passage are the same.
  const later = split === "train" ? ["dev", "test"] : split === "dev" ? ["test"] : [];
  const heldOut = new Set(sources.flatMap(src => src.documents.filter((_, d) => later.includes(splitOf(d))).flat()));
  const cache = new Map();
  const answersOf = s => { if (!cache.has(s)) cache.set(s, answers(s)); return cache.get(s); };
  const contextOf = p => p.sentences.join(" ");
  const all = bySource.flatMap(s => s.passages);
  const byDocument = new Map();
  for (const p of all) {
    const key = `${p.source}/${p.document}`;
    if (!byDocument.has(key)) byDocument.set(key, []);
    byDocument.get(key).push(p);
  }
  // The index for retrieval: the sentences of the split that hold each word (lowercased letters and digits).
  const wordIndex = new Map();
  for (const p of all) p.sentences.forEach((s, k) => {
    for (const w of new Set(s.toLowerCase().match(/[a-z0-9]+/g) ?? [])) {
      if (!wordIndex.has(w)) wordIndex.set(w, []);
      wordIndex.get(w).push({ passage: p, sentence: k });
    }
  });
  // Another passage's sentence that holds the answer as a whole phrase and at least two more of the content words of
  // the answer's sentence; the one with the most, or null.
  const retrieve = (p, s, a) => {
    const keys = a.text.toLowerCase().match(/[a-z0-9]+/g) ?? [];
    if (keys.length === 0) return null;
    const rarest = keys.reduce((x, y) => (wordIndex.get(x)?.length ?? 0) <= (wordIndex.get(y)?.length ?? 0) ? x : y);
    const own = new Set(content(s)), answerWords = new Set(content(a.text));
    const phrase = new RegExp(`(?<![\\p{L}\\p{N}-])${a.text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?![\\p{L}\\p{N}-])`, "u");
    let best = null, bestScore = 1;
    for (const e of (wordIndex.get(rarest) ?? []).slice(0, 2000)) {
      if (e.passage.document === p.document && e.passage.source === p.source) continue;
      const other = e.passage.sentences[e.sentence];
      const m = phrase.exec(other);
      if (m === null) continue;
      const shared = new Set(content(other).filter(w => own.has(w) && !answerWords.has(w))).size;
      if (shared > bestScore) { best = { sentence: other, answer: { type: a.type, start: m.index, end: m.index + a.text.length, text: a.text } }; bestScore = shared; }
    }
    return best;
  };
  const paragraphs = new Map();   // context -> { context, qas }
  const ask = (p, context, qa) => {
    if (p.sentences.some(x => heldOut.has(x))) { stats.heldOut++; return false; }
    if (!paragraphs.has(context)) paragraphs.set(context, { context, qas: [], order: paragraphs.size, source: p.source });
    const para = paragraphs.get(context);
    if (para.qas.some(x => x.question === qa.question)) return false;
    para.qas.push(qa);
    return true;
  };
  const stats = { answerable: 0, retrieved: 0, neighbour: 0, swapped: 0, unrelated: 0, heldOut: 0, types: {} };
  let made = 0, attempts = 0;
  const target = sizes[split];
  while (made < target && attempts < target * 20) {
    attempts++;
    // A source by its share, then a passage of it.
    const r = rng.next();
    const src = r < sources[0].share ? bySource[0] : r < sources[0].share + sources[1].share ? bySource[1] : bySource[2];
    const p = rng.pick(src.passages);
    const k = rng.int(p.sentences.length), s = p.sentences[k];
    const cands = answersOf(s);
    if (cands.length === 0) continue;
    // Names, dates and numbers are preferred to noun phrases, which are many and often vague.
    const named = cands.filter(c => c.type !== "thing");
    const a = named.length > 0 && rng.next() < 0.8 ? rng.pick(named) : rng.pick(cands);
    if (a.type === "thing" && rng.next() < 0.7) continue;
    const q = question(s, a);
    if (q === null) continue;
    const context = contextOf(p), offset = p.sentences.slice(0, k).reduce((n, x) => n + x.length + 1, 0);
    const kind = rng.next();
    const id = `${split}-${String(made).padStart(5, "0")}`;
    const typeKey = a.type.startsWith("count:") ? "count" : a.type;
    if (kind < 0.67) {
      // Answerable. Where another passage has a sentence with the same name and at least two more of the same
      // content words, the question is asked from that sentence instead (Fabbri et al.): it then says the
      // same thing in other words, not as a copy of the context.
      let text = q, retrieved = false;
      if (/^(person|place|organization|date|year)$/.test(a.type) && rng.next() < 0.5) {
        const best = retrieve(p, s, a);
        const other = best === null ? null : question(best.sentence, best.answer);
        if (other !== null) { text = other; retrieved = true; }
      }
      if (!ask(p, context, { id, question: text, is_impossible: false, answers: [{ text: a.text, answer_start: offset + a.start }] })) continue;
      stats.answerable++;
      if (retrieved) stats.retrieved++;
    } else {
      // Unanswerable: (1) the question over a neighbouring passage of the same document that lacks the answer,
      // (2) a name in the question swapped for another of its type that the passage never mentions, or (3) the
      // question over a passage of another document.
      const how = rng.next();
      let target2 = null, text = q, mode;
      if (how < 0.45) {
        const neighbours = byDocument.get(`${p.source}/${p.document}`).filter(x => Math.abs(x.index - p.index) <= 3 && x !== p
          && !contextOf(x).toLowerCase().includes(a.text.toLowerCase()));
        if (neighbours.length === 0) continue;
        target2 = rng.pick(neighbours); mode = "neighbour";
      } else if (how < 0.8) {
        const names = cands.filter(c => c !== a && /^(person|place|organization)$/.test(c.type) && q.includes(c.text));
        if (names.length === 0) continue;
        const swap = rng.pick(names);
        // A replacement of the same type from elsewhere in the split.
        let replacement = null;
        for (let tries = 0; tries < 20 && replacement === null; tries++) {
          const other = rng.pick(all);
          const o = other.sentences.flatMap(answersOf).filter(c => c.type === swap.type && c.text !== swap.text);
          if (o.length > 0) replacement = rng.pick(o).text;
        }
        if (replacement === null || context.toLowerCase().includes(replacement.toLowerCase())) continue;
        text = q.replace(swap.text, replacement);
        target2 = p; mode = "swapped";
      } else {
        const other = rng.pick(all);
        if (other.document === p.document && other.source === p.source) continue;
        if (contextOf(other).toLowerCase().includes(a.text.toLowerCase())) continue;
        target2 = other; mode = "unrelated";
      }
      if (!ask(target2, contextOf(target2), { id, question: text, is_impossible: true, answers: [] })) continue;
      stats[mode]++;
    }
    stats.types[typeKey] = (stats.types[typeKey] || 0) + 1;
    made++;
  }
  if (made < target) throw new Error(`${split}: only ${made} questions after ${attempts} attempts`);
  // Paragraphs in the order they were first asked about; every answer is checked against its context.
  const data = [...paragraphs.values()].sort((x, y) => x.order - y.order).map((para, i) => {
    for (const qa of para.qas) for (const ans of qa.answers)
      if (para.context.substr(ans.answer_start, ans.text.length) !== ans.text) throw new Error(`bad offset in ${qa.id}`);
    return { title: `${split}-${para.source}-${i}`, paragraphs: [{ context: para.context, qas: para.qas }] };
  });
  return { data, stats };
}

// All three splits are built before any is written: a split that fails leaves the committed files as they were.
const built = [["train", 1], ["dev", 2], ["test", 3]].map(([split, seed]) => ({ split, ...build(split, seed) }));
fs.mkdirSync(dest, { recursive: true });
for (const { split, data, stats } of built) {
  const json = JSON.stringify({ version: "v2.0", data });
  fs.writeFileSync(path.join(dest, split + ".json.gz"), zlib.gzipSync(json, { level: 9 }));
  const questions = data.flatMap(d => d.paragraphs[0].qas);
  console.log(`${split}: ${data.length} contexts, ${questions.length} questions, ${questions.filter(q => q.is_impossible).length} unanswerable; ${JSON.stringify(stats)}`);
}
JS
