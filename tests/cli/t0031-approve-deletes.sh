#!/usr/bin/env bash
# approve-deletes NAME...: a one-shot approval a pass takes (state_approval_take,
# through state_fixture), unknown names refused with nothing recorded, works
# while another process holds the lock, usage and state dir errors.
. "$(dirname "$0")/lib.sh"
FIX=${STATE_FIXTURE:?STATE_FIXTURE must name the state_fixture binary}
ST="$TMP/state"
HOLD=
trap '[ -z "$HOLD" ] || kill "$HOLD" 2>/dev/null; rm -rf "$TMP"' EXIT

approve() { run "$BOTTLED" approve-deletes --state-dir "$ST" "$@"; }
fixture() { # CMD...: writes the state; a failure is a failed check
    if ! "$FIX" "$ST" "$@" >"$TMP/fix.out" 2>"$TMP/fix.err"; then
        not_ok "state_fixture $*" "$(cat "$TMP/fix.err")"
    fi
}
take() { # NAME: what a pass would get from state_approval_take (1 or 0)
    fixture take "$1"
    cat "$TMP/fix.out"
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

# ---- usage, no state --------------------------------------------------------
approve
expect_rc 2 "no NAME is a usage error"
expect_in "$TMP/err" "expected at least one bottle NAME" "says a NAME is needed"
approve old
expect_rc 2 "no state dir"
expect_in "$TMP/err" "no state in $ST: nothing reconciled yet" "says there is no state"
if [ -e "$ST" ]; then not_ok "approve-deletes created the state dir"; else ok "creates no state dir"; fi
run "$BOTTLED" approve-deletes --frobnicate old
expect_rc 2 "unknown flag"

# ---- approvals ----------------------------------------------------------------
fixture bottle name=old phase=Stalled "reason=deletion refused: more than --max-deletes (10) bottles" -- \
    bottle name=gone phase=Stalled -- bottle name=tools phase=Ready

approve old
expect_rc 0 "approve a Stalled bottle"
expect_eq "$(cat "$TMP/out")" "approved deletion of old (one-shot: the next pass may delete it)" \
    "says what was approved"
expect_eq "$(cat "$TMP/err")" "" "no note for a Stalled bottle"
expect_eq "$(take old)" 1 "a pass takes the approval"
expect_eq "$(take old)" 0 "one-shot: a second take finds none"

approve nope
expect_rc 1 "an unknown NAME is refused"
expect_in "$TMP/err" "no bottle 'nope' in the state of $ST: nothing approved for it" \
    "the unknown NAME is named"
expect_eq "$(cat "$TMP/out")" "" "nothing approved"
expect_eq "$(take nope)" 0 "nothing recorded for an unknown NAME"

approve old nope gone old
expect_rc 1 "known and unknown NAMEs"
expect_in "$TMP/out" "approved deletion of old" "the known one is approved"
expect_in "$TMP/out" "approved deletion of gone" "the other known one is approved"
expect_eq "$(grep -c 'approved deletion of old' "$TMP/out")" 1 "a repeated NAME is approved once"
expect_eq "$(take old)$(take gone)$(take nope)" 110 "the known ones were recorded, the unknown not"

approve tools
expect_rc 0 "approve a bottle that is not Stalled"
expect_in "$TMP/err" "note: 'tools' is Ready, not Stalled" "notes that nothing of it is refused now"
expect_eq "$(take tools)" 1 "it is approved all the same"
approve -q tools
expect_rc 0 "approve -q"
expect_eq "$(cat "$TMP/out" "$TMP/err")" "" "-q prints nothing when all went well"
expect_eq "$(take tools)" 1 "approved with -q"

approve --json gone nope
expect_rc 1 "--json with an unknown NAME"
expect_eq "$(json '(j["approved"], j["unknown"])')" "(['gone'], ['nope'])" "--json lists both"
expect_eq "$(take gone)" 1 "--json approved it"

# ---- while another process holds the lock ---------------------------------------
hold
approve old
expect_rc 0 "approve while another process holds the lock"
release
expect_eq "$(take old)" 1 "the approval made while locked is there"

# A write transaction held past the busy timeout (5 s) is exit 3.
hold tx=1
approve old
expect_rc 3 "approve while another process holds a write transaction"
expect_in "$TMP/err" "stayed busy" "says the database was busy"
release
expect_eq "$(take old)" 0 "nothing recorded when the database stayed busy"

# ---- bottled's own configuration, the database ------------------------------------
chmod 755 "$ST"
approve old
expect_rc 2 "a state dir with mode 0755"
expect_in "$TMP/err" "mode 0755" "the mode is named"
chmod 700 "$ST"
rm -f "$ST/state.db" "$ST/state.db-wal" "$ST/state.db-shm"
approve old
expect_rc 2 "a state dir without a database"
expect_in "$TMP/err" "nothing reconciled yet" "no database is no state"
fixture bottle name=old phase=Stalled -- schema 99
approve old
expect_rc 3 "a database newer than the binary"
expect_in "$TMP/err" "schema version 99" "the version is named"

finish
