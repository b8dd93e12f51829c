#!/usr/bin/env bash
# Real ssh through the raw tunnel, as the git gate uses it: a throwaway sshd
# (openssh-server, run directly with -D, never through an init system) in the
# test namespace, `ssh -o ProxyCommand='bottle-proxy connect ... %h %p'` with
# strict host key checking against the pinned key: a command runs, bytes go
# both ways, git clones and pushes over it; a wrong token or a wrong pinned
# host key fails the connection.
. "$(dirname "$0")/live.sh"

[ -x /usr/sbin/sshd ] || {
    not_ok "/usr/sbin/sshd is missing (scripts/setup.sh installs openssh-server)"
    finish
}
live_setup 64
PROXY=$(cd "$(dirname "$PROXY")" && pwd)/$(basename "$PROXY") # git runs ssh elsewhere
TOKEN='tunnel-TOKEN-do-not-print-5a7d20'
printf '%s\n' "$TOKEN" >"$TMP/token"
printf 'wrong-token-81f0\n' >"$TMP/wrong"
chmod 600 "$TMP/token" "$TMP/wrong"
live_routes '
j["hosts"].append({"name": "git.test", "ip": j["hosts"][0]["ip"]})
j["tunnels"] = [{"host": "git.test", "port": 2222,
                 "token_sha256": "'"$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)"'"}]
'

S="$TMP/ssh"
mkdir -p "$S" && chmod 700 "$S"
ssh-keygen -q -t ed25519 -N '' -C test-host -f "$S/host_ed25519"
ssh-keygen -q -t ed25519 -N '' -C test-client -f "$S/id_ed25519"
cp "$S/id_ed25519.pub" "$S/authorized_keys"
cat >"$S/sshd_config" <<EOF
Port 2222
ListenAddress $UP_IP
HostKey $S/host_ed25519
PidFile $S/sshd.pid
AuthorizedKeysFile $S/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
LogLevel VERBOSE
EOF
mkdir -p /run/sshd # sshd's privilege separation directory (Debian creates it at boot)
"$NETNS_SH" exec "$LIVE_NS" /usr/sbin/sshd -D -e -f "$S/sshd_config" 2>"$S/sshd.log" &
LIVE_PIDS+=($!)
wait_line "$S/sshd.log" "Server listening on $UP_IP port 2222" || not_ok "sshd did not start" "$(cat "$S/sshd.log")"
live_start

printf '[git.test]:2222 %s\n' "$(cut -d' ' -f1,2 "$S/host_ed25519.pub")" >"$S/known_hosts"
# gssh TOKENFILE KNOWN_HOSTS ARGS...: ssh through the proxy, strict host key checking.
gssh() {
    local tok=$1 kh=$2
    shift 2
    ssh -F /dev/null -i "$S/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes \
        -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$kh" -o ConnectTimeout=20 \
        -o ProxyCommand="$PROXY connect --proxy 127.0.0.1:$PORT --token-file $tok %h %p" \
        -p 2222 "$@"
}

run gssh "$TMP/token" "$S/known_hosts" root@git.test true
expect_rc 0 "ssh ... true through the raw tunnel"
run gssh "$TMP/token" "$S/known_hosts" root@git.test 'echo "$SSH_CONNECTION"'
expect_in "$TMP/out" " $UP_IP 2222" "the command ran on the upstream sshd"

head -c $((2 << 20)) /dev/urandom >"$TMP/blob"
set +e
gssh "$TMP/token" "$S/known_hosts" root@git.test 'sha256sum; echo done' <"$TMP/blob" >"$TMP/out" 2>"$TMP/err"
RC=$?
set -e
expect_rc 0 "2 MiB through ssh's stdin"
expect_eq "$(cat "$TMP/out")" "$(sha256sum <"$TMP/blob")
done" "the remote read it whole (stdin EOF passed on) and answered"

# git over the tunnel, as the gate pushes: clone, commit, push, the ref lands.
git init -q --bare "$TMP/up.git"
export GIT_SSH_COMMAND="ssh -F /dev/null -i $S/id_ed25519 -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$S/known_hosts -o ProxyCommand='$PROXY connect --proxy 127.0.0.1:$PORT --token-file $TMP/token %h %p'"
run git clone -q "ssh://root@git.test:2222$TMP/up.git" "$TMP/work"
expect_rc 0 "git clone over ssh through the tunnel"
(
    cd "$TMP/work"
    git -c user.name=t -c user.email=t@t commit -q --allow-empty -m "through the tunnel"
)
run git -C "$TMP/work" push -q origin HEAD:refs/heads/main
expect_rc 0 "git push over ssh through the tunnel"
expect_eq "$(git -C "$TMP/up.git" log -1 --format=%s main 2>&1)" "through the tunnel" "the commit landed upstream"
unset GIT_SSH_COMMAND

# Refusals: a wrong token never reaches sshd; a wrong pinned key fails verification.
before=$(grep -c "Connection from" "$S/sshd.log" || true)
run gssh "$TMP/wrong" "$S/known_hosts" root@git.test true
expect_rc 255 "ssh with a wrong tunnel token fails"
expect_in "$TMP/err" "proxy refused the tunnel: HTTP/1.1 403 Forbidden" "ssh's stderr shows the proxy's 403"
sleep 0.2
expect_eq "$(grep -c "Connection from" "$S/sshd.log" || true)" "$before" "sshd saw no connection for it"
ssh-keygen -q -t ed25519 -N '' -f "$S/other"
printf '[git.test]:2222 %s\n' "$(cut -d' ' -f1,2 "$S/other.pub")" >"$S/known_hosts.bad"
run gssh "$TMP/token" "$S/known_hosts.bad" root@git.test true
expect_rc 255 "a host key other than the pinned one is refused"
expect_in "$TMP/err" "REMOTE HOST IDENTIFICATION HAS CHANGED" "ssh's strict host key check sees the real key"

for f in "$AUDIT" "$PERR"; do
    if grep -qF -- "$TOKEN" "$f"; then not_ok "the token is not in $(basename "$f")"; else
        ok "the token is not in $(basename "$f")"
    fi
done
expect_eq "$(python3 -c 'import json,sys
print(sum(1 for l in open(sys.argv[1]) if json.loads(l)["reason"] == "raw tunnel closed"))' "$AUDIT")" 6 \
    "one audit line per ssh connection that got through (6 tunnels)"
live_stop
finish
