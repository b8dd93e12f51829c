#!/usr/bin/env bash
# SIGTERM: listeners close at once, an in-flight response is finished, exit 0.
. "$(dirname "$0")/live.sh"

live_setup 19
live_start
seq 1 30 | sed 's/^/event /' >"$TMP/events"
live_upstream 8444 "sse:$TMP/events"

# A client that opens a tunnel and never starts TLS is dropped after the 10 s handshake timeout.
/usr/bin/python3 - "$PORT" >"$TMP/hs" 2>&1 <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
s.sendall(b"CONNECT upstream.test:8443 HTTP/1.1\r\nHost: upstream.test:8443\r\n\r\n")
t0 = time.time()
d = b""
while True:
    b = s.recv(100)
    if not b: break
    d += b
print(d.split(b"\r\n")[0].decode(), "closed after %d s" % round(time.time() - t0))
PY
expect_eq "$(cat "$TMP/hs")" "HTTP/1.1 200 Connection Established closed after 10 s" \
    "silent client dropped at the handshake timeout"
expect_eq "$(audit_last 'a["method"], a["reason"]')" "('CONNECT', 'TLS handshake timed out')" \
    "audit: handshake timeout"

# A streaming response in flight when SIGTERM arrives is finished.
curl -sS --max-time 20 -x "$PROXY_URL" --cacert "$BOTTLE_CA" -N \
    "https://upstream.test:8444/stream" >"$TMP/sse" 2>"$TMP/sse.err" &
CURL=$!
wait_line "$TMP/sse" "event 3" || not_ok "stream did not start" "$(cat "$TMP/sse.err")"
kill -TERM "$PROXY_PID"
sleep 0.3
pcurl "https://upstream.test:8443/late"
expect_eq "$CODE$CCODE" "000000" "new connections are refused after SIGTERM"
set +e
wait "$CURL"
rc=$?
set -e
expect_eq "$rc" 0 "the in-flight streaming response completed"
expect_in "$TMP/sse" "event 30" "all 30 events arrived"
for i in $(seq 50); do kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.1; done
live_stop
expect_eq "$(audit_last 'a["path"], a["status"]' req)" "('/stream', 200)" "the drained request was audited"
finish
