#!/usr/bin/env bash
# Benchmarks Member Center's token issuance (POST /oauth/token, client_credentials) and subscribe
# (POST /newsletter/subscribe, bearer token, a new address per request) with wrk, on this machine.
#
#   bench/membercenter/run.sh [--duration 30s] [--warmup 15s] [--connections 16] [--threads 2]
#                             [--smtp smtp-sink|maildev|none] [--profile] [--keep-logs]
#                             [--conn-extra 'No Reset On Close=true;...'] [--pg-conf synchronous_commit=off]...
#                             [--mc-env DOTNET_gcServer=0]... [--perf]
#
# It builds Member Center (Release), starts a throw-away PostgreSQL 15 cluster under /tmp, an SMTP sink,
# and Member Center in Production mode on free loopback ports; seeds a tenant, a list and a tenant_api client
# through the admin API; warms up; runs wrk for each endpoint; prints a summary; and stops everything it started.
# --profile also measures the framework ceiling (GET /health/live), enables pg_stat_statements and prints the
# SQL statements executed per request of each endpoint, and runs short experiments (exp-*) whose requests fail on
# purpose (wrong secret, unknown client, unsupported grant, unknown list, invalid email) to split the CPU cost
# per request into its parts. --conn-extra, --pg-conf and --mc-env try configuration-only changes.
# --perf samples Member Center with `perf record` during the measured token and subscribe runs (managed frames
# named through DOTNET_PerfMapEnabled) and prints where its CPU time goes; sampling costs throughput.
# wrk runs on the same cores as Member Center and PostgreSQL, so the figures are for the whole box.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/../../scripts/lib.sh"
cd "$REPO_ROOT"

DURATION=30s WARMUP=15s CONNECTIONS=16 THREADS=2 SMTP=smtp-sink PROFILE=0 KEEP_LOGS=0 CONN_EXTRA="" EXP_DURATION=10s
PG_CONF=() MC_ENV=() PERF=0
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --smtp) SMTP="$2"; shift 2 ;;
    --profile) PROFILE=1; shift ;;
    --keep-logs) KEEP_LOGS=1; shift ;;
    --conn-extra) CONN_EXTRA="$2"; shift 2 ;;
    --pg-conf) PG_CONF+=("$2"); shift 2 ;;
    --mc-env) MC_ENV+=("$2"); shift 2 ;;
    --perf) PERF=1; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
done
case "$SMTP" in smtp-sink|maildev|none) ;; *) die "--smtp must be smtp-sink, maildev or none" ;; esac

command -v dotnet >/dev/null 2>&1 || die "the .NET SDK (dotnet) is required"
command -v wrk >/dev/null 2>&1 || apt_install wrk
prereqs=(postgres curl)
[ "$SMTP" = smtp-sink ] && prereqs+=(postfix)
[ "$SMTP" = maildev ] && prereqs+=(node)
ensure_prereqs "${prereqs[@]}"
[ "$SMTP" = maildev ] && ensure_node_tools
SMTP_SINK="$(command -v smtp-sink || echo /usr/sbin/smtp-sink)"
[ "$PERF" = 0 ] || command -v perf >/dev/null 2>&1 || die "--perf needs perf (apt-get install linux-perf)"

WORK="$(mktemp -d /tmp/mc-bench.XXXXXX)"
chmod 755 "$WORK"
LOGS="$WORK/logs"; mkdir -p "$LOGS"

# ---------------------------------------------------------------------------------------------------
MC_PID="" SMTP_PID="" PG_DATA=""
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if [ -n "$MC_PID" ]; then
    kill -TERM "$MC_PID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$MC_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$MC_PID" 2>/dev/null; wait "$MC_PID" 2>/dev/null
  fi
  if [ -n "$SMTP_PID" ]; then kill -TERM "$SMTP_PID" 2>/dev/null; wait "$SMTP_PID" 2>/dev/null; fi
  if [ -n "$MC_PID" ]; then rm -f "/tmp/perf-$MC_PID.map" "/tmp/perfinfo-$MC_PID.map"; fi
  if [ -n "$PG_DATA" ]; then run_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1; fi
  if [ "$KEEP_LOGS" = 1 ] || [ "$rc" -ne 0 ]; then
    rm -rf "$WORK/pg"
    log "logs kept in $LOGS"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


# ---------------------------------------------------------------------------------------------------
log "dotnet build MemberCenter -c Release"
dotnet build MemberCenter/MemberCenter.csproj -c Release -nologo -v q -tl:off -clp:ErrorsOnly >"$LOGS/build.log" 2>&1 \
  || { cat "$LOGS/build.log" >&2; die "Member Center does not build"; }

# PostgreSQL 15: a fresh cluster with default settings (fsync and synchronous_commit on).
install -d -m 700 "$WORK/pg"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$WORK/pg"
PG_PORT="$(free_port 55432)"
run_pg "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-instructions >"$LOGS/initdb.log" 2>&1 \
  || { cat "$LOGS/initdb.log" >&2; die "initdb failed"; }
PG_DATA="$WORK/pg/data"
pg_opts="-p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1"
[ "$PROFILE" = 1 ] && pg_opts+=" -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
for c in "${PG_CONF[@]}"; do pg_opts+=" -c $c"; done
log "starting PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT"
run_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$WORK/pg/postgres.log" -w -t 60 -o "$pg_opts" start >/dev/null \
  || { tail -n 30 "$WORK/pg/postgres.log" >&2; die "PostgreSQL did not start"; }
psql_db() { psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "${2:-membercenter}" -X -q -tA -c "$1"; }
createdb -h 127.0.0.1 -p "$PG_PORT" -U postgres membercenter
[ "$PROFILE" = 1 ] && psql_db "CREATE EXTENSION pg_stat_statements"

# SMTP: smtp-sink (postfix's C sink; accepts and discards, so it costs next to nothing) or maildev (keeps mail).
SMTP_PORT="$(free_port 25250)"
case "$SMTP" in
  smtp-sink)
    log "starting smtp-sink on 127.0.0.1:$SMTP_PORT"
    sink_user=(); [ "$(id -u)" -eq 0 ] && sink_user=(-u nobody)
    "$SMTP_SINK" "${sink_user[@]}" "127.0.0.1:$SMTP_PORT" 1000 >"$LOGS/smtp.log" 2>&1 </dev/null &
    SMTP_PID=$! ;;
  maildev)
    web_port="$(free_port 10800)"
    log "starting maildev on 127.0.0.1:$SMTP_PORT (web $web_port)"
    node tools/node_modules/maildev/dist/bin/maildev.js --smtp "$SMTP_PORT" --ip 127.0.0.1 --web "$web_port" --web-ip 127.0.0.1 \
      --mail-directory "$WORK/maildev" >"$LOGS/smtp.log" 2>&1 </dev/null &
    SMTP_PID=$! ;;
  none) log "no SMTP server: the outbox dispatcher will fail and back off" ;;
esac
for _ in $(seq 1 50); do [ "$SMTP" = none ] || port_in_use "$SMTP_PORT" && break; sleep 0.2; done

# Member Center, Production settings, request logs off (Warning).
MC_PORT="$(free_port 17850)"
MC="http://127.0.0.1:$MC_PORT"
ADMIN_SECRET="$(random_secret)"
log "starting Member Center on $MC"
(
  cd MemberCenter
  export ASPNETCORE_ENVIRONMENT=Production
  export ConnectionStrings__MemberCenter="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=membercenter${CONN_EXTRA:+;$CONN_EXTRA}"
  export Database__ApplyMigrationsOnStartup=true
  export Auth__Issuer="$MC/" Auth__RequireHttps=false PublicUrls__MemberCenter="$MC"
  export Smtp__Host=127.0.0.1 Smtp__Port="$SMTP_PORT" Smtp__UseTls=false
  export Bootstrap__AdminClientId=bench-admin Bootstrap__AdminClientSecret="$ADMIN_SECRET"
  # Production refuses unencrypted signing keys; the cluster is new each run, so a new password will do.
  export Auth__SigningKeys__Password="$(random_secret)"
  export Privacy__AddressHashKey="$(random_secret)"  # required in Production; the cluster is new each run
  export Serilog__MinimumLevel__Default=Warning
  for kv in "${MC_ENV[@]}"; do export "${kv?}"; done
  # W^X double-maps JIT code, which hides it from the perf map; turn it off while profiling.
  if [ "$PERF" = 1 ]; then export DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0; fi
  exec dotnet bin/Release/net10.0/MemberCenter.dll --urls "$MC"
) >"$LOGS/membercenter.log" 2>&1 </dev/null &
MC_PID=$!
for _ in $(seq 1 180); do
  curl -fsS -o /dev/null "$MC/health/ready" 2>/dev/null && break
  kill -0 "$MC_PID" 2>/dev/null || { tail -n 40 "$LOGS/membercenter.log" >&2; die "Member Center exited during startup"; }
  sleep 0.5
done
curl -fsS -o /dev/null "$MC/health/ready" || die "Member Center did not become ready"

# ---------------------------------------------------------------------------------------------------
# Seed through the admin API.
token_for() {  # CLIENT_ID SECRET -> access token
  curl -fsS -X POST "$MC/oauth/token" --data-urlencode grant_type=client_credentials \
    --data-urlencode "client_id=$1" --data-urlencode "client_secret=$2" | json_field access_token
}
admin_post() { curl -fsS -X POST "$MC$1" -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' -d "$2"; }
ADMIN_TOKEN="$(token_for bench-admin "$ADMIN_SECRET")"
[ -n "$ADMIN_TOKEN" ] || die "no admin token"
TENANT_ID="$(admin_post /admin/tenants '{"name":"Bench"}' | json_field tenant_id)"
LIST_ID="$(admin_post "/admin/tenants/$TENANT_ID/lists" '{"name":"Bench"}' | json_field list_id)"
client_json="$(admin_post "/admin/tenants/$TENANT_ID/clients" '{"usage":"tenant_api"}')"
CLIENT_ID="$(json_field client_id <<<"$client_json")"
CLIENT_SECRET="$(json_field client_secret <<<"$client_json")"
[ -n "$TENANT_ID" ] && [ -n "$LIST_ID" ] && [ -n "$CLIENT_ID" ] && [ -n "$CLIENT_SECRET" ] || die "seeding failed: $client_json"
TENANT_TOKEN="$(token_for "$CLIENT_ID" "$CLIENT_SECRET")"
[ -n "$TENANT_TOKEN" ] || die "no tenant_api token"
log "seeded tenant $TENANT_ID, list $LIST_ID, client $CLIENT_ID"
if [ "$PROFILE" = 1 ]; then
  # OpenIddict's secret format: 0x01, PRF (0 SHA-1, 1 SHA-256, 2 SHA-512), iteration count, salt length (big-endian uint32s).
  hex="$(psql_db "SELECT encode(decode(client_secret, 'base64'), 'hex') FROM \"OpenIddictApplications\" WHERE client_id = '$CLIENT_ID'")"
  log "client secret hash: format 0x${hex:0:2}, PRF $((16#${hex:2:8})), PBKDF2 iterations $((16#${hex:10:8})), salt $((16#${hex:18:8})) bytes"
fi

# ---------------------------------------------------------------------------------------------------
# CPU seconds (user+system) of Member Center and of the PostgreSQL cluster (postmaster, its live children,
# and the children it has reaped), from /proc.
TICKS="$CLOCK_TICKS"
mc_cpu() { proc_cpu "$MC_PID"; }
vmhwm() { awk '/^VmHWM/ {printf "%d MB", $2 / 1024}' "/proc/$MC_PID/status"; }

RESULTS=()
# run_wrk NAME DURATION SCRIPT ARGS...: runs wrk, checks errors, records a result line with CPU split.
run_wrk() {
  local name="$1" dur="$2" script="$3"; shift 3
  local out="$LOGS/wrk-$name.txt" mc0 pg0 mc1 pg1 wrk_cpu
  local cmd=(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$dur" --latency -s "$HERE/$script" "$MC" -- "$@")
  local all0 all1
  local w0="$EPOCHREALTIME" w1
  mc0="$(mc_cpu)"; pg0="$(pg_cpu "$PG_DATA")"; all0="$(machine_cpu)"
  local t0 t1; t0="$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)"
  local perf_pid=""
  if [ "$PERF" = 1 ] && { [ "$name" = token ] || [ "$name" = subscribe ]; }; then
    perf record -q -e cpu-clock -F 999 -g -p "$MC_PID" -o "$LOGS/perf-$name.data" >"$LOGS/perf-$name.log" 2>&1 &
    perf_pid=$!
  fi
  "${cmd[@]}" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed ($name)"; }
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true; fi
  t1="$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)"
  wrk_cpu="$(awk -v a="$t0" -v b="$t1" -v t="$TICKS" 'BEGIN {printf "%.2f", (b - a) / t}')"
  mc1="$(mc_cpu)"; pg1="$(pg_cpu "$PG_DATA")"; all1="$(machine_cpu)"; w1="$EPOCHREALTIME"
  local line; line="$(grep '^BENCH ' "$out")" || { cat "$out" >&2; die "no summary from wrk ($name)"; }
  # CPU shares are over the wall-clock window around wrk (a little longer than the measured seconds).
  local secs; secs="$(awk -v a="$w0" -v b="$w1" 'BEGIN {print b - a}')"
  local reqs; reqs="$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$line")"
  local cpu; cpu="$(awk -v m0="$mc0" -v m1="$mc1" -v p0="$pg0" -v p1="$pg1" -v w="$wrk_cpu" -v a0="$all0" -v a1="$all1" -v s="$secs" -v n="$reqs" \
    'BEGIN {m = (m1-m0)/s; p = (p1-p0)/s; k = w/s; a = (a1-a0)/s; o = a - m - p - k; if (o < 0) o = 0;
            printf "cpu_cores: mc=%.2f pg=%.2f wrk=%.2f other=%.2f machine=%.2f mc_ms_per_req=%.2f pg_ms_per_req=%.2f",
                   m, p, k, o, a, (m1-m0)*1000/n, (p1-p0)*1000/n}')"
  line="${line/BENCH name=* requests=/BENCH name=$name requests=}"
  RESULTS+=("$line $cpu mc_vmhwm=$(vmhwm | tr -d ' ')")
  printf '%s\n  %s\n' "$line" "$cpu" >&2
  if grep -q '^BENCH_FIRST_ERROR' "$out"; then grep '^BENCH_FIRST_ERROR' "$out" >&2; fi
  if ! grep -q 'non2xx=0 socket_errors=0' <<<"$line"; then
    case "$name" in
      warmup*) log "$name: requests failed" ;;
      exp-*) ;;  # experiments fail on purpose
      *) INVALID=1; log "$name: requests failed; this run is INVALID" ;;
    esac
  fi
}
perf_show() {  # NAME
  [ "$PERF" = 1 ] && [ -f "$LOGS/perf-$1.data" ] || return 0
  perf_report "$LOGS/perf-$1.data" "$1: Member Center" \
    'OpenIddict|MemberCenter|Npgsql|EntityFrameworkCore|IdentityModel|Rfc2898|Pbkdf2|RSA|MailKit|MimeKit|Outbox|Kestrel|Serilog|GC' 25 40 \
    | tee -a "$LOGS/perf-report.txt" >&2
}
pg_stats_reset() { [ "$PROFILE" = 1 ] && psql_db "SELECT pg_stat_statements_reset()" >/dev/null || true; }
pg_stats_show() {  # NAME REQUESTS
  [ "$PROFILE" = 1 ] || return 0
  {
    echo "== $1: SQL statements per request (pg_stat_statements, $2 requests)"
    psql_db "SELECT round(calls::numeric / $2, 2) || ' x ' || round(mean_exec_time::numeric, 3) || ' ms  ' ||
                    regexp_replace(left(query, 160), '\s+', ' ', 'g')
             FROM pg_stat_statements WHERE calls >= $2 / 2 ORDER BY calls DESC, total_exec_time DESC LIMIT 25"
    psql_db "SELECT 'xact_commit per request: ' || round((xact_commit)::numeric / $2, 2) FROM pg_stat_database WHERE datname = 'membercenter'"
  } | tee -a "$LOGS/pg-stats.txt" >&2
}
pg_xact_reset() { [ "$PROFILE" = 1 ] && psql_db "SELECT pg_stat_reset()" >/dev/null || true; }

INVALID=0
RUN_TAG="$(date +%s)"
log "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
log "warm-up ($WARMUP each)"
run_wrk warmup-token "$WARMUP" token.lua "$CLIENT_ID" "$CLIENT_SECRET"
run_wrk warmup-subscribe "$WARMUP" subscribe.lua "$TENANT_TOKEN" "$LIST_ID" "w$RUN_TAG"
[ "$PROFILE" = 1 ] && run_wrk warmup-live "$WARMUP" live.lua

if [ "$PROFILE" = 1 ]; then
  log "GET /health/live ($DURATION): framework ceiling"
  run_wrk health_live "$DURATION" live.lua
fi

log "POST /oauth/token ($DURATION, $THREADS threads, $CONNECTIONS connections)"
pg_stats_reset; pg_xact_reset
run_wrk token "$DURATION" token.lua "$CLIENT_ID" "$CLIENT_SECRET"
perf_show token
pg_stats_show token "$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"${RESULTS[-1]}")"

log "POST /newsletter/subscribe ($DURATION, $THREADS threads, $CONNECTIONS connections)"
before_subs="$(psql_db "SELECT count(*) FROM subscriptions")"
pg_stats_reset; pg_xact_reset
run_wrk subscribe "$DURATION" subscribe.lua "$TENANT_TOKEN" "$LIST_ID" "m$RUN_TAG"
sub_requests="$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"${RESULTS[-1]}")"
pg_stats_show subscribe "$sub_requests"
perf_show subscribe
after_subs="$(psql_db "SELECT count(*) FROM subscriptions")"
if [ "$PROFILE" = 1 ]; then
  log "experiments ($EXP_DURATION each): requests that stop early, to split the per-request cost"
  run_wrk exp-token-bad-grant "$EXP_DURATION" token.lua "$CLIENT_ID" "$CLIENT_SECRET" password
  run_wrk exp-token-unknown-client "$EXP_DURATION" token.lua no-such-client "$CLIENT_SECRET"
  run_wrk exp-token-wrong-secret "$EXP_DURATION" token.lua "$CLIENT_ID" "wrong-$CLIENT_SECRET"
  run_wrk exp-subscribe-bad-email "$EXP_DURATION" subscribe.lua "$TENANT_TOKEN" "$LIST_ID" "x$RUN_TAG" -
  run_wrk exp-subscribe-unknown-list "$EXP_DURATION" subscribe.lua "$TENANT_TOKEN" "$(new_uuid)" "y$RUN_TAG"
fi
outbox="$(psql_db "SELECT count(*) FILTER (WHERE sent_at IS NOT NULL) || ' sent, ' || count(*) FILTER (WHERE completed_at IS NULL) || ' pending' FROM outbox_messages")"

# ---------------------------------------------------------------------------------------------------
echo
echo "Member Center benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), wrk -t$THREADS -c$CONNECTIONS -d$DURATION, SMTP: $SMTP"
[ -z "$CONN_EXTRA${PG_CONF[*]}${MC_ENV[*]}" ] || echo "variations: conn-extra='$CONN_EXTRA' pg-conf='${PG_CONF[*]}' mc-env='${MC_ENV[*]}'"
printf '%-26s %10s %9s %9s %9s %9s %7s %19s   %s\n' endpoint requests 'req/s' 'p50 ms' 'p90 ms' 'p99 ms' errors 'CPU ms/req MC / PG' 'CPU cores busy: MC / PostgreSQL / wrk / other processes'
for r in "${RESULTS[@]}"; do
  f() { sed -n "s/.*[ ]$1=\\([^ ]*\\).*/\\1/p" <<<"$r"; }
  n="$(sed -n 's/^BENCH name=\([^ ]*\).*/\1/p' <<<"$r")"
  [ "${n#warmup}" = "$n" ] || continue
  [ "${n#exp-}" = "$n" ] || [ "$PROFILE" = 1 ] || continue
  printf '%-26s %10s %9s %9s %9s %9s %7s %19s   %s / %s / %s / %s\n' "$n" "$(f requests)" "$(f rps)" "$(f p50_ms)" "$(f p90_ms)" "$(f p99_ms)" \
    "$(( $(f non2xx) + $(f socket_errors) ))" "$(f mc_ms_per_req) / $(f pg_ms_per_req)" "$(f mc)" "$(f pg)" "$(f wrk)" "$(f other)"
done
echo "subscriptions created by the measured run: $((after_subs - before_subs)) (wrk counted $sub_requests requests)"
echo "outbox after the run: $outbox"
echo "Member Center peak RSS (VmHWM): $(vmhwm)"
echo "targets: token >= 500 req/s, p99 <= 100 ms; subscribe >= 1500 req/s, p99 <= 50 ms"
if [ "$INVALID" = 1 ]; then echo "INVALID: some requests failed (see above)"; exit 1; fi
