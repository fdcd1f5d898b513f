#!/bin/sh
# mneme bench against the same model in PyTorch (bench/torch_bert.py), for
# the tiny, small and mini shapes of BENCHMARKS.md at 1 and 2 threads.
#
#   bench/compare.sh [-r REPS] [-s STEPS] [-c "tiny small mini"] [-t "1 2"] [-p]
#   bench/compare.sh -S FILE.jsonl...   (only print the table of earlier runs;
#                                        several files pool their repetitions)
#
# Every repetition runs each (config, threads) pair as mneme, then torch
# (then torch with OMP_WAIT_POLICY=PASSIVE with -p), back to back, so a
# change in the machine's load hits both sides alike; the table gives
# medians over repetitions and the median of the per-repetition ratios.
# Environment: MNEME (default ./mneme, then mneme on PATH), TORCH_PYTHON
# (default /usr/bin/python3, the Debian interpreter that has torch),
# MNEME_SRCDIR (default: the directory above this script), CFG (default
# $MNEME_SRCDIR/experiments/demo.cfg; only its seed matters, the shapes are
# set here). Raw JSON lines go to compare-YYYYmmdd-HHMMSS.jsonl in the
# current directory; a run that fails is reported and left out.
set -eu

reps=5
steps=20
configs="tiny small mini"
threads="1 2"
passive=0
summary_only=
while getopts r:s:c:t:pS opt; do
    case $opt in
    r) reps=$OPTARG ;;
    s) steps=$OPTARG ;;
    c) configs=$OPTARG ;;
    t) threads=$OPTARG ;;
    p) passive=1 ;;
    S) summary_only=1 ;;
    *) sed -n '2,20p' "$0" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))

here=$(cd "$(dirname "$0")" && pwd)
srcdir=${MNEME_SRCDIR:-$(dirname "$here")}
if [ -z "${MNEME:-}" ]; then
    if [ -x ./mneme ]; then MNEME=./mneme; else MNEME=mneme; fi
fi
py=${TORCH_PYTHON:-/usr/bin/python3}
cfgfile=${CFG:-$srcdir/experiments/demo.cfg}
out=compare-$(date +%Y%m%d-%H%M%S).jsonl
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
# torch's OpenBLAS would otherwise run Prescott kernels on Debian's 0.3.21
# (mneme switches by itself, see src/blas_core.c): the best this CPU runs,
# as mneme picks it (SkylakeX kernels on a CPU without AVX-512 crash).
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then best=SkylakeX
elif grep -qw avx2 /proc/cpuinfo 2>/dev/null; then best=Haswell
else best=Prescott; fi
core=${OPENBLAS_CORETYPE:-$best}

# hidden layers heads intermediate seq batch
shape() {
    case $1 in
    tiny) echo 64 2 2 256 32 32 ;;
    small) echo 128 4 4 512 64 32 ;;
    mini) echo 256 4 4 1024 128 16 ;;
    *) echo "unknown config $1" >&2; exit 2 ;;
    esac
}

# tags the JSON object in $tmp with the run's labels, as one line of $out
tag() {
    "$py" -c 'import json, sys
d = json.load(sys.stdin)
d.update(cfg=sys.argv[1], impl=sys.argv[2], nthreads=int(sys.argv[3]), rep=int(sys.argv[4]))
print(json.dumps(d))' "$@" <"$tmp" >>"$out"
}

# run LABEL COMMAND...: runs one benchmark into $tmp; a failure is reported
# and skipped, so one bad run does not lose the others
run() {
    what=$1
    shift
    if "$@" >"$tmp"; then
        return 0
    fi
    echo "  $what failed; left out" >&2
    return 1
}

summarise() {
    "$py" - "$@" <<'EOF'
import json, statistics, sys
from collections import defaultdict

runs = []
for i, name in enumerate(sys.argv[1:]):
    for l in open(name):
        d = json.loads(l)
        d["rep"] = (i, d["rep"])  # repetitions of different files stay apart
        runs.append(d)
by = defaultdict(dict)            # (cfg, threads, impl) -> rep -> run
for d in runs:
    by[(d["cfg"], d["nthreads"], d["impl"])][d["rep"]] = d
order = {"tiny": 0, "small": 1, "mini": 2}
keys = sorted({(c, t) for c, t, _ in by}, key=lambda k: (order.get(k[0], 9), k[1]))
bar = {"tiny": 2.0, "small": 1.5, "mini": 1.2}
med = statistics.median


def sps(c, t, impl):
    return {r: d["steps_per_s"] for r, d in by.get((c, t, impl), {}).items()}


passive = any(i == "torch-passive" for _, _, i in by)
hdr = "%-6s %3s %11s %11s %8s %8s %9s" % ("config", "thr", "mneme st/s", "torch st/s",
                                         "ratio", "bar", "gemm_frac")
if passive:
    hdr += " %11s %8s" % ("passive st/s", "ratio")
print(hdr)
for c, t in keys:
    m, p = sps(c, t, "mneme"), sps(c, t, "torch")
    reps = sorted(set(m) & set(p))
    ratio = med([m[r] / p[r] for r in reps]) if reps else float("nan")
    frac = med([d["gemm_fraction"] for d in by[(c, t, "mneme")].values()])
    line = "%-6s %3d %11.2f %11.2f %7.2fx %7.1fx %9.2f" % (
        c, t, med(m.values()), med(p.values()), ratio, bar.get(c, 0), frac)
    if passive:
        # files pooled with and without -p: some pairs have no passive runs
        q = sps(c, t, "torch-passive")
        rq = sorted(set(m) & set(q))
        if rq:
            line += " %11.2f %7.2fx" % (med(q.values()), med([m[r] / q[r] for r in rq]))
    print(line)
print()
print("mneme 2 threads / 1 thread (median of per-repetition ratios):")
for c in sorted({c for c, _ in keys}, key=lambda k: order.get(k, 9)):
    one, two = sps(c, 1, "mneme"), sps(c, 2, "mneme")
    reps = sorted(set(one) & set(two))
    if reps:
        print("  %-6s %.2fx" % (c, med([two[r] / one[r] for r in reps])))
heap = {d["heap_bytes_delta"] for d in runs if d["impl"] == "mneme"}
print("heap_bytes_delta over all mneme runs:", sorted(heap))
EOF
}

if [ -n "$summary_only" ]; then
    summarise "$@"
    exit 0
fi

: >"$out"
echo "writing $out ($reps repetitions, $steps timed steps each)" >&2
r=1
while [ "$r" -le "$reps" ]; do
    for c in $configs; do
        set -- $(shape "$c")
        h=$1 l=$2 nh=$3 i=$4 t=$5 b=$6
        for th in $threads; do
            echo "rep $r: $c, $th thread(s)" >&2
            run mneme "$MNEME" bench "$cfgfile" --set model.hidden="$h" \
                --set model.layers="$l" --set model.heads="$nh" \
                --set model.intermediate="$i" --set model.max_len="$t" \
                --set finetune.batch="$b" --set threads="$th" --steps "$steps" &&
                tag "$c" mneme "$th" "$r"
            targs="--hidden $h --layers $l --heads $nh --intermediate $i --seq $t --batch $b --threads $th --steps $steps"
            run torch env OPENBLAS_CORETYPE="$core" "$py" "$here/torch_bert.py" $targs &&
                tag "$c" torch "$th" "$r"
            if [ "$passive" = 1 ]; then
                run torch-passive env OMP_WAIT_POLICY=PASSIVE OPENBLAS_CORETYPE="$core" \
                    "$py" "$here/torch_bert.py" $targs && tag "$c" torch-passive "$th" "$r"
            fi
        done
    done
    r=$((r + 1))
done

summarise "$out"
