#!/usr/bin/env bash
# t0200: `bottled plan` against a real engine, read-only.
#   - an empty engine: every resource of the one runnable bottle is a
#     create, in create order, exit 2 with --detailed-exitcode;
#   - plan changes nothing: the engine's bottled-labelled objects and the
#     state dir are the same before and after every run;
#   - a foreign container (no bottled labels) holding one of the bottle's
#     names: that bottle is a conflict, exit 1;
#   - an orphan (a network labelled for our instance and a bottle that no
#     manifest declares): planned as a delete with cause "orphan";
#   - a broken manifest (incomplete snapshot): no delete at all, the orphan
#     is refused and the output says "gc blocked by <path>", exit 1.
. "$(dirname "$0")/harness.sh"

REPO=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=$(sed -n 's/^project(bottled VERSION \([0-9.]*\).*/\1/p' "$REPO/CMakeLists.txt")
PROXY_IMAGE=localhost/bottled-proxy:$VERSION
AGENT_IMAGE=localhost/bottled-agent:latest
: "${BOTTLED_BIN:?BOTTLED_BIN (the bottled binary) must be set; ctest sets it}"

require_engine
code=$(api_code GET "/images/$(urlenc "$PROXY_IMAGE")/json")
[ "$code" = 200 ] || fatal "image $PROXY_IMAGE exists in $ENGINE (HTTP $code; run: bash scripts/build-proxy-image.sh)"
code=$(api_code GET "/images/$(urlenc "$AGENT_IMAGE")/json")
[ "$code" = 200 ] || fatal "image $AGENT_IMAGE exists in $ENGINE (HTTP $code; run: bash scripts/setup.sh)"

# A manifest dir with one runnable bottle (proxy mode, no git-gate repos).
M=$_TMP/manifests
mkdir -p "$M"
cp "$REPO/examples/claude.md" "$M/"
cat >"$M/demo.md" <<'EOF'
---
extends: [claude]
env: {DEMO: "1"}
---
A demo bottle for t0200.
EOF
SECRETS=$_TMP/secrets
printf 'CLAUDE_OAUTH_TOKEN@api.anthropic.com=t0200-not-a-real-token\n' >"$SECRETS"
chmod 0600 "$SECRETS"

# A state dir as a mutating command leaves it (state.h's layout): plan only reads it.
STATE=$_TMP/state
INSTANCE=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
mkdir -m 0700 "$STATE"
printf '%s\n' "$INSTANCE" >"$STATE/instance-id"
head -c 32 /dev/urandom >"$STATE/hmac.key"
chmod 0600 "$STATE/instance-id" "$STATE/hmac.key"

PREFIX=t0200$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
POOL=$(free_pool) || fatal "list the engine's networks"
[ -n "$POOL" ] || fatal "a free /24 in 10.213.0.0/16"
note "instance $INSTANCE, prefix $PREFIX, pool $POOL"

plan() { # ARGS...: runs plan; stdout in $_TMP/out, stderr in $_TMP/err, status in RC
    set +e
    "$BOTTLED_BIN" plan -d "$M" --state-dir "$STATE" --secrets "$SECRETS" \
        --engine "unix://$SOCK" --name-prefix "$PREFIX" --subnet-pool "$POOL" \
        "$@" >"$_TMP/out" 2>"$_TMP/err"
    RC=$?
    set -e
}

# Every object labelled for this instance (id, name, labels), and the state dir.
labelled() {
    local f
    # this instance's objects only: other runs on the same engine come and go
    f=$(urlenc "{\"label\":[\"io.bottled.instance=$INSTANCE\"]}")
    {
        api GET "/containers/json?all=true&filters=$f" | python3 -c '
import json, sys
for c in sorted(json.load(sys.stdin), key=lambda c: c["Id"]):
    print("c", c["Id"], c["Names"], c["State"], sorted((c.get("Labels") or {}).items()))'
        api GET "/networks?filters=$f" | python3 -c '
import json, sys
for n in sorted(json.load(sys.stdin), key=lambda n: n["Id"]):
    print("n", n["Id"], n["Name"], sorted((n.get("Labels") or {}).items()))'
        api GET "/volumes?filters=$f" | python3 -c '
import json, sys
for v in sorted(json.load(sys.stdin)["Volumes"] or [], key=lambda v: v["Name"]):
    print("v", v["Name"], sorted((v.get("Labels") or {}).items()))'
        (cd "$STATE" && find . -printf '%p %m %s %T@\n' | sort && cat instance-id && sha256sum hmac.key)
    } 2>&1
}
# unchanged_by DESCRIPTION PLAN-ARGS...: plan, and nothing labelled or in the state dir changed
unchanged_by() {
    local desc=$1
    shift
    labelled >"$_TMP/before"
    plan "$@"
    labelled >"$_TMP/after"
    if cmp -s "$_TMP/before" "$_TMP/after"; then
        pass "plan ($desc) changed no labelled engine object and nothing in the state dir"
    else
        fail "plan ($desc) changed something: $(diff "$_TMP/before" "$_TMP/after" | head -c 600)"
    fi
}

# json EXPR: evaluate a Python expression over the JSON plan in $_TMP/out (as d)
json() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$_TMP/out" "$1"; }

# ---- 1. empty engine: all creates, in order -------------------------------
unchanged_by "empty engine" --json --detailed-exitcode
assert_eq 2 "$RC" "plan --detailed-exitcode exits 2 when creates are planned (stderr: $(head -c 300 "$_TMP/err"))"
assert_eq "$INSTANCE" "$(json 'd["instance"]')" "plan reports the state dir's instance id"
assert_eq "demo changes" "$(json '" ".join(b["name"] + " " + b["status"] for b in d["bottles"])')" \
    "one bottle, with changes (the abstract template has none)"
assert_eq "create:int:$PREFIX-demo-int create:egr:$PREFIX-demo-egr create:work:$PREFIX-demo-work create:cfg:$PREFIX-demo-cfg create:proxy:$PREFIX-demo-proxy create:agent:$PREFIX-demo-agent" \
    "$(json '" ".join(a["action"] + ":" + a["role"] + ":" + a["resource"] for a in d["bottles"][0]["actions"])')" \
    "creates in order: networks, volumes, sidecar, agent"
assert_eq "missing missing missing missing missing missing; no CA yet" \
    "$(json '" ".join(a["cause"] for a in d["bottles"][0]["actions"])')" \
    "each create says why (the agent: no CA minted yet)"
assert_eq "[] []" "$(json 'str(d["guards"]) + " " + str(d["gc_blocked_by"])')" "no guard, nothing blocked"

unchanged_by "text output"
assert_eq 0 "$RC" "plan without --detailed-exitcode exits 0 with changes planned"
grep -qx "demo/int: create (missing)" "$_TMP/out" && grep -q "^Plan: 6 to create" "$_TMP/out" &&
    pass "text output: one line per action and a summary" ||
    fail "text output: $(head -c 600 "$_TMP/out")"
if grep -q t0200-not-a-real-token "$_TMP/out" "$_TMP/err"; then
    fail "a secret value appeared in plan's output"
else
    pass "no secret value in plan's output"
fi

# ---- 2. a foreign container holding the agent's name: conflict ---------------
cid=$(api POST "/containers/create?name=$PREFIX-demo-agent" \
    "{\"Image\":\"$PROXY_IMAGE\",\"Labels\":{\"$RUN_LABEL\":\"$RUN_ID\"}}" | jget Id) ||
    fatal "create a foreign container named $PREFIX-demo-agent"
unchanged_by "conflict" --json --detailed-exitcode
assert_eq 1 "$RC" "a bottle in conflict makes plan exit 1"
assert_eq "conflict 0" "$(json 'd["bottles"][0]["status"] + " " + str(len(d["bottles"][0]["actions"]))')" \
    "the bottle is a conflict and nothing of it is planned"
case "$(json 'd["bottles"][0]["error"]')" in
*"container '$PREFIX-demo-agent'"*"not managed by bottled"*) pass "the error names the resource and why it is not ours" ;;
*) fail "conflict error: $(json 'd["bottles"][0]["error"]')" ;;
esac
assert_eq "created $PREFIX-demo-agent" \
    "$(api GET "/containers/$cid/json" | python3 -c 'import json, sys; c = json.load(sys.stdin); print(c["State"]["Status"], c["Name"].lstrip("/"))')" \
    "the foreign container is untouched (same id, name and state)"
api DELETE "/containers/$cid?force=true" >/dev/null || fatal "remove the foreign container"

# ---- 3. an orphan of our instance: delete ------------------------------------
api POST /networks/create "{\"Name\":\"$PREFIX-ghost-int\",\"Internal\":true,
    \"Labels\":{\"$RUN_LABEL\":\"$RUN_ID\",\"io.bottled.managed\":\"true\",
    \"io.bottled.instance\":\"$INSTANCE\",\"io.bottled.bottle\":\"ghost\",
    \"io.bottled.role\":\"int\",\"io.bottled.spec-hash\":\"0\",\"io.bottled.hash-scheme\":\"1\"}}" \
    >/dev/null || fatal "create an orphan network of our instance"
# and one of another instance, which is never ours to delete
api POST /networks/create "{\"Name\":\"$PREFIX-other-int\",\"Internal\":true,
    \"Labels\":{\"$RUN_LABEL\":\"$RUN_ID\",\"io.bottled.managed\":\"true\",
    \"io.bottled.instance\":\"000000000000\",\"io.bottled.bottle\":\"other\",
    \"io.bottled.role\":\"int\"}}" >/dev/null || fatal "create another instance's network"
unchanged_by "orphan" --json --detailed-exitcode
assert_eq 2 "$RC" "an orphan is a planned change (exit 2)"
assert_eq "orphan delete:int:$PREFIX-ghost-int:orphan" \
    "$(json '[" ".join([b["status"]] + [a["action"] + ":" + a["role"] + ":" + a["resource"] + ":" + a["cause"] for a in b["actions"]]) for b in d["bottles"] if b["name"] == "ghost"][0]')" \
    "the orphan's network is planned for deletion, cause orphan"
assert_eq "[]" "$(json '[b["name"] for b in d["bottles"] if b["name"] == "other"]')" \
    "another instance's network is not ours: not planned"

# ---- 3b. a running sidecar of ours with another spec: recreate ----------------
# (plan also asks it for its config hash through an exec; this one serves none)
pid=$(api POST "/containers/create?name=$PREFIX-demo-proxy" \
    "{\"Image\":\"$AGENT_IMAGE\",\"Entrypoint\":[\"sleep\"],\"Cmd\":[\"600\"],
      \"Labels\":{\"$RUN_LABEL\":\"$RUN_ID\",\"io.bottled.managed\":\"true\",
      \"io.bottled.instance\":\"$INSTANCE\",\"io.bottled.bottle\":\"demo\",
      \"io.bottled.role\":\"proxy\",\"io.bottled.spec-hash\":\"0\",\"io.bottled.hash-scheme\":\"1\"}}" |
    jget Id) || fatal "create a stand-in sidecar of ours"
api POST "/containers/$pid/start" >/dev/null || fatal "start the stand-in sidecar"
unchanged_by "running sidecar" --json --detailed-exitcode
assert_eq 2 "$RC" "a changed sidecar is a planned change (exit 2; stderr: $(head -c 300 "$_TMP/err"))"
assert_eq "recreate:spec changed" \
    "$(json '[a["action"] + ":" + a["cause"] for b in d["bottles"] if b["name"] == "demo" for a in b["actions"] if a["role"] == "proxy"][0]')" \
    "the sidecar with another spec hash is recreated, cause spec changed"
assert_eq "create:missing; no CA yet" \
    "$(json '[a["action"] + ":" + a["cause"] for b in d["bottles"] if b["name"] == "demo" for a in b["actions"] if a["role"] == "agent"][0]')" \
    "the missing agent is still a create"
assert_eq running "$(api GET "/containers/$pid/json" | jget State Status)" "the sidecar still runs"
api DELETE "/containers/$pid?force=true" >/dev/null || fatal "remove the stand-in sidecar"

# ---- 4. an incomplete snapshot: no deletions, gc blocked ----------------------
printf -- '---\nname: [unclosed\n---\nbroken\n' >"$M/broken.md"
unchanged_by "incomplete snapshot" --json --detailed-exitcode
assert_eq 1 "$RC" "an incomplete snapshot with an orphan: refused, exit 1"
assert_eq 0 "$(json 'sum(1 for b in d["bottles"] for a in b["actions"] if a["action"] == "delete")')" \
    "no delete action at all"
assert_eq "refused" "$(json '[b["status"] for b in d["bottles"] if b["name"] == "ghost"][0]')" \
    "the orphan's deletion is shown as refused"
case "$(json 'd["gc_blocked_by"]')" in
*broken.md*) pass "gc_blocked_by names the broken manifest" ;;
*) fail "gc_blocked_by: $(json 'd["gc_blocked_by"]')" ;;
esac
assert_eq "changes" "$(json '[b["status"] for b in d["bottles"] if b["name"] == "demo"][0]')" \
    "the good bottle is still planned"
unchanged_by "incomplete snapshot, text"
grep -q "^gc blocked by .*broken.md" "$_TMP/out" && pass "text output says gc blocked by <path>" ||
    fail "text output: $(head -c 600 "$_TMP/out")"
rm -f "$M/broken.md"

# ---- 5. guards on the orphan ---------------------------------------------------
unchanged_by "max-deletes 0" --json --max-deletes 0
assert_eq 1 "$RC" "more orphans than --max-deletes: refused, exit 1"
case "$(json '[b["error"] for b in d["bottles"] if b["name"] == "ghost"][0]')" in
*--max-deletes*--force*) pass "the refusal says --max-deletes and --force" ;;
*) fail "max-deletes refusal: $(head -c 600 "$_TMP/out")" ;;
esac
unchanged_by "max-deletes 0 --force" --json --max-deletes 0 --force
assert_eq 0 "$RC" "--force lifts it"
BOTTLED_FORCE=1 unchanged_by "BOTTLED_FORCE in the environment" --json --max-deletes 0
assert_eq 1 "$RC" "--force only counts when typed (BOTTLED_FORCE is ignored)"

# ---- 6. bad configuration: exit 2 ---------------------------------------------
chmod 0644 "$SECRETS"
plan
assert_eq 2 "$RC" "a secrets file readable by others is bottled's own configuration: exit 2"
chmod 0600 "$SECRETS"
plan --subnet-pool 10.213.0.0/30
assert_eq 2 "$RC" "a pool smaller than a /28 is refused: exit 2"
set +e
"$BOTTLED_BIN" plan -d "$M" --state-dir "$STATE" --secrets "$SECRETS" \
    --engine unix://$_TMP/no-such.sock >/dev/null 2>&1
rc=$?
set -e
assert_eq 3 "$rc" "an engine that does not answer: exit 3"
