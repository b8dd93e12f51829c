#!/usr/bin/env bash
# t0600: deploy keys at a forge and the git gate container, against a real
# engine and a local fake Gitea (tests/forge/fakeforge.py over HTTPS,
# --forge-ca):
#   1. a bottle with a forge repo and a static-key repo: exactly one key at the forge, titled
#      bottled:<instance>:<bottle>:<repo>, the key file's public key, write
#      access; the key file 0600 in a 0700 dir; the gate container (role
#      gate, int network only, .3) with /gate/config.json, keys/<repo> and
#      token (0600, uid 10098), the token derived from the instance key and
#      only its sha256 in the sidecar's routes.json "tunnels"; the agent's
#      gitconfig rewrites the url to the gate; the static key is copied into
#      the gate and never registered; a second plan is empty;
#   2. no private key or token in state.db, any container's inspect output
#      (argv, env, labels) or anything bottled printed;
#   3. the gate's status file: a learned host key goes into the database
#      and the recreated gate's config.json;
#   4. a key deleted at the forge is registered again: on a gate
#      authentication failure, and on the slow check (made fast with
#      BOTTLED_KEY_CHECK_INTERVAL);
#   5. gc deletes an orphan key with our title prefix, leaves others';
#   6. deleting the bottle with the forge down: containers gone, the key
#      and the bottle (Deleting) stay; once the forge is back the key is
#      deleted at the forge, then everything else, and the bottle forgotten;
#   7. a token whose binding does not cover the API host fails the bottle
#      before any container starts, naming the secret, never the value.
# The gate runs a stand-in image (build_sleep_gate_image: uid 10098 like the
# real one, `sleep infinity`), so the test can write the gate's status file
# itself; the real gate image is exercised by t0610 and tests/gate.  The
# sidecar image must understand routes.json "tunnels" (rebuild it with
# scripts/build-proxy-image.sh after updating).
. "$(dirname "$0")/harness.sh"
. "$(dirname "$0")/reconcile-lib.sh"
. "$REPO/tests/forge/forge-lib.sh"

require_engine
require_images

GATE_IMAGE=localhost/bottled-t0600-gate:$RUN_ID
_t0600_exit() {
    local rc=$?
    forge_stop
    api DELETE "/images/$(urlenc "$GATE_IMAGE")?force=true" >/dev/null 2>&1 || true
    (exit "$rc")
    _rt_exit
}
trap _t0600_exit EXIT

# ---- the gate test image ----------------------------------------------------
build_sleep_gate_image "$GATE_IMAGE"

# ---- the forge ----------------------------------------------------------------
forge_start gitea "$_TMP/forge" team/app other/lib || fatal "start the fake forge"
bg_started "$FORGE_PID"
API_ROOT=$(forge_api_root gitea)
note "fake gitea at $API_ROOT"

M=$_TMP/manifests
mkdir -p "$M"
cp "$REPO/examples/claude.md" "$M/"
REPO_YAML="git-gate:
  user: {name: T0600, email: t0600@example.com}
  repos:
    app:
      url: ssh://git@gitea.test:2222/team/app.git
      key: {provider: gitea, forge_token_env: T0600_FORGE_TOKEN, api_url: \"$API_ROOT\"}
    lib:
      url: ssh://git@gitea.test:2222/other/lib.git
      key: {provider: static, path: static/lib_ed25519}"
bottle_md "$M" kb "$REPO_YAML"
SECRETS=$_TMP/secrets
write_secrets "$SECRETS" "CLAUDE_OAUTH_TOKEN@api.anthropic.com=t0600-claude-$RANDOM" \
    "T0600_FORGE_TOKEN@localhost=$FORGE_TOKEN"
STATE=$_TMP/state
INSTANCE=$(new_state "$STATE")
(umask 077 && mkdir -p "$STATE/keys/static")
ssh-keygen -q -t ed25519 -N '' -C "static lib key" -f "$STATE/keys/static/lib_ed25519"
PREFIX=$(new_prefix t0600)
POOL=$(free_pool) || fatal "list the engine's networks"
[ -n "$POOL" ] || fatal "a free /24 in 10.213.0.0/16"
P=$PREFIX-kb
TITLE="bottled:$INSTANCE:kb:app"
note "instance $INSTANCE, prefix $PREFIX, pool $POOL"
GFLAGS=(--gate-image "$GATE_IMAGE" --forge-ca "$FORGE_CA")
PFLAGS=(--gate-image "$GATE_IMAGE") # plan never calls a forge

# keyq EXPR: a Python expression over the forge's keys (K: the dict)
keyq() { forge_keys | python3 -c 'import json, sys; K = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
ours() { keyq "[k for k in K['team/app'] if k['title'] == '$TITLE']"; }
n_ours() { keyq "len([k for k in K['team/app'] if k['title'] == '$TITLE'])"; }
# tarfile PATH-IN-CONTAINER CONTAINER EXPR: a Python expression over the
# archive of PATH (t: the tarfile, m(name): member, x(name): its text)
tarq() {
    curl -sS --unix-socket "$SOCK" "$API/containers/$2/archive?path=$(urlenc "$1")" >"$_TMP/arch.tar"
    python3 -c '
import sys, tarfile
t = tarfile.open(sys.argv[1])
def m(n): return t.getmember(n)
def x(n): return t.extractfile(n).read().decode()
print(eval(sys.argv[2]))' "$_TMP/arch.tar" "$3"
}

# ---- 1. create -----------------------------------------------------------------
bd reconcile --once --json "${GFLAGS[@]}"
assert_eq 0 "$RC" "reconcile exits 0 ($(said))"
assert_eq "create:int:missing create:egr:missing create:work:missing create:cfg:missing keys:keys:app: missing create:proxy:missing create:gate:missing create:agent:missing" \
    "$(json "\" \".join(a[\"action\"] + \":\" + a[\"role\"] + \":\" + a[\"cause\"] for a in $(jb kb)[\"actions\"])")" \
    "keys registered after the volumes, before the sidecar; the gate between sidecar and agent"
assert_eq 1 "$(n_ours)" "exactly one key titled $TITLE at the forge"
KEYDIR=$STATE/keys/bottled/kb/app
FP=$(ssh-keygen -l -E sha256 -f "$KEYDIR/id_ed25519" | awk '{print $2}')
assert_eq "$FP False" "$(keyq "' '.join(str(x) for x in [[k['sha256'], k['read_only']] for k in K['team/app'] if k['title'] == '$TITLE'][0])")" \
    "the forge's key is the key file's (ssh-keygen fingerprint), with write access"
assert_eq "$(ssh-keygen -y -f "$KEYDIR/id_ed25519" | awk '{print $1" "$2}')" \
    "$(keyq "[k['key'] for k in K['team/app'] if k['title'] == '$TITLE'][0]")" "the public key registered is ssh-keygen -y of the key file"
assert_eq "600 700" "$(stat -c %a "$KEYDIR/id_ed25519") $(stat -c %a "$KEYDIR")" "key file 0600 in a 0700 dir"
assert_eq "registered" "$(sqlite3 "$STATE/state.db" "SELECT state FROM deploy_keys WHERE bottle='kb' AND repo='app'")" \
    "the database records the key as registered"
KEY_ID=$(sqlite3 "$STATE/state.db" "SELECT key_id FROM deploy_keys WHERE bottle='kb' AND repo='app'")
assert_eq "$KEY_ID" "$(keyq "[k['id'] for k in K['team/app'] if k['title'] == '$TITLE'][0]")" "the recorded key id is the forge's"
"$BOTTLED_BIN" status --state-dir "$STATE" --json kb >"$OUT" 2>"$ERR" || true
assert_eq "app gitea team/app $KEY_ID $FP registered" \
    "$(json "' '.join(str(k[f]) for k in $(jb kb)['deploy_keys'] for f in ('repo', 'forge', 'repository', 'key_id', 'fingerprint', 'state'))")" \
    "bottled status shows the deploy key"

# the gate container
GJ=$(api GET "/containers/$P-gate/json")
assert_eq "gate running" "$(jget Config Labels io.bottled.role <<<"$GJ") $(jget State Status <<<"$GJ")" "the gate runs, labelled role gate"
assert_eq "[\"$P-int\"]" "$(python3 -c 'import json,sys; print(json.dumps(sorted(json.load(sys.stdin)["NetworkSettings"]["Networks"])))' <<<"$GJ")" \
    "the gate is on the internal network only"
INT_SUB=$(api GET "/networks/$P-int" | python3 -c 'import json,sys; print(json.load(sys.stdin)["IPAM"]["Config"][0]["Subnet"])')
GATE_IP=$(python3 -c 'import ipaddress,sys; print(ipaddress.ip_network(sys.argv[1])[3])' "$INT_SUB")
assert_eq "$GATE_IP" "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["NetworkSettings"]["Networks"][sys.argv[1]]["IPAddress"])' "$P-int" <<<"$GJ")" \
    "the gate has .3 on the internal network"
PROXY_IP=$(python3 -c 'import ipaddress,sys; print(ipaddress.ip_network(sys.argv[1])[2])' "$INT_SUB")
TOKEN_WANT=$(python3 -c 'import hmac, hashlib, sys
print(hmac.new(open(sys.argv[1], "rb").read(), b"gate-tunnel\0kb", hashlib.sha256).hexdigest())' "$STATE/hmac.key")
# modes and owners as the gate sees them (Podman's archive GET reports uid 0)
exec_in "$P-gate" 'stat -c "%n %a %u:%g" /gate /gate/keys /gate/keys/app /gate/keys/lib /gate/token /gate/config.json' >/dev/null
assert_eq "/gate 700 10098:10098 /gate/keys 700 10098:10098 /gate/keys/app 600 10098:10098 /gate/keys/lib 600 10098:10098 /gate/token 600 10098:10098 /gate/config.json 644 10098:10098" \
    "$(tr '\n' ' ' <"$EXEC_OUT_FILE" | sed 's/ $//')" "/gate/: keys and token 0600, directories 0700, all owned 10098"
assert_eq "$TOKEN_WANT" "$(tarq /gate "$P-gate" "x('gate/token').strip()")" "the token is hex(HMAC-SHA256(instance key, 'gate-tunnel\\0' + bottle))"
assert_eq "$(cat "$KEYDIR/id_ed25519")" "$(tarq /gate "$P-gate" "x('gate/keys/app').rstrip()")" "the gate holds the repo's private key"
assert_eq "$(cat "$STATE/keys/static/lib_ed25519")" "$(tarq /gate "$P-gate" "x('gate/keys/lib').rstrip()")" \
    "a static key is copied into the gate from the keys dir"
assert_eq 0 "$(keyq "len(K['other/lib'])")" "a static key is never registered at the forge"
assert_eq "{\"proxy\":\"$PROXY_IP:9099\",\"repos\":[{\"host\":\"gitea.test\",\"host_key\":\"\",\"name\":\"app\",\"port\":2222,\"url\":\"ssh://git@gitea.test:2222/team/app.git\"},{\"host\":\"gitea.test\",\"host_key\":\"\",\"name\":\"lib\",\"port\":2222,\"url\":\"ssh://git@gitea.test:2222/other/lib.git\"}]}" \
    "$(tarq /gate "$P-gate" "x('gate/config.json')")" "/gate/config.json as the contract says"
# the sidecar's tunnels: the token's sha256 only
TUN=$(curl -sS --unix-socket "$SOCK" "$API/containers/$P-proxy/archive?path=/cfg" >"$_TMP/cfg.tar" && python3 -c '
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
cur = t.extractfile("cfg/current").read().decode().strip()
r = json.loads(t.extractfile("cfg/%s/routes.json" % cur).read())
print(json.dumps(r.get("tunnels")))' "$_TMP/cfg.tar")
assert_eq "[{\"host\": \"gitea.test\", \"port\": 2222, \"token_sha256\": \"$(printf %s "$TOKEN_WANT" | sha256sum | cut -d' ' -f1)\"}]" \
    "$TUN" "routes.json tunnels: the repo's host:port with sha256(token)"
if tar -xOf "$_TMP/cfg.tar" 2>/dev/null | grep -qF "$TOKEN_WANT"; then
    fail "the tunnel token itself is in the sidecar's config"
else
    pass "the tunnel token itself is not in the sidecar's config"
fi
assert_eq 1 "$(tarq /etc/bottle/gitconfig "$P-agent" "x('gitconfig').count('[url \"http://gate:8080/app.git\"]\\n\\tinsteadOf = \"ssh://git@gitea.test:2222/team/app.git\"')")" \
    "the agent's gitconfig rewrites the url to the gate"

bd plan --detailed-exitcode "${PFLAGS[@]}"
assert_rc 0 "a plan right after the apply is empty ($(said))"
bd reconcile --once --json "${GFLAGS[@]}"
assert_eq "0 0" "$RC $(json 'd["summary"]["engine_changes"]')" "a second pass changes nothing"
assert_eq 1 "$(n_ours)" "still exactly one key"

# ---- 2. no secret anywhere it must not be ---------------------------------------------
PRIV_LINE=$(sed -n 2p "$KEYDIR/id_ed25519")
STATIC_LINE=$(sed -n 2p "$STATE/keys/static/lib_ed25519")
leaks=""
for c in proxy gate agent; do
    api GET "/containers/$P-$c/json" >"$_TMP/inspect-$c.json"
done
for f in "$STATE/state.db" "$STATE"/state.db-wal "$ALL_OUTPUT" "$_TMP"/inspect-*.json "$STATE/repos-used"; do
    [ -e "$f" ] || continue
    grep -qaF -e "$PRIV_LINE" -e "$STATIC_LINE" -e "$TOKEN_WANT" -e "$FORGE_TOKEN" "$f" && leaks="$leaks $f"
done
assert_eq "" "$leaks" "no private key, tunnel token or forge token in state.db, inspect output or bottled's output"

# ---- 3. the gate's status file: a learned host key --------------------------------------
HK="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFZHv0KzwIz/wqv7TTr0JoJdTJRGABs1vK89dGYFaKTf"
put_status() { # JSON: /gate/status.json in the gate, owned 10098
    python3 -c '
import io, sys, tarfile
data = sys.argv[2].encode()
with tarfile.open(sys.argv[1], "w") as t:
    i = tarfile.TarInfo("gate/status.json"); i.size = len(data); i.uid = i.gid = 10098; i.mode = 0o644
    t.addfile(i, io.BytesIO(data))' "$_TMP/status.tar" "$1"
    curl -sS --fail --unix-socket "$SOCK" -X PUT -H 'Content-Type: application/x-tar' \
        --data-binary "@$_TMP/status.tar" "$API/containers/$P-gate/archive?path=/" >/dev/null
}
put_status "{\"auth_failures\": [], \"learned_host_keys\": [{\"repo\": \"app\", \"host_key\": \"$HK learned\"}]}"
bd reconcile --once --json "${GFLAGS[@]}"
assert_eq 0 "$RC" "reconcile with a learned host key ($(said))"
assert_eq "$HK" "$(sqlite3 "$STATE/state.db" "SELECT host_key FROM host_keys WHERE bottle='kb' AND repo='app'")" \
    "the learned host key is in the database (comment dropped)"
case "$(json "[a['action'] + ':' + a['cause'] for a in $(jb kb)['actions'] if a['role'] == 'gate']")" in
*recreate:spec\ changed*) pass "the gate is recreated with the host key in its spec" ;;
*) fail "the gate is recreated with the host key in its spec: $(said)" ;;
esac
assert_eq "$HK" "$(tarq /gate/config.json "$P-gate" "__import__('json').loads(x('config.json'))['repos'][0]['host_key']")" \
    "the new gate's config.json pins it"
bd plan --detailed-exitcode "${PFLAGS[@]}"
assert_rc 0 "then the plan is empty again ($(said))"

# ---- 4. a key deleted at the forge is registered again -------------------------------
del_key() { curl -sS --fail --cacert "$FORGE_CA" -H "Authorization: token $FORGE_TOKEN" -X DELETE \
    "$API_ROOT/repos/team/app/keys/$1" >/dev/null; }
del_key "$KEY_ID"
assert_eq 0 "$(n_ours)" "someone deleted the key at the forge"
sleep 1
put_status "{\"auth_failures\": [{\"repo\": \"app\", \"at\": $(date +%s), \"message\": \"Permission denied (publickey)\"}], \"learned_host_keys\": []}"
bd reconcile --once --json "${GFLAGS[@]}"
assert_eq "0 keys:app: gate authentication failed" "$RC $(json "' '.join(a['action'] + ':' + a['cause'] for a in $(jb kb)['actions'])")" \
    "the gate's authentication failure triggers the key check ($(said))"
assert_eq "1 $FP" "$(n_ours) $(keyq "[k['sha256'] for k in K['team/app'] if k['title'] == '$TITLE'][0]")" \
    "the same key is registered again, once"
KEY_ID2=$(sqlite3 "$STATE/state.db" "SELECT key_id FROM deploy_keys WHERE bottle='kb' AND repo='app'")
del_key "$KEY_ID2"
sleep 2
BOTTLED_KEY_CHECK_INTERVAL=1 bd reconcile --once --json "${GFLAGS[@]}"
assert_eq "0 keys:app: check due" "$RC $(json "' '.join(a['action'] + ':' + a['cause'] for a in $(jb kb)['actions'])")" \
    "the slow check comes due ($(said))"
assert_eq 1 "$(n_ours)" "the key deleted at the forge is replaced on the check"
bd plan --detailed-exitcode "${PFLAGS[@]}"
assert_rc 0 "no check due with the default interval ($(said))"

# ---- 5. gc: orphan keys with our prefix --------------------------------------------------
mkkey() { ssh-keygen -q -t ed25519 -N '' -C "" -f "$_TMP/k$1" && cut -d' ' -f1,2 "$_TMP/k$1.pub"; }
forge_ctl seed "{\"repo\": \"team/app\", \"title\": \"bottled:$INSTANCE:ghost:app\", \"key\": \"$(mkkey 1)\"}"
forge_ctl seed "{\"repo\": \"team/app\", \"title\": \"bottled:000000000000:kb:app\", \"key\": \"$(mkkey 2)\"}"
forge_ctl seed "{\"repo\": \"team/app\", \"title\": \"a person's key\", \"key\": \"$(mkkey 3)\"}"
bd gc "${GFLAGS[@]}"
assert_eq 0 "$RC" "gc exits 0 ($(said))"
assert_eq "a person's key|bottled:000000000000:kb:app|$TITLE" \
    "$(keyq "'|'.join(sorted(k['title'] for k in K['team/app']))")" \
    "gc deleted the orphan key with our prefix, left the other instance's, the person's and the bottle's own"

# ---- 6. delete with the forge down -----------------------------------------------------
rm "$M/kb.md"
forge_ctl fault '{"count": 1000, "status": 503, "body": {"message": "down for maintenance"}}'
bd reconcile --once --json --allow-empty "${GFLAGS[@]}"
assert_eq 1 "$RC" "the delete fails while the forge is down ($(said))"
"$BOTTLED_BIN" status --state-dir "$STATE" --json >"$OUT" 2>"$ERR" || true
assert_eq "Deleting" "$(json "[b['phase'] for b in d['bottles'] if b['name'] == 'kb'][0]")" "the bottle stays Deleting"
assert_eq "$(names_of "$INSTANCE" kb | tr ' ' '\n' | grep -c -e '-int$' -e '-egr$' -e '-work$' -e '-cfg$')" 4 \
    "its networks and volumes stay until the keys are gone"
assert_eq "" "$(names_of "$INSTANCE" kb | tr ' ' '\n' | grep -e '-agent$' -e '-gate$' -e '-proxy$' || true)" \
    "its containers were removed first"
forge_ctl clear '{}'
assert_eq 1 "$(n_ours)" "the key is still at the forge"
bd reconcile --once --json --allow-empty "${GFLAGS[@]}"
assert_eq 0 "$RC" "once the forge answers, the delete finishes ($(said))"
assert_eq 0 "$(n_ours)" "the key is deleted at the forge"
assert_eq "" "$(names_of "$INSTANCE" kb)" "every engine resource of the bottle is gone"
assert_eq "0|0" "$(sqlite3 "$STATE/state.db" "SELECT (SELECT count(*) FROM deploy_keys), (SELECT count(*) FROM bottles WHERE name='kb')")" \
    "records forgotten last"
if [ -e "$KEYDIR/id_ed25519" ]; then fail "the key file is removed"; else pass "the key file is removed"; fi

# ---- 7. the token's host binding must cover the forge's API host -----------------------
WRONG=t0600-wrong-$RANDOM$RANDOM
write_secrets "$SECRETS" "CLAUDE_OAUTH_TOKEN@api.anthropic.com=t0600-claude-$RANDOM" \
    "T0600_FORGE_TOKEN@forge.example.com=$WRONG"
bottle_md "$M" kz "$(printf '%s\n' "$REPO_YAML" | sed '/^    lib:/,$d')"
bd reconcile --once --json "${GFLAGS[@]}"
assert_eq 1 "$RC" "a token bound to another host fails the bottle ($(said))"
case "$(json "$(jb kz)['error']")" in
*T0600_FORGE_TOKEN*localhost* | *localhost*T0600_FORGE_TOKEN*) pass "the error names the secret and the API host" ;;
*) fail "the error names the secret and the API host: $(json "$(jb kz)['error']")" ;;
esac
assert_eq 0 "$(keyq "len([k for k in K['team/app'] if k['title'] == 'bottled:$INSTANCE:kz:app'])")" \
    "no key is registered with it"
assert_eq "" "$(names_of "$INSTANCE" kz | tr ' ' '\n' | grep -e '-proxy$' -e '-agent$' -e '-gate$' || true)" \
    "no container starts before its keys are registered"
if grep -qF "$WRONG" "$ALL_OUTPUT"; then fail "the token is not printed"; else pass "the token is not printed"; fi
