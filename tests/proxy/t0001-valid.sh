#!/usr/bin/env bash
# --check-config on a valid generation: exit 0, the summary, JSON, gen dir given directly; usage.
. "$(dirname "$0")/lib.sh"

fresh_cfg
hash=$(sed -n 's/^config-hash //p' "$GEN/MANIFEST")
check
expect_rc 0 "a valid config directory"
expect_in "$TMP/out" "ok: generation gen-1, config hash $hash, 4 routes, 2 secrets" \
    "summary names generation, hash, counts"
expect_eq "$(cat "$TMP/err")" "" "nothing on stderr"
no_secret_in_output "valid config"

check "$GEN"
expect_rc 0 "a generation directory given directly"
expect_in "$TMP/out" "config hash $hash" "same hash from the generation directory"

check "$GEN/"
expect_rc 0 "a trailing slash is fine"

check "$CFG" --json
expect_rc 0 "--json on a valid config"
expect_eq "$(json 'j["ok"], j["generation"], j["config_hash"], j["routes"], j["secrets"]')" \
    "(True, 'gen-1', '$hash', 4, 2)" "--json fields"
no_secret_in_output "--json"

# Knobs, upstream CA bundle, regexes, a '*' binding (a warning, not an error).
fresh_cfg
jedit "$GEN/routes.json" '
j["dns"] = "10.0.0.53"
j["hosts"] = [{"name": "gitea.example.com", "ip": "192.168.1.10"}, {"name": "pypi.org", "ip": "2001:db8::1"}]
j["allow_private"] = ["192.168.1.0/24", "fd00::/8", "10.1.2.3/32"]
r = j["routes"][2]
r["matches"].append({"headers": [{"name": "x-api", "type": "regex", "value": "v[0-9]+"}],
                     "methods": [], "paths": [{"type": "regex", "value": "/api/v1/(a|b)/.*"}]})
j["routes"][1]["ports"] = [80, 443, 8443]
j["routes"].append({"auth": {"scheme": "token", "token_ref": "ANY"}, "dlp": j["routes"][1]["dlp"],
                    "git_fetch": False, "host": "*.corp.example.net", "matches": [], "ports": [443], "role": None})
'
jedit "$GEN/secrets.json" 'j["secrets"].append({"name": "ANY", "value": "any-VALUE-3c", "hosts": ["*"]})'
cp "$TMP/pki/ca.pem" "$GEN/upstream-ca.pem"
cat "$TMP/pki/ca.pem" >>"$GEN/upstream-ca.pem"
remanifest "$GEN"
check
expect_rc 0 "knobs, regexes, bundle and a '*' binding are valid"
expect_in "$TMP/out" "5 routes, 3 secrets" "counts with the extra route and secret"
expect_in "$TMP/err" "warning: secrets[2]: secret 'ANY' is bound to any host ('*')" \
    "a '*' binding is reported as a warning"
expect_not_in "$TMP/err" "any-VALUE-3c" "the warning does not show the value"

# Usage.
run "$PROXY" --help
expect_rc 0 "--help"
expect_in "$TMP/out" "--check-config DIR" "help shows --check-config"
expect_in "$TMP/out" "--config DIR" "help shows --config"
run "$PROXY" --version
expect_rc 0 "--version"
expect_in "$TMP/out" "bottle-proxy " "version line"
run "$PROXY"
expect_rc 2 "no arguments"
run "$PROXY" --config "$CFG" --json
expect_rc 2 "--json does not go with --config"
run "$PROXY" --config "$CFG" --check-config "$CFG"
expect_rc 2 "--config and --check-config exclude each other"
run "$PROXY" --config "$CFG" --listen nowhere
expect_rc 1 "a bad --listen address fails start-up"
expect_in "$TMP/err" "bad listen address 'nowhere'" "says which address"
run "$PROXY" --check-config
expect_rc 2 "--check-config without a directory"
run "$PROXY" --check-config "$TMP/nowhere"
expect_rc 1 "a directory with neither current nor MANIFEST"
expect_in "$TMP/err" "neither a config directory" "says what it expected"

finish
