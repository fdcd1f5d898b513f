/* Replay: a run done again from its start in a new folder, with every
 * change recorded in its events.jsonl applied at its step — by hand,
 * from the policy's saved sources, a fork's overrides, a restart — so
 * that the metrics come out the same (same thread count). */
#ifndef MNEME_REPLAY_H
#define MNEME_REPLAY_H

#include "error.h"
#include "run.h"

typedef struct {
    long evaluations;          /* metrics lines compared */
    long events_applied;
    int identical;             /* every compared line equal, elapsed_s aside */
    char difference[1024];     /* the first one, when not identical */
} ReplayResult;

/* Replays the run in src (a run or branch folder) into out_dir (created;
 * must not hold a run), up to where src got, and compares the metrics. */
int replay_run(const char *src, const char *out_dir, const RunHooks *hooks,
               ReplayResult *res, MnError *e);

/* Compares two metrics.jsonl files line by line, ignoring elapsed_s;
 * fills evaluations, identical and difference. */
int replay_compare_metrics(const char *a, const char *b, ReplayResult *res, MnError *e);

#endif
