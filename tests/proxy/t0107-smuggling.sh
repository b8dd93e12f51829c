#!/usr/bin/env bash
# Request smuggling attempts inside a bumped tunnel and on the plain listener:
# CL.TE, TE.CL, duplicate Content-Length, obs-fold and friends get 400 and
# nothing reaches the upstream.
. "$(dirname "$0")/live.sh"

live_setup 17
live_routes '
r = dict('"$(route_of upstream.test)"')
r["auth"] = None
r["host"] = "plain.upstream.test"
r["ports"] = [8080]
j["routes"].append(r)
j["hosts"].append({"name": "plain.upstream.test", "ip": j["hosts"][0]["ip"]})
'
live_start
H='Host: upstream.test'
smuggle() { # what expected-status-regex raw-request
    printf '%b' "$3" | raw --tunnel upstream.test:8443 >"$TMP/r"
    if head -1 "$TMP/r" | grep -qE "^HTTP/1.1 ($2) "; then ok "tunnel: $1 refused ($(head -1 "$TMP/r" | tr -d '\r'))"; else
        not_ok "tunnel: $1 not refused" "$(head -c 300 "$TMP/r")"
    fi
    printf '%b' "${3/\/ HTTP/http://plain.upstream.test:8080/ HTTP}" | raw >"$TMP/r"
    if head -1 "$TMP/r" | grep -qE "^HTTP/1.1 ($2) "; then ok "plain: $1 refused"; else
        not_ok "plain: $1 not refused" "$(head -c 300 "$TMP/r")"
    fi
}
uplog_mark
smuggle "CL.TE" 400 "POST / HTTP/1.1\r\n$H\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"
smuggle "TE.CL" 400 "POST / HTTP/1.1\r\n$H\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n"
smuggle "duplicate Content-Length (equal)" 400 "POST / HTTP/1.1\r\n$H\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
smuggle "duplicate Content-Length (different)" 400 "POST / HTTP/1.1\r\n$H\r\nContent-Length: 5\r\nContent-Length: 11\r\n\r\nhello"
smuggle "Content-Length list" 400 "POST / HTTP/1.1\r\n$H\r\nContent-Length: 5, 5\r\n\r\nhello"
smuggle "signed Content-Length" 400 "POST / HTTP/1.1\r\n$H\r\nContent-Length: +5\r\n\r\nhello"
smuggle "obs-fold" 400 "GET / HTTP/1.1\r\n$H\r\nX-A: a\r\n b\r\n\r\n"
smuggle "obs-fold on Transfer-Encoding" "400|501" "POST / HTTP/1.1\r\n$H\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"
smuggle "space before colon" 400 "POST / HTTP/1.1\r\n$H\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"
smuggle "TE chunked, identity" "400|501" "POST / HTTP/1.1\r\n$H\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"
smuggle "TE xchunked" "400|501" "POST / HTTP/1.1\r\n$H\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"
smuggle "two TE headers" "400|501" "POST / HTTP/1.1\r\n$H\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
smuggle "bare LF" 400 "GET / HTTP/1.1\n$H\n\n"
smuggle "bad chunk size" 400 "POST / HTTP/1.1\r\n$H\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n"
smuggle "chunk data without CRLF" 400 "POST / HTTP/1.1\r\n$H\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n"
smuggle "two Host headers" 400 "GET / HTTP/1.1\r\n$H\r\n$H\r\n\r\n"
smuggle "HTTP/1.0 with TE" 400 "POST / HTTP/1.0\r\n$H\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
expect_upstream_silent "every smuggling attempt"

# A valid request whose body looks like a second request is forwarded as one body.
body='GET /admin HTTP/1.1\r\nHost: upstream.test\r\n\r\n'
printf "POST /one HTTP/1.1\r\n$H\r\nContent-Length: %d\r\nConnection: close\r\n\r\n$body" \
    "$(printf "$body" | wc -c)" | raw --tunnel upstream.test:8443 >"$TMP/r"
expect_in "$TMP/r" "HTTP/1.1 200" "request with a request-shaped body answered once"
expect_eq "$(grep -c '^HTTP/1.1' "$TMP/r")" 1 "exactly one response"
expect_eq "$(uplog_since | grep -c '^GET /admin')" 1 "the inner 'request' reached the upstream only as body bytes"
# Pipelined requests are answered in order.
printf "GET /p1 HTTP/1.1\r\n$H\r\n\r\nGET /p2 HTTP/1.1\r\n$H\r\nConnection: close\r\n\r\n" |
    raw --tunnel upstream.test:8443 >"$TMP/r"
expect_eq "$(grep -o '"path": *"/p[12]"' "$TMP/r" | tr -d ' ' | tr '\n' ,)" '"path":"/p1","path":"/p2",' \
    "pipelined requests answered in order"
live_stop
finish
