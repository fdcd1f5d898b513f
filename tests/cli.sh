#!/bin/sh
# The command line as a user meets it: bad experiment files, bad data,
# bad checkpoints and predict, each with its exit status and message.
. "$MNEME_SRCDIR/tests/lib.sh"
D="$MNEME_SRCDIR/tests/data"

"$MNEME" --help >"$TMP/out" 2>&1
ok $? "--help exits 0"
contains "$TMP/out" "mneme run --headless"
ok $? "--help shows the run command"
# every command's --help: its own usage lines, exit 0, whatever else is given
for c in run attach ctl plot report study predict export tokenize bench runs fork compare replay; do
    "$MNEME" $c --help >"$TMP/out" 2>&1
    st=$?
    [ $st = 0 ] && head -n 1 "$TMP/out" | grep -q "^usage: mneme $c " && ! grep -v "^See mneme" "$TMP/out" |
        grep "^ *mneme " | grep -vq "mneme $c "
    ok $? "mneme $c --help: its usage lines, exit $st ($(head -n 1 "$TMP/out"))"
done
"$MNEME" export some/run --to out -h >"$TMP/out" 2>&1 && grep -q "^usage: mneme export RUN_DIR" "$TMP/out" && [ ! -e out ]
ok $? "-h after other arguments shows the usage and does nothing else"

"$MNEME" run --bogus >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && contains "$TMP/err" "unknown option --bogus"; echo $?) "an unknown option is exit 2 with its name"

# Experiment files: each error names the file, the line and the key.
printf 'name = "x";\nmodel = { hidden = 64;\n  heads = 5; };\noriginal = { builtin = "sentiment"; };\nnew = { builtin = "topic"; };\n' >"$TMP/bad.cfg"
"$MNEME" run --headless "$TMP/bad.cfg" --out "$TMP/r0" >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && contains "$TMP/err" "model.heads" && grep -q "bad.cfg:[0-9]*:" "$TMP/err"; echo $?) \
   "hidden not divisible by heads: exit 2, file:line and key ($(cat "$TMP/err"))"

printf 'name = "x";\noriginal = { builtin = "sentiment"; };\nnew = { builtin = "topic"; };\nfinetune = {\n  lrr = 1e-4; };\n' >"$TMP/typo.cfg"
"$MNEME" run --headless "$TMP/typo.cfg" --out "$TMP/r0" >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && contains "$TMP/err" "typo.cfg:5:" && contains "$TMP/err" "finetune.lr"; echo $?) \
   "unknown key: exit 2 at its line with a suggestion ($(cat "$TMP/err"))"

printf 'name = "x";\nmodel = { hidden = ; };\n' >"$TMP/syntax.cfg"
"$MNEME" run --headless "$TMP/syntax.cfg" --out "$TMP/r0" >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && grep -q "syntax.cfg:[0-9]*:" "$TMP/err"; echo $?) "syntax error: exit 2 with file:line ($(cat "$TMP/err"))"

"$MNEME" run --headless "$D/tiny.cfg" --out "$TMP/r0" --set finetune.lr=fast >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && contains "$TMP/err" "--set finetune.lr"; echo $?) "a bad --set value: exit 2 naming the override ($(cat "$TMP/err"))"
[ ! -e "$TMP/r0" ]
ok $? "a refused experiment leaves no run folder behind"

# Strategy keys: each bad value names its file, line and key.
bad_key() {   # bad_key DESCRIPTION KEY FINETUNE-LINES
    printf 'name = "x";\nmodel = { layers = 2; };\noriginal = { builtin = "sentiment"; };\nnew = { builtin = "shouting"; };\nfinetune = {\n%s\n};\n' "$3" >"$TMP/strat.cfg"
    "$MNEME" run --headless "$TMP/strat.cfg" --out "$TMP/r0" >/dev/null 2>"$TMP/err"
    ok $([ $? = 2 ] && grep -q "strat.cfg:6:" "$TMP/err" && contains "$TMP/err" "$2"; echo $?) "$1 ($(cat "$TMP/err"))"
}
bad_key "LoRA rank 0" finetune.lora.r '  method = "lora"; lora = { r = 0; };'
bad_key "a negative EWC lambda" finetune.ewc.lambda '  ewc = { lambda = -1.0; };'
bad_key "an unknown LoRA target module" finetune.lora.targets '  method = "lora"; lora = { targets = "query vlaue"; };'
bad_key "keep_last larger than the layer count" finetune.freeze.keep_last '  freeze = { keep_last = 4; };'
bad_key "a key of another method" finetune.lora.r '  method = "full"; lora = { r = 16; };'
bad_key "prompt tokens with LoRA" finetune.virtual_tokens '  method = "lora"; virtual_tokens = 4;'
bad_key "an unknown frozen part" finetune.freeze.parts '  freeze = { parts = "layer.7"; };'

# Data files: the broken line is named.
sed "s/reviews.train.tsv/broken.train.tsv/" "$D/files.cfg" >"$TMP/files.cfg"
sed -i "s#\"broken.train.tsv\"#\"$D/broken.train.tsv\"#; s#\"reviews.eval.tsv\"#\"$D/reviews.eval.tsv\"#; s#\"reviews.train.tsv\"#\"$D/reviews.train.tsv\"#" "$TMP/files.cfg"
"$MNEME" run --headless "$TMP/files.cfg" --out "$TMP/r1" >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && contains "$TMP/err" "broken.train.tsv:3:"; echo $?) "a malformed TSV line: exit 2 with file:3 ($(cat "$TMP/err"))"

sed "s#\"reviews.eval.tsv\"#\"$D/unseen.eval.tsv\"#; s#\"reviews.train.tsv\"#\"$D/reviews.train.tsv\"#" "$D/files.cfg" >"$TMP/unseen.cfg"
"$MNEME" run --headless "$TMP/unseen.cfg" --out "$TMP/r2" >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && contains "$TMP/err" "unseen.eval.tsv:2:" && contains "$TMP/err" "neutral"; echo $?) \
   "an eval label unseen in training: exit 2 with file:line and the label ($(cat "$TMP/err"))"

# A run from TSV files, relative to the experiment file.
"$MNEME" run --headless "$D/files.cfg" --out "$TMP/files" --quiet >/dev/null 2>"$TMP/err"
ok $? "a run over TSV files finishes ($(tail -1 "$TMP/err"))"
[ -f "$TMP/files/summary.json" ] && [ -f "$TMP/files/experiment.cfg" ] && [ -f "$TMP/files/checkpoints/final.safetensors" ]
ok $? "the run folder has experiment.cfg, summary.json and checkpoints"
"$MNEME" run --headless "$D/files.cfg" --out "$TMP/files" --quiet >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && contains "$TMP/err" "already holds a run"; echo $?) "a folder that holds a run is not overwritten"

# runs: the runs of a folder with their figures
"$MNEME" runs "$TMP" >"$TMP/runs" 2>&1
ok $([ $? = 0 ] && grep -q "^files  *finished" "$TMP/runs"; echo $?) "mneme runs lists a run with its status ($(grep '^files' "$TMP/runs"))"
"$MNEME" runs "$TMP/nowhere" >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && contains "$TMP/err" "nowhere"; echo $?) "mneme runs on a missing folder: exit 2 naming it"

# predict
CK="$TMP/files/checkpoints/final.safetensors"
printf 'great soup\nawful laptop\n' | "$MNEME" predict "$CK" --task original >"$TMP/pred" 2>"$TMP/err"
ok $([ $? = 0 ] && [ "$(wc -l <"$TMP/pred")" = 2 ] && jq -e '.label and (.logits|length)==2 and .text' "$TMP/pred" >/dev/null; echo $?) \
   "predict writes one JSON line per text with label and logits"
printf 'abc\n' | "$MNEME" predict "$CK" --task new | jq -c .logits >"$TMP/a"
printf '2 102 103 104 3\n' | "$MNEME" predict "$CK" --task new --ids | jq -c .logits >"$TMP/b"
cmp -s "$TMP/a" "$TMP/b"
ok $? "--ids [CLS] a b c [SEP] gives the same logits as the text abc"
printf '2 999 3\n' | "$MNEME" predict "$CK" --task new --ids >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && contains "$TMP/err" "stdin:1:" && contains "$TMP/err" "999"; echo $?) "an id outside the vocabulary is refused with its line"
echo x | "$MNEME" predict "$CK" --task nosuch >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && contains "$TMP/err" "no task 'nosuch'"; echo $?) "an unknown head is refused, naming the heads there are"
head -c 3000 "$CK" >"$TMP/cut.safetensors"
echo x | "$MNEME" predict "$TMP/cut.safetensors" --task new >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && contains "$TMP/err" "cut.safetensors"; echo $?) "a truncated checkpoint is refused with a reason ($(cat "$TMP/err"))"

# Other data formats: a `datasets` JSONL export (a "sentence" field, integer
# ClassLabel labels, extra fields) as the original task, sentence pairs in a
# 3-column TSV as the new one; the format keys come as --set overrides.
F="$TMP/formats"
mkdir -p "$F"
i=0
for t in "a lovely soup" "an awful match" "a fine day" "the best hotel" "a dull film" "so-so weather"; do
    printf '{"idx": %d, "sentence": "%s", "label": %d}\n' $i "$t" $((i % 3)) >>"$F/orig.train.jsonl"
    i=$((i + 1))
done
printf '\357\273\277{"idx": 0, "sentence": "lovely", "label": 0}\r\n\r\n{"idx": 1, "sentence": "awful", "label": 2}\r\n' >"$F/orig.eval.jsonl"
printf 'a man sleeps\ta person rests\tentail\na dog runs\tno animal moves\tcontra\nkids play\tchildren play\tentail\nit rains\tthe sky is dry\tcontra\n' >"$F/new.train.tsv"
printf 'a cat eats\tan animal eats\tentail\nhe sits\the stands\tcontra\n' >"$F/new.eval.tsv"
cat >"$F/formats.cfg" <<'CFG'
name = "formats";
model = { hidden = 16; layers = 1; heads = 2; intermediate = 32; max_len = 32; };
original = { train = "orig.train.jsonl"; eval = "orig.eval.jsonl"; };
new = { train = "new.train.tsv"; eval = "new.eval.tsv"; };
base = { pretrain = { epochs = 1; batch = 2; }; };
finetune = { epochs = 1; batch = 2; };
eval = { every = 1; };
CFG
"$MNEME" run --headless "$F/formats.cfg" --out "$F/run" --set 'original.text_field="sentence"' \
    --set new.columns=3 --stop-after 5 >"$F/out" 2>"$F/err"
ok $([ $? = 0 ] && grep -q "^finetune step *1 .*new acc" "$F/out"; echo $?) \
   "a JSONL original task and a 3-column TSV new task train ($(tail -1 "$F/err"))"
grep -q 'text_field = "sentence";' "$F/run/experiment.cfg" && grep -q 'columns = 3;' "$F/run/experiment.cfg"
ok $? "the run's experiment.cfg records the format keys"
CK=$(ls "$F"/run/checkpoints/step-*.safetensors | tail -1)
echo lovely | "$MNEME" predict "$CK" --task original >"$F/pred" 2>"$F/err"
ok $([ $? = 0 ] && jq -e '(.label|IN("0","1","2")) and (.logits|length)==3' "$F/pred" >/dev/null; echo $?) \
   "integer labels 0..2 make a 3-way head named 0, 1, 2 ($(cat "$F/pred" "$F/err"))"
echo x | "$MNEME" predict "$CK" --task new >"$F/pred" 2>"$F/err"
ok $([ $? = 0 ] && jq -e '(.label|IN("entail","contra")) and (.logits|length)==2' "$F/pred" >/dev/null; echo $?) \
   "the pair task's head has its two labels"
"$MNEME" run --headless "$F/formats.cfg" --out "$F/run-bad2" \
    --set 'original.text_field="sentence"' --stop-after 1 >/dev/null 2>"$F/err"
ok $([ $? = 2 ] && contains "$F/err" "new.train.tsv:1:" && contains "$F/err" "sentence pairs need columns = 3"; echo $?) \
   "pairs read as 2 columns: exit 2 with file:line ($(cat "$F/err"))"
printf '{"idx": 9, "text": "no sentence field", "label": 1}\n' >>"$F/orig.train.jsonl"
"$MNEME" run --headless "$F/formats.cfg" --out "$F/run-bad" --set 'original.text_field="sentence"' \
    --set new.columns=3 --stop-after 1 >/dev/null 2>"$F/err"
ok $([ $? = 2 ] && contains "$F/err" "orig.train.jsonl:7:" && contains "$F/err" 'no field "sentence"'; echo $?) \
   "a JSONL line without the text field: exit 2 with file:line ($(cat "$F/err"))"

# Every shipped experiment is valid and starts (one step, then a checkpoint).
for cfg in "$MNEME_SRCDIR"/experiments/*.cfg "$MNEME_SRCDIR"/experiments/strategies/*.cfg \
           "$MNEME_SRCDIR"/experiments/policies/*.cfg; do
    n=$(basename "$(dirname "$cfg")")-$(basename "$cfg" .cfg)
    "$MNEME" run --headless "$cfg" --out "$TMP/ship-$n" --quiet --stop-after 1 >/dev/null 2>"$TMP/err"
    ok $? "shipped experiment $n starts ($(head -c 200 "$TMP/err"))"
done

# Options alone apply to the default experiment, as mneme(1) says.
(cd "$TMP" && "$MNEME" --headless --theme light --set seed=3 --out "$TMP/dflt" --quiet --stop-after 1 >/dev/null 2>"$TMP/err")
ok $([ $? = 0 ] && ! contains "$TMP/err" "which experiment" && grep -q 'seed = 3' "$TMP/dflt/experiment.cfg" &&
     grep -q '^name = "demo"' "$TMP/dflt/experiment.cfg"; echo $?) \
   "mneme --theme/--set/--out with no experiment run the default one ($(head -c 120 "$TMP/err"))"

done_testing
