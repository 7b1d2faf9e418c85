#!/usr/bin/env bash
# Wrapper for the scheduled job: one log file per run, a status line, and the run's exit status.
#
#   deploy/run-insiders.sh            (from cron; settings come from the environment or $INSIDERS_ENV_FILE)
#
# Settings (environment, or a KEY=value file named by INSIDERS_ENV_FILE, default /etc/insiders/env):
#   INSIDERS_HOME      the project checkout (default: the folder above this script)
#   INSIDERS_TARGET    profiles.yml target (default postgres)
#   INSIDERS_SOURCE    raw files to load: a folder or s3://bucket/prefix (optional)
#   INSIDERS_LOG_DIR   where run logs go (default $INSIDERS_HOME/logs/runs)
#   INSIDERS_KEEP_LOGS how many run logs to keep (default 90)
#   plus the INSIDERS_PG_*, INSIDERS_ARTIFACT_URI and AWS_* variables the job needs.
set -uo pipefail

env_file="${INSIDERS_ENV_FILE:-/etc/insiders/env}"
if [ -r "$env_file" ]; then
  set -a
  # shellcheck disable=SC1090
  . "$env_file"
  set +a
fi

home="${INSIDERS_HOME:-$(cd "$(dirname "$0")/.." && pwd)}"
target="${INSIDERS_TARGET:-postgres}"
log_dir="${INSIDERS_LOG_DIR:-$home/logs/runs}"
keep="${INSIDERS_KEEP_LOGS:-90}"
mkdir -p "$log_dir"
log="$log_dir/insiders-run-$(date -u +%Y%m%dT%H%M%SZ).log"

args=(run --target "$target")
if [ -n "${INSIDERS_SOURCE:-}" ]; then
  args+=(--source "$INSIDERS_SOURCE")
fi

cd "$home" || { echo "insiders: cannot enter $home" >&2; exit 1; }
started=$(date +%s)
echo "$(date -u +%FT%TZ) insiders ${args[*]} (log: $log)"
"$home/.venv/bin/insiders" "${args[@]}" >"$log" 2>&1
status=$?
seconds=$(( $(date +%s) - started ))

case "$status" in
  0) outcome="succeeded" ;;
  3) outcome="skipped: another run was in progress" ;;
  *) outcome="FAILED (exit $status): $(grep -m1 '^error:' "$log" || tail -n 1 "$log")" ;;
esac
echo "$(date -u +%FT%TZ) insiders run $outcome after ${seconds}s" | tee -a "$log"

# Keep the newest $keep run logs.
ls -1t "$log_dir"/insiders-run-*.log 2>/dev/null | tail -n +"$((keep + 1))" | xargs -r rm -f
exit "$status"
