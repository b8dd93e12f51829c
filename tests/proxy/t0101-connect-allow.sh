#!/usr/bin/env bash
# CONNECT to an allowed route: bumped TLS, echo upstream reached with the normalised path.
. "$(dirname "$0")/live.sh"

live_setup 11
live_start

uplog_mark
pcurl "https://upstream.test:8443/a/./b/../x?q=1"
expect_rc 0 "curl through the proxy"
expect_status 200 "allowed request"
expect_eq "$(json 'j["path"]')" "/a/x?q=1" "upstream saw the normalised path and the query"
expect_eq "$(json 'j["method"]')" "GET" "method forwarded"
expect_eq "$(json 'j["sni"]')" "upstream.test" "upstream saw SNI upstream.test"
expect_eq "$(json 'j["alpn"]')" "http/1.1" "upstream negotiated http/1.1"
uplog_since >"$TMP/uplog.txt"
expect_in "$TMP/uplog.txt" "GET /a/x?q=1 HTTP/1.1" "upstream byte log has the normalised request line"
expect_in "$TMP/uplog.txt" "Host: upstream.test:8443" "Host names the CONNECT target"

expect_eq "$(audit_last 'a["decision"], a["method"], a["path"], a["route"], a["status"], a["target"], a["port"]' req)" \
    "('allow', 'GET', '/a/x', 'upstream.test', 200, 'upstream.test', 8443)" "audit line of the request"
hash=$(sed -n 's/^config-hash //p' "$GEN/MANIFEST")
expect_eq "$(audit_last 'a["config_hash"]' req)" "$hash" "audit names the config hash"

# Keep-alive: two requests on one tunnel, one upstream connection.
expect_eq "$(audit_last 'a["method"], a["decision"], a["reason"]')" \
    "('CONNECT', 'allow', 'tunnel closed')" "the tunnel has its own audit line"
curl -sS --max-time 20 -x "$PROXY_URL" --cacert "$BOTTLE_CA" -o "$TMP/one" -o "$TMP/two" \
    "https://upstream.test:8443/one" "https://upstream.test:8443/two" 2>"$TMP/err"
expect_eq "$(python3 -c 'import json,sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
print(a["path"], b["path"], a["conn"] == b["conn"])' "$TMP/one" "$TMP/two")" "/one /two True" \
    "two requests on one tunnel, one upstream connection"
# POST with a body, chunked upload, Expect: 100-continue.
head -c 200000 /dev/urandom | base64 -w0 >"$TMP/body"
pcurl -X POST --data-binary @"$TMP/body" -H 'Content-Type: application/octet-stream' \
    "https://upstream.test:8443/upload"
expect_status 200 "POST with a 270 kB body"
expect_eq "$(json 'j["body_len"]')" "$(stat -c %s "$TMP/body")" "upstream got the whole body"
expect_eq "$(json 'j["body_sha256"]')" "$(sha256sum <"$TMP/body" | cut -d' ' -f1)" "body intact"
pcurl -X POST -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/body" \
    "https://upstream.test:8443/chunked"
expect_status 200 "chunked upload"
expect_eq "$(json 'j["body_sha256"]')" "$(sha256sum <"$TMP/body" | cut -d' ' -f1)" "chunked body intact"
pcurl -X POST -H 'Expect: 100-continue' --data-binary @"$TMP/body" "https://upstream.test:8443/expect"
expect_status 200 "Expect: 100-continue"
expect_eq "$(json 'j["body_len"]')" "$(stat -c %s "$TMP/body")" "body after 100 Continue"

# Origin-form to the proxy itself: forwarded as https to port 443 of the route named by Host.
m=$(stat -c %s "$UPLOG")
set +e
CODE=$(curl -sS -o "$TMP/out" -w '%{http_code}' --max-time 20 -H 'Host: upstream.test' \
    -H 'Authorization: Bearer agent-x' "$PROXY_URL/v1/messages?beta=1" 2>"$TMP/err")
set -e
expect_eq "$CODE" 200 "origin-form request to the proxy (ANTHROPIC_BASE_URL style)"
expect_eq "$(json 'j["path"], j["sni"]')" "('/v1/messages?beta=1', 'upstream.test')" \
    "reached upstream.test:443 over TLS"
expect_eq "$(upstream_auth "$m")" "Authorization: Bearer SECRET_UP" \
    "route credential injected, the agent's dropped"
expect_eq "$(audit_last 'a["target"], a["port"], a["decision"]')" "('upstream.test', 443, 'allow')" \
    "audit: origin-form request"

# Absolute-form https:// without CONNECT (clients that send it): forwarded
# over TLS like origin-form, to the URL's port (443 when none is given).
m=$(stat -c %s "$UPLOG")
printf '%s\r\n' "GET https://upstream.test:8443/abs?q=1 HTTP/1.1" "Host: other.example" \
    "Authorization: Bearer agent-y" "Connection: close" "" | raw >"$TMP/out"
expect_in "$TMP/out" "HTTP/1.1 200" "absolute-form https:// to an allowed route: 200"
sed -n '/^{/,$p' "$TMP/out" >"$TMP/out.json"
expect_eq "$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["path"], j["sni"], [v for k, v in j["headers"] if k.lower() == "host"])' "$TMP/out.json")" \
    "/abs?q=1 upstream.test ['upstream.test:8443']" "absolute-form https://: over TLS to the URL's host, Host from the URL"
expect_eq "$(upstream_auth "$m")" "Authorization: Bearer SECRET_UP" \
    "absolute-form https://: route credential injected, the agent's dropped"
expect_eq "$(audit_last 'a["target"], a["port"], a["decision"]')" "('upstream.test', 8443, 'allow')" \
    "audit: absolute-form https request"
printf '%s\r\n' "GET https://upstream.test/abs HTTP/1.1" "Host: upstream.test" "Connection: close" "" |
    raw >"$TMP/out"
expect_in "$TMP/out" "HTTP/1.1 200" "absolute-form https:// without a port: 443"
printf '%s\r\n' "GET https://denied.example/x HTTP/1.1" "Host: denied.example" "Connection: close" "" |
    raw >"$TMP/out"
expect_in "$TMP/out" "HTTP/1.1 403" "absolute-form https:// to a host without a route: 403"

# Large responses, chunked and sized, through a reader that stalls first (backpressure).
live_upstream 8444 "chunked:$((24 << 20))"
/usr/bin/python3 - "$PORT" "$BOTTLE_CA" >"$TMP/big" <<'PY'
import socket, ssl, sys, time
port, ca = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=20)
s.sendall(b"CONNECT upstream.test:8444 HTTP/1.1\r\nHost: upstream.test:8444\r\n\r\n")
h = b""
while not h.endswith(b"\r\n\r\n"):
    h += s.recv(1)
t = ssl.create_default_context(cafile=ca).wrap_socket(s, server_hostname="upstream.test")
t.sendall(b"GET /big HTTP/1.1\r\nHost: upstream.test:8444\r\nConnection: close\r\n\r\n")
time.sleep(1.5)  # let every buffer on the way fill up
data = b""
while True:
    b = t.recv(1 << 20)
    if not b: break
    data += b
head, _, body = data.partition(b"\r\n\r\n")
# de-chunk
out, i = b"", 0
while True:
    j = body.index(b"\r\n", i); n = int(body[i:j], 16)
    if n == 0: break
    out += body[j + 2:j + 2 + n]; i = j + 2 + n + 2
print(head.split(b"\r\n")[0].decode(), len(out), out == b"x" * len(out))
PY
expect_eq "$(cat "$TMP/big")" "HTTP/1.1 200 OK $((24 << 20)) True" "24 MiB chunked response relayed intact after a stall"
rss=$(awk '/VmHWM/ {print $2}' /proc/$PROXY_PID/status)
echo "# proxy peak RSS after relaying 24 MiB: ${rss} kB (sanitizer builds inflate it)"

no_secret_anywhere "allow path"
live_stop
finish
