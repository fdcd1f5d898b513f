#include "workers.h"

#include <pthread.h>
#include <stdlib.h>

struct Workers {
    int n;
    pthread_t *threads;        /* [n - 1] */
    int started;               /* threads actually created */
    pthread_mutex_t mu;
    pthread_cond_t go;         /* a new job (or stop) was posted */
    pthread_cond_t done;       /* the last pool thread finished the job */
    unsigned long job;         /* bumped once per workers_run */
    int pending;               /* pool threads still on the current job */
    int stop;
    WorkerFn fn;
    void *arg;
};

typedef struct {
    Workers *w;
    int index;
} Seat;

static void *worker_main(void *p)
{
    Seat *s = p;
    Workers *w = s->w;
    const int index = s->index;
    unsigned long seen = 0;
    free(s);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stop && w->job == seen)
            pthread_cond_wait(&w->go, &w->mu);
        if (w->stop)
            break;
        seen = w->job;
        WorkerFn fn = w->fn;
        void *arg = w->arg;
        pthread_mutex_unlock(&w->mu);
        fn(arg, index, w->n);
        pthread_mutex_lock(&w->mu);
        if (--w->pending == 0)
            pthread_cond_signal(&w->done);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

Workers *workers_create(int n, MnError *e)
{
    Workers *w = calloc(1, sizeof *w);
    if (n < 1)
        n = 1;
    if (!w || (n > 1 && !(w->threads = calloc((size_t)n - 1, sizeof *w->threads)))) {
        free(w);
        mn_fail(e, "out of memory for %d worker threads", n);
        return NULL;
    }
    w->n = n;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->go, NULL);
    pthread_cond_init(&w->done, NULL);
    for (int i = 1; i < n; i++) {
        Seat *s = malloc(sizeof *s);
        if (!s || (*s = (Seat){ w, i }, pthread_create(&w->threads[i - 1], NULL,
                                                        worker_main, s)) != 0) {
            free(s);
            workers_free(w);
            mn_fail(e, "cannot start worker thread %d of %d", i, n);
            return NULL;
        }
        w->started++;
    }
    return w;
}

void workers_free(Workers *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->go);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->started; i++)
        pthread_join(w->threads[i], NULL);
    pthread_cond_destroy(&w->done);
    pthread_cond_destroy(&w->go);
    pthread_mutex_destroy(&w->mu);
    free(w->threads);
    free(w);
}

int workers_count(const Workers *w)
{
    return w ? w->n : 1;
}

void workers_run(Workers *w, WorkerFn fn, void *arg)
{
    if (!w || w->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    pthread_mutex_lock(&w->mu);
    w->fn = fn;
    w->arg = arg;
    w->pending = w->n - 1;
    w->job++;
    pthread_cond_broadcast(&w->go);
    pthread_mutex_unlock(&w->mu);
    fn(arg, 0, w->n);
    pthread_mutex_lock(&w->mu);
    while (w->pending > 0)
        pthread_cond_wait(&w->done, &w->mu);
    pthread_mutex_unlock(&w->mu);
}
