/* A checkpoint file as predict and resume read it: the model shape and
 * labels from the metadata, then weights, moments and run state into a
 * model built for that shape. Shapes too big to build in a fuzzing
 * process are only read, not built. */
#include "checkpoint.h"
#include "fuzz_files.h"
#include "optim.h"

/* Whether cfg's model is small enough to allocate here (model_create
 * itself refuses what is malformed: that part is what is tested). */
static int small_enough(const ModelConfig *c)
{
    const int dims[] = { c->vocab, c->hidden, c->layers, c->heads, c->intermediate,
                         c->max_len, c->max_positions, c->type_vocab, c->lora_r };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i] > 4096)
            return 0;
    double h = c->hidden > 0 ? c->hidden : 0;
    double rows = (double)c->vocab + c->max_positions + c->max_len + c->type_vocab +
                  (double)c->layers * (4.0 * h + 2.0 * c->intermediate);
    return rows * h < 4e6 && (double)c->max_len * c->layers * (h + c->intermediate) < 4e6;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[600];
    StFile f;
    MnError e;
    ModelConfig cfg;
    LabelSet labels[MODEL_MAX_TASKS];
    fuzz_write("checkpoint.safetensors", data, size, path, sizeof path);
    if (safetensors_read(&f, path, &e) < 0)
        return 0;
    if (checkpoint_read_config(&f, &cfg, labels, &e) == 0 && small_enough(&cfg)) {
        Model m;
        if (model_create(&m, &cfg, 1, &e) == 0) {
            AdamW opt;
            AdamConfig ac = { 0.9f, 0.999f, 1e-8f, 0.01f };
            RunStateRecord *st = malloc(sizeof *st);
            checkpoint_load(&f, &m, NULL, NULL, &e);
            if (st && adamw_create(&opt, &m, ac, &e) == 0) {
                checkpoint_load(&f, &m, &opt, st, &e);
                adamw_free(&opt);
            }
            free(st);
            model_free(&m);
        }
    }
    safetensors_free(&f);
    return 0;
}
