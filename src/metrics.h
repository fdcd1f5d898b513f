/* Evaluation records: one metrics.jsonl line each, the history a run keeps,
 * the crossover point and the summary of forgetting. */
#ifndef MNEME_METRICS_H
#define MNEME_METRICS_H

#include <jansson.h>

#include "error.h"

typedef struct {
    double loss, acc;
} TaskScore;

typedef struct {
    long step;
    double epoch;
    char phase[16];            /* base | finetune */
    double lr;
    int has_new, has_original;
    TaskScore new_task, original;
    int has_train_loss;
    double train_loss;         /* mean training loss since the previous evaluation */
    double ewc_lambda;
    int has_adapter_off;       /* LoRA: the original task with the adapter off */
    TaskScore original_adapter_off;
    long crossover_step;       /* the crossover once found (finetune), else -1 */
    int original_mlm;          /* the original task is masked-language modelling:
                                * its loss per masked token, also as perplexity */
    double elapsed_s;
} EvalRecord;

typedef struct {
    EvalRecord *v;
    int n, cap;
} History;

int history_push(History *h, const EvalRecord *r, MnError *e);
void history_free(History *h);

/* One compact JSON line (no newline) in the metrics.jsonl schema of
 * DESIGN.md; the caller frees it. NULL when out of memory. */
char *eval_record_json(const EvalRecord *r, const char *branch);
/* Parses such a line back (fields this version does not know are ignored). */
int eval_record_parse(const char *line, EvalRecord *r, MnError *e);

/* The crossover point among the finetune records of h: the first
 * evaluation after which the new task's gain since the previous
 * evaluation is smaller than the original task's loss, both taken from
 * moving averages over CROSSOVER_WINDOW evaluations so that one noisy
 * evaluation does not trigger it. Returns its index in h, or -1. */
#define CROSSOVER_WINDOW 3
int crossover_find(const History *h);

/* summary.json: baseline (the finetune evaluation at step 0), final, best
 * new-task accuracy, forgetting (baseline − final original accuracy),
 * largest drop, the area under the original-accuracy curve, crossover;
 * then the members of extra (may be NULL; not taken over). Written
 * atomically. */
int summary_write(const char *path, const History *h, const char *name,
                  const char *status, json_t *extra, MnError *e);

/* Writes data to path through a temporary file, fsync and rename. */
int write_file_atomic(const char *path, const char *data, size_t len, MnError *e);
/* The number at o.a (.b (.c)) (b, c NULL: a shallower path), or missing
 * when there is none there. */
double json_number_at(const json_t *o, const char *a, const char *b, const char *c,
                      double missing);

/* Writes o as indented JSON (json_dumps flags besides), a newline after
 * it, as write_file_atomic does. */
int json_write_atomic(const char *path, const json_t *o, size_t flags, MnError *e);

#endif
