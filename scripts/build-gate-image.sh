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
PODMAN_SOCK=/run/podman/podman.sock
DOCKER_SOCK=/run/docker.sock

answers() { curl -sf --max-time 2 --unix-socket "$1" http://d/_ping >/dev/null 2>&1; }
label_of() { # engine-cli... : the build label of $TAG, empty if absent
    "$@" image inspect --format '{{ index .Config.Labels "io.bottled.build-sha256" }}' "$TAG" \
        2>/dev/null || true
}

answers "$PODMAN_SOCK" || die "podman does not answer on $PODMAN_SOCK (bash scripts/setup.sh)"
BASE_ID=$(podman image inspect --format '{{.Id}}' "$BASE" 2>/dev/null) ||
    die "$BASE is missing in podman (bash scripts/setup.sh)"
SUM=$({ sha256sum "$BIN" "$CF" | cut -d' ' -f1; echo "$BASE_ID"; } | sha256sum | cut -d' ' -f1)
if [ "${FORCE_IMAGES:-0}" != 1 ] && [ "$(label_of podman)" = "$SUM" ]; then
    log "podman: $TAG is current"
else
    podman run --rm --pull=never --entrypoint /bin/sh "$BASE" -c 'command -v ssh' >/dev/null ||
        die "$BASE has no ssh client: rerun bash scripts/setup.sh (openssh-client is in DEBIAN_INCLUDE)"
    ctx=$(mktemp -d)
    trap 'rm -rf "$ctx"' EXIT
    mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/usr/local/lib/bottle-proxy" \
        "$ctx/rootfs/etc/ld.so.conf.d"
    install -m 0755 "$BIN" "$ctx/rootfs/usr/local/bin/bottle-proxy"
    # Every linked library but glibc's own (the base is the same Debian
    # release, so its glibc is the one we built against).
    ldd "$BIN" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' |
        grep -Ev '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*)\.so' |
        while read -r lib; do cp -L "$lib" "$ctx/rootfs/usr/local/lib/bottle-proxy/"; done
    echo /usr/local/lib/bottle-proxy >"$ctx/rootfs/etc/ld.so.conf.d/bottle-proxy.conf"
    cp "$CF" "$ctx/Containerfile"
    log "podman: building $TAG"
    podman build -q --pull=never --build-arg "BUILD_SHA256=$SUM" -t "$TAG" "$ctx" >/dev/null
fi

if answers "$DOCKER_SOCK"; then
    if [ "${FORCE_IMAGES:-0}" != 1 ] && [ "$(label_of env DOCKER_HOST="unix://$DOCKER_SOCK" docker)" = "$SUM" ]; then
        log "docker: $TAG is current"
    else
        log "docker: loading $TAG from podman"
        podman save --format docker-archive "$TAG" |
            DOCKER_HOST="unix://$DOCKER_SOCK" docker load -q >/dev/null
    fi
fi
log "$TAG ready (build sha256 ${SUM:0:12})"
