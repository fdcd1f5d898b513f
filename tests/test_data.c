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
    BAD("NUL byte", "ok\tpos\nab\0c\tneg\n", 2, "NUL");

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
    test_sampler();
    test_batch();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        diag("could not remove %s", dir);
    return tap_done();
}
