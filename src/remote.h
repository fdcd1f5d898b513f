/* The client side of a live run's control socket (serve.h): mneme attach,
 * mneme ctl and mneme runs. */
#ifndef MNEME_REMOTE_H
#define MNEME_REMOTE_H

#include <jansson.h>

#include "error.h"
#include "trainer.h"

typedef struct Remote Remote;

/* Connects to run_dir's trainer as role "workbench" (snapshots come) or
 * "ctl" (only what is asked), and waits up to timeout_s for its welcome.
 * A run that is not live gets a message that says so and how to go on
 * ("… is not live: it ended as finished; continue it with …"); a stale
 * socket of a trainer that was killed is removed. */
Remote *remote_open(const char *run_dir, const char *role, int read_only, double timeout_s,
                    MnError *e);
void remote_close(Remote *r);
/* The socket, for poll. */
int remote_fd(const Remote *r);
/* The trainer's pid, from its welcome. */
long remote_pid(const Remote *r);

/* Reads what has arrived, without waiting, into s. Returns 1 when s
 * changed, 0 when nothing came, -1 when the connection ended: remote_why
 * then says why (the trainer's "bye", or what broke). */
int remote_poll(Remote *r, Snapshot *s);
const char *remote_why(const Remote *r);

/* Sends c; returns its id (> 0) for remote_wait_reply, or -1. */
long remote_post(Remote *r, const Command *c, MnError *e);
/* Waits up to timeout_s for the reply to id (snapshots that come
 * meanwhile are applied to s when s is not NULL). 1 applied, 0 refused
 * (text says why), -1 no answer (e says why). */
int remote_wait_reply(Remote *r, long id, double timeout_s, Snapshot *s, char *text, size_t n,
                      MnError *e);
/* Asks for the run's status: the object (the caller's) or NULL. */
json_t *remote_status(Remote *r, double timeout_s, MnError *e);

/* Whether run_dir has a live trainer to connect to (its lock is held and
 * its socket answers): the trainer's pid, or 0. */
long remote_live(const char *run_dir);

#endif
