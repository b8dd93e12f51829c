#!/usr/bin/env bash
# The git gate as a process on the host, in front of a real sshd upstream
# reached through a real sidecar's raw tunnel (bottle-proxy connect as
# ssh's ProxyCommand): clone and fetch see upstream's commits; a clean push
# (also a large, chunked one) lands upstream; a credential in a blob, in a
# middle commit a later one removes, in a commit message or in an annotated
# tag refuses the push, naming file/commit/detector but never the value, and
# nothing reaches upstream; an over-cap blob is refused; upstream's
# non-fast-forward refusal is the agent's, with upstream's message; a wrong
# key is an auth failure in status.json; an empty host_key is learned,
# recorded and pinned, and a changed upstream host key is then refused;
# upstream's own hook refusing is the agent's refusal too; a push over the
# per-push cap is refused; requests beyond --max-conns get 503.
. "$(dirname "$0")/../proxy/live.sh"

live_setup 70
gate_upstream_setup
live_start
GATE_EXTRA='{"max_blob_bytes": 4194304}' gate_config
gate_start || { finish; exit 1; }
URL=$(GATE_URL)
W=$TMP/work
UP0=$(up_git rev-parse main)

# --- clone / fetch
run agent_git clone -q "$URL" "$W"
expect_rc 0 "clone through the gate"
expect_eq "$(agent_git -C "$W" rev-parse HEAD 2>&1)" "$UP0" "the clone has upstream's main"
expect_eq "$(cat "$W/README" 2>&1)" "hello from upstream" "and its files, HEAD checked out"
expect_in "$AUDIT" '"raw tunnel closed"' "the gate's ssh went through the sidecar's raw tunnel"

S=$TMP/side
agent_git clone -q "$UPREPO" "$S"
echo more >>"$S/README"
agent_git -C "$S" commit -q -am "upstream: second commit"
agent_git -C "$S" push -q origin main
UP1=$(up_git rev-parse main)
run agent_git -C "$W" pull -q --ff-only
expect_rc 0 "fetch through the gate"
expect_eq "$(agent_git -C "$W" rev-parse HEAD)" "$UP1" "a fetch sees a commit pushed upstream meanwhile"

# --- clean push, then a large one (chunked request body)
echo "agent work" >"$W/work.txt"
agent_git -C "$W" add work.txt
agent_git -C "$W" commit -q -m "agent: clean work"
run agent_git -C "$W" push origin main
expect_rc 0 "a clean push is accepted" "$(cat "$TMP/err")"
expect_eq "$(up_git rev-parse main)" "$(agent_git -C "$W" rev-parse HEAD)" "it landed upstream"
head -c $((3 << 20)) /dev/urandom | base32 -w 100 | head -c $((3 << 20)) >"$W/big.txt"
agent_git -C "$W" add big.txt
agent_git -C "$W" commit -q -m "agent: 3 MiB of text"
run agent_git -C "$W" -c http.postBuffer=65536 push origin main
expect_rc 0 "a 3 MiB push with a chunked body is accepted" "$(tail -5 "$TMP/err")"
expect_eq "$(up_git rev-parse main)" "$(agent_git -C "$W" rev-parse HEAD)" "it landed upstream"
expect_in "$GERR" "POST /proj.git/git-receive-pack: 200" "the gate logged the receive-pack"

# refused WHAT: the last push failed, upstream and the mirror did not move, no secret shown.
refused() {
    local what=$1 before=$2
    expect_rc 1 "$what: push refused"
    expect_eq "$(up_git rev-parse main)" "$before" "$what: nothing reached upstream's main"
    expect_eq "$(git --git-dir="$GROOT/proj.git" rev-parse main)" "$before" "$what: the mirror did not move"
    expect_not_in "$TMP/err" "$SECRET_AWS" "$what: the value is not in the agent's output"
    expect_not_in "$TMP/err" "$SECRET_GH" "$what: (nor the other one)"
    expect_not_in "$GERR" "$SECRET_AWS" "$what: nor in the gate's log"
}
reset_agent() { agent_git -C "$W" fetch -q origin && agent_git -C "$W" reset -q --hard origin/main; }

# --- a credential in a file
reset_agent
BEFORE=$(up_git rev-parse main)
printf 'aws_key = "%s"\n' "$SECRET_AWS" >"$W/config.py"
agent_git -C "$W" add config.py
agent_git -C "$W" commit -q -m "agent: add config"
C1=$(agent_git -C "$W" rev-parse HEAD)
run agent_git -C "$W" push origin main
refused "secret in a file" "$BEFORE"
expect_in "$TMP/err" "config.py in $C1: credential found by detector 'aws_access_key_id'" \
    "the refusal names file, commit and detector"
expect_in "$TMP/err" "pre-receive hook declined" "git reports the hook's refusal"

# --- in a middle commit that a later commit removes
reset_agent
printf 'token: %s\n' "$SECRET_GH" >"$W/notes.md"
agent_git -C "$W" add notes.md
agent_git -C "$W" commit -q -m "agent: notes"
C2=$(agent_git -C "$W" rev-parse HEAD)
agent_git -C "$W" rm -q notes.md
agent_git -C "$W" commit -q -m "agent: remove the notes again"
run agent_git -C "$W" push origin main
refused "secret in a middle commit" "$BEFORE"
expect_in "$TMP/err" "notes.md in $C2: credential found by detector 'github_token'" \
    "the refusal names the middle commit that added it"

# --- in a commit message
reset_agent
echo ok >"$W/ok.txt"
agent_git -C "$W" add ok.txt
agent_git -C "$W" commit -q -m "agent: deploy with $SECRET_AWS"
C3=$(agent_git -C "$W" rev-parse HEAD)
run agent_git -C "$W" push origin main
refused "secret in a commit message" "$BEFORE"
expect_in "$TMP/err" "commit message of $C3: credential found by detector 'aws_access_key_id'" \
    "the refusal names the commit message"

# --- in an annotated tag
reset_agent
agent_git -C "$W" tag -a v1 -m "release, token $SECRET_GH"
run agent_git -C "$W" push origin v1
expect_rc 1 "secret in an annotated tag: push refused"
expect_in "$TMP/err" "tag v1 (" "the refusal names the tag"
expect_in "$TMP/err" "credential found by detector 'github_token'" "and the detector"
expect_not_in "$TMP/err" "$SECRET_GH" "the tag's secret is not shown"
expect_eq "$(up_git tag -l)" "" "the tag did not reach upstream"
agent_git -C "$W" tag -d v1 >/dev/null
agent_git -C "$W" tag -a v1 -m "release one"
run agent_git -C "$W" push origin v1
expect_rc 0 "a clean annotated tag is pushed" "$(cat "$TMP/err")"
expect_eq "$(up_git tag -l)" "v1" "and lands upstream"

# --- a blob over the per-file cap
reset_agent
head -c $((5 << 20)) /dev/zero | tr '\0' 'a' >"$W/huge.txt"
agent_git -C "$W" add huge.txt
agent_git -C "$W" commit -q -m "agent: huge"
C4=$(agent_git -C "$W" rev-parse HEAD)
run agent_git -C "$W" push origin main
refused "blob over the cap" "$BEFORE"
expect_in "$TMP/err" "huge.txt in $C4: 5242880 bytes, over the gate's scan limit of 4194304 bytes per file" \
    "the refusal names the file and the cap"

# --- a push over the per-push cap (the hook reads config.json at every push)
reset_agent
GATE_EXTRA='{"max_blob_bytes": 4194304, "max_push_bytes": 150000}' gate_config
head -c 100000 /dev/zero | tr '\0' 'b' >"$W/part1.txt"
head -c 100000 /dev/zero | tr '\0' 'c' >"$W/part2.txt"
agent_git -C "$W" add part1.txt part2.txt
agent_git -C "$W" commit -q -m "agent: two parts"
run agent_git -C "$W" push origin main
refused "push over the cap" "$BEFORE"
expect_in "$TMP/err" "the push carries more than 150000 bytes of new content" "the refusal names the per-push cap"
GATE_EXTRA='{"max_blob_bytes": 4194304}' gate_config

# --- upstream's own hook refuses: its message reaches the agent
reset_agent
cat >"$UPREPO/hooks/pre-receive" <<'HOOK'
#!/bin/sh
while read -r old new ref; do
    [ "$ref" != refs/heads/protected ] || { echo "upstream policy: protected is read-only" >&2; exit 1; }
done
HOOK
chmod +x "$UPREPO/hooks/pre-receive"
run agent_git -C "$W" push origin main:protected
expect_rc 1 "upstream's hook refuses: the agent's push fails"
expect_in "$TMP/err" "upstream policy: protected is read-only" "with upstream's hook message"
expect_eq "$(git --git-dir="$GROOT/proj.git" rev-parse --verify -q protected || echo absent)" absent \
    "the mirror did not take the refused ref"
rm -f "$UPREPO/hooks/pre-receive"

# --- upstream refuses a non-fast-forward: the agent sees upstream's message
reset_agent
agent_git -C "$W" reset -q --hard HEAD~1
echo rewritten >"$W/rewrite.txt"
agent_git -C "$W" add rewrite.txt
agent_git -C "$W" commit -q -m "agent: rewritten history"
run agent_git -C "$W" push --force origin main
refused "non-fast-forward" "$BEFORE"
expect_in "$TMP/err" "denying non-fast-forward refs/heads/main" "upstream's own message reaches the agent"
expect_in "$TMP/err" "push refused by upstream" "the gate says upstream refused"

# --- deleting a branch is upstream's call too
reset_agent
agent_git -C "$W" push -q origin main:topic 2>/dev/null
expect_eq "$(up_git rev-parse --verify -q topic)" "$BEFORE" "a new branch lands upstream"
run agent_git -C "$W" push origin :topic
expect_rc 0 "deleting it through the gate" "$(cat "$TMP/err")"
expect_eq "$(up_git rev-parse --verify -q topic || echo gone)" gone "it is deleted upstream"

# --- only the smart protocol of configured repos
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
expect_eq "$(code "http://127.0.0.1:$GPORT/other.git/info/refs?service=git-upload-pack")" 404 "an unknown repo: 404"
expect_eq "$(code "http://127.0.0.1:$GPORT/proj.git/info/refs")" 404 "the dumb protocol: 404"
expect_eq "$(code "http://127.0.0.1:$GPORT/proj.git/HEAD")" 404 "a raw file: 404"
expect_eq "$(code --path-as-is "http://127.0.0.1:$GPORT/../proj.git/info/refs?service=git-upload-pack")" 404 "a dot-dot path: 404"
expect_eq "$(code --path-as-is "http://127.0.0.1:$GPORT/proj.git/../proj.git/info/refs?service=git-upload-pack")" 404 "a dot-dot after the repo: 404"

# --- a wrong key: the gate's fetch fails, status.json records an auth failure
cp "$TMP/gate/keys/proj" "$TMP/goodkey"
cp "$TMP/wrongkey" "$TMP/gate/keys/proj"
run agent_git -C "$W" fetch origin
expect_rc 128 "a fetch fails while upstream refuses the gate's key"
expect_eq "$(status_json '[(a["repo"], "Permission denied" in a["message"], a["at"] > 1.7e9) for a in s["auth_failures"]]')" \
    "[('proj', True, True)]" "status.json: one auth failure for proj"
cp "$TMP/goodkey" "$TMP/gate/keys/proj"
run agent_git -C "$W" fetch origin
expect_rc 0 "with the right key again, fetching works"
expect_eq "$(stat -c %a "$TMP/gate/status.json")" 600 "status.json is 0600"

# --- no secret of the gate anywhere in its output
expect_not_in "$GERR" "$GATE_TOKEN" "the tunnel token is not in the gate's log"
expect_not_in "$GERR" "PRIVATE KEY" "no key material in the gate's log"
gate_stop

# --- empty host_key: learned on first use, recorded, pinned
GATE_EXTRA='' gate_config ""
rm -rf "$GROOT"
: >"$GERR"
gate_start || { finish; exit 1; }
W2=$TMP/work2
run agent_git clone -q "$URL" "$W2"
expect_rc 0 "clone through a gate without host_key"
expect_in "$GERR" "learned git.test:2222's key on first use" "the gate warns that it learned the key"
expect_eq "$(status_json 's["learned_host_keys"]')" "[{'repo': 'proj', 'host_key': '$(host_key_of host_ed25519)'}]" \
    "status.json records the learned key"
expect_in "$GROOT/.gate/proj.ssh_config" "StrictHostKeyChecking yes" "the repo is switched to strict checking"
run agent_git -C "$W2" fetch origin
expect_rc 0 "a second fetch with the pinned key"
expect_eq "$(grep -c 'learned' "$GERR")" 1 "learned once, not again"
sshd_start other_ed25519
run agent_git -C "$W2" fetch origin
expect_rc 128 "after upstream's host key changed, the gate refuses to fetch"
expect_in "$GERR" "Host key verification failed" "the gate's log says why"
expect_eq "$(status_json 'len(s["learned_host_keys"])')" 1 "the changed key is not learned"
gate_stop

# --- bounded concurrency: with --max-conns 1, a connection holding the slot makes the next a 503
GATE_ARGS="--max-conns 1" gate_start || { finish; exit 1; }
exec 8<>"/dev/tcp/127.0.0.1/$GPORT"
sleep 0.3
expect_eq "$(code "http://127.0.0.1:$GPORT/proj.git/info/refs?service=git-upload-pack")" 503 \
    "a request beyond --max-conns gets 503"
exec 8>&-
sleep 0.3
expect_eq "$(code "http://127.0.0.1:$GPORT/other.git/info/refs?service=git-upload-pack")" 404 \
    "once the slot is free, requests are served again"

finish
