#!/bin/sh
# mneme bench against the same model in PyTorch (bench/torch_bert.py) at the
# shapes users fine-tune from Hugging Face: MiniLM-L6-H384 (seq 128, batch 32)
# and bert-base-uncased (seq 128, batch 16), vocabulary 30522, 512 positions.
#
#   bench/pretrained.sh [-r REPS] [-s STEPS] [-c "minilm bertbase"] [-t "2 1"] [-p]
#                       [-P "fp32 bf16"] [-O]
#   bench/pretrained.sh -S FILE.jsonl...   (only print the table of earlier runs)
#
# -P: the precisions. bf16 runs mneme with model.precision = "bf16"
# (impl mneme-bf16: the batch split over `threads` workers, each calling
# single-threaded oneDNN primitives) and torch under torch.autocast("cpu",
# bfloat16) (impl torch-bf16). -O adds mneme-bf16-omp: one worker whose
# oneDNN primitives take `threads` OpenMP threads instead.
# mneme reads the shape from bench/models/*/config.json through
# bench/pretrained.cfg (base.from; no weights, no data needed). Each
# repetition runs each (shape, threads) pair as mneme, then torch (then, with
# -p, torch with OMP_WAIT_POLICY=PASSIVE), back to back; torch gets the
# OpenBLAS core mneme reported. Every run is wrapped in /usr/bin/time, whose
# "maximum resident set size" is kept as peak_rss_kib. Timed steps default
# to 5 (minilm) and 3 (bertbase); -s sets both. Environment: MNEME (default
# ./mneme, then mneme on PATH), TORCH_PYTHON (default /usr/bin/python3).
# Raw JSON lines go to pretrained-YYYYmmdd-HHMMSS.jsonl here.
set -eu

reps=3
steps=
configs="minilm bertbase"
threads="2"
passive=0
precisions="fp32"
omp=0
summary_only=
while getopts r:s:c:t:pP:OS opt; do
    case $opt in
    r) reps=$OPTARG ;;
    s) steps=$OPTARG ;;
    c) configs=$OPTARG ;;
    t) threads=$OPTARG ;;
    p) passive=1 ;;
    P) precisions=$OPTARG ;;
    O) omp=1 ;;
    S) summary_only=1 ;;
    *) sed -n '2,20p' "$0" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))

here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${MNEME:-}" ]; then
    if [ -x ./mneme ]; then MNEME=./mneme; else MNEME=mneme; fi
fi
py=${TORCH_PYTHON:-/usr/bin/python3}
out=pretrained-$(date +%Y%m%d-%H%M%S).jsonl
tmp=$(mktemp)
rss=$(mktemp)
trap 'rm -f "$tmp" "$rss"' EXIT

# folder hidden layers heads intermediate seq batch default-steps
shape() {
    case $1 in
    minilm) echo minilm-l6-h384 384 6 12 1536 128 32 5 ;;
    bertbase) echo bert-base-uncased 768 12 12 3072 128 16 3 ;;
    *) echo "unknown config $1" >&2; exit 2 ;;
    esac
}

# tags the JSON object in $tmp with the run's labels, the peak RSS from
# /usr/bin/time and the load average before the run, as one line of $out
tag() {
    "$py" -c 'import json, sys
d = json.load(sys.stdin)
d.update(cfg=sys.argv[1], impl=sys.argv[2], nthreads=int(sys.argv[3]), rep=int(sys.argv[4]),
         peak_rss_kib=int(open(sys.argv[5]).read().split()[-1]), loadavg_before=sys.argv[6])
print(json.dumps(d))' "$@" "$rss" "$load" <"$tmp" >>"$out"
}

run() {
    what=$1
    shift
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    if /usr/bin/time -f %M -o "$rss" "$@" >"$tmp"; then
        return 0
    fi
    echo "  $what failed; left out" >&2
    return 1
}

summarise() {
    "$py" - "$@" <<'EOF2'
import json, statistics, sys
from collections import defaultdict

runs = []
for i, name in enumerate(sys.argv[1:]):
    for l in open(name):
        d = json.loads(l)
        d["rep"] = (i, d["rep"])
        runs.append(d)
by = defaultdict(dict)
for d in runs:
    by[(d["cfg"], d["nthreads"], d["impl"])][d["rep"]] = d
order = {"minilm": 0, "bertbase": 1}
keys = sorted({(c, t) for c, t, _ in by}, key=lambda k: (order.get(k[0], 9), k[1]))
med = statistics.median


def field(c, t, impl, f):
    return {r: d[f] for r, d in by.get((c, t, impl), {}).items()}


print("%-8s %3s %-15s %-13s %9s %9s %7s %s" % ("config", "thr", "mneme", "against", "mneme/s",
                                              "other/s", "ratio", "per-repetition ratios"))
pairs = [("mneme", "torch"), ("mneme", "torch-passive"), ("mneme-bf16", "mneme"),
         ("mneme-bf16", "torch-bf16"), ("mneme-bf16", "torch"), ("mneme-bf16-omp", "mneme"),
         ("mneme-bf16-omp", "mneme-bf16")]
for c, t in keys:
    for mine, other in pairs:
        m = field(c, t, mine, "steps_per_s")
        p = field(c, t, other, "steps_per_s")
        reps = sorted(set(m) & set(p))
        if not reps:
            continue
        rs = [m[r] / p[r] for r in reps]
        print("%-8s %3d %-15s %-13s %9.4f %9.4f %6.2fx %s" % (
            c, t, mine, other, med(m.values()), med(p.values()), med(rs),
            " ".join("%.2f" % x for x in rs)))
print()
print("peak RSS, MiB (median over runs; min-max):")
for c, t in keys:
    for impl in ("mneme", "mneme-bf16", "mneme-bf16-omp", "torch", "torch-bf16", "torch-passive"):
        v = list(field(c, t, impl, "peak_rss_kib").values())
        if v:
            print("  %-8s %d thr %-13s %7.0f  (%.0f-%.0f, %d runs)" % (
                c, t, impl, med(v) / 1024, min(v) / 1024, max(v) / 1024, len(v)))
print()
for impl in ("mneme", "mneme-bf16", "mneme-bf16-omp"):
    print("%s gemm_fraction (median):" % impl, ", ".join(
        "%s/%d %.2f" % (c, t, med(field(c, t, impl, "gemm_fraction").values()))
        for c, t in keys if field(c, t, impl, "gemm_fraction")))
    print("%s GFLOP/s (median):" % impl, ", ".join(
        "%s/%d %.1f" % (c, t, med(field(c, t, impl, "gflops").values()))
        for c, t in keys if field(c, t, impl, "gflops")))
heap = {d["heap_bytes_delta"] for d in runs if d["impl"].startswith("mneme")}
print("heap_bytes_delta over all mneme runs:", sorted(heap))
EOF2
}

if [ -n "$summary_only" ]; then
    summarise "$@"
    exit 0
fi

: >"$out"
echo "writing $out ($reps repetitions)" >&2
r=1
while [ "$r" -le "$reps" ]; do
    for c in $configs; do
        set -- $(shape "$c")
        dir=$1 h=$2 l=$3 nh=$4 i=$5 t=$6 b=$7 s=${steps:-$8}
        for th in $threads; do
            echo "rep $r: $c, $th thread(s), $(date +%H:%M:%S), load $(cut -d' ' -f1 /proc/loadavg)" >&2
            core=
            margs="--set base.from=$here/models/$dir --set model.max_len=$t --set finetune.batch=$b
                   --steps $s"
            targs="--hidden $h --layers $l --heads $nh --intermediate $i --seq $t --batch $b
                   --vocab 30522 --positions 512 --threads $th --steps $s"
            for prec in $precisions; do
                if [ "$prec" = fp32 ]; then mi=mneme ti=torch; else mi=mneme-$prec ti=torch-$prec; fi
                if run "$mi" "$MNEME" bench "$here/pretrained.cfg" $margs --set threads="$th" \
                    --set model.precision="$prec"; then
                    tag "$c" "$mi" "$th" "$r"
                    core=$("$py" -c 'import json, sys; print(json.load(sys.stdin)["openblas_core"])' <"$tmp")
                fi
                if [ "$prec" != fp32 ] && [ "$omp" = 1 ]; then
                    run "$mi-omp" env OMP_NUM_THREADS="$th" "$MNEME" bench "$here/pretrained.cfg" \
                        $margs --set threads=1 --set model.precision="$prec" &&
                        tag "$c" "$mi-omp" "$th" "$r"
                fi
                autocast=none
                [ "$prec" = fp32 ] || autocast=$prec
                run "$ti" env OPENBLAS_CORETYPE="${core:-${OPENBLAS_CORETYPE:-}}" "$py" \
                    "$here/torch_bert.py" $targs --autocast "$autocast" && tag "$c" "$ti" "$th" "$r"
            done
            if [ "$passive" = 1 ]; then
                run torch-passive env OMP_WAIT_POLICY=PASSIVE \
                    OPENBLAS_CORETYPE="${core:-${OPENBLAS_CORETYPE:-}}" "$py" \
                    "$here/torch_bert.py" $targs && tag "$c" torch-passive "$th" "$r"
            fi
        done
    done
    r=$((r + 1))
done

summarise "$out"
