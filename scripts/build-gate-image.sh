#!/usr/bin/env bash
# scripts/build-gate-image.sh - build localhost/bottled-gate:<version> (the
# git gate) from a built tree, in every engine that answers.
#
#   bash scripts/build-gate-image.sh [BUILD_DIR]     (default: build)
#
# The image is localhost/bottled-debian:latest (made by scripts/setup.sh,
# with git and openssh-client) plus the bottle-proxy binary and the shared
# libraries it links that are not glibc's (sidecar-proxy/Containerfile.gate),
# entrypoint `bottle-proxy gate --config /gate/config.json`, uid 10098.  It
# is rebuilt only when the binary, the Containerfile or the base image
# changed (their combined sha256 is a label of the image); FORCE_IMAGES=1
# rebuilds anyway. Podman builds it; Docker gets the same image through
# `podman save | docker load`, so both engines run identical bits.
set -euo pipefail
LOG_TAG=gate-image
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(repo_root)"

BUILD=${1:-build}
BIN=$BUILD/sidecar-proxy/bottle-proxy
CF=sidecar-proxy/Containerfile.gate
BASE=localhost/bottled-debian:latest
[ -x "$BIN" ] || die "$BIN is not built (cmake --build $BUILD)"
VERSION=$(sed -n 's/^#define BOTTLED_VERSION "\(.*\)"$/\1/p' "$BUILD/generated/build_config.h")
[ -n "$VERSION" ] || die "no BOTTLED_VERSION in $BUILD/generated/build_config.h"
TAG=localhost/bottled-gate:$VERSION
engine_answers /run/podman/podman.sock || die "podman does not answer (bash scripts/setup.sh)"
BASE_ID=$(podman image inspect --format '{{.Id}}' "$BASE" 2>/dev/null) ||
    die "$BASE is missing in podman (bash scripts/setup.sh)"
podman run --rm --pull=never --entrypoint /bin/sh "$BASE" -c 'command -v ssh' >/dev/null ||
    die "$BASE has no ssh client: rerun bash scripts/setup.sh (openssh-client is in DEBIAN_INCLUDE)"
SUM=$({ sha256sum "$BIN" "$CF" | cut -d' ' -f1; echo "$BASE_ID"; } | sha256sum | cut -d' ' -f1)
image_from_binary "$TAG" "$CF" io.bottled.build-sha256 "$SUM" BUILD_SHA256 "$BIN"
