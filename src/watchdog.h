/* A watchdog: a thread that, while armed, calls fire(ctx) once when the
 * deadline passes or a stop flag becomes non-zero. It exists because some
 * work (a Lua policy inside a long C function) cannot watch the clock
 * itself; fire must only do what is safe from another thread (set a flag,
 * lua_sethook). fire runs with the watchdog's lock held, so once
 * watchdog_disarm returns it is not running and will not run for that
 * arming. */
#ifndef MNEME_WATCHDOG_H
#define MNEME_WATCHDOG_H

#include <stdatomic.h>

#include "error.h"

typedef struct Watchdog Watchdog;

typedef enum { WATCHDOG_DEADLINE = 1, WATCHDOG_STOP = 2 } WatchdogReason;

int watchdog_open(Watchdog **out, void (*fire)(void *ctx, WatchdogReason why), void *ctx, MnError *e);

/* The flag is polled every few milliseconds while armed; NULL: none. The
 * caller keeps it alive until watchdog_close. */
void watchdog_set_stop_flag(Watchdog *w, const atomic_int *flag);

/* Arms for seconds from now (<= 0: the stop flag only). */
void watchdog_arm(Watchdog *w, double seconds);
void watchdog_disarm(Watchdog *w);

void watchdog_close(Watchdog *w);

#endif
