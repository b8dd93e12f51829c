#!/usr/bin/env bash
# A real git client through the proxy to a smart-HTTP git server (githttp.py,
# git http-backend, receive-pack enabled): clone and fetch pass on a route
# with git_fetch; push is refused however it is spelled and never reaches the
# server; a route without git_fetch whose matches cover /api/ only refuses
# the clone.  A direct push at the end proves the server would have taken it.
. "$(dirname "$0")/live.sh"
set -o pipefail

live_setup 40
GITHTTP_PY="$SRC/tests/proxy/githttp.py"
"$SRC/tests/proxy/mkcerts.sh" "$TMP/uppki" git.test nogit.test gitm.test >/dev/null
live_routes '
import copy
ip = [h["ip"] for h in j["hosts"] if h["name"] == "upstream.test"][0]
j["hosts"] += [{"name": h, "ip": ip} for h in ("git.test", "nogit.test", "gitm.test")]
base = '"$(route_of upstream.test)"'
g = copy.deepcopy(base)
g.update(host="git.test", git_fetch=True, matches=[], ports=[9443], auth=None)
n = copy.deepcopy(base)
n.update(host="nogit.test", git_fetch=False, ports=[9444], auth=None,
         matches=[{"methods": [], "headers": [], "paths": [{"type": "prefix", "value": "/api/"}]}])
m = copy.deepcopy(n)
m.update(host="gitm.test", git_fetch=True, ports=[9445])
j["routes"] += [g, n, m]
'

# git on the host: no user or system config, no proxy or CA settings from the
# environment (GIT_SSL_CAINFO would beat http.sslCAInfo), never a prompt.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy no_proxy NO_PROXY \
    GIT_SSL_CAINFO GIT_SSL_CAPATH GIT_SSL_NO_VERIFY GIT_SSL_CERT GIT_SSL_KEY GIT_PROXY_COMMAND \
    GIT_CONFIG_PARAMETERS GIT_CONFIG_COUNT GIT_DIR GIT_WORK_TREE
export HOME="$TMP/home" GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0 GIT_ASKPASS=/bin/false
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.invalid
export GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.invalid
mkdir -p "$HOME"
PG=(git -c "http.proxy=$PROXY_URL" -c "http.sslCAInfo=$BOTTLE_CA")

# The server's repository, with a first commit, pushes over HTTP enabled.
SRV="$TMP/srv"
BARE="$SRV/repo.git"
git init -q --bare -b main "$BARE"
git -C "$BARE" config http.receivepack true
git init -q -b main "$TMP/seed"
echo one >"$TMP/seed/file"
git -C "$TMP/seed" add file
git -C "$TMP/seed" commit -q -m one
git -C "$TMP/seed" push -q "$BARE" main
server_refs() { git -C "$BARE" for-each-ref --format='%(objectname) %(refname)'; }

# gitserver PORT NAME: githttp.py in the namespace with NAME's certificate.
gitserver() {
    "$NETNS_SH" exec "$LIVE_NS" /usr/bin/python3 "$GITHTTP_PY" --listen "$UP_IP:$1" \
        --tls "$TMP/uppki/$2.pem" "$TMP/uppki/$2-key.pem" --root "$SRV" --log "$UPLOG" \
        >"$TMP/git$1.out" 2>"$TMP/git$1.err" &
    LIVE_PIDS+=($!)
    wait_line "$TMP/git$1.out" '^ready' || not_ok "git server on $1 did not start" "$(cat "$TMP/git$1.err")"
}
gitserver 9443 git.test
gitserver 9444 nogit.test
gitserver 9445 gitm.test
live_start echo

REPO=https://git.test:9443/git/repo.git

# --- clone and fetch are allowed ---
uplog_mark
run "${PG[@]}" clone -q "$REPO" "$TMP/clone"
expect_rc 0 "git clone through the proxy"
expect_eq "$(git -C "$TMP/clone" rev-parse HEAD 2>&1)" "$(git -C "$BARE" rev-parse main)" \
    "the clone has the server's commit"
uplog_since >"$TMP/seen"
expect_in "$TMP/seen" "GET /git/repo.git/info/refs?service=git-upload-pack HTTP/1.1" \
    "upstream saw the upload-pack advertisement request"
expect_in "$TMP/seen" "POST /git/repo.git/git-upload-pack HTTP/1.1" "upstream saw the upload-pack POST"
expect_eq "$(audit_last 'a["decision"], a["reason"], a["path"]' req)" \
    "('allow', 'git fetch', '/git/repo.git/git-upload-pack')" "audit: allowed as git fetch"

echo two >>"$TMP/seed/file"
git -C "$TMP/seed" commit -q -am two
git -C "$TMP/seed" push -q "$BARE" main
run "${PG[@]}" -C "$TMP/clone" fetch -q origin
expect_rc 0 "git fetch through the proxy"
expect_eq "$(git -C "$TMP/clone" rev-parse origin/main 2>&1)" "$(git -C "$BARE" rev-parse main)" \
    "fetch brought the new commit"
run "${PG[@]}" -c protocol.version=0 -C "$TMP/clone" fetch -q origin
expect_rc 0 "git fetch through the proxy, protocol v0"
run "${PG[@]}" -C "$TMP/clone" ls-remote origin
expect_rc 0 "git ls-remote through the proxy"
expect_in "$TMP/out" "refs/heads/main" "ls-remote lists main"

# --- push is refused and never reaches the server ---
git -C "$TMP/clone" merge -q --ff-only origin/main
echo evil >"$TMP/clone/evil"
git -C "$TMP/clone" add evil
git -C "$TMP/clone" commit -q -m evil
REFS_BEFORE=$(server_refs)
uplog_mark
run "${PG[@]}" -C "$TMP/clone" push origin HEAD:main
expect_rc 128 "git push through the proxy fails"
expect_in "$TMP/err" "403" "git reports the 403"
expect_eq "$(audit_last 'a["decision"], a["reason"]' req)" \
    "('deny', 'git push (git-receive-pack) is denied')" "audit: push denied"
run "${PG[@]}" -C "$TMP/clone" push origin HEAD:refs/heads/evil
expect_rc 128 "git push of a new branch fails"
run "${PG[@]}" -c protocol.version=0 -C "$TMP/clone" push origin HEAD:main
expect_rc 128 "git push with protocol v0 fails"
run "${PG[@]}" -c 'http.extraHeader=Content-Type: application/x-git-upload-pack-request' \
    -c 'http.extraHeader=Accept: application/x-git-upload-pack-result' \
    -c 'http.extraHeader=X-HTTP-Method-Override: GET' -C "$TMP/clone" push origin HEAD:main
expect_rc 128 "git push with upload-pack headers added fails"
expect_in "$TMP/err" "403" "extra headers: git reports the 403"
run "${PG[@]}" -c 'http.extraHeader=Git-Protocol: version=2' -C "$TMP/clone" \
    push "$REPO?service=git-upload-pack" HEAD:main
expect_rc 128 "git push to a URL carrying an upload-pack query fails"
run "${PG[@]}" -C "$TMP/clone" push "https://git.test:9443/git/repo.git/git-upload-pack/.." HEAD:main
expect_rc 128 "git push to a URL with a dot-dot fails"
expect_upstream_silent "git push"
expect_eq "$(server_refs)" "$REFS_BEFORE" "server refs unchanged after the pushes"

# --- the same by hand: every spelling of receive-pack refused ---
deny() { # what expected-reason curl-args...
    local what=$1 reason=$2
    shift 2
    pcurl "$@"
    expect_status 403 "$what"
    expect_in "$TMP/out" "$reason" "$what: reason"
}
PUSH='git push (git-receive-pack) is denied'
R=$REPO
uplog_mark
deny "receive-pack advertisement" "$PUSH" "$R/info/refs?service=git-receive-pack"
deny "encoded service value" "$PUSH" "$R/info/refs?service=git%2Dreceive%2Dpack"
deny "form-encoded service value" "$PUSH" "$R/info/refs?service=git-receive%2dpack"
deny "second service parameter" "$PUSH" "$R/info/refs?service=git-upload-pack&service=git-receive-pack"
deny "service after a semicolon" "$PUSH" "$R/info/refs?x=1;service=git-receive-pack"
deny "upper-case service value" "$PUSH" "$R/info/refs?service=GIT-RECEIVE-PACK"
deny "encoded service name" "$PUSH" "$R/info/refs?%73ervice=git-receive-pack"
deny "receive-pack POST" "$PUSH" -X POST -H 'Content-Type: application/x-git-receive-pack-request' \
    --data-binary 0000 "$R/git-receive-pack"
deny "receive-pack POST, mixed case" "$PUSH" -X POST --data-binary 0000 "$R/git-Receive-Pack"
deny "receive-pack POST, encoded dash" "$PUSH" -X POST --data-binary 0000 --path-as-is "$R/git%2Dreceive-pack"
deny "receive-pack POST, path parameter" "$PUSH" -X POST --data-binary 0000 --path-as-is "$R/git-receive-pack;x=1"
deny "receive-pack POST, trailing slash" "$PUSH" -X POST --data-binary 0000 "$R/git-receive-pack/"
deny "receive-pack POST behind dot segments" "$PUSH" -X POST --data-binary 0000 --path-as-is \
    "$R/git-upload-pack/../git-receive-pack"
deny "upload-pack path, receive-pack content type" "$PUSH" -X POST \
    -H 'Content-Type: application/x-git-receive-pack-request' --data-binary 0000 "$R/git-upload-pack"
deny "upload-pack path, receive-pack content type with parameters" "$PUSH" -X POST \
    -H 'Content-Type: Application/X-Git-Receive-Pack-Request; charset=x' --data-binary 0000 "$R/git-upload-pack"
deny "upload-pack path, receive-pack Accept" "$PUSH" -X POST \
    -H 'Content-Type: application/x-git-upload-pack-request' \
    -H 'Accept: text/plain, application/x-git-receive-pack-result' --data-binary 0000 "$R/git-upload-pack"
deny "advertisement Accept on info/refs" "$PUSH" \
    -H 'Accept: application/x-git-receive-pack-advertisement' "$R/info/refs?service=git-upload-pack"
expect_upstream_silent "receive-pack by hand"
uplog_mark
# A receive-pack request pipelined behind an allowed one on the same
# bumped connection: the first is served, the second refused.
printf '%s\r\n' "GET /git/repo.git/info/refs?service=git-upload-pack HTTP/1.1" "Host: git.test:9443" "" \
    "POST /git/repo.git/git-receive-pack HTTP/1.1" "Host: git.test:9443" \
    "Content-Type: application/x-git-receive-pack-request" "Content-Length: 4" "" >"$TMP/pipe"
printf '0000' >>"$TMP/pipe"
raw --tunnel git.test:9443 <"$TMP/pipe" >"$TMP/out"
expect_in "$TMP/out" "HTTP/1.1 200" "pipelined: the upload-pack advertisement is served"
expect_in "$TMP/out" "HTTP/1.1 403" "pipelined: the receive-pack POST is refused"
expect_in "$TMP/out" "$PUSH" "pipelined: reason"
uplog_since >"$TMP/seen"
expect_in "$TMP/seen" "service=git-upload-pack" "pipelined: upstream got the allowed request"
expect_not_in "$TMP/seen" "receive-pack" "pipelined: upstream got nothing of the refused one"
# Nothing anywhere in the byte log ever said receive-pack, in any case.
expect_eq "$(grep -ci 'receive' "$UPLOG" || true)" 0 "the upstream byte log never shows receive-pack"
expect_eq "$(server_refs)" "$REFS_BEFORE" "server refs unchanged after the requests by hand"

# --- git_fetch is narrow: other git endpoints follow the route's matches ---
# (git.test has no matches, so everything but push passes there; nogit.test
# has matches for /api/ only and no git_fetch; gitm.test the same matches
# and git_fetch.)
uplog_mark
run "${PG[@]}" clone -q https://nogit.test:9444/git/repo.git "$TMP/clone2"
expect_rc 128 "clone refused on a route without git_fetch"
expect_in "$TMP/err" "403" "clone without git_fetch: git reports the 403"
expect_eq "$(audit_last 'a["decision"], a["reason"]' req)" \
    "('deny', 'no matches entry allows the request')" "audit: clone refused by the matches"
deny "upload-pack POST without git_fetch" "no matches entry allows the request" -X POST \
    -H 'Content-Type: application/x-git-upload-pack-request' --data-binary 0000 \
    https://nogit.test:9444/git/repo.git/git-upload-pack
deny "push without git_fetch" "$PUSH" "https://nogit.test:9444/api/repo.git/info/refs?service=git-receive-pack"
expect_upstream_silent "route without git_fetch"
pcurl https://nogit.test:9444/api/x
expect_status 200 "the /api/ match still passes"
expect_eq "$(json 'j["path"]')" "/api/x" "upstream got /api/x"

uplog_mark
run "${PG[@]}" clone -q https://gitm.test:9445/git/repo.git "$TMP/clone3"
expect_rc 0 "clone passes on a route with git_fetch and matches for /api/ only"
expect_eq "$(git -C "$TMP/clone3" rev-parse HEAD 2>&1)" "$(git -C "$BARE" rev-parse main)" \
    "that clone has the server's commit"
uplog_mark
NOM='no matches entry allows the request'
G3=https://gitm.test:9445/git/repo.git
deny "git_fetch: info/refs without a service (dumb protocol)" "$NOM" "$G3/info/refs"
deny "git_fetch: info/refs with an extra parameter" "$NOM" "$G3/info/refs?service=git-upload-pack&x=1"
deny "git_fetch: POST to info/refs" "$NOM" -X POST --data-binary 0000 "$G3/info/refs?service=git-upload-pack"
deny "git_fetch: GET of git-upload-pack" "$NOM" "$G3/git-upload-pack"
deny "git_fetch: dumb object fetch" "$NOM" "$G3/HEAD"
deny "git_fetch: upload-pack at the root" "$NOM" -X POST --data-binary 0000 https://gitm.test:9445/git-upload-pack
deny "git_fetch: push" "$PUSH" "$G3/info/refs?service=git-receive-pack"
expect_upstream_silent "git_fetch with matches"
run "${PG[@]}" -C "$TMP/clone3" push origin HEAD:main
expect_rc 128 "push refused on the git_fetch route with matches"
expect_upstream_silent "push on the git_fetch route with matches"

# --- control: the server takes a push that does not go through the proxy ---
run git -c "http.sslCAInfo=$TMP/uppki/ca.pem" -c "http.curloptResolve=git.test:9443:$UP_IP" \
    -C "$TMP/clone" push "$REPO" HEAD:main
expect_rc 0 "control: a direct push to the server succeeds"
expect_eq "$(git -C "$BARE" rev-parse main)" "$(git -C "$TMP/clone" rev-parse HEAD)" \
    "control: the direct push changed the server's main"
expect_in "$UPLOG" "git-receive-pack" "control: the byte log records a receive-pack request"

no_secret_anywhere "git"
live_stop
finish
