#!/bin/sh
# Long runs over SSH: a run trains in the background (mneme run --detach),
# workbenches attach to it and leave, mneme ctl steers it, and neither a
# lost terminal nor a hostile client stops or harms it. Real processes,
# real terminals (tmux); every wait is on a condition.
. "$MNEME_SRCDIR/tests/lib.sh"
CFG="$MNEME_SRCDIR/tests/data/tiny.cfg"
need_tmux
# trainers left behind by a failing test are stopped
# (and clients: under the sanitizers one whose terminal was killed can
# hang in the leak checker's exit, holding a core)
trap 'for p in $(cat "$TMP"/*.pid 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
      pkill -9 -f -- "attach.*$TMP" 2>/dev/null
      T kill-server >/dev/null 2>&1; rm -rf "$TMP"' EXIT INT TERM

# cap SESSION: its screen into $TMP/SESSION.pane
cap() { T capture-pane -p -t "$1" >"$TMP/$1.pane" 2>/dev/null; }
# wait_in SECONDS SESSION TEXT
wait_in() {
    end=$(( $(date +%s) + $1 ))
    while :; do
        cap "$2"
        grep -qF -- "$3" "$TMP/$2.pane" && return 0
        [ "$(date +%s)" -ge "$end" ] && return 1
        sleep 0.2
    done
}
# until_true SECONDS COMMAND...
until_true() {
    end=$(( $(date +%s) + $1 )); shift
    while ! "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -ge "$end" ] && return 1
        sleep 0.2
    done
}
st() { "$MNEME" ctl "$1" status 2>/dev/null | jq -r "$2"; }
state_is() { [ "$(st "$1" .state)" = "$2" ]; }
step_past() { [ "$(st "$1" .step)" -gt "$2" ] 2>/dev/null; }
alive() { kill -0 "$1" 2>/dev/null; }
dead() { ! kill -0 "$1" 2>/dev/null; }
clients_are() { [ "$(st "$1" .clients)" = "$2" ]; }

R=$TMP/run
# ---- mneme run --detach ----
start=$(date +%s)
"$MNEME" run --detach "$CFG" --set finetune.epochs=3000 --out "$R" >"$TMP/out" 2>"$TMP/err"
rc=$?
ok $([ "$rc" = 0 ] && [ "$(cat "$TMP/out")" = "$R" ] && grep -q "mneme attach $R" "$TMP/err"; echo $?) \
   "run --detach prints the run folder and how to attach, and returns ($rc, $(( $(date +%s) - start )) s)"
pid=$(st "$R" .pid)
echo "$pid" >"$TMP/main.pid"
ok $(alive "$pid" && [ "$(ps -o sid= -p "$pid" | tr -d ' ')" = "$pid" ] && [ "$(readlink /proc/$pid/fd/0)" = /dev/null ]; echo $?) \
   "it trains in a process of its own session (pid $pid), stdin from /dev/null"
until_true 30 grep -q "finetune step" "$R/trainer.log"
ok $? "its output goes to the run's trainer.log"

# ---- mneme ctl ----
"$MNEME" ctl "$R" status >"$TMP/status" 2>"$TMP/err"
ok $([ $? = 0 ] && jq -e '.step >= 0 and (.phase|type=="string") and .state=="running" and .branch=="main" and .clients==0' "$TMP/status" >/dev/null; echo $?) \
   "ctl status: step, phase, state, branch, clients ($(cut -c1-120 "$TMP/status"))"
"$MNEME" ctl "$R" pause >"$TMP/reply" 2>"$TMP/err"
ok $([ $? = 0 ] && jq -e '.ok and (.reply|test("paused"))' "$TMP/reply" >/dev/null && state_is "$R" paused; echo $?) \
   "ctl pause pauses: $(cat "$TMP/reply")"
"$MNEME" ctl "$R" pause >"$TMP/reply" 2>&1
ok $([ $? = 0 ] && grep -q "already paused" "$TMP/reply" && state_is "$R" paused; echo $?) \
   "ctl pause on a paused run leaves it paused (no toggle)"
paused_at=$(st "$R" .step)
"$MNEME" ctl "$R" set finetune.lr 2e-5 >"$TMP/reply" 2>"$TMP/err"
ok $([ $? = 0 ] && jq -e '.ok and (.reply|test("set finetune.lr 2e-05"))' "$TMP/reply" >/dev/null; echo $?) \
   "ctl set finetune.lr 2e-5: applied"
"$MNEME" ctl "$R" set finetune.lr 1e30 >"$TMP/reply" 2>"$TMP/err"
rc=$?
ok $([ "$rc" = 1 ] && jq -e '.ok == false' "$TMP/reply" >/dev/null && grep -q "refused: error: set: finetune.lr: expected" "$TMP/err"; echo $?) \
   "ctl set finetune.lr 1e30: refused, exit 1, the reason on stderr ($rc: $(cat "$TMP/err"))"
"$MNEME" ctl "$R" frezee layer.0 >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && grep -q "did you mean freeze" "$TMP/err"; echo $?) "ctl frezee: exit 2, did you mean freeze"
"$MNEME" ctl "$R" theme light >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && grep -q "changes what a workbench shows" "$TMP/err"; echo $?) "ctl theme: refused, it is the workbench's"
"$MNEME" ctl "$R" freeze layer.0 >"$TMP/reply" 2>&1
ok $([ $? = 0 ] && jq -e '.ok' "$TMP/reply" >/dev/null; echo $?) "ctl freeze layer.0: applied"
ok $(jq -se 'map(select(.source=="ctl")) | map(.command) == ["pause","set","freeze"]' "$R/events.jsonl" >/dev/null; echo $?) \
   "events.jsonl records each applied command with source ctl, the refused one not"
"$MNEME" ctl "$R" checkpoint before-lr >"$TMP/reply" 2>&1
ok $([ $? = 0 ] && ls "$R"/checkpoints/tag-before-lr-step-*.safetensors >/dev/null 2>&1; echo $?) \
   "ctl checkpoint before-lr writes tag-before-lr-step-N"
"$MNEME" ctl "$R" fork lower @0 finetune.lr=1e-5 >"$TMP/reply" 2>&1
ok $([ $? = 0 ] && [ -f "$R/branches/lower/branch.json" ] && jq -e '.reply|test("forked lower at step 0")' "$TMP/reply" >/dev/null; echo $?) \
   "ctl fork lower @0 finetune.lr=1e-5 makes the branch"
"$MNEME" ctl "$R" drop lower >/dev/null 2>&1
ok $([ ! -d "$R/branches/lower" ]; echo $?) "ctl drop lower sets it aside"
"$MNEME" ctl "$R" reload >/dev/null 2>"$TMP/err"
ok $([ $? = 1 ] && grep -q "this run has no policy" "$TMP/err"; echo $?) "ctl reload without a policy: refused"
"$MNEME" ctl "$TMP/nowhere" status >/dev/null 2>"$TMP/err"
ok $([ $? = 3 ]; echo $?) "ctl on a folder that is no run: exit 3 ($(cat "$TMP/err"))"

# ---- attach, steer, detach ----
cat >"$TMP/attach.sh" <<SH
"$MNEME" attach "$R"
echo "attach-exit=\$?"
exec sleep 600
SH
ui_session 120 40 "$TMP/attach.sh"
wait_for 20 "paused"
rc=$?
ok $rc "attach shows the paused run"
show_pane_if $rc
wait_for 10 "dropped lower; its folder is now"
ok $? "with the log from before it attached (the ctl's drop)"
ok $(grep -q "step $paused_at/" "$TMP/pane"; echo $?) "at the step it paused ($paused_at)"
dots=$(sed -n '3,20p' "$TMP/pane" | grep -o -P '[\x{2801}-\x{28FF}]' | wc -l)
ok $(grep -q "accuracy" "$TMP/pane" && [ "$dots" -gt 3 ]; echo $?) \
   "and the plot of the history so far ($dots braille cells)"
ok $(clients_are "$R" 1; echo $?) "ctl status counts one attached workbench"
T send-keys -t ui Space
until_true 20 state_is "$R" running
ok $? "space in the attached workbench resumes the run"
T send-keys -t ui ":set finetune.lr 1e-4" Enter
until_true 20 grep -q '"source":"attach","command":"set"' "$R/events.jsonl"
ok $? ":set from the attached workbench is applied and recorded with source attach"
T send-keys -t ui Space
until_true 20 state_is "$R" paused
T send-keys -t ui d
wait_for 20 "attach-exit=0"
ok $(grep -q "left $R training" "$TMP/pane" && alive "$pid"; echo $?) "d leaves; the trainer goes on"
ok $(clients_are "$R" 0; echo $?) "and no workbench counts as attached"

# a client whose terminal dies: the run does not notice
ui_session 100 30 "$TMP/attach.sh"
wait_for 20 "paused"
at=$(st "$R" .step)
T kill-session -t ui
until_true 10 clients_are "$R" 0
ok $? "a client's terminal killed: the trainer lets the client go"
ok $(alive "$pid" && state_is "$R" paused && [ "$(st "$R" .step)" = "$at" ]; echo $?) \
   "and the run is where it was (paused at $at)"

# two at once, one read-only, from a second "SSH session"
ui_session 120 40 "$TMP/attach.sh"
T new-session -d -s ro -x 80 -y 24 "\"$MNEME\" attach --read-only \"$R\"; echo attach-exit=\$?; exec sleep 600"
wait_for 20 "paused"
wait_in 20 ro "paused"
rc=$?
ok $rc "a second client, read-only, at 80x24 beside one at 120x40"
until_true 10 clients_are "$R" 2
ok $? "ctl status counts both"
T send-keys -t ro Space
wait_in 10 ro "read-only"
ok $(state_is "$R" paused; echo $?) "space in the read-only one is refused there and changes nothing"
T send-keys -t ui Space
until_true 20 state_is "$R" running
wait_in 20 ro "running"
ok $? "the other resumes the run, and the read-only one sees it"
T send-keys -t ro d
wait_in 10 ro "attach-exit=0"
ok $? "the read-only one leaves"

# ---- hostile frames: the trainer goes on ----
cat >"$TMP/fuzz.py" <<'PY'
import json, os, random, socket, struct, sys
path = sys.argv[1]
rng = random.Random(7)
hello = json.dumps({"t": "hello", "v": 1, "role": "workbench", "read_only": False}).encode()
# mutated commands go through a read-only hello: one that happens to be
# valid is refused, so none may change the run
watch = json.dumps({"t": "hello", "v": 1, "role": "workbench", "read_only": True}).encode()
cmd = json.dumps({"t": "cmd", "id": 1, "kind": "freeze", "value": 0, "arg": "layer.0", "text": ""}).encode()
def frame(b):
    return struct.pack(">I", len(b)) + b
def mutate(b):
    b = bytearray(b)
    for _ in range(rng.randint(1, 8)):
        op = rng.randint(0, 3)
        i = rng.randrange(len(b)) if b else 0
        if op == 0 and b: b[i] = rng.randrange(256)
        elif op == 1: b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 5)))
        elif op == 2 and b: del b[i:i + rng.randint(1, 5)]
        else: b += b[:rng.randint(0, 10)]
    return bytes(b)
sent = 0
for conn in range(240):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(0.2)
    s.connect(path)
    kind = conn % 6
    try:
        if kind == 0:     # random bytes
            s.sendall(bytes(rng.randrange(256) for _ in range(rng.randint(1, 300))))
        elif kind == 1:   # a huge length
            s.sendall(struct.pack(">I", 0xFFFFFFFF) + b"{}")
        elif kind == 2:   # mutated frames after a good hello
            s.sendall(frame(watch))
            for _ in range(5):
                s.sendall(frame(mutate(cmd)))
        elif kind == 3:   # a command before any hello
            s.sendall(frame(cmd))
        elif kind == 4:   # truncated: half a frame, then gone
            f = frame(hello)
            s.sendall(f[:rng.randint(1, len(f) - 1)])
        else:             # mutated hellos
            s.sendall(frame(mutate(hello)))
        sent += 1
        try:
            s.recv(65536)
        except (socket.timeout, OSError):
            pass
    except OSError:
        sent += 1
    s.close()
# a client that never reads: it must not hold the trainer back
slow = socket.socket(socket.AF_UNIX)
slow.connect(path)
slow.sendall(frame(hello))
print(sent)
sys.stdout.flush()
os.read(0, 1)   # held open until the caller is done
PY
before=$(st "$R" .step)
# the script holds its slow client until its stdin (a fifo) closes
mkfifo "$TMP/hold"
python3 "$TMP/fuzz.py" "$R/control.sock" >"$TMP/fuzz.out" 2>"$TMP/fuzz.err" <"$TMP/hold" &
fpid=$!
exec 7>"$TMP/hold"
until_true 180 test -s "$TMP/fuzz.out"
ok $([ "$(cat "$TMP/fuzz.out")" = 240 ]; echo $?) "240 connections of random, oversized, truncated and mutated frames ($(cat "$TMP/fuzz.err" | tail -1))"
until_true 30 step_past "$R" "$((before + 200))"
ok $(alive "$pid" && state_is "$R" running; echo $?) \
   "the trainer lives, answers and trains on, a client that never reads still connected ($before -> $(st "$R" .step))"
ok $(! jq -se 'map(select(.command=="freeze" and .source=="attach")) | length > 0' "$R/events.jsonl" >/dev/null; echo $?) \
   "no mutated frame was taken for a command"
exec 7>&-
wait "$fpid" 2>/dev/null

# SIGHUP (a terminal it never had) changes nothing
kill -HUP "$pid"
at=$(st "$R" .step)
until_true 20 step_past "$R" "$at"
ok $(alive "$pid"; echo $?) "SIGHUP does not stop a background run"

# ---- the run ends while a client watches ----
R2=$TMP/short
"$MNEME" run --detach "$CFG" --set finetune.epochs=60 --out "$R2" >/dev/null 2>&1
pid2=$(st "$R2" .pid)
echo "$pid2" >"$TMP/short.pid"
"$MNEME" ctl "$R2" pause >/dev/null 2>&1
cat >"$TMP/attach2.sh" <<SH
"$MNEME" attach "$R2"
echo "attach-exit=\$?"
exec sleep 600
SH
ui_session 100 30 "$TMP/attach2.sh"
wait_for 20 "paused"
"$MNEME" ctl "$R2" resume >/dev/null 2>&1
wait_for 120 "the run finished at step"
rc=$?
ok $rc "a run that finishes while attached says so in the workbench"
show_pane_if $rc
until_true 20 dead "$pid2"
ok $? "and its trainer ends"
T send-keys -t ui q
wait_for 10 "attach-exit=0"
ok $(grep -q "the run finished" "$TMP/pane"; echo $?) "q leaves, saying why"

# ---- stop ----
"$MNEME" ctl "$R" stop >"$TMP/reply" 2>&1
ok $([ $? = 0 ] && jq -e '.ok and (.reply|test("checkpoint"))' "$TMP/reply" >/dev/null; echo $?) "ctl stop: checkpointed"
until_true 30 dead "$pid"
ok $? "and the trainer ends"
ok $([ ! -e "$R/control.sock" ] && [ "$(jq -r .status "$R/summary.json")" = stopped ]; echo $?) \
   "the socket is gone and the summary says stopped"
"$MNEME" ctl "$R" status >/dev/null 2>"$TMP/err"
ok $([ $? = 3 ] && grep -q "is not live: it ended as stopped" "$TMP/err" && grep -q "mneme run --detach --resume" "$TMP/err"; echo $?) \
   "ctl on an ended run: exit 3, not live, and how to go on"

# ---- a killed trainer's socket ----
"$MNEME" run --detach --resume "$R" >/dev/null 2>"$TMP/err"
pid3=$(st "$R" .pid)
echo "$pid3" >"$TMP/resumed.pid"
ok $([ -n "$pid3" ] && alive "$pid3"; echo $?) "run --detach --resume continues it in the background"
kill -9 "$pid3"
until_true 10 dead "$pid3"
ok $([ -S "$R/control.sock" ]; echo $?) "kill -9 leaves its socket behind"
"$MNEME" attach "$R" >/dev/null 2>"$TMP/err" </dev/null
rc=$?
ok $([ "$rc" = 3 ] && grep -q "is not live" "$TMP/err" && [ ! -e "$R/control.sock" ]; echo $?) \
   "attach on it: not live, how to resume, and the stale socket is removed ($rc)"
"$MNEME" run --detach --resume "$R" >/dev/null 2>&1
pid4=$(st "$R" .pid)
echo "$pid4" >"$TMP/again.pid"
ok $([ -n "$pid4" ] && alive "$pid4" && state_is "$R" running; echo $?) "and resuming works as before (running, as it was)"
"$MNEME" runs "$TMP" >"$TMP/runs" 2>&1
ok $(grep -q "live: pid $pid4, main running at finetune step [0-9]*/57000, 0 attached" "$TMP/runs"; echo $?) \
   "mneme runs marks the live run: $(grep live: "$TMP/runs" | cut -c1-90)"
ok $(grep -A1 "^short" "$TMP/runs" | grep -q "finished" && ! grep -A1 "^short" "$TMP/runs" | grep -q "live:"; echo $?) \
   "and the one that ended as ended"
"$MNEME" attach "$R" </dev/null >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && grep -q "not a terminal: the workbench needs one; use mneme ctl $R status" "$TMP/err"; echo $?) \
   "attach without a terminal says how to steer the run instead ($(cut -c1-60 "$TMP/err"))"
# attach without a folder: the live run under runs/
mkdir -p "$TMP/w/runs"
ln -s "$R" "$TMP/w/runs/live"
ln -s "$R2" "$TMP/w/runs/ended"
cat >"$TMP/attach3.sh" <<SH
cd "$TMP/w" && "$MNEME" attach
echo "attach-exit=\$?"
exec sleep 600
SH
ui_session 100 30 "$TMP/attach3.sh"
until_true 20 clients_are "$R" 1
ok $? "attach with no folder finds the one live run under runs/"
T send-keys -t ui d
wait_for 10 "attach-exit=0"
ok $? "and d leaves it"
"$MNEME" ctl "$R" stop >/dev/null 2>&1
until_true 30 dead "$pid4"
(cd "$TMP/w" && "$MNEME" attach </dev/null >/dev/null 2>"$TMP/err")
ok $([ $? = 3 ] && grep -q "no live run under runs/" "$TMP/err"; echo $?) \
   "and with none live says so: $(cat "$TMP/err" | cut -c1-80)"

# the workbench that started a run hands it over on d
cat >"$TMP/ui.sh" <<SH
"$MNEME" "$CFG" --set finetune.epochs=3000 --out "$TMP/inproc"
echo "mneme-exit=\$?"
exec sleep 600
SH
ui_session 100 30 "$TMP/ui.sh"
wait_for 30 "running"
T send-keys -t ui d
wait_for 30 "mneme-exit=0"
rc=$?
ok $(grep -q "training in the background" "$TMP/pane"; echo $?) \
   "d in the workbench that started the run: it goes on in the background"
show_pane_if $rc
pid5=$(st "$TMP/inproc" .pid)
echo "$pid5" >"$TMP/inproc.pid"
at=$(st "$TMP/inproc" .step)
until_true 20 step_past "$TMP/inproc" "$at"
ok $? "a background process trains it on (pid $pid5, past step $at)"
q=$(jq -rs 'map(select(.command=="quit"))[0].step' "$TMP/inproc/events.jsonl")
from=$(jq -rs 'map(select(.command=="restart"))[0].checkpoint' "$TMP/inproc/events.jsonl")
ok $(case $from in step-$q.safetensors|base-step-$q.safetensors) echo 0;; *) echo 1;; esac) "resumed from the checkpoint written as it left ($from, quit at $q)"
"$MNEME" ctl "$TMP/inproc" stop >/dev/null 2>&1
until_true 30 dead "$pid5"

# SIGHUP to the workbench that started a run (its SSH session dropped)
cat >"$TMP/ui2.sh" <<SH
sh -c 'echo \$\$ >"$TMP/ui2.pid"; exec "$MNEME" "$CFG" --set finetune.epochs=3000 --out "$TMP/hup" 2>"$TMP/hup.err"'
echo "mneme-exit=\$?"
exec sleep 600
SH
ui_session 100 30 "$TMP/ui2.sh"
wait_for 30 "running"
kill -HUP "$(cat "$TMP/ui2.pid")"
wait_for 30 "mneme-exit="
pid6=$(st "$TMP/hup" .pid)
echo "$pid6" >"$TMP/hup.pid"
ok $(grep -q "mneme-exit=0" "$TMP/pane" && grep -q "terminal went away; the run goes on in the background" "$TMP/hup.err" && [ -n "$pid6" ] && [ "$pid6" != "$(cat "$TMP/ui2.pid")" ]; echo $?) \
   "SIGHUP to the workbench: the run goes on in a background process (pid $pid6)"
"$MNEME" ctl "$TMP/hup" stop >/dev/null 2>&1
until_true 30 dead "$pid6"

# ---- only the owner ----
nobody=$(id -u nobody 2>/dev/null)
if [ "$(id -u)" = 0 ] && [ -n "$nobody" ] && command -v setpriv >/dev/null 2>&1; then
    O=$TMP/others
    mkdir -m 777 "$O"
    chmod 755 "$TMP"
    setpriv --reuid="$nobody" --regid="$(id -g nobody)" --clear-groups \
        "$MNEME" run --detach "$CFG" --set finetune.epochs=3000 --out "$O/run" >/dev/null 2>"$TMP/err"
    opid=$(cat "$O/run/lock" 2>/dev/null)
    echo "$opid" >"$TMP/others.pid"
    ok $([ "$(stat -c %a "$O/run/control.sock")" = 600 ]; echo $?) "the socket is the owner's only (mode 600)"
    "$MNEME" ctl "$O/run" status >/dev/null 2>"$TMP/err"
    ok $([ $? = 3 ] && grep -q "only the run's owner (uid $nobody) may connect, not uid 0" "$TMP/err"; echo $?) \
       "root connecting to nobody's run is refused by its credentials ($(cat "$TMP/err"))"
    ok $(alive "$opid"; echo $?) "and that run goes on"
    kill -TERM "$opid"
    until_true 30 dead "$opid"
else
    ok 0 "# SKIP the owner check needs root, a user nobody and setpriv"
fi
done_testing
