#!/usr/bin/env bash
# Decision throughput with the audit log off and on, on SQLite and PostgreSQL: single
# checks at 64 and 256 connections, batch-check requests of 10 items at 64 connections
# (per-record cost without the per-request wait), and a fixed offered load of 10,000
# checks/s (machine CPU and latency at that load). Not run in CI.
#
#   cargo build --release -p warden -p warden-bench
#   crates/warden-bench/audit-bench.sh [WORKDIR] [ROUNDS] [SECONDS]   # PostgreSQL at 127.0.0.1:5432, user postgres
#
# Small machines drift by 10-15% from one run to the next, so off and on runs alternate
# (ROUNDS pairs, default 3, each on a fresh copy of the database) and the medians are
# compared. Each run also prints the server's and the load generator's CPU time per
# check, which drifts less than throughput. Seeds a 100k-tuple dataset once per backend.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
B="$ROOT/target/release"
W="${1:-/tmp/warden-audit-bench}"
ROUNDS="${2:-3}"
SECS="${3:-8}"
PG="postgres://postgres@127.0.0.1:5432"
mkdir -p "$W" && cd "$W"
if [ ! -f base.db ]; then
  rm -f seed.db*
  "$B/warden-loadgen" seed --database-url "sqlite://$W/seed.db" --tuples 100000 --key | tail -1 | awk '{print $2}' > sqlite.key
  mv seed.db base.db
fi
if [ ! -f pg.key ]; then
  psql -h 127.0.0.1 -U postgres -q -c "DROP DATABASE IF EXISTS wbench_base" -c "CREATE DATABASE wbench_base"
  "$B/warden-loadgen" seed --database-url "$PG/wbench_base" --tuples 100000 --key | tail -1 | awk '{print $2}' > pg.key
fi

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Starts a server on a fresh copy of the database; sets $server and $key.
start() {
  local db=$1 mode=$2 url flag=""
  if [ "$db" = sqlite ]; then
    cp base.db run.db; rm -f run.db-wal run.db-shm; url="sqlite://$W/run.db"; key=$(cat sqlite.key)
  else
    psql -h 127.0.0.1 -U postgres -q -c "DROP DATABASE IF EXISTS wbench_run" -c "CREATE DATABASE wbench_run TEMPLATE wbench_base"
    url="$PG/wbench_run"; key=$(cat pg.key)
  fi
  [ "$mode" = off ] && flag=--audit-disabled
  "$B/warden" serve --listen 127.0.0.1:8390 --database-url "$url" --log-level warn $flag > serve.log 2>&1 &
  server=$!
  sleep 1.5
}

# One run: prints "<checks/s> <server us/check> <loadgen us/check>". Extra arguments go
# to the load generator.
run() {
  local db=$1 mode=$2 conns=$3
  shift 3
  start "$db" "$mode"
  "$B/warden-loadgen" run --server http://127.0.0.1:8390 --api-key "$key" --tuples 100000 \
    --seconds "$SECS" --connections "$conns" "$@" > loadgen.out 2>&1 &
  local lg=$!
  sleep 2
  local lgp s0 l0 s1 l1 window=$((SECS - 4))
  lgp=$(pgrep -f "warden-loadgen run" | head -1)
  s0=$(cpu "$server"); l0=$(cpu "$lgp")
  sleep "$window"
  s1=$(cpu "$server"); l1=$(cpu "$lgp")
  wait "$lg"
  kill "$server"; wait "$server" || true
  local rate
  rate=$(tail -1 loadgen.out | sed -E 's/.*: ([0-9]+) checks\/s.*/\1/')
  # CPU ticks are 10 ms; per check over the measured window.
  awk -v r="$rate" -v s=$((s1 - s0)) -v l=$((l1 - l0)) -v w="$window" \
    'BEGIN { printf "%d %.1f %.1f\n", r, s * 1e4 / (r * w), l * 1e4 / (r * w) }'
}

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

# ROUNDS alternating off/on pairs of one configuration; prints each and the medians.
compare() {
  local db=$1 c=$2 label=$3 i o os ol n ns nl mo mn
  shift 3
  local offs=() ons=()
  for i in $(seq "$ROUNDS"); do
    read -r o os ol <<< "$(run "$db" off "$c" "$@")"
    read -r n ns nl <<< "$(run "$db" on "$c" "$@")"
    echo "$db, $label, round $i: off $o/s (server $os us, loadgen $ol us per check), on $n/s (server $ns us, loadgen $nl us)"
    offs+=("$o"); ons+=("$n")
  done
  mo=$(printf '%s\n' "${offs[@]}" | median); mn=$(printf '%s\n' "${ons[@]}" | median)
  awk -v o="$mo" -v n="$mn" -v d="$db" -v l="$label" \
    'BEGIN { printf "== %s, %s: median off %d/s, on %d/s, on/off %.2f\n", d, l, o, n, n / o }'
}

# A fixed offered load: what it costs in machine CPU and latency, off and on.
fixed() {
  local db=$1 mode out
  for mode in off on; do
    start "$db" "$mode"
    out=$("$B/warden-loadgen" run --server http://127.0.0.1:8390 --api-key "$key" --tuples 100000 \
      --seconds "$SECS" --connections 64 --rate 10000 2>&1 | tail -2 | tr '\n' ' ')
    kill "$server"; wait "$server" || true
    echo "== $db, 10,000 checks/s offered, audit $mode: $out"
  done
}

for db in sqlite pg; do
  compare $db 64 "64 connections"
  compare $db 256 "256 connections"
  compare $db 64 "batches of 10, 64 connections" --batch 10
  fixed $db
done
