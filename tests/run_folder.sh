#!/bin/sh
# A run folder is never silently damaged: a damaged metrics line is
# restored, two processes never train in one run, the summary says how a
# run ended and is rewritten when a crash left it stale, a restart starts
# from a clean state, and a checkpoint whose metadata was edited is refused.
. "$MNEME_SRCDIR/tests/lib.sh"
CFG="$MNEME_SRCDIR/tests/data/tiny.cfg"
# python3 edits checkpoints as a hostile hand would; the quick start does
# not install it, so those parts skip without it
PY=python3
EDIT="$PY $MNEME_SRCDIR/tests/st_edit.py"
have_py() {
    "$PY" -c 'import json, struct' 2>/dev/null && return 0
    diag "SKIP $1: python3 is not installed (apt-get install python3)"
    return 1
}
strip() { jq -c 'del(.elapsed_s)' "$1/metrics.jsonl"; }
summary() { jq -r "$2" "$1/summary.json"; }

# The reference: the same run, never interrupted.
"$MNEME" run --headless "$CFG" --out "$TMP/whole" --quiet >/dev/null 2>&1
ok $? "an uninterrupted run"
strip "$TMP/whole" >"$TMP/whole.m"

# ---- 1. a damaged metrics line is restored from the checkpoint ----------
"$MNEME" run --headless "$CFG" --out "$TMP/r" --stop-after 250 --quiet >/dev/null 2>&1
ok $([ "$(summary "$TMP/r" .status)" = stopped ]; echo $?) \
   "--stop-after leaves the status stopped, not running ($(summary "$TMP/r" .status))"
sed -i '2s/.*/x/' "$TMP/r/metrics.jsonl"
"$MNEME" run --resume "$TMP/r" >"$TMP/out" 2>&1
ok $? "resumed after line 2 of metrics.jsonl was damaged"
contains "$TMP/out" "metrics.jsonl:2: damaged; restored from the checkpoint"
ok $? "the damaged line is named"
strip "$TMP/r" >"$TMP/r.m"
cmp -s "$TMP/whole.m" "$TMP/r.m"
ok $? "metrics.jsonl equals the uninterrupted run's ($(wc -l <"$TMP/r.m") lines, $(wc -l <"$TMP/whole.m") expected)"
ok $([ "$(summary "$TMP/r" .baseline.step)" = 0 ] &&
     [ "$(summary "$TMP/r" .forgetting)" = "$(summary "$TMP/whole" .forgetting)" ]; echo $?) \
   "the baseline is step 0 and forgetting $(summary "$TMP/r" .forgetting) as uninterrupted"

# A line cut short by a power loss, and lines lost altogether.
"$MNEME" run --headless "$CFG" --out "$TMP/cut" --stop-after 250 --quiet >/dev/null 2>&1
head -c -40 "$TMP/cut/metrics.jsonl" >"$TMP/m" && cp "$TMP/m" "$TMP/cut/metrics.jsonl"
"$MNEME" run --resume "$TMP/cut" --quiet >/dev/null 2>&1
strip "$TMP/cut" >"$TMP/cut.m"
cmp -s "$TMP/whole.m" "$TMP/cut.m"
ok $? "a last line cut short: the metrics equal the uninterrupted run's"
"$MNEME" run --headless "$CFG" --out "$TMP/lost" --stop-after 250 --quiet >/dev/null 2>&1
sed -i '3,5d' "$TMP/lost/metrics.jsonl"
"$MNEME" run --resume "$TMP/lost" >"$TMP/out" 2>&1
strip "$TMP/lost" >"$TMP/lost.m"
cmp -s "$TMP/whole.m" "$TMP/lost.m"
ok $? "three lines deleted: the metrics equal the uninterrupted run's"
"$MNEME" run --headless "$CFG" --out "$TMP/gone" --stop-after 250 --quiet >/dev/null 2>&1
rm "$TMP/gone/metrics.jsonl"
"$MNEME" run --resume "$TMP/gone" >"$TMP/out" 2>&1
strip "$TMP/gone" >"$TMP/gone.m"
cmp -s "$TMP/whole.m" "$TMP/gone.m" && contains "$TMP/out" "evaluations missing; restored from the checkpoint"
ok $? "metrics.jsonl deleted: restored, and said so"

# A checkpoint from before checkpoints held the metrics: the file is the
# only source, so a damaged line is skipped and every intact one kept.
if have_py "checkpoints without their own metrics"; then
"$MNEME" run --headless "$CFG" --out "$TMP/old" --stop-after 250 --quiet >/dev/null 2>&1
for f in "$TMP"/old/checkpoints/*.safetensors; do $EDIT "$f" --drop mneme.metrics --strip-checksums; done
base=$(grep -n '"phase":"finetune"' "$TMP/old/metrics.jsonl" | head -1 | cut -d: -f1)
sed -i "2s/.*/x/; ${base}s/.*/{\"step\":/" "$TMP/old/metrics.jsonl"
"$MNEME" run --resume "$TMP/old" >"$TMP/out" 2>&1
ok $? "resumed from checkpoints without their own copy of the metrics"
contains "$TMP/out" "metrics.jsonl:2: damaged; skipped" && contains "$TMP/out" "metrics.jsonl:$base: damaged; skipped"
ok $? "the damaged lines (2 and the baseline's, $base) are named and skipped"
strip "$TMP/old" >"$TMP/old.m"
upto() { jq -c 'select(.phase == "base" or .step <= 59)'; }
ok $([ "$(wc -l <"$TMP/old.m")" = $(($(wc -l <"$TMP/whole.m") - 2)) ] &&
     [ "$(sed "2d; ${base}d" "$TMP/whole.m" | upto | cmp -s - "$(upto <"$TMP/old.m" >"$TMP/o"; echo "$TMP/o")"; echo $?)" = 0 ]; echo $?) \
   "every other line up to the checkpoint is kept ($(wc -l <"$TMP/old.m") lines in all)"
ok $([ "$(summary "$TMP/old" .baseline)" = null ] && [ "$(summary "$TMP/old" .forgetting)" = null ]; echo $?) \
   "without the baseline evaluation there is no baseline, rather than a wrong one"
fi

# ---- 2. one process per run, and the status says how it ended ----------
LONG="--set finetune.epochs=400"
"$MNEME" run --headless "$CFG" $LONG --out "$TMP/live" --quiet >/dev/null 2>&1 &
pid=$!
i=0
while [ ! -s "$TMP/live/summary.json" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
"$MNEME" run --resume "$TMP/live" --quiet >/dev/null 2>"$TMP/err"
rc=$?
ok $([ $rc = 2 ] && contains "$TMP/err" "run is in use by pid $pid"; echo $?) \
   "a second process is refused: $(cat "$TMP/err")"
"$MNEME" runs "$TMP" >"$TMP/runs"
grep -q '^live  *running' "$TMP/runs"
ok $? "mneme runs: the live run is running"
kill -TERM $pid
wait $pid
ok $([ "$(summary "$TMP/live" .status)" = stopped ]; echo $?) \
   "stopped by a signal: status stopped ($(summary "$TMP/live" .status))"
"$MNEME" run --resume "$TMP/live" --quiet --stop-after 5 >/dev/null 2>&1
ok $? "once the process has ended, the run can be resumed"
"$MNEME" run --resume "$TMP/live" --quiet >/dev/null 2>&1 &
pid=$!
i=0
while [ "$(summary "$TMP/live" .status)" != running ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill -KILL $pid
wait $pid 2>/dev/null
"$MNEME" runs "$TMP" >"$TMP/runs"
grep -q '^live  *interrupted' "$TMP/runs"
ok $? "killed without a word: mneme runs says interrupted, not running"
"$MNEME" run --resume "$TMP/live" --quiet --stop-after 5 >/dev/null 2>&1
ok $? "the lock did not outlive the killed process"
# (diverged before the first checkpoint: nothing to roll back to)
"$MNEME" run --headless "$CFG" --set base.pretrain.lr=10 --set base.pretrain.clip_norm=0 --set base.pretrain.weight_decay=1 \
    --set base.pretrain.warmup_steps=0 --out "$TMP/fail" --quiet >/dev/null 2>&1
ok $([ $? = 1 ] && [ "$(summary "$TMP/fail" .status)" = failed ]; echo $?) \
   "a run that fails says failed ($(summary "$TMP/fail" .status))"

# ---- 3. the summary of a finished run is rewritten when it is stale -----
cp -r "$TMP/whole" "$TMP/fin"
rm "$TMP/fin/summary.json"
echo '{"status": "running"' >"$TMP/fin/summary.json.tmp.4242"
"$MNEME" run --resume "$TMP/fin" --quiet >/dev/null 2>&1
ok $([ "$(summary "$TMP/fin" .status)" = finished ] && [ ! -e "$TMP/fin/summary.json.tmp.4242" ]; echo $?) \
   "a missing summary is rewritten, the stale temporary removed"
jq -S 'del(.timing)' "$TMP/whole/summary.json" >"$TMP/a"
jq -S 'del(.timing)' "$TMP/fin/summary.json" >"$TMP/b"
cmp -s "$TMP/a" "$TMP/b"
ok $? "and it equals the one written at the end of the run"
jq '.status = "running"' "$TMP/whole/summary.json" >"$TMP/fin/summary.json"
"$MNEME" run --resume "$TMP/fin" --quiet >/dev/null 2>&1
ok $([ "$(summary "$TMP/fin" .status)" = finished ]; echo $?) "a stale summary (status running) is rewritten"

# ---- 4. starting over starts from a clean state ------------------------
# Every checkpoint fails after its tensors were loaded (its group steps are
# malformed): the restart must not keep them.
if have_py "checkpoints that fail half-way"; then
"$MNEME" run --headless "$CFG" --out "$TMP/bad" --stop-after 250 --quiet >/dev/null 2>&1
for f in "$TMP"/bad/checkpoints/*.safetensors; do
    $EDIT "$f" --strip-checksums --set mneme.adam_group_steps=x
done
"$MNEME" run --resume "$TMP/bad" >"$TMP/out" 2>&1
ok $? "every checkpoint unusable: the run starts over and finishes"
contains "$TMP/out" "starting the run over"
ok $? "and says so"
strip "$TMP/bad" >"$TMP/bad.m"
cmp -s "$TMP/whole.m" "$TMP/bad.m"
ok $? "its metrics equal the uninterrupted run's: nothing of the skipped checkpoints leaked"
fi
"$MNEME" run --headless "$CFG" --out "$TMP/empty" --stop-after 30 --quiet >/dev/null 2>&1
rm -f "$TMP"/empty/checkpoints/*
"$MNEME" run --resume "$TMP/empty" --quiet >/dev/null 2>"$TMP/err"
ok $? "an empty checkpoints folder: starts over ($(tail -1 "$TMP/err"))"
rm -rf "$TMP/empty/checkpoints"
"$MNEME" run --resume "$TMP/empty" --quiet --stop-after 50 >/dev/null 2>&1
ok $([ $? = 0 ] && [ -d "$TMP/empty/checkpoints" ] && ls "$TMP/empty/checkpoints" | grep -q safetensors; echo $?) \
   "a deleted checkpoints folder is made again"
"$MNEME" run --headless "$CFG" --out "$TMP/shape" --stop-after 100 --quiet >/dev/null 2>&1
sum_before=$(cat "$TMP"/shape/checkpoints/* | md5sum)
sed -i 's/hidden = 32;/hidden = 16;/' "$TMP/shape/experiment.cfg"
"$MNEME" run --resume "$TMP/shape" --quiet >/dev/null 2>"$TMP/err"
rc=$?
ok $([ $rc = 2 ] && contains "$TMP/err" "no longer matches" && contains "$TMP/err" "model.hidden is 32 there, 16 here"; echo $?) \
   "an experiment.cfg of another shape is refused: $(cat "$TMP/err")"
ok $([ "$(cat "$TMP"/shape/checkpoints/* | md5sum)" = "$sum_before" ]; echo $?) "and the checkpoints are left as they were"

printf 'hello\n' >"$TMP/broken.tsv"
"$MNEME" run --headless "$CFG" --set new.builtin="" --set new.train="$TMP/broken.tsv" --set new.eval="$TMP/broken.tsv" \
    --out "$TMP/refused" --quiet >/dev/null 2>&1
ok $([ $? = 2 ] && [ ! -e "$TMP/refused" ]; echo $?) "a broken data file: refused, and no run folder is left behind"

# ---- 5. the metadata is checksummed, and range checked without one -----
if have_py "edited checkpoint metadata"; then
"$MNEME" run --headless "$CFG" --out "$TMP/meta" --stop-after 250 --quiet >/dev/null 2>&1
$EDIT "$TMP/meta/checkpoints/step-59.safetensors" --set mneme.step=58
"$MNEME" run --resume "$TMP/meta" >"$TMP/out" 2>&1
ok $? "resumed after the newest checkpoint's step was edited"
contains "$TMP/out" "step-59.safetensors: checksum mismatch: the header (its metadata or tensor table) is damaged or was edited"
ok $? "the edited checkpoint is refused with the reason"
contains "$TMP/out" "resumed from $TMP/meta/checkpoints/step-40.safetensors"
ok $? "and the one before it is used"
strip "$TMP/meta" >"$TMP/meta.m"
cmp -s "$TMP/whole.m" "$TMP/meta.m"
ok $? "the metrics equal the uninterrupted run's"
# The same edits on a file without the checksums: each field is range checked.
"$MNEME" run --headless "$CFG" --out "$TMP/range" --stop-after 250 --quiet >/dev/null 2>&1
cp "$TMP/range/checkpoints/base.safetensors" "$TMP/base.keep"
ck="$TMP/range/checkpoints/base.safetensors"
refused() {   # refused DESCRIPTION EXPECTED-MESSAGE st_edit-ARGS...
    desc=$1 want=$2; shift 2
    cp "$TMP/base.keep" "$ck"
    rm -f "$TMP"/range/checkpoints/step-*.safetensors "$TMP"/range/checkpoints/base-step-*.safetensors
    $EDIT "$ck" --strip-checksums "$@"
    "$MNEME" run --resume "$TMP/range" --stop-after 1 >"$TMP/out" 2>&1
    contains "$TMP/out" "$want"
    ok $? "$desc: $(grep -F -- "$want" "$TMP/out" | head -1 | sed 's/.*base.safetensors: //')"
}
refused "a step past any run" "metadata mneme.step is 99999999999999, outside 0..1000000000000" --set mneme.step=99999999999999
refused "a negative cursor" "metadata mneme.sampler_cursor is -3, outside 0..1073741824" --set mneme.sampler_cursor=-3
refused "a cursor beyond int" "metadata mneme.sampler_cursor is 4294967296, outside" --set mneme.sampler_cursor=4294967296
refused "a non-finite rate" "metadata mneme.lr_peak is inf, outside 0..10" --set mneme.lr_peak=inf
refused "a negative EWC lambda" "metadata mneme.ewc_lambda is -1, outside" --set mneme.ewc_lambda=-0x1p+0
refused "group flags of another model" "metadata mneme.groups lists fewer groups than the model's" --set "mneme.groups=1:0x1p+0"
refused "a group flag that is not 0 or 1" "mneme.groups is malformed at group 0" --set "mneme.groups=7:0x1p+0,1:0x1p+0,1:0x1p+0,1:0x1p+0,1:0x1p+0"
refused "an optimizer step count that would overflow" "mneme.adam_group_steps: group 0's count 9223372036854775807 is outside" \
    --set "mneme.adam_group_steps=9223372036854775807,0,0,0,0"
refused "a vocabulary of one token" "mneme.model metadata: vocab is 1, outside 5..16777216" \
    --set 'mneme.model={"vocab":1,"hidden":32,"layers":1,"heads":2,"intermediate":64,"max_len":64,"type_vocab":2,"tasks":[{"name":"original","labels":["a","b"]}]}'
refused "a vocabulary past int, which used to be cut to its low bits" "mneme.model metadata lacks a field or has the wrong type" \
    --set 'mneme.model={"vocab":4294967557,"hidden":32,"layers":1,"heads":2,"intermediate":64,"max_len":64,"type_vocab":2,"tasks":[{"name":"original","labels":["a","b"]}]}'
refused "an rng state that is not a number" "metadata mneme.rng is missing or not an unsigned 64-bit integer" --set mneme.rng=12x
fi

done_testing
