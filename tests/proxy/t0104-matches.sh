#!/usr/bin/env bash
# Route matches on method and normalised path; traversal spellings, DoH and git push
# refused; the upstream sees exactly the normalised path that matched.
. "$(dirname "$0")/live.sh"

live_setup 14
live_routes '
r = '"$(route_of upstream.test)"'
r["matches"] = [
    {"methods": ["GET"], "headers": [], "paths": [{"type": "prefix", "value": "/api"}]},
    {"methods": ["POST"], "headers": [], "paths": [{"type": "exact", "value": "/submit"}]},
    {"methods": [], "headers": [{"name": "x-mode", "type": "regex", "value": "ro|rw"}],
     "paths": [{"type": "regex", "value": "/v[0-9]+/items"}]},
]
'
PROXY_VERBOSE=1 live_start

# Refused: nothing of these may reach the upstream.
uplog_mark
deny() { # what expected-reason curl-args...
    local what=$1 reason=$2
    shift 2
    pcurl "$@"
    expect_status 403 "$what"
    expect_in "$TMP/out" "$reason" "$what: reason"
}
U=https://upstream.test:8443
deny "prefix is segment-wise" "no matches entry allows the request" "$U/apix"
deny "method not listed" "no matches entry allows the request" -X POST "$U/api/x"
deny "exact is exact" "no matches entry allows the request" -X POST "$U/submit/"
deny "regex is anchored" "no matches entry allows the request" -H 'X-Mode: ro' "$U/v2/items/3"
deny "header rule must match" "no matches entry allows the request" -H 'X-Mode: rox' "$U/v2/items"
deny "header rule missing" "no matches entry allows the request" "$U/v2/items"
deny "encoded dot-dot" "path refused" --path-as-is "$U/api/%2e%2e/admin"
deny "encoded dot-dot, mixed case" "path refused" --path-as-is "$U/api/.%2E/admin"
deny "literal dot-dot leaves the prefix" "no matches entry allows the request" --path-as-is "$U/api/../admin"
deny "dot-dot above the root" "path refused" --path-as-is "$U/../api/x"
deny "encoded slash" "path refused" --path-as-is "$U/api/a%2fb"
deny "backslash" "path refused" --path-as-is "$U/api/a%5cb"
deny "NUL" "path refused" --path-as-is "$U/api/a%00b"
deny "path parameter on dot-dot" "path refused" --path-as-is "$U/api/..;/admin"
deny "DNS over HTTPS path" "DNS over HTTPS is denied" "$U/api/dns-query"
deny "DNS over HTTPS content type" "DNS over HTTPS is denied" -H 'Accept: application/dns-json' "$U/api/q"
deny "git push" "git push" "$U/api/repo.git/info/refs?service=git-receive-pack"
expect_upstream_silent "refused matches"

# Allowed, with the normalised path upstream.
pcurl "$U/api/x"
expect_status 200 "GET under the prefix"
pcurl --path-as-is "$U/api/./a/../%41b/%7e"
expect_status 200 "dot segments and unreserved escapes"
expect_eq "$(json 'j["path"]')" "/api/Ab/~" "upstream got the normalised path"
pcurl "$U/api"
expect_status 200 "the prefix itself"
pcurl -X POST -d x=1 "$U/submit"
expect_status 200 "POST to the exact path"
pcurl -H 'X-Mode: rw' "$U/v12/items"
expect_status 200 "regex path with a header rule"
pcurl --path-as-is "$U/api/@types%2fnode"
expect_status 200 "npm scoped name"
expect_eq "$(json 'j["path"]')" "/api/@types%2fnode" "scoped name forwarded as sent"
pcurl "$U/api/q?x=%2e%2e&y=a%20b"
expect_eq "$(json 'j["path"]')" "/api/q?x=%2e%2e&y=a%20b" "query forwarded unchanged"
expect_eq "$(audit_last 'a["path"], a["decision"]' req)" "('/api/q', 'allow')" "audit has the normalised path"
expect_in "$PERR" "-> RESPONSE_HEAD" "--verbose logs state changes"
expect_in "$PERR" "RESPONSE_BODY -> HEAD" "--verbose: keep-alive back to HEAD"
no_secret_anywhere "matches"
live_stop
finish
