# Shared by bench/ui_cost.sh and bench/attach_cost.sh: waiting for a run,
# its rates, and the summary of paired reps. Sourced after $out is set.

# until_ok SECONDS COMMAND...: polls COMMAND until it succeeds or time runs out
until_ok() {
    end=$(( $(date +%s) + $1 )); shift
    until "$@"; do
        [ "$(date +%s)" -lt "$end" ] || { echo "$(basename "$0"): timed out: $*" >&2; exit 1; }
        sleep 0.2
    done
}
# Both sides wait for the run the same way, with shell builtins only: a
# jq started five times a second on one side only cost that side a few
# per cent of its steps (training takes both cores, and its two workers
# wait for each other, so whatever takes a core slows both).
finished() {
    [ -f "$1/summary.json" ] || return 1
    while IFS= read -r line; do
        case $line in *'"status": "finished"'*) return 0 ;; esac
    done <"$1/summary.json"
    return 1
}
rate() { jq -r '.final.step / .timing.train_s' "$1/summary.json"; }
wall() { jq -rs 'map(select(.phase=="finetune")) | .[-1] | .step / .elapsed_s' "$1/metrics.jsonl"; }

# pair REP A B LABEL_A LABEL_B: prints the rep and keeps it in $out/all
pair() {
    printf 'rep %d: steps/s in steps %.3f %s, %.3f %s (%+.2f%%); wall %.3f vs %.3f (%+.2f%%)\n' \
        "$1" "$(rate "$2")" "$4" "$(rate "$3")" "$5" \
        "$(echo "$(rate "$3") $(rate "$2")" | awk '{ print ($1 / $2 - 1) * 100 }')" \
        "$(wall "$2")" "$(wall "$3")" \
        "$(echo "$(wall "$3") $(wall "$2")" | awk '{ print ($1 / $2 - 1) * 100 }')"
    echo "$(rate "$2") $(rate "$3") $(wall "$2") $(wall "$3")" >>"$out/all"
}
# summary LABEL_A LABEL_B: the mean, and the median of the per-rep
# differences, which a rep another process slowed cannot drag
summary() {
    awk -v la="$1" -v lb="$2" '{ a += $1; b += $2; aw += $3; bw += $4; n++ }
         END { printf "mean of %d: steps/s %.3f %s, %.3f %s (%+.2f%%); wall %.3f vs %.3f (%+.2f%%)\n",
                      n, a / n, la, b / n, lb, (b / a - 1) * 100, aw / n, bw / n, (bw / aw - 1) * 100 }' "$out/all"
    awk '{ print ($2 / $1 - 1) * 100 }' "$out/all" | sort -g |
        awk '{ v[n++] = $1 } END { printf "median of %d per-rep differences: %+.2f%%\n", n,
                                   n % 2 ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2 }'
}
