#!/usr/bin/env bash
# Address policy: a route whose name resolves (static host entries) to loopback,
# a private address outside allow_private, link-local metadata, CGNAT, IPv4-mapped
# loopback or the proxy's own network is refused with the class as reason, and
# nothing is dialled.
. "$(dirname "$0")/live.sh"

live_setup 18
LPORT=$((PORT + 40))
live_routes '
base = '"$(route_of upstream.test)"'
ip = j["hosts"][0]["ip"]
gw = ip.rsplit(".", 1)[0] + ".1"
for name, addr in [("loop.test", "127.0.0.1"), ("loop6.test", "::1"), ("mapped.test", "::ffff:127.0.0.1"),
                   ("meta.test", "169.254.169.254"), ("cgnat.test", "100.64.0.1"), ("zero.test", "0.0.0.0"),
                   ("priv.test", "10.231.18.6"), ("gw.test", gw)]:
    r = dict(base)
    r["auth"] = None
    r["host"] = name
    r["ports"] = [8443, '"$LPORT"']
    j["routes"].append(r)
    j["hosts"].append({"name": name, "ip": addr})
'
# A loopback listener that counts connections: none may arrive.
/usr/bin/python3 - "$LPORT" >"$TMP/lo.out" <<'PY' &
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
print("ready", flush=True)
while True:
    c, a = s.accept(); print("ACCEPTED", a, flush=True); c.close()
PY
LIVE_PIDS+=($!)
wait_line "$TMP/lo.out" ready || not_ok "loopback listener"
live_start
uplog_mark

refused() { # host port reason-fragment
    pcurl "https://$1:$2/x"
    expect_status 403 "$1 -> refused"
    expect_in "$TMP/out" "destination address refused: $3" "$1: reason '$3'"
}
refused loop.test "$LPORT" "loopback"
refused loop6.test "$LPORT" "loopback"
refused mapped.test "$LPORT" "loopback"
refused meta.test 8443 "cloud metadata address"
refused cgnat.test 8443 "carrier-grade NAT address"
refused zero.test "$LPORT" "unspecified"
refused priv.test 8443 "private"
refused gw.test 8443 ""
expect_eq "$(audit_last 'a["decision"], a["route"]' req)" "('deny', 'gw.test')" "audit: deny on the route"
sleep 0.2
expect_not_in "$TMP/lo.out" "ACCEPTED" "nothing dialled the loopback listener"
expect_upstream_silent "refused addresses"

# The same upstream address is allowed through allow_private.
pcurl "https://upstream.test:8443/ok"
expect_status 200 "the allow_private /32 is dialled"
live_stop
finish
