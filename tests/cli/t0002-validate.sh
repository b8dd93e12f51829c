#!/usr/bin/env bash
# validate: directories, files inside and outside -d, defaults, output, exit codes.
. "$(dirname "$0")/lib.sh"

mk() { mkdir -p "$(dirname "$1")"; cat >"$1"; }

mk "$TMP/bottles/base.md" <<'X'
---
abstract: true
egress:
  routes:
    - host: pypi.org
---
X
mk "$TMP/bottles/child.md" <<'X'
---
extends: base
---
prompt
X
mk "$TMP/bottles/broken.md" <<'X'
---
colour: red
---
X

# No PATH: the -d directory as a whole; every file's errors, exact text format.
run "$BOTTLED" validate -d "$TMP/bottles"
expect_rc 1 "a directory with one broken file"
expect_in "$TMP/err" "$TMP/bottles/broken.md:2:1: bottle 'broken': unknown key 'colour' (allowed: name, abstract, extends, agent, agent_provider, env, skills, egress, git-gate, supervise)" \
    "diagnostic has path:line:col, bottle, message, allowed list"
expect_in "$TMP/err" "3 files, 1 bottle, 1 error" "summary counts files, instantiable bottles, errors"

run "$BOTTLED" validate -q -d "$TMP/bottles"
expect_not_in "$TMP/err" "3 files" "-q drops the summary"

# BOTTLED_DIR and the ./bottles default.
BOTTLED_DIR="$TMP/bottles" run "$BOTTLED" validate
expect_rc 1 "BOTTLED_DIR is the default directory"
(cd "$TMP" && run "$BOTTLED" validate && echo "$RC" >"$TMP/rc")
expect_eq "$(cat "$TMP/rc")" 1 "./bottles is the default directory"
run "$BOTTLED" validate -d "$TMP/nope"
expect_rc 2 "a missing manifest directory"
expect_in "$TMP/err" "$TMP/nope" "the missing directory is named"

# A file inside -d: parents resolve in -d, other files' errors are not reported.
run "$BOTTLED" validate -d "$TMP/bottles" "$TMP/bottles/child.md"
expect_rc 0 "a valid file inside -d with its parent there"
expect_not_in "$TMP/err" "broken" "other files' errors are not reported for a file PATH"
run "$BOTTLED" validate -d "$TMP/bottles" "$TMP/bottles/broken.md"
expect_rc 1 "a broken file inside -d"

# A file outside -d resolves in its own directory.
mk "$TMP/other/base.md" <<'X'
---
abstract: true
---
X
mk "$TMP/other/kid.md" <<'X'
---
extends: base
---
X
mk "$TMP/lonely/kid.md" <<'X'
---
extends: base
---
X
run "$BOTTLED" validate -d "$TMP/bottles" "$TMP/other/kid.md"
expect_rc 0 "a file outside -d resolves extends in its own directory"
run "$BOTTLED" validate -d "$TMP/bottles" "$TMP/lonely/kid.md"
expect_rc 1 "a file whose parent is not beside it"
expect_in "$TMP/err" "extends unknown bottle 'base'" "the missing parent is named"

# A directory PATH and several PATHs.
run "$BOTTLED" validate "$TMP/other" "$TMP/lonely/kid.md"
expect_rc 1 "several PATHs: errors of any fail the run"
expect_in "$TMP/err" "3 files, 1 bottle, 1 error" "several PATHs are summed"
run "$BOTTLED" validate "$TMP/other"
expect_rc 0 "a valid directory PATH"

# Ignored files given explicitly are a usage error, not silently "valid".
mk "$TMP/other/README.md" <<'X'
# notes
X
run "$BOTTLED" validate "$TMP/other/README.md"
expect_rc 2 "an ignored file given as PATH"
run "$BOTTLED" validate "$TMP/does-not-exist.md"
expect_rc 2 "a PATH that does not exist"

# A credential in a manifest: an error, and the value never printed.
tok="ghp_$(printf 'a1B2c3D4e5%.0s' 1 2 3)Zz9x8w"
mk "$TMP/sec/leak.md" <<X
---
env:
  TOKEN: $tok
agent:
  command: [run, "--token=$tok"]
---
X
run "$BOTTLED" validate "$TMP/sec"
expect_rc 1 "credential-looking values are errors"
expect_in "$TMP/err" "leak.md:3:10: bottle 'leak': value looks like a credential" "the credential is located"
expect_in "$TMP/err" "leak.md:5:18:" "a credential inside an argument is found too"
expect_not_in "$TMP/err" "$tok" "the credential is not printed (text)"
expect_not_in "$TMP/err" "${tok:4:20}" "no long piece of the credential is printed"
run "$BOTTLED" validate --json "$TMP/sec"
expect_not_in "$TMP/out" "${tok:4:20}" "the credential is not printed (json)"

# All errors of all files in one run.
mk "$TMP/many/a.md" <<'X'
---
agent: {imagex: foo}
---
X
mk "$TMP/many/b.md" <<'X'
---
egress: {routes: [{host: 10.0.0.1}]}
---
X
mk "$TMP/many/c.md" <<'X'
---
skills: [Bad_Name]
supervise: true
---
X
run "$BOTTLED" validate "$TMP/many"
expect_rc 1 "three broken files"
expect_eq "$(grep -c "^$TMP/many/" "$TMP/err")" 4 "every error of every file is reported"

finish
