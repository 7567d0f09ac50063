#!/usr/bin/env bash
# Instructions per monitored statement (no I/O), counted by callgrind:
# the slope between two run lengths, so start-up costs cancel out.
#   bash benches/callgrind.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)"; exit 1; }
bin=$(cargo bench --bench statement_overhead --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*statement_overhead[^"]*\)".*/\1/p' | tail -n 1)
count() {
  local out; out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --callgrind "$@" >/dev/null 2>&1
  callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }'
  rm -f "$out"
}
a=100000; b=200000
for recorder in prometheus noop; do
  ia=$(count $a $recorder); ib=$(count $b $recorder)
  echo "$recorder recorder: $a statements: $ia instructions; $b statements: $ib"
  echo "instructions per statement ($recorder recorder): $(( (ib - ia) / (b - a) ))"
done
