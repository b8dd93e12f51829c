#!/usr/bin/env bash
# scripts/main.sh - the main job: set up (packages, engines, images), build
# (and the sidecar image from that build), then validate the example bottles
# with the real binary.
#   bash scripts/main.sh [setup.sh options, e.g. --sandbox-engine-config]
# Exits with `bottled validate`'s exit code.
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

[ -x build/reconciler/bottled ] || die "build/reconciler/bottled was not built"
log "running: build/reconciler/bottled validate -d examples"
rc=0
build/reconciler/bottled validate -d examples || rc=$?
log "bottled validate -d examples: exit $rc ($([ "$rc" = 0 ] && echo valid || echo FAILED))"
exit "$rc"
