#!/usr/bin/env bash
# Compressed request bodies: Content-Encoding gzip or deflate is decoded (within
# 8 MiB and a 100:1 ratio) and the decoded bytes are scanned; a clean body goes
# upstream as sent (compressed, byte-identical).  Other codings get 415, a zip
# bomb or an oversized expansion 413, a corrupt stream 400, none of them
# reaching the upstream.  Accept-Encoding sent upstream is limited to gzip,
# deflate and identity.
. "$(dirname "$0")/live.sh"

live_setup 24
live_routes '
r = dict('"$(route_of upstream.test)"')
r["auth"] = None
r["host"] = "plain.upstream.test"
r["ports"] = [8080]
r["dlp"] = {"inbound": {"action": "off", "detectors": []}, "outbound": {"action": "off", "detectors": []}}
j["routes"].append(r)
j["hosts"].append({"name": "plain.upstream.test", "ip": j["hosts"][0]["ip"]})
a = dict(r)
a["host"] = "audit.upstream.test"
a["dlp"] = {"inbound": {"action": "off", "detectors": []},
            "outbound": {"action": "audit", "detectors": ["known_secrets", "token_patterns"]}}
j["routes"].append(a)
j["hosts"].append({"name": "audit.upstream.test", "ip": j["hosts"][0]["ip"]})
'
live_start
U=https://upstream.test:8443
GH="ghp_$(printf 'A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8')"
py() { /usr/bin/python3 -c "$@"; }

uplog_mark
printf '{"note": "hello", "token": "%s"}' "$GH" | gzip -c >"$TMP/tok.gz"
pcurl -X POST -H 'Content-Encoding: gzip' --data-binary @"$TMP/tok.gz" "$U/gz"
expect_status 403 "gzip body with a token"
expect_in "$TMP/out" "github_token" "the detector is named"
printf 'secret=%s' "$SECRET_UP" | gzip -c >"$TMP/sec.gz"
pcurl -X POST -H 'Content-Encoding: gzip' --data-binary @"$TMP/sec.gz" "$U/gz-secret"
expect_status 403 "gzip body with a known secret"
expect_in "$TMP/out" "known_secrets" "known_secrets named"
py 'import sys,zlib; sys.stdout.buffer.write(zlib.compress(sys.argv[1].encode()))' "token $GH" >"$TMP/tok.zz"
pcurl -X POST -H 'Content-Encoding: deflate' --data-binary @"$TMP/tok.zz" "$U/deflate"
expect_status 403 "deflate (zlib) body with a token"
py 'import sys,zlib; c=zlib.compressobj(9,zlib.DEFLATED,-15); sys.stdout.buffer.write(c.compress(sys.argv[1].encode())+c.flush())' "token $GH" >"$TMP/tok.raw"
pcurl -X POST -H 'Content-Encoding: deflate' --data-binary @"$TMP/tok.raw" "$U/deflate-raw"
expect_status 403 "raw deflate body with a token"
# Two gzip members: the token in the second.
{ printf 'clean first member' | gzip -c; printf 'then %s' "$GH" | gzip -c; } >"$TMP/two.gz"
pcurl -X POST -H 'Content-Encoding: gzip' --data-binary @"$TMP/two.gz" "$U/two"
expect_status 403 "token in the second gzip member"
pcurl -X POST -H 'Content-Encoding: gzip' -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/tok.gz" "$U/gz-chunked"
expect_status 403 "chunked gzip body with a token"

# A zip bomb: 64 MiB of zeros in ~64 KiB.
head -c $((64 << 20)) /dev/zero | gzip -9 -c >"$TMP/bomb.gz"
pcurl -X POST -H 'Content-Encoding: gzip' --data-binary @"$TMP/bomb.gz" "$U/bomb"
expect_status 413 "zip bomb refused"
expect_in "$TMP/out" "ratio" "refused by the ratio cap"
# Incompressible text over 8 MiB once decoded, under 100:1.
head -c $((7 << 20)) /dev/urandom | base64 -w0 | gzip -1 -c >"$TMP/big.gz"
pcurl -X POST -H 'Content-Encoding: gzip' --data-binary @"$TMP/big.gz" "$U/big"
expect_status 413 "decoded body over 8 MiB refused"
expect_in "$TMP/out" "decompressed request body over" "the size cap is named"
pcurl -X POST -H 'Content-Encoding: br' --data-binary 'anything' "$U/br"
expect_status 415 "br refused"
pcurl -X POST -H 'Content-Encoding: gzip, gzip' --data-binary @"$TMP/tok.gz" "$U/gzgz"
expect_status 415 "stacked codings refused"
printf 'not gzip at all' >"$TMP/bad.gz"
pcurl -X POST -H 'Content-Encoding: gzip' --data-binary @"$TMP/bad.gz" "$U/corrupt"
expect_status 400 "corrupt gzip refused"
head -c 20 "$TMP/tok.gz" >"$TMP/trunc.gz"
pcurl -X POST -H 'Content-Encoding: gzip' --data-binary @"$TMP/trunc.gz" "$U/trunc"
expect_status 400 "truncated gzip refused"
expect_upstream_silent "every compressed-body refusal"

# A clean gzip body goes upstream byte-identical, still compressed.
head -c 200000 /dev/urandom | base64 | gzip -c >"$TMP/clean.gz"
pcurl -X POST -H 'Content-Encoding: gzip' -H 'Content-Type: text/plain' --data-binary @"$TMP/clean.gz" "$U/clean"
expect_status 200 "clean gzip body forwarded"
expect_eq "$(json 'j["body_sha256"]')" "$(sha256sum <"$TMP/clean.gz" | cut -d' ' -f1)" \
    "upstream got the compressed bytes unchanged"
expect_eq "$(json '[v for k, v in j["headers"] if k.lower() == "content-encoding"]')" "['gzip']" \
    "Content-Encoding kept"

# Accept-Encoding upstream: only what the proxy can decode.
pcurl -H 'Accept-Encoding: br, gzip;q=0.8, zstd, deflate' "$U/ae"
expect_eq "$(json '[v for k, v in j["headers"] if k.lower() == "accept-encoding"]')" \
    "['gzip;q=0.8, deflate']" "br and zstd removed"
pcurl -H 'Accept-Encoding: br' "$U/ae-br"
expect_eq "$(json '[v for k, v in j["headers"] if k.lower() == "accept-encoding"]')" \
    "['identity']" "nothing decodable left: identity"
pcurl "$U/ae-none"
expect_eq "$(json '[v for k, v in j["headers"] if k.lower() == "accept-encoding"]')" "[]" \
    "no Accept-Encoding from the agent: none upstream"

# Outbound DLP off: bodies are not decoded, any coding streams through.
pcurl -X POST -H 'Content-Encoding: br' --data-binary 'anything' "http://plain.upstream.test:8080/br"
expect_status 200 "DLP off: br body passes"

# Outbound DLP audit-only: decoded and audited, nothing refused.
pcurl -X POST -H 'Content-Encoding: gzip' --data-binary @"$TMP/tok.gz" "http://audit.upstream.test:8080/gz"
expect_status 200 "audit route: gzip body with a token forwarded"
expect_eq "$(audit_last 'a["decision"], a["detectors"]' req)" "('allow', ['github_token'])" \
    "audit route: the decoded token is audited"
pcurl -X POST -H 'Content-Encoding: br' --data-binary 'anything' "http://audit.upstream.test:8080/br"
expect_status 200 "audit route: br body forwarded"

no_secret_anywhere "compression"
expect_not_in "$AUDIT" "$GH" "the token is not in the audit"
live_stop
finish
