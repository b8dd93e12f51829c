#!/usr/bin/env bash
# --help, unknown commands and flags, version.
. "$(dirname "$0")/lib.sh"

run "$BOTTLED" --help
expect_rc 0 "bottled --help"
for c in validate show version status approve-deletes; do
    expect_in "$TMP/out" "  $c " "--help lists $c"
done

run "$BOTTLED"
expect_rc 2 "no command is a usage error"

run "$BOTTLED" frobnicate
expect_rc 2 "unknown command"
expect_in "$TMP/err" "unknown command 'frobnicate'" "unknown command is named"

run "$BOTTLED" validate --help
expect_rc 0 "validate --help"
for f in "-d, --dir DIR" "--json" "-q, --quiet" "-v, --verbose" "BOTTLED_DIR" "Exit status"; do
    expect_in "$TMP/out" "$f" "validate --help mentions '$f'"
done

# Every flag the help shows is accepted (the help is generated from the parser's table).
mkdir -p "$TMP/b"
for f in $(grep -oE -- '--[a-z-]+' "$TMP/out" | sort -u); do
    case "$f" in --dir) args="$f $TMP/b" ;; --help) continue ;; *) args="$f -d $TMP/b" ;; esac
    # shellcheck disable=SC2086
    run "$BOTTLED" validate $args
    expect_rc 0 "validate accepts $f"
done

run "$BOTTLED" validate --frobnicate
expect_rc 2 "unknown flag"
expect_in "$TMP/err" "unknown option '--frobnicate'" "unknown flag is named"

run "$BOTTLED" validate -d
expect_rc 2 "missing flag argument"

BOTTLED_JSON=maybe run "$BOTTLED" validate -d "$TMP/b"
expect_rc 2 "a non-boolean BOTTLED_JSON is a usage error"

run "$BOTTLED" show --help
expect_rc 0 "show --help"
expect_in "$TMP/out" "Usage: bottled show [OPTIONS] NAME" "show usage line"

for c in status approve-deletes; do
    run "$BOTTLED" $c --help
    expect_rc 0 "$c --help"
    for f in "--state-dir DIR" "--json" "-q, --quiet" "BOTTLED_STATE_DIR" "Exit status"; do
        expect_in "$TMP/out" "$f" "$c --help mentions '$f'"
    done
done
expect_in "$TMP/out" "Usage: bottled approve-deletes [OPTIONS] NAME..." "approve-deletes usage line"

run "$BOTTLED" version
expect_rc 0 "version"
for lib in libyaml sqlite3 openssl libcurl cjson pcre2 libidn2 libfswatch; do
    expect_in "$TMP/out" "$lib" "version reports $lib"
done
expect_in "$TMP/out" "credential scanner: aho-corasick prefilter" "version reports the scanner"
expect_in "$TMP/out" "watch backends: " "version reports the watch backends"
expect_in "$TMP/out" "inotify" "version lists the inotify watch backend"

run "$BOTTLED" version --json
expect_rc 0 "version --json"
expect_eq "$(json 'sorted(j["libraries"])')" \
    "['cjson', 'libcurl', 'libfswatch', 'libidn2', 'libyaml', 'openssl', 'pcre2', 'sqlite3']" \
    "version --json lists the libraries"
expect_eq "$(json 'j["scanner"]["rules"] > 5')" "True" "version --json counts detector rules"
# libfswatch is linked exactly when its backend is built, and is the default then.
expect_eq "$(json '(j["watch"]["backends"] == (["fswatch", "inotify"] if j["libraries"]["libfswatch"] != "not built" else ["inotify"])) and j["watch"]["default"] == j["watch"]["backends"][0]')" \
    "True" "version --json lists the compiled watch backends, default first"

run "$BOTTLED" version extra
expect_rc 2 "version takes no arguments"

finish
