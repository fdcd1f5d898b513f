#!/bin/sh
# The mouse in the workbench, in a real terminal: tmux reports clicks and
# the wheel to the pane as xterm's SGR sequences (ESC [ < B ; X ; Y M,
# what kmous=\E[< of xterm-256color says), injected here with send-keys.
# A click on a branch follows it, a click on a layer types its freeze on
# the command line (Esc drops it, Enter applies it), the wheel scrolls
# the log and the pages, and a page or the quit question keeps clicks
# from the run. Without a mouse (vt100, MNEME_MOUSE=0) nothing turns
# mouse reporting on.
. "$MNEME_SRCDIR/tests/lib.sh"
CFG="$MNEME_SRCDIR/tests/data/tiny.cfg"
need_tmux

# cell_of TEXT: "COL ROW" of TEXT's first character in the last capture,
# 1-based as the mouse reports them; fails when TEXT is not there
cell_of() {
    line=$(grep -n -m1 -F -- "$1" "$TMP/pane") || return 1
    prefix=${line#*:}
    prefix=${prefix%%"$1"*}
    echo "$(( $(printf '%s' "$prefix" | wc -m) + 1 )) ${line%%:*}"
}
# mouse BUTTON COL ROW: a press and a release (a wheel notch has none)
mouse() {
    if [ "$1" -ge 64 ]; then
        T send-keys -t ui -l "$(printf '\033[<%d;%d;%dM' "$1" "$2" "$3")"
    else
        T send-keys -t ui -l "$(printf '\033[<%d;%d;%dM\033[<%d;%d;%dm' "$1" "$2" "$3" "$1" "$2" "$3")"
    fi
}
# click TEXT: button 1 on TEXT as the last capture shows it
click() { set -- $(cell_of "$1") && mouse 0 "$1" "$2"; }
# wheel up|down TEXT [ROWS]: a notch of the wheel over TEXT, or ROWS below
wheel() {
    b=64; [ "$1" = down ] && b=65
    down=${3:-0}
    set -- $(cell_of "$2") && mouse "$b" "$1" $(($2 + down))
}
mouse_flag() { T display -p -t ui '#{mouse_any_flag}'; }
footer() { tail -1 "$TMP/pane"; }
header_names() { head -1 "$TMP/pane" | grep -q " $1 · finetune"; }
fine_tuning() { head -1 "$TMP/pane" | grep -q "finetune · step [1-9]" && grep -q "eval finetune step" "$TMP/pane"; }
# the layer.0 row shows a rate (it trains) or "frozen"
layer0_trains() { grep -q "layer\.0  *[^ ]* *[0-9]\.[0-9]e-0[0-9]" "$TMP/pane"; }
layer0_frozen() { grep -q "layer\.0  *░ frozen" "$TMP/pane"; }

# start RUN TERM W H [ENV]: mneme on the tiny pair in a W×H pane, into
# $TMP/RUN
start() {
    cat >"$TMP/ui.sh" <<SH
$5 TERM=$2 "$MNEME" "$CFG" --set finetune.epochs=3000 --out "$TMP/$1" 2>"$TMP/err"
echo "mneme-exit=\$?"
exec sleep 600
SH
    ui_session "$3" "$4" "$TMP/ui.sh"
    wait_until 60 fine_tuning
}

for size in "80 24" "120 40"; do
    set -- $size
    w=$1 h=$2 at="${w}x$h"
    run="$TMP/run-$at"
    start "run-$at" xterm-256color "$w" "$h"
    st=$?; ok $st "$at: the workbench draws the finetune phase"; show_pane_if $st
    ok $([ "$(mouse_flag)" = 1 ]; echo $?) "$at: it turns mouse reporting on (xterm-256color)"

    # a click on a layer types the command; Esc drops it, nothing changes
    click "layer.0 "
    wait_until 10 sh -c "tail -1 '$TMP/pane' | grep -q '^:freeze layer\.0 *\$'"
    st=$?; ok $st "$at: a click on layer.0 opens the command line with 'freeze layer.0'"; show_pane_if $st
    T send-keys -t ui Escape
    wait_until 10 sh -c "tail -1 '$TMP/pane' | grep -q '? help'"
    ok $? "$at: Esc closes it"
    sleep 0.3   # what Enter would have changed has had time to show
    T capture-pane -p -t ui >"$TMP/pane"
    ok $(layer0_trains && ! grep -q '"command":"freeze"' "$run/events.jsonl"; echo $?) \
       "$at: and training is unchanged: layer.0 still trains, no freeze recorded"
    click "embeddings "
    wait_until 10 sh -c "tail -1 '$TMP/pane' | grep -q '^:freeze embeddings *\$'"
    ok $? "$at: a click on the embeddings: 'freeze embeddings', the part's own name"
    T send-keys -t ui Escape

    # the wheel over the log, the run paused so that the log stands still
    T send-keys -t ui Space
    wait_until 10 sh -c "head -1 '$TMP/pane' | grep -q paused"
    wheel up "┌ log" 1
    wait_for 10 "log: 3 lines back"
    st=$?; ok $st "$at: the wheel up over the log scrolls it back 3 lines"; show_pane_if $st
    wheel up "┌ log: 3 lines back" 1
    wait_for 10 "log: 6 lines back"
    ok $? "$at: another notch, 3 more"
    wheel down "┌ log: 6 lines back" 1
    wheel down "┌ log: 6 lines back" 1
    wait_for 10 "┌ log ─"
    ok $? "$at: the wheel down brings it back to the newest lines"
    wheel up "learning rate per layer"
    sleep 0.3
    T capture-pane -p -t ui >"$TMP/pane"
    ok $(grep -q "┌ log ─" "$TMP/pane"; echo $?) "$at: the wheel elsewhere leaves the log alone"
    T send-keys -t ui Space

    # a branch, then clicks on the branch list
    T send-keys -t ui ":fork lower" Enter
    wait_until 30 grep -q "forked lower at step" "$run/log.txt"
    st=$?; ok $st "$at: :fork lower"; show_pane_if $st
    wait_for 10 "■ main"
    if [ "$w" -ge 120 ]; then
        click "■ lower"
        wait_until 10 header_names lower
        st=$?; ok $st "$at: a click on lower's row follows it: the header names it"; show_pane_if $st
    else
        # 80x24 has room for one row of the list: main's
        T send-keys -t ui Tab
        wait_until 10 header_names lower
    fi
    click "■ main"
    wait_until 10 header_names main
    st=$?; ok $st "$at: a click on main's row follows main again"; show_pane_if $st

    # the quit question: a click cancels it and reaches nothing
    T send-keys -t ui Tab
    wait_until 10 header_names lower
    T send-keys -t ui q
    wait_for 10 "quit? checkpoint and quit: y / n"
    click "■ main"
    wait_for 10 "quit cancelled"
    st=$?
    sleep 0.3
    T capture-pane -p -t ui >"$TMP/pane"
    ok $([ $st = 0 ] && header_names lower; echo $?) \
       "$at: a click while quit? is asked cancels it, and does not follow main"

    # the help page: the wheel scrolls it, a click reaches nothing under it
    layer=$(cell_of "layer.0 ")
    T send-keys -t ui "?"
    wait_for 10 "? or Esc closes"
    if grep -q "help (more below)" "$TMP/pane"; then   # 120x40 holds it all
        wheel down "help (more below)" 2
        wait_for 10 "(more above"
        st=$?; ok $st "$at: the wheel scrolls the help page"; show_pane_if $st
    fi
    mouse 0 $layer   # where layer.0's row is, under the page
    T send-keys -t ui Escape
    wait_until 10 sh -c "tail -1 '$TMP/pane' | grep -q '? help' && ! grep -q '(more above' '$TMP/pane'"
    ok $? "$at: a click on the help page opens nothing: the footer shows the keys after Esc"

    # the log page scrolls with the wheel too
    T send-keys -t ui L
    wait_for 10 "L or Esc closes"
    wheel up "L or Esc closes"
    wait_for 10 "(scrolled back)"
    st=$?; ok $st "$at: the wheel scrolls the log page"; show_pane_if $st
    T send-keys -t ui Escape

    if [ "$w" -ge 120 ]; then
        # while a command is typed, a click keeps it and does nothing
        T send-keys -t ui ":eval"
        wait_until 10 sh -c "tail -1 '$TMP/pane' | grep -q '^:eval *\$'"
        click "layer.0 "
        click "■ main"
        sleep 0.3
        T capture-pane -p -t ui >"$TMP/pane"
        ok $(footer | grep -q '^:eval *$' && header_names lower; echo $?) \
           "$at: a click while a command is typed keeps what is typed and follows nothing"
        T send-keys -t ui Escape

        # Enter applies what a click typed; a frozen row offers unfreeze
        wait_until 10 layer0_trains
        click "layer.0 "
        wait_until 10 sh -c "tail -1 '$TMP/pane' | grep -q '^:freeze layer\.0'"
        T send-keys -t ui Enter
        wait_until 15 layer0_frozen
        st=$?; ok $st "$at: Enter applies it: layer.0 shows frozen"; show_pane_if $st
        click "layer.0 "
        wait_until 10 sh -c "tail -1 '$TMP/pane' | grep -q '^:unfreeze layer\.0 *\$'"
        st=$?; ok $st "$at: a click on the frozen row offers 'unfreeze layer.0'"; show_pane_if $st
        T send-keys -t ui Enter
        wait_until 15 layer0_trains
        ok $? "$at: and Enter lets it train again"
    fi

    quit_ui "mneme-exit="
    ok $(grep -q "mneme-exit=0" "$TMP/pane"; echo $?) "$at: quits with status 0"
    ok $([ "$(mouse_flag)" = 0 ]; echo $?) "$at: and turns mouse reporting off again"
done

# No mouse: a vt100, and MNEME_MOUSE=0 on an xterm. Reporting stays off,
# and nothing of a mouse sequence lands on the screen.
for case in "vt100" "xterm-256color MNEME_MOUSE=0"; do
    set -- $case
    start "run-$1-$2" "$1" 80 24 "$2"
    st=$?; ok $st "$case: the workbench draws the finetune phase"; show_pane_if $st
    ok $([ "$(mouse_flag)" = 0 ]; echo $?) "$case: mouse reporting stays off"
    ok $(footer | grep -q "? help · q quit" && ! grep -q '\[?10\|\[<\|1006' "$TMP/pane"; echo $?) \
       "$case: the footer's keys, and no mouse sequence printed"
    T send-keys -t ui ":"
    wait_until 10 sh -c "tail -1 '$TMP/pane' | grep -q '^: *\$'"
    ok $? "$case: the keys work as ever (: opens the command line)"
    T send-keys -t ui Escape
    quit_ui "mneme-exit="
    ok $(grep -q "mneme-exit=0" "$TMP/pane"; echo $?) "$case: quits with status 0"
done
done_testing
