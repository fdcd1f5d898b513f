/* A small fixed pool of threads that run one function over a worker
 * index, for splitting a training step's batch.
 *
 * workers_run(w, fn, arg) calls fn(arg, i, n) once for every i in
 * [0, n): i = 0 on the calling thread, the others on the pool's threads,
 * and returns when all have finished. Threads are created once by
 * workers_create and sleep on a condition variable between calls (they
 * never spin: the machine may be shared), so a call neither allocates nor
 * creates threads. Calls must come from one thread at a time. */
#ifndef MNEME_WORKERS_H
#define MNEME_WORKERS_H

#include "error.h"

typedef struct Workers Workers;
typedef void (*WorkerFn)(void *arg, int worker, int n_workers);

/* n >= 1 workers: n - 1 threads besides the caller. NULL on failure. */
Workers *workers_create(int n, MnError *e);
void workers_free(Workers *w);
int workers_count(const Workers *w);
void workers_run(Workers *w, WorkerFn fn, void *arg);

#endif
