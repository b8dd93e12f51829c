#!/usr/bin/env bash
# t0002: the sidecar image, as the reconciler will use it, through the
# engine's Docker-compatible API: fixed non-root uid/gid, the binary as
# entrypoint, no engine healthcheck; a config generation copied into a
# volume through the archive API is checked by bottle-proxy inside the
# container, and a tampered one is refused.
. "$(dirname "$0")/harness.sh"

REPO=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=$(sed -n 's/^project(bottled VERSION \([0-9.]*\).*/\1/p' "$REPO/CMakeLists.txt")
IMAGE=localhost/bottled-proxy:$VERSION
: "${BOTTLED_BIN:?BOTTLED_BIN (the bottled binary) must be set; ctest sets it}"

require_engine

code=$(api_code GET "/images/$(urlenc "$IMAGE")/json")
[ "$code" = 200 ] || fatal "image $IMAGE exists in $ENGINE (HTTP $code; run: bash scripts/build-proxy-image.sh)"
pass "image $IMAGE exists"
api GET "/images/$(urlenc "$IMAGE")/json" >"$_TMP/image.json"
assert_eq 10099:10099 "$(jget Config User <"$_TMP/image.json")" "runs as the fixed uid:gid 10099:10099"
assert_eq '["/usr/local/bin/bottle-proxy"]' "$(jget Config Entrypoint <"$_TMP/image.json")" \
    "the entrypoint is bottle-proxy"
assert_eq None "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["Config"].get("Healthcheck"))' \
    <"$_TMP/image.json")" "no engine healthcheck"

# A valid generation: routes from `bottled show` of the examples, a CA from openssl.
G=$_TMP/cfg/gen-7
mkdir -p "$G"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$G/ca-key.pem" \
    -out "$G/ca.pem" -days 30 -subj /CN=t0002-ca -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
"$BOTTLED_BIN" show -d "$REPO/examples" tools >"$_TMP/show.json"
python3 - "$_TMP/show.json" "$G" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
g = sys.argv[2]
json.dump({"version": 1, "bottle": b["name"], "routes": b["egress"]["routes"], "dns": None,
           "hosts": [], "allow_private": []}, open(g + "/routes.json", "w"))
json.dump({"version": 1, "secrets": [
    {"name": "CLAUDE_OAUTH_TOKEN", "value": "t0002-claude-value-xyz", "hosts": ["api.anthropic.com"]},
    {"name": "GITEA_TOKEN", "value": "t0002-gitea-value-xyz", "hosts": ["*.example.com"]}]},
    open(g + "/secrets.json", "w"))
PY
HASH=$(cat "$G/routes.json" "$G/secrets.json" | sha256sum | cut -d' ' -f1)
manifest() {
    (cd "$G" && {
        echo "bottled-proxy-config 1"
        echo "config-hash $HASH"
        for f in ca-key.pem ca.pem routes.json secrets.json; do
            echo "file $(sha256sum <"$f" | cut -d' ' -f1) $f"
        done
    } >MANIFEST)
}
manifest
printf 'gen-7\n' >"$_TMP/cfg/current"
chmod 0600 "$G/secrets.json" "$G/ca-key.pem"

vol=$RUN_ID-cfg
api POST /volumes/create "{\"Name\":\"$vol\",\"Labels\":{\"$RUN_LABEL\":\"$RUN_ID\"}}" >/dev/null ||
    fatal "create volume $vol"

# check_config: a container from the image runs `--check-config /cfg` on the
# volume after the tree in $_TMP/cfg is copied in (owned by the proxy's uid).
# Sets CHECK_RC and CHECK_LOG.
check_config() {
    local id
    id=$(api POST "/containers/create?name=$RUN_ID-$RANDOM" \
        "{\"Image\":\"$IMAGE\",\"Cmd\":[\"--check-config\",\"/cfg\"],
          \"Labels\":{\"$RUN_LABEL\":\"$RUN_ID\"},
          \"HostConfig\":{\"Binds\":[\"$vol:/cfg\"]}}" | jget Id) || fatal "create a proxy container"
    tar --numeric-owner --owner=10099 --group=10099 -C "$_TMP/cfg" -cf "$_TMP/cfg.tar" .
    curl -sS -f --unix-socket "$SOCK" -X PUT -H 'Content-Type: application/x-tar' \
        --data-binary @"$_TMP/cfg.tar" "$API/containers/$id/archive?path=/cfg" ||
        fatal "copy the generation into the volume through the archive API"
    api POST "/containers/$id/start" >/dev/null || fatal "start the proxy container"
    CHECK_RC=$(api POST "/containers/$id/wait" | jget StatusCode)
    api GET "/containers/$id/logs?stdout=1&stderr=1" >"$_TMP/logs.raw"
    CHECK_LOG=$(python3 -c '
import struct, sys
b = open(sys.argv[1], "rb").read()
while len(b) >= 8:
    n = struct.unpack(">I", b[4:8])[0]
    sys.stdout.write(b[8:8 + n].decode(errors="replace"))
    b = b[8 + n:]' "$_TMP/logs.raw")
}

check_config
assert_eq 0 "$CHECK_RC" "bottle-proxy in the container accepts the generation"
case "$CHECK_LOG" in
*"config hash $HASH"*) pass "it reports the generation's config hash" ;;
*) fail "it reports the config hash $HASH: log was: $CHECK_LOG" ;;
esac

# Tamper with routes.json without updating MANIFEST: refused.
python3 -c 'import json,sys; p=sys.argv[1]; j=json.load(open(p)); j["routes"]=j["routes"][:1]; json.dump(j, open(p,"w"))' \
    "$G/routes.json"
check_config
assert_eq 1 "$CHECK_RC" "a generation whose digest does not match is refused"
case "$CHECK_LOG" in
*routes.json*) pass "the refusal names routes.json" ;;
*) fail "the refusal names routes.json: log was: $CHECK_LOG" ;;
esac
case "$CHECK_LOG" in
*t0002-claude-value-xyz* | *t0002-gitea-value-xyz*) fail "a secret value appeared in the container's output" ;;
*) pass "no secret value in the container's output" ;;
esac
