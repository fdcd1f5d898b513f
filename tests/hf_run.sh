#!/bin/sh
# A run from a Hugging Face folder, as a user brings one: the model's own
# head is the original task (its baseline is what the folder itself
# predicts), fine-tuning trains a new head on WordPiece-tokenized data,
# freezing and LoRA work on the imported layers, and the result goes back
# out: mneme export gives a folder whose logits are bit-identical to the
# run's own checkpoint, or a PEFT adapter with PEFT's names and shapes.
# Then masked-language modelling as the original task, and the errors.
. "$MNEME_SRCDIR/tests/lib.sh"
need_hf_model

# Texts of the model's vocabulary words; the new task: is "great" in it?
hf_texts "$TMP"
$HFM make "$TMP/bert" --seed 11 --labels 2 --hidden 16 --positions 40
$HFM make "$TMP/distil" --seed 12 --labels 2 --arch distilbert --hidden 16 --positions 40
$HFM make "$TMP/bert_mlm" --seed 13 --labels 0 --mlm 1 --hidden 16 --positions 40

cat > "$TMP/exp.cfg" <<'EOF'
name = "hf";
seed = 3;
threads = 1;
base = { from = "bert"; };
original = { eval = "orig.eval.tsv"; };
new = { train = "new.train.tsv"; eval = "new.eval.tsv"; };
finetune = { epochs = 3; lr = 1e-3; batch = 16; };
eval = { every = 5; };
EOF

"$MNEME" run --headless "$TMP/exp.cfg" --out "$TMP/run" --quiet > "$TMP/out" 2>&1
ok $? "a run from a Hugging Face BERT folder finishes ($(tail -n 2 "$TMP/out"))"
for f in config.json vocab.txt tokenizer_config.json; do
    [ -f "$TMP/run/hf/$f" ]
    ok $? "the run keeps hf/$f"
done
grep -q 'hidden = 16;' "$TMP/run/experiment.cfg" && grep -q 'tokenizer = "wordpiece";' "$TMP/run/experiment.cfg" &&
    grep -q 'max_len = 40;' "$TMP/run/experiment.cfg"
ok $? "experiment.cfg records the shape of config.json, max_len from its 40 positions, wordpiece"

# The baseline of the original task is the folder's own head on its eval set.
cut -f1 "$TMP/orig.eval.tsv" | "$MNEME" predict "$TMP/bert" --task original > "$TMP/pred"
want=$(paste "$TMP/pred" "$TMP/orig.eval.tsv" | awk -F'\t' '{ split($1, a, "\"label\":\""); split(a[2], b, "\""); n++; if (b[1] == $3) c++ } END { printf "%.6f", c / n }')
got=$(jq -r 'select(.phase == "finetune" and .step == 0) | .original.acc' "$TMP/run/metrics.jsonl")
ok "$(awk -v a="$want" -v b="$got" 'BEGIN { exit !(a - b < 1e-6 && b - a < 1e-6) }'; echo $?)" \
    "the baseline original accuracy is the imported head's own ($got, predict on the folder: $want)"
new_acc=$(jq -r 'select(.phase == "finetune") | .new.acc' "$TMP/run/metrics.jsonl" | tail -n 1)
ok "$(ge "$new_acc" 0.75; echo $?)" "the new task is learned on WordPiece tokens (accuracy $new_acc)"

# Export, and the exported folder back in: bit-identical logits.
"$MNEME" export "$TMP/run" --to "$TMP/exp_new" > "$TMP/out" 2>&1
ok $? "mneme export writes a Hugging Face folder ($(cat "$TMP/out"))"
jq -e '.architectures == ["BertForSequenceClassification"] and .id2label == {"0": "no", "1": "yes"}
       and .label2id == {"no": 0, "yes": 1} and .hidden_size == 16 and .model_type == "bert"' \
    "$TMP/exp_new/config.json" > /dev/null
ok $? "its config.json has the class, the new task's id2label/label2id and the shape"
for f in model.safetensors vocab.txt tokenizer_config.json special_tokens_map.json; do
    [ -f "$TMP/exp_new/$f" ]
    ok $? "the export has $f"
done
cut -f1 "$TMP/new.eval.tsv" > "$TMP/texts"
"$MNEME" predict "$TMP/run/checkpoints/final.safetensors" --task new < "$TMP/texts" | jq -c .logits > "$TMP/a"
"$MNEME" predict "$TMP/exp_new" --task original < "$TMP/texts" | jq -c .logits > "$TMP/b"
cmp -s "$TMP/a" "$TMP/b" && [ -s "$TMP/a" ]
ok $? "export then import: logits bit-identical to the run's checkpoint ($(wc -l < "$TMP/a") texts)"
"$PY" - "$TMP/exp_new/model.safetensors" > "$TMP/keys" <<'EOF'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    h = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
for k, v in sorted(h.items()):
    if k != "__metadata__":
        print(k, v["dtype"], v["shape"])
EOF
grep -q '^bert.encoder.layer.1.attention.self.query.weight F32 \[16, 16\]$' "$TMP/keys" &&
    grep -q '^classifier.weight F32 \[2, 16\]$' "$TMP/keys" && grep -q '^bert.pooler.dense.bias F32 \[16\]$' "$TMP/keys" &&
    grep -q '^bert.embeddings.position_embeddings.weight F32 \[40, 16\]$' "$TMP/keys" &&
    ! grep -q 'original\|lora' "$TMP/keys"
ok $? "model.safetensors holds Hugging Face names only, every position row, one classifier"

echo "2 9 10 3" | "$MNEME" predict "$TMP/run/checkpoints/final.safetensors" --task new --ids > "$TMP/out" 2>&1
ok "$(jq -e '.logits | length == 2' "$TMP/out" > /dev/null; echo $?)" "predict --ids on the run's checkpoint ($(head -c 100 "$TMP/out"))"
$HFM make "$TMP/onetype" --seed 15 --labels 2 --hidden 16 --positions 40 --types 1
printf 'the movie\tgreat fun\n' | "$MNEME" predict "$TMP/onetype" --task original --pair > /dev/null 2> "$TMP/err"
ok "$([ $? = 2 ] && contains "$TMP/err" "type_vocab_size 1): it takes no sentence pairs"; echo $?)" \
    "a model with one token type refuses sentence pairs ($(cat "$TMP/err"))"
echo "a [MASK]	b" | "$MNEME" predict "$TMP/bert" --task mlm --pair > /dev/null 2> "$TMP/err"
ok "$([ $? = 2 ] && contains "$TMP/err" "--pair is for a classification head"; echo $?)" "predict --task mlm --pair is refused"

# A model.* key that contradicts config.json names both; max_len is bounded.
"$MNEME" run --headless "$TMP/exp.cfg" --out "$TMP/r_bad" --set model.hidden=32 > /dev/null 2> "$TMP/err"
ok "$([ $? = 2 ] && contains "$TMP/err" "--set model.hidden: 32 contradicts hidden_size 16 in" &&
      contains "$TMP/err" "config.json"; echo $?)" "a contradicting model key is refused ($(cat "$TMP/err"))"
printf 'model = { layers = 3; };\n' >> "$TMP/exp.cfg"
"$MNEME" run --headless "$TMP/exp.cfg" --out "$TMP/r_bad" > /dev/null 2> "$TMP/err"
ok "$([ $? = 2 ] && contains "$TMP/err" "exp.cfg:9: model.layers: 3 contradicts num_hidden_layers 2"; echo $?)" \
    "in the file it names file and line ($(cat "$TMP/err"))"
sed -i '$d' "$TMP/exp.cfg"
"$MNEME" run --headless "$TMP/exp.cfg" --out "$TMP/r_bad" --set model.max_len=64 > /dev/null 2> "$TMP/err"
ok "$([ $? = 2 ] && contains "$TMP/err" "64 exceeds max_position_embeddings 40"; echo $?)" \
    "max_len beyond the positions is refused ($(cat "$TMP/err"))"

# Freezing by the same names: the frozen parts do not move.
"$MNEME" run --headless "$TMP/exp.cfg" --out "$TMP/run_frz" --quiet \
    --set 'finetune.freeze.parts="embeddings layer.0"' > /dev/null 2>&1
ok $? "a run with embeddings and layer.0 frozen finishes"
jq -e '.drift["layer.0"] == 0 and .drift.embeddings == 0 and .drift["layer.1"] > 0' \
    "$TMP/run_frz/summary.json" > /dev/null
ok $? "frozen imported layers do not move, the others do ($(jq -c .drift "$TMP/run_frz/summary.json"))"

# LoRA: a PEFT adapter folder with PEFT's names, shapes and config.
"$MNEME" run --headless "$TMP/exp.cfg" --out "$TMP/run_lora" --quiet --set finetune.method=lora \
    --set finetune.lora.r=4 --set finetune.lora.alpha=8 --set finetune.lora.dropout=0.1 > /dev/null 2>&1
ok $? "a LoRA run on the imported BERT finishes"
"$MNEME" export "$TMP/run_lora" --to "$TMP/peft" > "$TMP/out" 2>&1
ok $? "export of a LoRA run ($(cat "$TMP/out"))"
jq -e --arg base "$TMP/bert" '.peft_type == "LORA" and .task_type == "SEQ_CLS" and .r == 4 and
       .lora_alpha == 8 and .lora_dropout == 0.1 and .target_modules == ["query", "value"] and
       .modules_to_save == ["pooler", "classifier"] and (.base_model_name_or_path | endswith("/bert"))' \
    "$TMP/peft/adapter_config.json" > /dev/null &&
    grep -q '"lora_dropout": 0.1,' "$TMP/peft/adapter_config.json"
ok $? "adapter_config.json: LORA, SEQ_CLS, r, alpha, dropout (0.1 as written), targets, modules_to_save, base ($(jq -c '{r, lora_alpha, target_modules, modules_to_save}' "$TMP/peft/adapter_config.json"))"
"$PY" - "$TMP/peft/adapter_model.safetensors" > "$TMP/keys" <<'EOF'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    h = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
for k, v in sorted(h.items()):
    if k != "__metadata__":
        print(k, v["shape"])
EOF
grep -q '^base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight \[4, 16\]$' "$TMP/keys" &&
    grep -q '^base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight \[16, 4\]$' "$TMP/keys" &&
    grep -q '^base_model.model.classifier.weight \[2, 16\]$' "$TMP/keys" &&
    grep -q '^base_model.model.bert.pooler.dense.weight \[16, 16\]$' "$TMP/keys" &&
    [ "$(wc -l < "$TMP/keys")" = 12 ]
ok $? "adapter_model.safetensors: PEFT key names, lora_A [r, in], lora_B [out, r], the pooler and head ($(wc -l < "$TMP/keys") tensors)"
jq -e '(.id2label | length) == 2 and (.label2id | length) == 2' "$TMP/peft/config.json" > /dev/null
ok $? "the adapter folder's config.json carries the labels ($(jq -c .id2label "$TMP/peft/config.json"))"
"$MNEME" export "$TMP/run_lora" --to "$TMP/peft" > /dev/null 2>&1
ok $? "exporting again over an earlier export replaces it"
echo "a film" | "$MNEME" predict "$TMP/run" --task new > /dev/null 2> "$TMP/err"
ok $([ $? = 2 ] && contains "$TMP/err" "is a run folder: predict takes one of its checkpoints"; echo $?) \
   "predict on a run folder names a checkpoint to give: $(cat "$TMP/err")"
"$MNEME" export "$TMP/no-such-run" --to "$TMP/x" > /dev/null 2> "$TMP/err"
ok $([ $? = 2 ] && contains "$TMP/err" "no-such-run: No such file or directory" && [ ! -e "$TMP/x" ]; echo $?) \
   "export of a path that does not exist says so: $(cat "$TMP/err")"
echo "a film" | "$MNEME" predict "$TMP/peft" --task original > /dev/null 2> "$TMP/err"
ok $([ $? = 2 ] && contains "$TMP/err" "a PEFT adapter, not a model" && contains "$TMP/err" "export --merge"; echo $?) \
   "an adapter folder where a model is expected says what it is: $(cat "$TMP/err")"
mkdir -p "$TMP/mine" && echo keep > "$TMP/mine/notes.txt"
"$MNEME" export "$TMP/run_lora" --to "$TMP/mine" > /dev/null 2> "$TMP/err"
ok $([ $? != 0 ] && contains "$TMP/err" "not an earlier export" && [ "$(ls "$TMP/mine")" = notes.txt ]; echo $?) \
   "a folder of the user's is not overwritten: $(cat "$TMP/err")"
# A model folder holds the same file names as an export: only a folder
# whose config.json an export marked is replaced, never the run's base.
sum_before=$(cat "$TMP/bert/model.safetensors" "$TMP/bert/config.json" | cksum)
"$MNEME" export "$TMP/run_lora" --to "$TMP/bert" > /dev/null 2> "$TMP/err"
ok $([ $? = 2 ] && contains "$TMP/err" 'has no "mneme_export"' &&
     [ "$(cat "$TMP/bert/model.safetensors" "$TMP/bert/config.json" | cksum)" = "$sum_before" ]; echo $?) \
   "the run's own base.from is not overwritten: $(cat "$TMP/err")"
jq -e '.mneme_export.adapter == true and .mneme_export.task == "new" and
       (.mneme_export.checkpoint | endswith("final.safetensors")) and
       .problem_type == "single_label_classification"' "$TMP/peft/config.json" > /dev/null
ok $? "an export's config.json says where it came from and that it is single-label ($(jq -c .mneme_export "$TMP/peft/config.json"))"
"$MNEME" export "$TMP/run" --to "$TMP/slash/" > /dev/null 2>&1 && [ -f "$TMP/slash/model.safetensors" ] &&
    [ -z "$(ls -d "$TMP"/slash.tmp.* "$TMP"/slash/.tmp* 2>/dev/null)" ]
ok $? "--to DIR/ with the slash a shell completes writes DIR"
(cd "$TMP/slash" && "$MNEME" export "$TMP/run" --to . > /dev/null 2> "$TMP/err")
ok $([ $? = 2 ] && contains "$TMP/err" "name the folder to write"; echo $?) "--to . is refused: $(cat "$TMP/err")"
MNEME_FAULT_WRITE_AFTER=100 "$MNEME" export "$TMP/run_lora" --to "$TMP/full" > /dev/null 2> "$TMP/err"
ok $([ $? != 0 ] && [ ! -e "$TMP/full" ] && [ -z "$(ls -d "$TMP"/full.tmp.* 2>/dev/null)" ]; echo $?) \
   "a disk that fills during an export leaves nothing half-written: $(cat "$TMP/err")"
"$MNEME" export "$TMP/run_lora" --to "$TMP/merged" --merge > /dev/null 2>&1
"$MNEME" predict "$TMP/run_lora/checkpoints/final.safetensors" --task new < "$TMP/texts" | jq -c .logits > "$TMP/a"
"$MNEME" predict "$TMP/merged" --task original < "$TMP/texts" | jq -c .logits > "$TMP/b"
diff=$(paste -d '\t' "$TMP/a" "$TMP/b" | jq -R -s '[split("\n")[] | select(length > 0) | split("\t")
       | map(fromjson) | transpose[] | (.[0] - .[1]) | fabs] | max')
ok "$(lt "$diff" 1e-4; echo $?)" "export --merge folds the adapter in: logits as the run's (max diff $diff)"

# A LoRA run whose base phase trained the encoder: an adapter applied to
# base.from would lose that, so only --merge exports it.
head -n 24 "$TMP/orig.eval.tsv" > "$TMP/orig.train.tsv"
cat > "$TMP/bp.cfg" <<'EOF'
name = "bp";
seed = 3;
threads = 1;
base = { from = "bert_mlm"; pretrain = { epochs = 1; lr = 1e-3; batch = 16; }; };
original = { train = "orig.train.tsv"; eval = "orig.eval.tsv"; };
new = { train = "new.train.tsv"; eval = "new.eval.tsv"; };
finetune = { epochs = 1; lr = 1e-3; batch = 16; method = "lora"; };
EOF
"$MNEME" run --headless "$TMP/bp.cfg" --out "$TMP/run_bp" --quiet > /dev/null 2>&1 &&
    "$MNEME" export "$TMP/run_bp" --to "$TMP/peft_bp" > /dev/null 2> "$TMP/err"
ok $([ $? = 1 ] && contains "$TMP/err" "differ from $TMP/bert_mlm" && contains "$TMP/err" "export --merge" &&
     [ ! -e "$TMP/peft_bp" ]; echo $?) "a LoRA run after a base phase: no adapter, which would lose it ($(cat "$TMP/err"))"
"$MNEME" export "$TMP/run_bp" --to "$TMP/merged_bp" --merge > /dev/null 2>&1
"$MNEME" predict "$TMP/run_bp/checkpoints/final.safetensors" --task new < "$TMP/texts" | jq -c .logits > "$TMP/a"
"$MNEME" predict "$TMP/merged_bp" --task original < "$TMP/texts" | jq -c .logits > "$TMP/b"
diff=$(paste -d '\t' "$TMP/a" "$TMP/b" | jq -R -s '[split("\n")[] | select(length > 0) | split("\t")
       | map(fromjson) | transpose[] | (.[0] - .[1]) | fabs] | max')
ok "$(lt "$diff" 1e-4; echo $?)" "it exports with --merge: logits as the run's (max diff $diff)"

# DistilBERT: LoRA targets in its own names, its head in modules_to_save.
sed 's/from = "bert"/from = "distil"/' "$TMP/exp.cfg" > "$TMP/exp_d.cfg"
"$MNEME" run --headless "$TMP/exp_d.cfg" --out "$TMP/run_d" --quiet --set finetune.method=lora \
    --set 'finetune.lora.targets="q_lin v_lin"' > "$TMP/out" 2>&1
ok $? "a LoRA run on an imported DistilBERT with targets q_lin v_lin ($(tail -n 1 "$TMP/out"))"
"$MNEME" export "$TMP/run_d" --to "$TMP/peft_d" > /dev/null 2>&1
jq -e '.target_modules == ["q_lin", "v_lin"] and .modules_to_save == ["pre_classifier", "classifier"]' \
    "$TMP/peft_d/adapter_config.json" > /dev/null
ok $? "DistilBERT's adapter config: q_lin, v_lin; pre_classifier and classifier saved"
"$PY" - "$TMP/peft_d/adapter_model.safetensors" > "$TMP/keys" <<'EOF'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    h = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
print("\n".join(sorted(k for k in h if k != "__metadata__")))
EOF
grep -q '^base_model.model.distilbert.transformer.layer.0.attention.q_lin.lora_A.weight$' "$TMP/keys" &&
    grep -q '^base_model.model.pre_classifier.weight$' "$TMP/keys"
ok $? "DistilBERT adapter keys use its names"
"$MNEME" export "$TMP/run_d" --to "$TMP/exp_d" --merge > /dev/null 2>&1
jq -e '.architectures == ["DistilBertForSequenceClassification"]' "$TMP/exp_d/config.json" > /dev/null
ok $? "DistilBERT exports as DistilBertForSequenceClassification"

# Masked-language modelling as the original task.
cat > "$TMP/mlm.cfg" <<'EOF'
name = "mlm";
seed = 3;
threads = 1;
base = { from = "bert_mlm"; };
original = { mlm = "general.txt"; };
new = { train = "new.train.tsv"; eval = "new.eval.tsv"; };
finetune = { epochs = 3; lr = 3e-3; batch = 16; };
eval = { every = 10; };
EOF
"$MNEME" run --headless "$TMP/mlm.cfg" --out "$TMP/run_mlm" --quiet > "$TMP/out" 2>&1
ok $? "a run with MLM as the original task finishes ($(tail -n 1 "$TMP/out"))"
masked=$(sed -n 's/.*held-out texts* with \([0-9]*\) masked pieces.*/\1/p' "$TMP/run_mlm/log.txt" | head -n 1)
jq -e --argjson m "${masked:-0}" '.eval_examples.original == $m and $m > 0 and
       .eval_examples.original_unit == "masked pieces"' "$TMP/run_mlm/summary.json" > /dev/null
ok $? "the MLM accuracy's sample is its $masked masked pieces, as the log says, not its lines"
jq -e '(.drift | has("classifier.original") | not) and (.drift | has("classifier.new")) and (.drift | has("layer.0"))' \
    "$TMP/run_mlm/summary.json" > /dev/null
ok $? "an MLM run's drift leaves out the original head no one reads ($(jq -c '.drift | keys' "$TMP/run_mlm/summary.json"))"
jq -e -s '[.[] | select(.phase == "finetune")] | length > 2 and
          all(.original.acc >= 0 and .original.acc <= 1 and
              ((.original.ppl - (.original.loss | exp)) | fabs) < 1e-4 * .original.ppl)' \
    "$TMP/run_mlm/metrics.jsonl" > /dev/null
ok $? "every evaluation reports masked-token accuracy, loss and perplexity = exp(loss) (metrics keep 6 digits)"
first=$(jq -r 'select(.phase == "finetune") | .original.loss' "$TMP/run_mlm/metrics.jsonl" | head -n 1)
last=$(jq -r 'select(.phase == "finetune") | .original.loss' "$TMP/run_mlm/metrics.jsonl" | tail -n 1)
ok "$(awk -v a="$first" -v b="$last" 'BEGIN { exit !(a != b) }'; echo $?)" \
    "fine-tuning moves the MLM loss (from $first to $last): forgetting is measured"
"$MNEME" run --headless "$TMP/mlm.cfg" --out "$TMP/run_mlm2" --quiet > /dev/null 2>&1
cmp -s "$TMP/run_mlm/metrics.jsonl" "$TMP/run_mlm2/metrics.jsonl" ||
    [ "$(jq -c 'del(.elapsed_s)' "$TMP/run_mlm/metrics.jsonl")" = "$(jq -c 'del(.elapsed_s)' "$TMP/run_mlm2/metrics.jsonl")" ]
ok $? "the same experiment scores the same masked positions: identical metrics"
echo "the movie was [MASK] ." | "$MNEME" predict "$TMP/run_mlm/checkpoints/final.safetensors" --task mlm > "$TMP/out" 2>&1
jq -e '.masks[0].position == 4 and (.masks[0].top | length) == 5' "$TMP/out" > /dev/null
ok $? "predict --task mlm on the run's checkpoint fills [MASK] at position 4 ($(head -c 120 "$TMP/out"))"
printf 'the [MASK] was good\nno mask here\na [MASK] film\n' |
    "$MNEME" predict "$TMP/run_mlm/checkpoints/final.safetensors" --task mlm > "$TMP/out" 2> "$TMP/err"
ok $([ $? = 0 ] && [ "$(jq -c '.masks | length' "$TMP/out" | tr '\n' ' ')" = "1 0 1 " ] &&
     contains "$TMP/err" 'stdin:2: no [MASK]'; echo $?) \
   "a line without [MASK] answers with no masks and the stream goes on ($(cat "$TMP/err"))"
echo "a film" | "$MNEME" predict "$TMP/run_mlm/checkpoints/final.safetensors" --task original \
    > "$TMP/out" 2> "$TMP/err"
ok $([ $? = 2 ] && [ ! -s "$TMP/out" ] && contains "$TMP/err" "masked-language modelling, which has no classification head"; echo $?) \
   "predict --task original on a run whose original task is MLM is refused: $(cat "$TMP/err")"
cp -r "$TMP/bert_mlm" "$TMP/bert_nomask"
sed -i 's/^\[MASK\]$/[MASQUE]/' "$TMP/bert_nomask/vocab.txt"
echo "a [MASK] film" | "$MNEME" predict "$TMP/bert_nomask" --task mlm > /dev/null 2> "$TMP/err"
ok $([ $? = 2 ] && contains "$TMP/err" "vocab.txt has no [MASK]"; echo $?) \
   "a vocab.txt without [MASK]: predict --task mlm is refused ($(cat "$TMP/err"))"
"$MNEME" run --headless "$TMP/mlm.cfg" --out "$TMP/run_nomask" --quiet --set base.from="$TMP/bert_nomask" \
    > /dev/null 2> "$TMP/err"
ok $([ $? != 0 ] && contains "$TMP/err" "vocab.txt has no [MASK]"; echo $?) \
   "and so is original.mlm ($(tail -n 1 "$TMP/err"))"
# A head whose output overflows: no JSON line with a number left out.
cp -r "$TMP/bert" "$TMP/bert_inf"
"$PY" - "$TMP/bert_inf/model.safetensors" <<'EOF'
import json, struct, sys
with open(sys.argv[1], "r+b") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    h = json.loads(f.read(n))
    f.seek(8 + n + h["classifier.bias"]["data_offsets"][0])
    f.write(struct.pack("<f", float("inf")))
EOF
echo "a film" | "$MNEME" predict "$TMP/bert_inf" --task original > "$TMP/out" 2> "$TMP/err"
ok $([ $? = 1 ] && [ ! -s "$TMP/out" ] && contains "$TMP/err" "stdin:1: the model's output is not finite"; echo $?) \
   "an infinite logit is an error naming the line, not a shorter logits array: $(cat "$TMP/err")"
"$MNEME" run --headless "$TMP/mlm.cfg" --out "$TMP/run_replay" --quiet --set finetune.replay.ratio=0.25 \
    > "$TMP/out" 2>&1
ok $? "MLM replay: a quarter of each batch is masked text through the MLM head ($(tail -n 1 "$TMP/out"))"
moved() { jq -r 'select(.phase == "finetune") | .original.loss' "$1" |
          awk 'NR == 1 { a = $1 } { b = $1 } END { d = b - a; print (d < 0 ? -d : d) }'; }
final() { jq -r 'select(.phase == "finetune") | .original.loss' "$1" | tail -n 1; }
plain=$(moved "$TMP/run_mlm/metrics.jsonl")
ok "$(lt "$(final "$TMP/run_replay/metrics.jsonl")" "$(final "$TMP/run_mlm/metrics.jsonl")"; echo $?)" \
    "replaying masked text ends with a lower MLM loss than without (the model trains on it: $(final "$TMP/run_replay/metrics.jsonl") vs $(final "$TMP/run_mlm/metrics.jsonl"))"
"$MNEME" replay "$TMP/run_replay" --out "$TMP/replayed" --quiet > "$TMP/out" 2>&1
ok $? "mneme replay reproduces the MLM-replay run from its folder ($(tail -n 1 "$TMP/out"))"
"$MNEME" run --headless "$TMP/mlm.cfg" --out "$TMP/run_ewc" --quiet --set finetune.ewc.lambda=1e4 \
    > "$TMP/out" 2>&1
ok $? "EWC with the MLM Fisher ($(tail -n 1 "$TMP/out"))"
# The MLM original task in bf16 (emulated: the same numbers on any CPU):
# the pretrained model's masked-token loss as fp32 scores it, within bf16's
# reach, and MLM replay through the bf16 decoder (tied to the embeddings).
MNEME_BF16=emulate "$MNEME" run --headless "$TMP/mlm.cfg" --out "$TMP/run_mlm16" --quiet \
    --set model.precision=bf16 --set finetune.replay.ratio=0.25 > "$TMP/out" 2>&1
ok $? "MLM original task and replay in bf16 ($(tail -n 1 "$TMP/out"))"
b32=$(jq -r .baseline.original.loss "$TMP/run_replay/summary.json")
b16=$(jq -r .baseline.original.loss "$TMP/run_mlm16/summary.json")
awk -v a="$b32" -v b="$b16" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 0.02 * a && a != b) }'
ok $? "bf16 scores the pretrained model's masked tokens as fp32 does within 2% ($b16 vs $b32)"
echo "the movie was [MASK] ." | MNEME_BF16=emulate "$MNEME" predict \
    "$TMP/run_mlm16/checkpoints/final.safetensors" --task mlm > "$TMP/out" 2>&1
jq -e '.masks[0].position == 4 and (.masks[0].top | length) == 5' "$TMP/out" > /dev/null
ok $? "predict --task mlm on the bf16 run's checkpoint, in bf16"
MNEME_BF16=emulate "$MNEME" export "$TMP/run_mlm16" --to "$TMP/exp16" > /dev/null 2>&1
for prec in fp32 bf16; do
    MNEME_BF16=emulate "$MNEME" predict "$TMP/run_mlm16/checkpoints/final.safetensors" --task new \
        --precision $prec < "$TMP/texts" | jq -c .logits > "$TMP/a16"
    MNEME_BF16=emulate "$MNEME" predict "$TMP/exp16" --task original --precision $prec \
        < "$TMP/texts" | jq -c .logits > "$TMP/b16"
    cmp -s "$TMP/a16" "$TMP/b16" && [ -s "$TMP/a16" ]
    ok $? "a bf16 run exports fp32 weights: the folder's logits are its checkpoint's in $prec, bit for bit"
done
ewc=$(moved "$TMP/run_ewc/metrics.jsonl")
jq -e -s 'map(select(.phase == "finetune")) | all(.ewc_lambda == 10000)' "$TMP/run_ewc/metrics.jsonl" > /dev/null &&
    lt "$ewc" "$plain"
ok $? "EWC on the MLM Fisher keeps the MLM loss closer too (moved $ewc, without $plain)"
sed 's/from = "bert"/from = "bert_mlm"/' "$TMP/exp.cfg" > "$TMP/nohead.cfg"
"$MNEME" run --headless "$TMP/nohead.cfg" --out "$TMP/r_bad" > /dev/null 2> "$TMP/err"
ok "$([ $? = 2 ] && contains "$TMP/err" "original.train is missing: base.from" &&
      contains "$TMP/err" "has no classification head"; echo $?)" \
    "a model without a head and only original.eval: original.train is named ($(cat "$TMP/err"))"
sed 's/from = "bert_mlm"/from = "bert"/' "$TMP/mlm.cfg" > "$TMP/mlm_bad.cfg"
"$MNEME" run --headless "$TMP/mlm_bad.cfg" --out "$TMP/r_bad" > /dev/null 2> "$TMP/err"
ok "$([ $? = 2 ] && contains "$TMP/err" "cls.predictions.transform.dense.weight is missing"; echo $?)" \
    "original.mlm on a classifier without an MLM head names what is missing ($(cat "$TMP/err"))"

# A Lua policy on the imported model, by the same names: gradual
# unfreezing opens one block of the 12 every 2 steps, from the top.
$HFM make "$TMP/bert12" --seed 14 --labels 2 --hidden 16 --layers 12 --positions 40
sed 's/from = "bert"/from = "bert12"/' "$TMP/exp.cfg" > "$TMP/exp12.cfg"
sed 's/every = 200/every = 2/' "$MNEME_SRCDIR/lua/policies/gradual_unfreeze.lua" > "$TMP/unfreeze.lua"
"$MNEME" run --headless "$TMP/exp12.cfg" --out "$TMP/run_pol" --quiet \
    --set "finetune.policy=\"$TMP/unfreeze.lua\"" \
    --set policy.path="\"$MNEME_SRCDIR/lua\"" > "$TMP/out" 2>&1
ok $? "gradual_unfreeze runs on a 12-layer imported BERT ($(tail -n 1 "$TMP/out"))"
opened=$(jq -r 'select(.source == "policy" and .to == 0) | "\(.set)@\(.step)"' "$TMP/run_pol/events.jsonl" |
         tr '\n' ' ')
case "$opened" in
*layer.10.frozen@*layer.0.frozen@*) st=0 ;;
*) st=1 ;;
esac
ok $st "its changes, block by block by their imported names, are recorded with their steps ($opened)"
jq -e '.drift["layer.0"] < .drift["layer.11"]' "$TMP/run_pol/summary.json" > /dev/null
ok $? "the top block, open longest, moved more than the bottom one ($(jq -c '[.drift["layer.0"], .drift["layer.11"]]' "$TMP/run_pol/summary.json"))"

# The workbench on a 12-layer imported model in an 80x24 terminal: every
# block is on screen (ranges when they share a state), and :freeze takes
# the same names.
if command -v tmux >/dev/null 2>&1; then
    . "$MNEME_SRCDIR/tests/tmux.sh"
    cat > "$TMP/pane.sh" <<SH
"$MNEME" "$TMP/exp12.cfg" --set finetune.epochs=2000 --set finetune.freeze.keep_last=3 --out "$TMP/run12" 2>"$TMP/stderr"
echo "mneme-exit=\$?"
exec sleep 600
SH
    ui_session 80 24 "$TMP/pane.sh"
    wait_for 30 "layer.9-11"
    st=$?
    [ $st = 0 ] && grep -q "emb+layer.0-8 *. frozen" "$TMP/pane" && grep -q "pooler" "$TMP/pane" &&
        grep -q "classifier.new" "$TMP/pane" && ! grep -q "more" "$TMP/pane"
    st=$?
    ok $st "80x24, 12 imported layers with the last 3 trainable: two rows cover them all"
    show_pane_if $st
    T send-keys -t ui ':freeze layer.10-11' Enter
    T resize-window -t ui -x 80 -y 40
    wait_for 15 "layer.9 "
    st=$?
    [ $st = 0 ] && grep -q "layer.0-8 *. frozen" "$TMP/pane" && grep -q "layer.10-11 *. frozen" "$TMP/pane"
    st=$?
    ok $st ":freeze layer.10-11 on the imported model, 80x40: the panel splits the ranges as the states change"
    show_pane_if $st
    quit_ui "mneme-exit="
    ok "$(grep -q "mneme-exit=0" "$TMP/pane"; echo $?)" "the workbench quits cleanly"
else
    diag "tmux not installed: the workbench check is skipped"
fi

done_testing
