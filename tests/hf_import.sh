#!/bin/sh
# Hugging Face model folders in: tests/hf_model.py writes small BERT and
# DistilBERT folders in every layout people have (with and without the
# base prefix, LayerNorm gamma/beta, half precision, no pooler) and
# computes their logits with its own numpy forward; mneme predict on the
# folder must give the same logits. Then every import error, with its
# message.
. "$MNEME_SRCDIR/tests/lib.sh"
need_hf_model

printf '2 5 6 7 3\n2 9 10 11 12 13 14 15 3\n2 3\n2 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 3\n' \
    > "$TMP/ids"

# same_logits NAME DIR: mneme's logits within 2e-5 (float32 against float64)
same_logits() {
    $HFM logits "$2" < "$TMP/ids" > "$TMP/want" &&
        "$MNEME" predict "$2" --task original --ids < "$TMP/ids" > "$TMP/got" 2> "$TMP/err"
    if [ $? != 0 ]; then
        ok 1 "$1: predict ran ($(cat "$TMP/err"))"
        return
    fi
    jq -c .logits "$TMP/got" > "$TMP/got_logits"
    diff=$(paste -d '\t' "$TMP/want" "$TMP/got_logits" | jq -R -s '
        [split("\n")[] | select(length > 0) | split("\t") | map(fromjson)
         | transpose[] | (.[0] - .[1]) | fabs] | max')
    ok "$(lt "$diff" 2e-5; echo $?)" "$1: logits equal an independent forward (max diff $diff)"
}

$HFM make "$TMP/bert" --seed 1
same_logits "BERT, bert. prefix" "$TMP/bert"
$HFM make "$TMP/bert_np" --seed 2 --prefix 0
same_logits "BERT without the bert. prefix (BertModel layout)" "$TMP/bert_np"
$HFM make "$TMP/bert_gb" --seed 3 --gamma-beta
same_logits "BERT with LayerNorm.gamma/beta names" "$TMP/bert_gb"
$HFM make "$TMP/bert_tanh" --seed 4 --act gelu_new --eps 1e-6 --layers 3 --heads 4
same_logits "BERT with gelu_new, layer_norm_eps 1e-6, 3 layers, 4 heads" "$TMP/bert_tanh"
$HFM make "$TMP/bert_f16" --seed 5 --dtype F16 --mlm 1
same_logits "BERT stored in float16, with an MLM head beside it" "$TMP/bert_f16"
$HFM make "$TMP/distil" --seed 6 --arch distilbert
same_logits "DistilBERT, distilbert. prefix" "$TMP/distil"
$HFM make "$TMP/distil_np" --seed 7 --arch distilbert --prefix 0 --act gelu_new
same_logits "DistilBERT without prefix, gelu_new" "$TMP/distil_np"

# Sentence pairs through WordPiece: [CLS] a [SEP] b [SEP] with token types
# 0 then 1, against the reference's own tokenization of whole words.
printf 'The movie was GREAT\tbut the plot, not very good!\nI liked it\tboring story\n' > "$TMP/pairs"
$HFM logits "$TMP/bert" --pair < "$TMP/pairs" > "$TMP/want" 2> "$TMP/err" &&
    "$MNEME" predict "$TMP/bert" --task original --pair < "$TMP/pairs" | jq -c .logits > "$TMP/got_logits"
diff=$(paste -d '\t' "$TMP/want" "$TMP/got_logits" | jq -R -s '
    [split("\n")[] | select(length > 0) | split("\t") | map(fromjson)
     | transpose[] | (.[0] - .[1]) | fabs] | max')
ok "$(lt "$diff" 2e-5; echo $?)" "sentence pairs: WordPiece ids and token types 0/1 give the reference's logits (max diff $diff)"

# The MLM head (tied to the word embeddings, as Hugging Face loads it):
# predict --task mlm against the same numpy forward, top 5 ids and
# probabilities at every [MASK].
printf '2 5 4 7 3\n2 4 10 4 12 3\n2 20 21 22 4 3\n' > "$TMP/mids"
same_mlm() {
    $HFM mlm "$2" < "$TMP/mids" > "$TMP/want" &&
        "$MNEME" predict "$2" --task mlm --ids < "$TMP/mids" > "$TMP/got" 2> "$TMP/err"
    if [ $? != 0 ]; then
        ok 1 "$1: predict --task mlm ran ($(cat "$TMP/err"))"
        return
    fi
    jq -c '[.masks[] | {position, top: [.top[] | [.id, .score]]}]' "$TMP/got" > "$TMP/got_m"
    res=$(paste -d '\t' "$TMP/want" "$TMP/got_m" | jq -R -s '
        [split("\n")[] | select(length > 0) | split("\t") | map(fromjson)
         | [.[0], .[1]] | transpose[] | [.[0].position == .[1].position,
           ([.[0].top, .[1].top] | transpose[] | [.[0][0] == .[1][0], ((.[0][1] - .[1][1]) | fabs)])]]
        | [flatten[] | select(type == "boolean")] as $same
        | [flatten[] | select(type == "number")] as $d
        | "\($same | all) \($d | max)"' -r)
    set -- "$1" $res
    ok "$([ "$2" = true ] && lt "$3" 1e-5; echo $?)" \
        "$1: predict --task mlm gives the same top 5 at each [MASK] (ids equal: $2, max prob diff $3)"
}
$HFM make "$TMP/bert_mlm" --seed 8 --mlm 1 --labels 0
same_mlm "BERT MLM head (BertForMaskedLM layout, no pooler stored)" "$TMP/bert_mlm"
$HFM make "$TMP/distil_mlm" --seed 9 --arch distilbert --mlm 1 --labels 0 --prefix 1
same_mlm "DistilBERT MLM head" "$TMP/distil_mlm"

# Every import error says which file and which field or tensor.
# refused NAME DIR TEXT: predict exits 2 and names TEXT
refused() {
    "$MNEME" predict "$2" --task original --ids < "$TMP/ids" > /dev/null 2> "$TMP/err"
    st=$?
    ok "$([ $st = 2 ] && contains "$TMP/err" "$3"; echo $?)" "$1 is refused: $(cat "$TMP/err")"
}
$HFM make "$TMP/e1" --drop bert.encoder.layer.1.attention.self.key.weight
refused "a missing tensor" "$TMP/e1" "tensor bert.encoder.layer.1.attention.self.key.weight is missing"
$HFM make "$TMP/e2" --reshape bert.encoder.layer.0.intermediate.dense.weight=30
refused "a shape that disagrees with config.json" "$TMP/e2" \
    'bert.encoder.layer.0.intermediate.dense.weight" has shape [30, 16], expected [32, 16]'
$HFM make "$TMP/e3" --set 'model_type="gpt2"'
refused "an unknown model_type" "$TMP/e3" 'config.json: model_type "gpt2" is not supported'
$HFM make "$TMP/e4" --set 'hidden_act="relu"'
refused "an unsupported activation" "$TMP/e4" 'hidden_act relu is not supported'
$HFM make "$TMP/e5" --set 'num_attention_heads=3'
refused "hidden_size not a multiple of the heads" "$TMP/e5" 'hidden_size 16 is not a multiple of num_attention_heads 3'
$HFM make "$TMP/e6" --set 'position_embedding_type="relative_key"'
refused "relative positions" "$TMP/e6" 'position_embedding_type relative_key is not supported'
$HFM make "$TMP/e7" --set 'id2label={"0": "a", "1": "b"}'
refused "an id2label that disagrees with the head" "$TMP/e7" 'classifier.weight has 3 rows but config.json'"'"'s id2label has 2 labels'
$HFM make "$TMP/e8"
mv "$TMP/e8/model.safetensors" "$TMP/e8/pytorch_model.bin"
refused "pytorch_model.bin alone" "$TMP/e8" "only pytorch_model.bin is there; mneme reads safetensors. Convert it"
$HFM make "$TMP/e9"
printf '{"model_type": "bert",\n "hidden_size": 16,,\n}\n' > "$TMP/e9/config.json"
refused "malformed config.json" "$TMP/e9" "config.json:2:"
$HFM make "$TMP/e10" --set 'num_hidden_layers="two"'
refused "a field of the wrong type" "$TMP/e10" 'num_hidden_layers: expected an integer'
$HFM make "$TMP/e11" --drop bert.embeddings.word_embeddings.weight
refused "weights of another model" "$TMP/e11" 'no embeddings.word_embeddings.weight (with or without "bert.")'
$HFM make "$TMP/e12" --labels 0
refused "predict on a folder without a head" "$TMP/e12" 'has no classification head'
refused "a folder that does not exist" "$TMP/nowhere" 'nowhere: cannot open: No such file or directory'
$HFM make "$TMP/e13" --drop bert.embeddings.LayerNorm.weight
refused "a missing LayerNorm" "$TMP/e13" 'tensor bert.embeddings.LayerNorm.weight is missing'
$HFM make "$TMP/e15" --drop bert.pooler.dense.weight
refused "a classifier without the pooler it reads" "$TMP/e15" 'classifier.weight is there but bert.pooler.dense.weight is not'
$HFM make "$TMP/e16" --arch distilbert --drop pre_classifier.weight
refused "a DistilBERT classifier without pre_classifier" "$TMP/e16" 'classifier.weight is there but pre_classifier.weight is not'
$HFM make "$TMP/e17" --set 'hidden_size=32' --set 'intermediate_size=64'
refused "a config.json whose hidden_size the weights disagree with" "$TMP/e17" \
    "word_embeddings.weight has shape [39, 16], but config.json's vocab_size 39 and hidden_size 32 need [39, 32]"
$HFM make "$TMP/e18" --reshape classifier.weight=70
refused "a classifier of too many rows" "$TMP/e18" 'classifier.weight has shape [70, 16], expected [labels (1 to 64), hidden_size 16]'
$HFM make "$TMP/e19" --set 'position_embedding_type=null'
refused "position_embedding_type null" "$TMP/e19" 'position_embedding_type null (no position embeddings) is not supported'
$HFM make "$TMP/e20" --set 'is_decoder=true'
refused "a decoder" "$TMP/e20" 'is_decoder true is not supported'
$HFM make "$TMP/e21" --set 'problem_type="multi_label_classification"'
refused "a multi-label head" "$TMP/e21" 'problem_type multi_label_classification'
$HFM make "$TMP/e22"
mv "$TMP/e22/model.safetensors" "$TMP/e22/tf_model.h5"
refused "tf_model.h5 alone" "$TMP/e22" 'only tf_model.h5 is there; mneme reads one model.safetensors'
$HFM make "$TMP/e23" --labels 3 --set 'id2label=null' --set 'num_labels=3'
"$MNEME" predict "$TMP/e23" --task original --ids < "$TMP/ids" > "$TMP/out" 2> "$TMP/err"
ok $([ $? = 0 ] && jq -e '.label | test("^LABEL_[012]$")' "$TMP/out" > /dev/null; echo $?) \
   "num_labels without id2label: LABEL_0..LABEL_2, as transformers names them ($(head -c 80 "$TMP/out"))"
mlm_refused() {
    "$MNEME" predict "$2" --task mlm --ids < "$TMP/mids" > /dev/null 2> "$TMP/err"
    st=$?
    ok "$([ $st = 2 ] && contains "$TMP/err" "$3"; echo $?)" "$1 is refused: $(cat "$TMP/err")"
}
mlm_refused "--task mlm on a classifier without an MLM head" "$TMP/bert" \
    'tensor cls.predictions.transform.dense.weight is missing: original.mlm needs the pretrained model'"'"'s MLM head'
$HFM make "$TMP/e14" --mlm 1 --set 'tie_word_embeddings=false'
mlm_refused "an untied decoder that is not stored" "$TMP/e14" 'tensor cls.predictions.decoder.weight is missing'

done_testing
