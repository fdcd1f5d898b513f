#!/bin/sh
# Bad input of every kind meets a clear error, never a crash, a silent drop
# or garbage: damaged checkpoints given to predict, invalid UTF-8, models
# too large for the machine, endless lines and odd line endings.
. "$MNEME_SRCDIR/tests/lib.sh"
PY=python3
if ! "$PY" -c 'import json, struct' 2>/dev/null; then
    echo "1..0 # SKIP python3 is not installed (it damages checkpoints on purpose)"
    exit 0
fi
EDIT="$PY $MNEME_SRCDIR/tests/st_edit.py"

# A small run whose final checkpoint the cases below damage.
cat >"$TMP/small.cfg" <<'CFG'
name = "small";
seed = 1;
threads = 1;
model = { hidden = 16; layers = 1; heads = 2; intermediate = 32; max_len = 64; };
original = { builtin = "sentiment"; train_size = 64; eval_size = 16; };
new = { builtin = "shouting"; train_size = 64; eval_size = 16; };
base = { pretrain = { epochs = 1; batch = 8; }; };
finetune = { epochs = 1; batch = 8; };
eval = { every = 4; };
CFG
"$MNEME" run --headless "$TMP/small.cfg" --out "$TMP/run" --quiet >/dev/null 2>"$TMP/err"
ok $? "a small run for the damaged checkpoints ($(tail -1 "$TMP/err"))"
CK="$TMP/run/checkpoints/final.safetensors"

# predict_refused DESCRIPTION CHECKPOINT INPUT TEXT [PREDICT-ARGS...]:
# exit 2, TEXT in the message, nothing on stdout (INPUT: printf format)
predict_refused() {
    desc=$1 ck=$2 text=$4
    printf "$3" >"$TMP/in"
    shift 4
    "$MNEME" predict "$ck" "$@" <"$TMP/in" >"$TMP/out" 2>"$TMP/err"
    st=$?
    ok "$([ $st = 2 ] && contains "$TMP/err" "$text" && [ ! -s "$TMP/out" ]; echo $?)" \
       "$desc (exit $st: $(head -c 300 "$TMP/err"))"
}

# Item: token ids past the word embedding table.
$EDIT "$CK" "$TMP/vocab6.st" --model vocab=6 --rows bert.embeddings.word_embeddings.weight=6
predict_refused "a byte-level text on a 6-row embedding table is refused" \
    "$TMP/vocab6.st" 'hello\n' "6 word embeddings" --task new
predict_refused "--ids past a 6-row embedding table is refused with its line" \
    "$TMP/vocab6.st" '2 7 3\n' "stdin:1: token id 7" --task new --ids
printf '2 5 3\n' | "$MNEME" predict "$TMP/vocab6.st" --task new --ids >"$TMP/out" 2>"$TMP/err"
ok "$([ $? = 0 ] && jq -e '.logits | length == 2' "$TMP/out" >/dev/null; echo $?)" \
   "--ids inside the table still predict ($(cat "$TMP/err"))"

# Item: the asked head is required, shaped as the metadata says.
$EDIT "$CK" "$TMP/renamed.st" --rename classifier.new.weight=classifier.neu.weight
predict_refused "a renamed new head is refused, naming the tensor" \
    "$TMP/renamed.st" 'abc\nxyz\n' "tensor classifier.new.weight is missing" --task new
printf 'abc\n' | "$MNEME" predict "$TMP/renamed.st" --task original >"$TMP/out" 2>"$TMP/err"
ok "$([ $? = 0 ] && [ "$(wc -l <"$TMP/out")" = 1 ]; echo $?)" \
   "the other task's head still predicts without it ($(cat "$TMP/err"))"
$EDIT "$CK" "$TMP/oneway.st" --rows classifier.new.weight=1
predict_refused "a mis-shaped new head is refused with both shapes" \
    "$TMP/oneway.st" 'abc\n' "has shape [1, 16], but its metadata (mneme.model) needs [2, 16]" --task new
$EDIT "$CK" "$TMP/labels3.st" --model-task-labels new=3
predict_refused "a head whose label count the metadata changed is refused" \
    "$TMP/labels3.st" 'abc\n' "needs [3, 16]" --task new
# The attention heads shape no tensor: the run's experiment.cfg says it.
$EDIT "$CK" "$TMP/run/checkpoints/heads1.safetensors" --model heads=1
predict_refused "a checkpoint whose heads differ from its run's experiment.cfg is refused" \
    "$TMP/run/checkpoints/heads1.safetensors" 'abc\n' "says heads 1, but the run's" --task new

done_testing
