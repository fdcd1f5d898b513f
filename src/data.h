/* Labelled text classification data sets and the batches drawn from them. */
#ifndef MNEME_DATA_H
#define MNEME_DATA_H

#include "error.h"
#include "rng.h"

#define LABEL_NAME_MAX 64
#define MAX_LABELS 64

typedef struct {
    int n_labels;
    char names[MAX_LABELS][LABEL_NAME_MAX];
} LabelSet;

/* n examples, each tokenized to at most max_len ids, stored padded. */
typedef struct {
    int n;
    int max_len;
    int *ids;      /* [n * max_len], the pad id after len */
    int *types;    /* [n * max_len] token types: 0, or 1 for a pair's second text */
    int *len;      /* [n] */
    int *label;    /* [n], index into the task's LabelSet */
} Dataset;

void dataset_free(Dataset *d);
/* Allocates an empty data set of n rows (all PAD). */
int dataset_alloc(Dataset *d, int n, int max_len, MnError *e);
/* Tokenizes text into row i and sets its label. */
void dataset_set(Dataset *d, int i, const char *text, int label);

/* Reads a TSV file of `text<TAB>label` lines. When grow_labels is set,
 * unseen labels are added to `labels` (training file, ids by first
 * appearance); otherwise an unseen label is an error naming file and line.
 * A line without exactly one TAB, an empty text or label, or an over-long
 * label is an error "FILE:LINE: ...". Empty lines and a final newline are
 * allowed; CRLF endings are accepted. An empty file is an error. */
int dataset_load_tsv(Dataset *d, const char *path, int max_len,
                     LabelSet *labels, int grow_labels, MnError *e);

/* One batch in the model's input form. Buffers are owned by the caller and
 * sized for `cap` rows of max_len; T is the longest length in the batch so
 * that padding costs nothing beyond it. */
typedef struct {
    int cap, max_len;
    int B, T;
    int *ids;      /* [cap * max_len], rows of stride T once filled */
    int *types;    /* [cap * max_len] token types, the same layout */
    int *len;      /* [cap] */
    int *label;    /* [cap] */
    int *task;     /* [cap] head index per row */
} Batch;

int batch_alloc(Batch *b, int cap, int max_len, MnError *e);
void batch_free(Batch *b);
/* Fills b with rows idx[0..n) of d (n <= cap), all for head `task`. Rows
 * are re-packed with stride T = max len among them. */
void batch_fill(Batch *b, const Dataset *d, const int *idx, int n, int task);

/* Rows from several data sets in one batch, each part for its own head
 * (replay mixes original-task rows into new-task batches). */
typedef struct {
    const Dataset *d;
    const int *idx;
    int n;
    int task;
} BatchPart;
void batch_fill_parts(Batch *b, const BatchPart *parts, int n_parts);

/* Walks a data set in epochs, reshuffling each epoch from (seed, epoch) so
 * that the position (epoch, cursor) alone determines what comes next: that
 * pair is all a checkpoint needs to resume the data stream exactly. */
typedef struct {
    const Dataset *d;
    unsigned long long seed;
    int epoch;
    int cursor;
    int *order;    /* [d->n] permutation for the current epoch */
} Sampler;

int sampler_init(Sampler *s, const Dataset *d, unsigned long long seed,
                 MnError *e);
void sampler_free(Sampler *s);
/* Moves to (epoch, cursor), rebuilding that epoch's order. */
void sampler_seek(Sampler *s, int epoch, int cursor);
/* Takes up to `want` indices; at the end of an epoch it wraps into the next
 * epoch so batches are always full. Returns the count written (== want). */
int sampler_next(Sampler *s, int *idx, int want);

#endif
