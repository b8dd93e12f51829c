#!/usr/bin/env bash
# t0500-watch.sh [BACKEND] - `bottled watch` against a real engine, with
# the watch backend BACKEND (fswatch or inotify; default: the binary's).
# One watcher runs through every writer of issue 5, in order, on a
# git-sync layout (M is a link to trees/t1, later swapped to trees/t2):
#
#   start           the first pass creates bottle a
#   new file        b.md appears: b is created
#   vim save        a.md -> a.md~, a new a.md (env changed), a.md~ deleted:
#                   a's agent is recreated, nothing deleted
#   partial write   half of b.md (cut inside the front matter), a pause
#                   longer than the settle window, then the rest (env
#                   changed): b is never deleted, the final state applied
#   git-sync swap   `ln -s trees/t2 tmp && mv -T tmp M`; t2 changes a, adds
#                   c, drops b: c created, a changed, b deleted only after
#                   --grace (3 s) and nothing else deleted
#   overflow        SIGUSR1 (the backend's inject hook): a full rescan, the
#                   watcher keeps running and sees the next change (d.md)
#   index.lock      .git/index.lock defers the pass (e.md not created)
#                   until the lock is removed
#   drift           a's agent removed by hand is back within a resync
#                   (--resync 3); c's agent stopped by hand runs again
#   dir replaced    trees/t2 moved away and a copy put in its place: the
#                   watcher re-opens and sees a later change (c's env)
#   SIGTERM         exit 0
# Finally the event log holds exactly one deletion (b) and no "delete"
# action for any other bottle.
. "$(dirname "$0")/harness.sh"
. "$(dirname "$0")/watch-lib.sh"

: "${BOTTLED_BIN:?BOTTLED_BIN (the bottled binary) must be set; ctest sets it}"
BACKEND=${1:-${BOTTLED_WATCH_BACKEND:-}}
require_engine
command -v sqlite3 >/dev/null || fatal "sqlite3 is installed"
DEADLINE=${BOTTLED_TEST_WATCH_DEADLINE:-90} # seconds; a loaded engine is slow, not wrong
GRACE=3

STATE=$_TMP/state
TREES=$_TMP/trees
M=$_TMP/bottles
PREFIX=t0500$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
mkdir -p "$TREES/t1"
ln -s "$TREES/t1" "$M"
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

manifest() { # FILE ENVVALUE: a bottle whose agent sleeps, with env X=ENVVALUE
    cat >"$1" <<EOF
---
env: {X: "$2"}
agent:
  command: [sleep, infinity]
egress:
  routes:
    - host: example.org
---
t0500's agent.
EOF
}
printf 'UNUSED@x.test=1\n' >"$_TMP/secrets"
chmod 0600 "$_TMP/secrets"
POOL=$(free_pool) || fatal "list the engine's networks"
[ -n "$POOL" ] || fatal "a free /24 in 10.213.0.0/16"

running() { [ "$(ctr_field "$PREFIX-$1-agent" State Running)" = True ]; }
agent_env() { ctr_field "$PREFIX-$1-agent" Config Env | python3 -c '
import json, sys
for e in json.loads(sys.stdin.read() or "[]"):
    if e.startswith("X="):
        print(e[2:])' 2>/dev/null || true; }
env_is() { [ "$(agent_env "$1")" = "$2" ]; }

# ---- start ---------------------------------------------------------------------
manifest "$TREES/t1/a.md" 1
args=(watch -d "$M" --state-dir "$STATE" --secrets "$_TMP/secrets" --engine "unix://$SOCK"
    --name-prefix "$PREFIX" --subnet-pool "$POOL" --grace "$GRACE" --resync 3 --settle 200)
[ -z "$BACKEND" ] || args+=(--watch-backend "$BACKEND")
"$BOTTLED_BIN" "${args[@]}" >"$_TMP/w.out" 2>"$_TMP/w.err" &
WPID=$!
note "watcher pid $WPID, backend ${BACKEND:-default}, prefix $PREFIX, pool $POOL"
wait_for "the first pass creates bottle a" running a
INSTANCE=$(cat "$STATE/instance-id" 2>/dev/null || true)
grep -q "^watch: instance .*, ${BACKEND:-[a-z]*} on " "$_TMP/w.out" &&
    pass "the watcher runs the ${BACKEND:-default} backend" ||
    fail "backend line: $(head -1 "$_TMP/w.out")"

# ---- a new manifest -----------------------------------------------------------
manifest "$TREES/t1/b.md" 1
wait_for "a new manifest b.md: bottle b created" running b

# ---- vim-style save: rename to a backup, write a new file, delete the backup ---
a_id=$(ctr_field "$PREFIX-a-agent" Id)
a_net=$(api GET "/networks/$PREFIX-a-int" | jget Id)
mv "$TREES/t1/a.md" "$TREES/t1/a.md~"
: >"$TREES/t1/4913" && rm -f "$TREES/t1/4913"
manifest "$TREES/t1/a.md" 2
rm -f "$TREES/t1/a.md~"
wait_for "vim-style save changing env: a's agent has X=2" env_is a 2
[ "$(ctr_field "$PREFIX-a-agent" Id)" != "$a_id" ] && pass "a's agent was recreated" ||
    fail "a's agent was not recreated"
assert_eq "$a_net" "$(api GET "/networks/$PREFIX-a-int" | jget Id)" "a's network was kept (not deleted and recreated)"
assert_eq 0 "$(deletions a)" "a was never deleted"

# ---- partial write ----------------------------------------------------------------
manifest "$_TMP/b.full" 3
n0=$(passes)
head -c 30 "$_TMP/b.full" >"$TREES/t1/b.md" # inside the front matter
wait_for "a pass ran on the half-written b.md" more_passes "$n0"
cat "$_TMP/b.full" >"$TREES/t1/b.md"
wait_for "partial write completed: b's agent has X=3" env_is b 3
assert_eq 0 "$(deletions b)" "b was never deleted by the partial write"
# (env_is sees the new agent once it is created; it starts a moment later)
wait_for "b runs after the partial write" running b

# ---- git-sync swap: a changed, c added, b removed --------------------------------
mkdir -p "$TREES/t2"
manifest "$TREES/t2/a.md" 4
manifest "$TREES/t2/c.md" 1
ln -s "$TREES/t2" "$_TMP/tmp-link"
swap_ts=$(date +%s)
mv -T "$_TMP/tmp-link" "$M"
rm -rf "$TREES/t1" # git-sync removes the old worktree
wait_for "after the swap: c created" running c
wait_for "after the swap: a's agent has X=4" env_is a 4
wait_for "after the swap: b removed (after its grace)" deleted b
del_ts=$(sqlite3 "$STATE/state.db" "SELECT max(ts) FROM events WHERE kind = 'deleted' AND bottle = 'b'")
if [ -n "$del_ts" ] && [ $((del_ts - swap_ts)) -ge $((GRACE - 1)) ]; then
    pass "b deleted $((del_ts - swap_ts)) s after the swap (grace $GRACE s)"
else
    fail "b deleted at '$del_ts', swap at $swap_ts: before its grace"
fi
grep -q "b: no manifest declares it; deleted in $GRACE s" "$_TMP/w.out" &&
    pass "the watcher announced b's grace" || fail "no grace announced for b"
assert_eq 1 "$(deletions b)" "b deleted once"
assert_eq "0 0" "$(deletions a) $(deletions c)" "a and c never deleted"

# ---- overflow -----------------------------------------------------------------------
n0=$(passes)
kill -USR1 "$WPID"
wait_for "an injected overflow: a full rescan" grep -q '^watch: pass [0-9]* (overflow)' "$_TMP/w.out"
manifest "$TREES/t2/d.md" 1
wait_for "after the overflow the watcher sees d.md: d created" running d

# ---- .git/index.lock defers ----------------------------------------------------------
mkdir -p "$TREES/t2/.git"
: >"$TREES/t2/.git/index.lock"
manifest "$TREES/t2/e.md" 1
wait_for "index.lock: the pass is deferred" grep -q 'index.lock.*pass deferred' "$_TMP/w.out"
live() { # the watcher's row in `bottled status --json`, as "running activity"
    "$BOTTLED_BIN" status --json --state-dir "$STATE" 2>/dev/null |
        python3 -c 'import json,sys; w=json.load(sys.stdin)["watcher"]; print(w["running"], w["activity"], w["backend"])'
}
assert_eq "True deferred ${BACKEND:-$(live | cut -d' ' -f3)}" "$(live)" \
    "status shows the running watcher's pass deferred by index.lock"
sleep 4
running e && fail "e was created while .git/index.lock existed" ||
    pass "no pass while .git/index.lock exists (e not created after 4 s)"
rm -f "$TREES/t2/.git/index.lock"
wait_for "index.lock removed: e created" running e

# ---- drift ------------------------------------------------------------------------------
api DELETE "/containers/$PREFIX-a-agent?force=true" >/dev/null || fail "remove a's agent by hand"
wait_for "drift: a's agent removed by hand is back" running a
api POST "/containers/$PREFIX-c-agent/stop?t=1" >/dev/null || fail "stop c's agent by hand"
wait_for "drift: c's agent stopped by hand runs again" running c

# ---- the directory replaced ---------------------------------------------------------------
mv "$TREES/t2" "$TREES/t2.old"
cp -a "$TREES/t2.old" "$TREES/t2"
rm -rf "$TREES/t2.old"
wait_for "directory replaced: the watcher re-opens" grep -q 're-opened on' "$_TMP/w.out"
manifest "$TREES/t2/c.md" 2
wait_for "after the replacement a change is seen: c's agent has X=2" env_is c 2

# ---- idle: no tight loop -------------------------------------------------------------------
sleep 2
n0=$(passes)
sleep 6
n1=$(passes)
[ $((n1 - n0)) -le 3 ] && pass "idle for 6 s: $((n1 - n0)) pass(es) (resync 3 s), no busy loop" ||
    fail "idle for 6 s: $((n1 - n0)) passes"

# ---- SIGTERM ----------------------------------------------------------------------------
kill -TERM "$WPID"
rc=0
wait "$WPID" || rc=$?
WPID=
assert_eq 0 "$rc" "SIGTERM: the watcher exits 0"
assert_eq "False stopped" "$(live | cut -d' ' -f1-2)" "status after SIGTERM: the watcher stopped"

# ---- nothing deleted by mistake ------------------------------------------------------------
got=$(sqlite3 "$STATE/state.db" "SELECT group_concat(bottle, ',') FROM events WHERE kind = 'deleted'")
assert_eq "b" "$got" "the event log: b is the only bottle ever deleted"
got=$(sqlite3 "$STATE/state.db" "SELECT count(*) FROM events WHERE kind = 'delete' AND bottle <> 'b'")
assert_eq 0 "$got" "no delete action for any other bottle"
for x in a c d e; do
    running "$x" || fail "$x runs at the end"
done
pass "a, c, d, e run at the end"
errs=$(grep -v -e '^inotify_rm_watch: Invalid argument$' -e 'cannot be watched now; retrying' \
    -e 'has errors' -e '^  ' -e 'front matter' -e '^[^ ]*:[0-9]*:[0-9]*: ' "$_TMP/w.err" || true)
[ -z "$errs" ] && pass "nothing unexpected on the watcher's stderr" ||
    fail "the watcher's stderr: $(head -c 800 <<<"$errs")"
