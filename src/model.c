#include "model.h"

#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "blas_core.h"
#include "dist.h"
#include "gradsync.h"
#include "layers.h"
#include "sysmem.h"
#include "workers.h"

/* OpenBLAS's cblas.h includes <complex.h>; its I would shadow the
 * intermediate size below. */
#undef I

/* Let gcc vectorise the few elementwise loops here (at -O2 it vectorises
 * only loops of a known multiple of the vector width); see layers.c. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__OPTIMIZE__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

/* Tensors start on 64-byte boundaries so vector loads over a tensor are
 * aligned; the few padding floats stay zero in every buffer. */
#define TENSOR_ALIGN 16

typedef struct {
    Model *m;
    size_t cursor;
    int tight;                 /* the next tensor follows without padding */
} TableBuilder;

static int begin_group(Model *m, const char *name)
{
    ParamGroup *g = &m->groups[m->n_groups];
    snprintf(g->name, sizeof g->name, "%s", name);
    g->lr_scale = 1.0f;
    g->trainable = 1;
    g->first = m->n_tensors;
    g->count = 0;
    g->lora_layer = -1;
    return m->n_groups++;
}

static size_t add_tensor(TableBuilder *tb, int group, int decay, int rows,
                         int cols, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static size_t add_tensor(TableBuilder *tb, int group, int decay, int rows,
                         int cols, const char *fmt, ...)
{
    Model *m = tb->m;
    ParamTensor *t = &m->tensors[m->n_tensors++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->ndim = cols > 0 ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols > 0 ? cols : 0;
    t->numel = (size_t)rows * (size_t)(cols > 0 ? cols : 1);
    t->offset = tb->cursor;
    t->group = group;
    t->decay = decay;
    m->groups[group].count++;
    tb->cursor += t->numel;
    if (!tb->tight)
        tb->cursor = (tb->cursor + TENSOR_ALIGN - 1) / TENSOR_ALIGN * TENSOR_ALIGN;
    return t->offset;
}

static void end_group(Model *m, int group, size_t start, size_t end)
{
    m->groups[group].offset = start;
    m->groups[group].numel = end - start;
}

/* Lays out every tensor under its Hugging Face name. Within a block the
 * query, key and value weights (then biases) are adjacent so that together
 * they form one [3C, C] matrix and one [3C] vector. */
static void build_table(Model *m)
{
    const ModelConfig *c = &m->cfg;
    int C = c->hidden, I = c->intermediate;
    TableBuilder tb = { m, 0, 0 };
    ModelOffsets *o = &m->off;
    size_t start;
    int g;

    g = begin_group(m, "embeddings");
    start = tb.cursor;
    o->word = add_tensor(&tb, g, 1, c->vocab, C, "bert.embeddings.word_embeddings.weight");
    o->pos = add_tensor(&tb, g, 1, c->max_positions, C, "bert.embeddings.position_embeddings.weight");
    if (c->type_vocab > 0)
        o->type = add_tensor(&tb, g, 1, c->type_vocab, C,
                             "bert.embeddings.token_type_embeddings.weight");
    o->ln_g = add_tensor(&tb, g, 0, C, 0, "bert.embeddings.LayerNorm.weight");
    o->ln_b = add_tensor(&tb, g, 0, C, 0, "bert.embeddings.LayerNorm.bias");
    end_group(m, g, start, tb.cursor);

    for (int l = 0; l < c->layers; l++) {
        BlockOffsets *b = &o->block[l];
        char gname[48];
        const char *p = "bert.encoder.layer";
        snprintf(gname, sizeof gname, "layer.%d", l);
        g = begin_group(m, gname);
        start = tb.cursor;
        tb.tight = 1;
        b->qkv_w = add_tensor(&tb, g, 1, C, C, "%s.%d.attention.self.query.weight", p, l);
        add_tensor(&tb, g, 1, C, C, "%s.%d.attention.self.key.weight", p, l);
        tb.tight = 0;
        add_tensor(&tb, g, 1, C, C, "%s.%d.attention.self.value.weight", p, l);
        tb.tight = 1;
        b->qkv_b = add_tensor(&tb, g, 0, C, 0, "%s.%d.attention.self.query.bias", p, l);
        add_tensor(&tb, g, 0, C, 0, "%s.%d.attention.self.key.bias", p, l);
        tb.tight = 0;
        add_tensor(&tb, g, 0, C, 0, "%s.%d.attention.self.value.bias", p, l);
        b->attn_out_w = add_tensor(&tb, g, 1, C, C, "%s.%d.attention.output.dense.weight", p, l);
        b->attn_out_b = add_tensor(&tb, g, 0, C, 0, "%s.%d.attention.output.dense.bias", p, l);
        b->ln1_g = add_tensor(&tb, g, 0, C, 0, "%s.%d.attention.output.LayerNorm.weight", p, l);
        b->ln1_b = add_tensor(&tb, g, 0, C, 0, "%s.%d.attention.output.LayerNorm.bias", p, l);
        b->inter_w = add_tensor(&tb, g, 1, I, C, "%s.%d.intermediate.dense.weight", p, l);
        b->inter_b = add_tensor(&tb, g, 0, I, 0, "%s.%d.intermediate.dense.bias", p, l);
        b->out_w = add_tensor(&tb, g, 1, C, I, "%s.%d.output.dense.weight", p, l);
        b->out_b = add_tensor(&tb, g, 0, C, 0, "%s.%d.output.dense.bias", p, l);
        b->ln2_g = add_tensor(&tb, g, 0, C, 0, "%s.%d.output.LayerNorm.weight", p, l);
        b->ln2_b = add_tensor(&tb, g, 0, C, 0, "%s.%d.output.LayerNorm.bias", p, l);
        end_group(m, g, start, tb.cursor);
    }

    /* With head_pre the pooler group stays, empty, so that groups keep
     * their places (embeddings, blocks, pooler, heads) in every model. */
    g = begin_group(m, "pooler");
    start = tb.cursor;
    if (!c->head_pre) {
        o->pool_w = add_tensor(&tb, g, 1, C, C, "bert.pooler.dense.weight");
        o->pool_b = add_tensor(&tb, g, 0, C, 0, "bert.pooler.dense.bias");
    }
    end_group(m, g, start, tb.cursor);

    for (int k = 0; k < c->n_tasks; k++) {
        char gname[48];
        snprintf(gname, sizeof gname, "classifier.%s", c->task_name[k]);
        g = begin_group(m, gname);
        start = tb.cursor;
        if (c->head_pre) {
            o->pre_w[k] = add_tensor(&tb, g, 1, C, C, "pre_classifier.%s.weight", c->task_name[k]);
            o->pre_b[k] = add_tensor(&tb, g, 0, C, 0, "pre_classifier.%s.bias", c->task_name[k]);
        }
        o->head_w[k] = add_tensor(&tb, g, 1, c->n_labels[k], C, "classifier.%s.weight", c->task_name[k]);
        o->head_b[k] = add_tensor(&tb, g, 0, c->n_labels[k], 0, "classifier.%s.bias", c->task_name[k]);
        end_group(m, g, start, tb.cursor);
    }

    for (int l = 0; l < MODEL_MAX_LAYERS; l++)
        m->lora_group[l] = -1;
    /* LoRA adapters after everything else: the plain model's tensors keep
     * their places, and a model without adapters has exactly its table. */
    static const char *const module[LORA_MODULES] = {
        "attention.self.query", "attention.self.key", "attention.self.value",
        "attention.output.dense", "intermediate.dense", "output.dense",
    };
    for (int l = 0; c->lora_r > 0 && c->lora_targets && l < c->layers; l++) {
        char gname[48];
        snprintf(gname, sizeof gname, "layer.%d.lora", l);
        g = begin_group(m, gname);
        m->groups[g].lora_layer = l;
        m->lora_group[l] = g;
        start = tb.cursor;
        for (int k = 0; k < LORA_MODULES; k++) {
            if (!(c->lora_targets & (1u << k)))
                continue;
            int in = k == LORA_OUTPUT ? I : C, out = k == LORA_INTER ? I : C;
            o->block[l].lora_a[k] = add_tensor(&tb, g, 1, c->lora_r, in,
                                               "bert.encoder.layer.%d.%s.lora_A.weight", l, module[k]);
            o->block[l].lora_b[k] = add_tensor(&tb, g, 1, out, c->lora_r,
                                               "bert.encoder.layer.%d.%s.lora_B.weight", l, module[k]);
        }
        end_group(m, g, start, tb.cursor);
    }

    /* Soft tokens and prefixes last of all, for the same reason. */
    m->prompt_group = m->prefix_group = -1;
    if (c->prompt_tokens > 0) {
        g = m->prompt_group = begin_group(m, "prompt");
        start = tb.cursor;
        o->prompt = add_tensor(&tb, g, 0, c->prompt_tokens, C, "prompt_encoder.embedding.weight");
        end_group(m, g, start, tb.cursor);
    }
    if (c->prefix_tokens > 0) {
        g = m->prefix_group = begin_group(m, "prefix");
        start = tb.cursor;
        for (int l = 0; l < c->layers; l++) {
            o->block[l].prefix_k = add_tensor(&tb, g, 0, c->prefix_tokens, C, "prefix.layer.%d.key", l);
            o->block[l].prefix_v = add_tensor(&tb, g, 0, c->prefix_tokens, C, "prefix.layer.%d.value", l);
        }
        end_group(m, g, start, tb.cursor);
    }
    m->n_params = tb.cursor;
}

/* Longest sequence the activations hold (soft tokens included) and the
 * width of an attention probability row (prefix keys included). */
static int seq_cap(const ModelConfig *c)
{
    return c->max_len + c->prompt_tokens;
}

static long att_scratch(const ModelConfig *c)
{
    return ATTENTION_PREFIX_SCRATCH(seq_cap(c), c->prefix_tokens, c->hidden / c->heads);
}

static int has_lora(const ModelConfig *c)
{
    return c->lora_r > 0 && (c->lora_targets & ((1u << LORA_MODULES) - 1)) != 0;
}

static float *falloc(size_t n, int *failed)
{
    float *p = NULL;
    if (n == 0)
        n = 1;
    if (posix_memalign((void **)&p, 64, n * sizeof(float)) != 0) {
        *failed = 1;
        return NULL;
    }
    memset(p, 0, n * sizeof(float));
    return p;
}

/* Activation buffers are allocated, or only counted, by the same code:
 * the memory estimate cannot drift from what a model allocates. */
typedef struct {
    int count_only;
    size_t floats;
    int failed;
} FloatAlloc;

static float *take(FloatAlloc *fa, size_t n)
{
    fa->floats += n ? n : 1;
    return fa->count_only ? NULL : falloc(n, &fa->failed);
}

static int alloc_activations(Model *m, int B, FloatAlloc *fa, MnError *e)
{
    const ModelConfig *c = &m->cfg;
    Activations *a = &m->act;
    size_t T = (size_t)seq_cap(c), C = (size_t)c->hidden;
    size_t I = (size_t)c->intermediate, H = (size_t)c->heads;
    size_t BT = (size_t)B * T;

    a->cap_B = B;
    a->max_labels = 1;
    for (int k = 0; k < c->n_tasks; k++)
        if (c->n_labels[k] > a->max_labels)
            a->max_labels = c->n_labels[k];
    a->emb = take(fa, BT * C);
    a->emb_ln = take(fa, BT * C);
    a->emb_mean = take(fa, BT);
    a->emb_rstd = take(fa, BT);
    for (int l = 0; l < c->layers; l++) {
        BlockActs *k = &a->block[l];
        k->qkv = take(fa, BT * 3 * C);
        k->att = take(fa, (size_t)B * H * T * (T + (size_t)c->prefix_tokens));
        k->ctx = take(fa, BT * C);
        k->res1 = take(fa, BT * C);
        k->ln1 = take(fa, BT * C);
        k->ln1_mean = take(fa, BT);
        k->ln1_rstd = take(fa, BT);
        k->inter = take(fa, BT * I);
        k->gelu = take(fa, BT * I);
        k->res2 = take(fa, BT * C);
        k->ln2 = take(fa, BT * C);
        k->ln2_mean = take(fa, BT);
        k->ln2_rstd = take(fa, BT);
        for (int t = 0; t < LORA_MODULES; t++)
            if (has_lora(c) && (c->lora_targets & (1u << t)))
                k->lora_u[t] = take(fa, BT * (size_t)c->lora_r);
    }
    a->cls = take(fa, (size_t)B * C);
    a->pool_pre = take(fa, (size_t)B * C);
    a->pooled = take(fa, (size_t)B * C);
    a->logits = take(fa, (size_t)B * a->max_labels);
    a->probs = take(fa, (size_t)B * a->max_labels);
    a->d_a = take(fa, BT * C);
    a->d_b = take(fa, BT * C);
    a->d_c = take(fa, BT * C);
    a->d_qkv = take(fa, BT * 3 * C);
    a->d_gelu = take(fa, BT * I);
    a->d_att = take(fa, (size_t)att_scratch(c));
    if (c->prompt_tokens > 0) {
        fa->floats += (size_t)B;       /* ints, as wide as floats */
        a->len = fa->count_only ? NULL : calloc((size_t)B, sizeof *a->len);
        fa->failed |= !fa->count_only && a->len == NULL;
    }
    a->d_cls = take(fa, (size_t)B * C);
    a->d_pool = take(fa, (size_t)B * C);
    a->d_logits = take(fa, (size_t)B * a->max_labels);
    if (has_lora(c)) {
        a->d_lora = take(fa, BT * (size_t)c->lora_r);
        a->cls_in = take(fa, (size_t)B * C);
    }
    if (has_lora(c) && c->lora_dropout > 0.0f) {
        a->lora_xd = take(fa, BT * (I > C ? I : C));
        a->lora_dxd = take(fa, BT * (I > C ? I : C));
    }
    if (fa->failed)
        return mn_fail(e, "out of memory for activations (batch %d, max_len %zu: %.1f MiB)", B,
                       T, (double)fa->floats * sizeof(float) / (1 << 20));
    return 0;
}

static void free_activations(Activations *a, int layers)
{
    free(a->emb); free(a->emb_ln); free(a->emb_mean); free(a->emb_rstd);
    for (int l = 0; l < layers; l++) {
        BlockActs *k = &a->block[l];
        free(k->qkv); free(k->att); free(k->ctx); free(k->res1); free(k->ln1);
        free(k->ln1_mean); free(k->ln1_rstd); free(k->inter); free(k->gelu);
        free(k->res2); free(k->ln2); free(k->ln2_mean); free(k->ln2_rstd);
        for (int t = 0; t < LORA_MODULES; t++)
            free(k->lora_u[t]);
    }
    free(a->cls); free(a->pool_pre); free(a->pooled); free(a->logits);
    free(a->probs); free(a->d_a); free(a->d_b); free(a->d_c); free(a->d_qkv);
    free(a->d_gelu); free(a->d_att); free(a->d_cls);
    free(a->d_pool); free(a->d_logits); free(a->d_lora); free(a->len);
    free(a->lora_xd); free(a->lora_dxd); free(a->cls_in);
    memset(a, 0, sizeof *a);
}

/* m->cfg from cfg (defaults filled in) and the tensor table; no buffers.
 * The shape rules are checked here, for model_create and the estimate. */
static int make_table(Model *m, const ModelConfig *cfg, MnError *e)
{
    memset(m, 0, sizeof *m);
    if (cfg->layers < 1 || cfg->layers > MODEL_MAX_LAYERS)
        return mn_fail(e, "model: layers must be 1..%d", MODEL_MAX_LAYERS);
    if (cfg->n_tasks < 1 || cfg->n_tasks > MODEL_MAX_TASKS)
        return mn_fail(e, "model: 1..%d task heads", MODEL_MAX_TASKS);
    if (cfg->hidden < 1 || cfg->heads < 1 || cfg->hidden % cfg->heads)
        return mn_fail(e, "model: hidden %d is not divisible by heads %d",
                       cfg->hidden, cfg->heads);
    if (cfg->lora_r < 0 || (cfg->lora_r > 0 && !(cfg->lora_alpha > 0)) ||
        (cfg->lora_targets >> LORA_MODULES))
        return mn_fail(e, "model: LoRA needs r >= 1, alpha > 0 and known target modules");
    if (cfg->prompt_tokens < 0 || cfg->prompt_tokens > MODEL_MAX_VIRTUAL ||
        cfg->prefix_tokens < 0 || cfg->prefix_tokens > MODEL_MAX_VIRTUAL)
        return mn_fail(e, "model: virtual tokens must be 0..%d", MODEL_MAX_VIRTUAL);
    /* A checkpoint's or config.json's shape comes from a file: a negative
     * size would become an absurd allocation. */
    if (cfg->intermediate < 1 || cfg->max_len < 1 || cfg->max_positions < 0)
        return mn_fail(e, "model: intermediate (%d) and max_len (%d) must be positive, "
                       "max_positions (%d) not negative", cfg->intermediate, cfg->max_len,
                       cfg->max_positions);
    if (cfg->max_positions != 0 && cfg->max_positions < cfg->max_len)
        return mn_fail(e, "model: max_len %d exceeds the %d positions", cfg->max_len,
                       cfg->max_positions);
    if (cfg->type_vocab < 0 || cfg->vocab < 5)
        return mn_fail(e, "model: a vocabulary of %d tokens and %d token types", cfg->vocab,
                       cfg->type_vocab);
    m->cfg = *cfg;
    if (m->cfg.max_positions == 0)
        m->cfg.max_positions = cfg->max_len;
    if (!(m->cfg.ln_eps > 0.0f))
        m->cfg.ln_eps = LAYERNORM_EPS;
    if (!has_lora(cfg)) {
        m->cfg.lora_r = 0;
        m->cfg.lora_alpha = 0.0f;
        m->cfg.lora_targets = 0;
    }
    int max_tensors = 5 + 16 * cfg->layers + 2 + 4 * cfg->n_tasks + 2 * LORA_MODULES * cfg->layers +
                      1 + 2 * cfg->layers;
    int max_groups = 1 + 2 * cfg->layers + 1 + cfg->n_tasks + 2;
    m->tensors = calloc((size_t)max_tensors, sizeof *m->tensors);
    m->groups = calloc((size_t)max_groups, sizeof *m->groups);
    if (!m->tensors || !m->groups) {
        model_free(m);
        return mn_fail(e, "out of memory for the parameter table");
    }
    build_table(m);
    return 0;
}

/* "512 B", "12.3 MiB", "172.8 GiB" */
static const char *human_size(double bytes, char buf[32])
{
    static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
    int u = 0;
    while (bytes >= 1024.0 && u < 6) {
        bytes /= 1024.0;
        u++;
    }
    snprintf(buf, 32, u ? "%.1f %s" : "%.0f %s", bytes, unit[u]);
    return buf;
}

int model_create(Model *m, const ModelConfig *cfg, int max_batch, MnError *e)
{
    int failed = 0;
    if (make_table(m, cfg, e) < 0)
        return -1;
    m->params = falloc(m->n_params, &failed);
    m->grads = falloc(m->n_params, &failed);
    if (failed) {
        size_t n = m->n_params;
        char b[32];
        model_free(m);
        return mn_fail(e, "out of memory for %zu parameters (%s with their gradients)", n,
                       human_size(2.0 * (double)n * sizeof(float), b));
    }
    FloatAlloc fa = { 0, 0, 0 };
    if (alloc_activations(m, max_batch, &fa, e) < 0) {
        model_free(m);
        return -1;
    }
    m->lora_scale = has_lora(&m->cfg) ? m->cfg.lora_alpha / (float)m->cfg.lora_r : 0.0f;
    m->virtual_on = m->prompt_group >= 0 || m->prefix_group >= 0;
    return 0;
}

int model_memory(const ModelConfig *cfg, int max_batch, int threads, int copies,
                 ModelMemory *mm, MnError *e)
{
    Model m;
    if (make_table(&m, cfg, e) < 0)
        return -1;
    FloatAlloc fa = { 1, 0, 0 };
    alloc_activations(&m, max_batch < 1 ? 1 : max_batch, &fa, e);
    threads = threads < 1 ? 1 : threads > MODEL_MAX_THREADS ? MODEL_MAX_THREADS : threads;
    double n = (double)m.n_params, f = sizeof(float);
    memset(mm, 0, sizeof *mm);
    mm->n_params = m.n_params;
    /* parameters, gradients, and each worker past the first its own
     * gradients and attention scratch (model_set_threads) */
    mm->params = f * n * (2 + (threads - 1));
    mm->state = f * n * (copies > 0 ? copies : 0);
    mm->activations = f * ((double)fa.floats + (double)(threads - 1) * (double)att_scratch(&m.cfg));
    mm->total = mm->params + mm->state + mm->activations;
    model_free(&m);
    return 0;
}

int model_check_memory(const ModelConfig *cfg, int max_batch, int threads, int copies,
                       MnError *e)
{
    ModelMemory mm;
    const char *source;
    if (model_memory(cfg, max_batch, threads, copies, &mm, e) < 0)
        return -1;
    double avail = mem_available(&source);
    if (avail == -2)
        return mn_fail(e, "MNEME_MEMORY_LIMIT=%s: expected a size in bytes, or with K, M, G "
                       "or T (8G), or off", getenv("MNEME_MEMORY_LIMIT"));
    if (avail < 0 || mm.total <= avail)
        return 0;
    char t[32], p[32], st[32], a[32], av[32];
    return mn_fail(e, "model: needs about %s (%zu parameters: %s with gradients, %s optimizer "
                   "state and anchors, %s activations for batches of %d x %d tokens), but %s "
                   "is available (%s); make the model, max_len or batch smaller, or set "
                   "MNEME_MEMORY_LIMIT", human_size(mm.total, t), mm.n_params,
                   human_size(mm.params, p), human_size(mm.state, st),
                   human_size(mm.activations, a), max_batch, cfg->max_len + cfg->prompt_tokens,
                   human_size(avail, av), source);
}

static void free_pool(Model *m)
{
    workers_free(m->pool);
    m->pool = NULL;
    if (m->worker_grads)
        for (int i = 0; m->worker_grads[i]; i++)
            free(m->worker_grads[i]);
    free(m->worker_grads);
    m->worker_grads = NULL;
}

void model_free(Model *m)
{
    model_set_precision(m, PRECISION_FP32, NULL);
    free_pool(m);
    gradsync_free(m->sync);
    free(m->buckets);
    free(m->word_seen);
    free(m->word_rows);
    if (m->act.cap_B)
        free_activations(&m->act, m->cfg.layers);
    free(m->tensors);
    free(m->groups);
    free(m->params);
    free(m->grads);
    memset(m, 0, sizeof *m);
}

void model_init_weights(Model *m, Rng *rng, float std)
{
    memset(m->params, 0, m->n_params * sizeof(float));
    for (int i = 0; i < m->n_tensors; i++) {
        const ParamTensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        int is_ln = strstr(t->name, "LayerNorm") != NULL;
        if (m->groups[t->group].lora_layer >= 0 || t->group == m->prompt_group ||
            t->group == m->prefix_group)
            continue;          /* drawn below, after every base weight */
        if (is_ln && strstr(t->name, ".weight"))
            for (size_t j = 0; j < t->numel; j++)
                p[j] = 1.0f;
        else if (t->ndim == 2)
            for (size_t j = 0; j < t->numel; j++)
                p[j] = std * rng_normal(rng);
    }
    model_init_lora(m, rng);
    /* Soft tokens and prefixes: normal(0, std), PEFT's random init
     * (TaskType RANDOM) at the model's scale. */
    for (int g = 0; g < m->n_groups; g++)
        if (g == m->prompt_group || g == m->prefix_group)
            for (size_t j = 0; j < m->groups[g].numel; j++)
                m->params[m->groups[g].offset + j] = std * rng_normal(rng);
    m->virtual_on = 0;
    model_params_changed(m);
}

void model_init_lora(Model *m, Rng *rng)
{
    for (int i = 0; i < m->n_tensors; i++) {
        const ParamTensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        if (m->groups[t->group].lora_layer < 0)
            continue;
        if (strstr(t->name, ".lora_B."))
            memset(p, 0, t->numel * sizeof(float));
        else {
            /* PEFT: kaiming_uniform_(a = sqrt 5) on A [r, in]: gain
             * sqrt(2 / (1 + 5)), bound gain * sqrt(3 / fan_in) = 1 / sqrt(in) */
            float bound = 1.0f / sqrtf((float)t->shape[1]);
            for (size_t j = 0; j < t->numel; j++)
                p[j] = bound * (2.0f * rng_uniform(rng) - 1.0f);
        }
    }
    model_params_changed(m);
}

int model_find_tensor(const Model *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return i;
    return -1;
}

int model_find_group(const Model *m, const char *name)
{
    for (int i = 0; i < m->n_groups; i++)
        if (strcmp(m->groups[i].name, name) == 0)
            return i;
    return -1;
}

/* The residual branches: out[N, OC] = resid + in @ W^T + b (resid's rows
 * ldr apart). Seeding out with resid + b lets sgemm (beta = 1) add the
 * product in the pass it makes over out anyway; the separate bias copy and
 * residual add would be two more passes over activations that no longer
 * fit in cache. */
static void residual_linear_forward(struct Bf16Worker *bw, float *restrict out,
                                    const float *restrict in, const float *restrict W,
                                    const float *restrict b, const float *restrict resid,
                                    long ldr, int N, int IC, int OC)
{
    for (long i = 0; i < N; i++) {
        const float *restrict r = resid + i * ldr;
        float *restrict y = out + i * OC;
        for (int o = 0; o < OC; o++)
            y[o] = r[o] + b[o];
    }
    bf16_gemm(bw, 0, 1, N, OC, IC, in, IC, W, IC, 1.0f, out, OC);
}

/* ---- rows of a batch ----------------------------------------------------
 *
 * Every layer treats the sequences of a batch independently (the weights
 * are shared, the rows are not), so the forward and backward of rows
 * [r0, r1) can run on their own: on a view of the activations whose
 * pointers start at row r0 (the buffers are laid out row-major by sequence,
 * with the batch's T as the stride), and a view of the batch. That is how
 * the step is split across workers; one worker gets the whole batch. */

static void act_view(Activations *v, const Activations *a, int L, int r0, int T,
                     int C, int I, int H, int R, int NP, int worker, long att_scratch)
{
    const long rt = (long)r0 * T, rc = rt * C, ri = rt * I, rh = (long)r0 * H * T * (T + NP);
    const long rr = rt * R;
    *v = *a;
    v->emb += rc;
    v->emb_ln += rc;
    v->emb_mean += rt;
    v->emb_rstd += rt;
    for (int l = 0; l < L; l++) {
        BlockActs *k = &v->block[l];
        k->qkv += 3 * rc;
        k->att += rh;
        k->ctx += rc;
        k->res1 += rc;
        k->ln1 += rc;
        k->ln1_mean += rt;
        k->ln1_rstd += rt;
        k->inter += ri;
        k->gelu += ri;
        k->res2 += rc;
        k->ln2 += rc;
        k->ln2_mean += rt;
        k->ln2_rstd += rt;
        for (int t = 0; t < LORA_MODULES; t++)
            if (k->lora_u[t])
                k->lora_u[t] += rr;
    }
    if (v->d_lora)
        v->d_lora += rr;
    if (v->lora_xd) {
        long wide = rt * (I > C ? I : C);
        v->lora_xd += wide;
        v->lora_dxd += wide;
    }
    v->row0 = r0;
    if (v->len)
        v->len += r0;
    v->cls += (long)r0 * C;
    if (v->cls_in)
        v->cls_in += (long)r0 * C;
    v->pool_pre += (long)r0 * C;
    v->pooled += (long)r0 * C;
    v->logits += (long)r0 * a->max_labels;
    v->probs += (long)r0 * a->max_labels;
    v->d_a += rc;
    v->d_b += rc;
    v->d_c += rc;
    v->d_qkv += 3 * rc;
    v->d_gelu += ri;
    /* the attention scratch is per worker, not per row */
    v->d_att += worker * att_scratch;
    v->d_cls += (long)r0 * C;
    v->d_pool += (long)r0 * C;
    v->d_logits += (long)r0 * a->max_labels;
}

static void batch_view(Batch *v, const Batch *b, int r0, int r1)
{
    *v = *b;
    v->B = r1 - r0;
    v->ids = b->ids + (long)r0 * b->T;
    v->len = b->len + r0;
    v->task = b->task + r0;
    v->label = b->label ? b->label + r0 : NULL;
}

/* ---- LoRA inside a block -------------------------------------------------
 *
 * Module t's adapter adds scale * (x A^T) B^T to that linear's output y
 * (stride ldy: the query, key and value outputs are column blocks of
 * qkv). Nothing is done for modules without an adapter, or while the
 * adapters are switched off (scale 0): then the block is the base model's,
 * bit for bit. */

static int lora_on(const Model *m, const BlockActs *k, int t)
{
    return m->lora_scale != 0.0f && k->lora_u[t] != NULL;
}

static void lora_dims(const ModelConfig *c, int t, int *in, int *out)
{
    *in = t == LORA_OUTPUT ? c->intermediate : c->hidden;
    *out = t == LORA_INTER ? c->intermediate : c->hidden;
}

static int dropout_on(const Model *m, const Activations *a)
{
    return m->training && m->cfg.lora_dropout > 0.0f && a->lora_xd;
}

/* dst = src * mask / (1 - p), or with keep = 0 only the mask's zeros, for
 * the adapter of module t in block l over N rows of the batch, row0*T,
 * row0*T + rstep, ... (rstep T: the [CLS] rows): a hash of the position,
 * not a stream, so every worker, the backward and the [CLS]-only block
 * draw the same mask for the same row. */
static void dropout_apply(const Model *m, const Activations *a, int l, int t, float *dst,
                          const float *src, int N, int in, int T, int rstep)
{
    const float p = m->cfg.lora_dropout, keep = 1.0f / (1.0f - p);
    const uint32_t threshold = (uint32_t)((double)p * 4294967296.0);
    const uint64_t base = m->dropout_seed ^ ((uint64_t)(l * LORA_MODULES + t) << 48);
    for (long r = 0; r < N; r++) {
        uint64_t row = (uint64_t)((long)a->row0 * T + r * rstep);
        for (int i = 0; i < in; i++) {
            uint64_t z = base + row * 0x9E3779B97F4A7C15ULL + (uint64_t)i * 0xD1B54A32D192ED03ULL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
            z ^= z >> 31;
            dst[r * in + i] = (uint32_t)(z >> 32) < threshold ? 0.0f : src[r * in + i] * keep;
        }
    }
}

static void lora_fwd(const Model *m, Activations *a, BlockActs *k, const BlockOffsets *bo,
                     int l, int t, float *y, int ldy, const float *x, int N, int T, int rstep)
{
    int in, out;
    if (!lora_on(m, k, t))
        return;
    lora_dims(&m->cfg, t, &in, &out);
    if (dropout_on(m, a)) {
        dropout_apply(m, a, l, t, a->lora_xd, x, N, in, T, rstep);
        x = a->lora_xd;
    }
    lora_forward(y, ldy, k->lora_u[t], x, m->params + bo->lora_a[t], m->params + bo->lora_b[t],
                 m->lora_scale, N, in, out, m->cfg.lora_r);
}

/* Soft tokens and prefix vectors the forward uses now (0 when switched
 * off or absent). */
static int prompt_now(const Model *m)
{
    return m->virtual_on ? m->cfg.prompt_tokens : 0;
}

static int prefix_now(const Model *m)
{
    return m->virtual_on ? m->cfg.prefix_tokens : 0;
}

/* ---- classifier heads ----------------------------------------------------
 *
 * Rows of one task share a head: a run of consecutive rows with the same
 * task takes one product instead of one per row (a batch is usually one
 * task, or a few runs of them). Logits rows have stride ML: the strided
 * linear layer of layers.c, with K outputs. */

static int task_run_end(const Batch *b, int r0)
{
    int r1 = r0 + 1;
    while (r1 < b->B && b->task[r1] == b->task[r0])
        r1++;
    return r1;
}

/* ---- what follows the attention in a block --------------------------------
 *
 * The attention output dense with its residual, both LayerNorms and the
 * feed-forward, over N rows: every row of the batch, or the [CLS] rows of
 * the last block (rstep, the batch rows between them, for the adapters'
 * dropout: 1 or T). x is the block's input (the residual), its rows ldx
 * apart. */

static void block_tail_forward(const Model *m, Activations *a, int l, const float *x, long ldx,
                               int N, int T, int rstep)
{
    const float *P = m->params;
    const int C = m->cfg.hidden, I = m->cfg.intermediate;
    const BlockOffsets *bo = &m->off.block[l];
    BlockActs *k = &a->block[l];
    residual_linear_forward(a->bw, k->res1, k->ctx, P + bo->attn_out_w, P + bo->attn_out_b,
                            x, ldx, N, C, C);
    lora_fwd(m, a, k, bo, l, LORA_ATTN_OUT, k->res1, C, k->ctx, N, T, rstep);
    layernorm_forward_eps(k->ln1, k->ln1_mean, k->ln1_rstd, k->res1,
                      P + bo->ln1_g, P + bo->ln1_b, N, C, m->cfg.ln_eps);
    linear_forward(a->bw, k->inter, k->ln1, P + bo->inter_w, P + bo->inter_b, N, C, I);
    lora_fwd(m, a, k, bo, l, LORA_INTER, k->inter, I, k->ln1, N, T, rstep);
    /* inter is not needed again: it becomes gelu'(inter) */
    if (m->cfg.act == ACT_GELU_TANH)
        gelu_tanh_forward_grad(k->gelu, k->inter, k->inter, N * I);
    else
        gelu_forward_grad(k->gelu, k->inter, k->inter, N * I);
    residual_linear_forward(a->bw, k->res2, k->gelu, P + bo->out_w, P + bo->out_b,
                            k->ln1, C, N, I, C);
    lora_fwd(m, a, k, bo, l, LORA_OUTPUT, k->res2, C, k->gelu, N, T, rstep);
    layernorm_forward_eps(k->ln2, k->ln2_mean, k->ln2_rstd, k->res2,
                      P + bo->ln2_g, P + bo->ln2_b, N, C, m->cfg.ln_eps);
}

static float *grad_or_null(const Model *m, float *G, int group, size_t offset);
static void lora_bwd(const Model *m, Activations *a, const BlockActs *k,
                     const BlockOffsets *bo, float *G, int l, int t, float *dx,
                     const float *dy, int ldy, const float *x, int N, int T, int rstep);

/* Its backward, from d(ln2) in dy down to d(ctx) in a->d_c, with the
 * weight gradients into G; d(res1), which the residual also passes to the
 * block's input, is left in dr1 (which may be dy; a->d_b is scratch). */
static void block_tail_backward(const Model *m, Activations *a, float *G, int l,
                                const float *dy, float *dr1, int N, int T, int rstep)
{
    const float *P = m->params;
    const int g = 1 + l, C = m->cfg.hidden, I = m->cfg.intermediate;
    const BlockOffsets *bo = &m->off.block[l];
    const BlockActs *k = &a->block[l];
    float *d_res = a->d_b, *d_ctx = a->d_c;

    /* output LayerNorm → d(res2), which is also d(ln1) by the residual;
     * the output bias's gradient (column sums of d(res2)) on the way */
    layernorm_backward_set_sum(d_res, grad_or_null(m, G, g, bo->ln2_g),
                               grad_or_null(m, G, g, bo->ln2_b),
                               grad_or_null(m, G, g, bo->out_b),
                               dy, k->res2, P + bo->ln2_g, k->ln2_mean, k->ln2_rstd, N, C);
    linear_backward_set(a->bw, a->d_gelu, grad_or_null(m, G, g, bo->out_w), NULL,
                        d_res, k->gelu, P + bo->out_w, N, I, C);
    lora_bwd(m, a, k, bo, G, l, LORA_OUTPUT, a->d_gelu, d_res, C, k->gelu, N, T, rstep);
    gelu_backward_cached_bias(a->d_gelu, grad_or_null(m, G, g, bo->inter_b), k->inter, N, I);
    linear_backward(a->bw, d_res, grad_or_null(m, G, g, bo->inter_w), NULL,
                    a->d_gelu, k->ln1, P + bo->inter_w, N, C, I);
    lora_bwd(m, a, k, bo, G, l, LORA_INTER, d_res, a->d_gelu, I, k->ln1, N, T, rstep);

    /* attention LayerNorm → d(res1) */
    layernorm_backward_set_sum(dr1, grad_or_null(m, G, g, bo->ln1_g),
                               grad_or_null(m, G, g, bo->ln1_b),
                               grad_or_null(m, G, g, bo->attn_out_b),
                               d_res, k->res1, P + bo->ln1_g, k->ln1_mean, k->ln1_rstd, N, C);
    linear_backward_set(a->bw, d_ctx, grad_or_null(m, G, g, bo->attn_out_w), NULL, dr1, k->ctx,
                        P + bo->attn_out_w, N, C, C);
    lora_bwd(m, a, k, bo, G, l, LORA_ATTN_OUT, d_ctx, dr1, C, k->ctx, N, T, rstep);
}

/* ---- the last block at [CLS] only -----------------------------------------
 *
 * The pooler reads one row of the last block's output, the first of each
 * sequence. The other rows still serve as keys and values, but their
 * queries, attention output, feed-forward and LayerNorms feed nothing:
 * about 5/6 of the block's products. So the last block computes keys and
 * values for every row and the rest for the first row only; its qkv keeps
 * the full layout (the other rows' queries unused) and ctx, res1, ln1,
 * inter, gelu, res2 and ln2 hold B rows. Loss and gradients are those of
 * the full block up to rounding. The query adapter reads the [CLS] rows
 * of the block's input from a contiguous copy (cls_in); the other
 * adapters run on the rows their layers do. full_last_block (for tests)
 * and T = 1, where the backward would lack room for d(res1), keep the
 * full path. */

static int cls_only(const Model *m, int T)
{
    return !m->full_last_block && T >= 2;
}

static void cls_block_forward(const Model *m, Activations *a, const float *x, const int *len,
                              int npre, int B, int T)
{
    const ModelConfig *c = &m->cfg;
    const float *P = m->params;
    const int l = c->layers - 1, C = c->hidden, H = c->heads;
    const BlockOffsets *bo = &m->off.block[l];
    BlockActs *k = &a->block[l];
    const size_t CC = (size_t)C * C;

    linear_forward_ld(a->bw, k->qkv + C, 3 * C, x, C, P + bo->qkv_w + CC, P + bo->qkv_b + C,
                      B * T, C, 2 * C);
    linear_forward_ld(a->bw, k->qkv, T * 3 * C, x, T * C, P + bo->qkv_w, P + bo->qkv_b, B, C, C);
    for (int t = LORA_KEY; t <= LORA_VALUE; t++)
        lora_fwd(m, a, k, bo, l, t, k->qkv + t * C, 3 * C, x, B * T, T, 1);
    if (lora_on(m, k, LORA_QUERY)) {
        for (int r = 0; r < B; r++)
            memcpy(a->cls_in + (size_t)r * C, x + (size_t)r * T * C, (size_t)C * sizeof(float));
        lora_fwd(m, a, k, bo, l, LORA_QUERY, k->qkv, T * 3 * C, a->cls_in, B, T, T);
    }
    attention_forward_first(k->ctx, k->att, k->qkv, len, npre ? P + bo->prefix_k : NULL,
                            npre ? P + bo->prefix_v : NULL, npre, a->d_att, B, T, 1, C, H);
    block_tail_forward(m, a, l, x, (long)T * C, B, T, T);
}

static float *offset_or_null(float *p, size_t n)
{
    return p ? p + n : NULL;
}

/* Given d(ln2) of the [CLS] rows in a->d_pool, the block's weight
 * gradients into G and, with need_din, d(x_in) [BT, C] written to a->d_a. */
static void cls_block_backward(const Model *m, Activations *a, float *G, const float *x_in,
                               const int *len, int npre, int need_din, int B, int T)
{
    const ModelConfig *c = &m->cfg;
    const float *P = m->params;
    const int l = c->layers - 1, g = 1 + l, C = c->hidden;
    const BlockOffsets *bo = &m->off.block[l];
    const BlockActs *k = &a->block[l];
    const size_t CC = (size_t)C * C;
    float *dx = need_din ? a->d_a : NULL, *d_ctx = a->d_c;
    /* rows B..2B-1 of d_b, past the tail's scratch: T >= 2 */
    float *d_res1 = a->d_b + (size_t)B * C;
    float *dqkv_w = grad_or_null(m, G, g, bo->qkv_w), *dqkv_b = grad_or_null(m, G, g, bo->qkv_b);

    block_tail_backward(m, a, G, l, a->d_pool, d_res1, B, T, T);
    attention_backward_first_set(a->d_qkv,
                                 npre ? grad_or_null(m, G, m->prefix_group, bo->prefix_k) : NULL,
                                 npre ? grad_or_null(m, G, m->prefix_group, bo->prefix_v) : NULL,
                                 d_ctx, k->qkv, k->att, len,
                                 npre ? P + bo->prefix_k : NULL, npre ? P + bo->prefix_v : NULL,
                                 npre, a->d_att, B, T, 1, C, c->heads);
    /* keys and values: every row; this writes all of dx */
    linear_backward_ld(a->bw, dx, C, offset_or_null(dqkv_w, CC), offset_or_null(dqkv_b, (size_t)C),
                       a->d_qkv + C, 3 * C, x_in, C, P + bo->qkv_w + CC, B * T, C, 2 * C, 0.0f);
    for (int t = LORA_KEY; t <= LORA_VALUE; t++)
        lora_bwd(m, a, k, bo, G, l, t, dx, a->d_qkv + t * C, 3 * C, x_in, B * T, T, 1);
    /* the query adapter's share of d(x) joins d(res1) */
    lora_bwd(m, a, k, bo, G, l, LORA_QUERY, dx ? d_res1 : NULL, a->d_qkv, T * 3 * C, a->cls_in,
             B, T, T);
    /* the query and the residual: the [CLS] rows */
    if (dx)
        for (int r = 0; r < B; r++) {
            float *d = dx + (size_t)r * T * C;
            const float *s = d_res1 + (size_t)r * C;
            for (int j = 0; j < C; j++)
                d[j] += s[j];
        }
    linear_backward_ld(a->bw, dx, T * C, dqkv_w, dqkv_b, a->d_qkv, T * 3 * C, x_in, T * C,
                       P + bo->qkv_w, B, C, C, 1.0f);
}

static const float *type_table(const Model *m, const float *P)
{
    return m->cfg.type_vocab > 0 ? P + m->off.type : NULL;
}

/* ---- from [CLS] to the heads ----------------------------------------------
 *
 * BERT: one pooler (dense + tanh) shared by every head. DistilBERT: no
 * pooler; each head starts with its own pre_classifier (dense + ReLU),
 * which trains, and is frozen, with the head. */

static void pool_forward(const Model *m, Activations *a, const Batch *b)
{
    const float *P = m->params;
    const ModelOffsets *o = &m->off;
    const int C = m->cfg.hidden, B = b->B;
    if (!m->cfg.head_pre) {
        linear_forward(a->bw, a->pool_pre, a->cls, P + o->pool_w, P + o->pool_b, B, C, C);
        tanh_forward(a->pooled, a->pool_pre, B * C);
        return;
    }
    for (int r0 = 0, r1; r0 < B; r0 = r1) {
        int task = b->task[r0];
        r1 = task_run_end(b, r0);
        linear_forward(a->bw, a->pool_pre + (size_t)r0 * C, a->cls + (size_t)r0 * C,
                       P + o->pre_w[task], P + o->pre_b[task], r1 - r0, C, C);
    }
    relu_forward(a->pooled, a->pool_pre, B * C);
}

static float *grad_or_null(const Model *m, float *G, int group, size_t offset);
static void zero(float *p, size_t n);

/* Given d(pooled) in a->d_pool: the pooler's (or pre_classifiers')
 * weight gradients into G and, with need_cls, d(cls) in a->d_pool. */
static void pool_backward(const Model *m, Activations *a, const Batch *b, float *G,
                          int need_cls)
{
    const float *P = m->params;
    const ModelOffsets *o = &m->off;
    const int C = m->cfg.hidden, B = b->B, pooler_group = 1 + m->cfg.layers;
    /* d(pool_pre) in d_cls's place */
    float *d_pool_pre = a->d_cls;
    zero(d_pool_pre, (size_t)B * C);
    if (m->cfg.head_pre)
        relu_backward(d_pool_pre, a->d_pool, a->pooled, B * C);
    else
        tanh_backward(d_pool_pre, a->d_pool, a->pooled, B * C);
    zero(a->d_pool, (size_t)B * C);
    if (!m->cfg.head_pre) {
        linear_backward(a->bw, need_cls ? a->d_pool : NULL,
                        grad_or_null(m, G, pooler_group, o->pool_w),
                        grad_or_null(m, G, pooler_group, o->pool_b), d_pool_pre, a->cls,
                        P + o->pool_w, B, C, C);
        return;
    }
    for (int r0 = 0, r1; r0 < B; r0 = r1) {
        int task = b->task[r0], hg = pooler_group + 1 + task;
        r1 = task_run_end(b, r0);
        linear_backward(a->bw, need_cls ? a->d_pool + (size_t)r0 * C : NULL,
                        grad_or_null(m, G, hg, o->pre_w[task]), grad_or_null(m, G, hg, o->pre_b[task]),
                        d_pool_pre + (size_t)r0 * C, a->cls + (size_t)r0 * C, P + o->pre_w[task],
                        r1 - r0, C, C);
    }
}

/* Forward over the rows of b (a view); adds the summed loss and the number
 * of labelled rows to *loss and *counted. With soft tokens the model's
 * sequences are b->T + n long and a->len holds their lengths. */
static void forward_rows(const Model *m, Activations *a, const Batch *b,
                         double *loss, int *counted, int encode_only)
{
    const ModelConfig *c = &m->cfg;
    const float *P = m->params;
    const ModelOffsets *o = &m->off;
    const int np = prompt_now(m), npre = prefix_now(m);
    int B = b->B, T = b->T + np, C = c->hidden, H = c->heads;
    int BT = B * T, ML = a->max_labels;
    const int *len = b->len;
    const float *x;

    if (np) {
        for (int r = 0; r < B; r++) {
            int n = b->len[r] < 0 ? 0 : b->len[r] > b->T ? b->T : b->len[r];
            a->len[r] = n > 0 ? n + np : 0;
        }
        len = a->len;
        embedding_forward_prompt(a->emb, b->ids, b->types, P + o->word, P + o->pos,
                                 type_table(m, P), P + o->prompt, np, B, b->T, C);
    } else
        embedding_forward(a->emb, b->ids, b->types, P + o->word, P + o->pos, type_table(m, P),
                          B, T, C);
    layernorm_forward_eps(a->emb_ln, a->emb_mean, a->emb_rstd, a->emb,
                      P + o->ln_g, P + o->ln_b, BT, C, c->ln_eps);
    x = a->emb_ln;
    const int cls = cls_only(m, T) && !encode_only;
    for (int l = 0; l < c->layers; l++) {
        const BlockOffsets *bo = &o->block[l];
        BlockActs *k = &a->block[l];
        if (cls && l == c->layers - 1) {
            cls_block_forward(m, a, x, len, npre, B, T);
            x = k->ln2;
            break;
        }
        linear_forward(a->bw, k->qkv, x, P + bo->qkv_w, P + bo->qkv_b, BT, C, 3 * C);
        for (int t = LORA_QUERY; t <= LORA_VALUE; t++)
            lora_fwd(m, a, k, bo, l, t, k->qkv + t * C, 3 * C, x, BT, T, 1);
        if (npre)
            attention_forward_prefix(k->ctx, k->att, k->qkv, len, P + bo->prefix_k,
                                     P + bo->prefix_v, npre, a->d_att, B, T, C, H);
        else
            attention_forward(k->ctx, k->att, k->qkv, len, a->d_att, B, T, C, H);
        block_tail_forward(m, a, l, x, C, BT, T, 1);
        x = k->ln2;
    }
    if (encode_only)
        return;
    if (cls)
        memcpy(a->cls, x, (size_t)B * C * sizeof(float));
    else
        for (int r = 0; r < B; r++)
            memcpy(a->cls + (size_t)r * C, x + (size_t)r * T * C, (size_t)C * sizeof(float));
    pool_forward(m, a, b);
    for (int r0 = 0, r1; r0 < B; r0 = r1) {
        int task = b->task[r0], K = c->n_labels[task];
        r1 = task_run_end(b, r0);
        linear_forward_ld(a->bw, a->logits + (size_t)r0 * ML, ML, a->pooled + (size_t)r0 * C, C,
                          P + o->head_w[task], P + o->head_b[task], r1 - r0, C, K);
    }
    for (int r = 0; r < B; r++) {
        int task = b->task[r], K = c->n_labels[task];
        float *logits = a->logits + (size_t)r * ML;
        const int *lab = b->label ? &b->label[r] : NULL;
        int none = -1;
        *loss += softmax_xent_forward(a->probs + (size_t)r * ML, logits,
                                      lab ? lab : &none, 1, K);
        if (lab && *lab >= 0)
            (*counted)++;
    }
}

/* Gradient pointer for a tensor offset in the gradient buffer G, or NULL
 * when its group is frozen: NULL tells the layer backward to skip that
 * weight-gradient product. */
static float *grad_or_null(const Model *m, float *G, int group, size_t offset)
{
    return group >= 0 && m->groups[group].trainable ? G + offset : NULL;
}

static void zero(float *p, size_t n)
{
    memset(p, 0, n * sizeof(float));
}

/* The adapter of module t in block l, given dy = d(y) (stride ldy) and the
 * layer input x: weight gradients into G when layer.<l>.lora trains, and
 * dx += its share of d(x) when dx is not NULL. */
static void lora_bwd(const Model *m, Activations *a, const BlockActs *k,
                     const BlockOffsets *bo, float *G, int l, int t, float *dx,
                     const float *dy, int ldy, const float *x, int N, int T, int rstep)
{
    int in, out;
    if (!lora_on(m, k, t))
        return;
    lora_dims(&m->cfg, t, &in, &out);
    int g = m->lora_group[l];
    int drop = dropout_on(m, a);
    float *dxa = dx;
    if (drop) {
        /* The same mask as the forward: the adapter saw x * mask / (1-p),
         * and its share of d(x) goes back through that mask. */
        dropout_apply(m, a, l, t, a->lora_xd, x, N, in, T, rstep);
        x = a->lora_xd;
        if (dx) {
            memset(a->lora_dxd, 0, (size_t)N * (size_t)in * sizeof(float));
            dxa = a->lora_dxd;
        }
    }
    lora_backward(dxa, grad_or_null(m, G, g, bo->lora_a[t]), grad_or_null(m, G, g, bo->lora_b[t]),
                  a->d_lora, dy, ldy, x, k->lora_u[t], m->params + bo->lora_a[t],
                  m->params + bo->lora_b[t], m->lora_scale, N, in, out, m->cfg.lora_r);
    if (drop && dx) {
        dropout_apply(m, a, l, t, a->lora_dxd, a->lora_dxd, N, in, T, rstep);
        for (long i = 0; i < (long)N * in; i++)
            dx[i] += a->lora_dxd[i];
    }
}

/* Worker w is past `stage` of the backward pass (gradsync.h): 0 the
 * heads, L - l block l, L + 1 everything. */
static void reached(GradSync *sync, int w, int stage)
{
    if (sync)
        gradsync_reached(sync, w, stage);
}

/* Backward over the rows of b (a view, after forward_rows on the same
 * view), accumulating weight gradients into G. inv_count is 1 / the
 * labelled rows of the WHOLE batch (the loss is the batch mean); lowest is
 * the lowest trainable group (see model_backward). */
static void backward_rows(const Model *m, Activations *a, const Batch *b, float *G,
                          float inv_count, int lowest, const float *d_out, GradSync *sync,
                          int worker)
{
    const ModelConfig *c = &m->cfg;
    const float *P = m->params;
    const ModelOffsets *o = &m->off;
    const int np = prompt_now(m), npre = prefix_now(m);
    int B = b->B, T = b->T + np, C = c->hidden, H = c->heads;
    int BT = B * T, ML = a->max_labels, L = c->layers;
    int pooler_group = 1 + L;
    const int *len = np ? a->len : b->len;
    float *dx = a->d_a, *d_res = a->d_b, *d_ctx = a->d_c;
    int cls = cls_only(m, T);
    if (d_out) {
        /* from the encoder's output (model_encode: every row) */
        memcpy(dx, d_out, (size_t)BT * C * sizeof(float));
        cls = 0;
        goto blocks;
    }

    /* a head's own pre_classifier trains with the head */
    int need_pooled = lowest <= pooler_group || c->head_pre;
    for (int r = 0; r < B; r++) {
        int K = c->n_labels[b->task[r]];
        float *dl = a->d_logits + (size_t)r * ML;
        zero(dl, (size_t)K);
        softmax_xent_backward(dl, a->probs + (size_t)r * ML, &b->label[r], 1, K, inv_count);
    }
    for (int r0 = 0, r1; r0 < B; r0 = r1) {
        int task = b->task[r0], K = c->n_labels[task];
        int hg = pooler_group + 1 + task;
        r1 = task_run_end(b, r0);
        linear_backward_ld(a->bw, need_pooled ? a->d_pool + (size_t)r0 * C : NULL, C,
                           grad_or_null(m, G, hg, o->head_w[task]),
                           grad_or_null(m, G, hg, o->head_b[task]),
                           a->d_logits + (size_t)r0 * ML, ML, a->pooled + (size_t)r0 * C, C,
                           P + o->head_w[task], r1 - r0, C, K, 0.0f);
    }
    if (!need_pooled)
        return;

    int need_cls = lowest < pooler_group;
    pool_backward(m, a, b, G, need_cls);
    reached(sync, worker, 0);
    if (!need_cls)
        return;

    if (!cls) {
        zero(dx, (size_t)BT * C);
        for (int r = 0; r < B; r++)
            memcpy(dx + (size_t)r * T * C, a->d_pool + (size_t)r * C,
                   (size_t)C * sizeof(float));
    }

blocks:
    for (int l = L - 1; l >= 0 && lowest <= l + 1; l--) {
        const BlockOffsets *bo = &o->block[l];
        BlockActs *k = &a->block[l];
        int g = 1 + l;
        const float *x_in = l > 0 ? a->block[l - 1].ln2 : a->emb_ln;
        int need_din = lowest <= l;

        if (cls && l == L - 1) {
            cls_block_backward(m, a, G, x_in, len, npre, need_din, B, T);
            reached(sync, worker, L - l);
            if (!need_din)
                return;
            continue;
        }

        /* d(res1) in dx: also d(x_in), by the residual */
        block_tail_backward(m, a, G, l, dx, dx, BT, T, 1);
        if (npre)
            attention_backward_prefix_set(a->d_qkv, grad_or_null(m, G, m->prefix_group, bo->prefix_k),
                                          grad_or_null(m, G, m->prefix_group, bo->prefix_v),
                                          d_ctx, k->qkv, k->att, len, P + bo->prefix_k,
                                          P + bo->prefix_v, npre, a->d_att, B, T, C, H);
        else
            attention_backward_set(a->d_qkv, d_ctx, k->qkv, k->att, len, a->d_att, B, T, C, H);
        /* the adapters read x_in's gradient (dx) before the base product adds to it */
        for (int t = LORA_QUERY; t <= LORA_VALUE; t++)
            lora_bwd(m, a, k, bo, G, l, t, need_din ? dx : NULL, a->d_qkv + t * C, 3 * C,
                     x_in, BT, T, 1);
        linear_backward(a->bw, need_din ? dx : NULL, grad_or_null(m, G, g, bo->qkv_w),
                        grad_or_null(m, G, g, bo->qkv_b), a->d_qkv, x_in,
                        P + bo->qkv_w, BT, C, 3 * C);
        reached(sync, worker, L - l);
        if (!need_din)
            return;
    }

    /* lowest == 0: the embeddings or the soft tokens train */
    layernorm_backward_set(d_res, grad_or_null(m, G, 0, o->ln_g), grad_or_null(m, G, 0, o->ln_b),
                           dx, a->emb, P + o->ln_g, a->emb_mean, a->emb_rstd, BT, C);
    if (np)
        embedding_backward_prompt(grad_or_null(m, G, 0, o->word), grad_or_null(m, G, 0, o->pos),
                                  c->type_vocab ? grad_or_null(m, G, 0, o->type) : NULL,
                                  grad_or_null(m, G, m->prompt_group, o->prompt), d_res, b->ids,
                                  b->types, np, B, b->T, C);
    else if (m->groups[0].trainable)
        embedding_backward(G + o->word, G + o->pos, c->type_vocab ? G + o->type : NULL, d_res,
                           b->ids, b->types, B, T, C);
}

/* ---- the step split across workers -------------------------------------- */

typedef struct {
    Model *m;
    const Batch *b;
    int n;                     /* workers with rows here (<= B) */
    int parts, first;          /* the batch's row parts over every rank's
                                * workers; this process's first */
    float inv_count;
    int lowest;
    int encode_only;           /* the encoder's output for every row, no heads */
    const float *d_out;        /* backward from d(encoder output) [BT, C] */
    GradSync *sync;            /* NULL, or the sum over ranks behind the pass */
    double loss[MODEL_MAX_THREADS];
    int counted[MODEL_MAX_THREADS];
} StepJob;

/* Part p of P owns rows [B p / P, B (p + 1) / P): contiguous, fixed for a
 * given B and P. Worker i of this process has part first + i; one process
 * of n workers is P = n, and ranks of n workers each split a batch as one
 * process of their n times as many would. */
static int part_start(const StepJob *j, long p)
{
    return (int)((long)j->b->B * (p < j->parts ? p : j->parts) / j->parts);
}

static int rows_of(const StepJob *j, int i, int *r1)
{
    *r1 = part_start(j, j->first + i + 1);
    return part_start(j, j->first + i);
}

static void forward_job(void *arg, int i, int nw)
{
    StepJob *j = arg;
    Activations v;
    Batch bv;
    int r1, r0;
    (void)nw;
    j->loss[i] = 0.0;
    j->counted[i] = 0;
    if (i >= j->n)
        return;
    r0 = rows_of(j, i, &r1);
    const ModelConfig *c = &j->m->cfg;
    act_view(&v, &j->m->act, c->layers, r0, j->b->T + prompt_now(j->m), c->hidden,
             c->intermediate, c->heads, c->lora_r, prefix_now(j->m), i, att_scratch(c));
    v.bw = bf16_worker(j->m->bf16, i);
    batch_view(&bv, j->b, r0, r1);
    forward_rows(j->m, &v, &bv, &j->loss[i], &j->counted[i], j->encode_only);
}

/* Gradient buffer of worker i: worker 0 accumulates straight into
 * m->grads, the others into their own buffer, zeroed here first (only the
 * trainable spans: frozen ones are never written). */
static float *worker_grads(Model *m, int i)
{
    return i == 0 ? m->grads : m->worker_grads[i - 1];
}

static void backward_job(void *arg, int i, int nw)
{
    StepJob *j = arg;
    Model *m = j->m;
    Activations v;
    Batch bv;
    int r1, r0;
    (void)nw;
    if (i >= j->n)
        return;
    float *G = worker_grads(m, i);
    if (i > 0)
        for (int g = 0; g < m->n_groups; g++)
            if (m->groups[g].trainable)
                zero(G + m->groups[g].offset, m->groups[g].numel);
    r0 = rows_of(j, i, &r1);
    const ModelConfig *c = &m->cfg;
    act_view(&v, &m->act, c->layers, r0, j->b->T + prompt_now(m), c->hidden, c->intermediate,
             c->heads, c->lora_r, prefix_now(m), i, att_scratch(c));
    v.bw = bf16_worker(m->bf16, i);
    batch_view(&bv, j->b, r0, r1);
    backward_rows(m, &v, &bv, G, j->inv_count, j->lowest,
                  j->d_out ? j->d_out + (size_t)r0 * (size_t)(j->b->T + prompt_now(m)) * c->hidden
                           : NULL,
                  j->sync, i);
    reached(j->sync, i, c->layers + 1);
}

/* m->grads += worker 1's + worker 2's + ..., in that order for every
 * element, so the sum does not depend on which thread adds which part;
 * each of the nw threads takes one contiguous share of every trainable
 * group. */
static void reduce_job(void *arg, int i, int nw)
{
    StepJob *j = arg;
    Model *m = j->m;
    for (int g = 0; g < m->n_groups; g++) {
        const ParamGroup *pg = &m->groups[g];
        if (!pg->trainable)
            continue;
        size_t lo = pg->numel * (size_t)i / (size_t)nw;
        size_t hi = pg->numel * (size_t)(i + 1) / (size_t)nw;
        float *restrict dst = m->grads + pg->offset;
        for (int w = 1; w < j->n; w++) {
            const float *restrict src = m->worker_grads[w - 1] + pg->offset;
            for (size_t k = lo; k < hi; k++)
                dst[k] += src[k];
        }
    }
}

static void job_init(StepJob *j, Model *m, const Batch *b)
{
    int n = workers_count(m->pool);
    const int ranks = m->dist ? m->dist->size : 1, rank = m->dist ? m->dist->rank : 0;
    memset(j, 0, sizeof *j);
    j->m = m;
    j->b = b;
    j->parts = n * ranks < b->B ? n * ranks : b->B > 0 ? b->B : 1;
    j->first = rank * n;
    j->n = j->parts - j->first < 0 ? 0 : j->parts - j->first < n ? j->parts - j->first : n;
    /* Workers calling a multithreaded OpenBLAS at once would queue on its
     * one thread pool; a later blas_set_threads (headless sets it after
     * loading a run) must not undo model_set_threads. A read of one int
     * when it is still 1. */
    if (n > 1 && blas_get_threads() != 1)
        blas_set_threads(1);
}

/* Across ranks: each one's loss and count summed, and its rows of the
 * predictions given to all, so that what reads them (an evaluation's
 * accuracy) sees the whole batch. A failure ends the job: a rank alone
 * cannot go on. */
static void combine_forward(Model *m, const StepJob *j, double *loss, int *counted)
{
    Dist *d = m->dist;
    MnError e;
    double v[2] = { *loss, (double)*counted };
    int *row0 = malloc(sizeof *row0 * (size_t)(d->size + 1));
    const int n = workers_count(m->pool);
    int rc = row0 ? dist_sum_doubles(d, v, 2, &e) : mn_fail(&e, "out of memory");
    for (int r = 0; rc == 0 && r <= d->size; r++)
        row0[r] = part_start(j, (long)r * n);
    if (rc == 0)
        rc = dist_gather_rows(d, m->act.probs, m->act.max_labels, row0, &e);
    free(row0);
    if (rc < 0) {
        fprintf(stderr, "mneme: rank %d: %s\n", d->rank, e.msg);
        dist_abort(d, 1);
    }
    *loss = v[0];
    *counted = (int)v[1];
}

/* Each worker refreshes a share of every matrix. */
static void bf16_sync_job(void *arg, int i, int n)
{
    Model *m = arg;
    for (int t = 0; t < m->n_tensors; t++) {
        const ParamTensor *pt = &m->tensors[t];
        if (pt->ndim != 2)
            continue;
        size_t lo = pt->numel * (size_t)i / (size_t)n;
        size_t hi = pt->numel * (size_t)(i + 1) / (size_t)n;
        bf16_refresh(m->bf16, pt->offset + lo, hi - lo);
    }
}

static void bf16_sync(Model *m)
{
    if (!m->bf16 || !m->bf16_stale)
        return;
    workers_run(m->pool, bf16_sync_job, m);
    m->bf16_stale = 0;
}

void model_params_changed(Model *m)
{
    m->bf16_stale = m->bf16 != NULL;
}

/* Several workers already take the cores: each one's products get one
 * thread; a single worker's get OpenMP's (0). */
static void bf16_threads(Model *m)
{
    if (m->bf16)
        bf16_set_primitive_threads(m->bf16, workers_count(m->pool) > 1 ? 1 : 0);
}

int model_set_precision(Model *m, int precision, MnError *e)
{
    if (precision == PRECISION_FP32) {
        bf16_free(m->bf16);
        m->bf16 = NULL;
        m->bf16_stale = 0;
        return 0;
    }
    if (m->bf16)
        return 0;
    Bf16Path path;
    if (bf16_path_from_env(&path, e) < 0 ||
        !(m->bf16 = bf16_create(path, m->params, m->n_params, e)))
        return -1;
    m->bf16_stale = 1;
    bf16_threads(m);
    return 0;
}

float model_forward(Model *m, const Batch *b)
{
    StepJob j;
    double loss = 0.0;
    int counted = 0;

    m->act.B = b->B;
    m->act.T = b->T;
    bf16_sync(m);
    job_init(&j, m, b);
    workers_run(m->pool, forward_job, &j);
    for (int i = 0; i < j.n; i++) {
        loss += j.loss[i];
        counted += j.counted[i];
    }
    if (m->dist && m->dist->size > 1)
        combine_forward(m, &j, &loss, &counted);
    return counted ? (float)(loss / counted) : 0.0f;
}

static void backward_from(Model *m, const Batch *b, float scale, const float *d_out);

void model_encode(Model *m, const Batch *b)
{
    StepJob j;
    m->act.B = b->B;
    m->act.T = b->T;
    bf16_sync(m);
    job_init(&j, m, b);
    j.encode_only = 1;
    workers_run(m->pool, forward_job, &j);
}

const float *model_encoded(const Model *m)
{
    return m->act.block[m->cfg.layers - 1].ln2;
}

void model_backward(Model *m, const Batch *b)
{
    model_backward_scaled(m, b, 1.0f);
}

void model_backward_encoded(Model *m, const Batch *b, const float *d_out)
{
    backward_from(m, b, 1.0f, d_out);
}

void model_backward_scaled(Model *m, const Batch *b, float scale)
{
    backward_from(m, b, scale, NULL);
}

/* The trainable groups' gradients summed over the ranks, runs of
 * adjacent trainable groups in one call; frozen ones are not sent. */
static void sum_over_ranks(Model *m)
{
    MnError e;
    for (int g = 0; g < m->n_groups;) {
        if (!m->groups[g].trainable) {
            g++;
            continue;
        }
        size_t start = m->groups[g].offset, end = start + m->groups[g].numel;
        for (g++; g < m->n_groups && m->groups[g].trainable && m->groups[g].offset == end; g++)
            end += m->groups[g].numel;
        if (dist_sum_floats(m->dist, m->grads + start, end - start, &e) < 0) {
            fprintf(stderr, "mneme: rank %d: %s\n", m->dist->rank, e.msg);
            dist_abort(m->dist, 1);
        }
    }
}

/* The stage of the backward pass after which group g's gradient is final
 * (see reached). */
static int group_stage(const Model *m, int g)
{
    const int L = m->cfg.layers;
    if (g >= 1 && g <= L)
        return L - (g - 1);
    if (m->groups[g].lora_layer >= 0)
        return L - m->groups[g].lora_layer;
    if (g == 1 + L || (g > 1 + L && g <= 1 + L + m->cfg.n_tasks))
        return 0;
    return L + 1;
}

/* A bucket smaller than this is sent with the next stage's when the two
 * are adjacent: each sum costs 2 (ranks - 1) messages' latency. */
#define BUCKET_MIN_FLOATS ((size_t)1 << 18)

/* The word embeddings' rows that can have a gradient in a pass over b:
 * its tokens, every rank's rows (each rank holds the whole batch), in
 * increasing order. */
static int batch_words(Model *m, const Batch *b)
{
    const int V = m->cfg.vocab;
    int n = 0;
    for (long i = 0; i < (long)b->B * b->T; i++) {
        int id = b->ids[i];
        if (id >= 0 && id < V && !m->word_seen[id]) {
            m->word_seen[id] = 1;
            n++;
        }
    }
    for (int id = 0, k = 0; id < V && k < n; id++)
        if (m->word_seen[id]) {
            m->word_seen[id] = 0;
            m->word_rows[k++] = id;
        }
    return n;
}

/* The trainable groups as buckets in stage order, adjacent ones of a
 * stage merged (and small ones with the next stage's); the embeddings
 * alone, with the word rows that can be nonzero when words (n_words >= 0). */
static int make_buckets(const Model *m, GradBucket *out, int n_words)
{
    int n = 0;
    for (int stage = 0; stage <= m->cfg.layers + 1; stage++)
        for (int g = 0; g < m->n_groups; g++) {
            const ParamGroup *pg = &m->groups[g];
            if (!pg->trainable || !pg->numel || group_stage(m, g) != stage)
                continue;
            if (g == 0 && n_words >= 0 && pg->offset == m->off.word) {
                out[n++] = (GradBucket){ pg->offset, pg->numel, stage, m->word_rows, n_words,
                                         m->cfg.vocab, (size_t)m->cfg.hidden };
                continue;
            }
            GradBucket *last = n ? &out[n - 1] : NULL;
            int mergeable = last && !last->rows &&
                            (last->stage == stage || last->numel < BUCKET_MIN_FLOATS);
            if (mergeable && last->offset + last->numel == pg->offset) {
                last->numel += pg->numel;
                last->stage = stage;
            } else if (mergeable && pg->offset + pg->numel == last->offset) {
                last->offset = pg->offset;
                last->numel += pg->numel;
                last->stage = stage;
            } else
                out[n++] = (GradBucket){ pg->offset, pg->numel, stage, NULL, 0, 0, 0 };
        }
    return n;
}

/* The pass with its sum over ranks behind it: the sum thread and the
 * buckets are made at the first pass. */
static int overlap_begin(Model *m, StepJob *j, int *n_buckets, MnError *e)
{
    if (!m->sync) {
        if (!(m->buckets = calloc((size_t)m->n_groups, sizeof *m->buckets)) ||
            !(m->word_seen = calloc((size_t)m->cfg.vocab, 1)) ||
            !(m->word_rows = calloc((size_t)m->cfg.vocab, sizeof *m->word_rows)))
            return mn_fail(e, "out of memory for the gradients' buckets");
        if (!(m->sync = gradsync_create(m->dist, e)))
            return -1;
    }
    /* only the batch's words have a gradient, unless a tied decoder's
     * comes with the encoder's (mlm.c: a pass from d_out) */
    const int sparse = m->groups[0].trainable && !j->d_out;
    *n_buckets = make_buckets(m, m->buckets, sparse ? batch_words(m, j->b) : -1);
    if (gradsync_begin(m->sync, m->grads, m->worker_grads, j->n, m->buckets, *n_buckets,
                       m->cfg.layers + 2, e) < 0)
        return -1;
    j->sync = m->sync;
    return 0;
}

static void backward_from(Model *m, const Batch *b, float scale, const float *d_out)
{
    StepJob j;
    int pooler_group = 1 + m->cfg.layers, counted = 0;

    /* Groups are ordered embeddings, layer.0 … layer.L-1, pooler: nothing
     * below the lowest trainable one needs an input gradient. */
    job_init(&j, m, b);
    j.lowest = pooler_group + 1;
    for (int g = 0; g <= pooler_group; g++)
        if (m->groups[g].trainable) {
            j.lowest = g;
            break;
        }
    /* An adapter in block l needs the gradient down to that block, as
     * block l's own weights would (while the adapters are on). */
    for (int g = pooler_group + 1; m->lora_scale != 0.0f && g < m->n_groups; g++) {
        int l = m->groups[g].lora_layer;
        if (l >= 0 && m->groups[g].trainable && 1 + l < j.lowest)
            j.lowest = 1 + l;
    }
    /* Soft tokens need the gradient down to the embedding LayerNorm's
     * input, prefixes down to block 0's attention. */
    if (m->virtual_on && m->prompt_group >= 0 && m->groups[m->prompt_group].trainable)
        j.lowest = 0;
    if (m->virtual_on && m->prefix_group >= 0 && m->groups[m->prefix_group].trainable &&
        j.lowest > 1)
        j.lowest = 1;
    if (b->label)
        for (int r = 0; r < b->B; r++)
            counted += b->label[r] >= 0;
    if (!counted && !d_out)
        return;
    j.inv_count = counted ? scale / (float)counted : 0.0f;
    j.d_out = d_out;
    Dist *d = m->dist;
    if (d && d->size > 1 && d->overlap) {
        MnError e;
        int n_buckets;
        if (overlap_begin(m, &j, &n_buckets, &e) < 0) {
            fprintf(stderr, "mneme: rank %d: %s\n", d->rank, e.msg);
            dist_abort(d, 1);
        }
        workers_run(m->pool, backward_job, &j);
        d->wait_s += gradsync_end(m->sync);
        return;
    }
    workers_run(m->pool, backward_job, &j);
    if (j.n > 1)
        workers_run(m->pool, reduce_job, &j);
    if (d && d->size > 1) {
        double before = d->reduce_s;
        sum_over_ranks(m);
        d->wait_s += d->reduce_s - before;
    }
}

int model_set_threads(Model *m, int n, MnError *e)
{
    if (n < 1)
        n = 1;
    if (n > MODEL_MAX_THREADS)
        n = MODEL_MAX_THREADS;
    if (n == workers_count(m->pool))
        return 0;
    free_pool(m);
    bf16_threads(m);
    if (n == 1)
        return 0;
    int failed = 0;
    m->worker_grads = calloc((size_t)n, sizeof *m->worker_grads); /* NULL-ended */
    if (!m->worker_grads)
        failed = 1;
    else
        for (int i = 0; i < n - 1 && !failed; i++)
            m->worker_grads[i] = falloc(m->n_params, &failed);
    /* one attention scratch per worker */
    if (!failed) {
        float *att = falloc((size_t)n * (size_t)att_scratch(&m->cfg), &failed);
        if (att) {
            free(m->act.d_att);
            m->act.d_att = att;
        }
    }
    if (!failed)
        m->pool = workers_create(n, e);
    if (failed || !m->pool) {
        free_pool(m);
        return failed ? mn_fail(e, "out of memory for %d workers' gradients", n) : -1;
    }
    /* Each worker's products run on its own thread: OpenBLAS's threads
     * would only compete with the workers for the same cores, and so
     * would oneDNN's. */
    blas_set_threads(1);
    bf16_threads(m);
    return 0;
}

void model_local_rows(const Model *m, int B, int *r0, int *r1)
{
    Batch b;
    StepJob j;
    memset(&b, 0, sizeof b);
    b.B = B;
    job_init(&j, (Model *)m, &b);
    *r0 = part_start(&j, j.first);
    *r1 = part_start(&j, j.first + j.n);
}

int model_threads(const Model *m)
{
    return workers_count(m->pool);
}

void model_run_parallel(Model *m, void (*fn)(void *arg, int i, int n), void *arg)
{
    workers_run(m->pool, fn, arg);
}

static void zero_job(void *arg, int i, int n)
{
    Model *m = arg;
    size_t lo = m->n_params * (size_t)i / (size_t)n;
    size_t hi = m->n_params * (size_t)(i + 1) / (size_t)n;
    zero(m->grads + lo, hi - lo);
}

void model_zero_grads(Model *m)
{
    model_run_parallel(m, zero_job, m);
}

int model_cls_last_block(const Model *m, int T)
{
    return cls_only(m, T + prompt_now(m));
}

/* One block whose first nq rows of each sequence query (nq = T: all). */
static double block_flops(const ModelConfig *c, int B, int T, int nq)
{
    double BT = (double)B * T, BQ = (double)B * nq, C = c->hidden, I = c->intermediate;
    return 2.0 * BT * C * (2.0 * C)              /* k, v */
         + 2.0 * BQ * C * C                      /* q */
         + 2.0 * BQ * C * C                      /* attention output */
         + 2.0 * 2.0 * BQ * C * I                /* intermediate, output */
         + 2.0 * 2.0 * BQ * (double)T * C;       /* QK^T, PV */
}

double model_step_flops(const ModelConfig *c, int B, int T, int cls_last)
{
    double C = c->hidden;
    double forward = (c->layers - 1) * block_flops(c, B, T, T)
                   + block_flops(c, B, T, cls_last ? 1 : T) + 2.0 * B * C * C;
    /* The backward does two products for each forward one. */
    return 3.0 * forward;
}
