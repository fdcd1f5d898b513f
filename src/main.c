/* mneme: command line and dispatch to the subcommands. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "compare.h"
#include "blas_core.h"
#include "config.h"
#include "ctl.h"
#include "detach.h"
#include "dist.h"
#include "headless.h"
#include "paths.h"
#include "export.h"
#include "plot.h"
#include "predict.h"
#include "report.h"
#include "study.h"
#include "remote.h"
#include "runs.h"
#include "tokenize_cmd.h"
#include "ui/ui.h"

#define MAX_SETS 256

/* The ranks of a data-parallel run (mpirun), set once by main(). */
static Dist *the_dist;

static const char usage_text[] =
    "usage: mneme [EXPERIMENT.cfg] [--out DIR] [--set KEY=VALUE]... [--theme NAME]\n"
    "       mneme --resume RUN_DIR [--theme NAME]\n"
    "       mneme run --headless EXPERIMENT.cfg [--out DIR] [--set KEY=VALUE]...\n"
    "                 [--quiet] [--stop-after STEPS]\n"
    "       mneme run --resume RUN_DIR [--set threads=N] [--headless] [--quiet] [--stop-after STEPS]\n"
    "       mneme run --detach EXPERIMENT.cfg [--out DIR] [--set KEY=VALUE]...\n"
    "       mneme run --detach --resume RUN_DIR [--set threads=N]\n"
    "       mneme attach [RUN_DIR] [--read-only] [--theme NAME]\n"
    "       mneme ctl RUN_DIR status|pause|resume|set KEY VALUE|freeze PARTS|unfreeze PARTS|\n"
    "                 checkpoint [NAME]|fork NAME [@STEP] [KEY=VALUE]...|reload|stop|...\n"
    "       mneme plot RUN_DIR [-o FILE.png|svg|pdf] [--branch NAME]... [--all] [--metric acc|loss]\n"
    "                 [--size WxH] [--panels train,drift] [--theme NAME]\n"
    "       mneme plot STUDY_DIR [-o FILE.png|svg|pdf] [--size WxH] [--theme NAME]\n"
    "       mneme report RUN_DIR|STUDY_DIR [-o FILE.html]\n"
    "       mneme study EXPERIMENT.cfg [--remedies FILE] [--only A,B,...] [--set KEY=VALUE]...\n"
    "                 [--seeds N] [--out DIR] [--headless] [--quiet] [--theme NAME]\n"
    "       mneme study --resume DIR [--headless] [--quiet] [--theme NAME]\n"
    "       mneme predict CHECKPOINT|MODEL_DIR --task NAME [--ids | --pair] [--precision fp32|bf16]\n"
    "       mneme export RUN_DIR|CHECKPOINT --to DIR [--task new|original] [--merge]\n"
    "       mneme tokenize MODEL_DIR [--pair] [--max-len N]\n"
    "       mneme bench EXPERIMENT.cfg [--set KEY=VALUE]... [--steps N] [--full-last-block]\n"
    "                 [--link GBIT_PER_S[,LATENCY_US]]\n"
    "       mneme runs [DIR]\n"
    "       mneme fork RUN_DIR --name NAME [--at STEP] [--set KEY=VALUE]... [--create-only]\n"
    "                 [--quiet] [--stop-after STEPS]\n"
    "       mneme compare RUN_DIR\n"
    "       mneme replay RUN_DIR [--branch NAME] [--out DIR] [--quiet]\n"
    "       mneme --help | --version\n"
    "See mneme(1) and mneme.cfg(5).\n";

/* "mneme NAME --help": the usage lines of NAME (each with the lines that
 * continue it); 0 when usage_text has none. */
static int command_usage(const char *name)
{
    int shown = 0, in = 0;
    size_t n = strlen(name);
    for (const char *line = usage_text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *p = line + (strncmp(line, "usage:", 6) == 0 ? 6 : 0);
        p += strspn(p, " ");
        int starts = strncmp(p, "mneme ", 6) == 0;
        if (starts)
            in = strncmp(p + 6, name, n) == 0 && (p[6 + n] == ' ' || p[6 + n] == '\n');
        if (in && !starts)
            printf("%.*s\n", (int)len, line);
        else if (in)
            printf("%s%.*s\n", shown++ ? "       " : "usage: ", (int)(len - (size_t)(p - line)), p);
        line += len + (end != NULL);
    }
    if (shown)
        printf("See mneme(1).\n");
    return shown;
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "mneme: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage_text);
    return 2;
}

typedef struct {
    const char *experiment;
    const char *out;
    const char *resume;
    const char *sets[MAX_SETS];
    int n_sets;
    int headless;
    int detach;
    int ready_fd;              /* internal: a background run's parent */
    int quiet;
    long steps;
    long stop_after;
    const char *theme;
} RunArgs;

/* Options shared by run and bench; returns 0, or an exit status. */
static int parse_run_args(int argc, char **argv, RunArgs *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(s, "--headless") == 0)
            a->headless = 1;
        else if (strcmp(s, "--detach") == 0)
            a->detach = 1;
        else if (strcmp(s, "--ready-fd") == 0 && val) {
            a->ready_fd = atoi(val);
            i++;
        }
        else if (strcmp(s, "--quiet") == 0)
            a->quiet = 1;
        else if (strcmp(s, "--out") == 0 || strcmp(s, "--resume") == 0 ||
                 strcmp(s, "--set") == 0 || strcmp(s, "--steps") == 0 ||
                 strcmp(s, "--stop-after") == 0 || strcmp(s, "--theme") == 0) {
            if (!val)
                return usage_error("%s needs a value", s);
            i++;
            if (strcmp(s, "--out") == 0)
                a->out = val;
            else if (strcmp(s, "--resume") == 0)
                a->resume = val;
            else if (strcmp(s, "--theme") == 0)
                a->theme = val;
            else if (strcmp(s, "--steps") == 0 || strcmp(s, "--stop-after") == 0) {
                char *end;
                long v = strtol(val, &end, 10);
                if (*end || v < 1 || end == val)
                    return usage_error("expected a positive number of steps, not '%s'", val);
                *(strcmp(s, "--steps") == 0 ? &a->steps : &a->stop_after) = v;
            } else if (a->n_sets == MAX_SETS)
                return usage_error("too many --set options%s", "");
            else
                a->sets[a->n_sets++] = val;
        } else if (strncmp(s, "--set=", 6) == 0 && a->n_sets < MAX_SETS)
            a->sets[a->n_sets++] = s + 6;
        else if (s[0] == '-')
            return usage_error("unknown option %s", s);
        else if (!a->experiment)
            a->experiment = s;
        else
            return usage_error("unexpected argument %s", s);
    }
    return 0;
}

static int load_experiment(const RunArgs *a, Experiment *x)
{
    MnError e;
    if (!a->experiment)
        return usage_error("which experiment?%s", "");
    if (experiment_load(x, a->experiment, a->sets, a->n_sets, &e) < 0) {
        fprintf(stderr, "mneme: %s\n", e.msg);
        return 2;
    }
    return 0;
}

/* The local time as a folder name's suffix. */
static void time_stamp(char *out, size_t n)
{
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(out, n, "%Y%m%d-%H%M%S", &tm);
}

static void default_out_dir(const Experiment *x, char *out, size_t n)
{
    char stamp[32];
    time_stamp(stamp, sizeof stamp);
    snprintf(out, n, "runs/%s-%s", x->name, stamp);
}

static int run_ranks(const RunArgs *a);

/* A resume takes the run folder alone, and the threads of the machine it
 * continues on (--set threads=N): *threads is that N, or 0. */
static int resume_threads(const RunArgs *a, int *threads)
{
    *threads = 0;
    if (a->experiment)
        return usage_error("--resume takes a run folder only%s", "");
    for (int i = 0; i < a->n_sets; i++) {
        char *end = NULL;
        long n = strncmp(a->sets[i], "threads=", 8) == 0 ? strtol(a->sets[i] + 8, &end, 10) : -1;
        if (!end || end == a->sets[i] + 8 || *end || n < 1 || n > 256)
            return usage_error("--resume takes a run folder and at most --set threads=N (1 to 256, "
                               "the machine it continues on), not --set %s", a->sets[i]);
        *threads = (int)n;
    }
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    RunArgs a;
    Experiment x;
    char out[EXP_PATH];
    HeadlessOptions ho;
    int rc = parse_run_args(argc, argv, &a);
    if (rc)
        return rc;
    if (the_dist->size > 1)
        return run_ranks(&a);
    memset(&ho, 0, sizeof ho);
    ho.quiet = a.quiet;
    ho.stop_after = a.stop_after;
    ho.ready_fd = a.ready_fd;
    ho.detached = a.ready_fd > 0;
    if (a.detach && a.theme)
        return usage_error("--theme is for the workbench; give it to mneme attach%s", "");
    if (a.resume) {
        if ((rc = resume_threads(&a, &ho.threads)))
            return rc;
        if (a.detach) {
            char set[32];
            snprintf(set, sizeof set, "threads=%d", ho.threads);
            char *args[] = { "--resume", (char *)a.resume, "--set", set };
            return detach_run(ho.threads ? 4 : 2, args, a.resume);
        }
        return headless_resume(a.resume, &ho);
    }
    if ((rc = load_experiment(&a, &x)))
        return rc;
    if (a.out)
        snprintf(out, sizeof out, "%s", a.out);
    else
        default_out_dir(&x, out, sizeof out);
    if (a.detach) {
        /* the experiment as given, with the folder fixed here so that it
         * can be told before the run starts */
        char **args = malloc(((size_t)argc + 4) * sizeof *args);
        int n = 0;
        if (!args)
            return usage_error("out of memory%s", "");
        for (int i = 0; i < argc; i++) {
            if (!strcmp(argv[i], "--detach") || !strcmp(argv[i], "--headless"))
                continue;
            if (!strcmp(argv[i], "--out")) {
                i++;
                continue;
            }
            args[n++] = argv[i];
        }
        args[n++] = "--out";
        args[n++] = out;
        rc = detach_run(n, args, out);
        free(args);
        return rc;
    }
    if (a.headless)
        return headless_run(&x, out, &ho);
    return ui_main(&x, out, a.theme, NULL);
}

/* Under mpirun: every rank trains its share; rank 0 owns the run folder
 * and prints, the others keep their files in a scratch folder of their
 * own, removed at the end. */
static int run_ranks(const RunArgs *a)
{
    Experiment x;
    HeadlessOptions ho;
    char out[EXP_PATH];
    int rc;
    const Dist *d = the_dist;
    if (!a->headless || a->detach || a->stop_after) {
        if (d->rank == 0)
            fprintf(stderr, "mneme: under mpirun, `mneme run --headless EXPERIMENT.cfg` (or "
                    "--resume RUN_DIR) trains data-parallel (the workbench, --detach and "
                    "--stop-after do not run across ranks yet)\n");
        return 2;
    }
    int threads = 0;
    if (a->resume && (rc = resume_threads(a, &threads)))
        return rc;
    if (!a->resume && (rc = load_experiment(a, &x)))
        return rc;
    memset(&ho, 0, sizeof ho);
    ho.threads = threads;
    ho.dist = the_dist;
    ho.quiet = a->quiet || d->rank > 0;
    ho.silent = d->rank > 0;
    if (d->rank > 0)
        dist_rank_folder(d, NULL, out, sizeof out);
    else if (a->resume)
        snprintf(out, sizeof out, "%s", a->resume);
    else if (a->out)
        snprintf(out, sizeof out, "%s", a->out);
    else
        default_out_dir(&x, out, sizeof out);
    if (a->resume) {
        /* every rank continues the state rank 0's folder holds: the others
         * copy it before rank 0 touches it (a shared file system) */
        MnError e;
        int failed = d->rank > 0 && copy_run_folder(a->resume, out, &e) < 0;
        if (failed)
            fprintf(stderr, "mneme: rank %d: %s\n", d->rank, e.msg);
        if (dist_any_failed(d, failed)) {
            if (d->rank > 0)
                remove_tree(out);
            return 2;
        }
        rc = headless_resume(out, &ho);
    } else
        rc = headless_run(&x, out, &ho);
    if (d->rank > 0)
        remove_tree(out);
    return rc;
}

/* mneme fork RUN_DIR --name NAME [--at STEP] [--set K=V]... [--create-only] */
static int cmd_fork(int argc, char **argv)
{
    const char *run_dir = NULL, *name = NULL, *sets[MAX_SETS];
    int n_sets = 0, create_only = 0;
    long at = -1;
    HeadlessOptions ho = { 0 };
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "--create-only"))
            create_only = 1;
        else if (!strcmp(s, "--quiet"))
            ho.quiet = 1;
        else if (!strcmp(s, "--name") || !strcmp(s, "--at") || !strcmp(s, "--set") ||
                 !strcmp(s, "--stop-after")) {
            if (!val)
                return usage_error("%s needs a value", s);
            i++;
            if (!strcmp(s, "--name"))
                name = val;
            else if (!strcmp(s, "--set")) {
                if (n_sets == MAX_SETS)
                    return usage_error("too many --set options%s", "");
                sets[n_sets++] = val;
            } else {
                char *end;
                long v = strtol(val, &end, 10);
                if (*end || end == val || v < 0 || (v == 0 && !strcmp(s, "--stop-after")))
                    return usage_error("expected a number of steps, not '%s'", val);
                *(!strcmp(s, "--at") ? &at : &ho.stop_after) = v;
            }
        } else if (s[0] == '-')
            return usage_error("unknown option %s", s);
        else if (!run_dir)
            run_dir = s;
        else
            return usage_error("unexpected argument %s", s);
    }
    if (!run_dir || !name)
        return usage_error("fork needs a run folder and --name NAME%s", "");
    return headless_fork(run_dir, at, name, sets, n_sets, create_only, &ho);
}

/* mneme replay RUN_DIR [--branch NAME] [--out DIR] */
static int cmd_replay(int argc, char **argv)
{
    const char *run_dir = NULL, *branch = NULL, *out = NULL;
    char src[EXP_PATH], dir[EXP_PATH + 64];
    HeadlessOptions ho = { 0 };
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "--quiet"))
            ho.quiet = 1;
        else if (!strcmp(s, "--branch") || !strcmp(s, "--out")) {
            if (!val)
                return usage_error("%s needs a value", s);
            i++;
            *(!strcmp(s, "--branch") ? &branch : &out) = val;
        } else if (s[0] == '-')
            return usage_error("unknown option %s", s);
        else if (!run_dir)
            run_dir = s;
        else
            return usage_error("unexpected argument %s", s);
    }
    if (!run_dir)
        return usage_error("replay needs a run folder%s", "");
    if (branch)
        snprintf(src, sizeof src, "%s/branches/%s", run_dir, branch);
    else
        snprintf(src, sizeof src, "%s", run_dir);
    if (out)
        snprintf(dir, sizeof dir, "%s", out);
    else {
        char stamp[32];
        time_stamp(stamp, sizeof stamp);
        snprintf(dir, sizeof dir, "%s/replays/%s-%s", run_dir, branch ? branch : "main", stamp);
    }
    return headless_replay(src, dir, &ho);
}

/* Plain `mneme [EXP]`: the default experiment when none is named;
 * `mneme --resume DIR` continues a run in the workbench. */
static int cmd_default(int argc, char **argv)
{
    char path[EXP_PATH];
    RunArgs a;
    int rc;
    if (argc > 0) {
        if ((rc = parse_run_args(argc, argv, &a)))
            return rc;
        if (a.resume && !a.headless) {
            if (a.experiment || a.n_sets || a.out)
                return usage_error("--resume takes a run folder only%s", "");
            return ui_main(NULL, a.resume, a.theme, NULL);
        }
        if (a.experiment || a.resume)
            return cmd_run(argc, argv);
    }
    /* options alone (--theme, --out, --set) apply to the default experiment */
    if (find_data_file("experiments/demo.cfg", path, sizeof path) < 0) {
        fprintf(stderr, "mneme: experiments/demo.cfg not found (set MNEME_DATA to mneme's data folder)\n");
        return 2;
    }
    char **args = malloc(((size_t)argc + 2) * sizeof *args);
    if (!args) {
        fprintf(stderr, "mneme: out of memory\n");
        return 1;
    }
    args[0] = path;
    for (int i = 0; i < argc; i++)
        args[i + 1] = argv[i];
    args[argc + 1] = NULL;
    rc = cmd_run(argc + 1, args);
    free(args);
    return rc;
}

/* The live runs under runs/, the most recently started first. */
static int live_runs(char names[][512], int max)
{
    DIR *d = opendir("runs");
    time_t when[64];
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d)) && n < max && n < 64;) {
        char dir[512], lock[600];
        struct stat st;
        if (de->d_name[0] == '.' || snprintf(dir, sizeof dir, "runs/%s", de->d_name) >= (int)sizeof dir)
            continue;
        snprintf(lock, sizeof lock, "%s/lock", dir);
        if (!remote_live(dir) || stat(lock, &st) < 0)
            continue;
        int at = n++;
        while (at > 0 && when[at - 1] < st.st_mtime) {
            when[at] = when[at - 1];
            memcpy(names[at], names[at - 1], 512);
            at--;
        }
        when[at] = st.st_mtime;
        memcpy(names[at], dir, 512);
    }
    if (d)
        closedir(d);
    return n;
}

/* mneme attach [RUN_DIR] [--read-only] [--theme NAME] */
static int cmd_attach(int argc, char **argv)
{
    const char *dir = NULL, *theme = NULL;
    int read_only = 0;
    static char live[16][512];
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--read-only"))
            read_only = 1;
        else if (!strcmp(argv[i], "--theme")) {
            if (i + 1 == argc)
                return usage_error("%s needs a value", argv[i]);
            theme = argv[++i];
        } else if (argv[i][0] == '-')
            return usage_error("unknown option %s", argv[i]);
        else if (!dir)
            dir = argv[i];
        else
            return usage_error("unexpected argument %s", argv[i]);
    }
    if (!dir) {
        int n = live_runs(live, 16);
        if (n == 0) {
            fprintf(stderr, "mneme attach: no live run under runs/ (mneme runs lists them all; "
                    "start one with mneme run --detach EXPERIMENT.cfg)\n");
            return 3;
        }
        if (n > 1 && !isatty(STDIN_FILENO)) {
            fprintf(stderr, "mneme attach: %d live runs; name one:\n", n);
            for (int i = 0; i < n; i++)
                fprintf(stderr, "  mneme attach %s\n", live[i]);
            return 2;
        }
        int pick = 0;
        if (n > 1) {
            char line[32];
            for (int i = 0; i < n; i++)
                fprintf(stderr, "%2d  %s\n", i + 1, live[i]);
            fprintf(stderr, "attach to which? [1] ");
            if (fgets(line, sizeof line, stdin) && line[0] != '\n')
                pick = atoi(line) - 1;
            if (pick < 0 || pick >= n) {
                fprintf(stderr, "mneme attach: no run %s", line);
                return 2;
            }
        }
        dir = live[pick];
    }
    return ui_attach(dir, theme, read_only);
}

static int cmd_bench(int argc, char **argv)
{
    RunArgs a;
    Experiment x;
    int full_last_block = 0, n = 0;
    double gbps = 0.0, latency_us = 50.0;
    /* bench's own switches; the rest are run's options */
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--full-last-block") == 0)
            full_last_block = 1;
        else if (strcmp(argv[i], "--link") == 0) {
            char *end = NULL;
            if (i + 1 < argc)
                gbps = strtod(argv[i + 1], &end);
            if (end && *end == ',')
                latency_us = strtod(end + 1, &end);
            if (i + 1 >= argc || !end || *end || !(gbps > 0.0 && gbps <= 1e4) ||
                !(latency_us >= 0.0 && latency_us <= 1e6))
                return usage_error("--link takes GBIT_PER_S[,LATENCY_US], for example 10 or "
                                   "10,50%s", "");
            i++;
        } else
            argv[n++] = argv[i];
    }
    if (gbps > 0.0 && the_dist->size < 2)
        return usage_error("--link emulates the network between ranks: run mneme bench under "
                           "mpirun with 2 ranks or more%s", "");
    the_dist->link_bits_per_s = gbps * 1e9;
    the_dist->link_latency_s = latency_us * 1e-6;
    int rc = parse_run_args(n, argv, &a);
    if (rc)
        return rc;
    if ((rc = load_experiment(&a, &x)))
        return rc;
    return bench_run(&x, a.steps, full_last_block, the_dist);
}

static int cmd_study(int argc, char **argv)
{
    return study_main(argc, argv, the_dist);
}

static int main_command(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*main)(int argc, char **argv);
    } commands[] = {
        { "run", cmd_run }, { "predict", predict_main }, { "bench", cmd_bench },
        { "runs", runs_main }, { "fork", cmd_fork }, { "replay", cmd_replay },
        { "compare", compare_main }, { "export", export_main }, { "tokenize", tokenize_main },
        { "attach", cmd_attach }, { "ctl", ctl_main }, { "plot", plot_main },
        { "report", report_main }, { "study", cmd_study },
    };
    if (the_dist->size > 1 && (argc < 2 || (strcmp(argv[1], "run") != 0 &&
                                            strcmp(argv[1], "bench") != 0 &&
                                            strcmp(argv[1], "study") != 0))) {
        if (the_dist->rank == 0)
            fprintf(stderr, "mneme: under mpirun, only `mneme run --headless EXPERIMENT.cfg` "
                    "and `mneme study --headless` train data-parallel (and mneme bench "
                    "measures it)\n");
        return 2;
    }
    for (size_t i = 0; argc > 1 && i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) {
            for (int k = 2; k < argc; k++)
                if ((strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) &&
                    command_usage(commands[i].name))
                    return 0;
            return commands[i].main(argc - 2, argv + 2);
        }
    return cmd_default(argc - 1, argv + 1);
}

int main(int argc, char **argv)
{
    blas_core_fix(argv);
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("mneme %s%s\n", PACKAGE_VERSION, dist_available() ? " (data-parallel over MPI)" : "");
        return 0;
    }
    Dist dist;
    MnError e;
    if (dist_init(&dist, &argc, &argv, &e) < 0) {
        fprintf(stderr, "mneme: %s\n", e.msg);
        return 2;
    }
    the_dist = &dist;
    int rc = main_command(argc, argv);
    /* a rank that fails alone must not leave the others waiting on it */
    if (rc != 0 && dist.size > 1)
        dist_abort(&dist, rc);
    dist_finish(&dist);
    return rc;
}
