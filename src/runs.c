#include "runs.h"

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    char name[256];
    char status[32];
    double new_acc, orig_base, orig_final, forgetting;
    long crossover;
    int has_summary;
} RunRow;

static double number_at(json_t *o, const char *a, const char *b, const char *c)
{
    json_t *x = json_object_get(o, a);
    if (b)
        x = json_object_get(x, b);
    if (c)
        x = json_object_get(x, c);
    return json_is_number(x) ? json_number_value(x) : -1.0;
}

/* A folder is a run when it holds an experiment.cfg; its figures come from
 * summary.json, which exists once fine-tuning has evaluated. */
static int read_row(const char *dir, const char *name, RunRow *row)
{
    char path[4200];
    struct stat st;
    memset(row, 0, sizeof *row);
    snprintf(row->name, sizeof row->name, "%s", name);
    snprintf(path, sizeof path, "%s/%s/experiment.cfg", dir, name);
    if (stat(path, &st) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/%s/summary.json", dir, name);
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    snprintf(row->status, sizeof row->status, "%s", o ? "" : "pretraining");
    if (!o)
        return 0;
    json_t *s = json_object_get(o, "status");
    if (json_is_string(s))
        snprintf(row->status, sizeof row->status, "%s", json_string_value(s));
    row->has_summary = 1;
    row->new_acc = number_at(o, "final", "new", "acc");
    row->orig_base = number_at(o, "baseline", "original", "acc");
    row->orig_final = number_at(o, "final", "original", "acc");
    row->forgetting = number_at(o, "forgetting", NULL, NULL);
    json_t *cx = json_object_get(o, "crossover_step");
    row->crossover = json_is_integer(cx) ? (long)json_integer_value(cx) : -1;
    json_decref(o);
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const RunRow *)a)->name, ((const RunRow *)b)->name);
}

int runs_main(int argc, char **argv)
{
    const char *dir = argc > 0 ? argv[0] : "runs";
    DIR *d = opendir(dir);
    RunRow *rows = NULL;
    int n = 0, cap = 0;
    if (argc > 1) {
        fprintf(stderr, "usage: mneme runs [DIR]\n");
        return 2;
    }
    if (!d) {
        fprintf(stderr, "mneme runs: %s: no such folder\n", dir);
        return 2;
    }
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            RunRow *nr = realloc(rows, (size_t)cap * sizeof *nr);
            if (!nr)
                break;
            rows = nr;
        }
        if (read_row(dir, de->d_name, &rows[n]) == 0)
            n++;
    }
    closedir(d);
    qsort(rows, (size_t)n, sizeof *rows, by_name);
    printf("%-32s %-11s %8s %10s %10s %10s %9s\n", "run", "status", "new acc", "orig base",
           "orig final", "forgetting", "crossover");
    for (int i = 0; i < n; i++) {
        const RunRow *r = &rows[i];
        if (!r->has_summary) {
            printf("%-32s %-11s\n", r->name, r->status);
            continue;
        }
        char cx[32] = "-";
        if (r->crossover >= 0)
            snprintf(cx, sizeof cx, "%ld", r->crossover);
        printf("%-32s %-11s %8.3f %10.3f %10.3f %10.3f %9s\n", r->name, r->status, r->new_acc,
               r->orig_base, r->orig_final, r->forgetting, cx);
    }
    if (n == 0)
        printf("(no runs in %s)\n", dir);
    free(rows);
    return 0;
}
