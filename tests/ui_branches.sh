#!/bin/sh
# Branches in the workbench, in a real terminal: f forks at the current
# step, the branch list shows both, Tab follows and steers the other one,
# v compares them, bad forks are refused in the log, and q checkpoints
# every branch before the terminal is given back.
. "$MNEME_SRCDIR/tests/lib.sh"
CFG="$MNEME_SRCDIR/tests/data/tiny.cfg"
if ! command -v tmux >/dev/null 2>&1; then
    diag "tmux not installed: the real-terminal tests are skipped"
    done_testing
    exit
fi
. "$MNEME_SRCDIR/tests/tmux.sh"
fine_tuning() { head -1 "$TMP/pane" | grep -q "finetune" && [ "$(header_step)" -ge 150 ] 2>/dev/null; }

cat >"$TMP/pane.sh" <<SH
"$MNEME" "$CFG" --set finetune.epochs=3000 --set eval.every=100 --out "$TMP/run" 2>"$TMP/stderr"
echo "mneme-exit=\$?"
exec sleep 600
SH
ui_session 118 60 "$TMP/pane.sh"
ok $? "mneme in a 118x60 pane"
wait_until 120 fine_tuning
ok $? "fine-tuning under way"

T send-keys -t ui f
wait_for 10 ":fork"
ok $? "f opens the command line with 'fork '"
T send-keys -t ui "lower finetune.lr=1e-4" Enter
wait_for 30 "forked lower at step"
st=$?; ok $st "the fork is reported in the log"; show_pane_if $st
wait_for 10 "branches (Tab"
st=$?
grep -q "main  *running" "$TMP/pane" && grep -q "lower  *main@[0-9]*  *running" "$TMP/pane"
ok $? "the branch list shows main and lower, both running"; show_pane_if $?
[ -f "$TMP/run/branches/lower/branch.json" ] && grep -q '"finetune.lr=1e-4"' "$TMP/run/branches/lower/branch.json"
ok $? "the branch folder holds branch.json with the override"
grep -q '"command":"fork","branch":"lower"' "$TMP/run/events.jsonl"
ok $? "the parent's events.jsonl records the fork"

T send-keys -t ui Tab
wait_until 10 sh -c "head -1 '$TMP/pane' | grep -q ' lower · finetune'"
st=$?; ok $st "Tab follows lower: the header names it"; show_pane_if $st
T send-keys -t ui ":set finetune.lr 2e-4" Enter
wait_for 10 "[lower] set finetune.lr 0.0002"
st=$?; ok $st ":set steers the followed branch"; show_pane_if $st
grep -q '"command":"set","set":"finetune.lr"' "$TMP/run/branches/lower/events.jsonl" &&
    ! grep -q '"set":"finetune.lr"' "$TMP/run/events.jsonl"
ok $? "recorded in the branch's events.jsonl, not the parent's"

T send-keys -t ui v
wait_for 10 "compare branches"
st=$?; ok $st "v shows the compare view"; show_pane_if $st
grep -q "branch  *forked from  *state  *new acc" "$TMP/pane" && grep -q "lower  *main@" "$TMP/pane"
ok $? "with the table of branches and their figures"
grep -q "best trade-off" "$TMP/pane"
ok $? "and the best trade-off marked"
T send-keys -t ui v

# both paused, so that the log stays still while the refusals are read
T send-keys -t ui space Tab space
wait_until 10 sh -c "grep -q 'main  *paused' '$TMP/pane' && grep -q 'lower  *main@[0-9]*  *paused' '$TMP/pane'"
st=$?; ok $st "space pauses the followed branch; both paused"; show_pane_if $st
T send-keys -t ui ":fork bad model.hidden=8" Enter
wait_for 15 "error: fork bad: model.hidden cannot change in a fork"
ok $? "a fork that changes the model is refused in the log"
T send-keys -t ui ":fork late @99999" Enter
wait_for 15 "no checkpoint at fine-tuning step 99999"
st=$?; ok $st "a fork at a step with no checkpoint is refused"; show_pane_if $st
T send-keys -t ui ":fork nokey" Enter ":fork x junk" Enter
wait_for 10 "expected KEY=VALUE"
ok $? ":fork with a malformed override: a message on the command line"
[ ! -e "$TMP/run/branches/bad" ] && [ ! -e "$TMP/run/branches/late" ] && [ ! -e "$TMP/run/branches/x" ]
ok $? "refused forks leave no folder"

T send-keys -t ui ":follow main" Enter
wait_until 10 sh -c "head -1 '$TMP/pane' | grep -q ' main · finetune'"
ok $? ":follow main goes back"
quit_ui "mneme-exit=0"
st=$?; ok $st "q y: a clean exit"; show_pane_if $st
grep -q '"command":"quit"' "$TMP/run/events.jsonl" && grep -q '"command":"quit"' "$TMP/run/branches/lower/events.jsonl"
ok $? "quit checkpoints every branch"
"$MNEME" compare "$TMP/run" >"$TMP/cmp" 2>&1 && grep -q "lower" "$TMP/cmp"
ok $? "mneme compare lists the branch made in the workbench"

# The family comes back with the run: mneme --resume opens its branches,
# paused, for comparing and steering.
cat >"$TMP/again.sh" <<SH
"$MNEME" --resume "$TMP/run" 2>"$TMP/stderr.again"
echo "mneme-exit=\$?"
exec sleep 600
SH
ui_session 118 60 "$TMP/again.sh"
wait_until 30 sh -c "grep -q 'lower  *main@[0-9]*  *paused' '$TMP/pane'"
st=$?; ok $st "--resume: the branch list shows lower again, paused"; show_pane_if $st
ok $(grep -q 'main  *paused' "$TMP/pane"; echo $?) "main comes back paused too, as it ended"
T send-keys -t ui Tab
wait_until 10 sh -c "head -1 '$TMP/pane' | grep -q ' lower · finetune'"
ok $? "and Tab follows it"
T send-keys -t ui space
wait_until 10 sh -c "grep -q 'lower  *main@[0-9]*  *running' '$TMP/pane'"
ok $? "space: lower runs, main stays paused"
main_step=$(ls "$TMP/run/checkpoints" | sed -n 's/^step-\([0-9]*\)\.safetensors$/\1/p' | sort -n | tail -1)
quit_ui "mneme-exit=0"
ok $? "quits cleanly"
ok $(grep -q "quit at finetune step $main_step; continue in the workbench with: mneme --resume $TMP/run" "$TMP/stderr.again"; echo $?) \
   "the quit hint names main's step ($main_step), not the followed branch's, and the workbench's command"
ui_session 118 60 "$TMP/again.sh"
wait_until 30 sh -c "grep -q 'lower  *main@[0-9]*  *running' '$TMP/pane' && grep -q 'main  *paused' '$TMP/pane'"
st=$?; ok $st "resumed again: lower running and main paused, exactly as they ended"; show_pane_if $st
quit_ui "mneme-exit=0"

# A full disk at a checkpoint: the workbench shows the error and pauses;
# resuming tries again; quitting still gives the terminal back.
cat >"$TMP/full.sh" <<SH
MNEME_FAULT_WRITE_AFTER=4096 "$MNEME" "$CFG" --out "$TMP/full" 2>"$TMP/stderr.full"
echo "mneme-exit=\$?"
exec sleep 600
SH
ui_session 118 40 "$TMP/full.sh"
wait_for 60 "checkpoint failed (the previous one is intact)"
st=$?; ok $st "a checkpoint that cannot be written: the error is shown"; show_pane_if $st
wait_until 10 sh -c "head -1 '$TMP/pane' | grep -q paused"
ok $? "and the run pauses"
s1=$(header_step); sleep 1; T capture-pane -p -t ui >"$TMP/pane"
[ "$(header_step)" = "$s1" ] && ! ls "$TMP/full/checkpoints" | grep -q safetensors
ok $? "no step is taken and no half-written file is left"
T send-keys -t ui space
sleep 1
wait_until 10 sh -c "head -1 '$TMP/pane' | grep -q paused"
[ "$(grep -c 'checkpoint failed' "$TMP/pane")" -ge 2 ] || grep -q "checkpoint failed" "$TMP/pane"
ok $? "resuming tries the checkpoint again, and pauses again while the disk is full"
quit_ui "mneme-exit=1"
st=$?; ok $st "q y still quits, with status 1: the checkpoint at quit was not written"; show_pane_if $st

done_testing
