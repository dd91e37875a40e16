#!/usr/bin/env bash
# Server time of the console's subscriber routes on a tenant holding many subscribers.
#
#   bench/membercenter/console.sh [--subscribers 1000000] [--requests 200] [--keep-logs]
#
# Builds Member Center (Release), starts a throw-away PostgreSQL cluster and Member Center (Production settings,
# request logs off) on free loopback ports, makes a tenant, a list and a tenant_api client through the admin API,
# seeds the list with bench/membercenter/console-seed.sql (generate_series), prints the EXPLAIN (ANALYZE) of the
# prefix search, then times each route with sequential curl requests (time to first byte on loopback: the server's
# time plus a loopback round trip) and prints p50/p95/max in ms. Stops everything it started.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/../../scripts/lib.sh"
cd "$REPO_ROOT"

COUNT=1000000 REQUESTS=200 KEEP_LOGS=0
while [ $# -gt 0 ]; do
  case "$1" in
    --subscribers) COUNT="$2"; shift 2 ;;
    --requests) REQUESTS="$2"; shift 2 ;;
    --keep-logs) KEEP_LOGS=1; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
done
command -v dotnet >/dev/null 2>&1 || die "the .NET SDK (dotnet) is required"
ensure_prereqs postgres curl

WORK="$(mktemp -d /tmp/mc-console-bench.XXXXXX)"
chmod 755 "$WORK"
LOGS="$WORK/logs"; mkdir -p "$LOGS"
MC_PID="" PG_DATA=""
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if [ -n "$MC_PID" ]; then
    kill -TERM "$MC_PID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$MC_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$MC_PID" 2>/dev/null; wait "$MC_PID" 2>/dev/null
  fi
  if [ -n "$PG_DATA" ]; then run_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1; fi
  if [ "$KEEP_LOGS" = 1 ] || [ "$rc" -ne 0 ]; then rm -rf "$WORK/pg"; log "logs kept in $LOGS"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "dotnet build MemberCenter -c Release"
dotnet build MemberCenter/MemberCenter.csproj -c Release -nologo -v q -tl:off -clp:ErrorsOnly >"$LOGS/build.log" 2>&1 \
  || { cat "$LOGS/build.log" >&2; die "Member Center does not build"; }

install -d -m 700 "$WORK/pg"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$WORK/pg"
PG_PORT="$(free_port 56432)"
run_pg "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-instructions >"$LOGS/initdb.log" 2>&1 \
  || { cat "$LOGS/initdb.log" >&2; die "initdb failed"; }
PG_DATA="$WORK/pg/data"
run_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$WORK/pg/postgres.log" -w -t 60 -o "-p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1" start >/dev/null \
  || { tail -n 30 "$WORK/pg/postgres.log" >&2; die "PostgreSQL did not start"; }
psql_db() { psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d membercenter -X -q "$@"; }
createdb -h 127.0.0.1 -p "$PG_PORT" -U postgres membercenter

MC_PORT="$(free_port 18850)"
MC="http://127.0.0.1:$MC_PORT"
ADMIN_SECRET="$(random_secret)"
log "starting Member Center on $MC"
(
  cd MemberCenter
  export ASPNETCORE_ENVIRONMENT=Production
  export ConnectionStrings__MemberCenter="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=membercenter"
  export Database__ApplyMigrationsOnStartup=true
  export Auth__Issuer="$MC/" Auth__RequireHttps=false PublicUrls__MemberCenter="$MC"
  export Smtp__Host=127.0.0.1 Smtp__Port="$(free_port 26250)" Smtp__UseTls=false
  export Bootstrap__AdminClientId=bench-admin Bootstrap__AdminClientSecret="$ADMIN_SECRET"
  export Auth__SigningKeys__Password="$(random_secret)" Privacy__AddressHashKey="$(random_secret)"
  export Serilog__MinimumLevel__Default=Warning
  exec dotnet bin/Release/net10.0/MemberCenter.dll --urls "$MC"
) >"$LOGS/membercenter.log" 2>&1 </dev/null &
MC_PID=$!
for _ in $(seq 1 180); do
  curl -fsS -o /dev/null "$MC/health/ready" 2>/dev/null && break
  kill -0 "$MC_PID" 2>/dev/null || { tail -n 40 "$LOGS/membercenter.log" >&2; die "Member Center exited during startup"; }
  sleep 0.5
done
curl -fsS -o /dev/null "$MC/health/ready" || die "Member Center did not become ready"

token_for() {
  curl -fsS -X POST "$MC/oauth/token" --data-urlencode grant_type=client_credentials \
    --data-urlencode "client_id=$1" --data-urlencode "client_secret=$2" | json_field access_token
}
admin_post() { curl -fsS -X POST "$MC$1" -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' -d "$2"; }
ADMIN_TOKEN="$(token_for bench-admin "$ADMIN_SECRET")"
TENANT_ID="$(admin_post /admin/tenants '{"name":"Console bench"}' | json_field tenant_id)"
LIST_ID="$(admin_post "/admin/tenants/$TENANT_ID/lists" '{"name":"Big list"}' | json_field list_id)"
client_json="$(admin_post "/admin/tenants/$TENANT_ID/clients" '{"usage":"tenant_api"}')"
TOKEN="$(token_for "$(json_field client_id <<<"$client_json")" "$(json_field client_secret <<<"$client_json")")"
[ -n "$TOKEN" ] || die "seeding the tenant failed: $client_json"

log "seeding $COUNT subscribers (console-seed.sql)"
t0="$EPOCHREALTIME"
psql_db -v tenant_id="$TENANT_ID" -v list_id="$LIST_ID" -v count="$COUNT" -f "$HERE/console-seed.sql" >"$LOGS/seed.log"
log "seeded in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.0f", b - a}') s"

# An address in the middle of the list, for the detail route and a realistic prefix.
SAMPLE="$(psql_db -tA -c "SELECT email FROM subscribers WHERE tenant_id = '$TENANT_ID' ORDER BY id OFFSET $((COUNT / 2)) LIMIT 1")"
PREFIX="${SAMPLE:0:3}"
log "EXPLAIN of the prefix search (prefix '$PREFIX', 50 rows)"
psql_db -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
  SELECT p.id, p.email, p.email_key, p.created_at, p.undeliverable_at FROM subscribers p
  WHERE p.tenant_id = '$TENANT_ID' AND p.email_key COLLATE \"C\" >= '$PREFIX'
    AND p.email_key COLLATE \"C\" < left('$PREFIX', -1) || chr(ascii(right('$PREFIX', 1)) + 1)
  ORDER BY p.email_key COLLATE \"C\" LIMIT 51"

# time ROUTE: REQUESTS sequential GETs; prints p50/p95/max of time to first byte in ms.
time_route() {
  local name="$1" path="$2" out="$LOGS/times-$1.txt"
  curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "$MC$path" || die "$name: $path failed"
  : >"$out"
  for _ in $(seq 1 "$REQUESTS"); do
    curl -fsS -o /dev/null -w '%{time_starttransfer}\n' -H "Authorization: Bearer $TOKEN" "$MC$path" >>"$out"
  done
  sort -n "$out" | awk -v name="$name" '{v[NR] = $1 * 1000} END {
    printf "BENCH route=%s requests=%d p50_ms=%.1f p95_ms=%.1f max_ms=%.1f\n", name, NR, v[int(NR * 0.5) + (NR * 0.5 > int(NR * 0.5))],
      v[int(NR * 0.95) + (NR * 0.95 > int(NR * 0.95))], v[NR]}'
}
log "timing $REQUESTS sequential requests per route (load average $(cut -d' ' -f1-3 /proc/loadavg))"
{
  time_route search-prefix "/api/subscribers?email=$PREFIX&limit=50"
  time_route search-prefix-list-status "/api/subscribers?email=$PREFIX&list_id=$LIST_ID&status=confirmed&limit=50"
  time_route search-all "/api/subscribers?limit=50"
  time_route list-newest "/api/lists/$LIST_ID/subscribers?limit=50"
  time_route list-pending "/api/lists/$LIST_ID/subscribers?status=pending&limit=50"
  time_route detail "/api/subscribers/$SAMPLE"
} | tee "$LOGS/summary.txt"
log "subscribers: $(psql_db -tA -c "SELECT count(*) FROM subscribers WHERE tenant_id = '$TENANT_ID'")"
