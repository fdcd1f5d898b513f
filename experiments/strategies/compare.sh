#!/bin/sh
# Every remedy against forgetting on the built-in pair, in one command:
# pretrains once (with the aggressive full fine-tune, the case to beat),
# runs the gentle recipe and each strategy here from that same base, and
# prints one table. About three minutes on two cores.
#
# usage: compare.sh [OUT_DIR]     (the mneme binary: $MNEME, else PATH, else ./mneme)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${MNEME:-}" ]; then mneme=$MNEME
elif command -v mneme >/dev/null 2>&1; then mneme=mneme
else mneme=./mneme; fi
command -v jq >/dev/null 2>&1 || { echo "compare.sh needs jq (apt-get install jq)" >&2; exit 2; }
out=${1:-runs/strategies-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"

run() {   # run NAME CONFIG [--set ...]
    name=$1 cfg=$2
    shift 2
    echo "running $name" >&2
    "$mneme" run --headless "$cfg" --out "$out/$name" --quiet "$@"
}
run full-ft-aggressive "$here/../full-ft-aggressive.cfg"
base="$out/full-ft-aggressive/checkpoints/base.safetensors"
run full-ft-gentle "$here/../full-ft-gentle.cfg" --set base.checkpoint="$base"
for cfg in "$here"/*.cfg; do
    name=$(basename "$cfg" .cfg)
    run "$name" "$cfg" --set base.checkpoint="$base"
done

printf '\n%-20s %7s %9s %9s %10s %9s %7s  %s\n' strategy "new acc" "orig end" "orig min" forgetting trainable "time s" notes
for dir in "$out"/*/; do
    s="$dir/summary.json"
    [ -f "$s" ] || continue
    # fine-tuning time: from the baseline evaluation to the last one
    t=$(jq -s 'map(select(.phase == "finetune")) | (.[-1].elapsed_s - .[0].elapsed_s)' "$dir/metrics.jsonl")
    jq -r --arg n "$(basename "$dir")" --arg t "$t" \
        '[$n, .final.new.acc, .final.original.acc, (.baseline.original.acc - .max_original_drop),
          .forgetting, .trainable_fraction, $t,
          ((if .stop_reason then "stopped early " else "" end) +
           (if .final_adapter_off then "adapter off: orig \(.final_adapter_off.original.acc)" else "" end))] | @tsv' "$s"
done | awk -F'\t' '{ printf "%-20s %7.3f %9.3f %9.3f %10.3f %8.1f%% %7.1f  %s\n", $1, $2, $3, $4, $5, 100 * $6, $7, $8 }'
echo "(baseline original accuracy $(jq .baseline.original.acc "$out/full-ft-aggressive/summary.json"); runs in $out)"
