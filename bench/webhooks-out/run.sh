#!/usr/bin/env bash
# Benchmarks Send Engine's outbound tenant webhooks (docs/performance.md, "Send Engine: outbound webhooks"):
#   1. throughput: events produced as fast as the API takes them (wrk -c CONNECTIONS on POST /api/v1/email, RECIPIENTS
#      recipients per request, from an unregistered sender domain, so every task is rejected at once and raises one
#      "rejected" event), delivered meanwhile by the dispatcher to a loopback receiver; events/s delivered during the load,
#      after it (the backlog alone) and overall, next to the receiver's own ceiling (wrk straight at it) in the same run;
#   2. outage: events produced at a constant RATE requests/s (BenchTools rate) while the receiver runs 10 s, is stopped
#      for OUTAGE seconds, then started again; every webhook-id must arrive at least once (duplicates are counted).
#
#   bench/webhooks-out/run.sh [--duration 30s] [--connections 16] [--threads 2] [--recipients 10] [--outage 60]
#                             [--rate 100] [--se-env KEY=VALUE]... [--keep-logs]
#
# Builds Member Center, Send Engine and BenchTools (Release); starts a private PostgreSQL cluster under /tmp (fsync and
# synchronous_commit on), smtp-sink, Member Center, Send Engine (Production, Webhooks__AllowPrivateNetworks=true so the
# receiver may be on loopback) and the receiver (BenchTools receive: answers 204, appends each webhook-id to a file,
# verifies nothing) on free loopback ports; stops all on exit. Production refuses http endpoints at registration, so the
# endpoint is registered with https and its stored url then switched to the plain-http receiver with SQL: TLS to a
# loopback receiver would measure a self-signed handshake, not the dispatcher. Invalid run (non-zero exit): a non-2xx
# answer to the producer, a message failed, or a webhook-id of the endpoint's outbox never received.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/../../scripts/lib.sh"
# shellcheck source=bench/lib.sh
source "$HERE/../lib.sh"
cd "$REPO_ROOT"

DURATION=30s CONNECTIONS=16 THREADS=2 RECIPIENTS=10 OUTAGE=60 RATE=100 DRAIN_TIMEOUT=900
SE_ENV=()
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --recipients) RECIPIENTS="$2"; shift 2 ;;
    --outage) OUTAGE="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --se-env) SE_ENV+=("$2"); shift 2 ;;
    --keep-logs) KEEP_LOGS=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
done

bench_init webhooks-out-bench
bench_build MemberCenter/MemberCenter.csproj SendEngine/SendEngine.csproj bench/tools/BenchTools/BenchTools.csproj
bench_start_pg
bench_start_sink
bench_start_mc
bench_start_se Webhooks__AllowPrivateNetworks=true "${SE_ENV[@]}"
bench_tenant   # no sender domain: every task is rejected (invalid-sender) and raises a "rejected" event
FROM="receipts@unregistered.bench.example"
echo '<html><body><p>Your receipt.</p></body></html>' >"$WORK/body.html"
TOOLS=(dotnet bench/tools/BenchTools/bin/Release/net10.0/BenchTools.dll)

RECV_PORT="$(free_port 18070)" RECV="http://127.0.0.1:$RECV_PORT" RECV_PID="" IDS="$WORK/received-ids.txt"
start_receiver() {  # IDS_FILE
  "${TOOLS[@]}" receive --urls "$RECV" --ids "$1" >>"$LOGS/receiver.log" 2>&1 </dev/null &
  RECV_PID=$!; BENCH_PIDS+=("$RECV_PID")
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "$RECV/count" 2>/dev/null && return 0; sleep 0.1; done
  die "the receiver did not start"
}
received() { curl -fsS "$RECV/count"; }

# The receiver's ceiling: wrk straight at it, with a webhook-id header and a body of the size Send Engine sends.
log "ceiling: the receiver alone (wrk -c32 10 s)"
start_receiver "$WORK/ceiling-ids.txt"
printf 'wrk.method = "POST"\nwrk.body = string.rep("x", 400)\nwrk.headers["Content-Type"] = "application/json"\nwrk.headers["webhook-id"] = "msg_ceiling"\n' >"$WORK/recv.lua"
wrk -t"$THREADS" -c32 -d10s -s "$WORK/recv.lua" "$RECV/hook" >"$LOGS/ceiling.txt" 2>&1
CEILING="$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$LOGS/ceiling.txt")"
grep -q 'Non-2xx' "$LOGS/ceiling.txt" && die "the receiver answered non-2xx to wrk"
stop_pid "$RECV_PID"
log "receiver ceiling: $CEILING requests/s"

start_receiver "$IDS"
ENDPOINT="$(post_json "$SE/admin/tenants/$TENANT_ID/webhook-endpoints" "$ADMIN_TOKEN" \
  "{\"url\":\"https://127.0.0.1:$RECV_PORT/hook\",\"event_types\":[\"rejected\"],\"description\":\"bench\"}" | json_field endpoint_id)"
[ -n "$ENDPOINT" ] || die "no webhook endpoint created"
psql_db sendengine "UPDATE webhook_endpoints SET url = 'http://127.0.0.1:$RECV_PORT/hook' WHERE id = '$ENDPOINT'"

pending() { psql_db sendengine "SELECT count(*) FROM webhook_messages WHERE status = 'pending'"; }
wait_delivered() {  # LABEL: until no message is pending; prints the seconds waited
  local t0=$SECONDS
  while [ "$(pending)" != 0 ]; do
    [ $((SECONDS - t0)) -lt "$DRAIN_TIMEOUT" ] || die "$1: messages still pending after $DRAIN_TIMEOUT s"
    sleep 0.5
  done
}
produce_wrk() {  # LABEL DURATION
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$2" --latency -s bench/transactional/email.lua "$SE" -- "$API_KEY" "$FROM" "$RECIPIENTS" "$1" "$WORK/body.html" \
    >"$LOGS/$1.txt" 2>&1
  local line; line="$(grep '^BENCH ' "$LOGS/$1.txt" || true)"
  [ -n "$line" ] && [ "$(bench_field non2xx "$line")" = 0 ] && [ "$(bench_field socket_errors "$line")" = 0 ] \
    || { cat "$LOGS/$1.txt" >&2; die "$1: invalid run (non-2xx or socket errors)"; }
  echo "$line"
}

LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
log "load average before the run: $LOAD_START"
log "warm-up 10 s"
produce_wrk warm 10s >/dev/null
wait_delivered warm-up

log "throughput: $DURATION of production, $CONNECTIONS connections, $RECIPIENTS events per request"
r0="$(received)"; q0="$(psql_db sendengine "SELECT count(*) FROM webhook_messages")"; c0="$(cpu_snapshot)"; t0="$EPOCHREALTIME"
PROD="$(produce_wrk throughput "$DURATION")"
t1="$EPOCHREALTIME"; r1="$(received)"; q1="$(psql_db sendengine "SELECT count(*) FROM webhook_messages")"
wait_delivered throughput
t2="$EPOCHREALTIME"; r2="$(received)"; c2="$(cpu_snapshot)"
produced=$((q1 - q0)); delivered=$((r2 - r0))
[ "$delivered" -ge "$produced" ] || die "throughput: $produced events queued during the load, $delivered received"
rates="$(awk -v t0="$t0" -v t1="$t1" -v t2="$t2" -v r0="$r0" -v r1="$r1" -v r2="$r2" -v q="$produced" \
  'BEGIN {printf "%.0f %.0f %.0f %.0f %.1f", q / (t1 - t0), (r1 - r0) / (t1 - t0), (r2 - r1) / (t2 - t1), (r2 - r0) / (t2 - t0), t2 - t1}')"
read -r produced_rate during_rate drain_rate overall_rate drain_secs <<<"$rates"
log "throughput: produced $produced_rate/s, delivered $during_rate/s during the load, $drain_rate/s after it ($drain_secs s), $overall_rate/s overall"

log "outage: $RATE requests/s ($((RATE * RECIPIENTS)) events/s) for $((OUTAGE + 30)) s; the receiver is stopped from 10 s to $((10 + OUTAGE)) s"
o_from="$(psql_db sendengine "SELECT coalesce(max(id), 0) FROM webhook_messages")"
python3 -c 'import json,sys; print(json.dumps({"message": {"from_email": sys.argv[1], "subject": "Receipt {{n}}", "html": "<p>Receipt</p>",
    "to": [{"email": "out-{{run}}-{{n}}-%d@bench.example" % k} for k in range(int(sys.argv[2]))]}}))' "$FROM" "$RECIPIENTS" >"$WORK/outage-body.json"
"${TOOLS[@]}" rate "$SE/api/v1/email" --rate "$RATE" --duration $((OUTAGE + 30)) --connections 32 --tag "o$RANDOM" --body "$WORK/outage-body.json" \
  --header "X-Pigeon-Api-Key: $API_KEY" >"$LOGS/outage-producer.txt" 2>&1 &
PRODUCER=$!; BENCH_PIDS+=("$PRODUCER")
sleep 10
log "stopping the receiver"
stop_pid "$RECV_PID"
sleep "$OUTAGE"
log "starting the receiver again"
start_receiver "$IDS"
back_at="$EPOCHREALTIME"
wait "$PRODUCER" || { cat "$LOGS/outage-producer.txt" >&2; die "the outage producer failed"; }
OUT_LINE="$(grep '^BENCH ' "$LOGS/outage-producer.txt" || true)"
[ -n "$OUT_LINE" ] && [ "$(bench_field non2xx "$OUT_LINE")" = 0 ] && [ "$(bench_field errors "$OUT_LINE")" = 0 ] \
  || { cat "$LOGS/outage-producer.txt" >&2; die "outage: the producer saw non-2xx or errors"; }
wait_delivered outage
all_at="$EPOCHREALTIME"
stop_pid "$RECV_PID"   # flushes the ids file

# Every webhook-id of the endpoint's outbox (all phases) must have been received at least once.
psql_db sendengine "SELECT webhook_id FROM webhook_messages WHERE endpoint_id = '$ENDPOINT' ORDER BY 1" >"$WORK/queued-ids.txt"
psql_db sendengine "SELECT webhook_id FROM webhook_messages WHERE endpoint_id = '$ENDPOINT' AND id > $o_from ORDER BY 1" >"$WORK/outage-ids.txt"
failed="$(psql_db sendengine "SELECT count(*) FROM webhook_messages WHERE status <> 'delivered'")"
sort -u "$IDS" >"$WORK/received-unique.txt"
missing="$(comm -23 "$WORK/queued-ids.txt" "$WORK/received-unique.txt" | wc -l)"
outage_n="$(wc -l <"$WORK/outage-ids.txt")"
outage_dups="$(sort "$IDS" | uniq -d -c | awk 'NR == FNR {want[$1]; next} ($2 in want) {d += $1 - 1} END {print d + 0}' "$WORK/outage-ids.txt" -)"
total_dups=$(( $(wc -l <"$IDS") - $(wc -l <"$WORK/received-unique.txt") ))
failed_attempts="$(psql_db sendengine "SELECT count(*) FROM webhook_attempts WHERE response_status IS NULL OR response_status >= 300")"
[ "$failed" = 0 ] || die "$failed messages not delivered (failed)"
[ "$missing" = 0 ] || die "$missing webhook-ids were never received"

echo
echo "Send Engine outbound webhooks benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), load average at start $LOAD_START, now $(cut -d' ' -f1-3 /proc/loadavg)"
[ "${#SE_ENV[@]}" = 0 ] || echo "variations: se-env='${SE_ENV[*]}'"
echo "receiver alone (ceiling):            $CEILING requests/s"
echo "producer (API, $RECIPIENTS events/request): $produced_rate events/s queued ($produced events, $(bench_field rps "$PROD") req/s, p99 $(bench_field p99_ms "$PROD") ms)"
echo "delivered during the load:           $during_rate events/s ($(awk -v a="$during_rate" -v b="$CEILING" 'BEGIN {printf "%.0f %%", 100 * a / b}') of the receiver's ceiling)"
echo "delivered after the load (backlog):  $drain_rate events/s ($(awk -v a="$drain_rate" -v b="$CEILING" 'BEGIN {printf "%.0f %%", 100 * a / b}') of the ceiling, $drain_secs s)"
echo "overall, first event to last:        $overall_rate events/s; CPU ms/event SE / MC / PG / machine: $(cpu_per "$produced" "$c0" "$c2")"
echo "outage of ${OUTAGE} s at $(bench_field rps "$OUT_LINE") req/s: $outage_n events, all received; last delivered $(awk -v a="$back_at" -v b="$all_at" 'BEGIN {printf "%.0f", b - a}') s after the receiver came back; duplicates $outage_dups (all phases $total_dups); failed attempts recorded $failed_attempts"
echo "None lost: every webhook-id of the endpoint's outbox ($(wc -l <"$WORK/queued-ids.txt")) was received at least once."
echo "Targets: >= 2,000 events/s delivered; none lost when the receiver is down for a minute."
