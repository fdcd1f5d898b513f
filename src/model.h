/* A BERT-style encoder for sequence classification with one head per task.
 *
 * All parameters live in one float buffer described by a table of named
 * tensors (Hugging Face BERT names, [out, in] linear weights); gradients
 * and optimizer moments use the same layout. Parameter groups (embeddings,
 * each block, the pooler, each head) carry the learning-rate multiplier and
 * the trainable flag that freezing and discriminative rates act on.
 * Activations are allocated once for the largest batch: a training step
 * does not allocate. */
#ifndef MNEME_MODEL_H
#define MNEME_MODEL_H

#include <stddef.h>

#include "data.h"
#include "error.h"
#include "rng.h"

#define MODEL_MAX_TASKS 4
#define MODEL_MAX_LAYERS 64
#define TASK_NAME_MAX 32
#define PARAM_NAME_MAX 96
#define MODEL_MAX_THREADS 64
#define MODEL_MAX_VIRTUAL 64        /* soft tokens or prefix vectors */

/* The linear modules of a block that LoRA can adapt (see lora.h), in the
 * order their adapters are laid out. */
enum {
    LORA_QUERY, LORA_KEY, LORA_VALUE,      /* attention.self.{query,key,value} */
    LORA_ATTN_OUT,                         /* attention.output.dense */
    LORA_INTER,                            /* intermediate.dense */
    LORA_OUTPUT,                           /* output.dense */
    LORA_MODULES
};

/* The feed-forward activation: the erf form, or the tanh approximation
 * (Hugging Face's gelu_new). */
enum { ACT_GELU, ACT_GELU_TANH };

/* Architectures whose weights mneme reads and writes (hf.c names their
 * tensors); the model itself only sees the differences below. */
enum { ARCH_BERT, ARCH_DISTILBERT };

typedef struct {
    int vocab;
    int hidden, layers, heads, intermediate, max_len;
    int max_positions;         /* rows of the position table (>= max_len; 0: max_len) */
    int type_vocab;            /* 2, as BERT; 0: no token type embeddings */
    int act;                   /* ACT_GELU or ACT_GELU_TANH */
    float ln_eps;              /* LayerNorm eps; 0: BERT's 1e-12 */
    /* 0: a shared pooler (dense + tanh on [CLS]) under every head, as
     * BERT; 1: no pooler, each head has its own pre_classifier dense +
     * ReLU, as DistilBERT */
    int head_pre;
    int arch;                  /* ARCH_*: names on import and export only */
    int n_tasks;
    char task_name[MODEL_MAX_TASKS][TASK_NAME_MAX];
    int n_labels[MODEL_MAX_TASKS];
    /* LoRA adapters (lora.h): lora_r = 0 builds none, and the tensor
     * table is exactly the plain model's. lora_targets: bit (1u << m) for
     * each adapted module m (LORA_QUERY ...); the scaling is alpha / r. */
    int lora_r;
    float lora_alpha;
    float lora_dropout;        /* on the adapters' input, while training */
    unsigned lora_targets;
    /* Prompt tuning (prompt.h): prompt_tokens soft tokens after [CLS];
     * prefix tuning: prefix_tokens learned keys and values in every
     * attention. 0 (both, by default) builds none: the plain table. */
    int prompt_tokens;
    int prefix_tokens;
} ModelConfig;

typedef struct {
    char name[PARAM_NAME_MAX];
    int ndim;
    int shape[2];
    size_t offset, numel;
    int group;
    int decay;                 /* weight decay applies (not biases, LayerNorm) */
} ParamTensor;

typedef struct {
    char name[48];             /* embeddings, layer.<i>, pooler, classifier.<task> */
    float lr_scale;
    int trainable;
    int first, count;          /* tensors [first, first+count) */
    size_t offset, numel;      /* its span of the flat buffer */
    int lora_layer;            /* layer.<i>.lora: i; every other group: -1 */
} ParamGroup;

/* Offsets of one block's tensors in the flat buffer. Query, key and value
 * weights are stored back to back ([3C, C]) and so are their biases, so
 * one matrix product projects all three. */
typedef struct {
    size_t qkv_w, qkv_b;                   /* query | key | value */
    size_t attn_out_w, attn_out_b;
    size_t ln1_g, ln1_b;                   /* attention.output.LayerNorm */
    size_t inter_w, inter_b;
    size_t out_w, out_b;
    size_t ln2_g, ln2_b;                   /* output.LayerNorm */
    /* LoRA A [r, in] and B [out, r] of module m, when its bit is set in
     * cfg.lora_targets */
    size_t lora_a[LORA_MODULES], lora_b[LORA_MODULES];
    /* prefix.layer.<i>.key / .value [prefix_tokens, C], when present */
    size_t prefix_k, prefix_v;
} BlockOffsets;

typedef struct {
    size_t word, pos, type, ln_g, ln_b;
    BlockOffsets block[MODEL_MAX_LAYERS];
    size_t pool_w, pool_b;     /* the pooler (not with head_pre) */
    size_t head_w[MODEL_MAX_TASKS], head_b[MODEL_MAX_TASKS];
    size_t pre_w[MODEL_MAX_TASKS], pre_b[MODEL_MAX_TASKS];   /* head_pre */
    size_t prompt;             /* prompt_encoder.embedding.weight [n, C] */
} ModelOffsets;

/* Per-block activations kept for the backward. The last block, run for
 * the [CLS] rows only (model.c), keeps B rows in ctx, res1, ln1, inter,
 * gelu, res2 and ln2, [B, H, 1, prefix + T] in att, and only the [CLS]
 * rows' queries in qkv: code that reads other rows of its output sets
 * full_last_block. */
typedef struct {
    float *qkv;        /* [BT, 3C] */
    float *att;        /* [B, H, T, prefix + T] (T: prompt tokens included) */
    float *ctx;        /* [BT, C] */
    float *res1;       /* [BT, C] input + attention output (pre-LN) */
    float *ln1;        /* [BT, C] */
    float *ln1_mean, *ln1_rstd;
    float *inter;      /* [BT, I] gelu'(pre-GELU), kept by the forward */
    float *gelu;       /* [BT, I] */
    float *res2;       /* [BT, C] ln1 + output dense (pre-LN) */
    float *ln2;        /* [BT, C] the block's output */
    float *ln2_mean, *ln2_rstd;
    float *lora_u[LORA_MODULES]; /* [BT, r] x A^T of each adapted module, else NULL */
} BlockActs;

typedef struct {
    int cap_B;                 /* batch rows the buffers hold */
    int B, T;                  /* shape of the last forward (the batch's T) */
    int *len;                  /* [B] lengths with the soft tokens (prompt only) */
    float *emb;                /* [BT, C] pre-LN sum */
    float *emb_ln;             /* [BT, C] */
    float *emb_mean, *emb_rstd;
    BlockActs block[MODEL_MAX_LAYERS];
    float *cls;                /* [B, C] first token of the last block */
    float *pool_pre, *pooled;  /* [B, C] */
    float *logits, *probs;     /* [B, max labels] */
    int max_labels;
    /* backward scratch */
    float *d_a, *d_b, *d_c;    /* [BT, C] each */
    float *d_qkv;              /* [BT, 3C] */
    float *d_gelu;             /* [BT, I]: d(gelu), then d(inter) in place */
    float *d_att;              /* ATTENTION_SCRATCH for each worker */
    float *d_cls, *d_pool;     /* [B, C] */
    float *d_logits;           /* [B, max labels] */
    float *d_lora;             /* [BT, r] (LoRA models only) */
    float *lora_xd, *lora_dxd; /* [BT, max(C, I)]: dropped input, its gradient
                                * (LoRA with dropout only) */
    float *cls_in;             /* [B, C] the last block's input at [CLS], for
                                * its query adapter (LoRA models only) */
    int row0;                  /* first batch row of this view */
    struct Bf16Worker *bw;     /* the view's worker's bf16 products, or NULL */
} Activations;

typedef struct {
    ModelConfig cfg;
    int n_tensors;
    ParamTensor *tensors;
    int n_groups;
    ParamGroup *groups;
    ModelOffsets off;
    /* LoRA scaling used by forward and backward: alpha / r while the
     * adapters are on, 0 when switched off (lora_set_enabled), which
     * skips them entirely. 0 in a model without adapters. */
    float lora_scale;
    /* LoRA dropout: on only for training steps, with a mask drawn from
     * (dropout_seed, block, module, row, column) so that it is the same
     * however the batch is split over workers, and again in the backward. */
    int training;
    unsigned long long dropout_seed;
    int lora_group[MODEL_MAX_LAYERS];  /* group layer.<i>.lora, or -1 */
    /* Groups prompt and prefix, or -1; whether forward and backward use
     * them (prompt_set_enabled). */
    int prompt_group, prefix_group;
    int virtual_on;
    /* 1: the last block over every row, as a plain BERT (tests compare
     * it with the default, which computes that block's queries and what
     * follows them for the [CLS] rows only; see model.c) */
    int full_last_block;
    size_t n_params;
    float *params;
    float *grads;
    Activations act;
    /* model_set_threads: NULL and NULL for one worker */
    struct Workers *pool;
    float **worker_grads;      /* workers 1.. : own gradient buffers */
    /* NULL, or the ranks every batch is split over (dist.h): this process
     * computes its share of the rows, and the losses, predictions and
     * gradients of the whole batch are combined */
    struct Dist *dist;
    /* with dist->overlap: the sum over ranks behind the backward pass, and
     * its buckets (one a trainable group at most), made at the first pass */
    struct GradSync *sync;
    struct GradBucket *buckets;
    /* model.precision = "bf16" (model_set_precision): the products' bf16
     * copy of the weights, and whether something other than the optimizer
     * step wrote the weights since it was made */
    struct Bf16 *bf16;
    int bf16_stale;
    unsigned char *word_seen;  /* [vocab]: the batch's tokens, a pass's */
    int *word_rows;            /* [vocab]: the same, listed in order */
} Model;

/* Builds the tensor table and allocates parameters, gradients and
 * activations for batches of up to max_batch rows. Parameters are zero
 * until model_init_weights. */
int model_create(Model *m, const ModelConfig *cfg, int max_batch, MnError *e);
void model_free(Model *m);

/* What a model of cfg takes in memory, in bytes, computed without
 * allocating it: parameters and gradients (and the gradients of every
 * worker past the first of `threads`), `copies` more buffers of the
 * parameters' size (AdamW's two moments, an anchor, EWC's Fisher), and the
 * activations for batches of max_batch rows, counted by the code that
 * allocates them. */
typedef struct {
    size_t n_params;
    double params, state, activations, total;
} ModelMemory;
int model_memory(const ModelConfig *cfg, int max_batch, int threads, int copies,
                 ModelMemory *mm, MnError *e);
/* Refuses a model whose model_memory is above what the machine has
 * available (sysmem.h), before anything is allocated: the message names
 * both figures and what the estimate is made of. */
int model_check_memory(const ModelConfig *cfg, int max_batch, int threads, int copies,
                       MnError *e);
/* BERT's initialisation: normal(0, std) weights, zero biases, LayerNorm
 * gamma 1 beta 0. Soft tokens and prefixes are drawn last (normal(0,
 * std), after the adapters) and switched OFF: a freshly initialised model
 * is the base model, for pretraining and the base phase, until
 * strategy_apply (method prompt or prefix) switches them on. A model that
 * is only created (and loaded, as predict does) has them on. */
void model_init_weights(Model *m, Rng *rng, float std);
/* LoRA adapters as PEFT initialises them: A Kaiming-uniform (a = sqrt 5,
 * i.e. uniform(-1/sqrt(in), 1/sqrt(in))), B zero, so the adapted model
 * starts equal to the base. model_init_weights calls it after drawing
 * every base weight (the base draws are those of a model without
 * adapters); call it again to restart the adapters, e.g. after loading
 * base weights. */
void model_init_lora(Model *m, Rng *rng);

int model_find_tensor(const Model *m, const char *name);
int model_find_group(const Model *m, const char *name);

/* Forward over a batch; returns the mean cross-entropy over rows whose
 * label >= 0 (0 when none). Each row uses the head b->task[row]. Logits
 * and probabilities of row r start at act.logits + r * act.max_labels. */
float model_forward(Model *m, const Batch *b);
/* The encoder alone over every row (the last block over all rows, no
 * pooler or heads): model_encoded then gives its output, [B*T, C] rows of
 * the batch's T (soft prompt tokens included), e.g. for the MLM head. */
void model_encode(Model *m, const Batch *b);
const float *model_encoded(const Model *m);
/* Accumulates into m->grads the gradient of the mean loss of the last
 * forward (same batch). Frozen groups get no gradient, and no work is
 * done below the lowest trainable group. */
void model_backward(Model *m, const Batch *b);
/* The same for scale times the mean loss (a share of a mixed step). */
void model_backward_scaled(Model *m, const Batch *b, float scale);
/* After model_encode of b: accumulates the gradient given d(encoder
 * output) d_out [B*T, C] (model_encoded's layout), for a head outside
 * the model (the MLM head). */
void model_backward_encoded(Model *m, const Batch *b, const float *d_out);
void model_zero_grads(Model *m);

/* PRECISION_FP32 or PRECISION_BF16 (bf16.h) for every later forward and
 * backward, evaluation included. bf16 is refused, with the reason, where
 * the build or the CPU cannot do it; the model is then unchanged. */
int model_set_precision(Model *m, int precision, MnError *e);
/* Says that the parameters were written by something other than the
 * optimizer step, which refreshes the bf16 copy of what it updates itself:
 * the whole copy follows before the next forward. Nothing to do in fp32. */
void model_params_changed(Model *m);

/* Splits every forward and backward over n workers (the calling thread and
 * n - 1 threads started here, which sleep between steps), each taking a
 * contiguous share of the batch's rows with its own weight-gradient buffer;
 * the buffers are then added into m->grads in a fixed order. Results are
 * deterministic for a given n, but differ from another n in the last bits
 * (sums are grouped differently). With n >= 2 it also sets OpenBLAS to one
 * thread: each worker's products run on its own core. n <= 1 (the default
 * after model_create) is the plain single-worker path and leaves OpenBLAS's
 * setting alone. Allocates n - 1 gradient buffers (so a step still does
 * not allocate); n is capped at MODEL_MAX_THREADS, and a batch of fewer
 * rows than workers uses one worker per row. */
int model_set_threads(Model *m, int n, MnError *e);
int model_threads(const Model *m);
/* The rows [*r0, *r1) of a batch of B rows that this process computes
 * (all of them alone; its share across ranks). */
void model_local_rows(const Model *m, int B, int *r0, int *r1);
/* Runs fn(arg, i, n) for every i in [0, n), n = model_threads(m), on the
 * model's workers (i = 0 on the caller), and returns when all are done:
 * for elementwise work over the parameters (the optimizer). */
void model_run_parallel(Model *m, void (*fn)(void *arg, int i, int n), void *arg);

/* Whether a forward over batches of T tokens (soft prompt tokens come on
 * top) runs the last block for the [CLS] rows only (see model.c). */
int model_cls_last_block(const Model *m, int T);
/* Floating-point operations of one forward + backward over B rows of
 * length T (matrix products only; cls_last as model_cls_last_block), for
 * throughput figures. */
double model_step_flops(const ModelConfig *cfg, int B, int T, int cls_last);

#endif
