#!/bin/sh
# The built-in recipes' forgetting in fp32 and bf16 (emulated: bf16's
# numbers on any CPU), with fp32 on 2 workers as the control (the same sums
# in another order), over seeds 1-5: one JSON line per run on stdout.
#   MNEME=./mneme bench/bf16/recipes.sh > recipes.jsonl      # about 40 minutes on 2 cores
M=${MNEME:-./mneme}
E=$(cd "$(dirname "$0")/../.." && pwd)/experiments
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for exp in full-ft-aggressive full-ft-gentle; do
  for seed in 1 2 3 4 5; do
    for run in "fp32 0 fp32" "bf16 0 bf16" "fp32 2 fp32-2t"; do
      set -- $run
      MNEME_BF16=emulate $M run --headless "$E/$exp.cfg" --out "$out/$exp-$seed-$3" --quiet \
          --set seed=$seed --set model.precision=$1 --set threads=$2 || continue
      jq -c --arg e $exp --argjson s $seed --arg p $3 \
          '{exp: $e, seed: $s, precision: $p, base_original: .baseline.original.acc,
            final_original: .final.original.acc, final_new: .final.new.acc, forgetting}' \
          "$out/$exp-$seed-$3/summary.json"
    done
  done
done
