#!/usr/bin/env bash
# `bottled render` output, completed into a generation (real values, CA, MANIFEST),
# passes the sidecar's own loader: --check-config accepts it and reports render's hash.
. "$(dirname "$0")/lib.sh"

ST="$TMP/state"
mkdir -p "$ST" "$TMP/m"
cp -r "$SRC/examples/." "$TMP/m/"
# A wildcard route with auth: the binding names the same wildcard; and a '*' binding.
cat >"$TMP/m/corp.md" <<'X'
---
egress:
  routes:
    - host: "*.corp.example.net"
      auth: {scheme: token, token_ref: CORP_TOKEN}
    - host: api.example.org
      ports: [443, 8443]
      auth: {scheme: Bearer, token_ref: ANY_TOKEN}
      matches:
        - paths: [{type: regex, value: "/v[0-9]+/.*"}]
          headers: [{name: X-Api, type: regex, value: "v[0-9]+"}]
---
X
SECRET_GITHUB='github-VALUE-do-not-print-61a0'
SECRET_CORP='corp-VALUE-do-not-print-d4e2'
SECRET_ANY='any-VALUE-do-not-print-"quote\back'
{
    echo "CLAUDE_OAUTH_TOKEN@api.anthropic.com=$SECRET_CLAUDE"
    echo "GITEA_TOKEN@gitea.example.com=$SECRET_GITEA"
    echo "GITHUB_READ_TOKEN@api.github.com=$SECRET_GITHUB"
    echo "CORP_TOKEN@*.corp.example.net=$SECRET_CORP"
    echo "ANY_TOKEN@*=$SECRET_ANY"
} >"$ST/secrets"
chmod 600 "$ST/secrets"
printf 'roundtrip-hmac-key' >"$ST/hmac.key"

# complete NAME: renders NAME and builds $TMP/cfg-NAME/gen-1 from the output.
complete() {
    local cfg="$TMP/cfg-$1"
    run "$BOTTLED" render -d "$TMP/m" --state-dir "$ST" --proxy-dns 10.0.0.53 \
        --proxy-add-host gitea.example.com:192.168.1.10 --proxy-allow-private 192.168.1.0/24 \
        --proxy-upstream-ca "$TMP/pki/ca.pem" "$1"
    expect_rc 0 "render $1"
    mkdir -p "$cfg/gen-1"
    cp "$TMP/out" "$TMP/render-$1.json"
    # The small helper: real values into the masked secrets.json.
    SECRET_CLAUDE=$SECRET_CLAUDE SECRET_GITEA=$SECRET_GITEA SECRET_GITHUB=$SECRET_GITHUB \
        SECRET_CORP=$SECRET_CORP SECRET_ANY=$SECRET_ANY \
        /usr/bin/python3 - "$TMP/render-$1.json" "$cfg/gen-1" <<'PY'
import json, os, sys
r, g = json.load(open(sys.argv[1])), sys.argv[2]
env = {"CLAUDE_OAUTH_TOKEN": "SECRET_CLAUDE", "GITEA_TOKEN": "SECRET_GITEA",
       "GITHUB_READ_TOKEN": "SECRET_GITHUB", "CORP_TOKEN": "SECRET_CORP", "ANY_TOKEN": "SECRET_ANY"}
assert all(s["value"] == "<masked>" for s in r["secrets"]["secrets"])
for s in r["secrets"]["secrets"]:
    s["value"] = os.environ[env[s["name"]]]
dump = lambda v: json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
open(g + "/routes.json", "w").write(dump(r["routes"]))
open(g + "/secrets.json", "w").write(dump(r["secrets"]))
PY
    cp "$TMP/pki/ca.pem" "$TMP/pki/ca-key.pem" "$cfg/gen-1/"
    cp "$TMP/pki/ca.pem" "$cfg/gen-1/upstream-ca.pem"
    HASH=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["config_hash"])' "$TMP/render-$1.json")
    (
        cd "$cfg/gen-1" || exit
        {
            echo "bottled-proxy-config 1"
            echo "config-hash $HASH"
            for f in routes.json secrets.json ca.pem ca-key.pem upstream-ca.pem; do
                echo "file $(sha256sum <"$f" | cut -d' ' -f1) $f"
            done
        } >MANIFEST
    )
    chmod 600 "$cfg/gen-1/secrets.json" "$cfg/gen-1/ca-key.pem" "$cfg/gen-1/MANIFEST"
    printf 'gen-1\n' >"$cfg/current"
    CFG=$cfg
}

no_value() {
    local s
    for s in "$SECRET_CLAUDE" "$SECRET_GITEA" "$SECRET_GITHUB" "$SECRET_CORP" "$SECRET_ANY"; do
        if grep -qiF -- "$s" "$TMP/out" "$TMP/err"; then
            not_ok "$1: a secret value was printed" "$(cat "$TMP/out" "$TMP/err" | head -c 2000)"
            return
        fi
    done
    ok "$1: no secret value printed"
}

complete tools
no_value "render tools"
check "$CFG"
expect_rc 0 "the sidecar loads the generation rendered for tools"
expect_in "$TMP/out" "ok: generation gen-1, config hash $HASH, 4 routes, 2 secrets" \
    "it reports render's config hash"
no_value "check-config tools"

complete webapp
check "$CFG"
expect_rc 0 "the sidecar loads the generation rendered for webapp (regex header, wildcard route)"
expect_in "$TMP/out" "config hash $HASH, 5 routes, 2 secrets" "webapp: hash and counts"
no_value "check-config webapp"

complete corp
no_value "render corp"
check "$CFG"
expect_rc 0 "the sidecar loads a wildcard route with a wildcard binding and a '*' binding"
expect_in "$TMP/out" "config hash $HASH, 2 routes, 2 secrets" "corp: hash and counts"
expect_in "$TMP/err" "secret 'ANY_TOKEN' is bound to any host" "the sidecar logs the '*' binding too"
no_value "check-config corp"

# What render refuses, the sidecar refuses too: a binding that does not name the wildcard.
sed -i "s/^CORP_TOKEN@.*/CORP_TOKEN@a.corp.example.net=$SECRET_CORP/" "$ST/secrets"
run "$BOTTLED" render -d "$TMP/m" --state-dir "$ST" corp
expect_rc 1 "render refuses a wildcard route whose binding is a single host"
expect_in "$TMP/err" "a wildcard route needs the binding to name that same wildcard" "render says why"
no_value "render wrongly bound"
jedit "$CFG/gen-1/secrets.json" 'j["secrets"][1]["hosts"] = ["a.corp.example.net"]'
(cd "$CFG/gen-1" && sed -i "s/^file [0-9a-f]* secrets.json$/file $(sha256sum <secrets.json | cut -d' ' -f1) secrets.json/" MANIFEST)
check "$CFG"
expect_rc 1 "the sidecar refuses the same binding"
expect_in "$TMP/err" "a wildcard route needs the binding to name that same wildcard" "the sidecar says the same"
no_value "check-config wrongly bound"

finish
