# shellcheck shell=bash
# Shared by bench/transactional/run.sh and bench/webhooks-out/run.sh: a throw-away PostgreSQL cluster under /tmp
# (default settings: fsync and synchronous_commit on), postfix smtp-sink, Member Center and Send Engine (Release,
# Production) on free loopback ports, a tenant with an API key, and the cleanup that stops all of it on exit.
# Source it after scripts/lib.sh; call bench_init first. Everything started goes into BENCH_PIDS and is stopped on exit.

BENCH_PIDS=() PG_DATA="" KEEP_LOGS="${KEEP_LOGS:-0}"

stop_pid() {  # PID: TERM, wait up to 10 s, then KILL
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

bench_cleanup() {
  local rc=$? i
  set +e
  trap - EXIT INT TERM
  for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${BENCH_PIDS[$i]}"; done
  if [ -n "$PG_DATA" ]; then run_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1; fi
  if [ "$KEEP_LOGS" = 1 ] || [ "$rc" -ne 0 ]; then
    [ ! -f "$WORK/pg/postgres.log" ] || cp "$WORK/pg/postgres.log" "$LOGS/" 2>/dev/null
    rm -rf "$WORK/pg"
    log "logs kept in $LOGS"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}

# bench_init NAME: prerequisites, WORK and LOGS, the exit trap.
bench_init() {
  command -v dotnet >/dev/null 2>&1 || die "the .NET SDK (dotnet) is required"
  command -v wrk >/dev/null 2>&1 || apt_install wrk
  ensure_prereqs postgres curl postfix
  SMTP_SINK="$(command -v smtp-sink || echo /usr/sbin/smtp-sink)"
  WORK="$(mktemp -d "/tmp/$1.XXXXXX")"
  chmod 755 "$WORK"
  LOGS="$WORK/logs"; mkdir -p "$LOGS"
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# bench_build PROJECT...: dotnet build -c Release, quietly.
bench_build() {
  local p
  for p in "$@"; do
    log "dotnet build $p -c Release"
    dotnet build "$p" -c Release -nologo -v q -tl:off -clp:ErrorsOnly >>"$LOGS/build.log" 2>&1 \
      || { tail -n 30 "$LOGS/build.log" >&2; die "$p does not build"; }
  done
}

# bench_start_pg [-c name=value]...: a new cluster with both databases; defines psql_db DB SQL.
bench_start_pg() {
  install -d -m 700 "$WORK/pg"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$WORK/pg"
  PG_PORT="$(free_port 55632)"
  run_pg "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-instructions >"$LOGS/initdb.log" 2>&1 \
    || { cat "$LOGS/initdb.log" >&2; die "initdb failed"; }
  PG_DATA="$WORK/pg/data"
  log "starting PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT (fsync and synchronous_commit on)"
  run_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$WORK/pg/postgres.log" -w -t 60 \
    -o "-p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c max_connections=200 $*" start >/dev/null \
    || { tail -n 30 "$WORK/pg/postgres.log" >&2; die "PostgreSQL did not start"; }
  createdb -h 127.0.0.1 -p "$PG_PORT" -U postgres membercenter
  createdb -h 127.0.0.1 -p "$PG_PORT" -U postgres sendengine
}
psql_db() { psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$1" -X -q -tA -v ON_ERROR_STOP=1 -c "$2"; }

# bench_start_sink: smtp-sink with running counters (-c: mesg=N per message) read by sink_messages.
bench_start_sink() {
  SMTP_PORT="$(free_port 25450)"
  log "starting smtp-sink on 127.0.0.1:$SMTP_PORT"
  local sink_user=(); [ "$(id -u)" -eq 0 ] && sink_user=(-u nobody)
  "$SMTP_SINK" -c "${sink_user[@]}" "127.0.0.1:$SMTP_PORT" 1000 >"$LOGS/smtp-sink.log" 2>&1 </dev/null &
  BENCH_PIDS+=($!)
  for _ in $(seq 1 50); do port_in_use "$SMTP_PORT" && break; sleep 0.2; done
  port_in_use "$SMTP_PORT" || die "smtp-sink did not start"
}
sink_messages() { tr '\r' '\n' <"$LOGS/smtp-sink.log" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1 | grep . || echo 0; }

wait_ready() {  # URL PID LOGFILE NAME
  for _ in $(seq 1 240); do
    curl -fsS -o /dev/null "$1/health/ready" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { tail -n 40 "$3" >&2; die "$4 exited during startup"; }
    sleep 0.5
  done
  die "$4 did not become ready"
}

# bench_start_mc [KEY=VALUE]...: Member Center (Production, Warning logs) with the admin and Send Engine clients bootstrapped.
bench_start_mc() {
  MC_PORT="$(free_port 18050)"; MC="http://127.0.0.1:$MC_PORT"
  ADMIN_SECRET="$(random_secret)" SE_CLIENT_SECRET="$(random_secret)"
  ADDRESS_HASH_KEY="$(random_secret)"  # both services hash erased addresses with the same key
  log "starting Member Center on $MC"
  (
    cd "$REPO_ROOT/MemberCenter"
    export ASPNETCORE_ENVIRONMENT=Production
    export ConnectionStrings__MemberCenter="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=membercenter"
    export Database__ApplyMigrationsOnStartup=true
    export Auth__Issuer="$MC/" Auth__RequireHttps=false PublicUrls__MemberCenter="$MC"
    export Smtp__Host=127.0.0.1 Smtp__Port="$SMTP_PORT" Smtp__UseTls=false
    export Bootstrap__AdminClientId=bench-admin Bootstrap__AdminClientSecret="$ADMIN_SECRET"
    export Auth__SigningKeys__Password="$(random_secret)"
    export Bootstrap__SendEngineClientId=bench-send-engine Bootstrap__SendEngineClientSecret="$SE_CLIENT_SECRET"
    export Privacy__AddressHashKey="$ADDRESS_HASH_KEY"
    export Serilog__MinimumLevel__Default=Warning
    for kv in "$@"; do export "${kv?}"; done
    exec dotnet bin/Release/net10.0/MemberCenter.dll --urls "$MC"
  ) >"$LOGS/membercenter.log" 2>&1 </dev/null &
  MC_PID=$!; BENCH_PIDS+=("$MC_PID")
  wait_ready "$MC" "$MC_PID" "$LOGS/membercenter.log" "Member Center"
}

# bench_start_se [KEY=VALUE]...: Send Engine (Production, Warning logs) delivering into smtp-sink; sets SE and SE_PID.
bench_start_se() {
  SE_PORT="$(free_port 18060)"; SE="http://127.0.0.1:$SE_PORT"
  log "starting Send Engine on $SE${*:+ ($*)}"
  (
    cd "$REPO_ROOT/SendEngine"
    export ASPNETCORE_ENVIRONMENT=Production
    export ConnectionStrings__SendEngine="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=sendengine"
    export Database__ApplyMigrationsOnStartup=true
    export Auth__Issuer="$MC/" Auth__RequireHttpsMetadata=false
    export MemberCenter__BaseUrl="$MC" MemberCenter__ClientId=bench-send-engine MemberCenter__ClientSecret="$SE_CLIENT_SECRET"
    # The bench sends from an example domain nobody can verify in DNS; verification is not what it measures.
    export SenderDomains__AllowUnverified=true
    export Smtp__Host=127.0.0.1 Smtp__Port="$SMTP_PORT" Smtp__UseTls=false Smtp__FromAddress=newsletter@bench.local
    export TencentSes__Webhook__Verification=Token TencentSes__Webhook__SecretToken="bench-$SE_CLIENT_SECRET"
    export Webhooks__SecretPassword="$(random_secret)" Privacy__AddressHashKey="$ADDRESS_HASH_KEY"
    export Serilog__MinimumLevel__Default=Warning
    send_engine_runtime_env
    for kv in "$@"; do export "${kv?}"; done
    exec dotnet bin/Release/net10.0/SendEngine.dll --urls "$SE"
  ) >"$LOGS/sendengine.log" 2>&1 </dev/null &
  SE_PID=$!; BENCH_PIDS+=("$SE_PID")
  wait_ready "$SE" "$SE_PID" "$LOGS/sendengine.log" "Send Engine"
}

token_for() {  # CLIENT_ID SECRET [SCOPE] -> access token
  curl -fsS -X POST "$MC/oauth/token" --data-urlencode grant_type=client_credentials \
    --data-urlencode "client_id=$1" --data-urlencode "client_secret=$2" ${3:+--data-urlencode "scope=$3"} | json_field access_token
}
post_json() {  # URL TOKEN BODY
  curl -fsS -X POST "$1" -H "Authorization: Bearer $2" -H 'Content-Type: application/json' -d "$3" \
    || die "POST $1 failed"
}

# bench_tenant [SENDER_DOMAIN]: a tenant, an application and an API key (Member Center's admin API), and the sender
# domain registered in Send Engine when given. Sets ADMIN_TOKEN TENANT_ID API_KEY.
bench_tenant() {
  ADMIN_TOKEN="$(token_for bench-admin "$ADMIN_SECRET")"
  [ -n "$ADMIN_TOKEN" ] || die "no admin token"
  TENANT_ID="$(post_json "$MC/admin/tenants" "$ADMIN_TOKEN" '{"name":"Bench"}' | json_field tenant_id)"
  local app; app="$(post_json "$MC/admin/tenants/$TENANT_ID/applications" "$ADMIN_TOKEN" '{"name":"bench"}' | json_field application_id)"
  API_KEY="$(post_json "$MC/admin/tenants/$TENANT_ID/applications/$app/keys" "$ADMIN_TOKEN" '{"name":"bench"}' | json_field api_key)"
  [ -n "$TENANT_ID" ] && [ -n "$app" ] && [ -n "$API_KEY" ] || die "could not create the tenant, application and API key"
  if [ -n "${1:-}" ]; then
    post_json "$SE/admin/tenants/$TENANT_ID/sender-domains" "$ADMIN_TOKEN" "{\"domain\":\"$1\"}" >/dev/null
  fi
}

# The CPU of one process, of the PostgreSQL cluster and of the machine, for per-request figures (scripts/lib.sh).
cpu_snapshot() { echo "$(proc_cpu "$SE_PID") $(proc_cpu "$MC_PID") $(pg_cpu "$PG_DATA") $(machine_cpu)"; }
# cpu_per ITEMS "BEFORE" "AFTER": "SE / MC / PG / machine" CPU milliseconds per item.
cpu_per() {
  awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN {split(a, x, " "); split(b, y, " ");
    printf "%.2f / %.2f / %.2f / %.2f", (y[1]-x[1])*1000/n, (y[2]-x[2])*1000/n, (y[3]-x[3])*1000/n, (y[4]-x[4])*1000/n}'
}
bench_field() { sed -n "s/.*[ ]$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }  # NAME LINE: a key=value of a BENCH line
