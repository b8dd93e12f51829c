#!/usr/bin/env bash
# t0301: deletions and their guards, `bottled gc`, secrets, against a real engine.
#   9. a missing secret fails only its bottle (the error names the secret,
#      not a value); no secret value in any container's inspect output,
#      bottled's output or the state database;
#   5. deleting a manifest removes that bottle and nothing else;
#  10. gc removes an orphan but creates and repairs nothing; gc --dry-run
#      changes nothing;
#   8. guards: a broken manifest blocks every deletion ("gc blocked by");
#      --max-deletes refuses without --force; an empty manifest dir refuses
#      without --allow-empty; BOTTLED_FORCE / BOTTLED_ALLOW_EMPTY in the
#      environment do not count; a foreign container holding a bottle's name
#      fails that bottle (untouched) while the others are still applied.
# Runs with --insecure-no-host-firewall (the firewall module is not merged).
. "$(dirname "$0")/harness.sh"
. "$(dirname "$0")/reconcile-lib.sh"

require_engine
require_images

M=$_TMP/manifests
mkdir -p "$M"
cp "$REPO/examples/claude.md" "$M/"
BETA_EXTRA='egress:
  routes:
    - host: beta.example.com
      auth: {scheme: Bearer, token_ref: BETA_TOKEN}'
bottle_md "$M" alpha
bottle_md "$M" beta "$BETA_EXTRA"
cp "$M/beta.md" "$_TMP/beta.md"
CLAUDE_VALUE=t0301-claude-secret-$RANDOM$RANDOM
BETA_VALUE=t0301-beta-secret-$RANDOM$RANDOM
SECRETS=$_TMP/secrets
write_secrets "$SECRETS" "CLAUDE_OAUTH_TOKEN@api.anthropic.com=$CLAUDE_VALUE"
STATE=$_TMP/state
INSTANCE=$(new_state "$STATE")
PREFIX=$(new_prefix t0301)
POOL=$(free_pool) || fatal "list the engine's networks"
[ -n "$POOL" ] || fatal "a free /24 in 10.213.0.0/16"
note "instance $INSTANCE, prefix $PREFIX, pool $POOL"

# status_of BOTTLE: its status in the JSON output
status_of() { json "$(jb "$1")[\"status\"]"; }
# without BOTTLE: the snapshot lines that are not that bottle's
without() { grep -v " $PREFIX-$1-" "$2" || true; }

# no_secret_anywhere WHEN: no secret value in any container's inspect output
# (every container of the instance), bottled's output so far, or the database
no_secret_anywhere() {
    local f ids id leaked=""
    f=$(urlenc "{\"label\":[\"io.bottled.instance=$INSTANCE\"]}")
    ids=$(api GET "/containers/json?all=true&filters=$f" | python3 -c 'import json,sys; [print(c["Id"]) for c in json.load(sys.stdin)]')
    : >"$_TMP/inspect-all"
    for id in $ids; do api GET "/containers/$id/json" >>"$_TMP/inspect-all"; done
    [ -n "$ids" ] && [ -s "$_TMP/inspect-all" ] || leaked="no container inspected "
    grep -qF -e "$CLAUDE_VALUE" -e "$BETA_VALUE" "$_TMP/inspect-all" && leaked="${leaked}inspect "
    grep -qF -e "$CLAUDE_VALUE" -e "$BETA_VALUE" "$ALL_OUTPUT" && leaked="${leaked}output "
    grep -qaF -e "$CLAUDE_VALUE" -e "$BETA_VALUE" "$STATE"/state.db* && leaked="${leaked}database "
    if [ -z "$leaked" ]; then
        pass "$1: no secret value in the inspect output of $(wc -w <<<"$ids") container(s), bottled's output or state.db*"
    else
        fail "$1: secret value found in: $leaked"
    fi
}

# ---- 9. a missing secret fails only its bottle -----------------------------------
bd reconcile --once --json
assert_rc 1 "a bottle with a missing secret makes reconcile exit 1"
assert_eq "changes failed" "$(status_of alpha) $(status_of beta)" "alpha is applied, beta failed"
BETA_ERR=$(json "$(jb beta)[\"error\"]")
case "$BETA_ERR" in
*BETA_TOKEN*) pass "beta's error names the missing secret: $BETA_ERR" ;;
*) fail "beta's error does not name BETA_TOKEN: $BETA_ERR" ;;
esac
assert_eq "$(six_names alpha)" "$(names_of "$INSTANCE" alpha)" "alpha's six resources exist"
assert_eq "" "$(names_of "$INSTANCE" beta)" "nothing of beta was created"
bd reconcile --once
assert_rc 1 "text output: still exit 1"
grep -q "BETA_TOKEN" "$OUT" && pass "the text output names the secret too" || fail "text output: $(said)"

write_secrets "$SECRETS" "CLAUDE_OAUTH_TOKEN@api.anthropic.com=$CLAUDE_VALUE" "BETA_TOKEN@beta.example.com=$BETA_VALUE"
bd reconcile --once
assert_rc 0 "with the secret added, reconcile creates beta and exits 0 (no --detailed-exitcode)"
assert_eq "$(six_names beta)" "$(names_of "$INSTANCE" beta)" "beta's six resources exist"
assert_eq "$(render_hash beta)" "$(sidecar_hash "$PREFIX-beta-proxy")" "beta's sidecar serves the config with the secret"
no_secret_anywhere "two bottles with secrets"

# A secret that disappears fails its bottle, whose running resources stay.
snapshot "$INSTANCE" >"$_TMP/before"
write_secrets "$SECRETS" "CLAUDE_OAUTH_TOKEN@api.anthropic.com=$CLAUDE_VALUE"
bd reconcile --once --json
assert_rc 1 "beta's secret removed from the store: exit 1"
assert_eq "up-to-date failed" "$(status_of alpha) $(status_of beta)" "beta fails, alpha is up to date"
case "$(json "$(jb beta)['error']")" in
*BETA_TOKEN*) pass "beta's error names the missing secret" ;;
*) fail "beta's error: $(json "$(jb beta)['error']")" ;;
esac
assert_eq "$(cat "$_TMP/before")" "$(snapshot "$INSTANCE")" "beta's running resources are kept (no orphan deletion of a failed bottle)"
write_secrets "$SECRETS" "CLAUDE_OAUTH_TOKEN@api.anthropic.com=$CLAUDE_VALUE" "BETA_TOKEN@beta.example.com=$BETA_VALUE"
bd reconcile --once --json --detailed-exitcode
assert_eq "0 0" "$RC $(json 'd["summary"]["engine_changes"]')" "the secret back: nothing to do (the sidecar kept its config)"

# ---- 5. deleting a manifest removes that bottle and nothing else ---------------
snapshot "$INSTANCE" >"$_TMP/before"
rm "$M/beta.md"
bd reconcile --once --json
assert_rc 0 "reconcile after beta.md is removed exits 0"
assert_eq "orphan" "$(status_of beta)" "beta is an orphan"
assert_eq "delete:agent:orphan delete:proxy:orphan delete:cfg:orphan delete:work:orphan delete:egr:orphan delete:int:orphan" \
    "$(actions_of beta)" "beta's resources are deleted in delete order, cause orphan"
snapshot "$INSTANCE" >"$_TMP/after"
assert_eq "" "$(names_of "$INSTANCE" beta)" "nothing of beta is left"
assert_eq "$(without beta "$_TMP/before")" "$(cat "$_TMP/after")" "alpha is untouched (same ids, volume markers)"
bd plan --detailed-exitcode
assert_rc 0 "plan is empty afterwards"

# ---- 10. gc removes orphans only; --dry-run changes nothing ------------------------
cp "$_TMP/beta.md" "$M/"
bd reconcile --once
assert_rc 0 "beta is created again"
rm "$M/beta.md"
ALPHA_AGENT=$(cid "$PREFIX-alpha-agent")
api DELETE "/containers/$ALPHA_AGENT?force=1" >/dev/null || fatal "remove alpha's agent by hand"
snapshot "$INSTANCE" >"$_TMP/before"
bd gc --dry-run --json
assert_rc 0 "gc --dry-run exits 0"
assert_eq "beta:orphan" "$(json '" ".join(b["name"] + ":" + b["status"] for b in d["bottles"])')" \
    "gc --dry-run shows only the orphan (not alpha's missing agent)"
snapshot "$INSTANCE" >"$_TMP/after"
cmp -s "$_TMP/before" "$_TMP/after" && pass "gc --dry-run changed nothing" ||
    fail "gc --dry-run changed: $(diff "$_TMP/before" "$_TMP/after" | head -c 600)"
bd gc --json
assert_rc 0 "gc exits 0"
assert_eq "beta:orphan:6" "$(json '" ".join(b["name"] + ":" + b["status"] + ":" + str(sum(a["ok"] for a in b["actions"])) for b in d["bottles"])')" \
    "gc worked on the orphan only, 6 deletions"
snapshot "$INSTANCE" >"$_TMP/after"
assert_eq "" "$(names_of "$INSTANCE" beta)" "gc removed beta"
assert_eq "$(without beta "$_TMP/before")" "$(cat "$_TMP/after")" \
    "gc left alpha as it was: its agent is still missing, nothing created or repaired"
bd reconcile --once --json
assert_eq "create:agent:missing" "$(actions_of alpha)" "the next reconcile recreates alpha's agent (cause missing)"

# ---- 8a. a broken manifest blocks every deletion -------------------------------------
cp "$_TMP/beta.md" "$M/"
bd reconcile --once
assert_rc 0 "beta is created again"
rm "$M/beta.md"
printf -- '---\nextends: [claude\nagent: {command: [sleep, infinity]}\n---\nbroken\n' >"$M/broken.md"
snapshot "$INSTANCE" >"$_TMP/before"
bd reconcile --once
assert_rc 1 "an orphan next to a broken manifest: reconcile exits 1"
grep -q "^gc blocked by .*/broken.md" "$OUT" && pass "the output says gc blocked by <path of broken.md>" ||
    fail "no 'gc blocked by': $(said)"
bd reconcile --once --json
assert_rc 1 "the same with --json"
assert_eq "refused True" "$(status_of beta) $(json '"broken.md" in " ".join(d["gc_blocked_by"])')" \
    "the orphan's deletion is refused, gc_blocked_by names broken.md"
bd gc
assert_rc 1 "gc is blocked too (exit 1)"
snapshot "$INSTANCE" >"$_TMP/after"
cmp -s "$_TMP/before" "$_TMP/after" && pass "the orphan was not deleted, nothing changed" ||
    fail "changed: $(diff "$_TMP/before" "$_TMP/after" | head -c 600)"
# A broken manifest blocks deletions only: another bottle's change is still applied.
bottle_md "$M" alpha 'env: {CHANGED: "yes"}'
bd reconcile --once --json
assert_rc 1 "a change next to a broken manifest: exit 1 (gc still blocked)"
assert_eq "recreate:agent:spec changed refused" "$(actions_of alpha) $(status_of beta)" \
    "alpha's env change is applied while the orphan's deletion stays refused"
# A bottle's own manifest broken: its running resources are kept as they are.
snapshot "$INSTANCE" >"$_TMP/before"
printf -- '---\nextends: [claude]\nagent: {command: [sleep, infinity]\nenv: {CHANGED: "no"}\n---\nbroken\n' >"$M/alpha.md"
bd reconcile --once --json
assert_rc 1 "alpha's own manifest broken: exit 1"
assert_eq "failed" "$(status_of alpha)" "alpha is failed, with nothing done"
case "$(json "$(jb alpha)['error']")" in
*alpha.md*) pass "alpha's error names its file: $(json "$(jb alpha)['error']")" ;;
*) fail "alpha's error: $(json "$(jb alpha)['error']")" ;;
esac
assert_eq "$(cat "$_TMP/before")" "$(snapshot "$INSTANCE")" "alpha's running resources (and the orphan's) are kept as they were"
rm "$M/broken.md"
bottle_md "$M" alpha 'env: {CHANGED: "yes"}'
bd reconcile --once --json --max-deletes 0
assert_eq "1 up-to-date refused" "$RC $(status_of alpha) $(status_of beta)" \
    "alpha's fixed manifest matches what runs (up to date); --max-deletes 0 refuses the orphan"

# ---- 8c. --max-deletes counts bottles; --force lifts it, BOTTLED_FORCE does not ----------
rm "$M/alpha.md"
bottle_md "$M" gamma
snapshot "$INSTANCE" >"$_TMP/before"
bd reconcile --once --json --max-deletes 1
assert_rc 1 "two orphans with --max-deletes 1: exit 1"
assert_eq "refused refused changes" "$(status_of alpha) $(status_of beta) $(status_of gamma)" \
    "both deletions refused, the declared bottle still applied"
case "$(json "$(jb alpha)['error']")" in
*--max-deletes*--force*) pass "the refusal names --max-deletes and --force" ;;
*) fail "refusal: $(json "$(jb alpha)['error']")" ;;
esac
assert_eq "$(six_names gamma)" "$(names_of "$INSTANCE" gamma)" "gamma was created"
snapshot "$INSTANCE" >"$_TMP/after"
assert_eq "$(cat "$_TMP/before")" "$(without gamma "$_TMP/after")" "alpha and beta untouched"
BOTTLED_FORCE=1 bd reconcile --once --max-deletes 1
assert_rc 1 "BOTTLED_FORCE=1 in the environment does not count: still exit 1"
BOTTLED_MAX_DELETES=5 bd reconcile --once --max-deletes 1
assert_rc 1 "(the typed --max-deletes 1 wins over BOTTLED_MAX_DELETES=5)"
bd gc --max-deletes 1
assert_rc 1 "gc refuses the same way"
snapshot "$INSTANCE" >"$_TMP/after2"
cmp -s "$_TMP/after" "$_TMP/after2" && pass "nothing deleted by the refused passes" ||
    fail "changed: $(diff "$_TMP/after" "$_TMP/after2" | head -c 600)"
bd reconcile --once --json --max-deletes 1 --force
assert_rc 0 "with --force both are deleted, exit 0"
assert_eq "orphan orphan" "$(status_of alpha) $(status_of beta)" "both orphans deleted"
assert_eq "" "$(names_of "$INSTANCE" alpha)$(names_of "$INSTANCE" beta)" "nothing of alpha and beta is left"
assert_eq "$(without alpha "$_TMP/after" | grep -v " $PREFIX-beta-")" "$(snapshot "$INSTANCE")" "gamma untouched"

# ---- 8b. an empty manifest dir: --allow-empty, not BOTTLED_ALLOW_EMPTY ------------------
rm -f "$M"/*.md
snapshot "$INSTANCE" >"$_TMP/before"
bd reconcile --once --json
assert_rc 1 "an empty manifest dir with an existing bottle: refused, exit 1"
case "$(json "$(jb gamma)['status'] + ' ' + $(jb gamma)['error']")" in
refused*--allow-empty*) pass "the refusal names --allow-empty" ;;
*) fail "refusal: $(said)" ;;
esac
BOTTLED_ALLOW_EMPTY=1 bd reconcile --once
assert_rc 1 "BOTTLED_ALLOW_EMPTY=1 in the environment does not count: still exit 1"
BOTTLED_ALLOW_EMPTY=1 BOTTLED_FORCE=1 bd gc
assert_rc 1 "gc refuses the same way"
assert_eq "$(cat "$_TMP/before")" "$(snapshot "$INSTANCE")" "gamma untouched by the refused passes"
bd reconcile --once --allow-empty
assert_rc 0 "with --allow-empty it is deleted, exit 0"
assert_eq "" "$(snapshot "$INSTANCE")" "nothing of the instance is left"

# ---- 8d. a foreign container holding a bottle's name --------------------------------
cp "$REPO/examples/claude.md" "$M/"
bottle_md "$M" delta
bottle_md "$M" epsilon
bottle_md "$M" zeta
bottle_md "$M" eta 'agent: {image: localhost/bottled-no-such-image:t0301, command: [sleep, infinity]}'
FOREIGN=$(api POST "/containers/create?name=$PREFIX-delta-agent" \
    "{\"Image\":\"$AGENT_IMAGE\",\"Cmd\":[\"sleep\",\"600\"],\"Labels\":{\"$RUN_LABEL\":\"$RUN_ID\"}}" | jget Id) ||
    fatal "create a foreign container named $PREFIX-delta-agent"
api POST "/containers/$FOREIGN/start" >/dev/null || fatal "start the foreign container"
fstate() { api GET "/containers/$FOREIGN/json" | python3 -c '
import json, sys
c = json.load(sys.stdin)
print(c["Id"], c["Name"].lstrip("/"), c["State"]["Status"], c["State"]["StartedAt"], sorted(c["Config"]["Labels"].items()),
      sorted(c["NetworkSettings"]["Networks"]))'; }
F_BEFORE=$(fstate)
bd reconcile --once --json
assert_rc 1 "a name held by a foreign container: reconcile exits 1"
assert_eq "conflict changes changes" "$(status_of delta) $(status_of epsilon) $(status_of zeta)" \
    "delta is a conflict, epsilon and zeta are applied"
case "$(json "$(jb delta)['error']")" in
*"$PREFIX-delta-agent"*"not managed by bottled"*) pass "the conflict names the container and why" ;;
*) fail "conflict error: $(json "$(jb delta)['error']")" ;;
esac
assert_eq "$F_BEFORE" "$(fstate)" "the foreign container is untouched (id, name, state, start time, labels, networks)"
assert_eq "" "$(names_of "$INSTANCE" delta)" "nothing of delta was created"
assert_eq "$(six_names epsilon)" "$(names_of "$INSTANCE" epsilon)" "epsilon was created"
assert_eq "$(six_names zeta)" "$(names_of "$INSTANCE" zeta)" "zeta was created in the same pass"
# epsilon and zeta, created concurrently: four distinct /28s of the pool
SUBNETS=$(for b in epsilon zeta; do for r in int egr; do
    api GET "/networks/$PREFIX-$b-$r" | python3 -c 'import json, sys; print(json.load(sys.stdin)["IPAM"]["Config"][0]["Subnet"])'
done; done | sort -u | wc -l)
assert_eq 4 "$SUBNETS" "the bottles created in one pass got four distinct /28s"
assert_eq "failed" "$(status_of eta)" "a bottle whose agent image is missing fails"
case "$(json "$(jb eta)['error']")" in
*bottled-no-such-image*"pull or build"*) pass "its error names the image and says to pull or build it" ;;
*) fail "missing image error: $(json "$(jb eta)['error']")" ;;
esac
assert_eq "" "$(names_of "$INSTANCE" eta)" "nothing of eta was created"
bd reconcile --once --json
assert_rc 1 "the next pass: still exit 1"
assert_eq "$F_BEFORE" "$(fstate)" "the foreign container is still untouched"

# ---- exit codes of bottled's own configuration and of an unreachable engine -------------
snapshot "$INSTANCE" >"$_TMP/before"
chmod 0644 "$SECRETS"
bd reconcile --once
assert_rc 2 "a secrets file readable by others: reconcile exits 2 (bottled's own configuration)"
bd reconcile --once --detailed-exitcode
assert_rc 1 "... 1 with --detailed-exitcode"
bd gc
assert_rc 2 "... gc exits 2 too"
chmod 0600 "$SECRETS"
bd reconcile --once --subnet-pool 10.213.0.0/30
assert_rc 2 "a --subnet-pool smaller than a /28: exit 2"
SOCK=$_TMP/no-such.sock bd reconcile --once
assert_rc 3 "an engine that does not answer: exit 3"
assert_eq "$(cat "$_TMP/before")" "$(snapshot "$INSTANCE")" "none of these touched anything"

no_secret_anywhere "at the end"
