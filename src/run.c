#include "run.h"
#include "bf16.h"

#include <ctype.h>
#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "branch.h"
#include "dist.h"
#include "checkpoint.h"
#include "ewc.h"
#include "hf.h"
#include "lora.h"
#include "prompt.h"
#include "paths.h"
#include "runlock.h"
#include "safetensors.h"
#include "strategy.h"
#include "tasks.h"
#include "tokenizer.h"

static const char *const task_names[N_TASKS] = { "original", "new" };

const char *phase_name(Phase p)
{
    return p == PHASE_BASE ? "base" : p == PHASE_FINETUNE ? "finetune" : "done";
}

static int phase_parse(const char *s, Phase *p)
{
    for (int i = PHASE_BASE; i <= PHASE_DONE; i++)
        if (strcmp(s, phase_name((Phase)i)) == 0) {
            *p = (Phase)i;
            return 0;
        }
    return -1;
}

double run_elapsed(const Run *r)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return r->elapsed_before + (double)(now.tv_sec - r->started.tv_sec) +
           1e-9 * (double)(now.tv_nsec - r->started.tv_nsec);
}

static void logf_(Run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(Run *r, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (r->hooks.on_log)
        r->hooks.on_log(r->hooks.ctx, line);
}

static const TrainRecipe *recipe(const Run *r)
{
    return r->phase == PHASE_BASE ? &r->x.base.pretrain : &r->x.finetune.recipe;
}

static int phase_task(const Run *r)
{
    return r->phase == PHASE_BASE ? TASK_ORIGINAL : TASK_NEW;
}

/* A checkpoint file of the run, by the phase and step its name says. */
typedef struct {
    Phase phase;
    long step;
    char name[256];
} CkName;

static int load_policy(Run *r, MnError *e);
static int checkpoint_or_pause(Run *r, const char *name, MnError *e);

static void path_in_run(const Run *r, char *out, size_t n, const char *rel)
{
    snprintf(out, n, "%s/%s", r->dir, rel);
}

/* Each task draws its examples from its own stream of the seed, so the
 * original and new sets are independent samples. */
static int load_task(Run *r, int k, MnError *e)
{
    const TaskSource *src = k == TASK_ORIGINAL ? &r->x.original : &r->x.new_task;
    int max_len = r->x.model.max_len;
    if (src->mlm[0]) {
        /* one label, which no head is asked: the MLM head scores it */
        r->labels[k].n_labels = 1;
        snprintf(r->labels[k].names[0], LABEL_NAME_MAX, "mlm");
        return mlm_load_text(&r->eval[k], &r->train[k], &r->tok, src->mlm, max_len,
                             r->x.seed ^ 0x6D6C6D5EULL, e);
    }
    if (src->builtin[0]) {
        unsigned long long seed = r->x.seed + 7919ULL * (unsigned long long)k;
        LabelSet eval_labels;
        if (builtin_generate(src->builtin, &r->tok, seed, 0, src->train_size, max_len,
                             &r->train[k], &r->labels[k], e) < 0 ||
            builtin_generate(src->builtin, &r->tok, seed, 1, src->eval_size, max_len,
                             &r->eval[k], &eval_labels, e) < 0)
            return mn_wrap(e, "%s task", task_names[k]);
        return 0;
    }
    DataFormat fmt;
    task_source_format(src, &fmt);
    /* A pretrained model's own head: its id2label, set by setup, is the
     * label set both files are read against. */
    int fixed = r->fixed_labels[k];
    if (!fixed)
        memset(&r->labels[k], 0, sizeof r->labels[k]);
    if (!src->train[0] && !fixed)
        return mn_fail(e, "%s.train is missing: base.from %s has no classification head to "
                       "score %s with; give %s.train to train one in the base phase, or "
                       "original.mlm", task_names[k], r->x.base.from, src->eval, task_names[k]);
    if ((src->train[0] && dataset_load(&r->train[k], &r->tok, &fmt, src->train, max_len,
                                       &r->labels[k], fixed ? LABELS_FIXED : LABELS_GROW, e) < 0) ||
        dataset_load(&r->eval[k], &r->tok, &fmt, src->eval, max_len, &r->labels[k],
                     fixed ? LABELS_FIXED : LABELS_KNOWN, e) < 0)
        return -1;
    if (r->labels[k].n_labels < 2 && !fixed)
        return mn_fail(e, "%s: the %s task needs at least two labels", src->train,
                       task_names[k]);
    return 0;
}

static int max3(int a, int b, int c)
{
    int m = a > b ? a : b;
    return m > c ? m : c;
}

int run_model_config(const Experiment *x, const int n_labels[N_TASKS], ModelConfig *mc,
                     MnError *e)
{
    memset(mc, 0, sizeof *mc);
    if (x->base.from[0]) {
        HfModel h;
        if (hf_read_config(&h, x->base.from, e) < 0)
            return mn_wrap(e, "base.from");
        *mc = h.shape;
    } else {
        mc->vocab = TOKENIZER_VOCAB;
        mc->type_vocab = 2;
    }
    mc->hidden = x->model.hidden;
    mc->layers = x->model.layers;
    mc->heads = x->model.heads;
    mc->intermediate = x->model.intermediate;
    mc->max_len = x->model.max_len;
    mc->n_tasks = N_TASKS;
    for (int k = 0; k < N_TASKS; k++) {
        snprintf(mc->task_name[k], TASK_NAME_MAX, "%s", task_names[k]);
        mc->n_labels[k] = n_labels[k];
    }
    if (strcmp(x->finetune.method, "lora") == 0) {
        char why[256];
        mc->lora_r = x->finetune.lora.r;
        mc->lora_alpha = (float)x->finetune.lora.alpha;
        mc->lora_dropout = (float)x->finetune.lora.dropout;
        /* Validated with the experiment. */
        if (lora_parse_targets(x->finetune.lora.targets, &mc->lora_targets, why, sizeof why) < 0)
            mc->lora_r = 0;
    }
    if (strcmp(x->finetune.method, "prompt") == 0)
        mc->prompt_tokens = x->finetune.virtual_tokens;
    if (strcmp(x->finetune.method, "prefix") == 0)
        mc->prefix_tokens = x->finetune.virtual_tokens;
    return 0;
}

/* Everything a run needs in memory, whether it starts or resumes. */
static int setup(Run *r, const Experiment *x, const char *dir,
                 const RunHooks *hooks, MnError *e)
{
    ModelConfig mc;
    memset(r, 0, sizeof *r);
    if (hooks)
        r->hooks = *hooks;
    r->x = *x;
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    snprintf(r->branch, sizeof r->branch, "main");
    r->diverged_at = -1;
    r->ranks_agree = -1;
    clock_gettime(CLOCK_MONOTONIC, &r->started);
    tokenizer_bytes(&r->tok);
    HfModel hf;
    memset(&hf, 0, sizeof hf);
    if (x->base.from[0]) {
        if (hf_open(&hf, x->base.from, e) < 0 || tokenizer_load(&r->tok, x->base.from, e) < 0) {
            hf_close(&hf);
            return mn_wrap(e, "base.from");
        }
        if (r->tok.vocab_size > hf.shape.vocab) {
            hf_close(&hf);
            return mn_fail(e, "base.from %s: vocab.txt has %d tokens, more than vocab_size %d",
                           x->base.from, r->tok.vocab_size, hf.shape.vocab);
        }
        r->original_mlm = x->original.mlm[0] != 0;
        r->own_head = hf.head_labels > 0 && !r->original_mlm;
        if (r->original_mlm && (mlm_check_vocab(&r->tok, x->base.from, e) < 0 ||
                                hf_load_mlm(&hf, &r->mlm_head, e) < 0 ||
                                batch_alloc(&r->mlm_batch, x->finetune.recipe.batch,
                                            x->model.max_len, e) < 0)) {
            hf_close(&hf);
            return mn_wrap(e, "base.from");
        }
        if (r->own_head) {
            r->labels[TASK_ORIGINAL] = hf.labels;
            r->fixed_labels[TASK_ORIGINAL] = 1;
        }
    }
    int rc = 0;
    for (int k = 0; k < N_TASKS && rc == 0; k++)
        rc = load_task(r, k, e);
    int n_labels[N_TASKS];
    for (int k = 0; k < N_TASKS; k++)
        n_labels[k] = r->labels[k].n_labels;
    if (rc < 0 || run_model_config(x, n_labels, &mc, e) < 0) {
        hf_close(&hf);
        return -1;
    }
    /* a pair's second text has token type 1, which such a model lacks */
    for (int k = 0; k < N_TASKS && mc.type_vocab == 1; k++)
        for (int s = 0; s < 2; s++) {
            const Dataset *d = s ? &r->eval[k] : &r->train[k];
            for (size_t i = 0; i < (size_t)d->n * (size_t)d->max_len; i++)
                if (d->types[i] > 0) {
                    hf_close(&hf);
                    return mn_fail(e, "the %s task holds sentence pairs, but base.from has one "
                                   "token type (type_vocab_size 1)", task_names[k]);
                }
        }
    int train_cap = x->base.pretrain.batch > x->finetune.recipe.batch ?
                    x->base.pretrain.batch : x->finetune.recipe.batch;
    /* refused before allocating: AdamW's moments, the anchor, and the
     * Fisher when EWC (or a policy that may turn it on) needs one */
    int copies = 3 + (x->finetune.ewc.lambda > 0 || x->finetune.policy[0]);
    /* bf16's copy of the weights: half a buffer (a whole one emulated) */
    copies += precision_parse(x->model.precision) == PRECISION_BF16;
    if (model_check_memory(&mc, max3(train_cap, x->eval.batch, 1), x->threads, copies, e) < 0 ||
        model_create(&r->model, &mc, max3(train_cap, x->eval.batch, 1), e) < 0 ||
        model_set_threads(&r->model, x->threads, e) < 0 ||
        model_set_precision(&r->model, precision_parse(x->model.precision), e) < 0) {
        hf_close(&hf);
        return -1;
    }
    r->model.dist = r->hooks.dist;
    AdamConfig ac = { 0.9f, 0.999f, 1e-8f, 0.0f };
    if (adamw_create(&r->opt, &r->model, ac, e) < 0 ||
        batch_alloc(&r->batch, train_cap, mc.max_len, e) < 0 ||
        batch_alloc(&r->eval_batch, x->eval.batch, mc.max_len, e) < 0) {
        hf_close(&hf);
        return -1;
    }
    /* Twice the batch: the replay rows are drawn into the second half. */
    r->idx = malloc(2 * (size_t)max3(train_cap, x->eval.batch, 1) * sizeof(int));
    r->anchor = malloc(r->model.n_params * sizeof(float));
    if (!r->idx || !r->anchor) {
        hf_close(&hf);
        return mn_fail(e, "out of memory");
    }
    rng_seed(&r->rng, x->seed);
    model_init_weights(&r->model, &r->rng, (float)x->model.init_std);
    /* The pretrained weights over the initialisation: what the file does
     * not hold (a new head, the pooler of an MLM checkpoint) keeps it. */
    if (x->base.from[0]) {
        rc = hf_load(&hf, &r->model, r->own_head ? TASK_ORIGINAL : -1, e);
        hf_close(&hf);
        if (rc < 0)
            return mn_wrap(e, "base.from");
        if (r->own_head && !r->train[TASK_ORIGINAL].n && x->finetune.replay.ratio > 0)
            return mn_fail(e, "finetune.replay.ratio needs original.train: there is nothing "
                           "to replay");
        if (!r->own_head && !r->original_mlm && !r->train[TASK_ORIGINAL].n)
            return mn_fail(e, "base.from %s has no classification head: give original.train "
                           "(and eval) to train one in the base phase", x->base.from);
    }
    return load_policy(r, e);
}

/* Configures the current phase: which groups train, the data stream, the
 * schedule and the optimizer's decay. Moments are reset by the caller
 * when a phase starts fresh (not on resume). */
static int enter_phase(Run *r, MnError *e)
{
    Model *m = &r->model;
    if (r->phase == PHASE_DONE) {
        /* a finished run keeps its fine-tuning's length, epochs and
         * schedule, so that it is shown (and reviewed) as it ended */
        r->phase = PHASE_FINETUNE;
        int rc = enter_phase(r, e);
        r->phase = PHASE_DONE;
        return rc;
    }
    const TrainRecipe *rc = recipe(r);
    int task = phase_task(r);
    if (task == TASK_NEW)
        strategy_apply(m, &r->x);
    else {
        /* Adapters and virtual tokens wait for fine-tuning: pretraining
         * sees the plain encoder. */
        prompt_set_enabled(m, 0);
        for (int g = 0; g < m->n_groups; g++) {
            m->groups[g].trainable = m->groups[g].lora_layer < 0 && g != m->prompt_group &&
                                     g != m->prefix_group;
            m->groups[g].lr_scale = 1.0f;
        }
        /* The new head has nothing to learn from the original task. */
        m->groups[model_find_group(m, "classifier.new")].trainable = 0;
    }
    sampler_free(&r->sampler);
    if (sampler_init(&r->sampler, &r->train[task],
                     r->x.seed ^ (0x5A3D1E00ULL + (unsigned long long)r->phase), e) < 0)
        return -1;
    r->replay_rows = 0;
    if (task == TASK_NEW && r->x.finetune.replay.ratio > 0) {
        r->replay_rows = (int)(r->x.finetune.replay.ratio * rc->batch + 0.5);
        sampler_free(&r->replay);
        if (sampler_init(&r->replay, &r->train[TASK_ORIGINAL], r->x.seed ^ 0x4E91A7C3ULL, e) < 0)
            return -1;
    }
    /* An epoch is a pass over the new task: replayed rows do not count. */
    int fresh = rc->batch - r->replay_rows;
    r->steps_per_epoch = (r->train[task].n + fresh - 1) / fresh;
    r->total_steps = (long)rc->epochs * r->steps_per_epoch;
    r->sched.peak = (float)rc->lr;
    r->sched.warmup = rc->warmup_steps;
    r->sched.total = r->total_steps;
    r->sched.cut_frac = (float)rc->cut_frac;
    r->sched.ratio = (float)rc->stlr_ratio;
    if (schedule_parse(rc->schedule, &r->sched.kind) < 0)
        return mn_fail(e, "unknown schedule '%s'", rc->schedule);
    r->opt.cfg.weight_decay = (float)rc->weight_decay;
    r->clip_norm = rc->clip_norm;
    return 0;
}

TaskScore run_evaluate(Run *r, int task, int limit)
{
    if (task == TASK_ORIGINAL && r->original_mlm) {
        MlmScore ms;
        MnError e;
        TaskScore s = { 0.0, 0.0 };
        if (mlm_score(&r->model, &r->mlm_head, &r->eval[task], limit, &r->eval_batch, &ms, &e) < 0)
            logf_(r, "MLM evaluation: %s", e.msg);
        else
            s = (TaskScore){ ms.loss, ms.acc };
        return s;
    }
    const Dataset *d = &r->eval[task];
    int n = limit > 0 && limit < d->n ? limit : d->n;
    int cap = r->eval_batch.cap, correct = 0;
    double loss = 0.0;
    TaskScore s = { 0.0, 0.0 };
    for (int start = 0; start < n; start += cap) {
        int rows = n - start < cap ? n - start : cap;
        for (int i = 0; i < rows; i++)
            r->idx[i] = start + i;
        batch_fill(&r->eval_batch, d, r->idx, rows, task);
        loss += (double)model_forward(&r->model, &r->eval_batch) * rows;
        int K = r->model.cfg.n_labels[task], ML = r->model.act.max_labels;
        for (int i = 0; i < rows; i++) {
            const float *p = r->model.act.probs + (size_t)i * ML;
            int best = 0;
            for (int j = 1; j < K; j++)
                if (p[j] > p[best])
                    best = j;
            correct += best == r->eval_batch.label[i];
        }
    }
    if (n > 0) {
        s.loss = loss / n;
        s.acc = (double)correct / n;
    }
    return s;
}

/* ---- the policy --------------------------------------------------------- */

static json_t *event_base(const Run *r, const char *source)
{
    return json_pack("{s:I, s:s, s:s}", "step", (json_int_t)r->step, "phase",
                     phase_name(r->phase), "source", source);
}

static int record_event(Run *r, json_t *ev, MnError *e)
{
    return events_write(&r->events, ev, e);
}

int run_record(Run *r, const char *source, const char *command, json_t *extra, MnError *e)
{
    json_t *ev = event_base(r, source);
    if (!ev) {
        json_decref(extra);
        return mn_fail(e, "events.jsonl: out of memory");
    }
    json_object_set_new(ev, "command", json_string(command));
    if (extra) {
        json_object_update(ev, extra);
        json_decref(extra);
    }
    return record_event(r, ev, e);
}

static void score_view(PolicyMetrics *pm, const EvalRecord *rec)
{
    memset(pm, 0, sizeof *pm);
    if (!rec)
        return;
    pm->has = 1;
    pm->step = rec->step;
    pm->new_task = (PolicyScore){ rec->has_new, rec->new_task.acc, rec->new_task.loss };
    pm->original = (PolicyScore){ rec->has_original, rec->original.acc, rec->original.loss };
}

static double group_drift(const Run *r, int g)
{
    const Model *m = &r->model;
    double num = 0.0, den = 0.0;
    const ParamGroup *pg = &m->groups[g];
    for (int t = pg->first; t < pg->first + pg->count; t++) {
        const ParamTensor *pt = &m->tensors[t];
        for (size_t i = pt->offset; i < pt->offset + pt->numel; i++) {
            double d = (double)m->params[i] - r->anchor[i];
            num += d * d;
            den += (double)r->anchor[i] * r->anchor[i];
        }
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

double run_drift(const Run *r, int g)
{
    if (!r->anchor || r->phase == PHASE_BASE || g < 0 || g >= r->model.n_groups)
        return -1.0;
    return group_drift(r, g);
}

/* The plain C picture of the run a policy reads and writes. Drift costs a
 * pass over the weights, so it is measured at evaluations only. */
static void fill_view(Run *r, int with_drift)
{
    PolicyView *v = &r->view;
    const Model *m = &r->model;
    const EvalRecord *last = NULL, *base = NULL, *best = NULL;
    for (int i = 0; i < r->history.n; i++) {
        const EvalRecord *h = &r->history.v[i];
        if (strcmp(h->phase, "finetune") != 0)
            continue;
        if (!base)
            base = h;
        last = h;
        if (!best || h->new_task.acc > best->new_task.acc)
            best = h;
    }
    v->step = r->step;
    v->total_steps = r->total_steps;
    v->warmup_steps = r->sched.warmup;
    v->epoch = (double)r->step / r->steps_per_epoch;
    snprintf(v->phase, sizeof v->phase, "%s", phase_name(r->phase));
    v->base_lr = r->sched.peak;
    v->lr = r->lr_override ? r->lr_value : schedule_lr(&r->sched, r->step);
    v->ewc_lambda = r->ewc_lambda;
    score_view(&v->metrics, last);
    score_view(&v->baseline, base);
    score_view(&v->best, best);
    v->crossover_step = last ? last->crossover_step : -1;
    v->branch_limit = r->hooks.open_branches ? r->hooks.max_branches : 0;
    v->open_branches = r->hooks.open_branches ? r->hooks.open_branches(r->hooks.ctx) + r->hooks.making : 1;
    v->n_layers = m->n_groups < POLICY_MAX_LAYERS ? m->n_groups : POLICY_MAX_LAYERS;
    for (int g = 0; g < v->n_layers; g++) {
        PolicyLayer *l = &v->layers[g];
        snprintf(l->name, sizeof l->name, "%s", m->groups[g].name);
        l->frozen = !m->groups[g].trainable;
        l->lr_scale = m->groups[g].lr_scale;
        l->trainable_params = 0;
        for (int t = m->groups[g].first; t < m->groups[g].first + m->groups[g].count; t++)
            l->trainable_params += (long)m->tensors[t].numel;
        if (with_drift)
            l->drift = group_drift(r, g);
    }
}

/* Applies one change the policy made to the view, as the run's state. */
static int apply_change(Run *r, const PolicyChange *c, MnError *e)
{
    Model *m = &r->model;
    const char *dot = strrchr(c->what, '.');
    json_t *ev = event_base(r, "policy");
    json_object_set_new(ev, "policy", json_string(policy_name(r->policy)));
    json_object_set_new(ev, "set", json_string(c->what));
    json_object_set_new(ev, "from", json_real(c->from));
    json_object_set_new(ev, "to", json_real(c->to));
    if (strcmp(c->what, "lr") == 0) {
        r->lr_override = 1;
        r->lr_value = c->to;
    } else if (strcmp(c->what, "ewc_lambda") == 0) {
        r->ewc_lambda = c->to;
    } else if (dot) {
        char part[64];
        snprintf(part, sizeof part, "%.*s", (int)(dot - c->what), c->what);
        int g = model_find_group(m, part);
        if (g >= 0 && strcmp(dot + 1, "frozen") == 0) {
            /* The original head is what forgetting is measured through. */
            if (strcmp(part, "classifier.original") == 0 && c->to == 0.0) {
                json_object_set_new(ev, "refused", json_string("the original head stays frozen"));
                r->view.layers[g].frozen = 1;
            } else
                m->groups[g].trainable = c->to == 0.0;
        } else if (g >= 0 && strcmp(dot + 1, "lr_scale") == 0)
            m->groups[g].lr_scale = (float)c->to;
    }
    return record_event(r, ev, e);
}

static void sanitize_tag(const char *in, char *out, size_t n)
{
    size_t k = 0;
    for (const char *p = in; *p && k + 1 < n; p++)
        out[k++] = (isalnum((unsigned char)*p) || *p == '-' || *p == '_') ? *p : '_';
    out[k] = 0;
    if (!k)
        snprintf(out, n, "policy");
}

static int run_action(Run *r, const PolicyAction *a, int in_checkpoint_hook, MnError *e)
{
    static const char *const names[] = { "log", "pause", "checkpoint", "fork", "stop" };
    json_t *ev = event_base(r, "policy");
    json_object_set_new(ev, "policy", json_string(policy_name(r->policy)));
    json_object_set_new(ev, "action", json_string(names[a->kind]));
    json_object_set_new(ev, "text", json_string(a->text));
    switch (a->kind) {
    case POLICY_LOG:
        logf_(r, "policy %s: %s", policy_name(r->policy), a->text);
        break;
    case POLICY_PAUSE:
        snprintf(r->pause_reason, sizeof r->pause_reason, "policy %s: %s", policy_name(r->policy), a->text);
        r->pause_is_error = 0;
        break;
    case POLICY_CHECKPOINT:
        if (!in_checkpoint_hook) {
            char tag[96], name[128];
            sanitize_tag(a->text, tag, sizeof tag);
            snprintf(name, sizeof name, "tag-%s-step-%ld", tag, r->step);
            if (run_checkpoint(r, name, e) < 0) {
                json_decref(ev);
                return -1;
            }
            logf_(r, "policy %s: checkpoint %s", policy_name(r->policy), name);
        }
        break;
    case POLICY_FORK: {
        char ov[sizeof a->overrides], dir[EXP_PATH + 320];
        const char *sets[64];
        MnError why;
        snprintf(ov, sizeof ov, "%s", a->overrides);
        json_object_set_new(ev, "overrides", json_string(a->overrides));
        int n = branch_split_overrides(ov, sets, 64);
        /* A refused fork is the policy's mistake, not the run's: logged,
         * on every frontend. Refused in the call: the policy was told. */
        if (a->refused[0])
            mn_fail(&why, "%s", a->refused);
        /* the branch being made holds a place for the forks of its setup */
        RunHooks h = r->hooks;
        h.making++;
        if (a->refused[0] ||
            run_fork(r, a->text, sets, n, "policy", &h, NULL, dir, sizeof dir, &why) < 0) {
            json_object_set_new(ev, "refused", json_string(why.msg));
            logf_(r, "policy %s: fork %s refused: %s", policy_name(r->policy), a->text, why.msg);
            break;
        }
        json_object_set_new(ev, "branch", json_string(a->text));
        logf_(r, "policy %s: forked %s at step %ld into %s", policy_name(r->policy), a->text,
              r->step, dir);
        if (r->hooks.on_branch)
            r->hooks.on_branch(r->hooks.ctx, r, dir);
        break;
    }
    case POLICY_STOP:
        snprintf(r->stop_reason, sizeof r->stop_reason, "policy %s: %s", policy_name(r->policy), a->text);
        break;
    }
    return record_event(r, ev, e);
}

/* Calls a hook with a fresh view, then applies and records what it
 * changed and did. A failing hook pauses the run with its file:line
 * message; that is not an error of the run. quiet: a resumed run's setup,
 * whose changes the checkpoint already holds. */
static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int call_policy_timed(Run *r, const char *hook, const char *arg, int quiet, MnError *e);

/* Timed, so the summary can say what the policy costs against training. */
static int call_policy(Run *r, const char *hook, const char *arg, int quiet, MnError *e)
{
    if (!r->policy || r->phase != PHASE_FINETUNE)
        return 0;
    double t0 = now_seconds();
    int rc = call_policy_timed(r, hook, arg, quiet, e);
    r->policy_seconds += now_seconds() - t0;
    return rc;
}

/* What a policy call decided: rank 0 calls the policy, the other ranks
 * take this from it, so that a time limit or anything else one process
 * alone would see cannot set the ranks apart. */
typedef struct {
    int failed;
    char why[sizeof ((MnError *)0)->msg];
    PolicyView view;
    int n_acts;
    PolicyAction acts[POLICY_MAX_ACTIONS];
} PolicyOutcome;

/* Rank 0's outcome of the call just made (or failed), to every rank. */
static int share_policy_outcome(Run *r, int *failed, MnError *why, PolicyAction *acts,
                                int *n_acts, MnError *e)
{
    Dist *d = r->hooks.dist;
    PolicyOutcome *o = calloc(1, sizeof *o);
    if (!o)
        return mn_fail(e, "out of memory");
    if (d->rank == 0) {
        o->failed = *failed;
        snprintf(o->why, sizeof o->why, "%s", *failed ? why->msg : "");
        o->view = r->view;
        o->n_acts = *n_acts;
        memcpy(o->acts, acts, sizeof *acts * (size_t)*n_acts);
    }
    int rc = dist_broadcast(d, o, sizeof *o, e);
    if (rc == 0 && d->rank > 0) {
        *failed = o->failed;
        snprintf(why->msg, sizeof why->msg, "%s", o->why);
        r->view = o->view;
        *n_acts = o->n_acts < 0 ? 0 : o->n_acts > POLICY_MAX_ACTIONS ? POLICY_MAX_ACTIONS : o->n_acts;
        memcpy(acts, o->acts, sizeof *acts * (size_t)*n_acts);
    }
    free(o);
    return rc;
}

static int call_policy_timed(Run *r, const char *hook, const char *arg, int quiet, MnError *e)
{
    PolicyView before;
    PolicyAction acts[POLICY_MAX_ACTIONS];
    PolicyChange changes[POLICY_MAX_LAYERS * 2 + 2];
    MnError why;
    int n_acts = 0, failed = 0;
    const Dist *d = r->hooks.dist;
    const int shared = d && d->size > 1;
    fill_view(r, strcmp(hook, "on_eval") == 0 || strcmp(hook, "setup") == 0);
    before = r->view;
    if (!shared || d->rank == 0)
        failed = policy_call(r->policy, hook, &r->view, arg, acts, POLICY_MAX_ACTIONS, &n_acts,
                             &why) < 0;
    if (shared && share_policy_outcome(r, &failed, &why, acts, &n_acts, e) < 0)
        return -1;
    if (failed) {
        snprintf(r->pause_reason, sizeof r->pause_reason, "%s", why.msg);
        r->pause_is_error = 1;
        logf_(r, "policy error, pausing: %s", why.msg);
        return 0;
    }
    if (quiet)
        return 0;
    int n = policy_view_changes(&before, &r->view, changes, (int)(sizeof changes / sizeof changes[0]));
    for (int i = 0; i < n; i++)
        if (apply_change(r, &changes[i], e) < 0)
            return -1;
    for (int i = 0; i < n_acts; i++)
        if (run_action(r, &acts[i], strcmp(hook, "on_checkpoint") == 0, e) < 0)
            return -1;
    return 0;
}

static long file_mtime(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_mtime : -1;
}

/* policy/<step>.lua: the source that ran from that step on. */
static int save_policy_source(Run *r, MnError *e)
{
    char path[EXP_PATH + 64];
    size_t len;
    const char *src = policy_source(r->policy, &len);
    snprintf(path, sizeof path, "%s/policy", r->dir);
    if (make_dirs(path, e) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/policy/%ld.lua", r->dir, r->step);
    return write_file_atomic(path, src, len, e);
}

static int load_policy(Run *r, MnError *e)
{
    char lua_dir[EXP_PATH];
    const char *dirs[2];
    int n = 0;
    if (!r->x.finetune.policy[0])
        return 0;
    if (find_data_file("lua", lua_dir, sizeof lua_dir) == 0)
        dirs[n++] = lua_dir;
    if (r->x.policy.path[0])
        dirs[n++] = r->x.policy.path;
    if (policy_load(&r->policy, r->x.finetune.policy, dirs, n, r->x.seed, e) < 0)
        return mn_wrap(e, "finetune.policy");
    r->policy_mtime = file_mtime(r->x.finetune.policy);
    return 0;
}

static int ensure_fisher(Run *r, int fresh, MnError *e);

int run_attach_policy(Run *r, const char *file, const char *source, char *msg, size_t n,
                      MnError *e)
{
    char abs[EXP_PATH], was[EXP_PATH], src_file[64];
    if (r->phase != PHASE_FINETUNE)
        return mn_fail(e, "policy: a policy runs in the finetune phase, not %s", phase_name(r->phase));
    absolute_path(file, abs, sizeof abs);
    if (access(abs, R_OK) != 0)
        return mn_fail(e, "policy %s: %s", abs, strerror(errno));
    /* loaded beside the old one, which stays on any failure */
    Policy *old = r->policy;
    snprintf(was, sizeof was, "%s", r->x.finetune.policy);
    snprintf(r->x.finetune.policy, sizeof r->x.finetune.policy, "%s", abs);
    r->policy = NULL;
    if (load_policy(r, e) < 0) {
        r->policy = old;
        snprintf(r->x.finetune.policy, sizeof r->x.finetune.policy, "%s", was);
        return -1;
    }
    if (old)
        policy_free(old);
    /* a policy may raise EWC's lambda: it gets a Fisher, as at the start
     * (and as a resume would compute one) */
    if (ensure_fisher(r, 0, e) < 0)
        return -1;
    /* experiment.cfg stays as the run began (a replay starts from it);
     * the event tells a resume to attach it again */
    snprintf(src_file, sizeof src_file, "policy/%ld.lua", r->step);
    if (save_policy_source(r, e) < 0)
        return -1;
    json_t *ev = event_base(r, source);
    json_object_set_new(ev, "command", json_string("policy"));
    json_object_set_new(ev, "file", json_string(abs));
    json_object_set_new(ev, "policy", json_string(policy_name(r->policy)));
    json_object_set_new(ev, "source_file", json_string(src_file));
    if (record_event(r, ev, e) < 0)
        return -1;
    snprintf(msg, n, "policy %s runs from step %ld (%s)", policy_name(r->policy), r->step, abs);
    if (r->pause_is_error) {
        r->pause_reason[0] = 0;
        r->pause_is_error = 0;
    }
    return call_policy(r, "setup", NULL, 0, e);
}

int run_policy_reload(Run *r, MnError *e)
{
    if (!r->policy)
        return mn_fail(e, "this run has no policy (finetune.policy)");
    r->policy_mtime = file_mtime(r->x.finetune.policy);
    if (policy_reload(r->policy, e) < 0) {
        logf_(r, "policy reload failed, the previous policy stays: %s", e->msg);
        return -1;
    }
    json_t *ev = event_base(r, "policy");
    json_object_set_new(ev, "policy", json_string(policy_name(r->policy)));
    json_object_set_new(ev, "action", json_string("reload"));
    char file[64];
    snprintf(file, sizeof file, "policy/%ld.lua", r->step);
    json_object_set_new(ev, "source_file", json_string(file));
    if (save_policy_source(r, e) < 0 || record_event(r, ev, e) < 0)
        return -1;
    logf_(r, "policy %s reloaded", policy_name(r->policy));
    if (r->pause_is_error) {
        r->pause_reason[0] = 0;
        r->pause_is_error = 0;
    }
    return call_policy(r, "setup", NULL, 0, e);
}

/* Early stopping. Returns 1 when this evaluation is the best so far by
 * the combined metric (the caller keeps a checkpoint of it); sets
 * stop_reason when a rule ends the run. Pure in the history, so a resumed
 * run replays it to the same state. */
static int stop_update(Run *r, const EvalRecord *rec)
{
    const Experiment *x = &r->x;
    const EvalRecord *base = NULL;
    for (int i = 0; i < r->history.n && !base; i++)
        if (strcmp(r->history.v[i].phase, "finetune") == 0 && r->history.v[i].step == 0)
            base = &r->history.v[i];
    if (x->stop.max_original_drop > 0 && base &&
        base->original.acc - rec->original.acc > x->stop.max_original_drop) {
        snprintf(r->stop_reason, sizeof r->stop_reason,
                 "original accuracy fell %.3f below its baseline %.3f at step %ld (stop.max_original_drop %.3f)",
                 base->original.acc - rec->original.acc, base->original.acc, rec->step,
                 x->stop.max_original_drop);
        return 0;
    }
    if (strcmp(x->stop.metric, "combined") != 0 || rec->step == 0)
        return 0;
    double combined = rec->new_task.loss + x->stop.original_weight * rec->original.loss;
    if (combined < r->stop_best) {
        r->stop_best = combined;
        r->stop_best_step = rec->step;
        r->stop_bad = 0;
        return 1;
    }
    if (x->stop.patience > 0 && ++r->stop_bad >= x->stop.patience)
        snprintf(r->stop_reason, sizeof r->stop_reason,
                 "the combined metric has not improved for %d evaluations (best %.4f at step %ld)",
                 r->x.stop.patience, r->stop_best, r->stop_best_step);
    return 0;
}

/* Relative change of each group since fine-tuning began: where the model
 * moved. Zero for a group that never trained. */
int run_group_shown(const Run *r, int g)
{
    return !(r->original_mlm && strcmp(r->model.groups[g].name, "classifier.original") == 0);
}

static json_t *drift_json(const Run *r)
{
    const Model *m = &r->model;
    json_t *o = json_object();
    for (int g = 0; g < m->n_groups; g++)
        if (run_group_shown(r, g))
            json_object_set_new(o, m->groups[g].name, json_real(group_drift(r, g)));
    return o;
}

static int write_summary(Run *r, const char *path, const char *status, MnError *e)
{
    size_t trainable = strategy_trainable_params(&r->model), total = 0;
    for (int t = 0; t < r->model.n_tensors; t++)
        total += r->model.tensors[t].numel;
    json_t *extra = json_pack("{s:I, s:I, s:f}", "trainable_params", (json_int_t)trainable,
                              "total_params", (json_int_t)total,
                              "trainable_fraction", (double)trainable / (double)total);
    json_object_set_new(extra, "drift", drift_json(r));
    char precision[48];
    bf16_describe(r->model.bf16, precision, sizeof precision);
    json_object_set_new(extra, "precision", json_string(precision));
    /* what an accuracy's noise depends on: for MLM the masked pieces it
     * is the share of, not the lines */
    json_object_set_new(extra, "eval_examples", json_pack("{s:I, s:i, s:s}",
                        "original", r->original_mlm ? (json_int_t)mlm_masked(&r->eval[TASK_ORIGINAL])
                                                    : (json_int_t)r->eval[TASK_ORIGINAL].n,
                        "new", r->eval[TASK_NEW].n,
                        "original_unit", r->original_mlm ? "masked pieces" : "examples"));
    const EvalRecord *off = NULL;
    for (int i = 0; i < r->history.n; i++)
        if (r->history.v[i].has_adapter_off)
            off = &r->history.v[i];
    json_object_set_new(extra, "final_adapter_off", off ?
                        json_pack("{s:I, s:{s:f, s:f}}", "step", (json_int_t)off->step, "original",
                                  "loss", off->original_adapter_off.loss, "acc",
                                  off->original_adapter_off.acc) : json_null());
    json_object_set_new(extra, "timing", json_pack("{s:f, s:f, s:f, s:f}", "train_s", r->step_seconds,
                        "finetune_s", r->finetune_seconds, "policy_s", r->policy_seconds, "policy_share",
                        r->step_seconds > 0 ? r->policy_seconds / r->step_seconds : 0.0));
    const Dist *d = r->hooks.dist;
    if (d && d->size > 1)
        json_object_set_new(extra, "ranks", json_pack("{s:i, s:o, s:f, s:f, s:I, s:b}", "count",
                            d->size, "agree", r->ranks_agree < 0 ? json_null() :
                            json_boolean(r->ranks_agree), "reduce_s", d->reduce_s, "wait_s",
                            d->wait_s, "reduces", (json_int_t)d->reduces, "overlap", d->overlap));
    json_object_set_new(extra, "stop_reason", r->stop_reason[0] ? json_string(r->stop_reason) : json_null());
    json_t *best = json_null();
    for (int i = 0; i < r->history.n && r->stop_best_step >= 0; i++) {
        const EvalRecord *h = &r->history.v[i];
        if (strcmp(h->phase, "finetune") == 0 && h->step == r->stop_best_step) {
            json_decref(best);
            best = json_pack("{s:I, s:f, s:{s:f, s:f}, s:{s:f, s:f}, s:s}",
                             "step", (json_int_t)h->step, "value", r->stop_best,
                             "original", "loss", h->original.loss, "acc", h->original.acc,
                             "new", "loss", h->new_task.loss, "acc", h->new_task.acc,
                             "checkpoint", "checkpoints/best.safetensors");
        }
    }
    json_object_set_new(extra, "best_combined", best);
    int rc = summary_write(path, &r->history, r->x.name, status, extra, e);
    json_decref(extra);
    return rc;
}

/* Keeps a metrics line (with its newline) for the next checkpoint. */
static int metrics_keep(Run *r, const char *line, size_t len, MnError *e)
{
    if (r->metrics_len + len + 1 > r->metrics_cap) {
        size_t cap = (r->metrics_len + len + 1) * 2;
        char *t = realloc(r->metrics_text, cap);
        if (!t)
            return mn_fail(e, "out of memory for the metric history");
        r->metrics_text = t;
        r->metrics_cap = cap;
    }
    memcpy(r->metrics_text + r->metrics_len, line, len);
    r->metrics_len += len;
    r->metrics_text[r->metrics_len] = 0;
    return 0;
}

static int record_eval(Run *r, MnError *e)
{
    EvalRecord rec;
    memset(&rec, 0, sizeof rec);
    rec.step = r->step;
    rec.epoch = (double)r->step / r->steps_per_epoch;
    snprintf(rec.phase, sizeof rec.phase, "%s", phase_name(r->phase));
    rec.lr = r->step > 0 ? r->last_lr : schedule_lr(&r->sched, 0);
    rec.has_original = 1;
    rec.original_mlm = r->original_mlm;
    rec.original = run_evaluate(r, TASK_ORIGINAL, r->x.eval.original_samples);
    if (r->phase == PHASE_FINETUNE) {
        rec.has_new = 1;
        rec.new_task = run_evaluate(r, TASK_NEW, r->x.eval.new_samples);
        if (lora_present(&r->model) || prompt_present(&r->model)) {
            /* One model deployed with the adapter (LoRA, prompt or prefix),
             * or the base with it swapped out: both are ways to serve the
             * original task. */
            int lora_was = lora_set_enabled(&r->model, 0);
            int prompt_was = prompt_set_enabled(&r->model, 0);
            rec.has_adapter_off = 1;
            rec.original_adapter_off = run_evaluate(r, TASK_ORIGINAL, r->x.eval.original_samples);
            lora_set_enabled(&r->model, lora_was);
            prompt_set_enabled(&r->model, prompt_was);
        }
    }
    if (r->loss_count > 0) {
        rec.has_train_loss = 1;
        rec.train_loss = r->loss_sum / r->loss_count;
    }
    r->loss_sum = 0.0;
    r->loss_count = 0;
    rec.ewc_lambda = r->phase == PHASE_FINETUNE ? r->ewc_lambda : 0.0;
    rec.elapsed_s = run_elapsed(r);
    rec.crossover_step = -1;
    if (history_push(&r->history, &rec, e) < 0)
        return -1;
    if (r->phase == PHASE_FINETUNE) {
        /* Causal: the moving averages use only evaluations up to this one,
         * so the crossover is known the moment it happens. */
        int cx = crossover_find(&r->history);
        rec.crossover_step = cx >= 0 ? r->history.v[cx].step : -1;
        r->history.v[r->history.n - 1].crossover_step = rec.crossover_step;
    }
    char *line = eval_record_json(&rec, r->branch);
    if (!line)
        return mn_fail(e, "out of memory");
    int bad = fprintf(r->metrics, "%s\n", line) < 0 || fflush(r->metrics) != 0;
    if (bad) {
        free(line);
        return mn_fail(e, "%s/metrics.jsonl: %s", r->dir, strerror(errno));
    }
    int kept = metrics_keep(r, line, strlen(line), e) < 0 ? -1 : metrics_keep(r, "\n", 1, e);
    free(line);
    if (kept < 0)
        return -1;
    if (r->phase == PHASE_FINETUNE) {
        char path[EXP_PATH + 32];
        if (stop_update(r, &rec) && checkpoint_or_pause(r, "best", e) < 0)
            return -1;
        path_in_run(r, path, sizeof path, "summary.json");
        if (write_summary(r, path, "running", e) < 0)
            return -1;
    }
    if (r->hooks.on_eval)
        r->hooks.on_eval(r->hooks.ctx, r, &rec);
    return call_policy(r, "on_eval", NULL, 0, e);
}

static int is_checkpoint_name(const char *name, const char *prefix, long *step)
{
    size_t pl = strlen(prefix);
    char *end;
    if (strncmp(name, prefix, pl) != 0)
        return 0;
    errno = 0;
    *step = strtol(name + pl, &end, 10);
    return !errno && end != name + pl && strcmp(end, ".safetensors") == 0;
}

/* Drops the oldest numbered checkpoints of the current phase beyond
 * checkpoint.keep; base.safetensors is never dropped. */
static void prune_checkpoints(Run *r, const char *prefix)
{
    char dir[EXP_PATH + 32], path[EXP_PATH + 320];
    long steps[4096];
    int n = 0;
    path_in_run(r, dir, sizeof dir, "checkpoints");
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *de; (de = readdir(d)) && n < 4096;) {
        long s;
        if (is_checkpoint_name(de->d_name, prefix, &s))
            steps[n++] = s;
    }
    closedir(d);
    for (int i = 0; i < n; i++) {
        int newer = 0;
        for (int j = 0; j < n; j++)
            newer += steps[j] > steps[i];
        if (newer >= r->x.checkpoint.keep) {
            snprintf(path, sizeof path, "%s/%s%ld.safetensors", dir, prefix, steps[i]);
            unlink(path);
        }
    }
}

static int save_checkpoint(Run *r, const char *name, MnError *e)
{
    char path[EXP_PATH + 320];
    RunStateRecord st;
    memset(&st, 0, sizeof st);
    snprintf(st.phase, sizeof st.phase, "%s", phase_name(r->phase));
    st.step = r->step;
    st.sampler_epoch = r->sampler.epoch;
    st.sampler_cursor = r->sampler.cursor;
    st.replay_epoch = r->replay_rows ? r->replay.epoch : 0;
    st.replay_cursor = r->replay_rows ? r->replay.cursor : 0;
    st.rng_state = r->rng.state;
    st.loss_sum = r->loss_sum;
    st.loss_count = r->loss_count;
    st.elapsed_s = run_elapsed(r);
    st.finetune_s = r->finetune_seconds;
    st.events_lines = r->events.lines;
    st.ewc_lambda = r->ewc_lambda;
    st.lr_override = r->lr_override;
    st.lr_peak = r->sched.peak;
    st.lr = r->lr_value;
    if (r->policy)
        policy_params_text(r->policy, st.policy_params, sizeof st.policy_params);
    st.metrics = r->metrics_text;
    st.n_recent = r->n_recent;
    memcpy(st.recent, r->recent, (size_t)r->n_recent * sizeof st.recent[0]);
    /* the logs must hold at least what the checkpoint says they do */
    if (r->metrics && (fflush(r->metrics) != 0 || fsync(fileno(r->metrics)) != 0))
        return mn_fail(e, "%s/metrics.jsonl: %s", r->dir, strerror(errno));
    if (events_sync(&r->events, e) < 0)
        return mn_wrap(e, "%s", r->dir);
    if (name)
        snprintf(path, sizeof path, "%s/checkpoints/%s.safetensors", r->dir, name);
    else
        snprintf(path, sizeof path, "%s/checkpoints/%s%ld.safetensors", r->dir,
                 r->phase == PHASE_BASE ? "base-step-" : "step-", r->step);
    if (checkpoint_save(path, &r->model, &r->opt, &st, r->labels, e) < 0)
        return -1;
    if (!name)
        prune_checkpoints(r, r->phase == PHASE_BASE ? "base-step-" : "step-");
    snprintf(r->last_checkpoint, sizeof r->last_checkpoint, "%s", path);
    return 0;
}

int run_keep_checkpoint(Run *r, const char *path, const char *kind, MnError *e)
{
    const char *base = strrchr(path, '/');
    char dst[EXP_PATH + 400];
    base = base ? base + 1 : path;
    if (strncmp(base, "step-", 5) != 0)
        return 0;            /* base, final and named ones are never rotated */
    snprintf(dst, sizeof dst, "%s/checkpoints/%s-%s", r->dir, kind, base);
    if (access(dst, F_OK) == 0)
        unlink(dst);         /* one of an earlier process at the same step */
    return link_or_copy(path, dst, e);
}

int run_save_state(Run *r, MnError *e)
{
    return save_checkpoint(r, NULL, e);
}

int run_checkpoint(Run *r, const char *name, MnError *e)
{
    if (save_checkpoint(r, name, e) < 0)
        return -1;
    return call_policy(r, "on_checkpoint", r->last_checkpoint, 0, e);
}

/* A checkpoint that cannot be written (a full disk, say) pauses the run
 * instead of ending it: the previous checkpoint is intact, and the step
 * after the pause first tries again. Returns 1 when it paused. */
static int checkpoint_or_pause(Run *r, const char *name, MnError *e)
{
    MnError why;
    if (save_checkpoint(r, name, &why) < 0) {
        r->checkpoint_due = 1;
        snprintf(r->due_name, sizeof r->due_name, "%s", name ? name : "");
        snprintf(r->pause_reason, sizeof r->pause_reason,
                 "checkpoint failed (the previous one is intact): %s", why.msg);
        logf_(r, "error: %s", r->pause_reason);
        return 1;
    }
    r->checkpoint_due = 0;
    return call_policy(r, "on_checkpoint", r->last_checkpoint, 0, e) < 0 ? -1 : 0;
}

/* The Fisher goes with the run, so a resumed run does not recompute it. */
static int fisher_path(const Run *r, char *out, size_t n)
{
    return snprintf(out, n, "%s/checkpoints/fisher.safetensors", r->dir) >= (int)n ? -1 : 0;
}

static int fisher_save(const Run *r, MnError *e)
{
    char path[EXP_PATH + 64];
    const Model *m = &r->model;
    StTensorOut *t = calloc((size_t)m->n_tensors, sizeof *t);
    if (!t || fisher_path(r, path, sizeof path) < 0) {
        free(t);
        return mn_fail(e, "out of memory");
    }
    for (int i = 0; i < m->n_tensors; i++) {
        t[i].name = m->tensors[i].name;
        t[i].ndim = m->tensors[i].ndim;
        t[i].shape[0] = m->tensors[i].shape[0];
        t[i].shape[1] = m->tensors[i].shape[1];
        t[i].data = r->fisher + m->tensors[i].offset;
    }
    StMeta meta[] = { { "mneme.content", "diagonal Fisher of the original task" },
                      { "mneme.fisher", r->x.finetune.ewc.fisher } };
    int rc = safetensors_write(path, t, m->n_tensors, meta, 2, e);
    free(t);
    return rc;
}

static int fisher_load(Run *r, MnError *e)
{
    char path[EXP_PATH + 64];
    StFile f;
    const Model *m = &r->model;
    if (fisher_path(r, path, sizeof path) < 0 || safetensors_read(&f, path, e) < 0)
        return -1;
    for (int i = 0; i < m->n_tensors; i++) {
        const ParamTensor *pt = &m->tensors[i];
        int64_t shape[2] = { pt->shape[0], pt->shape[1] };
        if (safetensors_get_f32(&f, pt->name, r->fisher + pt->offset, pt->ndim, shape, e) < 0) {
            safetensors_free(&f);
            return mn_wrap(e, "%s", path);
        }
    }
    safetensors_free(&f);
    return 0;
}

/* What the finetune phase needs besides the data stream: the weights it
 * started from (θ*, for EWC, L2-SP and drift) and, for EWC, the Fisher. */
/* The gradient of the MLM loss of a batch of training text, for EWC. */
static int mlm_fisher_grad(void *ctx, Model *m, Batch *b, MnError *e)
{
    Run *r = ctx;
    double loss;
    return mlm_train_step(m, &r->mlm_head, b, 1.0f, &loss, e);
}

/* EWC's Fisher, when the experiment or a policy may use it: loaded from
 * the run folder (not fresh) or estimated at the weights fine-tuning
 * started from. */
static int ensure_fisher(Run *r, int fresh, MnError *e)
{
    const Experiment *x = &r->x;
    /* A policy may raise lambda at any step, so it gets a Fisher too. */
    if ((x->finetune.ewc.lambda <= 0 && !r->policy) || r->fisher)
        return 0;
    r->fisher = calloc(r->model.n_params, sizeof(float));
    if (!r->fisher)
        return mn_fail(e, "out of memory for the Fisher");
    /* The model's own head with only a held-out set: no original-task
     * examples to estimate it from. A policy's EWC then pulls nothing. */
    if (!r->train[TASK_ORIGINAL].n) {
        if (x->finetune.ewc.lambda > 0)
            return mn_fail(e, "finetune.ewc.lambda needs original.train: the Fisher is "
                           "estimated on original-task examples");
        return 0;
    }
    char path[EXP_PATH + 64];
    if (!fresh && (fisher_path(r, path, sizeof path) < 0 || access(path, F_OK) == 0))
        return fisher_load(r, e);
    /* Fresh, or a branch that turns EWC on where its parent had none: the
     * Fisher belongs to the weights fine-tuning started from. */
    float *now = fresh ? NULL : malloc(r->model.n_params * sizeof(float));
    if (!fresh) {
        if (!now)
            return mn_fail(e, "out of memory for the Fisher");
        memcpy(now, r->model.params, r->model.n_params * sizeof(float));
        memcpy(r->model.params, r->anchor, r->model.n_params * sizeof(float));
        model_params_changed(&r->model);
    }
    FisherMode mode = strcmp(x->finetune.ewc.fisher, "batch") == 0 ? FISHER_BATCH : FISHER_EMPIRICAL;
    /* masked-language modelling: the Fisher of the MLM loss */
    int rc = ewc_fisher_with(&r->model, &r->train[TASK_ORIGINAL], TASK_ORIGINAL,
                             x->finetune.ewc.fisher_samples, mode, &r->eval_batch, r->fisher,
                             r->original_mlm ? mlm_fisher_grad : NULL, r, e);
    if (now) {
        memcpy(r->model.params, now, r->model.n_params * sizeof(float));
        model_params_changed(&r->model);
        free(now);
    }
    if (rc < 0)
        return -1;
    logf_(r, "EWC: %s Fisher from %d original-task examples", x->finetune.ewc.fisher,
          x->finetune.ewc.fisher_samples < r->train[TASK_ORIGINAL].n ?
          x->finetune.ewc.fisher_samples : r->train[TASK_ORIGINAL].n);
    return fisher_save(r, e);
}

static int start_regularizers(Run *r, int fresh, MnError *e)
{
    r->ewc_lambda = r->x.finetune.ewc.lambda;
    r->stop_best = INFINITY;
    r->stop_best_step = -1;
    r->stop_bad = 0;
    r->stop_reason[0] = 0;
    return ensure_fisher(r, fresh, e);
}

static int begin_finetune(Run *r, MnError *e)
{
    r->phase = PHASE_FINETUNE;
    r->step = 0;
    r->n_recent = 0;
    r->loss_sum = 0.0;
    r->loss_count = 0;
    r->finetune_seconds = 0.0;
    adamw_reset(&r->opt);
    memcpy(r->anchor, r->model.params, r->model.n_params * sizeof(float));
    r->lr_override = 0;
    if (enter_phase(r, e) < 0 || start_regularizers(r, 1, e) < 0)
        return -1;
    if (r->policy && (save_policy_source(r, e) < 0 || call_policy(r, "setup", NULL, 0, e) < 0))
        return -1;
    logf_(r, "finetune: %ld steps on the new task (%d examples), evaluating both tasks every %d steps",
          r->total_steps, r->train[TASK_NEW].n, r->x.eval.every);
    /* The evaluation before the first step is the baseline that forgetting
     * is measured against: the base model itself, so randomly initialised
     * prompt or prefix vectors stay out of it (LoRA's B starts at zero). */
    int prompt_was = prompt_set_enabled(&r->model, 0);
    int rc = record_eval(r, e);
    prompt_set_enabled(&r->model, prompt_was);
    if (rc < 0)
        return -1;
    return checkpoint_or_pause(r, "base", e) < 0 ? -1 : 0;
}

static int finish(Run *r, MnError *e)
{
    char path[EXP_PATH + 32];
    /* every rank ends here at the same step: the one place to compare
     * their weights, which must be identical */
    Dist *d = r->hooks.dist;
    if (d && d->size > 1) {
        int same;
        if (dist_agree(d, r->model.params, r->model.n_params, &same, e) < 0)
            return -1;
        r->ranks_agree = same;
        if (!same)
            logf_(r, "warning: the %d ranks ended with different weights: a fault of the "
                  "reductions, please report it", d->size);
    }
    r->phase = PHASE_DONE;
    int rc = checkpoint_or_pause(r, "final", e);
    if (rc) {
        /* Not done until the final checkpoint is: the next call ends it. */
        r->phase = PHASE_FINETUNE;
        r->checkpoint_due = 0;
        return rc < 0 ? -1 : 2;
    }
    path_in_run(r, path, sizeof path, "summary.json");
    if (write_summary(r, path, "finished", e) < 0)
        return -1;
    if (r->stop_reason[0])
        logf_(r, "stopped early: %s", r->stop_reason);
    logf_(r, "finished in %.1f s; summary in %s", run_elapsed(r), path);
    /* Last, as it changes the weights: the run is over, so the adapters
     * can be folded in place. */
    if (lora_present(&r->model) && r->x.finetune.lora.merge) {
        lora_merge(&r->model);
        path_in_run(r, path, sizeof path, "checkpoints/merged.safetensors");
        if (checkpoint_export(path, &r->model, r->labels, e) < 0)
            return -1;
        logf_(r, "merged weights for export in %s", path);
    }
    return 1;
}

/* Takes the state a checkpoint recorded (not the tensors: checkpoint_load
 * has put those in place). */
static void apply_state(Run *r, Phase p, const RunStateRecord *st)
{
    r->step = st->step;
    if (p != PHASE_DONE)
        sampler_seek(&r->sampler, st->sampler_epoch, st->sampler_cursor);
    if (r->replay_rows)
        sampler_seek(&r->replay, st->replay_epoch, st->replay_cursor);
    r->rng.state = st->rng_state;
    /* What hands and policies changed stands as it was at the checkpoint. */
    if (st->has_groups && st->n_groups == r->model.n_groups)
        for (int g = 0; g < st->n_groups; g++) {
            r->model.groups[g].trainable = st->trainable[g];
            r->model.groups[g].lr_scale = st->lr_scale[g];
        }
    r->lr_override = st->lr_override;
    r->lr_value = st->lr;
    /* A rate changed by hand (:set finetune.lr) stands after a resume. */
    if (st->lr_peak > 0)
        r->sched.peak = (float)st->lr_peak;
    r->loss_sum = st->loss_sum;
    r->loss_count = st->loss_count;
    r->finetune_seconds = p == PHASE_BASE ? 0.0 : st->finetune_s;
    r->n_recent = st->n_recent;
    memcpy(r->recent, st->recent, (size_t)st->n_recent * sizeof r->recent[0]);
    if (p == PHASE_FINETUNE)
        r->ewc_lambda = st->ewc_lambda;
    /* the parameters set by hand, which the file does not hold */
    if (r->policy)
        policy_params_restore(r->policy, st->policy_params);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Whether the training loss just taken has diverged: it is not finite,
 * or the mean of the last five is stop.diverge times the median of the
 * stop.diverge_window losses before them and above a uniform guess's
 * loss (so that a loss near zero may jump tenfold without counting).
 * Sets *median to that median (NAN when not taken). */
#define DIVERGE_LAST 5
static int diverged(Run *r, float loss, double *mean, double *median)
{
    const int w = r->x.stop.diverge_window, keep = w + DIVERGE_LAST;
    *mean = *median = NAN;
    if (r->n_recent == keep || r->n_recent == CHECKPOINT_RECENT_LOSSES) {
        memmove(r->recent, r->recent + 1, (size_t)(r->n_recent - 1) * sizeof r->recent[0]);
        r->n_recent--;
    }
    r->recent[r->n_recent++] = loss;
    if (!isfinite(loss))
        return 1;
    if (r->x.stop.diverge <= 0 || r->n_recent < keep)
        return 0;
    *mean = 0.0;
    for (int i = w; i < keep; i++)
        *mean += r->recent[i] / (double)DIVERGE_LAST;
    const int labels = r->labels[phase_task(r)].n_labels;
    if (!(*mean > log(labels > 1 ? labels : 2)))
        return 0;
    float sorted[CHECKPOINT_RECENT_LOSSES];
    memcpy(sorted, r->recent, (size_t)w * sizeof sorted[0]);
    qsort(sorted, (size_t)w, sizeof sorted[0], cmp_float);
    *median = w % 2 ? sorted[w / 2] : 0.5 * ((double)sorted[w / 2 - 1] + sorted[w / 2]);
    return *mean > r->x.stop.diverge * *median;
}

static int list_checkpoints(const char *dir, CkName **out, int *n_out);
static int open_metrics(Run *r, const char *mode, MnError *e);
static int rewind_metrics(Run *r, Phase phase, long step, const char *ck_lines, MnError *e);
static int shape_differs(const ModelConfig *ck, const ModelConfig *m, char *out, size_t n);
static int open_run_folder(Run *r, const Experiment *x, const char *dir, const RunHooks *hooks,
                           MnError *e);

/* Loads checkpoints/<name> into the model and optimizer, its run state
 * into *st and its phase into *p, with a copy of the metrics lines it
 * holds (*metrics, NULL in older files; the caller frees). Returns 0;
 * -2 when the file is intact but of another shape than the run's model;
 * -1 when it is damaged (the model may hold part of it). why says what,
 * naming the file. */
static int load_run_checkpoint(Run *r, const char *name, RunStateRecord *st, Phase *p,
                               char **metrics, MnError *why)
{
    char path[EXP_PATH + 320], differs[256];
    StFile f;
    ModelConfig cfg;
    *metrics = NULL;
    snprintf(path, sizeof path, "%s/checkpoints/%s", r->dir, name);
    if (safetensors_read(&f, path, why) < 0)
        return -1;
    int rc = checkpoint_read_config(&f, &cfg, NULL, why);
    if (rc == 0 && shape_differs(&cfg, &r->model.cfg, differs, sizeof differs)) {
        safetensors_free(&f);
        snprintf(why->msg, sizeof why->msg, "%s", differs);
        return -2;
    }
    if (rc == 0)
        rc = checkpoint_load(&f, &r->model, &r->opt, st, why);
    if (rc == 0 && phase_parse(st->phase, p) < 0)
        rc = mn_fail(why, "unknown phase");
    const char *m = rc == 0 ? safetensors_meta(&f, "mneme.metrics") : NULL;
    if (m && !(*metrics = strdup(m)))
        rc = mn_fail(why, "out of memory");
    safetensors_free(&f);
    return rc < 0 ? mn_wrap(why, "%s", path) : 0;
}

/* The early-stopping state, replayed over the history: as it was when
 * each evaluation was made. */
static void replay_stop_rules(Run *r)
{
    r->stop_best = INFINITY;
    r->stop_best_step = -1;
    r->stop_bad = 0;
    r->stop_reason[0] = 0;
    for (int i = 0; i < r->history.n; i++)
        if (strcmp(r->history.v[i].phase, "finetune") == 0 && r->history.v[i].has_new)
            stop_update(r, &r->history.v[i]);
}

/* Puts the run back to checkpoints/<name> of its current phase: weights,
 * moments, data position, rates, the metrics up to it. Events stay: they
 * record what happened, the rollback among it. */
static int restore_checkpoint(Run *r, const char *name, MnError *e)
{
    RunStateRecord *st = malloc(sizeof *st);
    Phase p = r->phase;
    char *ck_metrics;
    if (!st)
        return mn_fail(e, "out of memory");
    int rc = load_run_checkpoint(r, name, st, &p, &ck_metrics, e);
    if (rc == -2)
        mn_wrap(e, "%s: another shape", name);
    rc = rc < 0 ? -1 : 0;
    if (rc == 0 && p != r->phase)
        rc = mn_fail(e, "%s: of another phase", name);
    if (rc == 0) {
        apply_state(r, p, st);
        if (r->metrics)
            fclose(r->metrics);
        r->metrics = NULL;
        rc = rewind_metrics(r, p, st->step, ck_metrics, e) < 0 ||
             open_metrics(r, "a", e) < 0 ? -1 : 0;
    }
    free(ck_metrics);
    free(st);
    if (rc < 0)
        return -1;
    if (p == PHASE_FINETUNE)
        replay_stop_rules(r);
    return 0;
}

/* The loss diverged at this step: back to the newest checkpoint of the
 * phase before it, and pause, so the rate can be lowered. Returns 2 (a
 * pause), or -1 when there is nothing to go back to. */
static int rollback(Run *r, float loss, double mean, double median, MnError *e)
{
    char dir[EXP_PATH + 32], why[200];
    const long at = r->step;
    CkName *cks;
    int n_cks;
    if (isfinite(loss))
        snprintf(why, sizeof why, "mean training loss %.3g over the last %d steps, over %g times "
                 "the median %.3g of the %d steps before", mean, DIVERGE_LAST, r->x.stop.diverge,
                 median, r->x.stop.diverge_window);
    else
        snprintf(why, sizeof why, "training loss became %f", (double)loss);
    path_in_run(r, dir, sizeof dir, "checkpoints");
    list_checkpoints(dir, &cks, &n_cks);
    json_t *ev = json_pack("{s:s, s:f}", "reason", why, "median", isfinite(median) ? median : -1.0);
    if (run_record(r, "run", "diverge", ev, e) < 0) {
        free(cks);
        return -1;
    }
    for (int i = 0; i < n_cks; i++) {
        MnError skip;
        if (cks[i].phase != r->phase || cks[i].step >= at)
            continue;
        if (restore_checkpoint(r, cks[i].name, &skip) < 0) {
            logf_(r, "rollback: skipping %s", skip.msg);
            continue;
        }
        const double lr = r->lr_override ? r->lr_value : r->sched.peak;
        snprintf(r->pause_reason, sizeof r->pause_reason,
                 "diverged at %s step %ld (%s); rolled back to step %ld (checkpoints/%s). Lower "
                 "the learning rate (:set finetune.lr %.2g) and go on; headless, go on in a branch: "
                 "mneme fork %.*s --name NAME --at %ld --set finetune.lr=%.2g",
                 phase_name(r->phase), at, why, r->step, cks[i].name, lr / 10,
                 (int)(sizeof r->pause_reason - 700), r->dir, r->step, lr / 10);
        free(cks);
        r->diverged_at = at;
        r->pause_is_error = 0;
        logf_(r, "%s", r->pause_reason);
        /* The policy may decide: what it changes (a lower rate, say) is
         * recorded as an event, and the run goes on with it. */
        const long events = r->events.lines;
        if (call_policy(r, "on_diverge", why, 0, e) < 0)
            return -1;
        if (!r->pause_is_error && r->events.lines > events &&
            strncmp(r->pause_reason, "diverged at", 11) == 0) {
            logf_(r, "policy %s went on from step %ld with its changes", policy_name(r->policy),
                  r->step);
            r->pause_reason[0] = 0;
            return 0;
        }
        return 2;
    }
    free(cks);
    return mn_fail(e, "diverged at %s step %ld (%s), with no checkpoint of the phase before it to "
                   "go back to; lower the learning rate", phase_name(r->phase), at, why);
}

int run_step(Run *r, MnError *e)
{
    if (r->phase == PHASE_DONE)
        return 1;
    /* Called again after a pause: the frontend has resumed. */
    if (!r->pause_is_error)
        r->pause_reason[0] = 0;
    r->diverged_at = -1;
    if (r->checkpoint_due) {
        char name[sizeof r->due_name];
        snprintf(name, sizeof name, "%s", r->due_name);
        int rc = checkpoint_or_pause(r, name[0] ? name : NULL, e);
        if (rc)
            return rc < 0 ? -1 : 2;
    }
    if (r->step >= r->total_steps) {
        int rc = r->phase == PHASE_BASE ? begin_finetune(r, e) : finish(r, e);
        return rc == 0 && r->pause_reason[0] ? 2 : rc;
    }

    if (r->policy && r->x.policy.watch &&
        file_mtime(r->x.finetune.policy) != r->policy_mtime) {
        MnError why;
        run_policy_reload(r, &why);   /* a failed reload is logged; the old policy goes on */
    }
    if (r->pause_is_error && r->pause_reason[0])
        return 2;
    if (call_policy(r, "on_step", NULL, 0, e) < 0)
        return -1;
    if (r->pause_is_error && r->pause_reason[0])
        return 2;

    const TrainRecipe *rc = recipe(r);
    int task = phase_task(r), fresh = rc->batch - r->replay_rows;
    int *replay_idx = r->idx + r->batch.cap;
    sampler_next(&r->sampler, r->idx, fresh);
    if (r->replay_rows)
        sampler_next(&r->replay, replay_idx, r->replay_rows);
    double t0 = now_seconds();
    BatchPart parts[2] = {
        { &r->train[task], r->idx, fresh, task },
        { &r->train[TASK_ORIGINAL], replay_idx, r->replay_rows, TASK_ORIGINAL },
    };
    /* MLM replay rows go through the MLM head in a batch of their own */
    const int mlm_replay = r->replay_rows && r->original_mlm && r->phase == PHASE_FINETUNE;
    batch_fill_parts(&r->batch, parts, r->replay_rows && !mlm_replay ? 2 : 1);
    model_zero_grads(&r->model);
    /* Dropout masks follow from the seed and the step alone, so a resumed
     * run draws the same ones. */
    r->model.training = 1;
    r->model.dropout_seed = r->x.seed * 0x9E3779B97F4A7C15ULL + (unsigned long long)r->step +
                            ((unsigned long long)r->phase << 40);
    float loss = model_forward(&r->model, &r->batch);
    if (mlm_replay) {
        /* each row weighs alike: the new rows' mean and the MLM rows'
         * mean (each row's over its masked tokens) by their shares */
        const float rows = (float)(fresh + r->replay_rows);
        double mlm_loss;
        model_backward_scaled(&r->model, &r->batch, (float)fresh / rows);
        batch_fill(&r->mlm_batch, &r->train[TASK_ORIGINAL], replay_idx, r->replay_rows,
                   TASK_ORIGINAL);
        if (mlm_train_step(&r->model, &r->mlm_head, &r->mlm_batch, (float)r->replay_rows / rows,
                           &mlm_loss, e) < 0) {
            r->model.training = 0;
            return -1;
        }
        loss = (float)((fresh * (double)loss + r->replay_rows * mlm_loss) / rows);
    } else
        model_backward(&r->model, &r->batch);
    r->model.training = 0;
    if (r->phase == PHASE_FINETUNE) {
        if (r->fisher && r->ewc_lambda > 0)
            ewc_add_grad(&r->model, r->anchor, r->fisher, r->ewc_lambda);
        if (r->x.finetune.l2sp.alpha > 0)
            ewc_add_grad(&r->model, r->anchor, NULL, r->x.finetune.l2sp.alpha);
    }
    grad_clip(&r->model, r->clip_norm);
    r->last_lr = r->lr_override ? (float)r->lr_value : schedule_lr(&r->sched, r->step);
    adamw_step(&r->opt, &r->model, r->last_lr);
    const double dt = now_seconds() - t0;
    r->step_seconds += dt;
    if (r->phase == PHASE_FINETUNE)
        r->finetune_seconds += dt;
    r->step++;
    r->last_train_loss = loss;
    r->loss_sum += loss;
    r->loss_count++;
    double mean, median;
    if (diverged(r, loss, &mean, &median))
        return rollback(r, loss, mean, median, e);

    if (r->step % r->x.eval.every == 0 || r->step == r->total_steps)
        if (record_eval(r, e) < 0)
            return -1;
    if (r->stop_reason[0])
        return finish(r, e);
    if (r->pause_reason[0])
        return 2;
    if (r->x.checkpoint.every > 0 && r->step % r->x.checkpoint.every == 0 &&
        r->step < r->total_steps) {
        int paused = checkpoint_or_pause(r, NULL, e);
        if (paused)
            return paused < 0 ? -1 : 2;
    }
    return 0;
}

static int open_metrics(Run *r, const char *mode, MnError *e)
{
    char path[EXP_PATH + 32];
    path_in_run(r, path, sizeof path, "metrics.jsonl");
    r->metrics = fopen(path, mode);
    if (!r->metrics)
        return mn_fail(e, "%s: %s", path, strerror(errno));
    return 0;
}

/* A run from base.from keeps the model's config and tokenizer files in
 * hf/, where predict and export find them. (A resume reads base.from
 * again: its weights are the start of the run, and the MLM head.) */
static int copy_model_files(Run *r, MnError *e)
{
    static const char *const files[] = { "config.json", "vocab.txt", "tokenizer_config.json",
                                         "special_tokens_map.json" };
    char dst[EXP_PATH + 64], src[EXP_PATH + 64];
    path_in_run(r, dst, sizeof dst, "hf");
    if (make_dirs(dst, e) < 0)
        return -1;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(src, sizeof src, "%s/%s", r->x.base.from, files[i]);
        snprintf(dst, sizeof dst, "%s/hf/%s", r->dir, files[i]);
        if (i >= 2 && access(src, F_OK) != 0)
            continue;              /* optional */
        if (copy_file(src, dst, e) < 0)
            return -1;
    }
    return 0;
}

int run_create(Run *r, const Experiment *x, const char *dir,
               const RunHooks *hooks, MnError *e)
{
    char path[EXP_PATH + 32];
    struct stat st;
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    if (stat(path, &st) == 0) {
        memset(r, 0, sizeof *r);
        return mn_fail(e, "%s already holds a run; continue it with --resume or choose another --out", dir);
    }
    /* refused input must not leave a folder behind that it made */
    const int made = stat(dir, &st) != 0;
    snprintf(path, sizeof path, "%s/checkpoints", dir);
    if (make_dirs(path, e) < 0) {
        memset(r, 0, sizeof *r);
        return -1;
    }
    int rc = open_run_folder(r, x, dir, hooks, e);
    if (rc < 0) {
        /* not when another process holds the folder (no lock taken) */
        if (made && r->has_lock)
            remove_tree(dir);
        return -1;
    }
    /* another process may have started it while this one read its data */
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    if (stat(path, &st) == 0)
        return mn_fail(e, "%s already holds a run; continue it with --resume or choose another --out", dir);
    logf_(r, "run folder %s", dir);
    path_in_run(r, path, sizeof path, "experiment.cfg");
    if (experiment_write(x, path, e) < 0 || open_metrics(r, "w", e) < 0 ||
        events_open(&r->events, dir, -1, e) < 0)
        return -1;
    /* what the numbers depend on besides experiment.cfg (a replay uses it) */
    if (hooks && hooks->dist && hooks->dist->size > 1 &&
        run_record(r, "run", "start", json_pack("{s:i, s:i}", "ranks", hooks->dist->size,
                                                "threads", x->threads), e) < 0)
        return -1;
    if (x->base.checkpoint[0]) {
        StFile f;
        if (safetensors_read(&f, x->base.checkpoint, e) < 0)
            return -1;
        rc = checkpoint_load(&f, &r->model, NULL, NULL, e);
        safetensors_free(&f);
        if (rc < 0)
            return mn_wrap(e, "base.checkpoint %s", x->base.checkpoint);
        logf_(r, "base: loaded %s", x->base.checkpoint);
        return begin_finetune(r, e);
    }
    if (x->base.from[0]) {
        if (copy_model_files(r, e) < 0)
            return -1;
        logf_(r, "base: %s (%s, %d layers, hidden %d, %d tokens in vocab.txt)", x->base.from,
              hf_model_type(r->model.cfg.arch), r->model.cfg.layers, r->model.cfg.hidden,
              r->tok.vocab_size);
        if (r->own_head) {
            logf_(r, "base: the model's own head is the original task (%d labels)",
                  r->labels[TASK_ORIGINAL].n_labels);
            return begin_finetune(r, e);
        }
        if (r->original_mlm) {
            logf_(r, "base: the original task is masked-language modelling on %s (%d held-out "
                  "text%s with %ld masked pieces, %d others)", x->original.mlm,
                  r->eval[TASK_ORIGINAL].n, r->eval[TASK_ORIGINAL].n == 1 ? "" : "s",
                  mlm_masked(&r->eval[TASK_ORIGINAL]), r->train[TASK_ORIGINAL].n);
            return begin_finetune(r, e);
        }
    }
    r->phase = PHASE_BASE;
    if (enter_phase(r, e) < 0)
        return -1;
    logf_(r, "base: pretraining on the original task, %ld steps (%d examples)",
          r->total_steps, r->train[TASK_ORIGINAL].n);
    return 0;
}

/* The finetune phase's anchor comes from base.safetensors (the weights
 * fine-tuning started from); the stop rules are replayed over the history
 * so that they resume in the state they were in. */
static int resume_finetune_state(Run *r, const char *dir, MnError *e)
{
    char path[EXP_PATH + 64];
    StFile f;
    Model tmp;
    snprintf(path, sizeof path, "%s/checkpoints/base.safetensors", dir);
    if (safetensors_read(&f, path, e) < 0)
        return -1;
    /* Load into a model of the same shape, then copy: the run's model
     * already holds the resumed weights. */
    int rc = model_create(&tmp, &r->model.cfg, 1, e);
    if (rc == 0)
        rc = checkpoint_load(&f, &tmp, NULL, NULL, e);
    if (rc == 0)
        memcpy(r->anchor, tmp.params, r->model.n_params * sizeof(float));
    safetensors_free(&f);
    model_free(&tmp);
    if (rc < 0 || start_regularizers(r, 0, e) < 0)
        return -1;
    replay_stop_rules(r);
    return 0;
}

/* Newest first: finished, then finetune steps, base, then base steps. */
static int ck_rank(const CkName *c)
{
    return c->phase == PHASE_DONE ? 3 : c->phase == PHASE_FINETUNE ? 2 : 1;
}

static int ck_newer_first(const void *a, const void *b)
{
    const CkName *x = a, *y = b;
    if (ck_rank(x) != ck_rank(y))
        return ck_rank(y) - ck_rank(x);
    return (y->step > x->step) - (y->step < x->step);
}

static int list_checkpoints(const char *dir, CkName **out, int *n_out)
{
    DIR *d = opendir(dir);
    CkName *v = NULL;
    int n = 0, cap = 0;
    *out = NULL;
    *n_out = 0;
    if (!d)
        return 0;
    for (struct dirent *de; (de = readdir(d));) {
        CkName c;
        memset(&c, 0, sizeof c);
        if (strstr(de->d_name, ".tmp.")) {
            /* a write cut short by a crash: never complete, never needed */
            char stale[4096];
            snprintf(stale, sizeof stale, "%s/%s", dir, de->d_name);
            unlink(stale);
            continue;
        }
        if (is_checkpoint_name(de->d_name, "step-", &c.step))
            c.phase = PHASE_FINETUNE;
        else if (is_checkpoint_name(de->d_name, "base-step-", &c.step))
            c.phase = PHASE_BASE;
        else if (strcmp(de->d_name, "base.safetensors") == 0)
            c.phase = PHASE_FINETUNE, c.step = 0;
        else if (strcmp(de->d_name, "final.safetensors") == 0)
            c.phase = PHASE_DONE;
        else
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            CkName *nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv)
                break;
            v = nv;
        }
        snprintf(c.name, sizeof c.name, "%s", de->d_name);
        v[n++] = c;
    }
    closedir(d);
    if (n > 1)
        qsort(v, (size_t)n, sizeof *v, ck_newer_first);
    *out = v;
    *n_out = n;
    return 0;
}

/* Says what rewind_metrics found wrong with a line, the first few times. */
static void report_line(Run *r, int *reported, long lineno, const char *what)
{
    if (++*reported <= 5)
        logf_(r, "%s/metrics.jsonl:%ld: %s", r->dir, lineno, what);
    else if (*reported == 6)
        logf_(r, "%s/metrics.jsonl: more damaged lines; each was handled the same way", r->dir);
}

/* Rewrites metrics.jsonl to the evaluations the checkpoint had seen and
 * fills the history from them, so a resumed run appends without
 * duplicates or gaps. The checkpoint's own copy of the lines (ck_lines)
 * is the truth: a line of the file that is damaged, cut short or missing
 * is restored from it, and said so. A checkpoint from before it kept that
 * copy leaves the file as the only source: a damaged line is skipped (and
 * said so), every intact one up to the checkpoint kept. */
static int rewind_metrics(Run *r, Phase phase, long step, const char *ck_lines, MnError *e)
{
    char path[EXP_PATH + 32];
    path_in_run(r, path, sizeof path, "metrics.jsonl");
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int reported = 0, rc = 0;
    const char *ck = ck_lines;
    r->metrics_len = 0;
    if (!f && errno != ENOENT)
        return mn_fail(e, "%s: %s", path, strerror(errno));
    while (f && (len = getline(&line, &cap, f)) > 0) {
        EvalRecord rec;
        Phase p;
        lineno++;
        const int whole = line[len - 1] == '\n';
        if (ck) {
            if (!*ck)
                break;              /* evaluations after the checkpoint */
            const char *nl = strchr(ck, '\n');
            size_t n = nl ? (size_t)(nl - ck) + 1 : strlen(ck);
            if (!whole || (size_t)len != n || memcmp(line, ck, n) != 0)
                report_line(r, &reported, lineno, "damaged; restored from the checkpoint");
            ck += n;
            continue;
        }
        if (!whole) {
            report_line(r, &reported, lineno, "cut short; dropped");
            break;
        }
        if (eval_record_parse(line, &rec, NULL) < 0 || phase_parse(rec.phase, &p) < 0) {
            report_line(r, &reported, lineno, "damaged; skipped");
            continue;
        }
        if (p > phase || (p == phase && rec.step > step))
            break;
        if (metrics_keep(r, line, (size_t)len, e) < 0) {
            rc = -1;
            break;
        }
    }
    free(line);
    if (f)
        fclose(f);
    if (rc < 0)
        return -1;
    if (ck && *ck) {
        int missing = 0;
        for (const char *c = ck; *c; c++)
            missing += *c == '\n';
        logf_(r, "%s/metrics.jsonl: %d evaluation%s missing; restored from the checkpoint", r->dir,
              missing, missing == 1 ? "" : "s");
    }
    if (ck_lines && metrics_keep(r, ck_lines, strlen(ck_lines), e) < 0)
        return -1;
    /* the history, from what is now kept */
    history_free(&r->history);
    lineno = 0;
    for (const char *c = r->metrics_text; c && *c;) {
        const char *nl = strchr(c, '\n');
        size_t n = nl ? (size_t)(nl - c) : strlen(c);
        char *one = strndup(c, n);
        EvalRecord rec;
        MnError why;
        lineno++;
        if (!one)
            return mn_fail(e, "out of memory");
        int bad = eval_record_parse(one, &rec, &why);
        free(one);
        if (bad < 0)
            return mn_fail(e, "the checkpoint's copy of metrics.jsonl is malformed at line %ld: %s",
                           lineno, why.msg);
        if (history_push(&r->history, &rec, e) < 0)
            return -1;
        c += nl ? n + 1 : n;
    }
    return write_file_atomic(path, r->metrics_text ? r->metrics_text : "", r->metrics_len, e);
}

/* The name a forked run was given, from its branch.json. */
static void read_branch_name(Run *r)
{
    char path[EXP_PATH + 32];
    json_error_t je;
    path_in_run(r, path, sizeof path, "branch.json");
    json_t *o = json_load_file(path, 0, &je);
    const char *name = json_string_value(json_object_get(o, "name"));
    if (name && *name)
        snprintf(r->branch, sizeof r->branch, "%s", name);
    json_decref(o);
}

/* Where a checkpoint's model differs from the one experiment.cfg builds:
 * the first field that does, or 0 when none does. */
static int shape_differs(const ModelConfig *ck, const ModelConfig *m, char *out, size_t n)
{
    const struct { const char *name; int a, b; } f[] = {
        { "model.vocab", ck->vocab, m->vocab }, { "model.hidden", ck->hidden, m->hidden },
        { "model.layers", ck->layers, m->layers }, { "model.heads", ck->heads, m->heads },
        { "model.intermediate", ck->intermediate, m->intermediate },
        { "model.max_len", ck->max_len, m->max_len },
        { "type_vocab", ck->type_vocab, m->type_vocab }, { "heads", ck->n_tasks, m->n_tasks },
        { "finetune.lora.r", ck->lora_r, m->lora_r },
        { "prompt tokens", ck->prompt_tokens, m->prompt_tokens },
        { "prefix tokens", ck->prefix_tokens, m->prefix_tokens },
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].a != f[i].b) {
            snprintf(out, n, "%s is %d there, %d here", f[i].name, f[i].a, f[i].b);
            return 1;
        }
    for (int k = 0; k < ck->n_tasks; k++)
        if (ck->n_labels[k] != m->n_labels[k]) {
            snprintf(out, n, "the %s task has %d labels there, %d here", ck->task_name[k],
                     ck->n_labels[k], m->n_labels[k]);
            return 1;
        }
    return 0;
}

/* Files a write cut short by a crash left in the run folder (summary.json's,
 * metrics.jsonl's): never complete, never needed. */
static void remove_stale_temporaries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *de; (de = readdir(d));)
        if (strstr(de->d_name, ".tmp.")) {
            char stale[EXP_PATH + 300];
            snprintf(stale, sizeof stale, "%s/%s", dir, de->d_name);
            unlink(stale);
        }
    closedir(d);
}

/* Everything in memory as a fresh start has it (the lock stays held). */
static int setup_again(Run *r, const Experiment *x, const char *dir, const RunHooks *hooks,
                       MnError *e)
{
    int fd = r->lock_fd;
    r->has_lock = 0;
    run_free(r);
    int rc = setup(r, x, dir, hooks, e);
    r->lock_fd = fd;
    r->has_lock = 1;
    return rc;
}

/* A finished run's summary (and merged weights) are written after its
 * final checkpoint: a crash between the two leaves them missing or stale,
 * so a resume writes them again. */
static int rewrite_finished(Run *r, MnError *e)
{
    char path[EXP_PATH + 48];
    path_in_run(r, path, sizeof path, "summary.json");
    if (write_summary(r, path, "finished", e) < 0)
        return -1;
    path_in_run(r, path, sizeof path, "checkpoints/merged.safetensors");
    if (lora_present(&r->model) && r->x.finetune.lora.merge && access(path, F_OK) != 0) {
        lora_merge(&r->model);
        if (checkpoint_export(path, &r->model, r->labels, e) < 0)
            return -1;
        logf_(r, "merged weights for export in %s", path);
    }
    return 0;
}

/* The policy the last "policy" event up to the checkpoint attached, in
 * place of experiment.cfg's. */
static void reattach_policy(Run *r)
{
    char path[EXP_PATH + 32], file[EXP_PATH] = "";
    path_in_run(r, path, sizeof path, "events.jsonl");
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    for (long i = 0; f && i < r->events.lines && getline(&line, &cap, f) > 0; i++) {
        json_t *o = json_loads(line, 0, NULL);
        const char *cmd = json_string_value(json_object_get(o, "command"));
        const char *fl = json_string_value(json_object_get(o, "file"));
        if (cmd && fl && !strcmp(cmd, "policy"))
            snprintf(file, sizeof file, "%s", fl);
        json_decref(o);
    }
    free(line);
    if (f)
        fclose(f);
    if (!file[0] || !strcmp(file, r->x.finetune.policy))
        return;
    Policy *old = r->policy;
    char was[EXP_PATH];
    MnError why;
    snprintf(was, sizeof was, "%s", r->x.finetune.policy);
    snprintf(r->x.finetune.policy, sizeof r->x.finetune.policy, "%s", file);
    r->policy = NULL;
    if (load_policy(r, &why) < 0) {
        logf_(r, "warning: the policy attached to this run does not load, %s runs instead: %s",
              was[0] ? was : "none", why.msg);
        r->policy = old;
        snprintf(r->x.finetune.policy, sizeof r->x.finetune.policy, "%s", was);
        return;
    }
    if (old)
        policy_free(old);
}

/* A run folder taken to continue in: its lock, the run of x set up, its
 * branch name, and what a crash left half-written cleared away. */
static int open_run_folder(Run *r, const Experiment *x, const char *dir, const RunHooks *hooks,
                           MnError *e)
{
    int fd = run_lock_take(dir, e);
    if (fd < 0) {
        memset(r, 0, sizeof *r);
        return -1;
    }
    int rc = setup(r, x, dir, hooks, e);
    r->lock_fd = fd;
    r->has_lock = 1;
    if (rc < 0)
        return -1;
    read_branch_name(r);
    remove_stale_temporaries(dir);
    return 0;
}

/* restart: record the continuation in events.jsonl, so that a replay
 * restarts at the same step (a restart starts the policy afresh). */
static int resume_at(Run *r, const char *dir, const RunHooks *hooks, int restart, MnError *e)
{
    char path[EXP_PATH + 320];
    Experiment x;
    CkName *cks;
    int n_cks;
    snprintf(path, sizeof path, "%s/experiment.cfg", dir);
    if (access(path, R_OK) < 0) {
        memset(r, 0, sizeof *r);
        return mn_fail(e, "%s: not a run folder (no readable experiment.cfg)", dir);
    }
    if (experiment_load(&x, path, NULL, 0, e) < 0) {
        memset(r, 0, sizeof *r);
        return -1;
    }
    /* the machine it continues on: threads split a batch as ranks do, so
     * the numbers follow the parts, ranks × threads (dist.h) */
    if (hooks && hooks->threads > 0)
        x.threads = hooks->threads;
    int rc;
    if (open_run_folder(r, &x, dir, hooks, e) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/checkpoints", dir);
    if (make_dirs(path, e) < 0)
        return -1;
    list_checkpoints(path, &cks, &n_cks);
    int tried = 0;
    for (int i = 0; i < n_cks; i++) {
        RunStateRecord st;
        MnError why;
        Phase p;
        char *ck_metrics;
        rc = load_run_checkpoint(r, cks[i].name, &st, &p, &ck_metrics, &why);
        /* An intact checkpoint of another shape means experiment.cfg was
         * changed: starting over would overwrite the run. */
        if (rc == -2) {
            mn_fail(e, "%s/experiment.cfg no longer matches the run's checkpoints (%s, in %s): "
                    "restore it, or start a new run with --out", dir, why.msg, cks[i].name);
            free(cks);
            return -1;
        }
        if (rc < 0) {
            free(ck_metrics);
            tried = 1;
            logf_(r, "skipping %s", why.msg);
            continue;
        }
        snprintf(path, sizeof path, "%s/checkpoints/%s", dir, cks[i].name);
        r->phase = p;
        if (enter_phase(r, e) < 0) {
            free(ck_metrics);
            free(cks);
            return -1;
        }
        apply_state(r, p, &st);
        r->elapsed_before = st.elapsed_s;
        /* the rate of the last step taken, for what shows it before the next */
        r->last_lr = r->lr_override ? (float)r->lr_value
                                    : schedule_lr(&r->sched, r->step > 0 ? r->step - 1 : 0);
        rc = rewind_metrics(r, p, st.step, ck_metrics, e);
        free(ck_metrics);
        if (rc < 0 || open_metrics(r, "a", e) < 0)
            return -1;
        if (events_open(&r->events, dir, st.events_lines, e) < 0)
            return -1;
        if (p == PHASE_FINETUNE) {
            reattach_policy(r);
            if (r->policy)
                policy_params_restore(r->policy, st.policy_params);
        }
        const int ranks = hooks && hooks->dist ? hooks->dist->size : 1;
        int bad = restart && p != PHASE_DONE &&
                  run_record(r, "run", "restart", json_pack("{s:s, s:i, s:i}", "checkpoint",
                             cks[i].name, "threads", x.threads, "ranks", ranks), e) < 0;
        free(cks);
        if (bad)
            return -1;
        if (p != PHASE_BASE && resume_finetune_state(r, dir, e) < 0)
            return -1;
        if (p == PHASE_FINETUNE) {
            r->ewc_lambda = st.ewc_lambda;
            /* The policy starts afresh; the checkpoint already holds what its
             * setup did the first time, so nothing it changes now is applied. */
            if (r->policy && (save_policy_source(r, e) < 0 || call_policy(r, "setup", NULL, 1, e) < 0))
                return -1;
        }
        logf_(r, "resumed from %s (%s step %ld)", path, st.phase, st.step);
        if (p == PHASE_DONE)
            return rewrite_finished(r, e);
        path_in_run(r, path, sizeof path, "summary.json");
        return p == PHASE_FINETUNE ? write_summary(r, path, "running", e) : 0;
    }
    free(cks);
    /* Nothing complete to continue from: start over, same seed, from the
     * state a new run has (a checkpoint that failed half-way through
     * loading has left its tensors behind). */
    logf_(r, "no complete checkpoint in %s/checkpoints: starting the run over", dir);
    if (tried && setup_again(r, &x, dir, hooks, e) < 0)
        return -1;
    if (rewind_metrics(r, PHASE_BASE, -1, "", e) < 0 || open_metrics(r, "w", e) < 0 ||
        events_open(&r->events, dir, -1, e) < 0)
        return -1;
    r->phase = PHASE_BASE;
    if (x.base.from[0] && (r->own_head || r->original_mlm))
        return begin_finetune(r, e);
    if (x.base.checkpoint[0]) {
        StFile f;
        if (safetensors_read(&f, x.base.checkpoint, e) < 0)
            return -1;
        rc = checkpoint_load(&f, &r->model, NULL, NULL, e);
        safetensors_free(&f);
        return rc < 0 ? -1 : begin_finetune(r, e);
    }
    return enter_phase(r, e);
}

int run_mark_ended(Run *r, const char *status, MnError *e)
{
    char path[EXP_PATH + 32];
    if (!r->metrics || r->phase == PHASE_DONE)
        return 0;
    path_in_run(r, path, sizeof path, "summary.json");
    return write_summary(r, path, status, e);
}

void run_free(Run *r)
{
    if (r->has_lock)
        run_lock_release(r->lock_fd);
    free(r->metrics_text);
    tokenizer_free(&r->tok);
    batch_free(&r->mlm_batch);
    mlm_head_free(&r->mlm_head);
    if (r->metrics)
        fclose(r->metrics);
    for (int k = 0; k < N_TASKS; k++) {
        dataset_free(&r->train[k]);
        dataset_free(&r->eval[k]);
    }
    sampler_free(&r->sampler);
    sampler_free(&r->replay);
    if (r->policy)
        policy_free(r->policy);
    events_close(&r->events);
    free(r->anchor);
    free(r->fisher);
    batch_free(&r->batch);
    batch_free(&r->eval_batch);
    free(r->idx);
    history_free(&r->history);
    adamw_free(&r->opt);
    model_free(&r->model);
    memset(r, 0, sizeof *r);
}

int run_resume(Run *r, const char *dir, const RunHooks *hooks, MnError *e)
{
    return resume_at(r, dir, hooks, 1, e);
}

/* ---- branches ----------------------------------------------------------- */

/* What the base was made with: no fork changes it. */
static const char *const fork_refused[] = {
    "seed", "model.", "original.", "new.", "base.", NULL
};
/* Keys under those that say how a run computes, not what its base is: a
 * branch may take bf16 where its parent ran fp32, and back. */
static const char *const fork_run_settings[] = { "model.precision", NULL };
/* What the checkpoint was trained with: a fork at the start of
 * fine-tuning may change it, and then begins fine-tuning afresh. */
static const char *const fork_restarts[] = {
    "finetune.method", "finetune.lora.", "finetune.virtual_tokens", "finetune.ewc.fisher", NULL
};

static int has_prefix_in(const char *key, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (strncmp(key, list[i], strlen(list[i])) == 0)
            return 1;
    return 0;
}

int run_override_restarts(const char *key)
{
    return has_prefix_in(key, fork_restarts);
}

int run_fork_override(const char *set, int at_start, char *key, size_t nk, char *value,
                      size_t nv, int *is_param, MnError *e)
{
    const char *eq = strchr(set, '=');
    if (!eq || eq == set)
        return mn_fail(e, "'%s': expected KEY=VALUE", set);
    char raw[180];
    snprintf(raw, sizeof raw, "%.*s", (int)(eq - set), set);
    snprintf(value, nv, "%s", eq + 1);
    *is_param = 0;
    const ExperimentKeyInfo *k = experiment_keys();
    int found = 0;
    for (int i = 0; k[i].key && !found; i++)
        if (strcmp(k[i].key, raw) == 0)
            found = 1;
    char longer[180];
    /* ewc.lambda, l2sp.alpha, replay.ratio, layer_decay, lr: the names
     * :set uses, for the finetune keys. */
    snprintf(longer, sizeof longer, "finetune.%.100s", raw);
    for (int i = 0; k[i].key && !found; i++)
        if (strcmp(k[i].key, longer) == 0) {
            found = 1;
            snprintf(raw, sizeof raw, "%.170s", longer);
        }
    if (!found && strncmp(raw, "policy.", 7) == 0 && raw[7]) {
        *is_param = 1;
        snprintf(key, nk, "%s", raw);
        return 0;
    }
    if (!found)
        return mn_fail(e, "%s: no such key (see mneme.cfg(5); policy.NAME sets a policy parameter)", raw);
    if (has_prefix_in(raw, fork_refused) && !has_prefix_in(raw, fork_run_settings))
        return mn_fail(e, "%s cannot change in a fork: the base was made with it", raw);
    if (!at_start && has_prefix_in(raw, fork_restarts))
        return mn_fail(e, "%s cannot change in a fork after fine-tuning began: the checkpoint "
                       "was trained with it (fork at step 0 to start afresh with it)", raw);
    snprintf(key, nk, "%s", raw);
    return 0;
}

/* The metrics lines before fine-tuning began: text cut where the first
 * finetune evaluation starts. */
static void cut_before_finetune(char *text)
{
    for (char *c = text; c && *c;) {
        char *nl = strchr(c, '\n');
        size_t n = nl ? (size_t)(nl - c) : strlen(c);
        char *one = strndup(c, n);
        EvalRecord rec;
        MnError why;
        int finetune = one && eval_record_parse(one, &rec, &why) == 0 &&
                       strcmp(rec.phase, "base") != 0;
        free(one);
        if (finetune) {
            *c = 0;
            return;
        }
        c += nl ? n + 1 : n;
    }
}

/* A fork at the start of fine-tuning that changes what is trained (the
 * method, the adapters, the Fisher) cannot resume the checkpoint, which
 * holds another model: fine-tuning begins afresh from its base weights
 * under the branch's experiment, as a run of that experiment from the
 * same base would, keeping the history and events before it. */
static int restart_finetune(Run *r, const char *dir, const RunHooks *hooks, MnError *e)
{
    char path[EXP_PATH + 320], differs[256];
    Experiment *x = malloc(sizeof *x);
    CkName *cks = NULL;
    int n_cks = 0;
    memset(r, 0, sizeof *r);
    if (!x)
        return mn_fail(e, "out of memory");
    snprintf(path, sizeof path, "%s/experiment.cfg", dir);
    int rc = experiment_load(x, path, NULL, 0, e) < 0 ? -1 : open_run_folder(r, x, dir, hooks, e);
    free(x);
    if (rc < 0)
        return -1;
    snprintf(path, sizeof path, "%s/checkpoints", dir);
    list_checkpoints(path, &cks, &n_cks);
    if (n_cks == 0 || cks[0].phase != PHASE_FINETUNE || cks[0].step != 0) {
        free(cks);
        return mn_fail(e, "%s: fine-tuning starts afresh only from its first checkpoint (step 0)",
                       dir);
    }
    snprintf(path, sizeof path, "%s/checkpoints/%s", dir, cks[0].name);
    free(cks);
    StFile f;
    ModelConfig cfg;
    long events_lines = 0;
    double elapsed = 0.0;
    char *lines = NULL;
    if (safetensors_read(&f, path, e) < 0)
        return -1;
    rc = checkpoint_read_config(&f, &cfg, NULL, e);
    /* the adapters are what changes; the base must be the same */
    cfg.lora_r = r->model.cfg.lora_r;
    cfg.prompt_tokens = r->model.cfg.prompt_tokens;
    cfg.prefix_tokens = r->model.cfg.prefix_tokens;
    if (rc == 0 && shape_differs(&cfg, &r->model.cfg, differs, sizeof differs))
        rc = mn_fail(e, "%s", differs);
    if (rc == 0)
        rc = checkpoint_load(&f, &r->model, NULL, NULL, e);
    if (rc == 0)
        rc = checkpoint_read_progress(&f, &events_lines, &elapsed, e);
    const char *m = rc == 0 ? safetensors_meta(&f, "mneme.metrics") : NULL;
    if (rc == 0 && !(lines = strdup(m ? m : "")))
        rc = mn_fail(e, "out of memory");
    safetensors_free(&f);
    if (rc < 0) {
        free(lines);
        return mn_wrap(e, "%s", path);
    }
    cut_before_finetune(lines);
    rc = rewind_metrics(r, PHASE_BASE, 0, lines, e);
    free(lines);
    if (rc < 0 || open_metrics(r, "a", e) < 0 || events_open(&r->events, dir, events_lines, e) < 0)
        return -1;
    r->elapsed_before = elapsed;
    /* the parent's Fisher belongs to another model; this one is made anew */
    fisher_path(r, path, sizeof path);
    unlink(path);
    logf_(r, "fine-tuning begins afresh from the base weights");
    return begin_finetune(r, e);
}

int run_continue_as_branch(Run *r, const char *dir, const char *base_cfg, const char *branch,
                           const char *parent, const char *const *sets, int n_sets,
                           int at_start, const char *source, const RunHooks *hooks, MnError *e)
{
    char path[EXP_PATH + 64], key[128], value[512], msg[256];
    int is_param, lr = 0, ewc = 0, groups = 0, policy = 0, fresh = 0;
    Experiment *x = malloc(sizeof *x);
    json_t *list = json_array();
    memset(r, 0, sizeof *r);
    if (!x || !list) {
        free(x);
        json_decref(list);
        return mn_fail(e, "out of memory");
    }
    int rc = experiment_load(x, base_cfg, NULL, 0, e);
    for (int i = 0; i < n_sets && rc == 0; i++) {
        char assign[700];
        rc = run_fork_override(sets[i], at_start, key, sizeof key, value, sizeof value,
                               &is_param, e);
        if (rc < 0)
            break;
        fresh |= !is_param && run_override_restarts(key);
        snprintf(assign, sizeof assign, "%s=%s", key, value);
        json_array_append_new(list, json_string(assign));
        if (is_param) {
            policy = 1;
            continue;
        }
        rc = experiment_set(x, assign, e);
        lr |= strcmp(key, "finetune.lr") == 0;
        ewc |= strcmp(key, "finetune.ewc.lambda") == 0;
        groups |= strncmp(key, "finetune.freeze.", 16) == 0 || strcmp(key, "finetune.layer_decay") == 0;
        policy |= strncmp(key, "finetune.policy", 15) == 0;
    }
    snprintf(path, sizeof path, "%s/experiment.cfg", dir);
    if (rc == 0)
        rc = experiment_write(x, path, e);
    free(x);
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/branch.json", dir);
        if (access(path, F_OK) != 0) {
            json_t *b = json_pack("{s:s, s:s}", "name", branch, "parent", parent);
            if (json_dump_file(b, path, JSON_INDENT(2)) < 0)
                rc = mn_fail(e, "%s: cannot write", path);
            json_decref(b);
        }
    }
    if (rc < 0 || (fresh ? restart_finetune(r, dir, hooks, e) : resume_at(r, dir, hooks, 0, e)) < 0) {
        json_decref(list);
        return -1;
    }
    if (r->phase != PHASE_FINETUNE) {
        json_decref(list);
        return mn_fail(e, "%s: a branch starts from a checkpoint of the finetune phase", dir);
    }
    snprintf(r->branch, sizeof r->branch, "%s", branch);
    /* The checkpoint's state stands over the experiment file; what the
     * fork changes must replace it (a fresh start took it all from the
     * experiment, its policy's setup included). */
    if (fresh)
        lr = ewc = groups = policy = 0;
    if (lr) {
        r->sched.peak = (float)r->x.finetune.recipe.lr;
        if (r->lr_override)
            r->lr_value = r->x.finetune.recipe.lr;
    }
    if (ewc)
        r->ewc_lambda = r->x.finetune.ewc.lambda;
    if (groups)
        strategy_apply(&r->model, &r->x);
    rc = run_record(r, source, "branch", json_pack("{s:s, s:s, s:o}", "branch", branch,
                                                   "parent", parent, "overrides", list), e);
    for (int i = 0; i < n_sets && rc == 0; i++) {
        rc = run_fork_override(sets[i], at_start, key, sizeof key, value, sizeof value,
                               &is_param, e);
        if (rc == 0 && is_param)
            rc = run_set_policy_param(r, key + 7, value, source, msg, sizeof msg, e);
    }
    if (rc == 0 && policy && r->policy)
        rc = save_policy_source(r, e) < 0 || call_policy(r, "setup", NULL, 0, e) < 0 ? -1 : 0;
    if (rc == 0)
        rc = run_save_state(r, e);
    if (rc == 0)
        logf_(r, "branch %s of %s at step %ld", branch, parent, r->step);
    return rc;
}
