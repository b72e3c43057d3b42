#!/usr/bin/env bash
# Refreshes tests/fixtures, the repository's copy of the reference fixtures, from ../shared/fixtures (beside the
# clone) when that folder holds anything newer or different. The copy is exact: files removed there are removed
# here, except ABOUT-THIS-COPY.md, which belongs to the copy. Run it, then the tests, then commit the changes.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
source=${1:-$repo/../shared/fixtures}
target=$repo/tests/fixtures
[ -d "$source" ] || { echo "no reference fixtures at $source: nothing to refresh" >&2; exit 0; }
changes=$(diff -rq "$source" "$target" 2>/dev/null | grep -v "^Only in $target: ABOUT-THIS-COPY.md" || true)
if [ -z "$changes" ]; then echo "tests/fixtures is up to date with $source"; exit 0; fi
echo "$changes"
keep=$(mktemp)
cp "$target/ABOUT-THIS-COPY.md" "$keep"
rm -rf "$target"
mkdir -p "$target"
cp -R "$source/." "$target/"
chmod -R u+w "$target"
cp "$keep" "$target/ABOUT-THIS-COPY.md"
rm -f "$keep"
echo "tests/fixtures refreshed from $source: run the tests and commit"
