#!/usr/bin/env bash
# Credentials: the agent's Authorization and Proxy-Authorization never reach the
# upstream; the route's secret is injected; no secret on the proxy's output.
. "$(dirname "$0")/live.sh"

live_setup 13
# A second route on the same upstream without auth, on the plain port too.
live_routes '
r = dict('"$(route_of upstream.test)"')
r["auth"] = None
r["host"] = "plain.upstream.test"
r["ports"] = [80, 8080, 8443]
j["routes"].append(r)
j["hosts"].append({"name": "plain.upstream.test", "ip": j["hosts"][0]["ip"]})
'
live_start
uplog_mark

pcurl -H 'Authorization: Bearer agent-supplied-1' -H 'Proxy-Authorization: Basic YWdlbnQ6eA==' \
    -H 'X-Other: kept' "https://upstream.test:8443/auth"
expect_status 200 "request with agent credentials"
expect_eq "$(upstream_auth "$UPLOG_MARK")" "Authorization: Bearer SECRET_UP" \
    "upstream saw exactly the route's secret as Authorization"
expect_eq "$(json '[v for k, v in j["headers"] if k.lower() == "authorization"]')" \
    "['Bearer [REDACTED:UPSTREAM_TOKEN]']" "the agent sees the echoed credential redacted"
expect_eq "$(json '[v for k, v in j["headers"] if k.lower() == "proxy-authorization"]')" "[]" \
    "no Proxy-Authorization upstream"
expect_eq "$(json '[v for k, v in j["headers"] if k == "X-Other"]')" "['kept']" "other headers kept"
uplog_since >"$TMP/uplog.txt"
expect_not_in "$TMP/uplog.txt" "agent-supplied-1" "the agent's Authorization is nowhere upstream"
expect_not_in "$TMP/uplog.txt" "YWdlbnQ6eA==" "the agent's Proxy-Authorization is nowhere upstream"

# Same header spelled in other cases, twice.
m=$(stat -c %s "$UPLOG")
pcurl -H 'authorization: token agent-2' -H 'AUTHORIZATION: token agent-3' "https://upstream.test:8443/case"
expect_status 200 "lower/upper-case Authorization"
expect_eq "$(upstream_auth "$m")" "Authorization: Bearer SECRET_UP" \
    "still exactly one injected Authorization"

# The upstream's certificate names upstream.test only: verification must refuse it
# for plain.upstream.test.
pcurl "https://plain.upstream.test:8443/noauth"
expect_status 502 "upstream certificate for another name"
expect_in "$TMP/out" "upstream certificate refused: hostname mismatch" "reason: hostname mismatch"
# Plain http on a listed port: allowed without auth, agent credentials stripped.
pcurl -H 'Authorization: Bearer agent-5' "http://plain.upstream.test:8080/plain"
expect_status 200 "absolute-form http:// to a listed port"
expect_eq "$(json 'j["path"], [k for k, v in j["headers"] if k.lower() == "authorization"]')" \
    "('/plain', [])" "plain request forwarded, no Authorization"
# The auth route is never served over plain http.
pcurl "http://upstream.test:8443/x"
expect_status 403 "auth route over plain http"

uplog_since >"$TMP/uplog.txt"
for a in agent-supplied-1 agent-2 agent-3 agent-4 agent-5; do
    expect_not_in "$TMP/uplog.txt" "$a" "agent credential $a never reached the upstream"
done
grep -c "$SECRET_UP" "$TMP/uplog.txt" >"$TMP/n" || true
expect_eq "$(cat "$TMP/n")" 2 "the secret went upstream exactly twice (the two auth-route requests)"
no_secret_anywhere "auth"
expect_not_in "$AUDIT" "agent-supplied-1" "agent credential not in the audit"
live_stop
finish
