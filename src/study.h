/* mneme study: what each remedy against forgetting buys. One base (the
 * experiment's: pretrained, loaded or imported), then each remedy of a
 * study file as a branch forked from it at the start of fine-tuning, all
 * training side by side (in the workbench's compare view, or headless);
 * over one or more seeds. Then study.json, a table that says which
 * differences are beyond noise, and the trade-off figure.
 *
 * The study folder: study.json, experiment.cfg (the experiment as
 * studied), tradeoff.png, and one run folder per seed (seed-N/, the
 * remedies in its branches/). */
#ifndef MNEME_STUDY_H
#define MNEME_STUDY_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "dist.h"
#include "error.h"
#include "trainer.h"

#define STUDY_MAX_REMEDIES (SNAP_BRANCHES - 1)
#define STUDY_MAX_SETS 32
#define STUDY_MAX_SEEDS 32

/* One group of a study file: a branch's name and its overrides. */
typedef struct {
    char name[49];
    char about[256];
    char *sets[STUDY_MAX_SETS];   /* KEY=VALUE, paths made absolute */
    int n_sets;
    int line;                  /* in the study file */
} Remedy;

typedef struct {
    char file[EXP_PATH];
    Remedy v[STUDY_MAX_REMEDIES];
    int n;
} Remedies;

/* Reads a study file: one group per remedy, `about` (text) and `set` (a
 * list of KEY=VALUE strings, as --set takes; a relative path is relative
 * to the file). Errors name the file and line. */
int remedies_load(const char *path, Remedies *out, MnError *e);
/* Keeps only the remedies named in the comma-separated list. */
int remedies_only(Remedies *r, const char *list, MnError *e);
/* Each remedy's overrides, tried on x as a fork at step 0 would apply them. */
int remedies_check(const Remedies *r, const Experiment *x, MnError *e);
void remedies_free(Remedies *r);

/* Reads every run of the study in dir (its study.json's plan) and writes
 * study.json's results: each remedy's figures per seed, their mean,
 * spread and 95% interval, whether each differs from the experiment as
 * given beyond that noise, and the Pareto front. */
int study_collect(const char *dir, MnError *e);

/* One row of a finished study's table, formatted. */
typedef struct {
    char name[49], about[256], sets[1024];
    char new_acc[40], forgetting[40];     /* "0.992 ±0.008 *": mean, 95%
                                           * interval, * beyond noise */
    double orig_acc, orig_min, trainable, time_s;
    char notes[200];
    int main, pareto;
} StudyRow;

typedef struct {
    int n_seeds;
    char main[128];            /* the first row: the experiment as given */
    char noise[400];           /* how the intervals were made */
    char front[1200];          /* the Pareto front's names */
    double baseline;           /* the original task before fine-tuning */
} StudyInfo;

/* The rows of dir's study.json (the caller frees *rows). */
int study_rows(const char *dir, StudyRow **rows, int *n, StudyInfo *info, MnError *e);

/* The table of dir's study.json, as mneme study prints it. */
int study_print_table(const char *dir, FILE *out, MnError *e);

/* mneme study EXP.cfg [--remedies FILE] [--only A,B] [--set KEY=VALUE]...
 * [--seeds N] [--out DIR] [--headless] [--quiet] [--theme NAME], or
 * mneme study --resume DIR [--headless] [--quiet] [--theme NAME].
 * Under mpirun (dist's size > 1; headless only) every rank trains each
 * family data-parallel, as mneme run does: rank 0 owns the study folder,
 * the others work in folders of their own under TMPDIR. */
int study_main(int argc, char **argv, struct Dist *dist);

#endif
