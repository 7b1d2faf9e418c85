#!/usr/bin/env bash
# Wrapper for the scheduled job: one log file per run, a status line, and the run's exit status.
#
#   deploy/run-insiders.sh            (from cron; settings come from the environment or $INSIDERS_ENV_FILE)
#
# Settings (environment, or a KEY=value file named by INSIDERS_ENV_FILE, default /etc/insiders/env; the file's
# values win, and it is read as data, not run as shell code):
#   INSIDERS_HOME      the project checkout (default: the folder above this script)
#   INSIDERS_TARGET    profiles.yml target (default postgres)
#   INSIDERS_SOURCE    raw files to load: a folder or s3://bucket/prefix (optional)
#   INSIDERS_LOG_DIR   where run logs go (default $INSIDERS_HOME/logs/runs)
#   INSIDERS_KEEP_LOGS how many run logs to keep (default 90)
#   plus the INSIDERS_PG_*, INSIDERS_ARTIFACT_URI and AWS_* variables the job needs.
set -uo pipefail

# The env file is data, never shell code: each line is KEY=value, taken literally. No expansion ($, `, \),
# no word splitting, no inline comments: `ab$cd#ef` and `p@ss word` reach the job exactly as written.
#   - blank lines and lines starting with # (after optional spaces) are ignored; `export KEY=value` is accepted;
#   - KEY is letters, digits and underscores, not starting with a digit;
#   - the value is everything after the first '=', without surrounding spaces; one pair of matching quotes
#     around the whole value ('...' or "...") is removed, so a value may keep leading or trailing spaces.
# A malformed line stops the job (exit 4) naming the line number, never its content (it may hold a secret).
load_env_file() {
  local file="$1" line key value number=0
  while IFS= read -r line || [ -n "$line" ]; do
    number=$((number + 1))
    line="${line%$'\r'}"
    # Trim leading and trailing blanks.
    line="${line#"${line%%[![:space:]]*}"}"
    line="${line%"${line##*[![:space:]]}"}"
    case "$line" in '' | '#'*) continue ;; esac
    case "$line" in 'export '*) line="${line#export }"; line="${line#"${line%%[![:space:]]*}"}" ;; esac
    if [[ "$line" != *=* ]]; then
      echo "insiders: $file line $number is not KEY=value" >&2
      return 4
    fi
    key="${line%%=*}"
    key="${key%"${key##*[![:space:]]}"}"
    value="${line#*=}"
    value="${value#"${value%%[![:space:]]*}"}"
    if ! [[ "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
      echo "insiders: $file line $number: the name before '=' is not a variable name" >&2
      return 4
    fi
    if [ "${#value}" -ge 2 ] && { [[ "$value" == \'*\' ]] || [[ "$value" == \"*\" ]]; }; then
      value="${value:1:${#value}-2}"
    fi
    export "$key=$value"
  done <"$file"
}

env_file="${INSIDERS_ENV_FILE:-/etc/insiders/env}"
if [ -r "$env_file" ]; then
  load_env_file "$env_file" || exit $?
elif [ -n "${INSIDERS_ENV_FILE:-}" ]; then
  echo "insiders: cannot read the env file $env_file (INSIDERS_ENV_FILE)" >&2
  exit 4
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
# In the background so that this script can pass SIGTERM/SIGINT on (a scheduler's timeout often signals only
# the wrapper); the job then stops its children, rolls back and exits, and its status is reported as usual.
# (Background jobs start with SIGINT ignored, so both are passed on as SIGTERM.)
"$home/.venv/bin/insiders" "${args[@]}" >"$log" 2>&1 &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT
while :; do
  wait "$child"
  status=$?
  kill -0 "$child" 2>/dev/null || break # wait was interrupted by a signal: keep waiting for the job
done
trap - TERM INT
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
