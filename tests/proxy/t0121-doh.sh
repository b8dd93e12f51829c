#!/usr/bin/env bash
# DNS over HTTPS and DNS over TLS are refused even on an allowed route with no
# matches (and one that lists port 853): the DoH media types in Content-Type
# or Accept, the resolver paths /dns-query (any depth) and /resolve, and
# CONNECT or absolute-form requests to port 853.  Each refusal is a 403 with
# its reason and an audit line, and the upstream's byte log shows nothing of
# it; ordinary requests on the same route, including near misses, pass.
. "$(dirname "$0")/live.sh"
set -o pipefail

live_setup 41
live_routes '
r = '"$(route_of upstream.test)"'
r["matches"] = []
r["ports"] = [443, 853, 8443]
'
live_start echo
live_upstream 853 raw # a TLS listener on 853 that records whatever reaches it

U=https://upstream.test:8443
DOH='DNS over HTTPS is denied'
DOT='DNS over TLS (port 853) is denied'
# A DNS query for example.com A, wire format, and its base64url form.
printf '\0\0\1\0\0\1\0\0\0\0\0\0\7example\3com\0\0\1\0\1' >"$TMP/query.bin"
DNSB64=$(basenc --base64url <"$TMP/query.bin" | tr -d '=\n')

deny() { # what expected-reason curl-args...
    local what=$1 reason=$2
    shift 2
    pcurl "$@"
    expect_status 403 "$what"
    expect_in "$TMP/out" "$reason" "$what: reason"
}

# Control first: the route passes ordinary requests.
pcurl "$U/api/ok"
expect_status 200 "control: GET on the route"
expect_eq "$(json 'j["path"]')" "/api/ok" "control: upstream got it"

# --- DNS over HTTPS ---
uplog_mark
deny "POST application/dns-message" "$DOH" -X POST -H 'Content-Type: application/dns-message' \
    --data-binary @"$TMP/query.bin" "$U/q"
expect_eq "$(audit_last 'a["decision"], a["reason"], a["method"], a["path"]' req)" \
    "('deny', '$DOH', 'POST', '/q')" "audit: DoH POST denied"
deny "POST application/dns-message to /dns-query" "$DOH" -X POST \
    -H 'Content-Type: application/dns-message' --data-binary @"$TMP/query.bin" "$U/dns-query"
deny "content type in another case, with parameters" "$DOH" -X POST \
    -H 'Content-Type: Application/DNS-Message; charset=binary' --data-binary @"$TMP/query.bin" "$U/q"
deny "GET Accept: application/dns-json" "$DOH" -H 'Accept: application/dns-json' \
    "$U/q?name=example.com&type=A"
deny "GET Accept: application/dns-message" "$DOH" -H 'Accept: application/dns-message' "$U/q?dns=$DNSB64"
deny "DoH type in an Accept list" "$DOH" -H 'Accept: text/html, application/dns-message;q=0.5' "$U/q"
deny "DoH type in a second Accept field" "$DOH" -H 'Accept: text/html' \
    -H 'Accept: application/dns-json' "$U/q"
deny "GET /dns-query?dns=" "$DOH" "$U/dns-query?dns=$DNSB64"
deny "GET /dns-query deeper down" "$DOH" "$U/v1/dns-query?dns=$DNSB64"
deny "GET /dns-query/" "$DOH" "$U/dns-query/?dns=$DNSB64"
deny "GET /dns-query;x" "$DOH" --path-as-is "$U/dns-query;x?dns=$DNSB64"
deny "GET /DNS-Query" "$DOH" "$U/DNS-Query?dns=$DNSB64"
deny "GET /%64ns-query" "$DOH" --path-as-is "$U/%64ns-query?dns=$DNSB64"
deny "GET /x/../dns-query" "$DOH" --path-as-is "$U/x/../dns-query?dns=$DNSB64"
deny "GET /resolve?name=example.com&type=A" "$DOH" "$U/resolve?name=example.com&type=A"
expect_eq "$(audit_last 'a["decision"], a["reason"], a["path"]' req)" \
    "('deny', '$DOH', '/resolve')" "audit: /resolve denied"
deny "GET /resolve/" "$DOH" "$U/resolve/?name=example.com"
deny "GET /Resolve" "$DOH" "$U/Resolve?name=example.com"
pcurl -I "$U/dns-query?dns=$DNSB64"
expect_status 403 "HEAD /dns-query"
# Origin-form to the proxy itself with the route's Host (forwarded as https to 443).
deny "origin-form /dns-query to the proxy" "$DOH" "$PROXY_URL/dns-query?dns=$DNSB64" \
    -H 'Host: upstream.test' --noproxy '*'
deny "origin-form dns-json to the proxy" "$DOH" -H 'Accept: application/dns-json' \
    -H 'Host: upstream.test' --noproxy '*' "$PROXY_URL/resolve?name=example.com"
expect_upstream_silent "DNS over HTTPS"

# A DoH request pipelined behind an allowed one on the same bumped connection.
uplog_mark
printf '%s\r\n' "GET /api/first HTTP/1.1" "Host: upstream.test:8443" "" \
    "GET /dns-query?dns=$DNSB64 HTTP/1.1" "Host: upstream.test:8443" "" >"$TMP/pipe"
raw --tunnel upstream.test:8443 <"$TMP/pipe" >"$TMP/out"
expect_in "$TMP/out" "HTTP/1.1 200" "pipelined: the allowed request is served"
expect_in "$TMP/out" "HTTP/1.1 403" "pipelined: the DoH request is refused"
expect_in "$TMP/out" "$DOH" "pipelined: reason"
uplog_since >"$TMP/seen"
expect_in "$TMP/seen" "/api/first" "pipelined: upstream got the allowed request"
expect_not_in "$TMP/seen" "dns-query" "pipelined: upstream got nothing of the refused one"

# --- DNS over TLS: port 853, listed by the route ---
uplog_mark
pcurl "https://upstream.test:853/"
expect_eq "$CCODE" 403 "CONNECT to port 853 refused (CONNECT status 403)"
expect_eq "$(audit_last 'a["method"], a["port"], a["decision"], a["reason"]')" \
    "('CONNECT', 853, 'deny', '$DOT')" "audit: CONNECT to 853 denied"
printf '%s\r\n' "CONNECT upstream.test:853 HTTP/1.1" "Host: upstream.test:853" "" | raw >"$TMP/out"
expect_in "$TMP/out" "HTTP/1.1 403" "raw CONNECT to 853: 403"
expect_in "$TMP/out" "$DOT" "raw CONNECT to 853: reason"
printf '%s\r\n' "CONNECT upstream.test:0853 HTTP/1.1" "Host: upstream.test:0853" "" | raw >"$TMP/out"
expect_in "$TMP/out" "HTTP/1.1 403" "CONNECT to port 0853: 403"
printf '%s\r\n' "GET http://upstream.test:853/ HTTP/1.1" "Host: upstream.test:853" "" | raw >"$TMP/out"
expect_in "$TMP/out" "HTTP/1.1 403" "absolute-form http:// to port 853: 403"
printf '%s\r\n' "GET https://upstream.test:853/ HTTP/1.1" "Host: upstream.test:853" "" | raw >"$TMP/out"
expect_in "$TMP/out" "HTTP/1.1 403" "absolute-form https:// to port 853: 403"
expect_in "$TMP/out" "$DOT" "absolute-form https:// to port 853: reason"
expect_upstream_silent "DNS over TLS"

# --- near misses pass: not DoH by the rules ---
pcurl "$U/api/resolve?name=example.com"
expect_status 200 "'resolve' below the root is an ordinary API verb"
pcurl "$U/dns-query-docs"
expect_status 200 "a segment that only starts with dns-query"
pcurl "$U/docs/dns-query.html"
expect_status 200 "dns-query.html is not dns-query"
pcurl -X POST -H 'Content-Type: application/json' -d '{"dns":"example.com"}' "$U/api/lookup"
expect_status 200 "POST application/json"
pcurl -H 'Accept: application/json' "$U/api/q?name=example.com&type=A"
expect_status 200 "GET with a JSON Accept and a name/type query"
pcurl "$U/api/q?path=/dns-query"
expect_status 200 "dns-query only in the query"
expect_eq "$(json 'j["path"]')" "/api/q?path=/dns-query" "upstream got the query unchanged"

# Control: the 853 listener records what does reach it (not through the proxy).
uplog_mark
curl -s -o /dev/null --max-time 1 --cacert "$TMP/uppki/ca.pem" --noproxy '*' \
    --resolve "upstream.test:853:$UP_IP" https://upstream.test:853/control-853 || true
sleep 0.2
uplog_since >"$TMP/seen"
expect_in "$TMP/seen" "GET /control-853" "control: a direct request to the 853 listener is recorded"

no_secret_anywhere "doh"
live_stop
finish
