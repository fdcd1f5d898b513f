#include "trainer.h"

#include "strategy.h"

#include <pthread.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas_core.h"
#include "run.h"

#define QUEUE_MAX 32

struct Trainer {
    Run run;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;       /* a command arrived */

    /* under lock */
    Command queue[QUEUE_MAX];
    int n_queue;
    Snapshot snap;

    /* trainer thread only */
    int paused, finished, failed, quit;
    double rate_t;             /* steps/s: start of the current window */
    long rate_steps;
};

const char *trainer_state_name(TrainerState s)
{
    static const char *const names[] = { "running", "paused", "finished", "error", "stopped" };
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

void snapshot_free(Snapshot *s)
{
    free(s->hist);
    s->hist = NULL;
    s->n_hist = s->cap_hist = 0;
}

void snapshot_log(Snapshot *s, const char *line)
{
    if (s->n_log == SNAP_LOG) {
        memmove(s->log[0], s->log[1], sizeof s->log[0] * (SNAP_LOG - 1));
        s->n_log--;
    }
    snprintf(s->log[s->n_log++], SNAP_LINE, "%s", line);
    s->n_logged++;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A log line with the wall-clock time, into the snapshot. Caller holds no
 * lock. */
static void post_log(Trainer *t, const char *line)
{
    char stamped[SNAP_LINE];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    size_t n = strftime(stamped, sizeof stamped, "%H:%M:%S ", &tm);
    snprintf(stamped + n, sizeof stamped - n, "%s", line);
    pthread_mutex_lock(&t->lock);
    snapshot_log(&t->snap, stamped);
    t->snap.version++;
    pthread_mutex_unlock(&t->lock);
}

static void post_logf(Trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void post_logf(Trainer *t, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    post_log(t, line);
}

static void hook_log(void *ctx, const char *line)
{
    post_log(ctx, line);
}

static void hook_eval(void *ctx, const Run *r, const EvalRecord *rec)
{
    char line[SNAP_LINE];
    int n = snprintf(line, sizeof line, "eval %s step %ld", rec->phase, rec->step);
    (void)r;
    if (rec->has_new && n > 0 && (size_t)n < sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n, "  new %.3f", rec->new_task.acc);
    if (rec->has_original && n > 0 && (size_t)n < sizeof line)
        snprintf(line + n, sizeof line - (size_t)n, "  original %.3f", rec->original.acc);
    post_log(ctx, line);
}

static TrainerState state_of(const Trainer *t)
{
    if (t->failed)
        return TS_ERROR;
    if (t->quit)
        return TS_STOPPED;
    if (t->finished)
        return TS_FINISHED;
    return t->paused ? TS_PAUSED : TS_RUNNING;
}

/* Copies what the frontend shows out of the run. Trainer thread only. */
static void publish(Trainer *t, const char *message)
{
    Run *r = &t->run;
    Snapshot *s = &t->snap;
    double now = now_s();
    long done = r->step;
    pthread_mutex_lock(&t->lock);
    snprintf(s->experiment, sizeof s->experiment, "%s", r->x.name);
    snprintf(s->phase, sizeof s->phase, "%s", phase_name(r->phase));
    if (done < t->rate_steps || t->paused || t->finished) {
        /* a new phase or a stop: start a new window */
        t->rate_steps = done;
        t->rate_t = now;
        if (t->paused || t->finished)
            s->steps_per_s = 0;
    } else if (now - t->rate_t >= 0.5) {
        s->steps_per_s = (double)(done - t->rate_steps) / (now - t->rate_t);
        t->rate_steps = done;
        t->rate_t = now;
    }
    s->step = r->step;
    s->total_steps = r->total_steps;
    s->steps_per_epoch = r->steps_per_epoch;
    /* the rate the next step takes (after a :set, before that step) */
    double rate = r->last_lr;
    if (r->phase != PHASE_DONE)
        rate = r->lr_override ? r->lr_value : schedule_lr(&r->sched, r->step);
    s->lr = rate;
    s->state = state_of(t);
    if (message)
        snprintf(s->message, sizeof s->message, "%s", message);
    if (r->history.n > s->cap_hist) {
        int cap = r->history.n + 64;
        EvalRecord *v = realloc(s->hist, sizeof *v * (size_t)cap);
        if (v) {
            s->hist = v;
            s->cap_hist = cap;
        }
    }
    if (r->history.n <= s->cap_hist) {
        if (r->history.n > s->n_hist)
            memcpy(s->hist + s->n_hist, r->history.v + s->n_hist,
                   sizeof *s->hist * (size_t)(r->history.n - s->n_hist));
        s->n_hist = r->history.n;
    }
    s->n_groups = r->model.n_groups < SNAP_GROUPS ? r->model.n_groups : SNAP_GROUPS;
    for (int g = 0; g < s->n_groups; g++) {
        const ParamGroup *pg = &r->model.groups[g];
        snprintf(s->groups[g].name, sizeof s->groups[g].name, "%s", pg->name);
        s->groups[g].trainable = pg->trainable;
        s->groups[g].lr = pg->trainable ? rate * pg->lr_scale : 0;
    }
    s->version++;
    pthread_mutex_unlock(&t->lock);
}

/* Records a command in events.jsonl with its step (best effort: a failed
 * write is logged). */
static void record(Trainer *t, const char *command, json_t *extra)
{
    Run *r = &t->run;
    MnError e;
    json_t *ev = json_pack("{s:I, s:s, s:s, s:s}", "step", (json_int_t)r->step,
                           "phase", phase_name(r->phase), "source", "ui",
                           "command", command);
    if (!ev) {
        json_decref(extra);
        return;
    }
    if (extra) {
        json_object_update(ev, extra);
        json_decref(extra);
    }
    if (r->events.f && events_write(&r->events, ev, &e) < 0)
        post_logf(t, "warning: events.jsonl: %s", e.msg);
    else if (!r->events.f)
        json_decref(ev);
}

/* name: NULL for the step's own checkpoint, else a name already reduced
 * to [A-Za-z0-9_-], written as tag-NAME-step-N. */
static void checkpoint_now(Trainer *t, const char *why, const char *name)
{
    MnError e;
    char tag[200];
    if (name && *name)
        snprintf(tag, sizeof tag, "tag-%.128s-step-%ld", name, t->run.step);
    if (run_checkpoint(&t->run, name && *name ? tag : NULL, &e) < 0)
        post_logf(t, "error: checkpoint failed: %s", e.msg);
    else if (name && *name)
        post_logf(t, "%s: checkpoint %s at %s step %ld", why, tag,
                  phase_name(t->run.phase), t->run.step);
    else
        post_logf(t, "%s: checkpoint at %s step %ld", why,
                 phase_name(t->run.phase), t->run.step);
}

/* :set policy.NAME VALUE: the value is parsed to the parameter's type by
 * the policy; every refusal goes to the log as an error. */
static void set_policy(Trainer *t, const char *name, const char *text)
{
    Run *r = &t->run;
    MnError e;
    if (!r->policy) {
        post_logf(t, "error: set policy.%s: this run has no policy (finetune.policy)", name);
        return;
    }
    if (policy_set_param(r->policy, name, text, &e) < 0) {
        post_logf(t, "error: set policy.%s: %s", name, e.msg);
        return;
    }
    char key[160];
    snprintf(key, sizeof key, "policy.%s", name);
    record(t, "set", json_pack("{s:s, s:s}", "set", key, "to", text));
    post_logf(t, "set policy.%s %s from step %ld", name, text, r->step);
}

static void set_lr(Trainer *t, double v)
{
    Run *r = &t->run;
    MnError e;
    char assign[64];
    Experiment *copy = malloc(sizeof *copy);
    if (!copy)
        return;
    *copy = r->x;
    snprintf(assign, sizeof assign, "finetune.lr=%.9g", v);
    if (experiment_set(copy, assign, &e) < 0) {
        post_logf(t, "error: set: %s", e.msg);
        free(copy);
        return;
    }
    free(copy);
    double from = r->x.finetune.recipe.lr;
    r->x.finetune.recipe.lr = v;
    if (r->phase == PHASE_FINETUNE) {
        /* The schedule keeps its shape around the new peak; a rate a
         * policy pinned is replaced outright. */
        if (r->lr_override)
            r->lr_value = v;
        r->sched.peak = (float)v;
    }
    record(t, "set", json_pack("{s:s, s:f, s:f}", "set", "finetune.lr", "from", from, "to", v));
    post_logf(t, "set finetune.lr %.3g (was %.3g) from step %ld", v, from, r->step);
}

static void set_ewc(Trainer *t, double v)
{
    Run *r = &t->run;
    if (r->phase != PHASE_FINETUNE || !r->fisher) {
        /* The Fisher belongs to the weights fine-tuning started from. */
        post_log(t, "error: set ewc.lambda: this run has no Fisher; give finetune.ewc.lambda "
                    "in the experiment to compute one at the start of fine-tuning");
        return;
    }
    double from = r->ewc_lambda;
    r->ewc_lambda = v;
    record(t, "set", json_pack("{s:s, s:f, s:f}", "set", "ewc.lambda", "from", from, "to", v));
    post_logf(t, "set ewc.lambda %.4g (was %.4g) from step %ld", v, from, r->step);
}

/* :freeze / :unfreeze PARTS: the encoder's parts, as finetune.freeze.parts
 * names them; the original head stays frozen whatever is asked. */
static void set_frozen(Trainer *t, const char *parts, int frozen)
{
    Run *r = &t->run;
    Model *m = &r->model;
    unsigned char pick[MODEL_MAX_LAYERS + 2];
    char why[256];
    if (parts_parse(parts, m->cfg.layers, pick, why, sizeof why) < 0) {
        post_logf(t, "error: %s: %s", frozen ? "freeze" : "unfreeze", why);
        return;
    }
    for (int g = 0; g <= m->cfg.layers + 1; g++)
        if (pick[g])
            m->groups[g].trainable = !frozen;
    record(t, frozen ? "freeze" : "unfreeze", json_pack("{s:s}", "parts", parts));
    post_logf(t, "%s %s from step %ld", frozen ? "froze" : "unfroze", parts, r->step);
}

/* An evaluation off the schedule: logged, not added to the history (the
 * metrics stay those of the experiment's own evaluations). */
static void evaluate_now(Trainer *t)
{
    Run *r = &t->run;
    if (r->phase == PHASE_DONE || t->failed) {
        post_log(t, "evaluate: the run has ended");
        return;
    }
    record(t, "evaluate", NULL);
    TaskScore o = run_evaluate(r, TASK_ORIGINAL, 0);
    if (r->phase == PHASE_FINETUNE) {
        TaskScore n = run_evaluate(r, TASK_NEW, 0);
        post_logf(t, "evaluate now at step %ld: new %.3f (loss %.3f)  original %.3f (loss %.3f)",
                  r->step, n.acc, n.loss, o.acc, o.loss);
    } else
        post_logf(t, "evaluate now at %s step %ld: original %.3f (loss %.3f)",
                  phase_name(r->phase), r->step, o.acc, o.loss);
}

/* Applies the queued commands. Trainer thread; takes the lock only to
 * empty the queue. */
static void apply_commands(Trainer *t)
{
    Command q[QUEUE_MAX];
    int n;
    MnError e;
    pthread_mutex_lock(&t->lock);
    n = t->n_queue;
    memcpy(q, t->queue, sizeof q[0] * (size_t)n);
    t->n_queue = 0;
    pthread_mutex_unlock(&t->lock);
    for (int i = 0; i < n; i++) {
        switch (q[i].kind) {
        case CMD_PAUSE:
            if (t->finished || t->failed)
                break;
            t->paused = !t->paused;
            record(t, t->paused ? "pause" : "resume", NULL);
            post_log(t, t->paused ? "paused" : "resumed");
            break;
        case CMD_CHECKPOINT:
            if (t->finished || t->failed)
                post_log(t, "checkpoint: the run has ended");
            else {
                record(t, "checkpoint",
                       q[i].arg[0] ? json_pack("{s:s}", "name", q[i].arg) : NULL);
                checkpoint_now(t, "checkpoint", q[i].arg);
            }
            break;
        case CMD_RELOAD:
            if (!t->run.policy)
                post_log(t, "reload: this run has no policy");
            else {
                record(t, "reload", NULL);
                if (run_policy_reload(&t->run, &e) == 0)
                    post_log(t, "policy reloaded");
                else
                    post_logf(t, "error: reload: %s", e.msg);
            }
            break;
        case CMD_SET_LR:
            set_lr(t, q[i].value);
            break;
        case CMD_SET_EWC:
            set_ewc(t, q[i].value);
            break;
        case CMD_FREEZE:
        case CMD_UNFREEZE:
            set_frozen(t, q[i].arg, q[i].kind == CMD_FREEZE);
            break;
        case CMD_EVALUATE:
            evaluate_now(t);
            break;
        case CMD_SET_POLICY:
            set_policy(t, q[i].arg, q[i].text);
            break;
        case CMD_QUIT:
            if (!t->quit && !t->finished && !t->failed) {
                record(t, "quit", NULL);
                checkpoint_now(t, "quit", NULL);
            }
            t->quit = 1;
            break;
        }
    }
}

static void *trainer_main(void *arg)
{
    Trainer *t = arg;
    MnError e;
    publish(t, NULL);
    while (!t->quit) {
        apply_commands(t);
        if (t->quit)
            break;
        if (t->paused || t->finished || t->failed) {
            publish(t, NULL);
            pthread_mutex_lock(&t->lock);
            while (t->n_queue == 0)
                pthread_cond_wait(&t->wake, &t->lock);
            pthread_mutex_unlock(&t->lock);
            continue;
        }
        int rc = run_step(&t->run, &e);
        if (rc < 0) {
            t->failed = 1;
            post_logf(t, "error: %s", e.msg);
            publish(t, e.msg);
        } else if (rc == 1) {
            t->finished = 1;
            post_log(t, "the run has finished");
            publish(t, "finished");
        } else if (rc == 2) {
            t->paused = 1;
            post_logf(t, "paused: %s", t->run.pause_reason);
            publish(t, t->run.pause_reason);
        } else
            publish(t, NULL);
    }
    publish(t, NULL);
    return NULL;
}

Trainer *trainer_start(const Experiment *x, const char *out_dir, MnError *e)
{
    Trainer *t = calloc(1, sizeof *t);
    RunHooks hooks;
    sigset_t all, old;
    if (!t) {
        mn_fail(e, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->wake, NULL);
    hooks.on_eval = hook_eval;
    hooks.on_log = hook_log;
    hooks.ctx = t;
    blas_set_threads(x->threads);
    if (run_create(&t->run, x, out_dir, &hooks, e) < 0) {
        run_free(&t->run);
        snapshot_free(&t->snap);
        pthread_cond_destroy(&t->wake);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return NULL;
    }
    t->rate_t = now_s();
    /* The thread inherits the mask: signals go to the frontend's thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&t->thread, NULL, trainer_main, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        mn_fail(e, "cannot start the trainer thread");
        run_free(&t->run);
        snapshot_free(&t->snap);
        free(t);
        return NULL;
    }
    return t;
}

void trainer_post(Trainer *t, const Command *c)
{
    pthread_mutex_lock(&t->lock);
    if (t->n_queue < QUEUE_MAX)
        t->queue[t->n_queue++] = *c;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->lock);
}

void trainer_log(Trainer *t, const char *line)
{
    post_log(t, line);
}

int trainer_snapshot(Trainer *t, Snapshot *out)
{
    int copied = 0;
    pthread_mutex_lock(&t->lock);
    const Snapshot *s = &t->snap;
    if (s->version != out->version) {
        EvalRecord *hist = out->hist;
        int cap = out->cap_hist;
        if (cap < s->n_hist) {
            EvalRecord *v = realloc(hist, sizeof *v * (size_t)s->cap_hist);
            if (v) {
                hist = v;
                cap = s->cap_hist;
            }
        }
        /* the history only grows: copy what out has not seen */
        int have = out->n_hist <= s->n_hist ? out->n_hist : 0;
        *out = *s;
        out->hist = hist;
        out->cap_hist = cap;
        if (out->n_hist > cap)
            out->n_hist = cap;
        if (out->n_hist > have)
            memcpy(out->hist + have, s->hist + have, sizeof *hist * (size_t)(out->n_hist - have));
        copied = 1;
    }
    pthread_mutex_unlock(&t->lock);
    return copied;
}

int trainer_stop(Trainer *t)
{
    Command q = { CMD_QUIT, 0, "", "" };
    int failed;
    trainer_post(t, &q);
    pthread_join(t->thread, NULL);
    failed = t->failed;
    run_free(&t->run);
    snapshot_free(&t->snap);
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
    free(t);
    return failed ? 1 : 0;
}
