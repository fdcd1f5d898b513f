#!/bin/sh
# The workbench on the terminals people have: 256 colours, 8 colours and a
# vt100, at 80x24 and 120x40. Each draws the header, both curves' legend,
# the per-layer panel and the footer's keys, quits cleanly, and leaves the
# exit message on a line of its own.
. "$MNEME_SRCDIR/tests/lib.sh"
CFG="$MNEME_SRCDIR/tests/data/tiny.cfg"
need_tmux
for case in "xterm-256color 120 40" "xterm 80 24" "vt100 80 24" "vt100 120 40"; do
    set -- $case
    term=$1 w=$2 h=$3
    out="$TMP/run-$term-$w"
    cat >"$TMP/ui.sh" <<SH
TERM=$term "$MNEME" "$CFG" --set finetune.epochs=3000 --out "$out" 2>"$TMP/err"
cat "$TMP/err"
echo "mneme-exit=\$?"
exec sleep 600
SH
    ui_session "$w" "$h" "$TMP/ui.sh"
    wait_until 60 sh -c "head -1 '$TMP/pane' | grep -q 'finetune · step [1-9]' && grep -q 'eval finetune' '$TMP/pane'"
    rc=$?
    ok $rc "$term ${w}x$h: the workbench draws the finetune phase"
    show_pane_if $rc
    ok $(grep -q "new ━━" "$TMP/pane" && grep -q "original ┅┅" "$TMP/pane" &&
         grep -q "learning rate per layer" "$TMP/pane" && tail -1 "$TMP/pane" | grep -q "? help · q quit"; echo $?) \
       "$term ${w}x$h: legend, per-layer panel and the footer's keys"
    quit_ui "mneme-exit="
    ok $(grep -q "mneme-exit=0" "$TMP/pane"; echo $?) "$term ${w}x$h: quits with status 0"
    # the line with the exit message holds nothing of the old screen
    msg=$(grep "mneme: quit at" "$TMP/pane" | head -1)
    ok $([ -n "$msg" ] && ! echo "$msg" | grep -q "q quit\|checkpoint ·\|│"; echo $?) \
       "$term ${w}x$h: the exit message stands alone: $(echo "$msg" | cut -c1-70)"
done
done_testing
