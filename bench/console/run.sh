#!/usr/bin/env bash
# The operations console at scale (docs/performance.md, "Console"): each page's server time with a tenant holding
# SUBSCRIBERS subscribers and JOBS send jobs, and the live progress view's cost to delivery.
#
#   bench/console/run.sh [--subscribers 1000000] [--jobs 1000] [--suppressions 100000] [--bulk 20000]
#                        [--watchers 100] [--requests 100] [--keep-logs]
#
# Builds Member Center, Send Engine, the console and BenchTools (Release); starts a private PostgreSQL cluster,
# smtp-sink, Member Center and Send Engine (Production) and the console (Development: it signs people in over plain
# http only there) on free loopback ports. Through the admin APIs: a tenant, a send_api client and a person who owns the
# tenant (address confirmed in SQL, as the mailed link would). Seeds with generate_series: SUBSCRIBERS on a big list
# (bench/membercenter/console-seed.sql), BULK on a bulk list, JOBS finished send jobs and SUPPRESSIONS suppressions.
# Then:
#   1. delivery: a job to the bulk list into smtp-sink, no watchers: messages/s (first recipient taken to last sent);
#   2. pages: signs the person in through Member Center's login form (BenchTools console-signin) and times REQUESTS
#      sequential GETs of each console page with the session cookie (time to first byte on loopback: the console's
#      time, including its calls to both services, plus a loopback round trip); prints p50/p95/max beside the 200 ms
#      target;
#   3. watchers: the same job again while WATCHERS server-sent-event streams watch it through the console's relay
#      (BenchTools sse-watchers); prints the rate and its ratio to (1) beside the 5 % target.
# Stops everything it started.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/../../scripts/lib.sh"
# shellcheck source=bench/lib.sh
source "$HERE/../lib.sh"
cd "$REPO_ROOT"

SUBSCRIBERS=1000000 JOBS=1000 SUPPRESSIONS=100000 BULK=20000 WATCHERS=100 REQUESTS=100
while [ $# -gt 0 ]; do
  case "$1" in
    --subscribers) SUBSCRIBERS="$2"; shift 2 ;;
    --jobs) JOBS="$2"; shift 2 ;;
    --suppressions) SUPPRESSIONS="$2"; shift 2 ;;
    --bulk) BULK="$2"; shift 2 ;;
    --watchers) WATCHERS="$2"; shift 2 ;;
    --requests) REQUESTS="$2"; shift 2 ;;
    --keep-logs) KEEP_LOGS=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
done

bench_init console-bench
bench_build MemberCenter/MemberCenter.csproj SendEngine/SendEngine.csproj Console/Console.csproj bench/tools/BenchTools/BenchTools.csproj
BENCH_TOOLS=(dotnet "$REPO_ROOT/bench/tools/BenchTools/bin/Release/net10.0/BenchTools.dll")
bench_start_pg
bench_start_sink
CONSOLE_PORT="$(free_port 18070)"; CONSOLE="http://127.0.0.1:$CONSOLE_PORT"
CONSOLE_SECRET="$(random_secret)"
bench_start_mc Console__ClientSecret="$CONSOLE_SECRET" Console__PublicUrl="$CONSOLE"
bench_start_se
bench_tenant

admin_post() { post_json "$MC$1" "$ADMIN_TOKEN" "$2"; }
LIST_ID="$(admin_post "/admin/tenants/$TENANT_ID/lists" '{"name":"Big list"}' | json_field list_id)"
BULK_LIST_ID="$(admin_post "/admin/tenants/$TENANT_ID/lists" '{"name":"Bulk list"}' | json_field list_id)"
send_json="$(admin_post "/admin/tenants/$TENANT_ID/clients" '{"usage":"send_api","name":"bench"}')"
SEND_TOKEN="$(token_for "$(json_field client_id <<<"$send_json")" "$(json_field client_secret <<<"$send_json")" "newsletter:send.write newsletter:send.read")"
PERSON_EMAIL="owner@console-bench.example" PERSON_PASSWORD="Bench-$(random_secret)-9"
USER_ID="$(admin_post /admin/people "{\"email\":\"$PERSON_EMAIL\",\"name\":\"Bench Owner\",\"password\":\"$PERSON_PASSWORD\"}" | json_field user_id)"
psql_db membercenter "UPDATE users SET email_confirmed = true WHERE id = '$USER_ID'" >/dev/null
admin_post "/admin/tenants/$TENANT_ID/members" "{\"user_id\":\"$USER_ID\",\"role\":\"owner\"}" >/dev/null
[ -n "$LIST_ID" ] && [ -n "$BULK_LIST_ID" ] && [ -n "$SEND_TOKEN" ] && [ -n "$USER_ID" ] || die "seeding the tenant through the admin API failed"

log "seeding $SUBSCRIBERS subscribers, $BULK bulk subscribers, $JOBS jobs and $SUPPRESSIONS suppressions (generate_series)"
t0="$EPOCHREALTIME"
psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d membercenter -X -q -v ON_ERROR_STOP=1 -v tenant_id="$TENANT_ID" -v list_id="$LIST_ID" \
  -v count="$SUBSCRIBERS" -f "$REPO_ROOT/bench/membercenter/console-seed.sql" >"$LOGS/seed.log"
psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d membercenter -X -q -v ON_ERROR_STOP=1 -v tenant_id="$TENANT_ID" -v list_id="$BULK_LIST_ID" \
  -v count="$BULK" >>"$LOGS/seed.log" <<'SQL'
BEGIN;
INSERT INTO subscribers (id, tenant_id, email, email_key, created_at)
SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, :'tenant_id', 'bulk-' || g || '@bulk.example', 'bulk-' || g || '@bulk.example', now()
FROM generate_series(1, :count) AS g;
INSERT INTO subscriptions (id, list_id, subscriber_id, status, preferences, created_at, updated_at, confirmed_at, confirm_mails_in_window)
SELECT ('00000000-0000-7000-9000-' || lpad(to_hex(g), 12, '0'))::uuid, :'list_id', ('00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'))::uuid,
       1, jsonb_build_object('n', g), now(), now(), now(), 0
FROM generate_series(1, :count) AS g;
COMMIT;
ANALYZE subscribers; ANALYZE subscriptions;
SQL
psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d sendengine -X -q -v ON_ERROR_STOP=1 -v tenant_id="$TENANT_ID" -v list_id="$LIST_ID" \
  -v jobs="$JOBS" -v suppressions="$SUPPRESSIONS" >>"$LOGS/seed.log" <<'SQL'
BEGIN;
-- Finished jobs, one a minute back from now, ids time-ordered like Send Engine's (UUIDv7-shaped).
INSERT INTO send_jobs (id, tenant_id, list_id, name, subject, body_text, status, scheduled_at, created_at, started_at, finished_at)
SELECT (lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint - (:jobs - g) * 60000), 12, '0') || '7' || substr(md5('j' || g), 1, 3) || '8'
          || substr(md5('j' || g), 4, 15))::uuid,
       :'tenant_id', :'list_id', 'Issue ' || g, 'Issue ' || g, 'Hello {{email}}', 'completed',
       now() - make_interval(mins => :jobs - g), now() - make_interval(mins => :jobs - g), now() - make_interval(mins => :jobs - g),
       now() - make_interval(mins => :jobs - g) + interval '20 seconds'
FROM generate_series(1, :jobs) AS g;
INSERT INTO suppressions (tenant_id, email, reason, source, created_at)
SELECT :'tenant_id', substr(md5('x' || g), 1, 8) || '.' || g || '@suppressed' || (g % 50) || '.com',
       (ARRAY['manual', 'complaint', 'hard_bounce', 'unsubscribe'])[1 + g % 4], (ARRAY['api', 'esp', 'delivery'])[1 + g % 3], now()
FROM generate_series(1, :suppressions) AS g;
COMMIT;
ANALYZE send_jobs; ANALYZE suppressions;
SQL
log "seeded in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.0f", b - a}') s"

log "starting the console on $CONSOLE"
createdb -h 127.0.0.1 -p "$PG_PORT" -U postgres console
(
  cd "$REPO_ROOT/Console"
  export ASPNETCORE_ENVIRONMENT=Development
  export Auth__Issuer="$MC/" Console__PublicUrl="$CONSOLE" Console__MemberCenterUrl="$MC" Console__SendEngineUrl="$SE"
  export Console__ClientSecret="$CONSOLE_SECRET" Serilog__MinimumLevel__Default=Warning
  # Sessions and the Data Protection key ring live in the console's own database (docs/console.md).
  export ConnectionStrings__Console="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=console" Database__ApplyMigrationsOnStartup=true
  exec dotnet bin/Release/net10.0/NewsletterConsole.dll --urls "$CONSOLE"
) >"$LOGS/console.log" 2>&1 </dev/null &
CONSOLE_PID=$!; BENCH_PIDS+=("$CONSOLE_PID")
for _ in $(seq 1 240); do
  curl -fsS -o /dev/null "$CONSOLE/health/live" 2>/dev/null && break
  kill -0 "$CONSOLE_PID" 2>/dev/null || { tail -n 40 "$LOGS/console.log" >&2; die "the console exited during startup"; }
  sleep 0.5
done

# job_rate NAME: a job to the bulk list, sent into smtp-sink; sets JOB_ID and prints its rate (messages per second from
# the start of its run to its end: Send Engine's started_at and finished_at). WATCH_CMD, when set, runs alongside.
create_job() {
  post_json "$SE/api/send-jobs" "$SEND_TOKEN" \
    "{\"list_id\":\"$BULK_LIST_ID\",\"name\":\"$1\",\"subject\":\"Bulk {{email}}\",\"body_text\":\"Hello {{email}}, number {{n}}.\",\"scheduled_at\":\"$(date -u -d '+3 seconds' +%Y-%m-%dT%H:%M:%SZ)\"}" \
    | json_field id
}
wait_job() {  # JOB_ID: until completed (at most 30 min)
  local status=""
  for _ in $(seq 1 3600); do
    status="$(psql_db sendengine "SELECT status FROM send_jobs WHERE id = '$1'")"
    [ "$status" = completed ] && return 0
    case "$status" in failed|cancelled|paused) die "job $1 ended $status";; esac
    sleep 0.5
  done
  die "job $1 did not complete ($status)"
}
job_rate() {  # JOB_ID -> messages/s
  psql_db sendengine "SELECT round(($BULK / extract(epoch FROM finished_at - started_at))::numeric, 1) FROM send_jobs WHERE id = '$1'"
}

log "warm-up: a job of $BULK to smtp-sink"
WARM_JOB="$(create_job warm-up)"; wait_job "$WARM_JOB"
log "delivery without watchers"
PLAIN_JOB="$(create_job plain)"; wait_job "$PLAIN_JOB"
PLAIN_RATE="$(job_rate "$PLAIN_JOB")"

log "signing $PERSON_EMAIL in to the console"
COOKIE="$("${BENCH_TOOLS[@]}" console-signin "$CONSOLE" --email "$PERSON_EMAIL" --password "$PERSON_PASSWORD")" || die "console sign-in failed"

SAMPLE="$(psql_db membercenter "SELECT email FROM subscribers WHERE tenant_id = '$TENANT_ID' AND email NOT LIKE 'bulk-%' ORDER BY id OFFSET $((SUBSCRIBERS / 2)) LIMIT 1")"
PREFIX="${SAMPLE:0:3}"
SUPPRESSED="$(psql_db sendengine "SELECT email FROM suppressions WHERE tenant_id = '$TENANT_ID' ORDER BY email OFFSET $((SUPPRESSIONS / 2)) LIMIT 1")"
JOBS_CURSOR="$(curl -fsS -H "Authorization: Bearer $SEND_TOKEN" "$SE/api/send-jobs?limit=$((JOBS / 2))" | json_field next_cursor)"

# time_page NAME PATH: REQUESTS sequential GETs with the session cookie (each must be 200); p50/p95/max of the time to
# first byte in ms, and the 200 ms target.
time_page() {
  local name="$1" path="$2" out="$LOGS/times-$1.txt" code
  code="$(curl -sS -o "$LOGS/page-$1.html" -w '%{http_code}' -H "Cookie: $COOKIE" "$CONSOLE$path")"
  [ "$code" = 200 ] || die "$name: $path answered $code (see $LOGS/page-$1.html)"
  : >"$out"
  for _ in $(seq 1 "$REQUESTS"); do
    curl -fsS -o /dev/null -w '%{time_starttransfer}\n' -H "Cookie: $COOKIE" "$CONSOLE$path" >>"$out"
  done
  sort -n "$out" | awk -v name="$name" '{v[NR] = $1 * 1000} END {
    p95 = v[int(NR * 0.95) + (NR * 0.95 > int(NR * 0.95))];
    printf "BENCH page=%s requests=%d p50_ms=%.1f p95_ms=%.1f max_ms=%.1f target_p95_ms=200 %s\n", name, NR, v[int(NR * 0.5) + (NR * 0.5 > int(NR * 0.5))],
      p95, v[NR], (p95 <= 200 ? "ok" : "OVER")}'
}
log "timing $REQUESTS sequential requests per page (load average $(cut -d' ' -f1-3 /proc/loadavg))"
{
  time_page overview "/"
  time_page lists "/lists"
  time_page list "/lists/$LIST_ID"
  time_page list-pending "/lists/$LIST_ID?status=pending"
  time_page subscribers-prefix "/subscribers?email=$PREFIX"
  time_page subscriber "/subscribers/$SAMPLE"
  time_page send-jobs "/send-jobs"
  time_page send-jobs-deep "/send-jobs?after=$JOBS_CURSOR"
  time_page send-job "/send-jobs/$PLAIN_JOB"
  time_page send-job-sent "/send-jobs/$PLAIN_JOB?status=sent"
  time_page message "/send-jobs/$PLAIN_JOB/message"
  time_page compose "/send-jobs/new?listId=$LIST_ID"
  time_page suppressions "/suppressions"
  time_page suppressions-prefix "/suppressions?email=${SUPPRESSED:0:3}"
  time_page suppressions-reason "/suppressions?reason=complaint&source=esp"
  time_page transactional "/transactional"
  time_page credentials "/credentials"
  time_page people "/people"
  time_page operation-log "/operation-log"
  time_page status "/status"
} | tee "$LOGS/pages.txt"

log "delivery with $WATCHERS watchers of the job's live progress (through the console)"
WATCHED_JOB="$(create_job watched)"
"${BENCH_TOOLS[@]}" sse-watchers "$CONSOLE/send-jobs/$WATCHED_JOB/progress" --cookie "$COOKIE" --count "$WATCHERS" --seconds 1800 \
  >"$LOGS/watchers.txt" 2>&1 &
WATCHERS_PID=$!; BENCH_PIDS+=("$WATCHERS_PID")
wait_job "$WATCHED_JOB"
wait "$WATCHERS_PID" || true
WATCHED_RATE="$(job_rate "$WATCHED_JOB")"
grep '^BENCH' "$LOGS/watchers.txt" || die "the watchers printed nothing: $(cat "$LOGS/watchers.txt")"
awk -v a="$PLAIN_RATE" -v b="$WATCHED_RATE" -v w="$WATCHERS" 'BEGIN {
  slow = (1 - b / a) * 100;
  printf "BENCH delivery plain_msgs_per_s=%s watched_msgs_per_s=%s watchers=%d ratio=%.3f slowdown_pct=%.1f target_slowdown_pct=5 %s\n",
    a, b, w, b / a, slow, (slow <= 5 ? "ok" : "OVER")}' | tee -a "$LOGS/pages.txt"
log "smtp-sink took $(sink_messages) messages"
