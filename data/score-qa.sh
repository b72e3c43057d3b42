#!/usr/bin/env bash
# Exact match and F1 of a fine-tuned QA model on SQuAD v2.0 JSON, overall and by kind of question (answerable or
# not; who, when, where, what, how many/much, which), scored as the official SQuAD v2.0 script scores them (answers
# normalised: lower case, no punctuation, no articles; an empty prediction is right for an unanswerable question).
# `nbert evaluate --task qa` gives the overall scores only. Predictions come from
# `nbert qa --handle-impossible-answer` with the given --max-seq-len, so the overall figures can differ slightly from
# nbert evaluate's.
# Usage: data/score-qa.sh MODEL DATA.json[.gz] [MAX_SEQ_LEN] [--json]   ($NBERT overrides the nbert command line.)
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: data/score-qa.sh MODEL DATA.json[.gz] [MAX_SEQ_LEN] [--json]" >&2; exit 2; }
model=$1 data=$2 length=${3:-384} json=${4:-}
root=$(cd "$(dirname "$0")/.." && pwd)
nbert=${NBERT:-dotnet run --project "$root/src/NBert.Cli" -c Release --}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
node -e '
const fs = require("fs"), zlib = require("zlib");
const bytes = fs.readFileSync(process.argv[1]);
const squad = JSON.parse(process.argv[1].endsWith(".gz") ? zlib.gunzipSync(bytes).toString("utf8") : bytes.toString("utf8"));
const qas = squad.data.flatMap(a => a.paragraphs.flatMap(p => p.qas.map(q => ({ question: q.question, context: p.context, answers: q.answers.map(x => x.text) }))));
fs.writeFileSync(process.argv[2], qas.map(q => JSON.stringify({ question: q.question, context: q.context })).join("\n") + "\n");
fs.writeFileSync(process.argv[3], qas.map(q => JSON.stringify(q)).join("\n") + "\n");' "$data" "$tmp/input.jsonl" "$tmp/gold.jsonl"
$nbert qa --model "$model" --input "$tmp/input.jsonl" --json --handle-impossible-answer --max-seq-len "$length" > "$tmp/predicted.jsonl" 2> "$tmp/stderr" \
  || { cat "$tmp/stderr" >&2; exit 1; }
node - "$tmp/gold.jsonl" "$tmp/predicted.jsonl" "$json" <<'JS'
const fs = require("fs");
const [goldFile, predictedFile, json] = process.argv.slice(2);
const gold = fs.readFileSync(goldFile, "utf8").trim().split("\n").map(l => JSON.parse(l));
const predicted = fs.readFileSync(predictedFile, "utf8").trim().split("\n").map(l => JSON.parse(l));
if (gold.length !== predicted.length) throw new Error(`${gold.length} questions but ${predicted.length} predictions`);
// The official script's normalisation and token F1.
const normalize = s => s.toLowerCase().replace(/[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g, "").replace(/\b(a|an|the)\b/g, " ").split(/\s+/).filter(w => w).join(" ");
function f1(prediction, truth) {
  const p = normalize(prediction).split(" ").filter(w => w), t = normalize(truth).split(" ").filter(w => w);
  if (p.length === 0 || t.length === 0) return p.length === t.length ? 1 : 0;
  const left = new Map();
  for (const w of t) left.set(w, (left.get(w) || 0) + 1);
  let same = 0;
  for (const w of p) if (left.get(w) > 0) { same++; left.set(w, left.get(w) - 1); }
  if (same === 0) return 0;
  const precision = same / p.length, recall = same / t.length;
  return 2 * precision * recall / (precision + recall);
}
const groups = {};
const add = (name, em, f) => { groups[name] ??= { n: 0, em: 0, f1: 0 }; groups[name].n++; groups[name].em += em; groups[name].f1 += f; };
gold.forEach((g, i) => {
  const p = predicted[i], answer = (Array.isArray(p) ? p[0] : p)?.answer ?? "";
  const truths = g.answers.length > 0 ? g.answers : [""];
  const em = Math.max(...truths.map(t => normalize(t) === normalize(answer) ? 1 : 0)), f = Math.max(...truths.map(t => f1(answer, t)));
  const wh = /^how (many|much|long|far|old|large|big)\b/i.test(g.question) ? "how many/much/long" : (/^(who|whom|when|where|what|which|how)\b/i.exec(g.question)?.[1].toLowerCase() ?? "other")
    .replace(/^whom$/, "who");
  const firstWord = /^(in|on|at|for|from) (what|which)\b/i.test(g.question) ? /^\w+ (\w+)/.exec(g.question)[1].toLowerCase() : null;
  add("all", em, f);
  add(g.answers.length > 0 ? "answerable" : "unanswerable", em, f);
  if (g.answers.length > 0) add("answerable: " + (firstWord ?? wh), em, f);
});
const result = Object.fromEntries(Object.entries(groups).map(([k, v]) => [k, { questions: v.n, exact_match: 100 * v.em / v.n, f1: 100 * v.f1 / v.n }]));
if (json === "--json") console.log(JSON.stringify(result));
else {
  console.log("questions            n   exact     f1");
  for (const [k, v] of Object.entries(result)) console.log(`${k.padEnd(28)} ${String(v.questions).padStart(4)} ${v.exact_match.toFixed(1).padStart(6)} ${v.f1.toFixed(1).padStart(6)}`);
}
JS
