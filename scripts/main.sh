#!/usr/bin/env bash
# scripts/main.sh - the main job: set up (packages, engines, images), build
# (and the sidecar image from that build), validate examples/, then
# reconcile the runnable demo (examples/demo: two bottles) against the local
# engine with its own state dir (build/demo-state, or $BOTTLED_DEMO_STATE),
# name prefix and demo secrets file, and show `bottled status`.
#   bash scripts/main.sh [setup.sh options, e.g. --sandbox-engine-config]
# Exits with `bottled reconcile --once`'s exit code.  Idempotent: a second
# run changes nothing on the engine.
set -euo pipefail
LOG_TAG=main
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap step_exit_report EXIT
cd "$(repo_root)"

step setup bash scripts/setup.sh "$@"
step configure cmake -S . -B build
step build cmake --build build -j2
step proxy-image bash scripts/build-proxy-image.sh build
step gate-image bash scripts/build-gate-image.sh build

[ -x build/reconciler/bottled ] || die "build/reconciler/bottled was not built"
B=build/reconciler/bottled
step validate "$B" validate -d examples

# The demo: examples/demo reconciled against the local engine, with its own
# state dir, name prefix and a demo secrets file (no real credential).
DEMO_STATE=${BOTTLED_DEMO_STATE:-$(pwd)/build/demo-state}
mkdir -p "$DEMO_STATE"
chmod 0700 "$DEMO_STATE"
if [ ! -f "$DEMO_STATE/secrets" ]; then
    (
        umask 077
        printf 'CLAUDE_OAUTH_TOKEN@api.anthropic.com=demo-token-not-a-real-credential\n' \
            >"$DEMO_STATE/secrets"
    )
fi
DEMO=(-d examples/demo --state-dir "$DEMO_STATE" --secrets "$DEMO_STATE/secrets"
    --name-prefix bottled-demo)
log "running: $B reconcile --once ${DEMO[*]}"
rc=0
"$B" reconcile --once "${DEMO[@]}" || rc=$?
log "bottled reconcile --once: exit $rc ($([ "$rc" = 0 ] && echo converged || echo FAILED))"
"$B" status --state-dir "$DEMO_STATE" || true
log "try it: podman exec -it bottled-demo-demo-shell-agent bash" \
    "(then: curl https://example.org/ is refused by the sidecar with 403)"
log "remove the demo: mkdir -p /tmp/no-bottles && $B gc -d /tmp/no-bottles --allow-empty" \
    "--force --state-dir $DEMO_STATE"
exit "$rc"
