#!/usr/bin/env bash
# Outbound DLP: a token-shaped value in the target, a header or the body is refused
# with 403 naming the detector and never reaches the upstream; bodies over 8 MiB get
# 413; a route with outbound DLP off lets the same value through.
. "$(dirname "$0")/live.sh"

live_setup 16
live_routes '
r = dict('"$(route_of upstream.test)"')
r["auth"] = None
r["host"] = "plain.upstream.test"
r["ports"] = [8080]
r["dlp"] = {"inbound": {"action": "off", "detectors": []}, "outbound": {"action": "off", "detectors": []}}
j["routes"].append(r)
j["hosts"].append({"name": "plain.upstream.test", "ip": j["hosts"][0]["ip"]})
'
live_start
GH="ghp_$(printf 'A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8')"
AWS="AKIAIOSFODNN7EXAMPL3"
ANT="sk-ant-api03-$(head -c 48 /dev/zero | tr '\0' 'x')"
U=https://upstream.test:8443

uplog_mark
pcurl -H "X-Token: $GH" "$U/h"
expect_status 403 "token in a header"
expect_in "$TMP/out" "detector github_token" "403 names the detector"
expect_not_in "$TMP/out" "$GH" "403 body does not echo the value"
expect_eq "$(audit_last 'a["decision"], a["detectors"]' req)" "('deny', ['github_token'])" \
    "audit lists the detector"
pcurl "$U/q?key=$AWS"
expect_status 403 "token in the query"
expect_in "$TMP/out" "aws_access_key_id" "query: detector named"
pcurl -X POST -H 'Content-Type: application/json' -d "{\"k\": \"$ANT\"}" "$U/body"
expect_status 403 "token in a JSON body"
expect_in "$TMP/out" "anthropic_key" "body: detector named"
printf 'xxxxxxxxxx%.0s' $(seq 100000) >"$TMP/big"
printf ' %s ' "$GH" >>"$TMP/big"
pcurl -X POST -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/big" "$U/chunked"
expect_status 403 "token at the end of a 1 MB chunked body"
pcurl -X POST -H 'Expect: 100-continue' --data-binary @"$TMP/big" "$U/expect"
expect_status 403 "token in a body sent after 100 Continue"
# The agent's own Authorization is stripped before the scan: a token there is
# not forwarded, so it is not a leak (the route's secret replaces it).
pcurl -H "Authorization: Bearer $GH" "$U/agent-auth"
expect_status 200 "agent Authorization with a token is stripped, not refused"
uplog_since >"$TMP/uplog.txt"
expect_not_in "$TMP/uplog.txt" "$GH" "the stripped token never reached the upstream"
uplog_mark

head -c $((9 << 20)) /dev/zero | tr '\0' 'a' >"$TMP/nine"
pcurl -X POST --data-binary @"$TMP/nine" "$U/nine"
expect_status 413 "9 MiB body (Content-Length, Expect: 100-continue from curl)"
pcurl -X POST -H 'Expect:' --data-binary @"$TMP/nine" "$U/nine"
expect_status 413 "9 MiB body without Expect"
pcurl -X POST -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/nine" "$U/nine-chunked"
expect_status 413 "9 MiB chunked body"
expect_upstream_silent "every DLP refusal"

# Exactly 8 MiB is held, scanned and forwarded.
head -c $((8 << 20)) /dev/zero | tr '\0' 'b' >"$TMP/eight"
pcurl -X POST --data-binary @"$TMP/eight" "$U/eight"
expect_status 200 "8 MiB body"
expect_eq "$(json 'j["body_len"]')" $((8 << 20)) "upstream got all of it"

# Outbound DLP off on the route: the same value passes.
pcurl -H "X-Token: $GH" "http://plain.upstream.test:8080/off"
expect_status 200 "DLP off: token in a header passes"
pcurl -X POST --data-binary @"$TMP/nine" "http://plain.upstream.test:8080/stream"
expect_status 200 "DLP off: a 9 MiB body is streamed, not refused"
expect_eq "$(json 'j["body_len"], j["body_sha256"]')" \
    "($((9 << 20)), '$(sha256sum <"$TMP/nine" | cut -d' ' -f1)')" "streamed body intact"
pcurl -X POST -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/nine" "http://plain.upstream.test:8080/stream-chunked"
expect_status 200 "DLP off: a 9 MiB chunked body is streamed"
expect_eq "$(json 'j["body_len"]')" $((9 << 20)) "streamed chunked body complete"
no_secret_anywhere "dlp"
expect_not_in "$AUDIT" "$GH" "the detected value is not in the audit"
expect_not_in "$PERR" "$GH" "nor on stderr"
live_stop
finish
