# shellcheck shell=bash
# tests/engine/reconcile-lib.sh - helpers for the `bottled reconcile` / `gc`
# tests (t03NN-*.sh), sourced after harness.sh.
#
# Resources bottled creates carry no test-run label: each state dir a test
# makes (new_state) registers its instance id, and the EXIT trap force-removes
# everything labelled io.bottled.instance=<id> (containers, then volumes, then
# networks) before the harness's own cleanup, however the test ends.
#
# Every reconcile runs with --insecure-no-host-firewall unless
# BD_HOST_FIREWALL is set (non-empty): a test that sends traffic from the
# agent to its sidecar or gate needs the firewall on (on Docker the FORWARD
# policy drops intra-bridge traffic until the firewall accepts it); the EXIT
# trap removes the instance's chains.

REPO=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=$(sed -n 's/^project(bottled VERSION \([0-9.]*\).*/\1/p' "$REPO/CMakeLists.txt")
PROXY_IMAGE=localhost/bottled-proxy:$VERSION
AGENT_IMAGE=localhost/bottled-agent:latest
: "${BOTTLED_BIN:?BOTTLED_BIN (the bottled binary) must be set; ctest sets it}"
BD_TIMEOUT=${BD_TIMEOUT:-150} # seconds any one bottled command may take
# After this many seconds no bottled command starts any more: the test ends
# as a failure while the EXIT trap can still clean up, well before ctest's
# TIMEOUT (300 s) kills it without one (a loaded engine can be that slow).
_RT_DEADLINE=$((SECONDS + ${BD_DEADLINE:-210}))

_INSTANCES=$_TMP/instances # one instance id per line
: >"$_INSTANCES"
_BG_PIDS=$_TMP/bg-pids # background processes the test started
: >"$_BG_PIDS"
ALL_OUTPUT=$_TMP/all-output # every bottled stdout and stderr, for the secret scan
: >"$ALL_OUTPUT"

# Runs before the harness's _finish (which removes the run-labelled objects
# and $_TMP, and prints the summary); keeps the exit status.
_rt_exit() {
    local rc=$? id pid
    set +e
    while read -r pid; do
        [ -n "$pid" ] || continue
        kill -CONT "$pid" 2>/dev/null
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done <"$_BG_PIDS"
    while read -r id; do cleanup_instance "$id"; done <"$_INSTANCES"
    (exit "$rc")
    _finish
}
trap _rt_exit EXIT

# bg_started PID: the EXIT trap kills (and waits for) it if it still runs
bg_started() { printf '%s\n' "$1" >>"$_BG_PIDS"; }

require_images() {
    local code
    code=$(api_code GET "/images/$(urlenc "$PROXY_IMAGE")/json")
    [ "$code" = 200 ] || fatal "image $PROXY_IMAGE exists in $ENGINE (HTTP $code; run: bash scripts/build-proxy-image.sh)"
    code=$(api_code GET "/images/$(urlenc "$AGENT_IMAGE")/json")
    [ "$code" = 200 ] || fatal "image $AGENT_IMAGE exists in $ENGINE (HTTP $code; run: bash scripts/setup.sh)"
}

# new_state DIR: a state dir as a mutating command leaves it (instance-id,
# hmac.key), so its instance id is known (and cleaned up) before bottled
# creates anything; prints the id.
new_state() {
    local id
    id=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
    mkdir -m 0700 "$1"
    printf '%s\n' "$id" >"$1/instance-id"
    head -c 32 /dev/urandom >"$1/hmac.key"
    chmod 0600 "$1/instance-id" "$1/hmac.key"
    printf '%s\n' "$id" >>"$_INSTANCES"
    printf '%s\n' "$id"
}

# new_prefix: a unique --name-prefix for this test
new_prefix() { printf '%s%s\n' "$1" "$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"; }

# write_secrets FILE LINE...: the secrets file, mode 0600
write_secrets() {
    local f=$1
    shift
    (umask 077 && printf '%s\n' "$@" >"$f.tmp")
    chmod 0600 "$f.tmp"
    mv -f "$f.tmp" "$f"
}

# bottle_md DIR NAME [EXTRA-FRONT-MATTER]: a bottle extending claude, running
# `sleep infinity` (the default agent image has no claude) unless the extra
# front matter has its own agent: line; body "Prompt of NAME."
bottle_md() {
    {
        printf -- '---\nextends: [claude]\n'
        case "${3:-}" in
        agent:* | *"
agent:"*) ;;
        *) printf 'agent: {command: [sleep, infinity]}\n' ;;
        esac
        [ -z "${3:-}" ] || printf '%s\n' "$3"
        printf -- '---\nPrompt of %s.\n' "$2"
    } >"$1/$2.md"
}

# bd COMMAND ARGS...: runs bottled with this test's context (M, STATE,
# SECRETS, PREFIX, POOL; override them per call, e.g. `STATE=$S2 bd plan`).
# stdout in $OUT, stderr in $ERR, status in RC; both also appended to
# $ALL_OUTPUT. Never fails.
OUT=$_TMP/out
ERR=$_TMP/err
bd() {
    local cmd=$1
    shift
    local -a args=(-d "$M" --state-dir "$STATE" --secrets "$SECRETS")
    case "$cmd" in
    plan | gc) args+=(--engine "unix://$SOCK" --name-prefix "$PREFIX" --subnet-pool "$POOL") ;;
    reconcile)
        args+=(--engine "unix://$SOCK" --name-prefix "$PREFIX" --subnet-pool "$POOL")
        [ -n "${BD_HOST_FIREWALL:-}" ] || args+=(--insecure-no-host-firewall)
        ;;
    esac
    local limit=$BD_TIMEOUT left=$((_RT_DEADLINE - SECONDS))
    [ "$left" -gt 0 ] || fatal "out of time before \`bottled $cmd $*\` (BD_DEADLINE; is the engine overloaded?)"
    [ "$left" -ge "$limit" ] || limit=$left
    set +e
    timeout "$limit" "$BOTTLED_BIN" "$cmd" "${args[@]}" "$@" >"$OUT" 2>"$ERR"
    RC=$?
    set -e
    {
        printf '== bottled %s %s (exit %d)\n' "$cmd" "$*" "$RC"
        cat "$OUT" "$ERR"
    } >>"$ALL_OUTPUT"
    [ "$RC" != 124 ] || note "bottled $cmd timed out after $limit s"
    return 0
}
# what bottled printed, for a failure message
said() { printf '%s | %s' "$(head -c 700 "$OUT" | tr '\n\t' '  ')" "$(head -c 400 "$ERR" | tr '\n' ' ')"; }

# json EXPR: a Python expression over the JSON in $OUT (as d); "ERROR ..." if it fails
json() {
    python3 -c '
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    print(eval(sys.argv[2]))
except Exception as e:
    print("ERROR %s: %s" % (type(e).__name__, e))' "$OUT" "$1"
}
# the JSON bottle named $1 of reconcile/plan output, as a Python expression
jb() { printf '[b for b in d["bottles"] if b["name"] == "%s"][0]' "$1"; }
# "action:role:cause" of every action of bottle $1, space separated
actions_of() { json "\" \".join(a[\"action\"] + \":\" + a[\"role\"] + \":\" + a[\"cause\"] for a in $(jb "$1")[\"actions\"])"; }

# snapshot ID: one line per engine resource of instance ID:
#   container NAME ID STATE / network NAME ID / volume NAME MARKER
snapshot() {
    local f
    f=$(urlenc "{\"label\":[\"io.bottled.instance=$1\"]}")
    {
        api GET "/containers/json?all=true&filters=$f" | python3 -c '
import json, sys
for c in json.load(sys.stdin):
    print("container", c["Names"][0].lstrip("/"), c["Id"], c["State"])'
        api GET "/networks?filters=$f" | python3 -c '
import json, sys
for n in json.load(sys.stdin):
    print("network", n["Name"], n["Id"])'
        # A volume has no id, and Docker's CreatedAt is the ctime of its data
        # directory (it moves when a file is written): a random marker file
        # the test puts into the volume's directory on the host (the engine
        # is local) the first time it sees it tells a kept volume from a
        # recreated one.
        api GET "/volumes?filters=$f" | python3 -c '
import json, os, sys
for v in json.load(sys.stdin)["Volumes"] or []:
    p = os.path.join(v["Mountpoint"], ".bt-marker")
    try:
        m = open(p).read()
    except FileNotFoundError:
        m = os.urandom(8).hex()
        with open(p, "w") as f:
            f.write(m)
    print("volume", v["Name"], m)'
    } | sort
}
# names_of ID BOTTLE: the resource names of that bottle in the snapshot, sorted, one line
names_of() { snapshot "$1" | awk -v p="$PREFIX-$2-" 'index($2, p) == 1 {print $2}' | sort | tr '\n' ' ' | sed 's/ $//'; }
# all six names of bottle $1 under $PREFIX, in the order names_of prints them
six_names() {
    printf '%s\n' "$PREFIX-$1-agent" "$PREFIX-$1-cfg" "$PREFIX-$1-egr" "$PREFIX-$1-int" \
        "$PREFIX-$1-proxy" "$PREFIX-$1-work" | sort | tr '\n' ' ' | sed 's/ $//'
}

# cid NAME: the container's id ("" when absent)
cid() { api GET "/containers/$1/json" 2>/dev/null | jget Id 2>/dev/null || true; }
# cstate NAME: "status startedat pid" of a container
cstate() {
    api GET "/containers/$1/json" 2>/dev/null |
        python3 -c 'import json,sys; s=json.load(sys.stdin)["State"]; print(s["Status"], s["StartedAt"], s["Pid"])' 2>/dev/null ||
        true
}

# ADMIN_SH: shell, run inside a sidecar, that sets $a to its admin address
# (ADDR:PORT after --admin in its command line: the egress-side address)
# shellcheck disable=SC2016 # expanded inside the container
ADMIN_SH='a=$(tr "\000" "\n" </proc/1/cmdline | sed -n "/^--admin$/{n;p;}")'
# sidecar_hash NAME: what the sidecar's admin endpoint reports as its config hash
sidecar_hash() {
    local rc
    rc=$(exec_in "$1" "$ADMIN_SH; curl -s --max-time 5 http://\$a/config-hash") || return 0
    [ "$rc" = 0 ] && tr -d '\n' <"$EXEC_OUT_FILE"
    return 0
}
# render_hash BOTTLE: the config hash `bottled render --json` reports
render_hash() {
    bd render --json "$1"
    json 'd["config_hash"]'
}

# assert_rc EXPECTED DESCRIPTION: the last bd's exit status (with its output on failure)
assert_rc() {
    if [ "$RC" = "$1" ]; then
        pass "$2"
    else
        fail "$2: expected exit $1, got $RC: $(said)"
    fi
}

# engine_events SINCE ID: the engine's own event log since SINCE (unix
# seconds) for the containers of instance ID, in order, one "ACTION NAME"
# line each (exec sessions as "exec NAME"). Only since= is used (Podman
# 4.3's compat API answers nothing when until= is given): the stream is
# read for 3 s.
engine_events() {
    local f
    f=$(urlenc "{\"label\":[\"io.bottled.instance=$2\"]}")
    { curl -s --max-time 3 --unix-socket "$SOCK" "$API/events?since=$1&filters=$f" || true; } | python3 -c '
import json, sys
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    e = json.loads(line)
    action = e.get("Action") or e.get("status") or ""
    if action.startswith("exec"):
        action = "exec"
    print(action, (e.get("Actor") or {}).get("Attributes", {}).get("name"))'
}
# mutating_events SINCE ID: engine_events without the exec sessions (a pass
# asks the sidecars for their config hash through exec): what changed
mutating_events() { engine_events "$1" "$2" | { grep -v '^exec ' || true; }; }

# build_sleep_gate_image TAG: an image standing in for the gate in tests that
# exercise the reconciler's side of it (uid 10098 like the real gate image,
# `sleep infinity`), built through the engine API with the run's label;
# fatal when it cannot be built.  The caller removes it on exit.
build_sleep_gate_image() {
    local tag=$1 code
    mkdir -p "$_TMP/gatectx"
    printf 'FROM localhost/bottled-debian:latest\nUSER 10098:10098\nENTRYPOINT ["sleep", "infinity"]\n' \
        >"$_TMP/gatectx/Dockerfile"
    tar -C "$_TMP/gatectx" -cf "$_TMP/gatectx.tar" Dockerfile
    code=$(curl -sS --max-time 120 -o "$_TMP/build.out" -w '%{http_code}' --unix-socket "$SOCK" \
        -X POST -H 'Content-Type: application/x-tar' --data-binary "@$_TMP/gatectx.tar" \
        "$API/build?t=$(urlenc "$tag")&labels=$(urlenc "{\"$RUN_LABEL\":\"$RUN_ID\"}")")
    if [ "$code" != 200 ] || [ "$(api_code GET "/images/$(urlenc "$tag")/json")" != 200 ]; then
        fatal "build the gate test image (HTTP $code: $(head -c 300 "$_TMP/build.out"))"
    fi
}
