#include "mlm.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "bf16.h"
#include "dist.h"
#include "layers.h"
#include "lines.h"
#include "rng.h"

/* OpenBLAS's cblas.h includes <complex.h>, whose I is not ours. */
#undef I

/* Masked rows a worker takes through the head at once: the [rows, V]
 * logits stay a few megabytes even for a 30k vocabulary. */
#define MLM_CHUNK 32
/* Masking streams, apart from every other use of the seed. */
#define MLM_STREAM 0x4D4C4D00ULL      /* "MLM" */

int mlm_head_alloc(MlmHead *h, int hidden, int vocab, int act, float eps, int tied,
                   MnError *e)
{
    memset(h, 0, sizeof *h);
    size_t C = (size_t)hidden, V = (size_t)vocab;
    size_t n = C * C + 3 * C + (tied ? 0 : V * C) + V;
    h->buf = calloc(n, sizeof *h->buf);
    if (!h->buf)
        return mn_fail(e, "out of memory for the MLM head (%zu floats)", n);
    h->hidden = hidden;
    h->vocab = vocab;
    h->act = act;
    h->eps = eps;
    h->tied = tied;
    float *p = h->buf;
    h->dense_w = p, p += C * C;
    h->dense_b = p, p += C;
    h->ln_g = p, p += C;
    h->ln_b = p, p += C;
    if (!tied)
        h->decoder = p, p += V * C;
    h->bias = p;
    return 0;
}

void mlm_head_free(MlmHead *h)
{
    free(h->buf);
    memset(h, 0, sizeof *h);
}

/* ---- masking ---------------------------------------------------------------- */

static int maskable(const Tokenizer *t, int id)
{
    return id != t->cls && id != t->sep && id != t->pad && id != t->unk && id != t->mask;
}

/* Masks row i of d (already tokenized): the same positions for the same
 * (seed, example) whatever else the file holds; example counts non-blank
 * lines, so blank lines move nothing. Returns how many it masked. */
static int mask_row(Dataset *d, int i, const Tokenizer *t, unsigned long long seed, long example,
                    int train)
{
    int *ids = d->ids + (size_t)i * (size_t)d->max_len;
    int *lab = d->mlm + (size_t)i * (size_t)d->max_len;
    int cand[512], nc = 0, n = d->len[i];
    for (int p = 0; p < d->max_len; p++)
        lab[p] = -1;
    for (int p = 0; p < n && nc < (int)(sizeof cand / sizeof cand[0]); p++)
        if (maskable(t, ids[p]))
            cand[nc++] = p;
    if (nc == 0)
        return 0;
    int k = (int)floor(MLM_PROB * nc + 0.5);
    if (k < 1)
        k = 1;
    Rng r;
    rng_seed_stream(&r, seed, MLM_STREAM + (uint64_t)example);
    /* the first k of a partial shuffle */
    for (int j = 0; j < k; j++) {
        int s = j + (int)rng_below(&r, (uint32_t)(nc - j));
        int tmp = cand[j];
        cand[j] = cand[s];
        cand[s] = tmp;
        int p = cand[j];
        lab[p] = ids[p];
        float u = train ? rng_uniform(&r) : 0.0f;
        if (u < 0.8f)
            ids[p] = t->mask;
        else if (u < 0.9f)
            ids[p] = (int)rng_below(&r, (uint32_t)t->vocab_size);
    }
    return k;
}

int mlm_check_vocab(const Tokenizer *t, const char *dir, MnError *e)
{
    if (t->kind == TOKENIZER_WORDPIECE && t->mask == t->unk)
        return mn_fail(e, "%s/vocab.txt has no [MASK]: masked-language modelling needs it "
                       "(without it every [UNK] would read as a mask)", dir);
    return 0;
}

long mlm_masked(const Dataset *d)
{
    long n = 0;
    for (size_t i = 0; d->mlm && i < (size_t)d->n * (size_t)d->max_len; i++)
        n += d->mlm[i] >= 0;
    return n;
}

int mlm_load_text(Dataset *eval, Dataset *train, const Tokenizer *t, const char *path,
                  int max_len, unsigned long long seed, MnError *e)
{
    memset(eval, 0, sizeof *eval);
    memset(train, 0, sizeof *train);
    FILE *f = fopen(path, "r");
    if (!f)
        return mn_fail(e, "%s: %s", path, strerror(errno));
    LineReader lr;
    char *line;
    size_t n;
    long lineno = 0, examples = 0, masked[2] = { 0, 0 };
    int rc = 0;
    TokenSeq seq = { 0 };
    Dataset *ds[2] = { train, eval };
    int cap_rows[2] = { 0, 0 };
    line_reader_init(&lr, f, path);
    for (int k = 0; k < 2 && rc == 0; k++) {
        if (dataset_alloc(ds[k], 0, max_len, e) < 0)
            rc = -1;
        /* present, so that dataset_reserve grows it with the rest */
        else if (!(ds[k]->mlm = malloc((size_t)max_len * sizeof *ds[k]->mlm)))
            rc = mn_fail(e, "out of memory");
    }
    while (rc == 0 && (rc = line_reader_next(&lr, &line, &n, e)) > 0) {
        rc = 0;
        lineno = lr.lineno;
        if (line[strspn(line, " \t")] == 0)
            continue;
        if (tokenizer_encode(t, line, NULL, max_len, &seq, e) < 0) {
            rc = mn_wrap(e, "%s:%ld", path, lineno);
            break;
        }
        long example = examples++;
        int held = example % 5 == 4;
        Dataset *d = ds[held];
        if (d->n == cap_rows[held]) {
            int want = cap_rows[held] ? 2 * cap_rows[held] : 256;
            if (dataset_reserve(d, want, e) < 0) {
                rc = mn_wrap(e, "%s:%ld", path, lineno);
                break;
            }
            cap_rows[held] = want;
        }
        int i = d->n++;
        int *ids = d->ids + (size_t)i * (size_t)max_len;
        int *types = d->types + (size_t)i * (size_t)max_len;
        for (int p = 0; p < max_len; p++) {
            ids[p] = p < seq.n ? seq.ids[p] : t->pad;
            types[p] = p < seq.n ? seq.types[p] : 0;
        }
        d->len[i] = seq.n;
        d->label[i] = 0;
        /* from 1: the seeds of a file without blank lines are its line numbers, as before */
        masked[held] += mask_row(d, i, t, seed, example + 1, !held);
    }
    if (rc == 0 && eval->n == 0)
        rc = mn_fail(e, "%s: %ld lines of text; every fifth is held out for evaluation, so it "
                     "needs at least 5", path, examples);
    /* scoring or replaying nothing would read as a perfect, unforgetting model */
    for (int k = 1; rc == 0 && k >= 0; k--)
        if (ds[k]->n > 0 && masked[k] == 0)
            rc = mn_fail(e, "%s: none of the %d %s lines has a piece to mask: every piece is "
                         "[UNK], [CLS], [SEP], [PAD] or [MASK]%s", path, ds[k]->n,
                         k ? "held-out" : "training",
                         max_len < 8 ? ", or model.max_len leaves no room" : "");
    line_reader_free(&lr);
    token_seq_free(&seq);
    fclose(f);
    if (rc < 0) {
        dataset_free(eval);
        dataset_free(train);
    }
    return rc;
}

/* ---- the head ------------------------------------------------------------------ */

/* Rows of hidden states x [n, C] → logits [n, V] through the head; x
 * is scratch once read. */
static void head_forward(struct Bf16Worker *bw, const MlmHead *h, const float *word, float *x,
                         int n, float *pre, float *act, float *mean, float *rstd, float *logits)
{
    const int C = h->hidden, V = h->vocab;
    linear_forward(bw, pre, x, h->dense_w, h->dense_b, n, C, C);
    if (h->act == ACT_GELU_TANH)
        gelu_tanh_forward_grad(act, x, pre, n * C);
    else
        gelu_forward(act, pre, n * C);
    layernorm_forward_eps(pre, mean, rstd, act, h->ln_g, h->ln_b, n, C, h->eps);
    const float *dec = h->tied ? word : h->decoder;
    for (int r = 0; r < n; r++)
        memcpy(logits + (size_t)r * V, h->bias, (size_t)V * sizeof *logits);
    bf16_gemm(bw, 0, 1, n, V, C, pre, C, dec, C, 1.0f, logits, V);
}

typedef struct {
    Model *m;
    const MlmHead *h;
    const float *enc;          /* [BT, C] */
    const int *rows;           /* encoder rows of the masked tokens */
    const int *label;
    int n;
    float *scratch;            /* per worker */
    size_t per_worker;
    double loss[MODEL_MAX_THREADS];
    long correct[MODEL_MAX_THREADS];
} ScoreJob;

static void score_job(void *arg, int w, int nw)
{
    ScoreJob *j = arg;
    const int C = j->h->hidden, V = j->h->vocab;
    float *x = j->scratch + (size_t)w * j->per_worker, *pre = x + MLM_CHUNK * C;
    float *act = pre + MLM_CHUNK * C, *logits = act + MLM_CHUNK * C;
    float *mean = logits + (size_t)MLM_CHUNK * V, *rstd = mean + MLM_CHUNK;
    const float *word = j->m->params + j->m->off.word;
    int lo = (int)((long)j->n * w / nw), hi = (int)((long)j->n * (w + 1) / nw);
    j->loss[w] = 0.0;
    j->correct[w] = 0;
    for (int c0 = lo; c0 < hi; c0 += MLM_CHUNK) {
        int c = hi - c0 < MLM_CHUNK ? hi - c0 : MLM_CHUNK;
        for (int r = 0; r < c; r++)
            memcpy(x + (size_t)r * C, j->enc + (size_t)j->rows[c0 + r] * C, (size_t)C * sizeof *x);
        head_forward(bf16_worker(j->m->bf16, w), j->h, word, x, c, pre, act, mean, rstd, logits);
        for (int r = 0; r < c; r++) {
            const float *l = logits + (size_t)r * V;
            int best = 0;
            for (int v = 1; v < V; v++)
                if (l[v] > l[best])
                    best = v;
            double sum = 0.0;
            for (int v = 0; v < V; v++)
                sum += exp((double)l[v] - l[best]);
            j->loss[w] += log(sum) + l[best] - l[j->label[c0 + r]];
            j->correct[w] += best == j->label[c0 + r];
        }
    }
}

static float *worker_scratch(const Model *m, const MlmHead *h, size_t *per)
{
    *per = (size_t)MLM_CHUNK * (3 * (size_t)h->hidden + (size_t)h->vocab + 2);
    return malloc(*per * (size_t)model_threads(m) * sizeof(float));
}

int mlm_score(Model *m, const MlmHead *h, const Dataset *d, int limit, Batch *scratch,
              MlmScore *s, MnError *e)
{
    int n = limit > 0 && limit < d->n ? limit : d->n, cap = scratch->cap;
    int *idx = malloc((size_t)cap * sizeof *idx);
    int *rows = malloc((size_t)cap * (size_t)scratch->max_len * sizeof *rows);
    int *label = malloc((size_t)cap * (size_t)scratch->max_len * sizeof *label);
    size_t per;
    float *ws = worker_scratch(m, h, &per);
    double loss = 0.0;
    long correct = 0, tokens = 0;
    memset(s, 0, sizeof *s);
    if (!idx || !rows || !label || !ws) {
        free(idx), free(rows), free(label), free(ws);
        return mn_fail(e, "out of memory for the MLM evaluation");
    }
    for (int start = 0; start < n; start += cap) {
        int B = n - start < cap ? n - start : cap;
        for (int i = 0; i < B; i++)
            idx[i] = start + i;
        batch_fill(scratch, d, idx, B, 0);
        model_encode(m, scratch);
        int T = scratch->T + (m->virtual_on ? m->cfg.prompt_tokens : 0);
        int np = T - scratch->T, k = 0, r0, r1;
        /* across ranks each scores the masked tokens of its own rows */
        model_local_rows(m, B, &r0, &r1);
        for (int r = r0; r < r1; r++)
            for (int t = 0; t < scratch->T; t++) {
                int lab = scratch->mlm[(size_t)r * scratch->T + t];
                if (lab < 0)
                    continue;
                /* soft prompt tokens sit after [CLS] */
                rows[k] = r * T + (t == 0 ? 0 : t + np);
                label[k++] = lab;
            }
        ScoreJob j = { m, h, model_encoded(m), rows, label, k, ws, per, { 0 }, { 0 } };
        model_run_parallel(m, score_job, &j);
        for (int w = 0; w < model_threads(m); w++) {
            loss += j.loss[w];
            correct += j.correct[w];
        }
        tokens += k;
    }
    if (m->dist && m->dist->size > 1) {
        double v[3] = { loss, (double)correct, (double)tokens };
        if (dist_sum_doubles(m->dist, v, 3, e) < 0) {
            free(idx), free(rows), free(label), free(ws);
            return -1;
        }
        loss = v[0];
        correct = (long)v[1];
        tokens = (long)v[2];
    }
    if (tokens) {
        s->loss = loss / (double)tokens;
        s->acc = (double)correct / (double)tokens;
    }
    s->tokens = tokens;
    free(idx), free(rows), free(label), free(ws);
    return 0;
}

int mlm_logits(Model *m, const MlmHead *h, const Batch *b, const int *pos, int n,
               float *logits, MnError *e)
{
    const int C = h->hidden;
    float *x = malloc((size_t)3 * C * sizeof *x), *mean = malloc(2 * sizeof *mean);
    if (!x || !mean) {
        free(x), free(mean);
        return mn_fail(e, "out of memory");
    }
    model_encode(m, b);
    const float *enc = model_encoded(m);
    int np = m->virtual_on ? m->cfg.prompt_tokens : 0;
    for (int i = 0; i < n; i++) {
        int row = pos[i] == 0 ? 0 : pos[i] + np;
        memcpy(x, enc + (size_t)row * C, (size_t)C * sizeof *x);
        head_forward(bf16_worker(m->bf16, 0), h, m->params + m->off.word, x, 1, x + C, x + 2 * C,
                     mean, mean + 1,
                     logits + (size_t)i * h->vocab);
    }
    free(x), free(mean);
    return 0;
}

/* ---- training through the head ----------------------------------------------- */

int mlm_train_step(Model *m, const MlmHead *h, const Batch *b, float scale, double *loss,
                   MnError *e)
{
    const int C = h->hidden, V = h->vocab, np = m->virtual_on ? m->cfg.prompt_tokens : 0;
    const int T = b->T + np;
    const size_t BT = (size_t)b->B * (size_t)T;
    int *rows = malloc(BT * sizeof *rows), *label = malloc(BT * sizeof *label);
    float *w = malloc(BT * sizeof *w), *d_out = calloc(BT * (size_t)C, sizeof *d_out);
    size_t per = (size_t)MLM_CHUNK * (6 * (size_t)C + 2 * (size_t)V + 2);
    float *ws = malloc(per * sizeof *ws);
    *loss = 0.0;
    if (!rows || !label || !w || !d_out || !ws) {
        free(rows), free(label), free(w), free(d_out), free(ws);
        return mn_fail(e, "out of memory for an MLM step");
    }
    /* each row's loss is the mean over its masked tokens; the step's, the
     * mean over rows, times scale */
    int k = 0, n_rows = 0, r0, r1;
    for (int r = 0; r < b->B; r++) {
        int first = k;
        for (int t = 0; t < b->T; t++) {
            int lab = b->mlm[(size_t)r * b->T + t];
            if (lab < 0)
                continue;
            rows[k] = r * T + (t == 0 ? 0 : t + np);
            label[k++] = lab;
        }
        for (int i = first; i < k; i++)
            w[i] = 1.0f / (float)(k - first);
        n_rows += k > first;
    }
    for (int i = 0; i < k; i++)
        w[i] *= scale / (float)n_rows;
    /* across ranks each takes the masked tokens of its own rows (the
     * weights above are the whole batch's); the gradients are summed by
     * the backward pass, the loss here */
    model_local_rows(m, b->B, &r0, &r1);
    int from = 0, to = 0;
    while (from < k && rows[from] / T < r0)
        from++;
    for (to = from; to < k && rows[to] / T < r1; to++)
        ;
    memmove(rows, rows + from, sizeof *rows * (size_t)(to - from));
    memmove(label, label + from, sizeof *label * (size_t)(to - from));
    memmove(w, w + from, sizeof *w * (size_t)(to - from));
    k = to - from;
    model_encode(m, b);
    const float *enc = model_encoded(m);
    float *x = ws, *pre = x + MLM_CHUNK * C, *deriv = pre + MLM_CHUNK * C;
    float *act = deriv + MLM_CHUNK * C, *hn = act + MLM_CHUNK * C, *dh = hn + MLM_CHUNK * C;
    float *logits = dh + MLM_CHUNK * C, *dlog = logits + (size_t)MLM_CHUNK * V;
    float *mean = dlog + (size_t)MLM_CHUNK * V, *rstd = mean + MLM_CHUNK;
    const float *word = m->params + m->off.word, *dec = h->tied ? word : h->decoder;
    float *dword = h->tied && m->groups[0].trainable ? m->grads + m->off.word : NULL;
    /* the encoder's workers are done: this thread is worker 0's */
    struct Bf16Worker *bw = bf16_worker(m->bf16, 0);
    double total = 0.0;
    /* Across ranks the backward pass sums the whole gradient buffer, which
     * may already hold this step's summed gradients (replay rows): this
     * pass's own go into a clean buffer, and those are added back after. */
    float *held = NULL;
    if (m->dist && m->dist->size > 1) {
        if (!(held = malloc(m->n_params * sizeof *held))) {
            free(rows), free(label), free(w), free(d_out), free(ws);
            return mn_fail(e, "out of memory for an MLM step");
        }
        memcpy(held, m->grads, m->n_params * sizeof *held);
        memset(m->grads, 0, m->n_params * sizeof *m->grads);
    }
    for (int c0 = 0; c0 < k; c0 += MLM_CHUNK) {
        int c = k - c0 < MLM_CHUNK ? k - c0 : MLM_CHUNK;
        for (int r = 0; r < c; r++)
            memcpy(x + (size_t)r * C, enc + (size_t)rows[c0 + r] * C, (size_t)C * sizeof *x);
        linear_forward(bw, pre, x, h->dense_w, h->dense_b, c, C, C);
        if (h->act == ACT_GELU_TANH)
            gelu_tanh_forward_grad(act, deriv, pre, c * C);
        else
            gelu_forward_grad(act, deriv, pre, c * C);
        layernorm_forward_eps(hn, mean, rstd, act, h->ln_g, h->ln_b, c, C, h->eps);
        for (int r = 0; r < c; r++)
            memcpy(logits + (size_t)r * V, h->bias, (size_t)V * sizeof *logits);
        bf16_gemm(bw, 0, 1, c, V, C, hn, C, dec, C, 1.0f, logits, V);
        /* d(loss)/d(logits) = w (softmax - onehot) */
        for (int r = 0; r < c; r++) {
            const float *l = logits + (size_t)r * V;
            float *d = dlog + (size_t)r * V;
            float mx = l[0];
            for (int v = 1; v < V; v++)
                mx = l[v] > mx ? l[v] : mx;
            double sum = 0.0;
            for (int v = 0; v < V; v++)
                sum += exp((double)(l[v] - mx));
            float wr = w[c0 + r];
            for (int v = 0; v < V; v++)
                d[v] = wr * (float)(exp((double)(l[v] - mx)) / sum);
            d[label[c0 + r]] -= wr;
            total += (double)wr / scale * (log(sum) + mx - l[label[c0 + r]]);
        }
        /* the decoder is frozen, or is the word embeddings (tied) */
        bf16_gemm(bw, 0, 0, c, C, V, dlog, V, dec, C, 0.0f, dh, C);
        if (dword)
            bf16_gemm(bw, 1, 0, V, C, c, dlog, V, hn, C, 1.0f, dword, C);
        layernorm_backward_set(x, NULL, NULL, dh, act, h->ln_g, mean, rstd, c, C);
        for (long i = 0; i < (long)c * C; i++)
            x[i] *= deriv[i];
        /* d(x) = d(pre) W: each masked row once */
        for (int r = 0; r < c; r++)
            cblas_sgemv(CblasRowMajor, CblasTrans, C, C, 1.0f, h->dense_w, C, x + (size_t)r * C, 1,
                        1.0f, d_out + (size_t)rows[c0 + r] * C, 1);
    }
    model_backward_encoded(m, b, d_out);
    int rc = 0;
    if (held) {
        for (size_t i = 0; i < m->n_params; i++)
            m->grads[i] += held[i];
        free(held);
        rc = dist_sum_doubles(m->dist, &total, 1, e);
    }
    if (rc < 0) {
        free(rows), free(label), free(w), free(d_out), free(ws);
        return -1;
    }
    *loss = total;
    free(rows), free(label), free(w), free(d_out), free(ws);
    return 0;
}
