#!/usr/bin/env bash
# Refreshes tests/fixtures, the repository's copy of the reference fixtures, from ../shared/fixtures (beside the
# clone) when that folder holds anything newer or different. The copy is exact: files removed there are removed
# here, except what belongs to the copy itself: ABOUT-THIS-COPY.md, arctic/ (NBert's own float64 reference of
# snowflake-arctic-embed-xs, made by tools/Float64Reference; see arctic/README.md) and bpe/ (byte-level BPE goldens made
# by tools/BpeGoldens with Hugging Face's tokenizers; see bpe/README.md), distilbert/, roberta/ and electra/ (float64 references of the
# BERT family made by tools/FamilyReferences). Run it, then the tests, then commit.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
source=${1:-$repo/../shared/fixtures}
target=$repo/tests/fixtures
own=(ABOUT-THIS-COPY.md arctic bpe distilbert roberta electra)
if [ ! -d "$source" ]; then
  # Beside a plain clone there is no ../shared: nothing to do. A folder named on the command line must exist.
  [ $# -eq 0 ] || { echo "no reference fixtures at $source" >&2; exit 1; }
  echo "no reference fixtures at $source: nothing to refresh" >&2; exit 0
fi
# diff exits 1 for differences and 2 for trouble (a missing or unreadable folder): trouble is not "up to date".
if [ -d "$target" ]; then
  rc=0; changes=$(diff -rq "$source" "$target") || rc=$?
  [ "$rc" -le 1 ] || { echo "cannot compare $source with $target (diff exit $rc)" >&2; exit 1; }
  changes=$(grep -v -E "^Only in $target: (ABOUT-THIS-COPY\.md|arctic|bpe|distilbert|roberta|electra)$" <<<"$changes" || true)
else
  changes="$target does not exist"
fi
if [ -z "$changes" ]; then echo "tests/fixtures is up to date with $source"; exit 0; fi
echo "$changes"
# The new copy is assembled beside the old one and swapped in whole: a failed copy leaves the old one as it was.
staged=$target.new
trap 'rm -rf "$staged"' EXIT
rm -rf "$staged"
mkdir -p "$staged"
cp -R "$source/." "$staged/"
chmod -R u+w "$staged"
for f in "${own[@]}"; do if [ -e "$target/$f" ]; then rm -rf "${staged:?}/$f" && cp -R "$target/$f" "$staged/"; fi; done
rm -rf "$target.old"
[ ! -e "$target" ] || mv "$target" "$target.old"
mv "$staged" "$target"
rm -rf "$target.old"
echo "tests/fixtures refreshed from $source: run the tests and commit"
