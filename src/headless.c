#include "headless.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "blas_core.h"
#include "branch.h"
#include "replay.h"
#include "run.h"

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

static void print_eval(void *ctx, const Run *r, const EvalRecord *rec)
{
    const Printer *p = ctx;
    if (p->quiet)
        return;
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

static void print_log(void *ctx, const char *line)
{
    const Printer *p = ctx;
    if (!p->quiet)
        fprintf(stdout, "# %s\n", line);
    fflush(stdout);
}

static void print_branch(void *ctx, const Run *r, const char *dir)
{
    char line[4400];
    (void)r;
    snprintf(line, sizeof line, "a branch was created: continue it with mneme run --resume %s", dir);
    print_log(ctx, line);
}

static int drive(Run *r, Printer *p)
{
    MnError e;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    for (long steps = 0;; steps++) {
        if (p->stop_after > 0 && steps == p->stop_after) {
            if (run_checkpoint(r, NULL, &e) < 0) {
                fprintf(stderr, "mneme: %s\n", e.msg);
                return 1;
            }
            fprintf(stderr, "mneme: stopped after %ld steps at %s step %ld; "
                    "continue with: mneme run --resume %s\n",
                    steps, phase_name(r->phase), r->step, r->dir);
            return 0;
        }
        if (reload_signal) {
            /* A failed reload is logged by the run; the old policy goes on. */
            reload_signal = 0;
            if (!r->policy)
                fprintf(stderr, "mneme: SIGUSR1: this run has no policy to reload\n");
            else
                run_policy_reload(r, &e);
        }
        int rc = run_step(r, &e);
        if (rc < 0) {
            fprintf(stderr, "mneme: %s\n", e.msg);
            return 1;
        }
        if (rc == 1)
            return 0;
        if (rc == 2) {
            /* Headless, a pause is a checkpoint and an exit: nothing is
             * lost, and --resume loads the (fixed) policy file afresh. */
            int lost = run_checkpoint(r, NULL, &e) < 0;
            if (lost)
                fprintf(stderr, "mneme: %s\n", e.msg);
            fprintf(stderr, "mneme: paused at %s step %ld: %s\n"
                    "mneme: continue with: mneme run --resume %s\n",
                    phase_name(r->phase), r->step, r->pause_reason, r->dir);
            return r->pause_is_error || lost ? 1 : 0;
        }
        if (stop_signal) {
            /* Keep what was done: the run continues with --resume. */
            if (run_checkpoint(r, NULL, &e) < 0)
                fprintf(stderr, "mneme: %s\n", e.msg);
            fprintf(stderr, "mneme: stopped by signal %d at %s step %ld; "
                    "continue with: mneme run --resume %s\n",
                    (int)stop_signal, phase_name(r->phase), r->step, r->dir);
            return 1;
        }
    }
}

static void announce(Printer *p)
{
    char core[256];
    blas_core_describe(core, sizeof core);
    print_log(p, core);
}

int headless_run(const Experiment *x, const char *out_dir, const HeadlessOptions *o)
{
    Run r;
    MnError e;
    Printer p = { o->quiet, o->stop_after };
    int status;
    RunHooks hooks = { print_eval, print_log, print_branch, &p };
    blas_set_threads(x->threads);
    announce(&p);
    if (run_create(&r, x, out_dir, &hooks, &e) < 0) {
        /* Nothing has trained yet: what failed is the input (data files, a
         * base checkpoint, the run folder). */
        fprintf(stderr, "mneme: %s\n", e.msg);
        run_free(&r);
        return 2;
    }

    status = drive(&r, &p);
    run_free(&r);
    return status;
}

int headless_resume(const char *run_dir, const HeadlessOptions *o)
{
    Run r;
    MnError e;
    Printer p = { o->quiet, o->stop_after };
    int status;
    RunHooks hooks = { print_eval, print_log, print_branch, &p };
    announce(&p);
    if (run_resume(&r, run_dir, &hooks, &e) < 0) {
        fprintf(stderr, "mneme: %s\n", e.msg);
        run_free(&r);
        return 2;
    }
    blas_set_threads(r.x.threads);
    if (r.phase == PHASE_DONE) {
        print_log(&p, "this run has already finished");
        run_free(&r);
        return 0;
    }
    status = drive(&r, &p);
    run_free(&r);
    return status;
}

int headless_fork(const char *run_dir, long at, const char *name, const char *const *sets,
                  int n_sets, int create_only, const HeadlessOptions *o)
{
    Run r;
    MnError e;
    char ck[4400], dir[4400];
    long step;
    Printer p = { o->quiet, o->stop_after };
    RunHooks hooks = { print_eval, print_log, print_branch, &p };
    if (branch_find_checkpoint(run_dir, at, ck, sizeof ck, &step, &e) < 0 ||
        branch_create(run_dir, ck, name, sets, n_sets, "cli", &hooks, create_only ? NULL : &r,
                      dir, sizeof dir, &e) < 0) {
        fprintf(stderr, "mneme fork: %s\n", e.msg);
        return 2;
    }
    printf("branch %s of %s at step %ld: %s\n", name, run_dir, step, dir);
    fflush(stdout);
    if (create_only)
        return 0;
    announce(&p);
    blas_set_threads(r.x.threads);
    int status = drive(&r, &p);
    run_free(&r);
    return status;
}

int headless_replay(const char *src, const char *out_dir, const HeadlessOptions *o)
{
    MnError e;
    ReplayResult res;
    Printer p = { o->quiet, o->stop_after };
    RunHooks hooks = { print_eval, print_log, print_branch, &p };
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
