/* Hugging Face model folders: config.json and model.safetensors (beside
 * vocab.txt and tokenizer_config.json, which tokenizer.h reads).
 *
 * The architectures differ in data, not in code: one table row per
 * architecture says which config.json fields hold the shape, what its
 * tensors are called (BERT's attention.self.query is DistilBERT's
 * attention.q_lin), and which forward differences it has (token types,
 * pooler or pre_classifier, activation), which ModelConfig carries to the
 * model. mneme's own tensor names are BERT's, whatever the architecture. */
#ifndef MNEME_HF_H
#define MNEME_HF_H

#include <stddef.h>

#include "data.h"
#include "error.h"
#include "model.h"
#include "mlm.h"
#include "safetensors.h"

/* As many blocks as an experiment's model.layers takes. */
#define HF_MAX_LAYERS 48
/* Predict on a folder sizes its buffers for this many tokens at most. */
#define HF_PREDICT_MAX_LEN 512

typedef struct {
    char dir[1024];
    int arch;                  /* ARCH_BERT | ARCH_DISTILBERT */
    /* The shape from config.json: vocab, hidden, layers, heads,
     * intermediate, max_positions, type_vocab, act, ln_eps, head_pre,
     * arch. Tasks, max_len and strategies are the caller's. */
    ModelConfig shape;
    double init_std;           /* initializer_range */
    LabelSet labels;           /* id2label, in id order (every config has one) */
    StFile st;                 /* model.safetensors */
    int prefixed;              /* tensors carry "bert." / "distilbert." */
    int head_labels;           /* rows of the stored classifier; 0: no head */
    int has_pooler;            /* BERT: bert.pooler.dense is stored */
    int has_pre;               /* DistilBERT: pre_classifier is stored */
    int tie_embeddings;        /* tie_word_embeddings (default true) */
    int multi_label;           /* problem_type multi_label_classification */
} HfModel;

/* Reads DIR/config.json and DIR/model.safetensors and checks that they
 * describe a model mneme can run. Errors name the file and the field or
 * tensor ("DIR/config.json: hidden_act \"relu\" is not supported ...";
 * a folder with only pytorch_model.bin is refused with how to convert
 * it). Free with hf_close. */
int hf_open(HfModel *h, const char *dir, MnError *e);
void hf_close(HfModel *h);
/* config.json alone (dir, arch, shape, init_std, labels), for checking an
 * experiment against it without reading the weights. */
int hf_read_config(HfModel *h, const char *dir, MnError *e);

/* Copies the weights into m (built from h->shape): every encoder tensor
 * must be stored, with the shape config.json implies. The stored head
 * goes to task head_task (when >= 0 and the file has one; its label
 * count must be m's), and for DistilBERT its pre_classifier to every
 * head (a new head starts from it, as Hugging Face loads one). What is
 * not stored (the pooler of a BertForMaskedLM file, a head) keeps m's
 * initialisation. */
int hf_load(const HfModel *h, Model *m, int head_task, MnError *e);

/* The model's masked-language-modelling head (BERT's cls.predictions.*,
 * DistilBERT's vocab_transform, vocab_layer_norm, vocab_projector) into
 * head, allocated here. The decoder is tied to the word embeddings unless
 * config.json's tie_word_embeddings is false (then it must be stored). An
 * error names what is missing: a classifier checkpoint has no MLM head. */
int hf_load_mlm(const HfModel *h, MlmHead *head, MnError *e);

/* The folder a run started from: base.from of the experiment.cfg beside
 * its hf/ folder (hf_run_files); "" when unknown. */
void hf_run_base_from(const char *hf_dir, char *out, size_t n);

/* The Hugging Face name of tensor t of m under arch (as
 * *ForSequenceClassification stores it: "bert.encoder.layer.0...",
 * "classifier.weight" for task head_task's head). -1 when it has none
 * (another task's head, adapters, soft tokens). */
int hf_tensor_name(const Model *m, int t, int arch, int head_task, char *out, size_t n);

/* PEFT's name of a LoRA tensor of m ("base_model.model.bert.encoder.
 * layer.0.attention.self.query.lora_A.weight"), or -1 for any other
 * tensor. The module name as PEFT's target_modules would give it, without
 * the base prefix ("attention.self.query"), goes to module when not NULL. */
int hf_adapter_name(const Model *m, int t, int arch, char *out, size_t n, char *module,
                    size_t mn);

/* A run that started from a Hugging Face folder keeps its config.json and
 * tokenizer files in its hf/ folder; this finds it from a checkpoint's
 * path (checkpoints/ of the run or of a branch). 1 when found. */
int hf_run_files(const char *checkpoint, char *dir, size_t n);

/* "bert", "distilbert"; the classification class name
 * ("BertForSequenceClassification"). */
const char *hf_model_type(int arch);
const char *hf_class_name(int arch);

#endif
