#!/bin/sh
# The [CLS]-only last block against the full one (BENCHMARKS.md, round 4):
# mneme bench at 1 thread, the two alternating, three repetitions.
# usage: sh bench/round4/ab.sh > ab.jsonl   (M: the mneme binary)
M=${M:-./mneme}; E=$(dirname "$0")/../../experiments/demo.cfg
shape() { case $1 in tiny) echo "64 2 2 256 32 32";; small) echo "128 4 4 512 64 32";; mini) echo "256 4 4 1024 128 16";; esac; }
for rep in 1 2 3; do for c in tiny small mini; do set -- $(shape $c)
  for f in "" --full-last-block; do
    $M bench $E --set model.hidden=$1 --set model.layers=$2 --set model.heads=$3 --set model.intermediate=$4 --set model.max_len=$5 --set finetune.batch=$6 --set threads=1 --steps 20 $f 2>/dev/null | jq -c --arg c $c '{c:$c, lb:.last_block, sps:.steps_per_s, gf:.gemm_fraction}'
  done; done; done
