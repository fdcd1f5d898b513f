#include "lora.h"

#include <cblas.h>
#include <stdio.h>
#include <string.h>

/* OpenBLAS's cblas.h includes <complex.h>, whose I is not ours. */
#undef I

/* A block module's name below bert.encoder.layer.<i>. */
static const char *const module_name[LORA_MODULES] = {
    "attention.self.query", "attention.self.key", "attention.self.value",
    "attention.output.dense", "intermediate.dense", "output.dense",
};

/* The same modules under DistilBERT's names (below
 * distilbert.transformer.layer.<i>), which PEFT users write as targets. */
static const char *const distil_module_name[LORA_MODULES] = {
    "attention.q_lin", "attention.k_lin", "attention.v_lin",
    "attention.out_lin", "ffn.lin1", "ffn.lin2",
};

/* PEFT: a target matches a module whose name equals it or ends in "." + it. */
static int matches(const char *module, const char *target)
{
    size_t lm = strlen(module), lt = strlen(target);
    if (lt > lm)
        return 0;
    if (strcmp(module + lm - lt, target) != 0)
        return 0;
    return lt == lm || module[lm - lt - 1] == '.';
}

int lora_parse_targets(const char *spec, unsigned *mask, char *why, size_t n)
{
    char buf[256];
    unsigned got = 0;
    if (strlen(spec) >= sizeof buf) {
        snprintf(why, n, "the target list is too long");
        return -1;
    }
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *save = NULL, *tok = strtok_r(buf, " ,\t", &save); tok;
         tok = strtok_r(NULL, " ,\t", &save)) {
        unsigned hit = 0;
        for (int k = 0; k < LORA_MODULES; k++)
            if (matches(module_name[k], tok) || matches(distil_module_name[k], tok))
                hit |= 1u << k;
        if (!hit) {
            snprintf(why, n, "unknown target module \"%s\"; expected query, key, value, "
                     "attention.output.dense, intermediate.dense or output.dense (DistilBERT: "
                     "q_lin, k_lin, v_lin, out_lin, lin1, lin2)", tok);
            return -1;
        }
        got |= hit;
    }
    if (!got) {
        snprintf(why, n, "no target modules; expected e.g. \"query value\"");
        return -1;
    }
    *mask = got;
    return 0;
}

int lora_present(const Model *m)
{
    return m->cfg.lora_r > 0;
}

int lora_enabled(const Model *m)
{
    return m->lora_scale != 0.0f;
}

int lora_set_enabled(Model *m, int on)
{
    int was = lora_enabled(m);
    if (lora_present(m))
        m->lora_scale = on ? m->cfg.lora_alpha / (float)m->cfg.lora_r : 0.0f;
    return was;
}

void lora_merge(Model *m)
{
    const ModelConfig *c = &m->cfg;
    int C = c->hidden, I = c->intermediate, r = c->lora_r;
    if (!lora_present(m))
        return;
    float s = c->lora_alpha / (float)r;
    for (int l = 0; l < c->layers; l++) {
        const BlockOffsets *bo = &m->off.block[l];
        for (int t = 0; t < LORA_MODULES; t++) {
            if (!(c->lora_targets & (1u << t)))
                continue;
            int in = t == LORA_OUTPUT ? I : C, out = t == LORA_INTER ? I : C;
            size_t w = t <= LORA_VALUE ? bo->qkv_w + (size_t)t * C * C :
                       t == LORA_ATTN_OUT ? bo->attn_out_w :
                       t == LORA_INTER ? bo->inter_w : bo->out_w;
            float *B = m->params + bo->lora_b[t];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out, in, r, s, B, r,
                        m->params + bo->lora_a[t], in, 1.0f, m->params + w, in);
            memset(B, 0, (size_t)out * r * sizeof(float));
        }
    }
    model_params_changed(m);
}
