#!/usr/bin/env bash
# t0610: an agent in a real bottle pushes through the git gate (issue 6,
# end to end through `bottled reconcile --once`, host firewall on):
#   - the upstream: a real sshd in a network namespace ("git.test:2222",
#     reached by the sidecar through --proxy-add-host/--proxy-allow-private)
#     serving a bare repo as /team/app.git; its authorized_keys is written
#     from a fake Gitea (tests/forge) after the reconcile registered the
#     bottle's deploy key there (sshd re-reads it per connection);
#   - the real gate image (localhost/bottled-gate:<version>);
#   - from inside the agent, plain `git` with the gitconfig bottled
#     delivered:
#       1. the forge holds exactly one key titled bottled:<instance>:gp:app;
#       2. a clone of the upstream url (rewritten to the gate) sees upstream's
#          seed commit;
#       3. a clean commit pushed lands upstream;
#       4. a push with a credential is refused and upstream does not move:
#          (a) in a middle commit a later one removes, (b) in a commit
#          message, (c) in an annotated tag; git's output names file/commit/
#          detector, never the value;
#       5. the agent's own CONNECT to git.test:2222 through proxy:9099 is 403;
#       6. no private key or tunnel token in the agent's environment or
#          files, any inspect output, state.db or bottled's output;
#       7. deleting the manifest removes the key at the forge; a copy of the
#          old private key no longer authenticates to the sshd once its
#          authorized_keys (now empty) is rewritten from the forge.
. "$(dirname "$0")/harness.sh"
. "$(dirname "$0")/reconcile-lib.sh"
. "$REPO/tests/forge/forge-lib.sh"
. "$REPO/tests/gate/sshd.sh"

NETNS_SH=$REPO/tests/proxy/netns.sh
GATE_IMAGE=localhost/bottled-gate:$VERSION
require_engine
require_images
[ "$(api_code GET "/images/$(urlenc "$GATE_IMAGE")/json")" = 200 ] ||
    fatal "image $GATE_IMAGE exists in $ENGINE (run: bash scripts/build-gate-image.sh)"
command -v iptables >/dev/null || fatal "iptables is installed"
[ -x /usr/sbin/sshd ] || fatal "sshd is installed (openssh-server)"

# Unique per engine so the Podman and Docker runs may overlap.
case "$ENGINE" in podman) IDX=65 ;; *) IDX=66 ;; esac
IDX=${T0610_IDX:-$IDX}
NS=bdt-push-$IDX
SSHD_PID=
_t0610_exit() {
    local rc=$?
    set +e
    [ -z "$SSHD_PID" ] || { kill "$SSHD_PID" 2>/dev/null; wait "$SSHD_PID" 2>/dev/null; }
    forge_stop
    "$NETNS_SH" down "$NS" "$IDX" >/dev/null 2>&1
    (exit "$rc")
    _rt_exit
}
trap _t0610_exit EXIT

# ---- the upstream: sshd in a namespace, a bare repo with one commit ---------------
"$NETNS_SH" down "$NS" "$IDX" >/dev/null 2>&1 || true
UP_IP=$("$NETNS_SH" up "$NS" "$IDX") || fatal "create netns $NS"
D=$_TMP/sshd
mkdir -p "$D" "$_TMP/up"
ssh-keygen -q -t ed25519 -N '' -C t0610-host -f "$D/host_ed25519"
UPREPO=$_TMP/up/app.git
git init -q --bare -b main "$UPREPO"
g() { git -c user.name=up -c user.email=up@test -c init.defaultBranch=main "$@"; }
g init -q "$_TMP/seed"
echo "upstream readme" >"$_TMP/seed/README"
{ g -C "$_TMP/seed" add README && g -C "$_TMP/seed" commit -q -m "upstream: seed" &&
    g -C "$_TMP/seed" push -q "$UPREPO" main; } || fatal "seed the upstream repo"
SEED=$(git --git-dir="$UPREPO" rev-parse main)
# The url's path /team/app.git is this test's bare repo: a forced command
# maps it (and refuses anything else).
cat >"$D/git-shell" <<SH
#!/bin/sh
case "\$SSH_ORIGINAL_COMMAND" in
"git-upload-pack '/team/app.git'") exec git-upload-pack '$UPREPO' ;;
"git-receive-pack '/team/app.git'") exec git-receive-pack '$UPREPO' ;;
esac
echo "t0610 upstream: unexpected command: \$SSH_ORIGINAL_COMMAND" >&2
exit 1
SH
chmod 0755 "$D/git-shell"
: >"$D/authorized_keys"
chmod 0600 "$D/authorized_keys"
sshd_config "$D" "$UP_IP:2222" host_ed25519 "$D/git-shell" >"$D/sshd_config"
mkdir -p /run/sshd
"$NETNS_SH" exec "$NS" /usr/sbin/sshd -D -e -f "$D/sshd_config" 2>"$D/sshd.log" &
SSHD_PID=$!
for _ in $(seq 50); do grep -q "Server listening" "$D/sshd.log" 2>/dev/null && break; sleep 0.1; done
grep -q "Server listening" "$D/sshd.log" || fatal "sshd listens: $(cat "$D/sshd.log")"
HOST_KEY=$(cut -d' ' -f1,2 "$D/host_ed25519.pub")
URL=ssh://root@git.test:2222/team/app.git

# ---- the forge and the bottle -----------------------------------------------------
forge_start gitea "$_TMP/forge" team/app || fatal "start the fake forge"
bg_started "$FORGE_PID"
API_ROOT=$(forge_api_root gitea)
M=$_TMP/manifests
mkdir -p "$M"
cp "$REPO/examples/claude.md" "$M/"
bottle_md "$M" gp "git-gate:
  user: {name: T0610 Agent, email: t0610@example.com}
  repos:
    app:
      url: $URL
      key: {provider: gitea, forge_token_env: T0610_FORGE_TOKEN, api_url: \"$API_ROOT\"}
      host_key: \"$HOST_KEY\""
SECRETS=$_TMP/secrets
write_secrets "$SECRETS" "CLAUDE_OAUTH_TOKEN@api.anthropic.com=t0610-claude-$RANDOM" \
    "T0610_FORGE_TOKEN@localhost=$FORGE_TOKEN"
STATE=$_TMP/state
INSTANCE=$(new_state "$STATE")
PREFIX=$(new_prefix t0610)
POOL=$(free_pool) || fatal "list the engine's networks"
[ -n "$POOL" ] || fatal "a free /24 in 10.213.0.0/16"
P=$PREFIX-gp
AGENT=$P-agent
TITLE="bottled:$INSTANCE:gp:app"
note "instance $INSTANCE, prefix $PREFIX, pool $POOL, upstream $UP_IP"
export BD_HOST_FIREWALL=1
RFLAGS=(--forge-ca "$FORGE_CA" --proxy-add-host "git.test:$UP_IP" --proxy-allow-private "$UP_IP/32")

bd reconcile --once --json "${RFLAGS[@]}"
assert_rc 0 "reconcile --once creates the bottle with its gate"
[ "$RC" = 0 ] || fatal "cannot go on without the bottle"
[ "$(api GET "/containers/$P-gate/json" | jget State Running)" = True ] || fatal "the gate runs"

# 1. the key at the forge, and the sshd accepting exactly the forge's keys
keyq() { forge_keys | python3 -c 'import json, sys; K = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
assert_eq "1 1" "$(keyq "len(K['team/app'])") $(keyq "len([k for k in K['team/app'] if k['title'] == '$TITLE'])")" \
    "the forge holds exactly one key, titled $TITLE"
forge_authorized_keys "$D/authorized_keys" || fatal "authorized_keys from the forge"
KEYFILE=$STATE/keys/bottled/gp/app/id_ed25519
assert_eq "$(ssh-keygen -y -f "$KEYFILE" | cut -d' ' -f1,2)" "$(cut -d' ' -f1,2 "$D/authorized_keys")" \
    "the sshd's authorized_keys (from the forge) is the bottle's key"
cp "$KEYFILE" "$_TMP/oldkey" && chmod 0600 "$_TMP/oldkey"

# the gate serves once it has started; give a loaded engine a moment
for _ in $(seq 50); do
    api GET "/containers/$P-gate/logs?stderr=1&stdout=1" 2>/dev/null | grep -aq "serving" && break
    sleep 0.2
done

# 2. clone
check_exec "$AGENT" "git clone $URL (rewritten to the gate) sees upstream's seed commit" \
    "cd /workspace && git clone -q $URL app && test \"\$(git -C app rev-parse HEAD)\" = $SEED && test \"\$(cat app/README)\" = 'upstream readme'"

# 3. a clean push
check_exec "$AGENT" "a clean commit is pushed with plain git" \
    "cd /workspace/app && echo work >work.txt && git add work.txt && git commit -q -m 'agent: work' && git push -q origin main"
exec_in "$AGENT" "git -C /workspace/app rev-parse HEAD; git -C /workspace/app log -1 --format=%an" >/dev/null
CLEAN=$(sed -n 1p "$EXEC_OUT_FILE")
assert_eq "$CLEAN" "$(git --git-dir="$UPREPO" rev-parse main)" "the clean push landed upstream"
assert_eq "T0610 Agent" "$(sed -n 2p "$EXEC_OUT_FILE")" "the commit carries git-gate.user"

# 4. pushes with a credential
SECRET_AWS='AKIAZ7QX4MRWJ3NVKD2P'
SECRET_GH='ghp_R8wq2LmVn5Xc7Tz1Kp9Yb3Hd6Fg4Js0Ae2Uq'
# refused WHAT SCRIPT WANT: SCRIPT (run in the work tree; it ends with the
# push and writes the commit to name to /tmp/c) fails, its output has WANT
# (with @C@ the commit) and no value, and upstream's main and tags stay.
refused() {
    local rc out c
    rc=$(exec_in "$AGENT" "cd /workspace/app && git fetch -q origin && git reset -q --hard origin/main && $2 2>&1") ||
        fatal "$1: exec"
    out=$(cat "$EXEC_OUT_FILE")
    LAST_OUT=$out
    exec_in "$AGENT" "cat /tmp/c" >/dev/null
    c=$(tr -d '\n' <"$EXEC_OUT_FILE")
    [ "$rc" != 0 ] && pass "$1: the push is refused (exit $rc)" || fail "$1: the push is refused: $out"
    case "$out" in
    *"${3//@C@/$c}"*) pass "$1: git's output names it: ${3//@C@/<commit>}" ;;
    *) fail "$1: git's output names '${3//@C@/$c}': $out" ;;
    esac
    case "$out" in
    *"$SECRET_AWS"* | *"$SECRET_GH"*) fail "$1: the value is shown to the agent" ;;
    *) pass "$1: the value is not shown" ;;
    esac
    assert_eq "$CLEAN|" "$(git --git-dir="$UPREPO" rev-parse main)|$(git --git-dir="$UPREPO" tag -l)" \
        "$1: upstream's main did not move, no tag"
}
refused "secret in a middle commit" \
    "printf 'token: $SECRET_GH\\n' >notes.md && git add notes.md && git commit -q -m 'agent: notes' && git rev-parse HEAD >/tmp/c && git rm -q notes.md && git commit -q -m 'agent: remove notes' && git push origin main" \
    "notes.md in @C@: credential found by detector 'github_token'"
refused "secret in a commit message" \
    "echo ok >ok.txt && git add ok.txt && git commit -q -m 'agent: deploy with $SECRET_AWS' && git rev-parse HEAD >/tmp/c && git push origin main" \
    "commit message of @C@: credential found by detector 'aws_access_key_id'"
refused "secret in an annotated tag" \
    "git tag -a v1 -m 'release, token $SECRET_GH' && git rev-parse v1 >/tmp/c && git push origin v1" \
    "credential found by detector 'github_token'"
case "$LAST_OUT" in *"tag v1 ("*) pass "secret in an annotated tag: git's output names the tag" ;;
*) fail "secret in an annotated tag: git's output names the tag: $LAST_OUT" ;; esac

# 5. the agent's own CONNECT to the upstream's ssh port
rc=$(exec_in "$AGENT" "curl -sS -p -x http://proxy:9099 --max-time 15 -o /dev/null http://git.test:2222/ 2>&1; true") || true
case "$(cat "$EXEC_OUT_FILE")" in
*"CONNECT tunnel failed, response 403"*) pass "the agent's own CONNECT git.test:2222 through proxy:9099 gets 403" ;;
*) fail "the agent's own CONNECT git.test:2222 gets 403: $(head -c 300 "$EXEC_OUT_FILE")" ;;
esac

# 6. no private key or tunnel token where it must not be
PRIV_LINE=$(sed -n 2p "$KEYFILE")
TOKEN=$(python3 -c 'import hmac, hashlib, sys
print(hmac.new(open(sys.argv[1], "rb").read(), b"gate-tunnel\0gp", hashlib.sha256).hexdigest())' "$STATE/hmac.key")
exec_in "$P-gate" "cat /gate/token" >/dev/null
assert_eq "$TOKEN" "$(tr -d '\n' <"$EXEC_OUT_FILE")" "the gate holds the tunnel token the checks below look for"
check_exec "$AGENT" "no private key or tunnel token in the agent's environment or files" \
    "! grep -rqsF -e '$PRIV_LINE' -e '$TOKEN' -e 'OPENSSH PRIVATE KEY' /proc/1/environ /proc/self/environ /etc /workspace /home /tmp /root 2>/dev/null"
f=$(urlenc "{\"label\":[\"io.bottled.instance=$INSTANCE\"]}")
leaks=""
for id in $(api GET "/containers/json?all=true&filters=$f" | python3 -c 'import json,sys; [print(c["Id"]) for c in json.load(sys.stdin)]'); do
    api GET "/containers/$id/json" >"$_TMP/inspect-$id.json"
done
for x in "$STATE"/state.db* "$ALL_OUTPUT" "$_TMP"/inspect-*.json; do
    [ -e "$x" ] || continue
    grep -qaF -e "$PRIV_LINE" -e "$TOKEN" -e "$FORGE_TOKEN" "$x" && leaks="$leaks $(basename "$x")"
done
assert_eq "" "$leaks" "no private key, tunnel token or forge token in state.db, any inspect output or bottled's output"

# 7. delete: the key goes at the forge, and the old key no longer authenticates
oldssh() {
    ssh -i "$_TMP/oldkey" -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes \
        -o UserKnownHostsFile="$_TMP/known_hosts" -o ConnectTimeout=10 -p 2222 "root@$UP_IP" \
        "git-upload-pack '/team/app.git'" </dev/null >"$_TMP/ssh.out" 2>"$_TMP/ssh.err"
}
printf '%s %s\n' "$UP_IP" "$HOST_KEY" | sed 's/^/[/; s/ /]:2222 /' >"$_TMP/known_hosts"
# (upload-pack advertises its refs, then ends on the closed stdin)
oldssh || true
if grep -q "$CLEAN refs/heads/main" "$_TMP/ssh.out"; then
    pass "control: while registered, the key authenticates to the sshd"
else
    fail "control: while registered, the key authenticates: $(head -c 300 "$_TMP/ssh.err")"
fi
rm "$M/gp.md"
bd reconcile --once --json --allow-empty "${RFLAGS[@]}"
assert_rc 0 "deleting the manifest: reconcile deletes the bottle"
assert_eq 0 "$(keyq "len(K['team/app'])")" "the key is deleted at the forge"
assert_eq "" "$(names_of "$INSTANCE" gp)" "every engine resource of the bottle is gone"
forge_authorized_keys "$D/authorized_keys" || fatal "authorized_keys from the forge"
assert_eq 0 "$(wc -c <"$D/authorized_keys" | tr -d ' ')" "the authorized_keys rewritten from the forge is empty"
if oldssh || grep -q refs/heads "$_TMP/ssh.out"; then
    fail "a copy of the old private key no longer authenticates"
elif grep -q "Permission denied (publickey)" "$_TMP/ssh.err"; then
    pass "a copy of the old private key no longer authenticates (Permission denied)"
else
    fail "the old key is refused with Permission denied: $(head -c 300 "$_TMP/ssh.err")"
fi
