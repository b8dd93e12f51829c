#!/usr/bin/env bash
# t0002-kernel-overflow.sh WATCH_TEST BACKEND - a real inotify queue
# overflow, at the system's own max_queued_events: the watcher is stopped
# (SIGSTOP) while twice that many events are queued, then continued.  The
# overflow is reported, the backend keeps running, and a directory created
# after the kernel started dropping events is watched afterwards.
# t0001 covers the same path with an injected overflow; this one checks
# that the injection matches what the kernel does.
. "$(dirname "$0")/../cli/lib.sh"
WATCH_TEST=$BOTTLED
BACKEND=${2:?usage: $0 WATCH_TEST BACKEND}
export TMPDIR=$TMP/tmpdir
mkdir -p "$TMPDIR"

max=$(cat /proc/sys/fs/inotify/max_queued_events)
if [ "$max" -gt 65536 ]; then
    echo "ok 1 # skip max_queued_events is $max: too many files to create"
    exit 0
fi

D=$TMP/d
mkdir -p "$D"
LOG=$TMP/log
: >"$LOG"
"$WATCH_TEST" -b "$BACKEND" "$D" >"$LOG" 2>"$TMP/err" &
pid=$!
for _ in $(seq 500); do
    grep -q '^ready ' "$LOG" && break
    sleep 0.01
done
expect_in "$LOG" "ready $BACKEND" "$BACKEND opened"

# Each new file queues IN_CREATE, IN_ATTRIB and IN_CLOSE_WRITE, each
# removal IN_DELETE: max files make at least 2 * max events.
kill -STOP "$pid"
(cd "$D" && seq 1 "$max" | xargs touch && mkdir lost && seq 1 "$max" | xargs rm)
kill -CONT "$pid"

wait_for() { # ERE what
    for _ in $(seq 500); do
        grep -Eq -- "$1" "$LOG" && break
        sleep 0.02
    done
    if grep -Eq -- "$1" "$LOG"; then ok "$2"; else not_ok "$2" "$(grep -v ' changed [0-9]' "$LOG")"; fi
}
wait_for '^[0-9.]+ ([a-z-]+,)*overflow' "the kernel's overflow is reported"
sleep 0.5
echo "# after" >"$D/lost/after.md"
wait_for ' lost/after\.md( |$)' "a directory created after events were dropped is watched"

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
expect_eq "$rc" 0 "the watcher exits cleanly"
expect_not_in "$LOG" "failed" "no batch reported a failure"
finish
