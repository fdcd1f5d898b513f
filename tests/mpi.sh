#!/bin/sh
# Data-parallel training under mpirun: ranks of 1 thread split every
# batch as one process of as many threads does, and the gradients are
# summed in rank order, the order of that process's workers, so 2 and 3
# ranks are bit-identical to 2 and 3 threads, behind the backward pass or
# after it alike; runs repeat exactly; rank 0's policy decides for every
# rank, and a freeze takes effect on all at its step, the ranks ending
# with identical weights; rank 0 alone writes the run folder and serves
# mneme ctl, whose commands apply on every rank; a rank that dies ends the
# job, and mpirun --resume continues it to the numbers of an uninterrupted
# run, as does one process of as many threads, whose replay is exact too;
# a study trains on the ranks to one process's numbers, and resumes; what
# does not run across ranks yet is refused. Skips unless mneme was
# built with --with-mpi and mpirun is installed.
. "$MNEME_SRCDIR/tests/lib.sh"
CFG="$MNEME_SRCDIR/tests/data/tiny.cfg"
case "$("$MNEME" --version)" in
*MPI*) ;;
*) echo "1..0 # SKIP mneme was built without --with-mpi"; exit 0 ;;
esac
command -v mpirun >/dev/null 2>&1 || { echo "1..0 # SKIP mpirun is not installed (apt-get install openmpi-bin)"; exit 0; }
command -v jq >/dev/null 2>&1 || { echo "1..0 # SKIP jq is not installed"; exit 0; }
# one machine: more ranks than cores is fine, as root too (CI), and no
# shared-memory single copy (a container may forbid it)
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
ROOT=
[ "$(id -u)" = 0 ] && ROOT=--allow-run-as-root
mpi() {   # mpi N ARGS...: mneme on N ranks
    local n=$1; shift
    TMPDIR="$TMP/scratch" timeout 300 mpirun $ROOT -np "$n" "$MNEME" "$@"
}
mkdir -p "$TMP/scratch"
SETS="--set finetune.epochs=3 --set base.pretrain.epochs=2"
strip() { jq -c 'del(.elapsed_s)' "$1"; }
# max_difference A B: the largest difference between two metrics.jsonl's
# losses and accuracies, evaluation by evaluation (or why there is none)
max_difference() {
    python3 - "$1" "$2" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
if len(a) != len(b) or not a:
    print("lengths %d %d" % (len(a), len(b)))
else:
    d = 0.0
    for x, y in zip(a, b):
        for k in ("new", "original"):
            if x.get(k) is not None:
                d = max(d, abs(x[k]["loss"] - y[k]["loss"]), abs(x[k]["acc"] - y[k]["acc"]))
        if x.get("train_loss") is not None:
            d = max(d, abs(x["train_loss"] - y["train_loss"]))
    print("%.3g" % d)
PY
}

mpi 2 run --headless "$CFG" $SETS --set threads=1 --out "$TMP/r2" >"$TMP/out2" 2>"$TMP/err2"
st=$?
ok $st "a run on 2 ranks of 1 thread finishes"
[ $st = 0 ] || sed 's/^/#   /' "$TMP/err2" | head -20
"$MNEME" run --headless "$CFG" $SETS --set threads=2 --out "$TMP/t2" --quiet >/dev/null 2>&1
ok $([ -s "$TMP/r2/metrics.jsonl" ] && [ "$(strip "$TMP/r2/metrics.jsonl")" = "$(strip "$TMP/t2/metrics.jsonl")" ]; echo $?) \
   "its evaluations are bit-identical to one process of 2 threads ($(wc -l <"$TMP/r2/metrics.jsonl") evaluations)"
ok $([ "$(json "$TMP/r2/summary.json" .ranks.count)" = 2 ] && [ "$(json "$TMP/r2/summary.json" .ranks.agree)" = true ]; echo $?) \
   "summary.json: 2 ranks, whose weights agree at the end"
ok $([ "$(ls "$TMP/scratch" | wc -l)" = 0 ] && [ "$(grep -c '' "$TMP/out2")" -gt 3 ] &&
     [ "$(grep -c 'finetune step' "$TMP/out2")" = "$(jq -s 'map(select(.phase == "finetune")) | length' "$TMP/r2/metrics.jsonl")" ]; echo $?) \
   "rank 0 alone prints, once, and writes the run folder; the other rank leaves nothing behind"
grep -q "data-parallel over 2 ranks" "$TMP/out2"
ok $? "the run says it is data-parallel"

# against one process of one thread, which sums every row's gradient in
# one buffer: the same to float summation order
"$MNEME" run --headless "$CFG" $SETS --set threads=1 --out "$TMP/t1" --quiet >/dev/null 2>&1
diff=$(max_difference "$TMP/r2/metrics.jsonl" "$TMP/t1/metrics.jsonl")
ok $(awk -v d="$diff" 'BEGIN { exit !(d ~ /^[0-9.e-]+$/ && d + 0 < 1e-3) }'; echo $?) \
   "2 ranks against 1 process of 1 thread: every loss and accuracy within 1e-3 (largest difference $diff)"

mpi 2 run --headless "$CFG" $SETS --set threads=1 --out "$TMP/r2b" --quiet >/dev/null 2>&1
ok $([ "$(strip "$TMP/r2/metrics.jsonl")" = "$(strip "$TMP/r2b/metrics.jsonl")" ]; echo $?) \
   "the same run on 2 ranks again: identical"

# EWC (its Fisher computed over the ranks) with a frozen block: as 2 threads
E="--set finetune.ewc.lambda=1e4 --set finetune.freeze.keep_last=1"
mpi 2 run --headless "$CFG" $SETS $E --set threads=1 --out "$TMP/ewc2" --quiet >/dev/null 2>&1
"$MNEME" run --headless "$CFG" $SETS $E --set threads=2 --out "$TMP/ewc1" --quiet >/dev/null 2>&1
ok $([ -s "$TMP/ewc2/metrics.jsonl" ] && [ "$(strip "$TMP/ewc2/metrics.jsonl")" = "$(strip "$TMP/ewc1/metrics.jsonl")" ]; echo $?) \
   "EWC with the lower block frozen on 2 ranks: bit-identical to 2 threads"

# 3 ranks: each share of the gradients is summed in rank order, the order
# in which one process adds its 3 workers' buffers
mpi 3 run --headless "$CFG" $SETS --set threads=1 --out "$TMP/r3" --quiet >/dev/null 2>&1
ok $? "a run on 3 ranks finishes"
"$MNEME" run --headless "$CFG" $SETS --set threads=3 --out "$TMP/t3" --quiet >/dev/null 2>&1
ok $([ -s "$TMP/r3/metrics.jsonl" ] && [ "$(strip "$TMP/r3/metrics.jsonl")" = "$(strip "$TMP/t3/metrics.jsonl")" ]; echo $?) \
   "3 ranks against 3 threads: bit-identical evaluations"
# bf16 (emulated: the same numbers on any CPU): each rank's products are
# those of a worker of one process, so 2 ranks are still 2 threads
export MNEME_BF16=emulate
mpi 2 run --headless "$CFG" $SETS --set threads=1 --set model.precision=bf16 \
    --out "$TMP/b2" --quiet >/dev/null 2>&1
"$MNEME" run --headless "$CFG" $SETS --set threads=2 --set model.precision=bf16 --out "$TMP/bt2" \
    --quiet >/dev/null 2>&1
unset MNEME_BF16
ok $([ -s "$TMP/b2/metrics.jsonl" ] && [ "$(strip "$TMP/b2/metrics.jsonl")" = "$(strip "$TMP/bt2/metrics.jsonl")" ] &&
     [ "$(json "$TMP/b2/summary.json" .precision)" = "bf16 emulated" ]; echo $?) \
   "bf16 on 2 ranks: bit-identical to 2 threads"
# ranks of several threads: each rank adds its workers' buffers first, so
# 2 x 2 is not 1 x 4 to the bit; to float summation order it is
mpi 2 run --headless "$CFG" $SETS --set threads=2 --out "$TMP/r22" --quiet >/dev/null 2>&1
"$MNEME" run --headless "$CFG" $SETS --set threads=4 --out "$TMP/t4" --quiet >/dev/null 2>&1
diff=$(max_difference "$TMP/r22/metrics.jsonl" "$TMP/t4/metrics.jsonl")
ok $(awk -v d="$diff" 'BEGIN { exit !(d ~ /^[0-9.e-]+$/ && d + 0 < 1e-3) }'; echo $?) \
   "2 ranks of 2 threads against 4 threads: every loss within 1e-3 (largest difference $diff)"

# the sum behind the backward pass, bucket by bucket, against the sum after
# it in one piece: the same numbers (the workers' and the ranks' orders are
# the same), with LoRA's adapters too, whose small buckets are merged
MNEME_OVERLAP=0 mpi 2 run --headless "$CFG" $SETS --set threads=2 --out "$TMP/r22n" --quiet >/dev/null 2>&1
ok $([ "$(strip "$TMP/r22/metrics.jsonl")" = "$(strip "$TMP/r22n/metrics.jsonl")" ] &&
     [ "$(json "$TMP/r22/summary.json" .ranks.overlap)" = true ] &&
     [ "$(json "$TMP/r22n/summary.json" .ranks.overlap)" = false ]; echo $?) \
   "the gradients summed behind the backward pass: the evaluations of the sum after it, bit for bit"
L="--set finetune.method=lora --set finetune.lora.r=4"
mpi 3 run --headless "$CFG" $SETS $L --set threads=1 --out "$TMP/lora3" --quiet >/dev/null 2>&1
"$MNEME" run --headless "$CFG" $SETS $L --set threads=3 --out "$TMP/lora1" --quiet >/dev/null 2>&1
ok $([ -s "$TMP/lora3/metrics.jsonl" ] && [ "$(strip "$TMP/lora3/metrics.jsonl")" = "$(strip "$TMP/lora1/metrics.jsonl")" ] &&
     [ "$(json "$TMP/lora3/summary.json" .ranks.agree)" = true ]; echo $?) \
   "LoRA on 3 ranks: bit-identical to 3 threads, the ranks agreeing"

# a policy's freeze: on every rank at the same step
cat >"$TMP/freeze.lua" <<'LUA'
local P = { name = "freeze-mid" }
function P.on_eval(run, m)
  if run.step == 40 then
    run:layer("embeddings").frozen = true
    run:layer("layer.0").frozen = true
  end
end
return P
LUA
mpi 2 run --headless "$CFG" $SETS --set threads=1 --set finetune.policy="$TMP/freeze.lua" \
    --set checkpoint.every=40 --set checkpoint.keep=10 --out "$TMP/pf" --quiet >/dev/null 2>&1
ok $? "a run on 2 ranks whose policy freezes the lower layers at step 40 finishes"
"$MNEME" run --headless "$CFG" $SETS --set threads=2 --set finetune.policy="$TMP/freeze.lua" \
    --set checkpoint.every=40 --set checkpoint.keep=10 --out "$TMP/pf1" --quiet >/dev/null 2>&1
ok $([ "$(strip "$TMP/pf/metrics.jsonl")" = "$(strip "$TMP/pf1/metrics.jsonl")" ] &&
     [ "$(json "$TMP/pf/summary.json" .ranks.agree)" = true ]; echo $?) \
   "the freeze takes effect at the same step on both ranks: evaluations as one process's, weights identical across ranks"
if command -v python3 >/dev/null 2>&1; then
    same=$(python3 - "$TMP/pf/checkpoints/step-40.safetensors" "$TMP/pf/checkpoints/final.safetensors" <<'PY'
import json, struct, sys
def tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    return {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in head.items() if k != "__metadata__"}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
frozen = [k for k in a if k.startswith("bert.encoder.layer.0.") or k.startswith("bert.embeddings.")]
moved = [k for k in a if k.startswith("bert.pooler.") and a[k] != b[k]]
print("ok" if frozen and all(a[k] == b[k] for k in frozen) and moved else "frozen %d, unchanged %d, pooler moved %d" % (len(frozen), sum(a[k] == b[k] for k in frozen), len(moved)))
PY
)
    ok $([ "$same" = ok ]; echo $?) "the frozen layers are bit-identical from step 40 to the end, while the pooler moved ($same)"
else
    ok 0 "# SKIP python3 is not installed"
fi

# rank 0 alone runs the policy and the others take its decisions: here
# rank 1 is even given a policy that does nothing (mpirun's MPMD form)
printf 'local P = { name = "idle" }\nfunction P.on_eval(run, m) end\nreturn P\n' >"$TMP/idle.lua"
TMPDIR="$TMP/scratch" timeout 300 mpirun $ROOT \
    -np 1 "$MNEME" run --headless "$CFG" $SETS --set threads=1 --set finetune.policy="$TMP/freeze.lua" \
    --set checkpoint.every=40 --set checkpoint.keep=10 --out "$TMP/p0" --quiet : \
    -np 1 "$MNEME" run --headless "$CFG" $SETS --set threads=1 --set finetune.policy="$TMP/idle.lua" \
    --set checkpoint.every=40 --set checkpoint.keep=10 --out "$TMP/p0" --quiet >/dev/null 2>&1
ok $([ $? = 0 ] && [ "$(strip "$TMP/p0/metrics.jsonl")" = "$(strip "$TMP/pf1/metrics.jsonl")" ] &&
     [ "$(json "$TMP/p0/summary.json" .ranks.agree)" = true ]; echo $?) \
   "rank 0's policy decides for every rank: rank 1, given one that does nothing, freezes with it at step 40"

# masked-language modelling as the original task, its masked text replayed:
# each rank scores and trains the masked tokens of its own rows
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    PY=/usr/bin/python3
    mkdir -p "$TMP/mlm"
    hf_texts "$TMP/mlm"
    $PY "$MNEME_SRCDIR/tests/hf_model.py" make "$TMP/mlm/bert_mlm" --seed 13 --labels 0 --mlm 1 \
        --hidden 16 --positions 40 >/dev/null
    cat >"$TMP/mlm/mlm.cfg" <<'EOF'
name = "mlm";
seed = 3;
base = { from = "bert_mlm"; };
original = { mlm = "general.txt"; };
new = { train = "new.train.tsv"; eval = "new.eval.tsv"; };
finetune = { epochs = 3; lr = 1e-3; batch = 16; replay = { ratio = 0.25; }; };
eval = { every = 5; };
EOF
    mpi 2 run --headless "$TMP/mlm/mlm.cfg" --set threads=1 --out "$TMP/mlm2" --quiet >/dev/null 2>"$TMP/mlm.err"
    st=$?
    "$MNEME" run --headless "$TMP/mlm/mlm.cfg" --set threads=2 --out "$TMP/mlm1" --quiet >/dev/null 2>&1
    diff=$(max_difference "$TMP/mlm2/metrics.jsonl" "$TMP/mlm1/metrics.jsonl")
    ok $([ $st = 0 ] && awk -v d="$diff" 'BEGIN { exit !(d ~ /^[0-9.e-]+$/ && d + 0 < 1e-3) }' &&
         [ "$(json "$TMP/mlm2/summary.json" .ranks.agree)" = true ]; echo $?) \
       "masked-language modelling with replay on 2 ranks: within 1e-3 of 2 threads (largest difference $diff), the ranks agreeing ($(head -c 200 "$TMP/mlm.err"))"
else
    ok 0 "# SKIP python3-numpy is not installed: no MLM model"
fi

# rank 0 serves mneme ctl (and attach); its commands reach every rank
TMPDIR="$TMP/scratch" timeout 300 mpirun $ROOT -np 2 "$MNEME" run --headless "$CFG" $SETS \
    --set finetune.epochs=150 --set threads=1 --out "$TMP/ctl" --quiet >/dev/null 2>"$TMP/ctl.err" &
job=$!
for i in $(seq 1 300); do
    "$MNEME" ctl "$TMP/ctl" status >"$TMP/status" 2>/dev/null && grep -q '"phase":"finetune"' "$TMP/status" && break
    sleep 0.1
done
"$MNEME" ctl "$TMP/ctl" set finetune.lr 1e-4 >"$TMP/set" 2>&1
"$MNEME" ctl "$TMP/ctl" freeze embeddings >>"$TMP/set" 2>&1
"$MNEME" ctl "$TMP/ctl" fork lower finetune.lr=3e-5 >>"$TMP/set" 2>&1
wait $job
ok $([ $? = 0 ] && grep -q '"ok":true,"command":"set finetune.lr 1e-4"' "$TMP/set" &&
     grep -q '"source":"ctl","command":"set","set":"finetune.lr"' "$TMP/ctl/events.jsonl" &&
     grep -q '"source":"ctl","command":"freeze"' "$TMP/ctl/events.jsonl" &&
     [ "$(json "$TMP/ctl/summary.json" .ranks.agree)" = true ]; echo $?) \
   "mneme ctl reaches a run on 2 ranks: a rate and a freeze set mid-run apply on both (their weights agree at the end)"
ok $([ "$(json "$TMP/ctl/branches/lower/summary.json" .status)" = finished ] &&
     [ "$(json "$TMP/ctl/branches/lower/summary.json" .ranks.agree)" = true ] &&
     grep -q '"command":"fork","branch":"lower"' "$TMP/ctl/events.jsonl"; echo $?) \
   "a fork by ctl runs on both ranks beside its parent, to the end, the ranks agreeing"

# a rank that die# a rank that dies takes the job down; the run folder keeps its last
# complete checkpoint, from which the ranks (or one process) continue
TMPDIR="$TMP/scratch" timeout 300 mpirun $ROOT -np 2 "$MNEME" run --headless "$CFG" $SETS \
    --set finetune.epochs=150 --set threads=1 --set checkpoint.every=40 --out "$TMP/kill" --quiet \
    >/dev/null 2>"$TMP/kill.err" &
job=$!
for i in $(seq 1 300); do
    [ -f "$TMP/kill/checkpoints/step-80.safetensors" ] && break
    sleep 0.1
done
victim= ranks=
for p in $(pgrep -f "run --headless $CFG"); do
    env=$(tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null)
    echo "$env" | grep -q "^OMPI_COMM_WORLD_RANK=" && ranks="$ranks $p"
    echo "$env" | grep -qx "OMPI_COMM_WORLD_RANK=1" && victim=$p
done
[ -n "$victim" ] && kill -9 "$victim"
wait $job
st=$?
for i in $(seq 1 50); do   # the ranks' exit may take a moment after mpirun's
    left=
    for p in $ranks; do grep -qs '^State:.*[RSD]' "/proc/$p/status" && left="$left $p"; done
    [ -z "$left" ] && break
    sleep 0.1
done
ok $([ -n "$victim" ] && [ $st != 0 ] && [ -z "$left" ]; echo $?) \
   "killing rank 1 ends the whole job (exit $st), no rank left behind ($left)"
cp -r "$TMP/kill" "$TMP/kill1"
mpi 2 run --headless --resume "$TMP/kill" --quiet >/dev/null 2>"$TMP/resume.err"
st=$?
mpi 2 run --headless "$CFG" $SETS --set finetune.epochs=150 --set threads=1 --set checkpoint.every=40 \
    --out "$TMP/whole" --quiet >/dev/null 2>&1
ok $([ $st = 0 ] && grep -q '"command":"restart"' "$TMP/kill/events.jsonl" &&
     [ "$(strip "$TMP/kill/metrics.jsonl")" = "$(strip "$TMP/whole/metrics.jsonl")" ] &&
     [ "$(json "$TMP/kill/summary.json" .ranks.agree)" = true ]; echo $?) \
   "mpirun ... --resume continues it on 2 ranks to the evaluations of an uninterrupted run ($(head -c 200 "$TMP/resume.err"))"
# one process of 2 threads splits a batch as 2 ranks of 1 thread did: the
# run continues to the same numbers, and its replay is exact
"$MNEME" run --resume "$TMP/kill1" --set threads=2 --quiet >/dev/null 2>"$TMP/resume.err"
ok $([ $? = 0 ] && grep -q '"command":"restart".*"threads":2,"ranks":1' "$TMP/kill1/events.jsonl" &&
     [ "$(strip "$TMP/kill1/metrics.jsonl")" = "$(strip "$TMP/whole/metrics.jsonl")" ]; echo $?) \
   "or one process of 2 threads continues it, to the same evaluations ($(head -c 200 "$TMP/resume.err"))"
"$MNEME" replay "$TMP/kill1" --out "$TMP/kill1-replay" >"$TMP/replay.out" 2>&1
ok $? "and a replay in one process gives the run's numbers: $(tail -1 "$TMP/replay.out")"
"$MNEME" run --resume "$TMP/kill1" --set finetune.lr=1 >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && grep -q "at most --set threads=N" "$TMP/err"; echo $?) \
   "a resume changes the threads only: $(head -1 "$TMP/err")"

# a study: every family trained on the ranks, rank 0 writing the study
# folder; the same numbers as one process of 2 threads, and an
# interrupted one resumes under mpirun to them
cat >"$TMP/rem.cfg" <<'EOF'
gentle = { about = "a lower rate"; set = [ "finetune.lr=3e-4" ]; };
lora = { set = [ "finetune.method=lora", "finetune.lora.r=4", "finetune.lora.targets=query value" ]; };
EOF
SS="--remedies $TMP/rem.cfg --set finetune.epochs=150 --set base.pretrain.epochs=2 --set checkpoint.every=40"
same_family() {   # same_family A B: each run of the two studies' seed 7, evaluation by evaluation
    for r in "" /branches/gentle /branches/lora; do
        [ -s "$1/seed-7$r/metrics.jsonl" ] &&
            [ "$(strip "$1/seed-7$r/metrics.jsonl")" = "$(strip "$2/seed-7$r/metrics.jsonl")" ] || return 1
    done
}
"$MNEME" study "$CFG" $SS --set threads=2 --out "$TMP/study1" --headless --quiet >/dev/null 2>&1
TMPDIR="$TMP/scratch" timeout 300 mpirun $ROOT -np 2 "$MNEME" study "$CFG" $SS --set threads=1 \
    --out "$TMP/study2" --headless --quiet >"$TMP/study.out" 2>"$TMP/study.err"
ok $([ $? = 0 ] && same_family "$TMP/study2" "$TMP/study1" && [ "$(grep -c "^study: " "$TMP/study.out")" = 1 ] &&
     [ "$(json "$TMP/study2/seed-7/branches/lora/summary.json" .ranks.count)" = 2 ] &&
     [ -z "$(ls "$TMP/scratch" | grep -- -seed-)" ]; echo $?) \
   "mneme study on 2 ranks: every run bit-identical to one process of 2 threads, one table printed, rank 1 leaving nothing behind ($(head -c 200 "$TMP/study.err"))"
TMPDIR="$TMP/scratch" timeout 300 mpirun $ROOT -np 2 "$MNEME" study "$CFG" $SS --set threads=1 \
    --out "$TMP/study3" --headless --quiet >/dev/null 2>&1 &
job=$!
for i in $(seq 1 300); do
    [ -f "$TMP/study3/seed-7/branches/gentle/checkpoints/step-80.safetensors" ] && break
    sleep 0.05
done
kill -TERM $job
wait $job
for i in $(seq 1 100); do   # the ranks' exit may take a moment after mpirun's
    pgrep -f "out $TMP/study3" >/dev/null || break
    sleep 0.1
done
TMPDIR="$TMP/scratch" timeout 300 mpirun $ROOT -np 2 "$MNEME" study --resume "$TMP/study3" --headless --quiet \
    >/dev/null 2>"$TMP/study.err"
ok $([ $? = 0 ] && same_family "$TMP/study3" "$TMP/study1" && [ -s "$TMP/study3/tradeoff.png" ]; echo $?) \
   "an interrupted study resumes under mpirun to the same numbers ($(head -c 200 "$TMP/study.err"))"
rm -rf "${TMP:?}/scratch"/*   # what the signal left of rank 1's folders

# what does not run across ranks yet: refused, on every rank, exit 2
mpi 2 run "$CFG" --out "$TMP/ui" >/dev/null 2>"$TMP/err"
ok $([ $? != 0 ] && grep -q "the workbench, --detach and --stop-after do not run across ranks yet" "$TMP/err" &&
     [ ! -e "$TMP/ui" ]; echo $?) "the workbench under mpirun is refused with a reason"
mpi 2 plot "$TMP/r2" >/dev/null 2>"$TMP/err"
ok $([ $? != 0 ] && grep -q "only .mneme run --headless EXPERIMENT.cfg. and .mneme study --headless. train data-parallel" "$TMP/err"; echo $?) \
   "so is any other command"
mpi 2 study "$CFG" --out "$TMP/sui" >/dev/null 2>"$TMP/err"
ok $([ $? != 0 ] && grep -q "under mpirun a study runs headless" "$TMP/err" && [ ! -e "$TMP/sui" ]; echo $?) \
   "and a study in the workbench"

done_testing
