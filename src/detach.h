/* Training in the background: mneme run --detach starts the trainer as a
 * process of its own session (no terminal, stdin from /dev/null), waits
 * until it listens on the run's control socket, and returns. */
#ifndef MNEME_DETACH_H
#define MNEME_DETACH_H

/* Runs `mneme run --headless ARGS… --ready-fd N` (args: what follows
 * "run", without --detach) in the background and waits for it to be
 * ready; dir is the run folder, for the message. Returns the exit status
 * for mneme: 0 once it trains (the folder printed on stdout), else the
 * child's own (its error already on stderr). */
int detach_run(int argc, char *const *argv, const char *dir);

#endif
