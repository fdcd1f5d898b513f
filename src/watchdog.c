#include "watchdog.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#define POLL_NS (10 * 1000000L)     /* how often the stop flag is read */

struct Watchdog {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    void (*fire)(void *ctx, WatchdogReason why);
    void *ctx;
    const atomic_int *stop;
    /* under lock */
    int armed, quit;
    int idle;                       /* waiting without a timeout */
    struct timespec deadline;       /* CLOCK_MONOTONIC; tv_sec < 0: none */
};

static struct timespec now_plus(long ns)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ns / 1000000000L;
    t.tv_nsec += ns % 1000000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

static int before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void *watch(void *arg)
{
    Watchdog *w = arg;
    pthread_mutex_lock(&w->lock);
    while (!w->quit) {
        if (!w->armed) {
            w->idle = 1;
            pthread_cond_wait(&w->wake, &w->lock);
            w->idle = 0;
            continue;
        }
        struct timespec poll = now_plus(POLL_NS);
        if (w->deadline.tv_sec >= 0 && before(&w->deadline, &poll))
            poll = w->deadline;
        pthread_cond_timedwait(&w->wake, &w->lock, &poll);
        if (!w->armed || w->quit)
            continue;
        struct timespec now = now_plus(0);
        WatchdogReason why = 0;
        if (w->stop && atomic_load(w->stop))
            why = WATCHDOG_STOP;
        else if (w->deadline.tv_sec >= 0 && !before(&now, &w->deadline))
            why = WATCHDOG_DEADLINE;
        if (why) {
            w->armed = 0;
            w->fire(w->ctx, why);
        }
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int watchdog_open(Watchdog **out, void (*fire)(void *ctx, WatchdogReason why), void *ctx, MnError *e)
{
    Watchdog *w = calloc(1, sizeof *w);
    if (!w)
        return mn_fail(e, "out of memory");
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&w->lock, NULL);
    w->fire = fire;
    w->ctx = ctx;
    w->deadline.tv_sec = -1;
    if (pthread_create(&w->thread, NULL, watch, w) != 0) {
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return mn_fail(e, "cannot start the policy's watchdog thread");
    }
    *out = w;
    return 0;
}

void watchdog_set_stop_flag(Watchdog *w, const atomic_int *flag)
{
    pthread_mutex_lock(&w->lock);
    w->stop = flag;
    pthread_mutex_unlock(&w->lock);
}

void watchdog_arm(Watchdog *w, double seconds)
{
    pthread_mutex_lock(&w->lock);
    w->armed = 1;
    if (seconds > 0)
        w->deadline = now_plus((long)(seconds * 1e9));
    else
        w->deadline.tv_sec = -1;
    /* Polling, it sees the new arming within POLL_NS: no wake-up, which
     * would cost a switch of threads at every call. */
    if (w->idle)
        pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

void watchdog_disarm(Watchdog *w)
{
    pthread_mutex_lock(&w->lock);
    w->armed = 0;
    pthread_mutex_unlock(&w->lock);
}

void watchdog_close(Watchdog *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->quit = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
