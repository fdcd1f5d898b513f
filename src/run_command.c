/* Changes made by hand to a running run: the trainer applies them between
 * steps as the user types them, and a replay applies them again at the
 * steps events.jsonl recorded. One implementation, so both agree. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run.h"
#include "strategy.h"

int run_set_lr(Run *r, double v, const char *source, char *msg, size_t n, MnError *e)
{
    char assign[64];
    Experiment *copy = malloc(sizeof *copy);
    if (!copy)
        return mn_fail(e, "out of memory");
    /* The same range check as the experiment file's. */
    *copy = r->x;
    snprintf(assign, sizeof assign, "finetune.lr=%.9g", v);
    int bad = experiment_set(copy, assign, e) < 0;
    free(copy);
    if (bad) {
        /* the check speaks of the command line's --set; here it is :set */
        if (strncmp(e->msg, "--set ", 6) == 0)
            memmove(e->msg, e->msg + 6, strlen(e->msg + 6) + 1);
        return mn_wrap(e, "set");
    }
    double from = r->x.finetune.recipe.lr;
    r->x.finetune.recipe.lr = v;
    if (r->phase == PHASE_FINETUNE) {
        /* The schedule keeps its shape around the new peak; a rate a
         * policy pinned is replaced outright. */
        if (r->lr_override)
            r->lr_value = v;
        r->sched.peak = (float)v;
    }
    snprintf(msg, n, "set finetune.lr %.3g (was %.3g) from step %ld", v, from, r->step);
    return run_record(r, source, "set",
                      json_pack("{s:s, s:f, s:f}", "set", "finetune.lr", "from", from, "to", v), e);
}

int run_set_ewc(Run *r, double v, const char *source, char *msg, size_t n, MnError *e)
{
    if (r->phase != PHASE_FINETUNE || !r->fisher)
        return mn_fail(e, "set ewc.lambda: this run has no Fisher; give finetune.ewc.lambda in the "
                          "experiment (or fork with ewc.lambda=N) to compute one");
    if (!(v >= 0))
        return mn_fail(e, "set ewc.lambda: expected a number >= 0, not %g", v);
    double from = r->ewc_lambda;
    r->ewc_lambda = v;
    snprintf(msg, n, "set ewc.lambda %.4g (was %.4g) from step %ld", v, from, r->step);
    return run_record(r, source, "set",
                      json_pack("{s:s, s:f, s:f}", "set", "ewc.lambda", "from", from, "to", v), e);
}

int run_set_frozen(Run *r, const char *parts, int frozen, const char *source,
                   char *msg, size_t n, MnError *e)
{
    Model *m = &r->model;
    unsigned char pick[MODEL_MAX_LAYERS + 2];
    char why[256];
    if (parts_parse(parts, m->cfg.layers, pick, why, sizeof why) < 0)
        return mn_fail(e, "%s: %s", frozen ? "freeze" : "unfreeze", why);
    /* The encoder's parts only: the original head stays frozen whatever
     * is asked, as forgetting is measured through it. */
    for (int g = 0; g <= m->cfg.layers + 1; g++)
        if (pick[g])
            m->groups[g].trainable = !frozen;
    snprintf(msg, n, "%s %s from step %ld", frozen ? "froze" : "unfroze", parts, r->step);
    return run_record(r, source, frozen ? "freeze" : "unfreeze", json_pack("{s:s}", "parts", parts), e);
}

int run_set_policy_param(Run *r, const char *name, const char *text, const char *source,
                         char *msg, size_t n, MnError *e)
{
    char key[160];
    if (!r->policy)
        return mn_fail(e, "set policy.%s: this run has no policy (finetune.policy)", name);
    if (policy_set_param(r->policy, name, text, e) < 0)
        return mn_wrap(e, "set policy.%s", name);
    snprintf(key, sizeof key, "policy.%s", name);
    snprintf(msg, n, "set policy.%s %s from step %ld", name, text, r->step);
    return run_record(r, source, "set", json_pack("{s:s, s:s}", "set", key, "to", text), e);
}
