#!/bin/sh
# A policy's forks: beyond the open-branch limit a fork is refused, the
# policy is told (run:fork returns nil and why), every frontend shows it
# and events.jsonl records it; a policy may not name a file for its
# branch (finetune.policy, policy.path), so no file's text reaches the log.
. "$MNEME_SRCDIR/tests/lib.sh"
CFG="$MNEME_SRCDIR/tests/data/tiny.cfg"
SETS="--set base.pretrain.epochs=2 --set finetune.epochs=2 --set checkpoint.every=20"

cat >"$TMP/forky.lua" <<'LUA'
-- twelve forks an evaluation: a call may take at most 16 actions
local P = { name = "forky", params = { root = true } }
local next_i = 1
function P.on_eval(run, m)
  if not P.params.root or run.step < 10 or next_i > 25 then return end
  local last = math.min(next_i + 11, 25)
  for i = next_i, last do
    local ok, err = run:fork("b" .. i, { ["finetune.lr"] = 1e-5 * i, ["policy.root"] = false })
    if err then run:log("told: " .. err) elseif ok ~= true then error("run:fork returned " .. tostring(ok)) end
  end
  next_i = last + 1
end
return P
LUA
"$MNEME" run --headless "$CFG" $SETS --set eval.every=10 --set finetune.policy="$TMP/forky.lua" --out "$TMP/r12" >"$TMP/out" 2>&1
ok $? "a run whose policy forks 25 branches at once finishes"
[ "$(ls "$TMP/r12/branches" | wc -l)" = 23 ] && [ ! -e "$TMP/r12/branches/b24" ]
ok $? "23 branches are made: with the run, the limit of 24 ($(ls "$TMP/r12/branches" | tr '\n' ' '))"
grep -q "policy forky: told: fork b24 refused: at most 24 branches can be open at once" "$TMP/out" &&
    grep -q "policy forky: told: fork b25 refused" "$TMP/out"
ok $? "the policy is told of each refusal (run:fork returns nil and why)"
grep -q "policy forky: fork b24 refused: at most 24 branches" "$TMP/out"
ok $? "headless output shows the refusal ($(grep -m1 'fork b24 refused' "$TMP/out"))"
jq -se 'map(select(.action == "fork" and .refused != null)) | map(.text) == ["b24", "b25"]' \
    "$TMP/r12/events.jsonl" >/dev/null
ok $? "events.jsonl records both refused forks with the reason"
n_run=0
for b in $(seq 1 23); do
    [ "$(json "$TMP/r12/branches/b$b/summary.json" .status)" = finished ] && n_run=$((n_run + 1))
done
ok $([ $n_run = 23 ]; echo $?) "every branch made runs to the end ($n_run of 23)"

# a branch whose setup forks while it is being made: it holds its own
# place, so every branch made still runs
cat >"$TMP/chain.lua" <<'LUA'
local P = { name = "chain", params = { kids = 0, root = true } }
function P.setup(run)
  for i = 1, P.params.kids do
    local ok, err = run:fork("k" .. i, { ["policy.kids"] = 0, ["policy.root"] = false })
    if err then run:log("told: " .. err) end
  end
end
local made = 0
function P.on_eval(run, m)
  if not P.params.root or run.step < 10 then return end
  if made < 19 then
    local last = math.min(made + 12, 19)
    for i = made + 1, last do run:fork("b" .. i, { ["policy.root"] = false }) end
    made = last
  elseif made == 19 then
    run:fork("parent", { ["policy.kids"] = 5, ["policy.root"] = false })
    made = 20
  end
end
return P
LUA
"$MNEME" run --headless "$CFG" $SETS --set eval.every=10 --set finetune.policy="$TMP/chain.lua" --out "$TMP/chain" >"$TMP/out" 2>&1
ok $? "a run whose branch forks from its setup finishes"
n_run=0
for b in "$TMP"/chain/branches/*; do
    [ "$(json "$b/summary.json" .status)" = finished ] && n_run=$((n_run + 1))
done
[ $n_run = 23 ] && grep -q "told: fork k4 refused: at most 24" "$TMP/out" && ! grep -q "does not run" "$TMP/out"
ok $? "the setup's forks beyond the limit are refused, and all 23 branches made run ($n_run)"

# a policy naming a file for its branch: refused before anything is read
printf 'return topsecret hunter2\n' >"$TMP/secret.txt"
mkdir -p "$TMP/mods"
cat >"$TMP/steal.lua" <<LUA
local P = { name = "steal" }
function P.on_eval(run, m)
  if run.step == 20 then
    run:fork("x1", { ["finetune.policy"] = "$TMP/secret.txt" })
    run:fork("x2", { policy = "$TMP/secret.txt" })
    run:fork("x3", { ["policy.path"] = "$TMP/mods" })
    run:fork("ok", { ["policy.watch"] = false })
  end
end
return P
LUA
"$MNEME" run --headless "$CFG" $SETS --set finetune.policy="$TMP/steal.lua" --out "$TMP/r13" >"$TMP/out" 2>&1
ok $? "a run whose policy forks with file overrides finishes"
! grep -rq "hunter2\|topsecret" "$TMP/out" "$TMP/r13"
ok $? "no word of the file reaches the output or the run folder"
jq -se 'map(select(.action == "fork" and .refused != null and (.refused | test("names a file")))) | map(.text) == ["x1", "x2", "x3"]' \
    "$TMP/r13/events.jsonl" >/dev/null
ok $? "finetune.policy, its short name and policy.path are refused and recorded"
grep -q "fork x1 refused: finetune.policy names a file" "$TMP/out" && [ ! -e "$TMP/r13/branches/x1" ] &&
    [ ! -e "$TMP/r13/branches/x3" ]
ok $? "the refusal is shown and leaves no branch behind"
[ "$(json "$TMP/r13/branches/ok/summary.json" .status)" = finished ]
ok $? "a fork with an ordinary override still runs"

# by hand, a branch may take another policy file
"$MNEME" fork "$TMP/r13" --at 20 --name byhand --set finetune.policy="$TMP/forky.lua" --create-only --quiet >/dev/null 2>&1
ok $? "a fork by hand may still name another policy file"
done_testing
