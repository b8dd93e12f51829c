#!/bin/bash
# tests/forge/t0001-forge.sh FORGE_TEST - deploy keys at gitea, github and
# gitlab through the forge drivers (forge_test), each against its own
# fakeforge.py over HTTPS with a throwaway CA (tests/proxy/mkcerts.sh).
#
# For every provider: add 5 keys, list them over several pages (2 keys a
# page), delete one, delete it again (404 is done), duplicates, a wrong
# token (401), an unknown repository (404), a token without admin rights
# (403), 429 + Retry-After (seconds and HTTP-date) then success, 503s on a
# POST then success, the rate-limit headers honoured (the fake counts a
# request sent before the reset as a violation), a wait longer than
# allowed, retries running out, no CA, and the headers each forge expects
# (auth style, GitHub's Accept/version/User-Agent, GitLab's encoded
# project path with subgroups).  No output of forge_test may ever hold
# the token, right or wrong.
# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/../cli/lib.sh"
FT=$BOTTLED
HERE=$(cd "$(dirname "$0")" && pwd)
TOKEN='forge-TOKEN-do-not-print-7d2c91ab'
BAD='wrong-TOKEN-do-not-print-0e55aa13'
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT

bash "$HERE/../proxy/mkcerts.sh" "$TMP/pki" localhost
CA=$TMP/pki/ca.pem
export FORGE_TOKEN=$TOKEN FORGE_CA=$CA FORGE_BACKOFF_MS=100 FORGE_MAX_WAIT=5

# mkkey: a fresh ssh-ed25519 public key line (a random 32-byte key)
mkkey() {
    /usr/bin/python3 -c 'import base64, os
t = b"ssh-ed25519"
b = len(t).to_bytes(4, "big") + t + (32).to_bytes(4, "big") + os.urandom(32)
print("ssh-ed25519 " + base64.b64encode(b).decode() + " bottled-test")'
}

# start_forge KIND REPO-SPEC...: runs a fake forge, sets PORT
start_forge() {
    local kind=$1
    shift
    local args=()
    for r in "$@"; do args+=(--repo "$r"); done
    FAKEFORGE_TOKEN=$TOKEN /usr/bin/python3 "$HERE/fakeforge.py" --forge "$kind" \
        --cert "$TMP/pki/localhost.pem" --key "$TMP/pki/localhost-key.pem" \
        --port-file "$TMP/$kind.port" --page-max 2 "${args[@]}" 2>"$TMP/$kind.stderr" &
    PIDS+=($!)
    for _ in $(seq 100); do
        [ -s "$TMP/$kind.port" ] && break
        sleep 0.1
    done
    PORT=$(cat "$TMP/$kind.port")
}

ctl() { # NAME JSON: the fake forge's control API
    curl -sS --fail --cacert "$CA" -X POST -H 'Content-Type: application/json' \
        --data "$2" "https://localhost:$PORT/_fake/$1" >/dev/null
}
getlog() { curl -sS --fail --cacert "$CA" "https://localhost:$PORT/_fake/log" >"$TMP/log.json"; }
stats() { curl -sS --fail --cacert "$CA" "https://localhost:$PORT/_fake/stats"; }
# logq EXPR: a Python expression over the request log (a list bound to L)
logq() {
    /usr/bin/python3 -c 'import json, sys; L = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
        "$TMP/log.json" "$1"
}

# ft ARGS...: forge_test KIND ROOT ARGS..., then checks the token is not in its output
RUNS=0
LEAKS=0
ft() {
    run "$FT" "$KIND" "$ROOT" "$@"
    RUNS=$((RUNS + 1))
    if grep -qF -e "$TOKEN" -e "$BAD" "$TMP/out" "$TMP/err"; then
        LEAKS=$((LEAKS + 1))
        not_ok "$KIND: a token appears in the output of: $*" "$(cat "$TMP/out" "$TMP/err")"
    fi
}
first_id() { sed -n 's/^id //p' "$TMP/out"; }

forge_suite() {
    KIND=$1
    ROOT=$2
    REPO=$3
    local gone=$4 locked=$5
    local keys=() ids=()

    # --- add 5 keys, with write access
    ctl clear '{}'
    for i in 1 2 3 4 5; do
        keys[i]=$(mkkey)
        ft add "$REPO" "bottled:inst:bot:tools-$i" "${keys[$i]}"
        expect_rc 0 "$KIND: add key $i"
        ids[i]=$(first_id)
    done
    expect_eq "$(printf '%s\n' "${ids[@]}" | sort -u | grep -c .)" 5 "$KIND: 5 distinct key ids"
    getlog
    case $KIND in
    gitlab)
        expect_eq "$(logq 'json.loads(L[0]["body"])["can_push"]')" True "$KIND: can_push true sent"
        ;;
    *)
        expect_eq "$(logq 'json.loads(L[0]["body"])["read_only"]')" False "$KIND: read_only false sent"
        ;;
    esac
    expect_eq "$(logq 'sorted(json.loads(L[0]["body"]))')" \
        "$([ "$KIND" = gitlab ] && echo "['can_push', 'key', 'title']" || echo "['key', 'read_only', 'title']")" \
        "$KIND: the add body holds title, key and the access flag only"

    # --- list: every page
    ctl clear '{}'
    ft list "$REPO"
    expect_rc 0 "$KIND: list"
    expect_eq "$(head -1 "$TMP/out")" "5 keys" "$KIND: list finds the 5 keys"
    for i in 1 2 3 4 5; do
        expect_in "$TMP/out" "${ids[$i]}	bottled:inst:bot:tools-$i	rw" "$KIND: key $i listed, writable"
    done
    getlog
    expect_eq "$(logq 'sum(1 for e in L if e["method"] == "GET")')" 3 "$KIND: 3 pages fetched"
    case $KIND in
    gitea)
        expect_eq "$(logq 'L[0]["headers"].get("Authorization")')" "token $TOKEN" \
            "$KIND: Authorization: token"
        expect_in "$TMP/out" "SHA256:" "$KIND: fingerprints reported"
        ;;
    github)
        expect_eq "$(logq 'L[0]["headers"].get("Authorization")')" "Bearer $TOKEN" \
            "$KIND: Authorization: Bearer"
        expect_eq "$(logq 'L[0]["headers"].get("Accept")')" "application/vnd.github+json" \
            "$KIND: Accept header"
        expect_eq "$(logq 'L[0]["headers"].get("X-GitHub-Api-Version")')" "2022-11-28" \
            "$KIND: API version header"
        expect_eq "$(logq 'L[0]["headers"].get("User-Agent", "").startswith("bottled/")')" True \
            "$KIND: User-Agent sent"
        expect_eq "$(logq 'all(e["path"].startswith("/repositories/") for e in L[1:])')" True \
            "$KIND: next pages followed through the Link header"
        ;;
    gitlab)
        expect_eq "$(logq 'L[0]["headers"].get("PRIVATE-TOKEN")')" "$TOKEN" "$KIND: PRIVATE-TOKEN"
        expect_eq "$(logq 'L[0]["headers"].get("Authorization")')" None \
            "$KIND: no Authorization header"
        expect_in "$TMP/log.json" '/api/v4/projects/grp%2Fsub%2Ftools/deploy_keys' \
            "$KIND: subgroup path URL-encoded as one id"
        expect_in "$TMP/out" "SHA256:" "$KIND: fingerprint_sha256 reported"
        ;;
    esac

    # --- delete one, twice
    ft delete "$REPO" "${ids[3]}"
    expect_rc 0 "$KIND: delete key 3"
    expect_eq "$(cat "$TMP/out")" "deleted ${ids[3]}" "$KIND: delete says so"
    ft list "$REPO"
    expect_eq "$(head -1 "$TMP/out")" "4 keys" "$KIND: 4 keys left"
    expect_not_in "$TMP/out" "tools-3" "$KIND: key 3 is gone"
    ctl clear '{}'
    ft delete "$REPO" "${ids[3]}"
    expect_rc 0 "$KIND: deleting it again is done (404)"
    getlog
    expect_eq "$(logq '[e["status"] for e in L]')" "[404]" "$KIND: the forge said 404"

    # --- duplicates
    if [ "$KIND" = gitlab ]; then
        ft add "$REPO" "another title" "${keys[1]}"
        expect_rc 0 "$KIND: adding a key the project has answers that key"
        expect_eq "$(first_id)" "${ids[1]}" "$KIND: same id"
        local ro
        ro=$(mkkey)
        ctl seed "{\"repo\":\"$REPO\",\"title\":\"ro\",\"key\":\"$ro\",\"read_only\":true}"
        ft add "$REPO" "bottled:inst:bot:ro" "$ro"
        expect_rc 1 "$KIND: the same key without push access is refused"
        expect_in "$TMP/err" "without push access [already exists]" "$KIND: says why"
    else
        ft add "$REPO" "another title" "${keys[1]}"
        expect_rc 1 "$KIND: a duplicate key is refused"
        expect_in "$TMP/err" "rejected (HTTP 422)" "$KIND: 422"
        if [ "$KIND" = github ]; then
            expect_in "$TMP/err" "Validation Failed: key is already in use [already exists]" \
                "$KIND: the forge's message, as exists"
        else
            expect_in "$TMP/err" "This key has already been added to this repository [already exists]" \
                "$KIND: the forge's message, as exists"
            ft add "$REPO" "bottled:inst:bot:tools-1" "$(mkkey)"
            expect_rc 1 "$KIND: a duplicate title is refused"
            expect_in "$TMP/err" "A key with the same name already exists [already exists]" \
                "$KIND: duplicate title message"
        fi
    fi

    # --- errors: token, repository, rights
    FORGE_TOKEN=$BAD ft list "$REPO"
    expect_rc 1 "$KIND: wrong token fails"
    expect_in "$TMP/err" "$KIND: list keys of '$REPO': token rejected (HTTP 401)" \
        "$KIND: wrong token: one clear line"
    expect_eq "$(grep -c forge_test: "$TMP/err")" 1 "$KIND: one error line"
    ft list "$gone"
    expect_rc 1 "$KIND: unknown repository fails"
    expect_in "$TMP/err" "not found (HTTP 404): no such repository, or the token cannot see it" \
        "$KIND: unknown repository message"
    expect_in "$TMP/err" "[not found]" "$KIND: unknown repository is not found"
    ft add "$locked" "t" "$(mkkey)"
    expect_rc 1 "$KIND: no admin rights fails"
    expect_in "$TMP/err" "forbidden (HTTP 403): the token lacks admin rights on the repository" \
        "$KIND: 403 message"

    # --- pagination without the forge's preferred header
    local drop=
    case $KIND in
    gitea) drop=X-Total-Count ;;  # then: pages until an empty one
    gitlab) drop=X-Next-Page ;;   # then: Link rel="next"
    esac
    if [ -n "$drop" ]; then
        ft list "$REPO"
        local all
        all=$(head -1 "$TMP/out")
        ctl clear '{}'
        ctl fault "{\"status\":0,\"method\":\"GET\",\"count\":10,\"drop_headers\":[\"$drop\"]}"
        ft list "$REPO"
        expect_rc 0 "$KIND: list without $drop"
        expect_eq "$(head -1 "$TMP/out")" "$all" "$KIND: without $drop every key is found"
        getlog
        # gitea: 4 keys, 2 a page, then the empty page; gitlab: 5 keys (one
        # seeded read-only above), the last page has no rel="next"
        expect_eq "$(logq 'sum(1 for e in L if e["method"] == "GET")')" 3 \
            "$KIND: without $drop the pages end where they should"
        ctl clear '{}'
    fi

    # --- 429 with Retry-After (seconds), then success
    ctl clear '{}'
    ctl fault '{"status":429,"retry_after_in":1}'
    ft list "$REPO"
    expect_rc 0 "$KIND: 429 + Retry-After: 1, then success"
    expect_in "$TMP/err" "wait 1000" "$KIND: waited the second asked"
    getlog
    expect_eq "$(logq '[e["status"] for e in L][:2]')" "[429, 200]" "$KIND: 429 then 200"
    expect_eq "$(logq 'L[1]["time"] - L[0]["time"] >= 0.95')" True "$KIND: the retry came a second later"

    # --- Retry-After as an HTTP-date
    ctl clear '{}'
    ctl fault '{"status":429,"retry_after_date_in":1}'
    ft list "$REPO"
    expect_rc 0 "$KIND: 429 + Retry-After: <date>, then success"
    expect_eq "$(sed -n 's/^wait //p' "$TMP/err" | awk '{print ($1 >= 1000 && $1 <= 3000)}')" 1 \
        "$KIND: waited until the date"

    # --- 503 twice on a POST, then the key is created
    ctl clear '{}'
    ctl fault '{"status":503,"count":2,"method":"POST"}'
    ft add "$REPO" "bottled:inst:bot:tools-6" "$(mkkey)"
    expect_rc 0 "$KIND: 503, 503, then created"
    expect_eq "$(grep '^wait' "$TMP/err" | tr '\n' ' ')" "wait 100 wait 200 " "$KIND: backoff doubled"
    expect_in "$TMP/err" "mutations 3" "$KIND: three POSTs counted"
    getlog
    expect_eq "$(logq '[e["status"] for e in L]')" "[503, 503, 201]" "$KIND: the forge saw 3 POSTs"

    # --- rate limits: the reset time is honoured
    if [ "$KIND" != gitea ]; then
        ctl clear '{}'
        if [ "$KIND" = github ]; then
            ctl fault '{"status":403,"reset_in":1,"body":{"message":"API rate limit exceeded for user ID 1."}}'
        else
            ctl fault '{"status":429,"reset_in":1,"body":{"message":"Retry later"}}'
        fi
        ft list "$REPO"
        expect_rc 0 "$KIND: rate limited (remaining 0 + reset), then success"
        expect_in "$TMP/err" "wait " "$KIND: waited for the reset"
        expect_eq "$(stats)" '{"violations": 0, "faults_left": 0}' "$KIND: nothing sent before the reset"

        ctl clear '{}'
        ctl fault '{"status":0,"method":"GET","reset_in":1}'
        ft list "$REPO"
        expect_rc 0 "$KIND: a page saying remaining 0 makes the next page wait"
        expect_in "$TMP/err" "wait " "$KIND: waited before the next page"
        expect_eq "$(stats)" '{"violations": 0, "faults_left": 0}' "$KIND: no page sent before the reset"
        getlog
        expect_eq "$(logq '[e["status"] for e in L]')" "[200, 200, 200]" "$KIND: every page answered"
    fi

    # --- a wait longer than allowed is not waited
    ctl clear '{}'
    ctl fault '{"status":429,"retry_after_in":3600}'
    ft list "$REPO"
    expect_rc 1 "$KIND: Retry-After: 3600 fails at once"
    expect_in "$TMP/err" "rate limited (HTTP 429): the forge asks to wait 3600 s, more than the 5 s allowed" \
        "$KIND: says how long"
    expect_in "$TMP/err" "[peer unavailable]" "$KIND: as unavailable"
    expect_in "$TMP/err" "retry_at +3" "$KIND: retry_at set"
    getlog
    expect_eq "$(logq 'len(L)')" 1 "$KIND: one request only"

    # --- retries run out
    ctl clear '{}'
    ctl fault '{"status":503,"count":10}'
    ft list "$REPO"
    expect_rc 1 "$KIND: 503 forever fails"
    expect_in "$TMP/err" "forge error (HTTP 503) after 4 attempt(s): fault 503 injected" \
        "$KIND: says how often"
    getlog
    expect_eq "$(logq 'len(L)')" 4 "$KIND: 1 + 3 retries sent"
    ctl clear '{}'

    # --- TLS is verified
    FORGE_CA="" ft list "$REPO"
    expect_rc 1 "$KIND: without the test CA the forge is not trusted"
    expect_in "$TMP/err" "certificate" "$KIND: certificate error"

    # --- delete what is left
    ft list "$REPO"
    for id in $(tail -n +2 "$TMP/out" | cut -f1); do
        ft delete "$REPO" "$id"
        expect_rc 0 "$KIND: delete key $id"
    done
    ft list "$REPO"
    expect_eq "$(head -1 "$TMP/out")" "0 keys" "$KIND: all keys deleted"
}

start_forge gitea team/tools team/locked:noadmin
forge_suite gitea "https://localhost:$PORT/api/v1" team/tools team/nope team/locked

start_forge github octo/tools octo/locked:noadmin
forge_suite github "https://localhost:$PORT" octo/tools octo/nope octo/locked
# a next-page link to another origin is refused, not fetched
ctl fault '{"status":0,"method":"GET","link":"<https://127.0.0.1:1/steal?page=2>; rel=\"next\""}'
ft add octo/tools "t1" "$(mkkey)"
ft add octo/tools "t2" "$(mkkey)"
ft add octo/tools "t3" "$(mkkey)"
ft list octo/tools
expect_rc 1 "github: a Link to another origin fails"
expect_in "$TMP/err" "refusing a URL outside the API root https://localhost:$PORT" \
    "github: refused, naming the API root"

start_forge gitlab grp/sub/tools grp/locked:noadmin
forge_suite gitlab "https://localhost:$PORT/api/v4" grp/sub/tools grp/nope grp/locked

# a forge that does not answer: GET retried with backoff, then a clear error
KIND=gitea ROOT="https://localhost:1/api/v1"
ft list team/tools
expect_rc 1 "a forge that does not answer fails"
expect_eq "$(grep '^wait' "$TMP/err" | tr '\n' ' ')" "wait 100 wait 200 wait 400 " \
    "connection failures retried with backoff"
expect_in "$TMP/err" "gitea: list keys of 'team/tools': https://localhost:1/api/v1: " \
    "names the API root"
expect_in "$TMP/err" "[peer unavailable]" "as unavailable"

# the token may come on stdin too; an http:// API root is refused
KIND=gitlab ROOT="https://localhost:$PORT/api/v4"
set +e
printf '%s\n' "$TOKEN" | env -u FORGE_TOKEN "$FT" gitlab "$ROOT" list grp/sub/tools >"$TMP/out" 2>"$TMP/err"
RC=$?
set -e
expect_rc 0 "the token can come on stdin"
expect_in "$TMP/out" " keys" "the list came with a stdin token"
expect_not_in "$TMP/err" "$TOKEN" "no token in the output of the stdin run"
KIND=gitlab ROOT="http://localhost:$PORT/api/v4"
ft list grp/sub/tools
expect_rc 1 "an http:// API root is refused"
expect_in "$TMP/err" "is not an https:// URL" "http:// refused with a message"

expect_eq "$LEAKS" 0 "no token in the output of $RUNS forge_test runs"
finish
