#!/usr/bin/env bash
# Builds the solution and runs every test project, from a clean clone on a Debian/Ubuntu machine that has
# only the .NET SDK. Ends with one line "N passed, N failed[, N skipped]" and exits non-zero on any failure
# or when no test ran. Tests start their own PostgreSQL/maildev (tests/TestSupport) and stop them again.
# Extra arguments go to `dotnet test`, e.g. ./test.sh --filter "FullyQualifiedName~Outbox".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

# chromium: browser tests (Playwright on Debian's chromium and chromium-headless-shell); postfix: smtp-sink for SMTP tests/benchmarks;
# aiosmtpd: an SMTP server that rejects unknown mailboxes with 550 5.1.1; dovecot: the IMAP server of the bounce
# mailbox tests; dnsmasq and dkim: the DNS server and the independent DKIM verifier (dkimpy) of the sender-domain tests.
ensure_prereqs postgres node chromium postfix aiosmtpd dovecot dnsmasq dkim
ensure_node_tools

if [ "${CI:-}" = "true" ]; then
  # Leave no MSBuild/compiler server behind in CI: they would outlive the run.
  trap 'dotnet build-server shutdown >/dev/null 2>&1 || true' EXIT
fi

log "dotnet tool restore"
dotnet tool restore >/dev/null

log "dotnet build Newsletter.sln -c Release"
dotnet build Newsletter.sln -c Release -nologo -v q -tl:off -clp:ErrorsOnly

results="$REPO_ROOT/TestResults"
rm -rf "$results"
mkdir -p "$results"

# The test projects of the solution, run side by side: one `dotnet test` (one test host) each, the longest first. Their
# time is mostly waiting (servers restarting, outages, chromium), so two cores carry all of them at once; one after
# another they took the sum of their times. Each project's console output goes to TestResults/NAME.log and is printed
# with a summary line when that project ends; its TRX file (TestResults/NAME.trx) gives the counts.
mapfile -t projects < <(dotnet sln Newsletter.sln list | tr -d '\r' | grep '^tests/.*\.Tests\.csproj$' || true)
[ "${#projects[@]}" -gt 0 ] || die "no test project in Newsletter.sln"
longest_first=(SendEngine.Tests Console.Tests MemberCenter.Tests)
ordered=()
for name in "${longest_first[@]}"; do
  for proj in "${projects[@]}"; do [ "$(basename "$proj" .csproj)" = "$name" ] && ordered+=("$proj"); done
done
for proj in "${projects[@]}"; do
  [[ " ${longest_first[*]} " == *" $(basename "$proj" .csproj) "* ]] || ordered+=("$proj")
done

# The first README command, end to end: ./run.sh --check starts the stack on its fixed ports, runs the printed demo
# flow (token, subscribe, confirm, send job, the mail in maildev, unsubscribe) and stops it. Counted as one test;
# skipped when those ports are taken (a ./run.sh of yours is running), with NEWSLETTER_SKIP_RUN_CHECK=1 or when
# arguments select tests. It starts once only the longest project is still running (its ports are fixed, the tests'
# ports ephemeral), so its 60 s waits never share the machine with all the test hosts at once.
run_check=0
if [ "$#" -gt 0 ] || [ "${NEWSLETTER_SKIP_RUN_CHECK:-}" = 1 ] || port_in_use 7850 || port_in_use 7860 || port_in_use 7870; then
  log "./run.sh --check skipped"
else
  run_check=1
fi
run_check_pid="" run_check_started=0
start_run_check() {
  log "./run.sh --check (beside the tests still running)"
  run_check_started=$(date +%s)
  RUN_SH_PREBUILT=1 ./run.sh --check >"$results/run-check.log" 2>&1 </dev/null &
  run_check_pid=$!
}

# At most NEWSLETTER_TEST_PARALLEL projects at once (default 2): Send Engine's long run beside the others one after
# another. All four at once took the load average of the two cores past 60 and browser tests past their timeouts.
parallel="${NEWSLETTER_TEST_PARALLEL:-2}"
log "dotnet test, ${#ordered[@]} projects, $parallel at a time, longest first: ${ordered[*]}"
declare -A pid_of started_at
# How many projects are still running (with `set -u`, ${#pid_of[@]} of an empty map is an "unbound variable").
running=0 launched=0

counter() { grep -o "<Counters [^>]*" "$1" | grep -o " $2=\"[0-9]*\"" | grep -o '[0-9]\+' || echo 0; }
passed=0 failed=0 skipped=0 total=0 test_rc=0
summaries=()
# Collects every project that has ended: its counts from the TRX, its summary line and its output.
reap() {
  local name pid rc seconds p f s t trx summary
  for name in "${!pid_of[@]}"; do
    pid=${pid_of[$name]}
    kill -0 "$pid" 2>/dev/null && continue
    rc=0
    wait "$pid" || rc=$?
    unset "pid_of[$name]"
    running=$((running - 1))
    seconds=$(( $(date +%s) - ${started_at[$name]} ))
    p=0 f=0 s=0 t=0
    trx="$results/$name.trx"
    if [ -f "$trx" ]; then
      t=$(counter "$trx" total)
      p=$(counter "$trx" passed)
      f=$(( $(counter "$trx" failed) + $(counter "$trx" error) + $(counter "$trx" timeout) + $(counter "$trx" aborted) ))
      # VSTest leaves notExecuted at 0 for skipped tests; they are the ones counted but not executed.
      s=$(( t - $(counter "$trx" executed) ))
    fi
    if [ "$rc" -ne 0 ]; then
      test_rc=$rc
      # dotnet test failed without a failing test in the TRX (crashed test host, missing TRX...): count it.
      if [ "$f" -eq 0 ]; then f=1; log "$name: dotnet test exited with $rc"; fi
    fi
    total=$((total + t)) passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
    summary="$name: $p passed, $f failed, $s skipped in $seconds s"
    summaries+=("$summary")
    log "$summary (output: TestResults/$name.log)"
    cat "$results/$name.log"
  done
  if [ "$run_check" = 1 ] && [ -z "$run_check_pid" ] && [ "$launched" -eq "${#ordered[@]}" ] && [ "$running" -le 1 ]; then
    start_run_check
  fi
}

# A few seconds between launches: each test host starts its PostgreSQL, maildev and hosts first, and two doing that at
# the same moment on two cores made a maildev miss its start timeout.
stagger="${NEWSLETTER_TEST_STAGGER:-10}"
for proj in "${ordered[@]}"; do
  name="$(basename "$proj" .csproj)"
  while [ "$running" -ge "$parallel" ]; do sleep 1; reap; done
  [ "$running" -eq 0 ] || sleep "$stagger"
  started_at[$name]=$(date +%s)
  # The console logger at minimal verbosity prints each failing test with its message and stack.
  dotnet test "$proj" -c Release --no-build -nologo -tl:off \
    --logger "console;verbosity=minimal" --logger "trx;LogFileName=$name.trx" --results-directory "$results" "$@" \
    >"$results/$name.log" 2>&1 </dev/null &
  pid_of[$name]=$!
  running=$((running + 1)) launched=$((launched + 1))
done
while [ "$running" -gt 0 ]; do sleep 1; reap; done
reap

if [ "$run_check" = 1 ]; then
  [ -n "$run_check_pid" ] || start_run_check
  total=$((total + 1))
  if wait "$run_check_pid"; then
    passed=$((passed + 1)); summary="./run.sh --check: passed in $(( $(date +%s) - run_check_started )) s"
  else
    failed=$((failed + 1)); summary="./run.sh --check: FAILED after $(( $(date +%s) - run_check_started )) s"
  fi
  summaries+=("$summary")
  log "$summary (output: TestResults/run-check.log)"
  cat "$results/run-check.log" >&2
else
  skipped=$((skipped + 1))
fi

# docker-compose.yml is read, not run, by the tests: `docker compose config` resolves it where Docker's compose exists
# (GitHub's runners; else the skip is logged). Without its secrets it must refuse to start (every secret is ${VAR:?});
# with a placeholder for each variable of deploy/compose.env.example it must resolve. Counted as one test; skipped like
# the run.sh check when arguments select tests.
compose_config_check() {
  local compose=()
  if docker compose version >/dev/null 2>&1; then compose=(docker compose)
  elif command -v docker-compose >/dev/null 2>&1; then compose=(docker-compose)
  else return 2; fi
  local example=deploy/compose.env.example
  if env -i PATH="$PATH" HOME="$HOME" "${compose[@]}" --env-file "$example" -f docker-compose.yml config -q >/dev/null 2>&1; then
    log "docker-compose.yml resolved without its secrets"
    return 1
  fi
  local placeholders
  mapfile -t placeholders < <(sed -n 's/^\([A-Z_]*\)=$/\1=placeholder-0123456789abcdef/p' "$example")
  env -i PATH="$PATH" HOME="$HOME" "${placeholders[@]}" "${compose[@]}" --env-file "$example" -f docker-compose.yml config -q
}
if [ "$#" -gt 0 ]; then
  log "docker compose config skipped"
  skipped=$((skipped + 1))
else
  compose_rc=0
  compose_config_check || compose_rc=$?
  if [ "$compose_rc" -eq 2 ]; then
    log "docker compose config skipped (no docker compose here)"
    skipped=$((skipped + 1))
  else
    log "docker compose config: $([ "$compose_rc" -eq 0 ] && echo ok || echo FAILED)"
    total=$((total + 1))
    if [ "$compose_rc" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  fi
fi

if [ "$total" -eq 0 ]; then
  log "no test ran"
fi

for summary in "${summaries[@]}"; do log "$summary"; done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$total" -gt 0 ] && [ "$test_rc" -eq 0 ]
