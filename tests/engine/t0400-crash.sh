#!/usr/bin/env bash
# t0400: crash at every side effect, then converge (architecture.md, State:
# "a crash at any point (kill -9) leaves a state from which the next run
# converges with no duplicates and no leaks").
#
# Needs a bottled built with -DBOTTLED_FAULT_HOOKS=ON (lib/fault.h): each
# side effect (mutating engine request, state commit, state intent) is a
# numbered fault point; BOTTLED_FAULT_AT=N SIGKILLs the process before the
# N-th one, BOTTLED_FAULT_COUNT=FILE logs them all.  ctest registers this
# test only in such builds (labels "engine;crash", not smoke).
#
# Three scenarios, one bottle worked on in each:
#   create   from empty (no state dir, nothing on the engine)
#   change   a converged bottle whose env changes (agent recreated) and
#            whose routes change (config delivered to the kept sidecar)
#   delete   two converged bottles, one manifest removed (orphan deleted,
#            the other bottle untouched)
# For each: a clean run gives N_total (BOTTLED_FAULT_COUNT); then for every
# N in 1..N_total: reset to the scenario's start state (create: the engine
# cleaned of this test's objects and the state dir removed; change, delete:
# the pre-change manifests reconciled by a normal run, checked converged),
# `reconcile --once` with BOTTLED_FAULT_AT=N must die by SIGKILL (exit 137,
# "killed before ..."), and a rerun without the hook must converge:
#   - the rerun exits 0, `plan --detailed-exitcode` exits 0, and another
#     `reconcile --once --json` makes 0 engine changes;
#   - the engine holds exactly the expected objects (name, kind, count and
#     labels) under our name prefix and under our instance label: no
#     duplicate, nothing unlabelled, nothing of a deleted bottle;
#   - each agent has /etc/bottle with the bottle CA of the state dir;
#   - the state database has no pending intent, exactly the expected
#     bottle rows, and a resources row per object with its engine id;
#     the state dir a CA for each expected bottle and no other.
# Delete also checks the window after the last engine delete, which no
# fault point reaches (the hook kills before side effects): the objects
# removed by hand, the records left; the rerun must forget them.
# After each scenario: state.db removed (instance-id, hmac.key, ca/ kept),
# and a rerun recreates nothing (0 engine changes, plan empty).
# A crash point whose runs fail for the engine's sake (its network-create
# race, or no answer for a minute: see transient() below) is tried again,
# at most twice, and said so.
#
# Engine: the one BOTTLED_TEST_ENGINE names (Podman by default, as in CI:
# scripts/test.sh runs only the smoke label on Docker).  Docker is opt-in:
#   BOTTLED_TEST_ENGINE=docker DOCKER_HOST=unix:///run/docker.sock \
#       ctest --test-dir BUILD -L crash
# BOTTLED_CRASH_SCENARIOS="create change delete" (the default) picks
# scenarios and BOTTLED_CRASH_N="3 7" the crash points, for a quicker
# developer run.
#
# Agent traffic is not needed, so --insecure-no-host-firewall throughout.
# The bottles use the test's own tags of the sidecar and agent images, so a
# rebuild of the shared tags during the run changes no spec.
. "$(dirname "$0")/harness.sh"

REPO=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=$(sed -n 's/^project(bottled VERSION \([0-9.]*\).*/\1/p' "$REPO/CMakeLists.txt")
PROXY_IMAGE=localhost/bottled-proxy:$VERSION
AGENT_IMAGE=localhost/bottled-agent:latest
: "${BOTTLED_BIN:?BOTTLED_BIN (the bottled binary) must be set; ctest sets it}"
SCENARIOS=${BOTTLED_CRASH_SCENARIOS:-create change delete}
T_START=$(date +%s)

require_engine
code=$(api_code GET "/images/$(urlenc "$PROXY_IMAGE")/json")
[ "$code" = 200 ] || fatal "image $PROXY_IMAGE exists in $ENGINE (HTTP $code; run: bash scripts/build-proxy-image.sh)"
code=$(api_code GET "/images/$(urlenc "$AGENT_IMAGE")/json")
[ "$code" = 200 ] || fatal "image $AGENT_IMAGE exists in $ENGINE (HTTP $code; run: bash scripts/setup.sh)"

M=$_TMP/manifests
STATE=$_TMP/state
SECRETS=$_TMP/secrets
mkdir -p "$M"
cp "$REPO/examples/claude.md" "$M/"
printf 'CLAUDE_OAUTH_TOKEN@api.anthropic.com=t0400-not-a-real-token\n' >"$SECRETS"
chmod 0600 "$SECRETS"
PREFIX=t0400$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
POOL=$(free_pool) || fatal "list the engine's networks"
[ -n "$POOL" ] || fatal "a free /24 in 10.213.0.0/16"
# The test's own tags of the two images: specs hold image ids, so a
# rebuild of the shared tags during the run (another session on the host
# rebuilt the sidecar image once, mid-run) would be a legitimate "spec
# changed" that has nothing to do with the crash.
T_PROXY=localhost/t0400-proxy:$PREFIX
T_AGENT=localhost/t0400-agent:$PREFIX
tag_image() { # IMAGE NEW-NAME:TAG
    api POST "/images/$(urlenc "$1")/tag?repo=$(urlenc "${2%:*}")&tag=${2##*:}" >/dev/null ||
        fatal "tag $1 as $2"
}
tag_image "$PROXY_IMAGE" "$T_PROXY"
tag_image "$AGENT_IMAGE" "$T_AGENT"
note "prefix $PREFIX, pool $POOL, images $T_PROXY $T_AGENT, bottled $BOTTLED_BIN"

# clear_bottles: every manifest but the template
clear_bottles() { find "$M" -name '*.md' ! -name claude.md -delete; }
# bottle NAME ENV_VALUE [ROUTE_HOST]: writes $M/NAME.md (extends claude; the
# default agent image has no claude, so the agent sleeps)
bottle() {
    {
        printf -- '---\nextends: [claude]\nagent: {image: "%s", command: [sleep, infinity]}\n' "$T_AGENT"
        printf 'env: {T0400: "%s"}\n' "$2"
        if [ -n "${3:-}" ]; then
            printf 'egress:\n  routes:\n    - host: %s\n' "$3"
        fi
        printf -- '---\nt0400 bottle %s.\n' "$1"
    } >"$M/$1.md"
}

# The bottled commands.  Output in $_TMP/out.*, status in RC.
run() { # NAME CMD ARGS...
    local name=$1
    shift
    set +e
    # (the group's 2>/dev/null keeps bash's "Killed" job message out)
    { "$@" >"$_TMP/out.$name" 2>"$_TMP/err.$name"; } 2>/dev/null
    RC=$?
    set -e
}
reconcile() { # NAME [ENV=VALUE...] -- [ARGS...]
    local name=$1
    shift
    local envs=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        envs+=("$1")
        shift
    done
    [ $# -gt 0 ] && shift
    run "$name" env "${envs[@]}" "$BOTTLED_BIN" reconcile --once -d "$M" --state-dir "$STATE" \
        --secrets "$SECRETS" --engine "unix://$SOCK" --name-prefix "$PREFIX" \
        --subnet-pool "$POOL" --proxy-image "$T_PROXY" --insecure-no-host-firewall "$@"
}
plan() { # NAME [ARGS...]
    local name=$1
    shift
    run "$name" "$BOTTLED_BIN" plan -d "$M" --state-dir "$STATE" --secrets "$SECRETS" \
        --engine "unix://$SOCK" --name-prefix "$PREFIX" --subnet-pool "$POOL" \
        --proxy-image "$T_PROXY" "$@"
}
show() { # NAME: a short excerpt of a run's output, for messages
    printf '%s' "$(head -c 700 "$_TMP/out.$1" "$_TMP/err.$1" 2>/dev/null | tr '\n' ' ')"
}

# The engine and state checks (t0400-crash.py: one python3 per check).
helper() {
    SOCK=$SOCK PREFIX=$PREFIX INSTANCE=${INSTANCE:-none} STATE=$STATE \
        python3 "$(dirname "$0")/t0400-crash.py" "$@"
}
# wipe_engine: remove every object of our instance or with our name prefix
wipe_engine() {
    local rc=0
    helper wipe >"$_TMP/out.wipe" 2>&1 || rc=$?
    PROBLEMS=$(tr '\n' ';' <"$_TMP/out.wipe")
    return "$rc"
}
_crash_finish() {
    local rc=$?
    # bottled's objects carry no test-run label: remove them by prefix/instance
    wipe_engine >/dev/null 2>&1 || true
    # untag (the images keep their other tags)
    api DELETE "/images/$(urlenc "$T_PROXY")" >/dev/null 2>&1 || true
    api DELETE "/images/$(urlenc "$T_AGENT")" >/dev/null 2>&1 || true
    return "$rc"
}
trap '_crash_finish; _finish' EXIT

read_instance() { INSTANCE=$(cat "$STATE/instance-id" 2>/dev/null || echo none); }

# converged BOTTLES...: after a rerun (its status in RC_RERUN), is all well?
# PROBLEMS gets what is not (one line), and the status is 1.
PROBLEMS=
converged() {
    PROBLEMS=
    [ "$RC_RERUN" = 0 ] || PROBLEMS+="the rerun exited $RC_RERUN: $(show rerun); "
    plan plan --detailed-exitcode
    [ "$RC" = 0 ] || PROBLEMS+="plan --detailed-exitcode exited $RC: $(show plan); "
    reconcile again -- --json
    [ "$RC" = 0 ] || PROBLEMS+="a second reconcile exited $RC: $(show again); "
    AGAIN=$_TMP/out.again helper check "$@" >"$_TMP/out.check" 2>&1 ||
        PROBLEMS+=$(tr '\n' ';' <"$_TMP/out.check")
    [ -z "$PROBLEMS" ]
}

# ---- the loop ----------------------------------------------------------------
# Two engine troubles that are not the crash's doing:
#  - Podman 4.3 sometimes answers a network create with HTTP 500 "route
#    ip+net: no such network interface" while other networks' bridges come
#    and go (its subnet check lists the host's interfaces and races with
#    their removal);
#  - on a shared host under heavy load (another session's hundreds of
#    containers) Podman has been seen not to answer a list call for
#    minutes: bottled says "Timeout was reached", t0400-crash.py "the
#    engine did not answer".
# A crash point whose runs failed with one of them is tried again (twice
# at most, each counted and printed), once the engine answers again.
transient() { # RUN-NAME...: did one of these runs fail for the engine's sake?
    local r
    for r in "$@"; do
        grep -Eqs 'no such network interface|Timeout was reached|the engine did not answer' \
            "$_TMP/out.$r" "$_TMP/err.$r" && return 0
    done
    return 1
}
wait_engine() { # until the engine lists its networks again (at most 5 minutes)
    local _
    for _ in $(seq 1 30); do
        [ "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' --unix-socket "$SOCK" \
            "$API/networks" || true)" = 200 ] && return 0
        sleep 10
    done
    return 1
}

# crash_point N RESET_FN APPLY_FN BOTTLES...: one crash and its rerun.
# 0 converged; 1 not (PROBLEMS says why); 2 a transient engine error.
crash_point() {
    local n=$1 reset=$2 apply=$3
    shift 3
    rm -f "$_TMP"/out.* "$_TMP"/err.*
    PROBLEMS=
    if ! "$reset"; then
        transient reset reset-plan wipe && return 2
        return 1
    fi
    "$apply"
    reconcile crash "BOTTLED_FAULT_AT=$n" --
    if [ "$RC" != 137 ] || ! grep -q "BOTTLED_FAULT_AT=$n: killed before" "$_TMP/err.crash"; then
        transient crash && PROBLEMS="crash run: $(show crash)" && return 2
        PROBLEMS="the run does not die by SIGKILL (want exit 137 and 'killed before'), got $RC: $(show crash)"
        return 1
    fi
    read_instance
    reconcile rerun --
    RC_RERUN=$RC
    converged "$@" && return 0
    transient rerun plan again check && return 2
    PROBLEMS="the rerun does not converge: $PROBLEMS (the rerun said: $(show rerun))"
    return 1
}

# crash_scenario NAME RESET_FN APPLY_FN BOTTLES_AFTER...
#   RESET_FN   brings the start state (and must succeed)
#   APPLY_FN   writes the manifests of the step under test
crash_scenario() {
    local name=$1 reset=$2 apply=$3
    shift 3
    local t0 t1 n r tries total ok=0 bad=0 retried=0 what got
    t0=$(date +%s)
    for tries in 1 2 3; do
        rm -f "$_TMP"/out.* "$_TMP"/err.* "$_TMP/count"
        if ! "$reset"; then
            transient reset reset-plan wipe && [ "$tries" -lt 3 ] && wait_engine && continue
            fatal "$name: reset to the start state: $PROBLEMS"
        fi
        "$apply"
        reconcile count "BOTTLED_FAULT_COUNT=$_TMP/count" --
        [ "$RC" = 0 ] && break
        transient count && [ "$tries" -lt 3 ] && wait_engine && continue
        fatal "$name: the clean run exits 0 (got $RC): $(show count)"
    done
    if [ "$tries" -gt 1 ]; then
        note "$name: clean run tried $tries times for a transient engine error"
        retried=$((tries - 1))
    fi
    total=$(wc -l <"$_TMP/count" 2>/dev/null || echo 0)
    [ "$total" -gt 0 ] || fatal "$name: the clean run logged fault points (is bottled built with -DBOTTLED_FAULT_HOOKS=ON?)"
    grep -q 'engine ' "$_TMP/count" || fatal "$name: the clean run made no engine change: $(tr '\n' ';' <"$_TMP/count")"
    RC_RERUN=0
    read_instance
    if converged "$@"; then
        pass "$name: the clean run converges ($total fault points)"
    else
        fail "$name: the clean run converges: $PROBLEMS"
    fi
    note "$name: N_total=$total: $(cut -d' ' -f2- "$_TMP/count" | sed 's/?.*//' | sort | uniq -c |
        awk '{c=$1; $1=""; printf "%s%s x%d", sep, $0, c; sep=","}')"

    for n in ${BOTTLED_CRASH_N:-$(seq 1 "$total")}; do
        if [ "$n" -gt "$total" ]; then
            note "$name: BOTTLED_CRASH_N: $n is past N_total $total, not run"
            continue
        fi
        what=$(sed -n "${n}p" "$_TMP/count" | cut -d' ' -f2-)
        t1=$(date +%s)
        tries=1
        while :; do
            crash_point "$n" "$reset" "$apply" "$@" && r=0 || r=$?
            if [ "$r" != 2 ] || [ "$tries" -ge 3 ]; then break; fi
            note "$name N=$n: transient engine error, not the crash's doing: $PROBLEMS; retried"
            wait_engine || break
            tries=$((tries + 1))
            retried=$((retried + 1))
        done
        if [ "$r" = 0 ]; then
            ok=$((ok + 1))
            note "$name N=$n/$total: killed before $what; the rerun converged ($(($(date +%s) - t1)) s)"
        else
            fail "$name N=$n (killed before $what): $PROBLEMS"
            bad=$((bad + 1))
        fi
    done
    if [ "$bad" = 0 ] && [ "$ok" -gt 0 ]; then
        pass "$name: killed at each of $ok fault point(s) of $total, every rerun converged"
    else
        fail "$name: $bad of $((ok + bad)) crash points did not converge"
    fi

    # the one window no fault point reaches: a delete killed after its last
    # engine call, before the bottle's records and CA were forgotten
    if [ "$name" = delete ]; then
        "$reset" || fatal "$name: reset to the start state: $PROBLEMS"
        "$apply"
        helper remove del || fatal "remove the deleted bottle's objects by hand"
        reconcile rerun --
        RC_RERUN=$RC
        if converged "$@"; then
            pass "$name: objects gone but records left (a kill after the last engine delete): the rerun forgets them"
        else
            fail "$name: objects gone but records left (a kill after the last engine delete): $PROBLEMS"
        fi
    fi

    # losing the database: adopted again by label, nothing recreated
    rm -f "$STATE/state.db" "$STATE/state.db-wal" "$STATE/state.db-shm"
    reconcile nodb -- --json
    RC_RERUN=$RC
    got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"]["engine_changes"])' \
        "$_TMP/out.nodb" 2>&1)
    assert_eq "0 0" "$RC $got" "$name: state.db deleted (instance-id, hmac.key, ca/ kept): the rerun exits 0 and makes no engine change"
    if converged "$@"; then
        pass "$name: converged after losing state.db"
    else
        fail "$name: converged after losing state.db: $PROBLEMS"
    fi
    note "$name: N_total=$total, $ok/$((ok + bad)) crash points converged, $retried run(s) retried for a transient engine error, $(($(date +%s) - t0)) s"
}

# ---- create: from empty ---------------------------------------------------------
create_reset() {
    clear_bottles
    wipe_engine && rm -rf "$STATE"
}
create_apply() { bottle mk 1 pypi.org; }

# ---- change: env (agent recreated) and routes (config delivered) ---------------
change_reset() {
    clear_bottles
    bottle chg 1
    reconcile reset --
    [ "$RC" = 0 ] || {
        PROBLEMS="change reset: reconcile exited $RC: $(show reset)"
        return 1
    }
    plan reset-plan --detailed-exitcode
    [ "$RC" = 0 ] || {
        PROBLEMS="change reset: plan after the reset exited $RC: $(show reset-plan)"
        return 1
    }
}
change_apply() { bottle chg 2 pypi.org; }

# ---- delete: one manifest removed ------------------------------------------------
delete_reset() {
    clear_bottles
    bottle keep 1
    bottle del 1
    reconcile reset --
    [ "$RC" = 0 ] || {
        PROBLEMS="delete reset: reconcile exited $RC: $(show reset)"
        return 1
    }
    plan reset-plan --detailed-exitcode
    [ "$RC" = 0 ] || {
        PROBLEMS="delete reset: plan after the reset exited $RC: $(show reset-plan)"
        return 1
    }
}
delete_apply() { rm -f "$M/del.md"; }

for s in $SCENARIOS; do
    case "$s" in
    create) crash_scenario create create_reset create_apply mk ;;
    change)
        # a fresh instance for each scenario
        create_reset || fatal "wipe the engine and the state dir: $PROBLEMS"
        crash_scenario change change_reset change_apply chg
        ;;
    delete)
        create_reset || fatal "wipe the engine and the state dir: $PROBLEMS"
        crash_scenario delete delete_reset delete_apply keep
        ;;
    *) fatal "BOTTLED_CRASH_SCENARIOS: unknown scenario '$s'" ;;
    esac
done
note "t0400 on $ENGINE: $(($(date +%s) - T_START)) s"
