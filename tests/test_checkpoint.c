/* Training state through safetensors: bit-exact round trip, refusal of a
 * checkpoint that does not fit the model, and of damaged files. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "tap.h"
#include "testmodel.h"
#include "tokenizer.h"

static void make_model(Model *m, int hidden)
{
    test_model_create(m, (TestShape){ hidden, 2, 2, 16, 8, 2, 3, 2 });
}

static void fill(float *p, size_t n, Rng *r)
{
    for (size_t i = 0; i < n; i++)
        p[i] = rng_normal(r);
}

int main(void)
{
    char dir[] = "/tmp/mneme-ckpt-XXXXXX", path[256], bad[256];
    Model a, b;
    AdamW oa, ob;
    MnError e;
    Rng r;
    LabelSet labels[2];
    RunStateRecord st, st2;
    if (!mkdtemp(dir)) {
        printf("Bail out! mkdtemp\n");
        return 1;
    }
    snprintf(path, sizeof path, "%s/ck.safetensors", dir);
    memset(labels, 0, sizeof labels);
    labels[0].n_labels = 2;
    strcpy(labels[0].names[0], "negative");
    strcpy(labels[0].names[1], "positive");
    labels[1].n_labels = 3;
    strcpy(labels[1].names[0], "a");
    strcpy(labels[1].names[1], "b");
    strcpy(labels[1].names[2], "c");

    make_model(&a, 16);
    AdamConfig ac = { 0.9f, 0.999f, 1e-8f, 0.01f };
    adamw_create(&oa, &a, ac, &e);
    rng_seed(&r, 3);
    for (int i = 0; i < a.n_tensors; i++) {
        fill(a.params + a.tensors[i].offset, a.tensors[i].numel, &r);
        fill(oa.m + a.tensors[i].offset, a.tensors[i].numel, &r);
        fill(oa.v + a.tensors[i].offset, a.tensors[i].numel, &r);
    }
    for (int g = 0; g < oa.n_groups; g++)
        oa.group_t[g] = 100 + g;
    memset(&st, 0, sizeof st);
    strcpy(st.phase, "finetune");
    st.step = 1234;
    st.sampler_epoch = 3;
    st.sampler_cursor = 77;
    st.rng_state = 0xFEEDFACECAFEBEEFULL;
    st.loss_sum = 1.0 / 3.0;
    st.loss_count = 9;
    st.elapsed_s = 12.345678901234;
    ok(checkpoint_save(path, &a, &oa, &st, labels, &e) == 0, "save (%s)", e.msg);

    StFile f;
    ok(safetensors_read(&f, path, &e) == 0, "read back");
    ModelConfig cfg;
    LabelSet got[MODEL_MAX_TASKS];
    ok(checkpoint_read_config(&f, &cfg, got, &e) == 0 && cfg.hidden == 16 && cfg.layers == 2 &&
       cfg.n_tasks == 2 && cfg.n_labels[1] == 3 && strcmp(got[0].names[1], "positive") == 0 &&
       strcmp(cfg.task_name[1], "new") == 0, "model shape and label names come back");
    make_model(&b, 16);
    adamw_create(&ob, &b, ac, &e);
    ok(checkpoint_load(&f, &b, &ob, &st2, &e) == 0, "load (%s)", e.msg);
    ok(memcmp(a.params, b.params, a.n_params * sizeof(float)) == 0, "parameters bit-exact");
    ok(memcmp(oa.m, ob.m, oa.n * sizeof(float)) == 0 && memcmp(oa.v, ob.v, oa.n * sizeof(float)) == 0,
       "optimizer moments bit-exact");
    ok(memcmp(oa.group_t, ob.group_t, (size_t)oa.n_groups * sizeof(long)) == 0, "per-group step counts");
    ok(strcmp(st2.phase, "finetune") == 0 && st2.step == 1234 && st2.sampler_epoch == 3 &&
       st2.sampler_cursor == 77 && st2.rng_state == st.rng_state && st2.loss_sum == st.loss_sum &&
       st2.loss_count == 9 && st2.elapsed_s == st.elapsed_s, "run state exact (floats too)");
    ok(safetensors_find(&f, "bert.encoder.layer.1.attention.self.query.weight") != NULL &&
       safetensors_find(&f, "optimizer.exp_avg.classifier.new.weight") != NULL,
       "tensors under Hugging Face names, moments beside them");
    safetensors_free(&f);

    /* A checkpoint of another shape is refused with the tensor named. */
    Model c;
    make_model(&c, 32);
    ok(safetensors_read(&f, path, &e) == 0, "read again");
    int rc = checkpoint_load(&f, &c, NULL, NULL, &e);
    ok(rc < 0 && strstr(e.msg, "bert.embeddings.word_embeddings.weight"),
       "shape mismatch refused, naming the tensor (%s)", e.msg);
    safetensors_free(&f);
    model_free(&c);

    /* Truncated: refused with a reason, never a crash. */
    FILE *in = fopen(path, "rb");
    fseek(in, 0, SEEK_END);
    long size = ftell(in);
    fseek(in, 0, SEEK_SET);
    char *buf = malloc((size_t)size);
    ok(fread(buf, 1, (size_t)size, in) == (size_t)size, "whole file read");
    fclose(in);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
    int refused = 1;
    long cuts[] = { 0, 4, 8, 100, size / 2, size - 1 };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        FILE *out = fopen(bad, "wb");
        fwrite(buf, 1, (size_t)cuts[i], out);
        fclose(out);
        if (safetensors_read(&f, bad, &e) == 0) {
            refused = 0;
            safetensors_free(&f);
        }
    }
    ok(refused, "checkpoints truncated at 0, 4, 8, 100, half and size-1 bytes are all refused (%s)", e.msg);
    buf[size - 5] ^= 0x10;
    FILE *out = fopen(bad, "wb");
    fwrite(buf, 1, (size_t)size, out);
    fclose(out);
    rc = safetensors_read(&f, bad, &e);
    ok(rc < 0 && strstr(e.msg, "checksum"), "a flipped bit is refused (%s)", e.msg);
    if (rc == 0)
        safetensors_free(&f);
    free(buf);
    unlink(bad);
    unlink(path);
    rmdir(dir);
    adamw_free(&oa);
    adamw_free(&ob);
    model_free(&a);
    model_free(&b);
    return tap_done();
}
