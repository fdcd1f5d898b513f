#include "report.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compare.h"
#include "metrics.h"
#include "lines.h"
#include "plot.h"
#include "study.h"
#include "tradeoff.h"

/* Text made safe for HTML. */
static void esc(FILE *f, const char *s)
{
    for (; s && *s; s++)
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
}

/* A file's whole text in a <pre>, or a note that it is missing. */
static void pre_file(FILE *f, const char *path)
{
    FILE *in = fopen(path, "r");
    char buf[4096];
    if (!in) {
        fputs("<p class=note>(", f);
        esc(f, path);
        fputs(" is missing)</p>\n", f);
        return;
    }
    fputs("<pre>", f);
    for (size_t k; (k = fread(buf, 1, sizeof buf - 1, in)) > 0;) {
        buf[k] = 0;
        esc(f, buf);
    }
    fputs("</pre>\n", f);
    fclose(in);
}

static void row(FILE *f, const char *what, double v, const char *fmt)
{
    char text[64];
    if (isnan(v))
        snprintf(text, sizeof text, "-");
    else
        snprintf(text, sizeof text, fmt, v);
    fputs("<tr><th>", f);
    esc(f, what);
    fprintf(f, "</th><td>%s</td></tr>\n", text);
}

static void summary_table(FILE *f, const json_t *s)
{
    const char *status = json_string_value(json_object_get(s, "status"));
    const char *why = json_string_value(json_object_get(s, "stop_reason"));
    fputs("<h2>Summary</h2>\n<table class=summary>\n<tr><th>status</th><td>", f);
    esc(f, status ? status : "?");
    if (why) {
        fputs(" (", f);
        esc(f, why);
        fputs(")", f);
    }
    fputs("</td></tr>\n", f);
    row(f, "original task at the start (baseline)",
        json_number_at(s, "baseline", "original", "acc", NAN), "%.3f");
    row(f, "new task at the start", json_number_at(s, "baseline", "new", "acc", NAN), "%.3f");
    row(f, "final step", json_number_at(s, "final", "step", NULL, NAN), "%.0f");
    row(f, "new task, final", json_number_at(s, "final", "new", "acc", NAN), "%.3f");
    row(f, "original task, final", json_number_at(s, "final", "original", "acc", NAN), "%.3f");
    row(f, "forgetting (baseline − final original)",
        json_number_at(s, "forgetting", NULL, NULL, NAN), "%.3f");
    row(f, "largest drop of the original task",
        json_number_at(s, "max_original_drop", NULL, NULL, NAN), "%.3f");
    row(f, "crossover step", json_number_at(s, "crossover_step", NULL, NULL, NAN), "%.0f");
    row(f, "best new task", json_number_at(s, "best", "new", "acc", NAN), "%.3f");
    row(f, "area under the original task's curve",
        json_number_at(s, "original_acc_area", NULL, NULL, NAN), "%.4f");
    row(f, "trainable parameters", json_number_at(s, "trainable_params", NULL, NULL, NAN), "%.0f");
    row(f, "trainable fraction", json_number_at(s, "trainable_fraction", NULL, NULL, NAN), "%.4f");
    row(f, "time in optimizer steps (s)",
        json_number_at(s, "timing", "train_s", NULL, NAN), "%.1f");
    row(f, "time in fine-tuning's steps (s)",
        json_number_at(s, "timing", "finetune_s", NULL, NAN), "%.1f");
    fputs("</table>\n", f);
}

static void branches_table(FILE *f, const char *run_dir)
{
    BranchRow *rows;
    int n;
    if (branch_rows(run_dir, &rows, &n) < 0 || n < 2) {
        if (n >= 0 && rows)
            free(rows);
        return;
    }
    fputs("<h2>Branches</h2>\n<table class=grid>\n<tr><th>branch</th><th>parent</th><th>fork step</th>"
          "<th>status</th><th>new acc</th><th>original final</th><th>forgetting</th><th>crossover</th></tr>\n", f);
    for (int i = 0; i < n; i++) {
        const BranchRow *r = &rows[i];
        fputs("<tr><td>", f);
        esc(f, r->name);
        fputs(r->best ? " *" : "", f);
        fputs("</td><td>", f);
        esc(f, r->parent[0] ? r->parent : "-");
        if (r->fork_step >= 0)
            fprintf(f, "</td><td>%ld</td><td>", r->fork_step);
        else
            fputs("</td><td>-</td><td>", f);
        esc(f, r->status);
        if (r->has_summary)
            fprintf(f, "</td><td>%.3f</td><td>%.3f</td><td>%.3f</td>", r->new_acc, r->orig_final,
                    r->forgetting);
        else
            fputs("</td><td>-</td><td>-</td><td>-</td>", f);
        if (r->crossover >= 0)
            fprintf(f, "<td>%ld</td></tr>\n", r->crossover);
        else
            fputs("<td>-</td></tr>\n", f);
    }
    fputs("</table>\n<p class=note>* the best trade-off (the lowest combined metric)</p>\n", f);
    free(rows);
}

/* Every change made by hand or by a policy, at its step. */
static int events_table(FILE *f, const char *run_dir, MnError *e)
{
    char path[4200], *line;
    size_t len;
    LineReader lr;
    int rc, n = 0;
    snprintf(path, sizeof path, "%s/events.jsonl", run_dir);
    fputs("<h2>Events</h2>\n", f);
    FILE *in = fopen(path, "r");
    if (!in) {
        fputs("<p class=note>No changes were made during this run.</p>\n", f);
        return 0;
    }
    fputs("<table class=grid id=events>\n<tr><th>step</th><th>phase</th><th>source</th>"
          "<th>change</th><th>details</th></tr>\n", f);
    line_reader_init(&lr, in, path);
    while ((rc = line_reader_next(&lr, &line, &len, e)) == 1) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        if (!json_is_object(o)) {
            json_decref(o);
            continue;          /* a line cut short by a crash */
        }
        const char *keys[] = { "phase", "source", "command" };
        fprintf(f, "<tr><td>%lld</td>", (long long)json_integer_value(json_object_get(o, "step")));
        for (int k = 0; k < 3; k++) {
            fputs("<td>", f);
            esc(f, json_string_value(json_object_get(o, keys[k])));
            fputs("</td>", f);
            json_object_del(o, keys[k]);
        }
        json_object_del(o, "step");
        char *rest = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        fputs("<td><code>", f);
        esc(f, rest && strcmp(rest, "{}") ? rest : "");
        fputs("</code></td></tr>\n", f);
        free(rest);
        json_decref(o);
        n++;
    }
    line_reader_free(&lr);
    fclose(in);
    fputs("</table>\n", f);
    if (n == 0)
        fputs("<p class=note>No changes were made during this run.</p>\n", f);
    return rc < 0 ? -1 : 0;
}

/* The policy sources as they ran: RUN/policy/STEP.lua, by step. */
static void policy_sources(FILE *f, const char *run_dir)
{
    char dir[4200];
    struct dirent **list;
    snprintf(dir, sizeof dir, "%s/policy", run_dir);
    int n = scandir(dir, &list, NULL, alphasort);
    if (n <= 0)
        return;
    fputs("<h2>Policy sources</h2>\n", f);
    for (int i = 0; i < n; i++) {
        char path[4500];
        if (strstr(list[i]->d_name, ".lua")) {
            snprintf(path, sizeof path, "%s/%s", dir, list[i]->d_name);
            fputs("<h3>policy/", f);
            esc(f, list[i]->d_name);
            fputs("</h3>\n", f);
            pre_file(f, path);
        }
        free(list[i]);
    }
    free(list);
}

static const char style[] =
    "body{font-family:'DejaVu Sans',sans-serif;max-width:1240px;margin:2em auto;color:#222;"
    "padding:0 1em}h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse}td,th{padding:.2em .8em;text-align:left;border-bottom:1px solid #eee;"
    "vertical-align:top}table.summary th{font-weight:normal;color:#555}code,pre{font-family:"
    "'DejaVu Sans Mono',monospace;font-size:.9em}pre{background:#f6f6f6;padding:1em;overflow-x:auto}"
    ".note{color:#777}figure{margin:0}figure svg{max-width:100%;height:auto}"
    "#study td,#study th{white-space:nowrap}#study td:nth-last-child(-n+2){white-space:normal}";

/* A run's sections: its figure (every branch), summary, branches,
 * events, experiment and policy sources. */
static int run_sections(FILE *f, const char *run_dir, MnError *e)
{
    char path[4200], *svg = NULL;
    json_error_t je;
    PlotOptions po;
    memset(&po, 0, sizeof po);
    po.run_dir = run_dir;
    po.all = 1;
    po.width = 1200;
    po.height = 960;
    po.panels = PANEL_DRIFT;
    if (plot_svg(&po, &svg, e) < 0)
        return -1;
    fputs("<figure id=figure>\n", f);
    /* cairo's SVG as it is, less its XML declaration, which HTML does not take */
    const char *body = strstr(svg, "<svg");
    fputs(body ? body : "", f);
    fputs("</figure>\n", f);
    free(svg);
    snprintf(path, sizeof path, "%s/summary.json", run_dir);
    json_t *s = json_load_file(path, 0, &je);
    if (s)
        summary_table(f, s);
    else
        fputs("<h2>Summary</h2>\n<p class=note>No summary.json yet: the run has not written one.</p>\n", f);
    json_decref(s);
    branches_table(f, run_dir);
    int rc = events_table(f, run_dir, e);
    fputs("<h2>The experiment as run</h2>\n", f);
    snprintf(path, sizeof path, "%s/experiment.cfg", run_dir);
    pre_file(f, path);
    policy_sources(f, run_dir);
    return rc;
}

/* A study's table and trade-off figure; *first gets its first seed's run
 * folder, whose sections follow. */
static int study_section(FILE *f, const char *dir, char *first, size_t n, MnError *e)
{
    char path[4200], *svg = NULL;
    StudyRow *v;
    StudyInfo info;
    int rows;
    json_error_t je;
    snprintf(path, sizeof path, "%s/study.json", dir);
    json_t *o = json_load_file(path, 0, &je);
    json_t *seed = json_array_get(json_object_get(o, "seeds"), 0);
    snprintf(first, n, "%s/seed-%lld", dir, (long long)json_integer_value(seed));
    const char *status = json_string_value(json_object_get(o, "status"));
    const int done = status && !strcmp(status, "finished"), has_seed = json_is_integer(seed);
    json_decref(o);
    if (!has_seed)
        return mn_fail(e, "%s: not a study (no seeds)", path);
    if (!done) {
        /* a study under way: its runs so far */
        fputs("<h2>The study</h2>\n<p class=note>The study has not finished: its table and "
              "trade-off figure come when every remedy has. Below, the first seed's run as it "
              "stands.</p>\n", f);
        return 0;
    }
    if (study_rows(dir, &v, &rows, &info, e) < 0)
        return -1;
    if (tradeoff_svg(path, 1000, 680, NULL, &svg, e) < 0) {
        free(v);
        return -1;
    }
    fputs("<h2>The study</h2>\n<figure id=tradeoff>\n", f);
    const char *body = strstr(svg, "<svg");
    fputs(body ? body : "", f);
    fputs("</figure>\n<table class=grid id=study>\n<tr><th>remedy</th><th>new acc</th>"
          "<th>original final</th><th>original min</th><th>forgetting</th><th>trainable</th>"
          "<th>time s</th><th>notes</th><th>overrides</th></tr>\n", f);
    for (int i = 0; i < rows; i++) {
        fputs("<tr><td>", f);
        esc(f, v[i].name);
        fputs("</td><td>", f);
        esc(f, v[i].new_acc);
        fprintf(f, "</td><td>%.3f</td><td>%.3f</td><td>", v[i].orig_acc, v[i].orig_min);
        esc(f, v[i].forgetting);
        fprintf(f, "</td><td>%.1f%%</td><td>%.1f</td><td>", 100 * v[i].trainable, v[i].time_s);
        esc(f, v[i].notes);
        fputs("</td><td><code>", f);
        esc(f, v[i].sets);
        fputs("</code></td></tr>\n", f);
    }
    fputs("</table>\n<p class=note>", f);
    esc(f, info.noise);
    fprintf(f, ": a difference without * is noise. Baseline original accuracy %.3f. The Pareto "
            "front (no remedy forgets less and learns the new task better): ", info.baseline);
    esc(f, info.front);
    fputs(".</p>\n<h2>", f);
    esc(f, info.n_seeds > 1 ? "The first seed's run and its branches" : "The run and its branches");
    fputs("</h2>\n", f);
    free(svg);
    free(v);
    return 0;
}

int report_write(const char *run_dir, const char *out, MnError *e)
{
    char path[4200], tmp[4300], first[4300] = "";
    json_error_t je;
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    const int is_run = access(path, F_OK) == 0;
    snprintf(path, sizeof path, "%s/study.json", run_dir);
    const int is_study = !is_run && access(path, F_OK) == 0;
    json_t *s = json_load_file(path, 0, &je);
    const char *name = json_string_value(json_object_get(s, is_study ? "experiment" : "name"));
    if (!is_study) {
        json_decref(s);
        snprintf(path, sizeof path, "%s/summary.json", run_dir);
        s = json_load_file(path, 0, &je);
        name = json_string_value(json_object_get(s, "name"));
    }
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        json_decref(s);
        return mn_fail(e, "cannot write %s: %s", out, strerror(errno));
    }
    const char *slash = strrchr(run_dir, '/');
    fputs("<!DOCTYPE html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n<title>mneme: ", f);
    esc(f, is_study ? "study of " : "");
    esc(f, name ? name : "run");
    fprintf(f, "</title>\n<style>%s</style>\n</head>\n<body>\n<h1>", style);
    esc(f, is_study ? "study of " : "");
    esc(f, name ? name : "run");
    fputs(" · ", f);
    esc(f, slash && slash[1] ? slash + 1 : run_dir);
    fputs("</h1>\n<p class=note>", f);
    esc(f, run_dir);
    fputs("</p>\n", f);
    json_decref(s);
    int rc = is_study ? study_section(f, run_dir, first, sizeof first, e) : 0;
    if (rc == 0)
        rc = run_sections(f, is_study ? first : run_dir, e);
    fprintf(f, "<p class=note>Made by mneme %s: mneme report %s</p>\n</body>\n</html>\n", PACKAGE_VERSION,
            run_dir);
    if (fclose(f) != 0 && rc == 0)
        rc = mn_fail(e, "cannot write %s: %s", out, strerror(errno));
    if (rc == 0 && rename(tmp, out) < 0)
        rc = mn_fail(e, "cannot write %s: %s", out, strerror(errno));
    if (rc < 0)
        unlink(tmp);
    return rc;
}

int report_main(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL;
    char def[4200];
    MnError e;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-o")) {
            if (i + 1 == argc) {
                fprintf(stderr, "mneme report: -o needs a file\n");
                return 2;
            }
            out = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "mneme report: unknown option %s\nusage: mneme report RUN_DIR [-o FILE.html]\n",
                    argv[i]);
            return 2;
        } else if (!dir)
            dir = argv[i];
        else {
            fprintf(stderr, "usage: mneme report RUN_DIR [-o FILE.html]\n");
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "usage: mneme report RUN_DIR [-o FILE.html]\n");
        return 2;
    }
    if (!out) {
        snprintf(def, sizeof def, "%s/report.html", dir);
        out = def;
    }
    if (report_write(dir, out, &e) < 0) {
        fprintf(stderr, "mneme report: %s\n", e.msg);
        return 2;
    }
    printf("%s\n", out);
    return 0;
}
