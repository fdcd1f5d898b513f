/* The gradients' sum behind the backward pass (gradsync.c), in one
 * process: workers write their buffers stage by stage, as the backward
 * pass does, and the buckets must come out as model.c's reduction makes
 * them after the pass (worker 0's + worker 1's + …, bit for bit), however
 * the workers' timings interleave, with stages skipped, with one worker,
 * and pass after pass on the same GradSync. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/gradsync.h"
#include "../src/workers.h"
#include "tap.h"

#define N 4000
#define STAGES 5
#define MAX_WORKERS 4

typedef struct {
    GradSync *sync;
    float *buf[MAX_WORKERS];   /* worker 0's is the model's */
    const GradBucket *buckets;
    int n_buckets;
    int pass;
    int skip_stage;            /* a stage no worker reports (-1: none) */
} Job;

static float value(int pass, int w, int i)
{
    /* values whose sums depend on the order they are added in */
    unsigned x = (unsigned)(pass * 7919 + w * 104729 + i * 2654435761u);
    x ^= x >> 13;
    return (float)(x % 100000) * 1e-3f * (w % 2 ? 1.0f : -3.3f) + 1e3f * (float)(i % 3);
}

static void nap(int us)
{
    struct timespec t = { 0, (long)us * 1000L };
    nanosleep(&t, NULL);
}

/* As backward_job: write what each stage makes final, then say so. */
static void backward(void *arg, int w, int n)
{
    Job *j = arg;
    (void)n;
    for (int st = 0; st < STAGES; st++) {
        for (int k = 0; k < j->n_buckets; k++) {
            const GradBucket *b = &j->buckets[k];
            if (b->stage != st)
                continue;
            /* worker 0 adds to what the buffer held (model_backward
             * accumulates), the others write their own buffers afresh */
            for (size_t i = b->offset; i < b->offset + b->numel; i++)
                if (w == 0)
                    j->buf[0][i] += value(j->pass, 0, (int)i);
                else
                    j->buf[w][i] = value(j->pass, w, (int)i);
        }
        if ((w + st + j->pass) % 3 == 0)
            nap(200 * (w + 1));   /* the slow one differs by stage */
        if (st != j->skip_stage && st < STAGES - 1)
            gradsync_reached(j->sync, w, st);
    }
    gradsync_reached(j->sync, w, STAGES - 1);
}

static int check_pass(Workers *pool, GradSync *s, int workers, const GradBucket *bk, int nb,
                      int pass, int skip, const char *what)
{
    Job j = { s, { 0 }, bk, nb, pass, skip };
    float *expect = calloc(N, sizeof *expect);
    MnError e;
    int good = expect != NULL;
    for (int w = 0; w < workers && good; w++)
        good = (j.buf[w] = calloc(N, sizeof(float))) != NULL;
    if (good) {
        for (int i = 0; i < N; i++)
            j.buf[0][i] = expect[i] = 0.5f * (float)i;   /* held before the pass */
        /* model.c's order: worker 0's, then += worker 1's, += worker 2's … */
        for (int k = 0; k < nb; k++)
            for (size_t i = bk[k].offset; i < bk[k].offset + bk[k].numel; i++) {
                expect[i] += value(pass, 0, (int)i);
                for (int w = 1; w < workers; w++)
                    expect[i] += value(pass, w, (int)i);
            }
        good = gradsync_begin(s, j.buf[0], j.buf + 1, workers, bk, nb, STAGES, &e) == 0;
        if (good) {
            workers_run(pool, backward, &j);
            double waited = gradsync_end(s);
            good = waited >= 0.0 && memcmp(expect, j.buf[0], N * sizeof(float)) == 0;
        }
    }
    ok(good, "%s: every bucket is worker 0's + 1's + … bit for bit, the rest untouched", what);
    for (int w = 0; w < workers; w++)
        free(j.buf[w]);
    free(expect);
    return good;
}

int main(void)
{
    MnError e;
    Dist d;
    dist_init(&d, NULL, NULL, &e);
    /* buckets in stage order, as make_buckets gives them: a gap left out
     * (a frozen group), one bucket below another's offset (a lower layer
     * after a higher one), a stage with two, and a table of 60 rows of 10
     * of which 4 are sent (packed and put back: alone, the sum leaves
     * every row as combined) */
    static const int rows[] = { 0, 5, 6, 59 };
    const GradBucket bk[] = {
        { 3600, 400, 0, NULL, 0, 0, 0 }, { 2400, 1000, 1, NULL, 0, 0, 0 },
        { 1500, 900, 2, NULL, 0, 0, 0 },  { 0, 700, 2, rows, 4, 60, 10 },
        { 900, 300, 4, NULL, 0, 0, 0 },
    };
    const int nb = (int)(sizeof bk / sizeof bk[0]);
    GradSync *s = gradsync_create(&d, &e);
    ok(s != NULL, "the sum thread starts");
    if (!s)
        return tap_done();
    for (int workers = 1; workers <= MAX_WORKERS; workers++) {
        Workers *pool = workers_create(workers, &e);
        char what[96];
        for (int pass = 0; pass < 3 && pool; pass++) {
            snprintf(what, sizeof what, "%d worker%s, pass %d", workers, workers > 1 ? "s" : "",
                     pass + 1);
            check_pass(pool, s, workers, bk, nb, pass, -1, what);
        }
        snprintf(what, sizeof what, "%d worker%s, stage 2 reached only with stage 4", workers,
                 workers > 1 ? "s" : "");
        if (pool)
            check_pass(pool, s, workers, bk, nb, 7, 2, what);
        workers_free(pool);
    }
    /* a pass with no workers (a rank with no rows) ends at once */
    float *none = calloc(N, sizeof *none);
    ok(none && gradsync_begin(s, none, NULL, 0, bk, nb, STAGES, &e) == 0 &&
       gradsync_end(s) >= 0.0, "a pass with no workers ends without waiting on any");
    free(none);
    gradsync_free(s);
    dist_finish(&d);
    return tap_done();
}
