#include "gradsync.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct GradSync {
    Dist *dist;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* every change below; few per stage */
    int stop;
    unsigned long pass, seen;  /* bumped by gradsync_begin; the thread's last */
    int finished;              /* the thread summed the pass's last bucket */
    atomic_int busy;           /* the workers still compute: the sum naps */

    float *grads;
    float *const *others;
    int n_workers;
    const GradBucket *buckets;
    int n_buckets, n_stages;
    /* per stage: workers arrived, workers whose share is added; and
     * whether any bucket is final at it */
    int *arrived, *combined;
    unsigned char *has_bucket;
    int *next_stage;           /* per worker: the first stage not reached */
    int cap_stages, cap_workers;
    float *pack;               /* a sparse table's rows, packed to be sent */
    size_t cap_pack;
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The bucket summed over the ranks; a sparse table's rows packed first
 * and put back after. */
static int sum_bucket(GradSync *s, const GradBucket *b, MnError *e)
{
    float *g = s->grads + b->offset;
    if (!b->rows)
        return dist_sum_floats_beside(s->dist, g, b->numel, &s->busy, e);
    const size_t table = (size_t)b->table_rows * b->row_len, rest = b->numel - table;
    const size_t n = (size_t)b->n_rows * b->row_len + rest;
    if (n > s->cap_pack) {
        float *grown = realloc(s->pack, n * sizeof *grown);
        if (!grown)
            return mn_fail(e, "out of memory for the gradients' sum");
        s->pack = grown;
        s->cap_pack = n;
    }
    for (int i = 0; i < b->n_rows; i++)
        memcpy(s->pack + (size_t)i * b->row_len, g + (size_t)b->rows[i] * b->row_len,
               b->row_len * sizeof *g);
    memcpy(s->pack + (size_t)b->n_rows * b->row_len, g + table, rest * sizeof *g);
    if (dist_sum_floats_beside(s->dist, s->pack, n, &s->busy, e) < 0)
        return -1;
    for (int i = 0; i < b->n_rows; i++)
        memcpy(g + (size_t)b->rows[i] * b->row_len, s->pack + (size_t)i * b->row_len,
               b->row_len * sizeof *g);
    memcpy(g + table, s->pack + (size_t)b->n_rows * b->row_len, rest * sizeof *g);
    return 0;
}

static void *sum_main(void *p)
{
    GradSync *s = p;
    MnError e;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stop && s->pass == s->seen)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->stop)
            break;
        s->seen = s->pass;
        for (int k = 0; k < s->n_buckets; k++) {
            const GradBucket *b = &s->buckets[k];
            while (s->combined[b->stage] < s->n_workers)
                pthread_cond_wait(&s->cv, &s->mu);
            pthread_mutex_unlock(&s->mu);
            /* A rank alone cannot go on: the job ends (MPI's abort). */
            if (sum_bucket(s, b, &e) < 0) {
                fprintf(stderr, "mneme: rank %d: %s\n", s->dist->rank, e.msg);
                dist_abort(s->dist, 1);
            }
            pthread_mutex_lock(&s->mu);
        }
        s->finished = 1;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

GradSync *gradsync_create(Dist *d, MnError *e)
{
    GradSync *s = calloc(1, sizeof *s);
    if (!s) {
        mn_fail(e, "out of memory for the gradients' sum");
        return NULL;
    }
    s->dist = d;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->thread, NULL, sum_main, s) != 0) {
        gradsync_free(s);
        mn_fail(e, "cannot start the gradients' sum thread");
        return NULL;
    }
    s->started = 1;
    return s;
}

void gradsync_free(GradSync *s)
{
    if (!s)
        return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s->arrived);
    free(s->combined);
    free(s->has_bucket);
    free(s->next_stage);
    free(s->pack);
    free(s);
}

static int grow(GradSync *s, int n_stages, int n_workers, MnError *e)
{
    if (n_stages > s->cap_stages) {
        int *a = realloc(s->arrived, (size_t)n_stages * sizeof *a);
        if (a)
            s->arrived = a;
        int *c = realloc(s->combined, (size_t)n_stages * sizeof *c);
        if (c)
            s->combined = c;
        unsigned char *h = realloc(s->has_bucket, (size_t)n_stages);
        if (h)
            s->has_bucket = h;
        if (!a || !c || !h)
            return mn_fail(e, "out of memory for the gradients' sum");
        s->cap_stages = n_stages;
    }
    if (n_workers > s->cap_workers) {
        int *w = realloc(s->next_stage, (size_t)n_workers * sizeof *w);
        if (!w)
            return mn_fail(e, "out of memory for the gradients' sum");
        s->next_stage = w;
        s->cap_workers = n_workers;
    }
    return 0;
}

int gradsync_begin(GradSync *s, float *grads, float *const *others, int n_workers,
                   const GradBucket *buckets, int n_buckets, int n_stages, MnError *e)
{
    if (grow(s, n_stages, n_workers > 0 ? n_workers : 1, e) < 0)
        return -1;
    pthread_mutex_lock(&s->mu);
    s->grads = grads;
    s->others = others;
    s->n_workers = n_workers;
    s->buckets = buckets;
    s->n_buckets = n_buckets;
    s->n_stages = n_stages;
    memset(s->arrived, 0, (size_t)n_stages * sizeof *s->arrived);
    memset(s->combined, 0, (size_t)n_stages * sizeof *s->combined);
    memset(s->has_bucket, 0, (size_t)n_stages);
    for (int k = 0; k < n_buckets; k++)
        s->has_bucket[buckets[k].stage] = 1;
    for (int w = 0; w < n_workers; w++)
        s->next_stage[w] = 0;
    s->finished = 0;
    atomic_store(&s->busy, 1);
    s->pass++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* Worker w's share of every bucket final at `stage`: the other workers'
 * buffers added into the model's, worker 1's first. */
static void combine_share(GradSync *s, int w, int stage)
{
    const int n = s->n_workers;
    for (int k = 0; k < s->n_buckets; k++) {
        const GradBucket *b = &s->buckets[k];
        if (b->stage != stage)
            continue;
        size_t lo = b->numel * (size_t)w / (size_t)n, hi = b->numel * (size_t)(w + 1) / (size_t)n;
        float *restrict dst = s->grads + b->offset;
        for (int o = 0; o < n - 1; o++) {
            const float *restrict src = s->others[o] + b->offset;
            for (size_t i = lo; i < hi; i++)
                dst[i] += src[i];
        }
    }
}

void gradsync_reached(GradSync *s, int worker, int stage)
{
    const int n = s->n_workers;
    if (stage >= s->n_stages)
        stage = s->n_stages - 1;
    pthread_mutex_lock(&s->mu);
    for (int st = s->next_stage[worker]; st <= stage; st++) {
        if (!s->has_bucket[st])
            continue;
        if (n > 1) {
            /* every worker's part of the stage is written before any adds */
            if (++s->arrived[st] == n)
                pthread_cond_broadcast(&s->cv);
            while (s->arrived[st] < n)
                pthread_cond_wait(&s->cv, &s->mu);
            pthread_mutex_unlock(&s->mu);
            combine_share(s, worker, st);
            pthread_mutex_lock(&s->mu);
        }
        if (++s->combined[st] == n)
            pthread_cond_broadcast(&s->cv);
    }
    if (stage + 1 > s->next_stage[worker])
        s->next_stage[worker] = stage + 1;
    pthread_mutex_unlock(&s->mu);
}

double gradsync_end(GradSync *s)
{
    double t0 = now_s();
    /* the workers are done: what is left of the sum may take a core */
    atomic_store(&s->busy, 0);
    pthread_mutex_lock(&s->mu);
    /* a worker with no rows never reaches a stage: nothing of it to wait on */
    while (!s->finished)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    return now_s() - t0;
}
