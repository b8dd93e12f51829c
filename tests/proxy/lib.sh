# tests/proxy/lib.sh - shell tests of `bottle-proxy --check-config`.
#
# Usage in a test:  . "$(dirname "$0")/lib.sh"; ... ; finish
# Arguments of every test script: PATH-TO-bottle-proxy PATH-TO-bottled.
# Builds on tests/cli/lib.sh (ok, run, expect_*, finish, $TMP) and adds a
# valid config generation made with the real tools: routes from
# `bottled show` of examples/tools.md, a CA from openssl, MANIFEST from
# sha256sum.  Each check runs the proxy over a fresh copy (fresh_cfg), so
# one bad variant never leaks into the next.
. "$(dirname "$0")/../cli/lib.sh"
PROXY=$1
BOTTLED=${2:?usage: $0 PATH-TO-bottle-proxy PATH-TO-bottled}
SRC=$(cd "$(dirname "$0")/../.." && pwd)

# Distinctive secret values: no output may ever contain them.
SECRET_CLAUDE='claude-VALUE-do-not-print-7f3a9c'
SECRET_GITEA='gitea-VALUE-do-not-print-2b8e41'

# remanifest GENDIR: writes MANIFEST over every other regular file there.
remanifest() {
    (
        cd "$1"
        {
            echo "bottled-proxy-config 1"
            echo "config-hash $(cat routes.json secrets.json | sha256sum | cut -d' ' -f1)"
            for f in *; do
                [ "$f" = MANIFEST ] || [ ! -f "$f" ] || [ -L "$f" ] && continue
                echo "file $(sha256sum <"$f" | cut -d' ' -f1) $f"
            done
        } >MANIFEST
    )
}

# jedit FILE PYTHON: runs Python statements on the JSON in FILE (bound to j), writes it back.
jedit() {
    /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
p, code = sys.argv[1], sys.argv[2]
j = json.load(open(p))
exec(code)
open(p, "w").write(json.dumps(j, separators=(",", ":"), sort_keys=True))
PY
}

# The pristine generation, built once per script in $TMP/base/gen-1.
make_base() {
    local g="$TMP/base/gen-1"
    mkdir -p "$g" "$TMP/pki"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$TMP/pki/ca-key.pem" -out "$TMP/pki/ca.pem" -days 30 -subj /CN=bottle-test-ca \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        2>/dev/null
    cp "$TMP/pki/ca.pem" "$TMP/pki/ca-key.pem" "$g/"
    "$BOTTLED" show -d "$SRC/examples" tools >"$TMP/pki/show.json"
    /usr/bin/python3 - "$TMP/pki/show.json" "$g" "$SECRET_CLAUDE" "$SECRET_GITEA" <<'PY'
import json, sys
show, g, claude, gitea = sys.argv[1:5]
b = json.load(open(show))
routes = {"version": 1, "bottle": b["name"], "routes": b["egress"]["routes"],
          "dns": None, "hosts": [], "allow_private": []}
secrets = {"version": 1, "secrets": [
    {"name": "CLAUDE_OAUTH_TOKEN", "value": claude, "hosts": ["api.anthropic.com"]},
    {"name": "GITEA_TOKEN", "value": gitea, "hosts": ["*.example.com"]}]}
json.dump(routes, open(g + "/routes.json", "w"), separators=(",", ":"), sort_keys=True)
json.dump(secrets, open(g + "/secrets.json", "w"), separators=(",", ":"), sort_keys=True)
PY
    chmod 600 "$g/secrets.json" "$g/ca-key.pem"
    remanifest "$g"
    printf 'gen-1\n' >"$TMP/base/current"
}

# fresh_cfg: a new copy of the base config in $CFG, generation dir in $GEN.
N_CFG=0
fresh_cfg() {
    N_CFG=$((N_CFG + 1))
    CFG="$TMP/cfg$N_CFG"
    GEN="$CFG/gen-1"
    cp -a "$TMP/base" "$CFG"
}

check() { run "$PROXY" --check-config "${1:-$CFG}" "${@:2}"; }

# no_secret_in_output what: neither secret value in stdout or stderr, in any letter case.
no_secret_in_output() {
    local s
    for s in "$SECRET_CLAUDE" "$SECRET_GITEA"; do
        if grep -qiF -- "$s" "$TMP/out" "$TMP/err"; then
            not_ok "$1: a secret value was printed" "$(cat "$TMP/out" "$TMP/err" | head -c 2000)"
            return
        fi
    done
    ok "$1: no secret value printed"
}

# expect_invalid what fragment: exit 1, fragment on stderr, no secret anywhere.
expect_invalid() {
    expect_rc 1 "$1"
    expect_in "$TMP/err" "$2" "$1: says '$2'"
    no_secret_in_output "$1"
}

make_base
