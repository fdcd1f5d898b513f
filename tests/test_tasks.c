#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "tasks.h"
#include "tokenizer.h"

/* The label rule is learned from the generated training data rather than
 * copied from tasks.c, so tuning the word lists needs no change here: a cue
 * word is one seen often in training and only ever with one label. A task is
 * well formed when, on held-out data, every sentence holds cue words of
 * exactly one label and that label is the right one. */

#define MAX_WORDS 1024
#define WORD_MAX 32
#define CUE_MIN_COUNT 10

typedef struct {
    int n;
    char word[MAX_WORDS][WORD_MAX];
    int count[MAX_WORDS][MAX_LABELS];
} Lexicon;

static void decode(const Dataset *d, int i, char *out)
{
    const int *row = d->ids + (size_t)i * (size_t)d->max_len;
    int k = 0;
    for (int t = 1; t < d->len[i] - 1; t++)
        out[k++] = (char)(row[t] - TOK_BYTE0);
    out[k] = '\0';
}

/* Calls fn for each maximal run of letters in text, in lower case (the
 * shouting task writes some words in capitals; they are the same words). */
static void each_word(const char *text, void (*fn)(const char *w, void *ctx),
                      void *ctx)
{
    char w[WORD_MAX];
    int k = 0;
    for (const char *p = text;; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) {
            if (k < WORD_MAX - 1)
                w[k++] = (char)(*p | 0x20);
            continue;
        }
        if (k) {
            w[k] = '\0';
            fn(w, ctx);
            k = 0;
        }
        if (!*p)
            break;
    }
}

static int lex_find(const Lexicon *x, const char *w)
{
    for (int i = 0; i < x->n; i++)
        if (strcmp(x->word[i], w) == 0)
            return i;
    return -1;
}

struct count_ctx {
    Lexicon *x;
    int label;
};

static void count_word(const char *w, void *ctx)
{
    struct count_ctx *c = ctx;
    int i = lex_find(c->x, w);
    if (i < 0 && c->x->n < MAX_WORDS) {
        i = c->x->n++;
        snprintf(c->x->word[i], WORD_MAX, "%s", w);
    }
    if (i >= 0)
        c->x->count[i][c->label]++;
}

static Lexicon *learn(const Dataset *d)
{
    Lexicon *x = calloc(1, sizeof *x);
    char text[256];
    for (int i = 0; i < d->n; i++) {
        struct count_ctx c = { x, d->label[i] };
        decode(d, i, text);
        each_word(text, count_word, &c);
    }
    return x;
}

/* The one label a word is a cue for, or -1. */
static int cue_label(const Lexicon *x, const char *w, int n_labels)
{
    int i = lex_find(x, w), label = -1, total = 0;
    if (i < 0)
        return -1;
    for (int l = 0; l < n_labels; l++) {
        total += x->count[i][l];
        if (x->count[i][l] == 0)
            continue;
        if (label >= 0)
            return -1;
        label = l;
    }
    return total >= CUE_MIN_COUNT ? label : -1;
}

static int cue_words(const Lexicon *x, int label, int n_labels)
{
    int n = 0;
    for (int i = 0; i < x->n; i++)
        n += cue_label(x, x->word[i], n_labels) == label;
    return n;
}

struct rule_ctx {
    const Lexicon *x;
    int n_labels;
    unsigned seen;     /* bit per label whose cue words occur */
};

static void mark_cue(const char *w, void *ctx)
{
    struct rule_ctx *c = ctx;
    int l = cue_label(c->x, w, c->n_labels);
    if (l >= 0)
        c->seen |= 1u << l;
}

/* The rule: the label of the cue words in text, or -1 when there are none
 * or they disagree. */
static int rule(const Lexicon *x, int n_labels, const char *text)
{
    struct rule_ctx c = { x, n_labels, 0 };
    each_word(text, mark_cue, &c);
    if (c.seen == 0 || (c.seen & (c.seen - 1)))
        return -1;
    return __builtin_ctz(c.seen);
}

typedef struct {
    Dataset train, eval;
    LabelSet labels;
    Lexicon *lex;
} Task;

static int task_load(Task *t, const char *name, int n_train, int n_eval)
{
    MnError e;
    memset(t, 0, sizeof *t);
    if (builtin_generate(name, NULL, 7, 0, n_train, 64, &t->train, &t->labels, &e) < 0 ||
        builtin_generate(name, NULL, 7, 1, n_eval, 64, &t->eval, &t->labels, &e) < 0) {
        diag("%s: %s", name, e.msg);
        return -1;
    }
    t->lex = learn(&t->train);
    return 0;
}

static void task_free(Task *t)
{
    dataset_free(&t->train);
    dataset_free(&t->eval);
    free(t->lex);
}

static void test_table(void)
{
    const BuiltinInfo *b = builtin_tasks();
    int n = 0, has_s = 0, has_t = 0, has_c = 0, summaries = 1;
    for (; b[n].name; n++) {
        has_s |= strcmp(b[n].name, "sentiment") == 0;
        has_t |= strcmp(b[n].name, "topic") == 0;
        has_c |= strcmp(b[n].name, "shouting") == 0;
        summaries &= b[n].summary && strlen(b[n].summary) > 10 &&
                     !strchr(b[n].summary, '\n');
        ok(builtin_exists(b[n].name), "builtin_exists(\"%s\")", b[n].name);
    }
    ok(n == 3 && has_s && has_t && has_c,
       "the built-ins are sentiment, topic and shouting");
    ok(summaries, "each has a one-line summary");
    ok(!builtin_exists("nope") && !builtin_exists(""), "unknown names do not exist");

    Dataset d;
    LabelSet ls;
    MnError e = { "" };
    int rc = builtin_generate("nope", NULL, 1, 0, 10, 64, &d, &ls, &e);
    ok(rc == -1 && strstr(e.msg, "'nope'") && strstr(e.msg, "sentiment") &&
       strstr(e.msg, "topic"), "unknown task error lists the known ones: %s", e.msg);
    rc = builtin_generate("topic", NULL, 1, 0, 10, 32, &d, &ls, &e);
    ok(rc == -1 && strstr(e.msg, "max_len"), "too small max_len: %s", e.msg);
    rc = builtin_generate("topic", NULL, 1, 0, 0, 64, &d, &ls, &e);
    ok(rc == -1, "size 0: %s", e.msg);
}

static int same_data(const Dataset *a, const Dataset *b)
{
    return a->n == b->n && a->max_len == b->max_len &&
           !memcmp(a->ids, b->ids, (size_t)a->n * (size_t)a->max_len * sizeof(int)) &&
           !memcmp(a->len, b->len, (size_t)a->n * sizeof(int)) &&
           !memcmp(a->label, b->label, (size_t)a->n * sizeof(int));
}

static void test_determinism(const char *name)
{
    Dataset a, b, c, s;
    LabelSet la, lb;
    MnError e;
    builtin_generate(name, NULL, 99, 0, 300, 64, &a, &la, &e);
    builtin_generate(name, NULL, 99, 0, 300, 64, &b, &lb, &e);
    ok(same_data(&a, &b) && !memcmp(&la, &lb, sizeof la),
       "%s: same seed and split give identical data", name);
    builtin_generate(name, NULL, 99, 1, 300, 64, &c, &lb, &e);
    ok(!same_data(&a, &c), "%s: eval split differs from train", name);
    builtin_generate(name, NULL, 100, 0, 300, 64, &s, &lb, &e);
    ok(!same_data(&a, &s), "%s: another seed gives other data", name);
    dataset_free(&b);
    builtin_generate(name, NULL, 99, 0, 300, 128, &b, &lb, &e);
    int same_text = 1;
    for (int i = 0; i < a.n; i++)
        same_text &= a.len[i] == b.len[i] && a.label[i] == b.label[i] &&
                     !memcmp(a.ids + i * 64, b.ids + i * 128, (size_t)a.len[i] * sizeof(int));
    ok(same_text, "%s: max_len changes padding only", name);
    dataset_free(&a);
    dataset_free(&b);
    dataset_free(&c);
    dataset_free(&s);
}

static int cmp_text(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_shape(const char *name, int n_labels, const char *const *names)
{
    enum { N = 4001 };
    Dataset d;
    LabelSet ls;
    MnError e;
    if (builtin_generate(name, NULL, 5, 0, N, 128, &d, &ls, &e) < 0) {
        ok(0, "%s: generate: %s", name, e.msg);
        return;
    }
    int names_ok = ls.n_labels == n_labels;
    for (int l = 0; names_ok && l < n_labels; l++)
        names_ok = strcmp(ls.names[l], names[l]) == 0;
    ok(names_ok, "%s: label names in fixed order", name);

    int count[MAX_LABELS] = { 0 }, lo = N, hi = 0, shortest = 999, longest = 0;
    int fits = 1;
    for (int i = 0; i < N; i++) {
        if (d.label[i] >= 0 && d.label[i] < n_labels)
            count[d.label[i]]++;
        int *row = d.ids + i * d.max_len;
        fits &= row[0] == TOK_CLS && row[d.len[i] - 1] == TOK_SEP;
        if (d.len[i] < shortest)
            shortest = d.len[i];
        if (d.len[i] > longest)
            longest = d.len[i];
    }
    for (int l = 0; l < n_labels; l++) {
        if (count[l] < lo)
            lo = count[l];
        if (count[l] > hi)
            hi = count[l];
    }
    ok(hi - lo <= 1 && lo > 0, "%s: labels balanced (%d..%d of %d)", name, lo, hi, N);
    ok(fits && longest <= 62, "%s: every sentence fits max_len 64 untruncated "
       "(longest %d tokens)", name, longest);
    ok(shortest < longest - 20, "%s: lengths vary (%d..%d tokens)", name,
       shortest, longest);

    /* Many distinct sentences: the model must learn words, not memorise. */
    char (*texts)[256] = malloc(N * sizeof *texts);
    int distinct = 0;
    for (int i = 0; i < N; i++)
        decode(&d, i, texts[i]);
    qsort(texts, N, sizeof *texts, cmp_text);
    for (int i = 0; i < N; i++)
        distinct += i == 0 || strcmp(texts[i], texts[i - 1]) != 0;
    ok(distinct > N * 3 / 4, "%s: %d of %d sentences distinct", name, distinct, N);
    free(texts);

    char text[256];
    for (int i = 0; i < 4; i++) {
        decode(&d, i, text);
        diag("%s [%s] %s", name, ls.names[d.label[i]], text);
    }
    dataset_free(&d);
}

/* Held-out sentences of `own` are labelled by the lexicon of `own`, and
 * carry exactly one label's cues for the lexicon of `other`. */
static void test_rule(const Task *own, const char *name, const Task *other,
                      const char *other_name)
{
    for (int l = 0; l < own->labels.n_labels; l++) {
        int n = cue_words(own->lex, l, own->labels.n_labels);
        ok(n >= 4, "%s: label %s has %d cue words", name,
           own->labels.names[l], n);
    }

    char text[256];
    int right = 0, other_single = 0, first_bad = -1;
    for (int i = 0; i < own->eval.n; i++) {
        decode(&own->eval, i, text);
        int got = rule(own->lex, own->labels.n_labels, text);
        right += got == own->eval.label[i];
        if (got != own->eval.label[i] && first_bad < 0)
            first_bad = i;
        other_single += rule(other->lex, other->labels.n_labels, text) >= 0;
    }
    ok(right == own->eval.n, "%s: the cue-word rule labels all %d held-out "
       "sentences (%d right)", name, own->eval.n, right);
    if (first_bad >= 0) {
        decode(&own->eval, first_bad, text);
        diag("first miss: [%s] %s", own->labels.names[own->eval.label[first_bad]],
             text);
    }
    ok(other_single == own->eval.n, "%s: every sentence also carries one %s "
       "cue (%d of %d)", name, other_name, other_single, own->eval.n);
}

/* A sentence is shouted when it holds capitals; the capitals spell the
 * sentiment words and nothing else. */
struct caps_ctx {
    const Lexicon *sent;
    int upper_words, upper_not_sentiment;
};

static int has_upper(const char *text)
{
    for (const char *p = text; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            return 1;
    return 0;
}

static void check_caps(const char *text, struct caps_ctx *c)
{
    char w[WORD_MAX];
    for (const char *p = text; *p;) {
        int k = 0, up = 0, low = 0;
        while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) {
            up |= *p >= 'A' && *p <= 'Z';
            low |= *p >= 'a' && *p <= 'z';
            if (k < WORD_MAX - 1)
                w[k++] = (char)(*p | 0x20);
            p++;
        }
        w[k] = '\0';
        if (up) {
            c->upper_words++;
            c->upper_not_sentiment += low || cue_label(c->sent, w, 2) < 0;
        }
        if (!k)
            p++;
    }
}

static void test_shouting(const Task *sent, const Task *topic)
{
    Task c;
    if (task_load(&c, "shouting", 3000, 1000) < 0) {
        ok(0, "generate shouting");
        return;
    }
    char text[256];
    int right = 0, sent_one = 0, topic_one = 0;
    int both[2][2] = { { 0 } };  /* [shouted][positive] */
    struct caps_ctx cc = { sent->lex, 0, 0 };
    for (int i = 0; i < c.eval.n; i++) {
        decode(&c.eval, i, text);
        right += has_upper(text) == c.eval.label[i];
        check_caps(text, &cc);
        int s = rule(sent->lex, sent->labels.n_labels, text);
        sent_one += s >= 0;
        topic_one += rule(topic->lex, topic->labels.n_labels, text) >= 0;
        if (s >= 0)
            both[c.eval.label[i]][s]++;
    }
    ok(right == c.eval.n, "shouting: capitals decide the label of all %d "
       "held-out sentences (%d right)", c.eval.n, right);
    ok(cc.upper_words > 0 && cc.upper_not_sentiment == 0,
       "shouting: only sentiment words are in capitals (%d of %d words not)",
       cc.upper_not_sentiment, cc.upper_words);
    ok(sent_one == c.eval.n && topic_one == c.eval.n, "shouting: every "
       "sentence carries one sentiment and one topic (%d, %d of %d)",
       sent_one, topic_one, c.eval.n);
    int lo = c.eval.n, hi = 0;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            lo = both[a][b] < lo ? both[a][b] : lo;
            hi = both[a][b] > hi ? both[a][b] : hi;
        }
    ok(lo > c.eval.n / 5, "shouting: sentiment is independent of the label "
       "(cells %d..%d)", lo, hi);

    /* And the original task sees both forms of its words. */
    int shouted = 0;
    for (int i = 0; i < sent->eval.n; i++) {
        decode(&sent->eval, i, text);
        shouted += has_upper(text);
    }
    ok(shouted > sent->eval.n / 3 && shouted < sent->eval.n * 2 / 3,
       "sentiment: %d of %d sentences shout their sentiment word", shouted,
       sent->eval.n);
    task_free(&c);
}

static void test_rules(void)
{
    Task s, t;
    if (task_load(&s, "sentiment", 3000, 1000) < 0 ||
        task_load(&t, "topic", 3000, 1000) < 0) {
        ok(0, "generate the tasks");
        return;
    }
    test_rule(&s, "sentiment", &t, "topic");
    test_rule(&t, "topic", &s, "sentiment");
    test_shouting(&s, &t);

    int overlap = 0;
    for (int i = 0; i < s.lex->n; i++)
        overlap += cue_label(s.lex, s.lex->word[i], s.labels.n_labels) >= 0 &&
                   cue_label(t.lex, s.lex->word[i], t.labels.n_labels) >= 0;
    ok(overlap == 0, "no word is a cue for both tasks (%d)", overlap);
    task_free(&s);
    task_free(&t);
}

int main(void)
{
    static const char *const pol[] = { "negative", "positive" };
    static const char *const top[] = { "sports", "food", "tech", "travel" };
    static const char *const cas[] = { "calm", "shouted" };
    test_table();
    test_determinism("sentiment");
    test_determinism("topic");
    test_determinism("shouting");
    test_shape("sentiment", 2, pol);
    test_shape("topic", 4, top);
    test_shape("shouting", 2, cas);
    test_rules();
    return tap_done();
}
