#include "trainer.h"
#include "bf16.h"

#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas_core.h"
#include "branch.h"
#include "dist.h"
#include "paths.h"
#include "run.h"

#define QUEUE_MAX 32

typedef struct Trainer Trainer;

/* One run of the family on the trainer thread. */
typedef struct {
    Run run;
    Trainer *t;
    int paused, finished, failed;
    int clean;                 /* nothing changed since its last checkpoint */
    int stopped;               /* paused by stop_after */
    int hand_paused;           /* paused by a command */
    long steps_here;           /* run_step calls in this process */
    char message[1100];
    char parent[64];
    long fork_step;            /* -1 for main */
    double rate_t;             /* steps/s: start of the current window */
    long rate_steps;
    double steps_per_s;
    double drift[SNAP_GROUPS]; /* per group, as last measured */
    double drift_t;            /* when; and the history length then */
    int drift_hist;
} Branch;

struct Trainer {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;       /* a command arrived */

    /* under lock */
    Command queue[QUEUE_MAX];
    int n_queue;
    Snapshot snap;

    /* trainer thread only (and the starting thread before it runs) */
    Branch *br[SNAP_BRANCHES];
    char pending[SNAP_LOG][SNAP_LINE];   /* log lines not yet published */
    int n_pending;
    TrainerOptions opt;
    int n_br, followed, turn, quit;
    int study_forked;          /* opt.forks made (or found) */
    int lost;                  /* a checkpoint at quit failed */
    /* the command being applied, whose lines make its reply */
    const Command *applying;
    SnapReply reply;
    SnapReply replies[SNAP_REPLIES];   /* made, not yet published */
    int n_replies;
    /* set by trainer_stop on the frontend's thread: a policy call in
     * progress (its watchdog reads this) ends at once */
    atomic_int stopping;
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
    for (int i = 0; i < SNAP_BRANCHES; i++) {
        free(s->branches[i].hist);
        s->branches[i].hist = NULL;
        s->branches[i].n_hist = s->branches[i].cap_hist = 0;
    }
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
static void stamp(char *out, size_t n, const char *line)
{
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    size_t k = strftime(out, n, "%H:%M:%S ", &tm);
    snprintf(out + k, n - k, "%s", line);
}

/* A line from the trainer's side: kept aside until the next publish, so
 * that logging never waits for the frontend's lock. Not for the frontend's
 * thread (trainer_log). */
static void post_log(Trainer *t, const char *line)
{
    if (t->applying && t->applying->id) {
        /* "[branch] error: …" or "error: …" */
        const char *body = line[0] == '[' && strstr(line, "] ") ? strstr(line, "] ") + 2 : line;
        size_t used = strlen(t->reply.text);
        if (!strncmp(body, "error:", 6))
            t->reply.ok = 0;
        snprintf(t->reply.text + used, sizeof t->reply.text - used, "%s%s", used ? "; " : "", line);
    }
    if (t->n_pending == SNAP_LOG) {
        memmove(t->pending[0], t->pending[1], sizeof t->pending[0] * (SNAP_LOG - 1));
        t->n_pending--;
    }
    stamp(t->pending[t->n_pending++], SNAP_LINE, line);
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

/* Every line about a run also goes to its folder's log.txt, whole: the
 * screen keeps the last few hundred, and cuts what does not fit. */
static void log_to_file(const Run *r, const char *line)
{
    char path[4200], stamped[4096];
    if (!r->dir[0])
        return;
    snprintf(path, sizeof path, "%s/log.txt", r->dir);
    FILE *f = fopen(path, "a");
    if (!f)
        return;            /* the log is a convenience: training goes on */
    stamp(stamped, sizeof stamped, line);
    fprintf(f, "%s\n", stamped);
    fclose(f);
}

/* A line about branch b: named when the family has more than one. */
static void branch_log(Branch *b, const char *line)
{
    log_to_file(&b->run, line);
    if (b->t->n_br > 1)
        post_logf(b->t, "[%s] %s", b->run.branch, line);
    else
        post_log(b->t, line);
}

static void branch_logf(Branch *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void branch_logf(Branch *b, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    branch_log(b, line);
}

static void hook_log(void *ctx, const char *line)
{
    Branch *b = ctx;
    if (b->t->opt.on_log)
        b->t->opt.on_log(b->t->opt.ctx, b->run.branch, b->t->n_br, line);
    branch_log(b, line);
}

static void hook_eval(void *ctx, const Run *r, const EvalRecord *rec)
{
    char line[SNAP_LINE];
    int n = snprintf(line, sizeof line, "eval %s step %ld", rec->phase, rec->step);
    Branch *b = ctx;
    (void)r;
    if (b->t->opt.on_eval)
        b->t->opt.on_eval(b->t->opt.ctx, b->run.branch, b->t->n_br, rec);
    if (rec->has_new && n > 0 && (size_t)n < sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n, "  new %.3f", rec->new_task.acc);
    if (rec->has_original && n > 0 && (size_t)n < sizeof line)
        snprintf(line + n, sizeof line - (size_t)n, "  original %.3f", rec->original.acc);
    branch_log(ctx, line);
}

static void hook_branch(void *ctx, const Run *r, const char *dir);

/* A branch being made (its setup may fork too) counts before it is
 * adopted. */
static int hook_open_branches(void *ctx)
{
    Branch *b = ctx;
    const Trainer *t = b->t;
    for (int i = 0; i < t->n_br; i++)
        if (t->br[i] == b)
            return t->n_br;
    return t->n_br + 1;
}

static RunHooks hooks_for(Branch *b)
{
    RunHooks h;
    memset(&h, 0, sizeof h);
    h.on_eval = hook_eval;
    h.on_log = hook_log;
    h.on_branch = hook_branch;
    h.ctx = b;
    h.max_branches = SNAP_BRANCHES;
    h.open_branches = hook_open_branches;
    h.dist = b->t->opt.dist;
    h.threads = b->t->opt.threads;
    return h;
}

static Branch *branch_new(Trainer *t, MnError *e)
{
    if (t->n_br == SNAP_BRANCHES) {
        mn_fail(e, "at most %d branches can be open at once", SNAP_BRANCHES);
        return NULL;
    }
    Branch *b = calloc(1, sizeof *b);
    if (!b) {
        mn_fail(e, "out of memory");
        return NULL;
    }
    b->t = t;
    b->fork_step = -1;
    b->rate_t = now_s();
    for (int g = 0; g < SNAP_GROUPS; g++)
        b->drift[g] = -1;
    b->drift_t = -1;
    return b;
}

/* Takes a branch that branch_create left resumed in b->run. */
static void adopt(Trainer *t, Branch *b, const char *parent, long step, int paused)
{
    if (b->run.policy)
        policy_set_stop_flag(b->run.policy, &t->stopping);
    snprintf(b->parent, sizeof b->parent, "%s", parent);
    b->fork_step = step;
    b->paused = paused;
    b->finished = b->run.phase == PHASE_DONE;
    b->rate_steps = b->run.step;
    t->br[t->n_br++] = b;
}

static void branch_free(Branch *b)
{
    run_free(&b->run);
    free(b);
}

static TrainerState state_of(const Trainer *t, const Branch *b)
{
    if (b->failed)
        return TS_ERROR;
    if (t->quit)
        return TS_STOPPED;
    if (b->finished)
        return TS_FINISHED;
    return b->paused ? TS_PAUSED : TS_RUNNING;
}

static int live(const Branch *b)
{
    return !b->paused && !b->finished && !b->failed;
}

/* Copies the history of r past what dst holds (histories only grow). */
static void copy_history(EvalRecord **dst, int *n, int *cap, const History *h)
{
    if (h->n > *cap) {
        int c = h->n + 64;
        EvalRecord *v = realloc(*dst, sizeof *v * (size_t)c);
        if (!v)
            return;
        *dst = v;
        *cap = c;
    }
    if (h->n > *n)
        memcpy(*dst + *n, h->v + *n, sizeof **dst * (size_t)(h->n - *n));
    *n = h->n;
}

/* Steps/s over windows of at least half a second. */
static void measure_rate(const Trainer *t, Branch *b, double now)
{
    long done = b->run.step;
    if (done < b->rate_steps || !live(b) || t->quit) {
        b->rate_steps = done;
        b->rate_t = now;
        if (!live(b))
            b->steps_per_s = 0;
    } else if (now - b->rate_t >= 0.5) {
        b->steps_per_s = (double)(done - b->rate_steps) / (now - b->rate_t);
        b->rate_steps = done;
        b->rate_t = now;
    }
}

/* Copies what the frontend shows out of the runs. Trainer thread only.
 * After a plain step (wait 0) it does not wait for the lock: a frontend
 * holding it, perhaps preempted on a busy core, must not stall training;
 * the next step publishes instead. */
static void publish_now(Trainer *t, const char *message, int wait)
{
    Branch *f = t->br[t->followed];
    Run *r = &f->run;
    Snapshot *s = &t->snap;
    double now = now_s();
    int n_groups = r->model.n_groups < SNAP_GROUPS ? r->model.n_groups : SNAP_GROUPS;
    for (int i = 0; i < t->n_br; i++)
        measure_rate(t, t->br[i], now);
    /* Drift is a pass over the weights: measured outside the lock, at most
     * every 0.5 s and after each evaluation, not every step. */
    if (now - f->drift_t >= 0.5 || r->history.n != f->drift_hist) {
        for (int g = 0; g < n_groups; g++)
            f->drift[g] = run_drift(r, g);
        f->drift_t = now;
        f->drift_hist = r->history.n;
    }
    if (!wait && pthread_mutex_trylock(&t->lock) != 0)
        return;
    if (wait)
        pthread_mutex_lock(&t->lock);
    for (int i = 0; i < t->n_pending; i++)
        snapshot_log(s, t->pending[i]);
    t->n_pending = 0;
    for (int i = 0; i < t->n_replies; i++)
        s->replies[s->n_replies++ % SNAP_REPLIES] = t->replies[i];
    t->n_replies = 0;
    snprintf(s->experiment, sizeof s->experiment, "%s", r->x.name);
    snprintf(s->phase, sizeof s->phase, "%s", phase_name(r->phase));
    snprintf(s->branch, sizeof s->branch, "%s", r->branch);
    if (s->followed != t->followed) {
        s->followed = t->followed;
        s->n_hist = 0;
        s->generation++;
    }
    s->steps_per_s = f->steps_per_s;
    s->step = r->step;
    s->total_steps = r->total_steps;
    s->steps_per_epoch = r->steps_per_epoch;
    /* the rate the next step takes (after a :set, before that step) */
    double rate = r->last_lr;
    if (r->phase != PHASE_DONE)
        rate = r->lr_override ? r->lr_value : schedule_lr(&r->sched, r->step);
    s->lr = rate;
    s->has_ewc = r->fisher != NULL;
    s->ewc_lambda = r->ewc_lambda;
    snprintf(s->policy, sizeof s->policy, "%s", r->policy ? policy_name(r->policy) : "");
    bf16_describe(r->model.bf16, s->precision, sizeof s->precision);
    s->state = state_of(t, f);
    if (message)
        snprintf(s->message, sizeof s->message, "%s", message);
    copy_history(&s->hist, &s->n_hist, &s->cap_hist, &r->history);
    s->n_groups = 0;
    for (int g = 0; g < n_groups; g++) {
        const ParamGroup *pg = &r->model.groups[g];
        if (!run_group_shown(r, g))
            continue;
        SnapGroup *sg = &s->groups[s->n_groups++];
        snprintf(sg->name, sizeof sg->name, "%s", pg->name);
        sg->trainable = pg->trainable;
        sg->lr = pg->trainable ? rate * pg->lr_scale : 0;
        sg->drift = f->drift[g];
    }
    s->n_branches = t->n_br;
    for (int i = 0; i < t->n_br; i++) {
        const Branch *b = t->br[i];
        SnapBranch *sb = &s->branches[i];
        snprintf(sb->name, sizeof sb->name, "%s", b->run.branch);
        snprintf(sb->parent, sizeof sb->parent, "%s", b->parent);
        sb->fork_step = b->fork_step;
        sb->state = state_of(t, b);
        snprintf(sb->phase, sizeof sb->phase, "%s", phase_name(b->run.phase));
        sb->step = b->run.step;
        sb->total_steps = b->run.total_steps;
        sb->original_weight = b->run.x.stop.original_weight;
        snprintf(sb->message, sizeof sb->message, "%s", b->message);
        sb->error_pause = b->paused && (b->run.pause_is_error || b->run.checkpoint_due ||
                                         b->run.diverged_at >= 0);
        sb->stopped = b->stopped;
        sb->hand_paused = b->paused && b->hand_paused;
        sb->has_policy = b->run.policy != NULL;
        copy_history(&sb->hist, &sb->n_hist, &sb->cap_hist, &b->run.history);
    }
    s->version++;
    pthread_mutex_unlock(&t->lock);
}

static void publish(Trainer *t, const char *message)
{
    publish_now(t, message, 1);
}

/* Who asked for c, as events.jsonl names it: a client's source, or the
 * frontend of this process ("ui"). */
static const char *source_of(const Command *c)
{
    return c && c->source[0] ? c->source : "ui";
}

/* Records a command of the followed branch in its events.jsonl (best
 * effort: a failed write is logged). */
static void record(Branch *b, const Command *c, const char *command, json_t *extra)
{
    MnError e;
    const char *source = source_of(c);
    /* a client's commands are recorded whatever the frontend */
    if (b->t->opt.quiet_commands && !(c && c->source[0])) {
        json_decref(extra);
        return;
    }
    if (b->run.events.f && run_record(&b->run, source, command, extra, &e) < 0)
        branch_logf(b, "warning: events.jsonl: %s", e.msg);
    else if (!b->run.events.f)
        json_decref(extra);
}

/* name: NULL for the step's own checkpoint, else a name already reduced
 * to [A-Za-z0-9_-], written as tag-NAME-step-N. */
static int checkpoint_now(Branch *b, const char *why, const char *name)
{
    MnError e;
    char tag[200];
    Run *r = &b->run;
    if (name && *name)
        snprintf(tag, sizeof tag, "tag-%.128s-step-%ld", name, r->step);
    if (run_checkpoint(r, name && *name ? tag : NULL, &e) < 0) {
        branch_logf(b, "error: checkpoint failed: %s", e.msg);
        return -1;
    }
    /* a pause is where the user looks, and may fork from: kept */
    if (!strcmp(why, "pause") && r->phase == PHASE_FINETUNE &&
        run_keep_checkpoint(r, r->last_checkpoint, "pause", &e) < 0)
        branch_logf(b, "warning: the pause checkpoint may be rotated away: %s", e.msg);
    b->clean = 1;
    if (name && *name)
        branch_logf(b, "%s: checkpoint %s at %s step %ld", why, tag, phase_name(r->phase), r->step);
    else
        branch_logf(b, "%s: checkpoint at %s step %ld", why, phase_name(r->phase), r->step);
    return 0;
}

/* A hand change through the run's own command (validated, applied and
 * recorded there); a refusal goes to the log as an error. */
static void hand_change(Branch *b, const Command *c)
{
    Run *r = &b->run;
    MnError e;
    char msg[256];
    int rc = -1;
    const char *source = source_of(c);
    switch (c->kind) {
    case CMD_SET_LR:
        rc = run_set_lr(r, c->value, source, msg, sizeof msg, &e);
        break;
    case CMD_SET_EWC:
        rc = run_set_ewc(r, c->value, source, msg, sizeof msg, &e);
        break;
    case CMD_FREEZE:
    case CMD_UNFREEZE:
        rc = run_set_frozen(r, c->arg, c->kind == CMD_FREEZE, source, msg, sizeof msg, &e);
        break;
    case CMD_SET_POLICY:
        rc = run_set_policy_param(r, c->arg, c->text, source, msg, sizeof msg, &e);
        break;
    case CMD_ATTACH_POLICY:
        rc = run_attach_policy(r, c->text, source, msg, sizeof msg, &e);
        if (rc == 0)
            policy_set_stop_flag(r->policy, &b->t->stopping);
        break;
    default:
        return;
    }
    if (rc < 0)
        branch_logf(b, "error: %s", e.msg);
    else
        branch_log(b, msg);
}

static int by_step(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* :checkpoints: the fine-tuning steps b has checkpoints of, by their
 * names (reading the files would cost their size), what kept each. */
static void list_checkpoints_of(Branch *b)
{
    char dir[4200], line[SNAP_LINE];
    long steps[256];
    char kinds[256][8];
    int n = 0;
    snprintf(dir, sizeof dir, "%s/checkpoints", b->run.dir);
    DIR *d = opendir(dir);
    for (struct dirent *de; d && (de = readdir(d)) && n < 256;) {
        static const char *const kind[] = { "step-", "pause-step-", "fork-step-" };
        const char *nm = de->d_name;
        long s = -1;
        char tag[8] = "";
        if (strstr(nm, ".tmp.") || !strstr(nm, ".safetensors"))
            continue;
        if (!strcmp(nm, "base.safetensors"))
            s = 0, snprintf(tag, sizeof tag, "base");
        else if (!strcmp(nm, "final.safetensors"))
            s = b->run.phase == PHASE_DONE ? b->run.step : -1, snprintf(tag, sizeof tag, "final");
        else if (!strncmp(nm, "tag-", 4) && strstr(nm, "-step-"))
            s = strtol(strstr(nm, "-step-") + 6, NULL, 10), snprintf(tag, sizeof tag, "tag");
        for (int k = 0; k < 3 && s < 0; k++)
            if (!strncmp(nm, kind[k], strlen(kind[k])) && nm[strlen(kind[k])] >= '0' &&
                nm[strlen(kind[k])] <= '9') {
                s = strtol(nm + strlen(kind[k]), NULL, 10);
                snprintf(tag, sizeof tag, "%s", k == 1 ? "pause" : k == 2 ? "fork" : "");
            }
        if (s < 0)
            continue;
        steps[n] = s;
        snprintf(kinds[n++], sizeof kinds[0], "%s", tag);
    }
    if (d)
        closedir(d);
    /* one entry a step, with what kept it */
    long order[256];
    for (int i = 0; i < n; i++)
        order[i] = steps[i];
    qsort(order, (size_t)n, sizeof order[0], by_step);
    int used = snprintf(line, sizeof line, "checkpoints (fork NAME @STEP):");
    for (int i = 0; i < n && used < (int)sizeof line - 24; i++) {
        if (i > 0 && order[i] == order[i - 1])
            continue;
        char why[32] = "";
        for (int k = 0; k < n; k++)
            if (steps[k] == order[i] && kinds[k][0] && strlen(why) + strlen(kinds[k]) + 2 < sizeof why)
                snprintf(why + strlen(why), sizeof why - strlen(why), "%s%s", why[0] ? "," : "",
                         kinds[k]);
        used += snprintf(line + used, sizeof line - (size_t)used, " %ld%s%s%s", order[i],
                         why[0] ? " (" : "", why, why[0] ? ")" : "");
    }
    branch_log(b, n ? line : "no checkpoints of fine-tuning yet");
}

/* An evaluation off the schedule: logged, not added to the history (the
 * metrics stay those of the experiment's own evaluations). */
static void evaluate_now(Branch *b, const Command *c)
{
    Run *r = &b->run;
    if (r->phase == PHASE_DONE || b->failed) {
        branch_log(b, "error: evaluate: the run has ended");
        return;
    }
    record(b, c, "evaluate", NULL);
    TaskScore o = run_evaluate(r, TASK_ORIGINAL, 0);
    if (r->phase == PHASE_FINETUNE) {
        TaskScore n = run_evaluate(r, TASK_NEW, 0);
        branch_logf(b, "evaluate now at step %ld: new %.3f (loss %.3f)  original %.3f (loss %.3f)",
                    r->step, n.acc, n.loss, o.acc, o.loss);
    } else
        branch_logf(b, "evaluate now at %s step %ld: original %.3f (loss %.3f)",
                    phase_name(r->phase), r->step, o.acc, o.loss);
}

/* Forks c->arg from parent at step c->value (< 0: now) with sets[]: the
 * new branch runs at once, beside its parent. */
static void fork_with(Trainer *t, Branch *parent, const Command *c, const char *const *sets, int n)
{
    MnError e;
    char dir[4400], ck[4400];
    long step = parent->run.step;
    Branch *b = branch_new(t, &e);
    RunHooks h;
    int rc = b ? 0 : -1;
    if (rc == 0) {
        h = hooks_for(b);
        if (c->value < 0)
            rc = run_fork(&parent->run, c->arg, sets, n, source_of(c), &h, &b->run, dir, sizeof dir, &e);
        else if ((rc = branch_find_checkpoint(parent->run.dir, (long)c->value, ck, sizeof ck,
                                              &step, NULL, &e)) == 0)
            rc = branch_create(parent->run.dir, ck, c->arg, sets, n, source_of(c), &h, &b->run, dir,
                               sizeof dir, &e);
    }
    if (rc < 0) {
        branch_logf(parent, "error: fork %s: %s", c->arg, e.msg);
        free(b);
        return;
    }
    /* a fork point stays forkable in the parent too */
    if (run_keep_checkpoint(&parent->run, c->value < 0 ? parent->run.last_checkpoint : ck, "fork",
                            &e) < 0)
        branch_logf(parent, "warning: the fork point may be rotated away: %s", e.msg);
    json_t *ov = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(ov, json_string(sets[i]));
    record(parent, c, "fork", json_pack("{s:s, s:I, s:o}", "branch", c->arg, "at", (json_int_t)step,
                                     "overrides", ov));
    adopt(t, b, parent->run.branch, step, 0);
    branch_logf(parent, "forked %s at step %ld into %s (Tab follows it)", c->arg, step, dir);
}

/* :fork NAME [@STEP] KEY=VALUE…; the UI goes on following the parent. */
static void fork_branch(Trainer *t, Branch *parent, const Command *c)
{
    char text[sizeof c->text];
    const char *sets[64];
    snprintf(text, sizeof text, "%s", c->text);
    int n = branch_split_overrides(text, sets, 64);
    fork_with(t, parent, c, sets, n);
}

/* A study's remedies: forked from main's fine-tuning start, before main
 * takes its first step there, so that all of them begin from one base
 * and train side by side. A resumed study makes only what it lacks. */
static void fork_study(Trainer *t)
{
    Branch *m = t->br[0];
    if (m->run.phase == PHASE_BASE)
        return;
    t->study_forked = 1;
    for (int i = 0; i < t->opt.n_forks; i++) {
        const TrainerFork *f = &t->opt.forks[i];
        int have = 0;
        for (int k = 0; k < t->n_br; k++)
            have |= strcmp(t->br[k]->run.branch, f->name) == 0;
        if (have)
            continue;
        Command c;
        memset(&c, 0, sizeof c);
        c.kind = CMD_FORK;
        c.value = 0;
        snprintf(c.source, sizeof c.source, "study");
        snprintf(c.arg, sizeof c.arg, "%s", f->name);
        fork_with(t, m, &c, f->sets, f->n_sets);
    }
    publish(t, NULL);
}

/* A policy's run:fork made a branch folder: it runs beside its parent. */
static void hook_branch(void *ctx, const Run *r, const char *dir)
{
    Branch *parent = ctx, *b;
    Trainer *t = parent->t;
    MnError e;
    char line[1400];
    /* told to every frontend, like the run's own lines */
    if (!(b = branch_new(t, &e))) {
        snprintf(line, sizeof line, "error: the branch in %s does not run: %s", dir, e.msg);
        hook_log(parent, line);
        return;
    }
    RunHooks h = hooks_for(b);
    if (run_resume(&b->run, dir, &h, &e) < 0) {
        snprintf(line, sizeof line, "error: opening the branch in %s: %s", dir, e.msg);
        hook_log(parent, line);
        run_free(&b->run);
        free(b);
        return;
    }
    adopt(t, b, r->branch, r->step, 0);
}

static void follow(Trainer *t, const Command *c)
{
    int i = (int)c->value;
    if (c->arg[0]) {
        for (i = 0; i < t->n_br && strcmp(t->br[i]->run.branch, c->arg) != 0; i++)
            ;
        if (i == t->n_br) {
            post_logf(t, "error: follow: no branch named %s", c->arg);
            return;
        }
    } else if (i < 0)
        i = (t->followed + 1) % t->n_br;
    if (i >= t->n_br) {
        post_logf(t, "error: follow: there is no branch %d", i + 1);
        return;
    }
    t->followed = i;
    if (t->n_br > 1)
        post_logf(t, "following branch %s", t->br[i]->run.branch);
}

static void mark_ended(Branch *b);

/* :drop NAME: the branch stops (its work checkpointed), leaves the family
 * on screen, and its folder moves to branches/.dropped/, where a resume
 * does not open it and from where it can be moved back by hand. */
static void drop_branch(Trainer *t, const Command *c)
{
    int i;
    for (i = 0; i < t->n_br && strcmp(t->br[i]->run.branch, c->arg) != 0; i++)
        ;
    if (i == t->n_br) {
        branch_logf(t->br[0], "error: drop: no branch named %s", c->arg);
        return;
    }
    if (i == 0) {
        branch_logf(t->br[0], "error: drop: %s is the run itself; q ends it", c->arg);
        return;
    }
    Branch *b = t->br[i];
    char dir[4200], parked[4400], name[64];
    snprintf(name, sizeof name, "%s", b->run.branch);
    snprintf(dir, sizeof dir, "%s", b->run.dir);
    if (!b->finished && !b->failed && !b->clean)
        checkpoint_now(b, "drop", NULL);
    mark_ended(b);
    branch_free(b);
    memmove(&t->br[i], &t->br[i + 1], (size_t)(t->n_br - i - 1) * sizeof t->br[0]);
    t->n_br--;
    if (t->followed == i)
        t->followed = 0;
    else if (t->followed > i)
        t->followed--;
    /* every branch after it moved up a place: the histories start over */
    pthread_mutex_lock(&t->lock);
    for (int k = 0; k < SNAP_BRANCHES; k++)
        t->snap.branches[k].n_hist = 0;
    t->snap.n_hist = 0;
    t->snap.generation++;
    pthread_mutex_unlock(&t->lock);
    const char *slash = strrchr(dir, '/');
    snprintf(parked, sizeof parked, "%.*s/.dropped", slash ? (int)(slash - dir) : 0, dir);
    MnError e;
    if (make_dirs(parked, &e) == 0) {
        snprintf(parked + strlen(parked), sizeof parked - strlen(parked), "/%s-%ld", name,
                 (long)time(NULL));
        if (rename(dir, parked) < 0)
            parked[0] = 0;
    } else
        parked[0] = 0;
    record(t->br[0], c, "drop", json_pack("{s:s}", "branch", name));
    if (parked[0])
        branch_logf(t->br[0], "dropped %s; its folder is now %s", name, parked);
    else
        branch_logf(t->br[0], "dropped %s (its folder %s stays: it could not be moved)", name, dir);
}

/* Applies the queued commands to the followed branch. Trainer thread;
 * takes the lock only to empty the queue. */
/* Across ranks: rank 0's commands (its clients', its frontend's) replace
 * every other rank's, so that all apply the same ones before the same
 * step; the others' own (a quit at their end) wait for rank 0's. A failed
 * broadcast ends the job. */
static void share_commands(Trainer *t, Command *q, int *n)
{
    Dist *d = t->opt.dist;
    MnError e;
    int count = d->rank == 0 ? *n : 0;
    int rc = dist_broadcast_waiting(d, &count, sizeof count, &e);
    if (rc == 0 && count > 0 && count <= QUEUE_MAX)
        rc = dist_broadcast(d, q, sizeof *q * (size_t)count, &e);
    if (rc < 0 || count < 0 || count > QUEUE_MAX) {
        fprintf(stderr, "mneme: rank %d: the commands could not be shared: %s\n", d->rank, e.msg);
        dist_abort(d, 1);
    }
    *n = count;
}

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
    if (t->opt.dist && t->opt.dist->size > 1)
        share_commands(t, q, &n);
    for (int i = 0; i < n; i++) {
        Branch *b = t->br[t->followed];
        memset(&t->reply, 0, sizeof t->reply);
        t->reply.id = q[i].id;
        t->reply.ok = 1;
        t->applying = &q[i];
        switch (q[i].kind) {
        case CMD_PAUSE:
            if (b->finished || b->failed) {
                branch_log(b, b->finished ? "error: pause: the run has finished"
                                          : "error: pause: the run has failed");
                break;
            }
            if ((q[i].value > 0 && b->paused) || (q[i].value < 0 && !b->paused)) {
                branch_log(b, b->paused ? "already paused" : "already running");
                break;
            }
            b->paused = !b->paused;
            b->hand_paused = b->paused;
            record(b, &q[i], b->paused ? "pause" : "resume", NULL);
            branch_log(b, b->paused ? "paused" : "resumed");
            /* a pause may be the end of the session: nothing is lost */
            if (b->paused)
                checkpoint_now(b, "pause", NULL);
            break;
        case CMD_CHECKPOINT:
            if (b->finished || b->failed)
                branch_log(b, "error: checkpoint: the run has ended");
            else {
                record(b, &q[i], "checkpoint", q[i].arg[0] ? json_pack("{s:s}", "name", q[i].arg) : NULL);
                checkpoint_now(b, "checkpoint", q[i].arg);
            }
            break;
        case CMD_RELOAD:
            if (!b->run.policy)
                branch_log(b, "error: reload: this run has no policy");
            else {
                record(b, &q[i], "reload", NULL);
                b->clean = 0;
                /* the run says "policy NAME reloaded" itself */
                if (run_policy_reload(&b->run, &e) == 0) {
                    if (b->paused)
                        branch_log(b, "the run stays paused: space goes on");
                } else
                    branch_logf(b, "error: reload: %s", e.msg);
            }
            break;
        case CMD_SET_LR:
        case CMD_SET_EWC:
        case CMD_FREEZE:
        case CMD_UNFREEZE:
        case CMD_SET_POLICY:
        case CMD_ATTACH_POLICY:
            hand_change(b, &q[i]);
            b->clean = 0;
            break;
        case CMD_EVALUATE:
            evaluate_now(b, &q[i]);
            break;
        case CMD_LIST_CHECKPOINTS:
            list_checkpoints_of(b);
            break;
        case CMD_FORK:
            fork_branch(t, b, &q[i]);
            break;
        case CMD_FOLLOW:
            follow(t, &q[i]);
            break;
        case CMD_DROP:
            drop_branch(t, &q[i]);
            break;
        case CMD_QUIT:
            /* Every branch keeps its work: a checkpoint each. */
            for (int k = 0; k < t->n_br && !t->quit; k++) {
                Branch *c = t->br[k];
                if (!c->finished && !c->failed) {
                    /* one written at a pause, with nothing changed since,
                     * already holds everything */
                    record(c, &q[i], "quit", json_pack("{s:b}", "checkpoint", !c->clean));
                    if (!c->clean && checkpoint_now(c, "quit", NULL) < 0)
                        t->lost = 1;
                }
            }
            t->quit = 1;
            break;
        }
        t->applying = NULL;
        if (q[i].id) {
            /* dropped, oldest first, when nobody publishes for a while */
            if (t->n_replies == SNAP_REPLIES) {
                memmove(&t->replies[0], &t->replies[1], sizeof t->replies[0] * (SNAP_REPLIES - 1));
                t->n_replies--;
            }
            t->replies[t->n_replies++] = t->reply;
        }
    }
    if (n > 0)
        publish(t, NULL);
}

/* One step of branch b and what follows from its outcome. */
static void step_branch(Trainer *t, Branch *b)
{
    MnError e;
    int rc = run_step(&b->run, &e);
    const char *message = NULL;
    b->clean = 0;
    b->steps_here++;
    if (rc < 0) {
        b->failed = 1;
        branch_logf(b, "error: %s", e.msg);
        message = e.msg;
    } else if (rc == 1) {
        b->finished = 1;
        branch_log(b, "the run has finished");
        message = "finished";
    } else if (rc == 2) {
        b->paused = 1;
        branch_logf(b, "paused: %s", b->run.pause_reason);
        message = b->run.pause_reason;
        if (!b->run.checkpoint_due)
            checkpoint_now(b, "pause", NULL);
    } else if (t->opt.stop_after > 0 && b->steps_here == t->opt.stop_after) {
        /* a scripted pause: what was done is kept */
        b->paused = b->stopped = 1;
        message = "stopped";
        if (checkpoint_now(b, "stop", NULL) < 0)
            message = "stopped, but the checkpoint failed";
    }
    if (message)
        snprintf(b->message, sizeof b->message, "%s", message);
    /* a plain step may skip; a change of state may not */
    publish_now(t, b == t->br[t->followed] ? message : NULL, message != NULL);
}

static void *trainer_main(void *arg)
{
    Trainer *t = arg;
    /* before the first snapshot: a frontend must not see a finished main
     * alone and end before the study's branches exist */
    if (t->opt.n_forks > 0)
        fork_study(t);
    publish(t, NULL);
    while (!t->quit) {
        apply_commands(t);
        if (t->quit)
            break;
        if (t->opt.n_forks > 0 && !t->study_forked)
            fork_study(t);
        /* Live branches take a step each in turn; paused ones cost nothing. */
        int pick = -1;
        for (int k = 0; k < t->n_br && pick < 0; k++) {
            int i = t->opt.one_at_a_time ? k : (t->turn + k) % t->n_br;
            if (live(t->br[i]))
                pick = i;
        }
        if (pick < 0) {
            publish(t, NULL);
            /* the other ranks wait in the next exchange, for rank 0's */
            if (t->opt.dist && t->opt.dist->rank > 0)
                continue;
            pthread_mutex_lock(&t->lock);
            while (t->n_queue == 0)
                pthread_cond_wait(&t->wake, &t->lock);
            pthread_mutex_unlock(&t->lock);
            continue;
        }
        t->turn = pick + 1;
        step_branch(t, t->br[pick]);
    }
    publish(t, NULL);
    return NULL;
}

/* How a run's last process ended, by its summary.json: 1 when it was
 * paused then, 0 when it was running (quit, signal), -1 when unknown. */
static int ended_paused(const char *dir)
{
    char path[4600];
    json_error_t je;
    snprintf(path, sizeof path, "%s/summary.json", dir);
    json_t *o = json_load_file(path, 0, &je);
    const char *st = json_string_value(json_object_get(o, "status"));
    int rc = !st ? -1 : !strcmp(st, "paused") ? 1 : !strcmp(st, "stopped") ? 0 : -1;
    json_decref(o);
    return rc;
}

/* A resumed run's branches come back paused, for comparing and steering,
 * or (restore_states) as they were when the last process ended. */
static void open_branches(Trainer *t)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/branches", t->br[0]->run.dir);
    DIR *d = opendir(path);
    if (!d)
        return;
    for (struct dirent *de; (de = readdir(d)) && t->n_br < SNAP_BRANCHES;) {
        char dir[4500];
        MnError e;
        if (de->d_name[0] == '.')
            continue;
        snprintf(dir, sizeof dir, "%s/%s", path, de->d_name);
        Branch *b = branch_new(t, &e);
        if (!b)
            break;
        RunHooks h = hooks_for(b);
        const int was_paused = t->opt.run_family ? 0 : t->opt.restore_states ? ended_paused(dir) != 0 : 1;
        if (run_resume(&b->run, dir, &h, &e) < 0) {
            post_logf(t, "branch %s not opened: %s", de->d_name, e.msg);
            run_free(&b->run);
            free(b);
            continue;
        }
        char info[4600];
        snprintf(info, sizeof info, "%s/branch.json", dir);
        json_error_t je;
        json_t *o = json_load_file(info, 0, &je);
        const char *parent = json_string_value(json_object_get(o, "parent"));
        adopt(t, b, parent ? parent : "main", (long)json_integer_value(json_object_get(o, "step")),
              was_paused);
        json_decref(o);
    }
    closedir(d);
}

/* summary.json tells a run that ended here from a live one. */
static void mark_ended(Branch *b)
{
    MnError e;
    /* --stop-after's pause is a stop the script asked for, not a user's */
    const char *status = b->failed ? "failed" : b->paused && !b->stopped ? "paused" : "stopped";
    if (!b->finished && run_mark_ended(&b->run, status, &e) < 0)
        fprintf(stderr, "mneme: %s\n", e.msg);
}

static void trainer_free(Trainer *t)
{
    for (int i = 0; i < t->n_br; i++) {
        mark_ended(t->br[i]);
        branch_free(t->br[i]);
    }
    snapshot_free(&t->snap);
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

/* Creates the run (x set) or resumes the one in dir (x NULL; the run's
 * experiment into x_out), then starts the thread. */
Trainer *trainer_open(const Experiment *x, const char *dir, Experiment *x_out,
                      const TrainerOptions *o, MnError *e)
{
    Trainer *t = calloc(1, sizeof *t);
    sigset_t all, old;
    if (!t) {
        mn_fail(e, "out of memory");
        return NULL;
    }
    if (o)
        t->opt = *o;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->wake, NULL);
    Branch *b = branch_new(t, e);
    if (!b) {
        trainer_free(t);
        return NULL;
    }
    RunHooks h = hooks_for(b);
    t->br[t->n_br++] = b;
    if (x)
        blas_set_threads(x->threads);
    const int main_paused = !x && t->opt.restore_states && ended_paused(dir) == 1;
    if ((x ? run_create(&b->run, x, dir, &h, e) : run_resume(&b->run, dir, &h, e)) < 0) {
        trainer_free(t);
        return NULL;
    }
    if (b->run.policy)
        policy_set_stop_flag(b->run.policy, &t->stopping);
    b->rate_steps = b->run.step;   /* a resumed run's steps are not this window's */
    if (!x) {
        blas_set_threads(b->run.x.threads);
        if (b->run.phase == PHASE_DONE) {
            b->finished = 1;
            post_log(t, "this run has already finished");
            if (t->opt.on_log)
                t->opt.on_log(t->opt.ctx, b->run.branch, 1, "this run has already finished");
        } else if (main_paused) {
            b->paused = 1;
            post_logf(t, "resumed at %s step %ld, paused as it was when it ended (space goes on)",
                      phase_name(b->run.phase), b->run.step);
        } else
            post_logf(t, "resumed at %s step %ld", phase_name(b->run.phase), b->run.step);
        if (x_out)
            *x_out = b->run.x;
        open_branches(t);
    }
    /* The thread inherits the mask: signals go to the frontend's thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&t->thread, NULL, trainer_main, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        mn_fail(e, "cannot start the trainer thread");
        trainer_free(t);
        return NULL;
    }
    return t;
}

Trainer *trainer_start(const Experiment *x, const char *out_dir, MnError *e)
{
    return trainer_open(x, out_dir, NULL, NULL, e);
}

Trainer *trainer_resume(const char *run_dir, Experiment *x, MnError *e)
{
    TrainerOptions o = { .restore_states = 1 };
    return trainer_open(NULL, run_dir, x, &o, e);
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
    char stamped[SNAP_LINE];
    stamp(stamped, sizeof stamped, line);
    pthread_mutex_lock(&t->lock);
    snapshot_log(&t->snap, stamped);
    t->snap.version++;
    pthread_mutex_unlock(&t->lock);
}

/* Copies src's history into dst past what dst has seen (a new generation
 * starts over). */
static void copy_snap_history(EvalRecord **dst, int *n, int *cap, const EvalRecord *src,
                              int src_n, int have)
{
    if (*cap < src_n) {
        EvalRecord *v = realloc(*dst, sizeof *v * (size_t)(src_n + 64));
        if (!v) {
            *n = have < *cap ? have : *cap;
            return;
        }
        *dst = v;
        *cap = src_n + 64;
    }
    if (have > src_n)
        have = 0;
    if (src_n > have)
        memcpy(*dst + have, src + have, sizeof *src * (size_t)(src_n - have));
    *n = src_n;
}

int trainer_snapshot(Trainer *t, Snapshot *out)
{
    int copied = 0;
    pthread_mutex_lock(&t->lock);
    const Snapshot *s = &t->snap;
    if (s->version != out->version) {
        EvalRecord *hist = out->hist;
        const int same = out->generation == s->generation;
        int cap = out->cap_hist, have = same ? out->n_hist : 0;
        SnapBranch keep[SNAP_BRANCHES];
        memcpy(keep, out->branches, sizeof keep);
        *out = *s;
        out->hist = hist;
        out->cap_hist = cap;
        copy_snap_history(&out->hist, &out->n_hist, &out->cap_hist, s->hist, s->n_hist, have);
        for (int i = 0; i < SNAP_BRANCHES; i++) {
            SnapBranch *o = &out->branches[i];
            o->hist = keep[i].hist;
            o->cap_hist = keep[i].cap_hist;
            if (i < s->n_branches)
                copy_snap_history(&o->hist, &o->n_hist, &o->cap_hist, s->branches[i].hist,
                                  s->branches[i].n_hist, same ? keep[i].n_hist : 0);
            else
                o->n_hist = 0;
        }
        copied = 1;
    }
    pthread_mutex_unlock(&t->lock);
    return copied;
}

int trainer_stop(Trainer *t)
{
    Command q;
    memset(&q, 0, sizeof q);
    q.kind = CMD_QUIT;
    int failed = 0;
    atomic_store(&t->stopping, 1);
    trainer_post(t, &q);
    pthread_join(t->thread, NULL);
    for (int i = 0; i < t->n_br; i++)
        failed |= t->br[i]->failed;
    failed |= t->lost;
    trainer_free(t);
    return failed ? 1 : 0;
}
