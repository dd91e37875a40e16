#!/usr/bin/env bash
# Benchmarks Send Engine's bulk delivery into postfix's smtp-sink on loopback, next to two ceilings measured in the
# same run and into the same sink: a bare MailKit sender (bench/sendengine/BareMailKit, same connection count, no
# database: the library ceiling) and postfix's smtp-source (the protocol ceiling).
#
#   bench/sendengine/run.sh [--recipients 100000] [--small 10000] [--warm 5000] [--connections 8] [--processes 1] [--timeout 900]
#                           [--se-env KEY=VALUE]... [--conn-extra 'No Reset On Close=true;...'] [--keep-logs] [--perf]
#                           [--profile] [--cpu] [--rounds 1]
#
# It builds Member Center, Send Engine and BareMailKit (Release); starts a throw-away PostgreSQL 15 cluster under
# /tmp, smtp-sink and Member Center on free loopback ports; creates a tenant, two lists and a send_api client through
# Member Center's admin API; seeds RECIPIENTS confirmed subscribers with SQL straight into Member Center's database
# (the first SMALL of them also on a second list); then, for the small list and for the big list, starts a fresh Send
# Engine (Production, Delivery__Concurrency=CONNECTIONS), creates a job through POST /api/send-jobs with a send_api
# token, waits for it to complete and records: rate (sent / (finished_at - started_at)), time to first message (from
# started_at, which Send Engine sets at the first committed snapshot page, and from the POST), and Send Engine's peak RSS
# (VmHWM). Two fresh processes make the RSS figures comparable (10k vs 100k: is it flat?). The ceilings have the same
# message count: bare MailKit runs before the jobs and again after them (the reference is the mean of the two, the
# machine's speed moving by a third within minutes), smtp-source after them. --processes N (N >= 2) adds a row: the big
# list again, as one job delivered by N Send Engine processes on the same database at once (SendJobs__Runners=N and Hangfire__WorkerCount=1 in each, so each
# process runs exactly one of the job's runners, with CONNECTIONS connections each). Every row is checked for duplicates:
# the messages smtp-sink counted during the job (-c) must equal the recipients, every row sent with its own Message-ID;
# the N-process row also checks that each process ran a runner. Before each measured job its fresh processes first
# deliver a warm-up job of WARM recipients (a third list, the first WARM subscribers; not measured), so that the figures
# are those of a service that has run before, as production's long-lived processes have: a cold process spent about a
# tenth of Send Engine's CPU of a 100k job, and most of Member Center's, in the JIT compiler (perf, 2026-12-03).
# Member Center's internal routes are called 40 times each first too (warm_member_center), and Send Engine's
# GET /api/send-jobs/{id}, which the bench polls each second during a job, 40 times after the warm-up job. The poll
# itself is one curl and bash builtins (wait_job). --warm 0 measures the first
# job after a start instead. Each rate is printed with its ratio to bare MailKit
# measured in the same run (the mean of its two runs). Everything it started is stopped on exit; the whole run is bounded by TIMEOUT seconds per job. --perf samples Send Engine with `perf record` during the big job and prints where its CPU
# time goes (managed frames named through DOTNET_PerfMapEnabled); sampling costs throughput. With
# BENCH_PERF_LABEL=big-Np (N = --processes) it samples the N-process job instead, all its processes in one profile. --profile loads
# pg_stat_statements and prints, for the big job (and the N-process one), every statement of both databases by total
# time (calls per message, mean and total ms, rows, WAL), the updates (and how many were HOT), inserts and
# autovacuum/autoanalyze runs of each Send Engine table written during the job, the cluster's WAL (records, kB,
# full-page images) and Send Engine's database's commits.
# --cpu prints, per job, the CPU seconds per 10,000 messages of Send Engine, PostgreSQL (every backend, both databases) and
# Member Center (user+system from /proc, from the POST to the job's end), of the bare MailKit sender's own process, and the
# ratio (SE+PG+MC) / bare: a figure that, unlike the rates, holds on a machine shared with other work.
# --rounds N (N >= 2) then delivers the big list N - 1 more times on one process, each job followed by another bare
# MailKit run, and prints each round's rate and CPU ratio against the mean of the bare runs on either side, its Send
# Engine's VmHWM (each round starts a fresh process, so each is a first job's peak), and their medians: a single
# run's "vs bare" moved between 56 % and 78 % on this machine within 20 minutes (2026-12-03 17:03–17:23).
# Each job and bare run also records the hypervisor's steal (the share of the VM's CPU time given to other guests,
# /proc/stat), the cause of most of that movement; the rounds' summary adds the median of the quiet rounds, those with
# at most QUIET_STEAL % (2) of steal in the job and in both bare runs around it.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/../../scripts/lib.sh"
cd "$REPO_ROOT"

RECIPIENTS=100000 SMALL=10000 WARM=5000 CONNECTIONS=8 PROCESSES=1 TIMEOUT=900 KEEP_LOGS=0 CONN_EXTRA="" PERF=0 PROFILE=0 CPU=0 ROUNDS=1 QUIET_STEAL=2
SE_ENV=()
while [ $# -gt 0 ]; do
  case "$1" in
    --recipients) RECIPIENTS="$2"; shift 2 ;;
    --small) SMALL="$2"; shift 2 ;;
    --warm) WARM="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --processes) PROCESSES="$2"; shift 2 ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    --se-env) SE_ENV+=("$2"); shift 2 ;;
    --conn-extra) CONN_EXTRA="$2"; shift 2 ;;
    --keep-logs) KEEP_LOGS=1; shift ;;
    --perf) PERF=1; shift ;;
    --profile) PROFILE=1; shift ;;
    --cpu) CPU=1; shift ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1' "$HERE/$(basename "$0")"; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
done
[ "$SMALL" -le "$RECIPIENTS" ] || die "--small must not exceed --recipients"
[ "$WARM" -le "$RECIPIENTS" ] || die "--warm must not exceed --recipients"
[[ "$PROCESSES" =~ ^[1-9][0-9]?$ ]] || die "--processes must be a number from 1 to 99"
[[ "$ROUNDS" =~ ^[1-9][0-9]?$ ]] || die "--rounds must be a number from 1 to 99"
[ "$ROUNDS" = 1 ] || [ "$PERF$PROFILE" = 00 ] || die "--rounds does not go with --perf or --profile (they instrument the jobs they compare)"
case "${BENCH_PERF_LABEL:-big}" in big|"big-${PROCESSES}p") ;; *) die "BENCH_PERF_LABEL must be big or big-${PROCESSES}p (a job this run delivers)" ;; esac

command -v dotnet >/dev/null 2>&1 || die "the .NET SDK (dotnet) is required"
ensure_prereqs postgres curl postfix
SMTP_SINK="$(command -v smtp-sink || echo /usr/sbin/smtp-sink)"
SMTP_SOURCE="$(command -v smtp-source || echo /usr/sbin/smtp-source)"
[ "$PERF" = 0 ] || command -v perf >/dev/null 2>&1 || die "--perf needs perf (apt-get install linux-perf)"

WORK="$(mktemp -d /tmp/se-bench.XXXXXX)"
chmod 755 "$WORK"
LOGS="$WORK/logs"; mkdir -p "$LOGS"

# ---------------------------------------------------------------------------------------------------
MC_PID="" SMTP_PID="" PG_DATA="" AUX_PID=""
SE_PIDS=()  # the Send Engine processes of the current job
stop_pid() {  # PID: TERM, wait up to 10 s, then KILL
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  stop_pid "$AUX_PID"
  for pid in "${SE_PIDS[@]}"; do stop_pid "$pid"; done
  stop_pid "$MC_PID"
  stop_pid "$SMTP_PID"
  if [ -n "$PG_DATA" ]; then run_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1; fi
  if [ "$KEEP_LOGS" = 1 ] || [ "$rc" -ne 0 ]; then
    cp "$WORK/pg/postgres.log" "$LOGS/" 2>/dev/null; rm -rf "$WORK/pg"
    log "logs kept in $LOGS"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

json_num() { tr -d '\n' | sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\\([0-9]*\\).*/\\1/p"; }

# ---------------------------------------------------------------------------------------------------
log "dotnet build (Release): MemberCenter, SendEngine, BareMailKit"
for p in MemberCenter/MemberCenter.csproj SendEngine/SendEngine.csproj bench/sendengine/BareMailKit/BareMailKit.csproj; do
  dotnet build "$p" -c Release -nologo -v q -tl:off -clp:ErrorsOnly >>"$LOGS/build.log" 2>&1 \
    || { tail -n 30 "$LOGS/build.log" >&2; die "$p does not build"; }
done

install -d -m 700 "$WORK/pg"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$WORK/pg"
PG_PORT="$(free_port 55532)"
run_pg "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-instructions >"$LOGS/initdb.log" 2>&1 \
  || { cat "$LOGS/initdb.log" >&2; die "initdb failed"; }
PG_DATA="$WORK/pg/data"
log "starting PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT (default settings)"
pg_opts="-p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1"
[ "$PROFILE" = 1 ] && pg_opts+=" -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all -c pg_stat_statements.track_planning=on"
# BENCH_AUTO_EXPLAIN_MS=N (diagnosis only: instruments every statement): plans of statements slower than N ms in postgres.log (kept with --keep-logs).
[ -n "${BENCH_AUTO_EXPLAIN_MS:-}" ] && pg_opts="${pg_opts/shared_preload_libraries=pg_stat_statements/shared_preload_libraries=pg_stat_statements,auto_explain} -c auto_explain.log_min_duration=${BENCH_AUTO_EXPLAIN_MS}ms -c auto_explain.log_analyze=on -c auto_explain.log_timing=off -c auto_explain.log_buffers=on -c auto_explain.log_nested_statements=on"
run_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$WORK/pg/postgres.log" -w -t 60 -o "$pg_opts" start >/dev/null \
  || { tail -n 30 "$WORK/pg/postgres.log" >&2; die "PostgreSQL did not start"; }
psql_db() { psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$1" -X -q -tA -v ON_ERROR_STOP=1 -c "$2"; }
createdb -h 127.0.0.1 -p "$PG_PORT" -U postgres membercenter
createdb -h 127.0.0.1 -p "$PG_PORT" -U postgres sendengine
[ "$PROFILE" = 1 ] && psql_db postgres "CREATE EXTENSION pg_stat_statements"

SMTP_PORT="$(free_port 25350)"
log "starting smtp-sink on 127.0.0.1:$SMTP_PORT"
sink_user=(); [ "$(id -u)" -eq 0 ] && sink_user=(-u nobody)
# -c: running counters (mesg=N per message received) in its log, read before and after each job to check for duplicates.
"$SMTP_SINK" -c "${sink_user[@]}" "127.0.0.1:$SMTP_PORT" 1000 >"$LOGS/smtp-sink.log" 2>&1 </dev/null &
SMTP_PID=$!
for _ in $(seq 1 50); do port_in_use "$SMTP_PORT" && break; sleep 0.2; done
port_in_use "$SMTP_PORT" || die "smtp-sink did not start"

MC_PORT="$(free_port 17950)"
MC="http://127.0.0.1:$MC_PORT"
ADMIN_SECRET="$(random_secret)" SE_CLIENT_SECRET="$(random_secret)"
ADDRESS_HASH_KEY="$(random_secret)"  # required in Production; both services hash erased addresses with the same key
log "starting Member Center on $MC"
(
  cd MemberCenter
  export ASPNETCORE_ENVIRONMENT=Production
  export ConnectionStrings__MemberCenter="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=membercenter"
  export Database__ApplyMigrationsOnStartup=true
  export Auth__Issuer="$MC/" Auth__RequireHttps=false PublicUrls__MemberCenter="$MC"
  export Smtp__Host=127.0.0.1 Smtp__Port="$SMTP_PORT" Smtp__UseTls=false
  export Bootstrap__AdminClientId=bench-admin Bootstrap__AdminClientSecret="$ADMIN_SECRET"
  # Production refuses unencrypted signing keys; the cluster is new each run, so a new password will do.
  export Auth__SigningKeys__Password="$(random_secret)"
  export Bootstrap__SendEngineClientId=bench-send-engine Bootstrap__SendEngineClientSecret="$SE_CLIENT_SECRET"
  export Privacy__AddressHashKey="$ADDRESS_HASH_KEY"
  export Serilog__MinimumLevel__Default=Warning
  if [ "$PERF" = 1 ]; then export DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0; fi
  # With a warm-up: call counting from the first call instead of after 100 ms without new compilations, so that the
  # warm-up's calls, not the measured job's, promote the hot paths (tiered compilation; the steady state is the same).
  if [ "$WARM" -gt 0 ]; then export DOTNET_TC_CallCountingDelayMs=0; fi
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
token_for() {  # CLIENT_ID SECRET [SCOPE] -> access token
  curl -fsS -X POST "$MC/oauth/token" --data-urlencode grant_type=client_credentials \
    --data-urlencode "client_id=$1" --data-urlencode "client_secret=$2" ${3:+--data-urlencode "scope=$3"} | json_field access_token
}
admin_post() { curl -fsS -X POST "$MC$1" -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' -d "$2"; }
ADMIN_TOKEN="$(token_for bench-admin "$ADMIN_SECRET")"
[ -n "$ADMIN_TOKEN" ] || die "no admin token"
TENANT_ID="$(admin_post /admin/tenants '{"name":"Bench"}' | json_field tenant_id)"
BIG_LIST="$(admin_post "/admin/tenants/$TENANT_ID/lists" '{"name":"Bench big"}' | json_field list_id)"
SMALL_LIST="$(admin_post "/admin/tenants/$TENANT_ID/lists" '{"name":"Bench small"}' | json_field list_id)"
WARM_LIST="$(admin_post "/admin/tenants/$TENANT_ID/lists" '{"name":"Bench warm-up"}' | json_field list_id)"
client_json="$(admin_post "/admin/tenants/$TENANT_ID/clients" '{"usage":"send_api"}')"
SEND_CLIENT_ID="$(json_field client_id <<<"$client_json")"
SEND_CLIENT_SECRET="$(json_field client_secret <<<"$client_json")"
[ -n "$TENANT_ID" ] && [ -n "$BIG_LIST" ] && [ -n "$SMALL_LIST" ] && [ -n "$SEND_CLIENT_ID" ] || die "seeding failed: $client_json"

# Confirmed subscribers, straight into Member Center's tables (the API would take minutes for 100k).
log "seeding $RECIPIENTS confirmed subscribers with SQL ($SMALL of them also on the small list)"
seed_t0="$EPOCHREALTIME"
psql_db membercenter "
  BEGIN;
  CREATE TEMP TABLE seed AS
    SELECT g AS n, gen_random_uuid() AS id, 'bench-' || g || '@example.test' AS email FROM generate_series(1, $RECIPIENTS) g;
  INSERT INTO subscribers (id, tenant_id, email, email_key, created_at)
    SELECT id, '$TENANT_ID', email, email, now() FROM seed;
  INSERT INTO subscriptions (id, list_id, subscriber_id, status, preferences, created_at, updated_at, confirmed_at)
    SELECT gen_random_uuid(), '$BIG_LIST', id, 1, jsonb_build_object('first_name', 'Reader ' || n), now(), now(), now() FROM seed;
  INSERT INTO subscriptions (id, list_id, subscriber_id, status, preferences, created_at, updated_at, confirmed_at)
    SELECT gen_random_uuid(), '$SMALL_LIST', id, 1, jsonb_build_object('first_name', 'Reader ' || n), now(), now(), now() FROM seed WHERE n <= $SMALL;
  INSERT INTO subscriptions (id, list_id, subscriber_id, status, preferences, created_at, updated_at, confirmed_at)
    SELECT gen_random_uuid(), '$WARM_LIST', id, 1, jsonb_build_object('first_name', 'Reader ' || n), now(), now(), now() FROM seed WHERE n <= $WARM;
  COMMIT;
  ANALYZE subscribers; ANALYZE subscriptions;"
log "seeded in $(awk -v a="$seed_t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}') s"

# A ~4 KB message: ~3 KB HTML and ~1 KB text, with merge tags. The same bodies go to BareMailKit.
{
  echo '<html><body><h1>Hello {{ first_name }}</h1>'
  for i in $(seq 1 22); do echo "<p>Paragraph $i of this week's issue: lorem ipsum dolor sit amet, consectetur adipiscing.</p>"; done
  echo '<p>Sent to {{ email }}. <a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>'
} >"$WORK/body.html"
{
  echo 'Hello {{ first_name }},'
  for i in $(seq 1 10); do echo "Paragraph $i of this week's issue: lorem ipsum dolor sit amet, adipiscing."; done
  echo 'Sent to {{ email }}. Unsubscribe: {{ unsubscribe_url }}'
} >"$WORK/body.txt"
json_escape() { python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))' <"$1"; }
BODY_HTML_JSON="$(json_escape "$WORK/body.html")" BODY_TEXT_JSON="$(json_escape "$WORK/body.txt")"

# ---------------------------------------------------------------------------------------------------
vmhwm_mb() { awk '/^VmHWM/ {printf "%d", $2 / 1024}' "/proc/$1/status"; }
vmrss_mb() { local key value _; while read -r key value _; do if [ "$key" = VmRSS: ]; then echo $((value / 1024)); fi; done <"/proc/$1/status"; }  # builtins: wait_job calls it each second

SE_PORT0="$(free_port 17960)"
SE="http://127.0.0.1:$SE_PORT0"  # the first process of a job: the API calls go there
# sink_messages: messages smtp-sink has received so far (its last "mesg=" counter).
sink_messages() { tr '\r' '\n' <"$LOGS/smtp-sink.log" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1; }
# se_cpu: CPU seconds of the current job's Send Engine processes together.
se_cpu() { local t=0 pid; for pid in "${SE_PIDS[@]}"; do t="$(awk -v a="$t" -v b="$(proc_cpu "$pid")" 'BEGIN {printf "%.2f", a + b}')"; done; echo "$t"; }
# start_se LABEL INDEX [KEY=VALUE...]: one more Send Engine process for the current job (appended to SE_PIDS).
start_se() {
  local label="$1" index="$2"; shift 2
  local port url
  if [ "$index" = 1 ]; then port="$SE_PORT0"; else port="$(free_port $((SE_PORT0 + index * 10)))"; fi
  url="http://127.0.0.1:$port"
  log "starting Send Engine on $url ($label), Delivery__Concurrency=$CONNECTIONS${*:+, $*}"
  (
    cd SendEngine
    export ASPNETCORE_ENVIRONMENT=Production
    export ConnectionStrings__SendEngine="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=sendengine${CONN_EXTRA:+;$CONN_EXTRA}"
    export Database__ApplyMigrationsOnStartup=true
    export Auth__Issuer="$MC/" Auth__RequireHttpsMetadata=false
    export MemberCenter__BaseUrl="$MC" MemberCenter__ClientId=bench-send-engine MemberCenter__ClientSecret="$SE_CLIENT_SECRET"
    # The bench sends from an example domain nobody can verify in DNS; verification is not what it measures.
    export SenderDomains__AllowUnverified=true
    export Smtp__Host=127.0.0.1 Smtp__Port="$SMTP_PORT" Smtp__UseTls=false Smtp__FromAddress=newsletter@bench.local
    export Delivery__Concurrency="$CONNECTIONS" Privacy__AddressHashKey="$ADDRESS_HASH_KEY"
    # Production refuses an unauthenticated ESP webhook; the bench does not use it, so any secret token will do.
    export TencentSes__Webhook__Verification=Token TencentSes__Webhook__SecretToken="bench-$SE_CLIENT_SECRET"
    export Serilog__MinimumLevel__Default=Warning Serilog__MinimumLevel__Override__SendEngine=Information
    send_engine_runtime_env
    for kv in "${SE_ENV[@]}" "$@"; do export "${kv?}"; done
    if [ "$PERF" = 1 ]; then export DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0; fi
    if [ "$WARM" -gt 0 ]; then export DOTNET_TC_CallCountingDelayMs=0; fi  # as for Member Center above
    exec dotnet bin/Release/net10.0/SendEngine.dll --urls "$url"
  ) >>"$LOGS/sendengine-$label.log" 2>&1 </dev/null &
  local pid=$!
  SE_PIDS+=("$pid")
  for _ in $(seq 1 180); do
    curl -fsS -o /dev/null "$url/health/ready" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { tail -n 40 "$LOGS/sendengine-$label.log" >&2; die "Send Engine exited during startup"; }
    sleep 0.5
  done
  curl -fsS -o /dev/null "$url/health/ready" || die "Send Engine did not become ready"
}

perf_show() {
  local name="Send Engine" frames='SendEngine|Npgsql|MailKit|MimeKit|Json|GC|Hangfire|Channel'
  if [ "${BENCH_PERF_TARGET:-se}" = mc ]; then
    name="Member Center" frames='MemberCenter|Npgsql|EntityFramework|OpenIddict|Json|GC|Kestrel|Serilog|Channel'
  fi
  perf_report "$LOGS/perf.data" "$name" "$frames" 30 50 | tee -a "$LOGS/perf-report.txt" >&2
}

# job_body LIST NAME: the JSON of a job of the bench's message to LIST.
job_body() {
  echo "{\"tenant_id\":\"$TENANT_ID\",\"list_id\":\"$1\",\"name\":\"$2\",\"subject\":\"Weekly for {{ first_name }}\",\"body_html\":$BODY_HTML_JSON,\"body_text\":$BODY_TEXT_JSON}"
}

# wait_job TOKEN JOB [RSS_LOG]: polls the job each second until it ends or TIMEOUT passes; sets JOB_JSON and
# JOB_STATUS. With RSS_LOG, each poll appends the job's status, its sent count and the first Send Engine process's RSS
# to that file. A poll is one curl and bash builtins (the wait is a `read -t` on a pipe nobody writes): the job shares
# the machine with this loop and the bare sender does not, and with six processes every half second (sed, tr, awk,
# sleep) the loop took about 7 % of the machine's CPU during a job (perf record -a, 2026-12-04).
wait_job() {
  local deadline=$((SECONDS + TIMEOUT)) tick sent _
  JOB_JSON=""; JOB_STATUS=""
  exec {tick}<> <(:)
  while [ "$SECONDS" -lt "$deadline" ]; do
    JOB_JSON="$(curl -fsS "$SE/api/send-jobs/$2" -H "Authorization: Bearer $1")" || die "GET job failed"
    JOB_STATUS=""; [[ $JOB_JSON =~ \"status\"[[:space:]]*:[[:space:]]*\"([a-z_]+)\" ]] && JOB_STATUS="${BASH_REMATCH[1]}"
    if [ -n "${3:-}" ]; then
      sent=""; [[ $JOB_JSON =~ \"sent\"[[:space:]]*:[[:space:]]*([0-9]+) ]] && sent="${BASH_REMATCH[1]}"
      printf '%s %s sent=%s rss_mb=%s\n' "$SECONDS" "$JOB_STATUS" "$sent" "$(vmrss_mb "${SE_PIDS[0]}")" >>"$3"
    fi
    case "$JOB_STATUS" in completed|failed|cancelled) break ;; esac
    read -r -t 1 -u "$tick" _ || true
  done
  exec {tick}>&-
}

# warm_up TOKEN: the warm-up job through the first process's API, until it completed and the sink has its messages.
warm_up() {
  local sink0; sink0="$(sink_messages)"
  local job; job="$(curl -fsS -X POST "$SE/api/send-jobs" -H "Authorization: Bearer $1" -H 'Content-Type: application/json' \
    -d "$(job_body "$WARM_LIST" "bench warm-up")" | json_field id)"
  [ -n "$job" ] || die "the warm-up job was not created"
  wait_job "$1" "$job"
  [ "$JOB_STATUS" = completed ] || die "the warm-up job ended $JOB_STATUS"
  local waited=0
  while [ $(( $(sink_messages) - sink0 )) -lt "$WARM" ] && [ "$waited" -lt 40 ]; do sleep 0.5; waited=$((waited + 1)); done
  # The job's route as the poll calls it, past tiered compilation's 30 calls: otherwise the measured job's polls
  # compiled some 3,000 methods (token validation, Kestrel, EF) while it ran (perf map, 2026-12-04).
  local i; for i in $(seq 1 40); do curl -fsS -o /dev/null "$SE/api/send-jobs/$job" -H "Authorization: Bearer $1"; done
  log "warm-up: $WARM messages delivered, the job's route called 40 times"
}

# warm_member_center: the internal routes a job calls (the list, its recipients pages, its change feed), 40 times each,
# before the first measured job. Member Center lives for the whole bench, but a job calls each route a hundred times at
# most, so a young process still tier-compiled those paths (35,000 methods JIT-compiled, a third of its CPU in the JIT
# during a 100k job after a 20k warm-up job; DOTNET_JitStdOutFile, 2026-12-03); a long-running one has long done so.
warm_member_center() {
  local t i; t="$(token_for bench-send-engine "$SE_CLIENT_SECRET")"
  [ -n "$t" ] || die "no Send Engine token for the warm-up"
  for i in $(seq 1 40); do
    curl -fsS -o /dev/null -H "Authorization: Bearer $t" "$MC/internal/lists/$WARM_LIST?tenant_id=$TENANT_ID"
    curl -fsS -o /dev/null -H "Authorization: Bearer $t" "$MC/internal/lists/$WARM_LIST/recipients?tenant_id=$TENANT_ID&limit=100"
    curl -fsS -o /dev/null -H "Authorization: Bearer $t" "$MC/internal/lists/$WARM_LIST/changes?tenant_id=$TENANT_ID&after=0"
  done
  log "warm-up: Member Center's internal routes called 40 times each"
}

RESULTS=()
# run_job LABEL LIST_ID EXPECTED [PROCS]: fresh Send Engine processes (1 by default), one job through the API (the first
# process's), figures from the API and the database; PROCS >= 2 gives each process one runner of the job.
run_job() {
  local label="$1" list="$2" expected="$3" procs="${4:-1}" i
  SE_PIDS=()
  if [ "$procs" = 1 ]; then
    start_se "$label" 1
  else
    for i in $(seq 1 "$procs"); do start_se "$label-$i" "$i" SendJobs__Runners="$procs" Hangfire__WorkerCount=1; done
  fi
  local rss_idle; rss_idle="$(vmrss_mb "${SE_PIDS[0]}")"
  local token; token="$(token_for "$SEND_CLIENT_ID" "$SEND_CLIENT_SECRET" "newsletter:send.write newsletter:send.read")"
  [ -n "$token" ] || die "no send_api token"
  [ "$WARM" -gt 0 ] && warm_up "$token"
  local body; body="$(job_body "$list" "bench $label")"
  local se0 mc0 pg0 all0 se1 mc1 pg1 all1
  local sink0; sink0="$(sink_messages)"
  se0="$(se_cpu)"; mc0="$(proc_cpu "$MC_PID")"; pg0="$(pg_cpu "$PG_DATA")"; all0="$(machine_cpu)"; local st0; st0="$(steal_snapshot)"
  if [ "$PROFILE" = 1 ] && [ "$label" != small ]; then psql_db postgres "SELECT pg_stat_statements_reset(), pg_stat_reset_shared('wal')" >/dev/null; psql_db sendengine "SELECT pg_stat_reset()" >/dev/null; fi
  local post_at; post_at="$(date -u '+%Y-%m-%d %H:%M:%S.%6N+00')"
  local created; created="$(curl -fsS -X POST "$SE/api/send-jobs" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d "$body")" \
    || die "POST /api/send-jobs failed"
  local job; job="$(json_field id <<<"$created")"
  [ -n "$job" ] || die "no job id in: $created"
  log "job $job ($label, $expected recipients) created"
  if [ "$PERF" = 1 ] && [ "$label" = "${BENCH_PERF_LABEL:-big}" ]; then
    # BENCH_PERF_TARGET=mc: Member Center's process instead (its share of a job: the snapshot's pages, the change feed).
    # BENCH_PERF_LABEL=big-Np: the N-process job instead, all its Send Engine processes in one profile.
    local target; target="$(IFS=,; echo "${SE_PIDS[*]}")"; [ "${BENCH_PERF_TARGET:-se}" = mc ] && target="$MC_PID"
    perf record -q -e cpu-clock -F 999 -g -p "$target" -o "$LOGS/perf.data" >"$LOGS/perf.log" 2>&1 &
    AUX_PID=$!
  fi
  wait_job "$token" "$job" "$LOGS/rss-$label.txt"
  local status="$JOB_STATUS" json="$JOB_JSON" peak=0
  se1="$(se_cpu)"; mc1="$(proc_cpu "$MC_PID")"; pg1="$(pg_cpu "$PG_DATA")"; all1="$(machine_cpu)"; local steal; steal="$(steal_pct "$st0" "$(steal_snapshot)")"
  if [ -n "$AUX_PID" ]; then kill -INT "$AUX_PID"; wait "$AUX_PID" 2>/dev/null || true; AUX_PID=""; perf_show; fi
  local pid; for pid in "${SE_PIDS[@]}"; do [ "$(vmhwm_mb "$pid")" -le "$peak" ] || peak="$(vmhwm_mb "$pid")"; done
  if [ "$PROFILE" = 1 ] && [ "$label" != small ]; then
    # Planning apart from execution (track_planning; its mean is per planning): custom plans pay it at every call.
    echo "== SQL of the $label job (pg_stat_statements, $expected messages): calls per message x mean exec ms + plannings per message x mean plan ms = total ms, rows, WAL kB, database, statement" >&2
    psql_db postgres "SELECT to_char(s.calls::numeric / $expected, 'FM990.0000') || ' x ' || to_char(s.mean_exec_time, 'FM990.000') || ' + '
                             || to_char(s.plans::numeric / $expected, 'FM990.0000') || ' x ' || to_char(s.mean_plan_time, 'FM990.000') || ' = '
                             || to_char(s.total_plan_time + s.total_exec_time, 'FM999990') || ' ms  rows ' || s.rows || '  wal ' || (s.wal_bytes / 1024)::bigint || ' kB  '
                             || d.datname || '  ' || left(regexp_replace(s.query, '\s+', ' ', 'g'), 120)
                      FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
                      ORDER BY s.total_plan_time + s.total_exec_time DESC LIMIT 60" >&2
    echo "== send_job_recipients and send_jobs during the job: updates (HOT), autovacuum/analyze; WAL of the cluster" >&2
    psql_db sendengine "SELECT relname || ': ins ' || n_tup_ins || ' upd ' || n_tup_upd || ' hot ' || n_tup_hot_upd || ' del ' || n_tup_del
                               || ' autovacuum ' || autovacuum_count || ' autoanalyze ' || autoanalyze_count
                        FROM pg_stat_user_tables WHERE n_tup_ins + n_tup_upd + n_tup_del > 0 ORDER BY n_tup_upd + n_tup_ins DESC LIMIT 15" >&2
    psql_db postgres "SELECT 'wal_records ' || wal_records || ' wal_kB ' || (wal_bytes / 1024)::bigint || ' wal_fpi ' || wal_fpi FROM pg_stat_wal" >&2
    psql_db postgres "SELECT 'sendengine commits ' || xact_commit || ' (' || to_char(xact_commit::numeric / $expected, 'FM990.0000') || ' per message) rollbacks ' || xact_rollback
                      FROM pg_stat_database WHERE datname = 'sendengine'" >&2
  fi
  [ "$status" = completed ] || { echo "$json" >&2; die "job $label did not complete within $TIMEOUT s (status $status)"; }
  local sent; sent="$(json_num sent <<<"$json")"
  [ "$sent" = "$expected" ] || { echo "$json" >&2; die "job $label sent $sent of $expected"; }
  # Timings from the database (microsecond timestamps): POST, created_at, started_at (first snapshot page committed), first/last sent_at, finished_at.
  local t; t="$(psql_db sendengine "
    SELECT round(extract(epoch FROM j.created_at - '$post_at'::timestamptz)::numeric, 3),
           round(extract(epoch FROM j.started_at - '$post_at'::timestamptz)::numeric, 3),
           round(extract(epoch FROM min(r.sent_at) - j.started_at)::numeric, 3),
           round(extract(epoch FROM min(r.sent_at) - '$post_at'::timestamptz)::numeric, 3),
           round(extract(epoch FROM j.finished_at - j.started_at)::numeric, 3),
           round(extract(epoch FROM max(r.sent_at) - min(r.sent_at))::numeric, 3),
           count(*) FILTER (WHERE r.status = 'sent'), count(DISTINCT r.message_id)
    FROM send_jobs j JOIN send_job_recipients r ON r.job_id = j.id WHERE j.id = '$job' GROUP BY j.id")"
  IFS='|' read -r created_s snap first_from_start first_from_post deliver_secs span sent_rows distinct_ids <<<"$t"
  [ "$sent_rows" = "$expected" ] && [ "$distinct_ids" = "$expected" ] || die "job $label: $sent_rows sent rows, $distinct_ids distinct Message-IDs"
  # No duplicates: every row is sent once (above), so the sink must have received exactly as many messages.
  local sink1 waited=0
  while sink1="$(sink_messages)"; [ $((sink1 - sink0)) -lt "$expected" ] && [ "$waited" -lt 20 ]; do sleep 0.5; waited=$((waited + 1)); done
  [ $((sink1 - sink0)) = "$expected" ] || die "job $label: smtp-sink received $((sink1 - sink0)) messages for $expected recipients (duplicates or losses)"
  if [ "$procs" -gt 1 ]; then
    for i in $(seq 1 "$procs"); do
      grep -q "Send job $job: runner .* delivering" "$LOGS/sendengine-$label-$i.log" \
        || die "job $label: process $i ran no runner of the job (see $LOGS/sendengine-$label-$i.log)"
    done
  fi
  local line; line="$(awk -v l="$label" -v n="$expected" -v created="$created_s" -v snap="$snap" -v f1="$first_from_start" -v f2="$first_from_post" -v d="$deliver_secs" \
      -v s0="$se0" -v s1="$se1" -v m0="$mc0" -v m1="$mc1" -v p0="$pg0" -v p1="$pg1" -v a0="$all0" -v a1="$all1" -v peak="$peak" -v idle="$rss_idle" -v sp="$span" \
    -v procs="$procs" -v sink=$((sink1 - sink0)) -v steal="$steal" \
    'BEGIN {printf "JOB label=%s processes=%d sink_msgs=%d recipients=%d created_s=%.3f snapshot_s=%.2f first_msg_after_start_s=%.3f first_msg_after_post_s=%.3f deliver_s=%.2f rate=%.0f span_rate=%.0f se_cpu_ms_per_msg=%.3f mc_cpu_ms_per_msg=%.3f pg_cpu_ms_per_msg=%.3f machine_cpu_ms_per_msg=%.3f rss_idle_mb=%d vmhwm_mb=%d se_cpu_s=%.2f mc_cpu_s=%.2f pg_cpu_s=%.2f steal_pct=%.1f",
       l, procs, sink, n, created, snap, f1, f2, d, n / d, n / sp, (s1 - s0) * 1000 / n, (m1 - m0) * 1000 / n, (p1 - p0) * 1000 / n, (a1 - a0) * 1000 / n, idle, peak, s1 - s0, m1 - m0, p1 - p0, steal}')"
  RESULTS+=("$line")
  log "$line"
  for pid in "${SE_PIDS[@]}"; do stop_pid "$pid"; rm -f "/tmp/perf-$pid.map" "/tmp/perfinfo-$pid.map"; done
  SE_PIDS=()
}

field() { sed -n "s/.*[ ]$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }  # NAME LINE: a key=value of a JOB or BENCH line

# run_bare WHEN: the library ceiling once (BareMailKit, CONNECTIONS connections, RECIPIENTS messages); appends its
# BENCH line, with the machine's CPU per message, to BARES.
BARES=()
run_bare() {
  log "library ceiling ($1): BareMailKit, $CONNECTIONS connections, $RECIPIENTS messages"
  local a0 a1 st0; a0="$(machine_cpu)" st0="$(steal_snapshot)"
  dotnet bench/sendengine/BareMailKit/bin/Release/net10.0/BareMailKit.dll --host 127.0.0.1 --port "$SMTP_PORT" \
    --connections "$CONNECTIONS" --count "$RECIPIENTS" --html "$WORK/body.html" --text "$WORK/body.txt" >"$LOGS/bare-$1.txt" 2>&1 &
  AUX_PID=$!
  wait "$AUX_PID" || { cat "$LOGS/bare-$1.txt" >&2; die "BareMailKit failed"; }
  AUX_PID=""
  a1="$(machine_cpu)"
  local line; line="$(grep '^BENCH ' "$LOGS/bare-$1.txt") when=$1 machine_cpu_ms_per_msg=$(awk -v a="$a0" -v b="$a1" -v n="$RECIPIENTS" 'BEGIN {printf "%.3f", (b - a) * 1000 / n}') steal_pct=$(steal_pct "$st0" "$(steal_snapshot)")"
  BARES+=("$line")
  log "$line"
}

[ "$WARM" -gt 0 ] && warm_member_center
log "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
# The ceiling before and after the jobs, their mean the reference: the machine's speed moves by a third within minutes,
# and a single ceiling measured after the jobs compared them with whatever minute it fell on.
run_bare before
[ "$SMALL" -gt 0 ] && run_job small "$SMALL_LIST" "$SMALL"
run_job big "$BIG_LIST" "$RECIPIENTS"
# The same list again, one job shared by PROCESSES Send Engine processes.
[ "$PROCESSES" -gt 1 ] && run_job "big-${PROCESSES}p" "$BIG_LIST" "$RECIPIENTS" "$PROCESSES"
run_bare after
for round in $(seq 2 "$ROUNDS"); do
  run_job "round-$round" "$BIG_LIST" "$RECIPIENTS"
  run_bare "after-round-$round"
done
# NAME [FIRST]: the mean of the bare runs FIRST and FIRST + 1 (0: the runs before and after the first round's jobs)
bare_field() { for b in "${BARES[@]:${2:-0}:2}"; do field "$1" "$b"; done | awk '{s += $1; n++} END {printf "%.2f", s / n}'; }
BARE_RATE="$(bare_field rate)"
BARE_RATE="${BARE_RATE%.*}"

log "protocol ceiling: $SMTP_SOURCE -d -s $CONNECTIONS -m $RECIPIENTS -l 4096 127.0.0.1:$SMTP_PORT"
s0="$EPOCHREALTIME"
timeout "$TIMEOUT" "$SMTP_SOURCE" -d -s "$CONNECTIONS" -m "$RECIPIENTS" -l 4096 "127.0.0.1:$SMTP_PORT" >"$LOGS/smtp-source.txt" 2>&1 \
  || { cat "$LOGS/smtp-source.txt" >&2; die "smtp-source failed"; }
SOURCE_RATE="$(awk -v a="$s0" -v b="$EPOCHREALTIME" -v n="$RECIPIENTS" 'BEGIN {printf "%.0f", n / (b - a)}')"
log "smtp-source: $SOURCE_RATE msg/s"

# ---------------------------------------------------------------------------------------------------
echo
echo "Send Engine bulk delivery benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $CONNECTIONS connections, smtp-sink on loopback, load average now $(cut -d' ' -f1-3 /proc/loadavg)"
[ -z "$CONN_EXTRA${SE_ENV[*]}" ] || echo "variations: conn-extra='$CONN_EXTRA' se-env='${SE_ENV[*]}'"
ratio() { awk -v a="$1" -v b="$BARE_RATE" 'BEGIN {printf "%.0f %%", 100 * a / b}'; }
printf '%-20s %5s %10s %9s %8s %7s %12s %16s %15s %11s %10s %30s\n' run procs messages 'msg/s' 'vs bare' 'steal' 'snapshot s' 'first msg s(start)' 'first msg s(POST)' 'RSS idle' 'VmHWM' 'CPU ms/msg SE/MC/PG/all'
f() { field "$1" "$r"; }  # NAME: a key=value of the row r of the loops below
for r in "${RESULTS[@]}"; do
  [[ "$(f label)" == round-* ]] && continue
  printf '%-20s %5s %10s %9s %8s %6s%% %12s %16s %15s %8s MB %7s MB %30s\n' "send-engine-$(f label)" "$(f processes)" "$(f recipients)" "$(f rate)" "$(ratio "$(f rate)")" "$(f steal_pct)" "$(f snapshot_s)" \
    "$(f first_msg_after_start_s)" "$(f first_msg_after_post_s)" "$(f rss_idle_mb)" "$(f vmhwm_mb)" \
    "$(f se_cpu_ms_per_msg) / $(f mc_cpu_ms_per_msg) / $(f pg_cpu_ms_per_msg) / $(f machine_cpu_ms_per_msg)"
done
for r in "${BARES[@]:0:2}"; do
  printf '%-20s %5s %10s %9s %8s %6s%%\n' "bare-mailkit-$(f when)" - "$RECIPIENTS" "$(f rate)" "$(ratio "$(f rate)")" "$(f steal_pct)"
done
printf '%-20s %5s %10s %9s %8s\n' 'bare-mailkit (mean)' - "$RECIPIENTS" "$BARE_RATE" "100 %"
printf '%-20s %5s %10s %9s %8s\n' smtp-source - "$RECIPIENTS" "$SOURCE_RATE" "$(ratio "$SOURCE_RATE")"
if [ "$CPU" = 1 ]; then
  BARE_CPU="$(bare_field cpu_s)"
  echo
  echo "CPU seconds per 10,000 messages (user+system from /proc; holds on a busy machine, unlike the rates):"
  printf '%-20s %10s %8s %8s %8s %10s %8s %18s\n' run messages SE PG MC SE+PG+MC bare 'ratio (SE+PG+MC)/bare'
  for r in "${RESULTS[@]}"; do
    [[ "$(f label)" == round-* ]] && continue
    awk -v l="send-engine-$(f label)" -v n="$(f recipients)" -v se="$(f se_cpu_s)" -v pg="$(f pg_cpu_s)" -v mc="$(f mc_cpu_s)" -v b="$BARE_CPU" -v bn="$RECIPIENTS" \
      'BEGIN {k = 10000 / n; t = (se + pg + mc) * k; bk = b * 10000 / bn; printf "%-20s %10d %8.2f %8.2f %8.2f %10.2f %8.2f %18.2f\n", l, n, se * k, pg * k, mc * k, t, bk, t / bk}'
  done
  echo "CPU bare_mailkit_cpu_s=$BARE_CPU (mean of before and after) messages=$RECIPIENTS"
fi
if [ "$ROUNDS" -gt 1 ]; then
  echo
  echo "Rounds: the big list on one process, each job against the mean of the bare MailKit runs before and after it:"
  echo "(steal: the most the hypervisor took of the CPUs' time in the job or either bare run; a round is quiet at <= $QUIET_STEAL %)"
  printf '%-8s %9s %14s %8s %22s %8s %9s\n' round 'msg/s' 'bare msg/s' 'vs bare' 'CPU ratio (SE+PG+MC)/bare' 'steal' 'VmHWM'
  round=0
  for r in "${RESULTS[@]}"; do
    case "$(f label)" in big) ;; round-*) ;; *) continue ;; esac
    steal="$(for b in "${BARES[@]:$round:2}"; do field steal_pct "$b"; done; f steal_pct)"
    awk -v n=$((round + 1)) -v rate="$(f rate)" -v br="$(bare_field rate "$round")" -v se="$(f se_cpu_s)" -v pg="$(f pg_cpu_s)" -v mc="$(f mc_cpu_s)" \
      -v bc="$(bare_field cpu_s "$round")" -v st="$(sort -n <<<"$steal" | tail -1)" -v hwm="$(f vmhwm_mb)" \
      'BEGIN {printf "%-8d %9d %14.0f %7.0f %% %22.2f %7.1f%% %6d MB\n", n, rate, br, 100 * rate / br, (se + pg + mc) / bc, st, hwm}'
    round=$((round + 1))
  done | tee "$WORK/rounds.txt"
  median() { sort -n | awk '{v[NR] = $1} END {if (NR == 0) {printf "-"; exit} printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
  quiet="$(awk -v q="$QUIET_STEAL" '$7 + 0 <= q' "$WORK/rounds.txt")"
  echo "ROUNDS n=$ROUNDS median_vs_bare_pct=$(awk '{print $4}' "$WORK/rounds.txt" | median) min_vs_bare_pct=$(awk '{print $4}' "$WORK/rounds.txt" | sort -n | head -1) max_vs_bare_pct=$(awk '{print $4}' "$WORK/rounds.txt" | sort -n | tail -1) median_cpu_ratio=$(awk '{print $6}' "$WORK/rounds.txt" | median) quiet_rounds=$(grep -c . <<<"$quiet" || true) quiet_median_vs_bare_pct=$(awk 'NF {print $4}' <<<"$quiet" | median) max_vmhwm_mb=$(awk '{print $8}' "$WORK/rounds.txt" | sort -n | tail -1)"
fi
echo "Duplicates: none (for each job, smtp-sink received exactly one message per recipient, and every recipient row was sent once with its own Message-ID)."
echo "Targets: Send Engine (1 process) >= 80 % of bare MailKit; ${PROCESSES} processes together >= 1 process; RSS < 300 MB and flat (10k vs 100k); first message <= 1 s after the POST."
