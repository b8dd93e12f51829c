#!/usr/bin/env bash
# t0501-watch-backoff.sh [BACKEND] - `bottled watch`'s work queue against
# a real engine:
#
#   backoff    a bottle that cannot be built (its agent image does not
#              exist) is retried with exponential backoff, not on every
#              resync (--resync 1): few attempts in ~9 s, the others are
#              held; it shows Reconciling with the reason, and bottle ok
#              beside it is created regardless
#   reset      fixing its manifest applies at once, whatever the backoff
#   refusal    with --max-deletes 0 and --grace 0, removing a manifest makes
#              the bottle Stalled (refused), not retried on a timer;
#              `bottled approve-deletes` while the watcher runs lifts it and
#              the bottle is deleted within a few seconds
#              (a second watcher with --resync 600, so the approval is
#              noticed by the watcher's approval check, not by a resync)
#   fighting   ok's agent stopped by hand four times in a row: each time it
#              runs again; after three repairs the bottle is marked Degraded
#              (a "fighting" event), further repairs back off, and it stays
#              Degraded between repairs; a manifest change makes it Ready
#   SIGHUP     runs a pass at once
#   --json     a third watcher prints each pass as one JSON line on stdout
#              (trigger, actions, engine changes); `bottled status` shows it
#              running and what it does; after SIGTERM, stopped
. "$(dirname "$0")/harness.sh"
. "$(dirname "$0")/watch-lib.sh"

: "${BOTTLED_BIN:?BOTTLED_BIN (the bottled binary) must be set; ctest sets it}"
BACKEND=${1:-${BOTTLED_WATCH_BACKEND:-}}
require_engine
command -v sqlite3 >/dev/null || fatal "sqlite3 is installed"
DEADLINE=${BOTTLED_TEST_WATCH_DEADLINE:-90}

STATE=$_TMP/state
M=$_TMP/bottles
PREFIX=t0501$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
mkdir -p "$M"
INSTANCE=
WPID=

cleanup_all() {
    if [ -n "$WPID" ]; then
        kill -TERM "$WPID" 2>/dev/null || true
        wait "$WPID" 2>/dev/null || true
    fi
    [ -n "$INSTANCE" ] || INSTANCE=$(cat "$STATE/instance-id" 2>/dev/null || true)
    cleanup_instance "$INSTANCE"
}
trap 'cleanup_all; _finish' EXIT

manifest() { # FILE IMAGE
    cat >"$1" <<EOF
---
agent:
  image: $2
  command: [sleep, infinity]
egress:
  routes:
    - host: example.org
---
t0501's agent.
EOF
}
printf 'UNUSED@x.test=1\n' >"$_TMP/secrets"
chmod 0600 "$_TMP/secrets"
POOL=$(free_pool) || fatal "list the engine's networks"
[ -n "$POOL" ] || fatal "a free /24 in 10.213.0.0/16"

running() { [ "$(ctr_field "$PREFIX-$1-agent" State Running)" = True ]; }
has_col() { [ "$(col "$1" "$2")" = "$3" ]; }

GOOD=localhost/bottled-agent:latest
manifest "$M/ok.md" "$GOOD"
manifest "$M/bad.md" "localhost/t0501-no-such-image:never"
args=(watch -d "$M" --state-dir "$STATE" --secrets "$_TMP/secrets" --engine "unix://$SOCK"
    --name-prefix "$PREFIX" --subnet-pool "$POOL" --grace 0 --resync 1 --max-deletes 0)
[ -z "$BACKEND" ] || args+=(--watch-backend "$BACKEND")
"$BOTTLED_BIN" "${args[@]}" >"$_TMP/w.out" 2>"$_TMP/w.err" &
WPID=$!
note "watcher pid $WPID, backend ${BACKEND:-default}, prefix $PREFIX"
wait_for "bottle ok is created beside the failing one" running ok
INSTANCE=$(cat "$STATE/instance-id" 2>/dev/null || true)

# ---- backoff ------------------------------------------------------------------
t0=$(date +%s)
f0=$(col bad failures)
sleep 9
f1=$(col bad failures)
n=$(passes)
note "bad: failures $f0 -> $f1 over 9 s, $n passes so far (resync 1 s)"
if [ -n "$f1" ] && [ "$f1" -ge 2 ] && [ "$f1" -le 6 ] && [ "$n" -ge 6 ]; then
    pass "backoff: bad attempted $f1 times in ~$(($(date +%s) - t0 + 2)) s of passes every second"
else
    fail "backoff: failures '$f0' -> '$f1' with $n passes"
fi
grep -q 'held (backoff)' "$_TMP/w.out" && grep -Eq '[1-9][0-9]* held \(backoff\)' "$_TMP/w.out" &&
    pass "passes held bad back while its backoff ran" || fail "no pass held bad: $(tail -3 "$_TMP/w.out")"
assert_eq Reconciling "$(col bad phase)" "bad shows Reconciling"
case "$(col bad last_error)" in
*"not found"*) pass "bad's last error says why: $(col bad last_error)" ;;
*) fail "bad's last error: '$(col bad last_error)'" ;;
esac

# ---- fixing the manifest applies at once ------------------------------------------
manifest "$M/bad.md" "$GOOD"
wait_for "fixed manifest: bad created without waiting for its backoff" running bad
wait_for "bad's failures reset" has_col bad failures 0

# ---- a tool fighting us: repaired with backoff, shown Degraded -------------------------
for i in 1 2 3 4; do
    running ok || wait_for "ok runs before stop $i" running ok
    # the watcher may be restarting it at this very moment: try a few times
    stopped=0
    for _ in 1 2 3 4 5; do
        if api POST "/containers/$PREFIX-ok-agent/stop?t=1" >/dev/null 2>&1; then
            stopped=1
            break
        fi
        sleep 1
    done
    [ "$stopped" = 1 ] || fail "stop ok's agent ($i)"
    wait_for "fight $i: ok's agent stopped by hand runs again" running ok
done
fights=$(sqlite3 "$STATE/state.db" "SELECT count(*) FROM events WHERE kind = 'fighting' AND bottle = 'ok'")
[ "$fights" -ge 1 ] && pass "repeated repairs logged as a fight ($fights event)" ||
    fail "no fighting event for ok: $(tail -5 "$_TMP/w.err")"
grep -q "ok: repaired [0-9]* times in a row" "$_TMP/w.err" && pass "the watcher says ok is being fought over" ||
    fail "no fight message: $(tail -3 "$_TMP/w.err")"
sleep 2
assert_eq Degraded "$(col ok phase)" "while the fight goes on (no quiet window yet) ok stays Degraded"
case "$(col ok reason)" in
*"outside bottled"*) pass "ok's reason names the fight" ;;
*) fail "ok's reason: '$(col ok reason)'" ;;
esac
# a manifest change ends the fight (the body changes the agent's files)
manifest "$M/ok.md" "$GOOD"
printf 'changed body\n' >>"$M/ok.md"
wait_for "its manifest changed, ok is Ready again" has_col ok phase Ready

# ---- a refused deletion waits for approve-deletes ------------------------------------
# A new watcher with a long resync, so that only its approval check (once a
# second while a refusal is pending) can notice the approval.
kill -TERM "$WPID"
rc=0
wait "$WPID" || rc=$?
assert_eq 0 "$rc" "SIGTERM: the first watcher exits 0"

for i in "${!args[@]}"; do [ "${args[$i]}" != --resync ] || args[$((i + 1))]=600; done
"$BOTTLED_BIN" "${args[@]}" >"$_TMP/w.out" 2>"$_TMP/w.err" &
WPID=$!
wait_for "a second watcher (--resync 600) starts on the same state" grep -q '^watch: pass 1 (start)' "$_TMP/w.out"
rm -f "$M/ok.md"
wait_for "removing ok.md with --max-deletes 0: ok Stalled (refused)" has_col ok phase Stalled
sleep 3
running ok && pass "ok still runs: the refusal is not retried into a deletion" || fail "ok was deleted"
assert_eq 0 "$(deletions ok)" "no deletion of ok before the approval"
"$BOTTLED_BIN" approve-deletes --state-dir "$STATE" ok >"$_TMP/ap.out" 2>"$_TMP/ap.err" ||
    fail "approve-deletes: $(cat "$_TMP/ap.err")"
wait_for "approve-deletes while watch runs: ok deleted" deleted ok
# Usually the approval check runs the pass ("(approval)"); another trigger
# (a retry timer) may come first and take the approval itself: either way
# the approval was taken by a pass, without a resync.
got=$(sqlite3 "$STATE/state.db" "SELECT count(*) FROM events WHERE kind = 'approved' AND bottle = 'ok'")
assert_eq 1 "$got" "the watcher took the approval (event 'approved'; $(grep -o '(approval)' "$_TMP/w.out" | head -1))"

# ---- SIGHUP -----------------------------------------------------------------------------
n0=$(passes)
kill -HUP "$WPID"
wait_for "SIGHUP: a pass at once" grep -q '^watch: pass [0-9]* (hup)' "$_TMP/w.out"
sleep 1
n0=$(passes)
sleep 5
assert_eq "$n0" "$(passes)" "idle for 5 s with --resync 600: no pass (nothing polls into passes)"

kill -TERM "$WPID"
rc=0
wait "$WPID" || rc=$?
WPID=
assert_eq 0 "$rc" "SIGTERM: the watcher exits 0"
assert_eq 0 "$(deletions bad)" "bad was never deleted"

# ---- watch --json, and the live view in status -------------------------------------
"$BOTTLED_BIN" "${args[@]}" --json >"$_TMP/j.out" 2>"$_TMP/j.err" &
WPID=$!
jlines() { grep -c '^{' "$_TMP/j.out" || true; }
jlines_over() { [ "$(jlines)" -gt "$1" ]; }
wait_for "watch --json: the first pass is a JSON line" jlines_over 0
jq_last() { tail -1 "$_TMP/j.out" | python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"; }
assert_eq "start" "$(jq_last 'j["pass"]["trigger"]')" "--json: the first line is the start pass"
grep -q '^watch: pass 1 (start)' "$_TMP/j.err" && pass "--json: the progress line went to stderr" ||
    fail "--json: no progress line on stderr: $(head -3 "$_TMP/j.err")"
bad=$(grep -cv '^{' "$_TMP/j.out" || true)
assert_eq 0 "$bad" "--json: nothing but JSON lines on stdout"
"$BOTTLED_BIN" status --json --state-dir "$STATE" >"$_TMP/s.json" 2>"$_TMP/s.err" ||
    fail "status while watch runs: $(cat "$_TMP/s.err")"
got=$(python3 -c 'import json,sys; w=json.load(open(sys.argv[1]))["watcher"]; print(w["running"], w["pid"], w["activity"], w["passes"] >= 1, w["next_resync"] is not None)' "$_TMP/s.json")
assert_eq "True $WPID idle True True" "$got" "status: the watcher runs, is idle, has passed, has a resync due"
n0=$(jlines)
printf -- '---\nagent:\n  command: [sleep, infinity]\nenv: {J: "1"}\negress:\n  routes:\n    - host: example.org\n---\nj.\n' >"$M/j.md"
wait_for "watch --json: a new manifest's pass is a line" jlines_over "$n0"
wait_for "j runs" running j
got=$(grep '^{' "$_TMP/j.out" | python3 -c '
import json, sys
for line in sys.stdin:
    j = json.loads(line)
    for b in j["bottles"]:
        if b["name"] == "j" and any(a["action"] == "create" for a in b["actions"]):
            print(j["pass"]["trigger"], j["summary"]["engine_changes"] > 0, j["pass"]["ms"] > 0)
            sys.exit(0)
print("no pass created j")')
assert_eq "change True True" "$got" "--json: the change pass created j (engine changes, its ms)"
"$BOTTLED_BIN" status --state-dir "$STATE" j >"$_TMP/s.txt" 2>&1 || true
grep -q "^watcher running: pid $WPID, " "$_TMP/s.txt" && grep -q '^  last pass   ' "$_TMP/s.txt" &&
    pass "status: the running watcher, and j's last pass" || fail "status: $(cat "$_TMP/s.txt")"
kill -TERM "$WPID"
rc=0
wait "$WPID" || rc=$?
WPID=
assert_eq 0 "$rc" "SIGTERM: the --json watcher exits 0"
"$BOTTLED_BIN" status --json --state-dir "$STATE" >"$_TMP/s.json" 2>/dev/null || true
got=$(python3 -c 'import json,sys; w=json.load(open(sys.argv[1]))["watcher"]; print(w["running"], w["activity"])' "$_TMP/s.json")
assert_eq "False stopped" "$got" "status after SIGTERM: the watcher stopped"
cat "$_TMP/j.err" >>"$_TMP/w.err"

if grep -Eq 'Sanitizer|runtime error' "$_TMP/w.err"; then
    fail "sanitizer report on the watcher's stderr: $(grep -E -m3 'Sanitizer|runtime error' "$_TMP/w.err")"
else
    pass "no sanitizer report from the watcher"
fi
