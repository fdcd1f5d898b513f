#!/bin/sh
# Fork points do not vanish: the checkpoint of a pause outlives
# checkpoint.keep's rotation, and so does a fork point, so the user can
# fork there again minutes later.
. "$MNEME_SRCDIR/tests/lib.sh"
CFG="$MNEME_SRCDIR/tests/data/tiny.cfg"
need_tmux
cat >"$TMP/ui.sh" <<SH
"$MNEME" "$CFG" --set finetune.epochs=3000 --set checkpoint.every=10 --set checkpoint.keep=2 --out "$TMP/run"
echo "mneme-exit=\$?"
exec sleep 600
SH
ui_session 120 30 "$TMP/ui.sh"
wait_until 60 sh -c "head -1 '$TMP/pane' | grep -q 'finetune · step [1-9]'"
T send-keys -t ui Space
wait_for 20 "paused ·"
ok $? "space pauses the run"
sleep 0.5
T capture-pane -p -t ui >"$TMP/pane"
at=$(header_step)
ok $([ -f "$TMP/run/checkpoints/pause-step-$at.safetensors" ]; echo $?) "the pause at step $at is kept as pause-step-$at"
T send-keys -t ui Space
wait_until 60 sh -c "[ \$(head -1 '$TMP/pane' | sed -n 's/.*step \([0-9]*\)\/.*/\1/p') -ge $((at + 60)) ] 2>/dev/null"
ok $? "the run goes on, past several rotations of checkpoint.keep = 2"
ok $([ ! -f "$TMP/run/checkpoints/step-$at.safetensors" ] || [ $((at % 10)) != 0 ]; echo $?) \
   "step-$at itself has been rotated away (or never was a step of checkpoint.every)"
T send-keys -t ui ":fork again @$at" Enter
wait_until 30 grep -q "forked again at step $at" "$TMP/run/log.txt"
rc=$?
ok $rc "fork again @$at: the pause's step is still there to fork from"
show_pane_if $rc
ok $([ -f "$TMP/run/checkpoints/fork-step-$at.safetensors" ] || [ -f "$TMP/run/checkpoints/pause-step-$at.safetensors" ]; echo $?) \
   "and the fork point stays"
T send-keys -t ui ":checkpoints" Enter
wait_until 10 grep -q "checkpoints (fork NAME @STEP):" "$TMP/run/log.txt"
line=$(grep "checkpoints (fork NAME @STEP):" "$TMP/run/log.txt" | tail -1)
ok $(echo "$line" | grep -q " 0 (base)" && echo "$line" | grep -q " $at (pause"; echo $?) \
   ":checkpoints lists the steps a fork can start from, and what kept each: $(echo "$line" | cut -c1-100)"
T send-keys -t ui ":fork nowhere @$((at + 3))" Enter
wait_for 20 "has no checkpoint at fine-tuning step $((at + 3)); it has:"
rc=$?
ok $([ $rc = 0 ] && tail -1 "$TMP/pane" | grep -q "it has:"; echo $?) \
   "a step without a checkpoint: the error lists the steps there are, in the footer"
T send-keys -t ui ":drop main" Enter
wait_until 10 grep -q "error: drop: main is the run itself" "$TMP/run/log.txt"
ok $? ":drop main is refused: the run itself is ended with q"
T send-keys -t ui ":drop again" Enter
wait_until 10 grep -q "dropped again; its folder is now $TMP/run/branches/.dropped/again-" "$TMP/run/log.txt"
ok $([ $? = 0 ] && [ ! -e "$TMP/run/branches/again" ] && ls -d "$TMP"/run/branches/.dropped/again-* >/dev/null 2>&1; echo $?) \
   ":drop again stops the branch and sets its folder aside"
wait_until 10 sh -c "! grep -q 'again  *main@' '$TMP/pane'"
ok $? "and the branch list no longer shows it"
quit_ui "mneme-exit="
ok $(grep -q "mneme-exit=0" "$TMP/pane"; echo $?) "quits cleanly"
done_testing
