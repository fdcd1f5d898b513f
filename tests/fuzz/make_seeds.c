/* Writes the binary seeds of tests/fuzz/corpus: a tiny checkpoint (with
 * moments and run state), the same model exported, a small vocabulary
 * model (5 tokens: the byte-level text does not fit it) and a
 * safetensors file of every float dtype. Run once after a format change:
 *   cc -Isrc tests/fuzz/make_seeds.c src/libmneme.a $(libs) -o make_seeds
 *   ./make_seeds tests/fuzz/corpus */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "optim.h"

static int tiny_model(Model *m, int vocab, MnError *e)
{
    ModelConfig c;
    memset(&c, 0, sizeof c);
    c.vocab = vocab;
    c.hidden = 4;
    c.layers = 1;
    c.heads = 2;
    c.intermediate = 4;
    c.max_len = 6;
    c.type_vocab = 2;
    c.n_tasks = 2;
    strcpy(c.task_name[0], "original");
    strcpy(c.task_name[1], "new");
    c.n_labels[0] = c.n_labels[1] = 2;
    if (model_create(m, &c, 1, e) < 0)
        return -1;
    for (size_t i = 0; i < m->n_params; i++)
        m->params[i] = (float)((int)(i % 7) - 3) * 0.125f;
    return 0;
}

static int hand_made(const char *path)
{
    /* F16 [2], BF16 [2], F64 [1], I32 [1] and metadata, written by hand */
    const char hdr[] =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
        "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[4,8]},"
        "\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[8,16]},"
        "\"i\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[16,20]}}";
    const unsigned char body[20] = { 0x00, 0x3c, 0x00, 0xc0, 0x80, 0x3f, 0x00, 0xc0,
                                     0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 7, 0, 0, 0 };
    uint64_t n = sizeof hdr - 1;
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(n >> (8 * i));
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(len, 1, 8, f) != 8 || fwrite(hdr, 1, n, f) != n ||
        fwrite(body, 1, sizeof body, f) != sizeof body || fclose(f) != 0)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/fuzz/corpus";
    char path[1024];
    MnError e;
    Model m, small;
    AdamW opt;
    RunStateRecord st;
    LabelSet labels[2] = { { 2, { "negative", "positive" } }, { 2, { "calm", "shouting" } } };
    AdamConfig ac = { 0.9f, 0.999f, 1e-8f, 0.01f };
    if (tiny_model(&m, 8, &e) < 0 || adamw_create(&opt, &m, ac, &e) < 0 ||
        tiny_model(&small, 5, &e) < 0)
        goto fail;
    memset(&st, 0, sizeof st);
    strcpy(st.phase, "finetune");
    st.step = 12;
    st.rng_state = 42;
    st.loss_sum = 0.5;
    st.loss_count = 2;
    st.has_groups = 1;
    st.n_groups = 2;
    st.trainable[0] = 1;
    st.lr_scale[0] = st.lr_scale[1] = 1.0f;
    snprintf(path, sizeof path, "%s/checkpoint/run.safetensors", dir);
    if (checkpoint_save(path, &m, &opt, &st, labels, &e) < 0)
        goto fail;
    snprintf(path, sizeof path, "%s/checkpoint/export.safetensors", dir);
    if (checkpoint_export(path, &m, labels, &e) < 0)
        goto fail;
    snprintf(path, sizeof path, "%s/checkpoint/vocab5.safetensors", dir);
    if (checkpoint_export(path, &small, labels, &e) < 0)
        goto fail;
    snprintf(path, sizeof path, "%s/safetensors/export.safetensors", dir);
    if (checkpoint_export(path, &small, labels, &e) < 0)
        goto fail;
    snprintf(path, sizeof path, "%s/safetensors/dtypes.safetensors", dir);
    if (hand_made(path) < 0) {
        perror(path);
        return 1;
    }
    adamw_free(&opt);
    model_free(&m);
    model_free(&small);
    return 0;
fail:
    fprintf(stderr, "make_seeds: %s\n", e.msg);
    return 1;
}
