#include "predict.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "checkpoint.h"
#include "data.h"
#include "hf.h"
#include "model.h"
#include "safetensors.h"
#include "tokenizer.h"

typedef struct {
    const char *checkpoint;    /* a checkpoint file or a model folder */
    const char *task;
    int ids;
    int pair;                  /* text_a<TAB>text_b lines */
} PredictArgs;

static int parse_args(int argc, char **argv, PredictArgs *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--task") == 0 && i + 1 < argc)
            a->task = argv[++i];
        else if (strcmp(argv[i], "--ids") == 0)
            a->ids = 1;
        else if (strcmp(argv[i], "--pair") == 0)
            a->pair = 1;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "mneme predict: unknown option %s\n", argv[i]);
            return 2;
        } else if (!a->checkpoint)
            a->checkpoint = argv[i];
        else {
            fprintf(stderr, "mneme predict: unexpected argument %s\n", argv[i]);
            return 2;
        }
    }
    if (!a->checkpoint || !a->task) {
        fprintf(stderr, "usage: mneme predict CHECKPOINT|MODEL_DIR --task NAME [--ids | --pair]\n");
        return 2;
    }
    return 0;
}

/* Token ids exactly as given: nothing is added, nothing cut. */
static int parse_ids(const char *line, int *ids, int max_len, int vocab, long lineno)
{
    int n = 0;
    const char *p = line;
    for (;;) {
        char *end;
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p || *p == '\n' || *p == '\r')
            break;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || (*end && *end != ' ' && *end != '\t' && *end != '\n' && *end != '\r')) {
            fprintf(stderr, "mneme predict: stdin:%ld: expected whitespace-separated token ids\n", lineno);
            return -1;
        }
        if (v < 0 || v >= vocab) {
            fprintf(stderr, "mneme predict: stdin:%ld: token id %ld is outside the vocabulary 0..%d\n",
                    lineno, v, vocab - 1);
            return -1;
        }
        if (n == max_len) {
            fprintf(stderr, "mneme predict: stdin:%ld: more than max_len %d ids\n", lineno, max_len);
            return -1;
        }
        ids[n++] = (int)v;
        p = end;
    }
    if (n == 0) {
        fprintf(stderr, "mneme predict: stdin:%ld: no token ids\n", lineno);
        return -1;
    }
    return n;
}

static int predict_lines(Model *m, const Tokenizer *tok, const LabelSet *labels, int task,
                         int use_ids, int pair)
{
    Batch b;
    MnError e;
    TokenSeq seq = { 0 };
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int status = 0, K = m->cfg.n_labels[task];
    if (batch_alloc(&b, 1, m->cfg.max_len, &e) < 0) {
        fprintf(stderr, "mneme predict: %s\n", e.msg);
        return 1;
    }
    while ((len = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        int n;
        memset(b.types, 0, (size_t)m->cfg.max_len * sizeof *b.types);
        if (use_ids)
            n = parse_ids(line, b.ids, m->cfg.max_len, m->cfg.vocab, lineno);
        else {
            char *second = NULL;
            if (pair) {
                second = strchr(line, '\t');
                if (!second || strchr(second + 1, '\t')) {
                    fprintf(stderr, "mneme predict: stdin:%ld: expected text<TAB>text\n", lineno);
                    status = 2;
                    break;
                }
                *second++ = 0;
            }
            n = tokenizer_encode(tok, line, second, m->cfg.max_len, &seq, &e);
            if (n < 0)
                fprintf(stderr, "mneme predict: stdin:%ld: %s\n", lineno, e.msg);
            else {
                n = seq.n;
                memcpy(b.ids, seq.ids, (size_t)n * sizeof *b.ids);
                memcpy(b.types, seq.types, (size_t)n * sizeof *b.types);
            }
            if (second)
                second[-1] = '\t';
        }
        if (n < 0) {
            status = 2;
            break;
        }
        b.B = 1;
        b.T = n;
        b.len[0] = n;
        b.task[0] = task;
        b.label[0] = -1;
        model_forward(m, &b);
        const float *logits = m->act.logits, *probs = m->act.probs;
        int best = 0;
        json_t *lg = json_array();
        for (int k = 0; k < K; k++) {
            json_array_append_new(lg, json_real(logits[k]));
            if (probs[k] > probs[best])
                best = k;
        }
        json_t *o = json_pack("{s:s, s:s, s:o, s:f}", use_ids ? "ids" : "text", line,
                              "label", labels[task].names[best], "logits", lg,
                              "prob", (double)probs[best]);
        char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(7));
        if (s)
            puts(s);
        free(s);
        json_decref(o);
    }
    free(line);
    token_seq_free(&seq);
    batch_free(&b);
    return status;
}

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* A model folder as it came from the hub: its own head is the task
 * "original", with the labels of its id2label. */
static int load_folder(const char *dir, Model *m, ModelConfig *cfg, LabelSet *labels,
                       Tokenizer *tok, int need_tok, MnError *e)
{
    HfModel h;
    if (hf_open(&h, dir, e) < 0)
        return -1;
    if (!h.head_labels) {
        hf_close(&h);
        return mn_fail(e, "%s: the model has no classification head (classifier.weight)", dir);
    }
    *cfg = h.shape;
    cfg->max_len = cfg->max_positions;
    cfg->n_tasks = 1;
    snprintf(cfg->task_name[0], TASK_NAME_MAX, "original");
    cfg->n_labels[0] = h.head_labels;
    labels[0] = h.labels;
    int rc = model_create(m, cfg, 1, e);
    if (rc == 0)
        rc = hf_load(&h, m, 0, e);
    hf_close(&h);
    if (rc == 0 && need_tok && tokenizer_load(tok, dir, e) < 0)
        rc = -1;
    if (rc == 0 && need_tok && tok->vocab_size > cfg->vocab)
        rc = mn_fail(e, "%s: vocab.txt has %d tokens, more than vocab_size %d", dir,
                     tok->vocab_size, cfg->vocab);
    return rc;
}

int predict_main(int argc, char **argv)
{
    PredictArgs a;
    StFile f;
    ModelConfig cfg;
    LabelSet labels[MODEL_MAX_TASKS];
    Model m;
    MnError e;
    Tokenizer tok;
    int rc = parse_args(argc, argv, &a), task = -1;
    if (rc)
        return rc;
    tokenizer_bytes(&tok);
    if (is_dir(a.checkpoint)) {
        memset(&m, 0, sizeof m);
        if (load_folder(a.checkpoint, &m, &cfg, labels, &tok, !a.ids, &e) < 0) {
            fprintf(stderr, "mneme predict: %s\n", e.msg);
            model_free(&m);
            tokenizer_free(&tok);
            return 2;
        }
        if (strcmp(a.task, "original") != 0) {
            fprintf(stderr, "mneme predict: %s has one task, its own head: --task original\n",
                    a.checkpoint);
            model_free(&m);
            tokenizer_free(&tok);
            return 2;
        }
        rc = predict_lines(&m, &tok, labels, 0, a.ids, a.pair);
        model_free(&m);
        tokenizer_free(&tok);
        return rc;
    }
    char tdir[2048];
    if (!a.ids && hf_run_files(a.checkpoint, tdir, sizeof tdir) &&
        tokenizer_load(&tok, tdir, &e) < 0) {
        fprintf(stderr, "mneme predict: %s\n", e.msg);
        return 2;
    }
    if (safetensors_read(&f, a.checkpoint, &e) < 0) {
        fprintf(stderr, "mneme predict: %s\n", e.msg);
        return 2;
    }
    if (checkpoint_read_config(&f, &cfg, labels, &e) < 0) {
        fprintf(stderr, "mneme predict: %s: %s\n", a.checkpoint, e.msg);
        safetensors_free(&f);
        return 2;
    }
    for (int k = 0; k < cfg.n_tasks; k++)
        if (strcmp(cfg.task_name[k], a.task) == 0)
            task = k;
    if (task < 0) {
        fprintf(stderr, "mneme predict: %s has no task '%s' (it has:", a.checkpoint, a.task);
        for (int k = 0; k < cfg.n_tasks; k++)
            fprintf(stderr, " %s", cfg.task_name[k]);
        fprintf(stderr, ")\n");
        safetensors_free(&f);
        return 2;
    }
    if (model_create(&m, &cfg, 1, &e) < 0 || checkpoint_load(&f, &m, NULL, NULL, &e) < 0) {
        fprintf(stderr, "mneme predict: %s: %s\n", a.checkpoint, e.msg);
        safetensors_free(&f);
        model_free(&m);
        return 2;
    }
    safetensors_free(&f);
    rc = predict_lines(&m, &tok, labels, task, a.ids, a.pair);
    model_free(&m);
    tokenizer_free(&tok);
    return rc;
}
