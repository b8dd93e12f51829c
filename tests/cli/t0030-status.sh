#!/usr/bin/env bash
# status: no state yet, the text and JSON of a recorded state (written by
# state_fixture through the state API), "gc blocked by", unfinished passes,
# the NAME filter, -q/-v, reading while another process holds the lock (and
# a write transaction), a state dir with a bad mode, a newer database.
. "$(dirname "$0")/lib.sh"
FIX=${STATE_FIXTURE:?STATE_FIXTURE must name the state_fixture binary}
ST="$TMP/state"
HOLD=
trap '[ -z "$HOLD" ] || kill "$HOLD" 2>/dev/null; rm -rf "$TMP"' EXIT

status() { run "$BOTTLED" status --state-dir "$ST" "$@"; }
fixture() { # CMD...: writes the state; a failure is a failed check
    if ! "$FIX" "$ST" "$@" >"$TMP/fix.out" 2>"$TMP/fix.err"; then
        not_ok "state_fixture $*" "$(cat "$TMP/fix.err")"
    fi
}
hold() { # [tx=1]: a second process holds the lock (and a write transaction)
    "$FIX" "$ST" hold 60 "$@" >"$TMP/hold.out" 2>&1 &
    HOLD=$!
    for _ in $(seq 100); do
        grep -q locked "$TMP/hold.out" && return
        sleep 0.1
    done
    not_ok "the holder did not take the lock" "$(cat "$TMP/hold.out")"
}
release() {
    kill "$HOLD"
    wait "$HOLD" 2>/dev/null || true
    HOLD=
}
# age_of FIELD-EXPR: seconds between the ISO time the expression gives and now
age_of() {
    json "int(__import__('time').time() - __import__('calendar').timegm(__import__('time').strptime($1, '%Y-%m-%dT%H:%M:%SZ')))"
}

# ---- no state yet -------------------------------------------------------
status
expect_rc 0 "no state dir"
expect_in "$TMP/out" "no state in $ST: nothing reconciled yet" "says nothing was reconciled"
if [ -e "$ST" ]; then not_ok "status created the state dir"; else ok "status creates nothing"; fi
status --json
expect_rc 0 "no state dir, --json"
expect_eq "$(json '(j["instance"], j["gc_blocked_by"], j["passes"], j["bottles"])')" \
    "(None, None, [], [])" "no state: instance null, nothing recorded"
status -q
expect_rc 0 "no state dir, -q"
expect_eq "$(cat "$TMP/out")" "" "-q prints nothing when there is nothing to see"
status tools
expect_rc 1 "no state: any NAME is unknown"
expect_in "$TMP/err" "no bottle 'tools'" "the unknown NAME is named"
mkdir -m 700 "$ST"
status
expect_rc 0 "an empty state dir (no instance-id yet)"
expect_in "$TMP/out" "nothing reconciled yet" "an empty state dir is no state"
rmdir "$ST"

# ---- a recorded state ---------------------------------------------------
MH=aaaabbbbccccddddeeeeffff0000111122223333444455556666777788889999
SH=1111222233334444555566667777888899990000aaaabbbbccccddddeeeeffff
CH=cccc0000cccc1111cccc2222cccc3333cccc4444cccc5555cccc6666cccc7777
EID=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
fixture pass changes=6 took=3 trigger=reconcile -- \
    bottle name=tools phase=Ready manifest_hash=$MH spec_hash=$SH config_hash=$CH \
    last_pass_at=-5 last_pass_ms=1234 -- \
    resource bottle=tools role=int name=bottle-tools-int engine_id=$EID spec_hash=$SH -- \
    resource bottle=tools role=proxy name=bottle-tools-proxy engine_id=fedcba9876543210 -- \
    resource bottle=tools role=agent name=bottle-tools-agent -- \
    event bottle=tools kind=create "detail=step 1" -- event bottle=tools kind=create "detail=step 2" -- \
    event bottle=tools kind=create "detail=step 3" -- event bottle=tools kind=deliver "detail=step 4" -- \
    event bottle=tools kind=recreate "detail=step 5" -- event bottle=tools kind=deliver "detail=step 6" -- \
    event bottle=tools kind=failed "detail=step 7" -- event bottle=old kind=refused -- \
    bottle name=old phase=Stalled "reason=deletion refused: more than --max-deletes (10) bottles" \
    "last_error=line one
line two" -- \
    age 600 -- \
    bottle name=web phase=Degraded "reason=no host firewall (--insecure-no-host-firewall)" \
    "last_error=engine: create bottle-web-agent: 500" failures=3 next_retry=+150 -- \
    pass failures=1 gc_blocked=/srv/bottles/broken.md took=0
INSTANCE=$(head -c 12 "$ST/instance-id")

status
expect_rc 0 "status of a recorded state (bottles not Ready are not an error)"
expect_in "$TMP/out" "instance $INSTANCE" "the instance"
expect_in "$TMP/out" "last pass #2 finished" "the last pass"
expect_in "$TMP/out" "took 0s, 0 changes, 1 failure" "its duration, changes and failures"
expect_in "$TMP/out" "gc blocked by /srv/bottles/broken.md" "gc blocked line"
expect_in "$TMP/out" "tools: Ready" "tools and its phase"
expect_in "$TMP/out" "old: Stalled" "old and its phase"
expect_in "$TMP/out" "web: Degraded" "web and its phase"
expect_in "$TMP/out" "reason      deletion refused: more than --max-deletes (10) bottles" "a reason"
expect_in "$TMP/out" "last error  line one\\nline two" "a multi-line error stays on one line"
expect_in "$TMP/out" "last error  engine: create bottle-web-agent: 500" "a last error"
expect_in "$TMP/out" "manifest    aaaabbbbcccc" "the manifest hash, short"
expect_not_in "$TMP/out" "$MH" "not the full manifest hash"
expect_in "$TMP/out" "generation  1" "the generation"
expect_in "$TMP/out" "(10m ago)" "updated, relative"
expect_in "$TMP/out" "failures    3" "consecutive failures"
expect_in "$TMP/out" "(in 2m)" "the next retry, relative"
expect_in "$TMP/out" "int    bottle-tools-int    0123456789ab" "a resource: role, name, short id"
expect_not_in "$TMP/out" "$EID" "not the full engine id"
expect_in "$TMP/out" "agent  bottle-tools-agent  (no engine id yet)" "a resource without an id"
expect_not_in "$TMP/out" "events" "no events without -v"
expect_in "$TMP/out" "last pass   20" "a bottle's last pass"
expect_in "$TMP/out" "(10m ago), its work took 1.2 s" "when, and how long its work took"
expect_not_in "$TMP/out" "watcher" "no watcher line when no watch ever ran"
expect_not_in "$TMP/out" "recent passes" "no pass list without -v"
if grep -qE "^  updated     [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z \(" "$TMP/out"; then
    ok "updated has an ISO time"
else
    not_ok "updated has no ISO time" "$(cat "$TMP/out")"
fi
expect_eq "$(grep -E '^[a-z]+: ' "$TMP/out" | cut -d: -f1 | tr '\n' ' ')" "old tools web " \
    "bottles in name order"

status -v
expect_rc 0 "status -v"
expect_in "$TMP/out" "recent passes:" "-v lists the passes"
expect_in "$TMP/out" "  #1 (reconcile) finished" "the first pass, with its trigger"
expect_in "$TMP/out" "took 3.0 s, 6 changes, 0 failures" "the first pass's duration and changes"
expect_in "$TMP/out" "#2 finished" "the second pass"
expect_in "$TMP/out" "spec        111122223333" "-v: the spec hash"
expect_in "$TMP/out" "config      cccc0000cccc" "-v: the config hash"
expect_in "$TMP/out" "  events" "-v: events"
for e in "recreate: step 5" "deliver: step 6" "failed: step 7" "create: step 3"; do
    expect_in "$TMP/out" "$e" "-v shows event $e"
done
expect_not_in "$TMP/out" "step 1" "-v shows only the last 5 events (not step 1)"
expect_not_in "$TMP/out" "step 2" "-v shows only the last 5 events (not step 2)"
expect_in "$TMP/out" "refused" "old's refusal event"

status -q
expect_rc 0 "status -q"
expect_eq "$(cat "$TMP/out")" "gc blocked by /srv/bottles/broken.md
old: Stalled: deletion refused: more than --max-deletes (10) bottles
web: Degraded: no host firewall (--insecure-no-host-firewall)" \
    "-q: the blocked gc and the bottles that are not Ready, one line each"

status --json
expect_rc 0 "status --json"
expect_eq "$(json 'sorted(j)')" "['bottles', 'gc_blocked_by', 'instance', 'passes', 'watcher']" "top-level keys"
expect_eq "$(json 'j["watcher"]')" "None" "no watcher ever ran: null"
expect_eq "$(json 'j["instance"]')" "$INSTANCE" "the instance id"
expect_eq "$(json 'j["gc_blocked_by"]')" "/srv/bottles/broken.md" "gc_blocked_by"
expect_eq "$(json '[(p["id"], p["changes"], p["failures"], p["duration_ms"], p["gc_blocked"]) for p in j["passes"]]')" \
    "[(1, 6, 0, 3000, None), (2, 0, 1, 0, '/srv/bottles/broken.md')]" "the passes"
expect_eq "$(json 'sorted(j["passes"][0])')" \
    "['changes', 'duration_ms', 'failures', 'finished_at', 'gc_blocked', 'id', 'started_at', 'trigger']" \
    "pass keys"
expect_eq "$(json '[p["trigger"] for p in j["passes"]]')" "['reconcile', None]" "pass triggers"
expect_eq "$(json 'all(__import__("re").fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", p[k]) is not None for p in j["passes"] for k in ("started_at", "finished_at"))')" \
    "True" "pass times are ISO 8601 UTC"
A=$(age_of 'j["passes"][0]["finished_at"]')
if [ "$A" -ge 595 ] && [ "$A" -le 700 ]; then ok "pass times are seconds (10 minutes ago: $A s)"; else
    not_ok "the first pass finished $A s ago, expected about 600"
fi
expect_eq "$(json '[b["name"] for b in j["bottles"]]')" "['old', 'tools', 'web']" "bottles by name"
expect_eq "$(json 'sorted(j["bottles"][1])')" \
    "['config_hash', 'deploy_keys', 'events', 'failures', 'generation', 'last_error', 'last_pass_at', 'last_pass_ms', 'manifest_hash', 'name', 'next_retry', 'phase', 'reason', 'resources', 'spec_hash', 'updated_at']" \
    "bottle keys"
expect_eq "$(json '[(b["phase"], b["reason"]) for b in j["bottles"]]')" \
    "[('Stalled', 'deletion refused: more than --max-deletes (10) bottles'), ('Ready', None), ('Degraded', 'no host firewall (--insecure-no-host-firewall)')]" \
    "phases and reasons"
expect_eq "$(json 'j["bottles"][0]["last_error"]')" "line one
line two" "last_error verbatim in JSON"
expect_eq "$(json '(lambda b: (b["manifest_hash"], b["spec_hash"], b["config_hash"], b["generation"], b["failures"], b["next_retry"]))(j["bottles"][1])')" \
    "('$MH', '$SH', '$CH', 1, 0, None)" "hashes in full, generation, no retry"
expect_eq "$(json '[(r["role"], r["name"], r["engine_id"], r["spec_hash"]) for r in j["bottles"][1]["resources"]]')" \
    "[('agent', 'bottle-tools-agent', None, None), ('int', 'bottle-tools-int', '$EID', '$SH'), ('proxy', 'bottle-tools-proxy', 'fedcba9876543210', None)]" \
    "resources with full engine ids"
expect_eq "$(json '[(e["kind"], e["detail"]) for e in j["bottles"][1]["events"]]')" \
    "[('create', 'step 3'), ('deliver', 'step 4'), ('recreate', 'step 5'), ('deliver', 'step 6'), ('failed', 'step 7')]" \
    "the last 5 events, oldest first"
expect_eq "$(json '(j["bottles"][1]["last_pass_ms"], j["bottles"][0]["last_pass_at"], j["bottles"][0]["last_pass_ms"])')" \
    "(1234, None, None)" "a bottle's last pass took 1234 ms; null when it had none"
A=$(age_of 'j["bottles"][1]["last_pass_at"]')
if [ "$A" -ge 600 ] && [ "$A" -le 700 ]; then ok "last_pass_at is an ISO time 10 minutes ago"; else
    not_ok "last_pass_at is $A s ago, expected about 605"
fi
A=$(age_of 'j["bottles"][1]["updated_at"]')
if [ "$A" -ge 595 ] && [ "$A" -le 700 ]; then ok "updated_at is an ISO time 10 minutes ago"; else
    not_ok "updated_at is $A s ago, expected about 600"
fi
A=$(age_of 'j["bottles"][2]["next_retry"]')
if [ "$A" -ge -151 ] && [ "$A" -le -100 ]; then ok "next_retry is an ISO time in 150 s"; else
    not_ok "next_retry is $A s ago, expected about -150"
fi
expect_eq "$(json '(j["bottles"][2]["failures"], j["bottles"][2]["last_error"])')" \
    "(3, 'engine: create bottle-web-agent: 500')" "failures and last_error"

# ---- NAME filters ---------------------------------------------------------
status tools
expect_rc 0 "status NAME"
expect_in "$TMP/out" "tools: Ready" "the named bottle"
expect_not_in "$TMP/out" "old: Stalled" "no other bottle"
expect_in "$TMP/out" "gc blocked by /srv/bottles/broken.md" "the header stays"
status --json web tools web
expect_rc 0 "status --json NAME NAME (repeated)"
expect_eq "$(json '[b["name"] for b in j["bottles"]]')" "['web', 'tools']" "in the order asked, once each"
status tools nope
expect_rc 1 "an unknown NAME"
expect_in "$TMP/err" "no bottle 'nope' in the state of $ST" "the unknown NAME is named"
expect_in "$TMP/out" "tools: Ready" "the known NAME is still shown"

# ---- unfinished passes ----------------------------------------------------
# A finished pass that blocked gc, then more unfinished ones than the pass list shows.
fixture pass gc_blocked=/srv/bottles/dangling -- pass unfinished=1 -- pass unfinished=1 -- \
    pass unfinished=1 -- pass unfinished=1 -- pass unfinished=1
status
expect_rc 0 "status with unfinished passes"
expect_in "$TMP/out" "last pass #8 started" "the last pass started"
expect_in "$TMP/out" "not finished (running, or its process died)" "and did not finish"
expect_in "$TMP/out" "last finished pass #3 finished" "the last finished pass, further back"
expect_in "$TMP/out" "gc blocked by /srv/bottles/dangling" "gc blocked by the last finished pass"
status --json
expect_eq "$(json '[p["id"] for p in j["passes"]]')" "[4, 5, 6, 7, 8]" "the last 5 passes"
expect_eq "$(json '(j["passes"][-1]["finished_at"], j["passes"][-1]["duration_ms"])')" \
    "(None, None)" "an unfinished pass has no end and no duration"
expect_eq "$(json 'j["gc_blocked_by"]')" "/srv/bottles/dangling" "gc_blocked_by of the last finished pass"
fixture pass changes=1
status --json
expect_eq "$(json 'j["gc_blocked_by"]')" "None" "a later complete pass clears gc_blocked_by"

# ---- while another process holds the lock -----------------------------------
BOTTLED_STATE_DIR=$ST run "$BOTTLED" status -q
expect_rc 0 "BOTTLED_STATE_DIR names the state dir"
expect_in "$TMP/out" "old: Stalled" "status through BOTTLED_STATE_DIR"
hold
status --json
expect_rc 0 "status while another process holds the lock"
expect_eq "$(json 'len(j["bottles"])')" 3 "reads every bottle while locked"
release
hold tx=1
status
expect_rc 0 "status while another process holds a write transaction"
expect_in "$TMP/out" "tools: Ready" "reads while a write is in progress"
release

# ---- the watcher's live view ---------------------------------------------------
# A watcher that holds the lock (its pid is in the lock file) and is in a pass.
"$FIX" "$ST" watcher pid=self activity=pass detail=resync next_resync=+40 passes=7 -- \
    hold 60 >"$TMP/hold.out" 2>&1 &
HOLD=$!
for _ in $(seq 100); do grep -q locked "$TMP/hold.out" && break; sleep 0.1; done
status
expect_rc 0 "status while a watcher runs"
expect_in "$TMP/out" "watcher running: pid $HOLD, inotify on /m, since " "the running watcher"
expect_in "$TMP/out" "(5m ago), 7 passes" "since when, how many passes"
expect_in "$TMP/out" "  now       pass (resync) since " "what it does now"
if grep -qE '^  resync    [0-9T:-]+Z \(in (3[0-9]|40)s\)$' "$TMP/out"; then
    ok "the next resync, in about 40 s"
else
    not_ok "no next resync in about 40 s" "$(cat "$TMP/out")"
fi
status --json
expect_eq "$(json '(lambda w: (w["running"], w["pid"], w["backend"], w["dir"], w["activity"], w["detail"], w["passes"]))(j["watcher"])')" \
    "(True, $HOLD, 'inotify', '/m', 'pass', 'resync', 7)" "the watcher in JSON"
release
# Killed: the row stays, the process and the lock are gone.
status
expect_in "$TMP/out" "watcher not running (its process is gone; last seen " "a dead watcher is not running"
expect_not_in "$TMP/out" "watcher running" "not shown as running"
status --json
expect_eq "$(json '(j["watcher"]["running"], j["watcher"]["activity"])')" "(False, 'gone')" \
    "a dead watcher in JSON"
# A live process that does not hold the lock is not the watcher (a reused pid).
fixture watcher pid=$$ activity=idle
status
expect_in "$TMP/out" "watcher not running" "a pid without the lock is not the watcher"
fixture watcher activity=stopped
status
expect_in "$TMP/out" "watcher not running (stopped; last seen " "a watcher that stopped"

# ---- bottled's own configuration, the database ------------------------------
chmod 755 "$ST"
status
expect_rc 2 "a state dir with mode 0755"
expect_in "$TMP/err" "mode 0755" "the mode is named"
chmod 700 "$ST"
fixture schema 99
status
expect_rc 3 "a database newer than the binary"
expect_in "$TMP/err" "schema version 99" "the version is named"
rm -f "$ST/state.db-wal" "$ST/state.db-shm"
printf 'this is not an SQLite database, it only sits where one should be\n' >"$ST/state.db"
status
expect_rc 3 "a state.db that is not a database"

finish
