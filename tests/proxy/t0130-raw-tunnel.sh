#!/usr/bin/env bash
# The raw tunnel (routes.json "tunnels") with `bottle-proxy connect`: with the
# right token a plain TCP upstream is reached un-bumped and bytes flow both
# ways, half-close included; a wrong or missing token, another port, or the
# agent's own CONNECT gets 403 and nothing is dialled; the token is never in
# argv nor in the proxy's output; normal routes are still bumped; a reload
# that removes the entry closes an open tunnel after the 2 s grace.
. "$(dirname "$0")/live.sh"

live_setup 63
TOKEN='tunnel-TOKEN-do-not-print-93c1e7'
TOKEN_SHA=$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)
printf '%s\n' "$TOKEN" >"$TMP/token"
chmod 600 "$TMP/token"
printf 'not-the-token-4e2a\n' >"$TMP/wrong"
chmod 600 "$TMP/wrong"
live_routes '
ip = j["hosts"][0]["ip"]
j["hosts"] += [{"name": "git.test", "ip": ip}, {"name": "lo.git.test", "ip": "127.0.0.1"}]
j["tunnels"] = [{"host": "git.test", "port": 2222, "token_sha256": "'"$TOKEN_SHA"'"},
                {"host": "lo.git.test", "port": 2222, "token_sha256": "'"$TOKEN_SHA"'"}]
'

# A plain TCP upstream: echoes what it gets; on the client's EOF it sends
# "EOF after N bytes sha256 H" and closes.  Logs each connection.
cat >"$TMP/tcpecho.py" <<'PY'
import hashlib, socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
print("ready", flush=True)
def serve(c, a):
    print("ACCEPTED", flush=True)
    h, n = hashlib.sha256(), 0
    while True:
        b = c.recv(65536)
        if not b: break
        h.update(b); n += len(b)
        c.sendall(b)
    c.sendall(b"EOF after %d bytes sha256 %s\n" % (n, h.hexdigest().encode()))
    c.close()
while True:
    c, a = s.accept()
    threading.Thread(target=serve, args=(c, a), daemon=True).start()
PY
"$NETNS_SH" exec "$LIVE_NS" /usr/bin/python3 "$TMP/tcpecho.py" "$UP_IP" 2222 >"$TMP/echo.out" 2>&1 &
LIVE_PIDS+=($!)
wait_line "$TMP/echo.out" ready || not_ok "tcp echo upstream did not start" "$(cat "$TMP/echo.out")"
live_start
P="127.0.0.1:$PORT"

run "$PROXY" --check-config "$CFG" --json
expect_rc 0 "the generation with tunnels is valid"
expect_eq "$(json 'j["tunnels"]')" 2 "--check-config --json counts the tunnels"

# connect: with the token, a half-close round trip (stdin EOF -> SHUT_WR, reading goes on).
set +e
printf 'hello through the tunnel\n' |
    "$PROXY" connect --proxy "$P" --token-file "$TMP/token" git.test 2222 >"$TMP/out" 2>"$TMP/err"
RC=$?
set -e
expect_rc 0 "connect with the token"
expect_eq "$(cat "$TMP/out")" "hello through the tunnel
EOF after 25 bytes sha256 $(printf 'hello through the tunnel\n' | sha256sum | cut -d' ' -f1)" \
    "echoed, then the upstream saw stdin's EOF and its last words still arrived"
expect_eq "$(audit_last 'a["method"], a["target"], a["port"], a["route"], a["decision"], a["reason"], a["status"]')" \
    "('CONNECT', 'git.test', 2222, None, 'allow', 'raw tunnel closed', 200)" "audit: one line for the raw tunnel"
expect_eq "$(audit_last 'a["bytes_out"] > 25 + 80 and a["bytes_in"] > 25')" True "audit: bytes counted both ways"

# 6 MiB each way through a reader that is slow at first (backpressure), intact.
head -c $((6 << 20)) /dev/urandom >"$TMP/big"
/usr/bin/python3 - "$PROXY" "$P" "$TMP/token" "$TMP/big" >"$TMP/bigres" 2>&1 <<'PY'
import hashlib, subprocess, sys, threading, time
proxy, p, tok, big = sys.argv[1:5]
data = open(big, "rb").read()
c = subprocess.Popen([proxy, "connect", "--proxy", p, "--token-file", tok, "git.test", "2222"],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
def feed():
    c.stdin.write(data); c.stdin.close()
t = threading.Thread(target=feed); t.start()
time.sleep(1.5)
out = c.stdout.read()
t.join(); rc = c.wait()
echo, tail = out[:len(data)], out[len(data):]
print(rc, echo == data, tail.decode().strip() == "EOF after %d bytes sha256 %s" % (len(data), hashlib.sha256(data).hexdigest()))
PY
expect_eq "$(cat "$TMP/bigres")" "0 True True" "6 MiB both ways after a stall, intact, then the EOF trailer"

# Interactive: the connect process holds the tunnel; its argv and environment hold no token.
/usr/bin/python3 - "$PROXY" "$P" "$TMP/token" "$TOKEN" >"$TMP/inter" 2>&1 <<'PY'
import os, subprocess, sys
proxy, p, tok, secret = sys.argv[1:5]
c = subprocess.Popen([proxy, "connect", "--proxy", p, "--token-file", tok, "git.test", "2222"],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
c.stdin.write(b"ping\n"); c.stdin.flush()
print("echo1", c.stdout.readline().decode().strip())
cmd = open("/proc/%d/cmdline" % c.pid, "rb").read()
env = open("/proc/%d/environ" % c.pid, "rb").read()
ps = subprocess.run(["ps", "-ww", "-o", "args=", "-p", str(c.pid)], capture_output=True).stdout
print("argv-has-token", secret.encode() in cmd or secret.encode() in ps or secret.encode() in env)
print("argv-names-file", tok.encode() in cmd)
c.stdin.write(b"pong\n"); c.stdin.flush()
print("echo2", c.stdout.readline().decode().strip())
c.stdin.close()
print("tail", c.stdout.readline().decode().split(" sha256")[0])
print("rc", c.wait())
PY
expect_eq "$(cat "$TMP/inter")" "echo1 ping
argv-has-token False
argv-names-file True
echo2 pong
tail EOF after 10 bytes
rc 0" "interactive both ways; the token is in neither /proc/PID/cmdline, ps nor the environment"

# connect's own errors: usage and token file 2, no proxy 1; never the token on stderr.
run "$PROXY" connect --token "$TOKEN" git.test 2222
expect_rc 2 "a token on the command line is refused"
expect_in "$TMP/err" "use --token-file FILE" "says to use --token-file"
printf 'two words\n' >"$TMP/spacey"
run "$PROXY" connect --proxy "$P" --token-file "$TMP/spacey" git.test 2222
expect_rc 2 "a token file holding a space"
expect_not_in "$TMP/err" "two words" "the bad token is not echoed"
run "$PROXY" connect --proxy "$P" --token-file "$TMP/missing" git.test 2222
expect_rc 2 "a missing token file"
run "$PROXY" connect --proxy "$P" git.test 0
expect_rc 2 "port 0"
run "$PROXY" connect --proxy "$P" git.test
expect_rc 2 "no port"
run "$PROXY" connect --proxy 127.0.0.1:1 --token-file "$TMP/token" git.test 2222
expect_rc 1 "no proxy listening"
expect_in "$TMP/err" "cannot connect to the proxy 127.0.0.1:1" "says so"
run "$PROXY" connect --help
expect_in "$TMP/out" "usage: bottle-proxy connect" "connect --help"

accepted() { grep -c ACCEPTED "$TMP/echo.out" || true; }
# refused WHAT EXPECTED-REASON ARGS...: connect exits 1 with the 403 on stderr, nothing dialled.
refused() {
    local what=$1 reason=$2 before
    shift 2
    before=$(accepted)
    set +e
    "$PROXY" connect --proxy "$P" "$@" </dev/null >"$TMP/out" 2>"$TMP/err"
    RC=$?
    set -e
    expect_rc 1 "$what"
    expect_in "$TMP/err" "proxy refused the tunnel: HTTP/1.1 403 Forbidden" "$what: status line on stderr"
    expect_in "$TMP/err" "$reason" "$what: reason '$reason'"
    [ -s "$TMP/out" ] && not_ok "$what: nothing on stdout" "$(head -c 300 "$TMP/out")" || ok "$what: nothing on stdout"
    sleep 0.2
    expect_eq "$(accepted)" "$before" "$what: the upstream was not dialled"
}
refused "wrong token" "raw tunnel refused: wrong token" --token-file "$TMP/wrong" git.test 2222
expect_in "$PERR" "raw tunnel to git.test:2222 refused for 127.0.0.1:" "wrong token: a log line on the proxy's stderr"
expect_eq "$(audit_last 'a["method"], a["decision"], a["status"], a["reason"]')" \
    "('CONNECT', 'deny', 403, 'raw tunnel refused: wrong token')" "wrong token: audit line"
refused "no token" "raw tunnel refused: no token" git.test 2222
refused "the tunnel host on another port" "no route for host" --token-file "$TMP/token" git.test 2223
refused "the token to a route host (no tunnel entry there)" "port not allowed for host" \
    --token-file "$TMP/token" upstream.test 2222

# The agent's own CONNECT to the upstream's SSH port (no token): 403, like any unrouted target.
raw --tunnel git.test:2222 </dev/null >"$TMP/agent"
expect_in "$TMP/agent" "HTTP/1.1 403 Forbidden" "the agent's CONNECT git.test:2222 through the proxy gets 403"
/usr/bin/python3 - "$PORT" >"$TMP/agent2" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"CONNECT git.test:2222 HTTP/1.1\r\nHost: git.test:2222\r\n"
          b"Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n")
print(s.recv(200).split(b"\r\n")[0].decode())
PY
expect_eq "$(cat "$TMP/agent2")" "HTTP/1.1 403 Forbidden" "a Basic credential is no token: 403"
/usr/bin/python3 - "$PORT" "$TOKEN" >"$TMP/agent3" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
t = sys.argv[2].encode()
s.sendall(b"CONNECT git.test:2222 HTTP/1.1\r\nHost: git.test:2222\r\n"
          b"Proxy-Authorization: Bearer " + t + b"\r\nProxy-Authorization: Bearer x" + t + b"\r\n\r\n")
print(s.recv(200).split(b"\r\n")[0].decode())
PY
expect_eq "$(cat "$TMP/agent3")" "HTTP/1.1 403 Forbidden" "two Proxy-Authorization fields: 403"
pcurl "http://git.test:2222/"
expect_status 403 "absolute-form http:// to the tunnel host and port: 403"
sleep 0.2
expect_eq "$(accepted)" 3 "no refused attempt reached the upstream (3 tunnels so far)"

# The address policy applies to tunnels: an entry resolving to loopback is refused.
refused "tunnel entry resolving to loopback" "destination address refused: loopback" \
    --token-file "$TMP/token" lo.git.test 2222

# A normal route is still bumped: the bottle CA's leaf, the request seen in clear text.
pcurl "https://upstream.test:8443/bumped"
expect_status 200 "a route CONNECT still works"
expect_eq "$(json 'j["path"]')" "/bumped" "and is bumped: the proxy read and forwarded the request"
curl -sS -o /dev/null --max-time 10 -x "$PROXY_URL" --cacert "$BOTTLE_CA" -w '%{certs}' \
    "https://upstream.test:8443/c" 2>/dev/null >"$TMP/certs" || true
expect_in "$TMP/certs" "Issuer:CN = bottle-test-ca" "the agent sees a leaf issued by the bottle CA"

# A tunnel entry and a route on the same host and port: without a token the
# route decides (bumped as usual); with the token it is raw (the agent sees the
# upstream's own certificate); with a wrong token it is 403 all the same.
"$SRC/tests/proxy/mkcerts.sh" "$TMP/uppki" git.test >/dev/null
"$NETNS_SH" exec "$LIVE_NS" /usr/bin/python3 "$UPSTREAM_PY" --listen "$UP_IP:8445" \
    --tls "$TMP/uppki/git.test.pem" "$TMP/uppki/git.test-key.pem" --log "$UPLOG" --mode echo \
    >"$TMP/up8445.out" 2>"$TMP/up8445.err" &
LIVE_PIDS+=($!)
wait_line "$TMP/up8445.out" '^ready' || not_ok "upstream on 8445" "$(cat "$TMP/up8445.err")"
new_generation '
r = dict('"$(route_of upstream.test)"'); r["auth"] = None; r["host"] = "git.test"; r["ports"] = [8445]
j["routes"].append(r)
j["tunnels"].append({"host": "git.test", "port": 8445, "token_sha256": "'"$TOKEN_SHA"'"})
'
flip_current
for _ in $(seq 50); do
    [ "$(curl -s "$ADMIN_URL/config-hash")" = "$(sed -n 's/^config-hash //p' "$GEN/MANIFEST")" ] && break
    sleep 0.1
done
pcurl "https://git.test:8445/no-token"
expect_status 200 "route + tunnel entry, no token: the route allows it"
curl -sS -o /dev/null --max-time 10 -x "$PROXY_URL" --cacert "$BOTTLE_CA" -w '%{certs}' \
    "https://git.test:8445/c" 2>/dev/null >"$TMP/certs" || true
expect_in "$TMP/certs" "Issuer:CN = bottle-test-ca" "no token: bumped, a leaf from the bottle CA"
set +e
curl -sS -o "$TMP/out" --max-time 10 -x "$PROXY_URL" --proxy-header "Proxy-Authorization: Bearer $TOKEN" \
    --cacert "$TMP/uppki/ca.pem" -w '%{certs}' "https://git.test:8445/raw" >"$TMP/certs" 2>"$TMP/err"
RC=$?
set -e
expect_rc 0 "with the token: curl verifies the upstream's own certificate end to end"
expect_not_in "$TMP/certs" "bottle-test-ca" "with the token: not bumped"
expect_eq "$(json 'j["path"]')" "/raw" "with the token: the request reached the upstream as sent"
pcurl --proxy-header "Proxy-Authorization: Bearer not-$TOKEN" "https://git.test:8445/wrong"
expect_eq "$CCODE" 403 "route + tunnel entry, wrong token: 403 even though a route allows it"

# Reload: an open tunnel survives a reload that keeps its entry, and is closed
# 2 s after the reload that removes it; new CONNECTs are then refused.
mkfifo "$TMP/hold.in"
cat >"$TMP/hold.py" <<'PY'
import subprocess, sys, time
proxy, p, tok = sys.argv[1:4]
c = subprocess.Popen([proxy, "connect", "--proxy", p, "--token-file", tok, "git.test", "2222"],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
c.stdin.write(b"one\n"); c.stdin.flush()
print("open", c.stdout.readline().decode().strip(), flush=True)
sys.stdin.readline()  # the test says when the first reload is served
c.stdin.write(b"two\n"); c.stdin.flush()
print("after-keep", c.stdout.readline().decode().strip(), flush=True)
t0 = float(sys.stdin.readline())  # the time of the second reload's flip
rest = c.stdout.read()  # the proxy closed the tunnel: connect closes stdout
took = time.time() - t0
c.stdin.close()  # like ssh on the EOF: then connect exits
print("closed after %.1f s: %r rc %d" % (took, rest, c.wait()), flush=True)
PY
/usr/bin/python3 "$TMP/hold.py" "$PROXY" "$P" "$TMP/token" <"$TMP/hold.in" >"$TMP/hold" 2>&1 &
HOLD=$!
exec 7>"$TMP/hold.in"
wait_line "$TMP/hold" "^open one" && ok "a tunnel is open" || not_ok "tunnel open" "$(cat "$TMP/hold")"
serve_hash() { # waits until the admin endpoint serves $GEN's hash
    local h i
    h=$(sed -n 's/^config-hash //p' "$GEN/MANIFEST")
    for i in $(seq 50); do
        [ "$(curl -s "$ADMIN_URL/config-hash")" = "$h" ] && return 0
        sleep 0.1
    done
    return 1
}
new_generation 'j["routes"] = [r for r in j["routes"] if r["host"] != "pypi.org"]'
flip_current
serve_hash && ok "reload 1 (entry kept) served" || not_ok "reload 1 served" "$(tail -3 "$PERR")"
sleep 2.5
echo go >&7
wait_line "$TMP/hold" "^after-keep two" && ok "the tunnel still relays 2.5 s after a reload that kept its entry" ||
    not_ok "tunnel kept across reload" "$(cat "$TMP/hold")"
# A busy tunnel too: bytes every 100 ms do not extend the grace.
cat >"$TMP/busy.py" <<'PY'
import subprocess, sys, threading, time
proxy, p, tok = sys.argv[1:4]
c = subprocess.Popen([proxy, "connect", "--proxy", p, "--token-file", tok, "git.test", "2222"],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
def feed():
    try:
        while True:
            c.stdin.write(b"x\n"); c.stdin.flush(); time.sleep(0.1)
    except OSError:
        pass
threading.Thread(target=feed, daemon=True).start()
threading.Timer(12, c.kill).start()  # bounded: a tunnel left open fails the check, not the run
print("open", c.stdout.readline().decode().strip(), flush=True)
n = 0
while c.stdout.readline():
    n += 1
print("closed-at %.3f after %d echoes" % (time.time(), n), flush=True)
c.kill()
PY
/usr/bin/python3 "$TMP/busy.py" "$PROXY" "$P" "$TMP/token" >"$TMP/busy" 2>&1 &
BUSY=$!
wait_line "$TMP/busy" "^open x" && ok "a busy tunnel is open" || not_ok "busy tunnel" "$(cat "$TMP/busy")"
new_generation 'j["tunnels"] = [t for t in j["tunnels"] if t["host"] != "git.test"]
j["routes"] = [r for r in j["routes"] if r["host"] != "git.test"]'
T_FLIP=$(date +%s.%N)
echo "$T_FLIP" >&7
flip_current
serve_hash && ok "reload 2 (entry removed) served" || not_ok "reload 2 served" "$(tail -3 "$PERR")"
exec 7>&-
wait "$HOLD" || true
case "$(sed -n 's/^closed after \([0-9]*\)\..*/\1/p' "$TMP/hold")" in
2 | 3) ok "the tunnel whose entry is gone was closed after the 2 s grace" ;;
*) not_ok "closed after the 2 s grace" "$(cat "$TMP/hold")" ;;
esac
wait "$BUSY" || true
expect_eq "$(python3 -c 'import sys
at = float(sys.argv[1].split()[1]); print(int(at - float(sys.argv[2])))' "$(grep closed-at "$TMP/busy")" "$T_FLIP")" 2 \
    "the busy tunnel was closed after the same 2 s grace"
expect_in "$AUDIT" '"target":"git.test","port":2222,"method":"CONNECT","path":null,"route":null,"decision":"allow","reason":"raw tunnel entry removed by a reload"' \
    "the tunnel's audit line says why it ended"
refused "the token after the entry is gone" "no route for host" --token-file "$TMP/token" git.test 2222

# A token changed by a reload also ends the open tunnels of the old one (covered by
# tunnel_kept) and the old token no longer opens one.
new_generation 'j["tunnels"] = [{"host": "git.test", "port": 2222, "token_sha256": "'"$(printf 'new' | sha256sum | cut -d' ' -f1)"'"}]'
flip_current
serve_hash || not_ok "reload 3 served"
refused "the old token after rotation" "raw tunnel refused: wrong token" --token-file "$TMP/token" git.test 2222

for f in "$AUDIT" "$PERR"; do
    if grep -qF -- "$TOKEN" "$f"; then not_ok "the token is not in $(basename "$f")"; else
        ok "the token is not in $(basename "$f")"
    fi
done
no_secret_anywhere "raw tunnels"
live_stop
finish
