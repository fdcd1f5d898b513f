/* What the workbench steers: the trainer in this process, or a live run's
 * over its control socket (mneme attach). The same snapshots and commands
 * either way. */
#ifndef MNEME_UI_LINK_H
#define MNEME_UI_LINK_H

#include "remote.h"
#include "serve.h"
#include "trainer.h"

typedef struct {
    Trainer *t;                /* in this process, or */
    Serve *serve;              /*   with its socket for other clients */
    Remote *r;                 /* attached */
    int read_only;
    const char *dir;           /* the run's folder */
} Link;

/* Posts c; -1 with why in err when it cannot be (read-only, gone). The
 * trainer's answer comes back in the log, as for every command. */
int link_post(Link *l, const Command *c, char *err, size_t n);
/* A line of the frontend's own (a warning) into s's log. */
void link_log(Link *l, Snapshot *s, const char *line);
/* The newest snapshot into s: 1 when it changed, 0 when not, -1 when
 * the run has gone (attached: remote_why says why). */
int link_snapshot(Link *l, Snapshot *s);

#endif
