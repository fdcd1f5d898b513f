#include "predict.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include <libconfig.h>

#include "checkpoint.h"
#include "data.h"
#include "hf.h"
#include "lines.h"
#include "mlm.h"
#include "model.h"
#include "bf16.h"
#include "safetensors.h"
#include "tokenizer.h"

typedef struct {
    const char *checkpoint;    /* a checkpoint file or a model folder */
    const char *task;
    int ids;
    int pair;                  /* text_a<TAB>text_b lines */
    int precision;             /* PRECISION_*, or -1: the run's */
} PredictArgs;

static int parse_args(int argc, char **argv, PredictArgs *a)
{
    memset(a, 0, sizeof *a);
    a->precision = -1;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--task") == 0 && i + 1 < argc)
            a->task = argv[++i];
        else if (strcmp(argv[i], "--precision") == 0 && i + 1 < argc) {
            if ((a->precision = precision_parse(argv[++i])) < 0) {
                fprintf(stderr, "mneme predict: --precision %s: expected fp32 or bf16\n", argv[i]);
                return 2;
            }
        }
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
        fprintf(stderr, "usage: mneme predict CHECKPOINT|MODEL_DIR --task NAME|mlm [--ids | --pair] "
                "[--precision fp32|bf16]\n");
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

/* Lines of stdin, each as a one-row batch of the model's input. */
typedef struct {
    const Model *m;
    const Tokenizer *tok;
    int use_ids, pair;
    Batch b;
    TokenSeq seq;
    LineReader lr;
    char *line;                /* the current line, in lr's buffer */
    long lineno;
} Input;

static int input_open(Input *in, const Model *m, const Tokenizer *tok, int use_ids, int pair)
{
    MnError e;
    memset(in, 0, sizeof *in);
    in->m = m;
    in->tok = tok;
    in->use_ids = use_ids;
    in->pair = pair;
    line_reader_init(&in->lr, stdin, "stdin");
    if (batch_alloc(&in->b, 1, m->cfg.max_len, &e) < 0) {
        fprintf(stderr, "mneme predict: %s\n", e.msg);
        return -1;
    }
    return 0;
}

static void input_close(Input *in)
{
    line_reader_free(&in->lr);
    token_seq_free(&in->seq);
    batch_free(&in->b);
}

/* Rows of the word embedding table as loaded: an id at or past it would
 * read beyond the table. */
static int embedding_rows(const Model *m)
{
    int t = model_find_tensor(m, "bert.embeddings.word_embeddings.weight");
    return t >= 0 ? m->tensors[t].shape[0] : m->cfg.vocab;
}

/* Every token type of the row inside the model's table (predict_line
 * has checked the ids against the word embeddings). */
static int types_fit(const Model *m, const Batch *b, int n, long lineno)
{
    int types = m->cfg.type_vocab;
    for (int t = 0; t < n && types > 0; t++)
        if (b->types[t] < 0 || b->types[t] >= types) {
            fprintf(stderr, "mneme predict: stdin:%ld: token type %d is outside the model's "
                    "%d token types\n", lineno, b->types[t], types);
            return -1;
        }
    return 0;
}

int predict_line(const Tokenizer *tok, int vocab, int max_len, int use_ids, int pair,
                 char *line, long lineno, TokenSeq *seq, Batch *b)
{
    MnError e;
    int n;
    memset(b->types, 0, (size_t)max_len * sizeof *b->types);
    if (use_ids)
        n = parse_ids(line, b->ids, max_len, vocab, lineno);
    else {
        char *second = NULL;
        if (pair) {
            second = strchr(line, '\t');
            if (!second || strchr(second + 1, '\t')) {
                fprintf(stderr, "mneme predict: stdin:%ld: expected text<TAB>text\n", lineno);
                return -1;
            }
            *second++ = 0;
        }
        n = tokenizer_encode(tok, line, second, max_len, seq, &e);
        if (n < 0)
            fprintf(stderr, "mneme predict: stdin:%ld: %s\n", lineno, e.msg);
        else {
            n = seq->n;
            memcpy(b->ids, seq->ids, (size_t)n * sizeof *b->ids);
            memcpy(b->types, seq->types, (size_t)n * sizeof *b->types);
        }
        if (second)
            second[-1] = '\t';
        /* a tokenizer's ids past a small model's table (a byte-level
         * checkpoint with fewer rows than bytes) */
        for (int t = 0; t < n; t++)
            if (b->ids[t] < 0 || b->ids[t] >= vocab) {
                fprintf(stderr, "mneme predict: stdin:%ld: token id %d is outside the model's "
                        "%d word embeddings\n", lineno, b->ids[t], vocab);
                return -1;
            }
    }
    if (n < 0)
        return -1;
    b->B = 1;
    b->T = n;
    b->len[0] = n;
    b->label[0] = -1;
    return n;
}

/* The next line into in->b (head task), 0 at the end of input, or -1
 * after saying what is wrong with the line. */
static int input_next(Input *in, int task)
{
    MnError e;
    size_t len;
    int got = line_reader_next(&in->lr, &in->line, &len, &e);
    if (got <= 0) {
        if (got < 0)
            fprintf(stderr, "mneme predict: %s\n", e.msg);
        return got;
    }
    in->lineno = in->lr.lineno;
    int n = predict_line(in->tok, embedding_rows(in->m), in->m->cfg.max_len, in->use_ids, in->pair,
                         in->line, in->lineno, &in->seq, &in->b);
    if (n < 0 || types_fit(in->m, &in->b, n, in->lineno) < 0)
        return -1;
    in->b.task[0] = task;
    return 1;
}

/* One output line per input line: a result that cannot be written is an
 * error naming the line, never a line left out. */
static int print_json(json_t *o, long lineno)
{
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(7))
                : NULL;
    if (s)
        puts(s);
    else
        fprintf(stderr, "mneme predict: stdin:%ld: out of memory for the result\n", lineno);
    free(s);
    json_decref(o);
    return s ? 0 : -1;
}

/* NaN or infinity in a model's output (weights that overflowed, or were
 * stored so) has no JSON number: an error naming the line, never a line
 * with a number left out. */
static int finite_out(const float *x, size_t n, long lineno)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            fprintf(stderr, "mneme predict: stdin:%ld: the model's output is not finite (%g at "
                    "%zu): its weights hold NaN or infinity, or overflowed\n", lineno,
                    (double)x[i], i);
            return -1;
        }
    return 0;
}

static int predict_lines(Model *m, const Tokenizer *tok, const LabelSet *labels, int task,
                         int use_ids, int pair)
{
    Input in;
    int rc, K = m->cfg.n_labels[task];
    if (input_open(&in, m, tok, use_ids, pair) < 0)
        return 1;
    while ((rc = input_next(&in, task)) > 0) {
        model_forward(m, &in.b);
        const float *logits = m->act.logits, *probs = m->act.probs;
        if (finite_out(logits, (size_t)K, in.lineno) < 0) {
            input_close(&in);
            return 1;
        }
        int best = 0;
        json_t *lg = json_array();
        for (int k = 0; k < K; k++) {
            json_array_append_new(lg, json_real(logits[k]));
            if (probs[k] > probs[best])
                best = k;
        }
        if (print_json(json_pack("{s:s, s:s, s:o, s:f}", use_ids ? "ids" : "text", in.line,
                                 "label", labels[task].names[best], "logits", lg, "prob",
                                 (double)probs[best]), in.lineno) < 0) {
            input_close(&in);
            return 1;
        }
    }
    input_close(&in);
    return rc < 0 ? 2 : 0;
}

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* The fill-mask output for one line: the top 5 tokens at each [MASK]. */
static int predict_mlm_line(Model *m, const MlmHead *h, const Tokenizer *tok, const char *line,
                            const Batch *b, int n, long lineno, int use_ids)
{
    MnError e;
    int *pos = malloc((size_t)(n > 0 ? n : 1) * sizeof *pos), np = 0;
    for (int t = 0; pos && t < n; t++)
        if (b->ids[t] == tok->mask)
            pos[np++] = t;
    /* one output line per input line, so a line without a mask answers
     * with none, and the stream goes on */
    if (pos && !np)
        fprintf(stderr, "mneme predict: stdin:%ld: no [MASK] (id %d) in its %d tokens: "
                "\"masks\": []\n", lineno, tok->mask, n);
    float *logits = pos ? malloc(((size_t)np * (size_t)h->vocab + 1) * sizeof *logits) : NULL;
    if (!logits || (np && mlm_logits(m, h, b, pos, np, logits, &e) < 0)) {
        fprintf(stderr, "mneme predict: %s\n", logits ? e.msg : "out of memory");
        free(logits);
        free(pos);
        return 1;
    }
    if (finite_out(logits, (size_t)np * (size_t)h->vocab, lineno) < 0) {
        free(logits);
        free(pos);
        return 1;
    }
    json_t *masks = json_array();
    for (int i = 0; i < np; i++) {
        const float *l = logits + (size_t)i * h->vocab;
        int top[5], k = 0;
        double mx = l[0], sum = 0.0;
        for (int v = 1; v < h->vocab; v++)
            if (l[v] > mx)
                mx = l[v];
        for (int v = 0; v < h->vocab; v++)
            sum += exp((double)l[v] - mx);
        /* the five best, highest first (ties: the lower id) */
        for (; k < 5 && k < h->vocab; k++) {
            int best = -1;
            for (int v = 0; v < h->vocab; v++) {
                int taken = 0;
                for (int j = 0; j < k; j++)
                    taken |= top[j] == v;
                if (!taken && (best < 0 || l[v] > l[best]))
                    best = v;
            }
            top[k] = best;
        }
        json_t *arr = json_array();
        for (int j = 0; j < k; j++) {
            char buf[16];
            json_array_append_new(arr, json_pack("{s:i, s:s, s:f}", "id", top[j], "token",
                                                 tokenizer_token(tok, top[j], buf), "score",
                                                 exp((double)l[top[j]] - mx) / sum));
        }
        json_array_append_new(masks, json_pack("{s:i, s:o}", "position", pos[i], "top", arr));
    }
    int rc = print_json(json_pack("{s:s, s:o}", use_ids ? "ids" : "text", line, "masks", masks),
                        lineno);
    free(logits);
    free(pos);
    return rc < 0 ? 1 : 0;
}

static int predict_mlm_lines(Model *m, const MlmHead *h, const Tokenizer *tok, int use_ids)
{
    Input in;
    int rc, status = 0;
    if (input_open(&in, m, tok, use_ids, 0) < 0)
        return 1;
    while (status == 0 && (rc = input_next(&in, 0)) != 0)
        status = rc < 0 ? 2 : predict_mlm_line(m, h, tok, in.line, &in.b, in.b.T, in.lineno, use_ids);
    input_close(&in);
    return status;
}

/* A model folder as it came from the hub: its own head, when it has one,
 * is the task "original", with the labels of its id2label; with mlm, its
 * MLM head goes to head. */
static int load_folder(const char *dir, Model *m, ModelConfig *cfg, LabelSet *labels,
                       Tokenizer *tok, int need_tok, MlmHead *head, MnError *e)
{
    HfModel h;
    char ck[1100];
    snprintf(ck, sizeof ck, "%s/checkpoints", dir);
    if (is_dir(ck))
        return mn_fail(e, "%s is a run folder: predict takes one of its checkpoints, such as "
                       "%s/final.safetensors", dir, ck);
    if (hf_open(&h, dir, e) < 0)
        return -1;
    if (!h.head_labels && !head) {
        hf_close(&h);
        return mn_fail(e, "%s: the model has no classification head (classifier.weight); "
                       "--task mlm fills [MASK] with its MLM head", dir);
    }
    *cfg = h.shape;
    /* buffers for what a text can hold, not for 8192 positions */
    cfg->max_len = cfg->max_positions < HF_PREDICT_MAX_LEN ? cfg->max_positions : HF_PREDICT_MAX_LEN;
    cfg->n_tasks = 1;
    snprintf(cfg->task_name[0], TASK_NAME_MAX, "original");
    cfg->n_labels[0] = h.head_labels ? h.head_labels : 1;
    labels[0] = h.labels;
    int rc = model_check_memory(cfg, 1, 1, 0, e);
    if (rc == 0)
        rc = model_create(m, cfg, 1, e);
    if (rc == 0)
        rc = hf_load(&h, m, h.head_labels ? 0 : -1, e);
    if (rc == 0 && head)
        rc = hf_load_mlm(&h, head, e);
    hf_close(&h);
    if (rc == 0 && need_tok && tokenizer_load(tok, dir, e) < 0)
        rc = -1;
    if (rc == 0 && need_tok && tok->vocab_size > cfg->vocab)
        rc = mn_fail(e, "%s: vocab.txt has %d tokens, more than vocab_size %d", dir,
                     tok->vocab_size, cfg->vocab);
    return rc;
}

/* The experiment.cfg of the run whose checkpoints/ folder holds path:
 * 1 with its path in exp, 0 when path is not in a run's checkpoints/. */
static int run_experiment_of(const char *path, char *exp, size_t n)
{
    char *dir = realpath(path, NULL);
    char *slash = dir ? strrchr(dir, '/') : NULL;
    if (slash)
        *slash = 0;
    char *base = slash ? strrchr(dir, '/') : NULL;
    if (!base || strcmp(base + 1, "checkpoints") != 0) {
        free(dir);
        return 0;
    }
    *base = 0;
    snprintf(exp, n, "%s/experiment.cfg", dir);
    free(dir);
    return 1;
}

/* The attention heads shape no tensor, so a metadata that says otherwise
 * would load and predict differently without a word: a checkpoint in a
 * run's checkpoints/ folder must agree with that run's experiment.cfg. */
static int heads_match_run(const char *path, const ModelConfig *cfg, MnError *e)
{
    char exp[PATH_MAX + 32];
    if (!run_experiment_of(path, exp, sizeof exp))
        return 0;
    config_t c;
    int heads = 0, rc = 0;
    config_init(&c);
    if (config_read_file(&c, exp) && config_lookup_int(&c, "model.heads", &heads) &&
        heads != cfg->heads)
        rc = mn_fail(e, "%s: its metadata (mneme.model) says heads %d, but the run's %s "
                     "says model.heads = %d: the checkpoint was altered or belongs to "
                     "another run", path, cfg->heads, exp, heads);
    config_destroy(&c);
    return rc;
}

/* A run's checkpoint predicts as the run evaluated: in its
 * model.precision. Anything else, fp32 unless --precision says. */
static int run_precision(const char *path)
{
    char exp[PATH_MAX + 32];
    const char *v = NULL;
    int p = PRECISION_FP32;
    if (!run_experiment_of(path, exp, sizeof exp))
        return p;
    config_t c;
    config_init(&c);
    if (config_read_file(&c, exp) && config_lookup_string(&c, "model.precision", &v) &&
        precision_parse(v) >= 0)
        p = precision_parse(v);
    config_destroy(&c);
    return p;
}

/* A run's checkpoint: the model, and the task's index in it. */
static int load_checkpoint(const char *path, const char *task_name, Model *m,
                           ModelConfig *cfg, LabelSet *labels, int *task, MnError *e)
{
    StFile f;
    if (safetensors_read(&f, path, e) < 0)
        return -1;
    int rc = checkpoint_read_config(&f, cfg, labels, e);
    *task = -1;
    for (int k = 0; rc == 0 && k < cfg->n_tasks; k++)
        if (strcmp(cfg->task_name[k], task_name) == 0)
            *task = k;
    if (rc == 0 && *task < 0 && strcmp(task_name, "mlm") != 0) {
        char have[256] = "";
        for (int k = 0; k < cfg->n_tasks; k++)
            snprintf(have + strlen(have), sizeof have - strlen(have), " %s", cfg->task_name[k]);
        rc = mn_fail(e, "%s has no task '%s' (it has:%s, and mlm for a run from a Hugging "
                     "Face model)", path, task_name, have);
    }
    if (rc == 0 && *task >= 0 && labels[*task].n_labels == 1 &&
        strcmp(labels[*task].names[0], "mlm") == 0)
        rc = mn_fail(e, "the %s task of %s is masked-language modelling, which has no "
                     "classification head: --task mlm fills [MASK] with the base model's MLM "
                     "head", task_name, path);
    if (rc == 0)
        rc = heads_match_run(path, cfg, e);
    if (rc == 0)
        rc = model_check_memory(cfg, 1, 1, 0, e);
    if (rc == 0)
        rc = model_create(m, cfg, 1, e);
    if (rc == 0)
        rc = checkpoint_require(&f, m, *task, path, e);
    if (rc == 0)
        rc = checkpoint_load(&f, m, NULL, NULL, e);
    safetensors_free(&f);
    return rc;
}

/* The MLM head of the model a run started from (base.from). */
static int run_mlm_head(const char *hf_dir, MlmHead *head, MnError *e)
{
    char base[1024];
    HfModel h;
    hf_run_base_from(hf_dir, base, sizeof base);
    if (!base[0])
        return mn_fail(e, "%s: the run's experiment.cfg names no base.from", hf_dir);
    if (hf_open(&h, base, e) < 0)
        return mn_wrap(e, "the run's base.from");
    int rc = hf_load_mlm(&h, head, e);
    hf_close(&h);
    return rc;
}

int predict_main(int argc, char **argv)
{
    PredictArgs a;
    ModelConfig cfg;
    LabelSet labels[MODEL_MAX_TASKS];
    Model m;
    MnError e;
    Tokenizer tok;
    MlmHead head;
    char tdir[1024];
    int rc = parse_args(argc, argv, &a), task = 0;
    if (rc)
        return rc;
    int mlm = strcmp(a.task, "mlm") == 0, tok_loaded = 0;
    if (mlm && a.pair) {
        fprintf(stderr, "mneme predict: --task mlm fills [MASK] in single texts; --pair is for "
                "a classification head\n");
        return 2;
    }
    tokenizer_bytes(&tok);
    memset(&m, 0, sizeof m);
    memset(&head, 0, sizeof head);
    if (is_dir(a.checkpoint)) {
        /* --ids with mlm still needs the tokenizer's [MASK] id */
        rc = load_folder(a.checkpoint, &m, &cfg, labels, &tok, !a.ids || mlm, mlm ? &head : NULL,
                         &e);
        if (rc == 0 && !mlm && strcmp(a.task, "original") != 0)
            rc = mn_fail(&e, "%s has one task, its own head: --task original (or mlm)",
                         a.checkpoint);
    } else {
        int has_hf = hf_run_files(a.checkpoint, tdir, sizeof tdir);
        rc = 0;
        if (has_hf && (!a.ids || mlm)) {
            rc = tokenizer_load(&tok, tdir, &e);
            tok_loaded = rc == 0;
        }
        if (rc == 0 && mlm && !has_hf)
            rc = mn_fail(&e, "%s: --task mlm needs a run started from a Hugging Face model "
                         "(base.from)", a.checkpoint);
        if (rc == 0)
            rc = load_checkpoint(a.checkpoint, a.task, &m, &cfg, labels, &task, &e);
        if (rc == 0 && mlm)
            rc = run_mlm_head(tdir, &head, &e);
        if (rc == 0 && tok_loaded && tok.vocab_size > cfg.vocab)
            rc = mn_fail(&e, "%s: its vocab.txt has %d tokens, more than the model's %d rows",
                         tdir, tok.vocab_size, cfg.vocab);
        /* Without the run's vocab.txt the text goes through the byte-level
         * tokenizer, whose model has a row for every byte and no more. */
        if (rc == 0 && !tok_loaded && (!a.ids || mlm) && tok.vocab_size != embedding_rows(&m))
            rc = mn_fail(&e, "%s: the model has %d word embeddings, but the byte-level "
                         "tokenizer has %d ids (and no hf/vocab.txt is beside the run)",
                         a.checkpoint, embedding_rows(&m), tok.vocab_size);
        if (rc == 0 && mlm && (head.hidden != cfg.hidden || head.vocab != cfg.vocab))
            rc = mn_fail(&e, "the MLM head of the run's base.from (hidden %d, vocabulary %d) "
                         "does not fit %s (hidden %d, vocabulary %d): has that folder changed?",
                         head.hidden, head.vocab, a.checkpoint, cfg.hidden, cfg.vocab);
    }
    if (rc == 0 && mlm)
        rc = mlm_check_vocab(&tok, is_dir(a.checkpoint) ? a.checkpoint : tdir, &e);
    if (rc == 0) {
        int p = a.precision >= 0        ? a.precision
                : is_dir(a.checkpoint) ? PRECISION_FP32
                                       : run_precision(a.checkpoint);
        rc = model_set_precision(&m, p, &e);
    }
    if (rc == 0 && a.pair && cfg.type_vocab == 1)
        rc = mn_fail(&e, "%s has one token type (type_vocab_size 1): it takes no sentence pairs",
                     a.checkpoint);
    if (rc < 0) {
        fprintf(stderr, "mneme predict: %s\n", e.msg);
        rc = 2;
    } else if (mlm)
        rc = predict_mlm_lines(&m, &head, &tok, a.ids);
    else
        rc = predict_lines(&m, &tok, labels, task, a.ids, a.pair);
    mlm_head_free(&head);
    model_free(&m);
    tokenizer_free(&tok);
    return rc;
}
