#!/usr/bin/env bash
# Admin endpoint (healthz, config-hash, metrics) and reloads: inotify on `current`,
# SIGHUP, a broken generation rejected while the old one keeps serving, a removed
# route denied at once, an open keep-alive tunnel not dropped.
. "$(dirname "$0")/live.sh"

live_setup 15
live_routes '
r = dict('"$(route_of upstream.test)"')
r["auth"] = None
r["host"] = "alt.upstream.test"
j["routes"].append(r)
j["hosts"].append({"name": "alt.upstream.test", "ip": j["hosts"][0]["ip"]})
'
live_start
hash1=$(sed -n 's/^config-hash //p' "$GEN/MANIFEST")

acurl() { curl -sS --max-time 5 -o "$TMP/out" -w '%{http_code}' "$ADMIN_URL$1" 2>"$TMP/err"; }
expect_eq "$(acurl /healthz)" 200 "healthz 200 once ready"
expect_eq "$(cat "$TMP/out")" "ok" "healthz says ok"
expect_eq "$(acurl /config-hash)" 200 "config-hash 200"
expect_eq "$(cat "$TMP/out")" "$hash1" "config-hash is the MANIFEST hash"
expect_eq "$(acurl /nope)" 404 "unknown admin path"
pcurl "https://upstream.test:8443/before"
expect_status 200 "request before any reload"
expect_eq "$(acurl /metrics)" 200 "metrics 200"
expect_in "$TMP/out" 'bottle_proxy_requests_total{decision="allow"} 1' "metrics: allowed requests"
expect_in "$TMP/out" "bottle_proxy_config_info{hash=\"$hash1\",generation=\"gen-1\"} 1" \
    "metrics: config info with the hash"
expect_in "$TMP/out" 'bottle_proxy_connections_open ' "metrics: open connections"
expect_in "$TMP/out" 'bottle_proxy_reloads_total{result="ok"} 0' "metrics: no reload yet"

pcurl "https://alt.upstream.test:8443/x"
expect_eq "$CCODE" 200 "alt.upstream.test is a route in gen-1 (CONNECT allowed)"

# A keep-alive tunnel that stays open across the reloads.
/usr/bin/python3 - "$PORT" "$BOTTLE_CA" "$TMP/go" >"$TMP/ka" 2>&1 <<'PY' &
import os, socket, ssl, sys, time
port, ca, go = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=20)
s.sendall(b"CONNECT upstream.test:8443 HTTP/1.1\r\nHost: upstream.test:8443\r\n\r\n")
h = b""
while not h.endswith(b"\r\n\r\n"):
    h += s.recv(1)
t = ssl.create_default_context(cafile=ca).wrap_socket(s, server_hostname="upstream.test")
f = t.makefile("rb")
def req(path):
    t.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: upstream.test:8443\r\n\r\n")
    status = f.readline().split()[1].decode()
    n = 0
    while True:
        l = f.readline()
        if l.lower().startswith(b"content-length:"): n = int(l.split(b":")[1])
        if l in (b"\r\n", b""): break
    f.read(n)
    print(path.decode(), status, flush=True)
req(b"/ka-1")
while not os.path.exists(go):
    time.sleep(0.05)
req(b"/ka-2")
PY
KA=$!
wait_line "$TMP/ka" "/ka-1" && ok "keep-alive client: first request done" || not_ok "keep-alive client" "$(cat "$TMP/ka")"

# An idle bumped tunnel to the route the reload removes: closed after a short grace.
/usr/bin/python3 - "$PORT" "$BOTTLE_CA" >"$TMP/gone" 2>&1 <<'PY' &
import socket, ssl, sys, time
port, ca = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=30)
s.sendall(b"CONNECT alt.upstream.test:8443 HTTP/1.1\r\nHost: alt.upstream.test:8443\r\n\r\n")
h = b""
while not h.endswith(b"\r\n\r\n"):
    h += s.recv(1)
t = ssl.create_default_context(cafile=ca).wrap_socket(s, server_hostname="alt.upstream.test")
print("open", flush=True)
t0 = time.time()
try:
    r = t.recv(100)
except Exception as e:
    r = e
print("closed after %.1f s: %r" % (time.time() - t0, r), flush=True)
PY
GONE=$!
wait_line "$TMP/gone" "^open" && ok "idle tunnel to alt.upstream.test open" || not_ok "idle tunnel" "$(cat "$TMP/gone")"

# Reload through inotify only: new generation, `current` flipped, no signal.
new_generation 'j["routes"] = [r for r in j["routes"] if r["host"] != "alt.upstream.test"]'
hash2=$(sed -n 's/^config-hash //p' "$GEN/MANIFEST")
flip_current
for i in $(seq 50); do [ "$(acurl /config-hash; cat "$TMP/out")" = "200$hash2" ] && break; sleep 0.1; done
expect_eq "$(cat "$TMP/out")" "$hash2" "inotify on current: the new hash is served"
pcurl "https://alt.upstream.test:8443/x"
expect_eq "$CCODE" 403 "the removed route is denied for new requests"
pcurl "https://upstream.test:8443/after"
expect_status 200 "a kept route still works"
wait "$GONE" || true
expect_in "$TMP/gone" "closed after" "the idle tunnel to the removed route was closed"
case "$(sed -n 's/^closed after \([0-9]*\)\..*/\1/p' "$TMP/gone")" in
2 | 3) ok "after the 2 s grace" ;;
*) not_ok "not closed after the 2 s grace" "$(cat "$TMP/gone")" ;;
esac
expect_in "$AUDIT" '"target":"alt.upstream.test","port":8443,"method":"CONNECT","path":null,"route":"alt.upstream.test","decision":"allow","reason":"route removed by a reload"' \
    "the tunnel's audit line says why it ended"

# Reload through SIGHUP only: the generation `current` names changes in place.
jedit "$GEN/routes.json" 'j["routes"] = [r for r in j["routes"] if r["host"] != "pypi.org"]'
remanifest "$GEN"
hash3=$(sed -n 's/^config-hash //p' "$GEN/MANIFEST")
sleep 0.3
expect_eq "$(acurl /config-hash; cat "$TMP/out")" "200$hash2" "no reload without a trigger"
kill -HUP "$PROXY_PID"
for i in $(seq 50); do [ "$(acurl /config-hash; cat "$TMP/out")" = "200$hash3" ] && break; sleep 0.1; done
expect_eq "$(cat "$TMP/out")" "$hash3" "SIGHUP: the new hash is served"

# A broken generation is rejected; the old one keeps serving.
new_generation 'j["routes"] = []'
echo tampered >>"$GEN/routes.json"
lines_before=$(wc -l <"$PERR")
flip_current
kill -HUP "$PROXY_PID"
sleep 0.5
expect_eq "$(acurl /config-hash; cat "$TMP/out")" "200$hash3" "broken generation: old hash still served"
tail -n +$((lines_before + 1)) "$PERR" >"$TMP/newerr"
expect_in "$TMP/newerr" "rejected" "the rejection is logged"
expect_in "$TMP/newerr" "routes.json" "the log line names the file"
pcurl "https://upstream.test:8443/still"
expect_status 200 "old config still serves requests"
acurl /metrics >/dev/null
expect_in "$TMP/out" 'bottle_proxy_reloads_total{result="ok"} 2' "metrics: two reloads ok"
expect_in "$TMP/out" 'bottle_proxy_reloads_total{result="failed"} 2' \
    "metrics: the broken generation failed (inotify and SIGHUP)"

# The keep-alive tunnel opened before all of this still works.
touch "$TMP/go"
wait "$KA" || true
expect_in "$TMP/ka" "/ka-2 200" "in-flight keep-alive tunnel survived three reloads"
no_secret_anywhere "reload"
live_stop
finish
