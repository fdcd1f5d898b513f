#!/bin/sh
# Divergence: a non-finite loss, or one far above its recent median, rolls
# the run back to its last good checkpoint and pauses it (headless: stops
# with a message that says how to go on at a lower rate); a policy's
# on_diverge may decide instead; the rollback is recorded and replayed.
. "$MNEME_SRCDIR/tests/lib.sh"
CFG="$MNEME_SRCDIR/tests/data/tiny.cfg"
POL="$TMP/pol"
mkdir -p "$POL"

# A rate that takes the weights to NaN within 20 steps.
NAN="--set finetune.lr=10 --set finetune.clip_norm=0 --set finetune.weight_decay=1 --set finetune.warmup_steps=0"
"$MNEME" run --headless "$CFG" $NAN --out "$TMP/nan" >"$TMP/out" 2>"$TMP/err"
rc=$?
ok $([ $rc = 1 ]; echo $?) "headless, a diverged run stops with status 1 (got $rc), not 0 and not a crash"
contains "$TMP/err" "diverged at finetune step 20 (training loss became -nan); rolled back to step 0 (checkpoints/base.safetensors)"
ok $? "the message says where it diverged and where it went back to"
contains "$TMP/err" "mneme fork $TMP/nan --name NAME --at 0 --set finetune.lr=1"
ok $? "and how to go on at a lower rate"
ok $([ "$(jq -r .status "$TMP/nan/summary.json")" = paused ]; echo $?) "summary.json: paused"
ok $([ "$(tail -1 "$TMP/nan/metrics.jsonl" | jq .step)" = 0 ] &&
     [ "$(tail -1 "$TMP/nan/metrics.jsonl" | jq .new.loss)" != null ]; echo $?) \
   "metrics.jsonl is rolled back with the weights: it ends at step 0"
ev=$(grep '"command":"diverge"' "$TMP/nan/events.jsonl")
ok $([ "$(echo "$ev" | jq .step)" = 20 ] && [ "$(echo "$ev" | jq -r .reason)" = "training loss became -nan" ]; echo $?) \
   "events.jsonl records it at step 20: $ev"
"$MNEME" fork "$TMP/nan" --name low --at 0 --set finetune.lr=1e-3 --quiet >/dev/null 2>&1
ok $([ $? = 0 ] && [ "$(jq -r .status "$TMP/nan/branches/low/summary.json")" = finished ]; echo $?) \
   "the fork the message suggests trains to the end"
"$MNEME" run --resume "$TMP/nan" --quiet >/dev/null 2>"$TMP/err"
ok $([ $? = 1 ] && contains "$TMP/err" "diverged at finetune step 20"; echo $?) \
   "resumed at the same rate, it diverges at the same step again, and says so"

# Finite divergence: a policy takes the rate from 1e-3 to 0.5 at step 70.
cat >"$POL/jump.lua" <<'LUA'
local P = { name = "jump", params = {} }
local calm = false
function P.on_step(run)
  if run.step >= 70 and not calm then run.lr = 0.5 end
end
function P.on_diverge(run, why)
  if not HANDLE then return end
  calm = true
  run.lr = 1e-4
  run:log("on_diverge: " .. why)
end
return P
LUA
sed 's/^local calm = false/local calm = false\nlocal HANDLE = true/' "$POL/jump.lua" >"$POL/handle.lua"
JUMP="--set finetune.clip_norm=0 --set stop.diverge_window=20"
"$MNEME" run --headless "$CFG" $JUMP --set finetune.policy="$POL/jump.lua" --out "$TMP/jump" >"$TMP/out" 2>"$TMP/err"
rc=$?
ok $([ $rc = 1 ] && contains "$TMP/err" "diverged at finetune step 72 (mean training loss" &&
     contains "$TMP/err" "over 10 times the median" && contains "$TMP/err" "rolled back to step 40"; echo $?) \
   "a finite loss far above its median is divergence too: $(grep -o 'diverged at [^;]*' "$TMP/err" | head -1)"
"$MNEME" run --headless "$CFG" $JUMP --set stop.diverge=0 --set finetune.policy="$POL/jump.lua" --out "$TMP/off" --quiet >/dev/null 2>&1
ok $([ $? = 0 ] && ! grep -q diverge "$TMP/off/events.jsonl"; echo $?) "stop.diverge = 0 watches non-finite losses only"
"$MNEME" run --headless "$CFG" $JUMP --set finetune.policy="$POL/handle.lua" --out "$TMP/handled" >"$TMP/out" 2>&1
rc=$?
ok $([ $rc = 0 ] && [ "$(jq -r .status "$TMP/handled/summary.json")" = finished ]; echo $?) \
   "a policy's on_diverge that lowers the rate decides: the run goes on and finishes"
contains "$TMP/out" "on_diverge: mean training loss" && contains "$TMP/out" "policy jump went on from step 40 with its changes"
ok $? "the policy saw why, and the log says it went on"
ok $([ "$(grep -c '"command":"diverge"' "$TMP/handled/events.jsonl")" = 1 ] &&
     grep '"source":"policy' "$TMP/handled/events.jsonl" | grep -q '0.0001'; echo $?) \
   "events.jsonl holds the divergence and the policy's change"
"$MNEME" replay "$TMP/handled" --out "$TMP/replay" --quiet >"$TMP/out" 2>&1
ok $? "the replay rolls back at the same step and matches: $(cat "$TMP/out")"
# OpenBLAS left to its own thread count (as outside make check): the
# replay sets the experiment's, as the run did, and still matches.
env -u OPENBLAS_NUM_THREADS "$MNEME" run --headless "$CFG" --out "$TMP/free" --quiet >/dev/null 2>&1 &&
env -u OPENBLAS_NUM_THREADS "$MNEME" replay "$TMP/free" --out "$TMP/free-replay" --quiet >"$TMP/out" 2>&1
ok $? "without OPENBLAS_NUM_THREADS, a replay matches too: $(cat "$TMP/out")"

# In the workbench: the footer says so, :set lowers the rate, space goes on.
if command -v tmux >/dev/null 2>&1; then
    . "$MNEME_SRCDIR/tests/tmux.sh"
    cat >"$TMP/ui.sh" <<SH
cd "$TMP"
"$MNEME" "$CFG" $NAN --out "$TMP/ui" 2>"$TMP/ui.err"
echo "mneme-exit=\$?"
exec sleep 600
SH
    ui_session 120 30 "$TMP/ui.sh"
    wait_for 60 "rolled back to step 0"
    rc=$?
    ok $rc "the workbench shows the divergence and the rollback"
    show_pane_if $rc
    ok $(grep -q "paused" "$TMP/pane" && tail -3 "$TMP/pane" | grep -q "diverged"; echo $?) \
       "paused, with the reason in the footer: $(tail -3 "$TMP/pane" | grep -o 'diverged[^.]*' | head -1)"
    ok $(grep -q "rolled back to step 0 (checkpoints/base.safetensors). Lower the learning rate .*mneme fork $TMP/ui --name NAME --at 0" \
         "$TMP/ui/log.txt"; echo $?) "log.txt in the run folder holds the whole message, which the screen cuts"
    T send-keys -t ui ":set finetune.lr 0.001" Enter
    sleep 0.5
    T send-keys -t ui Space
    wait_for 60 "finished"
    rc=$?
    ok $rc "a lower rate, then space: the run goes on past step 20 and finishes"
    show_pane_if $rc
    ok $([ "$(jq -r .status "$TMP/ui/summary.json")" = finished ] &&
         grep -q '"command":"set".*0.001' "$TMP/ui/events.jsonl"; echo $?) "summary finished; the new rate is in events.jsonl"
    quit_ui "mneme-exit="
    ok $(grep -q "mneme-exit=0" "$TMP/pane"; echo $?) "and it quits cleanly"
else
    echo "# SKIP the workbench part: tmux is not installed"
fi

done_testing
