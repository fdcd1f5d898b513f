#include "compare.h"

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "branch.h"
#include "config.h"
#include "metrics.h"
#include "runlock.h"

static void read_row(const char *dir, double weight, BranchRow *row)
{
    char path[4400];
    json_error_t je;
    memset(row, 0, sizeof *row);
    snprintf(row->name, sizeof row->name, "main");
    row->fork_step = -1;
    row->crossover = -1;
    snprintf(path, sizeof path, "%s/branch.json", dir);
    json_t *b = json_load_file(path, 0, &je);
    if (b) {
        const char *s = json_string_value(json_object_get(b, "name"));
        const char *p = json_string_value(json_object_get(b, "parent"));
        snprintf(row->name, sizeof row->name, "%s", s ? s : "?");
        snprintf(row->parent, sizeof row->parent, "%s", p ? p : "");
        row->fork_step = (long)json_integer_value(json_object_get(b, "step"));
        json_decref(b);
    }
    snprintf(path, sizeof path, "%s/summary.json", dir);
    json_t *o = json_load_file(path, 0, &je);
    const char *st = json_string_value(json_object_get(o, "status"));
    /* The lock says whether a process trains in it now; a summary still
     * saying "running" without one outlived a crash or a kill -9. */
    const int live = run_lock_holder(dir) != 0;
    if (live)
        st = o ? "running" : "pretraining";
    else if (!st || strcmp(st, "running") == 0)
        st = "interrupted";
    snprintf(row->status, sizeof row->status, "%s", st);
    if (!o)
        return;
    /* a run that ended before fine-tuning has a status, no figures */
    row->has_summary = json_is_object(json_object_get(o, "final"));
    row->final_step = (long)json_number_at(o, "final", "step", NULL, -1.0);
    row->new_acc = json_number_at(o, "final", "new", "acc", -1.0);
    row->orig_base = json_number_at(o, "baseline", "original", "acc", -1.0);
    row->orig_final = json_number_at(o, "final", "original", "acc", -1.0);
    row->forgetting = json_number_at(o, "forgetting", NULL, NULL, -1.0);
    row->combined = json_number_at(o, "final", "new", "loss", -1.0) +
                    weight * json_number_at(o, "final", "original", "loss", -1.0);
    json_t *cx = json_object_get(o, "crossover_step");
    row->crossover = json_is_integer(cx) ? (long)json_integer_value(cx) : -1;
    json_decref(o);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const BranchRow *)a)->name, ((const BranchRow *)b)->name);
}

int branch_rows(const char *run_dir, BranchRow **rows_out, int *n_out)
{
    char root[4096], path[4400];
    BranchRow *rows = malloc(sizeof *rows);
    int n = 0, cap = 1;
    double weight = 1.0;
    *rows_out = NULL;
    *n_out = 0;
    if (!rows)
        return -1;
    branch_root(run_dir, root, sizeof root);
    Experiment *x = malloc(sizeof *x);
    MnError e;
    snprintf(path, sizeof path, "%s/experiment.cfg", root);
    if (x && experiment_load(x, path, NULL, 0, &e) == 0)
        weight = x->stop.original_weight;
    free(x);
    read_row(root, weight, &rows[n++]);
    snprintf(path, sizeof path, "%s/branches", root);
    DIR *d = opendir(path);
    for (struct dirent *de; d && (de = readdir(d));) {
        char dir[4800], cfg[4900];
        if (de->d_name[0] == '.')
            continue;
        snprintf(dir, sizeof dir, "%s/%s", path, de->d_name);
        snprintf(cfg, sizeof cfg, "%s/experiment.cfg", dir);
        FILE *f = fopen(cfg, "r");
        if (!f)
            continue;
        fclose(f);
        if (n == cap) {
            cap *= 2;
            BranchRow *nr = realloc(rows, sizeof *nr * (size_t)cap);
            if (!nr)
                break;
            rows = nr;
        }
        read_row(dir, weight, &rows[n++]);
    }
    if (d)
        closedir(d);
    qsort(rows + 1, (size_t)(n - 1), sizeof *rows, by_name);
    int best = -1;
    for (int i = 0; i < n; i++)
        if (rows[i].has_summary && rows[i].combined >= 0 &&
            (best < 0 || rows[i].combined < rows[best].combined))
            best = i;
    if (best >= 0)
        rows[best].best = 1;
    *rows_out = rows;
    *n_out = n;
    return 0;
}

void branch_rows_print(const BranchRow *rows, int n, const char *prefix)
{
    printf("%s%-2s%-20s %-12s %6s %-10s %6s %8s %9s %10s %9s %9s\n", prefix, "", "branch", "from",
           "at", "status", "step", "new acc", "orig acc", "forgetting", "crossover", "combined");
    for (int i = 0; i < n; i++) {
        const BranchRow *r = &rows[i];
        char at[24] = "-", cx[24] = "-";
        if (r->fork_step >= 0)
            snprintf(at, sizeof at, "%ld", r->fork_step);
        if (!r->has_summary) {
            printf("%s%-2s%-20s %-12s %6s %-10s\n", prefix, "", r->name, r->parent[0] ? r->parent : "-",
                   at, r->status);
            continue;
        }
        if (r->crossover >= 0)
            snprintf(cx, sizeof cx, "%ld", r->crossover);
        printf("%s%-2s%-20s %-12s %6s %-10s %6ld %8.3f %9.3f %10.3f %9s %9.4f\n", prefix,
               r->best ? "*" : "", r->name, r->parent[0] ? r->parent : "-", at, r->status,
               r->final_step, r->new_acc, r->orig_final, r->forgetting, cx, r->combined);
    }
}

int compare_main(int argc, char **argv)
{
    BranchRow *rows;
    int n;
    char path[4200];
    if (argc != 1 || argv[0][0] == '-') {
        fprintf(stderr, "usage: mneme compare RUN_DIR\n");
        return 2;
    }
    snprintf(path, sizeof path, "%s/experiment.cfg", argv[0]);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "mneme compare: %s: not a run folder (no experiment.cfg)\n", argv[0]);
        return 2;
    }
    fclose(f);
    if (branch_rows(argv[0], &rows, &n) < 0) {
        fprintf(stderr, "mneme compare: out of memory\n");
        return 1;
    }
    branch_rows_print(rows, n, "");
    printf("* best trade-off: lowest combined metric (new-task loss + stop.original_weight × original-task loss, final evaluation)\n");
    free(rows);
    return 0;
}
