#!/usr/bin/env bash
# routes.json and secrets.json: field-by-field validation, JSON paths in messages, bindings.
. "$(dirname "$0")/lib.sh"

# bad_routes what fragment PYTHON: edits routes.json of a fresh copy, expects a refusal.
bad_routes() {
    fresh_cfg
    jedit "$GEN/routes.json" "$3"
    remanifest "$GEN"
    check
    expect_invalid "$1" "$2"
}
bad_secrets() {
    fresh_cfg
    jedit "$GEN/secrets.json" "$3"
    remanifest "$GEN"
    check
    expect_invalid "$1" "$2"
}

fresh_cfg
printf '{"version": 1,\n "routes": [' >"$GEN/routes.json"
remanifest "$GEN"
check
expect_invalid "truncated JSON" "routes.json:2:"
expect_in "$TMP/err" "invalid JSON" "says invalid JSON"

fresh_cfg
printf '{"version":1,"secrets":[]} x' >"$GEN/secrets.json"
remanifest "$GEN"
check
expect_invalid "trailing data" "secrets.json:1:28: invalid JSON: trailing data after the document"

fresh_cfg
printf '{"version":1,"secrets":[{"name":"A\\u0000B","value":"v","hosts":["a.com"]}]}' >"$GEN/secrets.json"
remanifest "$GEN"
check
expect_invalid "a \\u0000 escape" "invalid JSON: \\u0000 in a string"

bad_routes "unknown top-level key" "routes.json: unknown key 'colour' (allowed: version, bottle" \
    'j["colour"] = "red"'
bad_routes "unknown route key" "routes[0]: unknown key 'extra'" 'j["routes"][0]["extra"] = 1'
bad_routes "missing key" "routes[1]: missing key 'ports'" 'del j["routes"][1]["ports"]'
bad_routes "wrong version" "version: must be an integer from 1 to 1" 'j["version"] = 2'
bad_routes "bad host" "routes[1].host: invalid host 'bad_host.example.com'" \
    'j["routes"][1]["host"] = "bad_host.example.com"'
bad_routes "IP-literal host" "routes[3].host: invalid host '127.0.0.1': IP literals are not allowed" \
    'j["routes"][3]["host"] = "127.0.0.1"'
bad_routes "host not normalised" "host 'PyPI.org' is not in normalised form (expected 'pypi.org')" \
    'j["routes"][3]["host"] = "PyPI.org"'
bad_routes "duplicate route host" "duplicate route host 'pypi.org'" \
    'j["routes"][1]["host"] = "pypi.org"'
bad_routes "bad path regex" "routes[2].matches[0].paths[0].value: invalid regex '(unclosed'" \
    'j["routes"][2]["matches"][0]["paths"][0] = {"type": "regex", "value": "(unclosed"}'
bad_routes "bad header regex" "routes[2].matches[1].headers[0].value: invalid regex '['" \
    'j["routes"][2]["matches"][1]["headers"] = [{"name": "x", "type": "regex", "value": "["}]'
bad_routes "dot segment path" "paths[0].value: path '/api/../x' must not contain '.' or '..' segments" \
    'j["routes"][2]["matches"][0]["paths"][0]["value"] = "/api/../x"'
bad_routes "upper-case header name" "invalid header name 'X-Api'" \
    'j["routes"][2]["matches"][1]["headers"] = [{"name": "X-Api", "type": "exact", "value": "1"}]'
bad_routes "lower-case method" "routes[2].matches[1].methods[0]: invalid method 'get'" \
    'j["routes"][2]["matches"][1]["methods"] = ["get"]'
bad_routes "port 0" "routes[1].ports[0]: must be an integer from 1 to 65535" \
    'j["routes"][1]["ports"] = [0]'
bad_routes "port 65536" "routes[1].ports[1]: must be an integer from 1 to 65535" \
    'j["routes"][1]["ports"] = [443, 65536]'
bad_routes "fractional port" "routes[1].ports[0]: must be an integer" \
    'j["routes"][1]["ports"] = [443.5]'
bad_routes "port 80 with auth" "port 80 (plain HTTP) is refused on a route with auth" \
    'j["routes"][0]["ports"] = [80, 443]'
bad_routes "unknown detector" "routes[1].dlp.outbound.detectors[0]: unknown detector 'dns'" \
    'j["routes"][1]["dlp"]["outbound"]["detectors"] = ["dns"]'
bad_routes "action off with detectors" "routes[1].dlp.inbound: action 'off' needs an empty detectors list" \
    'j["routes"][1]["dlp"]["inbound"]["action"] = "off"'
bad_routes "bad dns" "dns: invalid IP address 'resolver.local'" 'j["dns"] = "resolver.local"'
bad_routes "bad static host ip" "hosts[0].ip: invalid IP address '10.0.0.300'" \
    'j["hosts"] = [{"name": "pypi.org", "ip": "10.0.0.300"}]'
bad_routes "CIDR host bits" "allow_private[0]: invalid CIDR '10.1.2.3/8': host bits are set" \
    'j["allow_private"] = ["10.1.2.3/8"]'
bad_routes "CIDR prefix range" "allow_private[1]: invalid CIDR 'fd00::/129': the prefix must be 0 to 128" \
    'j["allow_private"] = ["10.0.0.0/8", "fd00::/129"]'
bad_routes "CIDR without prefix" "allow_private[0]: invalid CIDR '10.0.0.1'" \
    'j["allow_private"] = ["10.0.0.1"]'

# Secrets and bindings.
bad_routes "token_ref to a missing secret" \
    "routes[0].auth.token_ref: secret 'NOPE_TOKEN' is not in secrets.json" \
    'j["routes"][0]["auth"]["token_ref"] = "NOPE_TOKEN"'
bad_secrets "binding not covering the host" \
    "routes[0].auth.token_ref: secret 'CLAUDE_OAUTH_TOKEN' may not be used for host 'api.anthropic.com': outside its host binding" \
    'j["secrets"][0]["hosts"] = ["console.anthropic.com"]'
bad_secrets "a suffix binding excludes the apex" \
    "secret 'CLAUDE_OAUTH_TOKEN' may not be used for host 'api.anthropic.com'" \
    'j["secrets"][0]["hosts"] = ["*.api.anthropic.com"]'
fresh_cfg
jedit "$GEN/routes.json" 'j["routes"][2]["host"] = "*.example.com"'
jedit "$GEN/secrets.json" 'j["secrets"][1]["hosts"] = ["gitea.example.com", "*.other.example.com"]'
remanifest "$GEN"
check
expect_invalid "wildcard route with a non-wildcard binding" \
    "a wildcard route needs the binding to name that same wildcard"
fresh_cfg
jedit "$GEN/routes.json" 'j["routes"][2]["host"] = "*.git.example.com"'
remanifest "$GEN"
check
expect_invalid "wildcard route under a wider wildcard binding" \
    "secret 'GITEA_TOKEN' may not be used for host '*.git.example.com'"
bad_secrets "bad secret name" "secrets[0].name: invalid secret name (not shown)" \
    'j["secrets"][0]["name"] = "lower"'
bad_secrets "duplicate secret" "secrets[1].name: duplicate secret 'CLAUDE_OAUTH_TOKEN'" \
    'j["secrets"][1]["name"] = "CLAUDE_OAUTH_TOKEN"'
bad_secrets "empty binding" "secret 'GITEA_TOKEN' must be bound to at least one host" \
    'j["secrets"][1]["hosts"] = []'
bad_secrets "bad binding host" "secrets[1].hosts[0]: invalid host '10.0.0.1'" \
    'j["secrets"][1]["hosts"] = ["10.0.0.1"]'
bad_secrets "'*' with other hosts" "'*' (any host) must be the only entry" \
    'j["secrets"][1]["hosts"] = ["*", "a.example.com"]'
bad_secrets "a value with a newline" "the value of secret 'GITEA_TOKEN' must be 1 to" \
    'j["secrets"][1]["value"] = "gitea-VALUE-do-not-print-2b8e41\r\nX-Evil: 1"'
bad_secrets "unknown secret key shaped like a key" "secrets[0]: unknown key 'note'" \
    'j["secrets"][0]["note"] = "x"'
bad_secrets "unknown secret key shaped like a value" "secrets[0]: unknown key (not shown" \
    'j["secrets"][0]["gitea-VALUE-do-not-print-2b8e41"] = "x"'
bad_secrets "a value where the name goes" "secrets[0].name: invalid secret name (not shown)" \
    'j["secrets"][0]["name"] = "claude-VALUE-do-not-print-7f3a9c"'
bad_secrets "a value of the wrong type" "secrets[1].value: must be a string, got a number" \
    'j["secrets"][1]["value"] = 12345'

# A secret value that strays into routes.json is masked wherever it would be echoed.
bad_routes "a secret value as a routes.json key" "routes[0]: unknown key 'x-[secret GITEA_TOKEN]'" \
    'j["routes"][0]["x-gitea-VALUE-do-not-print-2b8e41"] = 1'
bad_routes "a secret value as a host" \
    "host '[secret CLAUDE_OAUTH_TOKEN]' is not in normalised form (expected '[secret CLAUDE_OAUTH_TOKEN]')" \
    'j["routes"][3]["host"] = "claude-VALUE-do-not-print-7f3a9c"'

# Every problem is reported, not only the first.
fresh_cfg
jedit "$GEN/routes.json" 'j["routes"][1]["ports"] = [0]; j["routes"][3]["host"] = "1.2.3.4"; j["dns"] = "x"'
remanifest "$GEN"
check
expect_rc 1 "three problems at once"
expect_eq "$(grep -c 'routes.json: ' "$TMP/err")" 3 "all three reported"
expect_in "$TMP/err" "invalid: 3 errors" "summary counts them"

finish
