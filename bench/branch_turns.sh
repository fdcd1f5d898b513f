#!/bin/sh
# Two live branches on a 2-core machine: taking steps in turn on one
# thread (what the workbench does), each step using both cores through the
# experiment's own batch split (threads = 2), against each branch on a core
# of its own (threads = 1, the two running at once). Both branches are
# forked from one checkpoint of the default experiment, so the work is the
# same; the figure is the wall time for both to finish, medians over REPS.
# usage: bench/branch_turns.sh [MNEME] [REPS]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mneme=$(cd "$(dirname "${1:-./mneme}")" && pwd)/$(basename "${1:-./mneme}")
reps=${2:-3}
cfg="$here/../experiments/demo.cfg"
out=$(mktemp -d "${TMPDIR:-/tmp}/mneme-branch-turns.XXXXXX")
trap 'rm -rf "$out"' EXIT INT TERM

"$mneme" run --headless "$cfg" --out "$out/run" --quiet --set finetune.epochs=4 \
    --set checkpoint.every=63 --set checkpoint.keep=10 >/dev/null
now() { date +%s.%N; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for rep in $(seq 1 "$reps"); do
    for b in t1 t2 c1 c2; do
        th=2; case $b in c*) th=1 ;; esac
        "$mneme" fork "$out/run" --at 63 --name "$b$rep" --set threads=$th --create-only >/dev/null
    done
    # in turn: the branches' steps one after the other, each on both cores
    t0=$(now)
    "$mneme" run --resume "$out/run/branches/t1$rep" --quiet >/dev/null 2>&1
    "$mneme" run --resume "$out/run/branches/t2$rep" --quiet >/dev/null 2>&1
    t1=$(now)
    # apart: each branch on a core of its own, at the same time
    "$mneme" run --resume "$out/run/branches/c1$rep" --quiet >/dev/null 2>&1 &
    "$mneme" run --resume "$out/run/branches/c2$rep" --quiet >/dev/null 2>&1
    wait
    t2=$(now)
    echo "$t0 $t1 $t2" | awk '{ printf "rep: in turn %.2f s, apart %.2f s\n", $2 - $1, $3 - $2 }' >&2
    echo "$t0 $t1 $t2" | awk '{ print $2 - $1, $3 - $2 }' >>"$out/times"
done
turn=$(cut -d' ' -f1 "$out/times" | median)
apart=$(cut -d' ' -f2 "$out/times" | median)
steps=$(jq -s 'map(select(.phase == "finetune")) | .[-1].step - 63' "$out/run/branches/t11/metrics.jsonl")
echo "$turn $apart $steps" | awk '{ printf "two branches of %d steps each: in turn (threads = 2) %.2f s, apart (threads = 1 each) %.2f s; in turn / apart = %.2f (above 1: apart is faster)\n", $3, $1, $2, $1 / $2 }'
