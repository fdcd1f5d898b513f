#!/bin/sh
# What the workbench costs training: fine-tunes the default experiment
# (experiments/demo.cfg as it is; EPOCHS=N sets finetune.epochs) from one
# base, alternately
# headless and with the curses UI open, each in a detached 120x40 tmux
# pane (the order alternating from rep to rep), and
# compares steps/s measured inside each run (summary.json: final step over
# timing.train_s, the time in optimizer steps) and over the wall clock
# (metrics.jsonl elapsed_s of the last line, evaluations included), then
# the mean and the median of the per-rep differences.
# usage: bench/ui_cost.sh [MNEME] [REPS] [THREADS]   (THREADS: 0 = default)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mneme=$(cd "$(dirname "${1:-./mneme}")" && pwd)/$(basename "${1:-./mneme}")
reps=${2:-3}
threads=${3:-0}
cfg="$here/../experiments/demo.cfg"
out=$(mktemp -d "${TMPDIR:-/tmp}/mneme-ui-cost.XXXXXX")
sock="mneme-ui-cost-$$"
T() { tmux -L "$sock" -f /dev/null "$@"; }
trap 'T kill-server >/dev/null 2>&1 || :; rm -rf "$out"' EXIT INT TERM
set --
[ -z "${EPOCHS:-}" ] || set -- --set finetune.epochs="$EPOCHS"
[ "$threads" = 0 ] || set -- "$@" --set threads="$threads"

# a second session holds the server up between panes (a new-session
# while the last session's server exits fails)
T new-session -d -s hold "exec sleep 3600"
"$mneme" run --headless "$cfg" --out "$out/base" --quiet "$@" --set finetune.epochs=1 >/dev/null
base="$out/base/checkpoints/base.safetensors"

. "$here/cost_lib.sh"
shows() { T capture-pane -p -t ui | grep -qF -- "$1"; }

headless() {
    dir=$1; shift
    LC_ALL=C.UTF-8 T new-session -d -s ui -x 120 -y 40 \
        "'$mneme' run --headless '$cfg' --out '$dir' --quiet $* --set base.checkpoint='$base' >/dev/null 2>&1; touch '$out/ui.done'; sleep 60"
    until_ok 600 finished "$dir"
    until_ok 30 test -e "$out/ui.done"
    T kill-session -t ui
    rm -f "$out/ui.done"
}
workbench() {
    dir=$1; shift
    LC_ALL=C.UTF-8 T new-session -d -s ui -x 120 -y 40 \
        "'$mneme' '$cfg' --out '$dir' $* --set base.checkpoint='$base' 2>'$out/ui.err'; touch '$out/ui.done'; sleep 60"
    until_ok 600 finished "$dir"
    T send-keys -t ui q
    until_ok 30 shows "quit? checkpoint and quit"
    T send-keys -t ui y
    until_ok 30 test -e "$out/ui.done"
    T kill-session -t ui
    rm -f "$out/ui.done"
}

for rep in $(seq 1 "$reps"); do
    h="$out/headless$rep" u="$out/ui$rep"
    # both in the same kind of tmux pane (a pane alone costs a few per
    # cent), in alternating order
    if [ $((rep % 2)) = 1 ]; then
        headless "$h" "$@"
        workbench "$u" "$@"
    else
        workbench "$u" "$@"
        headless "$h" "$@"
    fi
    pair "$rep" "$h" "$u" "headless" "with the UI"
done
summary "headless" "with the UI"
