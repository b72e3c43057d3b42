#!/usr/bin/env bash
# Builds data/sentiment from the UCI Sentiment Labelled Sentences (Kotzias et al., 2015) as shipped in npm
# package sentiment 5.0.2 (test/fixtures/{amazon,imdb,yelp}.json). Needs npm and node; the output is committed,
# so nothing else ever needs them. See data/DATA.md for the split rule.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent sentiment@5.0.2 >/dev/null && tar xzf sentiment-5.0.2.tgz)
node - "$tmp/package/test/fixtures" "$here/sentiment" <<'JS'
const fs = require("fs"), path = require("path"), zlib = require("zlib");
const [src, dest] = process.argv.slice(2);
const splits = { train: [], dev: [], test: [] };
for (const domain of ["amazon", "imdb", "yelp"]) {
  // Empty entries (each file ends with one) are dropped; the split counts the remaining entries in file order.
  const rows = JSON.parse(fs.readFileSync(path.join(src, domain + ".json"), "utf8"))
    .filter(r => typeof r.text === "string" && r.text.trim() !== "" && (r.class === 0 || r.class === 1));
  rows.forEach((r, i) => {
    const split = i % 10 === 0 ? "test" : i % 10 === 1 ? "dev" : "train";
    splits[split].push(JSON.stringify({ text: r.text.trim(), label: r.class, domain }));
  });
}
fs.mkdirSync(dest, { recursive: true });
for (const [name, lines] of Object.entries(splits)) {
  // gzip with a fixed header (no name, no time), so a rebuild gives the same bytes.
  fs.writeFileSync(path.join(dest, name + ".jsonl.gz"), zlib.gzipSync(lines.join("\n") + "\n", { level: 9 }));
  console.log(`${name}: ${lines.length}`);
}
JS
