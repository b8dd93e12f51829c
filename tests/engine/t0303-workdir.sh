#!/usr/bin/env bash
# t0303: the agent's work volume is writable by agent.user, whatever the image
# made of that directory: agent.user nobody with agent.workdir /data/work (a
# path the default image does not have) -> the volume root is nobody's, the
# agent writes there, and the file survives a recreate of the agent (env
# change) because the volume is kept.
. "$(dirname "$0")/harness.sh"
. "$(dirname "$0")/reconcile-lib.sh"

require_engine
require_images

M=$_TMP/manifests
mkdir -p "$M"
write_bottle() { # ENV-VALUE
    cat >"$M/wd.md" <<EOF2
---
agent:
  command: [sleep, infinity]
  user: nobody
  workdir: /data/work
env: {ROUND: "$1"}
---
t0303's agent.
EOF2
}
write_bottle 1
SECRETS=$_TMP/secrets
write_secrets "$SECRETS" "UNUSED@example.com=t0303-not-a-real-token"
STATE=$_TMP/state
INSTANCE=$(new_state "$STATE")
PREFIX=$(new_prefix t0303)
POOL=$(free_pool) || fatal "list the engine's networks"
[ -n "$POOL" ] || fatal "a free /24 in 10.213.0.0/16"
note "instance $INSTANCE, prefix $PREFIX, pool $POOL"
A=$PREFIX-wd-agent

bd reconcile --once --json
assert_rc 0 "the bottle is created"
check_exec "$A" "the agent runs as nobody in /data/work" \
    'test "$(id -un)" = nobody && test "$(pwd)" = /data/work'
check_exec "$A" "the work volume's root is owned by the agent's user" \
    'test "$(stat -c %U /data/work)" = nobody'
check_exec "$A" "the agent can write into its workdir" 'echo kept >/data/work/marker'

write_bottle 2
bd reconcile --once --json
assert_rc 0 "an env change recreates the agent"
check_exec "$A" "the new agent still writes there and sees the old file" \
    'test "$(cat /data/work/marker)" = kept && touch /data/work/again'
bd reconcile --once --json --detailed-exitcode
assert_eq "0 0" "$RC $(json 'd["summary"]["engine_changes"]')" "the next pass has nothing to do"
