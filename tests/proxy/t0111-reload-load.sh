#!/usr/bin/env bash
# Reload under load: requests keep flowing (keep-alive tunnels and fresh connections)
# while the routes change 20 times; none fails, and a removed route is refused at once.
. "$(dirname "$0")/live.sh"

live_setup 21
live_routes '
r = dict('"$(route_of upstream.test)"')
r["auth"] = None
r["host"] = "alt.upstream.test"
j["routes"].append(r)
j["hosts"].append({"name": "alt.upstream.test", "ip": j["hosts"][0]["ip"]})
'
live_start

# Four clients: two on keep-alive tunnels, two opening a connection per request.
/usr/bin/python3 - "$PORT" "$BOTTLE_CA" "$TMP/stop" >"$TMP/load" 2>&1 <<'PY' &
import os, socket, ssl, sys, threading
port, ca, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
ok = fail = 0
lock = threading.Lock()
def tunnel():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"CONNECT upstream.test:8443 HTTP/1.1\r\nHost: upstream.test:8443\r\n\r\n")
    h = b""
    while not h.endswith(b"\r\n\r\n"):
        h += s.recv(1)
    t = ctx.wrap_socket(s, server_hostname="upstream.test")
    return t, t.makefile("rb")
def one(t, f, i):
    t.sendall(b"GET /load/%d HTTP/1.1\r\nHost: upstream.test:8443\r\n\r\n" % i)
    status = f.readline().split()[1]
    n = 0
    while True:
        l = f.readline()
        if l.lower().startswith(b"content-length:"): n = int(l.split(b":")[1])
        if l in (b"\r\n", b""): break
    f.read(n)
    return status == b"200"
def worker(keep):
    global ok, fail
    i = 0
    t = f = None
    while not os.path.exists(stop):
        i += 1
        try:
            if t is None: t, f = tunnel()
            good = one(t, f, i)
        except Exception as e:
            good = False
            print("error:", repr(e), flush=True)
        if not keep or not good:
            try: t.close()
            except Exception: pass
            t = None
        with lock:
            if good: ok += 1
            else: fail += 1
ths = [threading.Thread(target=worker, args=(k,)) for k in (True, True, False, False)]
for th in ths: th.start()
for th in ths: th.join()
print("ok", ok, "failed", fail)
PY
LOAD=$!
sleep 0.5
denied=0
for n in $(seq 20); do
    if [ $((n % 2)) = 1 ]; then
        new_generation 'j["routes"] = [r for r in j["routes"] if r["host"] != "alt.upstream.test"]'
    else
        new_generation '
r = dict([r for r in j["routes"] if r["host"] == "upstream.test"][0])
r["auth"] = None
r["host"] = "alt.upstream.test"
j["routes"].append(r)
'
    fi
    want=$(sed -n 's/^config-hash //p' "$GEN/MANIFEST")
    flip_current
    kill -HUP "$PROXY_PID"
    for i in $(seq 50); do
        [ "$(curl -s --max-time 2 "$ADMIN_URL/config-hash")" = "$want" ] && break
        sleep 0.05
    done
    if [ $((n % 2)) = 1 ]; then
        pcurl "https://alt.upstream.test:8443/x"
        [ "$CCODE" = 403 ] && denied=$((denied + 1))
    fi
    sleep 0.1
done
touch "$TMP/stop"
wait "$LOAD" || true
expect_eq "$denied" 10 "a removed route was refused right after each of the 10 removals"
expect_eq "$(grep -o 'failed [0-9]*' "$TMP/load")" "failed 0" "no request failed during 20 reloads"
n_ok=$(sed -n 's/^ok \([0-9]*\).*/\1/p' "$TMP/load")
if [ "${n_ok:-0}" -gt 100 ]; then ok "requests kept flowing ($n_ok answered)"; else
    not_ok "too few requests answered" "$(cat "$TMP/load")"
fi
expect_eq "$(grep -c 'serving config' "$PERR")" 21 "start plus 20 reloads logged"
live_stop
finish
