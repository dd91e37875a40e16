#!/usr/bin/env bash
# Benchmarks Send Engine's transactional API (docs/performance.md, "Send Engine: transactional API"):
#   1. POST /api/v1/email, one recipient, ~4 KB HTML, wrk -c CONNECTIONS: requests/s and latency;
#   2. the same with 10 recipients per request: tasks/s;
#   3. at a constant RATE requests/s (bench/tools/BenchTools rate, open loop), the time from the request to the relay's
#      250 per message: sent_at - created_at of each task (see below), p50/p99, and the HTTP latency at that rate
#      (--rate 0 skips it).
# Next to them, in the same run: wrk against Send Engine's GET /health/live (the framework ceiling) and the ratio.
#
#   bench/transactional/run.sh [--duration 30s] [--warmup 10s] [--connections 16] [--threads 2] [--rate 500]
#                              [--rate-duration 30] [--se-env KEY=VALUE]... [--pg-conf NAME=VALUE]... [--profile] [--cpu] [--perf] [--keep-logs] [--wrk-timeout 2s]
#
# Builds Member Center, Send Engine and BenchTools (Release); starts a private PostgreSQL cluster under /tmp (fsync and
# synchronous_commit on), smtp-sink, Member Center and Send Engine (Production) on free loopback ports; creates a tenant,
# an application and an API key (Member Center's admin API) and a sender domain (Send Engine's); stops all on exit.
# The dispatcher delivers into smtp-sink during every phase, as in production; after each phase the script waits for
# the queue to drain. Invalid run (non-zero exit): any non-2xx or socket error, a task not sent, or smtp-sink receiving
# another number of messages than there are sent tasks.
# Latency row, what is measured: created_at is taken when the request starts (before the answer), and sent_at when
# Send Engine has read the relay's 250 (before its UPDATE), both from the same clock; so each figure is an upper bound
# of "answer to 250" by the request's own processing time (~ms), never an understatement.
# --profile loads pg_stat_statements and prints the statements per request of the one-recipient phase, by total time,
# and the rows of transactional_tasks and transactional_requests inserted and updated (HOT or not) per request in that
# phase, and those of the dispatchers' queue, transactional_deliveries (inserted, updated, HOT, deleted).
# --cpu prints, per phase and from its start until the queue drained (the API and the delivery of what it accepted), the
# CPU seconds per 10,000 requests of Send Engine and of the PostgreSQL cluster (user+sys from /proc/<pid>/stat), and per
# request the transactions committed (pg_stat_database.xact_commit, the script's own few polls included) and the WAL
# bytes written (pg_current_wal_lsn()): figures a busy machine does not distort the way it distorts rates.
# Every phase (and the ceiling) also prints the hypervisor's steal during it: the share of the VM's CPU time given to
# other guests (/proc/stat), which moves the rates of this shared machine from one minute to the next. The machine's
# CPU figures do not count it.
# --perf samples Send Engine with `perf record` (999 Hz, call graphs; managed frames named through DOTNET_PerfMapEnabled)
# during the one-recipient phase, from its start until its queue drained (the API and the dispatcher's delivery), and
# prints where its CPU went: by library, top functions by self time, managed frames by inclusive time.
# --pg-conf: a PostgreSQL setting for the run (e.g. session_preload_libraries=auto_explain); with --keep-logs the server's
# log is kept with the others.
# --wrk-timeout: wrk's per-request timeout (its default 2 s); a timed-out request is a socket error and invalidates the run,
# so on a machine busy with other work a longer one keeps a CPU-based run (--cpu, --profile) from being thrown away.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/../../scripts/lib.sh"
# shellcheck source=bench/lib.sh
source "$HERE/../lib.sh"
cd "$REPO_ROOT"

DURATION=30s WARMUP=10s CONNECTIONS=16 THREADS=2 RATE=500 RATE_DURATION=30 PROFILE=0 CPU=0 PERF=0 DRAIN_TIMEOUT=900 WRK_TIMEOUT=2s
SE_ENV=() PG_CONF=()
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --rate-duration) RATE_DURATION="$2"; shift 2 ;;
    --se-env) SE_ENV+=("$2"); shift 2 ;;
    --pg-conf) PG_CONF+=(-c "$2"); shift 2 ;;
    --profile) PROFILE=1; shift ;;
    --cpu) CPU=1; shift ;;
    --perf) PERF=1; shift ;;
    --keep-logs) KEEP_LOGS=1; shift ;;
    --wrk-timeout) WRK_TIMEOUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
done

[ "$PERF" = 0 ] || command -v perf >/dev/null 2>&1 || die "--perf needs perf (apt-get install linux-perf)"
# perf names JIT-compiled frames from the map the runtime writes to /tmp/perf-PID.map.
[ "$PERF" = 0 ] || SE_ENV+=(DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0)
bench_init tx-bench
bench_build MemberCenter/MemberCenter.csproj SendEngine/SendEngine.csproj bench/tools/BenchTools/BenchTools.csproj
pg_conf=("${PG_CONF[@]}")
[ "$PROFILE" = 1 ] && pg_conf+=(-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all -c pg_stat_statements.track_planning=on)
bench_start_pg "${pg_conf[@]}"
[ "$PROFILE" = 1 ] && psql_db sendengine "CREATE EXTENSION pg_stat_statements"
bench_start_sink
bench_start_mc
bench_start_se "${SE_ENV[@]}"
PERF_PID=""
# The recorder stops before the cleanup stops Send Engine; the runtime's perf maps go with it.
perf_cleanup() {
  [ -z "$PERF_PID" ] || { kill -INT "$PERF_PID" 2>/dev/null || true; wait "$PERF_PID" 2>/dev/null || true; PERF_PID=""; }
  rm -f "/tmp/perf-$SE_PID.map" "/tmp/perfinfo-$SE_PID.map"
}
[ "$PERF" = 0 ] || trap 'rc=$?; perf_cleanup; (exit "$rc"); bench_cleanup' EXIT
DOMAIN=shop.bench.example FROM="receipts@shop.bench.example"
bench_tenant "$DOMAIN"

# ~4 KB of HTML, as a receipt might be.
{
  echo '<html><body><h1>Thank you for your order</h1><table>'
  for i in $(seq 1 45); do echo "<tr><td>Item $i of the order, a longer description</td><td>1</td><td>9.90 EUR</td></tr>"; done
  echo '</table><p>Questions? Reply to this message.</p></body></html>'
} >"$WORK/body.html"
log "HTML body: $(wc -c <"$WORK/body.html") bytes"

run_wrk() {  # SCRIPT DURATION [ARGS...] -> wrk output
  local script="$1" d="$2"; shift 2
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$d" --timeout "$WRK_TIMEOUT" --latency -s "$HERE/$script" "$SE" ${1:+--} "$@"
}
open_tasks() { psql_db sendengine "SELECT count(*) FROM transactional_tasks WHERE status IN ('queued', 'scheduled', 'claimed', 'sending')"; }
wait_drained() {  # LABEL
  local t0=$SECONDS
  while [ "$(open_tasks)" != 0 ]; do
    [ $((SECONDS - t0)) -lt "$DRAIN_TIMEOUT" ] || die "$1: tasks still open after $DRAIN_TIMEOUT s"
    sleep 1
  done
  log "$1: queue drained $((SECONDS - t0)) s after the load"
}
db_now() { psql_db sendengine "SELECT now()::text"; }
# phase_check LABEL FROM TO EXPECTED_MIN EXPECTED_MAX: the tasks created in [FROM, TO) are all sent, and their number is
# within the bounds (wrk stops counting at its deadline: at most one request per connection is stored but not counted).
# Prints "tasks dispatcher_rate".
phase_check() {
  local r; r="$(psql_db sendengine "
    SELECT count(*), count(*) FILTER (WHERE status <> 'sent'),
           coalesce(round(count(*) / nullif(extract(epoch FROM max(sent_at) - min(sent_at)), 0))::text, '-')
    FROM transactional_tasks WHERE created_at >= '$2' AND created_at < '$3'")"
  local n bad rate; IFS='|' read -r n bad rate <<<"$r"
  [ "$bad" = 0 ] || { psql_db sendengine "SELECT status, detail, count(*) FROM transactional_tasks WHERE status <> 'sent' GROUP BY 1, 2 LIMIT 5" >&2; die "$1: $bad tasks not sent"; }
  [ "$n" -ge "$4" ] && [ "$n" -le "$5" ] || die "$1: $n tasks stored, expected $4 to $5"
  echo "$n $rate"
}
check_wrk() {  # LABEL LINE
  [ -n "$2" ] || die "$1: wrk printed no BENCH line"
  [ "$(bench_field non2xx "$2")" = 0 ] && [ "$(bench_field socket_errors "$2")" = 0 ] \
    || { grep '^BENCH_FIRST_ERROR' "$LOGS/$1.txt" >&2 || true; die "$1: invalid run (non-2xx or socket errors): $2"; }
}

log "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
log "ceiling: GET /health/live, $DURATION, $CONNECTIONS connections"
st0="$(steal_snapshot)"
run_wrk live.lua "$DURATION" >"$LOGS/live.txt" 2>&1
LIVE_STEAL="$(steal_pct "$st0" "$(steal_snapshot)")"
LIVE="$(grep '^BENCH ' "$LOGS/live.txt")"; log "health/live: $LIVE"
LIVE_RPS="$(bench_field rps "$LIVE")"

log "warm-up $WARMUP (one recipient)"
run_wrk email.lua "$WARMUP" "$API_KEY" "$FROM" 1 warm "$WORK/body.html" >"$LOGS/warmup.txt" 2>&1
check_wrk warmup "$(grep '^BENCH ' "$LOGS/warmup.txt" || true)"
wait_drained warm-up

# Inserted, updated and HOT-updated rows of transactional_tasks (or of the table named) so far.
task_row_stats() { psql_db sendengine "SELECT n_tup_ins || ' ' || n_tup_upd || ' ' || n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = '${1:-transactional_tasks}'" | tr '|' ' '; }
# The same for the dispatchers' queue, transactional_deliveries (absent before it existed: zeros), with deletes.
queue_row_stats() { psql_db sendengine "SELECT coalesce((SELECT n_tup_ins || ' ' || n_tup_upd || ' ' || n_tup_hot_upd || ' ' || n_tup_del FROM pg_stat_user_tables WHERE relname = 'transactional_deliveries'), '0 0 0 0')"; }

# Commits and WAL position of the sendengine database, for --cpu: "xact_commit wal_bytes".
db_counters() { psql_db sendengine "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()) || ' ' || pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint
  || ' ' || (SELECT wal_records || ' ' || wal_fpi FROM pg_stat_wal)"; }
ROWS=() CPU_ROWS=()
# phase LABEL RECIPIENTS: one wrk run, checked, drained; appends a row.
phase() {
  local label="$1" k="$2"
  log "$label: $DURATION, $CONNECTIONS connections, $k recipient(s) per request"
  local rows0="" qrows0="" rrows0=""
  if [ "$PROFILE" = 1 ] && [ "$k" = 1 ]; then
    psql_db sendengine "SELECT pg_stat_statements_reset()" >/dev/null
    rows0="$(task_row_stats)" qrows0="$(queue_row_stats)" rrows0="$(task_row_stats transactional_requests)"
  fi
  local from; from="$(db_now)"
  if [ "$PERF" = 1 ] && [ "$k" = 1 ]; then
    perf record -q -e cpu-clock -F 999 -g -p "$SE_PID" -o "$LOGS/perf.data" >"$LOGS/perf.log" 2>&1 &
    PERF_PID=$!
  fi
  local c0 c1 d0="" st0 steal; c0="$(cpu_snapshot)" st0="$(steal_snapshot)"
  [ "$CPU" = 1 ] && d0="$(db_counters)"
  run_wrk email.lua "$DURATION" "$API_KEY" "$FROM" "$k" "$label" "$WORK/body.html" >"$LOGS/$label.txt" 2>&1
  c1="$(cpu_snapshot)" steal="$(steal_pct "$st0" "$(steal_snapshot)")"
  local to; to="$(db_now)"
  local line; line="$(grep '^BENCH ' "$LOGS/$label.txt" || true)"
  check_wrk "$label" "$line"
  local ok secs; ok="$(bench_field ok "$line")"; secs="$(bench_field seconds "$line")"
  if [ "$PROFILE" = 1 ] && [ "$k" = 1 ]; then
    # Planning is counted apart from execution (track_planning; its mean is per planning, not per call): a statement
    # planned at each execution pays it on every call.
    echo "== SQL per request (pg_stat_statements, $ok requests): calls x mean exec ms + plannings x mean plan ms = total ms, statement" >&2
    psql_db sendengine "SELECT to_char(calls::numeric / $ok, 'FM990.000') || ' x ' || to_char(mean_exec_time, 'FM990.000') || ' + '
                               || to_char(plans::numeric / $ok, 'FM990.000') || ' x ' || to_char(mean_plan_time, 'FM990.000') || ' = '
                               || to_char(total_plan_time + total_exec_time, 'FM999990') || ' ms  ' || left(regexp_replace(query, '\s+', ' ', 'g'), 110)
                        FROM pg_stat_statements ORDER BY total_plan_time + total_exec_time DESC LIMIT 15" >&2
  fi
  wait_drained "$label"
  if [ -n "$PERF_PID" ]; then
    kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null || true; PERF_PID=""
    perf_report "$LOGS/perf.data" "Send Engine, $label until drained" \
      'SendEngine|Npgsql|MailKit|MimeKit|Json|Kestrel|GC|Channel|Pipe|Socket|Http|Serilog|OpenTelemetry|Authentication|Routing' 40 70 \
      | tee "$LOGS/perf-report.txt" >&2
  fi
  if [ -n "$d0" ]; then
    sleep 1  # the statistics collector's flush
    local c2 d1; c2="$(cpu_snapshot)" d1="$(db_counters)"
    CPU_ROWS+=("$(awk -v l="$label" -v n="$ok" -v a="$c0" -v b="$c2" -v x="$d0" -v y="$d1" 'BEGIN {split(a, p, " "); split(b, q, " ");
      split(x, u, " "); split(y, v, " ");
      printf "%-22s %8d %12.2f %12.2f %12.2f %12.2f %10.0f", l, n, (q[1]-p[1])*10000/n, (q[3]-p[3])*10000/n, (q[4]-p[4])*10000/n,
        (v[1]-u[1])/n, (v[2]-u[2])/n}')")
    log "CPU: ${CPU_ROWS[-1]}"  # now, in case a later phase fails
    # Of the WAL: records and full-page images per request (FPIs follow a checkpoint: the first change of each page after it).
    awk -v l="$label" -v n="$ok" -v x="$d0" -v y="$d1" 'BEGIN {split(x, u, " "); split(y, v, " ");
      printf "%s: WAL records %.1f, full-page images %.2f per request\n", l, (v[3]-u[3])/n, (v[4]-u[4])/n}' >&2
  fi
  if [ -n "$rows0" ]; then
    sleep 1  # the statistics collector's flush
    # Row writes per request on the hot table (robust to a busy machine, unlike times): each non-HOT update inserts an
    # entry into every index of transactional_tasks.
    awk -v n="$ok" -v a="$rows0" -v b="$(task_row_stats)" -v idx="$(psql_db sendengine "SELECT count(*) FROM pg_indexes WHERE tablename = 'transactional_tasks'")" \
      'BEGIN {split(a, x, " "); split(b, y, " "); printf "== transactional_tasks per request: %.2f inserts, %.2f updates (%.2f HOT), %d indexes\n", (y[1]-x[1])/n, (y[2]-x[2])/n, (y[3]-x[3])/n, idx}' >&2
    awk -v n="$ok" -v a="$rrows0" -v b="$(task_row_stats transactional_requests)" \
      -v idx="$(psql_db sendengine "SELECT count(*) FROM pg_indexes WHERE tablename = 'transactional_requests'")" \
      'BEGIN {split(a, x, " "); split(b, y, " "); printf "== transactional_requests per request: %.2f inserts, %.2f updates (%.2f HOT), %d indexes\n", (y[1]-x[1])/n, (y[2]-x[2])/n, (y[3]-x[3])/n, idx}' >&2
    awk -v n="$ok" -v a="$qrows0" -v b="$(queue_row_stats)" \
      'BEGIN {split(a, x, " "); split(b, y, " "); printf "== transactional_deliveries per request: %.2f inserts, %.2f updates (%.2f HOT), %.2f deletes\n", (y[1]-x[1])/n, (y[2]-x[2])/n, (y[3]-x[3])/n, (y[4]-x[4])/n}' >&2
  fi
  local checked; checked="$(phase_check "$label" "$from" "$(db_now)" $((ok * k)) $(((ok + CONNECTIONS) * k)))"
  ROWS+=("$(printf '%-22s %9s %9.0f %9s %9s %9s %10s %12s %28s %6s%%' "$label" "$(bench_field rps "$line")" \
    "$(awk -v a="$ok" -v k="$k" -v s="$secs" 'BEGIN {print a * k / s}')" "$(bench_field p50_ms "$line")" "$(bench_field p90_ms "$line")" \
    "$(bench_field p99_ms "$line")" "$(awk -v a="$(bench_field rps "$line")" -v b="$LIVE_RPS" 'BEGIN {printf "%.0f %%", 100 * a / b}')" \
    "${checked#* }" "$(cpu_per "$ok" "$c0" "$c1")" "$steal")")
}
phase one-recipient 1
phase ten-recipients 10

# Constant rate: the time from the request to the relay's 250, per task (--rate 0: skipped).
if [ "$RATE" != 0 ]; then
log "constant rate: $RATE requests/s for $RATE_DURATION s, one recipient (BenchTools rate)"
body="$(python3 -c 'import json,sys; print(json.dumps({"message": {"from_email": sys.argv[1], "from_name": "Bench shop", "subject": "Your receipt {{n}}",
  "html": open(sys.argv[2]).read(), "to": [{"email": "rate-{{run}}-{{n}}@bench.example", "name": "Reader"}], "metadata": {"order": "{{run}}-{{n}}"}}}))' "$FROM" "$WORK/body.html")"
printf '%s' "$body" >"$WORK/rate-body.json"
from="$(db_now)"
dotnet bench/tools/BenchTools/bin/Release/net10.0/BenchTools.dll rate "$SE/api/v1/email" --rate "$RATE" --duration "$RATE_DURATION" \
  --connections 64 --tag "r$RANDOM" --body "$WORK/rate-body.json" --header "X-Pigeon-Api-Key: $API_KEY" >"$LOGS/rate.txt" 2>&1 \
  || { cat "$LOGS/rate.txt" >&2; die "the constant-rate client failed"; }
RATE_LINE="$(grep '^BENCH ' "$LOGS/rate.txt" || true)"
[ -n "$RATE_LINE" ] && [ "$(bench_field non2xx "$RATE_LINE")" = 0 ] && [ "$(bench_field errors "$RATE_LINE")" = 0 ] \
  || { cat "$LOGS/rate.txt" >&2; die "constant rate: invalid run (non-2xx or errors)"; }
wait_drained constant-rate
rate_n="$(bench_field requests "$RATE_LINE")"
phase_check constant-rate "$from" "$(db_now)" "$rate_n" "$rate_n" >/dev/null
E2E="$(psql_db sendengine "
  SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM sent_at - created_at)) * 1000)::numeric, 1) || ' ' ||
         round((percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM sent_at - created_at)) * 1000)::numeric, 1) || ' ' ||
         round((max(extract(epoch FROM sent_at - created_at)) * 1000)::numeric, 1)
  FROM transactional_tasks WHERE created_at >= '$from'")"
read -r e2e_p50 e2e_p99 e2e_max <<<"$E2E"
fi

# No loss, no duplicate: smtp-sink received exactly one message per sent task (warm-up included).
sent_total="$(psql_db sendengine "SELECT count(*) FROM transactional_tasks WHERE status = 'sent'")"
waited=0
while [ "$(sink_messages)" -lt "$sent_total" ] && [ "$waited" -lt 40 ]; do sleep 0.5; waited=$((waited + 1)); done
[ "$(sink_messages)" = "$sent_total" ] || die "smtp-sink received $(sink_messages) messages for $sent_total sent tasks"

echo
echo "Send Engine transactional API benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), wrk -t$THREADS -c$CONNECTIONS -d$DURATION, load average at start $LOAD_START, now $(cut -d' ' -f1-3 /proc/loadavg)"
[ "${#SE_ENV[@]}" = 0 ] || echo "variations: se-env='${SE_ENV[*]}'"
printf '%-22s %9s %9s %9s %9s %9s %10s %12s %28s %7s\n' run 'req/s' 'tasks/s' 'p50 ms' 'p90 ms' 'p99 ms' 'vs live' 'sent msg/s' 'CPU ms/req SE/MC/PG/all' 'steal'
printf '%-22s %9s %9s %9s %9s %9s %10s %12s %28s %6s%%\n' 'health/live (ceiling)' "$LIVE_RPS" - "$(bench_field p50_ms "$LIVE")" - "$(bench_field p99_ms "$LIVE")" '100 %' - - "$LIVE_STEAL"
for r in "${ROWS[@]}"; do echo "$r"; done
[ "$RATE" = 0 ] || echo "constant rate: $(bench_field rps "$RATE_LINE") req/s (target $RATE) for $RATE_DURATION s, late starts $(bench_field late_starts "$RATE_LINE"); HTTP p50/p99 $(bench_field p50_ms "$RATE_LINE") / $(bench_field p99_ms "$RATE_LINE") ms; request to relay's 250 p50 / p99 / max: $e2e_p50 / $e2e_p99 / $e2e_max ms"
if [ "$CPU" = 1 ]; then
  echo "CPU-based, from each phase's start until its queue drained (accepting and delivering):"
  printf '%-22s %8s %12s %12s %12s %12s %10s\n' phase requests 'SE s/10k' 'PG s/10k' 'machine s/10k' 'commits/req' 'WAL B/req'
  for r in "${CPU_ROWS[@]}"; do echo "$r"; done
fi
echo "Every task sent; smtp-sink received exactly one message per sent task ($sent_total)."
echo "Targets: one recipient >= 2,000 req/s with p99 <= 50 ms; ten recipients >= 5,000 tasks/s; at 500 req/s, request to 250 p50 <= 200 ms and p99 <= 1 s."
