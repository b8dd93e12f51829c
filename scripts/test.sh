#!/usr/bin/env bash
# scripts/test.sh - the whole test run, as CI runs it (.ci/run execs this).
#
#   bash scripts/test.sh [--quick] [setup.sh options]
#
#   --quick   skip the fuzz build and the chroot stage (developer runs)
#   other options go to scripts/setup.sh (e.g. --sandbox-engine-config;
#   under CI=true the engine configuration is applied anyway)
#
# Environment: SKIP_CHROOT=1 skips the chroot stage; FUZZ_SECONDS=N runs each
# fuzz target N seconds after the fuzz build; BOTTLED_TEST_JOBS (default 2).
#
# Stages (each prints its wall time; the first failure stops the run):
#   setup, format, gcc build + unit/integration/fuzz tests, the sidecar image
#   (localhost/bottled-proxy, from that build), ASan/UBSan build with the
#   fault hook (BOTTLED_FAULT_HOOKS, so the crash test engine/t0400-crash is
#   registered) + all tests on Podman + smoke tests on Docker, clang fuzz
#   build, clean chroot.
set -euo pipefail
LOG_TAG=test
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(repo_root)"

QUICK=0
SETUP_ARGS=()
for arg in "$@"; do
    case "$arg" in
    --quick) QUICK=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) SETUP_ARGS+=("$arg") ;;
    esac
done
JOBS=${BOTTLED_TEST_JOBS:-2}
PODMAN_HOST=unix:///run/podman/podman.sock
DOCKER_DAEMON_HOST=unix:///run/docker.sock

T_ALL=$(now)
SUMMARY=()
CURRENT=""
T_STAGE=""
stage() { # NAME FUNCTION
    CURRENT=$1
    T_STAGE=$(now)
    printf '\n==== stage %s ====\n' "$1" >&2
    "$2"
    SUMMARY+=("$1 $(elapsed "$T_STAGE")s")
    log "stage $1: ok in $(elapsed "$T_STAGE") s"
    CURRENT=""
}
skip() { # NAME REASON
    SUMMARY+=("$1 skipped")
    log "stage $1: skipped ($2)"
}
finish() {
    local rc=$?
    if [ "$rc" -ne 0 ] && [ -n "$CURRENT" ]; then
        SUMMARY+=("$CURRENT FAILED($(elapsed "$T_STAGE")s)")
    fi
    local IFS=,
    if [ "$rc" -eq 0 ]; then
        printf '\n[test] SUMMARY: PASS in %s s: %s\n' "$(elapsed "$T_ALL")" "${SUMMARY[*]}" >&2
    else
        printf '\n[test] SUMMARY: FAIL (exit %d) in %s s: %s\n' "$rc" "$(elapsed "$T_ALL")" \
            "${SUMMARY[*]}" >&2
    fi
    exit "$rc"
}
trap finish EXIT

st_setup() { bash scripts/setup.sh "${SETUP_ARGS[@]}"; }

st_format() { bash scripts/check-format.sh; }

st_gcc() {
    cmake -S . -B build
    cmake --build build -j"$JOBS"
    ctest --test-dir build --output-on-failure -j"$JOBS" -L 'unit|integration|fuzz'
}

st_proxy_image() { bash scripts/build-proxy-image.sh build && bash scripts/build-gate-image.sh build; }

st_asan() {
    # the fault hook only in this test build (never in the gcc build the
    # sidecar image comes from): it registers the crash test (label crash),
    # which runs with everything on Podman and not in the smoke-only Docker pass
    cmake -S . -B build-asan -DBOTTLED_SANITIZE=ON -DBOTTLED_FAULT_HOOKS=ON -DCMAKE_BUILD_TYPE=Debug
    cmake --build build-asan -j"$JOBS"
    log "all tests (crash test included), engine tests on podman ($PODMAN_HOST)"
    BOTTLED_TEST_ENGINE=podman DOCKER_HOST=$PODMAN_HOST \
        ctest --test-dir build-asan --output-on-failure -j"$JOBS"
    log "smoke tests on docker ($DOCKER_DAEMON_HOST)"
    BOTTLED_TEST_ENGINE=docker DOCKER_HOST=$DOCKER_DAEMON_HOST \
        ctest --test-dir build-asan --output-on-failure -j"$JOBS" -L smoke --no-tests=error
}

st_fuzz() {
    CC=clang cmake -S . -B build-fuzz -DBOTTLED_FUZZ=ON
    cmake --build build-fuzz -j"$JOBS"
    if [ -z "${FUZZ_SECONDS:-}" ]; then
        log "fuzz targets built; set FUZZ_SECONDS=N to run each for N seconds"
        return 0
    fi
    # convention: targets are executables named fuzz_<name>; seed corpus in
    # tests/fuzz/corpus/<name>/ (copied: a run never writes into the tree)
    local t name work
    work=$(mktemp -d)
    while IFS= read -r t; do
        name=$(basename "$t")
        name=${name#fuzz_}
        mkdir -p "$work/$name"
        if [ -d "tests/fuzz/corpus/$name" ]; then cp -r "tests/fuzz/corpus/$name/." "$work/$name/"; fi
        log "fuzzing $name for $FUZZ_SECONDS s"
        (cd "$work" && "$t" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 \
            -artifact_prefix="$PWD/build-fuzz/" "$work/$name") || {
            rm -rf "$work"
            die "fuzz target $name failed (reproducer: build-fuzz/crash-* etc.)"
        }
    done < <(find "$PWD/build-fuzz" -type f -name 'fuzz_*' ! -name '*.*' -perm -u+x | sort)
    rm -rf "$work"
}

st_chroot() { bash scripts/ci-chroot.sh; }

stage setup st_setup
stage format st_format
stage gcc-build-test st_gcc
stage proxy-image st_proxy_image
stage asan-engine-test st_asan
if [ "$QUICK" = 1 ]; then
    skip fuzz-build --quick
else
    stage fuzz-build st_fuzz
fi
if [ "$QUICK" = 1 ]; then
    skip chroot --quick
elif [ "${SKIP_CHROOT:-0}" = 1 ]; then
    skip chroot SKIP_CHROOT=1
else
    stage chroot st_chroot
fi
