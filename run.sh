#!/usr/bin/env bash
# Runs the whole stack locally from a clean clone: PostgreSQL (private cluster), maildev (SMTP catcher),
# Member Center on :7850, Send Engine on :7860 and the console on :7870, with demo clients and a platform operator
# whose secrets live in .local/demo.env.
#   ./run.sh           start everything, print URLs/credentials/curl commands, wait; Ctrl-C stops it all
#   ./run.sh --check   start everything, run the printed demo flow for real (token, subscribe, confirm, send job,
#                      the mail in maildev, the console's sign-in redirect, unsubscribe), stop everything, exit 0 on success
#                      (same as RUN_SH_EXIT_AFTER_START=1)
# Bring your own database or SMTP server by setting ConnectionStrings__MemberCenter (and
# ConnectionStrings__SendEngine, ConnectionStrings__Console) or Smtp__Host (and Smtp__Port); run.sh then starts none of its own.
# Demo__*, Bootstrap__*, Auth__SigningKeys__Password and Hangfire__* come from .local/demo.env (sourced); cleanup runs
# from a trap.
# shellcheck disable=SC2154,SC2317
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

CHECK_ONLY="${RUN_SH_EXIT_AFTER_START:-0}"
for arg in "$@"; do
  case "$arg" in
    --check) CHECK_ONLY=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) die "unknown argument: $arg (try --help)" ;;
  esac
done

MC_URL=http://localhost:7850
SE_URL=http://localhost:7860
CONSOLE_URL=http://localhost:7870
# Management listeners (Swagger, /metrics, /hangfire), loopback only: never on the public ports (docs/security.md V6).
MC_MANAGEMENT_URL=http://127.0.0.1:7851
SE_MANAGEMENT_URL=http://127.0.0.1:7861
MAILDEV_SMTP_PORT=1025
MAILDEV_WEB_PORT=1080
LOCAL="$REPO_ROOT/.local"
LOGS="$LOCAL/logs"
mkdir -p "$LOGS"

command -v dotnet >/dev/null 2>&1 || die "the .NET SDK (dotnet) is required: https://dot.net"
prereqs=(curl)
[ -n "${ConnectionStrings__MemberCenter:-}" ] || prereqs+=(postgres)
[ -n "${Smtp__Host:-}" ] || prereqs+=(node)
ensure_prereqs "${prereqs[@]}"

# ---------------------------------------------------------------------------------------------------
# Cleanup: everything this script started, and only that, is stopped on exit, Ctrl-C or kill.
SERVICE_PIDS=()      # dotnet processes
MAILDEV_PID=""
MAIL_UI=""           # maildev's web UI when we use maildev
PG_DATA=""           # set when we started the cluster ourselves
PG_SCRATCH=""        # a cluster this --check run created: removed on exit, so checks of fresh clones leave nothing behind


cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if [ "${#SERVICE_PIDS[@]}" -gt 0 ] || [ -n "$MAILDEV_PID" ] || [ -n "$PG_DATA" ]; then log "stopping"; fi
  local pid
  for pid in "${SERVICE_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${SERVICE_PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [ -n "$MAILDEV_PID" ]; then kill -TERM "$MAILDEV_PID" 2>/dev/null; wait "$MAILDEV_PID" 2>/dev/null; fi
  if [ -n "$PG_DATA" ]; then run_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null; fi
  if [ -n "$PG_SCRATCH" ]; then rm -rf "$PG_SCRATCH" "$LOCAL/pg-dir"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------------
# PostgreSQL: a private cluster, kept between runs (data survives), started on the first free port >= 5433.
start_postgres() {
  local dir
  if [ "$(id -u)" -eq 0 ]; then
    # The postgres user must own the cluster and reach it; a clone under /root is mode 700, so the cluster lives under
    # /tmp. .local/pg-dir records which one belongs to this checkout: a fresh clone (no .local, so new secrets in
    # demo.env) gets a new cluster instead of one whose signing keys were encrypted with another clone's password.
    local pointer="$LOCAL/pg-dir"
    if [ -f "$pointer" ]; then
      dir="$(cat "$pointer")"
    elif [ -f "$LOCAL/demo.env" ] && [ -d "/tmp/newsletter-pg-$(printf '%s' "$REPO_ROOT" | sha256sum | cut -c1-12)" ]; then
      dir="/tmp/newsletter-pg-$(printf '%s' "$REPO_ROOT" | sha256sum | cut -c1-12)"   # a checkout set up before pg-dir
    else
      dir="$(mktemp -d /tmp/newsletter-pg-XXXXXXXXXXXX)"
    fi
    printf '%s\n' "$dir" >"$pointer"
    install -d -o postgres -g postgres -m 700 "$dir"
  else
    dir="$LOCAL/pg"
    mkdir -p "$dir" && chmod 700 "$dir"
  fi
  local data="$dir/data" port
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initdb $data"
    if [ "$CHECK_ONLY" = 1 ] && [ "$(id -u)" -eq 0 ]; then PG_SCRATCH="$dir"; fi
    run_pg "$PG_BIN/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-instructions >"$LOGS/initdb.log" 2>&1 \
      || { cat "$LOGS/initdb.log" >&2; die "initdb failed"; }
  fi

  if run_pg "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    # Another ./run.sh (or a crashed one) has it running: use it, and leave it running on exit.
    port="$(sed -n 4p "$data/postmaster.pid")"
    log "PostgreSQL already running on 127.0.0.1:$port ($data); reusing it"
  else
    port=5433
    while port_in_use "$port"; do port=$((port + 1)); done
    # A long socket path (> 107 bytes) cannot be bound; /tmp works everywhere.
    local sockdir="$dir"; [ "${#dir}" -lt 80 ] || sockdir=/tmp
    log "starting PostgreSQL on 127.0.0.1:$port ($data)"
    run_pg "$PG_BIN/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 \
      -o "-p $port -k $sockdir -c listen_addresses=127.0.0.1" start >/dev/null \
      || { tail -n 30 "$dir/postgres.log" >&2; die "PostgreSQL did not start"; }
    PG_DATA="$data"
  fi

  local db
  for db in membercenter sendengine console; do
    if [ "$("$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
      "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db"
    fi
  done
  export ConnectionStrings__MemberCenter="Host=127.0.0.1;Port=$port;Username=postgres;Database=membercenter"
  export ConnectionStrings__SendEngine="Host=127.0.0.1;Port=$port;Username=postgres;Database=sendengine"
  export ConnectionStrings__Console="Host=127.0.0.1;Port=$port;Username=postgres;Database=console"
}

# maildev: SMTP on 127.0.0.1:1025, web UI and REST API on http://localhost:1080 (mail kept in .local/maildev).
start_maildev() {
  ensure_node_tools
  if port_in_use "$MAILDEV_SMTP_PORT" || port_in_use "$MAILDEV_WEB_PORT"; then
    if curl -fsS "http://127.0.0.1:$MAILDEV_WEB_PORT/api/healthz" >/dev/null 2>&1; then
      log "maildev already running on :$MAILDEV_SMTP_PORT/:$MAILDEV_WEB_PORT; reusing it"
    else
      die "port $MAILDEV_SMTP_PORT or $MAILDEV_WEB_PORT is taken by something else; set Smtp__Host/Smtp__Port to use your own SMTP server"
    fi
  else
    log "starting maildev (SMTP 127.0.0.1:$MAILDEV_SMTP_PORT, UI http://localhost:$MAILDEV_WEB_PORT)"
    mkdir -p "$LOCAL/maildev"
    node tools/node_modules/maildev/dist/bin/maildev.js \
      --smtp "$MAILDEV_SMTP_PORT" --ip 127.0.0.1 --web "$MAILDEV_WEB_PORT" --web-ip 127.0.0.1 \
      --mail-directory "$LOCAL/maildev" >"$LOGS/maildev.log" 2>&1 </dev/null &
    MAILDEV_PID=$!
    for _ in $(seq 1 100); do
      curl -fsS "http://127.0.0.1:$MAILDEV_WEB_PORT/api/healthz" >/dev/null 2>&1 && break
      kill -0 "$MAILDEV_PID" 2>/dev/null || { cat "$LOGS/maildev.log" >&2; die "maildev exited"; }
      sleep 0.2
    done
    curl -fsS "http://127.0.0.1:$MAILDEV_WEB_PORT/api/healthz" >/dev/null 2>&1 || die "maildev did not answer within 20 s"
  fi
  MAIL_UI="http://localhost:$MAILDEV_WEB_PORT"
  export Smtp__Host=127.0.0.1 Smtp__Port="$MAILDEV_SMTP_PORT" Smtp__UseTls=false
}

# Demo settings: generated once, then reused so tokens, clients and ids stay stable across runs.
ensure_demo_env() {
  local file="$LOCAL/demo.env"
  touch "$file" && chmod 600 "$file"
  put() { grep -q "^$1=" "$file" || printf '%s=%s\n' "$1" "$2" >>"$file"; }
  put Bootstrap__AdminClientId platform-admin
  put Bootstrap__AdminClientSecret "$(random_secret)"
  put Bootstrap__SendEngineClientId send-engine
  put Bootstrap__SendEngineClientSecret "$(random_secret)"
  put Demo__Enabled true
  put Demo__TenantId "$(new_uuid)"
  put Demo__ListId "$(new_uuid)"
  put Demo__TenantApiClientId demo-tenant-site
  put Demo__TenantApiClientSecret "$(random_secret)"
  put Demo__SendApiClientId demo-send
  put Demo__SendApiClientSecret "$(random_secret)"
  # Encrypts Member Center's private token-signing keys in PostgreSQL; the keys already stored are encrypted with it on
  # start. Keep it with the database: keys encrypted with a lost password cannot be read (delete both to start afresh).
  put Auth__SigningKeys__Password "$(random_secret)"
  put Hangfire__DashboardUsername ops
  put Hangfire__DashboardPassword "$(random_secret)"
  # The Tencent SES webhook refuses unauthenticated callbacks: Token mode with this secret (printed with the callback URL).
  put TencentSes__Webhook__SecretToken "$(random_secret)"
  # The keyed hash of erased addresses (both services): one secret per installation, kept like the database.
  put Privacy__AddressHashKey "$(random_secret)"
  # The console signs people in through Member Center as the confidential client `console` (both read this secret),
  # and Member Center creates this platform operator on start (a confirmed account; the password is reset to this).
  put Console__ClientSecret "$(random_secret)"
  put Bootstrap__OperatorEmail operator@example.com
  put Bootstrap__OperatorPassword "$(random_secret)"
  set -a
  # shellcheck disable=SC1090
  . "$file"
  set +a
}

# Starts a built service in the background (cwd = its project folder, so appsettings*.json are found), with its
# management listener if it has one ($5; the console has none), and waits for its health endpoint.
start_service() {
  local name="$1" dir="$2" url="$3" health="$4" management="${5:-}"
  local dll="$dir/bin/Release/net10.0/$name.dll" logfile="$LOGS/${name,,}.log"
  local args=(--urls "$url")
  [ -f "$dll" ] || die "$dll not found after the build"
  if port_in_use "${url##*:}"; then die "port ${url##*:} is already in use (another ./run.sh?); $name cannot start"; fi
  if [ -n "$management" ]; then
    if port_in_use "${management##*:}"; then die "port ${management##*:} is already in use (another ./run.sh?); $name cannot start"; fi
    args+=(--Management:Urls "$management")
  fi
  log "starting $name on $url${management:+, management on $management} (log: ${logfile#"$REPO_ROOT"/})"
  (cd "$dir" && if [ "$name" = SendEngine ]; then send_engine_runtime_env; fi && exec dotnet "bin/Release/net10.0/$name.dll" "${args[@]}") >"$logfile" 2>&1 </dev/null &
  local pid=$!
  SERVICE_PIDS+=("$pid")
  for _ in $(seq 1 180); do
    if curl -fsS -o /dev/null "$url$health" 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$logfile" >&2
      die "$name exited during startup (full log: $logfile)"
    fi
    sleep 0.5
  done
  tail -n 40 "$logfile" >&2
  die "$name did not answer $url$health within 90 s (full log: $logfile)"
}

# ---------------------------------------------------------------------------------------------------
if [ -z "${ConnectionStrings__MemberCenter:-}" ]; then
  start_postgres
else
  log "using ConnectionStrings__MemberCenter from the environment"
fi
if [ -z "${Smtp__Host:-}" ]; then
  start_maildev
else
  log "using SMTP server $Smtp__Host:${Smtp__Port:-25} from the environment"
fi
ensure_demo_env
export ASPNETCORE_ENVIRONMENT="${ASPNETCORE_ENVIRONMENT:-Development}"
export Auth__Issuer="${Auth__Issuer:-$MC_URL/}"
export PublicUrls__MemberCenter="${PublicUrls__MemberCenter:-$MC_URL}"
export Database__ApplyMigrationsOnStartup="${Database__ApplyMigrationsOnStartup:-true}"
export TencentSes__Webhook__Verification="${TencentSes__Webhook__Verification:-Token}"
# Send Engine calls Member Center with the service client Member Center was told to create.
export MemberCenter__BaseUrl="${MemberCenter__BaseUrl:-$MC_URL}"
export MemberCenter__ClientId="${MemberCenter__ClientId:-$Bootstrap__SendEngineClientId}"
export MemberCenter__ClientSecret="${MemberCenter__ClientSecret:-$Bootstrap__SendEngineClientSecret}"
# Member Center calls Send Engine for the export and erasure of an address.
export SendEngine__BaseUrl="${SendEngine__BaseUrl:-$SE_URL}"
# The console: its own URL (Member Center registers its redirect URIs from it) and the two services it calls.
export Console__PublicUrl="${Console__PublicUrl:-$CONSOLE_URL}"
export Console__MemberCenterUrl="${Console__MemberCenterUrl:-$MC_URL}"
export Console__SendEngineUrl="${Console__SendEngineUrl:-$SE_URL}"

# RUN_SH_PREBUILT=1 (test.sh, which has just built the solution in Release and runs this check beside the tests):
# use the built dlls and build nothing, so no build rewrites a dll a running test starts.
# build_release PROJECT ASSEMBLY
build_release() {
  if [ "${RUN_SH_PREBUILT:-0}" = 1 ]; then
    [ -f "$(dirname "$1")/bin/Release/net10.0/$2.dll" ]
    return
  fi
  dotnet build "$1" -c Release -nologo -v q -tl:off -clp:ErrorsOnly
}

if [ "${RUN_SH_PREBUILT:-0}" = 1 ]; then log "using the Release build (RUN_SH_PREBUILT=1)"; else log "dotnet build -c Release"; fi
build_release MemberCenter/MemberCenter.csproj MemberCenter >"$LOGS/build.log" 2>&1 \
  || { cat "$LOGS/build.log" >&2; die "Member Center does not build"; }
se_built=0
if [ -f SendEngine/SendEngine.csproj ]; then
  if build_release SendEngine/SendEngine.csproj SendEngine >>"$LOGS/build.log" 2>&1; then
    se_built=1
  else
    tail -n 20 "$LOGS/build.log" >&2
    log "Send Engine does not build; starting Member Center only"
  fi
fi

# Member Center applies its migrations and seeds the demo tenant/list/clients on startup.
start_service MemberCenter "$REPO_ROOT/MemberCenter" "$MC_URL" /health/ready "$MC_MANAGEMENT_URL"
se_running=0
if [ "$se_built" -eq 1 ] && [ -f SendEngine/bin/Release/net10.0/SendEngine.dll ]; then
  start_service SendEngine "$REPO_ROOT/SendEngine" "$SE_URL" /health/ready "$SE_MANAGEMENT_URL"
  se_running=1
fi
console_running=0
if [ -f Console/Console.csproj ]; then
  if build_release Console/Console.csproj NewsletterConsole >>"$LOGS/build.log" 2>&1; then
    start_service NewsletterConsole "$REPO_ROOT/Console" "$CONSOLE_URL" /health/ready
    console_running=1
  else
    tail -n 20 "$LOGS/build.log" >&2
    log "the console does not build; not started"
  fi
fi

# The walk-through printed below, run for real: token, subscribe, confirm, send job, the mail in the catcher, unsubscribe.
check_flow() {
  local out="$LOGS/check" code body tenant_token send_token confirm job status unsub email subject
  mkdir -p "$out"
  email="check-$(date +%s)-$RANDOM@example.com"
  subject="run.sh check $RANDOM$RANDOM"
  # $1 = name, $2 = expected HTTP status, rest = curl arguments; the body is left in $out/$1.json.
  call() {
    local name="$1" want="$2"; shift 2
    code="$(curl -s -o "$out/$name.json" -w '%{http_code}' "$@")"
    if [ "$code" != "$want" ]; then
      cat "$out/$name.json" >&2; echo >&2
      die "check failed: $name answered $code (expected $want)"
    fi
    body="$(cat "$out/$name.json")"
  }
  token() {  # $1 client_id, $2 secret, $3 scope
    call "token-$1" 200 -X POST "$MC_URL/oauth/token" --data-urlencode grant_type=client_credentials \
      --data-urlencode "client_id=$1" --data-urlencode "client_secret=$2" ${3:+--data-urlencode "scope=$3"}
    printf '%s' "$body" | json_field access_token
  }
  token "$Bootstrap__AdminClientId" "$Bootstrap__AdminClientSecret" "" >/dev/null
  tenant_token="$(token "$Demo__TenantApiClientId" "$Demo__TenantApiClientSecret" "newsletter:subscriptions.read newsletter:subscriptions.write")"
  call subscribe 200 -X POST "$MC_URL/newsletter/subscribe" -H "Authorization: Bearer $tenant_token" -H "Content-Type: application/json" \
    -d "{\"list_id\":\"$Demo__ListId\",\"email\":\"$email\"}"
  confirm="$(printf '%s' "$body" | json_field confirm_token)"
  [ -n "$confirm" ] || die "check failed: subscribe answered no confirm_token: $body"
  call confirm 200 "$MC_URL/newsletter/confirm?token=$confirm" -H "Accept: application/json"
  log "check: subscribed and confirmed $email"
  if [ "$se_running" = 1 ]; then
    send_token="$(token "$Demo__SendApiClientId" "$Demo__SendApiClientSecret" "newsletter:send.write newsletter:send.read")"
    call send-job 201 -X POST "$SE_URL/api/send-jobs" -H "Authorization: Bearer $send_token" -H "Content-Type: application/json" \
      -d "{\"list_id\":\"$Demo__ListId\",\"subject\":\"$subject\",\"body_text\":\"Hello {{ email }}: {{ unsubscribe_url }}\"}"
    job="$(printf '%s' "$body" | json_field id)"
    [ -n "$job" ] || die "check failed: no job id in $body"
    status=""
    for _ in $(seq 1 120); do
      call job 200 "$SE_URL/api/send-jobs/$job" -H "Authorization: Bearer $send_token"
      status="$(printf '%s' "$body" | json_field status)"
      [ "$status" = completed ] || [ "$status" = failed ] && break
      sleep 0.5
    done
    [ "$status" = completed ] || die "check failed: send job $job is '$status' after 60 s: $body"
    log "check: send job $job completed"
    if [ -n "$MAIL_UI" ]; then
      local seen=0
      for _ in $(seq 1 40); do
        if curl -fsS "$MAIL_UI/api/email" 2>/dev/null | grep -q "$subject"; then seen=1; break; fi
        sleep 0.5
      done
      [ "$seen" = 1 ] || die "check failed: the job's mail ('$subject') did not reach maildev ($MAIL_UI)"
      log "check: the job's mail is in maildev ($MAIL_UI)"
    fi
  fi
  if [ "$console_running" = 1 ]; then
    # The console sends a visitor to Member Center's sign-in page (authorization code + PKCE).
    local landed
    landed="$(curl -s -L -c "$out/console.jar" -b "$out/console.jar" -o "$out/console.html" -w '%{http_code} %{url_effective}' "$CONSOLE_URL/")"
    case "$landed" in
      "200 $MC_URL/account/login"*) log "check: the console redirects to Member Center's sign-in page" ;;
      *) die "check failed: the console's / ended at '$landed' (expected 200 on $MC_URL/account/login)" ;;
    esac
  fi
  call unsubscribe-token 200 -X POST "$MC_URL/newsletter/unsubscribe-token" -H "Authorization: Bearer $tenant_token" \
    -H "Content-Type: application/json" -d "{\"list_id\":\"$Demo__ListId\",\"email\":\"$email\"}"
  unsub="$(printf '%s' "$body" | json_field unsubscribe_token)"
  call unsubscribe 200 -X POST "$MC_URL/newsletter/unsubscribe" -H "Content-Type: application/json" -d "{\"token\":\"$unsub\"}"
  log "check: unsubscribed $email"
}

if [ "$CHECK_ONLY" = 1 ]; then
  check_flow
  log "check passed: the demo flow works end to end (Send Engine: $([ "$se_running" = 1 ] && echo yes || echo "not built"); console: $([ "$console_running" = 1 ] && echo yes || echo "not built"))"
  exit 0
fi

# ---------------------------------------------------------------------------------------------------
# What to do next: URLs, credentials and a copy-paste walk through the API.
if command -v jq >/dev/null 2>&1; then
  pick() { printf "jq -r '.%s'" "$1"; }
else
  # sed works everywhere; jq or python would be nicer but may be missing.
  pick() { printf "sed -n 's/.*\"%s\":\"\\\\([^\"]*\\\\)\".*/\\\\1/p'" "$1"; }
fi
email=user@example.com
cat <<EOF

Newsletter stack is running. Ctrl-C stops everything.

  Member Center   $MC_URL        (Swagger: $MC_MANAGEMENT_URL/swagger, log: .local/logs/membercenter.log)
$( [ "$se_running" = 1 ] && echo "  Send Engine     $SE_URL        (Swagger: $SE_MANAGEMENT_URL/swagger, metrics: $SE_MANAGEMENT_URL/metrics, log: .local/logs/sendengine.log)" || echo "  Send Engine     not started (not built)" )
$( [ "$console_running" = 1 ] && echo "  Console         $CONSOLE_URL        (sign in: $Bootstrap__OperatorEmail / $Bootstrap__OperatorPassword, a platform operator; log: .local/logs/newsletterconsole.log)" || echo "  Console         not started (not built)" )
  Mail            $( [ -n "$MAIL_UI" ] && echo "$MAIL_UI   (maildev; SMTP 127.0.0.1:$MAILDEV_SMTP_PORT)" || echo "your SMTP server $Smtp__Host:${Smtp__Port:-25}" )
  Database        ${ConnectionStrings__MemberCenter}

  Demo tenant id  $Demo__TenantId
  Demo list id    $Demo__ListId
  tenant_api      client_id=$Demo__TenantApiClientId  client_secret=$Demo__TenantApiClientSecret
  send_api        client_id=$Demo__SendApiClientId  client_secret=$Demo__SendApiClientSecret
  platform admin  client_id=$Bootstrap__AdminClientId  client_secret=$Bootstrap__AdminClientSecret
  Hangfire        $SE_MANAGEMENT_URL/hangfire  user=$Hangfire__DashboardUsername  password=$Hangfire__DashboardPassword
$( [ "$TencentSes__Webhook__Verification" = Token ] && printf '%s\n%s' \
  "  Tencent webhook $SE_URL/api/tencent/ses/webhook?token=$TencentSes__Webhook__SecretToken" \
  "                  (or basic auth: http://tencent:$TencentSes__Webhook__SecretToken@${SE_URL#http://}/api/tencent/ses/webhook)" )
  (all kept in .local/demo.env; delete it and the database to start afresh)

Try it (copy-paste into another shell):

# 1. a tenant_api token
TOKEN=\$(curl -s -X POST $MC_URL/oauth/token \\
  --data-urlencode grant_type=client_credentials \\
  --data-urlencode client_id=$Demo__TenantApiClientId \\
  --data-urlencode client_secret=$Demo__TenantApiClientSecret \\
  --data-urlencode "scope=newsletter:subscriptions.read newsletter:subscriptions.write" | $(pick access_token))

# 2. subscribe; the confirmation mail shows up in ${MAIL_UI:-your mailbox} (no confirm_token once confirmed)
CONFIRM=\$(curl -s -X POST $MC_URL/newsletter/subscribe -H "Authorization: Bearer \$TOKEN" -H "Content-Type: application/json" \\
  -d '{"list_id":"$Demo__ListId","email":"$email","preferences":{"lang":"zh-TW"}}' | $(pick confirm_token))

# 3. confirm: the token the subscribe answered (or open the link in the mail)
curl -s "$MC_URL/newsletter/confirm?token=\$CONFIRM" -H "Accept: application/json"

# 4. preferences: read, then change (merged; null removes a key)
curl -s "$MC_URL/newsletter/preferences?list_id=$Demo__ListId&email=$email" -H "Authorization: Bearer \$TOKEN"
curl -s -X POST $MC_URL/newsletter/preferences -H "Authorization: Bearer \$TOKEN" -H "Content-Type: application/json" \\
  -d '{"list_id":"$Demo__ListId","email":"$email","preferences":{"lang":"en"}}'

# 5. a send job to the confirmed reader (send_api token, Send Engine); the mail shows up in ${MAIL_UI:-your mailbox}
SEND_TOKEN=\$(curl -s -X POST $MC_URL/oauth/token \\
  --data-urlencode grant_type=client_credentials \\
  --data-urlencode client_id=$Demo__SendApiClientId \\
  --data-urlencode client_secret=$Demo__SendApiClientSecret \\
  --data-urlencode "scope=newsletter:send.write newsletter:send.read" | $(pick access_token))
JOB=\$(curl -s -X POST $SE_URL/api/send-jobs -H "Authorization: Bearer \$SEND_TOKEN" -H "Content-Type: application/json" \\
  -d '{"tenant_id":"$Demo__TenantId","list_id":"$Demo__ListId","name":"Weekly","subject":"Weekly","body_html":"<p>Hello {{ email }}</p><p><a href=\\"{{ unsubscribe_url }}\\">Unsubscribe</a></p>","body_text":"Hello {{ email }}"}' | $(pick id))
curl -s $SE_URL/api/send-jobs/\$JOB -H "Authorization: Bearer \$SEND_TOKEN"

# 6. unsubscribe: the mail's link or List-Unsubscribe header, or a token from the API
UNSUB=\$(curl -s -X POST $MC_URL/newsletter/unsubscribe-token -H "Authorization: Bearer \$TOKEN" -H "Content-Type: application/json" \\
  -d '{"list_id":"$Demo__ListId","email":"$email"}' | $(pick unsubscribe_token))
curl -s -X POST $MC_URL/newsletter/unsubscribe -H "Content-Type: application/json" -d "{\"token\":\"\$UNSUB\"}"

# 7. platform administration: tenants, lists, clients (README.md lists every admin route)
ADMIN=\$(curl -s -X POST $MC_URL/oauth/token -u "$Bootstrap__AdminClientId:$Bootstrap__AdminClientSecret" \\
  -d grant_type=client_credentials -d scope=platform:admin | $(pick access_token))
curl -s $MC_URL/admin/tenants -H "Authorization: Bearer \$ADMIN"
curl -s $MC_URL/admin/tenants/$Demo__TenantId/clients -H "Authorization: Bearer \$ADMIN"

EOF

# Stay in the foreground until Ctrl-C, or until a service dies (then stop the rest too).
set +e
wait -n "${SERVICE_PIDS[@]}"
log "a service exited (see .local/logs/); stopping the rest"
exit 1
