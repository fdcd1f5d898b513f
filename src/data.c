#include "data.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "lines.h"
#include "tokenizer.h"

/* Sampler shuffles use streams above this base so that they never coincide
 * with the small stream numbers other modules draw from the same seed. */
#define SAMPLER_STREAM_BASE 0x53414d50ULL   /* "SAMP" */

void dataset_free(Dataset *d)
{
    free(d->ids);
    free(d->mlm);
    free(d->types);
    free(d->len);
    free(d->label);
    memset(d, 0, sizeof *d);
}

int dataset_reserve(Dataset *d, int rows, MnError *e)
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
    int *mlm = types && d->mlm ? realloc(d->mlm, (size_t)rows * (size_t)d->max_len * sizeof *mlm)
                               : types;
    if (mlm && d->mlm)
        d->mlm = mlm;
    int *len = mlm ? realloc(d->len, (size_t)rows * sizeof *len) : NULL;
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

/* Row i from an encoded sequence; seq is the caller's scratch so that a
 * loader reuses one buffer for every row. */
static int set_row(Dataset *d, const Tokenizer *t, int i, const char *a,
                   const char *b, int label, TokenSeq *seq, MnError *e)
{
    if (tokenizer_encode(t, a, b, d->max_len, seq, e) < 0)
        return -1;
    int *row = d->ids + (size_t)i * (size_t)d->max_len;
    int *types = d->types + (size_t)i * (size_t)d->max_len;
    int len = seq->n < d->max_len ? seq->n : d->max_len;
    memcpy(row, seq->ids, (size_t)len * sizeof *row);
    memcpy(types, seq->types, (size_t)len * sizeof *types);
    for (int k = len; k < d->max_len; k++) {
        row[k] = t->pad;
        types[k] = 0;
    }
    d->len[i] = len;
    d->label[i] = label;
    return 0;
}

int dataset_set(Dataset *d, const Tokenizer *t, int i, const char *a,
                const char *b, int label, MnError *e)
{
    TokenSeq seq = { 0 };
    int rc = set_row(d, t, i, a, b, label, &seq, e);
    token_seq_free(&seq);
    return rc;
}

/* ---- formats ---- */

int data_kind_parse(const char *name, DataKind *kind)
{
    static const char *const names[] = { "auto", "tsv", "jsonl" };
    for (int k = 0; k < 3; k++)
        if (strcmp(name, names[k]) == 0) {
            *kind = (DataKind)k;
            return 0;
        }
    return -1;
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && strcasecmp(s + n - m, tail) == 0;
}

DataKind data_file_kind(const DataFormat *fmt, const char *path)
{
    if (fmt && fmt->kind != DATA_AUTO)
        return fmt->kind;
    return ends_with(path, ".jsonl") || ends_with(path, ".json") ? DATA_JSONL : DATA_TSV;
}

int data_file_pairs(const DataFormat *fmt, const char *path)
{
    if (data_file_kind(fmt, path) == DATA_JSONL)
        return fmt && fmt->text_b_field && fmt->text_b_field[0];
    return fmt && fmt->columns == 3;
}

/* ---- loading ---- */

typedef struct {
    const char *path;
    long lineno;
    const Tokenizer *t;
    DataKind kind;
    int columns;
    int header;                /* DataFormat.header */
    long first_line;           /* of the first example */
    const char *text_field, *text_b_field, *label_field;   /* b: NULL = single */
    LabelSet *ls;              /* the caller's scratch copy */
    LabelMode mode;
    int started_empty;
    int ints;                  /* GROW: -1 undecided, 0 string labels, 1 integers */
    long ints_line;            /* the line that decided */
    unsigned char seen[MAX_LABELS];
    int max_int;
    Dataset *d;
    int cap;
    TokenSeq seq;
} Loader;

static int label_find(const LabelSet *ls, const char *name)
{
    for (int i = 0; i < ls->n_labels; i++)
        if (strcmp(ls->names[i], name) == 0)
            return i;
    return -1;
}

/* "a, b, c" into buf, cut with "..." when it does not fit. */
static const char *label_list(const LabelSet *ls, char *buf, size_t n)
{
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < ls->n_labels; i++) {
        int w = snprintf(buf + at, n - at, "%s%s", i ? ", " : "", ls->names[i]);
        if (w < 0 || (size_t)w >= n - at) {
            snprintf(buf + (n > 4 ? n - 4 : 0), n > 4 ? 4 : n, "...");
            break;
        }
        at += (size_t)w;
    }
    return buf;
}

/* A training file's labels are all names or all integers: the kinds
 * cannot be mixed, or ids would depend on which came first. */
static int label_kind(Loader *L, int is_int, MnError *e)
{
    if (L->mode != LABELS_GROW)
        return 0;
    if (L->ints < 0) {
        if (is_int && !L->started_empty)
            return mn_fail(e, "%s:%ld: integer labels cannot extend a label set that "
                           "already has names", L->path, L->lineno);
        L->ints = is_int;
        L->ints_line = L->lineno;
        return 0;
    }
    if (L->ints != is_int)
        return mn_fail(e, "%s:%ld: label is %s, but line %ld's is %s; use one kind",
                       L->path, L->lineno, is_int ? "an integer" : "a string",
                       L->ints_line, L->ints ? "an integer" : "a string");
    return 0;
}

/* "0", "17": an id as text (no sign, no leading zero). */
static int is_decimal(const char *s)
{
    if (s[0] < '0' || s[0] > '9' || (s[0] == '0' && s[1]))
        return 0;
    while (*s >= '0' && *s <= '9')
        s++;
    return *s == 0;
}

/* Labels named by digits ("1" to "5" stars): a digit in the text is then
 * a name, never an id, or the two would mix. */
static int digit_names(const LabelSet *ls)
{
    for (int i = 0; i < ls->n_labels; i++)
        if (is_decimal(ls->names[i]))
            return 1;
    return 0;
}

static int label_of_name(Loader *L, const char *name, int *id, MnError *e)
{
    char list[512];
    if (name[0] == '\0')
        return mn_fail(e, "%s:%ld: empty label", L->path, L->lineno);
    if (strlen(name) > LABEL_NAME_MAX - 1)
        return mn_fail(e, "%s:%ld: label longer than %d bytes", L->path, L->lineno,
                       LABEL_NAME_MAX - 1);
    if (label_kind(L, 0, e) < 0)
        return -1;
    *id = label_find(L->ls, name);
    if (*id >= 0)
        return 0;
    if (L->mode == LABELS_KNOWN)
        return mn_fail(e, "%s:%ld: label '%s' does not occur in the training file",
                       L->path, L->lineno, name);
    if (L->mode == LABELS_FIXED) {
        /* a head's ids written as text, as TSV files (GLUE's) carry them:
         * "1" is id 1 when no label is named "1" */
        char *end;
        long v = strtol(name, &end, 10);
        if (is_decimal(name) && v < L->ls->n_labels && !digit_names(L->ls)) {
            *id = (int)v;
            return 0;
        }
        if (digit_names(L->ls))
            return mn_fail(e, "%s:%ld: label '%s' is not one of the %d labels: %s (labels named "
                           "by digits take no ids written as text)", L->path, L->lineno, name,
                           L->ls->n_labels, label_list(L->ls, list, sizeof list));
        return mn_fail(e, "%s:%ld: label '%s' is not one of the %d labels: %s (or their ids "
                       "0..%d)", L->path, L->lineno, name, L->ls->n_labels,
                       label_list(L->ls, list, sizeof list), L->ls->n_labels - 1);
    }
    if (L->ls->n_labels >= MAX_LABELS)
        return mn_fail(e, "%s:%ld: more than %d distinct labels", L->path, L->lineno,
                       MAX_LABELS);
    *id = L->ls->n_labels++;
    memcpy(L->ls->names[*id], name, strlen(name) + 1);
    return 0;
}

static int label_of_int(Loader *L, long long v, int *id, MnError *e)
{
    char name[32], list[512];
    snprintf(name, sizeof name, "%lld", v);
    if (L->mode == LABELS_KNOWN)
        return label_of_name(L, name, id, e);
    if (L->mode == LABELS_FIXED) {
        if (v < 0 || v >= L->ls->n_labels)
            return mn_fail(e, "%s:%ld: label %lld is out of range: the labels are 0..%d (%s)",
                           L->path, L->lineno, v, L->ls->n_labels - 1,
                           label_list(L->ls, list, sizeof list));
        /* labels named by digits other than their ids ("0" for id 1):
         * an integer could mean either */
        int named = label_find(L->ls, name);
        if (named >= 0 && named != v)
            return mn_fail(e, "%s:%ld: label %lld is ambiguous: id %lld is named '%s', and the "
                           "label named '%s' is id %d; write the label's name as a string",
                           L->path, L->lineno, v, v, L->ls->names[v], name, named);
        *id = (int)v;
        return 0;
    }
    if (label_kind(L, 1, e) < 0)
        return -1;
    if (v < 0)
        return mn_fail(e, "%s:%ld: label %lld is negative (a split without labels?)",
                       L->path, L->lineno, v);
    if (v >= MAX_LABELS)
        return mn_fail(e, "%s:%ld: label %lld: integer labels run 0..%d at most",
                       L->path, L->lineno, v, MAX_LABELS - 1);
    *id = (int)v;
    L->seen[v] = 1;
    if (*id > L->max_int)
        L->max_int = *id;
    return 0;
}

/* Integer labels are the ids a model's id2label will carry, so every one
 * below the largest must occur: a gap would be a head output never seen. */
static int finish_int_labels(Loader *L, MnError *e)
{
    if (L->mode != LABELS_GROW || L->ints != 1)
        return 0;
    int k = L->max_int + 1;
    for (int v = 0; v < k; v++)
        if (!L->seen[v])
            return mn_fail(e, "%s: labels are integers 0..%d, but no example has label %d",
                           L->path, k - 1, v);
    L->ls->n_labels = k;
    for (int v = 0; v < k; v++)
        snprintf(L->ls->names[v], LABEL_NAME_MAX, "%d", v);
    return 0;
}

static int add_row(Loader *L, const char *a, const char *b, int label, MnError *e)
{
    Dataset *d = L->d;
    if (d->n == L->cap) {
        if (d->n >= INT32_MAX / 2)
            return mn_fail(e, "%s:%ld: too many examples", L->path, L->lineno);
        L->cap = L->cap ? L->cap * 2 : 256;
        if (dataset_reserve(d, L->cap, e) < 0)
            return mn_wrap(e, "%s:%ld", L->path, L->lineno);
    }
    if (set_row(d, L->t, d->n, a, b, label, &L->seq, e) < 0)
        return mn_wrap(e, "%s:%ld", L->path, L->lineno);
    d->n++;
    return 0;
}

static const char *tsv_shape(int columns)
{
    return columns == 3 ? "text_a<TAB>text_b<TAB>label" : "text<TAB>label";
}

/* One non-blank TSV line: the texts and the label, or what is wrong. */
/* A TSV file's first line that fails as an example may be a header
 * ("sentence<TAB>label", as GLUE's files and to_csv write them). */
static int header_hint(const Loader *L, long line, MnError *e)
{
    if (L->kind == DATA_TSV && L->header == 0 && line == L->first_line) {
        size_t n = strlen(e->msg);
        snprintf(e->msg + n, sizeof e->msg - n, " (is line %ld a header? header = \"yes\" "
                 "skips it)", line);
    }
    return -1;
}

static int parse_tsv(Loader *L, char *line, MnError *e)
{
    char *field[3];
    int nf = 1;
    field[0] = line;
    for (char *p = line; (p = strchr(p, '\t')) != NULL; nf++) {
        *p++ = '\0';
        if (nf < 3)
            field[nf] = p;
    }
    if (L->d->n == 0)
        L->first_line = L->lineno;
    if (nf != L->columns) {
        if (L->columns == 2 && nf > 2)
            mn_fail(e, "%s:%ld: more than one TAB (expected text<TAB>label, %d fields)%s",
                    L->path, L->lineno, nf, nf == 3 ? "; sentence pairs need columns = 3" : "");
        else
            mn_fail(e, "%s:%ld: expected %s (%d field%s)", L->path, L->lineno,
                    tsv_shape(L->columns), nf, nf == 1 ? "" : "s");
        return header_hint(L, L->lineno, e);
    }
    const char *a = field[0], *b = L->columns == 3 ? field[1] : NULL;
    const char *name = field[L->columns - 1];
    if (a[0] == '\0') {
        mn_fail(e, "%s:%ld: empty text%s", L->path, L->lineno, b ? "_a" : "");
        return header_hint(L, L->lineno, e);
    }
    if (b && b[0] == '\0') {
        mn_fail(e, "%s:%ld: empty text_b", L->path, L->lineno);
        return header_hint(L, L->lineno, e);
    }
    int label;
    if (label_of_name(L, name, &label, e) < 0)
        return header_hint(L, L->lineno, e);
    return add_row(L, a, b, label, e);
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    case JSON_NULL: return "null";
    }
    return "a value";
}

/* A missing field is most often a name the export spells otherwise
 * ("sentence", "premise"): list what the object has. */
static int missing_field(const Loader *L, json_t *o, const char *field, MnError *e)
{
    char have[512];
    size_t at = 0;
    const char *k;
    json_t *v;
    have[0] = '\0';
    json_object_foreach(o, k, v) {
        int w = snprintf(have + at, sizeof have - at, "%s%s", at ? ", " : "", k);
        if (w < 0 || (size_t)w >= sizeof have - at)
            break;
        at += (size_t)w;
    }
    return mn_fail(e, "%s:%ld: no field \"%s\" (the object has: %s)", L->path, L->lineno,
                   field, at ? have : "no fields");
}

static int json_text(const Loader *L, json_t *o, const char *field, const char **out,
                     MnError *e)
{
    json_t *v = json_object_get(o, field);
    if (!v)
        return missing_field(L, o, field, e);
    if (!json_is_string(v))
        return mn_fail(e, "%s:%ld: field \"%s\" is %s, expected a string", L->path,
                       L->lineno, field, json_kind(v));
    if (json_string_length(v) == 0)
        return mn_fail(e, "%s:%ld: empty text in field \"%s\"", L->path, L->lineno, field);
    *out = json_string_value(v);
    return 0;
}

/* One non-blank JSON Lines line: an object with the configured fields. */
static int parse_jsonl(Loader *L, const char *line, size_t n, MnError *e)
{
    json_error_t je;
    json_t *o = json_loadb(line, n, 0, &je);
    if (!o) {
        /* jansson's words for the cases people meet, in theirs */
        const char *why = je.text;
        if (n >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0)
            why = "a byte order mark starts the line (files joined together?)";
        else if (memchr(line, '\r', n) && strstr(je.text, "end of file expected"))
            why = "a carriage return inside the line: do the file's lines end with CR alone?";
        else if (strstr(je.text, "end of file expected"))
            why = "text after the JSON object (one object a line)";
        else if (strstr(je.text, "JSON_ALLOW_NUL"))
            why = "\\u0000 (a NUL character) in a string";
        return mn_fail(e, "%s:%ld: malformed JSON at column %d: %s", L->path, L->lineno,
                       je.column, why);
    }
    int rc = -1, label;
    const char *a = NULL, *b = NULL;
    if (!json_is_object(o)) {
        rc = mn_fail(e, "%s:%ld: expected a JSON object per line, found %s", L->path,
                     L->lineno, json_kind(o));
        goto out;
    }
    if (json_text(L, o, L->text_field, &a, e) < 0 ||
        (L->text_b_field && json_text(L, o, L->text_b_field, &b, e) < 0))
        goto out;
    json_t *v = json_object_get(o, L->label_field);
    if (!v) {
        missing_field(L, o, L->label_field, e);
        goto out;
    }
    if (json_is_integer(v)) {
        if (label_of_int(L, (long long)json_integer_value(v), &label, e) < 0)
            goto out;
    } else if (json_is_string(v)) {
        if (label_of_name(L, json_string_value(v), &label, e) < 0)
            goto out;
    } else {
        mn_fail(e, "%s:%ld: field \"%s\" is %s, expected a string or an integer label",
                L->path, L->lineno, L->label_field, json_kind(v));
        goto out;
    }
    rc = add_row(L, a, b, label, e);
out:
    json_decref(o);
    return rc;
}

static int is_blank(const char *line, DataKind kind)
{
    return line[strspn(line, kind == DATA_JSONL ? " \t\r" : " \r")] == '\0';
}

static int load_lines(Loader *L, FILE *f, MnError *e)
{
    LineReader lr;
    char *line;
    size_t n;
    int rc;

    int skip = L->kind == DATA_TSV && L->header == 1;
    line_reader_init(&lr, f, L->path);
    while ((rc = line_reader_next(&lr, &line, &n, e)) > 0) {
        L->lineno = lr.lineno;
        if (is_blank(line, L->kind))
            continue;
        if (skip) {
            skip = 0;
            continue;
        }
        rc = L->kind == DATA_JSONL ? parse_jsonl(L, line, n, e) : parse_tsv(L, line, e);
        if (rc < 0)
            break;
    }
    line_reader_free(&lr);
    /* a header read as an example is a class of one, silently: refused
     * when it is the only one (every other label on two lines or more) */
    if (rc == 0 && L->kind == DATA_TSV && L->header == 0 && L->mode == LABELS_GROW &&
        L->d->n >= 3) {
        int count[MAX_LABELS] = { 0 }, single = 0;
        for (int i = 0; i < L->d->n; i++)
            count[L->d->label[i]]++;
        for (int k = 0; k < L->ls->n_labels; k++)
            single += count[k] == 1;
        if (count[L->d->label[0]] == 1 && single == 1)
            rc = mn_fail(e, "%s:%ld: label '%s' is on no other line of the %d: is line %ld a "
                         "header? header = \"yes\" skips it, header = \"no\" keeps it as an "
                         "example", L->path, L->first_line, L->ls->names[L->d->label[0]],
                         L->d->n, L->first_line);
    }
    if (rc == 0 && L->d->n == 0)
        rc = L->kind == DATA_JSONL
             ? mn_fail(e, "%s: no examples (expected one JSON object a line)", L->path)
             : mn_fail(e, "%s: no examples (expected %s lines)", L->path,
                       tsv_shape(L->columns));
    if (rc == 0)
        rc = finish_int_labels(L, e);
    return rc;
}

static const char *field_or(const char *f, const char *def)
{
    return f && f[0] ? f : def;
}

int dataset_load(Dataset *d, const Tokenizer *t, const DataFormat *fmt,
                 const char *path, int max_len, LabelSet *labels,
                 LabelMode mode, MnError *e)
{
    static const DataFormat plain = { DATA_AUTO, 2, 0, NULL, NULL, NULL };
    if (!fmt)
        fmt = &plain;
    memset(d, 0, sizeof *d);
    if (max_len < 2)
        return mn_fail(e, "max_len %d leaves no room for [CLS] and [SEP]",
                       max_len);
    int columns = fmt->columns ? fmt->columns : 2;
    if (columns != 2 && columns != 3)
        return mn_fail(e, "%s: %d columns: expected 2 (text, label) or 3 (text_a, "
                       "text_b, label)", path, columns);
    FILE *f = fopen(path, "r");
    if (!f)
        return mn_fail(e, "%s: %s", path, strerror(errno));

    /* A failed load must leave the caller's labels as they were. */
    LabelSet scratch = *labels;
    Loader L = {
        .path = path, .t = t, .kind = data_file_kind(fmt, path), .columns = columns,
        .header = fmt->header,
        .text_field = field_or(fmt->text_field, "text"),
        .text_b_field = field_or(fmt->text_b_field, NULL),
        .label_field = field_or(fmt->label_field, "label"),
        .ls = &scratch, .mode = mode, .started_empty = labels->n_labels == 0,
        .ints = -1, .max_int = -1, .d = d,
    };
    d->max_len = max_len;
    int rc = load_lines(&L, f, e);
    fclose(f);
    token_seq_free(&L.seq);
    if (rc < 0) {
        dataset_free(d);
        return -1;
    }
    *labels = scratch;
    return 0;
}

int dataset_load_tsv(Dataset *d, const char *path, int max_len,
                     LabelSet *labels, int grow_labels, MnError *e)
{
    Tokenizer t;
    DataFormat fmt = { DATA_TSV, 2, 0, NULL, NULL, NULL };
    tokenizer_bytes(&t);
    return dataset_load(d, &t, &fmt, path, max_len, labels,
                        grow_labels ? LABELS_GROW : LABELS_KNOWN, e);
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
    b->mlm = calloc((size_t)cap * (size_t)max_len, sizeof *b->mlm);
    b->len = calloc((size_t)cap, sizeof *b->len);
    b->label = calloc((size_t)cap, sizeof *b->label);
    b->task = calloc((size_t)cap, sizeof *b->task);
    if (!b->ids || !b->types || !b->mlm || !b->len || !b->label || !b->task) {
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
    free(b->mlm);
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
            int *dst_mlm = b->mlm + (size_t)rows * (size_t)T;
            for (int t = 0; t < T; t++)
                dst_mlm[t] = d->mlm && t < len ? d->mlm[(size_t)i * (size_t)d->max_len + t] : -1;
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
