#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libconfig.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf.h"
#include "model.h"
#include "lora.h"
#include "paths.h"
#include "strategy.h"
#include "tasks.h"
#include "utf8.h"

/* ---- the table of keys ------------------------------------------------ */

typedef enum { K_INT, K_INT64, K_FLOAT, K_STRING, K_PATH, K_BOOL } KeyType;

/* Extra rule for a string value; fills why and returns -1 when refused. */
typedef int (*StringCheck)(const char *v, char *why, size_t n);

typedef struct {
    const char *key;
    KeyType type;
    size_t off, size;
    long long ilo, ihi, idef;   /* K_INT, K_INT64; K_BOOL: idef */
    double flo, fhi, fdef;      /* K_FLOAT */
    const char *sdef;           /* K_STRING, K_PATH */
    const char *choices;        /* "a|b|c": the only accepted strings */
    StringCheck check;
} Key;

static int check_name(const char *v, char *why, size_t n);
static int check_builtin(const char *v, char *why, size_t n);
static int check_field(const char *v, char *why, size_t n);
static int check_field_or_none(const char *v, char *why, size_t n);
static int check_parts(const char *v, char *why, size_t n);
static int check_lora_targets(const char *v, char *why, size_t n);
static int check_theme(const char *v, char *why, size_t n);

#define SCHEDULES "constant|linear|cosine|slanted_triangular"

/* Every experiment key, one line each, in the order experiment_write
 * prints them (a group's keys must stay together). Expanded twice: into
 * the validation table and into the documentation table, so that the two
 * cannot disagree. */
#define EXPERIMENT_KEYS(INT, I64, FLT, STR, ENUM, PATH, BOOL)                                                   \
    STR("name", name, "", check_name, "run name; default: the file name without .cfg")                    \
    I64("seed", seed, 0, INT64_MAX, 42, "seeds initialisation, shuffling and the built-in tasks")         \
    INT("threads", threads, 0, 256, 0, "N >= 2 splits each batch over N workers; 0 = OpenBLAS default")   \
    INT("model.hidden", model.hidden, 1, 4096, 64, "hidden size; a multiple of model.heads")              \
    INT("model.layers", model.layers, 1, 48, 2, "encoder blocks")                                         \
    INT("model.heads", model.heads, 1, 64, 2, "attention heads per block")                                \
    INT("model.intermediate", model.intermediate, 1, 16384, 256, "feed-forward width")                    \
    INT("model.max_len", model.max_len, 2, 512, 64, "longest input in tokens, [CLS] and [SEP] included")  \
    ENUM("model.tokenizer", model.tokenizer, "bytes", "bytes|wordpiece",                                   \
         "bytes = one token per byte; wordpiece = base.from's vocab.txt (set by base.from)")              \
    FLT("model.init_std", model.init_std, 0, 1, 0.02, "standard deviation of the initial weights")        \
    ENUM("model.precision", model.precision, "fp32", "fp32|bf16",                                         \
         "inputs of the matrix products: bf16 = bfloat16 through oneDNN, accumulated in fp32 "             \
         "(weights, gradients and optimizer stay fp32)")                                                  \
    STR("original.builtin", original.builtin, "", check_builtin, "built-in original task")                \
    PATH("original.mlm", original.mlm, "plain text, one example a line: the original task is "            \
         "masked-language modelling with base.from's MLM head (every fifth line held out)")               \
    PATH("original.train", original.train, "original task training file (TSV or JSONL)")                  \
    PATH("original.eval", original.eval, "original task held-out file (TSV or JSONL)")                    \
    INT("original.train_size", original.train_size, 1, 1000000, 2000, "built-in: training examples")      \
    INT("original.eval_size", original.eval_size, 1, 1000000, 500, "built-in: held-out examples")         \
    INT("original.columns", original.columns, 2, 3, 2,                                                    \
        "TSV: 2 = text<TAB>label, 3 = text_a<TAB>text_b<TAB>label (a sentence pair)")                     \
    ENUM("original.format", original.format, "auto", "auto|tsv|jsonl",                                    \
         "file format; auto = jsonl for *.jsonl and *.json files, else tsv")                              \
    ENUM("original.header", original.header, "auto", "auto|yes|no",                                         \
         "TSV: yes = line 1 is a header, skipped; auto = refuse a line 1 whose label no other line has")  \
    STR("original.text_field", original.text_field, "text", check_field, "JSONL: the field holding the text") \
    STR("original.text_b_field", original.text_b_field, "", check_field_or_none,                          \
        "JSONL: the field holding a pair's second text; empty = single texts")                            \
    STR("original.label_field", original.label_field, "label", check_field,                               \
        "JSONL: the field holding the label, a string or an integer")                                     \
    STR("new.builtin", new_task.builtin, "", check_builtin, "built-in new task")                          \
    PATH("new.train", new_task.train, "new task training file (TSV or JSONL)")                            \
    PATH("new.eval", new_task.eval, "new task held-out file (TSV or JSONL)")                              \
    INT("new.train_size", new_task.train_size, 1, 1000000, 2000, "built-in: training examples")           \
    INT("new.eval_size", new_task.eval_size, 1, 1000000, 500, "built-in: held-out examples")              \
    INT("new.columns", new_task.columns, 2, 3, 2,                                                         \
        "TSV: 2 = text<TAB>label, 3 = text_a<TAB>text_b<TAB>label (a sentence pair)")                     \
    ENUM("new.format", new_task.format, "auto", "auto|tsv|jsonl",                                         \
         "file format; auto = jsonl for *.jsonl and *.json files, else tsv")                              \
    ENUM("new.header", new_task.header, "auto", "auto|yes|no",                                         \
         "TSV: yes = line 1 is a header, skipped; auto = refuse a line 1 whose label no other line has")  \
    STR("new.text_field", new_task.text_field, "text", check_field, "JSONL: the field holding the text")  \
    STR("new.text_b_field", new_task.text_b_field, "", check_field_or_none,                               \
        "JSONL: the field holding a pair's second text; empty = single texts")                            \
    STR("new.label_field", new_task.label_field, "label", check_field,                                    \
        "JSONL: the field holding the label, a string or an integer")                                     \
    PATH("base.from", base.from, "a Hugging Face BERT or DistilBERT folder (config.json, "                \
         "model.safetensors, vocab.txt) to start from; its shape replaces model.*")                        \
    PATH("base.checkpoint", base.checkpoint, "base model checkpoint; empty = pretrain one")               \
    INT("base.pretrain.epochs", base.pretrain.epochs, 1, 100000, 3, "passes over the original task")      \
    FLT("base.pretrain.lr", base.pretrain.lr, 0, 10, 1e-3, "peak learning rate")                          \
    INT("base.pretrain.batch", base.pretrain.batch, 1, 65536, 32, "examples per step")                    \
    INT("base.pretrain.warmup_steps", base.pretrain.warmup_steps, 0, INT_MAX, 0, "linear warmup steps")   \
    ENUM("base.pretrain.schedule", base.pretrain.schedule, "linear", SCHEDULES,                             \
         "learning-rate decay after warmup")                                                              \
    FLT("base.pretrain.cut_frac", base.pretrain.cut_frac, 0.01, 0.99, 0.1,                                 \
        "slanted triangular: share of steps spent rising")                                                \
    FLT("base.pretrain.stlr_ratio", base.pretrain.stlr_ratio, 1, 1e6, 32,                                   \
        "slanted triangular: peak rate / lowest rate")                                                    \
    FLT("base.pretrain.weight_decay", base.pretrain.weight_decay, 0, 1, 0.01, "AdamW weight decay")       \
    FLT("base.pretrain.clip_norm", base.pretrain.clip_norm, 0, INFINITY, 1.0, "gradient norm clip; 0 = none") \
    INT("finetune.epochs", finetune.recipe.epochs, 1, 100000, 3, "passes over the new task")              \
    FLT("finetune.lr", finetune.recipe.lr, 0, 10, 1e-4, "peak learning rate")                             \
    INT("finetune.batch", finetune.recipe.batch, 1, 65536, 32, "examples per step")                       \
    INT("finetune.warmup_steps", finetune.recipe.warmup_steps, 0, INT_MAX, 0, "linear warmup steps")      \
    ENUM("finetune.schedule", finetune.recipe.schedule, "linear", SCHEDULES,                                \
         "learning-rate decay after warmup")                                                              \
    FLT("finetune.cut_frac", finetune.recipe.cut_frac, 0.01, 0.99, 0.1,                                    \
        "slanted triangular: share of steps spent rising")                                                \
    FLT("finetune.stlr_ratio", finetune.recipe.stlr_ratio, 1, 1e6, 32,                                      \
        "slanted triangular: peak rate / lowest rate")                                                    \
    FLT("finetune.weight_decay", finetune.recipe.weight_decay, 0, 1, 0.01, "AdamW weight decay")          \
    FLT("finetune.clip_norm", finetune.recipe.clip_norm, 0, INFINITY, 1.0, "gradient norm clip; 0 = none") \
    ENUM("finetune.method", finetune.method, "full", "full|lora|prompt|prefix",                             \
         "what is trained: full = every weight; lora = adapters, prompt = soft tokens, prefix = "         \
         "attention key/value prefixes, each with the new head and the base frozen")                      \
    INT("finetune.virtual_tokens", finetune.virtual_tokens, 1, 64, 8,                                       \
        "prompt: soft tokens after [CLS]; prefix: key/value vectors per block")                           \
    INT("finetune.lora.r", finetune.lora.r, 1, 4096, 8, "LoRA rank")                                     \
    FLT("finetune.lora.alpha", finetune.lora.alpha, 1e-6, 1e6, 16, "LoRA alpha; the scaling is alpha / r") \
    STR("finetune.lora.targets", finetune.lora.targets, "query value", check_lora_targets,                  \
        "modules given adapters, matched as PEFT does: query key value attention.output.dense "          \
        "intermediate.dense output.dense")                                                                \
    FLT("finetune.lora.dropout", finetune.lora.dropout, 0, 0.9, 0,                                         \
        "dropout on the adapters' input while training")                                                  \
    BOOL("finetune.lora.merge", finetune.lora.merge, 0,                                                    \
         "at the end, also write checkpoints/merged.safetensors: adapters folded in")                     \
    INT("finetune.freeze.keep_last", finetune.freeze.keep_last, -1, 48, -1,                                 \
        "train only the last k blocks, the pooler and the new head; -1 = off")                            \
    STR("finetune.freeze.parts", finetune.freeze.parts, "", check_parts,                                    \
        "parts kept frozen: embeddings, layer.N, layer.N-M, pooler")                                      \
    FLT("finetune.layer_decay", finetune.layer_decay, 0.01, 1, 1,                                           \
        "discriminative rates: block i at lr * d^(L-i), embeddings at lr * d^(L+1)")                      \
    FLT("finetune.ewc.lambda", finetune.ewc.lambda, 0, 1e12, 0, "EWC penalty strength; 0 = off")          \
    INT("finetune.ewc.fisher_samples", finetune.ewc.fisher_samples, 1, 1000000, 512,                        \
        "original-task examples for the Fisher")                                                          \
    ENUM("finetune.ewc.fisher", finetune.ewc.fisher, "empirical", "empirical|batch",                        \
         "Fisher estimate: per-example squared gradients, or per batch (cheaper)")                        \
    FLT("finetune.l2sp.alpha", finetune.l2sp.alpha, 0, 1e12, 0, "L2-SP pull toward the base; 0 = off")    \
    FLT("finetune.replay.ratio", finetune.replay.ratio, 0, 0.9, 0,                                          \
        "share of each fine-tuning batch drawn from the original task")                                   \
    PATH("finetune.policy", finetune.policy, "Lua policy file; empty = none")                             \
    INT("eval.every", eval.every, 1, INT_MAX, 50, "evaluate both tasks every N steps")                    \
    INT("eval.original_samples", eval.original_samples, 0, INT_MAX, 0, "original examples; 0 = all")      \
    INT("eval.new_samples", eval.new_samples, 0, INT_MAX, 0, "new-task examples; 0 = all")                \
    INT("eval.batch", eval.batch, 1, 65536, 64, "examples per evaluation batch")                          \
    INT("checkpoint.every", checkpoint.every, 0, INT_MAX, 0, "save every N steps; 0 = at phase ends")     \
    INT("checkpoint.keep", checkpoint.keep, 1, INT_MAX, 3, "step checkpoints kept, oldest removed first") \
    ENUM("stop.metric", stop.metric, "none", "none|combined",                                               \
         "early stopping: none, or on new loss + original_weight * original loss")                        \
    FLT("stop.original_weight", stop.original_weight, 0, 1e6, 1, "weight of the original loss")           \
    FLT("stop.max_original_drop", stop.max_original_drop, 0, 1, 0,                                          \
        "stop when original accuracy falls this far below baseline; 0 = off")                             \
    INT("stop.patience", stop.patience, 0, INT_MAX, 0, "evaluations without improvement; 0 = off")     \
    FLT("stop.diverge", stop.diverge, 0, 1e12, 10,                                                          \
        "diverged: loss not finite, or its mean over 5 steps this many times the window's median; 0 = non-finite only") \
    INT("stop.diverge_window", stop.diverge_window, 10, 1000, 50, "steps whose median loss divergence is measured against") \
    BOOL("policy.watch", policy.watch, 0, "reload the policy when its file changes")                      \
    PATH("policy.path", policy.path, "a folder of your own Lua modules for require")                     \
    STR("ui.theme", ui.theme, "default", check_theme,                                                      \
        "workbench colours: a name (themes/NAME.theme) or a path containing '/'; --theme wins")

#define FIELD(f) .off = offsetof(Experiment, f), .size = sizeof(((Experiment *)0)->f)
#define SPEC_INT(k, f, lo, hi, d, h) { .key = k, .type = K_INT, FIELD(f), .ilo = lo, .ihi = hi, .idef = d },
#define SPEC_I64(k, f, lo, hi, d, h) { .key = k, .type = K_INT64, FIELD(f), .ilo = lo, .ihi = hi, .idef = d },
#define SPEC_FLT(k, f, lo, hi, d, h) { .key = k, .type = K_FLOAT, FIELD(f), .flo = lo, .fhi = hi, .fdef = d },
#define SPEC_STR(k, f, d, chk, h) { .key = k, .type = K_STRING, FIELD(f), .sdef = d, .check = chk },
#define SPEC_ENUM(k, f, d, c, h) { .key = k, .type = K_STRING, FIELD(f), .sdef = d, .choices = c },
#define SPEC_PATH(k, f, h) { .key = k, .type = K_PATH, FIELD(f), .sdef = "" },
#define SPEC_BOOL(k, f, d, h) { .key = k, .type = K_BOOL, FIELD(f), .idef = d },

static const Key keys[] = {
    EXPERIMENT_KEYS(SPEC_INT, SPEC_I64, SPEC_FLT, SPEC_STR, SPEC_ENUM, SPEC_PATH, SPEC_BOOL)
};

#define INFO_INT(k, f, lo, hi, d, h) { k, "int", #d, h },
#define INFO_I64(k, f, lo, hi, d, h) { k, "int64", #d, h },
#define INFO_FLT(k, f, lo, hi, d, h) { k, "float", #d, h },
#define INFO_STR(k, f, d, chk, h) { k, "string", d, h },
#define INFO_ENUM(k, f, d, c, h) { k, c, d, h },
#define INFO_PATH(k, f, h) { k, "path", "", h },
#define INFO_BOOL(k, f, d, h) { k, "boolean", d ? "true" : "false", h },

static const ExperimentKeyInfo key_info[] = {
    EXPERIMENT_KEYS(INFO_INT, INFO_I64, INFO_FLT, INFO_STR, INFO_ENUM, INFO_PATH, INFO_BOOL)
    { NULL, NULL, NULL, NULL }
};

#define N_KEYS (sizeof keys / sizeof keys[0])
#define MAX_GROUPS 32
#define KEY_MAX 256

const ExperimentKeyInfo *experiment_keys(void)
{
    return key_info;
}

int experiment_key_is_path(const char *key)
{
    for (const ExperimentKeyInfo *k = key_info; k->key; k++)
        if (strcmp(k->key, key) == 0)
            return strcmp(k->type, "path") == 0;
    return 0;
}

static long key_index(const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].key, name) == 0)
            return (long)i;
    return -1;
}

/* A group is known when some key lives under it. */
static int is_group(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < N_KEYS; i++)
        if (strncmp(keys[i].key, name, n) == 0 && keys[i].key[n] == '.')
            return 1;
    return 0;
}

static const char *type_word(KeyType t)
{
    switch (t) {
    case K_INT:
    case K_INT64: return "an integer";
    case K_FLOAT: return "a number";
    case K_BOOL: return "true or false";
    default: return "a string";
    }
}

/* ---- where a value came from, for messages ----------------------------- */

typedef struct {
    int seen;           /* given in the file or by --set (not a default) */
    int set;            /* given by --set */
    const char *file;   /* as libconfig names it; NULL: the main file */
    int line;           /* 0: no line */
} Origin;

typedef struct {
    const char *path;   /* the main file as the caller named it; NULL: none */
    const char *dir;    /* its folder, absolute */
    Origin key_at[N_KEYS];
    struct {
        char name[KEY_MAX];
        Origin at;
    } group[MAX_GROUPS];
    int n_groups;
    char *text;         /* source text cached for literal_int */
    char text_file[EXP_PATH];
} Ctx;

/* libconfig names an included file as written, relative to the include
 * dir; a message must give a path that opens from anywhere. */
static void shown_file(const Ctx *c, const char *file, char *buf, size_t n)
{
    if (!file || (c->path && strcmp(file, c->path) == 0))
        snprintf(buf, n, "%s", c->path ? c->path : "");
    else if (file[0] != '/' && c->dir && c->dir[0])
        snprintf(buf, n, "%s/%s", c->dir, file);
    else
        snprintf(buf, n, "%s", file);
}

static int fail_at(MnError *e, const Ctx *c, const Origin *o, const char *key,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int fail_at(MnError *e, const Ctx *c, const Origin *o, const char *key,
                   const char *fmt, ...)
{
    char msg[768], file[EXP_PATH];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (o && o->set)
        return mn_fail(e, "--set %s: %s", key, msg);
    shown_file(c, o ? o->file : NULL, file, sizeof file);
    if (!file[0])
        return mn_fail(e, "%s: %s", key, msg);
    if (o && o->line > 0)
        return mn_fail(e, "%s:%d: %s: %s", file, o->line, key, msg);
    return mn_fail(e, "%s: %s: %s", file, key, msg);
}

static void note_group(Ctx *c, const char *name, const Origin *o)
{
    for (int i = 0; i < c->n_groups; i++)
        if (strcmp(c->group[i].name, name) == 0) {
            c->group[i].at = *o;
            return;
        }
    if (c->n_groups < MAX_GROUPS) {
        snprintf(c->group[c->n_groups].name, KEY_MAX, "%s", name);
        c->group[c->n_groups++].at = *o;
    }
}

/* An override creates the groups above its key, as if written in the file. */
static void note_groups_above(Ctx *c, const char *key, const Origin *o)
{
    char g[KEY_MAX];
    snprintf(g, sizeof g, "%s", key);
    for (char *dot = strrchr(g, '.'); dot; dot = strrchr(g, '.')) {
        *dot = '\0';
        note_group(c, g, o);
    }
}

static const Origin *group_origin(const Ctx *c, const char *name)
{
    for (int i = 0; i < c->n_groups; i++)
        if (strcmp(c->group[i].name, name) == 0)
            return &c->group[i].at;
    return NULL;
}

/* Where a key's value came from; a default belongs to the file as a whole. */
static Origin key_origin(const Ctx *c, const char *key)
{
    long i = key_index(key);
    if (i >= 0 && c->key_at[i].seen)
        return c->key_at[i];
    return (Origin){ 0, 0, NULL, 0 };
}

/* ---- suggestions ------------------------------------------------------- */

int edit_distance(const char *a, const char *b)
{
    enum { M = 64 };
    int d[M][M];
    int n = (int)strlen(a), m = (int)strlen(b);
    if (n >= M || m >= M)
        return INT_MAX;
    for (int i = 0; i <= n; i++)
        d[i][0] = i;
    for (int j = 0; j <= m; j++)
        d[0][j] = j;
    for (int i = 1; i <= n; i++)
        for (int j = 1; j <= m; j++) {
            int cost = a[i - 1] != b[j - 1];
            int v = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < v)
                v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[n][m];
}

static const char *leaf_of(const char *key)
{
    const char *dot = strrchr(key, '.');
    return dot ? dot + 1 : key;
}

static void consider(const char *word, const char *cand, int *best, char *out, size_t n)
{
    int d = edit_distance(word, cand);
    if (d < *best) {
        *best = d;
        snprintf(out, n, "%s", cand);
    }
}

/* The nearest known key (or group) to word, or "" when none is close:
 * a small edit, or the same last name in another group (`lr` at the top
 * level means finetune.lr or base.pretrain.lr). */
static void nearest(const char *word, int want_group, char *out, size_t n)
{
    int best = INT_MAX, best_leaf = INT_MAX;
    char leaf_hit[KEY_MAX] = "";
    out[0] = '\0';
    for (size_t i = 0; i < N_KEYS; i++) {
        if (!want_group) {
            consider(word, keys[i].key, &best, out, n);
            if (strcmp(leaf_of(word), leaf_of(keys[i].key)) == 0)
                consider(word, keys[i].key, &best_leaf, leaf_hit, sizeof leaf_hit);
            continue;
        }
        char g[KEY_MAX];
        snprintf(g, sizeof g, "%s", keys[i].key);
        for (char *dot = strrchr(g, '.'); dot; dot = strrchr(g, '.')) {
            *dot = '\0';
            consider(word, g, &best, out, n);
        }
    }
    int len = (int)strlen(word);
    if (best <= (len <= 3 ? 1 : len < 10 ? 2 : 3))
        return;
    snprintf(out, n, "%s", leaf_hit);
}

static int fail_unknown(MnError *e, const Ctx *c, const Origin *o, const char *key, int group)
{
    char near[KEY_MAX];
    nearest(key, group, near, sizeof near);
    const char *what = group ? "unknown group" : "unknown key";
    if (near[0])
        return fail_at(e, c, o, key, "%s; did you mean %s?", what, near);
    return fail_at(e, c, o, key, "%s (see mneme.cfg(5) for the keys)", what);
}

/* ---- values ------------------------------------------------------------ */

typedef enum { V_INT, V_FLOAT, V_STRING, V_BOOL, V_GROUP, V_ARRAY, V_LIST } ValueKind;

typedef struct {
    ValueKind kind;
    long long i;
    int overflow;       /* the literal does not fit in 64 bits */
    double f;
    const char *s;
} Value;

static int is_ident(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '*';
}

/* libconfig 1.5 reads a decimal integer with atoi, so `3000000000` quietly
 * becomes -1294967296; only the source text still says what was meant.
 * Finds `name = <int>` on the setting's line whose wrapped value is the one
 * libconfig kept, and returns the literal's true value. */
static int literal_int(const char *text, int line, const char *name, long long got,
                       int is64, long long *v, int *overflow)
{
    const char *p = text;
    for (int l = 1; l < line; l++) {
        p = strchr(p, '\n');
        if (!p)
            return 0;
        p++;
    }
    const char *end = strchr(p, '\n');
    if (!end)
        end = p + strlen(p);
    size_t nl = strlen(name);
    for (const char *q = p; q < end; q++) {
        if (strncmp(q, name, nl) != 0 || (q > text && is_ident(q[-1])) || is_ident(q[nl]))
            continue;
        const char *r = q + nl;
        r += strspn(r, " \t\r\n");
        if (*r != '=' && *r != ':')
            continue;
        r++;
        r += strspn(r, " \t\r\n");
        const char *digits = r + (*r == '-' || *r == '+');
        int hex = digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X');
        char *stop;
        errno = 0;
        long long val = strtoll(r, &stop, hex ? 16 : 10);
        if (stop == r)
            continue;
        int ovf = errno == ERANGE;
        if (is64 ? val == got : (int)val == (int)got) {
            *v = val;
            *overflow = ovf;
            return 1;
        }
    }
    return 0;
}

/* text: the source the setting was read from, to recover wrapped ints. */
static Value value_of(const config_setting_t *s, const char *text)
{
    Value v = { 0 };
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64: {
        int is64 = config_setting_type(s) == CONFIG_TYPE_INT64;
        v.kind = V_INT;
        v.i = is64 ? config_setting_get_int64(s) : config_setting_get_int(s);
        if (text && config_setting_name(s))
            literal_int(text, config_setting_source_line(s), config_setting_name(s), v.i,
                        is64, &v.i, &v.overflow);
        break;
    }
    case CONFIG_TYPE_FLOAT:
        v.kind = V_FLOAT;
        v.f = config_setting_get_float(s);
        break;
    case CONFIG_TYPE_STRING:
        v.kind = V_STRING;
        v.s = config_setting_get_string(s);
        break;
    case CONFIG_TYPE_BOOL:
        v.kind = V_BOOL;
        v.i = config_setting_get_bool(s);
        break;
    case CONFIG_TYPE_ARRAY: v.kind = V_ARRAY; break;
    case CONFIG_TYPE_LIST: v.kind = V_LIST; break;
    default: v.kind = V_GROUP; break;
    }
    return v;
}

static void describe(const Value *v, char *buf, size_t n)
{
    switch (v->kind) {
    case V_INT:
        if (v->overflow)
            snprintf(buf, n, "a number beyond 64 bits");
        else
            snprintf(buf, n, "%lld", v->i);
        break;
    case V_FLOAT: snprintf(buf, n, "%g", v->f); break;
    case V_STRING: snprintf(buf, n, "a string (\"%.60s\")", v->s); break;
    case V_BOOL: snprintf(buf, n, "%s", v->i ? "true" : "false"); break;
    case V_ARRAY: snprintf(buf, n, "an array"); break;
    case V_LIST: snprintf(buf, n, "a list"); break;
    default: snprintf(buf, n, "a group"); break;
    }
}

/* A key bounded only by its type reads ">= lo", unless the value is past
 * that bound: then the bound is what the user needs to see. */
static void int_range(const Key *k, int above, char *buf, size_t n)
{
    long long top = k->type == K_INT64 ? INT64_MAX : INT_MAX;
    if (k->ihi == top && !above)
        snprintf(buf, n, "an integer >= %lld", k->ilo);
    else
        snprintf(buf, n, "%lld..%lld", k->ilo, k->ihi);
}

static void float_range(const Key *k, char *buf, size_t n)
{
    if (isinf(k->fhi))
        snprintf(buf, n, "a number >= %g", k->flo);
    else
        snprintf(buf, n, "%g..%g", k->flo, k->fhi);
}

/* "a|b|c" as "a, b or c"; a single choice says it is the only one. */
static void choices_text(const char *choices, char *buf, size_t n)
{
    if (!strchr(choices, '|')) {
        snprintf(buf, n, "%s (the only accepted value for now)", choices);
        return;
    }
    size_t used = 0;
    buf[0] = '\0';
    for (const char *p = choices; *p && used < n;) {
        size_t len = strcspn(p, "|");
        const char *sep = p == choices ? "" : p[len] ? ", " : " or ";
        used += (size_t)snprintf(buf + used, n - used, "%s%.*s", sep, (int)len, p);
        p += len + (p[len] == '|');
    }
}

static int in_choices(const char *choices, const char *v)
{
    for (const char *p = choices; *p;) {
        size_t len = strcspn(p, "|");
        if (strlen(v) == len && strncmp(p, v, len) == 0)
            return 1;
        p += len + (p[len] == '|');
    }
    return 0;
}

static int check_name(const char *v, char *why, size_t n)
{
    int bad = !v[0] || strchr(v, '/') || strcmp(v, ".") == 0 || strcmp(v, "..") == 0;
    for (const char *p = v; *p && !bad; p++)
        bad = (unsigned char)*p < 0x20 || *p == 0x7f;
    if (bad)
        snprintf(why, n, "expected a name usable as a folder (not empty, no '/'), got \"%s\"", v);
    return bad ? -1 : 0;
}

/* Empty means "no built-in": that is how --set switches a task to files. */
static int check_builtin(const char *v, char *why, size_t n)
{
    if (!v[0] || builtin_exists(v))
        return 0;
    size_t used = (size_t)snprintf(why, n, "unknown built-in task \"%s\"; known:", v);
    const BuiltinInfo *b = builtin_tasks();
    for (int i = 0; b[i].name && used < n; i++)
        used += (size_t)snprintf(why + used, n - used, "%s %s", i ? "," : "", b[i].name);
    return -1;
}

static int check_field(const char *v, char *why, size_t n)
{
    if (v[0])
        return 0;
    snprintf(why, n, "expected a JSON field name, not an empty string (the defaults: "
             "text_field \"text\", label_field \"label\")");
    return -1;
}

static int check_field_or_none(const char *v, char *why, size_t n)
{
    (void)v;
    (void)why;
    (void)n;
    return 0;
}

/* The syntax of a part list; whether its layers exist needs model.layers
 * and is checked once the whole experiment is read. */
static int check_parts(const char *v, char *why, size_t n)
{
    return parts_parse(v, -1, NULL, why, n);
}

/* The theme must exist (its contents are the workbench's to read). */
static int check_theme(const char *v, char *why, size_t n)
{
    char rel[EXP_PATH + 16], path[EXP_PATH + 16];
    if (strchr(v, '/')) {
        if (access(v, R_OK) == 0)
            return 0;
        snprintf(why, n, "cannot read theme file %s: %s", v, strerror(errno));
        return -1;
    }
    snprintf(rel, sizeof rel, "themes/%s.theme", v);
    if (v[0] && find_data_file(rel, path, sizeof path) == 0)
        return 0;
    snprintf(why, n, "no theme named \"%s\" (looked for %s among mneme's data folders)", v, rel);
    return -1;
}

static int check_lora_targets(const char *v, char *why, size_t n)
{
    unsigned mask;
    return lora_parse_targets(v, &mask, why, n);
}

/* Relative to dir unless already absolute; "" stays "" (not given). */
static int resolve_path(const char *v, const char *dir, char *out, size_t n)
{
    while (v[0] == '.' && v[1] == '/' && v[2])
        v += 2;
    int len;
    if (!v[0] || v[0] == '/' || !dir || !dir[0])
        len = snprintf(out, n, "%s", v);
    else
        len = snprintf(out, n, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", v);
    return len < 0 || (size_t)len >= n ? -1 : 0;
}

static int store_string(Experiment *x, const Ctx *c, const Key *k, const Value *v,
                        const Origin *o, const char *base_dir, MnError *e)
{
    char why[512], *field = (char *)x + k->off;
    if (v->kind != V_STRING) {
        char got[128];
        describe(v, got, sizeof got);
        return fail_at(e, c, o, k->key, "expected a string, got %s", got);
    }
    /* the run writes its strings (the name first) into JSON files, which
     * hold UTF-8 only */
    long bad = utf8_invalid_at(v->s, strlen(v->s));
    if (bad >= 0)
        return fail_at(e, c, o, k->key, "expected UTF-8 text, got byte 0x%02X at offset %ld",
                       (unsigned char)v->s[bad], bad);
    if (k->choices && !in_choices(k->choices, v->s)) {
        choices_text(k->choices, why, sizeof why);
        return fail_at(e, c, o, k->key, "expected %s, got \"%.60s\"", why, v->s);
    }
    if (k->check && k->check(v->s, why, sizeof why) < 0)
        return fail_at(e, c, o, k->key, "%s", why);
    memset(field, 0, k->size);
    if (k->type == K_PATH) {
        if (resolve_path(v->s, base_dir, field, k->size) < 0)
            return fail_at(e, c, o, k->key, "path too long (at most %zu bytes resolved)",
                           k->size - 1);
        return 0;
    }
    if (strlen(v->s) >= k->size)
        return fail_at(e, c, o, k->key, "too long (at most %zu bytes)", k->size - 1);
    memcpy(field, v->s, strlen(v->s));
    return 0;
}

/* The one place a value meets its key: type, range, choices, storage. The
 * file and --set both come through here, so they cannot disagree. */
static int apply_value(Experiment *x, Ctx *c, size_t ki, const Value *v, const Origin *o,
                       const char *base_dir, MnError *e)
{
    const Key *k = &keys[ki];
    char *field = (char *)x + k->off;
    char got[128], range[128];
    describe(v, got, sizeof got);
    switch (k->type) {
    case K_INT:
    case K_INT64:
        if (v->kind != V_INT)
            return fail_at(e, c, o, k->key, "expected an integer, got %s", got);
        if (v->overflow || v->i < k->ilo || v->i > k->ihi) {
            int_range(k, v->overflow || v->i > k->ihi, range, sizeof range);
            return fail_at(e, c, o, k->key, "expected %s, got %s", range, got);
        }
        if (k->type == K_INT)
            *(int *)(void *)field = (int)v->i;
        else
            *(uint64_t *)(void *)field = (uint64_t)v->i;
        break;
    case K_FLOAT: {
        if (v->kind != V_INT && v->kind != V_FLOAT)
            return fail_at(e, c, o, k->key, "expected a number, got %s", got);
        double d = v->kind == V_INT ? (double)v->i : v->f;
        if (v->overflow || !(d >= k->flo && d <= k->fhi)) {
            float_range(k, range, sizeof range);
            return fail_at(e, c, o, k->key, "expected %s, got %s", range, got);
        }
        *(double *)(void *)field = d;
        break;
    }
    case K_BOOL:
        if (v->kind != V_BOOL)
            return fail_at(e, c, o, k->key, "expected true or false, got %s", got);
        *(int *)(void *)field = v->i != 0;
        break;
    default:
        if (store_string(x, c, k, v, o, base_dir, e) < 0)
            return -1;
    }
    c->key_at[ki] = *o;
    c->key_at[ki].seen = 1;
    return 0;
}

/* ---- reading the file -------------------------------------------------- */

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1)
            break;
        char *bigger = realloc(buf, cap * 2);
        if (!bigger)
            free(buf);
        buf = bigger;
        cap *= 2;
    }
    if (buf)
        buf[n] = '\0';
    fclose(f);
    return buf;
}

/* The text a setting came from (main file or an include), cached. */
static const char *source_text(Ctx *c, const char *file)
{
    char path[EXP_PATH];
    shown_file(c, file, path, sizeof path);
    if (c->text && strcmp(c->text_file, path) == 0)
        return c->text;
    free(c->text);
    snprintf(c->text_file, sizeof c->text_file, "%s", path);
    c->text = read_text(path);
    return c->text;
}

static int walk(Experiment *x, Ctx *c, config_setting_t *g, const char *prefix, MnError *e)
{
    for (int i = 0; i < config_setting_length(g); i++) {
        config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        char key[KEY_MAX];
        if (prefix[0])
            snprintf(key, sizeof key, "%s.%s", prefix, config_setting_name(s));
        else
            snprintf(key, sizeof key, "%s", config_setting_name(s));
        Origin o = { 1, 0, config_setting_source_file(s), config_setting_source_line(s) };
        long ki = key_index(key);
        if (config_setting_is_group(s)) {
            if (ki >= 0)
                return fail_at(e, c, &o, key, "expected %s, got a group", type_word(keys[ki].type));
            if (!is_group(key))
                return fail_unknown(e, c, &o, key, 1);
            note_group(c, key, &o);
            if (walk(x, c, s, key, e) < 0)
                return -1;
            continue;
        }
        if (ki < 0 && is_group(key)) {
            char got[128];
            Value v = value_of(s, NULL);
            describe(&v, got, sizeof got);
            return fail_at(e, c, &o, key, "expected a group (%s = { ... };), got %s",
                           leaf_of(key), got);
        }
        if (ki < 0)
            return fail_unknown(e, c, &o, key, 0);
        int is_int = config_setting_type(s) == CONFIG_TYPE_INT ||
                     config_setting_type(s) == CONFIG_TYPE_INT64;
        Value v = value_of(s, is_int ? source_text(c, o.file) : NULL);
        /* a path is relative to the file that gives it, an @include'd one too */
        char file[EXP_PATH + 64], *slash = NULL;
        int included = o.file && c->path && strcmp(o.file, c->path) != 0;
        if (included) {
            shown_file(c, o.file, file, sizeof file);
            slash = strrchr(file, '/');
            if (slash)
                *slash = 0;
        }
        if (apply_value(x, c, (size_t)ki, &v, &o, slash ? file : c->dir, e) < 0)
            return -1;
    }
    return 0;
}

/* Fills why and returns -1 unless path opens for reading as a file. */
static int readable(const char *path, char *why, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, n, "%s", strerror(errno));
        return -1;
    }
    struct stat st;
    int dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
    close(fd);
    if (dir)
        snprintf(why, n, "is a directory");
    return dir ? -1 : 0;
}

static int read_config(config_t *cf, const Ctx *c, const char *path, MnError *e)
{
    char why[256];
    if (readable(path, why, sizeof why) < 0)
        return mn_fail(e, "%s: cannot read: %s", path, why);
    if (config_read_file(cf, path))
        return 0;
    char file[EXP_PATH];
    shown_file(c, config_error_file(cf), file, sizeof file);
    if (config_error_type(cf) == CONFIG_ERR_FILE_IO)
        return mn_fail(e, "%s: cannot read", file);
    return mn_fail(e, "%s:%d: %s", file, config_error_line(cf), config_error_text(cf));
}

/* The experiment's absolute path and folder: relative paths inside it
 * must not depend on where mneme was started. */
static int locate(Experiment *x, const char *path, MnError *e)
{
    char *abs = realpath(path, NULL);
    if (!abs)
        return mn_fail(e, "%s: cannot read: %s", path, strerror(errno));
    int too_long = strlen(abs) >= sizeof x->path;
    if (!too_long) {
        snprintf(x->path, sizeof x->path, "%s", abs);
        snprintf(x->dir, sizeof x->dir, "%s", abs);
        char *slash = strrchr(x->dir, '/');
        slash[slash == x->dir] = '\0';
    }
    free(abs);
    return too_long ? mn_fail(e, "%s: path too long", path) : 0;
}

static void default_name(Experiment *x, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 4 && strcmp(base + n - 4, ".cfg") == 0)
        n -= 4;
    if (n >= sizeof x->name)
        n = sizeof x->name - 1;
    memset(x->name, 0, sizeof x->name);
    memcpy(x->name, base, n);
    char why[128];
    if (check_name(x->name, why, sizeof why) < 0)
        snprintf(x->name, sizeof x->name, "experiment");
}

/* ---- --set --------------------------------------------------------------- */

static void trimmed(const char *s, size_t n, char *out, size_t cap)
{
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    snprintf(out, cap, "%.*s", (int)n, s);
}

/* Reads VALUE as libconfig would inside a file; a bare word (and, for a
 * string key, any unquoted value) is the string itself. */
static int apply_assignment(Experiment *x, Ctx *c, const char *a, MnError *e)
{
    const char *eq = strchr(a, '=');
    char key[KEY_MAX];
    trimmed(a, eq ? (size_t)(eq - a) : strlen(a), key, sizeof key);
    if (!eq || !key[0])
        return mn_fail(e, "--set %s: expected KEY=VALUE", a);
    Origin o = { 1, 1, NULL, 0 };
    long ki = key_index(key);
    if (ki < 0 && is_group(key)) {
        size_t n = strlen(key), i = 0;
        while (strncmp(keys[i].key, key, n) != 0 || keys[i].key[n] != '.')
            i++;
        return fail_at(e, c, &o, key, "is a group; set one of its keys, e.g. %s", keys[i].key);
    }
    if (ki < 0)
        return fail_unknown(e, c, &o, key, 0);

    size_t vn = strlen(eq + 1) + 1;
    char *val = malloc(vn), *text = malloc(vn + 16), cwd[EXP_PATH];
    if (!val || !text || !getcwd(cwd, sizeof cwd)) {
        free(val);
        free(text);
        return fail_at(e, c, &o, key, "cannot read the current directory: %s", strerror(errno));
    }
    trimmed(eq + 1, vn - 1, val, vn);
    snprintf(text, vn + 16, "v = %s;\n", val);

    config_t cf;
    config_init(&cf);
    int quoted = val[0] && strchr("\"[({", val[0]);
    int stringy = keys[ki].type == K_STRING || keys[ki].type == K_PATH;
    config_setting_t *s = NULL;
    if (config_read_string(&cf, text) && config_setting_length(config_root_setting(&cf)) == 1)
        s = config_lookup(&cf, "v");
    Value v = { .kind = V_STRING, .s = val };
    int rc = 0;
    if (s && (quoted || !stringy || config_setting_type(s) == CONFIG_TYPE_STRING))
        v = value_of(s, text);
    else if (quoted)
        rc = fail_at(e, c, &o, key, "cannot read value %s: %s", val,
                     config_error_type(&cf) == CONFIG_ERR_NONE ? "expected one value"
                                                               : config_error_text(&cf));
    if (rc == 0)
        rc = apply_value(x, c, (size_t)ki, &v, &o, cwd, e);
    if (rc == 0)
        note_groups_above(c, key, &o);
    config_destroy(&cf);
    free(val);
    free(text);
    return rc;
}

/* ---- checks across keys -------------------------------------------------- */

static int check_readable(const Ctx *c, const char *key, const char *path, MnError *e)
{
    Origin o = key_origin(c, key);
    char why[256];
    if (readable(path, why, sizeof why) < 0)
        return fail_at(e, c, &o, key, "cannot read %s: %s", path, why);
    return 0;
}

void task_source_format(const TaskSource *t, DataFormat *fmt)
{
    memset(fmt, 0, sizeof *fmt);
    if (data_kind_parse(t->format, &fmt->kind) < 0)
        fmt->kind = DATA_AUTO;     /* validated with the experiment */
    fmt->columns = t->columns;
    fmt->header = !strcmp(t->header, "yes") ? 1 : !strcmp(t->header, "no") ? -1 : 0;
    fmt->text_field = t->text_field;
    fmt->text_b_field = t->text_b_field;
    fmt->label_field = t->label_field;
}

/* Format keys that would be ignored are mistakes: columns with no TSV
 * file, field names with no JSONL file, any of them with a built-in task;
 * and a task's train and eval rows must both be pairs or both single. */
static int check_task_format(const Experiment *x, const Ctx *c, const char *group,
                             const TaskSource *t, MnError *e)
{
    static const struct {
        const char *name;
        int jsonl;             /* 1: JSONL only, 0: TSV only, -1: files only */
    } fmt_keys[] = {
        { "columns", 0 }, { "header", 0 }, { "format", -1 }, { "text_field", 1 },
        { "text_b_field", 1 }, { "label_field", 1 },
    };
    DataFormat fmt;
    task_source_format(t, &fmt);
    /* an original task may have only its eval file (base.from) */
    int files = t->train[0] || t->eval[0];
    int has_tsv = (t->train[0] && data_file_kind(&fmt, t->train) == DATA_TSV) ||
                  (t->eval[0] && data_file_kind(&fmt, t->eval) == DATA_TSV);
    int has_jsonl = (t->train[0] && data_file_kind(&fmt, t->train) == DATA_JSONL) ||
                    (t->eval[0] && data_file_kind(&fmt, t->eval) == DATA_JSONL);
    for (size_t i = 0; i < sizeof fmt_keys / sizeof fmt_keys[0]; i++) {
        char key[64];
        snprintf(key, sizeof key, "%s.%s", group, fmt_keys[i].name);
        const Key *k = &keys[key_index(key)];
        const char *field = (const char *)x + k->off;
        int is_default = k->type == K_INT ? *(const int *)(const void *)field == (int)k->idef
                                          : strcmp(field, k->sdef) == 0;
        int used = fmt_keys[i].jsonl < 0 ? files : fmt_keys[i].jsonl ? has_jsonl : has_tsv;
        if (!is_default && !used) {
            Origin o = key_origin(c, key);
            const char *what = fmt_keys[i].jsonl < 0 ? "train and eval files"
                               : fmt_keys[i].jsonl ? "JSONL files" : "TSV files";
            if (!files)
                return fail_at(e, c, &o, key, "only used with %s; this task is %s", what,
                               t->mlm[0] ? "masked-language modelling on plain text" : "built-in");
            return fail_at(e, c, &o, key, "only used with %s, and this task has none", what);
        }
    }
    if (t->train[0] && t->eval[0] &&
        data_file_pairs(&fmt, t->train) != data_file_pairs(&fmt, t->eval)) {
        char key[64];
        int tsv_pairs = data_file_kind(&fmt, t->train) == DATA_TSV ?
                        data_file_pairs(&fmt, t->train) : data_file_pairs(&fmt, t->eval);
        snprintf(key, sizeof key, "%s.%s", group, tsv_pairs ? "columns" : "text_b_field");
        Origin o = key_origin(c, key);
        return fail_at(e, c, &o, key, "train and eval files must both hold pairs or both "
                       "single texts (set %s.columns = 3 and %s.text_b_field together)",
                       group, group);
    }
    return 0;
}

static int check_task(const Ctx *c, const char *group, const TaskSource *t, int eval_only_ok,
                      MnError *e)
{
    char kb[64], kt[64], ke[64];
    snprintf(kb, sizeof kb, "%s.builtin", group);
    snprintf(kt, sizeof kt, "%s.train", group);
    snprintf(ke, sizeof ke, "%s.eval", group);
    const Origin *g = group_origin(c, group);
    if (!g)
        return fail_at(e, c, NULL, group,
                       "missing; an experiment needs both tasks, original and new "
                       "(%s = { builtin = \"...\"; }; or train and eval files)", group);
    int files = t->train[0] || t->eval[0];
    Origin o;
    if (t->mlm[0]) {
        char km[64];
        snprintf(km, sizeof km, "%s.mlm", group);
        o = key_origin(c, km);
        if (t->builtin[0] || files)
            return fail_at(e, c, &o, km, "give mlm, or builtin, or train and eval, not two of them "
                           "(with --set, clear the others: %s=\"\"%s%s%s)",
                           t->builtin[0] ? kb : t->train[0] ? kt : ke,
                           t->train[0] && t->eval[0] ? " " : "",
                           t->train[0] && t->eval[0] ? ke : "",
                           t->train[0] && t->eval[0] ? "=\"\"" : "");
        return check_readable(c, km, t->mlm, e);
    }
    if (t->builtin[0] && files) {
        o = key_origin(c, kb);
        return fail_at(e, c, &o, kb, "give either builtin or train and eval, not both "
                       "(with --set, clear the other: %s=\"\")", t->train[0] ? kt : ke);
    }
    if (!t->builtin[0] && !files)
        return fail_at(e, c, g, group, "expected builtin, or train and eval");
    if (files && !t->train[0] && !(eval_only_ok && t->eval[0])) {
        o = key_origin(c, ke);
        return fail_at(e, c, &o, ke, "%s is missing; give both train and eval", kt);
    }
    if (files && !t->eval[0]) {
        o = key_origin(c, kt);
        return fail_at(e, c, &o, kt, "%s is missing; give both train and eval", ke);
    }
    if (files && ((t->train[0] && check_readable(c, kt, t->train, e) < 0) ||
                  check_readable(c, ke, t->eval, e) < 0))
        return -1;
    return 0;
}

/* A key of another method would silently do nothing: say so. Only values
 * that differ from the default count, because a resolved experiment.cfg
 * lists every key. */
static int check_method_keys(const Experiment *x, const Ctx *c, MnError *e)
{
    static const struct {
        const char *key;
        const char *methods;
    } owned[] = {
        { "finetune.lora.r", "lora" },
        { "finetune.lora.alpha", "lora" },
        { "finetune.lora.targets", "lora" },
        { "finetune.lora.merge", "lora" },
        { "finetune.lora.dropout", "lora" },
        { "finetune.virtual_tokens", "prompt|prefix" },
    };
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++) {
        long ki = key_index(owned[i].key);
        if (ki < 0 || in_choices(owned[i].methods, x->finetune.method))
            continue;
        const Key *k = &keys[ki];
        const char *field = (const char *)x + k->off;
        int is_default;
        if (k->type == K_INT || k->type == K_BOOL)
            is_default = *(const int *)(const void *)field == (int)k->idef;
        else if (k->type == K_FLOAT)
            is_default = *(const double *)(const void *)field == k->fdef;
        else
            is_default = strcmp(field, k->sdef) == 0;
        if (!is_default) {
            Origin o = key_origin(c, owned[i].key);
            return fail_at(e, c, &o, owned[i].key,
                           "only used with finetune.method %s, and the method is \"%s\"",
                           strchr(owned[i].methods, '|') ? "\"prompt\" or \"prefix\"" : "\"lora\"",
                           x->finetune.method);
        }
    }
    return 0;
}

/* base.from: the shape is config.json's. A model.* key given in the
 * file or by --set must agree with it; the rest are filled in, so the
 * resolved experiment.cfg shows the model as it is. */
static int apply_base_from(Experiment *x, const Ctx *c, MnError *e)
{
    Origin o = key_origin(c, "base.from");
    if (!x->base.from[0]) {
        if (strcmp(x->model.tokenizer, "wordpiece") == 0) {
            Origin ot = key_origin(c, "model.tokenizer");
            return fail_at(e, c, &ot, "model.tokenizer",
                           "wordpiece takes its vocab.txt from base.from, which is not set");
        }
        return 0;
    }
    if (x->base.checkpoint[0])
        return fail_at(e, c, &o, "base.from", "give base.from or base.checkpoint, not both");
    HfModel h;
    MnError why;
    if (hf_read_config(&h, x->base.from, &why) < 0)
        return fail_at(e, c, &o, "base.from", "%s%s", why.msg,
                       access(x->base.from, F_OK) == 0 ? ""
                       : " (a run reads its base.from again to resume, fork or replay: if the "
                         "folder moved, give its new place as base.from in the run's "
                         "experiment.cfg)");
    const struct {
        const char *key;
        int *value;
        int hf;
    } shape[] = {
        { "model.hidden", &x->model.hidden, h.shape.hidden },
        { "model.layers", &x->model.layers, h.shape.layers },
        { "model.heads", &x->model.heads, h.shape.heads },
        { "model.intermediate", &x->model.intermediate, h.shape.intermediate },
    };
    static const char *const field[2][4] = {
        { "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size" },
        { "dim", "n_layers", "n_heads", "hidden_dim" },
    };
    for (size_t i = 0; i < sizeof shape / sizeof shape[0]; i++) {
        Origin ok = key_origin(c, shape[i].key);
        if (ok.seen && *shape[i].value != shape[i].hf)
            return fail_at(e, c, &ok, shape[i].key, "%d contradicts %s %d in %s/config.json",
                           *shape[i].value, field[h.arch][i], shape[i].hf, x->base.from);
        *shape[i].value = shape[i].hf;
    }
    Origin ol = key_origin(c, "model.max_len");
    if (ol.seen && x->model.max_len > h.shape.max_positions)
        return fail_at(e, c, &ol, "model.max_len",
                       "%d exceeds max_position_embeddings %d in %s/config.json",
                       x->model.max_len, h.shape.max_positions, x->base.from);
    if (!ol.seen)
        x->model.max_len = h.shape.max_positions < 128 ? h.shape.max_positions : 128;
    /* what the file lacks (a new head, an MLM checkpoint's pooler) starts
     * as Hugging Face would start it, unless the experiment says otherwise */
    if (!key_origin(c, "model.init_std").seen && h.init_std > 0 && h.init_std <= 1)
        x->model.init_std = h.init_std;
    Origin ot = key_origin(c, "model.tokenizer");
    if (ot.seen && strcmp(x->model.tokenizer, "wordpiece") != 0)
        return fail_at(e, c, &ot, "model.tokenizer",
                       "base.from brings its own vocab.txt: expected \"wordpiece\", got \"%s\"",
                       x->model.tokenizer);
    snprintf(x->model.tokenizer, sizeof x->model.tokenizer, "wordpiece");
    return 0;
}

static int validate(const Experiment *x, const Ctx *c, MnError *e)
{
    if (x->model.hidden % x->model.heads) {
        const char *k = key_origin(c, "model.heads").seen ? "model.heads" : "model.hidden";
        Origin o = key_origin(c, k);
        return fail_at(e, c, &o, k, "model.hidden (%d) must be a multiple of model.heads (%d)",
                       x->model.hidden, x->model.heads);
    }
    /* A pretrained model's own head is the original task: its held-out
     * set is enough. */
    if (check_task(c, "original", &x->original, x->base.from[0] != 0, e) < 0 ||
        check_task(c, "new", &x->new_task, 0, e) < 0 ||
        check_task_format(x, c, "original", &x->original, e) < 0 ||
        check_task_format(x, c, "new", &x->new_task, e) < 0)
        return -1;
    if (x->base.checkpoint[0] && check_readable(c, "base.checkpoint", x->base.checkpoint, e) < 0)
        return -1;
    if (x->original.mlm[0]) {
        Origin o = key_origin(c, "original.mlm");
        if (!x->base.from[0])
            return fail_at(e, c, &o, "original.mlm",
                           "needs base.from: the pretrained model's MLM head scores the text");
    }
    char why[256];
    if (parts_parse(x->finetune.freeze.parts, x->model.layers, NULL, why, sizeof why) < 0) {
        Origin o = key_origin(c, "finetune.freeze.parts");
        return fail_at(e, c, &o, "finetune.freeze.parts", "%s", why);
    }
    if (check_method_keys(x, c, e) < 0)
        return -1;
    if (x->finetune.freeze.keep_last > x->model.layers) {
        Origin o = key_origin(c, "finetune.freeze.keep_last");
        return fail_at(e, c, &o, "finetune.freeze.keep_last",
                       "expected at most model.layers (%d), got %d", x->model.layers,
                       x->finetune.freeze.keep_last);
    }
    if (x->finetune.replay.ratio > 0 &&
        (int)(x->finetune.replay.ratio * x->finetune.recipe.batch + 0.5) >= x->finetune.recipe.batch) {
        Origin o = key_origin(c, "finetune.replay.ratio");
        return fail_at(e, c, &o, "finetune.replay.ratio",
                       "leaves no room for new-task rows in a batch of %d", x->finetune.recipe.batch);
    }
    return 0;
}

/* ---- the public functions ---------------------------------------------- */

void experiment_defaults(Experiment *x)
{
    memset(x, 0, sizeof *x);
    for (size_t i = 0; i < N_KEYS; i++) {
        const Key *k = &keys[i];
        char *field = (char *)x + k->off;
        if (k->type == K_INT || k->type == K_BOOL)
            *(int *)(void *)field = (int)k->idef;
        else if (k->type == K_INT64)
            *(uint64_t *)(void *)field = (uint64_t)k->idef;
        else if (k->type == K_FLOAT)
            *(double *)(void *)field = k->fdef;
        else
            snprintf(field, k->size, "%s", k->sdef);
    }
}

static int load_into(Experiment *x, Ctx *c, config_t *cf, const char *path,
                     const char *const *sets, int n_sets, MnError *e)
{
    if (read_config(cf, c, path, e) < 0)
        return -1;
    if (walk(x, c, config_root_setting(cf), "", e) < 0)
        return -1;
    if (!key_origin(c, "name").seen)
        default_name(x, path);
    for (int i = 0; i < n_sets; i++)
        if (apply_assignment(x, c, sets[i], e) < 0)
            return -1;
    if (apply_base_from(x, c, e) < 0)
        return -1;
    return validate(x, c, e);
}

int experiment_load(Experiment *x, const char *path, const char *const *sets,
                    int n_sets, MnError *e)
{
    Experiment t;
    Ctx *c = calloc(1, sizeof *c);
    if (!c)
        return mn_fail(e, "%s: out of memory", path);
    experiment_defaults(&t);
    c->path = path;
    c->dir = t.dir;
    config_t cf;
    config_init(&cf);
    /* Without an include dir, @include would follow the working directory. */
    int rc = locate(&t, path, e);
    if (rc == 0) {
        config_set_include_dir(&cf, t.dir);
        rc = load_into(&t, c, &cf, path, sets, n_sets, e);
    }
    config_destroy(&cf);
    free(c->text);
    free(c);
    if (rc < 0)
        return -1;
    *x = t;
    return 0;
}

int experiment_set(Experiment *x, const char *assignment, MnError *e)
{
    Experiment t = *x;
    Ctx *c = calloc(1, sizeof *c);
    if (!c)
        return mn_fail(e, "--set %s: out of memory", assignment);
    c->path = x->path[0] ? x->path : NULL;
    c->dir = x->dir;
    /* Everything already loaded counts as given, in the file. */
    Origin file = { 1, 0, NULL, 0 };
    for (size_t i = 0; i < N_KEYS; i++) {
        c->key_at[i] = file;
        note_groups_above(c, keys[i].key, &file);
    }
    int rc = apply_assignment(&t, c, assignment, e);
    if (rc == 0)
        rc = apply_base_from(&t, c, e);
    if (rc == 0)
        rc = validate(&t, c, e);
    free(c->text);
    free(c);
    if (rc < 0)
        return -1;
    *x = t;
    return 0;
}

/* ---- writing ------------------------------------------------------------- */

/* The shortest text that reads back as the same double, always with a
 * point or exponent so that libconfig reads a float, not an int. */
static void format_float(double d, char *buf, size_t n)
{
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    if (!strpbrk(buf, ".eEni"))
        strncat(buf, ".0", n - strlen(buf) - 1);
}

static void write_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(f, "\\x%02x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void write_value(FILE *f, const Experiment *x, const Key *k)
{
    const char *field = (const char *)x + k->off;
    char buf[64];
    uint64_t u;
    switch (k->type) {
    case K_INT:
        fprintf(f, "%d", *(const int *)(const void *)field);
        break;
    case K_INT64:
        u = *(const uint64_t *)(const void *)field;
        fprintf(f, "%" PRIu64 "%s", u, u > INT_MAX ? "L" : "");
        break;
    case K_FLOAT:
        format_float(*(const double *)(const void *)field, buf, sizeof buf);
        fputs(buf, f);
        break;
    case K_BOOL:
        fputs(*(const int *)(const void *)field ? "true" : "false", f);
        break;
    default:
        write_string(f, field);
    }
}

/* How many leading dotted components a and b share. */
static int shared_depth(const char *a, const char *b)
{
    int depth = 0;
    while (*a && *b) {
        size_t la = strcspn(a, "."), lb = strcspn(b, ".");
        if (la != lb || strncmp(a, b, la) != 0)
            break;
        depth++;
        a += la + (a[la] == '.');
        b += lb + (b[lb] == '.');
    }
    return depth;
}

/* Component i of a dotted group name, and its length. */
static const char *component(const char *group, int i, int *len)
{
    while (i-- > 0)
        group = strchr(group, '.') + 1;
    *len = (int)strcspn(group, ".");
    return group;
}

static int depth_of(const char *group)
{
    int d = group[0] != '\0';
    for (const char *p = group; *p; p++)
        d += *p == '.';
    return d;
}

static void indent(FILE *f, int depth)
{
    fprintf(f, "%*s", 2 * depth, "");
}

/* Keys in table order, opening and closing groups as the prefix changes. */
static void write_keys(FILE *f, const Experiment *x)
{
    char cur[KEY_MAX] = "";
    int depth = 0;
    fputs("# The resolved experiment: every key, defaults filled in, paths absolute.\n", f);
    for (size_t i = 0; i < N_KEYS; i++) {
        const char *key = keys[i].key, *leaf = leaf_of(key);
        char group[KEY_MAX];
        snprintf(group, sizeof group, "%.*s", leaf > key ? (int)(leaf - key - 1) : 0, key);
        int keep = shared_depth(cur, group);
        for (; depth > keep; depth--) {
            indent(f, depth - 1);
            fputs("};\n", f);
        }
        for (; depth < depth_of(group); depth++) {
            int len;
            const char *name = component(group, depth, &len);
            if (depth == 0)
                fputc('\n', f);
            indent(f, depth);
            fprintf(f, "%.*s = {\n", len, name);
        }
        snprintf(cur, sizeof cur, "%s", group);
        indent(f, depth);
        fprintf(f, "%s = ", leaf);
        write_value(f, x, &keys[i]);
        fputs(";\n", f);
    }
    for (; depth > 0; depth--) {
        indent(f, depth - 1);
        fputs("};\n", f);
    }
}

/* A crash mid-write must leave the old file or the new one, never half. */
int experiment_write(const Experiment *x, const char *path, MnError *e)
{
    char tmp[EXP_PATH + 16];
    if (snprintf(tmp, sizeof tmp, "%s.XXXXXX", path) >= (int)sizeof tmp)
        return mn_fail(e, "%s: path too long", path);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return mn_fail(e, "%s: cannot create a temporary file: %s", path, strerror(errno));
    (void)fchmod(fd, 0644);
    FILE *f = fdopen(fd, "w");
    if (!f) {
        int err = errno;
        close(fd);
        unlink(tmp);
        return mn_fail(e, "%s: %s", tmp, strerror(err));
    }
    write_keys(f, x);
    int bad = ferror(f) || fflush(f) != 0 || fsync(fd) != 0;
    int err = errno;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    if (bad || rename(tmp, path) != 0) {
        if (!bad)
            err = errno;
        unlink(tmp);
        return mn_fail(e, "%s: cannot write: %s", path, strerror(err));
    }
    /* The rename itself is only durable once the folder is synced. */
    char dir[EXP_PATH];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[slash == dir] = '\0';
    int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return 0;
}
