#!/usr/bin/env bash
# t0003: the sidecar image running as the reconciler will run it: a config
# volume filled through the engine's archive API, /healthz and the served
# config hash read from inside the container, then a new generation copied
# in the same way plus SIGHUP through the engine's kill call changes the
# served hash, with no restart of the container or of the proxy process.
. "$(dirname "$0")/harness.sh"

REPO=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=$(sed -n 's/^project(bottled VERSION \([0-9.]*\).*/\1/p' "$REPO/CMakeLists.txt")
IMAGE=localhost/bottled-proxy:$VERSION
: "${BOTTLED_BIN:?BOTTLED_BIN (the bottled binary) must be set; ctest sets it}"

require_engine
code=$(api_code GET "/images/$(urlenc "$IMAGE")/json")
[ "$code" = 200 ] || fatal "image $IMAGE exists in $ENGINE (HTTP $code; run: bash scripts/build-proxy-image.sh)"

# make_gen N KEEP: generation gen-N in $_TMP/cfgN with the first KEEP routes of
# the examples' tools bottle; prints its config hash.
"$BOTTLED_BIN" show -d "$REPO/examples" tools >"$_TMP/show.json"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$_TMP/ca-key.pem" \
    -out "$_TMP/ca.pem" -days 30 -subj /CN=t0003-ca -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
make_gen() {
    local d=$_TMP/cfg$1 g hash f
    g=$d/gen-$1
    mkdir -p "$g"
    cp "$_TMP/ca.pem" "$_TMP/ca-key.pem" "$g/"
    python3 - "$_TMP/show.json" "$g" "$2" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
g, keep = sys.argv[2], int(sys.argv[3])
json.dump({"version": 1, "bottle": b["name"], "routes": b["egress"]["routes"][:keep], "dns": None,
           "hosts": [], "allow_private": []}, open(g + "/routes.json", "w"))
used = {r["auth"]["token_ref"] for r in b["egress"]["routes"][:keep] if r["auth"]}
secrets = [s for s in [
    {"name": "CLAUDE_OAUTH_TOKEN", "value": "t0003-claude-value-xyz", "hosts": ["api.anthropic.com"]},
    {"name": "GITEA_TOKEN", "value": "t0003-gitea-value-xyz", "hosts": ["*.example.com"]}]
    if s["name"] in used]
json.dump({"version": 1, "secrets": secrets}, open(g + "/secrets.json", "w"))
PY
    hash=$(cat "$g/routes.json" "$g/secrets.json" | sha256sum | cut -d' ' -f1)
    {
        echo "bottled-proxy-config 1"
        echo "config-hash $hash"
        for f in ca-key.pem ca.pem routes.json secrets.json; do
            echo "file $(sha256sum <"$g/$f" | cut -d' ' -f1) $f"
        done
    } >"$g/MANIFEST"
    chmod 0600 "$g/secrets.json" "$g/ca-key.pem" "$g/MANIFEST"
    printf 'gen-%s\n' "$1" >"$d/current"
    echo "$hash"
}
H1=$(make_gen 1 99)
H2=$(make_gen 2 1)
[ "$H1" != "$H2" ] || fatal "the two generations differ"

# put_cfg ID N: copy generation N (then its current pointer, last) into /cfg.
put_cfg() {
    tar --numeric-owner --owner=10099 --group=10099 -C "$_TMP/cfg$2" -cf "$_TMP/put.tar" \
        "gen-$2" current
    curl -sS -f --unix-socket "$SOCK" -X PUT -H 'Content-Type: application/x-tar' \
        --data-binary @"$_TMP/put.tar" "$API/containers/$1/archive?path=/cfg"
}
# admin ID PATH: GET the admin endpoint from inside the container; body in EXEC_OUT_FILE
admin() { exec_in "$1" "curl -sS -f --max-time 2 http://127.0.0.1:9098$2"; }
wait_hash() { # ID HASH
    local i
    for i in $(seq 1 50); do
        admin "$1" /config-hash >/dev/null || true
        grep -q "$2" "$EXEC_OUT_FILE" && return 0
        sleep 0.2
    done
    return 1
}

vol=$RUN_ID-cfg
api POST /volumes/create "{\"Name\":\"$vol\",\"Labels\":{\"$RUN_LABEL\":\"$RUN_ID\"}}" >/dev/null ||
    fatal "create volume $vol"
cid=$(api POST "/containers/create?name=$RUN_ID-proxy" \
    "{\"Image\":\"$IMAGE\",\"Cmd\":[\"--config\",\"/cfg\"],
      \"Labels\":{\"$RUN_LABEL\":\"$RUN_ID\"},
      \"HostConfig\":{\"Binds\":[\"$vol:/cfg\"],\"CapDrop\":[\"ALL\"],
                      \"SecurityOpt\":[\"no-new-privileges\"]}}" | jget Id) ||
    fatal "create the sidecar container"
put_cfg "$cid" 1 || fatal "copy generation 1 into the cfg volume through the archive API"
api POST "/containers/$cid/start" >/dev/null || fatal "start the sidecar"

ready=0
for i in $(seq 1 50); do
    if [ "$(admin "$cid" /healthz 2>/dev/null)" = 0 ]; then ready=1 && break; fi
    sleep 0.2
done
[ "$ready" = 1 ] && pass "/healthz answers 200 inside the running sidecar" ||
    fail "/healthz answers 200: $(head -c 300 "$EXEC_OUT_FILE")"
wait_hash "$cid" "$H1" && pass "it serves generation 1's config hash" ||
    fail "serves $H1, got: $(head -c 200 "$EXEC_OUT_FILE")"

before=$(api GET "/containers/$cid/json")
pid1=$(jget State Pid <<<"$before")
started1=$(jget State StartedAt <<<"$before")

put_cfg "$cid" 2 || fatal "copy generation 2 in through the archive API"
api POST "/containers/$cid/kill?signal=HUP" >/dev/null || fatal "SIGHUP through the engine's kill call"
wait_hash "$cid" "$H2" && pass "after SIGHUP it serves generation 2's config hash" ||
    fail "serves $H2 after the reload, got: $(head -c 200 "$EXEC_OUT_FILE")"

after=$(api GET "/containers/$cid/json")
assert_eq running "$(jget State Status <<<"$after")" "the sidecar is still running"
assert_eq "$pid1" "$(jget State Pid <<<"$after")" "same proxy process (no restart)"
assert_eq "$started1" "$(jget State StartedAt <<<"$after")" "same container start (no restart)"
assert_eq 0 "$(jget RestartCount <<<"$after")" "restart count 0"

api GET "/containers/$cid/logs?stdout=1&stderr=1" >"$_TMP/logs.raw" || true
if grep -aq 't0003-[a-z]*-value-xyz' "$_TMP/logs.raw"; then
    fail "a secret value appeared in the sidecar's output"
else
    pass "no secret value in the sidecar's output"
fi
