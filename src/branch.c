#include "branch.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "paths.h"
#include "safetensors.h"

int branch_name_check(const char *name, MnError *e)
{
    size_t n = strlen(name);
    if (n == 0 || n > 48)
        return mn_fail(e, "branch name '%s': expected 1 to 48 characters", name);
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return mn_fail(e, "branch name '%s': letters, digits, '-', '_' and '.' only", name);
    if (name[0] == '.')
        return mn_fail(e, "branch name '%s': must not start with '.'", name);
    if (strcmp(name, "main") == 0)
        return mn_fail(e, "branch name 'main' is the run itself: choose another");
    return 0;
}

/* branch.json's field, or NULL (the caller frees the object). */
static json_t *branch_info(const char *dir)
{
    char path[4200];
    json_error_t je;
    snprintf(path, sizeof path, "%s/branch.json", dir);
    return json_load_file(path, 0, &je);
}

void branch_root(const char *run_dir, char *out, size_t n)
{
    json_t *b = branch_info(run_dir);
    const char *root = json_string_value(json_object_get(b, "root"));
    if (root && root[0] == '/')
        snprintf(out, n, "%s", root);
    else if (root)
        snprintf(out, n, "%s/%s", run_dir, root);
    else
        snprintf(out, n, "%s", run_dir);
    json_decref(b);
}

/* The step a checkpoint holds, from its metadata, for a fine-tuning one
 * and (*done set) for the final one of a finished run; -1 for another
 * phase or an unreadable file. One read: each file holds the weights. */
static long checkpoint_step_done(const char *path, int *done)
{
    StFile f;
    MnError why;
    long step = -1;
    *done = 0;
    if (safetensors_read(&f, path, &why) < 0)
        return -1;
    const char *phase = safetensors_meta(&f, "mneme.phase");
    const char *s = safetensors_meta(&f, "mneme.step");
    *done = phase && strcmp(phase, "done") == 0;
    if (phase && s && (*done || strcmp(phase, "finetune") == 0))
        step = strtol(s, NULL, 10);
    safetensors_free(&f);
    return step;
}

/* The fine-tuning step a checkpoint holds; -1 for another phase. */
static long checkpoint_step(const char *path)
{
    int done;
    long step = checkpoint_step_done(path, &done);
    return done ? -1 : step;
}

static int by_value(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

int branch_find_checkpoint(const char *run_dir, long step, char *path, size_t n,
                           long *found, long *final_step, MnError *e)
{
    char dir[4200], file[4600], have[512] = "";
    long steps[64];
    int n_steps = 0;
    long best = -1, final = -1;
    if (final_step)
        *final_step = -1;
    snprintf(dir, sizeof dir, "%s/checkpoints", run_dir);
    /* The step's own checkpoint, when it is there: one file read, not
     * every checkpoint of the run (each holds the weights and moments). */
    if (step > 0)
        snprintf(file, sizeof file, "%s/step-%ld.safetensors", dir, step);
    else
        snprintf(file, sizeof file, "%s/base.safetensors", dir);
    if (step >= 0 && checkpoint_step(file) == step) {
        snprintf(path, n, "%s", file);
        *found = step;
        return 0;
    }
    DIR *d = opendir(dir);
    if (!d)
        return mn_fail(e, "%s: no checkpoints folder (is it a run folder?)", run_dir);
    for (struct dirent *de; (de = readdir(d));) {
        if (!has_suffix(de->d_name, ".safetensors") || strstr(de->d_name, ".tmp.") ||
            !strcmp(de->d_name, "fisher.safetensors") || !strcmp(de->d_name, "merged.safetensors"))
            continue;
        snprintf(file, sizeof file, "%s/%s", dir, de->d_name);
        int done;
        long s = checkpoint_step_done(file, &done);
        if (done && !strcmp(de->d_name, "final.safetensors"))
            final = s;
        if (s < 0 || done)
            continue;
        int seen = 0;
        for (int i = 0; i < n_steps; i++)
            seen |= steps[i] == s;
        if (!seen && n_steps < 64)
            steps[n_steps++] = s;
        /* The step's own checkpoint wins over a named one of the same step. */
        int own = strncmp(de->d_name, "step-", 5) == 0 || !strcmp(de->d_name, "base.safetensors");
        if ((step >= 0 && s == step && (best < 0 || own)) || (step < 0 && s > best)) {
            best = s;
            snprintf(path, n, "%s", file);
        }
    }
    closedir(d);
    qsort(steps, (size_t)n_steps, sizeof *steps, by_value);
    for (int i = 0, used = 0; i < n_steps && used + 24 < (int)sizeof have; i++)
        used += snprintf(have + used, sizeof have - (size_t)used, "%s%ld", i ? ", " : "", steps[i]);
    if (final_step)
        *final_step = final;
    /* the final checkpoint ends the run: a branch can't go on from it */
    char ended[160] = "";
    if (final >= 0)
        snprintf(ended, sizeof ended, " (final.safetensors, at step %ld, ends the run and can't "
                 "be forked; checkpoint.every = N keeps checkpoints to fork from)", final);
    if (best < 0 && step >= 0)
        return mn_fail(e, "%s has no checkpoint at fine-tuning step %ld; it has: %s%s", run_dir,
                       step, *have ? have : "none", ended);
    if (best < 0)
        return mn_fail(e, "%s has no fine-tuning checkpoint yet%s", run_dir, ended);
    *found = best;
    return 0;
}

/* Copies every *.lua of src/policy into dst/policy. */
static int copy_policy_sources(const char *src, const char *dst, MnError *e)
{
    char from[4400], to[4400];
    snprintf(from, sizeof from, "%s/policy", src);
    DIR *d = opendir(from);
    if (!d)
        return 0;
    snprintf(to, sizeof to, "%s/policy", dst);
    int rc = make_dirs(to, e);
    for (struct dirent *de; rc == 0 && (de = readdir(d));) {
        if (!has_suffix(de->d_name, ".lua"))
            continue;
        char a[4800], b[4800];
        snprintf(a, sizeof a, "%s/%s", from, de->d_name);
        snprintf(b, sizeof b, "%s/%s", to, de->d_name);
        rc = copy_file(a, b, e);
    }
    closedir(d);
    return rc;
}

/* The parent's files the branch starts from: the checkpoint (under the
 * name a resume looks for), the base weights and Fisher, the policy
 * sources, and the metrics and events (cut back to the checkpoint when
 * the branch resumes). */
static int copy_family_files(const char *parent, const char *checkpoint, long step,
                             const char *dir, MnError *e)
{
    char a[4400], b[4400];
    snprintf(a, sizeof a, "%s/checkpoints", dir);
    if (make_dirs(a, e) < 0)
        return -1;
    snprintf(a, sizeof a, "%s/checkpoints/base.safetensors", parent);
    snprintf(b, sizeof b, "%s/checkpoints/base.safetensors", dir);
    if (link_or_copy(a, b, e) < 0)
        return -1;
    if (step > 0) {
        snprintf(b, sizeof b, "%s/checkpoints/step-%ld.safetensors", dir, step);
        if (link_or_copy(checkpoint, b, e) < 0)
            return -1;
    }
    snprintf(a, sizeof a, "%s/checkpoints/fisher.safetensors", parent);
    snprintf(b, sizeof b, "%s/checkpoints/fisher.safetensors", dir);
    if (access(a, F_OK) == 0 && link_or_copy(a, b, e) < 0)
        return -1;
    static const char *const logs[] = { "metrics.jsonl", "events.jsonl" };
    for (int i = 0; i < 2; i++) {
        snprintf(a, sizeof a, "%s/%s", parent, logs[i]);
        snprintf(b, sizeof b, "%s/%s", dir, logs[i]);
        if (access(a, F_OK) == 0 && copy_file(a, b, e) < 0)
            return -1;
    }
    return copy_policy_sources(parent, dir, e);
}

static int write_branch_json(const char *dir, const char *name, const char *parent_name,
                             const char *parent_dir, const char *checkpoint, long step,
                             const char *const *sets, int n_sets, MnError *e)
{
    char path[4400], abs_parent[4200], stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    absolute_path(parent_dir, abs_parent, sizeof abs_parent);
    json_t *ov = json_array();
    for (int i = 0; i < n_sets; i++)
        json_array_append_new(ov, json_string(sets[i]));
    const char *slash = strrchr(checkpoint, '/');
    json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:o, s:s}", "name", name,
                          "parent", parent_name, "parent_dir", abs_parent, "root", "../..",
                          "step", (json_int_t)step, "checkpoint", slash ? slash + 1 : checkpoint,
                          "overrides", ov, "created", stamp);
    snprintf(path, sizeof path, "%s/branch.json", dir);
    int rc = b && json_dump_file(b, path, JSON_INDENT(2)) == 0 ? 0 :
             mn_fail(e, "%s: cannot write", path);
    json_decref(b);
    return rc;
}

/* A policy may steer its branches but not choose what files they read:
 * a file it named as the branch's policy would be compiled, and the
 * compiler's error would quote that file into the log. */
static int check_policy_override(const char *key, const char *source, MnError *e)
{
    if (strcmp(source, "policy") == 0 && experiment_key_is_path(key))
        return mn_fail(e, "%s names a file: a policy's fork may not set it (the branch keeps "
                       "this policy; fork with policy.NAME parameters instead)", key);
    return 0;
}

int branch_create(const char *run_dir, const char *checkpoint, const char *name,
                  const char *const *sets, int n_sets, const char *source,
                  const RunHooks *hooks, Run *out, char *dir_out, size_t n, MnError *e)
{
    char root[4096], dir[4200], cfg[4200], key[128], value[512], parent_name[64] = "main";
    struct stat st;
    int is_param;
    Run local, *r = out ? out : &local;
    memset(r, 0, sizeof *r);
    if (branch_name_check(name, e) < 0)
        return -1;
    long step = checkpoint_step(checkpoint);
    if (step < 0)
        return mn_fail(e, "%s: not a readable fine-tuning checkpoint", checkpoint);
    for (int i = 0; i < n_sets; i++)
        if (run_fork_override(sets[i], step == 0, key, sizeof key, value, sizeof value,
                              &is_param, e) < 0 ||
            check_policy_override(key, source, e) < 0)
            return -1;
    /* The overrides are checked against the experiment before anything is
     * written, so a typo leaves no half-made branch. */
    snprintf(cfg, sizeof cfg, "%s/experiment.cfg", run_dir);
    Experiment *x = malloc(sizeof *x);
    if (!x)
        return mn_fail(e, "out of memory");
    int rc = experiment_load(x, cfg, NULL, 0, e);
    for (int i = 0; i < n_sets && rc == 0; i++) {
        char assign[700];
        run_fork_override(sets[i], step == 0, key, sizeof key, value, sizeof value, &is_param, e);
        snprintf(assign, sizeof assign, "%s=%s", key, value);
        if (!is_param)
            rc = experiment_set(x, assign, e);
    }
    free(x);
    if (rc < 0)
        return -1;

    json_t *pb = branch_info(run_dir);
    const char *pn = json_string_value(json_object_get(pb, "name"));
    if (pn)
        snprintf(parent_name, sizeof parent_name, "%s", pn);
    json_decref(pb);
    branch_root(run_dir, root, sizeof root);
    snprintf(dir, sizeof dir, "%s/branches/%s", root, name);
    if (stat(dir, &st) == 0)
        return mn_fail(e, "branch %s already exists (%s)", name, dir);
    if (make_dirs(dir, e) < 0)
        return -1;
    if (copy_family_files(run_dir, checkpoint, step, dir, e) < 0 ||
        write_branch_json(dir, name, parent_name, run_dir, checkpoint, step, sets, n_sets, e) < 0 ||
        run_continue_as_branch(r, dir, cfg, name, parent_name, sets, n_sets, step == 0, source,
                               hooks, e) < 0) {
        run_free(r);
        remove_tree(dir);
        return -1;
    }
    if (dir_out)
        snprintf(dir_out, n, "%s", dir);
    if (!out)
        run_free(r);
    return 0;
}

int run_fork(Run *parent, const char *name, const char *const *sets, int n_sets,
             const char *source, const RunHooks *hooks, Run *out, char *dir_out, size_t n,
             MnError *e)
{
    char checkpoint[sizeof parent->last_checkpoint];
    if (parent->phase != PHASE_FINETUNE)
        return mn_fail(e, "fork: a run forks during fine-tuning (this one is in phase %s)",
                       phase_name(parent->phase));
    if (branch_name_check(name, e) < 0 || run_save_state(parent, e) < 0)
        return -1;
    snprintf(checkpoint, sizeof checkpoint, "%s", parent->last_checkpoint);
    return branch_create(parent->dir, checkpoint, name, sets, n_sets, source, hooks, out,
                         dir_out, n, e);
}

int branch_split_overrides(char *text, const char **out, int max)
{
    int n = 0;
    for (char *p = strtok(text, " \t\n"); p && n < max; p = strtok(NULL, " \t\n"))
        out[n++] = p;
    return n;
}
