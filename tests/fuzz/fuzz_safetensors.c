/* The safetensors reader on any file: it must refuse, never crash, and
 * what it accepts must be readable as the header claims. */
#include "fuzz_files.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[600];
    StFile f;
    MnError e;
    fuzz_write("model.safetensors", data, size, path, sizeof path);
    if (safetensors_read(&f, path, &e) < 0)
        return 0;
    for (int i = 0; i < f.n_tensors; i++) {
        const StTensorInfo *ti = &f.tensors[i];
        if (safetensors_find(&f, ti->name) == NULL)
            abort();
        /* as F32 of its own shape: a conversion, or a refusal naming it */
        size_t count = 1;
        for (int d = 0; d < ti->ndim; d++)
            count *= (size_t)ti->shape[d];
        if (count > (1u << 20))
            continue;
        float *dst = malloc((count ? count : 1) * sizeof *dst);
        if (!dst)
            continue;
        safetensors_get_f32(&f, ti->name, dst, ti->ndim, ti->shape, &e);
        free(dst);
    }
    for (int i = 0; i < f.n_meta; i++)
        if (safetensors_meta(&f, f.meta[i].key) == NULL)
            abort();
    safetensors_free(&f);
    return 0;
}
