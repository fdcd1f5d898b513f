/* An experiment file through experiment_load: any text is an experiment
 * or a message naming where it is wrong. An accepted one must survive
 * experiment_write and load again. */
#include "config.h"
#include "fuzz_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[600], again[600];
    MnError e;
    Experiment *x = malloc(sizeof *x), *y = malloc(sizeof *y);
    /* A path in the input could name a device that never ends (an
     * @include of /dev/zero): not what is being tested. */
    if (x && y && !memmem(data, size, "/dev", 4) && !memmem(data, size, "/proc", 5)) {
        fuzz_write("exp.cfg", data, size, path, sizeof path);
        if (experiment_load(x, path, NULL, 0, &e) == 0) {
            snprintf(again, sizeof again, "%s/written.cfg", fuzz_dir());
            if (experiment_write(x, again, &e) < 0 || experiment_load(y, again, NULL, 0, &e) < 0) {
                fprintf(stderr, "an accepted experiment does not read back: %s\n", e.msg);
                abort();
            }
        }
    }
    free(x);
    free(y);
    return 0;
}
