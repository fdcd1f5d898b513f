#!/bin/sh
# What a policy costs: fine-tunes the default experiment from one base with
# bench/touch_all.lua (every layer written every step) and reports the
# share of training time spent in the policy, measured inside the run
# (summary.json timing), plus the wall time of the same fine-tune without
# a policy. usage: bench/policy_cost.sh [MNEME] [THREADS]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mneme=${1:-./mneme}
threads=${2:-1}
out=$(mktemp -d "${TMPDIR:-/tmp}/mneme-policy-cost.XXXXXX")
cfg="$here/../experiments/demo.cfg"
"$mneme" run --headless "$cfg" --out "$out/base" --quiet --set threads="$threads" \
    --set finetune.epochs=1 >/dev/null
base="$out/base/checkpoints/base.safetensors"
for rep in 1 2 3; do
    "$mneme" run --headless "$cfg" --out "$out/plain$rep" --quiet --set threads="$threads" \
        --set base.checkpoint="$base" >/dev/null
    "$mneme" run --headless "$cfg" --out "$out/policy$rep" --quiet --set threads="$threads" \
        --set base.checkpoint="$base" --set finetune.policy="$here/touch_all.lua" >/dev/null
    printf 'rep %d: train %.3f s without a policy, %.3f s with; policy %.4f s = %.2f%% of training\n' "$rep" \
        "$(jq .timing.train_s "$out/plain$rep/summary.json")" \
        "$(jq .timing.train_s "$out/policy$rep/summary.json")" \
        "$(jq .timing.policy_s "$out/policy$rep/summary.json")" \
        "$(jq '.timing.policy_share * 100' "$out/policy$rep/summary.json")"
done
rm -rf "$out"
