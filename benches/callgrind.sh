#!/usr/bin/env bash
# Instructions per monitored statement (no I/O), counted by callgrind inside
# the statement function only (--toggle-collect), so that start-up work
# (quanta calibrates its clock for a fixed time) does not leak into the count.
#   bash benches/callgrind.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)"; exit 1; }
bin=$(cargo bench --bench statement_overhead --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*statement_overhead[^"]*\)".*/\1/p' | tail -n 1)
n=200000
count() {
  local out; out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" \
    --toggle-collect='db_monitor::__bench::StatementProbe::statement*' \
    "$bin" --callgrind "$n" "$1" >/dev/null 2>&1
  callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }'
  rm -f "$out"
}
for recorder in prometheus noop; do
  total=$(count "$recorder")
  echo "instructions per statement ($recorder recorder): $(( total / n )) ($total for $n statements)"
done
