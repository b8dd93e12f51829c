#!/usr/bin/env bash
# t0302: drift repair, the state lock and a second instance, against a real engine.
#   6. an agent or a sidecar removed by hand is created again; a stopped agent or
#      sidecar is started (same container); an extra network connected by
#      hand to the agent is repaired by recreating it without that network;
#      each with its cause in the JSON;
#  11. while a reconcile holds the state dir's lock, another reconcile or gc
#      exits 3 naming the holder's pid, and plan, render and --dry-run work;
#   7. a second instance (its own state dir and prefix) on the same engine:
#      neither touches the other's resources, not even when the first one
#      deletes everything it has.
# Runs with --insecure-no-host-firewall (the firewall module is not merged).
. "$(dirname "$0")/harness.sh"
. "$(dirname "$0")/reconcile-lib.sh"

require_engine
require_images

M=$_TMP/manifests
mkdir -p "$M"
cp "$REPO/examples/claude.md" "$M/"
bottle_md "$M" demo
SECRETS=$_TMP/secrets
write_secrets "$SECRETS" "CLAUDE_OAUTH_TOKEN@api.anthropic.com=t0302-not-a-real-token"
STATE=$_TMP/state
INSTANCE=$(new_state "$STATE")
PREFIX=$(new_prefix t0302)
POOL=$(free_pool) || fatal "list the engine's networks"
[ -n "$POOL" ] || fatal "a free /24 in 10.213.0.0/16"
note "instance $INSTANCE, prefix $PREFIX, pool $POOL"
P=$PREFIX-demo

bd reconcile --once --json
assert_rc 0 "the bottle is created"
assert_eq "$(six_names demo)" "$(names_of "$INSTANCE" demo)" "its six resources exist"

# repaired ACTIONS DESCRIPTION: reconcile, its actions are ACTIONS, and the
# next pass has nothing to do
repaired() {
    bd reconcile --once --json
    assert_rc 0 "$2: reconcile exits 0"
    assert_eq "$1" "$(actions_of demo)" "$2: the repair and its cause"
    assert_eq "True" "$(json "all(a['ok'] for a in $(jb demo)['actions'])")" "$2: the repair succeeded"
    bd reconcile --once --json --detailed-exitcode
    assert_eq "0 0" "$RC $(json 'd["summary"]["engine_changes"]')" "$2: the next pass has nothing to do"
}
# unchanged_but ROLE DESCRIPTION: every resource but ROLE's container is as in $_TMP/before
unchanged_but() {
    snapshot "$INSTANCE" >"$_TMP/after"
    assert_eq "$(grep -v " $P-$1 " "$_TMP/before")" "$(grep -v " $P-$1 " "$_TMP/after")" \
        "$2: every other resource is the same (ids, volume markers)"
}

# ---- 6a. an agent removed by hand ------------------------------------------------
snapshot "$INSTANCE" >"$_TMP/before"
OLD=$(cid "$P-agent")
api DELETE "/containers/$OLD?force=1" >/dev/null || fatal "remove the agent by hand"
repaired "create:agent:missing" "agent removed by hand"
NEW=$(cid "$P-agent")
[ -n "$NEW" ] && [ "$NEW" != "$OLD" ] && pass "agent removed by hand: a new agent exists" ||
    fail "agent removed by hand: id before $OLD, after '$NEW'"
assert_eq running "$(cstate "$P-agent" | cut -d' ' -f1)" "agent removed by hand: the new agent runs"
unchanged_but agent "agent removed by hand"

# ---- 6a'. a sidecar removed by hand: only it is created again ---------------------------
snapshot "$INSTANCE" >"$_TMP/before"
OLD=$(cid "$P-proxy")
api DELETE "/containers/$OLD?force=1" >/dev/null || fatal "remove the sidecar by hand"
repaired "create:proxy:missing" "sidecar removed by hand"
NEW=$(cid "$P-proxy")
[ -n "$NEW" ] && [ "$NEW" != "$OLD" ] && pass "sidecar removed by hand: a new sidecar exists" ||
    fail "sidecar removed by hand: id before $OLD, after '$NEW'"
unchanged_but proxy "sidecar removed by hand (the agent is kept)"
assert_eq "$(render_hash demo)" "$(sidecar_hash "$P-proxy")" "the new sidecar serves the rendered config hash"

# ---- 6b. a stopped agent, a stopped sidecar ------------------------------------------
for role in agent proxy; do
    snapshot "$INSTANCE" >"$_TMP/before"
    api POST "/containers/$P-$role/stop?t=1" >/dev/null || fatal "stop the $role"
    assert_eq exited "$(cstate "$P-$role" | cut -d' ' -f1)" "the $role is stopped"
    repaired "start:$role:not running (exited)" "stopped $role"
    snapshot "$INSTANCE" >"$_TMP/after"
    assert_eq "$(cat "$_TMP/before")" "$(cat "$_TMP/after")" \
        "stopped $role: started again, same container, nothing else changed"
done
check_exec "$P-proxy" "the restarted sidecar answers /healthz with 200" \
    "$ADMIN_SH"'; test "$(curl -s -o /dev/null -w "%{http_code}" --max-time 5 "http://$a/healthz")" = 200'
assert_eq "$(render_hash demo)" "$(sidecar_hash "$P-proxy")" "the restarted sidecar serves the rendered config hash"

# ---- 6c. an extra network connected by hand -------------------------------------------
X=$PREFIX-extra
api POST /networks/create "{\"Name\":\"$X\",\"Internal\":true,\"Labels\":{\"$RUN_LABEL\":\"$RUN_ID\"}}" >/dev/null ||
    fatal "create the extra network $X"
XID=$(api GET "/networks/$X" | jget Id)
snapshot "$INSTANCE" >"$_TMP/before"
OLD=$(cid "$P-agent")
api POST "/networks/$X/connect" "{\"Container\":\"$OLD\"}" >/dev/null || fatal "connect the agent to $X"
bd plan --json
assert_eq "recreate:agent:drift: extra network attached ($X)" "$(actions_of demo)" "plan sees the extra network as drift"
repaired "recreate:agent:drift: extra network attached ($X)" "extra network"
NEW=$(cid "$P-agent")
[ -n "$NEW" ] && [ "$NEW" != "$OLD" ] && pass "extra network: the agent was recreated" ||
    fail "extra network: id before $OLD, after '$NEW'"
assert_eq "$P-int" "$(api GET "/containers/$P-agent/json" | python3 -c 'import json, sys; print(" ".join(sorted(json.load(sys.stdin)["NetworkSettings"]["Networks"])))')" \
    "extra network: the new agent is on the internal network only"
assert_eq "$XID" "$(api GET "/networks/$X" | jget Id)" "extra network: the network itself (not ours) is untouched"
unchanged_but agent "extra network"

# ---- 11. the state lock --------------------------------------------------------------
# A real reconcile holds the lock: it is frozen (SIGSTOP) once the lock file
# names it, in the middle of a pass that has work to do.
HOLDER=""
for attempt in 1 2 3 4 5; do
    api DELETE "/containers/$P-agent?force=1" >/dev/null || fatal "remove the agent (work for the holder)"
    timeout "$BD_TIMEOUT" "$BOTTLED_BIN" reconcile -d "$M" --state-dir "$STATE" --secrets "$SECRETS" \
        --engine "unix://$SOCK" --name-prefix "$PREFIX" --subnet-pool "$POOL" --insecure-no-host-firewall \
        --once >"$_TMP/holder.out" 2>&1 &
    pid=$!
    bg_started "$pid"
    # timeout(1) is $pid; bottled is its child
    for _ in $(seq 500); do
        bpid=$(pgrep -P "$pid" 2>/dev/null | head -1) || true
        if [ -n "$bpid" ] && grep -qx "pid $bpid" "$STATE/lock" 2>/dev/null; then
            kill -STOP "$bpid" && HOLDER=$bpid
            break
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.01
    done
    if [ -n "$HOLDER" ] && grep -qx "pid $HOLDER" "$STATE/lock"; then
        break
    fi
    [ -z "$HOLDER" ] || kill -CONT "$HOLDER"
    HOLDER=""
    wait "$pid" || true
    note "attempt $attempt: the pass ended before it could be frozen; again"
done
[ -n "$HOLDER" ] || fatal "freeze a reconcile while it holds the lock"
note "reconcile pid $HOLDER holds the lock (stopped)"
bd reconcile --once
assert_rc 3 "a second reconcile exits 3 while the lock is held"
grep -q "locked by pid $HOLDER" "$ERR" && pass "it names the holder's pid: $(head -c 300 "$ERR")" ||
    fail "the message does not name pid $HOLDER: $(said)"
bd gc
assert_rc 3 "gc exits 3 while the lock is held"
bd plan --json
case "$RC" in
0 | 2) pass "plan works while the lock is held (exit $RC)" ;;
*) fail "plan while the lock is held: exit $RC: $(said)" ;;
esac
bd reconcile --once --dry-run
case "$RC" in
0 | 2) pass "reconcile --dry-run works while the lock is held (exit $RC)" ;;
*) fail "reconcile --dry-run while the lock is held: exit $RC: $(said)" ;;
esac
bd render --json demo
assert_rc 0 "render works while the lock is held"
kill -CONT "$HOLDER"
set +e
wait "$pid"
hrc=$?
set -e
assert_eq 0 "$hrc" "the frozen reconcile finishes once thawed, exit 0 ($(head -c 300 "$_TMP/holder.out" | tr '\n' ' '))"
assert_eq running "$(cstate "$P-agent" | cut -d' ' -f1)" "it created the agent"
bd reconcile --once --json --detailed-exitcode
assert_eq "0 0" "$RC $(json 'd["summary"]["engine_changes"]')" "after the holder is gone, reconcile takes the lock (exit 0, no change)"
# Any flock holder counts, also one that is not bottled and wrote no pid
# (one process: the subshell takes the lock on fd 9, then becomes sleep).
(
    exec 9>>"$STATE/lock"
    flock -x 9
    exec sleep 60
) &
fpid=$!
bg_started "$fpid"
for _ in $(seq 100); do
    flock -xn "$STATE/lock" true 2>/dev/null || break
    sleep 0.05
done
bd reconcile --once
assert_rc 3 "a lock held with flock(1) by another process: reconcile exits 3"
grep -q "locked by" "$ERR" && pass "it says the state dir is locked: $(head -c 300 "$ERR")" || fail "message: $(said)"
kill "$fpid"
wait "$fpid" 2>/dev/null || true
flock -xn "$STATE/lock" true && pass "the flock(1) holder is gone" || fail "the lock is still held"

# ---- another --subnet-pool recreates nothing; another --name-prefix renames -------------
snapshot "$INSTANCE" >"$_TMP/before"
POOL=10.213.0.0/16 bd reconcile --once --json --detailed-exitcode
assert_eq "0 0" "$RC $(json 'd["summary"]["engine_changes"]')" "a changed --subnet-pool recreates nothing (subnets are kept)"
assert_eq "$(cat "$_TMP/before")" "$(snapshot "$INSTANCE")" "same resources after the pool change"
OLD_PREFIX=$PREFIX
PREFIX=$(new_prefix t0302r)
P=$PREFIX-demo
bd reconcile --once --json
assert_rc 0 "a changed --name-prefix: reconcile exits 0"
assert_eq "delete:agent:not desired (agent $OLD_PREFIX-demo-agent) delete:proxy:not desired (proxy $OLD_PREFIX-demo-proxy) delete:cfg:not desired (cfg $OLD_PREFIX-demo-cfg) delete:work:not desired (work $OLD_PREFIX-demo-work) delete:egr:not desired (egr $OLD_PREFIX-demo-egr) delete:int:not desired (int $OLD_PREFIX-demo-int) create:int:missing create:egr:missing create:work:missing create:cfg:missing create:proxy:missing create:agent:missing" \
    "$(actions_of demo)" "the old names are deleted (in delete order), then the new ones created"
assert_eq "$(six_names demo)" "$(snapshot "$INSTANCE" | awk '{print $2}' | sort | tr '\n' ' ' | sed 's/ $//')" \
    "only the six resources under the new prefix exist"
bd plan --detailed-exitcode
assert_rc 0 "plan under the new prefix is empty"

# ---- 7. a second instance on the same engine --------------------------------------------
STATE2=$_TMP/state2
INSTANCE2=$(new_state "$STATE2")
PREFIX2=$(new_prefix t0302b)
note "second instance $INSTANCE2, prefix $PREFIX2"
snapshot "$INSTANCE" >"$_TMP/a1"
STATE=$STATE2 PREFIX=$PREFIX2 bd reconcile --once --json
assert_rc 0 "the second instance creates its bottle"
assert_eq "$(PREFIX=$PREFIX2 six_names demo)" "$(PREFIX=$PREFIX2 names_of "$INSTANCE2" demo)" \
    "the second instance's six resources exist, under its prefix and instance label"
assert_eq "$(cat "$_TMP/a1")" "$(snapshot "$INSTANCE")" "the first instance's resources are untouched"
snapshot "$INSTANCE2" >"$_TMP/b1"
bd reconcile --once --json --detailed-exitcode
assert_eq "0 0 demo" "$RC $(json 'd["summary"]["engine_changes"]') $(json '" ".join(b["name"] for b in d["bottles"])')" \
    "the first instance's reconcile: nothing to do, only its own bottle in view"
bd gc --json
assert_eq "0 []" "$RC $(json '[b["name"] for b in d["bottles"]]')" "the first instance's gc finds nothing to remove"
EMPTY=$_TMP/empty
mkdir -p "$EMPTY"
M=$EMPTY bd reconcile --once --json --allow-empty --force
assert_rc 0 "the first instance, with no manifest, deletes its bottles (--allow-empty)"
assert_eq "" "$(snapshot "$INSTANCE")" "nothing of the first instance is left"
assert_eq "$(cat "$_TMP/b1")" "$(snapshot "$INSTANCE2")" "the second instance's resources are untouched"
STATE=$STATE2 PREFIX=$PREFIX2 bd plan --detailed-exitcode
assert_rc 0 "the second instance's plan is empty"
M=$EMPTY bd gc --allow-empty --force
assert_rc 0 "the first instance's gc with no manifest exits 0"
assert_eq "$(cat "$_TMP/b1")" "$(snapshot "$INSTANCE2")" "the second instance's resources are still untouched"
