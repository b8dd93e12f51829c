#!/usr/bin/env bash
# t0001-backends.sh WATCH_TEST BACKEND - every way a manifest directory
# changes under `bottled watch` produces a hint from BACKEND within
# DEADLINE seconds (a correctness deadline, not a performance target), and
# the backend never writes into the watched directory.
#
# Three watchers run (tests/watch/watch_test.c):
#   W  a plain directory: new file, in-place write, editor saves, a partial
#      write, subdirectories (created, moved in), an injected overflow;
#   L  git-sync's layout, bottles -> .worktrees/a, swapped to .worktrees/b;
#   D  a plain directory moved away and re-created, then deleted.
# L and D run with -r: a root-gone batch makes watch_test re-open.
. "$(dirname "$0")/../cli/lib.sh"
WATCH_TEST=$BOTTLED
BACKEND=${2:?usage: $0 WATCH_TEST BACKEND}
DEADLINE=2

# The fswatch backend's probe directory goes to $TMPDIR; keep it apart from
# the watched trees so the test can see it appear and go.
export TMPDIR=$TMP/tmpdir
mkdir -p "$TMPDIR"

declare -A WPID LOG MARK

# start NAME DIR [watch_test flags...]: starts a watcher, waits for "ready".
start() {
    local name=$1 dir=$2
    shift 2
    LOG[$name]=$TMP/$name.log
    : >"${LOG[$name]}"
    "$WATCH_TEST" -b "$BACKEND" "$@" "$dir" >"${LOG[$name]}" 2>"$TMP/$name.err" &
    WPID[$name]=$!
    MARK[$name]=0
    for _ in $(seq 500); do
        grep -q '^ready ' "${LOG[$name]}" && break
        sleep 0.01
    done
    if grep -q "^ready $BACKEND " "${LOG[$name]}"; then ok "$name: $BACKEND opened on $dir"; else
        not_ok "$name: $BACKEND did not open on $dir" "$(cat "${LOG[$name]}" "$TMP/$name.err")"
    fi
}

# stop NAME: SIGTERM, wait; exit status 0 and nothing on stderr expected,
# except what libfswatch itself prints with perror() when it closes watches
# the kernel already dropped (the watched directory was deleted).
stop() {
    local name=$1 rc=0 errs
    kill -TERM "${WPID[$name]}" 2>/dev/null || true
    wait "${WPID[$name]}" || rc=$?
    errs=$(grep -v '^inotify_rm_watch: Invalid argument$' "$TMP/$name.err" || true)
    if [ "$rc" = 0 ] && [ -z "$errs" ]; then ok "$name: watcher exits cleanly"; else
        not_ok "$name: watcher exit $rc" "$errs"
    fi
}

ms() { date +%s%3N; }

# settle NAME: lets earlier events arrive, then marks the log: awaits only
# look at lines after the mark.
settle() {
    sleep 0.3
    MARK[$1]=$(wc -l <"${LOG[$1]}")
    T0=$(ms)
}

# await NAME ERE WHAT: a line after the mark matches ERE within DEADLINE s
# of the mark.  A miss is recorded (not_ok) and the script goes on.
await() {
    local name=$1 re=$2 what=$3 now
    while :; do
        now=$(ms)
        if tail -n +$((MARK[$name] + 1)) "${LOG[$name]}" | grep -Eq -- "$re"; then
            ok "$name: $what ($((now - T0)) ms)"
            return 0
        fi
        if [ $((now - T0)) -gt $((DEADLINE * 1000)) ]; then
            not_ok "$name: $what: no line matching /$re/ within ${DEADLINE}s" \
                "$(tail -n +$((MARK[$name] + 1)) "${LOG[$name]}")" "stderr: $(cat "$TMP/$name.err")"
            return 0
        fi
        sleep 0.02
    done
}

# A batch naming PATH among its paths.
path_re() { printf '^[0-9.]+ [a-z,-]+( .*)? %s( |$)' "$(printf '%s' "$1" | sed 's/[.[\*^$]/\\&/g')"; }
changed_re='^[0-9.]+ ([a-z-]+,)*changed'

# listing DIR: every entry with type, size and mtime, to prove nothing was written.
listing() { (cd "$1" && find . -printf '%p %y %s %T@\n' | sort); }

# ------------------------------------------------------------------ W
W=$TMP/w
mkdir -p "$W/skills/s1"
echo "# x" >"$W/x.md"
before=$(listing "$W")
start W "$W"
expect_eq "$(listing "$W")" "$before" "W: opening writes nothing into the directory"
if [ "$BACKEND" = fswatch ]; then
    expect_eq "$(find "$TMPDIR" -mindepth 1 -maxdepth 1 -name 'bottled-watch-*' | wc -l)" 1 \
        "W: fswatch keeps one probe directory under \$TMPDIR"
fi

settle W
echo "# new" >"$W/new.md"
await W "$(path_re new.md)" "a new file"

settle W
echo "more" >>"$W/new.md"
await W "$(path_re new.md)" "an in-place write"

settle W
: >"$W/empty.md"
await W "$(path_re empty.md)" "an empty file created with no write"

# vim 9 with writebackup and backupcopy=auto (its defaults), as traced:
# 4913 probe created and deleted, x.md renamed to x.md~, a new x.md written,
# x.md~ deleted.
settle W
(
    cd "$W"
    : >4913 && rm 4913
    mv x.md x.md~
    printf '# x\nsaved\n' >x.md
    rm x.md~
)
await W "$(path_re x.md)" "vim-style save (rename to x.md~, new x.md)"

if command -v vim >/dev/null; then
    # The real thing; backupskip's default skips /tmp, where this test runs.
    settle W
    vim -u NONE -N -n -es -c 'set bsk= wb bkc=auto' -c 'normal Govim' -c 'wq' "$W/x.md" </dev/null
    await W "$(path_re x.md)" "a real vim save"
fi

# Editors that write a temporary file and rename it over the target.
settle W
printf '# x\natomic\n' >"$W/.x.md.tmp" && mv "$W/.x.md.tmp" "$W/x.md"
await W "$(path_re x.md)" "a save by rename over the file"

# A partial write: the hint for the first half may come early, but at least
# one must follow the final write.
exec 3>"$W/partial.md"
printf '# part' >&3
settle W
printf 'ial\n' >&3
exec 3>&-
await W "$(path_re partial.md)" "a partial write: a hint after the final write"

settle W
chmod 600 "$W/new.md"
await W "$(path_re new.md)" "a mode change"

settle W
rm "$W/empty.md"
await W "$(path_re empty.md)" "a deleted file"

settle W
mkdir -p "$W/team/a/b"
echo "# deep" >"$W/team/a/b/deep.md"
await W "$changed_re" "a file created at once in new nested subdirectories"
settle W
echo "# later" >"$W/team/a/b/later.md"
await W "$(path_re team/a/b/later.md)" "a later file in the new nested subdirectory"

settle W
mkdir -p "$TMP/outside/moved/in"
mv "$TMP/outside/moved" "$W/moved"
await W "$(path_re moved)" "a directory moved into the tree"
settle W
echo "# m" >"$W/moved/in/m.md"
await W "$(path_re moved/in/m.md)" "a file in the directory moved in (its subdirectory is watched)"

settle W
mv "$W/moved" "$W/moved2"
await W "$(path_re moved2)" "a directory renamed inside the tree"
settle W
echo "# m2" >"$W/moved2/in/m2.md"
await W "$(path_re moved2/in/m2.md)" "a file below the renamed directory"

settle W
echo "# skill" >"$W/skills/s1/SKILL.md"
await W "$(path_re skills/s1/SKILL.md)" "a skill file"

settle W
mkdir "$W/.git" "$W/.git/objects"
sleep 0.2
settle W
echo x >"$W/.git/objects/o"
sleep 0.5
if tail -n +$((MARK[W] + 1)) "${LOG[W]}" | grep -q 'objects/o'; then
    not_ok "W: .git/ below the root is not watched" "$(tail -n +$((MARK[W] + 1)) "${LOG[W]}")"
else ok "W: .git/ below the root is not watched"; fi

settle W
kill -USR1 "${WPID[W]}"
await W '^[0-9.]+ ([a-z-]+,)*overflow' "an injected overflow is reported"
settle W
echo "# after" >"$W/after-overflow.md"
await W "$(path_re after-overflow.md)" "the backend keeps running after an overflow"
settle W
mkdir "$W/post"
sleep 0.3
settle W
echo "# p" >"$W/post/p.md"
await W "$(path_re post/p.md)" "new directories are still watched after an overflow"

# A real overflow loses events: an injected one drops what is queued when
# it is handled.  Stopped, the watcher queues the creation of a directory;
# the overflow then drops that event, so only re-synchronising the watches
# can find the directory.
settle W
kill -STOP "${WPID[W]}"
mkdir -p "$W/lost/deep"
kill -USR1 "${WPID[W]}"
kill -CONT "${WPID[W]}"
await W '^[0-9.]+ ([a-z-]+,)*overflow' "an overflow that dropped queued events"
settle W
echo "# f" >"$W/lost/deep/f.md"
await W "$(path_re lost/deep/f.md)" "a directory whose events were lost is watched after the overflow"

before=$(listing "$W")
kill -USR1 "${WPID[W]}"
sleep 0.5
stop W
expect_eq "$(listing "$W")" "$before" "W: overflow handling and close write nothing into the directory"
expect_eq "$(find "$TMPDIR" -mindepth 1 | wc -l)" 0 "W: nothing left under \$TMPDIR after close"
expect_not_in "${LOG[W]}" "failed" "W: no batch reported a failure"

# ------------------------------------------------------------------ B
# Armed means armed: a change made right after open returns is reported,
# even deep in a tree that takes the backend a while to walk.
BIG=$TMP/big
for i in $(seq 40); do for j in $(seq 50); do echo "$BIG/d$i/e$j"; done; done | xargs mkdir -p
T0=$(ms)
start B "$BIG" -w "$BIG/d40/e50/z.md"
await B "$(path_re d40/e50/z.md)" "a change the moment open returns, in a tree of 2000 directories"
stop B

# ------------------------------------------------------------------ L
# git-sync: bottles -> .worktrees/a, replaced by `ln -s` + `mv -T`.
P=$TMP/sync
mkdir -p "$P/.worktrees/a/team" "$P/.worktrees/b/team"
echo "# a" >"$P/.worktrees/a/team/a.md"
echo "# b" >"$P/.worktrees/b/team/b.md"
ln -s .worktrees/a "$P/bottles"
start L "$P/bottles" -r
expect_in "${LOG[L]}" "ready $BACKEND $P/.worktrees/a" "L: the link is resolved when arming"

settle L
echo "# a2" >"$P/bottles/team/a2.md"
await L "$(path_re team/a2.md)" "a change through the link"

settle L
ln -s .worktrees/b "$P/tmp-link" && mv -T "$P/tmp-link" "$P/bottles"
await L "$changed_re" "git-sync symlink swap: a hint"
await L '^[0-9.]+ ([a-z-]+,)*root-gone' "git-sync symlink swap: root-gone"
await L "^reopened $BACKEND $P/.worktrees/b\$" "re-opened on the new target"
settle L
echo "# b2" >"$P/.worktrees/b/team/b2.md"
await L "$(path_re team/b2.md)" "a change in the new target after the swap"

settle L
rm -rf "$P/.worktrees/a" # git-sync removes the old worktree
sleep 0.5
if tail -n +$((MARK[L] + 1)) "${LOG[L]}" | grep -q 'root-gone'; then
    not_ok "L: removing the old worktree is not root-gone for the new one" \
        "$(tail -n +$((MARK[L] + 1)) "${LOG[L]}")"
else ok "L: removing the old worktree is not root-gone for the new one"; fi
stop L

# ------------------------------------------------------------------ D
D=$TMP/d
mkdir -p "$D/sub"
start D "$D" -r
settle D
mv "$D" "$TMP/d.old"
await D '^[0-9.]+ ([a-z-]+,)*root-gone' "the directory moved away: root-gone"
sleep 0.3
mkdir -p "$D"
await D "^reopened $BACKEND $D\$" "re-opened once a new directory is in its place"
settle D
echo "# n" >"$D/n.md"
await D "$(path_re n.md)" "a change in the new directory"
settle D
echo "# old" >"$TMP/d.old/sub/old.md"
sleep 0.3
if tail -n +$((MARK[D] + 1)) "${LOG[D]}" | grep -q 'old.md'; then
    not_ok "D: the moved-away directory is no longer watched" "$(tail -n +$((MARK[D] + 1)) "${LOG[D]}")"
else ok "D: the moved-away directory is no longer watched"; fi

settle D
mkdir "$TMP/d.new" && echo "# r" >"$TMP/d.new/r.md"
rm -rf "$D" && mv "$TMP/d.new" "$D"
await D '^[0-9.]+ ([a-z-]+,)*root-gone' "the directory replaced: root-gone"
await D "^reopened $BACKEND $D\$" "re-opened on the replacement"
settle D
echo "# r2" >"$D/r2.md"
await D "$(path_re r2.md)" "a change in the replacement"
stop D

# WATCH_LOG_DIR=DIR keeps the watchers' output for a look at what each
# backend reports.
if [ -n "${WATCH_LOG_DIR:-}" ]; then
    mkdir -p "$WATCH_LOG_DIR"
    for n in W B L D; do cp "${LOG[$n]}" "$WATCH_LOG_DIR/$BACKEND-$n.log"; done
fi
finish
