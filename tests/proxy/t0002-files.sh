#!/usr/bin/env bash
# The generation on disk: current, MANIFEST, digests, listing, symlinks, sizes.
. "$(dirname "$0")/lib.sh"

fresh_cfg
echo tampered >>"$GEN/routes.json"
check
expect_invalid "digest mismatch" "routes.json: SHA-256 does not match the digest in MANIFEST"

fresh_cfg
jedit "$GEN/secrets.json" 'j["secrets"][0]["value"] = "other-VALUE"'
check
expect_invalid "digest mismatch of secrets.json" "secrets.json: SHA-256 does not match"

fresh_cfg
echo extra >"$GEN/notes.txt"
check
expect_invalid "an unlisted extra file" "gen-1/notes.txt: is not listed in MANIFEST"

fresh_cfg
mv "$GEN/ca.pem" "$CFG/real-ca.pem"
ln -s ../real-ca.pem "$GEN/ca.pem"
check
expect_invalid "a symlinked listed file" "gen-1/ca.pem: is a symbolic link"

fresh_cfg
ln -s routes.json "$GEN/extra.json"
check
expect_invalid "an unlisted symlink" "gen-1/extra.json: is a symbolic link"

fresh_cfg
mkdir "$GEN/sub"
check
expect_invalid "a subdirectory" "gen-1/sub: is not a regular file"

fresh_cfg
rm "$GEN/ca-key.pem"
check
expect_invalid "a listed file missing" "ca-key.pem: is listed in MANIFEST but does not exist"

fresh_cfg
rm "$GEN/ca-key.pem"
remanifest "$GEN"
check
expect_invalid "a required file not listed" "MANIFEST: does not list 'ca-key.pem' (required)"

fresh_cfg
rm "$GEN/MANIFEST"
check
expect_invalid "no MANIFEST" "gen-1/MANIFEST: does not exist"

fresh_cfg
sed -i '1s/.*/bottled-proxy-config 2/' "$GEN/MANIFEST"
check
expect_invalid "MANIFEST version 2" "MANIFEST:1: unsupported MANIFEST version"

fresh_cfg
sed -i '2s/.*/config-hash XYZ/' "$GEN/MANIFEST"
check
expect_invalid "a bad config-hash line" "MANIFEST:2: the second line must be 'config-hash"

fresh_cfg
echo "file $(printf '0%.0s' $(seq 64)) ../etc/passwd" >>"$GEN/MANIFEST"
check
expect_invalid "a MANIFEST name with a slash" "unknown file '../etc/passwd'"

fresh_cfg
tail -n 1 "$GEN/MANIFEST" >>"$GEN/MANIFEST"
check
expect_invalid "a file listed twice" "is listed twice"

fresh_cfg
printf 'file 123 x' >>"$GEN/MANIFEST"
check
expect_invalid "a malformed line without newline" "the last line does not end with a newline"
expect_in "$TMP/err" "expected 'file <64 lower-case hex digits> <name>'" "the malformed line too"

fresh_cfg
printf '../gen-1\n' >"$CFG/current"
check
expect_invalid "current with ../" "current: must hold one line 'gen-<id>'"

fresh_cfg
printf 'gen-1' >"$CFG/current"
check
expect_invalid "current without a newline" "current: must hold one line"

fresh_cfg
printf 'gen-2\n' >"$CFG/current"
check
expect_invalid "current naming a missing generation" "gen-2: the generation directory does not exist"

fresh_cfg
mv "$GEN" "$CFG/gen-real"
ln -s gen-real "$GEN"
check
expect_invalid "a symlinked generation directory" "gen-1: is a symbolic link"

fresh_cfg
rm "$CFG/current"
ln -s gen-1/MANIFEST "$CFG/current"
check
expect_invalid "current as a symlink" "current: is a symbolic link"

fresh_cfg
head -c $((4 * 1024 * 1024 + 1)) /dev/zero >"$GEN/routes.json"
remanifest "$GEN"
check
expect_invalid "routes.json over 4 MiB" "routes.json: is larger than the 4194304 byte limit"

fresh_cfg
rm "$GEN/ca.pem"
mkfifo "$GEN/ca.pem"
check
expect_invalid "a FIFO in place of a file" "ca.pem: is not a regular file"

finish
