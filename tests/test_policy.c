/* Lua policies against hand-filled views: each shipped policy's effect
 * step by step, the run object's fields and checks, the sandbox (each
 * escape refused and the policy still usable after it), reloads, params,
 * require and the seeded random numbers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "policy.h"
#include "tap.h"

static char tmp_root[] = "/tmp/mneme-policy-XXXXXX";
static char lua_dir[1024];          /* the project's lua/ folder */
static char user_dir[1100];

#define MAX_ACTS POLICY_MAX_ACTIONS

static PolicyAction acts[MAX_ACTS];
static int n_acts;
static MnError err;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        diag("cannot write %s", path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

static const char *tmp_path(const char *name)
{
    static char buf[4][1200];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmp_root, name);
    return buf[k];
}

/* Embeddings, three blocks, pooler and the new task's head, all training. */
static void make_view(PolicyView *v)
{
    static const char *const names[] = { "embeddings", "layer.0", "layer.1", "layer.2", "pooler", "classifier.new" };
    memset(v, 0, sizeof *v);
    v->total_steps = 100;
    v->warmup_steps = 10;
    snprintf(v->phase, sizeof v->phase, "finetune");
    v->base_lr = v->lr = 1e-3;
    v->ewc_lambda = 0;
    v->crossover_step = -1;
    v->n_layers = 6;
    for (int i = 0; i < 6; i++) {
        snprintf(v->layers[i].name, sizeof v->layers[i].name, "%s", names[i]);
        v->layers[i].lr_scale = 1;
        v->layers[i].trainable_params = 1000 * (i + 1);
        v->layers[i].drift = 0.01 * i;
    }
}

static int call(Policy *p, const char *hook, PolicyView *v, const char *arg)
{
    return policy_call(p, hook, v, arg, acts, MAX_ACTS, &n_acts, &err);
}

static Policy *load_shipped(const char *name)
{
    char path[1200];
    const char *dirs[] = { lua_dir };
    Policy *p = NULL;
    snprintf(path, sizeof path, "%s/policies/%s.lua", lua_dir, name);
    if (policy_load(&p, path, dirs, 1, 42, &err) < 0) {
        diag("%s: %s", name, err.msg);
        return NULL;
    }
    return p;
}

static Policy *load_text(const char *file, const char *text)
{
    const char *dirs[] = { lua_dir, user_dir };
    Policy *p = NULL;
    write_file(tmp_path(file), text);
    if (policy_load(&p, tmp_path(file), dirs, 2, 42, &err) < 0) {
        diag("%s: %s", file, err.msg);
        return NULL;
    }
    return p;
}

static int near(double a, double b)
{
    return fabs(a - b) <= 1e-12 + 1e-9 * fabs(b);
}

/* "frozen" pattern of the six parts, e.g. "FFFTTT"-style with F frozen. */
static const char *frozen_str(const PolicyView *v)
{
    static char s[POLICY_MAX_LAYERS + 1];
    for (int i = 0; i < v->n_layers; i++)
        s[i] = v->layers[i].frozen ? 'F' : '.';
    s[v->n_layers] = 0;
    return s;
}

static int step_to(Policy *p, PolicyView *v, long step)
{
    v->step = step;
    return call(p, "on_step", v, NULL);
}

/* ---- shipped policies --------------------------------------------------- */

static void test_gradual_unfreeze(void)
{
    Policy *p = load_shipped("gradual_unfreeze");
    PolicyView v, before;
    PolicyChange ch[8];
    if (!ok(p != NULL, "gradual_unfreeze loads"))
        return;
    ok(!strcmp(policy_name(p), "gradual_unfreeze"), "its name");
    ok(policy_set_param(p, "every", "2", &err) == 0, "set every = 2");
    make_view(&v);
    ok(call(p, "setup", &v, NULL) == 0 && !strcmp(frozen_str(&v), "FFF..."),
       "setup: only the top block and heads train (%s)", frozen_str(&v));
    step_to(p, &v, 1);
    ok(!strcmp(frozen_str(&v), "FFF..."), "step 1: unchanged (%s)", frozen_str(&v));
    before = v;
    step_to(p, &v, 2);
    ok(!strcmp(frozen_str(&v), "FF...."), "step 2: layer.1 opens (%s)", frozen_str(&v));
    int n = policy_view_changes(&before, &v, ch, 8);
    ok(n == 1 && !strcmp(ch[0].what, "layer.1.frozen") && ch[0].from == 1 && ch[0].to == 0,
       "the change is recorded as layer.1.frozen 1 -> 0 (%d changes)", n);
    step_to(p, &v, 4);
    ok(!strcmp(frozen_str(&v), "F....."), "step 4: layer.0 opens, embeddings stay (%s)", frozen_str(&v));
    step_to(p, &v, 6);
    ok(!strcmp(frozen_str(&v), "......"), "step 6: the embeddings open last (%s)", frozen_str(&v));
    v.layers[5].frozen = 1;
    step_to(p, &v, 8);
    ok(v.layers[5].frozen == 1, "heads are left as the run set them");
    policy_free(p);
}

static void test_slanted_triangular(void)
{
    Policy *p = load_shipped("slanted_triangular");
    PolicyView v;
    if (!ok(p != NULL, "slanted_triangular loads"))
        return;
    make_view(&v);
    call(p, "setup", &v, NULL);
    v.lr = 5;                       /* a rate the schedule wrote earlier must not become the base */
    step_to(p, &v, 0);
    ok(near(v.lr, 1e-3 / 32), "step 0: base / ratio (%g)", v.lr);
    step_to(p, &v, 5);
    ok(near(v.lr, 1e-3 * (1 + 0.5 * 31) / 32), "step 5: halfway up (%g)", v.lr);
    step_to(p, &v, 10);
    ok(near(v.lr, 1e-3), "step 10 (cut): the peak (%g)", v.lr);
    step_to(p, &v, 55);
    ok(near(v.lr, 1e-3 * (1 + 0.5 * 31) / 32), "step 55: halfway down (%g)", v.lr);
    step_to(p, &v, 100);
    ok(near(v.lr, 1e-3 / 32), "step 100: back to base / ratio (%g)", v.lr);
    policy_free(p);
}

static void test_layer_decay(void)
{
    Policy *p = load_shipped("layer_decay");
    PolicyView v;
    if (!ok(p != NULL, "layer_decay loads"))
        return;
    ok(policy_set_param(p, "decay", "0.5", &err) == 0, "set decay = 0.5");
    make_view(&v);
    call(p, "setup", &v, NULL);
    double want[6] = { 0.0625, 0.125, 0.25, 0.5, 1, 1 };
    int good = 1;
    for (int i = 0; i < 6; i++)
        good &= near(v.layers[i].lr_scale, want[i]);
    ok(good, "lr_scale: embeddings %g, layer.0 %g, layer.2 %g, pooler %g, head %g", v.layers[0].lr_scale,
       v.layers[1].lr_scale, v.layers[3].lr_scale, v.layers[4].lr_scale, v.layers[5].lr_scale);
    v.layers[3].lr_scale = 7;
    step_to(p, &v, 1);
    ok(v.layers[3].lr_scale == 7, "an unchanged decay writes nothing on later steps");
    policy_set_param(p, "decay", "0.9", &err);
    step_to(p, &v, 2);
    ok(near(v.layers[3].lr_scale, 0.9) && near(v.layers[1].lr_scale, 0.729), "a new decay applies at the next step");
    policy_free(p);
}

static void test_warmups(void)
{
    Policy *p = load_shipped("warmup_linear");
    PolicyView v;
    if (ok(p != NULL, "warmup_linear loads")) {
        make_view(&v);
        v.total_steps = 110;
        step_to(p, &v, 0);
        ok(v.lr == 0, "linear: step 0 at 0 (%g)", v.lr);
        step_to(p, &v, 5);
        ok(near(v.lr, 5e-4), "linear: step 5 of a 10-step warmup at half (%g)", v.lr);
        step_to(p, &v, 10);
        ok(near(v.lr, 1e-3), "linear: step 10 at the base (%g)", v.lr);
        step_to(p, &v, 60);
        ok(near(v.lr, 5e-4), "linear: halfway through the decay at half (%g)", v.lr);
        step_to(p, &v, 110);
        ok(v.lr == 0, "linear: 0 at the end (%g)", v.lr);
        policy_set_param(p, "warmup", "4", &err);
        step_to(p, &v, 2);
        ok(near(v.lr, 5e-4), "linear: params.warmup overrides warmup_steps (%g)", v.lr);
        policy_free(p);
    }
    p = load_shipped("warmup_cosine");
    if (ok(p != NULL, "warmup_cosine loads")) {
        make_view(&v);
        v.total_steps = 110;
        step_to(p, &v, 5);
        ok(near(v.lr, 5e-4), "cosine: step 5 at half (%g)", v.lr);
        step_to(p, &v, 60);
        ok(near(v.lr, 5e-4), "cosine: halfway through the cosine at half (%g)", v.lr);
        step_to(p, &v, 35);
        ok(near(v.lr, 1e-3 * 0.5 * (1 + cos(M_PI * 0.25))), "cosine: a quarter of the way (%g)", v.lr);
        policy_set_param(p, "min_ratio", "0.1", &err);
        step_to(p, &v, 110);
        ok(near(v.lr, 1e-4), "cosine: ends at min_ratio of the base (%g)", v.lr);
        policy_free(p);
    }
}

static void test_ewc_anneal(void)
{
    Policy *p = load_shipped("ewc_anneal");
    PolicyView v;
    if (!ok(p != NULL, "ewc_anneal loads"))
        return;
    make_view(&v);
    call(p, "setup", &v, NULL);
    ok(v.ewc_lambda == 1e6, "setup: lambda at start (%g)", v.ewc_lambda);
    step_to(p, &v, 25);
    ok(near(v.ewc_lambda, 7.5e5), "step 25 of 100: a quarter of the way (%g)", v.ewc_lambda);
    step_to(p, &v, 100);
    ok(v.ewc_lambda == 0, "step 100: at stop (%g)", v.ewc_lambda);
    policy_set_param(p, "over", "50", &err);
    policy_set_param(p, "stop", "1000", &err);
    step_to(p, &v, 70);
    ok(v.ewc_lambda == 1000, "params.over: held at stop after it (%g)", v.ewc_lambda);
    policy_free(p);
}

static void eval_at(Policy *p, PolicyView *v, long step, double orig_acc)
{
    v->step = step;
    v->metrics = (PolicyMetrics){ 1, step, { 1, 0.7, 0.5 }, { 1, orig_acc, 0.4 } };
    n_acts = -1;
    if (call(p, "on_eval", v, NULL) < 0)
        diag("on_eval: %s", err.msg);
}

static void test_guard_original(void)
{
    Policy *p = load_shipped("guard_original");
    PolicyView v;
    if (!ok(p != NULL, "guard_original loads"))
        return;
    make_view(&v);
    v.baseline = (PolicyMetrics){ 1, 0, { 1, 0.5, 0.7 }, { 1, 0.9, 0.3 } };
    eval_at(p, &v, 10, 0.86);
    ok(n_acts == 0, "a drop within max_drop: nothing");
    eval_at(p, &v, 20, 0.84);
    ok(n_acts == 2 && acts[0].kind == POLICY_CHECKPOINT && !strcmp(acts[0].text, "guard-20") &&
           acts[1].kind == POLICY_PAUSE && strstr(acts[1].text, "0.840"),
       "a larger drop: checkpoint guard-20, then pause (%d actions: %s)", n_acts, n_acts > 1 ? acts[1].text : "");
    eval_at(p, &v, 30, 0.80);
    ok(n_acts == 0, "still below after the resume: no second pause");
    eval_at(p, &v, 40, 0.89);
    eval_at(p, &v, 50, 0.70);
    ok(n_acts == 2, "back above the line, then below again: trips again");
    policy_set_param(p, "checkpoint", "false", &err);
    eval_at(p, &v, 60, 0.89);
    eval_at(p, &v, 70, 0.70);
    ok(n_acts == 1 && acts[0].kind == POLICY_PAUSE, "checkpoint = false: pause only");
    policy_free(p);
}

static void test_stop_at_crossover(void)
{
    Policy *p = load_shipped("stop_at_crossover");
    PolicyView v;
    if (!ok(p != NULL, "stop_at_crossover loads"))
        return;
    policy_set_param(p, "after", "50", &err);
    make_view(&v);
    eval_at(p, &v, 20, 0.9);
    ok(n_acts == 0, "no crossover: nothing");
    v.crossover_step = 30;
    eval_at(p, &v, 40, 0.9);
    ok(n_acts == 0, "a crossover before params.after steps: nothing yet");
    eval_at(p, &v, 50, 0.9);
    ok(n_acts == 1 && acts[0].kind == POLICY_STOP && strstr(acts[0].text, "30"), "at step 50: stop (%s)",
       n_acts ? acts[0].text : "");
    eval_at(p, &v, 60, 0.9);
    ok(n_acts == 0, "it stops once");
    policy_free(p);
}

/* ---- the run object ---------------------------------------------------- */

static void test_run_object(void)
{
    Policy *p = load_text("fields.lua",
        "local P = { name = 'fields' }\n"
        "function P.on_step(run)\n"
        "  local l = run.layers[4]\n"
        "  run:log(string.format('%d %d %d %.1f %s %g %s %s %d', run.step, run.total_steps, run.warmup_steps,\n"
        "    run.epoch, run.phase, run.ewc_lambda, tostring(run.crossover_step), tostring(run.metrics), #run.layers))\n"
        "  run:log(string.format('%s %d %d %s %s %d %.2f', l.name, l.index, l.block, l.kind, tostring(l.frozen),\n"
        "    l.trainable_params, l.drift))\n"
        "  run.lr = run.lr * 2\n"
        "  run.ewc_lambda = 5\n"
        "  run.layers[1].frozen = true\n"
        "  run:layer('pooler').lr_scale = 0.25\n"
        "  print('hello', 1, true)\n"
        "  assert(run.layers == run.layers and run.layers[2] == run:layer('layer.0'))\n"
        "  assert(run:layer('nope') == nil and run.layers[5].block == nil and run.layers[5].kind == 'pooler')\n"
        "end\n"
        "function P.on_eval(run, m)\n"
        "  run:log(string.format('%d %.2f %.2f %.2f %.2f %d', m.step, m.new.acc, m.original.loss,\n"
        "    run.baseline.original.acc, run.best.new.acc, run.crossover_step))\n"
        "end\n"
        "function P.on_checkpoint(run, path) run:log('saved ' .. path) end\n"
        "return P\n");
    PolicyView v;
    if (!ok(p != NULL, "a policy that reads every field loads"))
        return;
    make_view(&v);
    v.step = 7;
    v.epoch = 1.5;
    v.ewc_lambda = 2;
    int rc = call(p, "on_step", &v, NULL);
    ok(rc == 0 && n_acts == 3, "on_step runs (%d actions) %s", n_acts, rc < 0 ? err.msg : "");
    ok(n_acts > 0 && !strcmp(acts[0].text, "7 100 10 1.5 finetune 2 nil nil 6"), "run fields: '%s'", acts[0].text);
    ok(n_acts > 1 && !strcmp(acts[1].text, "layer.2 4 2 block false 4000 0.03"), "layer fields: '%s'", acts[1].text);
    ok(n_acts > 2 && acts[2].kind == POLICY_LOG && !strcmp(acts[2].text, "hello\t1\ttrue"),
       "print goes to the log: '%s'", acts[2].text);
    ok(v.lr == 2e-3 && v.ewc_lambda == 5, "writes to lr and ewc_lambda land in the view");
    ok(v.layers[0].frozen == 1 && v.layers[4].lr_scale == 0.25, "writes to frozen and lr_scale land in the view");
    v.metrics = (PolicyMetrics){ 1, 40, { 1, 0.61, 0.9 }, { 1, 0.8, 0.45 } };
    v.baseline = (PolicyMetrics){ 1, 0, { 1, 0.5, 1 }, { 1, 0.91, 0.3 } };
    v.best = (PolicyMetrics){ 1, 30, { 1, 0.66, 0.8 }, { 1, 0.85, 0.4 } };
    v.crossover_step = 35;
    ok(call(p, "on_eval", &v, NULL) == 0 && n_acts == 1 && !strcmp(acts[0].text, "40 0.61 0.45 0.91 0.66 35"),
       "on_eval gets m, baseline, best and crossover_step: '%s'", n_acts ? acts[0].text : err.msg);
    ok(call(p, "on_checkpoint", &v, "ckpt/40") == 0 && n_acts == 1 && !strcmp(acts[0].text, "saved ckpt/40"),
       "on_checkpoint gets the path");
    ok(call(p, "setup", &v, NULL) == 0 && n_acts == 0, "a missing hook is a no-op");
    ok(call(p, "on_stpe", &v, NULL) < 0, "an unknown hook name is refused: %s", err.msg);
    policy_free(p);
}

static void test_actions(void)
{
    Policy *p = load_text("acts.lua",
        "return { params = { many = false, tag = 'best-1' }, on_step = function(run)\n"
        "  if run.params.many then for i = 1, 100 do run:log(i) end end\n"
        "  run:pause('look')\n"
        "  run:checkpoint(run.params.tag)\n"
        "  run:fork('gentle', { ['finetune.lr'] = 1e-5, ['a.b'] = true, mode = 'x' })\n"
        "  run:stop()\n"
        "end }\n");
    PolicyView v;
    if (!ok(p != NULL, "an action policy loads"))
        return;
    ok(!strcmp(policy_name(p), "acts"), "the name defaults to the file name (%s)", policy_name(p));
    make_view(&v);
    ok(call(p, "on_step", &v, NULL) == 0 && n_acts == 4, "four actions queued");
    ok(acts[0].kind == POLICY_PAUSE && !strcmp(acts[0].text, "look"), "pause with its reason");
    ok(acts[1].kind == POLICY_CHECKPOINT && !strcmp(acts[1].text, "best-1"), "checkpoint with its tag");
    ok(acts[2].kind == POLICY_FORK && !strcmp(acts[2].text, "gentle") &&
           !strcmp(acts[2].overrides, "a.b=true\nfinetune.lr=1e-05\nmode=x\n"),
       "fork with sorted overrides: '%s'", acts[2].overrides);
    ok(acts[3].kind == POLICY_STOP && !strcmp(acts[3].text, ""), "stop without a reason");
    policy_set_param(p, "tag", "../../etc", &err);
    ok(call(p, "on_step", &v, NULL) < 0 && strstr(err.msg, "acts.lua:4:") && n_acts == 0,
       "a checkpoint tag with a path is refused at its line: %s", err.msg);
    policy_set_param(p, "tag", "ok", &err);
    policy_set_param(p, "many", "true", &err);
    ok(call(p, "on_step", &v, NULL) < 0 && strstr(err.msg, "too many actions") && n_acts == 0,
       "more actions than the run takes: an error, none returned: %s", err.msg);
    policy_free(p);
}

/* At the open-branch limit run:fork returns nil and why, and the action
 * carries the refusal for the run to record and show. */
static void test_fork_limit(void)
{
    Policy *p = load_text("forks.lua",
        "return { on_step = function(run)\n"
        "  local a, why_a = run:fork('one')\n"
        "  local b, why_b = run:fork('two')\n"
        "  run:log(tostring(a) .. ' ' .. tostring(why_a) .. ' / ' .. tostring(b) .. ' ' .. tostring(why_b))\n"
        "end }\n");
    PolicyView v;
    if (!ok(p != NULL, "a forking policy loads"))
        return;
    make_view(&v);
    int rc = call(p, "on_step", &v, NULL);
    ok(rc == 0 && n_acts == 3 && !acts[0].refused[0] && !acts[1].refused[0] &&
           !strcmp(acts[2].text, "true nil / true nil"),
       "without a limit both forks are queued: %s", rc < 0 ? err.msg : acts[2].text);
    make_view(&v);
    v.branch_limit = 8;
    v.open_branches = 7;
    rc = call(p, "on_step", &v, NULL);
    ok(rc == 0 && n_acts == 3 && !acts[0].refused[0] && acts[1].kind == POLICY_FORK &&
           strstr(acts[1].refused, "at most 8 branches"),
       "with one place left, the second fork is refused: %s", rc < 0 ? err.msg : acts[1].refused);
    ok(rc == 0 && !strcmp(acts[2].text, "true nil / nil fork two refused: at most 8 branches can be open at once, "
                                          "the run included"),
       "and the policy is told: %s", rc < 0 ? err.msg : acts[2].text);
    policy_free(p);
}

/* Each case writes lr first, so a restored view shows the error undid it. */
static void test_checks(void)
{
    static const struct {
        const char *c, *line, *msg;
    } cases[] = {
        { "step", ":3:", "run.step is read-only" },
        { "lr_str", ":4:", "run.lr must be a number (got string)" },
        { "frozen_num", ":5:", "layer.0.frozen must be a boolean (got number)" },
        { "lr_neg", ":6:", "run.lr must be a finite number >= 0" },
        { "scale_nan", ":7:", "layer.1.lr_scale must be a finite number >= 0" },
        { "unknown", ":8:", "run has no field 'stpe'" },
        { "name", ":9:", "layer.0.name is read-only" },
        { "dot", ":10:", "with a colon" },
        { "nil", ":11:", "attempt to index a nil value" },
        { "lambda", ":12:", "run.ewc_lambda must be a number (got boolean)" },
        { "layers", ":13:", "run.layers is read-only" },
    };
    Policy *p = load_text("checks.lua",
        "local P = { params = { case = 'none' } }\n"
        "function P.on_step(run) local c = P.params.case; run.lr = 0.5\n"
        "  if c == 'step' then run.step = 3 end\n"
        "  if c == 'lr_str' then run.lr = 'x' end\n"
        "  if c == 'frozen_num' then run.layers[2].frozen = 3 end\n"
        "  if c == 'lr_neg' then run.lr = -1 end\n"
        "  if c == 'scale_nan' then run.layers[3].lr_scale = 0/0 end\n"
        "  if c == 'unknown' then local x = run.stpe end\n"
        "  if c == 'name' then run.layers[2].name = 'x' end\n"
        "  if c == 'dot' then run.log('x') end\n"
        "  if c == 'nil' then local t = nil; t.x = 1 end\n"
        "  if c == 'lambda' then run.ewc_lambda = true end\n"
        "  if c == 'layers' then run.layers = {} end\n"
        "end\n"
        "return P\n");
    PolicyView v;
    if (!ok(p != NULL, "the checks policy loads"))
        return;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        make_view(&v);
        policy_set_param(p, "case", cases[i].c, &err);
        int rc = call(p, "on_step", &v, NULL);
        ok(rc < 0 && strstr(err.msg, "checks.lua") && strstr(err.msg, cases[i].line) && strstr(err.msg, cases[i].msg) &&
               v.lr == 1e-3,
           "%s: refused at its line, view restored: %s", cases[i].c, err.msg);
    }
    policy_set_param(p, "case", "none", &err);
    make_view(&v);
    ok(call(p, "on_step", &v, NULL) == 0 && v.lr == 0.5, "and the policy still runs");
    policy_free(p);
}

/* ---- the sandbox ------------------------------------------------------- */

static void test_sandbox(void)
{
    static const struct {
        const char *attack, *msg;
    } cases[] = {
        { "io", "global 'io'" },
        { "os_execute", "field 'execute'" },
        { "os_exit", "field 'exit'" },
        { "debug", "global 'debug'" },
        { "dofile", "global 'dofile'" },
        { "loadfile", "global 'loadfile'" },
        { "loadlib", "field 'loadlib'" },
        { "require_c", "module 'socket.core' not found" },
        { "dump", "field 'dump'" },
        { "bytecode", "attempt to load a binary chunk" },
        { "gc_stop", "not allowed" },
        { "rep", "larger than the memory limit" },
        { "move", "range too large" },
        { "loop", "instruction budget exceeded" },
        { "loop_pcall", "instruction budget exceeded" },
        { "loop_xpcall", "instruction budget exceeded" },
        { "loop_coroutine", "instruction budget exceeded" },
        { "gc", "__gc metamethods are not allowed" },
        { "close", "__close metamethods are not allowed" },
        { "xpcall_ok", "handled: /" },
        { "table_1gb", "escape.lua:26: memory limit exceeded" },
        { "close_wrap", "instruction budget exceeded" },
        { "close_resume", "instruction budget exceeded" },
        { "close_later", "stopped by the policy's limits" },
        { "load_text", "got 2 3" },
        { "bad_arg", "bad argument #1 to 'setmetatable'" },
        { "table_pcall", "memory limit exceeded" },
        /* C functions the count hook cannot reach: refused sizes, or the
         * wall-clock limit at the next instruction */
        { "move_big", "table.move: range too large" },
        /* a loaded machine may reach the wall-clock limit first */
        { "move_loop", "exceeded" },
        { "sort_loop", "exceeded" },
        { "sort_big", "table.sort: at most" },
        { "concat_index", "exceeded" },
        { "concat_big", "table.concat: range too large" },
        { "remove_len", "table.remove: range too large" },
        { "pattern", "instruction budget exceeded" },
        { "pattern_gsub", "instruction budget exceeded" },
        { "plain_find", "instruction budget exceeded" },
        { "pattern_loop", "instruction budget exceeded" },
        { "pattern_pcall", "instruction budget exceeded" },
        { "concat_op", "time limit exceeded" },
        { "coroutine_op", "time limit exceeded" },
        { "load_big", "at most 1048576 bytes" },
        { "patterns_ok", "patterns fine" },
    };
    Policy *p = load_text("escape.lua",
        "local P = { params = { attack = 'none' } }\n"
        "local A = {}\n"
        "A.io = function() return io.open('/etc/passwd') end\n"
        "A.os_execute = function() return os.execute('true') end\n"
        "A.os_exit = function() os.exit(3) end\n"
        "A.debug = function() return debug.getinfo(1) end\n"
        "A.dofile = function() return dofile('/etc/passwd') end\n"
        "A.loadfile = function() return loadfile('/etc/passwd') end\n"
        "A.loadlib = function() return package.loadlib('libc.so.6', 'system') end\n"
        "A.require_c = function() return require('socket.core') end\n"
        "A.dump = function() return load(string.dump(function() end)) end\n"
        "A.bytecode = function() local f, e = load('\\27LuaT\\0\\25\\147'); if f then return f() end; error(e) end\n"
        "A.gc_stop = function() collectgarbage('stop') end\n"
        "A.rep = function() local s = string.rep('x', 1e10); assert(string.rep('', 1e15) == '') end\n"
        "A.move = function() table.move({}, 1, 1e15, 2) end\n"
        "A.loop = function() while true do end end\n"
        "A.loop_pcall = function() while true do pcall(function() while true do end end) end end\n"
        "A.loop_xpcall = function() while true do xpcall(function() while true do end end,\n"
        "  function() while true do end end) end end\n"
        "A.loop_coroutine = function() while true do pcall(coroutine.wrap(function()\n"
        "  while true do pcall(function() while true do end end) end end)) end end\n"
        "A.gc = function() setmetatable({}, { __gc = function() while true do end end }) end\n"
        "A.close = function() local mt = { __close = true }; setmetatable({}, mt) end\n"
        "A.xpcall_ok = function() local ok, m = xpcall(function() error('boom') end,\n"
        "  function(m) return 'handled: ' .. m end); assert(not ok); error(m, 0) end\n"
        "A.table_1gb = function() local t = {} for i = 1, 1e9 // 8 do t[i] = i end end\n"
        "A.table_pcall = function() while true do pcall(function() local t = {}\n"
        "  for i = 1, 1e9 do t[i] = i end end) end end\n"
        "local mt = {}\n"
        "local closable = setmetatable({}, mt)\n"
        "mt.__close = function() while true do end end\n"
        "local saved\n"
        "A.close_wrap = function() pcall(coroutine.wrap(function() local x <close> = closable\n"
        "  while true do end end)) end\n"
        "A.close_resume = function() saved = coroutine.create(function() local x <close> = closable\n"
        "  while true do end end); coroutine.resume(saved) end\n"
        "A.close_later = function() local ok, m = coroutine.close(saved); error(m) end\n"
        "A.load_text = function() local f = load('return 1 + 1'); local g = load('return x', 'g', 't', { x = 3 })\n"
        "  error('got ' .. f() .. ' ' .. g()) end\n"
        "A.bad_arg = function() setmetatable(1, {}) end\n"
        "local big, sorted = {}, {}\n"
        "for i = 1, 2e5 do sorted[i] = (i * 7919) % 200003 end\n"
        "A.move_big = function() while true do table.move(big, 1, (1 << 24) - 2, 1, {}) end end\n"
        "A.move_loop = function() while true do table.move(big, 1, (1 << 20) - 1, 1, {}) end end\n"
        "A.sort_loop = function() while true do table.sort(sorted) end end\n"
        "A.sort_big = function() table.sort(setmetatable({}, { __len = function() return 1e9 end })) end\n"
        "A.concat_index = function() local t = setmetatable({}, { __index = function() return '' end })\n"
        "  while true do table.concat(t, '', 1, 1e6) end end\n"
        "A.concat_big = function() table.concat(setmetatable({}, { __index = type }), '', 1, 1e12) end\n"
        "A.remove_len = function() table.remove(setmetatable({}, { __len = function() return 1e9 end }), 1) end\n"
        "A.pattern = function() return string.find(string.rep('a', 40), string.rep('a?', 40) .. string.rep('a', 40)) end\n"
        "A.pattern_gsub = function() return (string.rep('a', 5000)):gsub('.-.-.-b', '') end\n"
        "A.plain_find = function() local s = string.rep('a', 1 << 23)\n"
        "  return s:find(string.sub(s, 1, 1 << 22) .. 'b', 1, true) end\n"
        "A.pattern_loop = function() local s = string.rep('a', 200)\n"
        "  while true do s:find('(a*)(a*)b') end end\n"
        "A.pattern_pcall = function() local s = string.rep('a', 40)\n"
        "  while true do pcall(string.find, s, string.rep('a?', 40) .. s) end end\n"
        "A.concat_op = function() local s = string.rep('x', 1 << 24); while true do local t = s .. 'y' end end\n"
        "A.coroutine_op = function() coroutine.wrap(function() local s = string.rep('x', 1 << 24)\n"
        "  while true do local t = s .. 'y' end end)() end\n"
        "A.load_big = function() return load(string.rep(' ', 2 << 20)) end\n"
        "A.patterns_ok = function() assert(('layer.12'):match('^layer%.(%d+)$') == '12')\n"
        "  local n = 0; for w in string.rep('ab,', 300):gmatch('[^,]+') do n = n + 1 end; assert(n == 300)\n"
        "  assert(select(2, string.rep('x=1 ', 50):gsub('(%w+)=(%w+)', '%2=%1')) == 50)\n"
        "  local t = { 3, 1, 2 }; table.sort(t); assert(table.concat(t, ',') == '1,2,3')\n"
        "  table.insert(t, 1, 0); assert(table.remove(t, 1) == 0 and #t == 3)\n"
        "  local done; assert(load(function() if not done then done = true; return 'return 7' end end)() == 7)\n"
        "  error('patterns fine') end\n"
        "function P.on_step(run)\n"
        "  assert(type(os.clock()) == 'number' and type(os.time()) == 'number')\n"
        "  assert(package.cpath == nil and string.dump == nil and collectgarbage('count') > 0)\n"
        "  local a = A[P.params.attack]\n"
        "  if a then a() end\n"
        "  run.lr = 0.123\n"
        "end\n"
        "return P\n");
    PolicyView v;
    if (!ok(p != NULL, "the escape policy loads"))
        return;
    make_view(&v);
    int rc0 = call(p, "on_step", &v, NULL);
    ok(rc0 == 0 && v.lr == 0.123, "without an attack it runs: %s", rc0 < 0 ? err.msg : "yes");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        policy_set_param(p, "attack", cases[i].attack, &err);
        make_view(&v);
        int rc = call(p, "on_step", &v, NULL);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        /* the time limit is 1 s: whatever the attack, the call ends soon after */
        ok(rc < 0 && strstr(err.msg, cases[i].msg) && strstr(err.msg, "escape.lua:") && v.lr == 1e-3 && ms < 2000,
           "%s: refused with file:line within 2 s (%.0f ms): %s", cases[i].attack, ms, rc < 0 ? err.msg : "no error");
        policy_set_param(p, "attack", "none", &err);
        rc = call(p, "on_step", &v, NULL);
        ok(rc == 0 && v.lr == 0.123, "  and the policy is still usable: %s", rc < 0 ? err.msg : "yes");
    }
    policy_free(p);
}

static void test_load_errors(void)
{
    static const struct {
        const char *file, *text, *msg;
    } cases[] = {
        { "syntax.lua", "local P = {}\nfunction P.on_step(run)\n  run.lr = \nend\nreturn P\n", "syntax.lua:4:" },
        { "notable.lua", "return 3\n", "must return a table (got number)" },
        { "typo.lua", "return { on_steps = function() end }\n", "unknown hook 'on_steps'" },
        { "hooktype.lua", "return { on_step = 3 }\n", "on_step must be a function" },
        { "params.lua", "return { params = { x = {} } }\n", "params.x must be a number, boolean or string" },
        { "binary.lua", "\033LuaT\0", "binary chunk" },
        { "toplevel.lua", "local x = nil\nx.y = 1\nreturn {}\n", "toplevel.lua:2:" },
        { "toploop.lua", "while true do end\n", "toploop.lua:1: instruction budget" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *dirs[] = { lua_dir };
        Policy *p = NULL;
        write_file(tmp_path(cases[i].file), cases[i].text);
        int rc = policy_load(&p, tmp_path(cases[i].file), dirs, 1, 1, &err);
        ok(rc < 0 && p == NULL && strstr(err.msg, cases[i].msg), "%s: %s", cases[i].file, err.msg);
    }
    Policy *p = NULL;
    ok(policy_load(&p, tmp_path("missing.lua"), NULL, 0, 1, &err) < 0 && strstr(err.msg, "missing.lua"),
       "a missing file: %s", err.msg);
}

/* ---- reload, params, require, random ----------------------------------- */

static void test_reload(void)
{
    const char *good = "return { name = 'v1', params = { k = 1 }, on_step = function(run) run.lr = run.params.k end }\n";
    Policy *p = load_text("reload.lua", good);
    PolicyView v;
    size_t len;
    if (!ok(p != NULL, "v1 loads"))
        return;
    ok(!strcmp(policy_source(p, &len), good) && len == strlen(good), "policy_source is the text loaded");
    ok(policy_set_param(p, "k", "5", &err) == 0, "the user sets k = 5");
    write_file(tmp_path("reload.lua"), "return { name = 'v2',\n  on_step = function(run) run.lr = end }\n");
    ok(policy_reload(p, &err) < 0 && strstr(err.msg, "reload.lua:2:"), "a syntax error on reload: %s", err.msg);
    make_view(&v);
    ok(call(p, "on_step", &v, NULL) == 0 && v.lr == 5 && !strcmp(policy_name(p), "v1") &&
           !strcmp(policy_source(p, NULL), good),
       "the previous policy stays, hooks and source");
    write_file(tmp_path("reload.lua"),
               "return { name = 'v3', params = { k = 2 }, on_step = function(run)\n  local t = nil; t.x = 1 end }\n");
    ok(policy_reload(p, &err) == 0 && !strcmp(policy_name(p), "v3"), "a file with a runtime error reloads");
    ok(call(p, "on_step", &v, NULL) < 0 && strstr(err.msg, "reload.lua:2:"), "and fails at its line: %s", err.msg);
    write_file(tmp_path("reload.lua"), "return { name = 'v4', params = { k = 2 }, on_step = function(run)\n"
                                       "  run.lr = run.params.k * 10 end }\n");
    ok(policy_reload(p, &err) == 0, "the fixed file reloads");
    ok(call(p, "on_step", &v, NULL) == 0 && v.lr == 50, "and runs, with the user's k = 5 kept (lr %g)", v.lr);
    write_file(tmp_path("reload.lua"), "return { name = 'v5', params = { k = false }, on_step = function(run)\n"
                                       "  run:log(run.params.k) end }\n");
    ok(policy_reload(p, &err) == 0 && call(p, "on_step", &v, NULL) == 0 && n_acts == 1 && !strcmp(acts[0].text, "false"),
       "a setting whose type changed in the file is dropped");
    policy_free(p);
}

static void test_params(void)
{
    Policy *p = load_text("params.lua",
        "local P = { params = { n = 3, x = 0.5, flag = false, mode = 'a' } }\n"
        "function P.on_step(run)\n"
        "  local q = run.params\n"
        "  run:log(string.format('%s %s %s %s %s', math.type(q.n), tostring(q.x), tostring(q.flag), q.mode,\n"
        "    tostring(q == P.params)))\n"
        "end\n"
        "return P\n");
    PolicyView v;
    if (!ok(p != NULL, "the params policy loads"))
        return;
    ok(policy_set_param(p, "n", "7", &err) == 0, "an integer");
    ok(policy_set_param(p, "x", "1e-3", &err) == 0, "a number");
    ok(policy_set_param(p, "flag", "yes", &err) == 0, "a boolean as yes");
    ok(policy_set_param(p, "mode", "fast lane", &err) == 0, "a string");
    make_view(&v);
    call(p, "on_step", &v, NULL);
    ok(n_acts == 1 && !strcmp(acts[0].text, "integer 0.001 true fast lane true"), "they land in run.params: '%s'",
       n_acts ? acts[0].text : err.msg);
    ok(policy_set_param(p, "n", "abc", &err) < 0 && strstr(err.msg, "expected a number"), "a word for a number: %s",
       err.msg);
    ok(policy_set_param(p, "x", "inf", &err) < 0, "an infinite number: %s", err.msg);
    ok(policy_set_param(p, "flag", "maybe", &err) < 0 && strstr(err.msg, "true or false"), "maybe for a boolean: %s",
       err.msg);
    ok(policy_set_param(p, "nope", "1", &err) < 0 && strstr(err.msg, "no parameter 'nope'"), "an unknown name: %s",
       err.msg);
    call(p, "on_step", &v, NULL);
    ok(n_acts == 1 && !strcmp(acts[0].text, "integer 0.001 true fast lane true"), "refused settings change nothing");
    policy_free(p);
}

static void test_require(void)
{
    char outside[1200];
    snprintf(outside, sizeof outside, "%s/outside", tmp_root);
    mkdir(outside, 0700);
    write_file(tmp_path("user/helper.lua"), "return { twice = function(x) return 2 * x end }\n");
    write_file(tmp_path("outside/evil.lua"), "return { owned = true }\n");
    char text[2048];
    snprintf(text, sizeof text,
             "local h = require('helper')\n"
             "local s = require('mneme.schedules')\n"
             "local P = { params = { mod = 'none' } }\n"
             "function P.on_step(run)\n"
             "  run.lr = h.twice(s.lerp(0, 1, 0.25))\n"
             "  if P.params.mod == 'path' then package.path = '%s/?.lua'; require('evil') end\n"
             "  if P.params.mod ~= 'none' and P.params.mod ~= 'path' then require(P.params.mod) end\n"
             "end\n"
             "return P\n",
             outside);
    Policy *p = load_text("req.lua", text);
    PolicyView v;
    if (!ok(p != NULL, "a policy requiring a user helper and mneme.schedules loads"))
        return;
    make_view(&v);
    int rc = call(p, "on_step", &v, NULL);
    ok(rc == 0 && v.lr == 0.5, "both modules work (lr %g)", v.lr);
    static const char *const bad[] = { "../outside/evil", "evil", "path", "/etc/passwd", ".hidden" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        policy_set_param(p, "mod", bad[i], &err);
        ok(call(p, "on_step", &v, NULL) < 0 && strstr(err.msg, "req.lua:"), "require %s outside the folders fails: %.90s",
           bad[i], err.msg);
    }
    policy_free(p);
}

static void test_random(void)
{
    const char *src = "return { on_step = function(run)\n"
                      "  run:log(string.format('%d %d %.17g', math.random(1, 1000000), math.random(1, 1000000),\n"
                      "    math.random())) end }\n";
    const char *dirs[] = { lua_dir };
    char seq[3][256] = { "", "", "" };
    unsigned long long seeds[3] = { 7, 7, 8 };
    PolicyView v;
    write_file(tmp_path("rand.lua"), src);
    make_view(&v);
    for (int i = 0; i < 3; i++) {
        Policy *p = NULL;
        if (policy_load(&p, tmp_path("rand.lua"), dirs, 1, seeds[i], &err) == 0 && call(p, "on_step", &v, NULL) == 0 &&
            n_acts == 1)
            snprintf(seq[i], sizeof seq[i], "%s", acts[0].text);
        policy_free(p);
    }
    ok(seq[0][0] && !strcmp(seq[0], seq[1]), "the same seed gives the same numbers (%s)", seq[0]);
    ok(strcmp(seq[0], seq[2]), "another seed gives others (%s)", seq[2]);
}

static void test_changes(void)
{
    PolicyView a, b;
    PolicyChange ch[8];
    make_view(&a);
    b = a;
    b.lr = 2e-3;
    b.ewc_lambda = 3;
    b.layers[2].frozen = 1;
    b.layers[3].lr_scale = (float)0.9;
    a.layers[3].lr_scale = 0.9;     /* the same at the model's float precision */
    b.layers[4].lr_scale = 0.5;
    int n = policy_view_changes(&a, &b, ch, 8);
    ok(n == 4 && !strcmp(ch[0].what, "lr") && !strcmp(ch[1].what, "ewc_lambda") &&
           !strcmp(ch[2].what, "layer.1.frozen") && !strcmp(ch[3].what, "pooler.lr_scale") && ch[3].to == 0.5,
       "view changes: lr, ewc_lambda, layer.1.frozen, pooler.lr_scale (%d)", n);
    ok(policy_view_changes(&a, &b, ch, 2) == 2, "at most max are written");
}

int main(void)
{
    const char *src = getenv("MNEME_SRCDIR");
    snprintf(lua_dir, sizeof lua_dir, "%s/lua", src ? src : ".");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(user_dir, sizeof user_dir, "%s/user", tmp_root);
    mkdir(user_dir, 0700);
    test_gradual_unfreeze();
    test_slanted_triangular();
    test_layer_decay();
    test_warmups();
    test_ewc_anneal();
    test_guard_original();
    test_stop_at_crossover();
    test_run_object();
    test_actions();
    test_checks();
    test_fork_limit();
    test_sandbox();
    test_load_errors();
    test_reload();
    test_params();
    test_require();
    test_random();
    test_changes();
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0)
        diag("could not remove %s", tmp_root);
    return tap_done();
}
