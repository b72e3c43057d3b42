#!/usr/bin/env bash
# Refreshes tests/fixtures, the repository's copy of the reference fixtures, from ../shared/fixtures (beside the
# clone) when that folder holds anything newer or different. The copy is exact: files removed there are removed
# here, except what belongs to the copy itself: ABOUT-THIS-COPY.md, and arctic/ (NBert's own float64 reference of
# snowflake-arctic-embed-xs, made by tools/Float64Reference; see arctic/README.md). Run it, then the tests, then commit.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
source=${1:-$repo/../shared/fixtures}
target=$repo/tests/fixtures
own=(ABOUT-THIS-COPY.md arctic)
[ -d "$source" ] || { echo "no reference fixtures at $source: nothing to refresh" >&2; exit 0; }
changes=$(diff -rq "$source" "$target" 2>/dev/null | grep -v -E "^Only in $target: (ABOUT-THIS-COPY\.md|arctic)$" || true)
if [ -z "$changes" ]; then echo "tests/fixtures is up to date with $source"; exit 0; fi
echo "$changes"
keep=$(mktemp -d)
for f in "${own[@]}"; do [ -e "$target/$f" ] && cp -R "$target/$f" "$keep/"; done
rm -rf "$target"
mkdir -p "$target"
cp -R "$source/." "$target/"
chmod -R u+w "$target"
for f in "${own[@]}"; do [ -e "$keep/$f" ] && rm -rf "$target/$f" && cp -R "$keep/$f" "$target/"; done
rm -rf "$keep"
echo "tests/fixtures refreshed from $source: run the tests and commit"
