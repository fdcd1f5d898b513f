#!/bin/sh
# model.precision = "bf16" from the command line: refused with its reason
# where the CPU or the build cannot run it; where it runs (and always
# through MNEME_BF16=emulate, bf16's numbers on any CPU), a run repeats
# itself exactly, stops and resumes to the same numbers, forks, writes
# fp32 checkpoints, says its precision, and predict follows it.
. "$MNEME_SRCDIR/tests/lib.sh"
CFG="$MNEME_SRCDIR/tests/data/tiny.cfg"
SETS="--set base.pretrain.epochs=2 --set finetune.epochs=2 --set checkpoint.every=15"
strip() { jq -c 'del(.elapsed_s)' "$1/metrics.jsonl"; }

# dtypes FILE: the distinct dtypes of a safetensors file's tensors
dtypes() {
    python3 - "$1" <<'PYEOF'
import json, struct, sys
with open(sys.argv[1], 'rb') as f:
    n = struct.unpack('<Q', f.read(8))[0]
    h = json.loads(f.read(n))
print(' '.join(sorted({v['dtype'] for k, v in h.items() if k != '__metadata__'})))
PYEOF
}

"$MNEME" run --headless "$CFG" $SETS --set model.precision=bf16 --out "$TMP/probe" --quiet \
    >"$TMP/probe.out" 2>&1
if [ $? = 0 ]; then
    diag "this machine runs bf16 products: $(jq -r .precision "$TMP/probe/summary.json")"
    paths="onednn emulate"
    ok 0 "bf16 runs here"
else
    diag "no bf16 products here: $(tail -1 "$TMP/probe.out")"
    paths="emulate"
    grep -q 'model.precision = "bf16"' "$TMP/probe.out" &&
        { grep -q 'avx512_core_bf16' "$TMP/probe.out" || grep -q 'libdnnl-dev' "$TMP/probe.out"; } &&
        grep -q 'MNEME_BF16=emulate' "$TMP/probe.out"
    ok $? "bf16 is refused with why and what to do instead"
    [ ! -f "$TMP/probe/summary.json" ]
    ok $? "the refused run trained nothing"
fi

for p in $paths; do
    export MNEME_BF16=$p
    d=$TMP/$p
    "$MNEME" run --headless "$CFG" $SETS --set model.precision=bf16 --out "$d/a" --quiet >/dev/null 2>&1 &&
    "$MNEME" run --headless "$CFG" $SETS --set model.precision=bf16 --out "$d/b" --quiet >/dev/null 2>&1
    ok $? "$p: two runs"
    strip "$d/a" >"$d/a.m"
    strip "$d/b" >"$d/b.m"
    cmp -s "$d/a.m" "$d/b.m"
    ok $? "$p: same experiment, seed, precision and threads: the same metrics ($(wc -l <"$d/a.m") lines)"
    prec=$(json "$d/a/summary.json" .precision)
    case $p in
    emulate) [ "$prec" = "bf16 emulated" ] ;;
    *) case $prec in "bf16 avx512_core"*) true ;; *) false ;; esac ;;
    esac
    ok $? "$p: summary.json says the precision: $prec"
    [ "$(dtypes "$d/a/checkpoints/final.safetensors")" = F32 ]
    ok $? "$p: checkpoints stay fp32 ($(dtypes "$d/a/checkpoints/final.safetensors"))"

    "$MNEME" run --headless "$CFG" $SETS --set model.precision=bf16 --out "$d/parts" --quiet \
        --stop-after 23 >/dev/null 2>&1 &&
    "$MNEME" run --resume "$d/parts" --quiet >/dev/null 2>&1
    ok $? "$p: stopped and resumed"
    strip "$d/parts" >"$d/parts.m"
    cmp -s "$d/a.m" "$d/parts.m"
    ok $? "$p: the resumed run's metrics are the uninterrupted run's"

    "$MNEME" fork "$d/a" --name gentler --at 15 --set finetune.lr=1e-4 --quiet >/dev/null 2>&1
    ok $? "$p: a bf16 run forks"
    fs=$(find "$d/a" -path '*gentler*' -name summary.json | head -1)
    [ -n "$fs" ] && [ "$(json "$fs" .precision)" = "$prec" ]
    ok $? "$p: the branch runs in the run's precision (${fs:+$(json "$fs" .precision)})"

    "$MNEME" replay "$d/a" --out "$d/replay" --quiet >/dev/null 2>&1 &&
    strip "$d/replay" >"$d/replay.m" && cmp -s "$d/a.m" "$d/replay.m"
    ok $? "$p: mneme replay of a bf16 run gives its metrics"

    echo "the soup was LOVELY" >"$TMP/text"
    ck=$d/a/checkpoints/final.safetensors
    "$MNEME" predict "$ck" --task original <"$TMP/text" >"$d/p.run" 2>/dev/null &&
    "$MNEME" predict "$ck" --task original --precision bf16 <"$TMP/text" >"$d/p.bf16" 2>/dev/null &&
    "$MNEME" predict "$ck" --task original --precision fp32 <"$TMP/text" >"$d/p.fp32" 2>/dev/null
    ok $? "$p: predict in the run's precision, in bf16, in fp32"
    cmp -s "$d/p.run" "$d/p.bf16" && ! cmp -s "$d/p.run" "$d/p.fp32"
    ok $? "$p: a bf16 run's checkpoint predicts in bf16 unless told otherwise"
    jq -e -n --slurpfile a "$d/p.bf16" --slurpfile b "$d/p.fp32" \
        '[$a[0].logits, $b[0].logits] | transpose | map(.[0] - .[1] | fabs) | max < 0.1' >/dev/null
    ok $? "$p: and its logits are within bf16's reach of fp32's"
done

# Training converges to the same forgetting: the tiny pair's whole run
# (pretraining, then the aggressive fine-tune) in fp32 and in bf16 over 3
# seeds, its final accuracies within 0.02 seed by seed (BENCHMARKS.md has
# the built-in recipes' table)
worst=0
for seed in 1 2 3; do
    for prec in fp32 bf16; do
        MNEME_BF16=emulate "$MNEME" run --headless "$CFG" --set seed=$seed --set model.precision=$prec \
            --out "$TMP/conv-$seed-$prec" --quiet >/dev/null 2>&1 || worst=failed
    done
    d=$(jq -n --slurpfile a "$TMP/conv-$seed-fp32/summary.json" --slurpfile b "$TMP/conv-$seed-bf16/summary.json" \
        '[($a[0].final.original.acc - $b[0].final.original.acc), ($a[0].final.new.acc - $b[0].final.new.acc)]
         | map(fabs) | max' 2>/dev/null)
    worst=$(awk -v w="$worst" -v d="${d:-failed}" 'BEGIN { if (w == "failed" || d == "failed") print "failed"; else print (d > w ? d : w) }')
done
awk -v w="$worst" 'BEGIN { exit !(w != "failed" && w <= 0.02) }'
ok $? "fp32 and bf16 forget alike: final accuracies within 0.02 over 3 seeds (largest difference $worst)"

# precision is how a run computes, not what its base is: a fork may change it
export MNEME_BF16=${p:-emulate}
"$MNEME" run --headless "$CFG" $SETS --out "$TMP/f32" --quiet >/dev/null 2>&1 &&
"$MNEME" fork "$TMP/f32" --name in-bf16 --at 15 --set model.precision=bf16 --quiet >/dev/null 2>&1
ok $? "an fp32 run forks into bf16"
[ "$(json "$TMP/f32/branches/in-bf16/summary.json" .precision)" != fp32 ] &&
    [ "$(json "$TMP/f32/summary.json" .precision)" = fp32 ]
ok $? "the branch computes in bf16, its parent in fp32"
"$MNEME" replay "$TMP/f32" --branch in-bf16 --out "$TMP/f32r" --quiet >/dev/null 2>&1 &&
    strip "$TMP/f32/branches/in-bf16" >"$TMP/fb.m" && strip "$TMP/f32r" >"$TMP/fr.m" &&
    cmp -s "$TMP/fb.m" "$TMP/fr.m"
ok $? "and mneme replay reproduces it, the change of precision included"
# and back: a bf16 run goes on in fp32 where bf16 is not to be had (as the
# refusal says), with no MNEME_BF16 at all
"$MNEME" run --headless "$CFG" $SETS --set model.precision=bf16 --out "$TMP/b16" --quiet >/dev/null 2>&1
unset MNEME_BF16
"$MNEME" fork "$TMP/b16" --name in-fp32 --at 15 --set model.precision=fp32 --quiet >/dev/null 2>&1 &&
    [ "$(json "$TMP/b16/branches/in-fp32/summary.json" .precision)" = fp32 ]
ok $? "a bf16 run forks into fp32, on any machine"

"$MNEME" run --headless "$CFG" --set model.precision=fp16 --out "$TMP/bad" --quiet >/dev/null 2>"$TMP/bad.err"
[ $? = 2 ] && grep -q 'model.precision' "$TMP/bad.err" && grep -q 'fp32 or bf16' "$TMP/bad.err"
ok $? "an unknown precision is refused: $(head -1 "$TMP/bad.err")"
sed 's/^model = { /model = { precision = "half"; /' "$CFG" >"$TMP/bad.cfg"
"$MNEME" run --headless "$TMP/bad.cfg" --out "$TMP/bad2" --quiet >/dev/null 2>"$TMP/bad2.err"
[ $? = 2 ] && grep -q 'bad.cfg:[0-9]' "$TMP/bad2.err" && grep -q 'model.precision' "$TMP/bad2.err"
ok $? "in an experiment file, with its file and line: $(head -1 "$TMP/bad2.err")"
echo "great soup" | "$MNEME" predict "$TMP/f32/checkpoints/final.safetensors" --task original \
    --precision fp16 >/dev/null 2>"$TMP/bad4.err"
[ $? = 2 ] && grep -q -- '--precision fp16: expected fp32 or bf16' "$TMP/bad4.err"
ok $? "predict --precision with an unknown value is refused: $(head -1 "$TMP/bad4.err")"
MNEME_BF16=fast "$MNEME" run --headless "$CFG" --set model.precision=bf16 --out "$TMP/bad3" --quiet \
    >/dev/null 2>"$TMP/bad3.err"
[ $? != 0 ] && grep -q 'MNEME_BF16=fast' "$TMP/bad3.err"
ok $? "an unknown MNEME_BF16 is refused: $(head -1 "$TMP/bad3.err")"

# the workbench's header says what computes the products
if command -v tmux >/dev/null 2>&1; then
    . "$MNEME_SRCDIR/tests/tmux.sh"
    cat >"$TMP/pane.sh" <<SH
MNEME_BF16=emulate "$MNEME" "$CFG" --set model.precision=bf16 --set finetune.epochs=3000 --out "$TMP/ui"
echo "mneme-exit=\$?"
exec sleep 600
SH
    ui_session 200 30 "$TMP/pane.sh"
    wait_until 30 sh -c "head -1 '$TMP/pane' | grep -q 'finetune.*bf16 emulated'"
    st=$?; ok $st "the workbench's header shows the precision: $(head -1 "$TMP/pane")"; show_pane_if $st
    quit_ui "mneme-exit="
    grep -q "mneme-exit=0" "$TMP/pane"
    ok $? "and quits cleanly"
else
    diag "tmux not installed: the header check is skipped"
fi
done_testing
