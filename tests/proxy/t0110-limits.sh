#!/usr/bin/env bash
# Limits: head size, header count, target length; the connection cap (1024).
. "$(dirname "$0")/live.sh"

live_setup 20
live_start
uplog_mark
big=$(head -c 40000 /dev/zero | tr '\0' a)
printf 'GET / HTTP/1.1\r\nHost: upstream.test\r\nX-Big: %s\r\n\r\n' "$big" |
    raw --tunnel upstream.test:8443 >"$TMP/r"
expect_in "$TMP/r" "HTTP/1.1 431" "40 kB header: 431"
{
    printf 'GET / HTTP/1.1\r\nHost: upstream.test\r\n'
    for i in $(seq 101); do printf 'X-H%d: v\r\n' "$i"; done
    printf '\r\n'
} | raw --tunnel upstream.test:8443 >"$TMP/r"
expect_in "$TMP/r" "HTTP/1.1 431" "101 headers: 431"
printf 'GET /%s HTTP/1.1\r\nHost: upstream.test\r\n\r\n' "$(head -c 9000 /dev/zero | tr '\0' a)" |
    raw --tunnel upstream.test:8443 >"$TMP/r"
expect_in "$TMP/r" "HTTP/1.1 414" "9 kB target: 414"
printf 'CONNECT upstream.test:8443 HTTP/1.1\r\nHost: upstream.test:8443\r\nX-Big: %s\r\n\r\n' "$big" |
    raw >"$TMP/r"
expect_in "$TMP/r" "HTTP/1.1 431" "40 kB CONNECT head: 431"
expect_upstream_silent "over-limit heads"

# 1024 connections are served; the next is closed at once; then room again.
/usr/bin/python3 - "$PORT" "$ADMIN_URL" >"$TMP/cap" <<'PY'
import resource, socket, sys, time, urllib.request
port, admin = int(sys.argv[1]), sys.argv[2]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(1024)]
time.sleep(0.5)
extra = socket.create_connection(("127.0.0.1", port)); extra.settimeout(5)
try: print("over the cap:", extra.recv(10) == b"" and "closed" or "open")
except socket.timeout: print("over the cap: open")
m = urllib.request.urlopen(admin + "/metrics").read().decode()
print([l for l in m.splitlines() if l.startswith("bottle_proxy_connections_refused_total")][0])
for s in socks[:10]: s.close()
time.sleep(0.5)
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(5)
s.sendall(b"GET http://unlisted.test/ HTTP/1.1\r\nHost: unlisted.test\r\n\r\n")
print("after:", s.recv(12).decode())
PY
expect_in "$TMP/cap" "over the cap: closed" "connection 1025 closed at once"
expect_in "$TMP/cap" "bottle_proxy_connections_refused_total 1" "metrics count the refusal"
expect_in "$TMP/cap" "after: HTTP/1.1 403" "served again once connections closed"
live_stop
finish
