#include "replay.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas_core.h"
#include "branch.h"
#include "paths.h"

typedef struct {
    json_t **v;
    int n;
} EventList;

static void events_free(EventList *l)
{
    for (int i = 0; i < l->n; i++)
        json_decref(l->v[i]);
    free(l->v);
}

static int events_read(const char *path, EventList *l, MnError *e)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = 0;
    memset(l, 0, sizeof *l);
    if (!f)
        return errno == ENOENT ? 0 : mn_fail(e, "%s: %s", path, strerror(errno));
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        lineno++;
        json_t *ev = json_loads(line, 0, &je);
        if (!json_is_object(ev)) {
            json_decref(ev);
            rc = mn_fail(e, "%s:%d: not an event: %s", path, lineno, je.text);
            break;
        }
        json_t **nv = realloc(l->v, sizeof *nv * (size_t)(l->n + 1));
        if (!nv) {
            json_decref(ev);
            rc = mn_fail(e, "out of memory");
            break;
        }
        l->v = nv;
        l->v[l->n++] = ev;
    }
    free(line);
    fclose(f);
    return rc;
}

static const char *str_of(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static int phase_rank(const char *p)
{
    return !strcmp(p, "base") ? 0 : !strcmp(p, "finetune") ? 1 : 2;
}

/* Where src got: the last evaluation it recorded, or its end. */
static int src_target(const char *src, int *phase, long *step, int *to_end)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/checkpoints/final.safetensors", src);
    *to_end = access(path, F_OK) == 0;
    *phase = 0;
    *step = 0;
    snprintf(path, sizeof path, "%s/metrics.jsonl", src);
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    if (!f)
        return -1;
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        if (o) {
            *phase = phase_rank(str_of(o, "phase"));
            *step = (long)json_integer_value(json_object_get(o, "step"));
            n++;
        }
        json_decref(o);
    }
    free(line);
    fclose(f);
    return n > 0 ? 0 : -1;
}

/* The policy source the run started fine-tuning with: the saved file of
 * the lowest step. */
static int first_policy_source(const char *src, char *out, size_t n)
{
    char dir[4200];
    long best = -1;
    snprintf(dir, sizeof dir, "%s/policy", src);
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    for (struct dirent *de; (de = readdir(d));) {
        char *end;
        long s = strtol(de->d_name, &end, 10);
        if (end != de->d_name && !strcmp(end, ".lua") && (best < 0 || s < best))
            best = s;
    }
    closedir(d);
    if (best < 0)
        return -1;
    snprintf(out, n, "%s/%ld.lua", dir, best);
    return 0;
}

typedef struct {
    const char *src;
    const char *out;
    const RunHooks *hooks;
    char policy_live[6000];    /* the file the replay's policy is loaded from */
} Replay;

/* The threads one process splits a batch with as the ranks × threads an
 * event (start, restart) records did: ranks of one thread each as one
 * process of as many threads (dist.h). 0 when it records neither. */
static int parts_of(const json_t *ev)
{
    json_int_t threads = json_integer_value(json_object_get(ev, "threads"));
    json_int_t ranks = json_integer_value(json_object_get(ev, "ranks"));
    if (threads <= 0 && ranks <= 1)
        return 0;
    return (int)((threads > 0 ? threads : 1) * (ranks > 1 ? ranks : 1));
}

/* A restart or a fork: the state goes to a checkpoint and comes back, as
 * it did in the recorded run. */
static int round_trip(Replay *p, Run *r, json_t *ev, MnError *e)
{
    char cfg[4200];
    const int at_start = r->phase == PHASE_FINETUNE && r->step == 0;
    if (run_save_state(r, e) < 0)
        return -1;
    run_free(r);
    if (!strcmp(str_of(ev, "command"), "restart")) {
        /* on the parts it continued with (a resume may set the threads,
         * and the ranks may have changed) */
        RunHooks h = *p->hooks;
        h.threads = parts_of(ev);
        return run_resume(r, p->out, &h, e);
    }
    json_t *ov = json_object_get(ev, "overrides");
    size_t n = json_array_size(ov);
    const char **sets = calloc(n + 1, sizeof *sets);
    if (!sets)
        return mn_fail(e, "out of memory");
    for (size_t i = 0; i < n; i++)
        sets[i] = json_string_value(json_array_get(ov, i));
    snprintf(cfg, sizeof cfg, "%s/experiment.cfg", p->out);
    int rc = run_continue_as_branch(r, p->out, cfg, str_of(ev, "branch"), str_of(ev, "parent"),
                                    sets, (int)n, at_start, str_of(ev, "source"), p->hooks, e);
    free(sets);
    return rc;
}

/* Applies one recorded event; *applied says whether it changed anything
 * a replay must redo (pauses, evaluations off the schedule and the
 * policy's own changes are not: the policy makes those again). */
static int apply_event(Replay *p, Run *r, json_t *ev, int *applied, MnError *e)
{
    const char *cmd = str_of(ev, "command"), *src = str_of(ev, "source");
    char msg[256], path[4400];
    *applied = 1;
    if (!strcmp(cmd, "set")) {
        const char *key = str_of(ev, "set");
        json_t *to = json_object_get(ev, "to");
        if (!strcmp(key, "finetune.lr"))
            return run_set_lr(r, json_number_value(to), src, msg, sizeof msg, e);
        if (!strcmp(key, "ewc.lambda"))
            return run_set_ewc(r, json_number_value(to), src, msg, sizeof msg, e);
        if (!strncmp(key, "policy.", 7))
            return run_set_policy_param(r, key + 7, json_string_value(to) ? json_string_value(to) : "",
                                        src, msg, sizeof msg, e);
        return mn_fail(e, "events.jsonl: cannot replay a change of '%s'", key);
    }
    if (!strcmp(cmd, "freeze") || !strcmp(cmd, "unfreeze"))
        return run_set_frozen(r, str_of(ev, "parts"), !strcmp(cmd, "freeze"), src, msg, sizeof msg, e);
    if (!strcmp(cmd, "pause"))
        return run_checkpoint(r, NULL, e);   /* the workbench checkpoints on a pause */
    if (!strcmp(cmd, "quit") && json_is_false(json_object_get(ev, "checkpoint")))
        return 0;   /* the pause's checkpoint held everything already */
    if (!strcmp(cmd, "checkpoint") || !strcmp(cmd, "quit")) {
        /* Its on_checkpoint hook ran in the recorded run. */
        char tag[200];
        const char *name = str_of(ev, "name");
        snprintf(tag, sizeof tag, "tag-%.128s-step-%ld", name, r->step);
        return run_checkpoint(r, *name ? tag : NULL, e);
    }
    if (!strcmp(cmd, "restart") || !strcmp(cmd, "branch"))
        return round_trip(p, r, ev, e);
    if (!strcmp(cmd, "policy")) {
        /* the source as it was attached, under its own file name, which
         * the reloads after it then replace */
        const char *file = str_of(ev, "file"), *base = strrchr(file, '/');
        char dir[4400];
        snprintf(dir, sizeof dir, "%s/.policy", p->out);
        if (make_dirs(dir, e) < 0)
            return -1;
        snprintf(p->policy_live, sizeof p->policy_live, "%s/%s", dir, base ? base + 1 : file);
        snprintf(path, sizeof path, "%s/%s", p->src, str_of(ev, "source_file"));
        if (copy_file(path, p->policy_live, e) < 0)
            return mn_wrap(e, "the policy attached at step %ld", r->step);
        return run_attach_policy(r, p->policy_live, src, msg, sizeof msg, e);
    }
    if (!strcmp(str_of(ev, "action"), "reload") && p->policy_live[0]) {
        snprintf(path, sizeof path, "%s/%s", p->src, str_of(ev, "source_file"));
        if (copy_file(path, p->policy_live, e) < 0)
            return mn_wrap(e, "the policy source of the reload at step %ld", r->step);
        return run_policy_reload(r, e);
    }
    *applied = 0;
    return 0;
}

int replay_compare_metrics(const char *a, const char *b, ReplayResult *res, MnError *e)
{
    FILE *fa = fopen(a, "r"), *fb = fopen(b, "r");
    char *la = NULL, *lb = NULL;
    size_t ca = 0, cb = 0;
    res->evaluations = 0;
    res->identical = 1;
    res->difference[0] = 0;
    if (!fa || !fb) {
        if (fa)
            fclose(fa);
        if (fb)
            fclose(fb);
        return mn_fail(e, "%s: %s", fa ? b : a, strerror(errno));
    }
    for (;;) {
        ssize_t na = getline(&la, &ca, fa), nb = getline(&lb, &cb, fb);
        if (na <= 0 || nb <= 0) {
            if (na > 0 || nb > 0) {
                res->identical = 0;
                snprintf(res->difference, sizeof res->difference,
                         "%s has more evaluations than %s", na > 0 ? a : b, na > 0 ? b : a);
            }
            break;
        }
        json_error_t je;
        json_t *x = json_loads(la, 0, &je), *y = json_loads(lb, 0, &je);
        json_object_del(x, "elapsed_s");
        json_object_del(y, "elapsed_s");
        int same = x && y && json_equal(x, y);
        if (!same && res->identical) {
            res->identical = 0;
            snprintf(res->difference, sizeof res->difference, "evaluation %ld differs:\n  %.*s  %.*s",
                     res->evaluations + 1, 240, la, 240, lb);
        }
        json_decref(x);
        json_decref(y);
        res->evaluations++;
    }
    free(la);
    free(lb);
    fclose(fa);
    fclose(fb);
    return 0;
}

int replay_run(const char *src, const char *out_dir, const RunHooks *hooks,
               ReplayResult *res, MnError *e)
{
    char root[4096], path[4400], first[4400];
    Replay p = { src, out_dir, hooks, "" };
    EventList evs;
    Run r;
    int tphase, to_end;
    long tstep;
    memset(res, 0, sizeof *res);
    memset(&r, 0, sizeof r);
    branch_root(src, root, sizeof root);
    snprintf(path, sizeof path, "%s/experiment.cfg", root);
    Experiment *x = malloc(sizeof *x);
    if (!x)
        return mn_fail(e, "out of memory");
    if (experiment_load(x, path, NULL, 0, e) < 0) {
        free(x);
        return mn_wrap(e, "%s: not a run folder", src);
    }
    if (src_target(src, &tphase, &tstep, &to_end) < 0) {
        free(x);
        return mn_fail(e, "%s: no evaluations recorded yet: nothing to replay", src);
    }
    if (make_dirs(out_dir, e) < 0) {
        free(x);
        return -1;
    }
    if (x->finetune.policy[0] && first_policy_source(src, first, sizeof first) == 0) {
        /* The sources as they ran, not the file as it is now: under the
         * same file name, so the policy keeps its name. */
        const char *base = strrchr(x->finetune.policy, '/');
        snprintf(path, sizeof path, "%s/.policy", out_dir);
        if (make_dirs(path, e) < 0) {
            free(x);
            return -1;
        }
        snprintf(p.policy_live, sizeof p.policy_live, "%s/%s", path, base ? base + 1 : x->finetune.policy);
        if (copy_file(first, p.policy_live, e) < 0) {
            free(x);
            return -1;
        }
        snprintf(x->finetune.policy, sizeof x->finetune.policy, "%s", p.policy_live);
    }
    x->policy.watch = 0;     /* reloads come from events.jsonl */
    snprintf(path, sizeof path, "%s/events.jsonl", src);
    if (events_read(path, &evs, e) < 0) {
        free(x);
        return -1;
    }
    /* A run across ranks is replayed in one process with as many parts */
    for (int i = 0; i < evs.n; i++)
        if (!strcmp(str_of(evs.v[i], "command"), "start")) {
            if (parts_of(evs.v[i]) > 0)
                x->threads = parts_of(evs.v[i]);
            break;
        }
    /* as the trainer does: OpenBLAS's own thread count changes the sums */
    blas_set_threads(x->threads);
    int rc = run_create(&r, x, out_dir, hooks, e);
    free(x);
    int next = 0;
    while (rc == 0) {
        int phase = phase_rank(phase_name(r.phase));
        while (next < evs.n && rc == 0) {
            json_t *ev = evs.v[next];
            int ep = phase_rank(str_of(ev, "phase"));
            long es = (long)json_integer_value(json_object_get(ev, "step"));
            if (ep > phase || (ep == phase && es > r.step))
                break;
            int applied = 0;
            if (ep == phase && es == r.step)
                rc = apply_event(&p, &r, ev, &applied, e);
            res->events_applied += applied;
            next++;
        }
        if (rc < 0 || r.phase == PHASE_DONE)
            break;
        if (!to_end && phase == tphase && r.step >= tstep)
            break;
        int st = run_step(&r, e);
        if (st < 0)
            rc = -1;
        else if (st == 1)
            break;
        if (st >= 0 && r.diverged_at >= 0) {
            /* Rolled back as the recorded run was, or the runs differ. */
            json_t *ev = next < evs.n ? evs.v[next] : NULL;
            if (ev && !strcmp(str_of(ev, "command"), "diverge") &&
                (long)json_integer_value(json_object_get(ev, "step")) == r.diverged_at)
                next++;
            else
                rc = mn_fail(e, "the replay diverged at %s step %ld, where the recorded run did not",
                             phase_name(r.phase), r.diverged_at);
        }
        /* A frontend checkpoints when the run pauses itself, as here. */
        if (st == 2 && !r.checkpoint_due)
            rc = run_checkpoint(&r, NULL, e);
        if (rc < 0)
            break;
        if (st == 2 && r.pause_is_error) {
            /* The recorded run went on after a fixed policy was reloaded. */
            int ep = next < evs.n ? phase_rank(str_of(evs.v[next], "phase")) : -1;
            long es = next < evs.n ? (long)json_integer_value(json_object_get(evs.v[next], "step")) : -1;
            if (ep != phase || es != r.step)
                rc = mn_fail(e, "the replay paused at step %ld: %s", r.step, r.pause_reason);
        }
    }
    events_free(&evs);
    run_free(&r);
    if (rc < 0)
        return -1;
    char a[4400], b[4400];
    snprintf(a, sizeof a, "%s/metrics.jsonl", src);
    snprintf(b, sizeof b, "%s/metrics.jsonl", out_dir);
    return replay_compare_metrics(a, b, res, e);
}
