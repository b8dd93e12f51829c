#!/usr/bin/env bash
# Outbound known_secrets: a secret the sidecar holds, in any of its encodings (raw,
# base64 at each of the three alignments, base64url, hex, percent), in a header,
# the query or the body, is refused with 403 naming the detector and the secret's
# NAME, and never reaches the upstream; a value that merely shares a prefix
# passes; a route with outbound DLP off does not scan.
. "$(dirname "$0")/live.sh"

live_setup 22
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
U=https://upstream.test:8443

# name=encoded-value lines, computed from the secret (never printed by the proxy).
/usr/bin/python3 - "$SECRET_UP" >"$TMP/encs" <<'PY'
import base64, sys, urllib.parse
v = sys.argv[1].encode()
print("raw", v.decode())
for k, pre in enumerate([b"", b"u", b"us"]):
    print("base64_%d" % k, base64.b64encode(pre + v + b"!?").decode())
print("base64url", base64.urlsafe_b64encode(b"\xfb\xff" + v).decode().rstrip("="))
print("hex", v.hex())
print("HEX", v.hex().upper())
print("percent", "".join("%%%02X" % b for b in v))
print("percent_lower", "".join("%%%02x" % b for b in v))
PY

uplog_mark
while read -r enc val; do
    pcurl -H "X-Data: pre-$val-post" "$U/h"
    expect_status 403 "$enc in a header"
    expect_in "$TMP/out" "detector known_secrets, secret UPSTREAM_TOKEN" "$enc header: detector and name"
    expect_not_in "$TMP/out" "$val" "$enc header: the 403 does not echo the value"
    expect_eq "$(audit_last 'a["decision"], a["detectors"]' req)" "('deny', ['known_secrets'])" \
        "$enc header: audit lists known_secrets"
    pcurl "$U/q?a=1&d=$val&z=2"
    expect_status 403 "$enc in the query"
    expect_in "$TMP/out" "known_secrets" "$enc query: detector named"
    pcurl -X POST -H 'Content-Type: application/octet-stream' --data-binary "{\"k\": \"$val\"}" "$U/b"
    expect_status 403 "$enc in the body"
    expect_in "$TMP/out" "in the request body (detector known_secrets, secret UPSTREAM_TOKEN)" \
        "$enc body: detector and name"
    expect_not_in "$AUDIT" "$val" "$enc: not in the audit"
    expect_not_in "$PERR" "$val" "$enc: not on stderr"
done <"$TMP/encs"
# In the path: refused, and the audit line shows the path redacted.
pcurl "$U/p/$SECRET_UP/x"
expect_status 403 "raw in the path"
expect_in "$AUDIT" "[REDACTED:UPSTREAM_TOKEN]" "the audited path is redacted"
# Held to the end of a 1 MB chunked body.
printf 'yyyyyyyyyy%.0s' $(seq 100000) >"$TMP/big"
printf ' %s ' "$SECRET_UP" >>"$TMP/big"
pcurl -X POST -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/big" "$U/chunked"
expect_status 403 "raw at the end of a 1 MB chunked body"
expect_upstream_silent "every known_secrets refusal"

# A value that shares all but the last byte passes, everywhere.
NEAR="${SECRET_UP%?}Z"
pcurl -H "X-Data: $NEAR" "$U/near?d=$NEAR" -X POST --data-binary "$NEAR"
expect_status 200 "a value sharing a prefix with the secret passes"
expect_eq "$(json 'j["body_len"]')" "${#NEAR}" "its body reached the upstream"
NEARB64=$(printf '%s' "$NEAR" | base64 -w0)
pcurl -H "X-Data: $NEARB64" "$U/near64"
expect_status 200 "base64 of the near value passes"

# Outbound DLP off: no scan.
pcurl -H "X-Data: $SECRET_UP" "http://plain.upstream.test:8080/off"
expect_status 200 "DLP off: the secret in a header passes"

no_secret_anywhere "known_secrets"
live_stop
finish
