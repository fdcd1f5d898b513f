#!/bin/sh
# Resuming: a run stopped and resumed (at step boundaries, across the phase
# change, and after kill -9 at a random moment) writes exactly the metrics
# of an uninterrupted run.
. "$MNEME_SRCDIR/tests/lib.sh"
CFG="$MNEME_SRCDIR/tests/data/tiny.cfg"
SETS="--set base.pretrain.epochs=2 --set finetune.epochs=2 --set checkpoint.every=15"
strip() { jq -c 'del(.elapsed_s)' "$1/metrics.jsonl"; }

"$MNEME" run --headless "$CFG" $SETS --out "$TMP/whole" --quiet >/dev/null 2>&1
ok $? "uninterrupted run"
strip "$TMP/whole" >"$TMP/whole.m"

"$MNEME" run --headless "$CFG" $SETS --out "$TMP/parts" --quiet --stop-after 23 >/dev/null 2>&1
ok $? "stopped after 23 steps"
"$MNEME" run --resume "$TMP/parts" --quiet --stop-after 60 >/dev/null 2>&1
ok $? "resumed, stopped again past the phase change"
"$MNEME" run --resume "$TMP/parts" --quiet >/dev/null 2>"$TMP/err"
ok $? "resumed to the end ($(tail -1 "$TMP/err"))"
strip "$TMP/parts" >"$TMP/parts.m"
cmp -s "$TMP/whole.m" "$TMP/parts.m"
ok $? "metrics.jsonl equals the uninterrupted run's, line for line ($(wc -l <"$TMP/parts.m") lines)"
jq -S 'del(.status, .timing)' "$TMP/whole/summary.json" >"$TMP/a"
jq -S 'del(.status, .timing)' "$TMP/parts/summary.json" >"$TMP/b"
cmp -s "$TMP/a" "$TMP/b"
ok $? "summary.json equal"
echo "great soup" | "$MNEME" predict "$TMP/whole/checkpoints/final.safetensors" --task original >"$TMP/p1"
echo "great soup" | "$MNEME" predict "$TMP/parts/checkpoints/final.safetensors" --task original >"$TMP/p2"
cmp -s "$TMP/p1" "$TMP/p2"
ok $? "the final models give identical logits"

"$MNEME" run --resume "$TMP/parts" --quiet >/dev/null 2>&1
ok $? "resuming a finished run says so and exits 0"

# Two worker threads: reproducible for that thread count, and resumable.
"$MNEME" run --headless "$CFG" $SETS --set threads=2 --out "$TMP/t2a" --quiet >/dev/null 2>&1 &&
"$MNEME" run --headless "$CFG" $SETS --set threads=2 --out "$TMP/t2b" --quiet --stop-after 50 >/dev/null 2>&1 &&
"$MNEME" run --resume "$TMP/t2b" --quiet >/dev/null 2>&1
ok $? "runs on two worker threads, one stopped and resumed"
strip "$TMP/t2a" >"$TMP/t2a.m"
strip "$TMP/t2b" >"$TMP/t2b.m"
cmp -s "$TMP/t2a.m" "$TMP/t2b.m"
ok $? "two threads: the resumed run's metrics equal the uninterrupted run's"

# LoRA with dropout: the masks follow from seed and step, so a resumed run
# draws the same ones.
LSETS="$SETS --set finetune.method=lora --set finetune.lora.dropout=0.2 --set finetune.lr=3e-3"
"$MNEME" run --headless "$CFG" $LSETS --out "$TMP/la" --quiet >/dev/null 2>&1 &&
"$MNEME" run --headless "$CFG" $LSETS --out "$TMP/lb" --quiet --stop-after 90 >/dev/null 2>&1 &&
"$MNEME" run --resume "$TMP/lb" --quiet >/dev/null 2>&1
ok $? "LoRA runs with dropout, one stopped in the finetune phase and resumed"
strip "$TMP/la" >"$TMP/la.m"
strip "$TMP/lb" >"$TMP/lb.m"
cmp -s "$TMP/la.m" "$TMP/lb.m"
ok $? "LoRA with dropout: the resumed run's metrics equal the uninterrupted run's"

# The strategies' state survives a resume too: the replay stream, the EWC
# Fisher and anchor, the early-stopping bookkeeping.
STRAT="$SETS --set finetune.replay.ratio=0.25 --set finetune.ewc.lambda=50 --set finetune.ewc.fisher_samples=64 --set finetune.l2sp.alpha=0.01 --set stop.metric=combined"
"$MNEME" run --headless "$CFG" $STRAT --out "$TMP/swhole" --quiet >/dev/null 2>&1
ok $? "uninterrupted run with replay, EWC, L2-SP and early stopping"
"$MNEME" run --headless "$CFG" $STRAT --out "$TMP/sparts" --quiet --stop-after 90 >/dev/null 2>&1 &&
"$MNEME" run --resume "$TMP/sparts" --quiet --stop-after 7 >/dev/null 2>&1 &&
"$MNEME" run --resume "$TMP/sparts" --quiet >/dev/null 2>&1
ok $? "the same, stopped twice in the finetune phase and resumed"
strip "$TMP/swhole" >"$TMP/s1"
strip "$TMP/sparts" >"$TMP/s2"
cmp -s "$TMP/s1" "$TMP/s2"
ok $? "its metrics equal the uninterrupted run's ($(wc -l <"$TMP/s2") lines)"
jq -S 'del(.status, .timing)' "$TMP/swhole/summary.json" >"$TMP/a"
jq -S 'del(.status, .timing)' "$TMP/sparts/summary.json" >"$TMP/b"
cmp -s "$TMP/a" "$TMP/b"
ok $? "and so does its summary (drift, best combined, stop reason)"

# kill -9 at random moments of a longer run (checkpoints every 7 steps, so
# some kills land inside a checkpoint write), then resume: the same metrics.
KSETS="--set checkpoint.every=7"
"$MNEME" run --headless "$CFG" $KSETS --out "$TMP/kwhole" --quiet >/dev/null 2>&1
strip "$TMP/kwhole" >"$TMP/kwhole.m"
i=0
while [ $i -lt 4 ]; do
    i=$((i + 1))
    d="$TMP/killed$i"
    "$MNEME" run --headless "$CFG" $KSETS --out "$d" --quiet >/dev/null 2>&1 &
    pid=$!
    # from when the folder holds its experiment: a kill before that leaves
    # nothing to resume (on a busy machine that took over 0.05 s)
    n=0
    while [ ! -s "$d/experiment.cfg" ] && [ $n -lt 500 ]; do sleep 0.01; n=$((n + 1)); done
    sleep "$(awk -v s="$$$i" 'BEGIN { srand(s); printf "%.2f", 0.05 + rand() * 1.2 }')"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    diag "killed #$i after $(wc -l <"$d/metrics.jsonl" 2>/dev/null || echo 0) metrics lines"
    "$MNEME" run --resume "$d" --quiet >/dev/null 2>"$TMP/err"
    st=$?
    strip "$d" >"$TMP/k.m"
    ok $([ $st = 0 ] && cmp -s "$TMP/kwhole.m" "$TMP/k.m"; echo $?) "kill -9 #$i, resume: metrics equal the uninterrupted run's"
    ! ls "$d/checkpoints" | grep -q '\.tmp\.'
    ok $? "no temporary checkpoint file left after resume #$i"
done

# One run killed again and again at random moments (a policy writes an
# event at every evaluation), resumed each time: metrics and events end as
# an uninterrupted run's, with one restart line a resume, and every
# checkpoint left behind still loads.
cat >"$TMP/wobble.lua" <<'LUA'
local P = { name = "wobble" }
function P.on_eval(run, m) run:layer("layer.0").lr_scale = (run.step % 40 == 0) and 0.5 or 1.0 end
return P
LUA
WSETS="--set finetune.epochs=40 --set checkpoint.every=7 --set checkpoint.keep=3 --set finetune.policy=$TMP/wobble.lua"
"$MNEME" run --headless "$CFG" $WSETS --out "$TMP/wwhole" --quiet >/dev/null 2>&1
strip "$TMP/wwhole" >"$TMP/wwhole.m"
W="$TMP/wkilled"
"$MNEME" run --headless "$CFG" $WSETS --out "$W" --quiet >/dev/null 2>&1 &
pid=$!
kills=0 resumes=0
while [ $kills -lt 8 ]; do
    sleep "$(awk -v s="$$$kills" 'BEGIN { srand(s); printf "%.2f", 0.2 + rand() * 0.6 }')"
    kill -9 $pid 2>/dev/null && kills=$((kills + 1))
    wait $pid 2>/dev/null
    [ -f "$W/checkpoints/final.safetensors" ] && break
    # a kill before the first checkpoint starts the run over: not a resume
    ls "$W/checkpoints" 2>/dev/null | grep -q safetensors && resumes=$((resumes + 1))
    "$MNEME" run --resume "$W" --quiet >/dev/null 2>&1 &
    pid=$!
done
wait $pid 2>/dev/null
"$MNEME" run --resume "$W" --quiet >/dev/null 2>&1
diag "killed $kills times"
strip "$W" >"$TMP/w.m"
cmp -s "$TMP/wwhole.m" "$TMP/w.m"
ok $? "killed $kills times and resumed: metrics equal the uninterrupted run's ($(wc -l <"$TMP/w.m") lines)"
grep -v '"command":"restart"' "$W/events.jsonl" | cmp -s "$TMP/wwhole/events.jsonl" -
ok $? "events.jsonl: the uninterrupted run's lines, none doubled or missing ($(wc -l <"$TMP/wwhole/events.jsonl") lines)"
r=$(grep -c '"command":"restart"' "$W/events.jsonl")
[ "$r" -ge 1 ] && [ "$r" -le "$resumes" ]
ok $? "and a restart line for each resume that continued a checkpoint ($r)"
"$MNEME" replay "$W" --out "$TMP/wreplay" --quiet >"$TMP/out" 2>&1
ok $? "mneme replay of the killed run, restarts included: $(tail -1 "$TMP/out")"
bad=0
for ck in "$W"/checkpoints/*.safetensors; do
    case $ck in *fisher*) continue ;; esac
    echo "good soup" | "$MNEME" predict "$ck" --task original >/dev/null 2>&1 || bad=$((bad + 1))
done
[ $bad = 0 ] && ! ls "$W/checkpoints" | grep -q '\.tmp\.'
ok $? "every checkpoint left loads, and no temporary file is left"

# A damaged newest checkpoint is skipped with a reason, not used.
"$MNEME" run --headless "$CFG" $SETS --out "$TMP/dam" --quiet --stop-after 40 >/dev/null 2>&1
newest=$(ls -t "$TMP/dam/checkpoints"/*.safetensors | head -1)
printf 'garbage' | dd of="$newest" bs=1 seek=200 conv=notrunc 2>/dev/null
"$MNEME" run --resume "$TMP/dam" >"$TMP/out" 2>&1
ok $(grep -q "skipping .*$(basename "$newest")" "$TMP/out"; echo $?) "a damaged checkpoint is skipped with a reason"
strip "$TMP/dam" >"$TMP/d.m"
cmp -s "$TMP/whole.m" "$TMP/d.m"
ok $? "and the run still ends with the uninterrupted metrics"
done_testing
