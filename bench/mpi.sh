#!/bin/sh
# Data-parallel steps against threads, on one machine: `mneme bench` as 1
# rank of 2 threads and as 2 ranks of 1 thread (mpirun), the same global
# batch, back to back in each repetition, at the tiny, small and mini
# shapes (BENCHMARKS.md) and MiniLM-L6-H384 (bench/pretrained.cfg).
#
#   bench/mpi.sh [-r REPS] [-c "tiny small mini minilm"]
#   bench/mpi.sh -o [-r REPS] [-c minilm] [-l "0 10 1"] [-x "--set finetune.batch=4"]
#
# Needs a build with --with-mpi (MNEME, default ./mneme) and mpirun. Prints
# medians over the repetitions: steps/s of each, their ratio (the median of
# the per-repetition ratios) and rank 0's milliseconds a step in the
# gradients' sum. Raw JSON lines go to mpi-YYYYmmdd-HHMMSS.jsonl here.
#
# With -o, 2 ranks of 1 thread with the gradients summed behind the
# backward pass (the default) against after it (MNEME_OVERLAP=0), back to
# back, on each emulated link of -l (Gbit/s, 0: the machine's own shared
# memory; mneme bench --link): steps/s of each, their ratio, and the
# milliseconds a step spent in the sum and waited for it. -x adds
# options to every mneme bench (a smaller batch: less compute to hide the
# sum behind).
set -eu
reps=3
configs="tiny small mini minilm"
overlap=0
links="0 10 1"
extra=
while getopts r:c:ol:x: opt; do
    case $opt in
    r) reps=$OPTARG ;;
    c) configs=$OPTARG ;;
    o) overlap=1 ;;
    l) links=$OPTARG ;;
    x) extra=$OPTARG ;;
    *) sed -n '2,21p' "$0" >&2; exit 2 ;;
    esac
done
here=$(cd "$(dirname "$0")" && pwd)
MNEME=${MNEME:-./mneme}
case "$("$MNEME" --version)" in *MPI*) ;; *) echo "$MNEME: built without --with-mpi" >&2; exit 2 ;; esac
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
root=
[ "$(id -u)" = 0 ] && root=--allow-run-as-root
out=mpi-$(date +%Y%m%d-%H%M%S).jsonl

# the experiment and its shape's overrides, and the timed steps
shape() {
    d="$here/../experiments/demo.cfg"
    case $1 in
    tiny) echo "$d --set model.hidden=64 --set model.layers=2 --set model.heads=2 --set model.intermediate=256 --set model.max_len=32 --set finetune.batch=32 --steps 40" ;;
    small) echo "$d --set model.hidden=128 --set model.layers=4 --set model.heads=4 --set model.intermediate=512 --set model.max_len=64 --set finetune.batch=32 --steps 20" ;;
    mini) echo "$d --set model.hidden=256 --set model.layers=4 --set model.heads=4 --set model.intermediate=1024 --set model.max_len=128 --set finetune.batch=16 --steps 10" ;;
    minilm) echo "$here/pretrained.cfg --set base.from=$here/models/minilm-l6-h384 --set finetune.batch=32 --steps 3" ;;
    *) echo "unknown config $1" >&2; exit 2 ;;
    esac
}

if [ $overlap = 1 ]; then
    out=overlap-$(date +%Y%m%d-%H%M%S).jsonl
    for rep in $(seq 1 "$reps"); do
        for c in $configs; do
            for g in $links; do
                link=
                [ "$g" = 0 ] || link="--link $g"
                for ov in 1 0; do
                    # shellcheck disable=SC2046,SC2086
                    MNEME_OVERLAP=$ov mpirun $root -np 2 -x MNEME_OVERLAP "$MNEME" bench $(shape "$c") \
                        --set threads=1 $link $extra |
                        jq -c --arg c "$c" --argjson r "$rep" --argjson g "$g" \
                            '. + {cfg: $c, rep: $r, gbit: $g, extra: "'"$extra"'"}' >>"$out"
                done
                echo "rep $rep $c link $g done" >&2
            done
        done
    done
    jq -s -r '
      def median: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
      def r(k): . * k | round / k;
      group_by([.cfg, .gbit])[] | . as $g |
      ($g | map(select(.overlap))) as $a | ($g | map(select(.overlap | not))) as $b |
      [ ($a | map(.rep))[] as $r | (($a | map(select(.rep == $r)))[0].steps_per_s / ($b | map(select(.rep == $r)))[0].steps_per_s) ] as $ratios |
      "\($g[0].cfg)\tlink \(if $g[0].gbit == 0 then "shared memory" else "\($g[0].gbit) Gbit/s" end)\toverlapped \($a | map(.steps_per_s) | median | r(1000)) steps/s (sum \($a | map(.reduce_ms_per_step) | median | r(10)) ms, waited \($a | map(.reduce_wait_ms_per_step) | median | r(10)) ms)\tafter \($b | map(.steps_per_s) | median | r(1000)) steps/s (sum \($b | map(.reduce_ms_per_step) | median | r(10)) ms)\tratio \($ratios | median | r(100)) (\($ratios | map(r(100)) | join(" ")))"' "$out"
    echo "(raw: $out)"
    exit 0
fi

for rep in $(seq 1 "$reps"); do
    for c in $configs; do
        # shellcheck disable=SC2046
        "$MNEME" bench $(shape "$c") --set threads=2 |
            jq -c --arg c "$c" --argjson r "$rep" '. + {cfg: $c, rep: $r, how: "1x2"}' >>"$out"
        # shellcheck disable=SC2046
        mpirun $root -np 2 "$MNEME" bench $(shape "$c") --set threads=1 |
            jq -c --arg c "$c" --argjson r "$rep" '. + {cfg: $c, rep: $r, how: "2x1"}' >>"$out"
        echo "rep $rep $c done" >&2
    done
done

jq -s -r '
  def median: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  group_by(.cfg)[] | . as $g |
  ($g | map(select(.how == "1x2"))) as $a | ($g | map(select(.how == "2x1"))) as $b |
  [ ($a | map(.rep)) [] as $r | (($b | map(select(.rep == $r)))[0].steps_per_s / ($a | map(select(.rep == $r)))[0].steps_per_s) ] as $ratios |
  [ $g[0].cfg, ($a | map(.steps_per_s) | median), ($b | map(.steps_per_s) | median), ($ratios | median),
    ($b | map(.reduce_ms_per_step) | median), ($b | map(.step_ms_median) | median) ] |
  "\(.[0])\t1 rank x 2 threads \(.[1] * 1000 | round / 1000) steps/s\t2 ranks x 1 thread \(.[2] * 1000 | round / 1000) steps/s\tratio \(.[3] * 100 | round / 100)\tsum \(.[4] * 10 | round / 10) ms of \(.[5] * 10 | round / 10) ms a step"' "$out"
echo "(raw: $out)"
