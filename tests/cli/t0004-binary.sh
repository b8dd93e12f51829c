#!/usr/bin/env bash
# The binary as built: libfswatch found through RUNPATH, no empty RUNPATH entry
# (glibc reads an empty entry as the current directory).
. "$(dirname "$0")/lib.sh"

run readelf -d "$BOTTLED"
expect_rc 0 "readelf reads the binary"
runpath=$(sed -n 's/.*Library runpath: \[\(.*\)\]/\1/p' "$TMP/out")
case ":$runpath:" in
*::*) not_ok "RUNPATH has an empty entry" "runpath: '$runpath'" ;;
*) ok "RUNPATH has no empty entry ('$runpath')" ;;
esac
if grep -q 'NEEDED.*libfswatch' "$TMP/out"; then
    expect_in "$TMP/out" "/libfswatch]" "libfswatch's private directory is in RUNPATH"
    (cd "$TMP" && LD_LIBRARY_PATH= run "$BOTTLED" version && echo "$RC" >"$TMP/rc")
    expect_eq "$(cat "$TMP/rc")" 0 "the binary starts from any directory without LD_LIBRARY_PATH"
else
    not_ok "the binary does not link libfswatch" "$(grep NEEDED "$TMP/out")"
fi
finish
