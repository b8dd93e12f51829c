#!/usr/bin/env bash
# t0100: the docker engine driver (drivers/engine_docker.c) against the real
# engine: networks, volumes, containers, archives, exec, errors and the
# mutation counter, through tests/engine/driver_test.c.  Its TAP lines are
# shown as notes; this script's one check is that it passed them all.
. "$(dirname "$0")/harness.sh"

: "${BOTTLED_DRIVER_TEST:?BOTTLED_DRIVER_TEST (the engine_driver_test program) must be set; ctest sets it}"
[ -x "$BOTTLED_DRIVER_TEST" ] || fatal "BOTTLED_DRIVER_TEST=$BOTTLED_DRIVER_TEST is executable"

require_engine

export BOTTLED_TEST_ENGINE=$ENGINE DOCKER_HOST=unix://$SOCK
rc=0
"$BOTTLED_DRIVER_TEST" "$RUN_ID" >"$_TMP/driver.tap" 2>&1 || rc=$?
sed 's/^/# /' "$_TMP/driver.tap"
summary=$(tail -n 1 "$_TMP/driver.tap")
if [ "$rc" = 0 ] && ! grep -q '^not ok' "$_TMP/driver.tap" && grep -q '^1\.\.[1-9]' "$_TMP/driver.tap"; then
    pass "driver test on $ENGINE: ${summary#\# }"
else
    fail "driver test on $ENGINE exited $rc: ${summary#\# }"
fi
