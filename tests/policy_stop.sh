#!/bin/sh
# A signal stops a run whose policy is stuck in a long call within a
# second, with a checkpoint of the last completed step; the run resumes
# from it. A call that runs past the time limit pauses the run the same
# way a Lua error does.
. "$MNEME_SRCDIR/tests/lib.sh"
CFG="$MNEME_SRCDIR/tests/data/tiny.cfg"
SETS="--set base.pretrain.epochs=2 --set finetune.epochs=3 --set checkpoint.every=20"

# from step 21 on, every call copies 16 MiB over and over: few
# instructions, so only the clock or a signal ends it
cat >"$TMP/stuck.lua" <<'LUA'
local P = { name = "stuck", params = { from = 21 } }
function P.on_step(run)
  if run.step >= P.params.from then
    local s = string.rep("x", 1 << 24)
    while true do local t = s .. "y" end
  end
end
return P
LUA
now() { date +%s.%N; }
# wait_for FILE: up to 60 s
wait_for() {
    i=0
    while [ ! -e "$1" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
    [ -e "$1" ]
}
for sig in TERM INT HUP; do
    R="$TMP/run.$sig"
    "$MNEME" run --headless "$CFG" $SETS --set finetune.policy="$TMP/stuck.lua" --out "$R" \
        >"$TMP/out" 2>"$TMP/err" &
    pid=$!
    wait_for "$R/checkpoints/step-20.safetensors"
    sleep 0.3                       # now inside the call of step 21
    t0=$(now)
    kill -$sig $pid
    wait $pid
    st=$?
    t1=$(now)
    took=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    ok $([ $st = 1 ] && lt "$took" 2.0; echo $?) "SIG$sig during a stuck policy call: exit 1 within 2 s ($took s)"
    grep -q "stopped by signal" "$TMP/err" && grep -q "stuck.lua:5: stopped: the run is quitting" "$TMP/out"
    ok $? "  the call was stopped, not left to its time limit ($(head -1 "$TMP/err"))"
    step=$(sed -n 's/.*at finetune step \([0-9]*\).*/\1/p' "$TMP/err" | head -1)
    [ "$step" = 21 ] && [ -e "$R/checkpoints/step-21.safetensors" ]
    ok $? "  a checkpoint of the last completed step is on disk (step ${step:-?})"
done
# with the policy fixed, the last run resumes from there and finishes
sed -i 's/from = 21/from = 1000/' "$TMP/stuck.lua"
"$MNEME" run --resume "$R" --quiet >/dev/null 2>"$TMP/err" && [ "$(json "$R/summary.json" .status)" = finished ]
ok $? "after a fix, the stopped run resumes and finishes"
sed -i 's/from = 1000/from = 21/' "$TMP/stuck.lua"

# the time limit alone: the run pauses at that step with the message
R="$TMP/limit"
t0=$(now)
"$MNEME" run --headless "$CFG" $SETS --set finetune.policy="$TMP/stuck.lua" --out "$R" --quiet >/dev/null 2>"$TMP/err"
st=$?
took=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
ok $([ $st = 1 ] && grep -q "paused at finetune step 21: .*stuck.lua:5: time limit exceeded" "$TMP/err"; echo $?) \
    "a call past the time limit pauses the run, exit 1 ($took s: $(head -1 "$TMP/err"))"
[ -e "$R/checkpoints/step-21.safetensors" ]
ok $? "  with a checkpoint of the step before the call"

# the issue's repros, headless: each ends its call with a clear error, and
# the run pauses there with a checkpoint, as after a Lua error
for case in "move:table.move(big, 1, (1 << 24) - 2, 1, {}):range too large" \
            "sort:table.sort(nums):instruction budget exceeded" \
            "concat:table.concat(lazy, '', 1, 1e6):instruction budget exceeded" \
            "pattern:string.find(string.rep('a', 40), string.rep('a?', 40) .. string.rep('a', 40)):instruction budget exceeded"; do
    name=${case%%:*}; rest=${case#*:}; call=${rest%:*}; msg=${rest##*:}
    cat >"$TMP/$name.lua" <<LUA
local P = { name = "$name" }
local big, nums = {}, {}
for i = 1, 2e5 do nums[i] = (i * 7919) % 200003 end
local lazy = setmetatable({}, { __index = function() return "" end })
function P.on_step(run)
  if run.step == 21 then while true do $call end end
end
return P
LUA
    t0=$(now)
    "$MNEME" run --headless "$CFG" $SETS --set finetune.policy="$TMP/$name.lua" --out "$TMP/$name" --quiet \
        >/dev/null 2>"$TMP/err"
    st=$?
    took=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
    [ $st = 1 ] && grep -q "paused at finetune step 21: .*$name.lua:[0-9]*: .*$msg" "$TMP/err" &&
        [ -e "$TMP/$name/checkpoints/step-21.safetensors" ]
    ok $? "$name in a loop: paused at step 21 with a checkpoint, exit 1 ($took s: $(head -1 "$TMP/err" | sed 's/.*lua:[0-9]*: //'))"
done
done_testing
