#!/usr/bin/env bash
# Load test of Send Engine's Tencent SES webhook (docs/performance.md, "Send Engine: Tencent SES webhook").
# Starts a private PostgreSQL cluster under /tmp and Send Engine (Release, Production, token verification) on free
# loopback ports, runs wrk (warm-up, then the measured run), checks that every 200 answer is a stored row, and stops
# everything it started. Usage: bench/webhook/run.sh [--duration 30s] [--connections 32] [--threads 2] [--warmup 10s] [--watchers 100]
# --watchers N: also starts Member Center (for an operator token) and, after the plain measured run, runs the same load
# again with N server-sent-event watchers on the webhook gateway's platform log (every entry of this load is platform-
# scoped: its events name no known message, so every watcher receives every entry: the worst case), and prints the
# events/s without and with them: phases plain, watched, watched, plain (A B B A), each pair averaged, so that the drift
# of a growing log between phases is not charged to the watchers (BENCH_AB=1: plain then watched only).
# --rounds R: R rounds of A B B A (default 2: A B B A A B B A): one round of 30 s phases moves by ±5 % on this VM,
# the average of R rounds by about 1/sqrt(R) of that. The WATCHERS line averages every A and every B phase.
# --cpu: also prints, for each measured phase (the run plus the processor draining its backlog), the CPU seconds
# (user+sys from /proc/<pid>/stat) of Send Engine and of the PostgreSQL cluster's processes per 10,000 stored events, and
# the WAL bytes per event (pg_current_wal_lsn() before/after): figures that hold on a busy machine, unlike events/s.
# With --cpu and --watchers, the watched phase also prints the CPU seconds of the N curl watchers themselves (they share
# the machine with Send Engine and PostgreSQL). The WATCHERS line has the bytes each watcher received per second (the
# run and the 2 s after) and per entry.
# --perf: samples Send Engine with `perf record` during the watched run (managed frames named: DOTNET_PerfMapEnabled=1)
# and prints where its CPU goes.
# --profile: loads pg_stat_statements into the private cluster and prints, after the plain run has drained, calls, time,
# rows and WAL bytes per stored event of each statement (ingestion and processing), and with --watchers again after the
# watched run: where PostgreSQL's share goes. The
# extension costs some CPU itself: compare CPU figures between runs without it.
# --perf without --watchers samples Send Engine during the plain run instead.
# --root DIR: benchmark the tree in DIR (e.g. a scratch worktree of an older commit) with this script.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(cd "$HERE/../.." && pwd)"; BENCH_ROOT="$ROOT"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"   # run_pg; this script keeps its own log and free_port below
DURATION=30s; CONNECTIONS=32; THREADS=2; WARMUP=10s; WATCHERS=0; CPU=0; PERF=0; PROFILE=0; ROUNDS=2
while [ $# -gt 0 ]; do case "$1" in
  --duration) DURATION="$2"; shift 2;; --connections) CONNECTIONS="$2"; shift 2;;
  --threads) THREADS="$2"; shift 2;; --warmup) WARMUP="$2"; shift 2;; --watchers) WATCHERS="$2"; shift 2;;
  --rounds) ROUNDS="$2"; shift 2;;
  --cpu) CPU=1; shift;; --perf) PERF=1; shift;; --profile) PROFILE=1; shift;; --root) BENCH_ROOT="$(cd "$2" && pwd)"; shift 2;; *) echo "unknown option $1" >&2; exit 2;; esac; done
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
WORK="$(mktemp -d /tmp/webhook-bench.XXXXXX)"; chmod 755 "$WORK"
# The watchers' streams go to memory (tmpfs) where there is one: a browser keeps them in memory, and 100 files written
# on disk add page-cache writeback that no figure of this script counts.
WATCH_DIR="$WORK"; [ -d /dev/shm ] && [ -w /dev/shm ] && WATCH_DIR="$(mktemp -d /dev/shm/webhook-watchers.XXXXXX)"
SE_PID=""; PG_DATA=""; MC_PID=""; WATCH_PIDS=(); PERF_PID=""
cleanup() {
  trap - EXIT INT TERM
  [ -n "$PERF_PID" ] && kill -INT "$PERF_PID" 2>/dev/null || true
  [ -n "$SE_PID" ] && rm -f "/tmp/perf-$SE_PID.map" "/tmp/perfinfo-$SE_PID.map"
  for p in "${WATCH_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$SE_PID" ] && kill "$SE_PID" 2>/dev/null && wait "$SE_PID" 2>/dev/null || true
  [ -n "$MC_PID" ] && kill "$MC_PID" 2>/dev/null && wait "$MC_PID" 2>/dev/null || true
  [ -n "$PG_DATA" ] && run_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
  [ -n "${BENCH_PG_LOG:-}" ] && cp "$WORK/pg/postgres.log" "$BENCH_PG_LOG" 2>/dev/null
  rm -rf "$WORK" "$WATCH_DIR"
}
trap cleanup EXIT; trap 'exit 130' INT; trap 'exit 143' TERM

command -v wrk >/dev/null 2>&1 || apt_install wrk
log "dotnet build SendEngine -c Release"
dotnet build "$BENCH_ROOT/SendEngine/SendEngine.csproj" -c Release -nologo -v q -clp:ErrorsOnly >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; exit 1; }
if [ "$WATCHERS" -gt 0 ]; then
  dotnet build "$BENCH_ROOT/MemberCenter/MemberCenter.csproj" -c Release -nologo -v q -clp:ErrorsOnly >>"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; exit 1; }
fi

PG_PORT="$(free_port)"; mkdir -p "$WORK/pg"; [ "$(id -u)" -eq 0 ] && chown postgres "$WORK/pg"
run_pg "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres -A trust -E UTF8 --no-instructions >"$WORK/initdb.log" 2>&1
PG_DATA="$WORK/pg/data"
PG_OPTS="-p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c max_connections=200"
[ "$PROFILE" = 1 ] && PG_OPTS="$PG_OPTS -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.max=1000"
# BENCH_PG_OPTS: more server options (e.g. auto_explain); BENCH_PG_LOG: where to copy the server's log at the end.
PG_OPTS="$PG_OPTS ${BENCH_PG_OPTS:-}"
run_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$WORK/pg/postgres.log" -w -t 60 -o "$PG_OPTS" start >/dev/null
createdb -h 127.0.0.1 -p "$PG_PORT" -U postgres sendengine
MC=""; SE_AUTH=()
if [ "$WATCHERS" -gt 0 ]; then
  createdb -h 127.0.0.1 -p "$PG_PORT" -U postgres membercenter
  MC_PORT="$(free_port)"; MC="http://127.0.0.1:$MC_PORT"; ADMIN_SECRET="bench-admin-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  log "Member Center on $MC (the watchers' operator token)"
  (
    cd "$BENCH_ROOT/MemberCenter"
    export ASPNETCORE_ENVIRONMENT=Production Serilog__MinimumLevel__Default=Warning Database__ApplyMigrationsOnStartup=true
    export ConnectionStrings__MemberCenter="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=membercenter"
    export Auth__Issuer="$MC/" Auth__RequireHttps=false PublicUrls__MemberCenter="$MC" Smtp__Host=127.0.0.1 Smtp__Port=9 Smtp__UseTls=false
    export Bootstrap__AdminClientId=bench-admin Bootstrap__AdminClientSecret="$ADMIN_SECRET"
    export Auth__SigningKeys__Password="$ADMIN_SECRET-signing" Privacy__AddressHashKey="bench-$ADMIN_SECRET-address-hash-key"
    exec dotnet bin/Release/net10.0/MemberCenter.dll --urls "$MC"
  ) >"$WORK/membercenter.log" 2>&1 &
  MC_PID=$!
  for _ in $(seq 1 1200); do curl -fsS "$MC/health/ready" >/dev/null 2>&1 && break; sleep 0.5; done
  curl -fsS "$MC/health/ready" >/dev/null || { tail -40 "$WORK/membercenter.log" >&2; exit 1; }
  SE_AUTH=(Auth__Issuer="$MC/" Auth__RequireHttpsMetadata=false)
fi
psql_db() { psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d sendengine -X -q -tA -c "$1"; }

SE_PORT="$(free_port)"; TOKEN="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
log "Send Engine on 127.0.0.1:$SE_PORT (PostgreSQL on $PG_PORT)"
(
  cd "$BENCH_ROOT/SendEngine"
  export ASPNETCORE_ENVIRONMENT=Production Serilog__MinimumLevel__Default=Warning Database__ApplyMigrationsOnStartup=true Auth__RequireHttpsMetadata=false
  export ConnectionStrings__SendEngine="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=sendengine;Maximum Pool Size=100"
  export TencentSes__Webhook__Verification=Token TencentSes__Webhook__SecretToken="$TOKEN" EmailEvents__UnknownMessageGrace=00:00:00
  export Privacy__AddressHashKey="bench-$TOKEN-address-hash-key"  # required in Production (>= 32 characters)
  for kv in "${SE_AUTH[@]}"; do export "${kv?}"; done
  send_engine_runtime_env
  if [ "$PERF" = 1 ]; then export DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0; fi
  exec dotnet bin/Release/net10.0/SendEngine.dll --urls "http://127.0.0.1:$SE_PORT"
) >"$WORK/sendengine.log" 2>&1 &
SE_PID=$!
for _ in $(seq 1 1200); do curl -fsS "http://127.0.0.1:$SE_PORT/health/live" >/dev/null 2>&1 && break; sleep 0.5; done
curl -fsS "http://127.0.0.1:$SE_PORT/health/live" >/dev/null || { cat "$WORK/sendengine.log" >&2; exit 1; }

[ "$PROFILE" = 1 ] && psql_db "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
# Per statement, per stored event: calls, execution ms, rows and WAL bytes (the bench's own psql queries included).
profile_report() {
  echo "== PostgreSQL statements per stored event ($1 events; pg_stat_statements, top 20 by time)"
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d sendengine -X -q -P pager=off -c "
    SELECT round(calls::numeric / $1, 3) AS calls_per_event, round((total_exec_time / $1 * 1000)::numeric, 2) AS us_per_event,
      round(rows::numeric / $1, 3) AS rows_per_event, round(wal_bytes / $1, 0) AS wal_per_event,
      round(shared_blks_dirtied::numeric / $1, 3) AS dirtied_per_event,
      left(regexp_replace(query, '\s+', ' ', 'g'), 110) AS query
    FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'sendengine')
    ORDER BY total_exec_time DESC LIMIT 20"
  psql_db "SELECT 'TOTAL statements_per_event=' || round(sum(calls)::numeric / $1, 2) || ' exec_us_per_event=' || round((sum(total_exec_time) / $1 * 1000)::numeric, 1)
      || ' wal_bytes_per_event=' || round(sum(wal_bytes) / $1, 0) FROM pg_stat_statements"
  psql_db "SELECT 'COMMITS xact_commit_per_event=' || round((xact_commit - $2)::numeric / $1, 3) FROM pg_stat_database WHERE datname = 'sendengine'"
}
xact_commits() { psql_db "SELECT xact_commit FROM pg_stat_database WHERE datname = 'sendengine'"; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
# The cluster's processes (postmaster, backends, WAL writer, checkpointer, autovacuum): the postmaster's own ticks and
# those of its exited children (cutime+cstime: a backend whose pooled connection closed), plus the live children's.
pg_ticks() {
  local pm t p; pm="$(head -1 "$PG_DATA/postmaster.pid")"; t="$(awk '{print $14+$15+$16+$17}' "/proc/$pm/stat")"
  for p in $(pgrep -P "$pm"); do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$t"
}
wal_lsn() { psql_db "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint"; }
stored_events() { psql_db "SELECT count(*) FROM email_events"; }
# Before each measured phase: the previous phase's dead rows vacuumed and a checkpoint taken, so that neither phase pays
# the other's autovacuum or full-page images (an A/A run, BENCH_CONNECT_WATCHERS=0, lost 4 % in the second phase without).
settle() { psql_db "VACUUM (ANALYZE) email_events, webhook_gateway_entries" >/dev/null; psql_db "CHECKPOINT" >/dev/null; }
drain() { for _ in $(seq 1 600); do [ "$(psql_db "SELECT count(*) FROM email_events WHERE processed_at IS NULL")" = 0 ] && break; sleep 1; done; }
cpu_start() { C_SE0="$(cpu_ticks "$SE_PID")"; C_PG0="$(pg_ticks)"; C_WAL0="$(wal_lsn)"; C_N0="$(stored_events)"; C_T0="$(date +%s.%N)"; }
# What the idle processes cost per second (Send Engine's pollers, PostgreSQL's background): subtracted from each phase,
# which at the low rates of a busy machine would otherwise be dominated by it.
IDLE_SE=0; IDLE_PG=0
cpu_idle() {
  local se0 pg0 t0 t1; se0="$(cpu_ticks "$SE_PID")"; pg0="$(pg_ticks)"; t0="$(date +%s.%N)"; sleep 15
  t1="$(date +%s.%N)"
  IDLE_SE="$(echo "scale=4; ($(cpu_ticks "$SE_PID") - $se0) / ($t1 - $t0)" | bc)"; IDLE_PG="$(echo "scale=4; ($(pg_ticks) - $pg0) / ($t1 - $t0)" | bc)"
  echo "IDLE se_ticks_per_s=$IDLE_SE pg_ticks_per_s=$IDLE_PG (CLK_TCK $(getconf CLK_TCK))"
}
# After the processor has drained: its work for these events belongs to their cost.
cpu_report() {
  drain
  local se pg wal n hz; se=$(( $(cpu_ticks "$SE_PID") - C_SE0 )); pg=$(( $(pg_ticks) - C_PG0 )); wal=$(( $(wal_lsn) - C_WAL0 )); n=$(( $(stored_events) - C_N0 ))
  hz="$(getconf CLK_TCK)"; [ "$n" -gt 0 ] || n=1
  local secs sen pgn; secs="$(echo "$(date +%s.%N) - $C_T0" | bc)"
  sen="$(echo "$se - $IDLE_SE * $secs" | bc)"; pgn="$(echo "$pg - $IDLE_PG * $secs" | bc)"
  echo "CPU phase=$1 events=$n seconds=$(echo "scale=1; $secs / 1" | bc) se_cpu_s=$(echo "scale=2; $se / $hz" | bc) pg_cpu_s=$(echo "scale=2; $pg / $hz" | bc) cpu_s_per_10k_events=$(echo "scale=3; ($se + $pg) * 10000 / $hz / $n" | bc) net_of_idle_se_cpu_s_per_10k=$(echo "scale=3; $sen * 10000 / $hz / $n" | bc) net_of_idle_pg_cpu_s_per_10k=$(echo "scale=3; $pgn * 10000 / $hz / $n" | bc) net_of_idle_cpu_s_per_10k=$(echo "scale=3; ($sen + $pgn) * 10000 / $hz / $n" | bc) wal_bytes_per_event=$((wal / n))"
}
run_wrk() { wrk -t"$THREADS" -c"$CONNECTIONS" -d"$1" --latency -s "$HERE/webhook.lua" "http://127.0.0.1:$SE_PORT" -- "$TOKEN" "$2"; }
log "warm-up $WARMUP"
run_wrk "$WARMUP" warm >"$WORK/warm.txt" 2>&1
drain
settle
[ "$CPU" = 1 ] && cpu_idle
before="$(psql_db "SELECT count(*) FROM email_events")"
XACT0="$(xact_commits)"
[ "$PROFILE" = 1 ] && psql_db "SELECT pg_stat_statements_reset()" >/dev/null
[ "$CPU" = 1 ] && cpu_start
if [ "$PERF" = 1 ] && [ "$WATCHERS" -eq 0 ]; then
  perf record -q -e cpu-clock -F 999 -g -p "$SE_PID" -o "$WORK/perf.data" >"$WORK/perf.log" 2>&1 &
  PERF_PID=$!
fi
se0="$(cpu_ticks "$SE_PID")"; t0="$(date +%s.%N)"
log "measured run $DURATION, $CONNECTIONS connections, $THREADS threads"
run_wrk "$DURATION" measured >"$WORK/run.txt" 2>&1
t1="$(date +%s.%N)"; se1="$(cpu_ticks "$SE_PID")"
if [ -n "$PERF_PID" ]; then kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null || true; PERF_PID=""; fi
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
[ "$CPU" = 1 ] && cpu_report plain
drain
# Commits of the whole database per stored event (writer group commits, processor batches, pollers, the bench's queries).
echo "COMMITS phase=plain xact_commit_per_event=$(echo "scale=3; ($(xact_commits) - $XACT0) / $(( stored > 0 ? stored : 1 ))" | bc)"
[ "$PROFILE" = 1 ] && profile_report "$(( $(stored_events) - before ))" "$XACT0"
if [ "$PERF" = 1 ] && [ "$WATCHERS" -eq 0 ]; then
  perf_report "$WORK/perf.data" "Send Engine (plain run)" 'SendEngine|Npgsql|Kestrel|Json|GC|Channel|Pipe|Socket|WebhookGateway|Http|Serilog|Logging|OpenTelemetry|Diagnostics' 40 70
fi

if [ "$WATCHERS" -gt 0 ]; then
  # The same load again, with WATCHERS live-view watchers connected throughout.
  eps() { sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$1"; }
  ADMIN_TOKEN="$(curl -fsS -X POST "$MC/oauth/token" --data-urlencode grant_type=client_credentials --data-urlencode client_id=bench-admin \
    --data-urlencode "client_secret=$ADMIN_SECRET" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
  # BENCH_CONNECT_WATCHERS=0: an A/A run, the watched phases as the plain ones (what the order alone does to the rate).
  CONNECT="${BENCH_CONNECT_WATCHERS:-$WATCHERS}"
  connect_watchers() {
    log "connecting $WATCHERS watchers to /admin/webhook-gateway/events/stream"
    local i
    for i in $(seq 1 "$CONNECT"); do
      curl -sN -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$SE_PORT/admin/webhook-gateway/events/stream" >"$WATCH_DIR/watch-$i.txt" 2>/dev/null &
      WATCH_PIDS+=($!)
    done
    for _ in $(seq 1 120); do
      [ "$( (grep -l '^: watching' "$WATCH_DIR"/watch-*.txt 2>/dev/null || true) | wc -l)" -ge "$CONNECT" ] && break; sleep 0.5
    done
    connected="$( (grep -l '^: watching' "$WATCH_DIR"/watch-*.txt 2>/dev/null || true) | wc -l)"
  }
  disconnect_watchers() {
    local p
    for p in "${WATCH_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${WATCH_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    WATCH_PIDS=(); rm -f "$WATCH_DIR"/watch-*.txt
  }
  connect_watchers
  log "measured run with $connected watchers, $DURATION"
  watchers_ticks() { local t=0 p; for p in "${WATCH_PIDS[@]}"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$t"; }
  drain; settle; [ "$CPU" = 1 ] && cpu_start
  XACTW="$(xact_commits)"; WS0="$(stored_events)"
  [ "$PROFILE" = 1 ] && psql_db "SELECT pg_stat_statements_reset()" >/dev/null
  watch_bytes() { (cat "$WATCH_DIR"/watch-*.txt 2>/dev/null || true) | wc -c; }
  W0="$(watchers_ticks)"; WN0="$(stored_events)"; WB0="$(watch_bytes)"; WT0="$(date +%s.%N)"
  if [ "$PERF" = 1 ]; then
    perf record -q -e cpu-clock -F 999 -g -p "$SE_PID" -o "$WORK/perf.data" >"$WORK/perf.log" 2>&1 &
    PERF_PID=$!
  fi
  run_wrk "$DURATION" watched >"$WORK/run-watched.txt" 2>&1
  if [ -n "$PERF_PID" ]; then kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null || true; PERF_PID=""; fi
  cat "$WORK/run-watched.txt"
  sleep 2
  W1="$(watchers_ticks)"; WN=$(( $(stored_events) - WN0 )); [ "$WN" -gt 0 ] || WN=1
  WB=$(( $(watch_bytes) - WB0 )); WT="$(echo "$(date +%s.%N) - $WT0" | bc)"
  [ "$CPU" = 1 ] && echo "CPU watchers_curl_cpu_s=$(echo "scale=2; ($W1 - $W0) / $(getconf CLK_TCK)" | bc) per_10k_events=$(echo "scale=3; ($W1 - $W0) * 10000 / $(getconf CLK_TCK) / $WN" | bc) (the $connected curl processes, during the run and 2 s after)"
  [ "$CPU" = 1 ] && cpu_report "watchers_$connected"
  if [ "$PROFILE" = 1 ]; then drain; profile_report "$(( $(stored_events) - WS0 ))" "$XACTW"; fi
  if [ "$PERF" = 1 ]; then
    perf_report "$WORK/perf.data" "Send Engine (watched run)" 'SendEngine|Npgsql|Kestrel|Json|GC|Channel|Pipe|Socket|WebhookGateway|Http' 40 60
  fi
  received="$(cat "$WATCH_DIR"/watch-*.txt 2>/dev/null | grep -c '^event: entry' || true)"
  # Fewest and most entries one watcher got, and the "event: lost" notices (a watcher that fell behind its buffer).
  per_watcher="$(for f in "$WATCH_DIR"/watch-*.txt; do grep -c '^event: entry' "$f" || true; done | sort -n)"
  lost="$(cat "$WATCH_DIR"/watch-*.txt 2>/dev/null | grep -c '^event: lost' || true)"
  # A, B, B, A: the second watched phase, then the watchers leave and the plain load runs again. Each later phase runs on
  # a larger log with more full-page images after its checkpoint (an A/A run, 2026-12-03: −6.6 % and WAL per event
  # 2,865 → 4,249 bytes in the second phase with nobody watching), a drift that a single A-then-B pair charges to the
  # watchers; averaged over A B B A it cancels. BENCH_AB=1: the single pair only.
  if [ "${BENCH_AB:-0}" != 1 ]; then
    # again_phase TAG CPU_LABEL: one more measured run, settled like the others, into $WORK/run-TAG.txt.
    again_phase() {
      drain; settle; [ "$CPU" = 1 ] && cpu_start
      run_wrk "$DURATION" "$1" >"$WORK/run-$1.txt" 2>&1
      grep '^BENCH ' "$WORK/run-$1.txt"
      [ "$CPU" = 1 ] && cpu_report "$2"
    }
    log "second measured run with $connected watchers, $DURATION"
    again_phase watched2 "watchers_${connected}_second"
    disconnect_watchers
    log "second measured run without watchers, $DURATION"
    again_phase plain2 plain_second
    PLAIN_RUNS=("$WORK/run.txt" "$WORK/run-plain2.txt"); WATCHED_RUNS=("$WORK/run-watched.txt" "$WORK/run-watched2.txt")
    for r in $(seq 2 "$ROUNDS"); do
      log "round $r of $ROUNDS: A B B A"
      again_phase "plain-r${r}a" "plain_round${r}_a"
      connect_watchers
      again_phase "watched-r${r}a" "watchers_${connected}_round${r}_a"
      again_phase "watched-r${r}b" "watchers_${connected}_round${r}_b"
      disconnect_watchers
      again_phase "plain-r${r}b" "plain_round${r}_b"
      PLAIN_RUNS+=("$WORK/run-plain-r${r}a.txt" "$WORK/run-plain-r${r}b.txt")
      WATCHED_RUNS+=("$WORK/run-watched-r${r}a.txt" "$WORK/run-watched-r${r}b.txt")
    done
  fi
  without="$(eps "$WORK/run.txt")"; with="$(eps "$WORK/run-watched.txt")"
  if [ "${BENCH_AB:-0}" != 1 ]; then
    # mean_eps FILE…: the average events/s of these phases.
    mean_eps() { local f; for f in "$@"; do eps "$f"; done | awk '{ s += $1 } END { printf "%.2f", s / NR }'; }
    echo "ORDER $(for i in "${!PLAIN_RUNS[@]}"; do [ $((i % 2)) = 0 ] && printf 'A=%s B=%s ' "$(eps "${PLAIN_RUNS[$i]}")" "$(eps "${WATCHED_RUNS[$i]}")" || printf 'B=%s A=%s ' "$(eps "${WATCHED_RUNS[$i]}")" "$(eps "${PLAIN_RUNS[$i]}")"; done)(events/s in phase order)"
    for r in $(seq 1 "$ROUNDS"); do
      i=$(((r - 1) * 2))
      a="$(mean_eps "${PLAIN_RUNS[$i]}" "${PLAIN_RUNS[$((i + 1))]}")"; b="$(mean_eps "${WATCHED_RUNS[$i]}" "${WATCHED_RUNS[$((i + 1))]}")"
      echo "ROUND $r events_per_s_without=$a events_per_s_with=$b change_pct=$(echo "scale=1; ($b - $a) * 100 / $a" | bc)"
    done
    without="$(mean_eps "${PLAIN_RUNS[@]}")"; with="$(mean_eps "${WATCHED_RUNS[@]}")"
  fi
  echo "WATCHERS watchers=$connected rounds=$ROUNDS events_per_s_without=$without events_per_s_with=$with change_pct=$(echo "scale=1; ($with - $without) * 100 / $without" | bc) entries_received_per_watcher=$((received / (connected > 0 ? connected : 1))) bytes_per_watcher_per_s=$(echo "$WB / $((connected > 0 ? connected : 1)) / $WT" | bc) bytes_per_entry=$((WB / (received > 0 ? received : 1))) min=$(head -1 <<<"$per_watcher") max=$(tail -1 <<<"$per_watcher") lost_notices=$lost"
fi
