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
EDIT="$PY $MNEME_SRCDIR/tests/ckpt_damage.py"

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
# exit 2, TEXT in the message, nothing on stdout (INPUT: a printf format,
# or @FILE)
predict_refused() {
    desc=$1 ck=$2 text=$4
    case $3 in
        @*) cp "${3#@}" "$TMP/in" ;;
        *) printf "$3" >"$TMP/in" ;;
    esac
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

# Item: text that is not UTF-8, or holds a NUL, is an error naming the line;
# the lines before it keep their output.
predict_utf8() {   # predict_utf8 DESCRIPTION INPUT TEXT
    printf "$2" >"$TMP/in"
    "$MNEME" predict "$CK" --task new <"$TMP/in" >"$TMP/out" 2>"$TMP/err"
    st=$?
    ok "$([ $st = 2 ] && contains "$TMP/err" "$3" && [ "$(wc -l <"$TMP/out")" = 1 ] &&
          jq -e '.text == "abc"' "$TMP/out" >/dev/null; echo $?)" \
       "$1 (exit $st, $(wc -l <"$TMP/out") lines out: $(cat "$TMP/err"))"
}
predict_utf8 "predict: invalid UTF-8 on line 2 is an error naming it" \
    'abc\ncaf\351\nxyz\n' "stdin:2: not valid UTF-8 (byte 0xE9 at column 4)"
predict_utf8 "predict: a NUL byte on line 2 is an error naming it" \
    'abc\nab\000cd\nxyz\n' "stdin:2: NUL byte at column 3"
printf 'caf\303\251\nna\303\257ve\r\r\n' >"$TMP/in"
"$MNEME" predict "$CK" --task new <"$TMP/in" >"$TMP/out" 2>"$TMP/err"
ok "$([ $? = 0 ] && [ "$(jq -r .text "$TMP/out" | tr '\n' ' ')" = "café naïve " ]; echo $?)" \
   "predict: one line out per UTF-8 line in, without its CR CR LF ($(cat "$TMP/err"))"
head -c 20000000 /dev/zero >"$TMP/zeros"
predict_refused "predict: a line of 20 MB of zeros is refused at once" \
    "$CK" "@$TMP/zeros" "stdin:1: line longer than 16 MiB" --task new

# The same in a run's data files: a label with invalid UTF-8 used to vanish
# from the checkpoint's labels; /dev/zero used to be read forever.
mkdir -p "$TMP/data"
for i in 1 2 3 4 5 6; do printf 'good soup %d\tpos\nbad soup %d\tneg\n' $i $i; done >"$TMP/data/ok.tsv"
cp "$TMP/data/ok.tsv" "$TMP/data/latin1.tsv"
printf 'odd soup\tw\351ird\n' >>"$TMP/data/latin1.tsv"
cat >"$TMP/data/files.cfg" <<'CFG'
name = "files";
threads = 1;
model = { hidden = 16; layers = 1; heads = 2; intermediate = 32; max_len = 32; };
original = { train = "latin1.tsv"; eval = "ok.tsv"; };
new = { train = "ok.tsv"; eval = "ok.tsv"; };
base = { pretrain = { epochs = 1; batch = 4; }; };
finetune = { epochs = 1; batch = 4; };
CFG
"$MNEME" run --headless "$TMP/data/files.cfg" --out "$TMP/r-latin1" >/dev/null 2>"$TMP/err"
ok "$([ $? = 2 ] && contains "$TMP/err" "latin1.tsv:13: not valid UTF-8 (byte 0xE9 at column 11)"; echo $?)" \
   "a TSV label that is not UTF-8: exit 2 naming file:line ($(cat "$TMP/err"))"
timeout 60 "$MNEME" run --headless "$TMP/data/files.cfg" --out "$TMP/r-zero" \
    --set original.train=/dev/zero >/dev/null 2>"$TMP/err"
ok "$([ $? = 2 ] && contains "$TMP/err" "/dev/zero:1: line longer than 16 MiB"; echo $?)" \
   "/dev/zero as a TSV: exit 2 at line 1, not an endless read ($(cat "$TMP/err"))"

# A read that blocks (a FIFO whose writer sends no newline) ends on SIGTERM.
mkfifo "$TMP/data/fifo"
exec 3<>"$TMP/data/fifo"
printf 'no newline yet' >&3
"$MNEME" run --headless "$TMP/data/files.cfg" --out "$TMP/r-fifo" \
    --set original.train="$TMP/data/fifo" >/dev/null 2>"$TMP/err" &
pid=$!
for _ in $(seq 100); do   # until it has the FIFO open to read it
    ls -l /proc/$pid/fd 2>/dev/null | grep -q "data/fifo" && break
    sleep 0.1
done
sleep 0.3
kill -TERM $pid
for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $pid 2>/dev/null; then kill -KILL $pid; fi
wait $pid
st=$?
exec 3>&-
ok "$([ $st = 2 ] && contains "$TMP/err" "fifo:1: reading was interrupted by a signal"; echo $?)" \
   "SIGTERM during a blocked read of a data file ends the run (exit $st: $(cat "$TMP/err"))"

# Item: a model too large for the machine is refused before it is
# allocated, with the estimate and the memory there is.
start=$(date +%s)
timeout 60 "$MNEME" run --headless "$TMP/small.cfg" --out "$TMP/r-huge" --set model.hidden=4096 \
    --set model.heads=64 --set model.intermediate=16384 --set model.layers=48 \
    --set model.max_len=512 --set finetune.batch=65536 >/dev/null 2>"$TMP/err"
st=$? took=$(($(date +%s) - start))
ok "$([ $st = 2 ] && [ $took -lt 30 ] && contains "$TMP/err" "model: needs about" &&
      contains "$TMP/err" "9686212640 parameters" && contains "$TMP/err" "is available (";
      echo $?)" "a model of hundreds of TiB is refused at once (exit $st, ${took}s: $(cat "$TMP/err"))"
MNEME_MEMORY_LIMIT=1M "$MNEME" run --headless "$TMP/small.cfg" --out "$TMP/r-limit" \
    >/dev/null 2>"$TMP/err"
ok "$([ $? = 2 ] && contains "$TMP/err" "but 1.0 MiB is available (MNEME_MEMORY_LIMIT)"; echo $?)" \
   "MNEME_MEMORY_LIMIT=1M refuses the small model, naming the limit ($(cat "$TMP/err"))"
$EDIT "$CK" "$TMP/huge.st" --model layers=48 --model hidden=4096 --model intermediate=16384
MNEME_MEMORY_LIMIT=8G predict_refused "predict: metadata claiming a 72 GiB model is refused before allocating" \
    "$TMP/huge.st" 'abc\n' "but 8.0 GiB is available (MNEME_MEMORY_LIMIT)" --task new

done_testing
