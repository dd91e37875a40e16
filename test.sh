#!/usr/bin/env bash
# Builds the solution and runs every test project, from a clean clone on a Debian/Ubuntu machine that has
# only the .NET SDK. Ends with one line "N passed, N failed[, N skipped]" and exits non-zero on any failure
# or when no test ran. Tests start their own PostgreSQL/maildev (tests/TestSupport) and stop them again.
# Extra arguments go to `dotnet test`, e.g. ./test.sh --filter "FullyQualifiedName~Outbox".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

# chromium: browser tests (Playwright on /usr/bin/chromium); postfix: smtp-sink for SMTP tests/benchmarks;
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
log "dotnet test Newsletter.sln -c Release"
# The console logger at minimal verbosity prints each failing test with its message and stack;
# the TRX files give the counts we sum below.
test_rc=0
dotnet test Newsletter.sln -c Release --no-build -nologo -tl:off \
  --logger "console;verbosity=minimal" --logger trx --results-directory "$results" "$@" || test_rc=$?

# Sum the <Counters .../> of every TRX file (one per test project).
passed=0 failed=0 skipped=0 total=0
counter() { grep -o "<Counters [^>]*" "$1" | grep -o " $2=\"[0-9]*\"" | grep -o '[0-9]\+' || echo 0; }
shopt -s nullglob
trx_files=("$results"/*.trx)
for trx in "${trx_files[@]}"; do
  total=$((total + $(counter "$trx" total)))
  passed=$((passed + $(counter "$trx" passed)))
  failed=$((failed + $(counter "$trx" failed) + $(counter "$trx" error) + $(counter "$trx" timeout) + $(counter "$trx" aborted)))
  # VSTest leaves notExecuted at 0 for skipped tests; they are the ones counted but not executed.
  skipped=$((skipped + $(counter "$trx" total) - $(counter "$trx" executed)))
done

# The first README command, end to end: ./run.sh --check starts the stack on its fixed ports, runs the printed demo
# flow (token, subscribe, confirm, send job, the mail in maildev, unsubscribe) and stops it. Counted as one test;
# skipped when those ports are taken (a ./run.sh of yours is running), with NEWSLETTER_SKIP_RUN_CHECK=1 or when
# arguments select tests.
if [ "$#" -gt 0 ] || [ "${NEWSLETTER_SKIP_RUN_CHECK:-}" = 1 ] || port_in_use 7850 || port_in_use 7860 || port_in_use 7870; then
  log "./run.sh --check skipped"
  skipped=$((skipped + 1))
else
  log "./run.sh --check"
  total=$((total + 1))
  if ./run.sh --check; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
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

if [ "$test_rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  # dotnet test failed without a failing test in the TRX (crashed test host, missing TRX...): count it.
  log "dotnet test exited with $test_rc"
  failed=1
fi
if [ "$total" -eq 0 ]; then
  log "no test ran"
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$total" -gt 0 ] && [ "$test_rc" -eq 0 ]
