#!/usr/bin/env bash
# show NAME, validate --json, and canonical stability across spellings.
. "$(dirname "$0")/lib.sh"

mkdir -p "$TMP/a" "$TMP/b"
cat >"$TMP/a/web.md" <<'X'
---
# block style, comments, this key order
agent:
  resources:
    cpus: 1.5
    memory: 2g
  image: localhost/bottled-agent:latest
egress:
  routes:
    - host: Example.COM
      ports: [8443, 443, 443]
      matches:
        - methods: [POST, GET]
          paths: [{value: /api}]
env:
  B: "2"
  A: 01
---
Body line.
X
# the same bottle: flow style, other key order, CRLF, no comments
printf -- '---\r\nenv: {A: 01, B: "2"}\r\negress: {routes: [{matches: [{paths: [{type: prefix, value: /api}], methods: [GET, POST]}], ports: [443, 8443], host: example.com}]}\r\nagent: {image: localhost/bottled-agent:latest, resources: {memory: 2048m, cpus: 1.500}}\r\n---\r\nBody line.\r\n' >"$TMP/b/web.md"

run "$BOTTLED" show -d "$TMP/a" web
expect_rc 0 "show a valid bottle"
cp "$TMP/out" "$TMP/show-a"
expect_eq "$(json 'j["agent"]["resources"]')" \
    "{'cpus_millicores': 1500, 'memory_bytes': 2147483648, 'pids': None}" "cpus as millicores, memory as bytes"
expect_eq "$(json 'j["egress"]["routes"][0]["ports"]')" "[443, 8443]" "ports sorted and de-duplicated"
expect_eq "$(json 'j["env"]')" "{'A': '01', 'B': '2'}" "env values keep their source text"
expect_eq "$(json 'repr(j["prompt"])')" "'Body line.\\n'" "the body is the prompt"
run "$BOTTLED" show -d "$TMP/b" web
expect_rc 0 "show the same bottle written differently"
if cmp -s "$TMP/show-a" "$TMP/out"; then ok "the same bottle written differently gives the same bytes"; else
    not_ok "canonical form differs" "$(diff "$TMP/show-a" "$TMP/out" | head -20)"
fi

run "$BOTTLED" show -d "$TMP/a" nope
expect_rc 1 "show an unknown bottle"
expect_in "$TMP/err" "no bottle named 'nope'" "the unknown bottle is named"
run "$BOTTLED" show -d "$TMP/a"
expect_rc 2 "show without NAME"

cat >"$TMP/a/bad.md" <<'X'
---
egress: {mode: sideways}
---
X
run "$BOTTLED" show -d "$TMP/a" bad
expect_rc 1 "show a bottle with errors"
expect_in "$TMP/err" "unknown egress mode 'sideways' (allowed: proxy, transparent)" "show prints the bottle's errors"
run "$BOTTLED" show -d "$TMP/a" web
expect_rc 0 "a broken sibling does not stop show"

run "$BOTTLED" validate --json -d "$TMP/a"
expect_rc 1 "validate --json with an error"
expect_eq "$(json 'len(j["diagnostics"])')" 1 "one diagnostic"
expect_eq "$(json 'sorted(j["diagnostics"][0])')" \
    "['allowed', 'bottle', 'column', 'line', 'message', 'path', 'severity', 'text']" "diagnostic fields"
expect_eq "$(json '(j["diagnostics"][0]["line"], j["diagnostics"][0]["column"], j["diagnostics"][0]["allowed"])')" \
    "(2, 16, ['proxy', 'transparent'])" "position and allowed values"
expect_eq "$(json 'j["summary"]')" "{'files': 2, 'bottles': 1, 'errors': 1, 'warnings': 0}" "summary"

finish
