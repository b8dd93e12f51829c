#!/usr/bin/env bash
# routes.json "tunnels": optional; each entry host (normalised, no wildcard, no
# IP literal), port (1-65535), token_sha256 (64 lower-case hex).  --check-config
# accepts good entries and refuses bad ones naming the field; the JSON schema
# (schemas/proxy-routes.schema.json) agrees on every case.
. "$(dirname "$0")/lib.sh"

SCHEMA="$SRC/schemas/proxy-routes.schema.json"
SHA=$(printf 'token' | sha256sum | cut -d' ' -f1)
# schema_says FILE: "valid" or "invalid" by the JSON schema.
schema_says() {
    /usr/bin/python3 - "$SCHEMA" "$1" <<'PY'
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
v = jsonschema.validators.validator_for(schema)(schema)
print("valid" if v.is_valid(json.load(open(sys.argv[2]))) else "invalid")
PY
}
# tunnels_case what PYTHON: a fresh copy with routes.json edited.
tunnels_case() {
    fresh_cfg
    jedit "$GEN/routes.json" "$2"
    remanifest "$GEN"
    check
}
bad_tunnels() { # what fragment PYTHON [no-schema]
    tunnels_case "$1" "$3"
    expect_invalid "$1" "$2"
    # An IP literal has the shape of a host name: only the loader can tell (the schema says so).
    [ "${4:-}" = no-schema ] ||
        expect_eq "$(schema_says "$GEN/routes.json")" invalid "$1: the schema refuses it too"
}

fresh_cfg
expect_eq "$(schema_says "$GEN/routes.json")" valid "the base routes.json (no tunnels key) is schema-valid"
check
expect_rc 0 "no tunnels key: valid"
expect_not_in "$TMP/out" "tunnel" "no tunnel count when there are none"

tunnels_case "two tunnels" \
    'j["tunnels"] = [{"host": "git.example.com", "port": 22, "token_sha256": "'"$SHA"'"},
                     {"host": "git.example.com", "port": 2222, "token_sha256": "'"$SHA"'"}]'
expect_rc 0 "two tunnels: valid"
expect_in "$TMP/out" "4 routes, 2 secrets, 2 raw tunnels" "--check-config counts them"
expect_eq "$(schema_says "$GEN/routes.json")" valid "two tunnels: schema-valid"
check "$CFG" --json
expect_eq "$(json 'j["ok"], j["tunnels"]')" "(True, 2)" "--json: tunnels count"
tunnels_case "empty list" 'j["tunnels"] = []'
expect_rc 0 "an empty tunnels list is valid"

t() { echo 'j["tunnels"] = [dict({"host": "git.example.com", "port": 22, "token_sha256": "'"$SHA"'"}, **'"$1"')]'; }
bad_tunnels "not an array" "tunnels: must be an array, got an object" 'j["tunnels"] = {}'
bad_tunnels "bad host" "tunnels[0].host: invalid host 'bad_host.example.com'" "$(t '{"host": "bad_host.example.com"}')"
bad_tunnels "wildcard host" "tunnels[0].host: invalid host '*.example.com'" "$(t '{"host": "*.example.com"}')"
bad_tunnels "IP-literal host" "tunnels[0].host: invalid host '10.0.0.1': IP literals are not allowed" \
    "$(t '{"host": "10.0.0.1"}')" no-schema
bad_tunnels "host not normalised" "tunnels[0].host: host 'Git.Example.com' is not in normalised form" \
    "$(t '{"host": "Git.Example.com"}')"
bad_tunnels "port 0" "tunnels[0].port: must be an integer from 1 to 65535" "$(t '{"port": 0}')"
bad_tunnels "port 65536" "tunnels[0].port: must be an integer from 1 to 65535" "$(t '{"port": 65536}')"
bad_tunnels "port as a string" "tunnels[0].port: must be an integer, got a string" "$(t '{"port": "22"}')"
bad_tunnels "token_sha256 too short" \
    "tunnels[0].token_sha256: must be 64 lower-case hex digits (the SHA-256 of the tunnel token)" \
    "$(t '{"token_sha256": "abc"}')"
bad_tunnels "token_sha256 upper case" "tunnels[0].token_sha256: must be 64 lower-case hex digits" \
    "$(t '{"token_sha256": "'"${SHA^^}"'"}')"
bad_tunnels "token_sha256 not hex" "tunnels[0].token_sha256: must be 64 lower-case hex digits" \
    "$(t '{"token_sha256": "g'"${SHA:1}"'"}')"
bad_tunnels "missing token_sha256" "tunnels[0]: missing key 'token_sha256'" \
    'j["tunnels"] = [{"host": "git.example.com", "port": 22}]'
bad_tunnels "unknown key" "tunnels[0]: unknown key 'token' (allowed: host, port, token_sha256)" \
    "$(t '{"token": "x"}')"
bad_tunnels "duplicate host and port" "tunnels[1]: duplicate tunnel git.example.com:22" \
    'j["tunnels"] = [{"host": "git.example.com", "port": 22, "token_sha256": "'"$SHA"'"}] * 2'
# A token_sha256 is never echoed (it is not the token, but nothing about tunnels needs it).
tunnels_case "echo" "$(t '{"token_sha256": "'"${SHA:0:63}"'Z"}')"
expect_not_in "$TMP/err" "${SHA:0:63}" "a bad token_sha256 value is not echoed"
# Errors in several entries are all reported.
tunnels_case "several" 'j["tunnels"] = [{"host": "a.example", "port": 0, "token_sha256": "x"},
                                        {"host": "B.example", "port": 22, "token_sha256": "'"$SHA"'"}]'
expect_rc 1 "several bad entries"
expect_in "$TMP/err" "invalid: 3 errors" "every error is reported"
finish
