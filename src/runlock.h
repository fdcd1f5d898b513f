/* The lock on a run folder: one process trains in a run at a time.
 *
 * An flock(2) on DIR/lock, held for as long as the process trains there
 * and released by the kernel however the process ends (a lock file that
 * outlives a crash would lock the run out forever). The file holds the
 * holder's pid, so the refusal can name it. */
#ifndef MNEME_RUNLOCK_H
#define MNEME_RUNLOCK_H

#include "error.h"

/* Takes the lock on dir (which must exist); returns the descriptor that
 * holds it, or -1 with "DIR: run is in use by pid N". */
int run_lock_take(const char *dir, MnError *e);

/* Releases a lock taken by run_lock_take (fd < 0: nothing to do). */
void run_lock_release(int fd);

/* Whether a process holds dir's lock now: its pid (-1 when it cannot be
 * read), or 0 when nobody does or the folder has no lock file. */
long run_lock_holder(const char *dir);

#endif
