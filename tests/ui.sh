#!/bin/sh
# The curses workbench in a real terminal: a private tmux server of fixed
# size runs mneme on the tiny pair; the test polls the pane with deadlines
# (never fixed sleeps alone), asserts what is on screen, pauses, resizes,
# quits, and checks that the terminal is given back as it was.
. "$MNEME_SRCDIR/tests/lib.sh"
CFG="$MNEME_SRCDIR/tests/data/tiny.cfg"

# without a usable terminal: say so, suggest --headless, exit 2
TERM=dumb "$MNEME" "$CFG" --out "$TMP/dumb" >"$TMP/out" 2>"$TMP/err" </dev/null
st=$?
ok $([ $st = 2 ] && grep -q -- "--headless" "$TMP/err" && [ ! -e "$TMP/dumb" ]; echo $?) \
   "no terminal: exit 2, suggests --headless, creates nothing ($(tail -1 "$TMP/err"))"
if command -v script >/dev/null 2>&1; then
    # script(1) gives mneme a tty, so only TERM is wrong
    TERM=dumb script -qec "\"$MNEME\" \"$CFG\" --out \"$TMP/dumb\"" /dev/null >"$TMP/out" 2>&1 </dev/null
    st=$?
    ok $([ $st = 2 ] && grep -q "TERM=dumb" "$TMP/out" && grep -q -- "--headless" "$TMP/out"; echo $?) \
       "TERM=dumb on a tty: exit 2 and suggests --headless"
fi

if ! command -v tmux >/dev/null 2>&1; then
    diag "tmux not installed: the real-terminal tests are skipped"
    done_testing
    exit
fi

. "$MNEME_SRCDIR/tests/tmux.sh"
# in the finetune phase, past step 60 (so a few evaluations are drawn),
# with one in the log (the log scrolls fast: any evaluation will do)
evaluated() {
    head -1 "$TMP/pane" | grep -q "finetune" && [ "$(header_step)" -ge 60 ] 2>/dev/null &&
        grep -q "eval finetune step" "$TMP/pane"
}

# The shell in the pane records the terminal modes before and after, so
# the test can tell that mneme gave the terminal back as it found it.
cat >"$TMP/pane.sh" <<SH
stty -g >"$TMP/stty.before"
"$MNEME" "$CFG" --set finetune.epochs=3000 --out "$TMP/run" 2>"$TMP/stderr"
echo "mneme-exit=\$?"
stty -g >"$TMP/stty.after"
exec sleep 600
SH
ui_session 100 30 "$TMP/pane.sh"
ok $? "a private tmux server runs mneme in a 100x30 pane"

wait_until 30 evaluated
ok $? "evaluations of the finetune phase show in the log"
[ $? = 0 ] || { diag "pane:"; sed 's/^/#   /' "$TMP/pane"; }
head -1 "$TMP/pane" >"$TMP/header"
ok $(grep -q "mneme · tiny · main · finetune · step [0-9]*/[0-9]* · epoch" "$TMP/header" && grep -q "steps/s" "$TMP/header"; echo $?) \
   "header: experiment, branch, phase, step/total, epoch, steps/s ($(cat "$TMP/header"))"
ok $(grep -q "running" "$TMP/header"; echo $?) "header: state running"
ok $(grep -q "accuracy" "$TMP/pane" && grep -qF "new ━━" "$TMP/pane" && grep -qF "original ┅┅" "$TMP/pane"; echo $?) \
   "the accuracy plot has both curves' legend"
# braille is U+2800-U+28FF: bytes E2 A0-A3 xx in UTF-8
ok $(LC_ALL=C grep -q "$(printf '\342')[$(printf '\240-\243')]" "$TMP/pane"; echo $?) "curves are drawn in braille"
ok $(grep -q "learning rate per layer" "$TMP/pane" && grep -q "layer\.0 .*[0-9]e-0[0-9]" "$TMP/pane" && grep -q "embeddings" "$TMP/pane"; echo $?) \
   "per-layer panel: each group with its rate"
ok $(grep -q "classifier\.original .*frozen" "$TMP/pane"; echo $?) "the frozen original head is shown frozen"
ok $(grep -q "q quit" "$TMP/pane"; echo $?) "footer: the keys"

# space pauses: the header says so and the step stops
T send-keys -t ui Space
wait_for 15 "paused ·"
ok $? "space: the header says paused"
s1=$(header_step)
sleep 1
wait_for 5 "paused ·"
s2=$(header_step)
ok $([ -n "$s1" ] && [ "$s1" = "$s2" ]; echo $?) "paused: the step stays at $s1 (then $s2)"

# :set changes the rate from this step; the panel and events.jsonl show it
T send-keys -t ui ":set finetune.lr 1e-5" Enter
# (the linear decay goes on from the new peak: 1e-5 x (1 - step/57000))
wait_until 15 grep -q "layer\.0 .* \(1\.0e-05\|9\.[5-9]e-06\)" "$TMP/pane"
st=$?; ok $st ":set finetune.lr 1e-5: the per-layer panel shows the new rate"; show_pane_if $st
ok $(grep -q "set finetune.lr 1e-05" "$TMP/pane"; echo $?) "and the log says so"
T send-keys -t ui ":set finetune.lr banana" Enter
wait_for 15 "expected a number"
ok $? "an invalid :set gets a message in the command line"

T send-keys -t ui ":freeze layer.0" Enter
wait_until 15 grep -q "layer\.0 .*frozen" "$TMP/pane"
ok $? ":freeze layer.0: the per-layer panel shows it frozen"
T send-keys -t ui ":unfreeze layer.0" Enter
wait_until 15 grep -q "unfroze layer.0" "$TMP/pane"
ok $? ":unfreeze layer.0: the log says so"

T send-keys -t ui e
wait_for 15 "evaluate now at step $s1: new"
ok $? "e: evaluates both tasks now, into the log"

# :checkpoint NAME writes tag-NAME-step-N, the name cut to [A-Za-z0-9_-]
T send-keys -t ui ":checkpoint my/best" Enter
end=$(( $(date +%s) + 15 ))
while [ ! -f "$TMP/run/checkpoints/tag-my_best-step-$s1.safetensors" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 0.2; done
ok $([ -f "$TMP/run/checkpoints/tag-my_best-step-$s1.safetensors" ]; echo $?) \
   ":checkpoint my/best: checkpoints/tag-my_best-step-$s1 ($(ls "$TMP/run/checkpoints" | tr '\n' ' '))"
# :set policy.NAME on a run without a policy: an error in the log (paused:
# the log holds still)
T send-keys -t ui ":set policy.every 5" Enter
wait_for 15 "error: set policy.every: this run has no policy"
ok $? ":set policy.every without a policy: an error in the log"

# PgUp scrolls the log back and says so; End follows again
T send-keys -t ui PPage
wait_for 15 "lines back (PgUp/PgDn, End follows)"
ok $? "PgUp: the log panel scrolls back"
T send-keys -t ui End
wait_until 15 sh -c "! grep -q 'lines back' '$TMP/pane' && grep -q 'no policy' '$TMP/pane'"
ok $? "End: the log follows again"

# q asks first; anything but y cancels
T send-keys -t ui q
wait_for 15 "quit? checkpoint and quit: y / n"
ok $? "q: asks before quitting"
T send-keys -t ui n
wait_for 15 "quit cancelled"
ok $(grep -q "quit cancelled" "$TMP/pane" && ! grep -q "mneme-exit=" "$TMP/pane"; echo $?) "n: cancelled, still running"

# a resize redraws at the new size
T resize-window -t ui -x 80 -y 24
end=$(( $(date +%s) + 15 )); redrawn=1
while [ "$(date +%s)" -lt "$end" ]; do
    T capture-pane -p -t ui >"$TMP/pane"
    if grep -q "^┌ accuracy.*┐$" "$TMP/pane" &&
       [ "$(grep "^┌ accuracy" "$TMP/pane" | wc -m)" = 81 ] &&
       grep -q "q quit" "$TMP/pane"; then
        redrawn=0
        break
    fi
    sleep 0.2
done
ok $redrawn "resized to 80x24: redrawn at the new width"
[ $redrawn = 0 ] || { diag "pane:"; sed 's/^/#   /' "$TMP/pane"; }
T resize-window -t ui -x 50 -y 12
wait_for 15 "terminal too small"
ok $? "resized to 50x12: says the terminal is too small"
T resize-window -t ui -x 100 -y 30
wait_for 15 "learning rate per layer"
ok $? "and draws again at 100x30"

# q, y checkpoints and quits; the shell gets the terminal back
quit_ui "mneme-exit="
ok $? "q: mneme exits"
ok $(grep -q "mneme-exit=0" "$TMP/pane"; echo $?) "with status 0 ($(grep mneme-exit "$TMP/pane"))"
ok $([ "$(T display -p -t ui '#{alternate_on}')" = 0 ]; echo $?) "the pane is back on the normal screen"
end=$(( $(date +%s) + 10 ))
while [ ! -s "$TMP/stty.after" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 0.2; done
cmp -s "$TMP/stty.before" "$TMP/stty.after"
ok $? "terminal modes are as before (stty -g)"
ok $([ -f "$TMP/run/checkpoints/step-$s1.safetensors" ]; echo $?) "quit wrote a checkpoint at the paused step ($(ls "$TMP/run/checkpoints" | tr '\n' ' '))"
ok $(grep -q '"command": *"pause"' "$TMP/run/events.jsonl" && grep -q '"source": *"ui"' "$TMP/run/events.jsonl"; echo $?) \
   "events.jsonl records the pause with its step"
ok $(jq -se "map(select(.source==\"ui\" and .set==\"finetune.lr\" and .step==$s1 and .to==1e-5)) | length == 1" \
      "$TMP/run/events.jsonl" >/dev/null; echo $?) \
   "and the :set, at step $s1 ($(grep finetune.lr "$TMP/run/events.jsonl"))"
ok $(grep -q "run --resume" "$TMP/stderr"; echo $?) "it says how to continue ($(tail -1 "$TMP/stderr"))"
"$MNEME" run --resume "$TMP/run" --quiet --stop-after 45 >/dev/null 2>"$TMP/stderr.h"
lr_after=$(jq -s "map(select(.phase==\"finetune\" and .step > $s1)) | .[0].lr" "$TMP/run/metrics.jsonl")
ok $(awk -v a="$lr_after" 'BEGIN { exit !(a != "null" && a + 0 <= 1e-5) }'; echo $?) \
   "the rate set by hand stands after --resume ($lr_after)"

# mneme --resume DIR: the workbench on the same run, on a wide terminal
# (the loss panel beside the plot, drift in the per-layer panel); the step
# goes on from the last checkpoint, and metrics.jsonl never has a step twice
n=$(sed -n 's/.* at finetune step \([0-9]*\);.*/\1/p' "$TMP/stderr.h")
cat >"$TMP/pane3.sh" <<SH
"$MNEME" --resume "$TMP/run" 2>"$TMP/stderr3r"
echo "mneme-exit=\$?"
exec sleep 600
SH
ui_session 170 40 "$TMP/pane3.sh"
# (the "resumed at" log line scrolls away within a second at this speed;
# events.jsonl keeps the restart)
restarted() {
    jq -se "map(select(.command==\"restart\" and .step==$n)) | length == 1" \
        "$TMP/run/events.jsonl" >/dev/null 2>&1
}
wait_until 30 restarted
ok $? "mneme --resume: the workbench resumes the run at finetune step $n"
[ -n "$n" ] || diag "no step in: $(cat "$TMP/stderr.h")"
past() { [ "$(header_step)" -gt "$n" ] 2>/dev/null && grep -q "eval finetune step" "$TMP/pane"; }
wait_until 30 past
ok $? "and trains on from there (header: $(head -1 "$TMP/pane" | sed 's/  */ /g'))"
ok $(grep -q "^┌ accuracy.*┐┌ training loss" "$TMP/pane"; echo $?) \
   "170 columns: the loss panel beside the plot"
ok $(grep -q "learning rate per layer.* drift " "$TMP/pane" &&
     grep -q "layer\.0 .*[0-9]e-0[0-9] *[0-9]\.[0-9][0-9][0-9][0-9]" "$TMP/pane"; echo $?) \
   "the per-layer panel shows each part's drift since the base"
[ $? = 0 ] || { diag "pane:"; sed 's/^/#   /' "$TMP/pane"; }
quit_ui "mneme-exit="
ok $(grep -q "mneme-exit=0" "$TMP/pane"; echo $?) "q, y: the resumed workbench exits 0"
ok $(jq -se 'map(select(.phase != null and .step != null)) | group_by([.branch, .phase, .step])
              | map(select(length > 1)) | length == 0' "$TMP/run/metrics.jsonl" >/dev/null; echo $?) \
   "metrics.jsonl has no step twice after two resumes"
last=$(jq -s 'map(select(.phase=="finetune")) | .[-1].step' "$TMP/run/metrics.jsonl")
ok $([ "$last" -gt "$n" ] 2>/dev/null; echo $?) "and goes past step $n ($last)"
"$MNEME" --resume "$TMP/nonesuch" >/dev/null 2>"$TMP/err" </dev/null
ok $([ $? = 2 ]; echo $?) "mneme --resume without a terminal: exit 2 ($(tail -1 "$TMP/err"))"

# SIGTERM: a checkpoint, exit 1, the terminal given back
cat >"$TMP/pane2.sh" <<SH
stty -g >"$TMP/stty2.before"
sh -c 'echo \$\$ >"$TMP/pid"; exec "$MNEME" "$CFG" --set finetune.epochs=3000 --set finetune.policy="$TMP/p.lua" --out "$TMP/run2" 2>"$TMP/stderr2"'
echo "mneme-exit=\$?"
stty -g >"$TMP/stty2.after"
exec sleep 600
SH
cat >"$TMP/p.lua" <<LUA
return { name = "uitest", params = { every = 100 } }
LUA
ui_session 100 30 "$TMP/pane2.sh"
wait_until 30 evaluated
ok $? "a second run (with a policy) shows its evaluations"
# :set policy.NAME VALUE, paused so the log holds still
T send-keys -t ui Space
wait_for 15 "paused ·"
T send-keys -t ui ":set policy.every 7" Enter
wait_for 15 "set policy.every 7 from step"
ok $? ":set policy.every 7: the log says so"
ok $(jq -se 'map(select(.source=="ui" and .set=="policy.every" and .to=="7")) | length == 1' \
      "$TMP/run2/events.jsonl" >/dev/null; echo $?) "and events.jsonl records it"
T send-keys -t ui ":set policy.every banana" Enter
wait_for 15 "error: set policy.every:"
ok $? ":set policy.every banana: an error in the log"
T send-keys -t ui ":set policy.nonesuch 1" Enter
wait_for 15 "error: set policy.nonesuch:"
ok $? ":set policy.nonesuch: an error in the log"
kill -TERM "$(cat "$TMP/pid")"
wait_for 30 "mneme-exit="
ok $(grep -q "mneme-exit=1" "$TMP/pane" && grep -q "stopped by signal 15" "$TMP/stderr2"; echo $?) \
   "SIGTERM: exit 1, says so ($(tail -1 "$TMP/stderr2"))"
end=$(( $(date +%s) + 10 ))
while [ ! -s "$TMP/stty2.after" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 0.2; done
ok $([ "$(T display -p -t ui '#{alternate_on}')" = 0 ] && cmp -s "$TMP/stty2.before" "$TMP/stty2.after"; echo $?) \
   "SIGTERM: the terminal is restored"
q=$(jq -rs 'map(select(.command=="quit"))[0].step' "$TMP/run2/events.jsonl")
ok $([ -f "$TMP/run2/checkpoints/step-$q.safetensors" ]; echo $?) "SIGTERM: a checkpoint at the step it stopped ($q)"

# A dropped connection: the pty's master goes away without a SIGHUP (mneme
# is in a session of its own, no controlling terminal), so reads fail
# with EIO: checkpoint, restore, exit 1.
if command -v python3 >/dev/null 2>&1; then
    cat >"$TMP/drop.py" <<'PY'
import fcntl, os, pty, select, struct, subprocess, sys, termios, time
mneme, cfg, out, err = sys.argv[1:5]
m, s = pty.openpty()
fcntl.ioctl(s, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
env = dict(os.environ, TERM="xterm")
p = subprocess.Popen([mneme, cfg, "--set", "finetune.epochs=3000", "--out", out],
                     stdin=s, stdout=s, stderr=open(err, "w"), env=env,
                     start_new_session=True)
os.close(s)
end = time.time() + 60
def finetuning():
    try:
        with open(os.path.join(out, "metrics.jsonl")) as f:
            return '"finetune"' in f.read()
    except OSError:
        return False
while time.time() < end and not finetuning():
    if select.select([m], [], [], 0.2)[0]:
        try:
            os.read(m, 65536)
        except OSError:
            break
os.close(m)
try:
    print(p.wait(timeout=60))
except subprocess.TimeoutExpired:
    p.kill()
    print("timeout")
PY
    rc=$(python3 "$TMP/drop.py" "$MNEME" "$CFG" "$TMP/run3" "$TMP/stderr3")
    ok $([ "$rc" = 0 ] && grep -q "terminal went away; the run goes on in the background" "$TMP/stderr3"; echo $?) \
       "a dropped terminal (EIO): the workbench says the run goes on ($rc: $(tail -1 "$TMP/stderr3"))"
    # the run trains on in a process of its own, which ctl reaches
    st=$("$MNEME" ctl "$TMP/run3" status 2>/dev/null | jq -r '"\(.state) \(.pid)"')
    ok $([ "${st%% *}" = running ] || [ "${st%% *}" = finished ]; echo $?) \
       "and a background process trains it on ($st)"
    # from the checkpoint written as the terminal went (the background
    # run may since have rotated the file itself away)
    q=$(jq -rs 'map(select(.command=="quit"))[0].step' "$TMP/run3/events.jsonl" 2>/dev/null)
    from=$(jq -rs 'map(select(.command=="restart"))[0].checkpoint' "$TMP/run3/events.jsonl" 2>/dev/null)
    ok $(case $from in step-$q.safetensors|base-step-$q.safetensors) echo 0;; *) echo 1;; esac) \
       "a dropped terminal: a checkpoint at the step it left, which the background run resumed from ($from, quit at $q)"
    "$MNEME" ctl "$TMP/run3" stop >/dev/null 2>&1
    pid=${st##* }
    end=$(( $(date +%s) + 30 ))
    while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do sleep 0.2; done
fi

done_testing
