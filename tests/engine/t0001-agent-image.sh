#!/usr/bin/env bash
# t0001: the default agent image, as a user's agent sees it, through the
# engine's Docker-compatible API: non-root user, /workspace as its writable
# working directory, curl, git and the CA bundle present.
. "$(dirname "$0")/harness.sh"

IMAGE=localhost/bottled-agent:latest

require_engine

code=$(api_code GET "/images/$(urlenc "$IMAGE")/json")
[ "$code" = 200 ] || fatal "image $IMAGE exists in $ENGINE (HTTP $code; run: bash scripts/setup.sh)"
pass "image $IMAGE exists"

cid=$(start_container "$IMAGE" '["sleep","600"]') || fatal "create+start a container from $IMAGE"
pass "container from $IMAGE started"

state=$(api GET "/containers/$cid/json" | jget State Status)
assert_eq running "$state" "container is running"
user=$(api GET "/containers/$cid/json" | jget Config User)
assert_eq agent "$user" "image default user is 'agent'"

rc=$(exec_in "$cid" 'id -u') || fatal "exec in the container"
uid=$(tr -d '\r\n' <"$EXEC_OUT_FILE")
if [ "$rc" = 0 ] && [ -n "$uid" ] && [ "$uid" != 0 ]; then
    pass "runs as a non-root user (uid $uid)"
else
    fail "runs as a non-root user: 'id -u' exited $rc and printed '$uid'"
fi
exec_in "$cid" 'id -un' >/dev/null || true
assert_eq agent "$(tr -d '\r\n' <"$EXEC_OUT_FILE")" "user name is agent"

exec_in "$cid" 'pwd' >/dev/null || true
assert_eq /workspace "$(tr -d '\r\n' <"$EXEC_OUT_FILE")" "working directory is /workspace"

check_exec "$cid" "the user can write to /workspace" \
    'echo hello >/workspace/t0001 && test "$(cat /workspace/t0001)" = hello && rm /workspace/t0001'
check_exec "$cid" "HOME is the user's and writable" \
    'test "$HOME" = /home/agent && touch "$HOME/.t0001"'
check_exec "$cid" "curl --version works" 'curl --version | head -n1 | grep -q "^curl "'
check_exec "$cid" "git --version works" 'git --version | grep -q "^git version "'
check_exec "$cid" "CA bundle /etc/ssl/certs/ca-certificates.crt exists" \
    'test -s /etc/ssl/certs/ca-certificates.crt'
check_exec "$cid" "the user cannot write outside its home and /workspace" \
    '! touch /etc/t0001 2>/dev/null'
