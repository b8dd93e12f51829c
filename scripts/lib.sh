# scripts/lib.sh - shell helpers shared by the scripts in scripts/ (sourced, not run).
# Callers set LOG_TAG before sourcing to prefix their log lines.

LOG_TAG=${LOG_TAG:-bottled}

log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# now: seconds since the epoch with milliseconds, for durations
now() { date +%s.%N | cut -c1-14; }
# elapsed START: seconds since START, one decimal
elapsed() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.1f", e - s }'; }

# step NAME CMD...: run CMD (in this shell, errexit intact), log how long it
# took. A failure exits the script through errexit; scripts install
# `trap step_exit_report EXIT` to name the failed step and its duration.
STEP_NAME=""
step() {
    STEP_NAME=$1
    shift
    STEP_T0=$(now)
    log "step: $STEP_NAME"
    "$@"
    log "step: $STEP_NAME done in $(elapsed "$STEP_T0") s"
    STEP_NAME=""
}
step_exit_report() { # [STATUS]
    local rc=${1:-$?}
    if [ "$rc" -ne 0 ] && [ -n "$STEP_NAME" ]; then
        log "step: $STEP_NAME FAILED (exit $rc) after $(elapsed "$STEP_T0") s"
    fi
    return "$rc"
}

# repo_root: the top of the git work tree holding this script
repo_root() { cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd; }

# source_files [PATTERN...]: files git would commit (tracked plus untracked,
# minus ignored ones), NUL-separated, only those that exist in the work tree.
source_files() {
    local f
    git ls-files -z --cached --others --exclude-standard -- "$@" |
        while IFS= read -r -d '' f; do
            [ -f "$f" ] && printf '%s\0' "$f"
        done
}

# debian_mirror: the first Debian (non-security) mirror from the machine's apt sources
debian_mirror() {
    local m=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        m=$(awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }' \
            /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
        m=$(awk '$1 == "deb" && $0 !~ /security/ { print $2; exit }' /etc/apt/sources.list)
    fi
    [ -n "$m" ] || return 1
    printf '%s\n' "$m"
}
