#include "data.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "tokenizer.h"

/* Sampler shuffles use streams above this base so that they never coincide
 * with the small stream numbers other modules draw from the same seed. */
#define SAMPLER_STREAM_BASE 0x53414d50ULL   /* "SAMP" */

void dataset_free(Dataset *d)
{
    free(d->ids);
    free(d->types);
    free(d->len);
    free(d->label);
    memset(d, 0, sizeof *d);
}

/* Sizes the row arrays for `rows` rows, keeping what is already there. */
static int dataset_reserve(Dataset *d, int rows, MnError *e)
{
    if (rows < 1)
        rows = 1;
    if ((size_t)rows > SIZE_MAX / sizeof(int) / (size_t)d->max_len)
        return mn_fail(e, "data set of %d rows of %d tokens is too large",
                       rows, d->max_len);
    int *ids = realloc(d->ids, (size_t)rows * (size_t)d->max_len * sizeof *ids);
    if (ids)
        d->ids = ids;
    int *types = ids ? realloc(d->types, (size_t)rows * (size_t)d->max_len * sizeof *types)
                     : NULL;
    if (types)
        d->types = types;
    int *len = types ? realloc(d->len, (size_t)rows * sizeof *len) : NULL;
    if (len)
        d->len = len;
    int *label = len ? realloc(d->label, (size_t)rows * sizeof *label) : NULL;
    if (label)
        d->label = label;
    if (!label)
        return mn_fail(e, "out of memory for %d examples", rows);
    return 0;
}

int dataset_alloc(Dataset *d, int n, int max_len, MnError *e)
{
    memset(d, 0, sizeof *d);
    if (n < 0)
        return mn_fail(e, "negative data set size %d", n);
    if (max_len < 2)
        return mn_fail(e, "max_len %d leaves no room for [CLS] and [SEP]",
                       max_len);
    d->max_len = max_len;
    if (dataset_reserve(d, n, e) < 0) {
        dataset_free(d);
        return -1;
    }
    d->n = n;
    for (size_t i = 0; i < (size_t)n * (size_t)max_len; i++)
        d->ids[i] = TOK_PAD;
    memset(d->types, 0, (size_t)(n > 0 ? n : 1) * (size_t)max_len * sizeof *d->types);
    memset(d->len, 0, (size_t)(n > 0 ? n : 1) * sizeof *d->len);
    memset(d->label, 0, (size_t)(n > 0 ? n : 1) * sizeof *d->label);
    return 0;
}

void dataset_set(Dataset *d, int i, const char *text, int label)
{
    int *row = d->ids + (size_t)i * (size_t)d->max_len;
    int len = tokenize(text, row, d->max_len);
    for (int t = len; t < d->max_len; t++)
        row[t] = TOK_PAD;
    memset(d->types + (size_t)i * (size_t)d->max_len, 0, (size_t)d->max_len * sizeof *d->types);
    d->len[i] = len;
    d->label[i] = label;
}

/* ---- TSV loading ---- */

static int label_find(const LabelSet *ls, const char *name)
{
    for (int i = 0; i < ls->n_labels; i++)
        if (strcmp(ls->names[i], name) == 0)
            return i;
    return -1;
}

static void strip_eol(char *line, size_t *n)
{
    if (*n > 0 && line[*n - 1] == '\n')
        line[--*n] = '\0';
    if (*n > 0 && line[*n - 1] == '\r')
        line[--*n] = '\0';
}

static int is_blank(const char *line)
{
    return line[strspn(line, " \r")] == '\0';
}

/* Splits one non-blank line into text and label id, or says what is wrong
 * with it. The label set is grown only in the caller's scratch copy. */
static int parse_line(char *line, size_t n, const char *path, long lineno,
                      LabelSet *ls, int grow, int *label, MnError *e)
{
    if (memchr(line, '\0', n))
        return mn_fail(e, "%s:%ld: NUL byte in line", path, lineno);
    char *tab = strchr(line, '\t');
    if (!tab)
        return mn_fail(e, "%s:%ld: expected text<TAB>label", path, lineno);
    if (strchr(tab + 1, '\t'))
        return mn_fail(e, "%s:%ld: more than one TAB (expected text<TAB>label)",
                       path, lineno);
    *tab = '\0';
    const char *name = tab + 1;
    if (line[0] == '\0')
        return mn_fail(e, "%s:%ld: empty text", path, lineno);
    if (name[0] == '\0')
        return mn_fail(e, "%s:%ld: empty label", path, lineno);
    if (strlen(name) > LABEL_NAME_MAX - 1)
        return mn_fail(e, "%s:%ld: label longer than %d bytes", path, lineno,
                       LABEL_NAME_MAX - 1);
    int id = label_find(ls, name);
    if (id < 0 && !grow)
        return mn_fail(e, "%s:%ld: label '%s' does not occur in the training file",
                       path, lineno, name);
    if (id < 0) {
        if (ls->n_labels >= MAX_LABELS)
            return mn_fail(e, "%s:%ld: more than %d distinct labels", path,
                           lineno, MAX_LABELS);
        id = ls->n_labels++;
        memcpy(ls->names[id], name, strlen(name) + 1);
    }
    *label = id;
    return 0;
}

static int load_lines(FILE *f, Dataset *d, const char *path, LabelSet *ls,
                      int grow, MnError *e)
{
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t got;
    long lineno = 0;
    int cap = 0, rc = 0;

    while ((got = getline(&line, &line_cap, f)) >= 0) {
        size_t n = (size_t)got;
        int label = -1;
        lineno++;
        strip_eol(line, &n);
        if (is_blank(line) && !memchr(line, '\0', n))
            continue;
        if (parse_line(line, n, path, lineno, ls, grow, &label, e) < 0) {
            rc = -1;
            break;
        }
        if (d->n == cap) {
            if (d->n >= INT32_MAX / 2) {
                rc = mn_fail(e, "%s:%ld: too many examples", path, lineno);
                break;
            }
            cap = cap ? cap * 2 : 256;
            if (dataset_reserve(d, cap, e) < 0) {
                rc = mn_wrap(e, "%s:%ld", path, lineno);
                break;
            }
        }
        dataset_set(d, d->n++, line, label);
    }
    if (rc == 0 && ferror(f))
        rc = mn_fail(e, "%s: %s", path, strerror(errno));
    if (rc == 0 && d->n == 0)
        rc = mn_fail(e, "%s: no examples (expected text<TAB>label lines)", path);
    free(line);
    return rc;
}

int dataset_load_tsv(Dataset *d, const char *path, int max_len,
                     LabelSet *labels, int grow_labels, MnError *e)
{
    memset(d, 0, sizeof *d);
    if (max_len < 2)
        return mn_fail(e, "max_len %d leaves no room for [CLS] and [SEP]",
                       max_len);
    FILE *f = fopen(path, "r");
    if (!f)
        return mn_fail(e, "%s: %s", path, strerror(errno));

    /* A failed load must leave the caller's labels as they were. */
    LabelSet scratch = *labels;
    d->max_len = max_len;
    int rc = load_lines(f, d, path, &scratch, grow_labels, e);
    fclose(f);
    if (rc < 0) {
        dataset_free(d);
        return -1;
    }
    *labels = scratch;
    return 0;
}

/* ---- batches ---- */

int batch_alloc(Batch *b, int cap, int max_len, MnError *e)
{
    memset(b, 0, sizeof *b);
    if (cap < 1 || max_len < 2)
        return mn_fail(e, "batch of %d rows of %d tokens is invalid", cap,
                       max_len);
    if ((size_t)cap > SIZE_MAX / sizeof(int) / (size_t)max_len)
        return mn_fail(e, "batch of %d rows of %d tokens is too large", cap,
                       max_len);
    b->ids = calloc((size_t)cap * (size_t)max_len, sizeof *b->ids);
    b->types = calloc((size_t)cap * (size_t)max_len, sizeof *b->types);
    b->len = calloc((size_t)cap, sizeof *b->len);
    b->label = calloc((size_t)cap, sizeof *b->label);
    b->task = calloc((size_t)cap, sizeof *b->task);
    if (!b->ids || !b->types || !b->len || !b->label || !b->task) {
        batch_free(b);
        return mn_fail(e, "out of memory for a batch of %d rows", cap);
    }
    b->cap = cap;
    b->max_len = max_len;
    return 0;
}

void batch_free(Batch *b)
{
    free(b->ids);
    free(b->types);
    free(b->len);
    free(b->label);
    free(b->task);
    memset(b, 0, sizeof *b);
}

void batch_fill_parts(Batch *b, const BatchPart *parts, int n_parts)
{
    int T = 0, rows = 0;
    for (int p = 0, seen = 0; p < n_parts; p++)
        for (int r = 0; r < parts[p].n && seen < b->cap; r++, seen++)
            if (parts[p].d->len[parts[p].idx[r]] > T)
                T = parts[p].d->len[parts[p].idx[r]];
    /* A data set with longer rows than the batch was sized for would
     * overrun ids; cutting T keeps memory safe (the caller sizes both from
     * the same model max_len, so this does not happen in practice). */
    if (T > b->max_len)
        T = b->max_len;
    for (int p = 0; p < n_parts; p++) {
        const Dataset *d = parts[p].d;
        for (int r = 0; r < parts[p].n && rows < b->cap; r++, rows++) {
            int i = parts[p].idx[r];
            const int *src = d->ids + (size_t)i * (size_t)d->max_len;
            const int *src_types = d->types + (size_t)i * (size_t)d->max_len;
            int *dst = b->ids + (size_t)rows * (size_t)T;
            int *dst_types = b->types + (size_t)rows * (size_t)T;
            int len = d->len[i] < T ? d->len[i] : T;
            memcpy(dst, src, (size_t)len * sizeof *dst);
            memcpy(dst_types, src_types, (size_t)len * sizeof *dst_types);
            /* Padding is masked out of attention: any id in the
             * vocabulary will do, and id 0 is in every one. */
            for (int t = len; t < T; t++) {
                dst[t] = TOK_PAD;
                dst_types[t] = 0;
            }
            b->len[rows] = len;
            b->label[rows] = d->label[i];
            b->task[rows] = parts[p].task;
        }
    }
    b->B = rows;
    b->T = T;
}

void batch_fill(Batch *b, const Dataset *d, const int *idx, int n, int task)
{
    BatchPart part = { d, idx, n, task };
    batch_fill_parts(b, &part, 1);
}

/* ---- sampler ---- */

static void sampler_build(Sampler *s)
{
    Rng r;
    int n = s->d->n;
    for (int i = 0; i < n; i++)
        s->order[i] = i;
    rng_seed_stream(&r, s->seed, SAMPLER_STREAM_BASE + (uint64_t)s->epoch);
    rng_shuffle(&r, s->order, n);
}

int sampler_init(Sampler *s, const Dataset *d, unsigned long long seed,
                 MnError *e)
{
    memset(s, 0, sizeof *s);
    if (d->n < 1)
        return mn_fail(e, "cannot sample from an empty data set");
    s->order = malloc((size_t)d->n * sizeof *s->order);
    if (!s->order)
        return mn_fail(e, "out of memory for a sampler of %d rows", d->n);
    s->d = d;
    s->seed = seed;
    sampler_build(s);
    return 0;
}

void sampler_free(Sampler *s)
{
    free(s->order);
    memset(s, 0, sizeof *s);
}

void sampler_seek(Sampler *s, int epoch, int cursor)
{
    int n = s->d->n;
    if (epoch < 0)
        epoch = 0;
    if (cursor < 0)
        cursor = 0;
    /* (e, n) and (e + 1, 0) are the same position; keep one spelling so
     * that a saved position always has cursor < n. */
    epoch += cursor / n;
    cursor %= n;
    s->epoch = epoch;
    s->cursor = cursor;
    sampler_build(s);
}

int sampler_next(Sampler *s, int *idx, int want)
{
    for (int k = 0; k < want; k++) {
        idx[k] = s->order[s->cursor];
        if (++s->cursor == s->d->n) {
            s->epoch++;
            s->cursor = 0;
            sampler_build(s);
        }
    }
    return want;
}
