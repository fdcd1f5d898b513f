#!/bin/sh
# Branches: mneme fork (state equality, the parent untouched, overrides and
# their refusals), mneme compare and runs, mneme replay, and a full disk
# while checkpointing.
. "$MNEME_SRCDIR/tests/lib.sh"
CFG="$MNEME_SRCDIR/tests/data/tiny.cfg"
SETS="--set base.pretrain.epochs=2 --set finetune.epochs=3 --set checkpoint.every=20 --set checkpoint.keep=10"
strip() { jq -c 'del(.elapsed_s, .branch)' "$1/metrics.jsonl"; }
# the parent's files, branches and replays aside, with their checksums
fingerprint() { (cd "$1" && find . -path ./branches -prune -o -path ./replays -prune -o -type f -print |
                 LC_ALL=C sort | xargs sha256sum); }
R="$TMP/run"

"$MNEME" run --headless "$CFG" $SETS --out "$R" --quiet >/dev/null 2>&1
ok $? "a run to fork from"
fingerprint "$R" >"$TMP/before"

"$MNEME" fork "$R" --at 40 --name same --quiet >"$TMP/out" 2>&1
ok $? "mneme fork --at 40 with no overrides ($(head -1 "$TMP/out"))"
B="$R/branches/same"
strip "$R" >"$TMP/m.main"
strip "$B" >"$TMP/m.same"
cmp -s "$TMP/m.main" "$TMP/m.same"
ok $? "a fork with no overrides continues exactly like its parent ($(wc -l <"$TMP/m.same") evaluations)"
jq -se 'map(select(.phase == "finetune" and .step > 40)) | all(.branch == "same")' "$B/metrics.jsonl" >/dev/null &&
jq -se 'map(select(.step <= 40)) | all(.branch == "main")' "$B/metrics.jsonl" >/dev/null
ok $? "its metrics name the branch after the fork, the parent before"
[ "$(json "$B/branch.json" '.parent + " " + (.step|tostring) + " " + .checkpoint')" = "main 40 step-40.safetensors" ]
ok $? "branch.json: parent, step and checkpoint"

"$MNEME" fork "$R" --at 40 --name slower --set finetune.lr=3e-4 --set ewc.lambda=1e5 --quiet >/dev/null 2>&1
ok $? "a fork with a lower rate and EWC turned on"
S="$R/branches/slower"
[ "$(json "$S/experiment.cfg" . 2>/dev/null)" = "" ] && grep -q 'lr = 0.0003' "$S/experiment.cfg"
ok $? "its experiment.cfg has the new rate"
jq -se 'map(select(.command == "branch")) | length == 1 and .[0].step == 40 and
        .[0].overrides == ["finetune.lr=3e-4", "finetune.ewc.lambda=1e5"]' "$S/events.jsonl" >/dev/null
ok $? "events.jsonl records the fork with its overrides at step 40"
[ -f "$S/checkpoints/fisher.safetensors" ] && [ ! -f "$R/checkpoints/fisher.safetensors" ]
ok $? "EWC on in the branch: its Fisher is computed there, not in the parent"
jq -se 'map(select(.step > 40 and .phase == "finetune")) | all(.ewc_lambda == 100000)' "$S/metrics.jsonl" >/dev/null
ok $? "and applies from the fork on"
head -n "$(jq -s 'map(select(.phase == "base" or .step <= 40)) | length' "$R/metrics.jsonl")" "$TMP/m.main" >"$TMP/a"
strip "$S" | head -n "$(wc -l <"$TMP/a")" >"$TMP/b"
cmp -s "$TMP/a" "$TMP/b" && ! cmp -s "$TMP/m.main" "$(strip "$S" >"$TMP/c"; echo "$TMP/c")"
ok $? "identical to the parent up to step 40, different after"

fingerprint "$R" >"$TMP/after"
cmp -s "$TMP/before" "$TMP/after"
ok $? "the parent is untouched by the forks ($(wc -l <"$TMP/after") files compared)"

for bad in "model.hidden=64:cannot change in a fork" "seed=3:cannot change in a fork" \
           "finetune.lr=zero:expected a number" "finetune.lr=50:expected 0..10" \
           "no.such.key=1:no such key" "finetune.lr:expected KEY=VALUE"; do
    set -- "${bad%%:*}" "${bad#*:}"
    "$MNEME" fork "$R" --at 40 --name bad --set "$1" >/dev/null 2>"$TMP/err"
    st=$?
    [ $st = 2 ] && grep -qF "$2" "$TMP/err" && [ ! -e "$R/branches/bad" ]
    ok $? "fork --set $1: exit 2, '$2', nothing left behind ($(head -1 "$TMP/err"))"
done
"$MNEME" fork "$R" --at 41 --name bad >/dev/null 2>"$TMP/err"
[ $? = 2 ] && grep -q "no checkpoint at fine-tuning step 41; it has: 0, 20, 40 (final.safetensors, at step [0-9]*, ends the run and can't be forked" "$TMP/err"
ok $? "a step with no checkpoint: the steps there are, and why the final one is not ($(head -1 "$TMP/err"))"
"$MNEME" fork "$R" --name newest --create-only >"$TMP/out" 2>"$TMP/err"
[ $? = 0 ] && grep -q "at step 40:" "$TMP/out" &&
    grep -q "the newest checkpoint a branch can start from is step 40; final.safetensors, at step [0-9]*, ends the run" "$TMP/err"
ok $? "fork without --at starts from the newest fork point and says the final checkpoint is none ($(head -1 "$TMP/err"))"
rm -rf "$R/branches/newest"
"$MNEME" fork "$R" --at 40 --name same >/dev/null 2>"$TMP/err"
[ $? = 2 ] && grep -q "already exists" "$TMP/err"
ok $? "a name taken: refused"
"$MNEME" fork "$R" --at 40 --name "../x" >/dev/null 2>"$TMP/err"
[ $? = 2 ] && grep -q "letters, digits" "$TMP/err"
ok $? "a name that is not a plain word: refused"

"$MNEME" fork "$B" --at 40 --name grandchild --set finetune.lr=1e-3 --create-only >/dev/null 2>&1
G="$R/branches/grandchild"
[ -d "$G" ] && [ "$(json "$G/branch.json" .parent)" = same ] && [ ! -f "$G/summary.json" ] ||
    [ "$(json "$G/summary.json" .status)" = running ]
ok $? "a branch of a branch lives beside it, under the root run, and --create-only does not run it"
"$MNEME" run --resume "$G" --quiet >/dev/null 2>&1 && [ "$(json "$G/summary.json" .status)" = finished ]
ok $? "and it continues with mneme run --resume"

"$MNEME" compare "$R" >"$TMP/cmp" 2>&1
ok $? "mneme compare"
grep -q "^  main " "$TMP/cmp" && grep -q " same  *main  *40 finished" "$TMP/cmp" &&
    grep -q " slower  *main  *40 " "$TMP/cmp" && grep -q " grandchild  *same  *40 " "$TMP/cmp"
ok $? "lists the run and each branch with its parent and fork step"
[ "$(grep -c '^\* ' "$TMP/cmp")" = 2 ]   # the best row and the footnote
ok $? "and marks one best trade-off"
"$MNEME" runs "$TMP" >"$TMP/runs" 2>&1 && grep -q "^  + slower @40" "$TMP/runs" && grep -q "^  + same @40" "$TMP/runs"
ok $? "mneme runs lists the branches under their run"

"$MNEME" replay "$R" --out "$TMP/rp" --quiet >"$TMP/out" 2>&1
ok $? "mneme replay of the run: $(tail -1 "$TMP/out")"
cmp -s "$TMP/m.main" "$(strip "$TMP/rp" >"$TMP/d"; echo "$TMP/d")"
ok $? "its metrics equal the run's"
"$MNEME" replay "$R" --branch slower --out "$TMP/rps" --quiet >"$TMP/out" 2>&1
ok $? "mneme replay --branch slower: $(tail -1 "$TMP/out")"
strip "$S" >"$TMP/e"
strip "$TMP/rps" >"$TMP/f"
cmp -s "$TMP/e" "$TMP/f"
ok $? "reproduces the branch's metrics, fork included"
"$MNEME" replay "$R" --branch nonesuch >/dev/null 2>"$TMP/err"
[ $? = 2 ] && grep -q "nonesuch" "$TMP/err"
ok $? "replay of a branch that does not exist: exit 2"
# A changed run no longer replays to the same numbers: the check can fail.
{ head -n -1 "$R/metrics.jsonl"; tail -n 1 "$R/metrics.jsonl" | jq -c '.original.acc += 0.125'; } >"$TMP/x" &&
    mkdir -p "$TMP/tampered" &&
    cp -r "$R/experiment.cfg" "$R/events.jsonl" "$R/checkpoints" "$TMP/tampered/" &&
    cp "$TMP/x" "$TMP/tampered/metrics.jsonl"
"$MNEME" replay "$TMP/tampered" --out "$TMP/rpt" --quiet >"$TMP/out" 2>&1
[ $? = 1 ] && grep -q "differs" "$TMP/out"
ok $? "a run whose metrics were altered does not replay as identical"

# run:fork from a policy: the branch is made at that step, from there
cat >"$TMP/forker.lua" <<'LUA'
local P = { name = "forker" }
function P.on_eval(run, m)
  if run.step == 40 then run:fork("cooler", { ["finetune.lr"] = 1e-4 }) end
  if run.step == 40 then run:fork("broken", { ["model.hidden"] = 8 }) end
end
return P
LUA
"$MNEME" run --headless "$CFG" $SETS --set finetune.policy="$TMP/forker.lua" --out "$TMP/pf" >"$TMP/out" 2>&1
ok $? "a run whose policy forks at step 40 finishes"
P="$TMP/pf/branches/cooler"
[ "$(json "$P/branch.json" '.step')" = 40 ] && grep -q '"finetune.lr=0.0001"' "$P/branch.json" &&
    jq -se 'map(select(.command == "branch" and .source == "policy")) | length == 1' "$P/events.jsonl" >/dev/null
ok $? "its branch holds the policy's override, made at step 40"
grep -q "^\[cooler\] finetune step" "$TMP/out" && grep -q "^\[main\] finetune step" "$TMP/out"
ok $? "headless too, the branch runs beside its parent, each line naming its branch"
jq -se 'map(select(.action == "fork" and .refused != null and (.refused | test("model.hidden cannot change")))) | length == 1' \
    "$TMP/pf/events.jsonl" >/dev/null && [ ! -e "$TMP/pf/branches/broken" ]
ok $? "a fork the run refuses is recorded with the reason, and leaves nothing"
[ "$(json "$P/summary.json" .status)" = finished ] && [ "$(json "$TMP/pf/summary.json" .status)" = finished ]
ok $? "and both run to the end before the process exits"

# A full disk while checkpointing: the run pauses (headless: exits 1) with
# the reason, the previous checkpoint stays intact, and --resume goes on.
D="$TMP/disk"
"$MNEME" run --headless "$CFG" $SETS --out "$D" --quiet --stop-after 95 >/dev/null 2>&1
ok $? "a run stopped at step 95: fine-tuning step 19"
sha256sum "$D"/checkpoints/*.safetensors >"$TMP/ck.before"
MNEME_FAULT_WRITE_AFTER=4096 "$MNEME" run --resume "$D" --quiet >/dev/null 2>"$TMP/err"
st=$?
[ $st = 1 ] && grep -q "checkpoint failed (the previous one is intact)" "$TMP/err" &&
    grep -q "No space left on device" "$TMP/err"
ok $? "the disk fills at the next checkpoint: exit 1 with the reason ($(grep -m1 'checkpoint failed' "$TMP/err"))"
sha256sum -c --quiet "$TMP/ck.before" >/dev/null 2>&1 && ! ls "$D/checkpoints" | grep -q '\.tmp\.'
ok $? "every earlier checkpoint is intact and no temporary file is left"
"$MNEME" run --resume "$D" --quiet >/dev/null 2>&1 && [ "$(json "$D/summary.json" .status)" = finished ]
ok $? "with space again, --resume finishes the run"
"$MNEME" run --headless "$CFG" $SETS --out "$TMP/whole" --quiet >/dev/null 2>&1
[ "$(jq -c 'del(.elapsed_s)' "$D/metrics.jsonl" | md5sum)" = "$(jq -c 'del(.elapsed_s)' "$TMP/whole/metrics.jsonl" | md5sum)" ]
ok $? "and its metrics equal an uninterrupted run's (no duplicate or missing line)"

done_testing
