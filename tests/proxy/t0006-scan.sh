#!/usr/bin/env bash
# `bottle-proxy scan`: the sidecar's detectors over files and stdin, as the git
# gate's hook runs it.  Clean input exits 0; a credential exits 1 with one line
# "<label>: <detector>" per detector and the matched text nowhere in the output;
# over --max-bytes (default 16 MiB) or unreadable exits 2 naming the cause.
# The whole detector corpus (tests/data/detect/tokens.tsv) is run through it.
. "$(dirname "$0")/../cli/lib.sh"
PROXY=$1
SRC=$(cd "$(dirname "$0")/../.." && pwd)

# expect_secret_not_printed WHAT: neither stdout nor stderr holds $SECRET.
expect_secret_not_printed() {
    if grep -qF -- "$SECRET" "$TMP/out" "$TMP/err"; then
        not_ok "$1: the matched text was printed" "$(cat "$TMP/out" "$TMP/err" | head -c 500)"
    else
        ok "$1: the matched text is not printed"
    fi
}

printf 'just some text\nwith AKIA but no key, and ghp_ alone\n' >"$TMP/clean.txt"
run "$PROXY" scan "$TMP/clean.txt"
expect_rc 0 "clean file"
expect_eq "$(cat "$TMP/out" "$TMP/err")" "" "clean file: no output"

# Samples built from pieces so this script holds no token-shaped string itself.
AWS="AKI""ARAYZGJB1BFNL753L"
GH="ghp""_KBJHFhMpKYolVviUsb6QL4PC6TMF3c3hJWfB"
printf 'aws_access_key_id = %s\n' "$AWS" >"$TMP/aws.ini"
SECRET=$AWS
run "$PROXY" scan "$TMP/aws.ini"
expect_rc 1 "AWS access key id"
expect_eq "$(cat "$TMP/out")" "$TMP/aws.ini: aws_access_key_id" "names the file and the detector"
expect_secret_not_printed "AWS key"

printf 'export GITHUB_TOKEN=%s\n' "$GH" >"$TMP/env.sh"
SECRET=$GH
run "$PROXY" scan --label "src/env.sh@abc123" "$TMP/env.sh"
expect_rc 1 "GitHub token"
expect_eq "$(cat "$TMP/out")" "src/env.sh@abc123: github_token" "--label replaces the file name"
expect_secret_not_printed "GitHub token"

openssl genpkey -algorithm ed25519 -out "$TMP/id.pem" 2>/dev/null
SECRET=$(sed -n 2p "$TMP/id.pem")
run "$PROXY" scan --label key.pem <"$TMP/id.pem"
expect_rc 1 "a PEM private key on stdin"
expect_eq "$(cat "$TMP/out")" "key.pem: pem_private_key" "private key block named"
expect_secret_not_printed "private key"

# Several detectors, each named once, in the order of their first match; binary around them.
{
    printf 'x\0\1\2%s\0' "$GH"
    cat "$TMP/id.pem"
    printf '%s and again %s\n' "$AWS" "$AWS"
    printf 'second %s\n' "$GH"
} >"$TMP/multi.bin"
run "$PROXY" scan - <"$TMP/multi.bin"
expect_rc 1 "several credentials in binary input on stdin ('-')"
expect_eq "$(cat "$TMP/out")" "stdin: github_token
stdin: pem_private_key
stdin: aws_access_key_id" "one line per detector, first-match order, default label 'stdin'"
for SECRET in "$GH" "$AWS"; do expect_secret_not_printed "multi"; done

printf '%s' "$GH" >"$TMP/nl"
run "$PROXY" scan --label "$(printf 'evil\nlabel')" "$TMP/nl"
expect_eq "$(cat "$TMP/out")" "evil?label: github_token" "a control character in the label cannot forge a line"

# Caps: exactly at the cap is scanned, one byte more is refused (exit 2, cap named).
head -c 1000 /dev/zero >"$TMP/k1"
run "$PROXY" scan --max-bytes 1000 "$TMP/k1"
expect_rc 0 "exactly --max-bytes is scanned"
head -c 1001 /dev/zero >"$TMP/k1"
run "$PROXY" scan --max-bytes 1000 "$TMP/k1"
expect_rc 2 "one byte over --max-bytes"
expect_in "$TMP/err" "over the --max-bytes cap of 1000 bytes" "the message names the cap"
expect_eq "$(cat "$TMP/out")" "" "nothing on stdout when over the cap"
run "$PROXY" scan < <(
    printf '%s\n' "$GH"
    head -c $((16 << 20)) /dev/zero
)
expect_rc 2 "stdin over the default 16 MiB cap (a token inside is not reported)"
expect_in "$TMP/err" "cap of 16777216 bytes" "default cap is 16 MiB"
head -c $((16 << 20)) /dev/zero >"$TMP/16m"
printf '%s' "$AWS" | dd of="$TMP/16m" bs=1 seek=$(((16 << 20) - 20)) conv=notrunc status=none
run "$PROXY" scan "$TMP/16m"
expect_rc 1 "a 16 MiB file is scanned to its end"
expect_eq "$(cat "$TMP/out")" "$TMP/16m: aws_access_key_id" "the key in its last bytes is found"

# Errors: exit 2.
run "$PROXY" scan "$TMP/missing"
expect_rc 2 "missing file"
expect_in "$TMP/err" "cannot open '$TMP/missing'" "says which file"
run "$PROXY" scan "$TMP"
expect_rc 2 "a directory"
run "$PROXY" scan --max-bytes 0 "$TMP/clean.txt"
expect_rc 2 "--max-bytes 0"
run "$PROXY" scan --max-bytes 12k "$TMP/clean.txt"
expect_rc 2 "--max-bytes 12k"
run "$PROXY" scan --frobnicate
expect_rc 2 "unknown option"
run "$PROXY" scan a b
expect_rc 2 "two inputs"
run "$PROXY" scan --help
expect_rc 0 "scan --help"
expect_in "$TMP/out" "usage: bottle-proxy scan" "scan --help prints its usage"

# The corpus: every match (and checksum-failed match) exits 1 naming its detector
# and nothing else; every no-match case exits 0 silently.
mkdir -p "$TMP/cases"
/usr/bin/python3 - "$SRC/tests/data/detect/tokens.tsv" "$TMP/cases" <<'PY'
import re, sys
src, out = sys.argv[1], sys.argv[2]
def one(m):
    e = m.group(1)
    if e.startswith(b"x"):
        return bytes([int(e[1:], 16)])
    return {b"\\": b"\\", b"t": b"\t", b"n": b"\n", b"r": b"\r"}[e]
n = 0
for line in open(src):
    line = line.rstrip("\n")
    if not line or line.startswith("#"):
        continue
    verdict, det, inp = line.split("\t", 2)
    n += 1
    open(f"{out}/{n:04d}.{verdict}.{det}", "wb").write(
        re.sub(rb"\\(\\|t|n|r|x[0-9A-Fa-f]{2})", one, inp.encode()))
PY
bad=0 total=0
for f in "$TMP/cases"/*; do
    name=$(basename "$f")
    verdict=${name#*.}
    verdict=${verdict%%.*}
    det=${name##*.}
    total=$((total + 1))
    set +e
    "$PROXY" scan --label case "$f" >"$TMP/out" 2>"$TMP/err"
    RC=$?
    set -e
    case "$verdict" in
    match | unverified) want_rc=1 want_out="case: $det" ;;
    *) want_rc=0 want_out="" ;;
    esac
    if [ "$RC" != "$want_rc" ] || [ "$(cat "$TMP/out")" != "$want_out" ] || [ -s "$TMP/err" ]; then
        bad=$((bad + 1))
        not_ok "corpus $name" "exit $RC, stdout: $(head -c 200 "$TMP/out")"
    fi
done
[ "$total" -gt 100 ] && [ "$bad" = 0 ] && ok "all $total corpus cases: exit code and detector as the corpus says" ||
    not_ok "corpus" "$bad of $total wrong"
finish
