#!/usr/bin/env bash
# t0040-watch.sh BOTTLED - `bottled watch` without an engine: its flags,
# the lock it holds for its lifetime, its signals, and that it never writes
# into the watched directory.  (tests/engine/t05* run it against an engine.)
. "$(dirname "$0")/lib.sh"

run "$BOTTLED" --help
expect_in "$TMP/out" "watch" "the main help lists watch"
run "$BOTTLED" watch --help
expect_rc 0 "watch --help"
for f in --settle --grace --resync --watch-backend BOTTLED_WATCH_BACKEND SIGHUP SIGTERM; do
    expect_in "$TMP/out" "$f" "watch --help documents $f"
done

M=$TMP/m
mkdir -p "$M"
printf -- '---\nagent: {command: [sleep, infinity]}\n---\nx\n' >"$M/a.md"
printf 'UNUSED@x.test=1\n' >"$TMP/secrets"
chmod 0600 "$TMP/secrets"
common=(-d "$M" --state-dir "$TMP/state" --secrets "$TMP/secrets" --engine unix:///nonexistent/engine.sock)

run "$BOTTLED" watch "${common[@]}" --settle 2x
expect_rc 2 "--settle 2x is a usage error"
run "$BOTTLED" watch "${common[@]}" --resync 0
expect_rc 2 "--resync 0 is a usage error"
run "$BOTTLED" watch "${common[@]}" --watch-backend kqueue
expect_rc 2 "--watch-backend kqueue (not built) is a usage error"
BOTTLED_SETTLE=abc run "$BOTTLED" watch "${common[@]}"
expect_rc 2 "BOTTLED_SETTLE=abc is a usage error"
run "$BOTTLED" watch "${common[@]/$M/$TMP/missing}"
expect_rc 2 "a manifest directory that does not exist"
run "$BOTTLED" watch "${common[@]}" extra
expect_rc 2 "watch takes no arguments"

# A watcher whose engine does not answer keeps running (the pass is retried)
# and holds the lock meanwhile.
before=$(cd "$M" && ls -lA --time-style=+%s.%N . | sort)
for backend in fswatch inotify; do
    "$BOTTLED" version | grep -q "watch backends: .*$backend" || continue
    # gone first: the background child truncates them only after the fork,
    # and the wait below must not read the previous backend's lines
    rm -f "$TMP/w.out" "$TMP/w.err"
    "$BOTTLED" watch "${common[@]}" --watch-backend "$backend" >"$TMP/w.out" 2>"$TMP/w.err" &
    pid=$!
    for _ in $(seq 600); do # up to 30 s: sanitizer builds on a loaded host start slowly
        grep -qs 'could not run' "$TMP/w.err" && break
        sleep 0.05
    done
    expect_in "$TMP/w.out" "$backend on " "$backend: the watcher says which backend it runs"
    expect_in "$TMP/w.err" "retrying in" "$backend: an unreachable engine is retried, not fatal"
    run "$BOTTLED" watch "${common[@]}"
    expect_rc 3 "$backend: a second watch on the same state dir exits 3"
    expect_in "$TMP/err" "pid $pid" "$backend: ... naming the holder's pid"
    run "$BOTTLED" reconcile --once "${common[@]}"
    expect_rc 3 "$backend: reconcile --once meanwhile exits 3"
    touch "$M/b.md.tmp" && rm -f "$M/b.md.tmp"
    kill -HUP "$pid"
    sleep 0.3
    kill -0 "$pid" 2>/dev/null && ok "$backend: SIGHUP does not end the watcher" ||
        not_ok "$backend: the watcher died on SIGHUP" "$(cat "$TMP/w.err")"
    kill -USR1 "$pid"
    sleep 0.3
    kill -0 "$pid" 2>/dev/null && ok "$backend: SIGUSR1 (injected overflow) does not end it" ||
        not_ok "$backend: the watcher died on SIGUSR1" "$(cat "$TMP/w.err")"
    kill -TERM "$pid"
    rc=0
    wait "$pid" || rc=$?
    expect_eq "$rc" 0 "$backend: SIGTERM: exit 0"
    expect_in "$TMP/w.out" "stopping after" "$backend: it says it stops"
done
after=$(cd "$M" && ls -lA --time-style=+%s.%N . | sort)
expect_eq "$after" "$before" \
    "the watcher wrote nothing into the watched directory"
finish
