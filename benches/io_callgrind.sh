#!/usr/bin/env bash
# Client instructions added by the monitor per prepared statement and per
# checkout + statement + return, through real I/O against PostgreSQL:
# callgrind counts benches/io_instructions.rs's `measured` alone
# (--toggle-collect) for the raw and the monitored arm, each at two lengths;
# the slope is one operation's cost, start-up and warm-up excluded.
# A third arm reads through a ReplicaSet of two replicas: what the replica
# choice adds per checkout.
#   bash benches/io_callgrind.sh            # Prometheus recorder (as installed by an application)
#   RECORDER=noop bash benches/io_callgrind.sh
#   SPANS=otel bash benches/io_callgrind.sh  # who wants the statement spans: none (default), filtered, registry, otel
#   TRACE=on bash benches/io_callgrind.sh   # a trace context at every checkout (set_config sent ahead)
# A throwaway PostgreSQL is started per run unless DATABASE_URL is set.
# ANNOTATE=DIR keeps each run's callgrind_annotate output in DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)"; exit 1; }
for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/initdb" ] && PATH="$PATH:$dir"; done
bin=$(cargo bench --bench io_instructions --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*io_instructions[^"]*\)".*/\1/p' | tail -n 1)
recorder=${RECORDER:-prometheus}
short=${SHORT:-2000}
long=${LONG:-8000}
count() { # arm n
  local out; out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect='io_instructions::measured*' \
    "$bin" "$1" "$2" "$recorder" >/dev/null 2>&1
  if [ -n "${ANNOTATE:-}" ]; then
    mkdir -p "$ANNOTATE"
    callgrind_annotate --inclusive=no "$out" >"$ANNOTATE/$1-$2.txt" 2>/dev/null
  fi
  callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }'
  rm -f "$out"
}
slope() { # arm
  local a b
  a=$(count "$1" "$short"); b=$(count "$1" "$long")
  echo $(( (b - a) / (long - short) ))
}
raw_statement=$(slope raw_statement)
monitored_statement=$(slope monitored_statement)
raw_checkout=$(slope raw_checkout)
monitored_checkout=$(slope monitored_checkout)
replica_checkout=$(slope replica_checkout)
echo "recorder: $recorder; spans: ${SPANS:-none}; trace context: ${TRACE:-off}; slope between $short and $long operations"
echo "instructions per prepared statement: raw $raw_statement, monitored $monitored_statement"
echo "instructions per checkout+statement+return: raw $raw_checkout, monitored $monitored_checkout"
echo "added instructions per statement: $(( monitored_statement - raw_statement ))"
echo "added instructions per checkout+statement: $(( monitored_checkout - raw_checkout ))"
echo "instructions per replica-set read (checkout+statement+return): $replica_checkout"
echo "added by the replica choice: $(( replica_checkout - monitored_checkout ))"
