/* An experiment file through experiment_load: any text is an experiment
 * or a message naming where it is wrong. After a NUL byte the input holds
 * `--set KEY=VALUE` overrides, NUL-separated. An accepted experiment must
 * survive experiment_write and load again. */
#include "config.h"
#include "fuzz_files.h"

#define MAX_SETS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[600], again[600];
    MnError e;
    /* A path in the input could name a device that never ends (an
     * @include of /dev/zero): not what is being tested. */
    if (memmem(data, size, "/dev", 4) || memmem(data, size, "/proc", 5))
        return 0;
    static int files;
    if (!files) {
        /* the data files the seeds name, so that their checks pass */
        static const char rows[] = "good\tpositive\nbad\tnegative\n";
        fuzz_write("reviews.train.tsv", rows, sizeof rows - 1, path, sizeof path);
        fuzz_write("reviews.eval.tsv", rows, sizeof rows - 1, path, sizeof path);
        files = 1;
    }
    Experiment *x = malloc(sizeof *x), *y = malloc(sizeof *y);
    char *text = fuzz_string(data, size);
    if (x && y && text) {
        const char *sets[MAX_SETS];
        int n_sets = 0;
        size_t cfg_len = strlen(text);
        for (size_t at = cfg_len; at < size && n_sets < MAX_SETS; at += strlen(text + at + 1) + 1)
            sets[n_sets++] = text + at + 1;
        fuzz_write("exp.cfg", text, cfg_len, path, sizeof path);
        if (experiment_load(x, path, sets, n_sets, &e) == 0) {
            snprintf(again, sizeof again, "%s/written.cfg", fuzz_dir());
            if (experiment_write(x, again, &e) < 0 || experiment_load(y, again, NULL, 0, &e) < 0) {
                fprintf(stderr, "an accepted experiment does not read back: %s\n", e.msg);
                abort();
            }
        }
    }
    free(text);
    free(x);
    free(y);
    return 0;
}
