#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Six significant digits: enough for accuracies and rates, and a resumed
 * run prints the very same text. */
#define JSON_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6))

int history_push(History *h, const EvalRecord *r, MnError *e)
{
    if (h->n == h->cap) {
        int cap = h->cap ? h->cap * 2 : 64;
        EvalRecord *v = realloc(h->v, (size_t)cap * sizeof *v);
        if (!v)
            return mn_fail(e, "out of memory for the metric history");
        h->v = v;
        h->cap = cap;
    }
    h->v[h->n++] = *r;
    return 0;
}

void history_free(History *h)
{
    free(h->v);
    memset(h, 0, sizeof *h);
}

static json_t *score_json(int has, const TaskScore *s)
{
    if (!has)
        return json_null();
    return json_pack("{s:f, s:f}", "loss", s->loss, "acc", s->acc);
}

/* An MLM score also carries its perplexity, exp(loss per masked token). */
static json_t *original_json(const EvalRecord *r, int has, const TaskScore *s)
{
    json_t *o = score_json(has, s);
    if (has && r->original_mlm && o)
        json_object_set_new(o, "ppl", json_real(exp(s->loss)));
    return o;
}

char *eval_record_json(const EvalRecord *r, const char *branch)
{
    json_t *o = json_pack("{s:I, s:f, s:s, s:s, s:f, s:o, s:o}",
                          "step", (json_int_t)r->step, "epoch", r->epoch,
                          "branch", branch, "phase", r->phase, "lr", r->lr,
                          "new", score_json(r->has_new, &r->new_task),
                          "original", original_json(r, r->has_original, &r->original));
    if (!o)
        return NULL;
    json_object_set_new(o, "train_loss", r->has_train_loss ? json_real(r->train_loss) : json_null());
    json_object_set_new(o, "ewc_lambda", json_real(r->ewc_lambda));
    if (r->has_adapter_off)
        json_object_set_new(o, "original_adapter_off",
                            original_json(r, 1, &r->original_adapter_off));
    if (strcmp(r->phase, "finetune") == 0)
        json_object_set_new(o, "crossover_step",
                            r->crossover_step >= 0 ? json_integer(r->crossover_step) : json_null());
    json_object_set_new(o, "elapsed_s", json_real(round(r->elapsed_s * 1000.0) / 1000.0));
    char *s = json_dumps(o, JSON_FLAGS);
    json_decref(o);
    return s;
}

static int parse_score(json_t *o, int *has, TaskScore *s)
{
    *has = 0;
    if (!o || json_is_null(o))
        return 0;
    json_t *l = json_object_get(o, "loss"), *a = json_object_get(o, "acc");
    if (!json_is_number(l) || !json_is_number(a))
        return -1;
    s->loss = json_number_value(l);
    s->acc = json_number_value(a);
    *has = 1;
    return 0;
}

int eval_record_parse(const char *line, EvalRecord *r, MnError *e)
{
    json_error_t je;
    json_t *o = json_loads(line, 0, &je);
    memset(r, 0, sizeof *r);
    if (!o)
        return mn_fail(e, "not JSON: %s", je.text);
    json_t *step = json_object_get(o, "step"), *phase = json_object_get(o, "phase");
    json_t *tl = json_object_get(o, "train_loss");
    if (!json_is_integer(step) || !json_is_string(phase) ||
        parse_score(json_object_get(o, "new"), &r->has_new, &r->new_task) ||
        parse_score(json_object_get(o, "original"), &r->has_original, &r->original)) {
        json_decref(o);
        return mn_fail(e, "a metrics line lacks step, phase or scores");
    }
    r->step = (long)json_integer_value(step);
    snprintf(r->phase, sizeof r->phase, "%s", json_string_value(phase));
    r->epoch = json_number_value(json_object_get(o, "epoch"));
    r->lr = json_number_value(json_object_get(o, "lr"));
    r->elapsed_s = json_number_value(json_object_get(o, "elapsed_s"));
    r->ewc_lambda = json_number_value(json_object_get(o, "ewc_lambda"));
    parse_score(json_object_get(o, "original_adapter_off"), &r->has_adapter_off,
                &r->original_adapter_off);
    json_t *orig = json_object_get(o, "original");
    r->original_mlm = json_is_object(orig) && json_object_get(orig, "ppl") != NULL;
    json_t *cx = json_object_get(o, "crossover_step");
    r->crossover_step = json_is_integer(cx) ? (long)json_integer_value(cx) : -1;
    r->has_train_loss = json_is_number(tl);
    r->train_loss = r->has_train_loss ? json_number_value(tl) : 0.0;
    json_decref(o);
    return 0;
}

static int is_finetune(const EvalRecord *r)
{
    return strcmp(r->phase, "finetune") == 0 && r->has_new && r->has_original;
}

/* Mean of field over the finetune records ending at index i (up to w). */
static double smoothed(const History *h, int i, int original)
{
    double sum = 0.0;
    int n = 0;
    for (int j = i; j >= 0 && n < CROSSOVER_WINDOW; j--) {
        if (!is_finetune(&h->v[j]))
            break;
        sum += original ? h->v[j].original.acc : h->v[j].new_task.acc;
        n++;
    }
    return n ? sum / n : 0.0;
}

int crossover_find(const History *h)
{
    int prev = -1;
    for (int i = 0; i < h->n; i++) {
        if (!is_finetune(&h->v[i]))
            continue;
        if (prev >= 0) {
            double gain = smoothed(h, i, 0) - smoothed(h, prev, 0);
            double cost = smoothed(h, prev, 1) - smoothed(h, i, 1);
            if (cost > 0.0 && gain < cost)
                return i;
        }
        prev = i;
    }
    return -1;
}

int write_file_atomic(const char *path, const char *data, size_t len, MnError *e)
{
    char tmp[4096];
    int fd;
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return mn_fail(e, "%s: %s", tmp, strerror(errno));
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int err = w < 0 ? errno : EIO;
            close(fd);
            unlink(tmp);
            return mn_fail(e, "%s: %s", path, strerror(err));
        }
        off += (size_t)w;
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        int err = errno;
        unlink(tmp);
        return mn_fail(e, "%s: %s", path, strerror(err));
    }
    if (rename(tmp, path) < 0) {
        int err = errno;
        unlink(tmp);
        return mn_fail(e, "%s: %s", path, strerror(err));
    }
    return 0;
}

static json_t *record_scores(const EvalRecord *r)
{
    return json_pack("{s:I, s:o, s:o}", "step", (json_int_t)r->step,
                     "original", score_json(r->has_original, &r->original),
                     "new", score_json(r->has_new, &r->new_task));
}

int summary_write(const char *path, const History *h, const char *name,
                  const char *status, json_t *extra, MnError *e)
{
    const EvalRecord *base = NULL, *fin = NULL, *best = NULL, *prev = NULL;
    double max_drop = 0.0, area = 0.0;
    for (int i = 0; i < h->n; i++) {
        const EvalRecord *r = &h->v[i];
        if (!is_finetune(r))
            continue;
        /* the evaluation before the first step, and no other: after a
         * gap in the history a later one would pass for it */
        if (!base && r->step == 0)
            base = r;
        /* Trapezoids between evaluations: steps at low accuracy cost more
         * the longer the model stayed there. */
        if (prev)
            area += 0.5 * (prev->original.acc + r->original.acc) * (double)(r->step - prev->step);
        prev = r;
        fin = r;
        if (!best || r->new_task.acc > best->new_task.acc)
            best = r;
        if (base && base->original.acc - r->original.acc > max_drop)
            max_drop = base->original.acc - r->original.acc;
    }
    int cx = crossover_find(h);
    json_t *o = json_pack("{s:s, s:s}", "name", name, "status", status);
    json_object_set_new(o, "baseline", base ? record_scores(base) : json_null());
    json_object_set_new(o, "final", fin ? record_scores(fin) : json_null());
    json_object_set_new(o, "best", best ? json_pack("{s:I, s:{s:f}}", "step",
                        (json_int_t)best->step, "new", "acc", best->new_task.acc) : json_null());
    json_object_set_new(o, "forgetting", base && fin ?
                        json_real(base->original.acc - fin->original.acc) : json_null());
    json_object_set_new(o, "max_original_drop", base ? json_real(max_drop) : json_null());
    json_object_set_new(o, "original_acc_area",
                        base && fin && fin->step > base->step ?
                        json_real(area / (double)(fin->step - base->step)) : json_null());
    json_object_set_new(o, "crossover_step", cx >= 0 ? json_integer(h->v[cx].step) : json_null());
    json_object_set_new(o, "crossover", cx >= 0 ? record_scores(&h->v[cx]) : json_null());
    if (extra)
        json_object_update(o, extra);
    int rc = json_write_atomic(path, o, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6), e);
    json_decref(o);
    return rc;
}

double json_number_at(const json_t *o, const char *a, const char *b, const char *c,
                      double missing)
{
    const json_t *v = json_object_get(o, a);
    if (b)
        v = json_object_get(v, b);
    if (c)
        v = json_object_get(v, c);
    return json_is_number(v) ? json_number_value(v) : missing;
}

int json_write_atomic(const char *path, const json_t *o, size_t flags, MnError *e)
{
    char *s = json_dumps(o, JSON_INDENT(2) | flags);
    if (!s)
        return mn_fail(e, "%s: out of memory", path);
    size_t len = strlen(s);
    char *withnl = realloc(s, len + 2);
    if (!withnl) {
        free(s);
        return mn_fail(e, "%s: out of memory", path);
    }
    withnl[len] = '\n';
    withnl[len + 1] = 0;
    int rc = write_file_atomic(path, withnl, len + 1, e);
    free(withnl);
    return rc;
}
