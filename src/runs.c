#include "runs.h"

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "compare.h"
#include "remote.h"

typedef struct {
    char name[256];
    BranchRow *rows;           /* the run, then its branches */
    int n;
    int study;                 /* a study's folder (mneme study), no run */
} RunFamily;

/* A study's folder holds study.json and its runs, not a run of its own. */
static int is_study(const char *dir)
{
    char path[4500];
    struct stat st;
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    if (stat(path, &st) == 0)
        return 0;
    snprintf(path, sizeof path, "%s/study.json", dir);
    return stat(path, &st) == 0;
}

/* One line for a study: how many remedies and seeds, and where it stands. */
static void print_study(const char *name, const char *dir)
{
    char path[4500];
    json_error_t je;
    snprintf(path, sizeof path, "%s/study.json", dir);
    json_t *o = json_load_file(path, 0, &je);
    size_t remedies = json_array_size(json_object_get(o, "plan"));
    size_t seeds = json_array_size(json_object_get(o, "seeds"));
    const char *status = json_string_value(json_object_get(o, "status"));
    printf("%-32s %-11s %zu remed%s x %zu seed%s: mneme %s %s\n", name, "study", remedies,
           remedies == 1 ? "y" : "ies", seeds, seeds == 1 ? "" : "s",
           status && !strcmp(status, "finished") ? "report" : "study --resume", dir);
    json_decref(o);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const RunFamily *)a)->name, ((const RunFamily *)b)->name);
}

/* One line: the run's name (or an indented branch label) and its figures. */
static void print_row(const char *label, const BranchRow *r)
{
    char cx[32] = "-";
    if (!r->has_summary) {
        printf("%-32s %-11s\n", label, r->status);
        return;
    }
    if (r->crossover >= 0)
        snprintf(cx, sizeof cx, "%ld", r->crossover);
    printf("%-32s %-11s %8.3f %10.3f %10.3f %10.3f %9s\n", label, r->status, r->new_acc,
           r->orig_base, r->orig_final, r->forgetting, cx);
}

static const char *text_at(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "?";
}

/* A live run's trainer, asked: its pid, where it is, who watches. */
static void print_live(const char *dir)
{
    MnError e;
    if (!remote_live(dir))
        return;
    Remote *r = remote_open(dir, "ctl", 1, 1.0, &e);
    json_t *st = r ? remote_status(r, 1.0, &e) : NULL;
    if (st) {
        int clients = (int)json_integer_value(json_object_get(st, "clients"));
        printf("  live: pid %lld, %s %s at %s step %lld/%lld, %d attached (mneme attach %s)\n",
               (long long)json_integer_value(json_object_get(st, "pid")),
               text_at(st, "branch"),
               text_at(st, "state"),
               text_at(st, "phase"),
               (long long)json_integer_value(json_object_get(st, "step")),
               (long long)json_integer_value(json_object_get(st, "total_steps")), clients, dir);
    } else
        printf("  live: pid %ld, not answering: %s\n", remote_live(dir), e.msg);
    json_decref(st);
    remote_close(r);
}

int runs_main(int argc, char **argv)
{
    const char *dir = argc > 0 ? argv[0] : "runs";
    RunFamily *runs = NULL;
    int n = 0, cap = 0;
    if (argc > 1) {
        fprintf(stderr, "usage: mneme runs [DIR]\n");
        return 2;
    }
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "mneme runs: %s: no such folder\n", dir);
        return 2;
    }
    for (struct dirent *de; (de = readdir(d));) {
        char path[4400];
        struct stat st;
        if (de->d_name[0] == '.')
            continue;
        /* a folder is a run when it holds an experiment.cfg */
        snprintf(path, sizeof path, "%s/%s/experiment.cfg", dir, de->d_name);
        if (stat(path, &st) < 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            RunFamily *nr = realloc(runs, (size_t)cap * sizeof *nr);
            if (!nr)
                break;
            runs = nr;
        }
        RunFamily *f = &runs[n];
        snprintf(f->name, sizeof f->name, "%s", de->d_name);
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        f->study = is_study(path);
        f->rows = NULL;
        f->n = 0;
        if (f->study || branch_rows(path, &f->rows, &f->n) == 0)
            n++;
    }
    closedir(d);
    qsort(runs, (size_t)n, sizeof *runs, by_name);
    printf("%-32s %-11s %8s %10s %10s %10s %9s\n", "run", "status", "new acc", "orig base",
           "orig final", "forgetting", "crossover");
    for (int i = 0; i < n; i++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, runs[i].name);
        if (runs[i].study) {
            print_study(runs[i].name, path);
            continue;
        }
        print_row(runs[i].name, &runs[i].rows[0]);
        print_live(path);
        for (int k = 1; k < runs[i].n; k++) {
            char label[64];
            snprintf(label, sizeof label, "  + %.24s @%ld", runs[i].rows[k].name, runs[i].rows[k].fork_step);
            print_row(label, &runs[i].rows[k]);
        }
        free(runs[i].rows);
    }
    if (n == 0)
        printf("(no runs in %s)\n", dir);
    free(runs);
    return 0;
}
