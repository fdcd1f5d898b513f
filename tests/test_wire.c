/* The control socket's frames and messages: a snapshot that crosses the
 * socket arrives equal, in pieces or whole; what is malformed is refused
 * and leaves the client's snapshot usable. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "wire.h"

static EvalRecord record_at(long step, int diverged)
{
    EvalRecord r;
    memset(&r, 0, sizeof r);
    r.step = step;
    r.epoch = step / 19.0;
    snprintf(r.phase, sizeof r.phase, "finetune");
    r.lr = 3e-4 / (1 + step);
    r.has_new = r.has_original = r.has_train_loss = 1;
    r.new_task.acc = 0.5 + 0.001 * (double)step;
    r.new_task.loss = diverged ? NAN : 1.0 / (1 + step);
    r.original.acc = 0.9 - 0.0007 * (double)step;
    r.original.loss = diverged ? INFINITY : 0.1 * (double)step;
    r.train_loss = 0.123456789012345678;
    r.crossover_step = step > 40 ? 40 : -1;
    r.elapsed_s = 1.25 * (double)step;
    r.original_mlm = step % 2;
    return r;
}

static void push(EvalRecord **v, int *n, int *cap, EvalRecord r)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *v = realloc(*v, sizeof **v * (size_t)*cap);
    }
    (*v)[(*n)++] = r;
}

static void server_snapshot(Snapshot *s, int n_records, int n_lines)
{
    s->version++;
    snprintf(s->experiment, sizeof s->experiment, "tiny");
    snprintf(s->phase, sizeof s->phase, "finetune");
    snprintf(s->branch, sizeof s->branch, "main");
    s->step = 20L * n_records;
    s->total_steps = 760;
    s->steps_per_epoch = 19;
    s->lr = 2.5e-5;
    s->state = TS_PAUSED;
    snprintf(s->message, sizeof s->message, "paused: a reason with \"quotes\" and ünïcode");
    s->n_groups = 3;
    for (int g = 0; g < 3; g++) {
        snprintf(s->groups[g].name, sizeof s->groups[g].name, g == 0 ? "embeddings" : "layer.%d", g - 1);
        s->groups[g].trainable = g != 1;
        s->groups[g].lr = g * 1e-4;
        s->groups[g].drift = g == 2 ? -1 : 0.25 * g;
    }
    s->n_branches = 2;
    snprintf(s->branches[0].name, 64, "main");
    snprintf(s->branches[1].name, 64, "lower-lr");
    snprintf(s->branches[1].parent, 64, "main");
    s->branches[0].fork_step = -1;
    s->branches[1].fork_step = 40;
    s->branches[1].state = TS_RUNNING;
    s->branches[1].hand_paused = 0;
    s->branches[0].hand_paused = 1;
    while (s->n_hist < n_records) {
        push(&s->hist, &s->n_hist, &s->cap_hist, record_at(20L * s->n_hist, s->n_hist == 3));
        push(&s->branches[0].hist, &s->branches[0].n_hist, &s->branches[0].cap_hist,
             record_at(20L * s->branches[0].n_hist, 0));
        push(&s->branches[1].hist, &s->branches[1].n_hist, &s->branches[1].cap_hist,
             record_at(40 + 20L * s->branches[1].n_hist, 0));
    }
    while ((long)s->n_logged < n_lines) {
        char line[64];
        snprintf(line, sizeof line, "line %lu", s->n_logged);
        snapshot_log(s, line);
    }
}

static int same_double(double a, double b)
{
    /* JSON has no infinity: a non-finite value arrives as NaN */
    return a == b || (!isfinite(a) && !isfinite(b));
}

static int same_records(const EvalRecord *a, const EvalRecord *b, int n)
{
    for (int i = 0; i < n; i++)
        if (a[i].step != b[i].step || !same_double(a[i].epoch, b[i].epoch) ||
            strcmp(a[i].phase, b[i].phase) || !same_double(a[i].new_task.loss, b[i].new_task.loss) ||
            !same_double(a[i].original.loss, b[i].original.loss) ||
            a[i].original.acc != b[i].original.acc || a[i].train_loss != b[i].train_loss ||
            a[i].crossover_step != b[i].crossover_step || a[i].original_mlm != b[i].original_mlm ||
            a[i].has_new != b[i].has_new || a[i].elapsed_s != b[i].elapsed_s) {
            diag("record %d differs: step %ld/%ld new loss %g/%g original loss %g/%g", i, a[i].step,
                 b[i].step, a[i].new_task.loss, b[i].new_task.loss, a[i].original.loss, b[i].original.loss);
            return 0;
        }
    return 1;
}

/* Through a frame, as the socket carries it, fed in pieces of k bytes. */
static json_t *through_frame(json_t *m, size_t k)
{
    char *f;
    size_t n;
    MnError e;
    FrameReader r;
    json_t *out = NULL;
    if (frame_encode(m, &f, &n, &e) < 0)
        return NULL;
    json_decref(m);
    frame_reader_init(&r, WIRE_MAX_FRAME);
    for (size_t at = 0; at < n && !out; at += k) {
        size_t piece = n - at < k ? n - at : k;
        if (frame_reader_feed(&r, f + at, piece, &e) < 0 || frame_reader_next(&r, &out, &e) < 0)
            break;
    }
    frame_reader_free(&r);
    free(f);
    return out;
}

static void test_snapshots(void)
{
    Snapshot srv, cli;
    WireSent sent;
    MnError e;
    unsigned long logged = 0;
    memset(&srv, 0, sizeof srv);
    memset(&cli, 0, sizeof cli);
    memset(&sent, 0, sizeof sent);
    server_snapshot(&srv, 10, 5);
    json_t *m = through_frame(wire_snapshot(&srv, &sent), 7);
    ok(m != NULL, "a snapshot frame fed 7 bytes at a time arrives whole");
    ok(wire_apply_snapshot(&cli, m, &logged, &e) == 0, "and applies (%s)", e.msg);
    json_decref(m);
    ok(cli.n_hist == 10 && same_records(cli.hist, srv.hist, 10),
       "the history arrives equal, a diverged record's NaN and infinity as NaN");
    ok(cli.n_branches == 2 && cli.branches[1].n_hist == 10 &&
       same_records(cli.branches[1].hist, srv.branches[1].hist, 10) &&
       !strcmp(cli.branches[1].parent, "main") && cli.branches[1].fork_step == 40 &&
       cli.branches[0].hand_paused == 1 && cli.branches[1].state == TS_RUNNING,
       "each branch arrives with its history, parent, fork step and state");
    ok(cli.n_groups == 3 && !strcmp(cli.groups[1].name, "layer.0") && !cli.groups[1].trainable &&
       cli.groups[2].drift == -1 && cli.groups[1].lr == 1e-4,
       "the groups arrive: names, frozen state, rates, drift");
    ok(!strcmp(cli.message, srv.message) && cli.state == TS_PAUSED && cli.step == 200 &&
       cli.lr == 2.5e-5, "the header arrives");
    ok(cli.n_log == 5 && !strcmp(cli.log[4], "line 4") && logged == 5, "the log arrives");

    /* only what is new */
    server_snapshot(&srv, 13, 8);
    m = wire_snapshot(&srv, &sent);
    json_t *rec = json_object_get(json_object_get(m, "hist"), "rec");
    ok(json_array_size(rec) == 3 && json_integer_value(json_object_get(json_object_get(m, "hist"), "from")) == 10,
       "the next frame carries only the 3 new records");
    ok(json_array_size(json_object_get(m, "log")) == 3, "and only the 3 new lines");
    snapshot_log(&cli, "a line of the client's own");
    ok(wire_apply_snapshot(&cli, m, &logged, &e) == 0 && cli.n_hist == 13 &&
       same_records(cli.hist, srv.hist, 13) && cli.n_log == 9 && logged == 8,
       "applied, the client has all 13, and its own line among the log's");
    /* the same frame again (resent): nothing doubles */
    ok(wire_apply_snapshot(&cli, m, &logged, &e) == 0 && cli.n_hist == 13 && cli.n_log == 9,
       "a frame applied twice doubles nothing");
    json_decref(m);

    /* a new generation (another branch followed) starts over */
    srv.generation++;
    srv.n_hist = 2;
    m = wire_snapshot(&srv, &sent);
    ok(wire_apply_snapshot(&cli, m, &logged, &e) == 0 && cli.n_hist == 2 &&
       cli.generation == srv.generation, "a new generation's history replaces the old");
    json_decref(m);

    /* out of order: records that would leave a gap */
    m = wire_snapshot(&srv, &sent);
    json_object_set_new(json_object_get(m, "hist"), "from", json_integer(5));
    ok(wire_apply_snapshot(&cli, m, &logged, &e) < 0 && strstr(e.msg, "starts at record 5"),
       "a history that leaves a gap is refused (%s)", e.msg);
    ok(cli.n_hist <= cli.cap_hist, "and the client's snapshot stays consistent");
    json_decref(m);
    m = wire_snapshot(&srv, &sent);
    json_object_set_new(m, "followed", json_integer(5));
    ok(wire_apply_snapshot(&cli, m, &logged, &e) < 0, "following a branch that is not there is refused");
    json_decref(m);
    m = wire_snapshot(&srv, &sent);
    json_object_set_new(m, "log_from", json_integer(1000));
    ok(wire_apply_snapshot(&cli, m, &logged, &e) < 0, "a log that skips lines is refused");
    json_decref(m);
    m = wire_snapshot(&srv, &sent);
    json_array_set_new(json_object_get(m, "groups"), 0, json_string("x"));
    ok(wire_apply_snapshot(&cli, m, &logged, &e) < 0, "a malformed group is refused (%s)", e.msg);
    json_decref(m);
    m = wire_snapshot(&srv, &sent);
    json_object_set_new(m, "state", json_string("dancing"));
    ok(wire_apply_snapshot(&cli, m, &logged, &e) < 0, "an unknown state is refused");
    json_decref(m);
    snapshot_free(&srv);
    snapshot_free(&cli);
}

static void test_frames(void)
{
    FrameReader r;
    MnError e;
    json_t *m;
    frame_reader_init(&r, 100);
    unsigned char big[4] = { 0, 0, 1, 0 };   /* 256 bytes > 100 */
    frame_reader_feed(&r, big, 4, &e);
    ok(frame_reader_next(&r, &m, &e) < 0 && strstr(e.msg, "256"), "a frame over the limit is refused (%s)", e.msg);
    frame_reader_free(&r);
    frame_reader_init(&r, 100);
    unsigned char text[] = { 0, 0, 0, 5, '[', '1', ',', '2', ']' };
    frame_reader_feed(&r, text, sizeof text, &e);
    ok(frame_reader_next(&r, &m, &e) < 0, "a frame that is not an object is refused");
    frame_reader_free(&r);
    frame_reader_init(&r, 100);
    unsigned char bad[] = { 0, 0, 0, 3, '{', '"', 't' };
    frame_reader_feed(&r, bad, sizeof bad, &e);
    ok(frame_reader_next(&r, &m, &e) < 0, "a frame of broken JSON is refused");
    frame_reader_free(&r);
    frame_reader_init(&r, 100);
    unsigned char part[] = { 0, 0, 0, 9, '{', '"', 't', '"' };
    frame_reader_feed(&r, part, sizeof part, &e);
    ok(frame_reader_next(&r, &m, &e) == 0, "half a frame waits for the rest");
    ok(frame_reader_feed(&r, big, 4, &e) == 0 && frame_reader_feed(&r, text, 100, &e) < 0,
       "bytes past what a frame can hold are refused");
    frame_reader_free(&r);
}

static void test_commands(void)
{
    MnError e;
    Command c, back;
    unsigned long id;
    int all = 1;
    for (int k = CMD_PAUSE; k <= CMD_DROP; k++) {
        memset(&c, 0, sizeof c);
        c.kind = (CommandKind)k;
        c.value = k == CMD_FORK ? 420 : -1.5e-5;
        snprintf(c.arg, sizeof c.arg, "layer.%d-%d", k, k + 1);
        snprintf(c.text, sizeof c.text, "finetune.lr=1e-5 ewc.lambda=%d", k);
        json_t *m = through_frame(wire_command(&c, 7 + (unsigned long)k), 3);
        if (!m || wire_parse_command(m, &back, &id, &e) < 0 || back.kind != c.kind ||
            back.value != c.value || strcmp(back.arg, c.arg) || strcmp(back.text, c.text) ||
            id != 7 + (unsigned long)k) {
            diag("kind %d: %s", k, e.msg);
            all = 0;
        }
        json_decref(m);
    }
    ok(all, "every kind of command crosses a frame and comes back equal");
    static const char *const bad[] = {
        "{\"t\":\"cmd\",\"id\":1,\"kind\":\"explode\"}",
        "{\"t\":\"cmd\",\"kind\":\"pause\"}",
        "{\"t\":\"cmd\",\"id\":0,\"kind\":\"pause\"}",
        "{\"t\":\"cmd\",\"id\":1,\"kind\":\"pause\",\"value\":\"1\"}",
        "{\"t\":\"cmd\",\"id\":1,\"kind\":\"follow\",\"value\":1e300}",
        "{\"t\":\"cmd\",\"id\":1,\"kind\":\"fork\",\"value\":-1e20}",
        "{\"t\":\"cmd\",\"id\":1,\"kind\":\"freeze\",\"arg\":7}",
        "{\"t\":\"cmd\",\"id\":1,\"kind\":\"freeze\",\"arg\":\"a\\u0000b\"}",
    };
    int refused = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_error_t je;
        json_t *m = json_loads(bad[i], JSON_ALLOW_NUL, &je);
        refused += m && wire_parse_command(m, &back, &id, &e) < 0;
        json_decref(m);
    }
    ok(refused == (int)(sizeof bad / sizeof bad[0]), "malformed commands are refused (%d of %zu)",
       refused, sizeof bad / sizeof bad[0]);
    char longer[300];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = 0;
    json_t *m = json_pack("{s:s, s:i, s:s, s:s}", "t", "cmd", "id", 1, "kind", "freeze", "arg", longer);
    ok(wire_parse_command(m, &back, &id, &e) < 0 && strstr(e.msg, "longer than"),
       "an argument longer than a command holds is refused, not cut (%s)", e.msg);
    json_decref(m);
}

int main(void)
{
    test_frames();
    test_snapshots();
    test_commands();
    return tap_done();
}
