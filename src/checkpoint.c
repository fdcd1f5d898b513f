#include "checkpoint.h"

#include "layers.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NEW_HEAD_PREFIX "classifier.new."

static void fmt_hex(char *buf, size_t n, double v)
{
    snprintf(buf, n, "%a", v);
}

static int parse_double(const char *s, double *v)
{
    char *end;
    if (!s)
        return -1;
    errno = 0;
    *v = strtod(s, &end);
    return (errno || end == s || *end) ? -1 : 0;
}

static int parse_long(const char *s, long *v)
{
    char *end;
    if (!s)
        return -1;
    errno = 0;
    *v = strtol(s, &end, 10);
    return (errno || end == s || *end) ? -1 : 0;
}

static char *model_json(const Model *m, const LabelSet *labels)
{
    const ModelConfig *c = &m->cfg;
    json_t *o = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i}",
                          "vocab", c->vocab, "hidden", c->hidden, "layers", c->layers,
                          "heads", c->heads, "intermediate", c->intermediate,
                          "max_len", c->max_len, "type_vocab", c->type_vocab);
    json_t *tasks = json_array();
    for (int k = 0; k < c->n_tasks; k++) {
        json_t *names = json_array();
        for (int i = 0; i < labels[k].n_labels; i++)
            json_array_append_new(names, json_string(labels[k].names[i]));
        json_array_append_new(tasks, json_pack("{s:s, s:o}", "name", c->task_name[k],
                                               "labels", names));
    }
    json_object_set_new(o, "tasks", tasks);
    /* An imported model's shape beyond the byte-level one; absent in
     * older checkpoints, which are all BERT-shaped. */
    if (c->max_positions != c->max_len || c->act != ACT_GELU || c->head_pre ||
        c->arch != ARCH_BERT || c->ln_eps != LAYERNORM_EPS) {
        json_object_set_new(o, "max_positions", json_integer(c->max_positions));
        json_object_set_new(o, "act", json_integer(c->act));
        json_object_set_new(o, "ln_eps", json_real((double)c->ln_eps));
        json_object_set_new(o, "head_pre", json_integer(c->head_pre));
        json_object_set_new(o, "arch", json_integer(c->arch));
    }
    if (c->lora_r > 0)
        json_object_set_new(o, "lora", json_pack("{s:i, s:f, s:i, s:f}", "r", c->lora_r, "alpha",
                                                 (double)c->lora_alpha, "targets",
                                                 (int)c->lora_targets, "dropout",
                                                 (double)c->lora_dropout));
    if (c->prompt_tokens > 0)
        json_object_set_new(o, "prompt", json_pack("{s:i}", "tokens", c->prompt_tokens));
    if (c->prefix_tokens > 0)
        json_object_set_new(o, "prefix", json_pack("{s:i}", "tokens", c->prefix_tokens));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

int checkpoint_save(const char *path, const Model *m, const AdamW *opt,
                    const RunStateRecord *st, const LabelSet *labels, MnError *e)
{
    int per = opt ? 3 : 1, n = 0, rc;
    StTensorOut *t = calloc((size_t)m->n_tensors * per, sizeof *t);
    char (*names)[PARAM_NAME_MAX + 32] = calloc((size_t)m->n_tensors * per, sizeof *names);
    char *mjson = model_json(m, labels);
    char step[32], epoch[32], cursor[32], rng[32], lsum[64], lcount[32], elapsed[64], ft_s[64];
    char repoch[32], rcursor[32], evlines[32], lambda[64], lr_over[64], peak[64];
    char groups[CHECKPOINT_MAX_GROUPS * 40] = "";
    char *group_t = NULL;
    char *recent = malloc((size_t)CHECKPOINT_RECENT_LOSSES * 24 + 1);
    if (!t || !names || !mjson || !recent) {
        rc = mn_fail(e, "%s: out of memory", path);
        goto out;
    }
    for (int pass = 0; pass < per; pass++)
        for (int i = 0; i < m->n_tensors; i++) {
            const ParamTensor *pt = &m->tensors[i];
            const float *base = pass == 0 ? m->params : pass == 1 ? opt->m : opt->v;
            const char *prefix = pass == 0 ? "" : pass == 1 ? "optimizer.exp_avg." : "optimizer.exp_avg_sq.";
            snprintf(names[n], sizeof names[n], "%s%s", prefix, pt->name);
            t[n].name = names[n];
            t[n].ndim = pt->ndim;
            t[n].shape[0] = pt->shape[0];
            t[n].shape[1] = pt->shape[1];
            t[n].data = base + pt->offset;
            n++;
        }
    snprintf(step, sizeof step, "%ld", st->step);
    snprintf(epoch, sizeof epoch, "%d", st->sampler_epoch);
    snprintf(cursor, sizeof cursor, "%d", st->sampler_cursor);
    snprintf(rng, sizeof rng, "%llu", st->rng_state);
    snprintf(repoch, sizeof repoch, "%d", st->replay_epoch);
    snprintf(rcursor, sizeof rcursor, "%d", st->replay_cursor);
    snprintf(evlines, sizeof evlines, "%ld", st->events_lines);
    fmt_hex(lambda, sizeof lambda, st->ewc_lambda);
    fmt_hex(peak, sizeof peak, st->lr_peak);
    if (st->lr_override)
        fmt_hex(lr_over, sizeof lr_over, st->lr);
    else
        lr_over[0] = 0;
    /* "trainable:scale" per group, scale in hex so it comes back exact */
    for (int g = 0, used = 0; g < m->n_groups; g++)
        used += snprintf(groups + used, sizeof groups - (size_t)used, "%s%d:%a", g ? "," : "",
                         m->groups[g].trainable, (double)m->groups[g].lr_scale);
    recent[0] = 0;
    for (int i = 0, used = 0; i < st->n_recent && i < CHECKPOINT_RECENT_LOSSES; i++)
        used += snprintf(recent + used, 25, "%s%a", i ? "," : "", (double)st->recent[i]);
    fmt_hex(lsum, sizeof lsum, st->loss_sum);
    snprintf(lcount, sizeof lcount, "%ld", st->loss_count);
    fmt_hex(elapsed, sizeof elapsed, st->elapsed_s);
    fmt_hex(ft_s, sizeof ft_s, st->finetune_s);
    if (opt) {
        size_t cap = (size_t)opt->n_groups * 24 + 1, len = 0;
        group_t = malloc(cap);
        if (!group_t) {
            rc = mn_fail(e, "%s: out of memory", path);
            goto out;
        }
        group_t[0] = 0;
        for (int g = 0; g < opt->n_groups; g++)
            len += (size_t)snprintf(group_t + len, cap - len, "%s%ld", g ? "," : "", opt->group_t[g]);
    }
    StMeta meta[] = {
        { "format", "pt" },
        { "mneme.format", CHECKPOINT_FORMAT },
        { "mneme.model", mjson },
        { "mneme.phase", st->phase },
        { "mneme.step", step },
        { "mneme.sampler_epoch", epoch },
        { "mneme.sampler_cursor", cursor },
        { "mneme.rng", rng },
        { "mneme.replay_epoch", repoch },
        { "mneme.replay_cursor", rcursor },
        { "mneme.events_lines", evlines },
        { "mneme.ewc_lambda", lambda },
        { "mneme.lr_peak", peak },
        { "mneme.lr_override", lr_over },
        { "mneme.groups", groups },
        { "mneme.loss_sum", lsum },
        { "mneme.loss_count", lcount },
        { "mneme.elapsed_s", elapsed },
        { "mneme.finetune_s", ft_s },
        { "mneme.adam_group_steps", group_t ? group_t : "" },
        { "mneme.policy_params", st->policy_params },
        { "mneme.metrics", st->metrics ? st->metrics : "" },
        { "mneme.recent_losses", recent },
    };
    rc = safetensors_write(path, t, n, meta, (int)(sizeof meta / sizeof meta[0]), e);
out:
    free(t);
    free(names);
    free(mjson);
    free(group_t);
    free(recent);
    return rc;
}

int checkpoint_export(const char *path, const Model *m, const LabelSet *labels, MnError *e)
{
    StTensorOut *t = calloc((size_t)m->n_tensors, sizeof *t);
    Model plain = *m;
    int n = 0, rc;
    if (!t)
        return mn_fail(e, "%s: out of memory", path);
    /* Described as the plain model it now is: no adapter tensors follow. */
    plain.cfg.lora_r = 0;
    plain.cfg.lora_targets = 0;
    char *mjson = model_json(&plain, labels);
    for (int i = 0; i < m->n_tensors; i++) {
        const ParamTensor *pt = &m->tensors[i];
        if (strstr(pt->name, ".lora_"))
            continue;
        t[n].name = pt->name;
        t[n].ndim = pt->ndim;
        t[n].shape[0] = pt->shape[0];
        t[n].shape[1] = pt->shape[1];
        t[n].data = m->params + pt->offset;
        n++;
    }
    StMeta meta[] = { { "format", "pt" }, { "mneme.format", CHECKPOINT_FORMAT },
                      { "mneme.model", mjson ? mjson : "" }, { "mneme.content", "weights for export" } };
    rc = mjson ? safetensors_write(path, t, n, meta, 4, e) : mn_fail(e, "%s: out of memory", path);
    free(mjson);
    free(t);
    return rc;
}

static int json_int(json_t *o, const char *key, int *v)
{
    json_t *x = json_object_get(o, key);
    /* out of int's range is malformed, not a value cut to its low bits */
    if (!json_is_integer(x) || json_integer_value(x) < INT_MIN || json_integer_value(x) > INT_MAX)
        return -1;
    *v = (int)json_integer_value(x);
    return 0;
}

int checkpoint_read_config(const StFile *f, ModelConfig *cfg, LabelSet *labels, MnError *e)
{
    const char *s = safetensors_meta(f, "mneme.model");
    json_error_t je;
    json_t *o, *tasks;
    memset(cfg, 0, sizeof *cfg);
    if (!s)
        return mn_fail(e, "not a mneme checkpoint: no mneme.model in its metadata");
    o = json_loads(s, 0, &je);
    if (!o)
        return mn_fail(e, "mneme.model metadata is not valid JSON: %s", je.text);
    tasks = json_object_get(o, "tasks");
    if (json_int(o, "vocab", &cfg->vocab) || json_int(o, "hidden", &cfg->hidden) ||
        json_int(o, "layers", &cfg->layers) || json_int(o, "heads", &cfg->heads) ||
        json_int(o, "intermediate", &cfg->intermediate) ||
        json_int(o, "max_len", &cfg->max_len) || json_int(o, "type_vocab", &cfg->type_vocab) ||
        !json_is_array(tasks) || json_array_size(tasks) < 1 ||
        json_array_size(tasks) > MODEL_MAX_TASKS) {
        json_decref(o);
        return mn_fail(e, "mneme.model metadata lacks a field or has the wrong type");
    }
    cfg->max_positions = cfg->max_len;
    if (json_object_get(o, "max_positions")) {
        json_t *eps = json_object_get(o, "ln_eps");
        if (json_int(o, "max_positions", &cfg->max_positions) || json_int(o, "act", &cfg->act) ||
            json_int(o, "head_pre", &cfg->head_pre) || json_int(o, "arch", &cfg->arch) ||
            !json_is_number(eps) || cfg->act < ACT_GELU || cfg->act > ACT_GELU_TANH ||
            cfg->arch < ARCH_BERT || cfg->arch > ARCH_DISTILBERT) {
            json_decref(o);
            return mn_fail(e, "mneme.model metadata: the architecture fields are malformed");
        }
        cfg->ln_eps = (float)json_number_value(eps);
    }
    json_t *lora = json_object_get(o, "lora");
    if (json_is_object(lora)) {
        int targets = 0;
        if (json_int(lora, "r", &cfg->lora_r) || json_int(lora, "targets", &targets) ||
            !json_is_number(json_object_get(lora, "alpha"))) {
            json_decref(o);
            return mn_fail(e, "mneme.model metadata: the lora entry is malformed");
        }
        cfg->lora_alpha = (float)json_number_value(json_object_get(lora, "alpha"));
        /* absent in checkpoints from before it was recorded */
        cfg->lora_dropout = (float)json_number_value(json_object_get(lora, "dropout"));
        cfg->lora_targets = (unsigned)targets;
    }
    static const char *const virt[2] = { "prompt", "prefix" };
    for (int v = 0; v < 2; v++) {
        json_t *vo = json_object_get(o, virt[v]);
        if (!vo)
            continue;
        if (!json_is_object(vo) || json_int(vo, "tokens", v ? &cfg->prefix_tokens : &cfg->prompt_tokens)) {
            json_decref(o);
            return mn_fail(e, "mneme.model metadata: the %s entry is malformed", virt[v]);
        }
    }
    /* before anything is sized by them */
    const struct { const char *name; int v, lo, hi; } range[] = {
        { "vocab", cfg->vocab, 5, 1 << 24 }, { "hidden", cfg->hidden, 1, 1 << 16 },
        { "layers", cfg->layers, 1, MODEL_MAX_LAYERS }, { "heads", cfg->heads, 1, 1 << 12 },
        { "intermediate", cfg->intermediate, 1, 1 << 20 }, { "max_len", cfg->max_len, 1, 1 << 16 },
        { "max_positions", cfg->max_positions, cfg->max_len, 1 << 20 },
        { "type_vocab", cfg->type_vocab, 0, 1 << 10 }, { "head_pre", cfg->head_pre, 0, 1 },
        { "lora.r", cfg->lora_r, 0, 1 << 12 },
        { "prompt.tokens", cfg->prompt_tokens, 0, MODEL_MAX_VIRTUAL },
        { "prefix.tokens", cfg->prefix_tokens, 0, MODEL_MAX_VIRTUAL },
    };
    for (size_t i = 0; i < sizeof range / sizeof range[0]; i++)
        if (range[i].v < range[i].lo || range[i].v > range[i].hi) {
            json_decref(o);
            return mn_fail(e, "mneme.model metadata: %s is %d, outside %d..%d", range[i].name,
                           range[i].v, range[i].lo, range[i].hi);
        }
    if (cfg->ln_eps != 0.0f && !(cfg->ln_eps > 0.0f && cfg->ln_eps < 1.0f)) {
        json_decref(o);
        return mn_fail(e, "mneme.model metadata: ln_eps %g is outside (0, 1)", (double)cfg->ln_eps);
    }
    if (cfg->lora_r > 0 && !(cfg->lora_alpha > 0.0f && cfg->lora_alpha < 1e6f &&
                             cfg->lora_dropout >= 0.0f && cfg->lora_dropout < 1.0f)) {
        json_decref(o);
        return mn_fail(e, "mneme.model metadata: lora alpha or dropout out of range");
    }
    cfg->n_tasks = (int)json_array_size(tasks);
    for (int k = 0; k < cfg->n_tasks; k++) {
        json_t *tk = json_array_get(tasks, (size_t)k);
        json_t *name = json_object_get(tk, "name"), *names = json_object_get(tk, "labels");
        if (!json_is_string(name) || !json_is_array(names) || json_array_size(names) < 1 ||
            json_array_size(names) > MAX_LABELS) {
            json_decref(o);
            return mn_fail(e, "mneme.model metadata: task %d is malformed", k);
        }
        snprintf(cfg->task_name[k], TASK_NAME_MAX, "%s", json_string_value(name));
        cfg->n_labels[k] = (int)json_array_size(names);
        if (labels) {
            labels[k].n_labels = cfg->n_labels[k];
            for (int i = 0; i < cfg->n_labels[k]; i++) {
                json_t *l = json_array_get(names, (size_t)i);
                snprintf(labels[k].names[i], LABEL_NAME_MAX, "%s",
                         json_is_string(l) ? json_string_value(l) : "?");
            }
        }
    }
    json_decref(o);
    return 0;
}

static int load_tensor_set(const StFile *f, const Model *m, float *base,
                           const char *prefix, int optional_new_head, MnError *e)
{
    char name[PARAM_NAME_MAX + 32];
    for (int i = 0; i < m->n_tensors; i++) {
        const ParamTensor *pt = &m->tensors[i];
        int64_t shape[2] = { pt->shape[0], pt->shape[1] };
        snprintf(name, sizeof name, "%s%s", prefix, pt->name);
        /* A base checkpoint need not have the new head or the adapters:
         * they keep their initialisation. */
        if (optional_new_head && (strncmp(pt->name, NEW_HEAD_PREFIX, strlen(NEW_HEAD_PREFIX)) == 0 ||
                                  strstr(pt->name, ".lora_") ||
                                  strncmp(pt->name, "prompt_encoder.", 15) == 0 ||
                                  strncmp(pt->name, "prefix.", 7) == 0)) {
            const StTensorInfo *ti = safetensors_find(f, name);
            if (!ti || ti->ndim != pt->ndim || ti->shape[0] != shape[0] ||
                (pt->ndim == 2 && ti->shape[1] != shape[1]))
                continue;
        }
        if (!safetensors_find(f, name))
            return mn_fail(e, "tensor %s is missing", name);
        if (safetensors_get_f32(f, name, base + pt->offset, pt->ndim, shape, e) < 0)
            return -1;
    }
    return 0;
}

/* Run state is checked field by field: a file without mneme's header
 * checksum (or one made by hand) must not slip an absurd step, cursor or
 * rate past resume into arithmetic that overflows. */
#define MAX_STEP 1000000000000L            /* 1e12 optimizer steps */
#define MAX_POSITION (1 << 30)             /* epochs, cursors */

static int meta_long(const StFile *f, const char *key, long lo, long hi, int optional, long *v,
                     MnError *e)
{
    const char *s = safetensors_meta(f, key);
    if (!s && optional)
        return 0;
    if (parse_long(s, v) < 0)
        return mn_fail(e, "metadata %s is %s", key, s ? "not an integer" : "missing");
    if (*v < lo || *v > hi)
        return mn_fail(e, "metadata %s is %ld, outside %ld..%ld", key, *v, lo, hi);
    return 0;
}

static int meta_double(const StFile *f, const char *key, double lo, double hi, int optional,
                       double *v, MnError *e)
{
    const char *s = safetensors_meta(f, key);
    if (!s && optional)
        return 0;
    if (parse_double(s, v) < 0)
        return mn_fail(e, "metadata %s is %s", key, s ? "not a number" : "missing");
    if (!(*v >= lo && *v <= hi))
        return mn_fail(e, "metadata %s is %g, outside %g..%g", key, *v, lo, hi);
    return 0;
}

/* "trainable:scale,..." for each of the model's n groups. */
static int parse_groups(const char *gs, int n, RunStateRecord *st, MnError *e)
{
    if (!gs || !*gs)
        return 0;           /* from before groups were recorded */
    if (n > CHECKPOINT_MAX_GROUPS)
        return mn_fail(e, "metadata mneme.groups: the model has too many groups");
    for (int g = 0; g < n; g++) {
        char *end;
        errno = 0;
        long t = strtol(gs, &end, 10);
        if (end == gs || *end != ':' || (t != 0 && t != 1))
            return mn_fail(e, "metadata mneme.groups is malformed at group %d (expected 0 or 1, "
                           "then ':' and a multiplier)", g);
        double scale = strtod(end + 1, &end);
        if (errno || !(scale >= 0.0 && scale <= 1e6))
            return mn_fail(e, "metadata mneme.groups: group %d's multiplier is outside 0..1e6", g);
        if ((g + 1 < n && *end != ',') || (g + 1 == n && *end))
            return mn_fail(e, "metadata mneme.groups lists %s groups than the model's %d",
                           *end ? "more" : "fewer", n);
        st->trainable[g] = (unsigned char)t;
        st->lr_scale[g] = (float)scale;
        gs = end + 1;
    }
    st->n_groups = n;
    st->has_groups = 1;
    return 0;
}

static int load_run_state(const StFile *f, const Model *m, RunStateRecord *st, MnError *e)
{
    const char *phase = safetensors_meta(f, "mneme.phase");
    long v;
    memset(st, 0, sizeof *st);
    if (!phase || strlen(phase) >= sizeof st->phase)
        return mn_fail(e, "metadata mneme.phase is missing");
    snprintf(st->phase, sizeof st->phase, "%s", phase);
    const char *rng = safetensors_meta(f, "mneme.rng");
    char *end;
    errno = 0;
    st->rng_state = rng ? strtoull(rng, &end, 10) : 0;
    if (!rng || errno || end == rng || *end || rng[0] == '-')
        return mn_fail(e, "metadata mneme.rng is missing or not an unsigned 64-bit integer");
    if (meta_long(f, "mneme.step", 0, MAX_STEP, 0, &st->step, e) < 0 ||
        meta_long(f, "mneme.loss_count", 0, MAX_STEP, 0, &st->loss_count, e) < 0 ||
        meta_double(f, "mneme.loss_sum", -1e300, 1e300, 0, &st->loss_sum, e) < 0 ||
        meta_double(f, "mneme.elapsed_s", 0.0, 1e12, 0, &st->elapsed_s, e) < 0 ||
        meta_double(f, "mneme.finetune_s", 0.0, 1e12, 1, &st->finetune_s, e) < 0 ||
        meta_long(f, "mneme.events_lines", 0, MAX_STEP, 1, &st->events_lines, e) < 0 ||
        meta_double(f, "mneme.ewc_lambda", 0.0, 1e12, 1, &st->ewc_lambda, e) < 0 ||
        meta_double(f, "mneme.lr_peak", 0.0, 10.0, 1, &st->lr_peak, e) < 0)
        return -1;
    if (meta_long(f, "mneme.sampler_epoch", 0, MAX_POSITION, 0, &v, e) < 0)
        return -1;
    st->sampler_epoch = (int)v;
    if (meta_long(f, "mneme.sampler_cursor", 0, MAX_POSITION, 0, &v, e) < 0)
        return -1;
    st->sampler_cursor = (int)v;
    /* Absent in checkpoints of runs without replay. */
    v = 0;
    if (meta_long(f, "mneme.replay_epoch", 0, MAX_POSITION, 1, &v, e) < 0)
        return -1;
    st->replay_epoch = (int)v;
    v = 0;
    if (meta_long(f, "mneme.replay_cursor", 0, MAX_POSITION, 1, &v, e) < 0)
        return -1;
    st->replay_cursor = (int)v;
    const char *lo = safetensors_meta(f, "mneme.lr_override");
    if (lo && *lo) {
        if (meta_double(f, "mneme.lr_override", 0.0, 10.0, 0, &st->lr, e) < 0)
            return -1;
        st->lr_override = 1;
    }
    const char *pp = safetensors_meta(f, "mneme.policy_params");
    if (pp && strlen(pp) >= sizeof st->policy_params)
        return mn_fail(e, "metadata mneme.policy_params is longer than %zu bytes",
                       sizeof st->policy_params - 1);
    snprintf(st->policy_params, sizeof st->policy_params, "%s", pp ? pp : "");
    /* absent in checkpoints from before divergence was watched */
    const char *rl = safetensors_meta(f, "mneme.recent_losses");
    for (const char *c = rl; c && *c && st->n_recent < CHECKPOINT_RECENT_LOSSES;) {
        char *stop;
        double x = strtod(c, &stop);
        if (stop == c || (*stop && *stop != ',') || !(x > -1e30 && x < 1e30))
            return mn_fail(e, "metadata mneme.recent_losses is malformed at entry %d",
                           st->n_recent);
        st->recent[st->n_recent++] = (float)x;
        c = *stop ? stop + 1 : stop;
    }
    return parse_groups(safetensors_meta(f, "mneme.groups"), m->n_groups, st, e);
}

int checkpoint_load(const StFile *f, Model *m, AdamW *opt, RunStateRecord *st, MnError *e)
{
    int rc = load_tensor_set(f, m, m->params, "", opt == NULL, e);
    model_params_changed(m);
    if (rc < 0)
        return -1;
    if (opt && (load_tensor_set(f, m, opt->m, "optimizer.exp_avg.", 0, e) < 0 ||
                load_tensor_set(f, m, opt->v, "optimizer.exp_avg_sq.", 0, e) < 0))
        return -1;
    if (opt) {
        const char *s = safetensors_meta(f, "mneme.adam_group_steps");
        for (int g = 0; g < opt->n_groups; g++) {
            char *end;
            if (!s || !*s)
                return mn_fail(e, "metadata mneme.adam_group_steps is missing");
            errno = 0;
            opt->group_t[g] = strtol(s, &end, 10);
            if (end == s || errno || (*end != ',' && *end != 0) || (g + 1 < opt->n_groups && *end != ','))
                return mn_fail(e, "metadata mneme.adam_group_steps is malformed");
            if (opt->group_t[g] < 0 || opt->group_t[g] > MAX_STEP)
                return mn_fail(e, "metadata mneme.adam_group_steps: group %d's count %ld is "
                               "outside 0..%ld", g, opt->group_t[g], MAX_STEP);
            s = *end ? end + 1 : end;
        }
    }
    return st ? load_run_state(f, m, st, e) : 0;
}

int checkpoint_read_progress(const StFile *f, long *events_lines, double *elapsed_s, MnError *e)
{
    *events_lines = 0;
    *elapsed_s = 0.0;
    if (meta_long(f, "mneme.events_lines", 0, MAX_STEP, 1, events_lines, e) < 0 ||
        meta_double(f, "mneme.elapsed_s", 0.0, 1e12, 0, elapsed_s, e) < 0)
        return -1;
    return 0;
}

int checkpoint_require(const StFile *f, const Model *m, int task, const char *path,
                       MnError *e)
{
    for (int i = 0; i < m->n_tensors; i++) {
        const ParamTensor *pt = &m->tensors[i];
        const char *g = m->groups[pt->group].name;
        if (strncmp(g, "classifier.", 11) == 0 &&
            (task < 0 || strcmp(g + 11, m->cfg.task_name[task]) != 0))
            continue;
        int64_t want[2] = { pt->shape[0], pt->shape[1] };
        char ws[48], hs[48];
        safetensors_shape_text(ws, sizeof ws, pt->ndim, want);
        const StTensorInfo *ti = safetensors_find(f, pt->name);
        if (!ti)
            return mn_fail(e, "%s: tensor %s is missing (its metadata, mneme.model, needs it "
                           "as %s)", path, pt->name, ws);
        if (ti->ndim != pt->ndim || ti->shape[0] != want[0] ||
            (pt->ndim == 2 && ti->shape[1] != want[1])) {
            safetensors_shape_text(hs, sizeof hs, ti->ndim, ti->shape);
            return mn_fail(e, "%s: tensor %s has shape %s, but its metadata (mneme.model) "
                           "needs %s", path, pt->name, ti->ndim > 2 ? "of more than 2 "
                           "dimensions" : hs, ws);
        }
    }
    return 0;
}
