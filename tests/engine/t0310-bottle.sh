#!/usr/bin/env bash
# t0310: a real bottle, end to end, and its isolation (issue 4, "In a real
# bottle" and "Isolation").
#
#   - `bottled reconcile --once` (host firewall on) with the --proxy-* test
#     knobs pointing upstream.test at a recording HTTPS upstream in a network
#     namespace (never on the host itself);
#   - from inside the agent (default agent image, no extra flags): the allowed
#     host works through the sidecar with TLS verified by the bottle CA, and the
#     route's token is injected (seen by the upstream) while the agent's own
#     Authorization is stripped; a denied host gets 403; the agent holds no
#     secret (environment, files) and no container's inspect output has one;
#   - isolation, each probe paired with a control that succeeds once our
#     firewall chains are removed: a server the test runs on 0.0.0.0 is not
#     reachable from the agent through the internal gateway, the host's own
#     address or host.containers.internal; a direct connection from the agent
#     to the outside upstream never arrives there (where the engine gives the
#     internal network a default route, the control proves the path exists).
. "$(dirname "$0")/harness.sh"

REPO=$(cd "$(dirname "$0")/../.." && pwd)
: "${BOTTLED_BIN:?BOTTLED_BIN (the bottled binary) must be set; ctest sets it}"
NETNS_SH=$REPO/tests/proxy/netns.sh
require_engine
command -v iptables >/dev/null || fatal "iptables is installed"

# Unique per engine so the Podman and Docker runs may overlap.
case "$ENGINE" in podman) IDX=61 ;; *) IDX=62 ;; esac
IDX=${T0310_IDX:-$IDX} # another index for a second run beside a suite run
NS=bdt-e2e-$IDX
SECRET='t0310-upstream-VALUE-never-printed-8c1f'
AGENT_SENT='t0310-agent-sent-credential'

STATE=$_TMP/state
M=$_TMP/manifests
PREFIX=t0310$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
mkdir -p "$M"
INSTANCE=

HOST_PID=
UP_PID=
DNS_PID=
cleanup_all() {
    [ -z "$DNS_PID" ] || kill "$DNS_PID" 2>/dev/null || true
    [ -z "${BYPASS:-}" ] || iptables -w -D DOCKER-ISOLATION-STAGE-1 -i "$INT_BR" ! -o "$INT_BR" -j ACCEPT 2>/dev/null || true
    [ -z "$HOST_PID" ] || kill "$HOST_PID" 2>/dev/null || true
    [ -z "$UP_PID" ] || kill "$UP_PID" 2>/dev/null || true
    cleanup_instance "$INSTANCE"
    "$NETNS_SH" down "$NS" "$IDX" >/dev/null 2>&1 || true
}
trap 'cleanup_all; _finish' EXIT

# ---- the outside: a recording HTTPS upstream in a namespace ----------------
"$NETNS_SH" down "$NS" "$IDX" >/dev/null 2>&1 || true
UP_IP=$("$NETNS_SH" up "$NS" "$IDX") || fatal "create netns $NS"
"$REPO/tests/proxy/mkcerts.sh" "$_TMP/pki" upstream.test >/dev/null || fatal "test PKI"
UPLOG=$_TMP/upstream.log
: >"$UPLOG"
"$NETNS_SH" exec "$NS" python3 "$REPO/tests/proxy/upstream.py" --listen "$UP_IP:443" \
    --tls "$_TMP/pki/upstream.test.pem" "$_TMP/pki/upstream.test-key.pem" --log "$UPLOG" \
    >"$_TMP/up.out" 2>"$_TMP/up.err" &
UP_PID=$!
for _ in $(seq 1 50); do grep -q '^ready' "$_TMP/up.out" 2>/dev/null && break; sleep 0.1; done
grep -q '^ready' "$_TMP/up.out" || fatal "upstream ready: $(cat "$_TMP/up.err")"

# ---- the bottle --------------------------------------------------------------
cat >"$M/e2e.md" <<'EOF'
---
agent:
  command: [sleep, infinity]
egress:
  routes:
    - host: upstream.test
      auth: {scheme: Bearer, token_ref: UPSTREAM_TOKEN}
---
t0310's agent.
EOF
printf 'UPSTREAM_TOKEN@upstream.test=%s\n' "$SECRET" >"$_TMP/secrets"
chmod 0600 "$_TMP/secrets"
POOL=$(free_pool) || fatal "list the engine's networks"
[ -n "$POOL" ] || fatal "a free /24 in 10.213.0.0/16"
reconcile() {
    set +e
    "$BOTTLED_BIN" reconcile --once -d "$M" --state-dir "$STATE" --secrets "$_TMP/secrets" \
        --engine "unix://$SOCK" --name-prefix "$PREFIX" --subnet-pool "$POOL" \
        --proxy-add-host "upstream.test:$UP_IP" --proxy-allow-private "$UP_IP/32" \
        --proxy-upstream-ca "$_TMP/pki/ca.pem" "$@" >"$_TMP/out" 2>"$_TMP/err"
    RC=$?
    set -e
}
reconcile
INSTANCE=$(cat "$STATE/instance-id" 2>/dev/null || true)
assert_eq 0 "$RC" "reconcile --once creates the bottle (out: $(tail -c 600 "$_TMP/out") err: $(tail -c 600 "$_TMP/err"))"
AGENT=$PREFIX-e2e-agent
PROXY=$PREFIX-e2e-proxy
[ "$(api GET "/containers/$AGENT/json" | jget State Running)" = True ] ||
    fatal "the agent runs"
if grep -q "$SECRET" "$_TMP/out" "$_TMP/err"; then
    fail "the secret appeared in bottled's output"
else
    pass "no secret in bottled's output"
fi

# ---- through the sidecar -----------------------------------------------------
check_exec "$AGENT" "allowed host: HTTPS through the sidecar, verified by the bottle CA (no -k)" \
    "curl -sS --max-time 20 -H 'Authorization: Bearer $AGENT_SENT' -o /tmp/resp -w '%{http_code}' https://upstream.test/hello | grep -qx 200"
if grep -qi "authorization: Bearer $SECRET" "$UPLOG"; then
    pass "the upstream saw the route's token injected by the sidecar"
else
    fail "the upstream saw the injected token: $(head -c 800 "$UPLOG")"
fi
if grep -q "$AGENT_SENT" "$UPLOG"; then
    fail "the agent's own Authorization reached the upstream"
else
    pass "the agent's own Authorization was stripped"
fi
check_exec "$AGENT" "the agent's TLS peer is the sidecar's leaf, issued by the bottle CA" \
    "curl -sS --max-time 20 -v https://upstream.test/ -o /dev/null 2>&1 | grep -Eq 'issuer: .*CN ?= ?bottled $INSTANCE e2e CA'"
rc=$(exec_in "$AGENT" "curl -sS --max-time 20 -o /dev/null -w '%{http_code}' https://example.org/ 2>&1; true") || true
if grep -q "403" "$EXEC_OUT_FILE"; then
    pass "a denied host gets 403 from the sidecar"
else
    fail "denied host: $(head -c 300 "$EXEC_OUT_FILE")"
fi

# ---- no secret anywhere the agent or an inspect can see ----------------------
check_exec "$AGENT" "no secret in the agent's environment or files" \
    "! grep -rqs '$SECRET' /proc/1/environ /etc /workspace /home /tmp /root 2>/dev/null"
f=$(urlenc "{\"label\":[\"io.bottled.instance=$INSTANCE\"]}")
leak=0
for id in $(api GET "/containers/json?all=true&filters=$f" | python3 -c 'import json,sys; [print(c["Id"]) for c in json.load(sys.stdin)]'); do
    api GET "/containers/$id/json" | grep -q "$SECRET" && leak=1
done
assert_eq 0 "$leak" "no container's inspect output holds the secret"
if grep -aq "$SECRET" "$STATE"/state.db* 2>/dev/null; then
    fail "the secret is in the state database"
else
    pass "the secret is not in the state database"
fi

# ---- isolation ------------------------------------------------------------------
GW=$(api GET "/networks/$PREFIX-e2e-int" | python3 -c '
import json, sys
n = json.load(sys.stdin)
cfg = (n.get("IPAM") or {}).get("Config") or []
print(cfg[0].get("Gateway", "") if cfg else "")')
[ -n "$GW" ] || GW=$(python3 -c 'import ipaddress,sys; print(next(ipaddress.ip_network(sys.argv[1]).hosts()))' \
    "$(api GET "/networks/$PREFIX-e2e-int" | jget IPAM Config 0 Subnet)")
HOST_IP=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
[ -n "$HOST_IP" ] || HOST_IP=$(hostname -I | awk '{print $1}')
HPORT=$((18300 + IDX))
python3 -m http.server "$HPORT" --bind 0.0.0.0 >/dev/null 2>&1 &
HOST_PID=$!
# A DNS server the test runs on the host (UDP, every address): it counts the
# queries that reach it.  (Not port 53: Podman's aardvark-dns holds that on
# the gateways.)
DPORT=$((5300 + IDX))
DNSLOG=$_TMP/dns.count
: >"$DNSLOG"
python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
while True:
    data, peer = s.recvfrom(4096)
    with open(sys.argv[2], "a") as f:
        f.write("%s %d\n" % (peer[0], len(data)))
' "$DPORT" "$DNSLOG" &
DNS_PID=$!
sleep 0.5
note "internal gateway $GW, host address $HOST_IP, host server :$HPORT"

reach() { # URL: prints the HTTP code the agent gets (000 when it cannot connect)
    exec_in "$AGENT" "curl -s --noproxy '*' --max-time 3 -o /dev/null -w '%{http_code}' $1 || true" >/dev/null || true
    head -c 3 "$EXEC_OUT_FILE"
}
# Does the engine give the internal network a default route? (Docker: yes,
# dropped by its isolation rules; Podman: no.)  Without one, only the gateway
# is reachable at all, so the other controls only make sense with one.
exec_in "$AGENT" "awk 'NR > 1 && \$2 == \"00000000\"' /proc/net/route | wc -l" >/dev/null || true
has_default=$(tr -d ' \n' <"$EXEC_OUT_FILE")
note "$ENGINE: internal network default routes in the agent: ${has_default:-?}"
TARGETS=("http://$GW:$HPORT/" "http://$HOST_IP:$HPORT/")
NAMES=("the internal gateway" "the host's own address")
ROUTED=(1 "${has_default:-0}")
if [ "$ENGINE" = podman ]; then
    TARGETS+=("http://host.containers.internal:$HPORT/")
    NAMES+=("host.containers.internal")
    ROUTED+=(1) # the gateway address on Podman
fi
for i in "${!TARGETS[@]}"; do
    got=$(reach "${TARGETS[$i]}")
    assert_eq 000 "$got" "the agent cannot reach a host server through ${NAMES[$i]} (${TARGETS[$i]})"
done
# Docker drops what leaves an internal bridge in its own isolation chain; to
# show that our chain alone stops it, Docker's drop is bypassed for this
# bridge at the top of DOCKER-ISOLATION-STAGE-1, which FORWARD reaches only
# after our jump (DOCKER-USER would not do: Docker moves its jump to the top
# of FORWARD when it creates a network).
INT_BR=$(api GET "/networks/$PREFIX-e2e-int" | python3 -c '
import json, sys
n = json.load(sys.stdin)
print((n.get("Options") or {}).get("com.docker.network.bridge.name", ""))')
BYPASS=
if [ "$ENGINE" = docker ] && [ -n "$INT_BR" ] && iptables -w -S DOCKER-ISOLATION-STAGE-1 >/dev/null 2>&1; then
    iptables -w -I DOCKER-ISOLATION-STAGE-1 1 -i "$INT_BR" ! -o "$INT_BR" -j ACCEPT && BYPASS=1
fi
# dns_query ADDR: the agent sends one DNS query (example.org A) to ADDR:DPORT
dns_query() {
    exec_in "$AGENT" "bash -c 'exec 3<>/dev/udp/$1/$DPORT && printf \"\\022\\064\\001\\000\\000\\001\\000\\000\\000\\000\\000\\000\\007example\\003org\\000\\000\\001\\000\\001\" >&3' 2>/dev/null; true" >/dev/null || true
}
for addr in "$GW" "$HOST_IP"; do dns_query "$addr"; done
sleep 0.5
assert_eq 0 "$(wc -l <"$DNSLOG" | tr -d ' ')" "a DNS server the test runs on the host sees zero queries from the agent (gateway and host address)"

# What arrives from the bottle's subnet, counted in the outside namespace.
INT_SUBNET=$(api GET "/networks/$PREFIX-e2e-int" | jget IPAM Config 0 Subnet)
"$NETNS_SH" exec "$NS" iptables -w -I INPUT -s "$INT_SUBNET" -m comment --comment t0310-arrivals -j ACCEPT
arrivals() { "$NETNS_SH" exec "$NS" iptables -w -L INPUT -v -x -n | awk '/t0310-arrivals/ {print $1}'; }
before=$(arrivals)
got=$(reach "https://$UP_IP/")
after=$(arrivals)
suffix=
[ -z "$BYPASS" ] || suffix=" (with the isolation drop of Docker bypassed)"
assert_eq "000 $before" "$got $after" "nothing the agent sends to an outside address arrives there (packets counted in its namespace)$suffix"

# Controls: our chains removed, the same probes succeed (what the firewall is for).
for kind in iptables ip6tables; do
    while $kind -w -D INPUT -j "BOTTLED-$INSTANCE" 2>/dev/null; do :; done
    while $kind -w -D FORWARD -j "BOTTLED-$INSTANCE-F" 2>/dev/null; do :; done
done
# (intra-bridge traffic still needs an accept where the FORWARD policy drops)
for i in "${!TARGETS[@]}"; do
    got=$(reach "${TARGETS[$i]}")
    if [ "${ROUTED[$i]}" != 0 ]; then
        assert_eq 200 "$got" "control: without our chains the agent reaches the host server through ${NAMES[$i]}"
    else
        note "no control for ${NAMES[$i]}: no route to it from the internal network on $ENGINE (got $got)"
    fi
done
dns_query "$GW"
sleep 0.5
got=$(wc -l <"$DNSLOG" | tr -d ' ')
[ "$got" -gt 0 ] && pass "control: without our chains the DNS server sees the agent's query ($got)" ||
    fail "control: without our chains the DNS server sees the agent's query"
if [ "${has_default:-0}" != 0 ]; then
    before=$(arrivals)
    reach "https://$UP_IP/" >/dev/null
    after=$(arrivals)
    [ "$after" -gt "$before" ] && pass "control: with a default route on the internal network, the outside is reachable without our chains" ||
        fail "control: the agent reaches the outside without our chains ($ENGINE gives the internal network a default route)"
    [ -z "$BYPASS" ] || iptables -w -D DOCKER-ISOLATION-STAGE-1 -i "$INT_BR" ! -o "$INT_BR" -j ACCEPT
else
    note "$ENGINE: the internal network has no default route; the outside is unreachable even without our chains"
fi

# The next pass re-asserts the chains.
reconcile
assert_eq 0 "$RC" "the next pass converges (err: $(tail -c 300 "$_TMP/err"))"
got=$(reach "http://$GW:$HPORT/")
assert_eq 000 "$got" "the next pass re-asserted the firewall: the gateway is unreachable again"
check_exec "$AGENT" "and the agent still reaches its sidecar" \
    "curl -sS --max-time 20 -o /dev/null -w '%{http_code}' https://upstream.test/hello | grep -qx 200"
