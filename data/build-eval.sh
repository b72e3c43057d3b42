#!/usr/bin/env bash
# Builds data/eval, the HAND-WRITTEN evaluation sets, from their sources in the same folder: qa.txt (passages and
# questions written for NBert) becomes qa.json (SQuAD v2.0, answer offsets computed here), and ner.txt (sentences
# with [TYPE words] markup) becomes ner.jsonl (tokens and IOB2 tags). Needs node only; a rebuild writes the same
# bytes. Nothing here is ever used for training: see data/DATA.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
node - "$here/eval" <<'JS'
const fs = require("fs"), path = require("path");
const dir = process.argv[2];
const lines = name => fs.readFileSync(path.join(dir, name), "utf8").split("\n")
  .map((text, i) => ({ text: text.trimEnd(), where: `${name}:${i + 1}` })).filter(l => l.text !== "" && !l.text.startsWith("# "));
const fail = (where, message) => { throw new Error(`${where}: ${message}`); };

// ---- QA: "## title", the context line, then "Q: question | answer" lines ("answer @N": its N-th occurrence; "-": none) ----
const data = [];
let current = null, count = 0, impossible = 0;
for (const { text, where } of lines("qa.txt")) {
  if (text.startsWith("## ")) { current = { title: text.slice(3), paragraphs: [{ context: null, qas: [] }] }; data.push(current); continue; }
  if (current === null) fail(where, "text before the first ## title");
  const paragraph = current.paragraphs[0];
  if (!text.startsWith("Q: ")) {
    if (paragraph.context !== null) fail(where, "a second context line (a question must start with 'Q: ')");
    paragraph.context = text;
    continue;
  }
  if (paragraph.context === null) fail(where, "a question before its context");
  const [question, answer, ...extra] = text.slice(3).split(" | ");
  if (answer === undefined || extra.length > 0 || !question.endsWith("?")) fail(where, "expected 'Q: question? | answer'");
  const id = `${current.title}-${paragraph.qas.length + 1}`;
  if (answer === "-") {
    paragraph.qas.push({ id, question, is_impossible: true, answers: [] });
    impossible++;
  } else {
    const m = /^(.*?)(?: @(\d+))?$/.exec(answer), span = m[1], nth = m[2] ? +m[2] : 1;
    let start = -1;
    for (let k = 0; k < nth; k++) { start = paragraph.context.indexOf(span, start + 1); if (start < 0) fail(where, `"${span}" is not in the context ${nth} times`); }
    paragraph.qas.push({ id, question, is_impossible: false, answers: [{ text: span, answer_start: start }] });
  }
  count++;
}
for (const d of data) if (d.paragraphs[0].context === null || d.paragraphs[0].qas.length === 0) fail("qa.txt", `passage ${d.title} has no context or no questions`);
fs.writeFileSync(path.join(dir, "qa.json"), JSON.stringify({ version: "v2.0", data }, null, 1) + "\n");
console.log(`qa.json: ${data.length} passages, ${count} questions, ${impossible} unanswerable`);

// ---- NER: tokens split at spaces; "[TYPE" opens an entity, a token ending in "]" closes it ----
const out = [], entities = {};
for (const { text, where } of lines("ner.txt")) {
  const tokens = [], tags = [];
  let type = null, first = false;
  for (const raw of text.split(" ")) {
    const open = /^\[(PER|LOC|ORG|MISC)$/.exec(raw);
    if (open) { if (type !== null) fail(where, "an entity inside an entity"); type = open[1]; first = true; entities[type] = (entities[type] || 0) + 1; continue; }
    if (raw.startsWith("[")) fail(where, `unknown entity type in "${raw}"`);
    let token = raw, close = false;
    if (type !== null && raw.length > 1 && raw.endsWith("]")) { token = raw.slice(0, -1); close = true; }
    tokens.push(token);
    tags.push(type === null ? "O" : (first ? "B-" : "I-") + type);
    first = false;
    if (close) type = null;
  }
  if (type !== null) fail(where, "an entity is not closed");
  out.push(JSON.stringify({ tokens, tags }));
}
fs.writeFileSync(path.join(dir, "ner.jsonl"), out.join("\n") + "\n");
console.log(`ner.jsonl: ${out.length} sentences, entities ${JSON.stringify(entities)}`);
JS
