/* Built-in tasks: synthetic tasks over one kind of sentence.
 *
 * Every generated sentence is a short review that carries a sentiment cue
 * (an adjective of one polarity, written in lower case or in CAPITALS), a
 * topic cue (one or two nouns of one topic) and neutral filler, in one of
 * several word orders. `sentiment` (the original task) reads the polarity;
 * `shouting` (the new task of the shipped experiments) reads whether the
 * sentiment word is in capitals, a cue inside the very word the original
 * task reads, so it is learned in a few dozen steps without moving the
 * encoder far; `topic` reads the nouns (a cue the sentiment encoder does not
 * look at, much slower to learn). Same inputs, different labels, which is
 * what makes fine-tuning on one able to erase the other.
 *
 * The tables below are the knobs: word lists, templates, fillers. They are
 * meant to be tuned; keep every word in exactly one list so that a label is
 * always decided by whole words, or for shouting by the case of the
 * sentiment word (tests/test_tasks.c checks this from the
 * generated data alone, so edits here need no edits there). */
#include "tasks.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- word lists ---- */

typedef struct {
    const char *const *words;
    int n;
} WordList;

#define WORDS(a) { a, (int)(sizeof a / sizeof a[0]) }

/* A label and the words that signal it. */
typedef struct {
    const char *label;
    WordList cue;
} Cue;

/* No negations ("not", "never") anywhere: a single polarity word must decide
 * the label on its own. */
static const char *const negative_words[] = {
    "awful", "terrible", "boring", "poor",
};
static const char *const positive_words[] = {
    "great", "lovely", "superb", "pleasant",
};

static const char *const sports_nouns[] = {
    "match", "team", "coach", "stadium", "goal", "league", "referee",
    "player", "race", "tournament",
};
static const char *const food_nouns[] = {
    "pasta", "soup", "dessert", "bread", "pizza", "salad", "cheese",
    "curry", "noodles", "steak",
};
static const char *const tech_nouns[] = {
    "laptop", "phone", "software", "battery", "keyboard", "screen", "app",
    "charger", "router", "camera",
};
static const char *const travel_nouns[] = {
    "hotel", "flight", "beach", "airport", "cruise", "museum", "ferry",
    "luggage", "resort", "passport",
};

/* Label order is the LabelSet order, fixed for checkpoints' heads. */
static const Cue polarities[] = {
    { "negative", WORDS(negative_words) },
    { "positive", WORDS(positive_words) },
};
static const Cue topics[] = {
    { "sports", WORDS(sports_nouns) },
    { "food", WORDS(food_nouns) },
    { "tech", WORDS(tech_nouns) },
    { "travel", WORDS(travel_nouns) },
};

/* How the sentiment word is written: as is, or in capitals ("the soup was
 * GREAT"). The letters differ, the word does not: a model that reads the
 * sentiment word sees both forms. No word list: the label is the case. */
static const Cue cases[] = {
    { "calm", { NULL, 0 } },
    { "shouted", { NULL, 0 } },
};

#define N_POLARITIES ((int)(sizeof polarities / sizeof polarities[0]))
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))
#define N_TOPICS ((int)(sizeof topics / sizeof topics[0]))

/* Neutral words: they vary length and position without hinting at either
 * label, so the cues must be found, not counted from a fixed offset. */
static const char *const fillers[] = {
    "honestly", "overall", "today", "again", "so far", "i think",
    "this time", "last week", "to be fair", "as usual", "in the end",
};
static const WordList filler_list = WORDS(fillers);

static const char *const endings[] = { "", "", ".", "!" };
static const WordList ending_list = WORDS(endings);

/* {s} a sentiment word, {n} a topic noun, {f} a filler. Several {s} or {n}
 * in one template draw from the same polarity or topic. Sentiment comes
 * before and after the noun, early and late, so no position is a shortcut. */
static const char *const templates[] = {
    "the {n} was {s}",
    "{s} {n}, {f}",
    "{f} the {n} felt {s}",
    "i thought the {n} was {s} {f}",
    "{s} {n} and {s} {n}",
    "the {n} and the {n} were {s}",
    "{f}, the {s} {n}",
    "my {n} was {s} {f}",
    "the {n} here is {s}",
    "{f} {s}, the {n}",
    "our {n} was {f} {s}",
    "the {s} {n} {f}",
    "{n}: {s}",
};
static const WordList template_list = WORDS(templates);

/* Sentences stay within this so that a model with max_len 64 sees every
 * byte plus [CLS] and [SEP]; longer draws are redrawn. */
#define SENTENCE_MAX_BYTES 60
#define SENTENCE_TRIES 64

/* ---- sentence writing ---- */

typedef struct {
    char buf[256];
    size_t n;
    int overflow;
} Text;

static void text_put(Text *t, const char *s, size_t k)
{
    if (t->overflow || t->n + k >= sizeof t->buf) {
        t->overflow = 1;
        return;
    }
    memcpy(t->buf + t->n, s, k);
    t->n += k;
    t->buf[t->n] = '\0';
}

static const char *pick(Rng *r, const WordList *w)
{
    return w->words[rng_below(r, (uint32_t)w->n)];
}

/* What a sentence says along each axis; a task's label is one of them and
 * the others are drawn uniformly, so they carry no information about the
 * label but are always present for the other tasks to read. */
enum { AXIS_POLARITY, AXIS_TOPIC, AXIS_CASE, N_AXES };

static const int axis_size[N_AXES] = { N_POLARITIES, N_TOPICS, N_CASES };

static void write_review(Rng *r, const int *v, Text *t)
{
    const char *p = pick(r, &template_list);
    while (*p) {
        const WordList *slot = NULL;
        if (p[0] == '{' && p[1] && p[2] == '}') {
            switch (p[1]) {
            case 's': slot = &polarities[v[AXIS_POLARITY]].cue; break;
            case 'n': slot = &topics[v[AXIS_TOPIC]].cue; break;
            case 'f': slot = &filler_list; break;
            default: break;
            }
        }
        if (slot) {
            const char *w = pick(r, slot);
            size_t at = t->n;
            text_put(t, w, strlen(w));
            if (p[1] == 's' && v[AXIS_CASE] && !t->overflow)
                for (size_t i = at; i < t->n; i++)
                    t->buf[i] = (char)toupper((unsigned char)t->buf[i]);
            p += 3;
        } else {
            text_put(t, p++, 1);
        }
    }
    const char *end = pick(r, &ending_list);
    text_put(t, end, strlen(end));
}

static void generate(Rng *r, int axis, int label, Text *t)
{
    int v[N_AXES];
    for (int a = 0; a < N_AXES; a++)
        v[a] = a == axis ? label : (int)rng_below(r, (uint32_t)axis_size[a]);
    write_review(r, v, t);
}

/* ---- the table of built-ins: one row per task ---- */

typedef struct {
    const char *name;
    const Cue *labels;
    int n_labels;
    int axis;
} Builtin;

/* ROW(name, summary, label cues, generator). Expanded twice below so that
 * the public list of infos and the private table cannot drift apart. */
#define BUILTIN_ROWS(ROW)                                                    \
    ROW("sentiment",                                                         \
        "short reviews labelled negative/positive by their sentiment word "  \
        "(the original task)",                                               \
        polarities, AXIS_POLARITY)                                           \
    ROW("topic",                                                             \
        "the same kind of reviews labelled sports/food/tech/travel by their " \
        "nouns (the new task)",                                              \
        topics, AXIS_TOPIC)                                                  \
    ROW("shouting",                                                          \
        "the same kind of reviews labelled calm/shouted by whether the "     \
        "sentiment word is in capitals (a new task)",                        \
        cases, AXIS_CASE)

#define INFO_ROW(name, summary, cues, axis) { name, summary },
#define TASK_ROW(name, summary, cues, axis)                                  \
    { name, cues, (int)(sizeof cues / sizeof cues[0]), axis },

static const BuiltinInfo builtin_infos[] = { BUILTIN_ROWS(INFO_ROW) { NULL, NULL } };
static const Builtin builtins[] = { BUILTIN_ROWS(TASK_ROW) };

#define N_BUILTINS ((int)(sizeof builtins / sizeof builtins[0]))

const BuiltinInfo *builtin_tasks(void)
{
    return builtin_infos;
}

static const Builtin *builtin_find(const char *name)
{
    for (int i = 0; i < N_BUILTINS; i++)
        if (strcmp(builtins[i].name, name) == 0)
            return &builtins[i];
    return NULL;
}

int builtin_exists(const char *name)
{
    return name && builtin_find(name) != NULL;
}

/* A stream per task name, so tasks drawn from one seed are independent and
 * adding a row never changes the data of another. FNV-1a. */
static uint64_t name_stream(const char *name)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    return h;
}

static int unknown_task(const char *name, MnError *e)
{
    char known[256] = "";
    size_t n = 0;
    for (int i = 0; i < N_BUILTINS && n < sizeof known; i++)
        n += (size_t)snprintf(known + n, sizeof known - n, "%s%s",
                              i ? ", " : "", builtins[i].name);
    return mn_fail(e, "unknown built-in task '%s' (known: %s)", name, known);
}

/* Draws until a sentence fits, so a long word added to a table costs a few
 * redraws instead of truncated (and possibly unlabelled) examples. */
static int draw_sentence(const Builtin *b, Rng *r, int label, Text *t,
                         MnError *e)
{
    for (int k = 0; k < SENTENCE_TRIES; k++) {
        memset(t, 0, sizeof *t);
        generate(r, b->axis, label, t);
        if (!t->overflow && t->n <= SENTENCE_MAX_BYTES)
            return 0;
    }
    return mn_fail(e, "built-in task '%s' cannot make sentences of at most "
                   "%d bytes; shorten its templates or words",
                   b->name, SENTENCE_MAX_BYTES);
}

static void set_labels(const Builtin *b, LabelSet *labels)
{
    memset(labels, 0, sizeof *labels);
    labels->n_labels = b->n_labels;
    for (int i = 0; i < b->n_labels; i++)
        snprintf(labels->names[i], LABEL_NAME_MAX, "%s", b->labels[i].label);
}

int builtin_generate(const char *name, const Tokenizer *tok, unsigned long long seed,
                     int split, int n, int max_len, Dataset *d, LabelSet *labels,
                     MnError *e)
{
    memset(d, 0, sizeof *d);
    const Builtin *b = name ? builtin_find(name) : NULL;
    if (!b)
        return unknown_task(name ? name : "(null)", e);
    if (n < 1)
        return mn_fail(e, "built-in task '%s': size %d must be at least 1",
                       name, n);
    if (max_len < SENTENCE_MAX_BYTES + 2)
        return mn_fail(e, "built-in task '%s' needs max_len >= %d (got %d)",
                       name, SENTENCE_MAX_BYTES + 2, max_len);

    int *order = malloc((size_t)n * sizeof *order);
    if (!order)
        return mn_fail(e, "out of memory for %d examples", n);
    if (dataset_alloc(d, n, max_len, e) < 0) {
        free(order);
        return -1;
    }

    Rng r;
    rng_seed_stream(&r, seed, name_stream(b->name) + (uint64_t)split);
    /* Equal counts per label (off by one at most), in shuffled order. */
    for (int i = 0; i < n; i++)
        order[i] = i % b->n_labels;
    rng_shuffle(&r, order, n);

    Tokenizer bytes;
    tokenizer_bytes(&bytes);
    if (!tok)
        tok = &bytes;
    for (int i = 0; i < n; i++) {
        Text t;
        if (draw_sentence(b, &r, order[i], &t, e) < 0 ||
            dataset_set(d, tok, i, t.buf, NULL, order[i], e) < 0) {
            free(order);
            dataset_free(d);
            return -1;
        }
    }
    free(order);
    set_labels(b, labels);
    return 0;
}
