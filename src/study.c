#include "study.h"

#include <errno.h>
#include <jansson.h>
#include <libconfig.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "branch.h"
#include "headless.h"
#include "metrics.h"
#include "paths.h"
#include "run.h"
#include "tradeoff.h"
#include "ui/ui.h"

/* ---- the study file ------------------------------------------------------ */

/* KEY=VALUE as given, with a relative path made relative to dir (a key
 * the fork refuses is left as it is, for remedies_check to name). */
static char *resolve_set(const char *set, const char *dir)
{
    char key[128], v[EXP_PATH], *out;
    int is_param;
    MnError why;
    if (run_fork_override(set, 1, key, sizeof key, v, sizeof v, &is_param, &why) < 0 || is_param ||
        !experiment_key_is_path(key) || !v[0] || v[0] == '/')
        return strdup(set);
    size_t n = strlen(key) + strlen(dir) + strlen(v) + 3;
    if ((out = malloc(n)))
        snprintf(out, n, "%s=%s/%s", key, dir, v);
    return out;
}

void remedies_free(Remedies *r)
{
    for (int i = 0; i < r->n; i++)
        for (int k = 0; k < r->v[i].n_sets; k++)
            free(r->v[i].sets[k]);
    r->n = 0;
}

static int remedy_fail(MnError *e, const Remedies *r, const config_setting_t *s,
                       const char *name, const char *what)
{
    return mn_fail(e, "%s:%d: remedy %s: %s", r->file, config_setting_source_line(s), name, what);
}

/* One group: about = "…"; set = [ "KEY=VALUE", … ]; */
static int remedy_read(Remedies *r, config_setting_t *g, const char *dir, MnError *e)
{
    const char *name = config_setting_name(g);
    char why[300];
    MnError ne;
    if (!config_setting_is_group(g))
        return mn_fail(e, "%s:%d: %s: expected a group { about = \"...\"; set = [ \"KEY=VALUE\", "
                       "... ]; }", r->file, config_setting_source_line(g), name);
    if (branch_name_check(name, &ne) < 0)
        return remedy_fail(e, r, g, name, ne.msg);
    if (r->n == STUDY_MAX_REMEDIES)
    {
        snprintf(why, sizeof why, "too many remedies: a study has room for at most %d "
                 "(use --only)", STUDY_MAX_REMEDIES);
        return remedy_fail(e, r, g, name, why);
    }
    Remedy *m = &r->v[r->n];
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    m->line = config_setting_source_line(g);
    r->n++;
    for (int i = 0; i < config_setting_length(g); i++) {
        config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *k = config_setting_name(s);
        if (!strcmp(k, "about")) {
            if (config_setting_type(s) != CONFIG_TYPE_STRING)
                return remedy_fail(e, r, s, name, "about: expected a string");
            snprintf(m->about, sizeof m->about, "%s", config_setting_get_string(s));
        } else if (!strcmp(k, "set")) {
            if (!config_setting_is_aggregate(s) || config_setting_is_group(s))
                return remedy_fail(e, r, s, name, "set: expected a list of \"KEY=VALUE\" strings");
            for (int j = 0; j < config_setting_length(s); j++) {
                config_setting_t *v = config_setting_get_elem(s, (unsigned)j);
                if (config_setting_type(v) != CONFIG_TYPE_STRING || !strchr(config_setting_get_string(v), '='))
                    return remedy_fail(e, r, s, name, "set: expected \"KEY=VALUE\" strings");
                if (m->n_sets == STUDY_MAX_SETS) {
                    snprintf(why, sizeof why, "set: at most %d overrides", STUDY_MAX_SETS);
                    return remedy_fail(e, r, s, name, why);
                }
                if (!(m->sets[m->n_sets] = resolve_set(config_setting_get_string(v), dir)))
                    return mn_fail(e, "out of memory");
                m->n_sets++;
            }
        } else {
            snprintf(why, sizeof why, "unknown setting '%s' (expected about, set)", k);
            return remedy_fail(e, r, s, name, why);
        }
    }
    if (m->n_sets == 0)
        return remedy_fail(e, r, g, name, "set: expected at least one KEY=VALUE (a remedy "
                           "without one is the experiment itself)");
    return 0;
}

int remedies_load(const char *path, Remedies *out, MnError *e)
{
    config_t c;
    char dir[EXP_PATH];
    memset(out, 0, sizeof *out);
    snprintf(out->file, sizeof out->file, "%s", path);
    absolute_path(path, dir, sizeof dir);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    config_init(&c);
    if (!config_read_file(&c, path)) {
        int rc = config_error_type(&c) == CONFIG_ERR_FILE_IO
                 ? mn_fail(e, "%s: %s", path, strerror(errno ? errno : ENOENT))
                 : mn_fail(e, "%s:%d: %s", path, config_error_line(&c), config_error_text(&c));
        config_destroy(&c);
        return rc;
    }
    config_setting_t *root = config_root_setting(&c);
    int rc = 0;
    for (int i = 0; i < config_setting_length(root) && rc == 0; i++)
        rc = remedy_read(out, config_setting_get_elem(root, (unsigned)i), dir, e);
    if (rc == 0 && out->n == 0)
        rc = mn_fail(e, "%s: no remedies (expected groups such as ewc = { set = "
                     "[ \"finetune.ewc.lambda=1e6\" ]; };)", path);
    config_destroy(&c);
    if (rc < 0)
        remedies_free(out);
    return rc;
}

int remedies_only(Remedies *r, const char *list, MnError *e)
{
    char *copy = strdup(list), *save = NULL;
    int keep[STUDY_MAX_REMEDIES] = { 0 }, rc = 0;
    if (!copy)
        return mn_fail(e, "out of memory");
    for (char *w = strtok_r(copy, ",", &save); w && rc == 0; w = strtok_r(NULL, ",", &save)) {
        int found = -1;
        for (int i = 0; i < r->n; i++)
            if (!strcmp(r->v[i].name, w))
                found = i;
        if (found < 0) {
            char names[1200] = "";
            for (int i = 0, used = 0; i < r->n && used < (int)sizeof names - 60; i++)
                used += snprintf(names + used, sizeof names - (size_t)used, "%s%s", i ? ", " : "",
                                 r->v[i].name);
            rc = mn_fail(e, "--only: %s has no remedy %s (it has: %s)", r->file, w, names);
        } else
            keep[found] = 1;
    }
    free(copy);
    if (rc < 0)
        return -1;
    int n = 0;
    for (int i = 0; i < r->n; i++) {
        if (keep[i])
            r->v[n++] = r->v[i];
        else
            for (int k = 0; k < r->v[i].n_sets; k++)
                free(r->v[i].sets[k]);
    }
    r->n = n;
    return n > 0 ? 0 : mn_fail(e, "--only: no remedy named");
}

int remedies_check(const Remedies *r, const Experiment *x, MnError *e)
{
    Experiment *t = malloc(sizeof *t);
    if (!t)
        return mn_fail(e, "out of memory");
    int rc = 0;
    for (int i = 0; i < r->n && rc == 0; i++) {
        const Remedy *m = &r->v[i];
        char key[128], value[512], assign[700];
        int is_param;
        MnError why;
        *t = *x;
        if (!strcmp(m->name, x->name))
            rc = mn_fail(e, "%s:%d: remedy %s: the experiment itself has that name; choose "
                         "another", r->file, m->line, m->name);
        for (int k = 0; k < m->n_sets && rc == 0; k++) {
            if (run_fork_override(m->sets[k], 1, key, sizeof key, value, sizeof value, &is_param,
                                  &why) < 0)
                rc = -1;
            else if (!is_param) {
                snprintf(assign, sizeof assign, "%s=%s", key, value);
                rc = experiment_set(t, assign, &why);
            }
            if (rc < 0)
                mn_fail(e, "%s:%d: remedy %s: %s", r->file, m->line, m->name, why.msg);
        }
    }
    free(t);
    return rc;
}

/* ---- the plan: study.json before the results ---------------------------- */

typedef struct {
    char dir[EXP_PATH];
    char name[128];            /* the experiment's */
    Remedies rem;
    long seeds[STUDY_MAX_SEEDS];
    int n_seeds;
} Plan;

static void seed_dir(const Plan *p, int s, char *out, size_t n)
{
    snprintf(out, n, "%s/seed-%ld", p->dir, p->seeds[s]);
}

static json_t *remedy_json(const Remedy *m)
{
    json_t *sets = json_array();
    for (int k = 0; k < m->n_sets; k++)
        json_array_append_new(sets, json_string(m->sets[k]));
    return json_pack("{s:s, s:b, s:s, s:o}", "name", m->name, "main", 0, "about", m->about,
                     "set", sets);
}

/* study.json's plan: what a resume needs, the results added when done. */
static json_t *plan_json(const Plan *p, const char *status)
{
    json_t *seeds = json_array(), *rem = json_array();
    for (int s = 0; s < p->n_seeds; s++)
        json_array_append_new(seeds, json_integer(p->seeds[s]));
    for (int i = 0; i < p->rem.n; i++)
        json_array_append_new(rem, remedy_json(&p->rem.v[i]));
    return json_pack("{s:i, s:s, s:s, s:s, s:o, s:o}", "version", 1, "status", status,
                     "experiment", p->name, "remedies_file", p->rem.file, "seeds", seeds,
                     "plan", rem);
}

static int plan_write(const Plan *p, MnError *e)
{
    char path[EXP_PATH + 32];
    json_t *o = plan_json(p, "running");
    snprintf(path, sizeof path, "%s/study.json", p->dir);
    int rc = o ? json_write_atomic(path, o, 0, e) : mn_fail(e, "%s: out of memory", path);
    json_decref(o);
    return rc;
}

static int plan_read(const char *dir, Plan *p, MnError *e)
{
    char path[EXP_PATH + 32];
    json_error_t je;
    memset(p, 0, sizeof *p);
    snprintf(p->dir, sizeof p->dir, "%s", dir);
    snprintf(path, sizeof path, "%s/study.json", dir);
    json_t *o = json_load_file(path, 0, &je);
    if (!o)
        return mn_fail(e, "%s: %s (is %s a study folder?)", path,
                       errno == ENOENT && je.line < 1 ? "missing" : je.text, dir);
    json_t *seeds = json_object_get(o, "seeds"), *plan = json_object_get(o, "plan");
    const char *name = json_string_value(json_object_get(o, "experiment"));
    const char *file = json_string_value(json_object_get(o, "remedies_file"));
    int rc = 0;
    if (!json_is_array(seeds) || !json_array_size(seeds) || json_array_size(seeds) > STUDY_MAX_SEEDS ||
        !json_is_array(plan) || !json_array_size(plan) || json_array_size(plan) > STUDY_MAX_REMEDIES ||
        !name || !file)
        rc = mn_fail(e, "%s: not a study's plan (seeds, plan, experiment, remedies_file)", path);
    for (size_t i = 0; rc == 0 && i < json_array_size(seeds); i++) {
        json_t *s = json_array_get(seeds, i);
        if (!json_is_integer(s))
            rc = mn_fail(e, "%s: seeds: expected integers", path);
        else
            p->seeds[p->n_seeds++] = (long)json_integer_value(s);
    }
    snprintf(p->name, sizeof p->name, "%s", name ? name : "");
    snprintf(p->rem.file, sizeof p->rem.file, "%s", file ? file : "");
    for (size_t i = 0; rc == 0 && i < json_array_size(plan); i++) {
        json_t *r = json_array_get(plan, i), *sets = json_object_get(r, "set");
        const char *n = json_string_value(json_object_get(r, "name"));
        const char *about = json_string_value(json_object_get(r, "about"));
        MnError why;
        if (!n || branch_name_check(n, &why) < 0 || !json_is_array(sets) ||
            json_array_size(sets) > STUDY_MAX_SETS) {
            rc = mn_fail(e, "%s: plan entry %zu: expected a name and a set list", path, i + 1);
            break;
        }
        Remedy *m = &p->rem.v[p->rem.n++];
        memset(m, 0, sizeof *m);
        snprintf(m->name, sizeof m->name, "%s", n);
        snprintf(m->about, sizeof m->about, "%s", about ? about : "");
        for (size_t k = 0; rc == 0 && k < json_array_size(sets); k++) {
            const char *v = json_string_value(json_array_get(sets, k));
            if (!v || !(m->sets[m->n_sets] = strdup(v)))
                rc = mn_fail(e, "%s: plan entry %s: set: expected strings", path, n);
            else
                m->n_sets++;
        }
    }
    json_decref(o);
    if (rc < 0)
        remedies_free(&p->rem);
    return rc;
}

/* ---- running it ----------------------------------------------------------- */

typedef struct {
    int headless, quiet;
    const char *theme;
    Dist *dist;                /* the ranks (dist.h); size 1: this process */
} StudyRunOptions;

/* Rank 0's status, to every rank: what it alone can see (its folder's
 * files) decides for all. */
static int rank0_says(Dist *d, int rc)
{
    MnError e;
    if (d->size > 1 && dist_broadcast(d, &rc, sizeof rc, &e) < 0) {
        fprintf(stderr, "mneme study: rank %d: %s\n", d->rank, e.msg);
        dist_abort(d, 1);
    }
    return rc;
}

/* Whether dir's summary says its run finished. */
static int finished(const char *dir)
{
    char path[EXP_PATH + 200];
    json_error_t je;
    snprintf(path, sizeof path, "%s/summary.json", dir);
    json_t *o = json_load_file(path, 0, &je);
    const char *st = json_string_value(json_object_get(o, "status"));
    int rc = st && !strcmp(st, "finished");
    json_decref(o);
    return rc;
}

static int family_finished(const Plan *p, const char *dir)
{
    char b[EXP_PATH + 120];
    if (!finished(dir))
        return 0;
    for (int i = 0; i < p->rem.n; i++) {
        snprintf(b, sizeof b, "%s/branches/%s", dir, p->rem.v[i].name);
        if (!finished(b))
            return 0;
    }
    return 1;
}

/* Trains (or continues) seed s's family: main and every remedy. */
static int run_seed(const Plan *p, int s, const TrainerFork *forks, const StudyRunOptions *o)
{
    char dir[EXP_PATH + 80], path[EXP_PATH + 120], again[EXP_PATH + 40], seed[48];
    char own[EXP_PATH + 80];
    const char *sets[] = { seed };
    MnError e;
    Dist *d = o->dist;
    seed_dir(p, s, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    /* every rank reads rank 0's folder before rank 0 writes to it */
    const int started = access(path, F_OK) == 0;
    if (started && family_finished(p, dir)) {
        dist_any_failed(d, 0);
        return 0;
    }
    int failed = 0;
    if (d->rank > 0) {
        /* the other ranks train in folders of their own, from a copy of
         * what rank 0's holds (a shared file system) */
        char tag[32];
        snprintf(tag, sizeof tag, "seed-%ld", p->seeds[s]);
        dist_rank_folder(d, tag, own, sizeof own);
        if (started && copy_run_folder(dir, own, &e) < 0) {
            fprintf(stderr, "mneme study: rank %d: %s\n", d->rank, e.msg);
            failed = 1;
        }
        snprintf(dir, sizeof dir, "%s", own);
    }
    if (dist_any_failed(d, failed)) {
        if (d->rank > 0)
            remove_tree(dir);
        return 2;
    }
    Experiment *x = NULL;
    if (!started) {
        /* the experiment as studied, under this seed */
        snprintf(path, sizeof path, "%s/experiment.cfg", p->dir);
        snprintf(seed, sizeof seed, "seed=%ld", p->seeds[s]);
        if (!(x = malloc(sizeof *x)) || experiment_load(x, path, sets, 1, &e) < 0) {
            fprintf(stderr, "mneme study: %s\n", x ? e.msg : "out of memory");
            free(x);
            return 2;
        }
    }
    int rc;
    if (!o->headless) {
        TrainerOptions to = { .forks = forks, .n_forks = p->rem.n };
        rc = ui_main(x, dir, o->theme, &to);
    } else {
        HeadlessOptions ho;
        memset(&ho, 0, sizeof ho);
        ho.dist = d->size > 1 ? d : NULL;
        ho.quiet = o->quiet || d->rank > 0;
        ho.silent = d->rank > 0;
        ho.forks = forks;
        ho.n_forks = p->rem.n;
        ho.restore_family = 1;
        /* headless nobody watches them side by side: one after another,
         * each has the caches to itself */
        ho.one_at_a_time = 1;
        snprintf(again, sizeof again, "mneme study --resume %s", p->dir);
        ho.resume_with = again;
        if (p->n_seeds > 1 && d->rank == 0)
            printf("# seed %ld (%d of %d): %s\n", p->seeds[s], s + 1, p->n_seeds, dir);
        fflush(stdout);
        rc = x ? headless_run(x, dir, &ho) : headless_resume(dir, &ho);
        if (d->rank > 0)
            remove_tree(dir);
    }
    free(x);
    return rc;
}

/* ---- the results ------------------------------------------------------------ */

/* One run's figures, from its summary.json. */
typedef struct {
    double new_acc, orig_acc, orig_min, forgetting, time_s, trainable, baseline;
    double adapter_off;        /* the original task, adapter swapped out; < 0: none */
    int stopped;               /* a stop rule ended it early */
    int n_orig, n_new;         /* evaluation examples */
} Figures;

static int read_figures(const char *dir, Figures *f, MnError *e)
{
    char path[EXP_PATH + 200];
    json_error_t je;
    snprintf(path, sizeof path, "%s/summary.json", dir);
    json_t *o = json_load_file(path, 0, &je);
    if (!o)
        return mn_fail(e, "%s: %s", path, je.text);
    const char *st = json_string_value(json_object_get(o, "status"));
    if (!st || strcmp(st, "finished") != 0) {
        json_decref(o);
        return mn_fail(e, "%s: the run has not finished (status %s)", dir, st ? st : "unknown");
    }
    f->new_acc = json_number_at(o, "final", "new", "acc", NAN);
    f->orig_acc = json_number_at(o, "final", "original", "acc", NAN);
    f->baseline = json_number_at(o, "baseline", "original", "acc", NAN);
    f->forgetting = json_number_at(o, "forgetting", NULL, NULL, NAN);
    f->orig_min = f->baseline - json_number_at(o, "max_original_drop", NULL, NULL, NAN);
    f->trainable = json_number_at(o, "trainable_fraction", NULL, NULL, NAN);
    f->time_s = json_number_at(o, "timing", "finetune_s", NULL, json_number_at(o, "timing", "train_s", NULL, 0.0));
    f->adapter_off = json_number_at(o, "final_adapter_off", "original", "acc", -1.0);
    f->stopped = json_is_string(json_object_get(o, "stop_reason"));
    f->n_orig = (int)json_number_at(o, "eval_examples", "original", NULL, 0);
    f->n_new = (int)json_number_at(o, "eval_examples", "new", NULL, 0);
    json_decref(o);
    if (isnan(f->new_acc) || isnan(f->orig_acc) || isnan(f->baseline) || isnan(f->forgetting))
        return mn_fail(e, "%s: no final or baseline evaluation", path);
    return 0;
}

typedef struct {
    double mean, sd, ci95;
} Stat;

/* Student's t, two-sided 95%, by degrees of freedom. */
static double t975(int df)
{
    static const double t[] = { 0, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306,
                                2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110,
                                2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
                                2.052, 2.048, 2.045, 2.042 };
    return df < 1 ? INFINITY : df <= 30 ? t[df] : 1.96;
}

/* The sampling noise of an accuracy p measured on n examples (binomial). */
static double acc_se(double p, int n)
{
    if (n <= 0)
        return 0.0;
    p = p < 0 ? 0 : p > 1 ? 1 : p;
    return sqrt(p * (1 - p) / n);
}

/* Over seeds: the mean, its spread and the 95% interval of the mean
 * (Student's t). From one seed the interval is the evaluation's own
 * noise, that of an accuracy p on n examples (n 0: none). */
static Stat stat_of(const double *v, int n, double p, int n_examples)
{
    Stat s = { 0, 0, 0 };
    for (int i = 0; i < n; i++)
        s.mean += v[i] / n;
    if (n > 1) {
        double ss = 0;
        for (int i = 0; i < n; i++)
            ss += (v[i] - s.mean) * (v[i] - s.mean);
        s.sd = sqrt(ss / (n - 1));
        s.ci95 = t975(n - 1) * s.sd / sqrt(n);
    } else
        s.ci95 = 1.96 * acc_se(p, n_examples);
    return s;
}

/* Whether remedy values r differ from main's m beyond noise: over seeds a
 * paired t-test (each seed's remedy against its own main, one base); from
 * one seed the two accuracies' sampling noise on n examples. */
static int differs(const double *r, const double *m, int n, double pr, double pm, int n_examples)
{
    if (n > 1) {
        double d[STUDY_MAX_SEEDS], mean = 0, ss = 0;
        for (int i = 0; i < n; i++)
            mean += (d[i] = r[i] - m[i]) / n;
        for (int i = 0; i < n; i++)
            ss += (d[i] - mean) * (d[i] - mean);
        double se = sqrt(ss / (n - 1)) / sqrt(n);
        return se == 0 ? fabs(mean) > 1e-12 : fabs(mean) / se > t975(n - 1);
    }
    double se = sqrt(acc_se(pr, n_examples) * acc_se(pr, n_examples) +
                     acc_se(pm, n_examples) * acc_se(pm, n_examples));
    return se == 0 ? fabs(r[0] - m[0]) > 1e-12 : fabs(r[0] - m[0]) > 1.96 * se;
}

static json_t *stat_json(Stat s)
{
    return json_pack("{s:f, s:f, s:f}", "mean", s.mean, "sd", s.sd, "ci95", s.ci95);
}

enum { F_NEW, F_ORIG, F_MIN, F_FORGET, F_TIME, F_OFF, N_FIG };

static double fig_value(const Figures *f, int k)
{
    switch (k) {
    case F_NEW: return f->new_acc;
    case F_ORIG: return f->orig_acc;
    case F_MIN: return f->orig_min;
    case F_FORGET: return f->forgetting;
    case F_TIME: return f->time_s;
    default: return f->adapter_off;
    }
}

int study_collect(const char *dir, MnError *e)
{
    Plan *p = malloc(sizeof *p);
    if (!p)
        return mn_fail(e, "out of memory");
    if (plan_read(dir, p, e) < 0) {
        free(p);
        return -1;
    }
    const int n_rows = p->rem.n + 1, ns = p->n_seeds;
    Figures *f = calloc((size_t)n_rows * (size_t)ns, sizeof *f);
    int rc = f ? 0 : mn_fail(e, "out of memory");
    /* row 0: the experiment as given; then the remedies in the file's order */
    for (int r = 0; r < n_rows && rc == 0; r++)
        for (int s = 0; s < ns && rc == 0; s++) {
            char run[EXP_PATH + 120], sd[EXP_PATH + 40];
            seed_dir(p, s, sd, sizeof sd);
            if (r == 0)
                snprintf(run, sizeof run, "%s", sd);
            else
                snprintf(run, sizeof run, "%s/branches/%s", sd, p->rem.v[r - 1].name);
            rc = read_figures(run, &f[r * ns + s], e);
        }
    json_t *rows = json_array();
    double mean_new[STUDY_MAX_REMEDIES + 1], mean_forget[STUDY_MAX_REMEDIES + 1];
    for (int r = 0; r < n_rows && rc == 0; r++) {
        const Figures *fr = &f[r * ns], *fm = &f[0];
        double v[N_FIG][STUDY_MAX_SEEDS], mv[N_FIG][STUDY_MAX_SEEDS];
        int stopped = 0, has_off = 1;
        for (int s = 0; s < ns; s++) {
            for (int k = 0; k < N_FIG; k++) {
                v[k][s] = fig_value(&fr[s], k);
                mv[k][s] = fig_value(&fm[s], k);
            }
            stopped += fr[s].stopped;
            has_off &= fr[s].adapter_off >= 0;
        }
        Stat st[N_FIG];
        st[F_NEW] = stat_of(v[F_NEW], ns, fr[0].new_acc, fr[0].n_new);
        /* the base is the same for every remedy: forgetting's noise is
         * that of the final original-task accuracy */
        st[F_ORIG] = stat_of(v[F_ORIG], ns, fr[0].orig_acc, fr[0].n_orig);
        st[F_MIN] = stat_of(v[F_MIN], ns, fr[0].orig_min, fr[0].n_orig);
        st[F_FORGET] = stat_of(v[F_FORGET], ns, fr[0].orig_acc, fr[0].n_orig);
        st[F_TIME] = stat_of(v[F_TIME], ns, 0, 0);
        st[F_OFF] = stat_of(v[F_OFF], ns, fr[0].adapter_off, fr[0].n_orig);
        mean_new[r] = st[F_NEW].mean;
        mean_forget[r] = st[F_FORGET].mean;
        json_t *runs = json_array();
        for (int s = 0; s < ns; s++) {
            char rel[160];
            if (r == 0)
                snprintf(rel, sizeof rel, "seed-%ld", p->seeds[s]);
            else
                snprintf(rel, sizeof rel, "seed-%ld/branches/%s", p->seeds[s], p->rem.v[r - 1].name);
            json_t *one = json_pack("{s:I, s:s, s:f, s:f, s:f, s:f, s:f, s:b}", "seed",
                                    (json_int_t)p->seeds[s], "dir", rel, "new_acc", fr[s].new_acc,
                                    "forgetting", fr[s].forgetting, "original_acc", fr[s].orig_acc,
                                    "original_min", fr[s].orig_min, "time_s", fr[s].time_s,
                                    "stopped_early", fr[s].stopped);
            json_object_set_new(one, "adapter_off_original", fr[s].adapter_off >= 0 ?
                                json_real(fr[s].adapter_off) : json_null());
            json_array_append_new(runs, one);
        }
        json_t *row = r == 0 ? json_pack("{s:s, s:b, s:s, s:[]}", "name", p->name, "main", 1,
                                         "about", "the experiment as given, no remedy", "set")
                             : remedy_json(&p->rem.v[r - 1]);
        const int d_new = r > 0 && differs(v[F_NEW], mv[F_NEW], ns, fr[0].new_acc, fm[0].new_acc,
                                           fr[0].n_new);
        const int d_forget = r > 0 && differs(v[F_FORGET], mv[F_FORGET], ns, fr[0].orig_acc,
                                              fm[0].orig_acc, fr[0].n_orig);
        json_object_set_new(row, "new_acc", stat_json(st[F_NEW]));
        json_object_set_new(row, "forgetting", stat_json(st[F_FORGET]));
        json_object_set_new(row, "original_acc", stat_json(st[F_ORIG]));
        json_object_set_new(row, "original_min", stat_json(st[F_MIN]));
        json_object_set_new(row, "adapter_off_original", has_off ? stat_json(st[F_OFF]) : json_null());
        json_object_set_new(row, "trainable_fraction", json_real(fr[0].trainable));
        json_object_set_new(row, "time_s", stat_json(st[F_TIME]));
        json_object_set_new(row, "stopped_early", json_integer(stopped));
        json_object_set_new(row, "differs", json_pack("{s:b, s:b}", "new_acc", d_new,
                                                      "forgetting", d_forget));
        json_object_set_new(row, "runs", runs);
        json_array_append_new(rows, row);
    }
    /* The Pareto front: no other remedy forgets less (or as little) and
     * learns the new task better (or as well), one of them strictly. */
    for (int r = 0; r < n_rows && rc == 0; r++) {
        int dominated = 0;
        for (int q = 0; q < n_rows && !dominated; q++)
            dominated = q != r && mean_forget[q] <= mean_forget[r] && mean_new[q] >= mean_new[r] &&
                        (mean_forget[q] < mean_forget[r] || mean_new[q] > mean_new[r]);
        json_object_set_new(json_array_get(rows, (size_t)r), "pareto", json_boolean(!dominated));
    }
    if (rc == 0) {
        char path[EXP_PATH + 32];
        double base[STUDY_MAX_SEEDS];
        for (int s = 0; s < ns; s++)
            base[s] = f[s].baseline;
        json_t *o = plan_json(p, "finished");
        json_object_set_new(o, "noise", json_string(ns > 1 ? "seeds" : "evaluation"));
        json_object_set_new(o, "baseline_original_acc",
                            stat_json(stat_of(base, ns, base[0], f[0].n_orig)));
        json_object_set_new(o, "eval_examples", json_pack("{s:i, s:i}", "original", f[0].n_orig,
                                                          "new", f[0].n_new));
        json_object_set_new(o, "remedies", rows);
        rows = NULL;
        snprintf(path, sizeof path, "%s/study.json", dir);
        rc = o ? json_write_atomic(path, o, 0, e) : mn_fail(e, "%s: out of memory", path);
        json_decref(o);
    }
    json_decref(rows);
    free(f);
    remedies_free(&p->rem);
    free(p);
    return rc;
}

/* ---- the table ---------------------------------------------------------------- */

static double stat_get(json_t *row, const char *k, const char *w)
{
    return json_number_at(row, k, w, NULL, NAN);
}

static void row_of(json_t *r, int first, int ns, StudyRow *out)
{
    const char *name = json_string_value(json_object_get(r, "name"));
    const char *about = json_string_value(json_object_get(r, "about"));
    json_t *sets = json_object_get(r, "set"), *d = json_object_get(r, "differs");
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", name ? name : "?");
    snprintf(out->about, sizeof out->about, "%s", about ? about : "");
    for (size_t k = 0, used = 0; k < json_array_size(sets) && used < sizeof out->sets - 1; k++)
        used += (size_t)snprintf(out->sets + used, sizeof out->sets - used, "%s%s", k ? " " : "",
                                 json_string_value(json_array_get(sets, k)));
    out->main = first;
    out->pareto = json_is_true(json_object_get(r, "pareto"));
    snprintf(out->new_acc, sizeof out->new_acc, "%.3f ±%.3f%s", stat_get(r, "new_acc", "mean"),
             stat_get(r, "new_acc", "ci95"), json_is_true(json_object_get(d, "new_acc")) ? " *" : "");
    snprintf(out->forgetting, sizeof out->forgetting, "%.3f ±%.3f%s", stat_get(r, "forgetting", "mean"),
             stat_get(r, "forgetting", "ci95"), json_is_true(json_object_get(d, "forgetting")) ? " *" : "");
    out->orig_acc = stat_get(r, "original_acc", "mean");
    out->orig_min = stat_get(r, "original_min", "mean");
    out->trainable = json_number_at(r, "trainable_fraction", NULL, NULL, NAN);
    out->time_s = stat_get(r, "time_s", "mean");
    size_t nn = 0;
    char *notes = out->notes;
    const size_t cap = sizeof out->notes;
    if (first)
        nn += (size_t)snprintf(notes + nn, cap - nn, "no remedy; ");
    if (out->pareto && nn < cap)
        nn += (size_t)snprintf(notes + nn, cap - nn, "front; ");
    long stopped = (long)json_integer_value(json_object_get(r, "stopped_early"));
    if (stopped && nn < cap)
        nn += (size_t)(ns > 1 ? snprintf(notes + nn, cap - nn, "stopped early (%ld of %d); ", stopped, ns)
                              : snprintf(notes + nn, cap - nn, "stopped early; "));
    if (json_is_object(json_object_get(r, "adapter_off_original")) && nn < cap)
        nn += (size_t)snprintf(notes + nn, cap - nn, "adapter off: orig %.3f; ",
                               stat_get(r, "adapter_off_original", "mean"));
    if (nn >= 2 && nn < cap)
        notes[nn - 2] = 0;
}

int study_rows(const char *dir, StudyRow **rows_out, int *n_out, StudyInfo *info, MnError *e)
{
    char path[EXP_PATH + 32];
    json_error_t je;
    *rows_out = NULL;
    *n_out = 0;
    memset(info, 0, sizeof *info);
    snprintf(path, sizeof path, "%s/study.json", dir);
    json_t *o = json_load_file(path, 0, &je);
    if (!o)
        return mn_fail(e, "%s: %s", path, je.text);
    json_t *rows = json_object_get(o, "remedies");
    if (!json_is_array(rows) || json_array_size(rows) == 0) {
        json_decref(o);
        return mn_fail(e, "%s: no results yet (the study has not finished)", path);
    }
    const int ns = (int)json_array_size(json_object_get(o, "seeds")), n = (int)json_array_size(rows);
    StudyRow *v = calloc((size_t)n, sizeof *v);
    if (!v) {
        json_decref(o);
        return mn_fail(e, "out of memory");
    }
    info->n_seeds = ns;
    info->baseline = json_number_at(o, "baseline_original_acc", "mean", NULL, NAN);
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        row_of(json_array_get(rows, (size_t)i), i == 0, ns, &v[i]);
        if (v[i].pareto && used < sizeof info->front)
            used += (size_t)snprintf(info->front + used, sizeof info->front - used, "%s%s",
                                     used ? ", " : "", v[i].name);
    }
    snprintf(info->main, sizeof info->main, "%s", v[0].name);
    if (ns > 1)
        snprintf(info->noise, sizeof info->noise, "%d seeds: means; ± is the 95%% interval of the "
                 "mean, Student's t over seeds; * differs from %s beyond it, paired by seed", ns,
                 info->main);
    else {
        json_t *unit = json_object_get(json_object_get(o, "eval_examples"), "original_unit");
        snprintf(info->noise, sizeof info->noise, "one seed: ± is the 95%% interval of the "
                 "evaluation's sampling noise on %d original-task %s and %d new-task examples; "
                 "* differs from %s beyond it",
                 (int)json_number_at(o, "eval_examples", "original", NULL, 0),
                 json_is_string(unit) ? json_string_value(unit) : "examples",
                 (int)json_number_at(o, "eval_examples", "new", NULL, 0), info->main);
    }
    json_decref(o);
    *rows_out = v;
    *n_out = n;
    return 0;
}

int study_print_table(const char *dir, FILE *out, MnError *e)
{
    StudyRow *v;
    StudyInfo info;
    int n;
    if (study_rows(dir, &v, &n, &info, e) < 0)
        return -1;
    fprintf(out, "%-20s %-15s %8s %8s  %-15s %9s %7s  %s\n", "remedy", "new acc", "orig end",
            "orig min", "forgetting", "trainable", "time s", "notes");
    /* "±" is two bytes and one column: its fields are a byte wider */
    for (int i = 0; i < n; i++)
        fprintf(out, "%-20s %-16s %8.3f %8.3f  %-16s %8.1f%% %7.1f%s%s\n", v[i].name, v[i].new_acc,
                v[i].orig_acc, v[i].orig_min, v[i].forgetting, 100 * v[i].trainable, v[i].time_s,
                v[i].notes[0] ? "  " : "", v[i].notes);
    fprintf(out, "(%s: a difference without * is noise)\n(baseline original accuracy %.3f; the "
            "Pareto front, forgetting least for what the new task gains: %s)\n", info.noise,
            info.baseline, info.front);
    free(v);
    return 0;
}

/* ---- mneme study ------------------------------------------------------------ */

static int study_usage(const char *why, const char *arg)
{
    fprintf(stderr, "mneme study: ");
    fprintf(stderr, why, arg);
    fprintf(stderr, "\nusage: mneme study EXPERIMENT.cfg [--remedies FILE] [--only A,B,...] "
            "[--set KEY=VALUE]... [--seeds N]\n"
            "                   [--out DIR] [--headless] [--quiet] [--theme NAME]\n"
            "       mneme study --resume DIR [--headless] [--quiet] [--theme NAME]\n");
    return 2;
}

typedef struct {
    const char *experiment, *remedies, *only, *out, *resume, *theme;
    const char *sets[64];
    int n_sets, seeds, headless, quiet;
} StudyArgs;

static int parse_args(int argc, char **argv, StudyArgs *a)
{
    memset(a, 0, sizeof *a);
    a->seeds = 1;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "--headless"))
            a->headless = 1;
        else if (!strcmp(s, "--quiet"))
            a->quiet = 1;
        else if (!strcmp(s, "--remedies") || !strcmp(s, "--only") || !strcmp(s, "--out") ||
                 !strcmp(s, "--resume") || !strcmp(s, "--theme") || !strcmp(s, "--set") ||
                 !strcmp(s, "--seeds")) {
            if (!val)
                return study_usage("%s needs a value", s);
            i++;
            if (!strcmp(s, "--remedies"))
                a->remedies = val;
            else if (!strcmp(s, "--only"))
                a->only = val;
            else if (!strcmp(s, "--out"))
                a->out = val;
            else if (!strcmp(s, "--resume"))
                a->resume = val;
            else if (!strcmp(s, "--theme"))
                a->theme = val;
            else if (!strcmp(s, "--seeds")) {
                char *end;
                long n = strtol(val, &end, 10);
                if (end == val || *end || n < 1 || n > STUDY_MAX_SEEDS)
                    return study_usage("--seeds: expected 1 to 32, not '%s'", val);
                a->seeds = (int)n;
            } else if (a->n_sets == 64)
                return study_usage("too many --set options%s", "");
            else
                a->sets[a->n_sets++] = val;
        } else if (s[0] == '-')
            return study_usage("unknown option %s", s);
        else if (!a->experiment)
            a->experiment = s;
        else
            return study_usage("unexpected argument %s", s);
    }
    if (a->resume && (a->experiment || a->remedies || a->only || a->n_sets || a->out ||
                      a->seeds != 1))
        return study_usage("--resume takes the study folder only (and --headless, --quiet, "
                           "--theme)%s", "");
    if (!a->resume && !a->experiment)
        return study_usage("which experiment?%s", "");
    return 0;
}

/* A new study: the experiment and its remedies checked, the folder and
 * its plan written. Returns 0 or an exit status. */
static int plan_new(const StudyArgs *a, Plan *p)
{
    MnError e;
    char file[EXP_PATH], path[EXP_PATH + 32];
    struct stat sb;
    Experiment *x = malloc(sizeof *x);
    memset(p, 0, sizeof *p);
    if (!x)
        return study_usage("out of memory%s", "");
    if (experiment_load(x, a->experiment, a->sets, a->n_sets, &e) < 0) {
        fprintf(stderr, "mneme study: %s\n", e.msg);
        free(x);
        return 2;
    }
    if (a->remedies)
        snprintf(file, sizeof file, "%s", a->remedies);
    else if (find_data_file("experiments/studies/remedies.cfg", file, sizeof file) < 0) {
        free(x);
        fprintf(stderr, "mneme study: experiments/studies/remedies.cfg not found (give "
                "--remedies FILE, or set MNEME_DATA to mneme's data folder)\n");
        return 2;
    }
    if (remedies_load(file, &p->rem, &e) < 0 || (a->only && remedies_only(&p->rem, a->only, &e) < 0) ||
        remedies_check(&p->rem, x, &e) < 0) {
        fprintf(stderr, "mneme study: %s\n", e.msg);
        remedies_free(&p->rem);
        free(x);
        return 2;
    }
    absolute_path(file, p->rem.file, sizeof p->rem.file);
    snprintf(p->name, sizeof p->name, "%s", x->name);
    for (int s = 0; s < a->seeds; s++)
        p->seeds[p->n_seeds++] = (long)x->seed + s;
    if (a->out)
        snprintf(p->dir, sizeof p->dir, "%s", a->out);
    else {
        char stamp[32];
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        snprintf(p->dir, sizeof p->dir, "runs/study-%s-%s", x->name, stamp);
    }
    snprintf(path, sizeof path, "%s/study.json", p->dir);
    int rc = 0;
    if (stat(path, &sb) == 0) {
        fprintf(stderr, "mneme study: %s already holds a study; continue it with mneme study "
                "--resume %s, or choose another --out\n", p->dir, p->dir);
        rc = 2;
    }
    snprintf(path, sizeof path, "%s/experiment.cfg", p->dir);
    if (rc == 0 && (make_dirs(p->dir, &e) < 0 || experiment_write(x, path, &e) < 0 ||
                    plan_write(p, &e) < 0)) {
        fprintf(stderr, "mneme study: %s\n", e.msg);
        rc = 2;
    }
    free(x);
    if (rc)
        remedies_free(&p->rem);
    return rc;
}

/* Under mpirun the other ranks read the plan rank 0 made or found: rank
 * 0's folder, on a file system every rank sees. */
static int plan_from_rank0(Dist *d, int rc, Plan *p)
{
    MnError e;
    if (dist_any_failed(d, rc != 0))
        return rc ? rc : 2;
    if (dist_broadcast(d, p->dir, sizeof p->dir, &e) < 0) {
        fprintf(stderr, "mneme study: rank %d: %s\n", d->rank, e.msg);
        dist_abort(d, 1);
    }
    char dir[sizeof p->dir];
    snprintf(dir, sizeof dir, "%s", p->dir);
    int failed = d->rank > 0 && plan_read(dir, p, &e) < 0;
    if (failed)
        fprintf(stderr, "mneme study: rank %d: %s\n", d->rank, e.msg);
    if (dist_any_failed(d, failed)) {
        if (d->rank == 0 || !failed)
            remedies_free(&p->rem);
        return 2;
    }
    return 0;
}

int study_main(int argc, char **argv, Dist *dist)
{
    StudyArgs a;
    MnError e;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc;
    if (!a.headless && a.seeds > 1)
        return study_usage("--seeds: several seeds train one after another%s: add --headless",
                           " (the workbench shows one family at a time)");
    if (dist->size > 1 && !a.headless) {
        if (dist->rank == 0)
            fprintf(stderr, "mneme study: under mpirun a study runs headless (add --headless; "
                    "mneme attach watches it)\n");
        return 2;
    }
    Plan *p = calloc(1, sizeof *p);
    if (!p)
        return study_usage("out of memory%s", "");
    if (dist->rank > 0)
        rc = 0;   /* rank 0 makes the plan, or reads it */
    else if (a.resume) {
        if (plan_read(a.resume, p, &e) < 0) {
            fprintf(stderr, "mneme study: %s\n", e.msg);
            rc = 2;
        } else if (!a.headless && p->n_seeds > 1) {
            remedies_free(&p->rem);
            rc = study_usage("this study has several seeds: continue it with --headless%s", "");
        }
    } else
        rc = plan_new(&a, p);
    if (dist->size > 1)
        rc = plan_from_rank0(dist, rc, p);
    if (rc) {
        free(p);
        return rc;
    }
    TrainerFork forks[STUDY_MAX_REMEDIES];
    for (int i = 0; i < p->rem.n; i++)
        forks[i] = (TrainerFork){ p->rem.v[i].name, (const char *const *)p->rem.v[i].sets,
                                  p->rem.v[i].n_sets };
    StudyRunOptions o = { a.headless, a.quiet, a.theme, dist };
    if (a.headless && dist->rank == 0)
        printf("# study of %s: %d remed%s over %d seed%s in %s\n", p->name, p->rem.n,
               p->rem.n == 1 ? "y" : "ies", p->n_seeds, p->n_seeds == 1 ? "" : "s", p->dir);
    for (int s = 0; s < p->n_seeds && rc == 0; s++) {
        char dir[EXP_PATH + 40];
        rc = run_seed(p, s, forks, &o);
        seed_dir(p, s, dir, sizeof dir);
        if (rc == 0 && dist->rank == 0 && !family_finished(p, dir)) {
            /* the workbench was left before every remedy finished */
            fprintf(stderr, "mneme study: not finished; continue with: mneme study --resume %s\n",
                    p->dir);
            rc = -1;
        }
        /* rank 0's folder holds the family: it says how it ended */
        rc = rank0_says(dist, rc);
    }
    remedies_free(&p->rem);
    char dir[EXP_PATH], png[EXP_PATH + 32], json[EXP_PATH + 32];
    snprintf(dir, sizeof dir, "%s", p->dir);
    free(p);
    if (rc || dist->rank > 0)
        return rc < 0 ? 0 : rc;
    snprintf(png, sizeof png, "%s/tradeoff.png", dir);
    snprintf(json, sizeof json, "%s/study.json", dir);
    if (study_collect(dir, &e) < 0 || study_print_table(dir, stdout, &e) < 0 ||
        tradeoff_plot(json, png, 960, 640, a.theme, &e) < 0) {
        fprintf(stderr, "mneme study: %s\n", e.msg);
        return 1;
    }
    printf("study: %s\ntrade-off figure: %s\n", json, png);
    return 0;
}
