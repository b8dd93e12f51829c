# tests/engine/harness.sh - small harness for the engine tests (sourced by tNNNN-*.sh).
#
# Talks to a real engine through its Docker-compatible REST API only (curl
# over the unix socket), never through a CLI.
#   BOTTLED_TEST_ENGINE  podman (default) or docker: what the messages name
#   DOCKER_HOST          unix:///path; default per engine:
#                        podman unix:///run/podman/podman.sock, docker unix:///run/docker.sock
# An engine that does not answer is a FAILURE, never a skip.
#
# Every object a test creates carries the label io.bottled.test-run=$RUN_ID;
# the EXIT trap force-removes everything with that label.
set -euo pipefail

ENGINE=${BOTTLED_TEST_ENGINE:-podman}
case "$ENGINE" in
podman) _default_host=unix:///run/podman/podman.sock ;;
docker) _default_host=unix:///run/docker.sock ;;
*)
    echo "FAIL: BOTTLED_TEST_ENGINE must be podman or docker, not '$ENGINE'" >&2
    exit 1
    ;;
esac
_host=${DOCKER_HOST:-$_default_host}
case "$_host" in
unix://*) SOCK=${_host#unix://} ;;
*)
    echo "FAIL: DOCKER_HOST must be unix:///path, not '$_host'" >&2
    exit 1
    ;;
esac
API=http://d/v1.41
TEST_NAME=$(basename "$0" .sh)
RUN_ID="bt-${TEST_NAME%%-*}-$(date +%s)-$$-$RANDOM"
RUN_LABEL=io.bottled.test-run
_TMP=$(mktemp -d)
_FAILS=0
_CHECKS=0

note() { printf '# %s\n' "$*"; }
fail() {
    _FAILS=$((_FAILS + 1))
    _CHECKS=$((_CHECKS + 1))
    printf 'not ok %d - %s\n' "$_CHECKS" "$*"
}
pass() {
    _CHECKS=$((_CHECKS + 1))
    printf 'ok %d - %s\n' "$_CHECKS" "$*"
}
# fatal MSG: a failed check the test cannot continue after
fatal() {
    fail "$*"
    exit 1
}

# api METHOD PATH [JSON]: body on stdout; status 1 (with a message on
# stderr) when the request fails or answers HTTP >= 300. API_CODE is not
# exported (callers often use $(...)); use api_code for the code alone.
api() {
    local out code
    out=$_TMP/body.$$.$RANDOM
    if ! code=$(curl -sS --max-time 60 -o "$out" -w '%{http_code}' --unix-socket "$SOCK" \
        -X "$1" ${3:+-H 'Content-Type: application/json' --data-binary "$3"} "$API$2"); then
        echo "api: $1 $2: no answer from $SOCK" >&2
        rm -f "$out"
        return 1
    fi
    cat "$out"
    if [ "$code" -ge 300 ]; then
        echo "api: $1 $2: HTTP $code: $(head -c 400 "$out")" >&2
        rm -f "$out"
        return 1
    fi
    rm -f "$out"
}
# api_code METHOD PATH [JSON]: the HTTP status only (000 when no answer)
api_code() {
    curl -s --max-time 60 -o /dev/null -w '%{http_code}' --unix-socket "$SOCK" \
        -X "$1" ${3:+-H 'Content-Type: application/json' --data-binary "$3"} "$API$2" || true
}

# jget KEY...: walk JSON on stdin by keys (list indexes as numbers)
jget() {
    python3 -c '
import json, sys
d = json.load(sys.stdin)
for k in sys.argv[1:]:
    d = d[int(k)] if isinstance(d, list) else d[k]
print(d if not isinstance(d, (dict, list)) else json.dumps(d))' "$@"
}

# urlenc STRING
urlenc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

# require_engine: the socket must answer /_ping, else the test fails
require_engine() {
    local code
    code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' --unix-socket "$SOCK" http://d/_ping || true)
    [ "$code" = 200 ] ||
        fatal "$ENGINE engine answers /_ping on $SOCK (got HTTP '$code'; run: bash scripts/setup.sh)"
    note "engine $ENGINE on $SOCK, run label $RUN_LABEL=$RUN_ID"
}

# engine_subnets: every subnet of the engine's networks, one per line.  On
# Podman from its own API: its compat list inspects every container of each
# network (minutes with a few hundred networks).
engine_subnets() {
    if [ "$ENGINE" = podman ]; then
        curl -sS --max-time 60 --unix-socket "$SOCK" http://d/v4.0.0/libpod/networks/json |
            python3 -c 'import json,sys; [print(s["subnet"]) for n in json.load(sys.stdin) for s in (n.get("subnets") or [])]'
    else
        api GET /networks |
            python3 -c 'import json,sys; [print(c.get("Subnet","")) for n in json.load(sys.stdin) for c in ((n.get("IPAM") or {}).get("Config") or [])]'
    fi
}

# free_pool: a random /24 of 10.213.0.0/16 that no network on the engine
# overlaps; prints nothing when there is none, fails when the engine's
# networks cannot be listed.
free_pool() {
    local subnets
    subnets=$(engine_subnets) || return 1
    python3 -c '
import ipaddress, random, sys
used = []
for line in sys.argv[1].splitlines():
    try:
        used.append(ipaddress.ip_network(line.strip(), strict=False))
    except ValueError:
        pass
cands = list(range(1, 255))
random.shuffle(cands)
for x in cands:
    net = ipaddress.ip_network("10.213.%d.0/24" % x)
    if not any(net.overlaps(u) for u in used if u.version == 4):
        print(net)
        break' "$subnets"
}

# remove_labelled LABEL: force-remove every container, then volume, then
# network carrying LABEL ("key=value"). Never fails.
remove_labelled() {
    local f ids id
    f=$(urlenc "{\"label\":[\"$1\"]}")
    ids=$(api GET "/containers/json?all=true&filters=$f" 2>/dev/null |
        python3 -c 'import json,sys; [print(c["Id"]) for c in json.load(sys.stdin)]' 2>/dev/null) || true
    for id in $ids; do api DELETE "/containers/$id?force=true&v=true" >/dev/null 2>&1 || true; done
    ids=$(api GET "/volumes?filters=$f" 2>/dev/null |
        python3 -c 'import json,sys; [print(v["Name"]) for v in json.load(sys.stdin)["Volumes"] or []]' 2>/dev/null) || true
    for id in $ids; do api DELETE "/volumes/$id?force=true" >/dev/null 2>&1 || true; done
    ids=$(api GET "/networks?filters=$f" 2>/dev/null |
        python3 -c 'import json,sys; [print(n["Id"]) for n in json.load(sys.stdin)]' 2>/dev/null) || true
    for id in $ids; do api DELETE "/networks/$id" >/dev/null 2>&1 || true; done
}

# cleanup_run: force-remove all containers, then networks and volumes, carrying our run label
cleanup_run() { remove_labelled "$RUN_LABEL=$RUN_ID"; }

# cleanup_instance ID: everything bottled made for instance ID: its engine
# resources (by label) and its host firewall chains. Never fails; "" is a no-op.
cleanup_instance() {
    local kind chain
    [ -n "${1:-}" ] || return 0
    remove_labelled "io.bottled.instance=$1"
    command -v iptables >/dev/null || return 0
    for kind in iptables ip6tables; do
        for chain in "BOTTLED-$1" "BOTTLED-$1-F"; do
            while $kind -w -D INPUT -j "$chain" 2>/dev/null; do :; done
            while $kind -w -D FORWARD -j "$chain" 2>/dev/null; do :; done
            $kind -w -F "$chain" 2>/dev/null || true
            $kind -w -X "$chain" 2>/dev/null || true
        done
    done
}

_finish() {
    local rc=$?
    cleanup_run
    rm -rf "$_TMP"
    if [ "$rc" -eq 0 ] && [ "$_FAILS" -gt 0 ]; then rc=1; fi
    if [ "$rc" -eq 0 ] && [ "$_CHECKS" -eq 0 ]; then
        echo "not ok - $TEST_NAME made no checks"
        rc=1
    fi
    printf '1..%d\n# %s on %s: %d check(s), %d failed, exit %d\n' \
        "$_CHECKS" "$TEST_NAME" "$ENGINE" "$_CHECKS" "$_FAILS" "$rc"
    exit "$rc"
}
trap _finish EXIT

# start_container IMAGE CMD_JSON_ARRAY: create (with the run label) and start; prints the id
start_container() {
    local id
    id=$(api POST "/containers/create?name=$RUN_ID-$RANDOM" \
        "{\"Image\":\"$1\",\"Cmd\":$2,\"Labels\":{\"$RUN_LABEL\":\"$RUN_ID\"}}" | jget Id) ||
        return 1
    api POST "/containers/$id/start" >/dev/null || return 1
    printf '%s\n' "$id"
}

# exec_in CID SCRIPT: run `sh -c SCRIPT` in the container as its default user
# and working directory. Output (stdout+stderr) goes to EXEC_OUT_FILE,
# the exit code to stdout.
EXEC_OUT_FILE=$_TMP/exec.out
exec_in() {
    local eid script_json
    script_json=$(python3 -c 'import json,sys; print(json.dumps(["sh","-c",sys.argv[1]]))' "$2")
    eid=$(api POST "/containers/$1/exec" \
        "{\"Cmd\":$script_json,\"AttachStdout\":true,\"AttachStderr\":true}" | jget Id) || return 1
    api POST "/exec/$eid/start" '{"Detach":false,"Tty":false}' >"$_TMP/exec.raw" || return 1
    python3 -c '
import struct, sys
b = open(sys.argv[1], "rb").read()
out = sys.stdout.buffer
while len(b) >= 8:
    n = struct.unpack(">I", b[4:8])[0]
    out.write(b[8:8 + n])
    b = b[8 + n:]' "$_TMP/exec.raw" >"$EXEC_OUT_FILE"
    api GET "/exec/$eid/json" | jget ExitCode
}

# check_exec CID DESCRIPTION SCRIPT: one check = SCRIPT exits 0 in the container
check_exec() {
    local rc
    rc=$(exec_in "$1" "$3") || {
        fail "$2 (exec failed)"
        return 0
    }
    if [ "$rc" = 0 ]; then
        pass "$2"
    else
        fail "$2: \`$3\` exited $rc, output: $(head -c 300 "$EXEC_OUT_FILE" | tr '\n' ' ')"
    fi
}

# assert_eq EXPECTED ACTUAL DESCRIPTION
assert_eq() {
    if [ "$1" = "$2" ]; then
        pass "$3"
    else
        fail "$3: expected '$1', got '$2'"
    fi
}
