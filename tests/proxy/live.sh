# shellcheck shell=bash
# tests/proxy/live.sh - a running bottle-proxy in front of a recording HTTPS
# upstream in a network namespace, for the t01NN tests.
#
# Usage in a test (needs root for the namespace):
#     . "$(dirname "$0")/live.sh"
#     live_setup INDEX               # netns bdp-INDEX, test PKI, $CFG with upstream.test
#     live_routes 'PYTHON'           # optional: edit routes.json (j) before starting
#     live_secrets 'PYTHON'          # optional: edit secrets.json (j)
#     live_start [MODE]              # upstream (echo by default) and proxy; waits for both
#     ... curl -x "$PROXY_URL" --cacert "$BOTTLE_CA" https://upstream.test:8443/ ...
#     finish
#
# Builds on lib.sh (a valid base generation, jedit, remanifest, the secret
# values that must never be printed).  The upstream listens on
# 10.231.INDEX.2:8443 (TLS, leaf from the test CA) and :8080 (plain), both
# logging every byte received to $UPLOG; the generation gets a static host
# entry upstream.test -> 10.231.INDEX.2, allow_private for that /32 and the
# test CA as upstream-ca.pem.  Proxy: 127.0.0.1:$PORT (explicit), admin
# 127.0.0.1:$APORT; audit lines in $AUDIT, its stderr in $PERR.  Everything
# is torn down on exit.
. "$(dirname "$0")/lib.sh"

NETNS_SH="$SRC/tests/proxy/netns.sh"
UPSTREAM_PY="$SRC/tests/proxy/upstream.py"
SECRET_UP='upstream-VALUE-do-not-print-5d1e0a'
LIVE_PIDS=()
LIVE_NS=
LIVE_IDX=

live_cleanup() {
    local p
    for p in "${LIVE_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${LIVE_PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    if [ -n "$LIVE_NS" ]; then
        "$NETNS_SH" down "$LIVE_NS" "$LIVE_IDX" >/dev/null 2>&1 || true
    fi
}
trap 'live_cleanup; [ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"' EXIT

# live_setup INDEX: namespace, PKI, config (not started).
live_setup() {
    LIVE_IDX=$1
    LIVE_NS="bdp-$1"
    PORT=$((19100 + 2 * $1))
    APORT=$((PORT + 1))
    PROXY_URL="http://127.0.0.1:$PORT"
    ADMIN_URL="http://127.0.0.1:$APORT"
    # No pre-emptive "down": a namespace of that name belongs to a run in
    # progress (two runs of one test on one host collide; netns.sh says so).
    UP_IP=$("$NETNS_SH" up "$LIVE_NS" "$LIVE_IDX" 2>"$TMP/netns.err") || {
        LIVE_NS=
        not_ok "cannot create netns bdp-$1 (index in use by another run?)" "$(cat "$TMP/netns.err")"
        exit 1
    }
    "$SRC/tests/proxy/mkcerts.sh" "$TMP/uppki" upstream.test >/dev/null
    BOTTLE_CA="$TMP/pki/ca.pem"
    UPLOG="$TMP/upstream.log"
    AUDIT="$TMP/audit.jsonl"
    PERR="$TMP/proxy.err"
    : >"$UPLOG"
    fresh_cfg
    cp "$TMP/uppki/ca.pem" "$GEN/upstream-ca.pem"
    jedit "$GEN/routes.json" '
ip = "'"$UP_IP"'"
j["hosts"] = [{"name": "upstream.test", "ip": ip}]
j["dns"] = ip  # no lookup ever leaves for a real resolver: nothing answers there
j["allow_private"] = [ip + "/32"]
dlp = {"inbound": {"action": "off", "detectors": []},
       "outbound": {"action": "block", "detectors": ["known_secrets", "token_patterns"]}}
j["routes"].append({"auth": {"scheme": "Bearer", "token_ref": "UPSTREAM_TOKEN"}, "dlp": dlp,
                    "git_fetch": False, "host": "upstream.test", "matches": [],
                    "ports": [443, 8443, 8444], "role": None})
'
    jedit "$GEN/secrets.json" '
j["secrets"].append({"name": "UPSTREAM_TOKEN", "value": "'"$SECRET_UP"'", "hosts": ["upstream.test"]})'
    remanifest "$GEN"
}

# live_routes PYTHON / live_secrets PYTHON: edit the generation, re-manifest.
live_routes() {
    jedit "$GEN/routes.json" "$1"
    remanifest "$GEN"
}
live_secrets() {
    jedit "$GEN/secrets.json" "$1"
    remanifest "$GEN"
}

# route_of HOST: a python expression for the route dict of HOST in j.
route_of() { echo "[r for r in j['routes'] if r['host'] == '$1'][0]"; }

# wait_line FILE PATTERN: waits up to 10 s for a line matching PATTERN.
wait_line() {
    local i
    for i in $(seq 100); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# live_upstream PORT MODE [plain]: one more upstream in the namespace (TLS unless "plain").
live_upstream() {
    local tls=(--tls "$TMP/uppki/upstream.test.pem" "$TMP/uppki/upstream.test-key.pem")
    [ "${3:-}" != plain ] || tls=()
    "$NETNS_SH" exec "$LIVE_NS" /usr/bin/python3 "$UPSTREAM_PY" --listen "$UP_IP:$1" "${tls[@]}" \
        --log "$UPLOG" --mode "$2" >"$TMP/up$1.out" 2>"$TMP/up$1.err" &
    LIVE_PIDS+=($!)
    wait_line "$TMP/up$1.out" '^ready' || not_ok "upstream on $1 did not start" "$(cat "$TMP/up$1.err")"
}

# live_start [MODE]: starts the upstreams (TLS 443 and 8443, plain 8080) and the proxy.
live_start() {
    local mode=${1:-echo}
    live_upstream 443 "$mode"
    "$NETNS_SH" exec "$LIVE_NS" /usr/bin/python3 "$UPSTREAM_PY" --listen "$UP_IP:8443" \
        --tls "$TMP/uppki/upstream.test.pem" "$TMP/uppki/upstream.test-key.pem" \
        --log "$UPLOG" --mode "$mode" >"$TMP/up.out" 2>"$TMP/up.err" &
    LIVE_PIDS+=($!)
    "$NETNS_SH" exec "$LIVE_NS" /usr/bin/python3 "$UPSTREAM_PY" --listen "$UP_IP:8080" \
        --log "$UPLOG" --mode "$mode" >"$TMP/up80.out" 2>"$TMP/up80.err" &
    LIVE_PIDS+=($!)
    "$PROXY" --config "$CFG" --listen "127.0.0.1:$PORT" --admin "127.0.0.1:$APORT" ${PROXY_VERBOSE:+--verbose} \
        >"$AUDIT" 2>"$PERR" &
    PROXY_PID=$!
    LIVE_PIDS+=("$PROXY_PID")
    wait_line "$TMP/up.out" '^ready' || { not_ok "upstream did not start" "$(cat "$TMP/up.err")"; }
    wait_line "$TMP/up80.out" '^ready' || { not_ok "plain upstream did not start" "$(cat "$TMP/up80.err")"; }
    local i
    for i in $(seq 100); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$ADMIN_URL/healthz")" = 200 ] && return 0
        sleep 0.1
    done
    not_ok "proxy did not become healthy" "$(cat "$PERR")"
}

# pcurl ARGS...: curl through the proxy trusting the bottle CA; body in $TMP/out,
# status in $CODE, the CONNECT answer's status in $CCODE ("000" without
# one), curl's own stderr in $TMP/err.
pcurl() {
    set +e
    local w
    w=$(curl -sS -o "$TMP/out" -w '%{http_code} %{http_connect}' --max-time 20 -x "$PROXY_URL" \
        --cacert "$BOTTLE_CA" "$@" 2>"$TMP/err")
    RC=$?
    set -e
    CODE=${w% *}
    CCODE=${w#* }
}

# raw [--tunnel HOST:PORT [--sni NAME]] < BYTES: sends BYTES to the proxy
# (inside a bumped tunnel when --tunnel is given) and prints what comes back
# until the proxy closes (5 s at most).  "TLS-ERROR ..." when the handshake fails.
raw() { /usr/bin/python3 "$TMP/raw.py" "$PORT" "$BOTTLE_CA" "$@"; }
cat >"$TMP/raw.py" <<'PY'
import socket, ssl, sys, time
port, ca, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
tunnel = sni = None
while args:
    if args[0] == "--tunnel": tunnel = args[1]; args = args[2:]
    elif args[0] == "--sni": sni = args[1]; args = args[2:]
    else: sys.exit("raw: bad argument " + args[0])
data = sys.stdin.buffer.read()
s = socket.create_connection(("127.0.0.1", port), timeout=5)
out = sys.stdout.buffer
if tunnel:
    s.sendall(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (tunnel.encode(), tunnel.encode()))
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(1)
        if not b: break
        head += b
    if not head.startswith(b"HTTP/1.1 200"):
        out.write(head); out.flush(); sys.exit(0)
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    try:
        s = ctx.wrap_socket(s, server_hostname=sni or tunnel.rsplit(":", 1)[0])
    except (ssl.SSLError, OSError) as e:
        print("TLS-ERROR", e); sys.exit(0)
s.sendall(data)
deadline = time.time() + 5
try:
    while time.time() < deadline:
        b = s.recv(65536)
        if not b: break
        out.write(b)
except (socket.timeout, ssl.SSLError, OSError):
    pass
out.flush()
PY

# uplog_mark / uplog_since: what the upstream received after the mark.
uplog_mark() { UPLOG_MARK=$(stat -c %s "$UPLOG"); }
# upstream_auth MARK: the Authorization lines the upstreams received after
# byte MARK of the log (from `stat -c %s "$UPLOG"`), joined with ",", with
# the route's secret shown as SECRET_UP (never its value).  The agent's own
# view of an echo is redacted, so this is where injection is checked.
upstream_auth() {
    tail -c +$(($1 + 1)) "$UPLOG" | tr -d '\r' | grep -i '^authorization:' |
        sed "s|$SECRET_UP|SECRET_UP|g" | paste -sd, - || true
}
uplog_since() { tail -c +$((UPLOG_MARK + 1)) "$UPLOG"; }

# expect_upstream_silent what: nothing reached the upstream since the mark.
expect_upstream_silent() {
    sleep 0.2
    local got
    got=$(uplog_since)
    if [ -z "$got" ]; then ok "$1: upstream received nothing"; else
        not_ok "$1: upstream received bytes" "$(printf '%s' "$got" | head -c 600)"
    fi
}

# expect_status CODE what: $CODE from pcurl.
expect_status() { expect_eq "$CODE" "$1" "$2 (status $1)"; }

# audit_last PYEXPR [METHOD-FILTER]: evaluates PYEXPR (bound to a) on the last
# audit line; with "req", the last line that is not a CONNECT tunnel's.
audit_last() {
    sleep 0.1
    /usr/bin/python3 -c 'import json,sys
lines=[json.loads(l) for l in open(sys.argv[1]) if l.strip()]
if sys.argv[3] == "req": lines=[l for l in lines if l["method"] != "CONNECT"]
a=lines[-1]; print(eval(sys.argv[2]))' "$AUDIT" "$1" "${2:-all}"
}

# no_secret_anywhere what: no secret value on the proxy's stdout or stderr.
no_secret_anywhere() {
    local s bad=
    for s in "$SECRET_CLAUDE" "$SECRET_GITEA" "$SECRET_UP"; do
        grep -qiF -- "$s" "$AUDIT" "$PERR" && bad=$s
    done
    if [ -z "$bad" ]; then ok "$1: no secret value in the proxy's output"; else
        not_ok "$1: a secret value was printed by the proxy"
    fi
}

# reload_to PYTHON_ROUTES: a new generation gen-N from the current one with
# the routes edited, `current` flipped atomically (the pointer is the trigger).
N_GEN=1
new_generation() {
    N_GEN=$((N_GEN + 1))
    local g="$CFG/gen-$N_GEN"
    cp -a "$GEN" "$g"
    GEN=$g
    [ -z "${1:-}" ] || jedit "$g/routes.json" "$1"
    remanifest "$g"
}
flip_current() {
    printf '%s\n' "$(basename "$GEN")" >"$CFG/current.tmp"
    mv "$CFG/current.tmp" "$CFG/current"
}

# live_stop: SIGTERM to the proxy; it must exit 0 within the grace period,
# and its stderr must hold no sanitizer report.
live_stop() {
    kill -TERM "$PROXY_PID" 2>/dev/null || true
    local i rc=
    for i in $(seq 150); do
        kill -0 "$PROXY_PID" 2>/dev/null || break
        sleep 0.1
    done
    set +e
    wait "$PROXY_PID"
    rc=$?
    set -e
    expect_eq "$rc" 0 "proxy exits 0 on SIGTERM"
    if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$PERR"; then
        not_ok "sanitizer report on the proxy's stderr" "$(grep -A20 -E 'Sanitizer|runtime error' "$PERR" | head -40)"
    else
        ok "no sanitizer report"
    fi
}
