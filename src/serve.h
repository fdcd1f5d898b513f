/* A live run's control socket: RUN/control.sock, a Unix-domain socket of
 * the run's owner only, served by a thread of the process that trains.
 * Clients (mneme attach, mneme ctl, a second workbench) say hello, then
 * get snapshot frames (only what is new to them, the newest replacing any
 * they were too slow to take) and post commands, each answered with what
 * it did. No client can slow, block or crash training: every socket is
 * non-blocking, every frame bounded and checked (wire.h). */
#ifndef MNEME_SERVE_H
#define MNEME_SERVE_H

#include <sys/un.h>

#include "error.h"
#include "trainer.h"

#define SERVE_MAX_CLIENTS 16

typedef struct Serve Serve;

/* Listens on run_dir/control.sock (a stale one, whose trainer is gone,
 * is replaced: the caller holds the run's lock) for t. */
Serve *serve_start(Trainer *t, const char *run_dir, MnError *e);
/* How many clients have said hello. */
int serve_clients(Serve *s);
/* Tells each client why the run ends (a last snapshot, then a "bye"
 * frame with why), closes, removes the socket, and joins the thread;
 * afterwards t may be stopped. NULL s: nothing to do. */
void serve_stop(Serve *s, const char *why);

/* The address of run_dir's socket. A folder whose path is too long for
 * sun_path is reached through /proc/self/fd: *dir_fd is then open, to be
 * closed (close_dir_fd) after bind or connect; else -1. */
int control_address(const char *run_dir, struct sockaddr_un *a, int *dir_fd, MnError *e);
void close_dir_fd(int fd);

#endif
