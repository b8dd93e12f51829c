#!/usr/bin/env bash
# scripts/ci-chroot.sh - prove that scripts/setup.sh --deps-only installs all
# the build needs: a fresh `debootstrap --variant=minbase bookworm` tree, a
# clean copy of the sources (files git knows, nothing ignored, no build dirs),
# then setup.sh --deps-only, the cmake build and `ctest -L unit` inside it.
#
#   bash scripts/ci-chroot.sh
#
# Environment: KEEP_CHROOT=1 keeps the tree (path printed) for debugging;
# CHROOT_CACHE (default /var/cache/bottled-chroot) keeps downloaded .debs
# between runs (downloads only: every run installs into a fresh tree).
set -euo pipefail
LOG_TAG=ci-chroot
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(repo_root)"
SRC=$PWD

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mount)"
command -v debootstrap >/dev/null || die "debootstrap missing: bash scripts/setup.sh"
MIRROR=$(debian_mirror) || die "no Debian mirror in the apt sources"
CACHE=${CHROOT_CACHE:-/var/cache/bottled-chroot}
mkdir -p "$CACHE/debootstrap" "$CACHE/apt"

WORK=$(mktemp -d /var/tmp/bottled-chroot.XXXXXX)
ROOT=$WORK/root
MOUNTS=()

mounts_under() { awk -v r="$ROOT" 'index($2, r "/") == 1 { print $2 }' /proc/self/mounts; }
cleanup() {
    local rc=$? m i
    set +e
    step_exit_report "$rc"
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        m=${MOUNTS[$i]}
        umount "$m" 2>/dev/null || umount -l "$m"
    done
    # anything still mounted below the tree (e.g. mounted by a package script)
    for m in $(mounts_under | sort -r); do umount -l "$m"; done
    if [ -n "$(mounts_under)" ]; then
        log "ERROR: still mounted below $ROOT, not deleting $WORK:"
        mounts_under >&2
        [ "$rc" -ne 0 ] || rc=1
    elif [ "${KEEP_CHROOT:-0}" = 1 ]; then
        log "kept $WORK (KEEP_CHROOT=1)"
    else
        rm -rf --one-file-system "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT

T0=$(now)
run_debootstrap() {
    log "debootstrap --variant=minbase bookworm $ROOT from $MIRROR"
    if ! debootstrap --variant=minbase --cache-dir="$CACHE/debootstrap" \
        bookworm "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
        tail -30 "$WORK/debootstrap.log" >&2
        die "debootstrap failed"
    fi
}
step debootstrap run_debootstrap

copy_sources() {
    mkdir -p "$ROOT/src"
    source_files | tar --null -T - -c -f - | tar -x -f - -C "$ROOT/src"
    log "copied $(find "$ROOT/src" -type f | wc -l) files into $ROOT/src"
}
prepare_root() {
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
    # no daemons from package scripts inside the chroot
    printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
    chmod 0755 "$ROOT/usr/sbin/policy-rc.d"
    mount -t proc proc "$ROOT/proc"
    MOUNTS+=("$ROOT/proc")
    mount --bind /dev "$ROOT/dev"
    MOUNTS+=("$ROOT/dev")
    # downloaded .debs only (the chroot's apt still installs everything itself)
    mount --bind "$CACHE/apt" "$ROOT/var/cache/apt/archives"
    MOUNTS+=("$ROOT/var/cache/apt/archives")
}
step copy-sources copy_sources
step prepare-root prepare_root

in_chroot() {
    chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive TERM=dumb \
        /bin/bash -c "set -euo pipefail; cd /src; $1"
}
step setup-deps-only in_chroot 'bash scripts/setup.sh --deps-only'
step configure in_chroot 'cmake -S . -B build'
step build in_chroot 'cmake --build build -j2'
step unit-tests in_chroot 'ctest --test-dir build -L unit --output-on-failure -j2'
log "chroot stage passed in $(elapsed "$T0") s"
