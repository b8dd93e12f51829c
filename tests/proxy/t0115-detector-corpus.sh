#!/usr/bin/env bash
# The detector corpus through the real proxy: every case of
# tests/data/detect/tokens.tsv is sent as a request body. A case the corpus
# says matches (or matches with a failed checksum: the proxy refuses those
# too, a token with a typo is still a token) is refused with 403 naming its
# detector and never reaches the upstream; a no-match case passes and the
# upstream receives it intact.
. "$(dirname "$0")/live.sh"

live_setup 25
live_start
U=https://upstream.test:8443
CORPUS="$SRC/tests/data/detect/tokens.tsv"
mkdir -p "$TMP/cases"
/usr/bin/python3 - "$CORPUS" "$TMP/cases" <<'PY'
import re, sys
src, out = sys.argv[1], sys.argv[2]
def one(m):
    e = m.group(1)
    if e.startswith(b"x"):
        return bytes([int(e[1:], 16)])
    return {b"\\": b"\\", b"t": b"\t", b"n": b"\n", b"r": b"\r"}[e]
def unescape(s):
    return re.sub(rb"\\(\\|t|n|r|x[0-9A-Fa-f]{2})", one, s.encode())
n = 0
with open(src) as f:
    for line in f:
        line = line.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        verdict, det, inp = line.split("\t", 2)
        n += 1
        open(f"{out}/{n:04d}.{verdict}.{det}", "wb").write(unescape(inp))
PY
total=$(ls "$TMP/cases" | wc -l)
[ "$total" -gt 100 ] && ok "corpus has $total cases" || not_ok "corpus has cases" "only $total"

bad_block=0 bad_pass=0 blocked=0 passed=0
for f in "$TMP/cases"/*; do
    name=$(basename "$f")
    verdict=${name#*.}
    verdict=${verdict%%.*}
    det=${name##*.}
    uplog_mark
    pcurl -X POST -H 'Content-Type: text/plain' --data-binary @"$f" "$U/corpus/$name"
    case "$verdict" in
    match | unverified)
        if [ "$CODE" = 403 ] && grep -q "detector $det" "$TMP/out" && [ -z "$(uplog_since)" ]; then
            blocked=$((blocked + 1))
        else
            bad_block=$((bad_block + 1))
            not_ok "$name is refused naming $det" "status $CODE: $(head -c 200 "$TMP/out")"
        fi
        ;;
    no-match)
        if [ "$CODE" = 200 ] && grep -q "\"body_sha256\": \"$(sha256sum <"$f" | cut -d' ' -f1)\"" "$TMP/out"; then
            passed=$((passed + 1))
        else
            bad_pass=$((bad_pass + 1))
            not_ok "$name passes intact" "status $CODE: $(head -c 200 "$TMP/out")"
        fi
        ;;
    esac
done
expect_eq "$bad_block" 0 "every true positive of the corpus is refused ($blocked refused)"
expect_eq "$bad_pass" 0 "every false positive of the corpus passes ($passed passed)"
live_stop
finish
