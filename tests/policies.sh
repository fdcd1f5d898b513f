#!/bin/sh
# Lua policies driving real runs of the tiny pair: their changes land in
# the engine and in events.jsonl with their steps, a broken policy pauses
# the run with file:line and loses nothing, a fixed one resumes it, and a
# run with a policy resumes to exactly the metrics and events of an
# uninterrupted one.
. "$MNEME_SRCDIR/tests/lib.sh"
CFG="$MNEME_SRCDIR/tests/data/tiny.cfg"
POL="$MNEME_SRCDIR/lua/policies"
T2="--set model.layers=2 --set checkpoint.every=15"

# gradual unfreezing every 20 steps
sed 's/every = 200/every = 20/' "$POL/gradual_unfreeze.lua" >"$TMP/unfreeze.lua"
"$MNEME" run --headless "$CFG" $T2 --set finetune.policy="$TMP/unfreeze.lua" --out "$TMP/gu" --quiet >/dev/null 2>"$TMP/err"
ok $? "a run with gradual_unfreeze finishes ($(tail -1 "$TMP/err"))"
E="$TMP/gu/events.jsonl"
jq -se 'map(select(.source=="policy" and .set=="layer.0.frozen" and .step==0 and .to==1)) | length == 1' "$E" >/dev/null
ok $? "step 0: the policy freezes layer.0 (recorded in events.jsonl)"
jq -se 'map(select(.set=="layer.0.frozen" and .to==0)) | .[0].step == 20' "$E" >/dev/null
ok $? "step 20: it opens layer.0 ($(jq -c 'select(.set=="layer.0.frozen")' "$E" | tr '\n' ' '))"
jq -se 'map(select(.set=="embeddings.frozen" and .to==0)) | .[0].step == 40' "$E" >/dev/null
ok $? "step 40: it opens the embeddings"
jq -se 'all(.policy == "gradual_unfreeze")' "$E" >/dev/null
ok $? "every event names the policy"
[ -f "$TMP/gu/policy/0.lua" ] && cmp -s "$TMP/gu/policy/0.lua" "$TMP/unfreeze.lua"
ok $? "the policy source is saved as policy/0.lua"

# the same, stopped and resumed: identical metrics and events
"$MNEME" run --headless "$CFG" $T2 --set finetune.policy="$TMP/unfreeze.lua" --out "$TMP/gu2" --quiet --stop-after 100 >/dev/null 2>&1 &&
"$MNEME" run --resume "$TMP/gu2" --quiet >/dev/null 2>&1
ok $? "stopped in the middle of the finetune phase and resumed"
jq -c 'del(.elapsed_s)' "$TMP/gu/metrics.jsonl" >"$TMP/m1"
jq -c 'del(.elapsed_s)' "$TMP/gu2/metrics.jsonl" >"$TMP/m2"
cmp -s "$TMP/m1" "$TMP/m2"
ok $? "resumed with a policy: metrics equal the uninterrupted run's"
cmp -s "$TMP/gu/events.jsonl" "$TMP/gu2/events.jsonl"
ok $? "and events.jsonl too, without a duplicate line ($(wc -l <"$TMP/gu2/events.jsonl") events)"

# a runtime error pauses with file:line; a fix and a resume go on
cat >"$TMP/broken.lua" <<'LUA'
local P = { name = "broken", params = {} }
function P.on_step(run)
  if run.step == 30 then
    local x = nil
    return x.field
  end
end
return P
LUA
"$MNEME" run --headless "$CFG" --set finetune.policy="$TMP/broken.lua" --out "$TMP/br" --quiet >/dev/null 2>"$TMP/err"
st=$?
ok $([ $st = 1 ] && grep -q "broken.lua:5:" "$TMP/err" && grep -q "paused at finetune step 30" "$TMP/err"; echo $?) \
   "a runtime error pauses the run at its step with file:line, exit 1 ($(head -1 "$TMP/err"))"
sed -i 's/return x.field/return nil/' "$TMP/broken.lua"
"$MNEME" run --resume "$TMP/br" --quiet >/dev/null 2>"$TMP/err"
ok $? "after a fix, --resume goes on from the pause ($(tail -1 "$TMP/err"))"
ok $([ "$(jq -r .status "$TMP/br/summary.json")" = finished ]; echo $?) "and the run finishes"

# a syntax error is refused before anything trains
printf 'local P = { name = "x" \nreturn P\n' >"$TMP/syntax.lua"
"$MNEME" run --headless "$CFG" --set finetune.policy="$TMP/syntax.lua" --out "$TMP/sy" --quiet >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && grep -q "syntax.lua:" "$TMP/err"; echo $?) "a syntax error: exit 2 with file:line ($(head -1 "$TMP/err"))"

# the sandbox: io is not there, and the run pauses instead of dying
printf 'local P = { name = "escape" }\nfunction P.on_step(run) io.open("/etc/passwd") end\nreturn P\n' >"$TMP/escape.lua"
"$MNEME" run --headless "$CFG" --set finetune.policy="$TMP/escape.lua" --out "$TMP/es" --quiet >/dev/null 2>"$TMP/err"
ok $([ $? = 1 ] && grep -q "escape.lua:2:" "$TMP/err"; echo $?) "io.open is refused: paused with file:line ($(head -1 "$TMP/err"))"
ls "$TMP/es/checkpoints/" | grep -q "step-0.safetensors"
ok $? "and the paused run has a checkpoint to resume from"

# stop_at_crossover ends the run at the crossover, with the reason
"$MNEME" run --headless "$CFG" --set finetune.policy="$POL/stop_at_crossover.lua" --out "$TMP/sc" --quiet >/dev/null 2>&1
ok $? "stop_at_crossover runs"
cx=$(jq .crossover_step "$TMP/sc/summary.json")
ok $([ "$(jq -r .status "$TMP/sc/summary.json")" = stopped ] && [ "$(tail -1 "$TMP/sc/metrics.jsonl" | jq .step)" = "$cx" ]; echo $?) \
   "it stops at the crossover step ($cx) with status stopped ($(jq -r .stop_reason "$TMP/sc/summary.json"))"

# guard_original pauses (exit 0: asked for) after a tagged checkpoint
"$MNEME" run --headless "$CFG" --set finetune.policy="$POL/guard_original.lua" --out "$TMP/go" --quiet >/dev/null 2>"$TMP/err"
ok $([ $? = 0 ] && grep -q "paused at finetune" "$TMP/err"; echo $?) "guard_original pauses the run when sentiment falls ($(head -1 "$TMP/err"))"
ls "$TMP/go/checkpoints" | grep -q "^tag-guard"
ok $? "after checkpointing it ($(ls "$TMP/go/checkpoints" | grep tag- | head -1))"
jq -se 'map(select(.action=="pause")) | length == 1' "$TMP/go/events.jsonl" >/dev/null
ok $? "the pause is in events.jsonl"

# ewc_anneal moves lambda, recorded with its steps
"$MNEME" run --headless "$CFG" --set finetune.policy="$POL/ewc_anneal.lua" --set finetune.ewc.fisher_samples=64 --out "$TMP/ea" --quiet >/dev/null 2>&1
ok $? "ewc_anneal runs"
first=$(jq -s 'map(select(.phase=="finetune")) | .[1].ewc_lambda' "$TMP/ea/metrics.jsonl")
last=$(jq -s 'map(select(.phase=="finetune")) | .[-1].ewc_lambda' "$TMP/ea/metrics.jsonl")
ok $(awk -v a="$first" -v b="$last" 'BEGIN { exit !(a > b && a > 0) }'; echo $?) "lambda falls over the run ($first -> $last)"
done_testing
