/* Masked language modelling through the pretrained model's MLM head: the
 * gradient of mlm_train_step against finite differences, for every tensor
 * the encoder has and for the word embeddings the tied decoder reads;
 * scaling, evaluation and training agreeing on the loss, and the masking
 * of text (fixed positions, 15%, never special tokens). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas_core.h"
#include "gradcheck.h"
#include "mlm.h"
#include "model.h"
#include "rng.h"
#include "tap.h"
#include "testmodel.h"

enum { B = 3, T = 7 };
static int ids[B * T], lens[B] = { 7, 5, 4 }, labels[B], tasks[B], mlm_lab[B * T];

typedef struct {
    Model *m;
    MlmHead *h;
    Batch *b;
} MlmCtx;

static double mlm_loss(void *p)
{
    MlmCtx *c = p;
    MnError e;
    double loss = 0.0;
    model_zero_grads(c->m);
    if (mlm_train_step(c->m, c->h, c->b, 1.0f, &loss, &e) < 0)
        return NAN;
    return loss;
}

static void make(Model *m, MlmHead *h, int act, int distil)
{
    Rng r;
    MnError e;
    ModelConfig c = test_model_config((TestShape){ 16, 2, 2, 32, T, 2, 2, B });
    c.act = act;
    if (distil) {
        c.type_vocab = 0;
        c.head_pre = 1;
        c.arch = ARCH_DISTILBERT;
    }
    test_model_create_cfg(m, &c, B);
    rng_seed(&r, 5);
    model_init_weights(m, &r, 0.2f);
    for (size_t i = 0; i < m->n_params; i++)
        if (m->params[i] == 0.0f || m->params[i] == 1.0f)
            m->params[i] += 0.1f * rng_normal(&r);
    if (mlm_head_alloc(h, c.hidden, c.vocab, act, 1e-12f, 1, &e) < 0) {
        printf("Bail out! %s\n", e.msg);
        exit(1);
    }
    float *parts[] = { h->dense_w, h->dense_b, h->ln_g, h->ln_b, h->bias };
    size_t sizes[] = { 16 * 16, 16, 16, 16, (size_t)c.vocab };
    for (int k = 0; k < 5; k++)
        for (size_t i = 0; i < sizes[k]; i++)
            parts[k][i] = (k == 2 ? 1.0f : 0.0f) + 0.3f * rng_normal(&r);
}

static Batch make_batch(void)
{
    Batch b = test_batch(ids, lens, labels, tasks, B, T);
    for (int i = 0; i < B * T; i++)
        mlm_lab[i] = -1;
    /* one, two and three masked tokens: rows weigh alike however many */
    int masked[][2] = { { 0, 2 }, { 1, 1 }, { 1, 3 }, { 2, 1 }, { 2, 2 }, { 2, 3 } };
    for (size_t k = 0; k < sizeof masked / sizeof masked[0]; k++) {
        int i = masked[k][0] * T + masked[k][1];
        mlm_lab[i] = 10 + (int)k * 17;
        ids[i] = TOK_MASK;
    }
    b.mlm = mlm_lab;
    return b;
}

static void test_gradients(int act, int distil)
{
    Model m;
    MlmHead h;
    make(&m, &h, act, distil);
    Batch b = make_batch();
    MlmCtx ctx = { &m, &h, &b };
    mlm_loss(&ctx);
    float *g = malloc(m.n_params * sizeof *g);
    memcpy(g, m.grads, m.n_params * sizeof *g);
    double worst = 0.0;
    int bad = 0, checked = 0;
    for (int i = 0; i < m.n_tensors; i++) {
        const ParamTensor *t = &m.tensors[i];
        /* the heads of the classification tasks take no part */
        if (strncmp(t->name, "bert.", 5) != 0)
            continue;
        GcOpts o = { 1e-2, 1e-3, 10, (uint64_t)i + 1 };
        GcResult r = gc_check(mlm_loss, &ctx, m.params + t->offset, g + t->offset,
                              (long)t->numel, &o);
        checked++;
        if (r.max_rel >= 2e-2) {
            bad++;
            diag("%s: max rel %.2e at %ld (%.6g vs %.6g)", t->name, r.max_rel, r.worst,
                 r.analytic, r.numeric);
        }
        if (r.max_rel > worst)
            worst = r.max_rel;
    }
    ok(!bad && checked > 10,
       "%s%s: the MLM gradient of all %d encoder tensors, word embeddings through the tied "
       "decoder included, matches finite differences (worst rel %.2e)",
       act == ACT_GELU_TANH ? "gelu_new" : "gelu", distil ? ", DistilBERT's shape" : "",
       checked, worst);

    /* scale: a share of a mixed step */
    double l1 = 0.0, l2 = 0.0;
    MnError e;
    model_zero_grads(&m);
    mlm_train_step(&m, &h, &b, 0.25f, &l2, &e);
    double d = 0.0;
    for (size_t i = 0; i < m.n_params; i++)
        d = fmax(d, fabs(m.grads[i] - 0.25 * g[i]));
    l1 = mlm_loss(&ctx);
    ok(d < 1e-6 && fabs(l1 - l2) < 1e-9, "scale 0.25: a quarter of the gradient, the same loss (%.2e)", d);

    /* frozen embeddings: no gradient reaches the word embeddings */
    m.groups[0].trainable = 0;
    mlm_loss(&ctx);
    int zero = 1;
    for (size_t i = 0; i < m.groups[0].numel; i++)
        zero &= m.grads[m.groups[0].offset + i] == 0.0f;
    ok(zero, "frozen embeddings: the tied decoder writes no gradient into them");
    m.groups[0].trainable = 1;
    free(g);
    mlm_head_free(&h);
    model_free(&m);
}

/* Evaluation and training see the same loss, and the logits of predict
 * are those the loss is taken from. */
static void test_score(void)
{
    Model m;
    MlmHead h;
    MnError e;
    make(&m, &h, ACT_GELU, 0);
    Batch b = make_batch();
    MlmCtx ctx = { &m, &h, &b };
    double train = mlm_loss(&ctx);
    /* the same rows as a data set */
    Dataset d;
    dataset_alloc(&d, B, T, &e);
    d.mlm = malloc((size_t)B * T * sizeof *d.mlm);
    for (int r = 0; r < B; r++) {
        memcpy(d.ids + r * T, ids + r * T, T * sizeof(int));
        memcpy(d.mlm + r * T, mlm_lab + r * T, T * sizeof(int));
        d.len[r] = lens[r];
    }
    Batch scratch;
    batch_alloc(&scratch, 8, T, &e);
    MlmScore s;
    ok(mlm_score(&m, &h, &d, 0, &scratch, &s, &e) == 0 && s.tokens == 6, "mlm_score: 6 masked tokens");
    /* the score is per token, the step per row: compare per token here */
    int pos[2] = { 2, 0 };
    float *logits = malloc(2 * (size_t)h.vocab * sizeof *logits);
    Batch one = test_batch(ids, lens, labels, tasks, 1, T);
    memcpy(ids, d.ids, T * sizeof(int));
    mlm_logits(&m, &h, &one, pos, 1, logits, &e);
    double mx = logits[0], sum = 0.0;
    for (int v = 1; v < h.vocab; v++)
        mx = fmax(mx, logits[v]);
    for (int v = 0; v < h.vocab; v++)
        sum += exp(logits[v] - mx);
    double first = log(sum) + mx - logits[10];
    /* row 0 has one masked token: its row loss is that token's */
    (void)first;
    ok(isfinite(s.loss) && s.loss > 0 && s.acc >= 0 && s.acc <= 1 && isfinite(train),
       "evaluation loss %.4f per token, training loss %.4f per row", s.loss, train);
    double by_token = 0.0;
    {
        /* recompute the token mean from the three rows' own losses */
        double rows[3] = { 0 };
        int counts[3] = { 1, 2, 3 };
        for (int r = 0; r < 3; r++) {
            Batch br = test_batch(ids + r * T, lens + r, labels, tasks, 1, T);
            memcpy(ids + r * T, d.ids + r * T, T * sizeof(int));
            br.mlm = mlm_lab + r * T;
            MlmCtx cr = { &m, &h, &br };
            rows[r] = mlm_loss(&cr);
            by_token += rows[r] * counts[r];
        }
        by_token /= 6.0;
        ok(fabs(by_token - s.loss) < 1e-4 * s.loss,
           "evaluation's per-token loss equals the rows' losses weighted by their tokens (%.6f vs %.6f)",
           by_token, s.loss);
        ok(fabs(first - rows[0]) < 1e-4 * rows[0],
           "predict's logits at the [MASK] give row 0's loss (%.6f vs %.6f)", first, rows[0]);
    }
    free(logits);
    batch_free(&scratch);
    dataset_free(&d);
    mlm_head_free(&h);
    model_free(&m);
}

/* Masking text: the same positions every time, 15% of the pieces, never
 * special tokens, every fifth line held out. */
static void test_masking(void)
{
    char path[] = "/tmp/mneme-mlm-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    for (int i = 0; i < 20; i++)
        fprintf(f, "%s line number %d of some text to mask here\n", i % 3 ? "a" : "the", i);
    fprintf(f, "\n   \n");
    fclose(f);
    Tokenizer t;
    tokenizer_bytes(&t);
    Dataset ev, tr, ev2, tr2;
    MnError e;
    int rc = mlm_load_text(&ev, &tr, &t, path, 64, 42, &e);
    ok(rc == 0 && ev.n == 4 && tr.n == 16, "20 lines: 4 held out, 16 for training; blank lines skipped");
    int fixed = mlm_load_text(&ev2, &tr2, &t, path, 64, 42, &e) == 0 &&
                memcmp(ev.ids, ev2.ids, (size_t)ev.n * 64 * sizeof(int)) == 0 &&
                memcmp(ev.mlm, ev2.mlm, (size_t)ev.n * 64 * sizeof(int)) == 0;
    ok(fixed, "the same seed masks the same positions");
    int all_mask = 1, no_special = 1, share_ok = 1;
    for (int r = 0; r < ev.n; r++) {
        int n = 0, cand = ev.len[r] - 2;
        for (int p = 0; p < ev.len[r]; p++) {
            int lab = ev.mlm[r * 64 + p];
            if (lab < 0)
                continue;
            n++;
            all_mask &= ev.ids[r * 64 + p] == TOK_MASK;
            no_special &= p > 0 && p < ev.len[r] - 1 && lab >= TOK_BYTE0;
        }
        share_ok &= n == (int)floor(0.15 * cand + 0.5);
    }
    ok(all_mask && no_special && share_ok,
       "held-out: 15%% of the pieces become [MASK], never [CLS] or [SEP]");
    int kept = 0, random = 0, masked = 0;
    for (int r = 0; r < tr.n; r++)
        for (int p = 0; p < tr.len[r]; p++) {
            int lab = tr.mlm[r * 64 + p];
            if (lab < 0)
                continue;
            int id = tr.ids[r * 64 + p];
            masked += id == TOK_MASK;
            kept += id == lab;
            random += id != TOK_MASK && id != lab;
        }
    ok(masked > kept && masked > random && masked + kept + random > 0,
       "training text: mostly [MASK], some kept, some random (%d, %d, %d)", masked, kept, random);
    dataset_free(&ev2), dataset_free(&tr2);
    /* the same lines with blank lines between them mask the same pieces */
    FILE *spaced = fopen(path, "w");
    for (int i = 0; i < 20; i++)
        fprintf(spaced, "%s%s line number %d of some text to mask here\n", i % 7 == 3 ? "\n \n" : "",
                i % 3 ? "a" : "the", i);
    fclose(spaced);
    int same = mlm_load_text(&ev2, &tr2, &t, path, 64, 42, &e) == 0 && ev2.n == ev.n &&
               tr2.n == tr.n &&
               memcmp(ev.ids, ev2.ids, (size_t)ev.n * 64 * sizeof(int)) == 0 &&
               memcmp(ev.mlm, ev2.mlm, (size_t)ev.n * 64 * sizeof(int)) == 0 &&
               memcmp(tr.ids, tr2.ids, (size_t)tr.n * 64 * sizeof(int)) == 0 &&
               memcmp(tr.mlm, tr2.mlm, (size_t)tr.n * 64 * sizeof(int)) == 0;
    ok(same, "blank lines between the texts move no mask");
    ok(mlm_masked(&ev) > ev.n && mlm_masked(&ev) == mlm_masked(&ev2),
       "mlm_masked counts the held-out masked pieces (%ld)", mlm_masked(&ev));
    dataset_free(&ev2), dataset_free(&tr2);
    /* with only [CLS] and [SEP] left nothing can be masked: refused, not
     * scored as a perfect model */
    rc = mlm_load_text(&ev2, &tr2, &t, path, 2, 42, &e);
    ok(rc < 0 && strstr(e.msg, "none of the 4 held-out lines has a piece to mask") &&
           strstr(e.msg, path),
       "nothing to mask: refused with the file and the reason (%s)", rc < 0 ? e.msg : "accepted");
    dataset_free(&ev), dataset_free(&tr), dataset_free(&ev2), dataset_free(&tr2);
    FILE *g = fopen(path, "w");
    fprintf(g, "one\ntwo\nthree\n");
    fclose(g);
    rc = mlm_load_text(&ev, &tr, &t, path, 64, 42, &e);
    ok(rc < 0 && strstr(e.msg, "needs at least 5"), "3 lines: refused, every fifth is held out (%s)", e.msg);
    unlink(path);
}

int main(int argc, char **argv)
{
    blas_core_fix(argv);
    (void)argc;
    test_gradients(ACT_GELU, 0);
    test_gradients(ACT_GELU_TANH, 1);
    test_score();
    test_masking();
    return tap_done();
}
