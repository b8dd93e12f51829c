# tests/cli/lib.sh - a small harness for shell tests of the real binaries.
#
# Usage in a test:  . "$(dirname "$0")/lib.sh"; ... ; finish
# BOTTLED is the binary under test (first argument of every test script).
# Each check prints "ok N - what" or "not ok N - what" with the evidence;
# finish exits non-zero if any check failed, and prints "N passed, N failed".
set -u
BOTTLED=${1:?usage: $0 PATH-TO-bottled}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bottled-cli.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
PASS=0
FAIL=0

ok() { PASS=$((PASS + 1)); echo "ok $((PASS + FAIL)) - $1"; }
not_ok() {
    FAIL=$((FAIL + 1))
    echo "not ok $((PASS + FAIL)) - $1"
    shift
    for l in "$@"; do printf '    %s\n' "$l"; done
}

# run CMD...: runs with stdout in $TMP/out, stderr in $TMP/err, status in $RC
run() {
    set +e
    "$@" >"$TMP/out" 2>"$TMP/err"
    RC=$?
    set -e
}

expect_rc() { # expected what
    if [ "$RC" = "$1" ]; then ok "$2 (exit $1)"; else
        not_ok "$2: exit $RC, expected $1" "stdout: $(head -c 2000 "$TMP/out")" \
            "stderr: $(head -c 2000 "$TMP/err")"
    fi
}

expect_in() { # file fixed-string what
    if grep -qF -- "$2" "$1"; then ok "$3"; else
        not_ok "$3: '$2' not found in $(basename "$1")" "$(head -c 2000 "$1")"
    fi
}

expect_not_in() { # file fixed-string what
    if grep -qF -- "$2" "$1"; then not_ok "$3: '$2' found in $(basename "$1")" "$(head -c 2000 "$1")"; else
        ok "$3"
    fi
}

expect_eq() { # got expected what
    if [ "$1" = "$2" ]; then ok "$3"; else not_ok "$3" "got:      $1" "expected: $2"; fi
}

# json EXPR: evaluates a Python expression over the JSON in $TMP/out (bound to j)
json() {
    /usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
        "$TMP/out" "$1"
}

finish() {
    echo "$PASS passed, $FAIL failed"
    [ "$FAIL" = 0 ]
}

set -e
