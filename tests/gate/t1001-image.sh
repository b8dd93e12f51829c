#!/usr/bin/env bash
# t1001: the gate image (localhost/bottled-gate:<version>) on the engine, run
# as the reconciler will run it: files delivered under /gate/ through the
# archive API before the start (0600, uid 10098), on an internal network
# with a sidecar that is its only way out (a raw tunnel to the upstream's
# ssh port, token-authenticated), a real sshd upstream in a network
# namespace, and a client container on the internal network as the agent.
#   - the agent clones through http://<gate>:8080/proj.git and sees
#     upstream's commit; a clean push lands upstream;
#   - a push with a credential is refused naming file, commit and detector,
#     never the value, and nothing reaches upstream;
#   - host_key "" is learned on first use: /gate/status.json, read back
#     through the archive API, records it;
#   - the gate's ssh went through the sidecar's raw tunnel (its audit line).
# The sidecar runs from the gate image's own bottle-proxy (the binary the
# proxy image carries, built from the same tree), so the test does not
# depend on which tree last built localhost/bottled-proxy.
. "$(dirname "$0")/../engine/harness.sh"

REPO=$(cd "$(dirname "$0")/../.." && pwd)
. "$REPO/tests/gate/sshd.sh"
PROXY=${1:?usage: $0 PATH-TO-bottle-proxy PATH-TO-bottled}
BOTTLED_BIN=${2:?usage: $0 PATH-TO-bottle-proxy PATH-TO-bottled}
VERSION=$(sed -n 's/^project(bottled VERSION \([0-9.]*\).*/\1/p' "$REPO/CMakeLists.txt")
IMAGE=localhost/bottled-gate:$VERSION
AGENT_IMAGE=localhost/bottled-agent:latest
NETNS_SH=$REPO/tests/proxy/netns.sh
TOKEN='t1001-tunnel-TOKEN-never-printed-3b9a'
SECRET='AKIAZ7QX4MRWJ3NVKD2P'
require_engine
for img in "$IMAGE" "$AGENT_IMAGE"; do
    code=$(api_code GET "/images/$(urlenc "$img")/json")
    [ "$code" = 200 ] || fatal "image $img exists in $ENGINE (HTTP $code; run: bash scripts/build-gate-image.sh)"
done

case "$ENGINE" in podman) IDX=71 ;; *) IDX=72 ;; esac
NS=bdt-gate-$IDX
SUB=10.233.$IDX
SIDE_IP=$SUB.2
GATE_IP=$SUB.3
AGENT_IP=$SUB.4
BR_INT=bdg${IDX}i
BR_EXT=bdg${IDX}e
SSHD_PID=
# Where br_netfilter runs bridged frames through FORWARD (Docker sets its
# policy to DROP), the test opens its own two bridges as the reconciler's
# firewall does for a bottle's: traffic within the internal one, the
# external one's egress and the answers.
FW_RULES=("-i $BR_INT -o $BR_INT -j ACCEPT" "-i $BR_EXT -j ACCEPT"
    "-o $BR_EXT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
cleanup_gate() {
    local r
    for r in "${FW_RULES[@]}"; do
        # shellcheck disable=SC2086 # a rule is several words
        while iptables -w -D FORWARD $r 2>/dev/null; do :; done
    done
    [ -z "$SSHD_PID" ] || kill "$SSHD_PID" 2>/dev/null || true
    "$NETNS_SH" down "$NS" "$IDX" >/dev/null 2>&1 || true
    _finish
}
trap cleanup_gate EXIT

# ---- the upstream: sshd in a namespace, a bare repo with one commit
UP_IP=$("$NETNS_SH" up "$NS" "$IDX") || fatal "create netns $NS"
D=$_TMP/sshd
mkdir -p "$D" "$_TMP/files/gate/keys" "$_TMP/up"
ssh-keygen -q -t ed25519 -N '' -f "$D/host_ed25519"
ssh-keygen -q -t ed25519 -N '' -C bottled-gate -f "$_TMP/gatekey"
cp "$_TMP/gatekey.pub" "$D/authorized_keys"
UPREPO=$_TMP/up/proj.git
git init -q --bare -b main "$UPREPO"
g() { git -c user.name=up -c user.email=up@test "$@"; }
g init -q -b main "$_TMP/seed"
echo "upstream readme" >"$_TMP/seed/README"
g -C "$_TMP/seed" add README && g -C "$_TMP/seed" commit -q -m "upstream: first" &&
    g -C "$_TMP/seed" push -q "$UPREPO" main || fatal "seed the upstream repo"
sshd_config "$D" "$UP_IP:2222" host_ed25519 >"$D/sshd_config"
mkdir -p /run/sshd
"$NETNS_SH" exec "$NS" /usr/sbin/sshd -D -e -f "$D/sshd_config" 2>"$D/sshd.log" &
SSHD_PID=$!

# ---- networks: internal (gate, agent, sidecar) and external (sidecar)
net() { # NAME INTERNAL BRIDGE SUBNET-JSON
    api POST /networks/create "{\"Name\":\"$RUN_ID-$1\",\"Internal\":$2,\"Labels\":{\"$RUN_LABEL\":\"$RUN_ID\"},
        \"Options\":{\"com.docker.network.bridge.name\":\"$3\"}$4}" >/dev/null ||
        fatal "create network $1"
}
net int true "$BR_INT" ",\"IPAM\":{\"Config\":[{\"Subnet\":\"$SUB.0/24\"}]}"
net ext false "$BR_EXT" ""
for r in "${FW_RULES[@]}"; do
    # shellcheck disable=SC2086
    iptables -w -I FORWARD 1 $r || fatal "iptables -I FORWARD $r"
done
# create NAME IMAGE IP EXTRA-JSON: a container on the internal network at IP
create() {
    api POST "/containers/create?name=$RUN_ID-$1" \
        "{\"Image\":\"$2\",\"Labels\":{\"$RUN_LABEL\":\"$RUN_ID\"}$4,
          \"HostConfig\":{\"NetworkMode\":\"$RUN_ID-int\",\"CapDrop\":[\"ALL\"],
                          \"SecurityOpt\":[\"no-new-privileges\"]},
          \"NetworkingConfig\":{\"EndpointsConfig\":{\"$RUN_ID-int\":{\"IPAMConfig\":{\"IPv4Address\":\"$3\"}}}}}" |
        jget Id
}
# put CID DIR: DIR's contents into the container's / through the archive API, owned 10098
put() {
    tar --numeric-owner --owner=10098 --group=10098 -C "$2" -cf "$_TMP/put.tar" . &&
        curl -sS -f --unix-socket "$SOCK" -X PUT -H 'Content-Type: application/x-tar' \
            --data-binary @"$_TMP/put.tar" "$API/containers/$1/archive?path=/"
}

# ---- the sidecar: one raw tunnel, to git.test:2222
"$BOTTLED_BIN" show -d "$REPO/examples" tools >"$_TMP/show.json" || fatal "bottled show"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$_TMP/ca-key.pem" \
    -out "$_TMP/ca.pem" -days 30 -subj /CN=t1001-ca -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
C=$_TMP/files/side/cfg
G=$C/gen-1
mkdir -p "$G"
cp "$_TMP/ca.pem" "$_TMP/ca-key.pem" "$G/"
python3 - "$_TMP/show.json" "$G" "$UP_IP" "$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
g, ip, tsum = sys.argv[2:5]
routes = [r for r in b["egress"]["routes"] if not r["auth"]]
json.dump({"version": 1, "bottle": b["name"], "routes": routes, "dns": None,
           "hosts": [{"name": "git.test", "ip": ip}], "allow_private": [ip + "/32"],
           "tunnels": [{"host": "git.test", "port": 2222, "token_sha256": tsum}]},
          open(g + "/routes.json", "w"))
json.dump({"version": 1, "secrets": []}, open(g + "/secrets.json", "w"))
PY
{
    echo "bottled-proxy-config 1"
    echo "config-hash $(cat "$G/routes.json" "$G/secrets.json" | sha256sum | cut -d' ' -f1)"
    for f in ca-key.pem ca.pem routes.json secrets.json; do
        echo "file $(sha256sum <"$G/$f" | cut -d' ' -f1) $f"
    done
} >"$G/MANIFEST"
echo gen-1 >"$C/current"
chmod 0700 "$C" "$G"
chmod 0600 "$G"/*
"$PROXY" --check-config "$C" >/dev/null 2>"$_TMP/check.err" || fatal "the sidecar's generation is valid: $(cat "$_TMP/check.err")"
SIDE=$(create side "$IMAGE" "$SIDE_IP" ',"Entrypoint":["/usr/local/bin/bottle-proxy"],"Cmd":["--config","/cfg"]') ||
    fatal "create the sidecar"
api POST "/networks/$RUN_ID-ext/connect" "{\"Container\":\"$SIDE\"}" >/dev/null || fatal "connect the sidecar to the external network"
put "$SIDE" "$_TMP/files/side" || fatal "deliver the sidecar's config"
api POST "/containers/$SIDE/start" >/dev/null || fatal "start the sidecar"

# ---- the gate: /gate/ delivered before the start, host_key "" (learn on first use)
F=$_TMP/files/gate
cp "$_TMP/gatekey" "$F/keys/proj"
printf '%s\n' "$TOKEN" >"$F/token"
python3 - "$F/config.json" "$SIDE_IP" "$UPREPO" <<'PY'
import json, sys
json.dump({"proxy": sys.argv[2] + ":9099",
           "repos": [{"name": "proj", "url": "ssh://root@git.test:2222" + sys.argv[3],
                      "host": "git.test", "port": 2222, "host_key": ""}]}, open(sys.argv[1], "w"))
PY
chmod 0700 "$F" "$F/keys"
chmod 0600 "$F/keys/proj" "$F/token" "$F/config.json"
GATE=$(create gate "$IMAGE" "$GATE_IP" "") || fatal "create the gate"
put "$GATE" "$_TMP/files" || fatal "deliver /gate/ through the archive API"
api POST "/containers/$GATE/start" >/dev/null || fatal "start the gate"
AGENT=$(create agent "$AGENT_IMAGE" "$AGENT_IP" ',"Cmd":["sleep","600"]') || fatal "create the agent"
api POST "/containers/$AGENT/start" >/dev/null || fatal "start the agent"

up=0
for _ in $(seq 50); do
    api GET "/containers/$GATE/logs?stderr=1" 2>/dev/null | grep -aq "serving 1 repo" && up=1 && break
    sleep 0.2
done
[ "$up" = 1 ] && pass "the gate is serving" ||
    fatal "the gate is serving: $(api GET "/containers/$GATE/logs?stderr=1&stdout=1" | tr -d '\000' | tail -c 600)"
check_exec "$GATE" "the gate runs as uid 10098 with its key 0600" \
    'test "$(id -u):$(id -g)" = 10098:10098 && test "$(stat -c %a:%u /gate/keys/proj)" = 600:10098 && ssh -V'

AG='git -c user.name=agent -c user.email=agent@bottle'
URL=http://$GATE_IP:8080/proj.git
check_exec "$AGENT" "the agent clones through the gate and sees upstream's commit" \
    "cd /workspace && $AG clone -q $URL w && test \"\$(cat w/README)\" = 'upstream readme'"
check_exec "$AGENT" "a clean push through the gate is accepted" \
    "cd /workspace/w && echo work >work.txt && $AG add work.txt && $AG commit -q -m 'agent: work' && $AG push -q origin main"
exec_in "$AGENT" "cd /workspace/w && git rev-parse HEAD" >/dev/null
AGENT_HEAD=$(tr -d '\n' <"$EXEC_OUT_FILE")
assert_eq "$AGENT_HEAD" "$(git --git-dir="$UPREPO" rev-parse main)" "the push landed upstream"

rc=$(exec_in "$AGENT" "cd /workspace/w && printf 'key = \"$SECRET\"\\n' >creds.py && $AG add creds.py && $AG commit -q -m 'agent: creds' && git rev-parse HEAD >/tmp/c && $AG push origin main") || fatal "exec the secret push"
OUT=$(cat "$EXEC_OUT_FILE")
exec_in "$AGENT" "cat /tmp/c" >/dev/null
C1=$(tr -d '\n' <"$EXEC_OUT_FILE")
[ "$rc" != 0 ] && pass "a push with a credential is refused (exit $rc)" || fail "a push with a credential is refused"
case "$OUT" in *"creds.py in $C1: credential found by detector 'aws_access_key_id'"*) pass "the refusal names file, commit and detector" ;;
*) fail "the refusal names file, commit and detector: $OUT" ;; esac
case "$OUT" in *"$SECRET"*) fail "the credential's value is shown to the agent" ;; *) pass "the value is not shown" ;; esac
assert_eq "$AGENT_HEAD" "$(git --git-dir="$UPREPO" rev-parse main)" "nothing reached upstream"

curl -sS -f --unix-socket "$SOCK" "$API/containers/$GATE/archive?path=/gate/status.json" -o "$_TMP/status.tar" ||
    fatal "read /gate/status.json through the archive API"
tar -xOf "$_TMP/status.tar" status.json >"$_TMP/status.json"
assert_eq "[{'repo': 'proj', 'host_key': '$(cut -d' ' -f1,2 "$D/host_ed25519.pub")'}]" \
    "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["learned_host_keys"])' "$_TMP/status.json")" \
    "status.json (archive API) records the host key learned on first use"
api GET "/containers/$SIDE/logs?stdout=1&stderr=1" | tr -d '\000' >"$_TMP/side.log" || true
grep -q '"raw tunnel closed"' "$_TMP/side.log" && pass "the gate's ssh went through the sidecar's raw tunnel" ||
    fail "the sidecar's audit shows the raw tunnel: $(tail -c 600 "$_TMP/side.log")"
api GET "/containers/$GATE/logs?stdout=1&stderr=1" | tr -d '\000' >"$_TMP/gate.log" || true
if grep -q -e "$TOKEN" -e "$SECRET" -e "PRIVATE KEY" "$_TMP/gate.log" "$_TMP/side.log"; then
    fail "a secret (token, credential, key) appeared in the containers' output"
else
    pass "no token, credential or key in the gate's or the sidecar's output"
fi
[ "$_FAILS" = 0 ] || { note "gate log:"; tail -c 2000 "$_TMP/gate.log" | sed 's/^/#   /'; }
