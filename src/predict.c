#include "predict.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "data.h"
#include "model.h"
#include "safetensors.h"
#include "tokenizer.h"

typedef struct {
    const char *checkpoint;
    const char *task;
    int ids;
} PredictArgs;

static int parse_args(int argc, char **argv, PredictArgs *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--task") == 0 && i + 1 < argc)
            a->task = argv[++i];
        else if (strcmp(argv[i], "--ids") == 0)
            a->ids = 1;
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
        fprintf(stderr, "usage: mneme predict CHECKPOINT --task NAME [--ids]\n");
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

static int predict_lines(Model *m, const LabelSet *labels, int task, int use_ids)
{
    Batch b;
    MnError e;
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
        int n = use_ids ? parse_ids(line, b.ids, m->cfg.max_len, m->cfg.vocab, lineno)
                        : tokenize(line, b.ids, m->cfg.max_len);
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
    batch_free(&b);
    return status;
}

int predict_main(int argc, char **argv)
{
    PredictArgs a;
    StFile f;
    ModelConfig cfg;
    LabelSet labels[MODEL_MAX_TASKS];
    Model m;
    MnError e;
    int rc = parse_args(argc, argv, &a), task = -1;
    if (rc)
        return rc;
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
    rc = predict_lines(&m, labels, task, a.ids);
    model_free(&m);
    return rc;
}
