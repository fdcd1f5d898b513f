#include "wire.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void frame_reader_init(FrameReader *r, size_t max)
{
    memset(r, 0, sizeof *r);
    r->max = max;
}

void frame_reader_free(FrameReader *r)
{
    free(r->buf);
    memset(r, 0, sizeof *r);
}

int frame_reader_feed(FrameReader *r, const void *data, size_t n, MnError *e)
{
    if (n == 0)
        return 0;
    if (n > r->max + 4 || r->len > r->max + 4 - n)
        return mn_fail(e, "more than a frame of %zu bytes arrived at once", r->max);
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n)
            cap *= 2;
        unsigned char *b = realloc(r->buf, cap);
        if (!b)
            return mn_fail(e, "out of memory");
        r->buf = b;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, data, n);
    r->len += n;
    return 0;
}

int frame_reader_next(FrameReader *r, json_t **out, MnError *e)
{
    json_error_t je;
    *out = NULL;
    if (r->len < 4)
        return 0;
    size_t n = (size_t)r->buf[0] << 24 | (size_t)r->buf[1] << 16 | (size_t)r->buf[2] << 8 | r->buf[3];
    if (n == 0 || n > r->max)
        return mn_fail(e, "a frame of %zu bytes (at most %zu)", n, r->max);
    if (r->len - 4 < n)
        return 0;
    json_t *o = json_loadb((const char *)r->buf + 4, n, JSON_REJECT_DUPLICATES, &je);
    memmove(r->buf, r->buf + 4 + n, r->len - 4 - n);
    r->len -= 4 + n;
    if (!o)
        return mn_fail(e, "a frame is not JSON: %s", je.text);
    if (!json_is_object(o) || !json_is_string(json_object_get(o, "t"))) {
        json_decref(o);
        return mn_fail(e, "a frame is not an object with a type \"t\"");
    }
    *out = o;
    return 1;
}

int frame_encode(const json_t *msg, char **out, size_t *n, MnError *e)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    *out = NULL;
    if (!text)
        return mn_fail(e, "a message cannot be encoded");
    size_t len = strlen(text);
    if (len > WIRE_MAX_FRAME) {
        free(text);
        return mn_fail(e, "a message of %zu bytes is over the frame limit", len);
    }
    char *f = malloc(len + 4);
    if (!f) {
        free(text);
        return mn_fail(e, "out of memory");
    }
    f[0] = (char)(len >> 24);
    f[1] = (char)(len >> 16);
    f[2] = (char)(len >> 8);
    f[3] = (char)len;
    memcpy(f + 4, text, len);
    free(text);
    *out = f;
    *n = len + 4;
    return 0;
}

/* ---- snapshots ---- */

int wire_state_of(const char *name)
{
    for (int i = TS_RUNNING; name && i <= TS_STOPPED; i++)
        if (!strcmp(name, trainer_state_name((TrainerState)i)))
            return i;
    return -1;
}

/* JSON has no NaN or infinity: a diverged loss travels as null. */
static json_t *num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

enum { R_NEW = 1, R_ORIGINAL = 2, R_TRAIN = 4, R_OFF = 8, R_MLM = 16 };
#define RECORD_FIELDS 15

static json_t *record_json(const EvalRecord *r)
{
    int flags = (r->has_new ? R_NEW : 0) | (r->has_original ? R_ORIGINAL : 0) |
                (r->has_train_loss ? R_TRAIN : 0) | (r->has_adapter_off ? R_OFF : 0) |
                (r->original_mlm ? R_MLM : 0);
    return json_pack("[I, o, s, o, i, o, o, o, o, o, o, o, o, I, o]", (json_int_t)r->step,
                     num(r->epoch), r->phase, num(r->lr), flags, num(r->new_task.loss),
                     num(r->new_task.acc), num(r->original.loss), num(r->original.acc),
                     num(r->train_loss), num(r->ewc_lambda), num(r->original_adapter_off.loss),
                     num(r->original_adapter_off.acc), (json_int_t)r->crossover_step,
                     num(r->elapsed_s));
}

static double num_of(const json_t *v)
{
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static int record_parse(const json_t *a, EvalRecord *r, MnError *e)
{
    if (!json_is_array(a) || json_array_size(a) != RECORD_FIELDS)
        return mn_fail(e, "an evaluation record is not an array of %d", RECORD_FIELDS);
    const json_t *step = json_array_get(a, 0), *phase = json_array_get(a, 2),
                 *flags = json_array_get(a, 4), *cx = json_array_get(a, 13);
    if (!json_is_integer(step) || !json_is_string(phase) || !json_is_integer(flags) ||
        !json_is_integer(cx))
        return mn_fail(e, "an evaluation record has a field of the wrong type");
    for (int i = 1; i < RECORD_FIELDS; i++) {
        const json_t *v = json_array_get(a, (size_t)i);
        if (i != 2 && !json_is_number(v) && !json_is_null(v))
            return mn_fail(e, "an evaluation record's field %d is not a number", i);
    }
    memset(r, 0, sizeof *r);
    int f = (int)json_integer_value(flags);
    r->step = (long)json_integer_value(step);
    r->epoch = num_of(json_array_get(a, 1));
    snprintf(r->phase, sizeof r->phase, "%s", json_string_value(phase));
    r->lr = num_of(json_array_get(a, 3));
    r->has_new = !!(f & R_NEW);
    r->has_original = !!(f & R_ORIGINAL);
    r->has_train_loss = !!(f & R_TRAIN);
    r->has_adapter_off = !!(f & R_OFF);
    r->original_mlm = !!(f & R_MLM);
    r->new_task.loss = num_of(json_array_get(a, 5));
    r->new_task.acc = num_of(json_array_get(a, 6));
    r->original.loss = num_of(json_array_get(a, 7));
    r->original.acc = num_of(json_array_get(a, 8));
    r->train_loss = num_of(json_array_get(a, 9));
    r->ewc_lambda = num_of(json_array_get(a, 10));
    r->original_adapter_off.loss = num_of(json_array_get(a, 11));
    r->original_adapter_off.acc = num_of(json_array_get(a, 12));
    r->crossover_step = (long)json_integer_value(cx);
    r->elapsed_s = num_of(json_array_get(a, 14));
    return 0;
}

/* {"from": K, "rec": [records K…n-1]} */
static json_t *hist_json(const EvalRecord *v, int n, int from)
{
    json_t *rec = json_array();
    if (from > n || from < 0)
        from = 0;
    for (int i = from; i < n; i++)
        json_array_append_new(rec, record_json(&v[i]));
    return json_pack("{s:i, s:o}", "from", from, "rec", rec);
}

/* Histories grow far beyond any frame's worth of records only in theory:
 * a bound keeps a hostile frame from asking for gigabytes. */
#define HIST_MAX (1 << 22)

static int hist_apply(EvalRecord **v, int *n, int *cap, const json_t *h, MnError *e)
{
    const json_t *from = json_object_get(h, "from"), *rec = json_object_get(h, "rec");
    if (!json_is_integer(from) || !json_is_array(rec))
        return mn_fail(e, "a history needs \"from\" and \"rec\"");
    json_int_t k = json_integer_value(from);
    size_t m = json_array_size(rec);
    if (k < 0 || k > *n)
        return mn_fail(e, "a history starts at record %lld, but %d came before",
                       (long long)k, *n);
    if ((json_int_t)m > HIST_MAX - k)
        return mn_fail(e, "a history of more than %d records", HIST_MAX);
    int total = (int)k + (int)m;
    if (total > *cap) {
        EvalRecord *nv = realloc(*v, sizeof *nv * (size_t)(total + 64));
        if (!nv)
            return mn_fail(e, "out of memory");
        *v = nv;
        *cap = total + 64;
    }
    *n = (int)k;
    for (size_t i = 0; i < m; i++) {
        if (record_parse(json_array_get(rec, i), &(*v)[k + (json_int_t)i], e) < 0)
            return -1;
        *n = (int)k + (int)i + 1;
    }
    return 0;
}

json_t *wire_snapshot(const Snapshot *s, WireSent *sent)
{
    if (!sent->started || sent->generation != s->generation) {
        memset(sent, 0, sizeof *sent);
        sent->started = 1;
        sent->generation = s->generation;
        sent->n_logged = s->n_logged > (unsigned long)s->n_log ? s->n_logged - (unsigned long)s->n_log : 0;
    }
    json_t *groups = json_array(), *branches = json_array(), *log = json_array();
    for (int g = 0; g < s->n_groups && g < SNAP_GROUPS; g++) {
        const SnapGroup *sg = &s->groups[g];
        json_array_append_new(groups, json_pack("[s, b, o, o]", sg->name, sg->trainable,
                                                num(sg->lr), num(sg->drift)));
    }
    for (int i = 0; i < s->n_branches && i < SNAP_BRANCHES; i++) {
        const SnapBranch *b = &s->branches[i];
        json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:s, s:I, s:I, s:o, s:s, s:b, s:b, s:b, s:b}",
                              "name", b->name, "parent", b->parent, "fork_step",
                              (json_int_t)b->fork_step, "state", trainer_state_name(b->state), "phase",
                              b->phase, "step", (json_int_t)b->step, "total_steps",
                              (json_int_t)b->total_steps, "original_weight",
                              num(b->original_weight), "message", b->message, "error_pause",
                              b->error_pause, "stopped", b->stopped, "hand_paused",
                              b->hand_paused, "has_policy", b->has_policy);
        json_object_set_new(o, "hist", hist_json(b->hist, b->n_hist, sent->branch_hist[i]));
        sent->branch_hist[i] = b->n_hist;
        json_array_append_new(branches, o);
    }
    /* the lines the client has not had that the snapshot still holds */
    unsigned long first = s->n_logged - (unsigned long)s->n_log;
    unsigned long from = sent->n_logged > first ? sent->n_logged : first;
    for (unsigned long i = from; i < s->n_logged; i++)
        json_array_append_new(log, json_string(s->log[i - first]));
    json_t *m = json_pack(
        "{s:s, s:I, s:s, s:s, s:I, s:I, s:i, s:o, s:b, s:o, s:s, s:o, s:s, s:s, s:s, s:i,"
        " s:o, s:o, s:I, s:o}",
        "t", "snap", "gen", (json_int_t)s->generation, "experiment", s->experiment, "phase",
        s->phase, "step", (json_int_t)s->step, "total_steps", (json_int_t)s->total_steps,
        "steps_per_epoch", s->steps_per_epoch, "lr", num(s->lr), "has_ewc", s->has_ewc,
        "ewc_lambda", num(s->ewc_lambda), "policy", s->policy, "steps_per_s", num(s->steps_per_s),
        "state", trainer_state_name(s->state), "message", s->message, "branch", s->branch, "followed",
        s->followed, "groups", groups, "branches", branches, "log_from", (json_int_t)from, "log",
        log);
    json_object_set_new(m, "hist", hist_json(s->hist, s->n_hist, sent->n_hist));
    json_object_set_new(m, "precision", json_string(s->precision));
    sent->n_hist = s->n_hist;
    sent->n_logged = s->n_logged;
    sent->version = s->version;
    return m;
}

/* Copies a string member into out (capacity n); -1 when it is missing or
 * not a string. Longer strings are cut: they are only shown. */
static int str_into(const json_t *o, const char *key, char *out, size_t n, MnError *e)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        return mn_fail(e, "\"%s\" is not a string", key);
    snprintf(out, n, "%s", json_string_value(v));
    return 0;
}

static int int_of(const json_t *o, const char *key, long lo, long hi, long *out, MnError *e)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return mn_fail(e, "\"%s\" is not an integer in %ld..%ld", key, lo, hi);
    *out = (long)json_integer_value(v);
    return 0;
}

static int bool_of(const json_t *o, const char *key, int *out, MnError *e)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_boolean(v))
        return mn_fail(e, "\"%s\" is not true or false", key);
    *out = json_is_true(v);
    return 0;
}

static int real_of(const json_t *o, const char *key, double *out, MnError *e)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_number(v) && !json_is_null(v))
        return mn_fail(e, "\"%s\" is not a number", key);
    *out = num_of(v);
    return 0;
}

static int state_into(const json_t *o, TrainerState *out, MnError *e)
{
    int st = wire_state_of(json_string_value(json_object_get(o, "state")));
    if (st < 0)
        return mn_fail(e, "\"state\" is not a trainer state");
    *out = (TrainerState)st;
    return 0;
}

static int branch_apply(SnapBranch *b, const json_t *o, MnError *e)
{
    long fork_step, step, total;
    if (!json_is_object(o))
        return mn_fail(e, "a branch is not an object");
    if (str_into(o, "name", b->name, sizeof b->name, e) < 0 ||
        str_into(o, "parent", b->parent, sizeof b->parent, e) < 0 ||
        str_into(o, "phase", b->phase, sizeof b->phase, e) < 0 ||
        str_into(o, "message", b->message, sizeof b->message, e) < 0 ||
        int_of(o, "fork_step", -1, LONG_MAX, &fork_step, e) < 0 ||
        int_of(o, "step", 0, LONG_MAX, &step, e) < 0 ||
        int_of(o, "total_steps", 0, LONG_MAX, &total, e) < 0 ||
        real_of(o, "original_weight", &b->original_weight, e) < 0 ||
        bool_of(o, "error_pause", &b->error_pause, e) < 0 ||
        bool_of(o, "stopped", &b->stopped, e) < 0 ||
        bool_of(o, "hand_paused", &b->hand_paused, e) < 0 ||
        bool_of(o, "has_policy", &b->has_policy, e) < 0 || state_into(o, &b->state, e) < 0)
        return mn_wrap(e, "a branch");
    b->fork_step = fork_step;
    b->step = step;
    b->total_steps = total;
    return hist_apply(&b->hist, &b->n_hist, &b->cap_hist, json_object_get(o, "hist"), e);
}

int wire_apply_snapshot(Snapshot *s, const json_t *m, unsigned long *server_logged, MnError *e)
{
    long gen, step, total, per_epoch, followed, log_from;
    const json_t *groups = json_object_get(m, "groups"), *branches = json_object_get(m, "branches"),
                 *log = json_object_get(m, "log");
    if (int_of(m, "gen", 0, LONG_MAX, &gen, e) < 0 || int_of(m, "step", 0, LONG_MAX, &step, e) < 0 ||
        int_of(m, "total_steps", 0, LONG_MAX, &total, e) < 0 ||
        int_of(m, "steps_per_epoch", 0, INT32_MAX, &per_epoch, e) < 0 ||
        int_of(m, "followed", 0, SNAP_BRANCHES - 1, &followed, e) < 0 ||
        int_of(m, "log_from", 0, LONG_MAX, &log_from, e) < 0 ||
        str_into(m, "experiment", s->experiment, sizeof s->experiment, e) < 0 ||
        str_into(m, "phase", s->phase, sizeof s->phase, e) < 0 ||
        str_into(m, "policy", s->policy, sizeof s->policy, e) < 0 ||
        str_into(m, "message", s->message, sizeof s->message, e) < 0 ||
        str_into(m, "branch", s->branch, sizeof s->branch, e) < 0 ||
        real_of(m, "lr", &s->lr, e) < 0 || real_of(m, "ewc_lambda", &s->ewc_lambda, e) < 0 ||
        real_of(m, "steps_per_s", &s->steps_per_s, e) < 0 ||
        bool_of(m, "has_ewc", &s->has_ewc, e) < 0 || state_into(m, &s->state, e) < 0)
        return mn_wrap(e, "snapshot");
    /* a server from before precision was sent runs fp32 */
    const json_t *prec = json_object_get(m, "precision");
    snprintf(s->precision, sizeof s->precision, "%s",
             json_is_string(prec) ? json_string_value(prec) : "fp32");
    if (!json_is_array(groups) || json_array_size(groups) > SNAP_GROUPS ||
        !json_is_array(branches) || json_array_size(branches) > SNAP_BRANCHES ||
        !json_is_array(log) || json_array_size(log) > SNAP_LOG)
        return mn_fail(e, "snapshot: \"groups\", \"branches\" or \"log\" is not a list of the right size");
    if ((size_t)followed >= json_array_size(branches) && json_array_size(branches) > 0)
        return mn_fail(e, "snapshot: follows branch %ld of %zu", followed, json_array_size(branches));
    if ((unsigned long)log_from > *server_logged)
        return mn_fail(e, "snapshot: its log starts at line %ld, but %lu came before", log_from,
                       *server_logged);
    if ((unsigned long)gen != s->generation) {
        /* the histories start over (another branch followed, one dropped) */
        s->generation = (unsigned long)gen;
        s->n_hist = 0;
        for (int i = 0; i < SNAP_BRANCHES; i++)
            s->branches[i].n_hist = 0;
    }
    s->step = step;
    s->total_steps = total;
    s->steps_per_epoch = (int)per_epoch;
    s->followed = (int)followed;
    s->n_groups = 0;
    for (size_t g = 0; g < json_array_size(groups); g++) {
        const json_t *a = json_array_get(groups, g);
        const json_t *name = json_array_get(a, 0), *tr = json_array_get(a, 1);
        SnapGroup *sg = &s->groups[g];
        if (!json_is_array(a) || json_array_size(a) != 4 || !json_is_string(name) ||
            !json_is_boolean(tr))
            return mn_fail(e, "snapshot: group %zu is not [name, trainable, lr, drift]", g);
        for (int k = 2; k < 4; k++)
            if (!json_is_number(json_array_get(a, (size_t)k)) && !json_is_null(json_array_get(a, (size_t)k)))
                return mn_fail(e, "snapshot: group %zu's rate or drift is not a number", g);
        snprintf(sg->name, sizeof sg->name, "%s", json_string_value(name));
        sg->trainable = json_is_true(tr);
        sg->lr = num_of(json_array_get(a, 2));
        sg->drift = num_of(json_array_get(a, 3));
        s->n_groups = (int)g + 1;
    }
    int n_br = (int)json_array_size(branches);
    for (int i = n_br; i < SNAP_BRANCHES; i++)
        s->branches[i].n_hist = 0;
    s->n_branches = 0;
    for (int i = 0; i < n_br; i++) {
        if (branch_apply(&s->branches[i], json_array_get(branches, (size_t)i), e) < 0)
            return mn_wrap(e, "snapshot: branch %d", i);
        s->n_branches = i + 1;
    }
    if (hist_apply(&s->hist, &s->n_hist, &s->cap_hist, json_object_get(m, "hist"), e) < 0)
        return mn_wrap(e, "snapshot");
    /* lines already had (a frame resent after a lag) are skipped */
    for (size_t i = 0; i < json_array_size(log); i++) {
        const json_t *line = json_array_get(log, i);
        if (!json_is_string(line))
            return mn_fail(e, "snapshot: log line %zu is not a string", i);
        if ((unsigned long)log_from + i < *server_logged)
            continue;
        snapshot_log(s, json_string_value(line));
        *server_logged = (unsigned long)log_from + i + 1;
    }
    s->version++;
    return 0;
}

/* ---- commands ---- */

static const char *const kind_names[] = {
    [CMD_PAUSE] = "pause", [CMD_CHECKPOINT] = "checkpoint", [CMD_RELOAD] = "reload",
    [CMD_SET_LR] = "set_lr", [CMD_SET_EWC] = "set_ewc", [CMD_FREEZE] = "freeze",
    [CMD_UNFREEZE] = "unfreeze", [CMD_EVALUATE] = "evaluate", [CMD_SET_POLICY] = "set_policy",
    [CMD_ATTACH_POLICY] = "attach_policy", [CMD_LIST_CHECKPOINTS] = "checkpoints",
    [CMD_QUIT] = "quit", [CMD_FORK] = "fork", [CMD_FOLLOW] = "follow", [CMD_DROP] = "drop",
};

const char *wire_kind_name(CommandKind k)
{
    return (unsigned)k < sizeof kind_names / sizeof kind_names[0] ? kind_names[k] : NULL;
}

json_t *wire_command(const Command *c, unsigned long id)
{
    const char *kind = wire_kind_name(c->kind);
    return json_pack("{s:s, s:I, s:s, s:o, s:s, s:s}", "t", "cmd", "id", (json_int_t)id, "kind",
                     kind ? kind : "?", "value", num(c->value), "arg", c->arg, "text", c->text);
}

static int bounded_str(const json_t *m, const char *key, char *out, size_t n, MnError *e)
{
    const json_t *v = json_object_get(m, key);
    if (!v) {
        out[0] = 0;
        return 0;
    }
    if (!json_is_string(v))
        return mn_fail(e, "command: \"%s\" is not a string", key);
    if (json_string_length(v) >= n || strlen(json_string_value(v)) != json_string_length(v))
        return mn_fail(e, "command: \"%s\" is longer than %zu characters or holds a NUL", key, n - 1);
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

int wire_parse_command(const json_t *m, Command *c, unsigned long *id, MnError *e)
{
    const json_t *kind = json_object_get(m, "kind"), *v = json_object_get(m, "value"),
                 *jid = json_object_get(m, "id");
    memset(c, 0, sizeof *c);
    if (!json_is_integer(jid) || json_integer_value(jid) < 1)
        return mn_fail(e, "command: \"id\" is not a positive integer");
    *id = (unsigned long)json_integer_value(jid);
    if (!json_is_string(kind))
        return mn_fail(e, "command: \"kind\" is not a string");
    int k;
    for (k = 0; k < (int)(sizeof kind_names / sizeof kind_names[0]); k++)
        if (kind_names[k] && !strcmp(kind_names[k], json_string_value(kind)))
            break;
    if (k == (int)(sizeof kind_names / sizeof kind_names[0]))
        return mn_fail(e, "command: unknown kind '%.64s'", json_string_value(kind));
    c->kind = (CommandKind)k;
    if (v && !json_is_null(v)) {
        if (!json_is_number(v) || !isfinite(json_number_value(v)))
            return mn_fail(e, "command: \"value\" is not a number");
        c->value = json_number_value(v);
        /* a step or an index: cast to an integer by the trainer */
        if ((c->kind == CMD_FORK || c->kind == CMD_FOLLOW) && fabs(c->value) > 1e15)
            return mn_fail(e, "command: \"value\" %g is out of range", c->value);
    }
    if (bounded_str(m, "arg", c->arg, sizeof c->arg, e) < 0 ||
        bounded_str(m, "text", c->text, sizeof c->text, e) < 0)
        return -1;
    return 0;
}
