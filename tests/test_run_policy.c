/* Reloading a policy in a live run: a reload that does not compile keeps
 * the old policy working; a reload whose hook then fails pauses the run
 * before its step; a fixed reload clears the pause and the run goes on
 * from the same step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "run.h"
#include "tap.h"

static char root[] = "/tmp/mneme-runpolicy-XXXXXX";
static char policy_file[256];

static void write_policy(const char *text)
{
    FILE *f = fopen(policy_file, "w");
    fputs(text, f);
    fclose(f);
}

static const char FREEZE[] =
    "local P = { name = \"freeze0\" }\n"
    "function P.on_step(run) run.layers[2].frozen = true end\n"
    "return P\n";
static const char SYNTAX[] = "local P = { name = \"broken\"\nreturn P\n";
static const char FAILS[] =
    "local P = { name = \"fails\" }\n"
    "function P.on_step(run) error(\"on purpose\") end\n"
    "return P\n";
static const char OPEN[] =
    "local P = { name = \"open0\" }\n"
    "function P.on_step(run) run.layers[2].frozen = false end\n"
    "return P\n";

int main(void)
{
    char cfg[1024], set_policy[400], dir[300];
    const char *src = getenv("MNEME_SRCDIR");
    Experiment x;
    Run r;
    MnError e;
    if (!mkdtemp(root)) {
        printf("Bail out! mkdtemp\n");
        return 1;
    }
    snprintf(policy_file, sizeof policy_file, "%s/p.lua", root);
    snprintf(cfg, sizeof cfg, "%s/tests/data/tiny.cfg", src ? src : ".");
    snprintf(set_policy, sizeof set_policy, "finetune.policy=%s", policy_file);
    snprintf(dir, sizeof dir, "%s/run", root);
    write_policy(FREEZE);
    const char *sets[] = { "model.layers=2", "base.pretrain.epochs=1", set_policy };
    if (experiment_load(&x, cfg, sets, 3, &e) < 0 || run_create(&r, &x, dir, NULL, &e) < 0) {
        printf("Bail out! %s\n", e.msg);
        return 1;
    }
    int l0 = model_find_group(&r.model, "layer.0");
    while (r.phase != PHASE_FINETUNE || r.step < 5)
        if (run_step(&r, &e) != 0) {
            printf("Bail out! %s\n", e.msg);
            return 1;
        }
    ok(!r.model.groups[l0].trainable, "the policy froze layer.0");

    write_policy(SYNTAX);
    ok(run_policy_reload(&r, &e) < 0 && strstr(e.msg, "p.lua:"), "a reload that does not compile fails with file:line (%s)", e.msg);
    ok(strcmp(policy_name(r.policy), "freeze0") == 0, "the old policy stays active");
    r.model.groups[l0].trainable = 1;
    ok(run_step(&r, &e) == 0 && !r.model.groups[l0].trainable, "and keeps acting at the next step");

    write_policy(FAILS);
    ok(run_policy_reload(&r, &e) == 0, "a policy that compiles reloads");
    long before = r.step;
    int rc = run_step(&r, &e);
    ok(rc == 2 && r.pause_is_error && strstr(r.pause_reason, "on purpose") && r.step == before,
       "its failing hook pauses the run before the step (%s)", r.pause_reason);
    ok(run_step(&r, &e) == 2 && r.step == before, "it stays paused until the policy is fixed");

    write_policy(OPEN);
    ok(run_policy_reload(&r, &e) == 0 && !r.pause_reason[0], "a fixed reload clears the pause");
    ok(run_step(&r, &e) == 0 && r.step == before + 1 && r.model.groups[l0].trainable,
       "the run goes on from the same step under the new policy");

    char path[512];
    snprintf(path, sizeof path, "%s/policy/%ld.lua", dir, before);
    ok(access(path, R_OK) == 0, "each reload saves its source as policy/<step>.lua");
    run_free(&r);

    snprintf(path, sizeof path, "%s/events.jsonl", dir);
    FILE *f = fopen(path, "r");
    char line[2048];
    int reloads = 0;
    while (f && fgets(line, sizeof line, f))
        reloads += strstr(line, "\"action\":\"reload\"") != NULL;
    if (f)
        fclose(f);
    ok(reloads == 2, "events.jsonl records the two reloads that took (%d)", reloads);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        diag("could not remove %s", root);
    return tap_done();
}
