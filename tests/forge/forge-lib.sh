# shellcheck shell=bash
# tests/forge/forge-lib.sh - a fake forge for end-to-end tests (sourced).
#
#   forge_start KIND DIR REPO...   runs fakeforge.py (gitea|github|gitlab) over
#                                  HTTPS with a throwaway CA in DIR/pki
#                                  (tests/proxy/mkcerts.sh, leaf "localhost");
#                                  sets FORGE_PID, FORGE_PORT, FORGE_CA,
#                                  FORGE_URL (https://localhost:PORT) and
#                                  FORGE_TOKEN (random; also the secret the
#                                  forge accepts, exported to it through the
#                                  environment, never argv)
#   forge_api_root KIND            the API root of the running fake for KIND
#   forge_ctl NAME JSON            POST /_fake/NAME (fault, seed, clear)
#   forge_keys                     GET /_fake/keys: {"owner/repo": [key...]}
#   forge_authorized_keys FILE     writes every writable key the forge holds
#                                  as an sshd authorized_keys file (0600), so
#                                  a real sshd upstream accepts exactly the
#                                  keys registered at the forge
#   forge_stop                     stops it
# The caller cleans DIR up; forge_stop is safe to call twice.
_FORGE_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

forge_start() {
    local kind=$1 dir=$2
    shift 2
    local args=() r
    for r in "$@"; do args+=(--repo "$r"); done
    mkdir -p "$dir"
    bash "$_FORGE_LIB_DIR/../proxy/mkcerts.sh" "$dir/pki" localhost >/dev/null
    FORGE_CA=$dir/pki/ca.pem
    FORGE_TOKEN=forge-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    rm -f "$dir/forge.port"
    FAKEFORGE_TOKEN=$FORGE_TOKEN python3 "$_FORGE_LIB_DIR/fakeforge.py" --forge "$kind" \
        --cert "$dir/pki/localhost.pem" --key "$dir/pki/localhost-key.pem" \
        --port-file "$dir/forge.port" --page-max 2 "${args[@]}" 2>"$dir/forge.stderr" &
    FORGE_PID=$!
    for _ in $(seq 100); do
        [ -s "$dir/forge.port" ] && break
        sleep 0.1
    done
    [ -s "$dir/forge.port" ] || return 1
    FORGE_PORT=$(cat "$dir/forge.port")
    FORGE_URL=https://localhost:$FORGE_PORT
}

forge_api_root() {
    case "$1" in
    gitea) printf '%s/api/v1\n' "$FORGE_URL" ;;
    gitlab) printf '%s/api/v4\n' "$FORGE_URL" ;;
    github) printf '%s\n' "$FORGE_URL" ;;
    esac
}

forge_ctl() {
    curl -sS --fail --cacert "$FORGE_CA" -X POST -H 'Content-Type: application/json' \
        --data "$2" "$FORGE_URL/_fake/$1" >/dev/null
}

forge_keys() { curl -sS --fail --cacert "$FORGE_CA" "$FORGE_URL/_fake/keys"; }

forge_authorized_keys() {
    (umask 077 && curl -sS --fail --cacert "$FORGE_CA" \
        "$FORGE_URL/_fake/keys?format=authorized_keys" >"$1.tmp") && mv -f "$1.tmp" "$1"
}

forge_stop() {
    [ -n "${FORGE_PID:-}" ] || return 0
    kill "$FORGE_PID" 2>/dev/null || true
    wait "$FORGE_PID" 2>/dev/null || true
    FORGE_PID=
}
