#include "strategy.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prompt.h"

static int parse_layer_range(const char *tok, int n_layers, int *lo, int *hi, char *why, size_t n)
{
    char *end;
    errno = 0;
    long a = strtol(tok, &end, 10), b = a;
    if (end == tok || errno)
        goto bad;
    if (*end == '-') {
        const char *q = end + 1;
        b = strtol(q, &end, 10);
        if (end == q || errno)
            goto bad;
    }
    if (*end)
        goto bad;
    if (a >= 0 && b < a) {
        snprintf(why, n, "layer.%s: a range goes upward (layer.%ld-%ld)", tok, b, a);
        return -1;
    }
    if (n_layers >= 0 && (a < 0 || b >= n_layers)) {
        snprintf(why, n, "layer.%s: expected layers within 0..%d", tok, n_layers - 1);
        return -1;
    }
    *lo = (int)a;
    *hi = (int)b;
    return 0;
bad:
    snprintf(why, n, "layer.%s: expected layer.N or layer.N-M", tok);
    return -1;
}

int parts_parse(const char *spec, int n_layers, unsigned char *frozen, char *why, size_t n)
{
    char buf[512];
    if (strlen(spec) >= sizeof buf) {
        snprintf(why, n, "the part list is too long");
        return -1;
    }
    snprintf(buf, sizeof buf, "%s", spec);
    if (frozen)
        memset(frozen, 0, (size_t)n_layers + 2);
    for (char *save = NULL, *tok = strtok_r(buf, " ,\t", &save); tok;
         tok = strtok_r(NULL, " ,\t", &save)) {
        int lo, hi;
        if (strcmp(tok, "embeddings") == 0)
            lo = hi = -1;
        else if (strcmp(tok, "pooler") == 0)
            lo = hi = n_layers;
        else if (strcmp(tok, "all") == 0)
            lo = -1, hi = n_layers;
        else if (strncmp(tok, "layer.", 6) == 0) {
            if (parse_layer_range(tok + 6, n_layers, &lo, &hi, why, n) < 0)
                return -1;
        } else {
            snprintf(why, n, "unknown part \"%s\"; expected embeddings, layer.N, layer.N-M, "
                     "pooler or all", tok);
            return -1;
        }
        if (frozen)
            for (int i = lo; i <= hi; i++)
                frozen[i + 1] = 1;
    }
    return 0;
}

void strategy_apply(Model *m, const Experiment *x)
{
    int L = m->cfg.layers;
    unsigned char frozen[MODEL_MAX_LAYERS + 2];
    char why[256];
    double d = x->finetune.layer_decay;
    /* Validated with the experiment; a failure here leaves nothing frozen. */
    if (parts_parse(x->finetune.freeze.parts, L, frozen, why, sizeof why) < 0)
        memset(frozen, 0, sizeof frozen);
    int k = x->finetune.freeze.keep_last;
    if (k >= 0) {
        frozen[0] = 1;
        for (int i = 0; i < L - k; i++)
            frozen[1 + i] = 1;
    }
    for (int g = 0; g < m->n_groups; g++) {
        ParamGroup *pg = &m->groups[g];
        pg->trainable = g <= L + 1 ? !frozen[g] : 1;
        /* ELECTRA-style: one factor d per block from the top, the
         * embeddings one below the first block, pooler and heads at lr. */
        pg->lr_scale = g == 0 ? (float)pow(d, L + 1) : g <= L ? (float)pow(d, L - (g - 1)) : 1.0f;
    }
    m->groups[model_find_group(m, "classifier.original")].trainable = 0;
    /* LoRA: the base (embeddings, blocks, pooler) frozen, the adapters
     * train at their block's rate, the new head at lr. Without method
     * lora, adapters (if the model has them) stay as they are. */
    int lora = strcmp(x->finetune.method, "lora") == 0;
    for (int g = 0; g < m->n_groups; g++) {
        ParamGroup *pg = &m->groups[g];
        if (pg->lora_layer >= 0) {
            pg->trainable = lora;
            pg->lr_scale = (float)pow(d, L - pg->lora_layer);
        } else if (lora && g <= L + 1)
            pg->trainable = 0;
    }
    /* Prompt and prefix tuning: the base frozen, the soft tokens or
     * prefixes (switched on) and the new head train, at lr. */
    int prompt = strcmp(x->finetune.method, "prompt") == 0;
    int prefix = strcmp(x->finetune.method, "prefix") == 0;
    for (int g = 0; g <= L + 1 && (prompt || prefix); g++)
        m->groups[g].trainable = 0;
    if (m->prompt_group >= 0) {
        m->groups[m->prompt_group].trainable = prompt;
        m->groups[m->prompt_group].lr_scale = 1.0f;
    }
    if (m->prefix_group >= 0) {
        m->groups[m->prefix_group].trainable = prefix;
        m->groups[m->prefix_group].lr_scale = 1.0f;
    }
    if (prompt || prefix)
        prompt_set_enabled(m, 1);
}

size_t strategy_trainable_params(const Model *m)
{
    size_t n = 0;
    for (int g = 0; g < m->n_groups; g++)
        if (m->groups[g].trainable)
            for (int t = m->groups[g].first; t < m->groups[g].first + m->groups[g].count; t++)
                n += m->tensors[t].numel;
    return n;
}
