#!/usr/bin/env bash
# Instructions DbMonitorLayer adds per request, counted by callgrind in
# benches/layer_overhead.rs's `measured` alone (--toggle-collect), at two
# request counts; the slope is one request, start-up excluded.
#   bash benches/layer_callgrind.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)"; exit 1; }
bin=$(cargo bench --bench layer_overhead --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*layer_overhead[^"]*\)".*/\1/p' | tail -n 1)
short=${SHORT:-2000}
long=${LONG:-10000}
count() { # variant n
  local out; out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect='layer_overhead::measured*' \
    "$bin" --callgrind "$2" "$1" >/dev/null 2>&1
  callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }'
  rm -f "$out"
}
slope() { # variant
  local a b
  a=$(count "$1" "$short"); b=$(count "$1" "$long")
  echo $(( (b - a) / (long - short) ))
}
bare=$(slope bare)
for variant in layered quiet routed; do
  n=$(slope "$variant")
  echo "instructions per request, $variant: $n (bare service $bare; the layer adds $(( n - bare )))"
done
