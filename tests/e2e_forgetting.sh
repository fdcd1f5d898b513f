#!/bin/sh
# End to end: pretrain the tiny pair, fine-tune aggressively, and check that
# the run shows forgetting on disk — original accuracy well below its
# baseline while the new task is learned.
. "$MNEME_SRCDIR/tests/lib.sh"
R="$TMP/run"
"$MNEME" run --headless "$MNEME_SRCDIR/tests/data/tiny.cfg" --out "$R" >"$TMP/out" 2>&1
ok $? "the tiny experiment runs to the end"
grep '^finetune' "$TMP/out" | tail -n 3 | while read -r l; do diag "$l"; done

base=$(json "$R/summary.json" .baseline.original.acc)
final=$(json "$R/summary.json" .final.original.acc)
new0=$(json "$R/summary.json" .baseline.new.acc)
new=$(json "$R/summary.json" .final.new.acc)
forgetting=$(json "$R/summary.json" .forgetting)
diag "original: baseline $base, final $final (forgetting $forgetting); new: $new0 -> $new"
ge "$base" 0.85
ok $? "pretraining reaches at least 85% held-out original accuracy ($base)"
ge "$new" 0.8
ok $? "fine-tuning learns the new task ($new0 -> $new)"
ge "$forgetting" 0.15
ok $? "aggressive fine-tuning forgets: original accuracy fell at least 15 points ($base -> $final)"
awk -v b="$base" -v f="$final" -v g="$forgetting" 'BEGIN { d = b - f - g; exit !(d < 1e-6 && d > -1e-6) }'
ok $? "summary.forgetting = baseline - final original accuracy"

# metrics.jsonl: one line per evaluation, both phases, the schema's fields.
jq -se 'map(select(.phase=="finetune")) | length > 0 and all(.new.acc != null and .original.acc != null and
   (.step|type=="number") and .lr != null and (.epoch|type=="number") and .branch=="main" and (.elapsed_s|type=="number"))' \
   "$R/metrics.jsonl" >/dev/null
ok $? "every finetune line has step, epoch, lr, branch and both tasks' loss and acc"
jq -se 'map(select(.phase=="base")) | length > 0 and all(.new == null and .original.acc != null)' "$R/metrics.jsonl" >/dev/null
ok $? "base lines carry the original task only"
first=$(jq -c 'select(.phase=="finetune")' "$R/metrics.jsonl" | head -1 | jq .step)
ok $([ "$first" = 0 ]; echo $?) "the first finetune evaluation is at step 0 (the baseline)"
jq -e '.crossover_step == null or (.crossover_step|type=="number")' "$R/summary.json" >/dev/null
ok $? "summary.json has crossover_step (a step or null)"
cx=$(json "$R/summary.json" .crossover_step)
last=$(tail -n 1 "$R/metrics.jsonl" | jq .crossover_step)
ok $([ "$cx" = "$last" ]; echo $?) "metrics.jsonl carries the crossover step as summary.json does ($cx)"
json "$R/summary.json" .best.new.acc >/dev/null
ok $? "summary.json has best.new.acc"

# The base checkpoint starts another run without pretraining again, and
# that run's baseline is exactly the first run's.
"$MNEME" run --headless "$MNEME_SRCDIR/tests/data/tiny.cfg" --out "$TMP/again" --quiet \
    --set base.checkpoint="$R/checkpoints/base.safetensors" --set finetune.epochs=1 >/dev/null 2>&1
ok $? "a run from base.checkpoint runs"
b2=$(json "$TMP/again/summary.json" .baseline.original.acc)
ok $([ "$b2" = "$base" ]; echo $?) "it starts from the same baseline ($b2 = $base)"
# LoRA with merge: the exported weights (base names only) predict as the
# adapted model does.
"$MNEME" run --headless "$MNEME_SRCDIR/tests/data/tiny.cfg" --out "$TMP/lora" --quiet \
    --set finetune.method=lora --set finetune.lora.merge=true >/dev/null 2>&1
ok $? "a LoRA run with finetune.lora.merge"
M="$TMP/lora/checkpoints/merged.safetensors"
n_lora=$(head -c 100000 "$M" | grep -c "lora_" || true)
ok $([ -f "$M" ] && [ "$n_lora" = 0 ]; echo $?) "merged.safetensors holds no adapter tensors"
printf 'the soup was LOVELY\nmy laptop was awful\n' >"$TMP/texts"
"$MNEME" predict "$TMP/lora/checkpoints/final.safetensors" --task new <"$TMP/texts" | jq -c .logits >"$TMP/l1"
"$MNEME" predict "$M" --task new <"$TMP/texts" | jq -c .logits >"$TMP/l2"
awk 'NR==FNR { a[FNR] = $0; next } { gsub(/[\[\]]/, "", a[FNR]); gsub(/[\[\]]/, "", $0);
     n = split(a[FNR], x, ","); split($0, y, ","); for (i = 1; i <= n; i++) { d = x[i] - y[i];
     if (d > 1e-4 || d < -1e-4) bad = 1 } } END { exit bad }' "$TMP/l1" "$TMP/l2"
ok $? "the merged weights give the adapted model's logits ($(head -1 "$TMP/l1") vs $(head -1 "$TMP/l2"))"
done_testing
