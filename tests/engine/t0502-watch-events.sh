#!/usr/bin/env bash
# t0502-watch-events.sh [BACKEND] - `bottled watch` repairs drift on the
# engine's event stream, against a real engine.  The watcher runs with
# --resync 3600, so only an event can explain a repair:
#
#   agent removed     a's agent removed by hand is back within seconds, by a
#                     pass whose trigger is "engine"
#   sidecar stopped   a's sidecar stopped by hand runs again
#   extra network     a network connected to a's agent by hand is gone again
#                     (the agent is recreated without it)
#   fighting          a tool removes a's agent whenever it exists, for 15 s:
#                     the repairs back off (creates and passes counted in the
#                     event log and the progress lines stay few), a shows
#                     Degraded with a "fighting" event
#   no self-loop      once that settled, the watcher makes no pass for 10 s
#   stream ended      the proxy closes the connections but keeps listening
#                     (as Podman ends its stream when it rotates its event
#                     log): reopened at once, said on stdout, no warning,
#                     one "reconnect" pass
#   stream dropped    the watcher talks to the engine through a small proxy
#                     socket; the proxy stopped drops the stream ("lost",
#                     said once), a's agent removed meanwhile (its event is
#                     missed), the proxy back: the stream reconnects and one
#                     "reconnect" pass repairs a
#   --no-engine-events  a watcher without the stream leaves a removed agent
#                     alone (resync 3600) until SIGHUP
. "$(dirname "$0")/harness.sh"
. "$(dirname "$0")/watch-lib.sh"

: "${BOTTLED_BIN:?BOTTLED_BIN (the bottled binary) must be set; ctest sets it}"
BACKEND=${1:-${BOTTLED_WATCH_BACKEND:-}}
require_engine
command -v sqlite3 >/dev/null || fatal "sqlite3 is installed"
DEADLINE=${BOTTLED_TEST_WATCH_DEADLINE:-60} # seconds; a loaded engine is slow, not wrong
FAST=${BOTTLED_TEST_EVENT_DEADLINE:-20}     # "within a few seconds", with room for a loaded engine

STATE=$_TMP/state
M=$_TMP/bottles
PREFIX=t0502$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
PROXY_SOCK=$_TMP/engine.sock
mkdir -p "$M"
INSTANCE=
WPID=
PPID_PROXY=

cleanup_all() {
    if [ -n "$WPID" ]; then
        kill -TERM "$WPID" 2>/dev/null || true
        wait "$WPID" 2>/dev/null || true
    fi
    [ -z "$PPID_PROXY" ] || kill "$PPID_PROXY" 2>/dev/null || true
    [ -n "$INSTANCE" ] || INSTANCE=$(cat "$STATE/instance-id" 2>/dev/null || true)
    cleanup_instance "$INSTANCE"
}
trap 'cleanup_all; _finish' EXIT

# A unix socket proxy to the engine: stopping it drops every connection,
# as an engine restart does, without touching the engine other tests use;
# SIGUSR1 closes the open connections but keeps listening, as Podman ends
# its event stream when it rotates its event log.
start_proxy() {
    rm -f "$PROXY_SOCK"
    python3 - "$PROXY_SOCK" "$SOCK" <<'EOF' &
import asyncio, signal, sys
conns = set()
def drop_all():
    for w in list(conns):
        w.close()
async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except Exception:
        pass
    finally:
        w.close()
async def handle(cr, cw):
    try:
        er, ew = await asyncio.open_unix_connection(sys.argv[2])
    except Exception:
        cw.close()
        return
    conns.update((cw, ew))
    await asyncio.gather(pipe(cr, ew), pipe(er, cw))
    conns.difference_update((cw, ew))
async def main():
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, drop_all)
    srv = await asyncio.start_unix_server(handle, sys.argv[1])
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
EOF
    PPID_PROXY=$!
    for _ in $(seq 50); do [ -S "$PROXY_SOCK" ] && return 0; sleep 0.1; done
    fatal "the proxy socket $PROXY_SOCK appears"
}
stop_proxy() {
    kill "$PPID_PROXY" 2>/dev/null || true
    wait "$PPID_PROXY" 2>/dev/null || true
    PPID_PROXY=
}

manifest() { # FILE
    cat >"$1" <<EOF
---
agent:
  command: [sleep, infinity]
egress:
  routes:
    - host: example.org
---
t0502's agent.
EOF
}
printf 'UNUSED@x.test=1\n' >"$_TMP/secrets"
chmod 0600 "$_TMP/secrets"
POOL=$(free_pool) || fatal "list the engine's networks"
[ -n "$POOL" ] || fatal "a free /24 in 10.213.0.0/16"

running() { [ "$(ctr_field "$PREFIX-$1" State Running)" = True ]; }
# repair attempts: a's agent created, or a's work failed (the tool removed
# the new agent before the pass had started it)
attempts() {
    sqlite3 "$STATE/state.db" "SELECT count(*) FROM events WHERE bottle = 'a' AND (kind = 'failed' OR (kind IN ('create', 'recreate') AND detail LIKE 'agent %'))" 2>/dev/null || echo 0
}
engine_passes() { grep -c '^watch: pass [0-9]* (engine)' "$_TMP/w.out" || true; }
more() { [ "$("$1")" -gt "$2" ]; }
has_line() { grep -q "$2" "$_TMP/w.$1"; }
networks_of_agent() {
    ctr_field "$PREFIX-a-agent" NetworkSettings Networks |
        python3 -c 'import json,sys; print(" ".join(sorted(json.loads(sys.stdin.read() or "{}"))))' 2>/dev/null || true
}
not_attached() { ! networks_of_agent | grep -qw "$1" && running a-agent; }
wait_for() { # DESCRIPTION SECONDS COMMAND...
    local what=$1 limit=$2
    shift 2
    wait_within "$limit" "$what" "$@"
}
start_watcher() { # EXTRA-ARGS...
    local -a args=(watch -d "$M" --state-dir "$STATE" --secrets "$_TMP/secrets"
        --engine "unix://$PROXY_SOCK" --name-prefix "$PREFIX" --subnet-pool "$POOL"
        --resync 3600 --settle 200)
    [ -z "$BACKEND" ] || args+=(--watch-backend "$BACKEND")
    "$BOTTLED_BIN" "${args[@]}" "$@" >"$_TMP/w.out" 2>"$_TMP/w.err" &
    WPID=$!
}
stop_watcher() {
    local rc=0
    kill -TERM "$WPID"
    wait "$WPID" || rc=$?
    WPID=
    assert_eq 0 "$rc" "SIGTERM: the watcher exits 0"
}

start_proxy
manifest "$M/a.md"
start_watcher
note "watcher pid $WPID, backend ${BACKEND:-default}, prefix $PREFIX, pool $POOL, engine via $PROXY_SOCK"
wait_for "the first pass creates bottle a" "$DEADLINE" running a-agent
wait_for "a's sidecar runs" "$DEADLINE" running a-proxy
INSTANCE=$(cat "$STATE/instance-id" 2>/dev/null || true)
wait_for "the engine event stream is live" "$DEADLINE" has_line out '^watch: engine events: live$'
sleep 2 # the start pass's own events may wake one follow-up pass

# ---- the agent removed by hand ----------------------------------------------------
n0=$(engine_passes)
t0=$(date +%s)
api DELETE "/containers/$PREFIX-a-agent?force=true" >/dev/null || fail "remove a's agent by hand"
wait_for "a's agent removed by hand is back (resync 3600: by an event)" "$FAST" running a-agent
# (its progress line comes when the pass ends, a moment after the agent starts)
wait_for "the repair was a pass triggered by the engine" "$FAST" more engine_passes "$n0"

# ---- the sidecar stopped by hand -------------------------------------------------------
api POST "/containers/$PREFIX-a-proxy/stop?t=1" >/dev/null || fail "stop a's sidecar by hand"
! running a-proxy || note "(the sidecar already runs again)"
wait_for "a's sidecar stopped by hand runs again" "$FAST" running a-proxy

# ---- an extra network connected by hand ------------------------------------------------
EXTRA=$PREFIX-extra
api POST /networks/create "{\"Name\":\"$EXTRA\",\"Labels\":{\"$RUN_LABEL\":\"$RUN_ID\"}}" >/dev/null ||
    fatal "create network $EXTRA"
sleep 1
api POST "/networks/$EXTRA/connect" "{\"Container\":\"$PREFIX-a-agent\"}" >/dev/null ||
    fail "connect $EXTRA to a's agent by hand"
note "a's agent is on: $(networks_of_agent)"
wait_for "the network connected by hand is gone from a's agent" "$FAST" not_attached "$EXTRA"

# ---- a tool fighting us ----------------------------------------------------------------
# The three repairs above, of an unchanged manifest, already make a fight; a
# manifest change ends it, so this one starts from nothing.
activity() {
    "$BOTTLED_BIN" status --json --state-dir "$STATE" 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["watcher"]["activity"])' 2>/dev/null || true
}
settled() { more passes "$1" && [ "$(col a phase)" = Ready ] && running a-agent && [ "$(activity)" = idle ]; }
n0=$(passes)
printf 'changed body\n' >>"$M/a.md"
wait_for "a's manifest change applied: a is Ready, the watcher idle" "$DEADLINE" settled "$n0"
fights() { sqlite3 "$STATE/state.db" "SELECT count(*) FROM events WHERE kind = 'fighting' AND bottle = 'a'" 2>/dev/null || echo 0; }
helds() { grep -Ec ' [1-9][0-9]* held \(backoff\)' "$_TMP/w.out" || true; }
p0=$(passes)
c0=$(attempts)
f0=$(fights)
h0=$(helds)
t0=$(date +%s)
removals=0
# The tool removes a's agent whenever it exists: for 15 s, and on a slow
# engine (passes of several seconds) until the watcher has held a back at
# least once, at most 150 s.
while :; do
    d=$(($(date +%s) - t0))
    if [ "$d" -ge 15 ] && [ "$(helds)" -gt "$h0" ]; then break; fi
    [ "$d" -lt 150 ] || break
    kill -0 "$WPID" 2>/dev/null || fatal "the watcher died during the fight: $(tail -5 "$_TMP/w.err")"
    if [ "$(api_code DELETE "/containers/$PREFIX-a-agent?force=true")" = 204 ]; then
        removals=$((removals + 1))
    fi
    sleep 0.3
done
d=$(($(date +%s) - t0))
p1=$(passes)
c1=$(attempts)
note "fight: $removals removal(s) by the tool, $((c1 - c0)) repair attempt(s), $((p1 - p0)) pass(es) in $d s"
# Without backoff every removal would be repaired by the next pass (on an
# idle engine about a second: ten or more creates in 15 s).  With it, three
# repairs come at once, then the waits double (1, 2, 4, 8 s...): about
# 3 + log2(d) attempts.  A removal that races with a create makes that
# attempt fail instead, which backs off the same way (1 s doubling).
bound=5
for ((x = d; x > 1; x /= 2)); do bound=$((bound + 1)); done
if [ $((c1 - c0)) -ge 1 ] && [ $((c1 - c0)) -le "$bound" ]; then
    pass "the fight is bounded: $((c1 - c0)) repair attempts in $d s (at most $bound)"
else
    fail "repair attempts during the fight: $((c1 - c0)) in $d s (want 1..$bound)"
fi
[ $((p1 - p0)) -le $((4 * bound + 4)) ] && pass "passes during the fight: $((p1 - p0)) (bounded)" ||
    fail "passes during the fight: $((p1 - p0)) in $d s: a loop"
[ "$(helds)" -gt "$h0" ] && pass "passes held a back while its backoff ran ($(($(helds) - h0)))" ||
    fail "no pass held a: $(tail -3 "$_TMP/w.out")"
# (attempts that lost the race show Reconciling until the next repair,
# which succeeds now that the tool stopped: after a's backoff)
wait_for "a shows Degraded" 150 eval '[ "$(col a phase)" = Degraded ]'
[ "$(fights)" -gt "$f0" ] && pass "the fight is in the event log" || fail "no new fighting event for a"
case "$(col a reason)" in
*"outside bottled"*) pass "a's reason names the fight: $(col a reason)" ;;
*) fail "a's reason: '$(col a reason)'" ;;
esac

# ---- then quiet: no self-triggered loop ------------------------------------------------
wait_for "after the fight a's agent is back (its retry)" 150 running a-agent
retry=$(col a next_retry)
now=$(date +%s)
if [ -n "$retry" ] && [ "$retry" -gt "$now" ]; then
    note "waiting $((retry - now + 2)) s for a's last backoff ($retry)"
    sleep $((retry - now + 2))
fi
sleep 3
cpu_ms() { # the watcher's user + system CPU time, ms (all its threads)
    awk -v hz="$(getconf CLK_TCK)" '{ print int(($14 + $15) * 1000 / hz) }' "/proc/$WPID/stat"
}
# Podman ends the stream when it rotates its event log (a busy engine, as
# in CI, does that every few minutes): the reopen and its one reconnect
# pass are the engine's doing, not a loop, so they are told apart.
reopens() { grep -c '; reopened$' "$_TMP/w.out" || true; }
reconnect_passes() { grep -c '^watch: pass [0-9]* (reconnect)' "$_TMP/w.out" || true; }
n0=$(passes)
k0=$(reconnect_passes)
o0=$(reopens)
cpu0=$(cpu_ms)
sleep 10
n1=$(passes)
k1=$(reconnect_passes)
o1=$(reopens)
cpu1=$(cpu_ms)
if [ "$o1" -gt "$o0" ]; then
    note "Podman ended the event stream during the idle window ($((o1 - o0)) reopen(s), $((k1 - k0)) reconnect pass(es))"
    [ $((k1 - k0)) -le $((o1 - o0)) ] || fail "more reconnect passes than reopens while idle"
    sleep 6 # the reopened stream must have lived QUIET_MS before the next check ends it
fi
assert_eq "$((n0 - k0))" "$((n1 - k1))" "idle for 10 s afterwards: no pass (nothing loops on its own events)"
[ $((cpu1 - cpu0)) -le 200 ] && pass "the idle watcher used $((cpu1 - cpu0)) ms of CPU in 10 s (no polling loop)" ||
    fail "the idle watcher used $((cpu1 - cpu0)) ms of CPU in 10 s"
running a-agent && pass "a's agent runs" || fail "a's agent does not run"

# ---- the stream ended by the engine (as Podman does on log rotation) -----------------------
losts() { grep -c 'engine event stream lost' "$_TMP/w.err" || true; }
reconnects() { grep -c '^watch: pass [0-9]* (reconnect)' "$_TMP/w.out" || true; }
lost0=$(losts)
r0=$(reconnects)
kill -USR1 "$PPID_PROXY"
wait_for "the engine ended the stream: reopened at once, one reconnect pass" "$DEADLINE" more reconnects "$r0"
grep -q '^watch: engine events: .*; reopened$' "$_TMP/w.out" &&
    pass "said on stdout: $(grep -m1 '; reopened$' "$_TMP/w.out")" ||
    fail "no 'reopened' line: $(tail -4 "$_TMP/w.out" | tr '\n' '|')"
assert_eq "$lost0" "$(losts)" "a stream the engine ended and that reopened at once is no warning"
# Podman's rotation can end the reopened stream again at once: still no warning.
o0=$(reopens)
r0=$(reconnects)
kill -USR1 "$PPID_PROXY"
wait_for "ended again at once: reopened at once" "$DEADLINE" eval '[ "$(reopens)" -gt "$o0" ]'
wait_for "... and its reconnect pass ran" "$DEADLINE" more reconnects "$r0"
assert_eq "$lost0" "$(losts)" "a stream the engine ended twice within seconds is no warning either"

# ---- the stream dropped --------------------------------------------------------------------
lost0=$(losts)
r0=$(reconnects)
stop_proxy
wait_for "the proxy stopped: the watcher says the stream is lost" "$DEADLINE" more losts "$lost0"
api DELETE "/containers/$PREFIX-a-agent?force=true" >/dev/null || fail "remove a's agent while the stream is down"
sleep 3
running a-agent && fail "a's agent came back while the stream was down" ||
    pass "while the stream is down nothing repairs a (its event was missed)"
start_proxy
wait_for "the stream reconnects and a reconnect pass runs" "$DEADLINE" more reconnects "$r0"
wait_for "the reconnect pass repairs what was missed: a's agent runs" "$DEADLINE" running a-agent
assert_eq $((lost0 + 1)) "$(losts)" "the outage was said once"
grep -q '^watch: engine events: live again' "$_TMP/w.out" && pass "the watcher says the stream is live again" ||
    fail "no 'live again' line: $(tail -4 "$_TMP/w.out" | tr '\n' '|')"
stop_watcher
errs=$(grep -v -e 'engine event stream lost' -e 'repaired [0-9]* times in a row' "$_TMP/w.err" || true)
[ -z "$errs" ] && pass "nothing unexpected on the watcher's stderr" ||
    fail "the watcher's stderr: $(head -c 800 <<<"$errs")"

# ---- --no-engine-events ---------------------------------------------------------------------
mv "$_TMP/w.out" "$_TMP/w1.out"
start_watcher --no-engine-events
wait_for "a watcher with --no-engine-events runs its first pass" "$DEADLINE" has_line out '^watch: pass 1 (start)'
wait_for "a's agent runs" "$DEADLINE" running a-agent
api DELETE "/containers/$PREFIX-a-agent?force=true" >/dev/null || fail "remove a's agent by hand"
sleep 6
running a-agent && fail "--no-engine-events: a's agent came back without a resync" ||
    pass "--no-engine-events: a removed agent waits for the resync (not back after 6 s)"
has_line out 'engine events' && fail "--no-engine-events: the watcher followed the stream" ||
    pass "--no-engine-events: no event stream"
kill -HUP "$WPID"
wait_for "SIGHUP: a's agent is back" "$DEADLINE" running a-agent
stop_watcher
if grep -Eq 'Sanitizer|runtime error' "$_TMP/w.err"; then
    fail "sanitizer report on the watcher's stderr: $(grep -E -m3 'Sanitizer|runtime error' "$_TMP/w.err")"
else
    pass "no sanitizer report from the watcher"
fi
