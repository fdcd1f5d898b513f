/* The crossover point and the summary's measures on constructed metric
 * sequences, where the right answers are known by hand. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"
#include "tap.h"

static void push(History *h, long step, double new_acc, double orig_acc)
{
    EvalRecord r;
    memset(&r, 0, sizeof r);
    r.step = step;
    strcpy(r.phase, "finetune");
    r.has_new = r.has_original = 1;
    r.new_task.acc = new_acc;
    r.original.acc = orig_acc;
    r.crossover_step = -1;
    history_push(h, &r, NULL);
}

int main(void)
{
    History h;
    memset(&h, 0, sizeof h);
    /* Smoothed over 3 evaluations, the new task's gain against the
     * original's loss, evaluation by evaluation (by hand):
     *   step 100..400: 0.100/0.005, 0.100/0.005, 0.167/0.013, 0.113/0.027
     *   step 500: 0.053/0.043 (still gaining more than it costs)
     *   step 600: 0.023/0.057 (the gain is now smaller: the crossover) */
    double nw[] = { 0.50, 0.70, 0.90, 1.00, 1.04, 1.06, 1.07 };
    double og[] = { 0.95, 0.94, 0.93, 0.91, 0.86, 0.80, 0.74 };
    for (int i = 0; i < 7; i++)
        push(&h, 100L * i, nw[i], og[i]);
    int cx = crossover_find(&h);
    ok(cx >= 0 && h.v[cx].step == 600, "crossover on a constructed sequence at step 600 (got %ld)",
       cx >= 0 ? h.v[cx].step : -1L);
    history_free(&h);

    /* One noisy evaluation (the original dips by 3 points once while the
     * new task still climbs fast) does not trigger it. */
    double nw2[] = { 0.50, 0.60, 0.70, 0.80, 0.90, 0.95 };
    double og2[] = { 0.95, 0.95, 0.92, 0.95, 0.95, 0.95 };
    for (int i = 0; i < 6; i++)
        push(&h, 100L * i, nw2[i], og2[i]);
    ok(crossover_find(&h) < 0, "a single noisy dip is smoothed away: no crossover");
    history_free(&h);

    /* An original task that never falls has no crossover. */
    for (int i = 0; i < 6; i++)
        push(&h, 100L * i, 0.5 + 0.01 * i, 0.9);
    ok(crossover_find(&h) < 0, "no loss on the original task: no crossover");
    history_free(&h);

    /* The summary's measures. */
    double nw3[] = { 0.25, 0.80, 0.95, 0.90 };
    double og3[] = { 0.96, 0.80, 0.60, 0.70 };
    for (int i = 0; i < 4; i++)
        push(&h, 10L * i, nw3[i], og3[i]);
    char dir[] = "/tmp/mneme-metrics-XXXXXX", path[64];
    if (!mkdtemp(dir)) {
        printf("Bail out! mkdtemp\n");
        return 1;
    }
    snprintf(path, sizeof path, "%s/summary.json", dir);
    MnError e;
    ok(summary_write(path, &h, "t", "finished", NULL, &e) == 0, "summary written");
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    double forgetting = json_number_value(json_object_get(o, "forgetting"));
    double drop = json_number_value(json_object_get(o, "max_original_drop"));
    double area = json_number_value(json_object_get(o, "original_acc_area"));
    double best = json_number_value(json_object_get(json_object_get(json_object_get(o, "best"), "new"), "acc"));
    ok(fabs(forgetting - 0.26) < 1e-9, "forgetting = baseline 0.96 - final 0.70 (%.4f)", forgetting);
    ok(fabs(drop - 0.36) < 1e-9, "largest drop 0.96 - 0.60 (%.4f)", drop);
    /* trapezoids: (0.96+0.80)/2 + (0.80+0.60)/2 + (0.60+0.70)/2 over 3 spans */
    ok(fabs(area - (0.88 + 0.70 + 0.65) / 3) < 1e-6, "area under the original curve, per step (%.4f)", area);
    ok(fabs(best - 0.95) < 1e-9, "best new-task accuracy 0.95");
    json_decref(o);
    unlink(path);
    rmdir(dir);
    history_free(&h);
    return tap_done();
}
