#!/usr/bin/env bash
# Decision throughput with the audit log on and off, on SQLite and PostgreSQL: peak at 32
# and 64 connections, and machine CPU at an offered 10,000 checks/s. Not run in CI.
#
#   cargo build --release -p warden -p warden-bench
#   crates/warden-bench/audit-bench.sh [WORKDIR]    # PostgreSQL at 127.0.0.1:5432, user postgres
#
# Seeds a 100k-tuple dataset once per backend (base copies are reused), then starts
# `warden serve` on a fresh copy for each run.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
B="$ROOT/target/release"
W="${1:-/tmp/warden-audit-bench}"
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
for db in sqlite pg; do
  for mode in off on; do
    if [ $db = sqlite ]; then
      cp base.db run.db; rm -f run.db-wal run.db-shm; URL="sqlite://$W/run.db"; KEY=$(cat sqlite.key)
    else
      psql -h 127.0.0.1 -U postgres -q -c "DROP DATABASE IF EXISTS wbench_run" -c "CREATE DATABASE wbench_run TEMPLATE wbench_base"
      URL="$PG/wbench_run"; KEY=$(cat pg.key)
    fi
    FLAG=""; [ $mode = off ] && FLAG=--audit-disabled
    "$B/warden" serve --listen 127.0.0.1:8390 --database-url "$URL" --log-level warn $FLAG > serve.log 2>&1 &
    SERVER=$!
    sleep 3
    for c in 32 64; do
      echo "== $db, audit $mode, $c connections, peak:"
      "$B/warden-loadgen" run --server http://127.0.0.1:8390 --api-key "$KEY" --tuples 100000 --seconds 10 --connections $c
    done
    echo "== $db, audit $mode, offered 10000/s:"
    "$B/warden-loadgen" run --server http://127.0.0.1:8390 --api-key "$KEY" --tuples 100000 --seconds 10 --connections 64 --rate 10000
    kill $SERVER; wait $SERVER || true
  done
done
