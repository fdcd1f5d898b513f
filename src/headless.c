#include "headless.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blas_core.h"
#include "branch.h"
#include "dist.h"
#include "replay.h"
#include "run.h"
#include "serve.h"
#include "trainer.h"

typedef struct {
    int quiet;
    long stop_after;
} Printer;

static volatile sig_atomic_t stop_signal, reload_signal;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        reload_signal = 1;
    else
        stop_signal = sig;
}

/* "[name] " before a branch's lines once there is more than one. */
static void branch_prefix(FILE *f, const char *branch, int n_branches)
{
    if (n_branches > 1)
        fprintf(f, "[%s] ", branch);
}

static void print_record(const Printer *p, const char *branch, int n_branches, const EvalRecord *rec)
{
    if (p->quiet)
        return;
    branch_prefix(stdout, branch, n_branches);
    printf("%-8s step %6ld  epoch %5.2f", rec->phase, rec->step, rec->epoch);
    if (rec->has_new)
        printf("  new acc %.3f loss %.3f", rec->new_task.acc, rec->new_task.loss);
    if (rec->has_original)
        printf("  original acc %.3f loss %.3f", rec->original.acc, rec->original.loss);
    if (rec->has_adapter_off)
        printf(" (adapter off %.3f)", rec->original_adapter_off.acc);
    printf("  lr %.2e", rec->lr);
    if (rec->has_train_loss)
        printf("  train %.3f", rec->train_loss);
    printf("\n");
    fflush(stdout);
}

static void print_line(const Printer *p, const char *branch, int n_branches, const char *line)
{
    if (p->quiet)
        return;
    fputs("# ", stdout);
    branch_prefix(stdout, branch, n_branches);
    fprintf(stdout, "%s\n", line);
    fflush(stdout);
}

/* The trainer's listener (its thread) and the run hooks of a replay. */
static void on_eval(void *ctx, const char *branch, int n, const EvalRecord *rec)
{
    print_record(ctx, branch, n, rec);
}

static void on_log(void *ctx, const char *branch, int n, const char *line)
{
    print_line(ctx, branch, n, line);
}

static void print_eval(void *ctx, const Run *r, const EvalRecord *rec)
{
    print_record(ctx, r->branch, 1, rec);
}

static void print_log(void *ctx, const char *line)
{
    print_line(ctx, "main", 1, line);
}

static void print_branch(void *ctx, const Run *r, const char *dir)
{
    char line[4400];
    (void)r;
    snprintf(line, sizeof line, "a branch was created: continue it with mneme run --resume %s", dir);
    print_log(ctx, line);
}

static void announce(Printer *p)
{
    char core[256];
    blas_core_describe(core, sizeof core);
    print_log(p, core);
}

/* In the background a hang-up is none of the run's business. */
static void catch_signals(int detached)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    if (detached)
        sa.sa_handler = SIG_IGN;
    sigaction(SIGHUP, &sa, NULL);
}

/* Whether the process has more to do: a branch runs, or waits for a
 * client (detached: every pause; else a pause a client asked for). */
static int any_going(const Snapshot *s, int detached)
{
    for (int i = 0; i < s->n_branches; i++) {
        const SnapBranch *b = &s->branches[i];
        if (b->state == TS_RUNNING ||
            (b->state == TS_PAUSED && (detached || b->hand_paused)))
            return 1;
    }
    return 0;
}

/* Why the run's clients are let go, from the last snapshot. */
static void farewell(const Snapshot *s, int signal, char *out, size_t n)
{
    const SnapBranch *m = s->n_branches > 0 ? &s->branches[0] : NULL;
    if (signal)
        snprintf(out, n, "the trainer was stopped by signal %d (checkpointed)", signal);
    else if (!m)
        snprintf(out, n, "the trainer ended");
    else if (m->state == TS_STOPPED)
        snprintf(out, n, "the run was stopped at %s step %ld (checkpointed)", m->phase, m->step);
    else if (m->state == TS_ERROR)
        snprintf(out, n, "the run failed: %.300s", m->message);
    else if (m->state == TS_FINISHED)
        snprintf(out, n, "the run finished at step %ld", m->step);
    else
        snprintf(out, n, "the run is %s at %s step %ld: %.300s", trainer_state_name(m->state),
                 m->phase, m->step, m->message);
}

/* Once the run listens, a background trainer's parent is told, and its
 * output goes to the run's trainer.log. */
static void tell_ready(int fd, const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/trainer.log", dir);
    int log = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    fflush(stdout);
    fflush(stderr);
    if (log >= 0) {
        dup2(log, STDOUT_FILENO);
        dup2(log, STDERR_FILENO);
        close(log);
    }
    if (write(fd, "ok\n", 3) < 0) {
        /* the parent is gone: the run goes on */
    }
    close(fd);
}

/* The headless frontend of the trainer: prints as the trainer thread
 * reports, passes SIGUSR1 on as a reload, and ends when no branch is
 * running any more (finished, failed, paused) or a signal asks. Headless,
 * a pause ends the process: the trainer has checkpointed, and --resume
 * loads the (fixed) policy file afresh. */
static int drive(Trainer *t, Serve *sv, const char *again, long stop_after, int detached,
                 int silent)
{
    Snapshot s;
    Command c;
    /* the snapshot only tells when to end: no need to copy it often */
    struct timespec tick = { 0, 50 * 1000000L };
    int started = 0;
    memset(&s, 0, sizeof s);
    for (;;) {
        nanosleep(&tick, NULL);
        if (reload_signal) {
            reload_signal = 0;
            trainer_snapshot(t, &s);
            if (s.n_branches > 0 && !s.branches[0].has_policy)
                fprintf(stderr, "mneme: SIGUSR1: this run has no policy to reload\n");
            memset(&c, 0, sizeof c);
            c.kind = CMD_RELOAD;
            trainer_post(t, &c);
        }
        if (stop_signal)
            break;
        trainer_snapshot(t, &s);
        /* the first snapshot may come before the thread has published */
        started |= s.n_branches > 0;
        if (started && !any_going(&s, detached))
            break;
    }
    char why[SNAP_LINE];
    /* the branches' states as they end, for the farewell */
    trainer_snapshot(t, &s);
    farewell(&s, (int)stop_signal, why, sizeof why);
    serve_stop(sv, why);
    int status = trainer_stop(t);
    const SnapBranch *m = &s.branches[0];
    if (silent && m->state != TS_ERROR) {
        /* rank 0 says it all */
    } else if (stop_signal) {
        fprintf(stderr, "mneme: stopped by signal %d at %s step %ld; "
                "continue with: %s\n", (int)stop_signal, m->phase, m->step, again);
        status = 1;
    } else if (m->state == TS_STOPPED) {
        fprintf(stderr, "mneme: stopped by a client at %s step %ld; "
                "continue with: %s\n", m->phase, m->step, again);
    } else if (m->state == TS_ERROR) {
        fprintf(stderr, "mneme: %s\n", m->message);
        status = 1;
    } else if (m->state == TS_PAUSED && m->stopped) {
        fprintf(stderr, "mneme: stopped after %ld steps at %s step %ld; "
                "continue with: %s\n", stop_after, m->phase, m->step, again);
    } else if (m->state == TS_PAUSED) {
        fprintf(stderr, "mneme: paused at %s step %ld: %s\n"
                "mneme: continue with: %s\n", m->phase, m->step, m->message, again);
        if (m->error_pause)
            status = 1;
    }
    snapshot_free(&s);
    return status;
}

/* x NULL: resume dir. */
static int start(const Experiment *x, const char *dir, const HeadlessOptions *o)
{
    Printer p = { o->quiet, o->stop_after };
    TrainerOptions to = { .on_eval = on_eval, .on_log = on_log, .ctx = &p, .stop_after = o->stop_after,
                          .quiet_commands = 1 };
    MnError e;
    const int ranks = o->dist ? o->dist->size : 1;
    announce(&p);
    if (ranks > 1) {
        char line[200];
        snprintf(line, sizeof line, "data-parallel over %d ranks: this is rank 0, which writes "
                 "the run folder and serves mneme attach and ctl", ranks);
        print_log(&p, line);
    }
    /* Across ranks a signal ends the job (mpirun passes it to every rank):
     * one rank stopping at its own step would leave the others waiting. */
    if (ranks == 1)
        catch_signals(o->detached);
    /* in the background the branches come back as they ended */
    to.restore_states = o->detached;
    to.run_family = o->restore_family;
    to.forks = o->forks;
    to.n_forks = o->n_forks;
    to.one_at_a_time = o->one_at_a_time;
    to.dist = o->dist;
    to.threads = o->threads;
    Trainer *t = trainer_open(x, dir, NULL, &to, &e);
    if (!t) {
        /* Nothing has trained yet: what failed is the input (data files, a
         * base checkpoint, the run folder). */
        fprintf(stderr, "mneme: %s\n", e.msg);
        return 2;
    }
    /* across ranks, rank 0 serves: the trainer hands its commands on */
    Serve *sv = o->silent ? NULL : serve_start(t, dir, &e);
    if (!sv && !o->silent) {
        if (o->detached) {
            fprintf(stderr, "mneme: %s: a run in the background could not be reached\n", e.msg);
            trainer_stop(t);
            return 1;
        }
        fprintf(stderr, "mneme: warning: no control socket (mneme attach and ctl cannot reach "
                "this run): %s\n", e.msg);
    }
    if (o->ready_fd > 0)
        tell_ready(o->ready_fd, dir);
    char again[4300];
    snprintf(again, sizeof again, "%s%s", o->resume_with ? o->resume_with : "mneme run --resume ",
             o->resume_with ? "" : dir);
    return drive(t, sv, again, o->stop_after, o->detached, o->silent);
}

int headless_run(const Experiment *x, const char *out_dir, const HeadlessOptions *o)
{
    return start(x, out_dir, o);
}

int headless_resume(const char *run_dir, const HeadlessOptions *o)
{
    return start(NULL, run_dir, o);
}

int headless_fork(const char *run_dir, long at, const char *name, const char *const *sets,
                  int n_sets, int create_only, const HeadlessOptions *o)
{
    MnError e;
    char ck[4400], dir[4400];
    long step, final;
    Printer p = { o->quiet, o->stop_after };
    RunHooks hooks = { print_eval, print_log, print_branch, &p, 0, NULL, 0, NULL, 0 };
    if (branch_find_checkpoint(run_dir, at, ck, sizeof ck, &step, &final, &e) < 0 ||
        branch_create(run_dir, ck, name, sets, n_sets, "cli", &hooks, NULL, dir, sizeof dir, &e) < 0) {
        fprintf(stderr, "mneme fork: %s\n", e.msg);
        return 2;
    }
    if (at < 0 && final > step)
        fprintf(stderr, "mneme fork: the newest checkpoint a branch can start from is step %ld; "
                "final.safetensors, at step %ld, ends the run (checkpoint.every = N keeps "
                "checkpoints to fork from)\n", step, final);
    printf("branch %s of %s at step %ld: %s\n", name, run_dir, step, dir);
    fflush(stdout);
    return create_only ? 0 : start(NULL, dir, o);
}

int headless_replay(const char *src, const char *out_dir, const HeadlessOptions *o)
{
    MnError e;
    ReplayResult res;
    Printer p = { o->quiet, o->stop_after };
    RunHooks hooks = { print_eval, print_log, print_branch, &p, 0, NULL, 0, NULL, 0 };
    announce(&p);
    if (replay_run(src, out_dir, &hooks, &res, &e) < 0) {
        fprintf(stderr, "mneme replay: %s\n", e.msg);
        return 2;
    }
    if (res.identical) {
        printf("replay of %s in %s: %ld evaluations identical (%ld recorded changes applied)\n",
               src, out_dir, res.evaluations, res.events_applied);
        return 0;
    }
    printf("replay of %s in %s differs: %s\n", src, out_dir, res.difference);
    return 1;
}
