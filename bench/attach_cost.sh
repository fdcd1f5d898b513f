#!/bin/sh
# What attached clients cost a background run: fine-tunes the default
# experiment (experiments/demo.cfg as it is; EPOCHS=N sets
# finetune.epochs) from one base with mneme run --detach, alternately
# alone and with CLIENTS workbenches attached (mneme attach, in detached
# tmux panes of 120x40, 80x24 and 100x30), the order alternating from rep
# to rep, and compares steps/s measured inside each run (summary.json:
# final step over timing.train_s) and over the wall clock (the last
# metrics.jsonl line), then the mean and the median of the per-rep
# differences. Both sides wait for the run with shell builtins only.
# usage: bench/attach_cost.sh [MNEME] [REPS] [CLIENTS]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mneme=$(cd "$(dirname "${1:-./mneme}")" && pwd)/$(basename "${1:-./mneme}")
reps=${2:-3}
clients=${3:-3}
cfg="$here/../experiments/demo.cfg"
out=$(mktemp -d "${TMPDIR:-/tmp}/mneme-attach-cost.XXXXXX")
sock="mneme-attach-cost-$$"
T() { tmux -L "$sock" -f /dev/null "$@"; }
trap 'T kill-server >/dev/null 2>&1 || :; rm -rf "$out"' EXIT INT TERM
set --
[ -z "${EPOCHS:-}" ] || set -- --set finetune.epochs="$EPOCHS"

T new-session -d -s hold "exec sleep 3600"
"$mneme" run --headless "$cfg" --out "$out/base" --quiet "$@" --set finetune.epochs=1 >/dev/null
base="$out/base/checkpoints/base.safetensors"

. "$here/cost_lib.sh"
# the trainer has let go of the folder (its socket removed at the end)
ended() { finished "$1" && [ ! -e "$1/control.sock" ]; }

run() {
    dir=$1 n=$2; shift 2
    "$mneme" run --detach "$cfg" --out "$dir" --quiet "$@" --set base.checkpoint="$base" >/dev/null 2>&1
    sizes="120x40 80x24 100x30 132x43 90x30"
    i=0
    for size in $sizes; do
        [ "$i" -lt "$n" ] || break
        LC_ALL=C.UTF-8 T new-session -d -s "c$i" -x "${size%x*}" -y "${size#*x}" \
            "'$mneme' attach '$dir' 2>/dev/null; sleep 60"
        i=$((i + 1))
    done
    until_ok 900 ended "$dir"
    i=0
    while [ "$i" -lt "$n" ]; do T kill-session -t "c$i"; i=$((i + 1)); done
}

for rep in $(seq 1 "$reps"); do
    a="$out/alone$rep" c="$out/clients$rep"
    if [ $((rep % 2)) = 1 ]; then
        run "$a" 0 "$@"
        run "$c" "$clients" "$@"
    else
        run "$c" "$clients" "$@"
        run "$a" 0 "$@"
    fi
    pair "$rep" "$a" "$c" "alone" "with $clients clients"
done
summary "alone" "with $clients clients"
