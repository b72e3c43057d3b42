#!/usr/bin/env bash
# Entity precision, recall and F1 per type (and overall) of a fine-tuned NER model on a JSON lines file of
# {"tokens", "tags"} (IOB2), as seqeval scores them: an entity counts when its type and its first and last tokens
# are right. `nbert evaluate --task ner` gives the overall scores only; this gives the per-type ones that
# docs/results.md reports. Predictions come from `nbert ner --aggregation first` on the tokens joined by spaces
# (a token takes the type of the predicted entity its first character falls in), so the overall F1 can differ
# slightly from nbert evaluate's, which labels each token's first word piece directly.
# Usage: data/score-ner.sh MODEL DATA.jsonl[.gz] [--json]   ($NBERT overrides the nbert command line.)
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: data/score-ner.sh MODEL DATA.jsonl[.gz] [--json]" >&2; exit 2; }
model=$1 data=$2 json=${3:-}
root=$(cd "$(dirname "$0")/.." && pwd)
nbert=${NBERT:-dotnet run --project "$root/src/NBert.Cli" -c Release --}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
node -e '
const fs = require("fs"), zlib = require("zlib");
const bytes = fs.readFileSync(process.argv[1]);
const text = process.argv[1].endsWith(".gz") ? zlib.gunzipSync(bytes).toString("utf8") : bytes.toString("utf8");
const lines = text.split("\n").filter(l => l.trim() !== "");
fs.writeFileSync(process.argv[2], lines.map(l => JSON.stringify({ text: JSON.parse(l).tokens.join(" ") })).join("\n") + "\n");
fs.writeFileSync(process.argv[3], lines.join("\n") + "\n");' "$data" "$tmp/input.jsonl" "$tmp/gold.jsonl"
$nbert ner --model "$model" --input "$tmp/input.jsonl" --json --aggregation first > "$tmp/predicted.jsonl" 2> "$tmp/stderr" \
  || { cat "$tmp/stderr" >&2; exit 1; }
node - "$tmp/gold.jsonl" "$tmp/predicted.jsonl" "$json" <<'JS'
const fs = require("fs");
const [goldFile, predictedFile, json] = process.argv.slice(2);
const gold = fs.readFileSync(goldFile, "utf8").trim().split("\n").map(l => JSON.parse(l));
const predicted = fs.readFileSync(predictedFile, "utf8").trim().split("\n").map(l => JSON.parse(l));
if (gold.length !== predicted.length) throw new Error(`${gold.length} sentences but ${predicted.length} predictions`);
// Entities of an IOB2 sequence as "type start end" (seqeval's default mode: an I- after O or another type starts one).
function entities(tags) {
  const out = [];
  let type = null, start = -1;
  tags.forEach((tag, i) => {
    const [prefix, t] = tag === "O" ? ["O", null] : tag.split("-");
    if (type !== null && (prefix !== "I" || t !== type)) { out.push(`${type} ${start} ${i - 1}`); type = null; }
    if (prefix !== "O" && type === null) { type = t; start = i; }
  });
  if (type !== null) out.push(`${type} ${start} ${tags.length - 1}`);
  return out;
}
const counts = {};
const count = (type, key) => { counts[type] ??= { gold: 0, predicted: 0, correct: 0 }; counts[type][key]++; };
gold.forEach((g, n) => {
  // Token i starts at this character of the text (tokens joined by single spaces).
  const starts = [];
  g.tokens.reduce((at, token) => { starts.push(at); return at + token.length + 1; }, 0);
  const tags = g.tokens.map(() => "O");
  for (const e of predicted[n]) {
    const type = e.entity_group ?? e.entity;
    let first = true;
    starts.forEach((s, i) => { if (s >= e.start && s < e.end) { tags[i] = (first ? "B-" : "I-") + type; first = false; } });
  }
  const want = new Set(entities(g.tags)), got = entities(tags);
  for (const e of want) count(e.split(" ")[0], "gold");
  for (const e of got) { count(e.split(" ")[0], "predicted"); if (want.has(e)) count(e.split(" ")[0], "correct"); }
});
const score = c => {
  const p = c.predicted ? c.correct / c.predicted : 0, r = c.gold ? c.correct / c.gold : 0;
  return { precision: p, recall: r, f1: p + r ? 2 * p * r / (p + r) : 0, support: c.gold };
};
const total = Object.values(counts).reduce((a, c) => ({ gold: a.gold + c.gold, predicted: a.predicted + c.predicted, correct: a.correct + c.correct }),
  { gold: 0, predicted: 0, correct: 0 });
const result = { overall: score(total) };
for (const type of Object.keys(counts).sort()) result[type] = score(counts[type]);
if (json === "--json") console.log(JSON.stringify(result));
else {
  console.log("type     precision  recall     f1  support");
  for (const [type, s] of Object.entries(result))
    console.log(`${type.padEnd(8)} ${s.precision.toFixed(3).padStart(9)} ${s.recall.toFixed(3).padStart(7)} ${s.f1.toFixed(3).padStart(6)} ${String(s.support).padStart(8)}`);
}
JS
