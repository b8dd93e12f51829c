#!/usr/bin/env bash
# t0601: kill -9 around the forge add of a deploy key, then a rerun: never
# two keys for one bottle and repo.
#
# Needs a bottled built with -DBOTTLED_FAULT_HOOKS=ON (lib/fault.h); ctest
# registers it only then, labelled "engine;crash" like t0400.  For each of
# the forge wrapper's points "forge add key" (before the POST) and "forge
# key added" (the forge has the key, its id not recorded yet):
#   1. a clean run on a fresh instance logs every fault point
#      (BOTTLED_FAULT_COUNT) and gives N, the point's number;
#   2. a run on another fresh instance with BOTTLED_FAULT_AT=N dies by
#      SIGKILL; the forge holds no key ("forge add key") or exactly one
#      ("forge key added") titled for that instance, and the database only
#      the intent;
#   3. a rerun converges: exactly one key with that title at the forge, the
#      key file's, recorded as registered with the forge's id, the gate
#      running, and a plan after it is empty.
. "$(dirname "$0")/harness.sh"
. "$(dirname "$0")/reconcile-lib.sh"
. "$REPO/tests/forge/forge-lib.sh"

require_engine
require_images

GATE_IMAGE=localhost/bottled-t0601-gate:$RUN_ID
_t0601_exit() {
    local rc=$?
    forge_stop
    api DELETE "/images/$(urlenc "$GATE_IMAGE")?force=true" >/dev/null 2>&1 || true
    (exit "$rc")
    _rt_exit
}
trap _t0601_exit EXIT

build_sleep_gate_image "$GATE_IMAGE"

forge_start gitea "$_TMP/forge" team/app || fatal "start the fake forge"
bg_started "$FORGE_PID"
API_ROOT=$(forge_api_root gitea)

M=$_TMP/manifests
mkdir -p "$M"
cp "$REPO/examples/claude.md" "$M/"
bottle_md "$M" kc "git-gate:
  repos:
    app:
      url: ssh://git@gitea.test:2222/team/app.git
      key: {provider: gitea, forge_token_env: T0601_FORGE_TOKEN, api_url: \"$API_ROOT\"}"
SECRETS=$_TMP/secrets
write_secrets "$SECRETS" "CLAUDE_OAUTH_TOKEN@api.anthropic.com=t0601-claude-$RANDOM" \
    "T0601_FORGE_TOKEN@localhost=$FORGE_TOKEN"
POOL=$(free_pool) || fatal "list the engine's networks"
[ -n "$POOL" ] || fatal "a free /24 in 10.213.0.0/16"
GFLAGS=(--gate-image "$GATE_IMAGE" --forge-ca "$FORGE_CA")

n_titled() {
    forge_keys | python3 -c 'import json, sys
print(len([k for k in json.load(sys.stdin)["team/app"] if k["title"] == sys.argv[1]]))' "$1"
}
key_of() {
    forge_keys | python3 -c 'import json, sys
print(" ".join("%s %s" % (k["id"], k["sha256"]) for k in json.load(sys.stdin)["team/app"] if k["title"] == sys.argv[1]))' "$1"
}

i=0
for what in "forge add key" "forge key added"; do
    i=$((i + 1))
    # 1. the clean run: N of the point
    STATE=$_TMP/count$i
    new_state "$STATE" >/dev/null
    PREFIX=$(new_prefix t0601c)
    BOTTLED_FAULT_COUNT=$_TMP/count$i.log bd reconcile --once --json "${GFLAGS[@]}"
    assert_eq 0 "$RC" "$what: the clean run succeeds ($(said))"
    N=$(awk -v w="$what" '{n = $1; $1 = ""; sub(/^ /, ""); if ($0 == w) { print n; exit }}' "$_TMP/count$i.log")
    [ -n "$N" ] || fatal "$what: the clean run passed the point (fault points: $(cut -d' ' -f2- "$_TMP/count$i.log" | sort | uniq -c | tr '\n' ';'))"
    note "$what is fault point $N of $(wc -l <"$_TMP/count$i.log")"

    # 2. the crash on a fresh instance
    STATE=$_TMP/crash$i
    INSTANCE=$(new_state "$STATE")
    PREFIX=$(new_prefix t0601k)
    TITLE="bottled:$INSTANCE:kc:app"
    BOTTLED_FAULT_AT=$N bd reconcile --once --json "${GFLAGS[@]}"
    if [ "$RC" = 137 ] && grep -q "BOTTLED_FAULT_AT=$N: killed before" "$ERR"; then
        pass "$what: BOTTLED_FAULT_AT=$N kills the run there"
    else
        fail "$what: BOTTLED_FAULT_AT=$N kills the run (want 137 and 'killed before'), got $RC: $(said)"
    fi
    want=0
    [ "$what" = "forge key added" ] && want=1
    assert_eq "$want" "$(n_titled "$TITLE")" "$what: after the crash the forge holds $want key(s) titled $TITLE"
    assert_eq "intent" "$(sqlite3 "$STATE/state.db" "SELECT state FROM deploy_keys WHERE bottle='kc'")" \
        "$what: the database holds the intent only"

    # 3. the rerun converges: one key, adopted or added, recorded
    bd reconcile --once --json "${GFLAGS[@]}"
    assert_eq 0 "$RC" "$what: the rerun succeeds ($(said))"
    FP=$(ssh-keygen -l -E sha256 -f "$STATE/keys/bottled/kc/app/id_ed25519" | awk '{print $2}')
    ID=$(sqlite3 "$STATE/state.db" "SELECT key_id FROM deploy_keys WHERE bottle='kc' AND state='registered'")
    assert_eq "$ID $FP" "$(key_of "$TITLE")" "$what: exactly one key at the forge, the key file's, recorded with its id"
    assert_eq "running" "$(api GET "/containers/$PREFIX-kc-gate/json" | jget State Status)" "$what: the gate runs"
    bd plan --detailed-exitcode --gate-image "$GATE_IMAGE"
    assert_rc 0 "$what: a plan after the rerun is empty"
done
