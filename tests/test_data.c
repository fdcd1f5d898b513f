#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data.h"
#include "tap.h"
#include "tokenizer.h"

static char dir[64];

/* Writes content (len bytes, so NULs can be included) to dir/name. */
static const char *write_file(const char *name, const char *content, size_t len)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(content, 1, len, f) != len || fclose(f) != 0) {
        diag("cannot write %s", path);
        exit(2);
    }
    return path;
}

#define WRITE(name, lit) write_file(name, lit, sizeof lit - 1)

static int row_is(const Dataset *d, int i, const char *text)
{
    int n = (int)strlen(text);
    const int *row = d->ids + (size_t)i * (size_t)d->max_len;
    if (d->len[i] != n + 2 || row[0] != TOK_CLS || row[n + 1] != TOK_SEP)
        return 0;
    for (int t = 0; t < n; t++)
        if (row[1 + t] != TOK_BYTE0 + (unsigned char)text[t])
            return 0;
    for (int t = n + 2; t < d->max_len; t++)
        if (row[t] != TOK_PAD)
            return 0;
    return 1;
}

static void test_good_file(void)
{
    const char *p = WRITE("good.tsv",
        "the cat sat\tanimal\r\n"
        "\n"
        "red car\tvehicle\n"
        "   \n"
        "a dog\tanimal\r\n"
        "\r\n"
        "a bus\tvehicle\n"
        "sky\tweather");             /* no final newline */
    Dataset d;
    LabelSet ls = { 0 };
    MnError e = { "" };
    int rc = dataset_load_tsv(&d, p, 16, &ls, 1, &e);
    ok(rc == 0, "good file loads (%s)", e.msg);
    if (rc < 0)
        return;
    ok(d.n == 5, "5 examples, blank lines skipped (got %d)", d.n);
    ok(ls.n_labels == 3, "3 labels (got %d)", ls.n_labels);
    ok(strcmp(ls.names[0], "animal") == 0 && strcmp(ls.names[1], "vehicle") == 0 &&
       strcmp(ls.names[2], "weather") == 0, "label ids by first appearance");
    ok(d.label[0] == 0 && d.label[1] == 1 && d.label[2] == 0 &&
       d.label[3] == 1 && d.label[4] == 2, "labels of the rows");
    ok(row_is(&d, 0, "the cat sat"), "CRLF stripped from text and label");
    ok(row_is(&d, 4, "sky"), "last line without newline is read");
    ok(row_is(&d, 1, "red car"), "row padded after its length");

    /* The eval file maps onto the training labels. */
    const char *q = WRITE("eval.tsv", "a bike\tvehicle\nrain\tweather\nowl\tanimal\n");
    Dataset ev;
    rc = dataset_load_tsv(&ev, q, 16, &ls, 0, &e);
    ok(rc == 0 && ev.n == 3 && ev.label[0] == 1 && ev.label[1] == 2 &&
       ev.label[2] == 0 && ls.n_labels == 3, "eval file uses training label ids");
    if (rc == 0)
        dataset_free(&ev);

    /* A long text is truncated like any other, [SEP] last. */
    const char *r = WRITE("long.tsv", "abcdefghijklmnopqrstuvwxyz\tx\n");
    LabelSet ls2 = { 0 };
    rc = dataset_load_tsv(&ev, r, 8, &ls2, 1, &e);
    ok(rc == 0 && ev.len[0] == 8 && ev.ids[7] == TOK_SEP,
       "long text truncated to max_len with [SEP] last");
    if (rc == 0)
        dataset_free(&ev);

    dataset_free(&d);
    ok(d.ids == NULL && d.n == 0, "dataset_free clears the struct");
}

static void test_long_line(void)
{
    size_t n = 100000;
    char *buf = malloc(n + 16);
    memset(buf, 'z', n);
    memcpy(buf + n, "\tlong\n", 7);
    const char *p = write_file("huge.tsv", buf, n + 6);
    free(buf);
    Dataset d;
    LabelSet ls = { 0 };
    MnError e = { "" };
    int rc = dataset_load_tsv(&d, p, 64, &ls, 1, &e);
    ok(rc == 0 && d.n == 1 && d.len[0] == 64 && strcmp(ls.names[0], "long") == 0,
       "a 100000-byte line is read whole (%s)", e.msg);
    if (rc == 0)
        dataset_free(&d);
}

/* Loads content and checks the error names "file:LINE:" and contains want. */
static void expect_error(const char *what, const char *content, size_t len,
                         int line, const char *want, int grow)
{
    char name[64], where[128];
    snprintf(name, sizeof name, "bad%d.tsv", tap_n);
    const char *p = write_file(name, content, len);
    snprintf(where, sizeof where, "%s:%d: ", name, line);

    Dataset d = { 0 };
    LabelSet ls = { 0 };
    MnError e = { "" };
    if (!grow) {
        ls.n_labels = 2;
        strcpy(ls.names[0], "pos");
        strcpy(ls.names[1], "neg");
    }
    LabelSet before = ls;
    int rc = dataset_load_tsv(&d, p, 32, &ls, grow, &e);
    ok(rc == -1 && strstr(e.msg, where) && strstr(e.msg, want),
       "%s: error at line %d (%s)", what, line, e.msg);
    ok(d.ids == NULL && memcmp(&before, &ls, sizeof ls) == 0,
       "%s: nothing kept, labels unchanged", what);
    if (rc == 0)
        dataset_free(&d);
}

#define BAD(what, lit, line, want) \
    expect_error(what, lit, sizeof lit - 1, line, want, 1)

static void test_errors(void)
{
    BAD("no TAB", "ok\tpos\nno tab here\n", 2, "expected text<TAB>label");
    BAD("two TABs", "ok\tpos\n\nx\ty\tz\n", 3, "more than one TAB");
    BAD("empty text", "ok\tpos\n\tneg\n", 2, "empty text");
    BAD("empty label", "ok\tpos\r\nfine\tneg\r\nbad\t\r\n", 3, "empty label");
    BAD("long label", "x\t"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
        1, "label longer than 63");
    BAD("NUL byte", "ok\tpos\nab\0c\tneg\n", 2, "NUL byte at column 3");
    /* A label that JSON cannot hold would vanish from the checkpoint. */
    BAD("invalid UTF-8 label", "ok\tpos\nx\tw\xe9ird\n", 2,
        "not valid UTF-8 (byte 0xE9 at column 4)");
    BAD("invalid UTF-8 text", "caf\xc3\xa9\tpos\nab\x80" "c\tneg\n", 2,
        "not valid UTF-8 (byte 0x80 at column 3)");
    BAD("an overlong UTF-8 form", "\xc0\xaf\tpos\n", 1, "byte 0xC0 at column 1");
    BAD("a UTF-8 sequence cut by the TAB", "ok\xe2\x82\tpos\n", 1, "byte 0xE2 at column 3");

    /* 63 bytes is the longest label that fits. */
    const char *p = WRITE("label63.tsv", "x\t"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n");
    Dataset d;
    LabelSet ls = { 0 };
    MnError e = { "" };
    int rc = dataset_load_tsv(&d, p, 32, &ls, 1, &e);
    ok(rc == 0 && strlen(ls.names[0]) == 63, "a 63-byte label is accepted");
    if (rc == 0)
        dataset_free(&d);

    /* MAX_LABELS distinct labels fit; one more does not. */
    char many[4096];
    size_t n = 0;
    for (int i = 0; i <= MAX_LABELS; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "t\tl%d\n", i);
    expect_error("too many labels", many, n, MAX_LABELS + 1,
                 "more than 64 distinct labels", 1);
    p = write_file("labels64.tsv", many, n - strlen("t\tl64\n"));
    memset(&ls, 0, sizeof ls);
    rc = dataset_load_tsv(&d, p, 32, &ls, 1, &e);
    ok(rc == 0 && ls.n_labels == MAX_LABELS, "64 distinct labels are accepted");
    if (rc == 0)
        dataset_free(&d);

    expect_error("unseen eval label", "a\tpos\nb\tneg\n\nc\tmaybe\n",
                 sizeof "a\tpos\nb\tneg\n\nc\tmaybe\n" - 1, 4,
                 "label 'maybe' does not occur in the training file", 0);
}

/* A file that is not text ends in an error naming the line, at once,
 * not after reading it all into memory. */
static void test_endless_line(void)
{
    Dataset d;
    LabelSet ls = { 0 };
    MnError e = { "" };
    int rc = dataset_load_tsv(&d, "/dev/zero", 32, &ls, 1, &e);
    ok(rc == -1 && strstr(e.msg, "/dev/zero:1: line longer than 16 MiB"),
       "/dev/zero: an error at line 1 (%s)", e.msg);
}

/* CRLF converted once more gives \r\r\n: the label must not keep a \r. */
static void test_crcrlf(void)
{
    const char *p = WRITE("crcrlf.tsv", "good soup\tpos\r\r\nbad soup\tneg\r\r\n");
    Dataset d;
    LabelSet ls = { 0 };
    MnError e = { "" };
    int rc = dataset_load_tsv(&d, p, 32, &ls, 1, &e);
    ok(rc == 0 && ls.n_labels == 2 && strcmp(ls.names[0], "pos") == 0 &&
       strcmp(ls.names[1], "neg") == 0, "\\r\\r\\n endings: labels pos and neg (%s)", e.msg);
    ok(rc == 0 && row_is(&d, 1, "bad soup"), "\\r\\r\\n endings: the text keeps no \\r");
    if (rc == 0)
        dataset_free(&d);
}

static void test_file_errors(void)
{
    Dataset d;
    LabelSet ls = { 0 };
    MnError e = { "" };
    char path[128];
    snprintf(path, sizeof path, "%s/missing.tsv", dir);
    int rc = dataset_load_tsv(&d, path, 32, &ls, 1, &e);
    ok(rc == -1 && strstr(e.msg, path) && strstr(e.msg, "No such file"),
       "missing file: %s", e.msg);

    const char *p = WRITE("empty.tsv", "");
    rc = dataset_load_tsv(&d, p, 32, &ls, 1, &e);
    ok(rc == -1 && strstr(e.msg, "empty.tsv") && strstr(e.msg, "no examples"),
       "empty file: %s", e.msg);

    p = WRITE("blank.tsv", "\n\r\n\n");
    rc = dataset_load_tsv(&d, p, 32, &ls, 1, &e);
    ok(rc == -1 && strstr(e.msg, "no examples"), "only blank lines: %s", e.msg);
}

/* ---- pairs, JSON Lines, label kinds ---- */

static Tokenizer bytes;

/* Row i is [CLS] a [SEP] b [SEP] in bytes, types 0 through the first
 * [SEP] and 1 after, then PAD with type 0. */
static int pair_is(const Dataset *d, int i, const char *a, const char *b)
{
    const int *row = d->ids + (size_t)i * (size_t)d->max_len;
    const int *ty = d->types + (size_t)i * (size_t)d->max_len;
    int na = (int)strlen(a), nb = (int)strlen(b), t = 0;
    int good = row[t] == TOK_CLS && ty[t] == 0;
    for (int k = 0; k < na; k++)
        good &= row[++t] == TOK_BYTE0 + (unsigned char)a[k] && ty[t] == 0;
    good &= row[++t] == TOK_SEP && ty[t] == 0;
    for (int k = 0; k < nb; k++)
        good &= row[++t] == TOK_BYTE0 + (unsigned char)b[k] && ty[t] == 1;
    good &= row[++t] == TOK_SEP && ty[t] == 1;
    good &= d->len[i] == t + 1;
    for (t++; t < d->max_len; t++)
        good &= row[t] == TOK_PAD && ty[t] == 0;
    return good;
}

static int single_is(const Dataset *d, int i, const char *text)
{
    const int *ty = d->types + (size_t)i * (size_t)d->max_len;
    int zero = 1;
    for (int t = 0; t < d->max_len; t++)
        zero &= ty[t] == 0;
    return zero && row_is(d, i, text);
}

static const DataFormat tsv3 = { DATA_AUTO, 3, 0, NULL, NULL, NULL };

static void test_tsv_pairs(void)
{
    const char *p = WRITE("pairs.tsv",
        "\xEF\xBB\xBFthe cat\ta cat sat\tyes\r\n"
        "\r\n"
        "abcdefgh\txy\tno\n"
        "q\tr\tyes");
    Dataset d;
    LabelSet ls = { 0 };
    MnError e = { "" };
    int rc = dataset_load(&d, &bytes, &tsv3, p, 32, &ls, LABELS_GROW, &e);
    ok(rc == 0 && d.n == 3 && ls.n_labels == 2, "3-column TSV loads (%s)", e.msg);
    if (rc < 0)
        return;
    ok(pair_is(&d, 0, "the cat", "a cat sat"),
       "pair row: types 0 through the first [SEP], 1 after, padding 0; BOM and CRLF gone");
    ok(pair_is(&d, 2, "q", "r") && d.label[2] == 0, "last line without a newline");
    ok(pair_is(&d, 1, "abcdefgh", "xy") && d.label[1] == 1, "a pair that fits is whole");
    dataset_free(&d);

    /* 8 + 2 tokens into 10 - 3: longest first cuts a to 5, b stays. */
    rc = dataset_load(&d, &bytes, &tsv3, p, 10, &ls, LABELS_KNOWN, &e);
    ok(rc == 0 && pair_is(&d, 1, "abcde", "xy"), "truncated longest-first to max_len 10");
    /* 7 + 9 into 7: both are cut, to about half each (the exact split is
     * the tokenizer's longest_first, tested there). */
    ok(rc == 0 && d.len[0] == 10 && (pair_is(&d, 0, "the", "a ca") || pair_is(&d, 0, "the ", "a c")),
       "both long: both cut to fit max_len 10");
    if (rc == 0)
        dataset_free(&d);

    /* A 2-column file's rows have all-zero types. */
    p = WRITE("single.tsv", "\xEF\xBB\xBFhello\tx\n");
    memset(&ls, 0, sizeof ls);
    rc = dataset_load(&d, &bytes, NULL, p, 12, &ls, LABELS_GROW, &e);
    ok(rc == 0 && single_is(&d, 0, "hello") && strcmp(ls.names[0], "x") == 0,
       "single texts: types 0, BOM stripped (%s)", e.msg);
    if (rc == 0)
        dataset_free(&d);
}

/* Loads content as name with fmt and checks the error names "name:LINE:"
 * (line 0: just "name:") and contains want; nothing is kept. */
static void load_error(const char *what, const char *name, const char *content,
                       const DataFormat *fmt, LabelMode mode, const LabelSet *given,
                       int line, const char *want)
{
    char where[128];
    const char *p = write_file(name, content, strlen(content));
    if (line)
        snprintf(where, sizeof where, "%s:%d: ", name, line);
    else
        snprintf(where, sizeof where, "%s: ", name);
    Dataset d = { 0 };
    LabelSet ls = { 0 };
    MnError e = { "" };
    if (given)
        ls = *given;
    LabelSet before = ls;
    int rc = dataset_load(&d, &bytes, fmt, p, 32, &ls, mode, &e);
    ok(rc == -1 && strstr(e.msg, where) && strstr(e.msg, want),
       "%s: %s", what, e.msg);
    ok(d.ids == NULL && d.n == 0 && memcmp(&before, &ls, sizeof ls) == 0,
       "%s: nothing kept, labels unchanged", what);
    if (rc == 0)
        dataset_free(&d);
}

static void test_tsv_pair_errors(void)
{
    load_error("2 fields for 3 columns", "p1.tsv", "a\tb\tyes\nonly\tno\n", &tsv3,
               LABELS_GROW, NULL, 2, "expected text_a<TAB>text_b<TAB>label (2 fields)");
    load_error("4 fields for 3 columns", "p2.tsv", "a\tb\tc\td\n", &tsv3, LABELS_GROW, NULL,
               1, "expected text_a<TAB>text_b<TAB>label (4 fields)");
    load_error("1 field for 2 columns", "p3.tsv", "a\tx\nnothing\n", NULL, LABELS_GROW, NULL,
               2, "expected text<TAB>label (1 field)");
    load_error("empty text_a", "p4.tsv", "\tb\tyes\n", &tsv3, LABELS_GROW, NULL, 1,
               "empty text_a");
    load_error("empty text_b", "p5.tsv", "a\tb\tyes\n\na\t\tyes\n", &tsv3, LABELS_GROW, NULL,
               3, "empty text_b");
    load_error("empty pair label", "p6.tsv", "a\tb\t\r\n", &tsv3, LABELS_GROW, NULL, 1,
               "empty label");
    load_error("pairs without examples", "p7.tsv", "\n\n", &tsv3, LABELS_GROW, NULL, 0,
               "no examples (expected text_a<TAB>text_b<TAB>label lines)");
}

static void test_jsonl(void)
{
    /* As `datasets` writes it (pandas escapes "/" and non-ASCII), with a
     * BOM, CRLF, blank lines and fields that are not used. */
    const char *p = WRITE("train.jsonl",
        "\xEF\xBB\xBF{\"idx\":0,\"text\":\"caf\\u00e9 and\\/or tea\",\"label\":\"pos\"}\r\n"
        "\r\n"
        "  \n"
        "{\"text\": \"bad\", \"label\": \"neg\", \"meta\": {\"a\": [1, 2]}}\n"
        "{\"label\":\"pos\",\"text\":\"good\"}");
    Dataset d;
    LabelSet ls = { 0 };
    MnError e = { "" };
    int rc = dataset_load(&d, &bytes, NULL, p, 32, &ls, LABELS_GROW, &e);
    ok(rc == 0 && d.n == 3, "JSONL with string labels loads (%s)", e.msg);
    if (rc < 0)
        return;
    ok(ls.n_labels == 2 && strcmp(ls.names[0], "pos") == 0 && strcmp(ls.names[1], "neg") == 0 &&
       d.label[0] == 0 && d.label[1] == 1 && d.label[2] == 0,
       "string labels get ids by first appearance");
    ok(single_is(&d, 0, "caf\xc3\xa9 and/or tea"), "escapes decoded to UTF-8, types 0");
    ok(single_is(&d, 2, "good"), "field order does not matter; last line without newline");
    dataset_free(&d);

    /* The eval file may be .json, and its labels are the training ones. */
    const char *q = WRITE("eval.json", "{\"text\":\"ok\",\"label\":\"neg\"}\n");
    rc = dataset_load(&d, &bytes, NULL, q, 32, &ls, LABELS_KNOWN, &e);
    ok(rc == 0 && d.n == 1 && d.label[0] == 1 && ls.n_labels == 2,
       ".json is JSON Lines too; eval labels map to training ids (%s)", e.msg);
    if (rc == 0)
        dataset_free(&d);

    /* format = jsonl for a file of any name; field names configurable;
     * pairs from two fields. */
    DataFormat nli = { DATA_JSONL, 2, 0, "premise", "hypothesis", "gold" };
    p = WRITE("nli.txt",
        "{\"premise\":\"a man\",\"hypothesis\":\"a person\",\"gold\":\"entail\",\"idx\":7}\n");
    memset(&ls, 0, sizeof ls);
    rc = dataset_load(&d, &bytes, &nli, p, 32, &ls, LABELS_GROW, &e);
    ok(rc == 0 && pair_is(&d, 0, "a man", "a person") && strcmp(ls.names[0], "entail") == 0,
       "JSONL pairs from named fields with token types (%s)", e.msg);
    if (rc == 0)
        dataset_free(&d);
    ok(data_file_kind(NULL, "x.JSONL") == DATA_JSONL && data_file_kind(NULL, "x.tsv") == DATA_TSV &&
       data_file_kind(NULL, "jsonl") == DATA_TSV && data_file_kind(&nli, "x.tsv") == DATA_JSONL,
       "data_file_kind: by extension unless the format says");
    DataKind k;
    ok(data_kind_parse("jsonl", &k) == 0 && k == DATA_JSONL && data_kind_parse("csv", &k) == -1,
       "data_kind_parse");
}

/* A `datasets` ClassLabel column exports integers: they are the ids. */
static void test_int_labels(void)
{
    const char *p = WRITE("sst2.train.jsonl",
        "{\"idx\": 0, \"sentence\": \"hide new secretions from the parental units \", \"label\": 0}\n"
        "{\"idx\": 1, \"sentence\": \"contains no wit , only labored gags \", \"label\": 2}\n"
        "{\"idx\": 2, \"sentence\": \"that loves its characters \", \"label\": 1}\n"
        "{\"idx\": 3, \"sentence\": \"remains utterly satisfied \", \"label\": 2}\n");
    DataFormat sst = { DATA_AUTO, 0, 0, "sentence", "", NULL };
    Dataset d;
    LabelSet ls = { 0 };
    MnError e = { "" };
    int rc = dataset_load(&d, &bytes, &sst, p, 64, &ls, LABELS_GROW, &e);
    ok(rc == 0 && d.n == 4, "a datasets export with integer labels loads (%s)", e.msg);
    if (rc < 0)
        return;
    ok(ls.n_labels == 3 && strcmp(ls.names[0], "0") == 0 && strcmp(ls.names[1], "1") == 0 &&
       strcmp(ls.names[2], "2") == 0, "integer labels are named 0..K-1");
    ok(d.label[0] == 0 && d.label[1] == 2 && d.label[2] == 1 && d.label[3] == 2,
       "each integer is its own id, not the order of appearance");
    ok(row_is(&d, 2, "that loves its characters "), "text from the sentence field");
    dataset_free(&d);

    /* Eval: integers, or their names as strings, map to the same ids. */
    const char *q = WRITE("sst2.eval.jsonl",
        "{\"sentence\": \"x\", \"label\": 2}\n{\"sentence\": \"y\", \"label\": \"1\"}\n");
    rc = dataset_load(&d, &bytes, &sst, q, 64, &ls, LABELS_KNOWN, &e);
    ok(rc == 0 && d.label[0] == 2 && d.label[1] == 1, "eval integer labels keep their ids (%s)",
       e.msg);
    if (rc == 0)
        dataset_free(&d);
    load_error("unseen eval integer", "ev.jsonl",
               "{\"text\":\"a\",\"label\":1}\n{\"text\":\"b\",\"label\":3}\n", NULL,
               LABELS_KNOWN, &ls, 2, "label '3' does not occur in the training file");

    load_error("a gap in integer labels", "gap.jsonl",
               "{\"text\":\"a\",\"label\":0}\n{\"text\":\"b\",\"label\":3}\n"
               "{\"text\":\"c\",\"label\":2}\n{\"text\":\"d\",\"label\":0}\n",
               NULL, LABELS_GROW, NULL, 0, "labels are integers 0..3, but no example has label 1");
    load_error("a negative label (a test split)", "neg.jsonl",
               "{\"text\":\"a\",\"label\":0}\n{\"text\":\"b\",\"label\":-1}\n", NULL, LABELS_GROW,
               NULL, 2, "label -1 is negative");
    load_error("an integer label too large", "big.jsonl",
               "{\"text\":\"a\",\"label\":64}\n", NULL, LABELS_GROW, NULL, 1,
               "integer labels run 0..63 at most");
    load_error("integer after string labels", "mix1.jsonl",
               "{\"text\":\"a\",\"label\":\"pos\"}\n\n{\"text\":\"b\",\"label\":1}\n", NULL,
               LABELS_GROW, NULL, 3, "label is an integer, but line 1's is a string");
    load_error("string after integer labels", "mix2.jsonl",
               "{\"text\":\"a\",\"label\":0}\n{\"text\":\"b\",\"label\":\"1\"}\n", NULL,
               LABELS_GROW, NULL, 2, "label is a string, but line 1's is an integer");
    LabelSet named = { 2, { "pos", "neg" } };
    load_error("integers extending named labels", "mix3.jsonl",
               "{\"text\":\"a\",\"label\":0}\n", NULL, LABELS_GROW, &named, 1,
               "integer labels cannot extend a label set that already has names");
}

/* A TSV file's header line (GLUE's "sentence<TAB>label"): skipped with
 * header = yes, kept with no, and by default refused where it would
 * silently be an example of a class of its own, with the way out. */
static void test_header(void)
{
    const char *text = "sentence\tlabel\na\tpos\nb\tneg\nc\tpos\nd\tneg\n";
    const char *p = write_file("head.tsv", text, strlen(text));
    Dataset d;
    MnError e = { "" };
    LabelSet ls = { 0 };
    DataFormat fmt = { DATA_AUTO, 2, 0, NULL, NULL, NULL };
    int rc = dataset_load(&d, &bytes, &fmt, p, 16, &ls, LABELS_GROW, &e);
    ok(rc < 0 && strstr(e.msg, "head.tsv:1: label 'label' is on no other line of the 5: is line 1 "
                        "a header? header = \"yes\" skips it") && ls.n_labels == 0,
       "a header line in a training file is refused, labels untouched (%s)", e.msg);
    if (rc == 0)
        dataset_free(&d);
    fmt.header = 1;
    rc = dataset_load(&d, &bytes, &fmt, p, 16, &ls, LABELS_GROW, &e);
    ok(rc == 0 && d.n == 4 && ls.n_labels == 2 && !strcmp(ls.names[0], "pos"),
       "header = yes skips it: 4 examples, labels pos and neg");
    if (rc == 0)
        dataset_free(&d);
    LabelSet kept = { 0 };
    fmt.header = -1;
    rc = dataset_load(&d, &bytes, &fmt, p, 16, &kept, LABELS_GROW, &e);
    ok(rc == 0 && d.n == 5 && kept.n_labels == 3, "header = no keeps it as an example");
    if (rc == 0)
        dataset_free(&d);
    /* an eval file's or a head's unknown label on line 1 says so too */
    fmt.header = 0;
    p = write_file("head-eval.tsv", text, strlen(text));
    rc = dataset_load(&d, &bytes, &fmt, p, 16, &ls, LABELS_KNOWN, &e);
    ok(rc < 0 && strstr(e.msg, "head-eval.tsv:1: label 'label' does not occur in the training file "
                        "(is line 1 a header? header = \"yes\" skips it)"),
       "an eval file's header: the hint (%s)", e.msg);
    fmt.header = 1;
    rc = dataset_load(&d, &bytes, &fmt, p, 16, &ls, LABELS_KNOWN, &e);
    ok(rc == 0 && d.n == 4, "and header = yes reads it");
    if (rc == 0)
        dataset_free(&d);
    /* a header of another width: the column error says it may be one */
    fmt.header = 0;
    memset(&ls, 0, sizeof ls);
    p = WRITE("head-idx.tsv", "index\tsentence\tlabel\na\tpos\n");
    rc = dataset_load(&d, &bytes, &fmt, p, 16, &ls, LABELS_GROW, &e);
    ok(rc < 0 && strstr(e.msg, "head-idx.tsv:1: more than one TAB") &&
           strstr(e.msg, "(is line 1 a header? header = \"yes\" skips it)"),
       "an index column's header: the column error gives the hint (%s)", e.msg);
    /* GLUE's ids as labels under a header */
    fmt.header = 0;
    memset(&ls, 0, sizeof ls);
    p = WRITE("head-int.tsv", "sentence\tlabel\na\t0\nb\t1\nc\t1\nd\t0\n");
    rc = dataset_load(&d, &bytes, &fmt, p, 16, &ls, LABELS_GROW, &e);
    ok(rc < 0 && strstr(e.msg, "head-int.tsv:1: label 'label' is on no other line"),
       "labels 0 and 1 under a header (%s)", e.msg);
    /* a class of one that is not the only one is not taken for a header */
    p = WRITE("head-rare.tsv", "a\tx\nb\ty\nc\tz\nd\tz\n");
    memset(&ls, 0, sizeof ls);
    rc = dataset_load(&d, &bytes, &fmt, p, 16, &ls, LABELS_GROW, &e);
    ok(rc == 0 && d.n == 4, "rare classes elsewhere: line 1 is an example (%s)", rc ? e.msg : "");
    if (rc == 0)
        dataset_free(&d);
}

/* A pretrained model's own head fixes the labels (its id2label). */
static void test_fixed_labels(void)
{
    LabelSet model = { 3, { "negative", "neutral", "positive" } };
    LabelSet ls = model;
    const char *p = WRITE("fixed.jsonl",
        "{\"text\":\"a\",\"label\":2}\n{\"text\":\"b\",\"label\":\"neutral\"}\n"
        "{\"text\":\"c\",\"label\":0}\n");
    Dataset d;
    MnError e = { "" };
    int rc = dataset_load(&d, &bytes, NULL, p, 16, &ls, LABELS_FIXED, &e);
    ok(rc == 0 && d.n == 3 && d.label[0] == 2 && d.label[1] == 1 && d.label[2] == 0,
       "fixed labels: integers index them, strings are their names (%s)", e.msg);
    ok(memcmp(&ls, &model, sizeof ls) == 0, "a fixed label set is not changed");
    if (rc == 0)
        dataset_free(&d);

    p = WRITE("fixed.tsv", "x\tpositive\ny\tnegative\n");
    rc = dataset_load(&d, &bytes, NULL, p, 16, &ls, LABELS_FIXED, &e);
    ok(rc == 0 && d.label[0] == 2 && d.label[1] == 0, "a TSV file against fixed labels");
    if (rc == 0)
        dataset_free(&d);

    /* GLUE's TSV files give the ids as text; "01", "+1" and " 1" are not ids */
    p = WRITE("fixed-ids.tsv", "x\t2\ny\t0\nz\tneutral\n");
    rc = dataset_load(&d, &bytes, NULL, p, 16, &ls, LABELS_FIXED, &e);
    ok(rc == 0 && d.label[0] == 2 && d.label[1] == 0 && d.label[2] == 1,
       "a TSV file of the head's ids as text: ids (%s)", e.msg);
    if (rc == 0)
        dataset_free(&d);
    load_error("fixed: an id as text out of range", "f4.tsv", "x\t1\ny\t3\n", NULL, LABELS_FIXED,
               &model, 2, "label '3' is not one of the 3 labels: negative, neutral, positive (or their ids 0..2)");
    load_error("fixed: a leading zero is no id", "f5.tsv", "x\t01\n", NULL, LABELS_FIXED,
               &model, 1, "label '01' is not one of the 3 labels");
    load_error("fixed: a string of an id in JSON", "f6.jsonl", "{\"text\":\"a\",\"label\":\"1\"}\n"
               "{\"text\":\"a\",\"label\":\"9\"}\n", NULL, LABELS_FIXED, &model, 2,
               "label '9' is not one of the 3 labels");
    /* labels named by digits that are not their ids: a name in text, and
     * an integer that could mean either is refused */
    LabelSet digits = { 2, { "1", "0" } };
    ls = digits;
    p = WRITE("digits.tsv", "x\t1\ny\t0\n");
    rc = dataset_load(&d, &bytes, NULL, p, 16, &ls, LABELS_FIXED, &e);
    ok(rc == 0 && d.label[0] == 0 && d.label[1] == 1, "labels named \"1\" and \"0\": text is a name (%s)",
       e.msg);
    if (rc == 0)
        dataset_free(&d);
    /* star ratings named "1" and "2": a 0 in the text is no id beside them */
    load_error("fixed: digit names take no text ids", "f8.tsv", "x\t0\ny\t1\nz\t0\n", NULL,
               LABELS_FIXED, &(LabelSet){ 2, { "1", "2" } }, 1,
               "label '0' is not one of the 2 labels: 1, 2 (labels named by digits take no ids written as text)");
    load_error("fixed: an ambiguous integer", "f7.jsonl", "{\"text\":\"a\",\"label\":1}\n", NULL,
               LABELS_FIXED, &digits, 1,
               "label 1 is ambiguous: id 1 is named '0', and the label named '1' is id 0");
    ls = model;
    load_error("fixed: integer out of range", "f1.jsonl",
               "{\"text\":\"a\",\"label\":1}\n{\"text\":\"b\",\"label\":3}\n", NULL, LABELS_FIXED,
               &model, 2, "label 3 is out of range: the labels are 0..2 (negative, neutral, positive)");
    load_error("fixed: negative integer", "f2.jsonl", "{\"text\":\"a\",\"label\":-1}\n", NULL,
               LABELS_FIXED, &model, 1, "label -1 is out of range");
    load_error("fixed: unknown name", "f3.jsonl",
               "{\"text\":\"a\",\"label\":\"neutral\"}\n{\"text\":\"b\",\"label\":\"mixed\"}\n",
               NULL, LABELS_FIXED, &model, 2,
               "label 'mixed' is not one of the 3 labels: negative, neutral, positive");
}

static void test_jsonl_errors(void)
{
    load_error("malformed JSON", "m.jsonl",
               "{\"text\":\"a\",\"label\":\"x\"}\n{\"text\": \"a\" \"label\": 1}\n", NULL,
               LABELS_GROW, NULL, 2, "malformed JSON at column 20");
    load_error("two objects on a line", "m2.jsonl",
               "{\"text\":\"a\",\"label\":\"x\"} {\"text\":\"b\",\"label\":\"x\"}\n", NULL,
               LABELS_GROW, NULL, 1, "malformed JSON at column 26: text after the JSON object (one object a line)");
    load_error("a byte order mark on a later line (files joined)", "bom.jsonl",
               "{\"text\":\"a\",\"label\":\"x\"}\n\xEF\xBB\xBF{\"text\":\"b\",\"label\":\"x\"}\n", NULL,
               LABELS_GROW, NULL, 2, "a byte order mark starts the line (files joined together?)");
    load_error("lines that end with CR alone", "cr.jsonl",
               "{\"text\":\"a\",\"label\":\"x\"}\r{\"text\":\"b\",\"label\":\"x\"}\r", NULL,
               LABELS_GROW, NULL, 1, "do the file's lines end with CR alone?");
    load_error("a JSON array file", "arr.json",
               "[{\"text\":\"a\",\"label\":\"x\"}]\n", NULL, LABELS_GROW, NULL, 1,
               "expected a JSON object per line, found an array");
    load_error("a missing text field", "mf.jsonl",
               "{\"text\":\"a\",\"label\":\"x\"}\n{\"idx\":1,\"sentence\":\"a\",\"label\":\"x\"}\n",
               NULL, LABELS_GROW, NULL, 2, "no field \"text\" (the object has: idx, sentence, label)");
    load_error("a missing label field", "ml.jsonl", "{\"text\":\"a\"}\n", NULL, LABELS_GROW,
               NULL, 1, "no field \"label\" (the object has: text)");
    DataFormat pair = { DATA_AUTO, 0, 0, NULL, "text_b", NULL };
    load_error("a missing second text", "mb.jsonl",
               "{\"text\":\"a\",\"text_b\":\"b\",\"label\":\"x\"}\n{\"text\":\"a\",\"label\":\"x\"}\n",
               &pair, LABELS_GROW, NULL, 2, "no field \"text_b\"");
    load_error("text not a string", "ts.jsonl", "{\"text\":5,\"label\":\"x\"}\n", NULL,
               LABELS_GROW, NULL, 1, "field \"text\" is an integer, expected a string");
    load_error("text null", "tn.jsonl", "{\"text\":null,\"label\":\"x\"}\n", NULL, LABELS_GROW,
               NULL, 1, "field \"text\" is null, expected a string");
    load_error("empty text", "te.jsonl", "\n{\"text\":\"\",\"label\":\"x\"}\n", NULL,
               LABELS_GROW, NULL, 2, "empty text in field \"text\"");
    load_error("label a real number", "lr.jsonl", "{\"text\":\"a\",\"label\":1.0}\n", NULL,
               LABELS_GROW, NULL, 1, "field \"label\" is a real number, expected a string or an integer");
    load_error("label a boolean", "lb.jsonl", "{\"text\":\"a\",\"label\":true}\n", NULL,
               LABELS_GROW, NULL, 1, "field \"label\" is true, expected");
    load_error("empty string label", "le.jsonl", "{\"text\":\"a\",\"label\":\"\"}\n", NULL,
               LABELS_GROW, NULL, 1, "empty label");
    load_error("a NUL escape", "nul.jsonl", "{\"text\":\"a\\u0000b\",\"label\":\"x\"}\n", NULL,
               LABELS_GROW, NULL, 1, "malformed JSON at column");
    load_error("a NUL escape, said in words", "nul2.jsonl",
               "{\"text\":\"a\\u0000b\",\"label\":\"x\"}\n", NULL, LABELS_GROW, NULL, 1,
               "\\u0000 (a NUL character) in a string");
    load_error("unseen eval string label", "ue.jsonl", "{\"text\":\"a\",\"label\":\"maybe\"}\n",
               NULL, LABELS_KNOWN, &(LabelSet){ 2, { "pos", "neg" } }, 1,
               "label 'maybe' does not occur in the training file");
    load_error("no examples", "blank.jsonl", "\n  \r\n", NULL, LABELS_GROW, NULL, 0,
               "no examples (expected one JSON object a line)");
}

/* ---- sampler ---- */

static int make_set(Dataset *d, int n)
{
    MnError e;
    if (dataset_alloc(d, n, 12, &e) < 0)
        return -1;
    char text[16];
    Tokenizer tok;
    tokenizer_bytes(&tok);
    for (int i = 0; i < n; i++) {
        snprintf(text, sizeof text, "%.*s", 1 + i % 9, "abcdefghij");
        if (dataset_set(d, &tok, i, text, NULL, i % 3, &e) < 0)
            return -1;
    }
    return 0;
}

static void test_sampler(void)
{
    enum { N = 10, TAKE = 47 };
    Dataset d;
    Sampler a, b;
    MnError e;
    int sa[TAKE], sb[TAKE];
    make_set(&d, N);

    ok(sampler_init(&a, &d, 42, &e) == 0 && sampler_init(&b, &d, 42, &e) == 0,
       "sampler_init");
    ok(sampler_next(&a, sa, 7) == 7, "sampler_next returns want");
    sampler_next(&a, sa + 7, TAKE - 7);
    sampler_next(&b, sb, TAKE);
    ok(memcmp(sa, sb, sizeof sa) == 0, "same seed, same stream (any chunking)");
    ok(a.epoch == TAKE / N && a.cursor == TAKE % N,
       "position after %d draws is epoch %d cursor %d", TAKE, a.epoch, a.cursor);

    /* Every epoch is a permutation, and epochs differ. */
    int perm_ok = 1, differ = 0;
    for (int ep = 0; ep < TAKE / N; ep++) {
        int seen[N] = { 0 };
        for (int i = 0; i < N; i++)
            seen[sb[ep * N + i]]++;
        for (int i = 0; i < N; i++)
            perm_ok &= seen[i] == 1;
        if (ep > 0 && memcmp(sb + ep * N, sb + (ep - 1) * N, N * sizeof *sb))
            differ = 1;
    }
    ok(perm_ok, "every epoch is a permutation");
    ok(differ, "epochs are reshuffled");

    /* Seeking to any (epoch, cursor) resumes the stream exactly. */
    int seek_ok = 1;
    for (int pos = 0; pos < TAKE; pos += 3) {
        int rest[TAKE];
        sampler_seek(&b, pos / N, pos % N);
        sampler_next(&b, rest, TAKE - pos);
        seek_ok &= memcmp(rest, sa + pos, (size_t)(TAKE - pos) * sizeof *rest) == 0;
    }
    ok(seek_ok, "seek(epoch, cursor) then next equals the stream from the start");

    sampler_seek(&b, 1, N);
    ok(b.epoch == 2 && b.cursor == 0, "seek(1, n) is normalised to (2, 0)");
    int one;
    sampler_next(&b, &one, 1);
    ok(one == sa[2 * N], "(1, n) continues like (2, 0)");

    Sampler c;
    sampler_init(&c, &d, 43, &e);
    int sc[TAKE];
    sampler_next(&c, sc, TAKE);
    ok(memcmp(sa, sc, sizeof sa) != 0, "another seed gives another stream");

    Dataset empty;
    dataset_alloc(&empty, 0, 8, &e);
    Sampler z;
    ok(sampler_init(&z, &empty, 1, &e) == -1, "empty data set: %s", e.msg);
    dataset_free(&empty);

    sampler_free(&a);
    sampler_free(&b);
    sampler_free(&c);
    dataset_free(&d);
}

/* ---- batches ---- */

static void test_batch(void)
{
    Dataset d;
    Batch b;
    MnError e;
    make_set(&d, 10);          /* row i has 1 + i % 9 bytes: len 3 + i % 9 */
    ok(batch_alloc(&b, 4, 12, &e) == 0, "batch_alloc");

    int idx[3] = { 1, 4, 2 };  /* lengths 4, 7, 5 */
    for (int i = 0; i < 4 * 12; i++)
        b.ids[i] = -9;
    batch_fill(&b, &d, idx, 3, 1);
    ok(b.B == 3 && b.T == 7, "B 3, T is the longest length 7 (got %d, %d)",
       b.B, b.T);
    int rows_ok = 1;
    for (int r = 0; r < 3; r++) {
        const int *src = d.ids + idx[r] * d.max_len;
        for (int t = 0; t < b.T; t++)
            rows_ok &= b.ids[r * b.T + t] == (t < d.len[idx[r]] ? src[t] : TOK_PAD);
        rows_ok &= b.len[r] == d.len[idx[r]] && b.label[r] == d.label[idx[r]] &&
                   b.task[r] == 1;
    }
    ok(rows_ok, "rows repacked with stride T, PAD after len, label and task set");
    ok(b.ids[0] == TOK_CLS && b.ids[3] == TOK_SEP && b.ids[4] == TOK_PAD &&
       b.ids[7] == TOK_CLS, "row 0 is [CLS] a [SEP] PAD PAD PAD, row 1 at 7");

    int one = 0;
    batch_fill(&b, &d, &one, 1, 0);
    ok(b.B == 1 && b.T == 3 && b.task[0] == 0, "refill shrinks T to 3");

    batch_free(&b);
    ok(b.ids == NULL && b.cap == 0, "batch_free clears the struct");
    ok(batch_alloc(&b, 0, 12, &e) == -1, "batch of 0 rows: %s", e.msg);
    dataset_free(&d);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/mneme_data_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    test_good_file();
    test_long_line();
    test_errors();
    test_file_errors();
    test_endless_line();
    test_crcrlf();
    tokenizer_bytes(&bytes);
    test_tsv_pairs();
    test_tsv_pair_errors();
    test_jsonl();
    test_int_labels();
    test_fixed_labels();
    test_header();
    test_jsonl_errors();
    test_sampler();
    test_batch();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        diag("could not remove %s", dir);
    return tap_done();
}
