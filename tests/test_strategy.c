/* Strategies against forgetting, on real short runs of the tiny pair:
 * freezing leaves frozen parts bit-identical, discriminative rates set the
 * group multipliers, replay mixes original rows into batches, EWC and L2-SP
 * hold weights near the base, and the stop rules end a run with a reason. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "run.h"
#include "strategy.h"
#include "tap.h"

static char tmp_root[] = "/tmp/mneme-strategy-XXXXXX";

/* A finished run of tests/data/tiny.cfg with the given overrides. */
static int run_tiny(Run *r, const char *name, const char *const *sets, int n_sets, int to_end)
{
    char cfg[1024], dir[1200];
    Experiment x;
    MnError e;
    const char *src = getenv("MNEME_SRCDIR");
    snprintf(cfg, sizeof cfg, "%s/tests/data/tiny.cfg", src ? src : ".");
    snprintf(dir, sizeof dir, "%s/%s", tmp_root, name);
    if (experiment_load(&x, cfg, sets, n_sets, &e) < 0 || run_create(r, &x, dir, NULL, &e) < 0) {
        diag("%s: %s", name, e.msg);
        return -1;
    }
    for (;;) {
        int rc = run_step(r, &e);
        if (rc < 0) {
            diag("%s: %s", name, e.msg);
            return -1;
        }
        if (rc == 1 || (!to_end && r->phase == PHASE_FINETUNE && r->step > 0))
            return 0;
    }
}

static int group_moved(const Run *r, const char *name)
{
    int g = model_find_group(&r->model, name);
    const ParamGroup *pg = &r->model.groups[g];
    return memcmp(r->model.params + pg->offset, r->anchor + pg->offset, pg->numel * sizeof(float)) != 0;
}

static double group_drift(const Run *r, const char *name)
{
    int g = model_find_group(&r->model, name);
    const ParamGroup *pg = &r->model.groups[g];
    double num = 0, den = 0;
    for (size_t i = pg->offset; i < pg->offset + pg->numel; i++) {
        double d = (double)r->model.params[i] - r->anchor[i];
        num += d * d;
        den += (double)r->anchor[i] * r->anchor[i];
    }
    return sqrt(num / den);
}

static void test_parts(void)
{
    unsigned char f[6];
    char why[256];
    ok(parts_parse("embeddings layer.0-1, pooler", 4, f, why, sizeof why) == 0 &&
       f[0] && f[1] && f[2] && !f[3] && !f[4] && f[5], "part list: embeddings, a layer range, pooler");
    ok(parts_parse("all", 4, f, why, sizeof why) == 0 && f[0] && f[4] && f[5], "part list: all");
    ok(parts_parse("layer.4", 4, f, why, sizeof why) < 0 && strstr(why, "0..3"),
       "a layer past the model is refused (%s)", why);
    ok(parts_parse("layers.1", 4, f, why, sizeof why) < 0 && strstr(why, "unknown part"),
       "an unknown part is refused (%s)", why);
    ok(parts_parse("layer.2-1", 4, f, why, sizeof why) < 0, "a backwards range is refused");
}

static void test_groups(void)
{
    Run r;
    const char *sets[] = { "model.layers=3", "finetune.freeze.keep_last=1", "finetune.layer_decay=0.5",
                           "finetune.epochs=1" };
    if (run_tiny(&r, "groups", sets, 4, 0) < 0) {
        ok(0, "run for group settings");
        run_free(&r);
        return;
    }
    const Model *m = &r.model;
    int emb = model_find_group(m, "embeddings"), l0 = model_find_group(m, "layer.0");
    int l1 = model_find_group(m, "layer.1"), l2 = model_find_group(m, "layer.2");
    int pool = model_find_group(m, "pooler");
    ok(!m->groups[emb].trainable && !m->groups[l0].trainable && !m->groups[l1].trainable &&
       m->groups[l2].trainable && m->groups[pool].trainable &&
       m->groups[model_find_group(m, "classifier.new")].trainable &&
       !m->groups[model_find_group(m, "classifier.original")].trainable,
       "keep_last 1: only the last block, the pooler and the new head train");
    ok(fabsf(m->groups[emb].lr_scale - 0.0625f) < 1e-7 && fabsf(m->groups[l0].lr_scale - 0.125f) < 1e-7 &&
       fabsf(m->groups[l2].lr_scale - 0.5f) < 1e-7 && m->groups[pool].lr_scale == 1.0f,
       "layer_decay 0.5 over 3 blocks: embeddings 1/16, layer.0 1/8, layer.2 1/2, pooler 1");
    run_free(&r);
}

static void test_freezing_run(void)
{
    Run r;
    const char *sets[] = { "model.layers=2", "finetune.freeze.keep_last=1", "finetune.epochs=2" };
    if (run_tiny(&r, "freeze", sets, 3, 1) < 0) {
        ok(0, "freezing run");
        run_free(&r);
        return;
    }
    ok(!group_moved(&r, "embeddings") && !group_moved(&r, "layer.0") &&
       !group_moved(&r, "classifier.original"),
       "frozen embeddings, layer.0 and original head are bit-identical after fine-tuning");
    ok(group_moved(&r, "layer.1") && group_moved(&r, "pooler") && group_moved(&r, "classifier.new"),
       "the trainable block, pooler and new head moved");
    run_free(&r);
}

static void test_replay(void)
{
    Run r;
    const char *sets[] = { "finetune.replay.ratio=0.25" };
    if (run_tiny(&r, "replay", sets, 1, 0) < 0) {
        ok(0, "replay run");
        run_free(&r);
        return;
    }
    int orig = 0;
    for (int i = 0; i < r.batch.B; i++)
        orig += r.batch.task[i] == TASK_ORIGINAL;
    ok(r.batch.B == 32 && orig == 8, "replay 0.25: 8 of 32 rows come from the original task (%d of %d)",
       orig, r.batch.B);
    ok(r.steps_per_epoch == (600 + 23) / 24, "an epoch counts new-task rows only (%d steps)",
       r.steps_per_epoch);
    run_free(&r);
}

static void test_regularizers(void)
{
    Run plain, ewc, l2sp;
    const char *p_sets[] = { "finetune.epochs=2" };
    const char *e_sets[] = { "finetune.epochs=2", "finetune.ewc.lambda=1e6", "finetune.ewc.fisher_samples=200" };
    const char *l_sets[] = { "finetune.epochs=2", "finetune.l2sp.alpha=100" };
    int a = run_tiny(&plain, "plain", p_sets, 1, 1);
    int b = run_tiny(&ewc, "ewc", e_sets, 3, 1);
    int c = run_tiny(&l2sp, "l2sp", l_sets, 2, 1);
    if (a < 0 || b < 0 || c < 0) {
        ok(0, "regularizer runs");
    } else {
        double dp = group_drift(&plain, "layer.0"), de = group_drift(&ewc, "layer.0");
        double dl = group_drift(&l2sp, "layer.0");
        ok(de < 0.5 * dp, "EWC holds the encoder nearer the base (drift %.4f vs %.4f)", de, dp);
        ok(dl < 0.5 * dp, "L2-SP holds the encoder nearer the base (drift %.4f vs %.4f)", dl, dp);
        char path[1300];
        snprintf(path, sizeof path, "%s/ewc/checkpoints/fisher.safetensors", tmp_root);
        ok(access(path, R_OK) == 0, "the Fisher is saved with the run");
        double fmax = 0;
        for (size_t i = 0; i < ewc.model.n_params; i++)
            fmax = fmax > ewc.fisher[i] ? fmax : ewc.fisher[i];
        ok(fmax > 0, "the Fisher is not all zero (max %.3g)", fmax);
    }
    run_free(&plain);
    run_free(&ewc);
    run_free(&l2sp);
}

static void test_stop(void)
{
    Run r;
    const char *sets[] = { "stop.max_original_drop=0.05" };
    if (run_tiny(&r, "stopdrop", sets, 1, 1) < 0) {
        ok(0, "stop run");
        run_free(&r);
        return;
    }
    ok(r.stop_reason[0] && strstr(r.stop_reason, "max_original_drop") && r.step < r.total_steps,
       "max_original_drop ends the run early with a reason (step %ld of %ld: %s)", r.step,
       r.total_steps, r.stop_reason);
    run_free(&r);

    const char *psets[] = { "stop.metric=combined", "stop.patience=2", "stop.original_weight=5" };
    if (run_tiny(&r, "patience", psets, 3, 1) < 0) {
        ok(0, "patience run");
        run_free(&r);
        return;
    }
    char best[1300];
    snprintf(best, sizeof best, "%s/patience/checkpoints/best.safetensors", tmp_root);
    ok(r.stop_best_step > 0 && access(best, R_OK) == 0,
       "the combined metric keeps a best checkpoint (step %ld)", r.stop_best_step);
    ok(r.stop_reason[0] ? strstr(r.stop_reason, "not improved") != NULL : r.step == r.total_steps,
       "patience stops when the combined metric stalls, or the run ends (%s)",
       r.stop_reason[0] ? r.stop_reason : "ran to the end");
    run_free(&r);
}

/* LoRA: the base stays bit-identical, and with the adapter switched off
 * the original task scores exactly its baseline. */
static void test_lora(void)
{
    Run r;
    const char *sets[] = { "finetune.method=lora", "finetune.lora.targets=query value output.dense",
                           "finetune.lr=1e-2" };
    if (run_tiny(&r, "lora", sets, 3, 1) < 0) {
        ok(0, "lora run");
        run_free(&r);
        return;
    }
    ok(!group_moved(&r, "embeddings") && !group_moved(&r, "layer.0") && !group_moved(&r, "pooler") &&
       !group_moved(&r, "classifier.original"), "LoRA leaves every base weight bit-identical");
    ok(group_moved(&r, "layer.0.lora") && group_moved(&r, "classifier.new"), "the adapters and the new head moved");
    const EvalRecord *base = NULL, *last = NULL;
    for (int i = 0; i < r.history.n; i++)
        if (strcmp(r.history.v[i].phase, "finetune") == 0) {
            if (!base)
                base = &r.history.v[i];
            last = &r.history.v[i];
        }
    ok(base && last && last->has_adapter_off && last->original_adapter_off.acc == base->original.acc &&
       last->original_adapter_off.loss == base->original.loss,
       "adapter off, the original task scores exactly its baseline (%.3f)", last ? last->original_adapter_off.acc : -1.0);
    diag("adapter on: original %.3f, new %.3f", last ? last->original.acc : -1.0, last ? last->new_task.acc : -1.0);
    run_free(&r);
}

int main(void)
{
    if (!mkdtemp(tmp_root)) {
        printf("Bail out! mkdtemp\n");
        return 1;
    }
    test_parts();
    test_groups();
    test_freezing_run();
    test_replay();
    test_regularizers();
    test_stop();
    test_lora();
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0)
        diag("could not remove %s", tmp_root);
    return tap_done();
}
