#!/usr/bin/env bash
# What the bulk snapshot's COPY costs PostgreSQL per recipient row, and what each index of send_job_recipients adds.
#
#   bench/sendengine/snapshot-copy.sh [--rows 100000] [--reps 3]
#
# A throw-away PostgreSQL 15 cluster (default settings: fsync on) gets Send Engine's schema from its migration script
# (`dotnet ef migrations script`, the one an operator applies), one job row, and ROWS recipients copied as the
# snapshot writes them: pages of 1,000 rows, one transaction each, from one psql session. It prints the best of REPS
# wall times (the session is CPU-bound: its time is PostgreSQL's and psql's) per row with the foreign key to send_jobs
# the table had until 2026-12-03, with the schema as it is, then
# with the lower(email) index dropped, then with the (subscriber_id, job_id) unique index dropped too: the share of
# each index in the COPY. The reference is the copy into the same table with no index but its primary key.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/../../scripts/lib.sh"
# shellcheck source=bench/lib.sh
source "$HERE/../lib.sh"
cd "$REPO_ROOT"

ROWS=100000 REPS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) ROWS="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
done

bench_init snapshot-copy
bench_build SendEngine/SendEngine.csproj
dotnet tool restore >/dev/null
dotnet ef migrations script --no-build --configuration Release --project SendEngine -o "$WORK/schema.sql" >>"$LOGS/build.log" 2>&1 \
  || { tail -n 20 "$LOGS/build.log" >&2; die "dotnet ef migrations script failed"; }
bench_start_pg
q() { psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d sendengine -X -q -tA -v ON_ERROR_STOP=1 "$@"; }
q -f "$WORK/schema.sql" >/dev/null
JOB=00000000-0000-7000-8000-000000000001
q -c "INSERT INTO send_jobs (id, tenant_id, list_id, name, subject, body_html, status, scheduled_at, created_at)
      VALUES ('$JOB', gen_random_uuid(), gen_random_uuid(), 'bench', 'subject', 'body', 'sending', now(), now())"
# The rows as the snapshot writes them (text COPY of the same columns), in pages of 1,000.
python3 - "$JOB" "$ROWS" >"$WORK/rows.tsv" <<'PY'
import sys, uuid
job, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    print("\t".join([job, str(uuid.uuid4()), f"reader{i}@example.com", '{"first_name": "Reader %d", "lang": "en"}' % i,
                     "pending", "0", "2026-12-03 22:00:00+00", f"{i:032x}@bench.example"]))  # increasing, as the UUIDv7 ids are
PY
split -l 1000 -d -a 4 "$WORK/rows.tsv" "$WORK/page."
for f in "$WORK"/page.*; do
  echo "\\copy send_job_recipients (job_id, subscriber_id, email, preferences, status, attempts, updated_at, message_id) FROM '$f'"
done >"$WORK/copy.sql"

measure() {  # LABEL: the best of REPS copies into an emptied table, in µs per row
  local best="" rep t0 t1
  for rep in $(seq 1 "$REPS"); do
    q -c "TRUNCATE send_job_recipients" -c "CHECKPOINT" >/dev/null
    t0=$EPOCHREALTIME; q -f "$WORK/copy.sql" >/dev/null; t1=$EPOCHREALTIME
    best="$(awk -v a="$t0" -v b="$t1" -v c="${best:-1e9}" -v n="$ROWS" 'BEGIN {v = (b - a) * 1e6 / n; print (v < c ? v : c)}')"
  done
  printf '%-52s %6.1f us/row\n' "$1" "$best"
  RESULTS+=("$best")
}
RESULTS=()
log "copying $ROWS rows in pages of 1,000, best of $REPS"
# The foreign key to send_jobs the table had until 2026-12-03: why it has none now.
q -c "ALTER TABLE send_job_recipients ADD CONSTRAINT bench_fk_job FOREIGN KEY (job_id) REFERENCES send_jobs (id) ON DELETE CASCADE"
measure "with a foreign key to send_jobs (dropped 2026-12-03)"
q -c "ALTER TABLE send_job_recipients DROP CONSTRAINT bench_fk_job"
measure "as it is (primary key and four indexes)"
q -c "DROP INDEX ix_send_job_recipients_lower_email"
measure "without lower(email)"
q -c "DROP INDEX ix_send_job_recipients_subscriber_id_job_id"
measure "without lower(email) and (subscriber_id, job_id)"
q -c "DROP INDEX ix_send_job_recipients_message_id" -c "DROP INDEX ix_send_job_recipients_job_id_id"
measure "primary key only (the reference)"
echo
echo "Snapshot COPY, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $ROWS rows:"
awk -v f="${RESULTS[0]}" -v a="${RESULTS[1]}" -v r="${RESULTS[4]}" 'BEGIN {printf "COPY us_per_row=%.1f with_foreign_key_us_per_row=%.1f primary_key_only_us_per_row=%.1f ratio=%.2f\n", a, f, r, a / r}'
