#!/usr/bin/env bash
# Refusals: unlisted host, unlisted port, IP literals, DoT, Host/SNI disagreeing with
# CONNECT, plain http on a port the route does not list.  The upstream sees nothing.
. "$(dirname "$0")/live.sh"

live_setup 12
live_start
uplog_mark

pcurl "https://unlisted.test:8443/x"
expect_eq "$CCODE" 403 "CONNECT to an unlisted host is refused with 403"
printf 'CONNECT unlisted.test:443 HTTP/1.1\r\nHost: unlisted.test:443\r\n\r\n' | raw >"$TMP/r"
expect_in "$TMP/r" "HTTP/1.1 403 Forbidden" "raw CONNECT: 403"
expect_in "$TMP/r" "no route for host" "the reason names the rule"
expect_eq "$(audit_last 'a["decision"], a["reason"], a["target"], a["method"]')" \
    "('deny', 'no route for host', 'unlisted.test', 'CONNECT')" "audit line of the refusal"

pcurl "https://upstream.test:9443/x"
expect_eq "$CCODE" 403 "port the route does not list"
expect_eq "$(audit_last 'a["reason"]')" "port not allowed for host" "reason: port"

printf 'CONNECT %s:8443 HTTP/1.1\r\nHost: %s:8443\r\n\r\n' "$UP_IP" "$UP_IP" | raw >"$TMP/r"
expect_in "$TMP/r" "403 Forbidden" "IPv4 literal CONNECT"
expect_in "$TMP/r" "IP-literal destinations are denied" "reason: IP literal"
printf 'CONNECT [fdbd:231:12::2]:8443 HTTP/1.1\r\nHost: [fdbd:231:12::2]:8443\r\n\r\n' | raw >"$TMP/r"
expect_in "$TMP/r" "IP-literal destinations are denied" "IPv6 literal CONNECT"
printf 'GET http://%s:8080/ HTTP/1.1\r\nHost: %s:8080\r\n\r\n' "$UP_IP" "$UP_IP" | raw >"$TMP/r"
expect_in "$TMP/r" "IP-literal destinations are denied" "absolute-form to an IP literal"

printf 'CONNECT upstream.test:853 HTTP/1.1\r\nHost: upstream.test:853\r\n\r\n' | raw >"$TMP/r"
expect_in "$TMP/r" "403 Forbidden" "port 853 (DNS over TLS)"

# Plain http to a port the route does not list (it lists 8443 only).
pcurl "http://upstream.test:8080/plain"
expect_status 403 "absolute-form http:// to an unlisted port"
expect_in "$TMP/out" "port not allowed for host" "reason in the body"
# Origin-form to the proxy itself with a Host that is no route.
printf 'GET /x HTTP/1.1\r\nHost: unlisted.test\r\n\r\n' | raw >"$TMP/r"
expect_in "$TMP/r" "HTTP/1.1 403" "origin-form with an unlisted Host"

# Inside an allowed tunnel: Host must name the CONNECT target, SNI too.
pcurl -H 'Host: other.test' "https://upstream.test:8443/h"
expect_status 403 "Host other than the CONNECT target"
expect_in "$TMP/out" "Host does not match the CONNECT target" "reason: Host"
pcurl -H 'Host: upstream.test:9999' "https://upstream.test:8443/h"
expect_status 403 "Host port other than the CONNECT port"
printf 'GET / HTTP/1.1\r\nHost: upstream.test\r\n\r\n' |
    raw --tunnel upstream.test:8443 --sni evil.test >"$TMP/r"
expect_in "$TMP/r" "TLS-ERROR" "SNI other than the CONNECT host: handshake refused"
printf 'GET http://upstream.test:8443/ HTTP/1.1\r\nHost: upstream.test:8443\r\n\r\n' |
    raw --tunnel upstream.test:8443 >"$TMP/r"
expect_in "$TMP/r" "HTTP/1.1 400" "absolute-form inside a tunnel"
printf 'GET / HTTP/1.1\r\nHost: upstream.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n' |
    raw --tunnel upstream.test:8443 >"$TMP/r"
expect_in "$TMP/r" "HTTP/1.1 403" "Upgrade is refused"
expect_in "$TMP/r" "Upgrade is refused" "reason: Upgrade"
printf 'CONNECT upstream.test:8443 HTTP/1.1\r\nHost: upstream.test:8443\r\n\r\n' |
    raw --tunnel upstream.test:8443 >"$TMP/r"
expect_in "$TMP/r" "HTTP/1.1 400" "CONNECT inside a tunnel"

# Not TLS inside the tunnel.
printf 'CONNECT upstream.test:8443 HTTP/1.1\r\nHost: upstream.test:8443\r\n\r\nGET / HTTP/1.1\r\nHost: upstream.test\r\n\r\n' |
    raw >"$TMP/r"
expect_not_in "$TMP/r" "200 Connection Established" "bytes before the 200 are refused"
printf 'CONNECT upstream.test:8443 HTTP/1.1\r\nHost: upstream.test:8443\r\n\r\n' >"$TMP/c"
/usr/bin/python3 - "$PORT" >"$TMP/r" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"CONNECT upstream.test:8443 HTTP/1.1\r\nHost: upstream.test:8443\r\n\r\n")
print(s.recv(100).decode().splitlines()[0])
s.sendall(b"GET / HTTP/1.1\r\nHost: upstream.test\r\n\r\n")
try:
    print("after:", repr(s.recv(100)))
except Exception as e:
    print("after:", e)
PY
expect_in "$TMP/r" "200 Connection Established" "tunnel opened"
expect_not_in "$TMP/r" "HTTP/1.1 200 OK" "plain HTTP inside the tunnel gets no answer"

expect_upstream_silent "every refusal above"
no_secret_anywhere "deny paths"
live_stop
finish
