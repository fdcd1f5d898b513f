/* events.jsonl: every change made to a run, by hand or by a policy, with
 * the step it took effect at, one JSON object a line. */
#ifndef MNEME_EVENTS_H
#define MNEME_EVENTS_H

#include <jansson.h>
#include <stdio.h>

#include "error.h"

typedef struct {
    FILE *f;
    long lines;                /* written so far: a checkpoint records it */
} EventLog;

/* Opens DIR/events.jsonl. keep_lines < 0 starts a new file; otherwise the
 * first keep_lines complete lines are kept (a resumed run drops what came
 * after its checkpoint, so nothing is written twice). */
int events_open(EventLog *log, const char *dir, long keep_lines, MnError *e);
/* Appends ev (taken over) as one line, flushed. */
int events_write(EventLog *log, json_t *ev, MnError *e);
/* Makes what was written durable (a checkpoint is about to count it). */
int events_sync(EventLog *log, MnError *e);
void events_close(EventLog *log);

#endif
