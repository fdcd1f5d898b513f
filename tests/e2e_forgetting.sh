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
done_testing
