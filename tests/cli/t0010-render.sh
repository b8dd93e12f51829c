#!/usr/bin/env bash
# render NAME: masked secrets, the config hash (what changes it and what does not),
# missing and wrongly bound secrets, the secrets file's checks, --secret-env, knobs.
. "$(dirname "$0")/lib.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)

# Distinctive values: no output may ever contain them.
V_CLAUDE='claude-VALUE-never-printed-5d1e'
V_GITEA='gitea-VALUE-never-printed-93c0'
V_ROTATED='rotated-VALUE-never-printed-aa17'
V_ENV='env-VALUE-never-printed-0b62'

cp -r "$SRC/examples" "$TMP/m"
ST="$TMP/state"
mkdir -p "$ST"
write_secrets() { # content: writes $ST/secrets with mode 0600
    printf '%s' "$1" >"$ST/secrets"
    chmod 600 "$ST/secrets"
}
write_secrets "# demo secrets
CLAUDE_OAUTH_TOKEN@api.anthropic.com=$V_CLAUDE

GITEA_TOKEN@gitea.example.com=$V_GITEA
"

# no_value what: none of the values in stdout or stderr, in any letter case.
no_value() {
    local v
    for v in "$V_CLAUDE" "$V_GITEA" "$V_ROTATED" "$V_ENV"; do
        if grep -qiF -- "$v" "$TMP/out" "$TMP/err"; then
            not_ok "$1: a secret value was printed" "$(cat "$TMP/out" "$TMP/err" | head -c 2000)"
            return
        fi
    done
    ok "$1: no secret value printed"
}

render() { run "$BOTTLED" render -d "$TMP/m" --state-dir "$ST" "$@"; }
hash_of() { json 'j["config_hash"]'; }

ls -laR "$ST" >"$TMP/state-before"
render tools
expect_rc 0 "render a bottle"
no_value "render"
expect_eq "$(json 'sorted(j)')" "['bottle', 'config_hash', 'hash_final', 'routes', 'secrets']" \
    "top-level keys"
expect_eq "$(json 'sorted(j["routes"])')" \
    "['allow_private', 'bottle', 'dns', 'hosts', 'routes', 'tunnels', 'version']" "routes.json keys"
expect_eq "$(json '[(t["host"], t["port"], len(t["token_sha256"])) for t in j["routes"]["tunnels"]]')" \
    "[('gitea.example.com', 30009, 64)]" "tunnels: the repos' one host:port, with a token digest"
expect_eq "$(json '[s["value"] for s in j["secrets"]["secrets"]]')" "['<masked>', '<masked>']" \
    "every value is masked"
expect_eq "$(json '[(s["name"], s["hosts"]) for s in j["secrets"]["secrets"]]')" \
    "[('CLAUDE_OAUTH_TOKEN', ['api.anthropic.com']), ('GITEA_TOKEN', ['gitea.example.com'])]" \
    "the referenced secrets with their bindings, by name"
expect_eq "$(json 'j["hash_final"]')" "False" "no HMAC key yet: the hash is not final"
expect_in "$TMP/err" "(no state yet: hashes are not final)" "says the hash is not final"
H0=$(hash_of)
expect_eq "$(json 'len(j["config_hash"])')" 64 "the config hash is 64 hex digits"

# The routes are exactly those of `show`.
"$BOTTLED" show -d "$TMP/m" tools >"$TMP/show.json"
expect_eq "$(json 'j["routes"]["routes"]')" \
    "$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["egress"]["routes"])' "$TMP/show.json")" \
    "routes.json carries the canonical routes of show"

render tools
expect_eq "$(hash_of)" "$H0" "the same inputs give the same hash"

# Re-ordering the file, comments, an unused secret, CRLF: same hash.
write_secrets "GITEA_TOKEN@gitea.example.com=$V_GITEA
# a comment
UNUSED@example.org=$V_ROTATED
CLAUDE_OAUTH_TOKEN@api.anthropic.com=$V_CLAUDE
"
render tools
expect_rc 0 "re-ordered secrets file"
expect_eq "$(hash_of)" "$H0" "re-ordering the file, comments and unused secrets do not change the hash"
expect_eq "$(json 'len(j["secrets"]["secrets"])')" 2 "an unused secret is not in secrets.json"
no_value "re-ordered"

# A new value changes the hash (rotation is picked up: the file is re-read).
write_secrets "CLAUDE_OAUTH_TOKEN@api.anthropic.com=$V_CLAUDE
GITEA_TOKEN@gitea.example.com=$V_ROTATED
"
render tools
expect_rc 0 "rotated value"
H1=$(hash_of)
if [ "$H1" != "$H0" ]; then ok "a new secret value changes the hash"; else
    not_ok "a new secret value did not change the hash"
fi
no_value "rotated"

# A wider binding changes the hash.
write_secrets "CLAUDE_OAUTH_TOKEN@api.anthropic.com=$V_CLAUDE
GITEA_TOKEN@gitea.example.com,*.example.com=$V_ROTATED
"
render tools
expect_rc 0 "wider binding"
if [ "$(hash_of)" != "$H1" ]; then ok "a new binding changes the hash"; else
    not_ok "a new binding did not change the hash"
fi

# A route change changes the hash.
write_secrets "CLAUDE_OAUTH_TOKEN@api.anthropic.com=$V_CLAUDE
GITEA_TOKEN@gitea.example.com=$V_GITEA
"
sed -i 's/^    - host: pypi.org$/    - host: pypi.org\n      ports: [443, 8443]/' "$TMP/m/tools.md"
render tools
expect_rc 0 "changed route"
expect_eq "$(json '[r["ports"] for r in j["routes"]["routes"] if r["host"] == "pypi.org"]')" \
    "[[443, 8443]]" "the changed route is rendered"
if [ "$(hash_of)" != "$H0" ]; then ok "a route change changes the hash"; else
    not_ok "a route change did not change the hash"
fi
cp "$SRC/examples/tools.md" "$TMP/m/tools.md"
render tools
expect_eq "$(hash_of)" "$H0" "the original route gives the original hash again"

# Knobs: normalised, sorted, part of routes.json and of the hash; order does not matter.
render tools --proxy-dns 10.0.0.53 --proxy-add-host Pypi.ORG:192.168.1.10 \
    --proxy-add-host gitea.example.com:2001:db8::1 --proxy-allow-private 192.168.1.0/24 \
    --proxy-allow-private fd00::/8
expect_rc 0 "render with knobs"
expect_eq "$(json '(j["routes"]["dns"], j["routes"]["hosts"], j["routes"]["allow_private"])')" \
    "('10.0.0.53', [{'ip': '2001:db8::1', 'name': 'gitea.example.com'}, {'ip': '192.168.1.10', 'name': 'pypi.org'}], ['192.168.1.0/24', 'fd00::/8'])" \
    "knobs in routes.json"
HK=$(hash_of)
if [ "$HK" != "$H0" ]; then ok "knobs change the hash"; else not_ok "knobs did not change the hash"; fi
BOTTLED_PROXY_ADD_HOST="gitea.example.com:2001:db8::1 pypi.org:192.168.1.10" \
    BOTTLED_PROXY_ALLOW_PRIVATE="fd00::/8 192.168.1.0/24" BOTTLED_PROXY_DNS=10.0.0.53 \
    run "$BOTTLED" render -d "$TMP/m" --state-dir "$ST" tools
expect_rc 0 "knobs from the environment, in another order"
expect_eq "$(hash_of)" "$HK" "the same knobs in another order give the same hash"
for bad in "--proxy-dns 10.0.0" "--proxy-add-host pypi.org" "--proxy-add-host 10.1.1.1:10.1.1.2" \
    "--proxy-allow-private 10.0.0.1/8" "--proxy-allow-private 10.0.0.0/33" \
    "--proxy-upstream-ca $TMP/nowhere.pem" "--proxy-upstream-ca $ST/secrets"; do
    # shellcheck disable=SC2086
    render tools $bad
    expect_rc 2 "invalid knob: $bad"
done
expect_in "$TMP/err" "holds no PEM certificate" "an upstream CA that is not PEM is named"
no_value "knob errors"

# Missing and wrongly bound secrets fail the bottle (exit 1), naming the secret.
write_secrets "CLAUDE_OAUTH_TOKEN@api.anthropic.com=$V_CLAUDE
"
render tools
expect_rc 1 "a route's secret is missing"
expect_in "$TMP/err" "secret 'GITEA_TOKEN' (for host 'gitea.example.com') is not in the secret store" \
    "the missing secret is named"
expect_in "$TMP/err" "tools.md:" "the error is positioned in the manifest"
expect_in "$TMP/err" "bottle 'tools'" "the error names the bottle"
no_value "missing secret"
render webapp
expect_rc 1 "another bottle with its own missing secret"
expect_in "$TMP/err" "GITHUB_READ_TOKEN" "its secret is named"
write_secrets "CLAUDE_OAUTH_TOKEN@api.anthropic.com=$V_CLAUDE
GITEA_TOKEN@*.example.com=$V_GITEA
GITHUB_READ_TOKEN@github.com=$V_ROTATED
"
render tools
expect_rc 0 "a '*.example.com' binding covers gitea.example.com"
render webapp
expect_rc 1 "a secret bound to other hosts"
expect_in "$TMP/err" "secret 'GITHUB_READ_TOKEN' may not be used for host 'api.github.com': outside its host binding" \
    "the wrongly bound secret and the host are named"
no_value "wrongly bound"

# '*' is an explicit, logged opt-out.
write_secrets "CLAUDE_OAUTH_TOKEN@*=$V_CLAUDE
GITEA_TOKEN@gitea.example.com=$V_GITEA
"
render tools
expect_rc 0 "a '*' binding"
expect_in "$TMP/err" "warning: secret 'CLAUDE_OAUTH_TOKEN' is bound to any host" "'*' is a warning"
no_value "'*' binding"

# The secrets file's own checks: bottled's configuration is wrong, exit 2.
write_secrets "CLAUDE_OAUTH_TOKEN@api.anthropic.com=$V_CLAUDE
GITEA_TOKEN@gitea.example.com=$V_GITEA
"
chmod 644 "$ST/secrets"
render tools
expect_rc 2 "a secrets file with mode 0644"
expect_in "$TMP/err" "mode 0644; it must be 0600 or 0400" "the mode is named"
no_value "bad mode"
chmod 400 "$ST/secrets"
render tools
expect_rc 0 "mode 0400 is fine"
chmod 600 "$ST/secrets"
ln -s "$ST/secrets" "$TMP/secrets-link"
render tools --secrets "$TMP/secrets-link"
expect_rc 2 "a symlinked secrets file"
expect_in "$TMP/err" "symbolic link" "says it is a link"
render tools --secrets "$TMP/none"
expect_rc 2 "a named secrets file that does not exist"
printf 'GITEA_TOKEN=%s\nCLAUDE_OAUTH_TOKEN@api.anthropic.com=%s\nCLAUDE_OAUTH_TOKEN@api.anthropic.com=x\n' \
    "$V_GITEA" "$V_CLAUDE" >"$TMP/bad-secrets"
chmod 600 "$TMP/bad-secrets"
render tools --secrets "$TMP/bad-secrets"
expect_rc 2 "a secrets file with errors"
expect_in "$TMP/err" "bad-secrets:1: secret 'GITEA_TOKEN' has no host binding" "no binding, positioned"
expect_in "$TMP/err" "bad-secrets:3: secret 'CLAUDE_OAUTH_TOKEN' is defined twice" "duplicate, positioned"
no_value "bad secrets file"
BOTTLED_SECRETS="$TMP/bad-secrets" run "$BOTTLED" render -d "$TMP/m" --state-dir "$ST" tools
expect_rc 2 "BOTTLED_SECRETS names the file"

# An absent default file is an empty store: bottles without secrets still render.
mkdir -p "$TMP/empty-state"
run "$BOTTLED" render -d "$TMP/m" --state-dir "$TMP/empty-state" tools
expect_rc 1 "no secrets file at all: tools needs secrets"
cat >"$TMP/m/plain.md" <<'X'
---
egress: {routes: [{host: pypi.org}]}
---
X
run "$BOTTLED" render -d "$TMP/m" --state-dir "$TMP/empty-state" plain
expect_rc 0 "no secrets file at all: a bottle without secrets renders"
expect_eq "$(json 'j["secrets"]')" "{'secrets': [], 'version': 1}" "an empty secrets.json"

# --secret-env imports a variable with its binding.
write_secrets "CLAUDE_OAUTH_TOKEN@api.anthropic.com=$V_CLAUDE
"
GITEA_TOKEN=$V_ENV run "$BOTTLED" render -d "$TMP/m" --state-dir "$ST" \
    --secret-env GITEA_TOKEN@gitea.example.com tools
expect_rc 0 "--secret-env supplies the missing secret"
no_value "--secret-env"
GITEA_TOKEN=$V_ENV BOTTLED_SECRET_ENV="GITEA_TOKEN@gitea.example.com" \
    run "$BOTTLED" render -d "$TMP/m" --state-dir "$ST" tools
expect_rc 0 "BOTTLED_SECRET_ENV"
run env -u GITEA_TOKEN "$BOTTLED" render -d "$TMP/m" --state-dir "$ST" \
    --secret-env GITEA_TOKEN@gitea.example.com tools
expect_rc 2 "--secret-env naming an unset variable"
expect_in "$TMP/err" "environment variable 'GITEA_TOKEN' is not set" "the variable is named"

# With the instance's HMAC key the hash is final, and keyed.
write_secrets "CLAUDE_OAUTH_TOKEN@api.anthropic.com=$V_CLAUDE
GITEA_TOKEN@gitea.example.com=$V_GITEA
"
printf 'test-hmac-key-0123456789abcdef!!' >"$ST/hmac.key"
chmod 600 "$ST/hmac.key"
render tools
expect_rc 0 "render with an HMAC key"
expect_eq "$(json 'j["hash_final"]')" "True" "the hash is final"
expect_not_in "$TMP/err" "no state yet" "no warning about the key"
if [ "$(hash_of)" != "$H0" ]; then ok "the key changes the hash"; else not_ok "the key did not change the hash"; fi
# The hash, recomputed from its definition (render.h) with the known key.
cp "$TMP/out" "$TMP/keyed.json"
got=$(/usr/bin/python3 - "$TMP/keyed.json" "$ST/hmac.key" "$V_CLAUDE" "$V_GITEA" <<'PY'
import hashlib, hmac, json, sys
j = json.load(open(sys.argv[1]))
key = open(sys.argv[2], "rb").read()
values = {"CLAUDE_OAUTH_TOKEN": sys.argv[3], "GITEA_TOKEN": sys.argv[4]}
pre = b"bottled-config-hash 1\n" + json.dumps(j["routes"], sort_keys=True, separators=(",", ":")).encode()
for s in j["secrets"]["secrets"]:
    mac = hmac.new(key, values[s["name"]].encode(), hashlib.sha256).hexdigest()
    pre += ("\nsecret %s %s %s" % (s["name"], ",".join(s["hosts"]), mac)).encode()
print(hashlib.sha256(pre).hexdigest() == j["config_hash"])
PY
)
expect_eq "$got" "True" "the hash is SHA-256 over routes.json and each secret's name, binding and HMAC"
rm "$ST/hmac.key"

# Read-only: nothing was written into the state dir (apart from what the test wrote).
rm -f "$ST/secrets"
write_secrets "CLAUDE_OAUTH_TOKEN@api.anthropic.com=$V_CLAUDE
GITEA_TOKEN@gitea.example.com=$V_GITEA
"
expect_eq "$(ls -A "$ST")" "secrets" "render writes nothing into the state dir"
expect_eq "$(cd "$TMP/m" && find . -newer "$TMP/state-before" -type f | grep -v -e plain.md -e tools.md | sort)" "" \
    "render writes nothing into the manifest dir"

# Usage and bottles that cannot be rendered.
render nope
expect_rc 1 "an unknown bottle"
expect_in "$TMP/err" "no bottle named 'nope'" "the unknown bottle is named"
render claude
expect_rc 1 "an abstract bottle"
expect_in "$TMP/err" "abstract" "says it is abstract"
render
expect_rc 2 "render without NAME"
run "$BOTTLED" render --help
expect_rc 0 "render --help"
for f in --secrets --secret-env --state-dir --proxy-dns --proxy-add-host --proxy-allow-private \
    --proxy-upstream-ca BOTTLED_SECRETS; do
    expect_in "$TMP/out" "$f" "render --help mentions $f"
done
run "$BOTTLED" --help
expect_in "$TMP/out" "  render " "--help lists render"

finish
