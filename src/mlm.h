/* Masked language modelling as the original task: what a pretrained
 * model knew before fine-tuning, measured as papers measure forgetting.
 * The base model's MLM head (transform dense, activation, LayerNorm,
 * decoder to the vocabulary) is kept frozen beside the encoder, since a
 * classifier checkpoint has none, and scores held-out text whose tokens
 * were masked once, with a fixed seed, so every evaluation scores the
 * same positions. */
#ifndef MNEME_MLM_H
#define MNEME_MLM_H

#include "data.h"
#include "error.h"
#include "model.h"
#include "tokenizer.h"

/* Share of the maskable pieces of a text that are masked. */
#define MLM_PROB 0.15

typedef struct {
    int hidden, vocab;
    int act;                   /* ACT_GELU or ACT_GELU_TANH */
    float eps;
    /* 1: the decoder is the model's word embeddings (tie_word_embeddings,
     * as Hugging Face loads it), so fine-tuning them shows here too */
    int tied;
    float *buf;
    float *dense_w, *dense_b;  /* [C, C], [C] */
    float *ln_g, *ln_b;        /* [C] */
    float *decoder;            /* [V, C] when not tied, else NULL */
    float *bias;               /* [V] */
} MlmHead;

int mlm_head_alloc(MlmHead *h, int hidden, int vocab, int act, float eps, int tied,
                   MnError *e);
void mlm_head_free(MlmHead *h);

/* Reads plain text, one example a line (blank lines skipped), tokenized
 * to at most max_len ids. Every fifth example is held out (the 5th, 10th,
 * ...) into eval, the rest go to train (for replay). Of each example's
 * pieces (not [CLS], [SEP], [PAD], [UNK], [MASK]) 15% (at least one) are
 * chosen from (seed, example): single WordPiece pieces, not whole words. In
 * eval every chosen piece becomes [MASK]; in train, as BERT pretraining
 * does, 80% become [MASK], 10% a random token and 10% stay. Dataset.mlm
 * holds the original ids there. Errors name the file and line; text with
 * no piece to mask, held out or not, is refused. */
int mlm_load_text(Dataset *eval, Dataset *train, const Tokenizer *t, const char *path,
                  int max_len, unsigned long long seed, MnError *e);

/* -1 when t (read from dir) has no [MASK] of its own. */
int mlm_check_vocab(const Tokenizer *t, const char *dir, MnError *e);

/* How many pieces of d are masked (Dataset.mlm >= 0). */
long mlm_masked(const Dataset *d);

typedef struct {
    double loss;               /* mean cross-entropy over masked tokens */
    double acc;                /* share of masked tokens predicted exactly */
    long tokens;
} MlmScore;

/* Scores the first limit rows of d (0: all) in batches of scratch's
 * capacity, on the model's workers. */
int mlm_score(Model *m, const MlmHead *h, const Dataset *d, int limit, Batch *scratch,
              MlmScore *s, MnError *e);

/* One MLM step's gradient: forward of b (rows with masked tokens) through
 * the encoder and the frozen head, and the backward of scale times the
 * loss (the mean over rows of each row's mean over its masked tokens)
 * into m->grads, accumulated, through the encoder and, when the decoder
 * is tied and the embeddings train, into the word embeddings. *loss is
 * the unscaled loss. */
int mlm_train_step(Model *m, const MlmHead *h, const Batch *b, float scale, double *loss,
                   MnError *e);

/* The vocabulary logits at positions pos[0..n) of a one-row batch,
 * into logits [n, vocab]. */
int mlm_logits(Model *m, const MlmHead *h, const Batch *b, const int *pos, int n,
               float *logits, MnError *e);

#endif
