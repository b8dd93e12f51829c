# shellcheck shell=bash
# tests/engine/watch-lib.sh - what the `bottled watch` tests (t05NN) share;
# sourced after harness.sh.  The caller sets PREFIX (the --name-prefix),
# STATE (the state dir), WPID (the watcher's pid) and DEADLINE (seconds),
# and runs the watcher with stdout in $_TMP/w.out and stderr in $_TMP/w.err.

# ctr_field NAME KEY...: a field of the container's inspect, or "none"
ctr_field() {
    local n=$1
    shift
    api GET "/containers/$n/json" 2>/dev/null | jget "$@" 2>/dev/null || echo none
}
# col BOTTLE COLUMN: the bottle's column in the state database
col() { sqlite3 "$STATE/state.db" "SELECT $2 FROM bottles WHERE name = '$1'" 2>/dev/null || true; }
# deletions BOTTLE: how many times the event log says it was deleted
deletions() {
    sqlite3 "$STATE/state.db" "SELECT count(*) FROM events WHERE kind = 'deleted' AND bottle = '$1'" 2>/dev/null || echo "?"
}
# gone BOTTLE: neither its agent nor its sidecar exists
gone() { [ "$(ctr_field "$PREFIX-$1-agent" Id)" = none ] && [ "$(ctr_field "$PREFIX-$1-proxy" Id)" = none ]; }
# deleted BOTTLE: its containers are gone and the event log recorded the deletion
deleted() { gone "$1" && [ "$(deletions "$1")" -ge 1 ]; }
# passes: how many passes the watcher reported
passes() { grep -c '^watch: pass ' "$_TMP/w.out" || true; }
more_passes() { [ "$(passes)" -gt "$1" ]; }

# wait_within SECONDS DESCRIPTION COMMAND...: polls COMMAND until it
# succeeds (a pass) or SECONDS are over (a failure); the watcher dying
# meanwhile is fatal
wait_within() {
    local limit=$1 what=$2 t0
    shift 2
    t0=$(date +%s)
    while [ $(($(date +%s) - t0)) -lt "$limit" ]; do
        if "$@"; then
            pass "$what ($(($(date +%s) - t0)) s)"
            return 0
        fi
        kill -0 "$WPID" 2>/dev/null || fatal "$what: the watcher died: $(tail -5 "$_TMP/w.err")"
        sleep 0.2
    done
    fail "$what: not within $limit s; watcher: $(tail -6 "$_TMP/w.out" | tr '\n' '|') $(tail -5 "$_TMP/w.err" | tr '\n' '|')"
    return 0
}
# wait_for DESCRIPTION COMMAND...: wait_within DEADLINE seconds
wait_for() { wait_within "$DEADLINE" "$@"; }
