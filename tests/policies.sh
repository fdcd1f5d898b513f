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
grep -v '"command":"restart"' "$TMP/gu2/events.jsonl" | cmp -s "$TMP/gu/events.jsonl" -
ok $? "and events.jsonl too, without a duplicate line ($(wc -l <"$TMP/gu2/events.jsonl") events)"
jq -se 'map(select(.command == "restart")) | length == 1 and .[0].step == 100 and .[0].source == "run"' \
    "$TMP/gu2/events.jsonl" >/dev/null
ok $? "the resume is recorded once, at the step it continued from"

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
ok $([ "$(jq -r .status "$TMP/sc/summary.json")" = finished ] && [ "$(jq -r .stop_reason "$TMP/sc/summary.json")" != null ] &&
     [ "$(tail -1 "$TMP/sc/metrics.jsonl" | jq .step)" = "$cx" ]; echo $?) \
   "it stops at the crossover step ($cx), finished with a stop_reason ($(jq -r .stop_reason "$TMP/sc/summary.json"))"

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
# the rate policies own run.lr: the metrics show their schedules
lr_at() { jq -s --argjson s "$2" 'map(select(.phase=="finetune" and .step==$s)) | .[0].lr' "$1/metrics.jsonl"; }
"$MNEME" run --headless "$CFG" --set finetune.policy="$POL/warmup_linear.lua" --set finetune.warmup_steps=40 \
    --out "$TMP/wl" --quiet >/dev/null 2>&1
# tiny: 114 finetune steps, peak 3e-3; the rate of the update at step s-1 is logged at step s
ok $(awk -v a="$(lr_at "$TMP/wl" 20)" 'BEGIN { exit !(a > 0.00142 && a < 0.00158) }'; echo $?) \
   "warmup_linear: halfway up the warmup at step 20 ($(lr_at "$TMP/wl" 20))"
ok $(awk -v a="$(lr_at "$TMP/wl" 80)" 'BEGIN { exit !(a > 0.00135 && a < 0.0015) }'; echo $?) \
   "warmup_linear: decaying linearly after it ($(lr_at "$TMP/wl" 80))"
"$MNEME" run --headless "$CFG" --set finetune.policy="$POL/warmup_cosine.lua" --set finetune.warmup_steps=10 \
    --out "$TMP/wc" --quiet >/dev/null 2>&1
ok $(awk -v a="$(lr_at "$TMP/wc" 60)" 'BEGIN { exit !(a > 0.0015 && a < 0.0018) }'; echo $?) \
   "warmup_cosine: near half the peak midway ($(lr_at "$TMP/wc" 60))"
"$MNEME" run --headless "$CFG" --set finetune.policy="$POL/slanted_triangular.lua" \
    --out "$TMP/st" --quiet >/dev/null 2>&1
a=$(lr_at "$TMP/st" 20) b=$(lr_at "$TMP/st" 100)
ok $(awk -v a="$a" -v b="$b" 'BEGIN { exit !(a > 0.0025 && b < 0.0008 && b < a) }'; echo $?) \
   "slanted_triangular: near the peak early, low late ($a, $b)"
jq -se 'map(select(.set=="lr")) | length > 50' "$TMP/st/events.jsonl" >/dev/null
ok $? "its rate changes are in events.jsonl, one per step"
"$MNEME" run --headless "$CFG" --set model.layers=2 --set finetune.policy="$POL/layer_decay.lua" \
    --out "$TMP/ld" --quiet >/dev/null 2>&1
jq -se 'map(select(.step==0 and .set=="layer.0.lr_scale")) | .[0].to > 0.6 and .[0].to < 0.66' "$TMP/ld/events.jsonl" >/dev/null
ok $? "layer_decay: layer.0 at 0.8^2 from step 0 ($(jq -c 'select(.set=="layer.0.lr_scale")' "$TMP/ld/events.jsonl" | head -1))"

# runaway policies are stopped and the run pauses intact
printf 'local P = { name = "spin" }\nfunction P.on_step(run) if run.step == 3 then while true do end end end\nreturn P\n' >"$TMP/spin.lua"
"$MNEME" run --headless "$CFG" --set finetune.policy="$TMP/spin.lua" --out "$TMP/sp" --quiet >/dev/null 2>"$TMP/err"
ok $([ $? = 1 ] && grep -q "paused at finetune step 3" "$TMP/err" && grep -qi "instruction" "$TMP/err"; echo $?) \
   "an infinite loop is stopped and pauses the run ($(head -1 "$TMP/err"))"
printf 'local P = { name = "hog" }\nfunction P.on_step(run) local t = {} for i = 1, 1e9 do t[i] = i end end\nreturn P\n' >"$TMP/hog.lua"
"$MNEME" run --headless "$CFG" --set finetune.policy="$TMP/hog.lua" --out "$TMP/hg" --quiet >/dev/null 2>"$TMP/err"
ok $([ $? = 1 ] && grep -qi "memory" "$TMP/err"; echo $?) "a 1e9-entry table hits the memory cap and pauses the run ($(head -1 "$TMP/err"))"
printf 'local P = { name = "exec" }\nfunction P.on_step(run) os.execute("true") end\nreturn P\n' >"$TMP/exec.lua"
"$MNEME" run --headless "$CFG" --set finetune.policy="$TMP/exec.lua" --out "$TMP/ex" --quiet >/dev/null 2>"$TMP/err"
ok $([ $? = 1 ] && grep -q "exec.lua:2:" "$TMP/err"; echo $?) "os.execute is not there ($(head -1 "$TMP/err"))"
printf 'local P = { name = "dump" }\nfunction P.on_step(run) local f = load(string.dump(function() end)) end\nreturn P\n' >"$TMP/dump.lua"
"$MNEME" run --headless "$CFG" --set finetune.policy="$TMP/dump.lua" --out "$TMP/du" --quiet >/dev/null 2>"$TMP/err"
ok $([ $? = 1 ] && grep -q "dump.lua:2:" "$TMP/err"; echo $?) "string.dump + load of bytecode is refused ($(head -1 "$TMP/err"))"
printf 'local P = { name = "cmod" }\nlocal lfs = require("lfs")\nreturn P\n' >"$TMP/cmod.lua"
"$MNEME" run --headless "$CFG" --set finetune.policy="$TMP/cmod.lua" --out "$TMP/cm" --quiet >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && grep -q "cmod.lua:2:" "$TMP/err"; echo $?) "require of a C module is refused at load ($(head -1 "$TMP/err"))"

# SIGUSR1 reloads the policy of a running headless run
"$MNEME" run --headless "$CFG" --set finetune.policy="$TMP/unfreeze.lua" --set finetune.epochs=300 \
    --out "$TMP/sig" --quiet >/dev/null 2>&1 &
pid=$!
# signalled once fine-tuning runs (pretraining can take most of a second)
end=$(( $(date +%s) + 60 ))
until grep -q '"finetune"' "$TMP/sig/metrics.jsonl" 2>/dev/null || [ "$(date +%s)" -ge "$end" ]; do
    sleep 0.05
done
kill -USR1 $pid 2>/dev/null
wait $pid
st=$?
ok $([ $st = 0 ] && jq -se 'map(select(.action=="reload")) | length == 1' "$TMP/sig/events.jsonl" >/dev/null; echo $?) \
   "SIGUSR1 reloads the policy mid-run, recorded in events.jsonl (exit $st)"

# the cost of a policy that touches every layer every step, measured in the run
cat >"$TMP/touch.lua" <<'LUA'
local P = { name = "touch_all" }
function P.on_step(run)
  for _, l in ipairs(run.layers) do l.lr_scale = l.lr_scale end
end
return P
LUA
"$MNEME" run --headless "$CFG" --set finetune.policy="$TMP/touch.lua" --out "$TMP/to" --quiet >/dev/null 2>&1
share=$(jq .timing.policy_share "$TMP/to/summary.json")
ok $([ "$share" != null ]; echo $?) "summary.json reports the policy's share of training time ($share)"
done_testing
