/* Labelled text classification data sets and the batches drawn from them. */
#ifndef MNEME_DATA_H
#define MNEME_DATA_H

#include "error.h"
#include "rng.h"
#include "tokenizer.h"

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
    int *mlm;      /* masked language modelling: [n * max_len], the original
                    * id at each masked position, -1 elsewhere; NULL for a
                    * classification data set */
} Dataset;

void dataset_free(Dataset *d);
/* Allocates an empty data set of n rows (all PAD). */
int dataset_alloc(Dataset *d, int n, int max_len, MnError *e);
/* Sizes the row arrays (and mlm, when there) for `rows` rows, keeping
 * what is already there; n is unchanged. */
int dataset_reserve(Dataset *d, int rows, MnError *e);
/* Tokenizes a, or the pair (a, b) when b is not NULL, into row i with t
 * (tokenizer_encode at d->max_len: ids, token types, length) and sets its
 * label. -1 only when out of memory. */
int dataset_set(Dataset *d, const Tokenizer *t, int i, const char *a,
                const char *b, int label, MnError *e);

/* What a data file holds and how to read it. A zeroed DataFormat is
 * auto-detected text<TAB>label or {"text": ..., "label": ...} lines. */
typedef enum { DATA_AUTO, DATA_TSV, DATA_JSONL } DataKind;

typedef struct {
    DataKind kind;            /* AUTO: JSONL for *.jsonl and *.json, else TSV */
    int columns;              /* TSV: 2 = text<TAB>label (0 means 2),
                               * 3 = text_a<TAB>text_b<TAB>label */
    int header;               /* TSV: 1 line 1 is a header, skipped; -1 it is
                               * not; 0 auto: a training file's line 1 whose
                               * label no other line has is refused as one */
    const char *text_field;   /* JSONL: NULL or "" = "text" */
    const char *text_b_field; /* JSONL: the pair's second text; NULL or "" = none */
    const char *label_field;  /* JSONL: NULL or "" = "label" */
} DataFormat;

/* "auto", "tsv" or "jsonl"; -1 for anything else. */
int data_kind_parse(const char *name, DataKind *kind);
/* The kind path is read as: fmt->kind, or by path's extension for AUTO. */
DataKind data_file_kind(const DataFormat *fmt, const char *path);
/* Whether path's rows are pairs (text_a, text_b) under fmt. */
int data_file_pairs(const DataFormat *fmt, const char *path);

/* How a file's labels map to ids:
 * LABELS_KNOWN  an eval file: every label must be one of `labels` (the
 *               training file's); an integer label is looked up as its
 *               decimal name. An unseen one is an error naming the line.
 * LABELS_GROW   a training file: unseen string labels are appended (ids by
 *               first appearance). When the labels are JSON integers, and
 *               `labels` starts empty, each integer is its own id and the
 *               names become "0".."K-1"; each of 0..K-1 must occur.
 * LABELS_FIXED  a label set given from outside (a pretrained model's own
 *               head): an integer label is an index into it, a string
 *               label must be one of its names. */
typedef enum { LABELS_KNOWN = 0, LABELS_GROW = 1, LABELS_FIXED = 2 } LabelMode;

/* Reads a data file of examples, tokenized with t, each at most max_len
 * tokens.
 * TSV: text<TAB>label lines, or text_a<TAB>text_b<TAB>label with
 * columns = 3. JSONL: one JSON object per line (as a `datasets` export
 * writes it); the text, second text and label fields are read, any other
 * field is ignored; a label is a string or an integer.
 * Errors read "FILE:LINE: ..." (wrong field count, malformed JSON with its
 * column, missing field, wrong type, empty text or label, unknown label).
 * Lines are read as lines.h reads them (CRLF and a byte order mark
 * accepted; a NUL byte, invalid UTF-8 or an endless line is an error).
 * Blank lines and a final newline are accepted; a file without examples
 * is an error. On failure d is
 * empty and `labels` is as it was. */
int dataset_load(Dataset *d, const Tokenizer *t, const DataFormat *fmt,
                 const char *path, int max_len, LabelSet *labels,
                 LabelMode mode, MnError *e);

/* dataset_load of a text<TAB>label file with the byte-level tokenizer;
 * grow_labels is LABELS_GROW when set, else LABELS_KNOWN. */
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
    int *mlm;      /* [cap * max_len] masked ids as Dataset.mlm, the same
                    * layout as ids; filled from a data set that has them */
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
