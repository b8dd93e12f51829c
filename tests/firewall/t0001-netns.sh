#!/usr/bin/env bash
# t0001-netns.sh - the host firewall (fw_sync, fw_remove, fw_list_bottles)
# against the real iptables and ip6tables, in network namespaces made here.
#
# Usage: t0001-netns.sh PATH-TO-firewall_test   (root; iproute2, iptables, python3)
#
# Topology: four namespaces named after this shell's pid (so concurrent runs
# never collide), removed by the EXIT trap; the host's own firewall is never
# listed or changed.  "host" plays the machine running the engine:
#
#   agent    eth0 10.77.0.4/28 fd77::4/64 ---+
#   sidecar  eth1 10.77.0.2/28 --------------+-- BR_INT 10.77.0.1/28 fd77::1/64 --+
#   sidecar  eth0 10.77.1.2/28 ----------------- BR_EGR 10.77.1.1/28 -------------+ host
#   outside  eth0 198.18.0.2/30 ---------------- vo     198.18.0.1/30 ------------+
#
# The agent's default route points at the host, as on Docker's internal
# networks (Podman's have none), so forwarding is exercised too.  Servers:
# tcp 8080 on :: (dual stack), udp and tcp 53 on 0.0.0.0, in host, agent,
# sidecar and outside alike.  Every "blocked" probe has a control that
# reaches the same server before the first sync and after the final removal.
# The iptables found first in PATH is used, so the same test covers
# iptables-legacy with a PATH directory of xtables-legacy-multi links.
set -u
FWT=${1:?usage: $0 PATH-TO-firewall_test}
HERE=$(cd "$(dirname "$0")" && pwd)
PROBE="$HERE/netprobe.py"
PASS=0
FAIL=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bottled-fw.XXXXXX")
NSP="bdfw$$"
SERVER_PIDS=()

ok() {
    PASS=$((PASS + 1))
    echo "ok $((PASS + FAIL)) - $1"
}
not_ok() {
    FAIL=$((FAIL + 1))
    echo "not ok $((PASS + FAIL)) - $1"
    shift
    for l in "$@"; do printf '    %s\n' "$l"; done
}
die() {
    not_ok "$1"
    exit 1
}
finish() {
    echo "# $PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
}
cleanup() {
    for p in "${SERVER_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for n in host agent sidecar outside; do ip netns del "$NSP-$n" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, iptables)"
for c in ip iptables ip6tables iptables-restore ip6tables-restore python3; do
    command -v "$c" >/dev/null || die "needs $c in PATH"
done
[ -x "$FWT" ] || die "not executable: $FWT"

ns() { # NAME CMD...: CMD inside namespace NAME
    local n=$1
    shift
    ip netns exec "$NSP-$n" "$@"
}
ipt() { ns host iptables -w "$@"; }
ip6t() { ns host ip6tables -w "$@"; }
fwt() { ns host "$FWT" "$@"; }
hex12() { head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
bridge_name() { printf 'bd%s' "$(printf '%s' "$1" | sha256sum | cut -c1-12)"; }

INST=$(hex12)
OTHER=$(hex12)
[ "$INST" != "$OTHER" ] || OTHER=000000000000
CH="BOTTLED-$INST"
CHF="BOTTLED-$INST-F"
BR_INT=$(bridge_name "$INST:web:int")
BR_EGR=$(bridge_name "$INST:web:egr")
# A second bottle whose bridges do not exist here: rules on absent
# interfaces are valid, and it makes the set bigger than one.
API="api:$(bridge_name "$INST:api:int"):$(bridge_name "$INST:api:egr"):10.77.2.1"
WEB="web:$BR_INT:$BR_EGR:10.77.1.1"
echo "# instance $INST, other $OTHER, bridges $BR_INT $BR_EGR, namespaces $NSP-*"

# ---- topology
set -e
for n in host agent sidecar outside; do
    ip netns add "$NSP-$n"
    ns "$n" ip link set lo up
done
ns host sysctl -qw net.ipv4.ip_forward=1
ns host sysctl -qw net.ipv6.conf.all.forwarding=1
ns host ip link add "$BR_INT" type bridge
ns host ip link add "$BR_EGR" type bridge
ns host ip addr add 10.77.0.1/28 dev "$BR_INT"
ns host ip addr add fd77::1/64 dev "$BR_INT" nodad
ns host ip addr add 10.77.1.1/28 dev "$BR_EGR"
ns host ip link set "$BR_INT" up
ns host ip link set "$BR_EGR" up
# veth PEER-NS PEER-IF HOST-IF [BRIDGE]
veth() {
    ip link add "$3" netns "$NSP-host" type veth peer name "$2" netns "$NSP-$1"
    [ -z "${4:-}" ] || ns host ip link set "$3" master "$4"
    ns host ip link set "$3" up
    ns "$1" ip link set "$2" up
}
veth agent eth0 va0 "$BR_INT"
veth sidecar eth1 vs1 "$BR_INT"
veth sidecar eth0 vs0 "$BR_EGR"
veth outside eth0 vo
ns agent ip addr add 10.77.0.4/28 dev eth0
ns agent ip addr add fd77::4/64 dev eth0 nodad
ns agent ip route add default via 10.77.0.1
ns sidecar ip addr add 10.77.0.2/28 dev eth1
ns sidecar ip addr add 10.77.1.2/28 dev eth0
ns sidecar ip route add default via 10.77.1.1
ns host ip addr add 198.18.0.1/30 dev vo
ns outside ip addr add 198.18.0.2/30 dev eth0
ns outside ip route add default via 198.18.0.1
set +e
# With br_netfilter, bridged frames (agent -> sidecar) pass FORWARD as
# "-i BR -o BR"; the FORWARD rule must let them through either way.
echo "# host bridge-nf-call-iptables: $(ns host cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo absent)"

serve() { # NS: start netprobe servers there, wait until bound
    local ready="$TMP/ready.$1"
    ns "$1" python3 "$PROBE" serve "$ready" >"$TMP/server.$1.log" 2>&1 &
    SERVER_PIDS+=($!)
    for _ in $(seq 100); do
        [ -e "$ready" ] && return 0
        sleep 0.05
    done
    die "server in $1 did not start: $(cat "$TMP/server.$1.log")"
}
serve host
serve agent
serve sidecar
serve outside

# probe NS PROTO HOST PORT open|blocked WHAT
probe() {
    local got=blocked
    ns "$1" python3 "$PROBE" "$2" "$3" "$4" && got=open
    if [ "$got" = "$5" ]; then ok "$6: $5"; else not_ok "$6: $got, expected $5"; fi
}

# The probes of the scenario; MODE "control" expects everything open.
probes() {
    local mode=$1 b=blocked
    [ "$mode" = control ] && b=open
    probe agent tcp 10.77.0.1 8080 "$b" "$mode: agent -> internal gateway tcp 8080"
    probe agent udp 10.77.0.1 53 "$b" "$mode: agent -> internal gateway udp 53 (the engine's DNS)"
    probe agent tcp fd77::1 8080 "$b" "$mode: agent -> internal gateway [fd77::1] tcp 8080 (ip6tables)"
    probe agent tcp 198.18.0.1 8080 "$b" "$mode: agent -> host's other address"
    probe agent tcp 10.77.1.1 8080 "$b" "$mode: agent -> egress gateway address"
    probe agent tcp 198.18.0.2 8080 "$b" "$mode: agent forwarded to outside"
    probe agent tcp 10.77.0.2 8080 open "$mode: agent -> sidecar on the internal bridge"
    probe host tcp 10.77.0.4 8080 "$b" "$mode: host -> agent (its replies are dropped)"
    probe host tcp 10.77.1.2 8080 open "$mode: host -> sidecar's egress address"
    probe sidecar udp 10.77.1.1 53 open "$mode: sidecar -> egress gateway udp 53"
    probe sidecar tcp 10.77.1.1 53 open "$mode: sidecar -> egress gateway tcp 53"
    probe sidecar tcp 10.77.1.1 8080 "$b" "$mode: sidecar -> egress gateway tcp 8080"
    probe sidecar tcp 198.18.0.1 8080 "$b" "$mode: sidecar -> host's other address"
    probe sidecar tcp 198.18.0.2 8080 open "$mode: sidecar forwarded to outside"
}

# expect_stats WANT WHAT CMD...: runs firewall_test, compares its stats line
# (EXPECT_RC, default 0: the exit status wanted)
expect_stats() {
    local want=$1 what=$2 out
    shift 2
    out=$(fwt "$@" 2>"$TMP/err")
    local rc=$?
    if [ $rc -eq "${EXPECT_RC:-0}" ] && [ "$out" = "$want" ]; then
        ok "$what ($want, exit $rc)"
    else
        not_ok "$what: exit $rc, '$out', expected '$want', exit ${EXPECT_RC:-0}" "stderr: $(cat "$TMP/err")"
    fi
}

# input_rule N CHAIN: the Nth rule of CHAIN in iptables -S form ("" if none)
input_rule() { ipt -S "$2" | grep '^-A' | sed -n "${1}p"; }

# ---- foreign state that must survive everything
ipt -N FOREIGN
ipt -A FOREIGN -s 192.0.2.7/32 -m comment --comment "not ours" -j ACCEPT
ipt -A INPUT -s 192.0.2.8/32 -j FOREIGN
ipt -A FORWARD -d 192.0.2.9/32 -j ACCEPT
expect_stats "listings=2 applies=2" "other instance's sync" sync "$OTHER" "zzz:bdother00int:bdother00egr:10.99.0.1"
foreign_state() { # everything in both families that is not ours
    { ipt -S; ip6t -S; } | grep -v -e "$CH\$" -e "$CH " -e "$CHF\$" -e "$CHF "
}
foreign_state >"$TMP/foreign.before"

# ---- controls: nothing of ours yet
probes control

# ---- first sync
expect_stats "listings=2 applies=2" "first sync applies both families" sync "$INST" "$WEB" "$API"
probes sync
expect_stats "listings=2 applies=0" "converged sync changes nothing" sync "$INST" "$WEB" "$API"
expect_stats "listings=2 applies=0" "bottle order does not matter" sync "$INST" "$API" "$WEB"
if [ "$(input_rule 1 INPUT)" = "-A INPUT -j $CH" ]; then
    ok "jump is INPUT rule 1"
else
    not_ok "jump is not INPUT rule 1" "$(ipt -S INPUT)"
fi
if [ "$(input_rule 1 FORWARD)" = "-A FORWARD -j $CHF" ]; then
    ok "jump is FORWARD rule 1"
else
    not_ok "jump is not FORWARD rule 1" "$(ipt -S FORWARD)"
fi
n=$(ipt -S "$CH" | grep -c '^-A')
if [ "$n" = 10 ]; then
    ok "$CH has 10 rules (5 per bottle)"
else
    not_ok "$CH has $n rules, expected 10" "$(ipt -S "$CH")"
fi
n=$(ip6t -S "$CH" | grep -c '^-A')
if [ "$n" = 6 ]; then
    ok "ip6tables $CH has 6 rules (no DNS rules)"
else
    not_ok "ip6tables $CH: $n rules" "$(ip6t -S "$CH")"
fi
n=$(ip6t -S "$CHF" | grep -c '^-A')
if [ "$n" = 4 ]; then
    ok "ip6tables $CHF has 4 rules (intra-bridge accept and leave-drop per bottle)"
else
    not_ok "ip6tables $CHF: $n rules" "$(ip6t -S "$CHF")"
fi
if ipt -S "$CH" | grep -q -- "-i $BR_INT -m comment --comment \"bottled web\" -j DROP"; then
    ok "rules carry the bottle's comment"
else
    not_ok "no 'bottled web' comment" "$(ipt -S "$CH")"
fi
out=$(fwt list "$INST" | tr '\n' ' ')
if [ "$out" = "api web " ]; then
    ok "list: api web"
else
    not_ok "list: '$out'"
fi

# ---- tampering, one kind at a time; each sync repairs exactly one family
ipt -D "$CH" -i "$BR_INT" -m comment --comment "bottled web" -j DROP
probe agent tcp 10.77.0.1 8080 open "tamper: without its rule the agent reaches the gateway"
expect_stats "listings=2 applies=1" "sync restores a deleted rule" sync "$INST" "$WEB" "$API"
probe agent tcp 10.77.0.1 8080 blocked "repaired: agent -> internal gateway"

ipt -A "$CH" -i "$BR_EGR" -j ACCEPT
expect_stats "listings=2 applies=1" "sync removes an extra rule" sync "$INST" "$WEB" "$API"
if ipt -S "$CH" | grep -q -- "-j ACCEPT"; then
    not_ok "extra rule still there" "$(ipt -S "$CH")"
else
    ok "extra rule gone"
fi

ipt -I INPUT 1 -s 192.0.2.10/32 -j ACCEPT
expect_stats "listings=2 applies=1" "sync moves the jump back to rule 1" sync "$INST" "$WEB" "$API"
if [ "$(input_rule 1 INPUT)" = "-A INPUT -j $CH" ] && [ "$(input_rule 2 INPUT)" = "-A INPUT -s 192.0.2.10/32 -j ACCEPT" ]; then
    ok "jump at 1, the foreign rule kept at 2"
else
    not_ok "INPUT after repair" "$(ipt -S INPUT)"
fi
ipt -D INPUT -s 192.0.2.10/32 -j ACCEPT

ipt -A INPUT -j "$CH"
ip6t -I FORWARD 1 -j "$CHF"
expect_stats "listings=2 applies=2" "sync removes duplicate jumps" sync "$INST" "$WEB" "$API"
n=$(ipt -S | grep -c -- "-j $CH\$")
m=$(ip6t -S | grep -c -- "-j $CHF\$")
if [ "$n" = 1 ] && [ "$m" = 1 ]; then
    ok "one jump each"
else
    not_ok "jumps: $n to $CH, $m to $CHF (ip6)"
fi

ip6t -F "$CH"
expect_stats "listings=2 applies=1" "sync refills a flushed ip6tables chain" sync "$INST" "$WEB" "$API"
probe agent tcp fd77::1 8080 blocked "repaired: agent -> [fd77::1]"

ipt -D FORWARD -j "$CHF"
ipt -F "$CHF"
ipt -X "$CHF"
expect_stats "listings=2 applies=1" "sync recreates a deleted chain and its jump" sync "$INST" "$WEB" "$API"
probe agent tcp 198.18.0.2 8080 blocked "repaired: agent forwarded to outside"

# ---- rules go with their bottle
expect_stats "listings=2 applies=2" "sync without api" sync "$INST" "$WEB"
if ipt -S "$CH" | grep -q 'bottled api'; then
    not_ok "api's rules remain" "$(ipt -S "$CH")"
else
    ok "api's rules are gone"
fi
out=$(fwt list "$INST" | tr '\n' ' ')
if [ "$out" = "web " ]; then
    ok "list: web"
else
    not_ok "list: '$out'"
fi
probes "sync (web only)"

# ---- a crash between the families (only in builds with -DBOTTLED_FAULT_HOOKS=ON)
BOTTLED_FAULT_COUNT="$TMP/faults" fwt sync "$INST" "$WEB" "$API" >/dev/null 2>&1
if [ -s "$TMP/faults" ]; then
    BOTTLED_FAULT_AT=2 fwt sync "$INST" "$WEB" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    if [ $rc -ne 0 ] && grep -q "killed before firewall ipv6 apply" "$TMP/err" &&
        ! ipt -S "$CH" | grep -q 'bottled api' && ip6t -S "$CH" | grep -q 'bottled api'; then
        ok "killed before the ipv6 apply: ipv4 applied, ipv6 untouched"
    else
        not_ok "fault at 2: exit $rc" "$(cat "$TMP/err")" "$(ipt -S "$CH")" "$(ip6t -S "$CH")"
    fi
    expect_stats "listings=2 applies=1" "the next sync repairs only ipv6" sync "$INST" "$WEB"
else
    echo "# fault hooks not built in: crash check not run"
    fwt sync "$INST" "$WEB" >/dev/null
fi

# ---- bad input runs nothing
EXPECT_RC=1 expect_stats "listings=0 applies=0" "equal bridges are refused before any command" \
    sync "$INST" "web:$BR_INT:$BR_INT"
EXPECT_RC=1 expect_stats "listings=0 applies=0" "an invalid bottle name is refused before any command" \
    sync "$INST" "Web:$BR_INT:$BR_EGR"
EXPECT_RC=1 expect_stats "listings=0 applies=0" "an IPv6 gateway is refused before any command" \
    sync "$INST" "web:$BR_INT:$BR_EGR:fd77::1"

# ---- removal
foreign_state >"$TMP/foreign.mid"
if cmp -s "$TMP/foreign.before" "$TMP/foreign.mid"; then
    ok "foreign rules and the other instance untouched by syncs"
else
    not_ok "foreign state changed" "$(diff "$TMP/foreign.before" "$TMP/foreign.mid")"
fi
expect_stats "listings=2 applies=2" "sync with no bottles" sync "$INST"
if { ipt -S; ip6t -S; } | grep -q "BOTTLED-$INST"; then
    not_ok "something of $CH is left" "$(ipt -S | grep "BOTTLED-$INST")" "$(ip6t -S | grep "BOTTLED-$INST")"
else
    ok "no chain or jump of $INST left in either family"
fi
expect_stats "listings=2 applies=0" "remove when nothing is there" remove "$INST"
foreign_state >"$TMP/foreign.after"
if cmp -s "$TMP/foreign.before" "$TMP/foreign.after"; then
    ok "foreign rules and the other instance untouched by removal"
else
    not_ok "foreign state changed" "$(diff "$TMP/foreign.before" "$TMP/foreign.after")"
fi
if ipt -S "BOTTLED-$OTHER" >/dev/null 2>&1; then
    ok "other instance's chain still there"
else
    not_ok "other instance's chain gone"
fi
probes control

# fw_remove after a sync, with a stray jump from a foreign chain in the way
expect_stats "listings=2 applies=2" "sync again" sync "$INST" "$WEB"
ipt -A FOREIGN -j "$CH"
expect_stats "listings=2 applies=2" "remove" remove "$INST"
if { ipt -S; ip6t -S; } | grep -q "BOTTLED-$INST"; then
    not_ok "something of $CH is left after remove" "$(ipt -S | grep "BOTTLED-$INST")"
else
    ok "remove left nothing of $INST (also the stray jump from FOREIGN)"
fi
expect_stats "listings=2 applies=2" "other instance's removal" remove "$OTHER"
finish
