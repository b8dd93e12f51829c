#!/bin/bash
# bench/reconcile-bench.sh - bottled reconcile --once against a compose tool, side by side.
#
#   bench/reconcile-bench.sh [--bottles N] [--engine podman|docker] [--compose TOOL[,TOOL]]
#                            [--runs R] [--compose-runs R] [--build DIR] [--only bottled|compose]
#                            [--subnet-pool CIDR] [--compose-pool CIDR] [--[no-]host-firewall]
#                            [--no-profile] [-- EXTRA_BOTTLED_FLAGS...]
#
# For N bottles (default 50; 200 is the size of the issue's target) on one
# engine (default podman): N generated manifests extending a Claude template
# (agent command `sleep infinity`: the default agent image has no claude),
# then
#   1. `bottled reconcile --once` from empty (timed; must exit 0, 2N running);
#   2. a no-op `reconcile --once`, R times (default 5): median, min, max, and
#      summary.engine_changes from --json, which must be 0 every time;
#   3. one more no-op pass under strace: where the time goes, per request kind;
#   4. `bottled gc` with an empty manifest dir (--allow-empty --force), timed;
#   5. per compose tool, an equivalent compose file (below): `up -d` from empty
#      (timed; 2N running), a no-op `up -d` R times (median; the container ids
#      must not change), then removal (rm -f by project label, down -v; not
#      timed: `down` waits out stop timeouts, as sleep as PID 1 ignores SIGTERM).
# Then a table (create-from-empty s, no-op s, ratio compose/bottled for both)
# and PASS/MISS for the issue's targets (on Podman: no-op of 200 bottles
# < 2 s; no-op >= 10x faster than the compose tool's no-op `up -d`).
#
# Compose tools: podman-compose (1.0.3 in Debian 12) drives the podman CLI,
# so it only goes with --engine podman; docker-compose (1.29, Python) talks
# to the Docker API, which is /run/docker.sock for --engine docker and
# Podman's compatible socket (DOCKER_HOST) for --engine podman.  Default:
# the tool matching the engine; a comma list runs each in turn.
#
# The equivalent compose file, per bottle B: networks B-int (internal) and
# B-egr, volumes B-work and B-cfg; service B-proxy (the same sidecar image,
# command `--config /cfg`, cfg volume at /cfg, cap_drop ALL,
# no-new-privileges, the two forwarding sysctls, on B-egr then B-int) and
# B-agent (the same agent image, `sleep infinity`, B-int only, cap_drop ALL
# + the same six caps, no-new-privileges, pids 1024, memory 4g, cpus 2, the
# same env, extra hosts proxy and gate, work volume at /workspace,
# depends_on B-proxy).  Nobody delivers a sidecar config into the compose
# cfg volume, so the sidecar's entrypoint is `sh -c 'exec sleep infinity'`
# with the proxy's arguments kept (bottle-proxy would exit without a
# config).  With docker-compose, the /28 subnets and fixed addresses are
# given as bottled uses them (Docker's default pools hold only ~30
# networks); podman-compose 1.0.3 cannot express them (it passes neither
# ipam nor ipv4_address, and its networks must be a list), so there Podman
# picks a /24 per network and the addresses.  docker-compose on Podman
# gets `ipam: {options: {driver: host-local}}` (what Podman reports back;
# without it every second `up` fails wanting to recreate the networks).
#
# Everything is removed on exit, also on failure or Ctrl-C: bottled gc (or
# a sweep by io.bottled.instance) and a sweep by the compose project
# labels.  Needs root (the podman CLI), curl, python3,
# strace (the profile; --no-profile without), the images
# localhost/bottled-proxy:0.1.0 and localhost/bottled-agent:latest in the
# engine, and `bash scripts/setup.sh --bench` for the compose tools.
#
# Host firewall: bottled runs as in production, asserting its host firewall
# chains every pass (part of the measured time); --no-host-firewall passes
# --insecure-no-host-firewall instead (--host-firewall is accepted and is the
# default).  Arguments after `--` are passed to every bottled command as
# they are.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$SRC/build}
N=50
ENGINE=podman
COMPOSE=
RUNS=5
CRUNS=
ONLY=
POOL=
CPOOL=
FIREWALL=1
PROFILE=1
EXTRA=()
PROXY_IMAGE=localhost/bottled-proxy:0.1.0
AGENT_IMAGE=localhost/bottled-agent:latest

die() {
    echo "reconcile-bench: $*" >&2
    exit 1
}
log() { echo "# $(date -u +%H:%M:%S) $*" >&2; }
usage() {
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

while [ "$#" -gt 0 ]; do
    case "$1" in
    --bottles) N=${2:?}; shift ;;
    --bottles=*) N=${1#*=} ;;
    --engine) ENGINE=${2:?}; shift ;;
    --engine=*) ENGINE=${1#*=} ;;
    --compose) COMPOSE=${2:?}; shift ;;
    --compose=*) COMPOSE=${1#*=} ;;
    --runs) RUNS=${2:?}; shift ;;
    --runs=*) RUNS=${1#*=} ;;
    --compose-runs) CRUNS=${2:?}; shift ;;
    --compose-runs=*) CRUNS=${1#*=} ;;
    --build) BUILD=${2:?}; shift ;;
    --build=*) BUILD=${1#*=} ;;
    --only) ONLY=${2:?}; shift ;;
    --only=*) ONLY=${1#*=} ;;
    --subnet-pool) POOL=${2:?}; shift ;;
    --subnet-pool=*) POOL=${1#*=} ;;
    --compose-pool) CPOOL=${2:?}; shift ;;
    --compose-pool=*) CPOOL=${1#*=} ;;
    --host-firewall) FIREWALL=1 ;;
    --no-host-firewall) FIREWALL=0 ;;
    --no-profile) PROFILE=0 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h | --help) usage ;;
    *) usage ;;
    esac
    shift
done
[[ "$N" =~ ^[0-9]+$ ]] && [ "$N" -ge 1 ] && [ "$N" -le 1000 ] || die "--bottles: 1..1000"
[[ "$RUNS" =~ ^[0-9]+$ ]] && [ "$RUNS" -ge 1 ] || die "--runs: >= 1"
CRUNS=${CRUNS:-$RUNS}
[[ "$CRUNS" =~ ^[0-9]+$ ]] && [ "$CRUNS" -ge 1 ] || die "--compose-runs: >= 1"
case "$ONLY" in "" | bottled | compose) ;; *) die "--only: bottled or compose" ;; esac
case "$ENGINE" in
podman) SOCK=/run/podman/podman.sock ;;
docker) SOCK=/run/docker.sock ;;
*) die "--engine: podman or docker" ;;
esac
[ -n "$COMPOSE" ] || { [ "$ENGINE" = podman ] && COMPOSE=podman-compose || COMPOSE=docker-compose; }
IFS=, read -r -a TOOLS <<<"$COMPOSE"
for t in "${TOOLS[@]}"; do
    case "$t" in
    podman-compose) [ "$ENGINE" = podman ] || die "podman-compose drives the podman CLI: only with --engine podman" ;;
    docker-compose) ;;
    *) die "--compose: podman-compose, docker-compose or a comma list" ;;
    esac
done
# 2N /28s: 32N addresses; the smallest prefix that holds them.
PLEN=$(python3 -c 'import math,sys; print(32 - max(4, math.ceil(math.log2(32 * int(sys.argv[1])))))' "$N")
POOL=${POOL:-10.220.0.0/$PLEN}
CPOOL=${CPOOL:-10.224.0.0/$PLEN}

BOTTLED=$BUILD/reconciler/bottled
[ "$ONLY" = compose ] || [ -x "$BOTTLED" ] || die "missing $BOTTLED (cmake --build $BUILD)"
[ "$(id -u)" = 0 ] || die "needs root (the podman CLI, the engines' sockets)"
for c in curl python3; do command -v "$c" >/dev/null || die "missing $c"; done
[ "$PROFILE" = 0 ] || [ "$ONLY" = compose ] || command -v strace >/dev/null || die "missing strace (or --no-profile)"
if [ "$ONLY" != bottled ]; then
    for t in "${TOOLS[@]}"; do command -v "$t" >/dev/null || die "missing $t (bash scripts/setup.sh --bench)"; done
fi
curl -sf --unix-socket "$SOCK" http://d/_ping >/dev/null || die "$ENGINE does not answer on $SOCK (bash scripts/setup.sh --sandbox-engine-config)"
unset CONTAINER_HOST CONTAINER_CONNECTION

# eng ARGS...: the engine's CLI on the benchmarked daemon
eng() {
    if [ "$ENGINE" = podman ]; then podman "$@"; else docker -H "unix://$SOCK" "$@"; fi
}
for img in "$PROXY_IMAGE" "$AGENT_IMAGE"; do
    eng image inspect "$img" >/dev/null 2>&1 || die "image $img missing in $ENGINE (bash scripts/setup.sh)"
done

TAG=$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
PREFIX=rb$TAG  # bottled's --name-prefix
PROJ=rbc$TAG   # the compose project
T=$(mktemp -d /tmp/reconcile-bench.XXXXXX)
INST=
CLEAN_BOTTLED=0
CLEAN_PROJ=0

BFLAGS=(--engine "unix://$SOCK" --state-dir "$T/state" --name-prefix "$PREFIX"
    --subnet-pool "$POOL" --secrets "$T/secrets" --proxy-image "$PROXY_IMAGE")
[ "$FIREWALL" = 1 ] || BFLAGS+=(--insecure-no-host-firewall)
BFLAGS+=("${EXTRA[@]}")
GCFLAGS=(--engine "unix://$SOCK" --state-dir "$T/state" --name-prefix "$PREFIX"
    --subnet-pool "$POOL" --secrets "$T/secrets" --proxy-image "$PROXY_IMAGE")

# sweep LABEL: remove every container, volume, network carrying LABEL
sweep() {
    local ids
    ids=$(eng ps -aq --filter "label=$1" 2>/dev/null || true)
    # shellcheck disable=SC2086 # id lists
    if [ "$ENGINE" = podman ]; then
        [ -z "$ids" ] || eng rm -f -t 0 $ids >/dev/null 2>&1 || true
    else
        [ -z "$ids" ] || eng rm -f $ids >/dev/null 2>&1 || true
    fi
    ids=$(eng volume ls -q --filter "label=$1" 2>/dev/null || true)
    # shellcheck disable=SC2086
    [ -z "$ids" ] || eng volume rm -f $ids >/dev/null 2>&1 || true
    ids=$(eng network ls -q --filter "label=$1" 2>/dev/null || true)
    # shellcheck disable=SC2086
    [ -z "$ids" ] || eng network rm $ids >/dev/null 2>&1 || true
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ "$CLEAN_BOTTLED" = 1 ]; then
        log "cleanup: bottled resources of instance ${INST:-?}"
        mkdir -p "$T/empty"
        "$BOTTLED" gc -d "$T/empty" "${GCFLAGS[@]}" --allow-empty --force -q >/dev/null 2>&1 || true
        [ -z "$INST" ] || sweep "io.bottled.instance=$INST"
    fi
    if [ "$CLEAN_PROJ" = 1 ]; then
        log "cleanup: compose project $PROJ"
        sweep "com.docker.compose.project=$PROJ"
        sweep "io.podman.compose.project=$PROJ"
    fi
    rm -rf "$T"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
# stats V...: "median min max"
stats() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f %.2f %.2f\n", m, v[1], v[NR] }'; }

# ---------------------------------------------------------------- pools
# Neither pool may overlap a host route or an existing network of the engine.
curl -s --unix-socket "$SOCK" http://d/v1.41/networks >"$T/nets.json"
ip -4 route show >"$T/routes" 2>/dev/null || true
python3 - "$POOL" "$CPOOL" "$T/nets.json" "$T/routes" <<'PY' || die "pick other pools with --subnet-pool / --compose-pool"
import ipaddress, json, sys
pools = [ipaddress.ip_network(p) for p in sys.argv[1:3]]
used = []
for n in json.load(open(sys.argv[3])) or []:
    for c in ((n.get("IPAM") or {}).get("Config") or []):
        s = c.get("Subnet") or ""
        if s and ":" not in s:
            used.append((ipaddress.ip_network(s, strict=False), "network " + n.get("Name", "?")))
for line in open(sys.argv[4]):
    w = line.split()
    if w and w[0] != "default" and "/" in w[0]:
        used.append((ipaddress.ip_network(w[0], strict=False), "route " + line.strip()))
bad = 0
if pools[0].overlaps(pools[1]):
    print(f"reconcile-bench: pools {pools[0]} and {pools[1]} overlap", file=sys.stderr); bad = 1
for p in pools:
    for u, what in used:
        if p.overlaps(u):
            print(f"reconcile-bench: pool {p} overlaps {u} ({what})", file=sys.stderr); bad = 1
sys.exit(bad)
PY

ENGVER=$(curl -s --unix-socket "$SOCK" http://d/version | python3 -c 'import json,sys; v=json.load(sys.stdin); print(v.get("Version","?"), "API", v.get("ApiVersion","?"))')
NCPU=$(nproc)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "N=$N engine=$ENGINE ($ENGVER) compose=${TOOLS[*]} runs=$RUNS/$CRUNS pools $POOL (bottled) $CPOOL (compose) dir $T"

# ---------------------------------------------------------------- manifests, compose files
mkdir -p "$T/m" "$T/empty"
cp "$SRC/examples/claude.md" "$T/m/claude.md"
for i in $(seq "$N"); do
    printf -- '---\nextends: claude\nagent: {command: [sleep, infinity]}\n---\nBenchmark bottle %d.\n' "$i" \
        >"$T/m/$(printf 'b%03d' "$i").md"
done
(umask 077 && printf 'CLAUDE_OAUTH_TOKEN@api.anthropic.com=bench-%s-not-a-real-token\n' "$TAG" >"$T/secrets")

# compose_file TOOL OUT: the equivalent compose file for TOOL
compose_file() {
    python3 - "$N" "$CPOOL" "$1" "$PROXY_IMAGE" "$AGENT_IMAGE" "$ENGINE" >"$2" <<'PY'
import ipaddress, json, sys
n, pool, tool, pimg, aimg, engine = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
fixed = tool == "docker-compose"          # podman-compose 1.0.3: list networks, no ipam/addresses
subnets = ipaddress.ip_network(pool).subnets(new_prefix=28)
q = json.dumps                            # JSON scalars are YAML
env = ["http_proxy=http://proxy:9099", "https_proxy=http://proxy:9099",
       "no_proxy=localhost,127.0.0.1,::1,gate", "HTTP_PROXY=http://proxy:9099",
       "HTTPS_PROXY=http://proxy:9099", "NO_PROXY=localhost,127.0.0.1,::1,gate"]
env += [v + "=/etc/bottle/ca.pem" for v in
        ("SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "GIT_SSL_CAINFO", "CURL_CA_BUNDLE")]
env += ["GIT_CONFIG_SYSTEM=/etc/bottle/gitconfig", "BOTTLE_PROMPT_FILE=/etc/bottle/prompt.md",
        "BOTTLE_SKILLS_DIR=/etc/bottle/skills",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1", "DISABLE_AUTOUPDATER=1"]
svc, nets, vols = [], [], []
for i in range(1, n + 1):
    b = "b%03d" % i
    si, se = next(subnets), next(subnets)
    a = lambda s, k: str(s.network_address + k)
    # Podman's compat API reports IPAM option driver=host-local; without it
    # docker-compose wants to recreate every network on the second `up`.
    ipam = lambda s: ("ipam: {%sconfig: [{subnet: %s}]}"
                      % ("options: {driver: host-local}, " if engine == "podman" else "", s))
    if fixed:
        pnets = "    networks:\n      %s-egr: {ipv4_address: %s}\n      %s-int: {ipv4_address: %s}\n" % (
            b, a(se, 2), b, a(si, 2))
        anets = "    networks:\n      %s-int: {ipv4_address: %s}\n" % (b, a(si, 4))
        nets.append("  %s-int: {internal: true, %s}\n  %s-egr: {%s}\n" % (b, ipam(si), b, ipam(se)))
    else:
        pnets = "    networks: [%s-egr, %s-int]\n" % (b, b)
        anets = "    networks: [%s-int]\n" % b
        nets.append("  %s-int: {internal: true}\n  %s-egr: {}\n" % (b, b))
    vols.append("  %s-work: {}\n  %s-cfg: {}\n" % (b, b))
    svc.append(
        "  %s-proxy:\n" % b +
        "    image: %s\n" % q(pimg) +
        "    # no config in the cfg volume: keep the container up without bottle-proxy\n"
        "    entrypoint: [/bin/sh, -c, \"exec sleep infinity\", bottle-proxy]\n"
        "    command: [--config, /cfg]\n"
        "    cap_drop: [ALL]\n"
        "    security_opt: [no-new-privileges]\n"
        "    sysctls: [net.ipv4.ip_forward=0, net.ipv6.conf.all.forwarding=0]\n"
        "    volumes: [\"%s-cfg:/cfg\"]\n" % b + pnets +
        "  %s-agent:\n" % b +
        "    image: %s\n" % q(aimg) +
        "    command: [sleep, infinity]\n"
        "    working_dir: /workspace\n"
        "    environment: %s\n" % q(env) +
        "    cap_drop: [ALL]\n"
        "    cap_add: [CHOWN, DAC_OVERRIDE, FOWNER, SETUID, SETGID, KILL]\n"
        "    security_opt: [no-new-privileges]\n"
        "    pids_limit: 1024\n"
        "    mem_limit: 4g\n"
        "    cpus: 2\n"
        "    extra_hosts: [\"proxy:%s\", \"gate:%s\"]\n" % (a(si, 2), a(si, 3)) +
        "    volumes: [\"%s-work:/workspace\"]\n" % b + anets +
        "    depends_on: [%s-proxy]\n" % b)
sys.stdout.write('version: "2.4"\nservices:\n' + "".join(svc) + "networks:\n" + "".join(nets) +
                 "volumes:\n" + "".join(vols))
PY
}

# running LABEL: how many running containers carry LABEL
running() { eng ps -q --filter "label=$1" --filter status=running | wc -l; }
ids_of() { eng ps -aq --no-trunc --filter "label=$1" | sort; }

NOOP_FAIL=
declare -A R # results: R[tool.create] R[tool.noop] R[tool.noop_min] ...

# ---------------------------------------------------------------- bottled
bottled_phase() {
    local t0 t1 rc ch act i times=() ids_before
    log "bottled: reconcile --once from empty ($N bottles)"
    CLEAN_BOTTLED=1
    t0=$(now)
    rc=0
    "$BOTTLED" reconcile --once -d "$T/m" "${BFLAGS[@]}" --json >"$T/b-create.json" 2>"$T/b-create.err" || rc=$?
    t1=$(now)
    INST=$(cat "$T/state/instance-id" 2>/dev/null || true)
    [ "$rc" = 0 ] || die "bottled reconcile from empty exited $rc: $(tail -5 "$T/b-create.err")$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
bad = [b for b in d.get("bottles", []) if b.get("error")]
print("; %d bottle(s) failed, e.g.: %s" % (len(bad), " | ".join("%s: %s" % (b["name"], b["error"]) for b in bad[:3])))' "$T/b-create.json" 2>/dev/null)"
    R[bottled.create]=$(secs "$t0" "$t1")
    R[bottled.create_changes]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"]["engine_changes"])' "$T/b-create.json")
    i=$(running "io.bottled.instance=$INST")
    [ "$i" = $((2 * N)) ] || die "after the create pass $i containers run, not $((2 * N))"
    log "bottled: created in ${R[bottled.create]} s (${R[bottled.create_changes]} engine changes), $i containers running"
    ids_before=$(ids_of "io.bottled.instance=$INST")
    for i in $(seq "$RUNS"); do
        t0=$(now)
        rc=0
        "$BOTTLED" reconcile --once -d "$T/m" "${BFLAGS[@]}" --json >"$T/b-noop.json" 2>"$T/b-noop.err" || rc=$?
        t1=$(now)
        if [ "$rc" != 0 ]; then
            # A failed pass is a result (a miss), not a reason to print nothing.
            NOOP_FAIL="exited $rc after $(secs "$t0" "$t1") s: $(tail -1 "$T/b-noop.err")"
            log "bottled: no-op pass $i $NOOP_FAIL"
            break
        fi
        read -r ch act < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["summary"]; print(s["engine_changes"], s["actions"])' "$T/b-noop.json")
        [ "$ch" = 0 ] && [ "$act" = 0 ] || die "no-op pass $i: engine_changes $ch, actions $act (not a no-op)"
        times+=("$(secs "$t0" "$t1")")
        log "bottled: no-op pass $i: ${times[-1]} s, engine_changes $ch"
    done
    [ "$(ids_of "io.bottled.instance=$INST")" = "$ids_before" ] || die "container ids changed during the no-op passes"
    if [ -n "$NOOP_FAIL" ]; then
        R[bottled.noop]=failed R[bottled.noop_min]=- R[bottled.noop_max]=-
    else
        read -r "R[bottled.noop]" "R[bottled.noop_min]" "R[bottled.noop_max]" < <(stats "${times[@]}")
    fi
    if [ "$PROFILE" = 1 ]; then
        log "bottled: one more no-op pass under strace"
        t0=$(now)
        strace -f -ttt -e trace=execve,sendto,sendmsg,recvfrom,recvmsg -s 120 -o "$T/strace.txt" \
            "$BOTTLED" reconcile --once -d "$T/m" "${BFLAGS[@]}" --json >/dev/null 2>&1 || true
        t1=$(now)
        PROFILE_WALL=$(secs "$t0" "$t1")
        python3 - "$T/strace.txt" >"$T/profile.txt" <<'PY'
import re, sys
ev, recv, start, end, pids = [], [], None, None, set()
for line in open(sys.argv[1]):
    m = re.match(r"(\d+)\s+(\d+\.\d+)\s+(.*)", line)
    if not m:
        continue
    t, rest = float(m.group(2)), m.group(3)
    start = t if start is None else min(start, t)
    end = t if end is None else max(end, t)
    r = re.search(r'"(GET|POST|PUT|DELETE|HEAD) (\S+) HTTP', rest)
    if r:
        ev.append((t, r.group(1), r.group(2)))
        pids.add(m.group(1))
    elif rest.startswith(("recvfrom(", "recvmsg(", "<... recvfrom", "<... recvmsg")) and not re.search(r"= -1", rest):
        recv.append(t)
def kind(meth, path):
    p = re.sub(r"^/v[0-9.]+", "", path.split("?")[0])
    if p == "/_ping": return "ping"
    if re.match(r"/containers/[^/]+/exec$", p): return "exec create (POST /containers/ID/exec)"
    if re.match(r"/exec/[^/]+/start$", p): return "exec start (runs curl in the sidecar)"
    if re.match(r"/exec/[^/]+/json$", p): return "exec inspect (exit code)"
    if p in ("/networks", "/volumes", "/containers/json"): return "list " + p.strip("/").split("/")[0]
    if p.startswith("/images/"): return "image inspect"
    return "%s %s" % (meth, re.sub(r"/[0-9a-f]{12,}", "/ID", p))
ev.sort()
recv.sort()
tot, local = {}, 0.0
for i, (t, meth, path) in enumerate(ev):
    nxt = ev[i + 1][0] if i + 1 < len(ev) else end
    got = [x for x in recv if t <= x < nxt]
    done = got[-1] if got else nxt
    k = kind(meth, path)
    c, s = tot.get(k, (0, 0.0))
    tot[k] = (c + 1, s + done - t)
    local += nxt - done
wall = end - start
before = (ev[0][0] - start) if ev else wall
print("  %-44s %6s %9s %8s %6s" % ("", "count", "total_ms", "mean_ms", "share"))
print("  %-44s %6s %9.0f %8s %5.0f%%" % ("start-up until the first request", "-", before * 1000, "-", 100 * before / wall))
for k, (c, s) in sorted(tot.items(), key=lambda x: -x[1][1]):
    print("  %-44s %6d %9.0f %8.1f %5.0f%%" % (k, c, s * 1000, s * 1000 / c, 100 * s / wall))
print("  %-44s %6s %9.0f %8s %5.0f%%" % ("bottled's own work between requests, exit", "-", local * 1000, "-", 100 * local / wall))
print("  %-44s %6d %9.0f" % ("wall time of the traced process", len(ev), wall * 1000))
print("  (a request's time runs from sending it to the last byte of its answer; the")
print("  requests were sent by %d thread(s))" % len(pids))
PY
        log "bottled: profiled pass took $PROFILE_WALL s under strace"
    fi
    log "bottled: gc with an empty manifest dir"
    t0=$(now)
    rc=0
    "$BOTTLED" gc -d "$T/empty" "${GCFLAGS[@]}" --allow-empty --force --json >"$T/b-gc.json" 2>"$T/b-gc.err" || rc=$?
    t1=$(now)
    R[bottled.down]=$(secs "$t0" "$t1")
    [ "$rc" = 0 ] || log "bottled gc exited $rc: $(tail -3 "$T/b-gc.err")"
    sweep "io.bottled.instance=$INST"
    CLEAN_BOTTLED=0
    log "bottled: gc took ${R[bottled.down]} s"
}

# ---------------------------------------------------------------- compose
# ctool TOOL ARGS...: run a compose tool on the benchmarked engine
ctool() {
    local t=$1
    shift
    case "$t" in
    podman-compose) podman-compose -p "$PROJ" -f "$T/$t.yml" "$@" ;;
    docker-compose) DOCKER_HOST=unix://$SOCK COMPOSE_HTTP_TIMEOUT=600 \
        docker-compose --no-ansi -p "$PROJ" -f "$T/$t.yml" "$@" ;;
    esac
}
compose_phase() {
    local tool=$1 t0 t1 rc i times=() ids_before label=com.docker.compose.project=$PROJ
    compose_file "$tool" "$T/$tool.yml"
    log "$tool: up -d from empty ($((2 * N)) services)"
    CLEAN_PROJ=1
    t0=$(now)
    rc=0
    ctool "$tool" up -d >"$T/$tool-create.log" 2>&1 || rc=$?
    t1=$(now)
    [ "$rc" = 0 ] || die "$tool up -d exited $rc: $(tail -5 "$T/$tool-create.log")"
    R[$tool.create]=$(secs "$t0" "$t1")
    i=$(running "$label")
    [ "$i" = $((2 * N)) ] || die "$tool: after up -d $i containers run, not $((2 * N)) ($(tail -3 "$T/$tool-create.log"))"
    log "$tool: created in ${R[$tool.create]} s, $i containers running"
    ids_before=$(ids_of "$label")
    for i in $(seq "$CRUNS"); do
        t0=$(now)
        rc=0
        ctool "$tool" up -d >"$T/$tool-noop.log" 2>&1 || rc=$?
        t1=$(now)
        [ "$rc" = 0 ] || die "$tool no-op up -d exited $rc: $(tail -5 "$T/$tool-noop.log")"
        times+=("$(secs "$t0" "$t1")")
        log "$tool: no-op up -d $i: ${times[-1]} s"
    done
    [ "$(ids_of "$label")" = "$ids_before" ] || die "$tool: container ids changed during the no-op up -d"
    [ "$(running "$label")" = $((2 * N)) ] || die "$tool: not all containers run after the no-op up -d"
    read -r "R[$tool.noop]" "R[$tool.noop_min]" "R[$tool.noop_max]" < <(stats "${times[@]}")
    # Removal is not timed: `down` spends its time in stop timeouts (sleep as
    # PID 1 ignores SIGTERM), which says nothing about the tools.
    log "$tool: removing the project (rm -f by label, then down -v)"
    sweep "$label"
    sweep "io.podman.compose.project=$PROJ"
    ctool "$tool" down -v >"$T/$tool-down.log" 2>&1 || true
    sweep "$label"
    CLEAN_PROJ=0
}

[ "$ONLY" = compose ] || bottled_phase
if [ "$ONLY" != bottled ]; then
    for t in "${TOOLS[@]}"; do compose_phase "$t"; done
fi

# ---------------------------------------------------------------- report
ver_of() {
    case "$1" in
    bottled) echo "bottled $("$BOTTLED" version 2>/dev/null | awk 'NR == 1 { print $2 }')@$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo '?')" ;;
    podman-compose) echo "podman-compose $(dpkg-query -W -f='${Version}' podman-compose 2>/dev/null)" ;;
    docker-compose) echo "docker-compose $(dpkg-query -W -f='${Version}' docker-compose 2>/dev/null)" ;;
    esac
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.1fx", a / b }'; }
echo
echo "reconcile benchmark: $N bottles ($((2 * N)) containers, $((2 * N)) networks, $((2 * N)) volumes), $ENGINE $ENGVER,"
echo "$(date -u +%Y-%m-%dT%H:%MZ), $NCPU CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)); no-op = median of $RUNS (bottled) / $CRUNS (compose) runs"
echo "load average (1/5/15 min) at start: $LOAD_START, at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the host skews every figure)"
[ "$FIREWALL" = 1 ] || echo "bottled runs with --insecure-no-host-firewall${EXTRA[*]:+ and: ${EXTRA[*]}}"
echo
printf '%-5s %-7s %-32s %10s %10s %15s %8s %8s\n' N engine tool create_s noop_s 'noop_min-max' create_x noop_x
ROWS=()
[ "$ONLY" = compose ] || ROWS+=(bottled)
[ "$ONLY" = bottled ] || ROWS+=("${TOOLS[@]}")
for r in "${ROWS[@]}"; do
    cx=- nx=-
    if [ "$r" != bottled ] && [ -n "${R[bottled.noop]:-}" ]; then
        cx=$(ratio "${R[$r.create]}" "${R[bottled.create]}")
        nx=$(ratio "${R[$r.noop]}" "${R[bottled.noop]}")
    fi
    printf '%-5s %-7s %-32s %10s %10s %15s %8s %8s\n' "$N" "$ENGINE" "$(ver_of "$r")" "${R[$r.create]}" \
        "${R[$r.noop]}" "${R[$r.noop_min]}-${R[$r.noop_max]}" "$cx" "$nx"
done
echo
echo "columns: create_s = from empty to all $((2 * N)) containers running (bottled: networks, volumes, CA,"
echo "config delivered, /healthz waited for, /etc/bottle copied; compose: no config, no health wait);"
echo "noop_s = a second pass with nothing to do (bottled: summary.engine_changes 0 every run; compose:"
echo "container ids unchanged); create_x, noop_x = compose's time / bottled's (how many times"
echo "faster bottled is)."
[ -z "${R[bottled.down]:-}" ] || echo "bottled gc of all $N bottles (empty manifest dir, --allow-empty --force): ${R[bottled.down]} s."
if [ -n "${R[bottled.noop]:-}" ]; then
    echo
    echo "targets (issue 4; they apply on Podman):"
    if [ -n "$NOOP_FAIL" ]; then
        v="MISS (the no-op pass failed: $NOOP_FAIL)"
    elif [ "$N" = 200 ]; then
        v=$(awk -v a="${R[bottled.noop]}" 'BEGIN { print (a < 2 ? "PASS" : "MISS") }')
    elif awk -v a="${R[bottled.noop]}" 'BEGIN { exit !(a >= 2) }'; then
        v="MISS (already over 2 s at N=$N; the target is at N=200)"
    else
        v="n/a (measured at N=$N; the target is at N=200)"
    fi
    [ "$ENGINE" = podman ] || v="$v (on $ENGINE: for information)"
    shown="${R[bottled.noop]} s"
    [ -z "$NOOP_FAIL" ] || shown=failed
    echo "  no-op pass < 2 s at 200 bottles: $shown: $v"
    for t in "${TOOLS[@]}"; do
        [ -n "${R[$t.noop]:-}" ] || continue
        if [ -n "$NOOP_FAIL" ]; then
            v="MISS (bottled's no-op pass failed)"
        else
            v=$(awk -v a="${R[$t.noop]}" -v b="${R[bottled.noop]}" 'BEGIN { print (a / b >= 10 ? "PASS" : "MISS") }')
        fi
        [ "$ENGINE" = podman ] || v="$v (on $ENGINE: for information)"
        echo "  no-op >= 10x faster than $t's no-op up -d: $(ratio "${R[$t.noop]}" "${R[bottled.noop]}"): $v"
    done
    if [ -s "$T/profile.txt" ]; then
        echo
        echo "where a no-op pass of bottled spends its time (one pass under strace: $PROFILE_WALL s wall):"
        cat "$T/profile.txt"
    fi
fi
