/* The batch split of model_set_threads against the single-worker path:
 * for 2..8 workers, with all groups trainable and with the lowest ones
 * frozen, on a batch with ragged lengths, an empty sequence, an unlabelled
 * row and both heads, the loss, probabilities and gradients must match one
 * worker's to rounding, and a second step with the same workers must
 * reproduce the first bit for bit (a run is reproducible for a thread
 * count). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "optim.h"
#include "tap.h"
#include "testmodel.h"

enum { B = 7, T = 16 };

static float step(Model *m, const Batch *b, float *grads, float *probs)
{
    model_zero_grads(m);
    float loss = model_forward(m, b);
    memcpy(probs, m->act.probs, sizeof(float) * B * m->act.max_labels);
    model_backward(m, b);
    memcpy(grads, m->grads, sizeof(float) * m->n_params);
    return loss;
}

int main(void)
{
    const TestShape shape = { 32, 2, 4, 64, T, 3, 5, B };
    for (int frozen = 0; frozen < 3; frozen++) {
        Model m;
        Batch b;
        Rng r;
        MnError e;
        test_model_create(&m, shape);
        rng_seed(&r, 7);
        model_init_weights(&m, &r, 0.2f);
        if (batch_alloc(&b, B, T, &e) < 0)
            return 2;
        b.B = B;
        b.T = T;
        for (int i = 0; i < B; i++) {
            b.len[i] = i == 3 ? 0 : 1 + (int)rng_below(&r, T);
            b.task[i] = i % 2;
            b.label[i] = i == 5 ? -1 : (int)rng_below(&r, i % 2 ? 5 : 3);
            for (int t = 0; t < T; t++)
                b.ids[i * T + t] = t < b.len[i] ? 4 + (int)rng_below(&r, 250) : 0;
        }
        for (int g = 0; g < frozen; g++)
            m.groups[g].trainable = 0;
        size_t n = m.n_params;
        float *g1 = malloc(n * 4), *g2 = malloc(n * 4), *g3 = malloc(n * 4);
        float p1[B * 8] = { 0 }, p2[B * 8] = { 0 }, p3[B * 8] = { 0 };
        float l1 = step(&m, &b, g1, p1);
        for (int w = 2; w <= 8; w++) {
            if (model_set_threads(&m, w, &e) < 0)
                return 2;
            float l2 = step(&m, &b, g2, p2), l3 = step(&m, &b, g3, p3);
            double dg = 0, gmax = 0, dp = 0;
            for (size_t i = 0; i < n; i++) {
                dg = fmax(dg, fabs(g1[i] - g2[i]));
                gmax = fmax(gmax, fabs(g1[i]));
            }
            for (int i = 0; i < B * m.act.max_labels; i++)
                dp = fmax(dp, fabs(p1[i] - p2[i]));
            int same = memcmp(g2, g3, n * 4) == 0 && memcmp(p2, p3, sizeof p2) == 0 && l2 == l3;
            int good = same && dg <= 1e-5 * gmax && dp <= 1e-6 && fabs(l1 - l2) <= 1e-6;
            ok(good, "frozen %d, %d workers: loss diff %.1e, grad diff %.1e of %.2f, "
               "probs diff %.1e, repeat bit for bit %s", frozen, w,
               fabs(l1 - l2), dg, gmax, dp, same ? "yes" : "no");
        }
        /* AdamW is elementwise: split over workers it gives the same bits. */
        AdamW o1, o3;
        AdamConfig ac = { 0.9f, 0.999f, 1e-8f, 0.01f };
        float *w0 = malloc(n * 4), *w1 = malloc(n * 4);
        if (adamw_create(&o1, &m, ac, &e) < 0 || adamw_create(&o3, &m, ac, &e) < 0)
            return 2;
        memcpy(w0, m.params, n * 4);
        memcpy(m.grads, g1, n * 4);
        model_set_threads(&m, 1, &e);
        adamw_step(&o1, &m, 1e-3f);
        adamw_step(&o1, &m, 1e-3f);
        memcpy(w1, m.params, n * 4);
        memcpy(m.params, w0, n * 4);
        model_set_threads(&m, 3, &e);
        adamw_step(&o3, &m, 1e-3f);
        adamw_step(&o3, &m, 1e-3f);
        int adam_same = memcmp(w1, m.params, n * 4) == 0;
        ok(adam_same, "frozen %d: AdamW over 3 workers = over 1, bit for bit", frozen);
        memcpy(m.params, w0, n * 4);
        adamw_free(&o1), adamw_free(&o3), free(w0), free(w1);

        if (model_set_threads(&m, 1, &e) < 0)
            return 2;
        step(&m, &b, g2, p2);
        ok(memcmp(g1, g2, n * 4) == 0, "frozen %d: back to one worker gives the first gradients", frozen);
        free(g1), free(g2), free(g3);
        batch_free(&b);
        model_free(&m);
    }
    return tap_done();
}
