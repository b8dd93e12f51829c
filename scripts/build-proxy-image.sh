#!/usr/bin/env bash
# scripts/build-proxy-image.sh - build localhost/bottled-proxy:<version>
# from a built tree, in every engine that answers.
#
#   bash scripts/build-proxy-image.sh [BUILD_DIR]     (default: build)
#
# The image is localhost/bottled-debian:latest (made by scripts/setup.sh)
# plus the bottle-proxy binary and the shared libraries it links that are
# not glibc's (sidecar-proxy/Containerfile). It is rebuilt only when the
# binary changed (its sha256 is a label of the image); FORCE_IMAGES=1
# rebuilds anyway. Podman builds it; Docker gets the same image through
# `podman save | docker load`, so both engines run identical bits.
set -euo pipefail
LOG_TAG=proxy-image
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(repo_root)"

BUILD=${1:-build}
BIN=$BUILD/sidecar-proxy/bottle-proxy
[ -x "$BIN" ] || die "$BIN is not built (cmake --build $BUILD)"
VERSION=$(sed -n 's/^#define BOTTLED_VERSION "\(.*\)"$/\1/p' "$BUILD/generated/build_config.h")
[ -n "$VERSION" ] || die "no BOTTLED_VERSION in $BUILD/generated/build_config.h"
TAG=localhost/bottled-proxy:$VERSION
SUM=$(sha256sum "$BIN" | cut -d' ' -f1)
image_from_binary "$TAG" sidecar-proxy/Containerfile io.bottled.binary-sha256 "$SUM" BINARY_SHA256 "$BIN"
