# shellcheck shell=bash
# tests/gate/lib.sh - the git gate against a real sshd upstream, for tNNNN-*.sh here.
#
# Builds on tests/proxy/live.sh (a running sidecar, a network namespace,
# tests/proxy/lib.sh and tests/cli/lib.sh): the tests here source live.sh,
# which sources this file as its lib.sh, so the proxy's harness comes first.
#
#   gate_upstream_setup       (before live_start) sshd (openssh-server) in the namespace on
#                             $UP_IP:2222, root's authorized_keys = $TMP/gate/keys/proj.pub,
#                             bare upstream $UPREPO with one commit on main;
#                             the sidecar gets a raw tunnel to git.test:2222
#   gate_config [HOST_KEY]    writes $GATECFG (default host key: the sshd's)
#   gate_start / gate_stop    `bottle-proxy gate` on 127.0.0.1:$GPORT (more options in
#                             $GATE_ARGS), stderr in $GERR
#   agent_git ARGS...         git as the agent: no global config, identity set
. "$(dirname "$0")/../proxy/lib.sh"
. "$(dirname "$0")/sshd.sh"

# values the tests put into pushes and check never come out again (used by the tests)
# shellcheck disable=SC2034
GATE_TOKEN='gate-tunnel-TOKEN-do-not-print-61d0'
# shellcheck disable=SC2034
SECRET_AWS='AKIAZ7QX4MRWJ3NVKD2P'
# shellcheck disable=SC2034
SECRET_GH='ghp_R8wq2LmVn5Xc7Tz1Kp9Yb3Hd6Fg4Js0Ae2Uq'

agent_git() {
    GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_AUTHOR_NAME=agent \
        GIT_AUTHOR_EMAIL=agent@bottle GIT_COMMITTER_NAME=agent GIT_COMMITTER_EMAIL=agent@bottle \
        git -c init.defaultBranch=main -c advice.detachedHead=false "$@"
}

# up_git ARGS...: git in the upstream bare repository.
up_git() { git --git-dir="$UPREPO" "$@"; }

gate_upstream_setup() {
    local d=$TMP/sshd
    mkdir -p "$d" "$TMP/gate/keys" "$TMP/up"
    chmod 700 "$TMP/gate" "$TMP/gate/keys"
    ssh-keygen -q -t ed25519 -N '' -C gate-host-key -f "$d/host_ed25519"
    ssh-keygen -q -t ed25519 -N '' -C other-host-key -f "$d/other_ed25519"
    ssh-keygen -q -t ed25519 -N '' -C bottled-gate-key -f "$TMP/gate/keys/proj"
    ssh-keygen -q -t ed25519 -N '' -C not-registered -f "$TMP/wrongkey"
    cp "$TMP/gate/keys/proj.pub" "$d/authorized_keys"
    rm -f "$TMP/gate/keys/proj.pub"
    UPREPO=$TMP/up/proj.git
    git init -q --bare -b main "$UPREPO"
    git --git-dir="$UPREPO" config receive.denyNonFastForwards true
    local w=$TMP/seed
    agent_git init -q "$w"
    echo "hello from upstream" >"$w/README"
    agent_git -C "$w" add README
    agent_git -C "$w" commit -q -m "upstream: first commit"
    agent_git -C "$w" push -q "$UPREPO" main
    printf '%s\n' "$GATE_TOKEN" >"$TMP/gate/token"
    chmod 600 "$TMP/gate/token"
    local sum
    sum=$(printf '%s' "$GATE_TOKEN" | sha256sum | cut -d' ' -f1)
    live_routes '
j["hosts"] += [{"name": "git.test", "ip": "'"$UP_IP"'"}]
j["tunnels"] = [{"host": "git.test", "port": 2222, "token_sha256": "'"$sum"'"}]'
    sshd_start host_ed25519
}

# sshd_start HOSTKEY-NAME: (re)starts the upstream sshd with that host key.
sshd_start() {
    local d=$TMP/sshd
    [ -z "${SSHD_PID:-}" ] || { kill "$SSHD_PID" 2>/dev/null; wait "$SSHD_PID" 2>/dev/null || true; }
    sshd_config "$d" "$UP_IP:2222" "$1" >"$d/sshd_config"
    mkdir -p /run/sshd
    "$NETNS_SH" exec "$LIVE_NS" /usr/sbin/sshd -D -e -f "$d/sshd_config" 2>>"$d/sshd.log" &
    SSHD_PID=$!
    LIVE_PIDS+=("$SSHD_PID")
    local _
    for _ in $(seq 50); do
        grep -q "Server listening" "$d/sshd.log" 2>/dev/null && [ "$(grep -c "Server listening" "$d/sshd.log")" -ge "${SSHD_STARTS:-1}" ] && break
        sleep 0.1
    done
    SSHD_STARTS=$((${SSHD_STARTS:-1} + 1))
}

host_key_of() { cut -d' ' -f1,2 "$TMP/sshd/$1.pub"; }

# gate_config [HOST_KEY]: the gate's config.json (HOST_KEY "" = learn on first use).
gate_config() {
    local key=${1-$(host_key_of host_ed25519)}
    GATECFG=$TMP/gate/config.json
    /usr/bin/python3 - "$GATECFG" "$PORT" "$UPREPO" "$key" "${GATE_EXTRA:-}" <<'PY'
import json, sys
path, port, uprepo, key, extra = sys.argv[1:6]
c = {"proxy": "127.0.0.1:" + port,
     "repos": [{"name": "proj", "url": "ssh://root@git.test:2222" + uprepo,
                "host": "git.test", "port": 2222, "host_key": key}]}
if extra:
    c.update(json.loads(extra))
open(path, "w").write(json.dumps(c))
PY
    chmod 600 "$GATECFG"
}

gate_start() {
    GPORT=${GPORT:-$((PORT + 40))}
    GERR=$TMP/gate.err
    GROOT=$TMP/srv
    local n0
    n0=$(grep -c "serving" "$GERR" 2>/dev/null || true)
    # shellcheck disable=SC2086 # GATE_ARGS: more options, split
    "$PROXY" gate --config "$GATECFG" --root "$GROOT" --listen "127.0.0.1:$GPORT" ${GATE_ARGS:-} 2>>"$GERR" &
    GATE_PID=$!
    LIVE_PIDS+=("$GATE_PID")
    local _
    for _ in $(seq 100); do
        [ "$(grep -c "serving" "$GERR" 2>/dev/null || true)" -gt "${n0:-0}" ] && return 0
        kill -0 "$GATE_PID" 2>/dev/null || break
        sleep 0.1
    done
    not_ok "the gate started" "$(cat "$GERR")"
    return 1
}

gate_stop() {
    kill "$GATE_PID" 2>/dev/null || true
    wait "$GATE_PID" 2>/dev/null || true
}

GATE_URL() { echo "http://127.0.0.1:$GPORT/proj.git"; }

# status_json PYTHON-EXPR: evaluates EXPR on the gate's status.json (bound to s).
status_json() {
    /usr/bin/python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
        "$TMP/gate/status.json" "$1"
}
