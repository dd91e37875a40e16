#!/usr/bin/env bash
# Load test of Send Engine's Tencent SES webhook (docs/performance.md, "Send Engine: Tencent SES webhook").
# Starts a private PostgreSQL cluster under /tmp and Send Engine (Release, Production, token verification) on free
# loopback ports, runs wrk (warm-up, then the measured run), checks that every 200 answer is a stored row, and stops
# everything it started. Usage: bench/webhook/run.sh [--duration 30s] [--connections 32] [--threads 2] [--warmup 10s]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"   # run_pg; this script keeps its own log and free_port below
DURATION=30s; CONNECTIONS=32; THREADS=2; WARMUP=10s
while [ $# -gt 0 ]; do case "$1" in
  --duration) DURATION="$2"; shift 2;; --connections) CONNECTIONS="$2"; shift 2;;
  --threads) THREADS="$2"; shift 2;; --warmup) WARMUP="$2"; shift 2;; *) echo "unknown option $1" >&2; exit 2;; esac; done
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
WORK="$(mktemp -d /tmp/webhook-bench.XXXXXX)"; chmod 755 "$WORK"
SE_PID=""; PG_DATA=""
cleanup() {
  trap - EXIT INT TERM
  [ -n "$SE_PID" ] && kill "$SE_PID" 2>/dev/null && wait "$SE_PID" 2>/dev/null || true
  [ -n "$PG_DATA" ] && run_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT; trap 'exit 130' INT; trap 'exit 143' TERM

command -v wrk >/dev/null 2>&1 || apt_install wrk
log "dotnet build SendEngine -c Release"
dotnet build "$ROOT/SendEngine/SendEngine.csproj" -c Release -nologo -v q -clp:ErrorsOnly >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; exit 1; }

PG_PORT="$(free_port)"; mkdir -p "$WORK/pg"; [ "$(id -u)" -eq 0 ] && chown postgres "$WORK/pg"
run_pg "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres -A trust -E UTF8 --no-instructions >"$WORK/initdb.log" 2>&1
PG_DATA="$WORK/pg/data"
run_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$WORK/pg/postgres.log" -w -t 60 \
  -o "-p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
createdb -h 127.0.0.1 -p "$PG_PORT" -U postgres sendengine
psql_db() { psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d sendengine -X -q -tA -c "$1"; }

SE_PORT="$(free_port)"; TOKEN="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
log "Send Engine on 127.0.0.1:$SE_PORT (PostgreSQL on $PG_PORT)"
(
  cd "$ROOT/SendEngine"
  export ASPNETCORE_ENVIRONMENT=Production Serilog__MinimumLevel__Default=Warning Database__ApplyMigrationsOnStartup=true Auth__RequireHttpsMetadata=false
  export ConnectionStrings__SendEngine="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=sendengine;Maximum Pool Size=100"
  export TencentSes__Webhook__Verification=Token TencentSes__Webhook__SecretToken="$TOKEN" EmailEvents__UnknownMessageGrace=00:00:00
  export Privacy__AddressHashKey="bench-$TOKEN-address-hash-key"  # required in Production (>= 32 characters)
  exec dotnet bin/Release/net10.0/SendEngine.dll --urls "http://127.0.0.1:$SE_PORT"
) >"$WORK/sendengine.log" 2>&1 &
SE_PID=$!
for _ in $(seq 1 120); do curl -fsS "http://127.0.0.1:$SE_PORT/health/live" >/dev/null 2>&1 && break; sleep 0.5; done
curl -fsS "http://127.0.0.1:$SE_PORT/health/live" >/dev/null || { cat "$WORK/sendengine.log" >&2; exit 1; }

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
run_wrk() { wrk -t"$THREADS" -c"$CONNECTIONS" -d"$1" --latency -s "$HERE/webhook.lua" "http://127.0.0.1:$SE_PORT" -- "$TOKEN" "$2"; }
log "warm-up $WARMUP"
run_wrk "$WARMUP" warm >"$WORK/warm.txt" 2>&1
before="$(psql_db "SELECT count(*) FROM email_events")"
se0="$(cpu_ticks "$SE_PID")"; t0="$(date +%s.%N)"
log "measured run $DURATION, $CONNECTIONS connections, $THREADS threads"
run_wrk "$DURATION" measured >"$WORK/run.txt" 2>&1
t1="$(date +%s.%N)"; se1="$(cpu_ticks "$SE_PID")"
cat "$WORK/run.txt"
line="$(grep '^BENCH ' "$WORK/run.txt")"
ok="$(sed -E 's/.* ok=([0-9]+).*/\1/' <<<"$line")"
after="$(psql_db "SELECT count(*) FROM email_events")"
stored=$((after - before))
log "waiting for the processor to drain the backlog"
for _ in $(seq 1 600); do [ "$(psql_db "SELECT count(*) FROM email_events WHERE processed_at IS NULL")" = 0 ] && break; sleep 1; done
drained="$(date +%s.%N)"
# wrk stops counting at the deadline: requests still in flight (at most one per connection) are stored but not counted.
echo "RESULT 200_answers=$ok rows_stored=$stored in_flight_at_stop=$((stored - ok)) se_cpu_cores=$(echo "scale=2; ($se1 - $se0) / $(getconf CLK_TCK) / ($t1 - $t0)" | bc) drain_after_run_s=$(echo "scale=1; $drained - $t1" | bc) unprocessed=$(psql_db "SELECT count(*) FROM email_events WHERE processed_at IS NULL")"
[ "$stored" -ge "$ok" ] && [ $((stored - ok)) -le "$CONNECTIONS" ] || { echo "MISMATCH: 200 answers vs rows stored" >&2; exit 1; }
