#!/usr/bin/env bash
# t0300: `bottled reconcile --once` against a real engine, one bottle.
#   1. from empty: every resource with its labels, names, networks,
#      addresses, volumes, capabilities, limits, env and /etc/bottle; the
#      sidecar runs with ip_forward off, answers /healthz and serves the
#      config hash `bottled render` reports;
#   2. a second pass changes nothing on the engine, and plan is empty;
#   3. an env change recreates only the agent, which keeps its work volume;
#   4. a routes-only and a secret-only change recreate nothing: the sidecar
#      (same id, start time and pid) serves the new config hash;
#  12. a lost state.db (instance-id, hmac.key and ca/ kept) recreates nothing.
# Runs with --insecure-no-host-firewall (the firewall module is not merged).
. "$(dirname "$0")/harness.sh"
. "$(dirname "$0")/reconcile-lib.sh"

require_engine
require_images

M=$_TMP/manifests
mkdir -p "$M"
cp "$REPO/examples/claude.md" "$M/"
bottle_md "$M" demo 'env: {DEMO: "1", DEMO_PATH: "/x:/y"}
git-gate:
  user: {name: T0300 Tester, email: t0300@example.com}'
SECRET1=t0300-first-secret-$RANDOM$RANDOM
SECRET2=t0300-second-secret-$RANDOM$RANDOM
SECRETS=$_TMP/secrets
write_secrets "$SECRETS" "CLAUDE_OAUTH_TOKEN@api.anthropic.com=$SECRET1"
STATE=$_TMP/state
INSTANCE=$(new_state "$STATE")
PREFIX=$(new_prefix t0300)
POOL=$(free_pool) || fatal "list the engine's networks"
[ -n "$POOL" ] || fatal "a free /24 in 10.213.0.0/16"
note "instance $INSTANCE, prefix $PREFIX, pool $POOL"
P=$PREFIX-demo

# ---- 1. from empty ---------------------------------------------------------
T_START=$(date +%s)
bd reconcile --once --json --detailed-exitcode
assert_rc 2 "reconcile from empty exits 2 with --detailed-exitcode"
assert_eq "create:int:missing create:egr:missing create:work:missing create:cfg:missing create:proxy:missing create:agent:missing" \
    "$(actions_of demo)" "every resource created, in create order, cause missing"
assert_eq "True 0 0" "$(json "str(all(a['ok'] for a in $(jb demo)['actions'])) + ' ' + str(d['summary']['failed']) + ' ' + str(d['summary']['refused'])")" \
    "every action ok, nothing failed or refused"
case "$(json 'd["summary"]["engine_changes"]')" in
0 | ERROR*) fail "summary.engine_changes counts the creates: $(json 'd["summary"]')" ;;
*) pass "summary.engine_changes counts the creates ($(json 'd["summary"]["engine_changes"]'))" ;;
esac
assert_eq "$(six_names demo)" "$(names_of "$INSTANCE" demo)" "the six resources exist under their names"
# order, as the engine saw it: the sidecar started and was asked (exec,
# /healthz) before the agent was created
ORDER=$(engine_events "$T_START" "$INSTANCE" | python3 -c '
import sys
ev = sys.stdin.read().split("\n")
agent, proxy = sys.argv[1], sys.argv[2]
def first(e):
    return ev.index(e) if e in ev else None
s, x, c = first("start " + proxy), first("exec " + proxy), first("create " + agent)
print("ok" if None not in (s, x, c) and s < x < c else "BAD: %s" % ";".join(ev))' "$P-agent" "$P-proxy")
assert_eq ok "$ORDER" "the event log: sidecar started, then probed, then the agent created"

# Every resource's labels, one inspect per resource.
labels_ok=1
for role in int egr work cfg proxy agent; do
    case $role in
    int | egr) path=/networks/$P-$role ;;
    work | cfg) path=/volumes/$P-$role ;;
    *) path=/containers/$P-$role/json ;;
    esac
    got=$(api GET "$path" | python3 -c '
import json, re, sys
o = json.load(sys.stdin)
l = o["Config"]["Labels"] if "Config" in o else o["Labels"]
want = {"io.bottled.managed": "true", "io.bottled.instance": sys.argv[1], "io.bottled.bottle": "demo",
        "io.bottled.role": sys.argv[2], "io.bottled.hash-scheme": "1", "io.bottled.agent-provider": "claude"}
bad = ["%s=%r" % (k, l.get(k)) for k, v in want.items() if l.get(k) != v]
if not re.fullmatch("[0-9a-f]{64}", l.get("io.bottled.spec-hash", "")):
    bad.append("spec-hash=%r" % l.get("io.bottled.spec-hash"))
print(" ".join(bad) or "ok")' "$INSTANCE" "$role" 2>&1) || got="inspect failed"
    [ "$got" = ok ] || {
        labels_ok=0
        fail "labels of $P-$role: $got"
    }
done
[ "$labels_ok" = 0 ] || pass "labels managed/instance/bottle/role/spec-hash/hash-scheme/agent-provider on all six"

# Networks: two /28s from the pool, recorded in their labels; int internal, egr not.
NETS=$(python3 - "$POOL" <<EOF
import ipaddress, json, subprocess, sys
pool = ipaddress.ip_network(sys.argv[1])
out = []
for role in ("int", "egr"):
    n = json.loads(subprocess.run(["curl", "-sS", "--unix-socket", "$SOCK", "$API/networks/$P-" + role],
                                  capture_output=True, check=True).stdout)
    cfg = (n.get("IPAM") or {}).get("Config") or []
    sub = ipaddress.ip_network(cfg[0]["Subnet"]) if cfg else None
    ok = sub is not None and sub.prefixlen == 28 and sub.subnet_of(pool)
    ok = ok and n["Labels"].get("io.bottled.subnet") == str(sub)
    out.append("%s:%s:%s:%s" % (role, sub, n.get("Internal"), "ok" if ok else "BAD"))
print(" ".join(out))
EOF
) || NETS="inspect failed"
note "networks: $NETS"
case "$NETS" in
int:*:True:ok\ egr:*:False:ok) pass "int and egr are /28s from the pool (label io.bottled.subnet), int Internal, egr not" ;;
*) fail "networks: $NETS" ;;
esac
INT_NET=$(printf '%s' "$NETS" | sed -n 's/^int:\([^:]*\):.*/\1/p')
EGR_NET=$(printf '%s' "$NETS" | sed -n 's/.* egr:\([^:]*\):.*/\1/p')
# host N SUBNET: the N-th address of the subnet
host() { python3 -c 'import ipaddress, sys; print(ipaddress.ip_network(sys.argv[2])[int(sys.argv[1])])' "$1" "$2"; }
INT2=$(host 2 "$INT_NET")
INT3=$(host 3 "$INT_NET")
INT4=$(host 4 "$INT_NET")
EGR2=$(host 2 "$EGR_NET")

# containers: attached networks with their addresses
attached() { api GET "/containers/$1/json" | python3 -c '
import json, sys
n = json.load(sys.stdin)["NetworkSettings"]["Networks"]
print(" ".join("%s=%s" % (k, v["IPAddress"]) for k, v in sorted(n.items())))'; }
assert_eq "$P-egr=$EGR2 $P-int=$INT2" "$(attached "$P-proxy")" "the sidecar is on egr and int, .2 on both"
assert_eq "$P-int=$INT4" "$(attached "$P-agent")" "the agent is on int only, at .4"

# mounts, workdir, limits, security, extra hosts, env
api GET "/containers/$P-agent/json" >"$_TMP/agent.json" || fatal "inspect the agent"
api GET "/containers/$P-proxy/json" >"$_TMP/proxy.json" || fatal "inspect the sidecar"
aj() { python3 -c 'import json, sys; c = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$_TMP/agent.json" "$1"; }
pj() { python3 -c 'import json, sys; c = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$_TMP/proxy.json" "$1"; }
assert_eq "volume:$P-work:/workspace:True" \
    "$(aj '" ".join("%s:%s:%s:%s" % (m["Type"], m["Name"], m["Destination"], m["RW"]) for m in c["Mounts"])')" \
    "the agent mounts its work volume (only) at /workspace, writable"
assert_eq "/workspace" "$(aj 'c["Config"]["WorkingDir"]')" "the agent's working directory is /workspace"
assert_eq "volume:$P-cfg:/cfg" \
    "$(pj '" ".join("%s:%s:%s" % (m["Type"], m["Name"], m["Destination"]) for m in c["Mounts"])')" \
    "the sidecar mounts its cfg volume (only) at /cfg"
assert_eq "4294967296 1024" "$(aj '"%s %s" % (c["HostConfig"]["Memory"], c["HostConfig"]["PidsLimit"])')" \
    "agent limits: memory 4g and pids 1024 (the defaults)"
assert_eq "True True" \
    "$(aj '"no-new-privileges" in (c["HostConfig"]["SecurityOpt"] or [])') $(pj '"no-new-privileges" in (c["HostConfig"]["SecurityOpt"] or [])')" \
    "agent and sidecar are created with no-new-privileges"
assert_eq "False False" "$(aj 'c["HostConfig"]["Privileged"]') $(pj 'c["HostConfig"]["Privileged"]')" "nothing privileged"
assert_eq "gate:$INT3 proxy:$INT2" "$(aj '" ".join(sorted(c["HostConfig"]["ExtraHosts"] or []))')" \
    "ExtraHosts name proxy (.2) and gate (.3)"
assert_eq running "$(aj 'c["State"]["Status"]')" "the agent runs"
assert_eq "['sleep', 'infinity']" "$(aj 'c["Config"]["Entrypoint"] or c["Config"]["Cmd"]')" \
    "the agent runs the manifest's command"
ENV_CHECK=$(python3 - "$_TMP/agent.json" <<'EOF'
import json, sys
env = dict(e.split("=", 1) for e in json.load(open(sys.argv[1]))["Config"]["Env"])
want = {
    "http_proxy": "http://proxy:9099", "https_proxy": "http://proxy:9099",
    "HTTP_PROXY": "http://proxy:9099", "HTTPS_PROXY": "http://proxy:9099",
    "no_proxy": "localhost,127.0.0.1,::1,gate", "NO_PROXY": "localhost,127.0.0.1,::1,gate",
    "SSL_CERT_FILE": "/etc/bottle/ca.pem", "NODE_EXTRA_CA_CERTS": "/etc/bottle/ca.pem",
    "REQUESTS_CA_BUNDLE": "/etc/bottle/ca.pem", "GIT_SSL_CAINFO": "/etc/bottle/ca.pem",
    "CURL_CA_BUNDLE": "/etc/bottle/ca.pem",
    "GIT_CONFIG_SYSTEM": "/etc/bottle/gitconfig",
    "BOTTLE_PROMPT_FILE": "/etc/bottle/prompt.md", "BOTTLE_SKILLS_DIR": "/etc/bottle/skills",
    "DEMO": "1", "DEMO_PATH": "/x:/y",
    "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
}
bad = ["%s=%r" % (k, env.get(k)) for k, v in want.items() if env.get(k) != v]
print(" ".join(bad) or "ok")
EOF
)
assert_eq ok "$ENV_CHECK" "agent env: both cases of the proxy variables, the CA variables, GIT_CONFIG_SYSTEM, BOTTLE_*, the manifest's env"
assert_eq "False" "$(python3 -c 'import sys; print(any(s in open(sys.argv[1]).read() for s in sys.argv[2:]))' \
    "$_TMP/agent.json" "$SECRET1" "$SECRET2")" "no secret value in the agent's inspect output"

# capabilities, as the kernel sees them: bounding set exactly the six
# (CHOWN 0, DAC_OVERRIDE 1, FOWNER 3, KILL 5, SETGID 6, SETUID 7 = 0xeb), and
# nothing effective outside it; no-new-privileges in force.
rc=$(exec_in "$P-agent" 'grep -E "^(CapEff|CapBnd|CapPrm|NoNewPrivs):" /proc/1/status') || rc=exec-failed
CAPS=$(python3 -c '
import sys
f = dict(l.split(":", 1) for l in open(sys.argv[1]).read().split("\n") if ":" in l)
f = {k: v.strip() for k, v in f.items()}
bnd, eff, prm = (int(f[k], 16) for k in ("CapBnd", "CapEff", "CapPrm"))
print("bnd=%#x extra_eff=%x extra_prm=%x nnp=%s" % (bnd, eff & ~0xeb, prm & ~0xeb, f["NoNewPrivs"]))' \
    "$EXEC_OUT_FILE" 2>&1) || CAPS="unreadable: $(head -c 300 "$EXEC_OUT_FILE")"
assert_eq "bnd=0xeb extra_eff=0 extra_prm=0 nnp=1" "$CAPS" \
    "agent capabilities: all dropped but CHOWN DAC_OVERRIDE FOWNER SETUID SETGID KILL; NoNewPrivs (exec $rc)"

# /etc/bottle
fetch() { # CONTAINER PATH FILE: the file's bytes through exec (cat)
    local rc
    rc=$(exec_in "$1" "cat $2") && [ "$rc" = 0 ] && cp "$EXEC_OUT_FILE" "$3"
}
if fetch "$P-agent" /etc/bottle/ca.pem "$_TMP/ca.pem" &&
    openssl x509 -in "$_TMP/ca.pem" -noout 2>/dev/null && ! grep -q "PRIVATE KEY" "$_TMP/ca.pem"; then
    pass "/etc/bottle/ca.pem is a certificate without any private key"
else
    fail "/etc/bottle/ca.pem: $(head -c 300 "$_TMP/ca.pem" 2>/dev/null)"
fi
if cmp -s "$_TMP/ca.pem" "$STATE/ca/demo/cert.pem"; then
    pass "ca.pem is the bottle CA minted into the state dir"
else
    fail "ca.pem differs from $STATE/ca/demo/cert.pem"
fi
python3 -c 'import sys; t = open(sys.argv[1]).read(); print(t.split("\n---\n", 1)[1], end="")' "$M/demo.md" >"$_TMP/body"
if fetch "$P-agent" /etc/bottle/prompt.md "$_TMP/prompt" && cmp -s "$_TMP/body" "$_TMP/prompt"; then
    pass "/etc/bottle/prompt.md is the manifest body"
else
    fail "prompt.md: '$(head -c 200 "$_TMP/prompt" 2>/dev/null)' vs body '$(cat "$_TMP/body")'"
fi
check_exec "$P-agent" "/etc/bottle/gitconfig carries the git-gate.user identity (git config --system)" \
    'test "$(git config --system user.name)" = "T0300 Tester" && test "$(git config --system user.email)" = t0300@example.com'
check_exec "$P-agent" "/etc/bottle's files are readable by the agent's (non-root) user" \
    'test "$(id -u)" != 0 && test -r /etc/bottle/ca.pem && test -r /etc/bottle/prompt.md && test -r /etc/bottle/gitconfig'
check_exec "$P-agent" "the agent's user can write its workspace" 'touch /workspace/.probe && rm /workspace/.probe'

# the sidecar
assert_eq running "$(pj 'c["State"]["Status"]')" "the sidecar runs"
check_exec "$P-proxy" "the sidecar's ip_forward is 0 (IPv4 and IPv6)" \
    'test "$(cat /proc/sys/net/ipv4/ip_forward)" = 0 && { ! test -e /proc/sys/net/ipv6/conf/all/forwarding || test "$(cat /proc/sys/net/ipv6/conf/all/forwarding)" = 0; }'
EGR_MAC=$(pj 'c["NetworkSettings"]["Networks"]["'"$P-egr"'"]["MacAddress"]')
check_exec "$P-proxy" "the sidecar's default route leaves through the egress network" \
    "dev=\$(awk '\$2 == \"00000000\" {print \$1; exit}' /proc/net/route) && test -n \"\$dev\" && test \"\$(cat /sys/class/net/\$dev/address)\" = '$EGR_MAC'"
check_exec "$P-proxy" "the sidecar answers /healthz with 200" \
    "$ADMIN_SH"'; test "$(curl -s -o /dev/null -w "%{http_code}" --max-time 5 "http://$a/healthz")" = 200'
bd render --json demo
H1=$(json 'd["config_hash"]')
assert_eq "0 True" "$RC $(json 'len(d["config_hash"]) == 64')" "bottled render --json demo exits 0 with a config hash"
assert_eq "$H1" "$(sidecar_hash "$P-proxy")" "the sidecar's /config-hash is the one bottled render reports"
if grep -qF "$SECRET1" "$_TMP/proxy.json"; then
    fail "a secret value in the sidecar's inspect output"
else
    pass "no secret value in the sidecar's inspect output"
fi

# ---- 2. a second pass: nothing to do ----------------------------------------
snapshot "$INSTANCE" >"$_TMP/snap1"
PX1=$(cstate "$P-proxy")
sleep 1.1 # the engine's event log counts whole seconds
T0=$(date +%s)
bd reconcile --once --json --detailed-exitcode
assert_rc 0 "a second reconcile exits 0 with --detailed-exitcode"
assert_eq "0 0" "$(json '"%d %d" % (d["summary"]["engine_changes"], d["summary"]["actions"])')" \
    "a second reconcile makes no engine change and no action"
snapshot "$INSTANCE" >"$_TMP/snap2"
cmp -s "$_TMP/snap1" "$_TMP/snap2" && pass "the second pass left every resource as it was" ||
    fail "the second pass changed: $(diff "$_TMP/snap1" "$_TMP/snap2" | head -c 600)"
bd plan --detailed-exitcode
assert_rc 0 "plan --detailed-exitcode exits 0 after the apply"
EV=$(mutating_events "$T0" "$INSTANCE")
assert_eq "" "$EV" "the engine's event log shows no change to the instance's containers during the second pass and plan (exec sessions aside)"

# ---- 3. env change: only the agent is recreated, its work volume kept ------------
check_exec "$P-agent" "write a file into the workspace" 'echo kept-across-recreate >/workspace/keep.txt'
AGENT1=$(cid "$P-agent")
bottle_md "$M" demo 'env: {DEMO: "2", DEMO_PATH: "/x:/y"}
git-gate:
  user: {name: T0300 Tester, email: t0300@example.com}'
sleep 1.1
T3=$(date +%s)
bd reconcile --once --json
assert_rc 0 "reconcile after an env change exits 0"
EV=$(mutating_events "$T3" "$INSTANCE")
ORDER=$(python3 -c '
import sys
ev = sys.stdin.read().split("\n")
agent, proxy = sys.argv[1], sys.argv[2]
gone = [i for i, e in enumerate(ev) if e in ("remove " + agent, "destroy " + agent)]
made = [i for i, e in enumerate(ev) if e == "create " + agent]
print("ok" if gone and made and max(gone) < min(made) and not any(e.endswith(" " + proxy) for e in ev) else "BAD")' \
    "$P-agent" "$P-proxy" <<<"$EV")
assert_eq ok "$ORDER" "the event log: the old agent is removed before the new one is created, nothing done to the sidecar ($(tr '\n' ';' <<<"$EV"))"
assert_eq "recreate:agent:spec changed" "$(actions_of demo)" "only the agent is recreated, cause spec changed"
snapshot "$INSTANCE" >"$_TMP/snap3"
assert_eq "$(grep -v " $P-agent " "$_TMP/snap2")" "$(grep -v " $P-agent " "$_TMP/snap3")" \
    "sidecar, networks and volumes are the same (ids, volume markers)"
AGENT2=$(cid "$P-agent")
[ -n "$AGENT2" ] && [ "$AGENT2" != "$AGENT1" ] && pass "the agent has a new container id" ||
    fail "agent id before $AGENT1, after '$AGENT2'"
assert_eq "$PX1" "$(cstate "$P-proxy")" "the sidecar was not restarted (same StartedAt and Pid)"
assert_eq 1 "$(api GET "/containers/json?all=true&filters=$(urlenc "{\"name\":[\"$P-agent\"]}")" |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')" "exactly one agent container exists"
check_exec "$P-agent" "the recreated agent has the new env" 'test "$DEMO" = 2'
check_exec "$P-agent" "the file written before is still in /workspace (same work volume)" \
    'test "$(cat /workspace/keep.txt)" = kept-across-recreate'
bd plan --detailed-exitcode
assert_rc 0 "plan is empty after the env change"

# ---- 3b. a prompt change: the agent's /etc/bottle is part of its spec ----------
AGENT2=$(cid "$P-agent")
sed -i 's/^Prompt of demo\.$/A new prompt for demo./' "$M/demo.md"
grep -q "^A new prompt for demo.$" "$M/demo.md" || fatal "change the prompt"
bd reconcile --once --json
assert_rc 0 "reconcile after a prompt change exits 0"
assert_eq "recreate:agent:spec changed" "$(actions_of demo)" "a prompt change recreates only the agent"
check_exec "$P-agent" "the new agent's /etc/bottle/prompt.md is the new body" \
    'test "$(cat /etc/bottle/prompt.md)" = "A new prompt for demo."'
check_exec "$P-agent" "the workspace file is still there" 'test -f /workspace/keep.txt'

# ---- 4. routes-only and secret-only changes: deliver, recreate nothing --------
config_change() { # DESCRIPTION: reconcile after a change that only touches the sidecar's config
    local before after hash old=$1
    shift
    snapshot "$INSTANCE" >"$_TMP/before"
    before=$(cstate "$P-proxy")
    hash=$(render_hash demo)
    [ "$hash" != "$old" ] && pass "$*: render reports a new config hash" ||
        fail "$*: render's hash did not change ($hash)"
    bd reconcile --once --json
    assert_rc 0 "$*: reconcile exits 0"
    assert_eq "deliver:proxy:config changed" "$(actions_of demo)" "$*: the only action is a config delivery"
    snapshot "$INSTANCE" >"$_TMP/after"
    cmp -s "$_TMP/before" "$_TMP/after" && pass "$*: no resource recreated (same ids)" ||
        fail "$*: resources changed: $(diff "$_TMP/before" "$_TMP/after" | head -c 600)"
    after=$(cstate "$P-proxy")
    assert_eq "$before" "$after" "$*: the sidecar kept its StartedAt and Pid ($after)"
    assert_eq "$hash" "$(sidecar_hash "$P-proxy")" "$*: the sidecar's /config-hash is the new render hash"
    bd reconcile --once --json --detailed-exitcode
    assert_eq "0 0" "$RC $(json 'd["summary"]["engine_changes"]')" "$*: the next pass exits 0 with 0 engine changes"
    H_NOW=$hash
}
bottle_md "$M" demo 'env: {DEMO: "2", DEMO_PATH: "/x:/y"}
git-gate:
  user: {name: T0300 Tester, email: t0300@example.com}
egress:
  routes:
    - host: example.org'
sed -i 's/^Prompt of demo\.$/A new prompt for demo./' "$M/demo.md" # as in 3b: only the route differs
config_change "$H1" "a route added"
bd render --json demo
if grep -q '"example.org"' "$OUT"; then pass "render shows the new route"; else fail "render: $(said)"; fi
write_secrets "$SECRETS" "CLAUDE_OAUTH_TOKEN@api.anthropic.com=$SECRET2"
config_change "$H_NOW" "a secret's value changed"

# ---- 12. a lost database recreates nothing ------------------------------------
snapshot "$INSTANCE" >"$_TMP/before"
rm -f "$STATE"/state.db*
[ -e "$STATE/instance-id" ] && [ -e "$STATE/hmac.key" ] && [ -e "$STATE/ca/demo/cert.pem" ] ||
    fatal "the state dir keeps instance-id, hmac.key and ca/"
bd reconcile --once --json --detailed-exitcode
assert_eq "0 0" "$RC $(json 'd["summary"]["engine_changes"]')" \
    "after state.db is deleted, reconcile exits 0 with 0 engine changes"
snapshot "$INSTANCE" >"$_TMP/after"
cmp -s "$_TMP/before" "$_TMP/after" && pass "after state.db is deleted: every resource kept (same ids)" ||
    fail "resources changed: $(diff "$_TMP/before" "$_TMP/after" | head -c 600)"
[ -e "$STATE/state.db" ] && pass "the database is created again" || fail "no state.db after the pass"
# ... and the resources are adopted again by label: the new database knows
# each one's engine id (what `bottled status` shows), with no engine change.
want_ids() {
    local r
    for r in int egr; do printf '%s=%s ' $r "$(api GET "/networks/$P-$r" | jget Id)"; done
    for r in work cfg; do printf '%s=%s ' $r "$P-$r"; done
    for r in proxy agent; do printf '%s=%s ' $r "$(cid "$P-$r")"; done
}
recorded_ids() {
    python3 - "$STATE/state.db" <<'EOF'
import sqlite3, sys
c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
rows = dict(c.execute("SELECT role, engine_id FROM resources WHERE bottle = 'demo'"))
print(" ".join("%s=%s" % (r, rows.get(r)) for r in ("int", "egr", "work", "cfg", "proxy", "agent")), end=" ")
EOF
}
assert_eq "$(want_ids)" "$(recorded_ids)" "the new database records every resource with its engine id (adopted by label)"
bd plan --detailed-exitcode
assert_rc 0 "plan is empty with the new database"

# no secret value in anything bottled printed, nor in its database
if grep -qF -e "$SECRET1" -e "$SECRET2" "$ALL_OUTPUT"; then
    fail "a secret value appeared in bottled's output"
else
    pass "no secret value in any of bottled's output"
fi
if grep -qaF -e "$SECRET1" -e "$SECRET2" "$STATE"/state.db*; then
    fail "a secret value is in the state database"
else
    pass "no secret value in the state database"
fi
