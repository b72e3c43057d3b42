#!/usr/bin/env bash
# Builds data/qa, a SYNTHETIC extractive QA set in the SQuAD v2.0 format: real paragraphs of the State of the
# Union addresses (data/corpus, built by build-corpus.sh) with one or two templated facts about a fictional
# person woven in, and questions about those facts; close to half of the questions cannot be answered from
# their paragraph. Fictional names, places, jobs and companies come from npm @faker-js/faker 10.6.0 (seeded).
# Needs npm and node; the output is committed. See data/DATA.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund @faker-js/faker@10.6.0 >/dev/null)
cp "$here/corpus/sotu.train.txt.gz" "$tmp/"
cd "$tmp" && node --input-type=module - "$here/qa" <<'JS'
import fs from "fs";
import path from "path";
import zlib from "zlib";
import { faker } from "@faker-js/faker";
const dest = process.argv[2];

// Documents of the training part of the SOTU corpus, in file order; document index % 10 == 0 gives test
// paragraphs, == 1 dev, the rest train, so no paragraph is in two splits.
const documents = zlib.gunzipSync(fs.readFileSync("sotu.train.txt.gz")).toString("utf8").split("\n\n")
  .map(d => d.split("\n").filter(s => s.trim() !== ""));
const sizes = { train: 400, dev: 100, test: 100 };   // paragraphs; three questions each

// Facts, each with the questions it answers. A question is asked about a fact of the paragraph (answerable),
// or about a kind of fact the paragraph does not state, or about someone who is not in it (unanswerable).
const factKinds = [
  { key: "born", fact: f => [`${f.name} was born in `, f.city, ` in `, f.year, `.`],
    questions: [[f => `Where was ${f.name} born?`, 1], [f => `In what year was ${f.name} born?`, 3], [f => `When was ${f.name} born?`, 3]] },
  { key: "job", fact: f => [`${f.name} worked as a `, f.job, ` at `, f.company, ` for many years.`],
    questions: [[f => `What was ${f.name}'s job?`, 1], [f => `Which company did ${f.name} work for?`, 3], [f => `Where did ${f.name} work?`, 3]] },
  { key: "moved", fact: f => [`In `, f.moveYear, `, ${f.name} moved to `, f.moveCity, `.`],
    questions: [[f => `Where did ${f.name} move to?`, 3], [f => `When did ${f.name} move to ${f.moveCity}?`, 1]] },
];

function person() {
  return {
    name: `${faker.person.firstName()} ${faker.person.lastName()}`, city: faker.location.city(), year: String(faker.number.int({ min: 1901, max: 1999 })),
    job: faker.person.jobTitle().toLowerCase(), company: faker.company.name(), moveYear: String(faker.number.int({ min: 2000, max: 2020 })),
    moveCity: faker.location.city(),
  };
}

function build(split, seed) {
  faker.seed(seed);
  const pool = documents.filter((_, d) => (d % 10 === 0 ? "test" : d % 10 === 1 ? "dev" : "train") === split);
  const data = [];
  for (let p = 0; p < sizes[split]; p++) {
    const doc = pool[faker.number.int({ max: pool.length - 1 })];
    const length = faker.number.int({ min: 3, max: 5 });
    const first = faker.number.int({ max: Math.max(0, doc.length - length) });
    const sentences = doc.slice(first, first + length);
    const f = person();
    const stated = faker.helpers.arrayElements(factKinds, faker.number.int({ min: 1, max: 2 }));
    // Each fact goes into the paragraph at a random place; its parts give the answers' character offsets.
    const inserted = stated.map(k => ({ kind: k, at: faker.number.int({ max: sentences.length }) }))
      .sort((a, b) => a.at - b.at);
    let context = "", answers = {};
    for (let s = 0; s <= sentences.length; s++) {
      for (const ins of inserted.filter(x => x.at === s)) {
        const parts = ins.kind.fact(f);
        if (context !== "") context += " ";
        const starts = [];
        for (const part of parts) { starts.push(context.length); context += part; }
        answers[ins.kind.key] = { parts, starts };
      }
      if (s < sentences.length) context += (context === "" ? "" : " ") + sentences[s];
    }
    const qas = [];
    for (let q = 0; q < 3; q++) {
      const roll = faker.number.int({ max: 2 });
      const kind = roll === 0 ? faker.helpers.arrayElement(factKinds.filter(k => !answers[k.key])) : faker.helpers.arrayElement(stated);
      if (kind === undefined || (roll === 0 && answers[kind.key])) { q--; continue; }
      const [question, part] = faker.helpers.arrayElement(kind.questions);
      let text = question(f), impossible = !answers[kind.key];
      if (!impossible && faker.number.int({ max: 5 }) === 0) {
        // Someone else: the same question about a person the paragraph never mentions.
        const other = person();
        text = question({ ...f, name: other.name });
        impossible = true;
      }
      if (qas.some(x => x.question === text)) { q--; continue; }
      const a = answers[kind.key];
      qas.push({
        id: `${split}-${p}-${q}`, question: text, is_impossible: impossible,
        answers: impossible ? [] : [{ text: a.parts[part], answer_start: a.starts[part] }],
      });
    }
    for (const qa of qas) for (const a of qa.answers)
      if (context.substr(a.answer_start, a.text.length) !== a.text) throw new Error(`bad offset in ${qa.id}`);
    data.push({ title: `${split}-${p}`, paragraphs: [{ context, qas }] });
  }
  return data;
}

fs.mkdirSync(dest, { recursive: true });
for (const [split, seed] of [["train", 1], ["dev", 2], ["test", 3]]) {
  const data = build(split, seed);
  const questions = data.flatMap(d => d.paragraphs[0].qas);
  const json = JSON.stringify({ version: "v2.0", data });
  fs.writeFileSync(path.join(dest, split + ".json.gz"), zlib.gzipSync(json, { level: 9 }));
  console.log(`${split}: ${data.length} paragraphs, ${questions.length} questions, ${questions.filter(q => q.is_impossible).length} unanswerable`);
}
JS
