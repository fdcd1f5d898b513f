#!/bin/sh
# The workbench and a policy that fails: the run pauses with the error in
# the footer; the fixed file reloaded with r is logged once, and the log
# says the run stays paused until space.
. "$MNEME_SRCDIR/tests/lib.sh"
CFG="$MNEME_SRCDIR/tests/data/tiny.cfg"
need_tmux
cat >"$TMP/fails.lua" <<'LUA'
local P = { name = "fails", params = {} }
function P.on_step(run)
  if run.step == 5 then error("boom at five") end
end
return P
LUA
cat >"$TMP/ui.sh" <<SH
cd "$TMP"
"$MNEME" "$CFG" --set finetune.policy="$TMP/fails.lua" --out "$TMP/run" 2>"$TMP/err"
echo "mneme-exit=\$?"
exec sleep 600
SH
ui_session 120 30 "$TMP/ui.sh"
wait_for 60 "boom at five"
rc=$?
ok $rc "the policy's error is shown"
show_pane_if $rc
ok $(tail -1 "$TMP/pane" | grep -q "boom at five"; echo $?) "in the footer: $(tail -1 "$TMP/pane" | cut -c1-80)"
T send-keys -t ui ":set lr 50" Enter
wait_for 20 "expected 0..10"
ok $([ $? = 0 ] && ! grep -q -- "--set" "$TMP/pane"; echo $?) \
   ":set lr 50 is refused in the workbench's words: $(grep -o 'set: finetune.lr[^│]*' "$TMP/pane" | head -1)"
ok $(tail -1 "$TMP/pane" | grep -q "error: set: finetune.lr: expected 0..10"; echo $?) \
   "the error stays in the footer: $(tail -1 "$TMP/pane" | sed 's/  */ /g')"
sleep 2.5
T capture-pane -p -t ui >"$TMP/pane"
ok $(tail -1 "$TMP/pane" | grep -q "expected 0..10"; echo $?) "still there seconds later, until a key"
T send-keys -t ui ":xet lr 0.9" C-w "0.002" Home Delete s Enter
wait_until 10 grep -q '"set":"finetune.lr".*"to":0.002' "$TMP/run/events.jsonl"
ok $? "the command line edits: Ctrl-W, Home, Delete (':xet lr 0.9' became 'set lr 0.002')"
T send-keys -t ui L
wait_for 10 "L or Esc closes"
ok $? "L opens the log as a page"
T send-keys -t ui e
wait_for 10 "log (errors)"
ok $([ $? = 0 ] && grep -q "error: set: finetune.lr" "$TMP/pane" && ! grep -q "resumed\|run folder" "$TMP/pane"; echo $?) \
   "e shows the errors alone"
T send-keys -t ui L
wait_until 10 sh -c "! grep -q 'L or Esc closes' '$TMP/pane'"
ok $? "L closes it"
sed -i 's/error("boom at five")/run:log("fine at five")/' "$TMP/fails.lua"
T send-keys -t ui r
wait_for 20 "space goes on"
rc=$?
ok $rc "after r: the log says the run stays paused until space"
show_pane_if $rc
ok $([ "$(grep -c 'reloaded' "$TMP/pane")" = 1 ] && grep -q "policy fails reloaded" "$TMP/pane"; echo $?) \
   "the reload is logged once ($(grep -c reloaded "$TMP/pane") lines)"
T send-keys -t ui Space
wait_for 60 "finished"
ok $? "space: the run goes on to the end"
quit_ui "mneme-exit="
ok $(grep -q "mneme-exit=0" "$TMP/pane"; echo $?) "and quits cleanly"

# :policy FILE attaches a policy to a run that had none: recorded, its
# source saved, attached again on resume, and replayed.
cat >"$TMP/slow.lua" <<'LUA'
local P = { name = "slow", params = {} }
function P.on_step(run) run.lr = 2e-4 end
return P
LUA
cat >"$TMP/attach.sh" <<SH
"$MNEME" "$CFG" --set finetune.epochs=60 --out "$TMP/att"
echo "mneme-exit=\$?"
exec sleep 600
SH
ui_session 160 40 "$TMP/attach.sh"
wait_until 60 sh -c "head -1 '$TMP/pane' | grep -q 'finetune · step [1-9]'"
T send-keys -t ui Space
wait_for 20 "paused ·"
T send-keys -t ui ":policy $TMP/slow.lua" Enter
wait_until 20 grep -q '"command":"policy"' "$TMP/att/events.jsonl"
rc=$?
at=$(jq -rs 'map(select(.command == "policy"))[0].step' "$TMP/att/events.jsonl")
ok $([ $rc = 0 ] && [ -f "$TMP/att/policy/$at.lua" ] && grep -q "policy slow runs from step $at" "$TMP/att/log.txt"; echo $?) \
   ":policy FILE attaches it at step $at: recorded, its source saved, logged"
# the pane was read before the event was found: the header may come a moment later
wait_until 10 sh -c "head -1 '$TMP/pane' | grep -q 'policy slow'"
ok $? "the header names it"
quit_ui "mneme-exit="
"$MNEME" run --resume "$TMP/att" --quiet >/dev/null 2>&1
ok $([ $? = 0 ] && [ "$(jq -s "map(select(.phase == \"finetune\" and .step > $at + 1)) | .[0].lr" "$TMP/att/metrics.jsonl")" = 0.0002 ]; echo $?) \
   "quit and resumed headless: the attached policy runs again and sets the rate"

"$MNEME" replay "$TMP/att" --out "$TMP/att-replay" --quiet >"$TMP/out" 2>&1
ok $? "the replay attaches it at the same step and matches: $(cat "$TMP/out")"

# The finished run opened again: for review, drawn as it ended.
total=$(jq -s 'map(select(.phase == "finetune")) | last | .step' "$TMP/run/metrics.jsonl")
cat >"$TMP/review.sh" <<SH
"$MNEME" --resume "$TMP/run"
echo "mneme-exit=\$?"
exec sleep 600
SH
ui_session 120 30 "$TMP/review.sh"
wait_for 20 "here for review"
rc=$?
ok $rc "a finished run opens with a footer that says so and how to fork"
show_pane_if $rc
ok $(head -1 "$TMP/pane" | grep -q "step $total/$total · epoch 6.00 · finished"; echo $?) \
   "header: its last step of its length, its epochs ($(head -1 "$TMP/pane" | cut -c1-70))"
axis=$(grep -E '^│ +0 +[0-9]+ ' "$TMP/pane" | head -1 | tr -s ' │' ' ')
ok $(echo "$axis" | grep -q ' 20 40 60 80 100 '; echo $?) "the step axis spans the run: $axis"
ok $(grep -q 'layer.0 .*[1-9]\.[0-9]e-0[0-9] *[0-9]\.[0-9]' "$TMP/pane" && ! grep -q '0.0e+00' "$TMP/pane"; echo $?) \
   "each layer shows its last rate and its drift, not zeros"
quit_ui "mneme-exit="
ok $(grep -q "mneme-exit=0" "$TMP/pane"; echo $?) "review ends cleanly"

# Help at 80x24: a modal page that scrolls; keys do not reach the run.
cat >"$TMP/help.sh" <<SH
"$MNEME" "$CFG" --set finetune.epochs=3000 --out "$TMP/help"
echo "mneme-exit=\$?"
exec sleep 600
SH
ui_session 80 24 "$TMP/help.sh"
wait_until 30 sh -c "head -1 '$TMP/pane' | grep -q 'finetune'"
T send-keys -t ui '?'
wait_for 10 "help (more below)"
rc=$?
ok $rc "? opens the help page, which says there is more"
show_pane_if $rc
ok $(grep -q "? or Esc closes" "$TMP/pane"; echo $?) "and how to close it"
T send-keys -t ui Space
sleep 0.5
T send-keys -t ui End
wait_for 10 "help (more above)"
rc=$?
ok $([ $rc = 0 ] && grep -q ':quit' "$TMP/pane" && grep -q ':plot \[FILE\]' "$TMP/pane" && grep -q ':detach' "$TMP/pane"; echo $?) \
   "End scrolls to the last commands, whole"
show_pane_if $rc
ok $(head -1 "$TMP/pane" | grep -q "running"; echo $?) "space inside the help did not pause the run"
T send-keys -t ui q
wait_until 10 sh -c "! grep -q 'help (more' '$TMP/pane'"
ok $([ $? = 0 ] && ! grep -q "quit?" "$TMP/pane"; echo $?) "q closes the help, and does not ask to quit"
quit_ui "mneme-exit="
ok $(grep -q "mneme-exit=0" "$TMP/pane"; echo $?) "then q quits as usual"
done_testing
