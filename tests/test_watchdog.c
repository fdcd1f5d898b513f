/* The watchdog: it fires once at the deadline, at once on the stop flag,
 * never after being disarmed, and closes cleanly whatever its state. */
#include <stdatomic.h>
#include <time.h>

#include "tap.h"
#include "watchdog.h"

typedef struct {
    atomic_int fired;
    atomic_int why;
} Seen;

static void fire(void *ctx, WatchdogReason why)
{
    Seen *s = ctx;
    atomic_store(&s->why, why);
    atomic_fetch_add(&s->fired, 1);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void nap(double s)
{
    struct timespec t = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    nanosleep(&t, NULL);
}

/* Waits up to limit seconds for a fire; returns the seconds it took. */
static double wait_fire(Seen *s, double limit)
{
    double t0 = now();
    while (!atomic_load(&s->fired) && now() - t0 < limit)
        nap(0.001);
    return now() - t0;
}

int main(void)
{
    Seen s = { 0, 0 };
    atomic_int stop = 0;
    Watchdog *w;
    MnError e;
    if (!ok(watchdog_open(&w, fire, &s, &e) == 0, "a watchdog opens"))
        return tap_done();
    watchdog_set_stop_flag(w, &stop);

    watchdog_arm(w, 0.1);
    double took = wait_fire(&s, 2);
    ok(atomic_load(&s.fired) == 1 && atomic_load(&s.why) == WATCHDOG_DEADLINE && took > 0.08 && took < 0.5,
       "armed for 0.1 s, it fires at the deadline (%.3f s)", took);
    nap(0.05);
    ok(atomic_load(&s.fired) == 1, "and only once");

    atomic_store(&s.fired, 0);
    watchdog_arm(w, 0.05);
    watchdog_disarm(w);
    nap(0.15);
    ok(atomic_load(&s.fired) == 0, "disarmed before the deadline, it does not fire");

    watchdog_arm(w, 10);
    nap(0.02);
    atomic_store(&stop, 1);
    took = wait_fire(&s, 2);
    ok(atomic_load(&s.fired) == 1 && atomic_load(&s.why) == WATCHDOG_STOP && took < 0.2,
       "the stop flag makes it fire long before the deadline (%.3f s)", took);

    atomic_store(&s.fired, 0);
    watchdog_arm(w, 0);
    took = wait_fire(&s, 2);
    ok(atomic_load(&s.fired) == 1 && took < 0.2, "armed with the flag already set, it fires at once (%.3f s)", took);

    atomic_store(&stop, 0);
    atomic_store(&s.fired, 0);
    watchdog_arm(w, 10);
    watchdog_close(w);
    ok(atomic_load(&s.fired) == 0, "closed while armed, it ends without firing");
    return tap_done();
}
