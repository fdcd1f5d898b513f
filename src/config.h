/* Experiment files: libconfig text → a validated Experiment.
 *
 * One table of keys (config.c) serves validation, defaults, --set, the
 * resolved experiment.cfg a run writes, and the man page's list. */
#ifndef MNEME_CONFIG_H
#define MNEME_CONFIG_H

#include <limits.h>
#include <stdint.h>

#include "data.h"
#include "error.h"

#define EXP_STR 64
#define EXP_PATH 1024

typedef struct {
    char builtin[EXP_STR];   /* "" when train/eval files are given */
    char mlm[EXP_PATH];      /* original only: masked-language modelling text */
    char train[EXP_PATH];    /* resolved against the experiment's folder */
    char eval[EXP_PATH];
    int train_size;          /* built-in tasks: examples generated */
    int eval_size;
    int columns;             /* TSV: 2 = text, label; 3 = text_a, text_b, label */
    char format[EXP_STR];    /* auto | tsv | jsonl */
    char header[EXP_STR];    /* TSV: auto | yes | no */
    char text_field[EXP_STR];     /* JSONL field names */
    char text_b_field[EXP_STR];   /* "" = single texts */
    char label_field[EXP_STR];
} TaskSource;

/* The task's files' format, for dataset_load (pointing into t). */
void task_source_format(const TaskSource *t, DataFormat *fmt);

typedef struct {
    int epochs;
    double lr;
    int batch;
    int warmup_steps;
    char schedule[EXP_STR];  /* constant | linear | cosine | slanted_triangular */
    double cut_frac;         /* slanted triangular: the rising share of steps */
    double stlr_ratio;       /* slanted triangular: peak / lowest rate */
    double weight_decay;
    double clip_norm;        /* 0 = no clipping */
} TrainRecipe;

typedef struct {
    char path[EXP_PATH];     /* the file it was read from ("" for defaults) */
    char dir[EXP_PATH];      /* its folder: relative paths resolve here */

    char name[EXP_STR];
    uint64_t seed;
    int threads;             /* 0 = OpenBLAS default */

    struct {
        int hidden, layers, heads, intermediate, max_len;
        char tokenizer[EXP_STR];     /* "bytes", or "wordpiece" (base.from's vocab.txt) */
        double init_std;             /* 0.02 as BERT */
        char precision[EXP_STR];     /* "fp32" or "bf16" (bf16.h): the products' inputs */
    } model;

    TaskSource original;
    TaskSource new_task;     /* key "new" */

    struct {
        char from[EXP_PATH];         /* a Hugging Face model folder; "" = none */
        char checkpoint[EXP_PATH];   /* "" = pretrain */
        TrainRecipe pretrain;
    } base;

    struct {
        TrainRecipe recipe;          /* epochs, lr, batch, … at finetune.* */
        char method[EXP_STR];        /* full | lora | prompt | prefix */
        int virtual_tokens;          /* prompt / prefix: n */
        struct {
            int r;                   /* rank */
            double alpha;            /* scaling alpha / r */
            char targets[256];       /* "query value": lora_parse_targets */
            int merge;               /* write merged weights at the end */
            double dropout;          /* on the adapters' input while training */
        } lora;
        struct {
            int keep_last;           /* -1 = off; else train the last k blocks */
            char parts[256];         /* "embeddings layer.0-2 pooler" */
        } freeze;
        double layer_decay;          /* 1 = every group at lr */
        struct {
            double lambda;           /* 0 = off */
            int fisher_samples;
            char fisher[EXP_STR];    /* empirical | batch */
        } ewc;
        struct {
            double alpha;            /* 0 = off */
        } l2sp;
        struct {
            double ratio;            /* share of each batch from the original task */
        } replay;
        char policy[EXP_PATH];       /* Lua policy file; "" = none */
    } finetune;

    struct {
        int watch;                   /* reload when the file changes */
        char path[EXP_PATH];         /* the user's folder of Lua modules */
    } policy;

    struct {
        char metric[EXP_STR];        /* none | combined */
        double original_weight;      /* combined = new loss + w * original loss */
        double max_original_drop;    /* 0 = off; stop when exceeded */
        int patience;                /* evaluations without improvement; 0 = off */
        double diverge;              /* loss / recent median that counts as divergence; 0 = non-finite only */
        int diverge_window;          /* steps that median is taken over */
    } stop;

    struct {
        int every;                   /* evaluate every N steps */
        int original_samples;        /* 0 = the whole eval set */
        int new_samples;
        int batch;
    } eval;

    struct {
        int every;                   /* 0 = only at phase ends */
        int keep;
    } checkpoint;

    struct {
        char theme[EXP_PATH];        /* themes/NAME.theme, or a path with '/' */
    } ui;
} Experiment;

/* Defaults for every key (what an empty file gives). */
void experiment_defaults(Experiment *x);

/* Reads path, applies `--set KEY=VALUE` overrides (in order) and validates
 * the result. Errors read "FILE:LINE: KEY: expected …" (or "--set KEY: …"
 * for an override); syntax errors come from libconfig with file and line.
 * Unknown keys, wrong types, out-of-range and inconsistent values (hidden
 * not divisible by heads, …) are all errors. */
int experiment_load(Experiment *x, const char *path, const char *const *sets,
                    int n_sets, MnError *e);

/* Applies one more KEY=VALUE (same rules) to an already loaded experiment. */
int experiment_set(Experiment *x, const char *assignment, MnError *e);

/* Writes the resolved experiment (every key, defaults filled in, paths
 * absolute) as a libconfig file that experiment_load reads back to an
 * identical Experiment. Written atomically. */
int experiment_write(const Experiment *x, const char *path, MnError *e);

/* For documentation and completion: each key's dotted name, type name,
 * default as text and one-line help, in table order; NULL name ends. */
typedef struct {
    const char *key;
    const char *type;
    const char *def;
    const char *help;
} ExperimentKeyInfo;
const ExperimentKeyInfo *experiment_keys(void);
/* Whether the key (its full dotted name) names a file or folder
 * (finetune.policy, policy.path). */
int experiment_key_is_path(const char *key);

/* Optimal string alignment distance, for "did you mean": typos are mostly
 * one edit or one swapped pair of letters. INT_MAX for words of 64 or more. */
int edit_distance(const char *a, const char *b);

#endif
