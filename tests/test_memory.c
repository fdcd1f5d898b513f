/* The memory estimate made before a model is allocated: it counts what
 * model_create allocates, refuses what does not fit with both figures, and
 * an allocation that fails anyway reports its real size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "sysmem.h"
#include "tap.h"
#include "testmodel.h"

/* Under AddressSanitizer a request past its largest allocation fails as
 * posix_memalign does without it, instead of ending the process. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

static const TestShape shape = { 16, 2, 2, 32, 24, 2, 3, 4 };

static void test_counts(void)
{
    ModelConfig c = test_model_config(shape);
    Model m;
    ModelMemory one, four, threads;
    MnError e;
    int rc = model_create(&m, &c, 4, &e);
    ok(rc == 0, "the test model is created (%s)", rc ? e.msg : "");
    if (rc)
        return;
    ok(model_memory(&c, 1, 1, 0, &one, &e) == 0 && model_memory(&c, 4, 1, 3, &four, &e) == 0 &&
       model_memory(&c, 4, 3, 3, &threads, &e) == 0, "model_memory answers");
    ok(one.n_params == m.n_params, "the estimate counts the model's %zu parameters (%zu)",
       m.n_params, one.n_params);
    ok(one.params == 2.0 * 4 * (double)m.n_params && one.state == 0,
       "parameters and gradients: 8 bytes a parameter, no optimizer state asked");
    ok(four.state == 3.0 * 4 * (double)m.n_params, "3 copies: 12 bytes a parameter");
    ok(threads.params == 4.0 * 4 * (double)m.n_params,
       "two workers past the first add their own gradients");
    /* everything but the attention scratch grows with the batch */
    ok(four.activations > 3.0 * one.activations && four.activations < 4.0 * one.activations,
       "activations grow with the batch (%.0f for 1 row, %.0f for 4)", one.activations,
       four.activations);
    ok(four.total == four.params + four.state + four.activations, "the total is the sum");
    model_free(&m);
}

static void test_check(void)
{
    ModelConfig c = test_model_config(shape);
    MnError e;
    setenv("MNEME_MEMORY_LIMIT", "1K", 1);
    int rc = model_check_memory(&c, 4, 1, 3, &e);
    ok(rc < 0 && strstr(e.msg, "needs about") && strstr(e.msg, "but 1.0 KiB is available "
                                                         "(MNEME_MEMORY_LIMIT)"),
       "a model above MNEME_MEMORY_LIMIT is refused with both figures: %s", rc ? e.msg : "");
    setenv("MNEME_MEMORY_LIMIT", "1G", 1);
    ok(model_check_memory(&c, 4, 1, 3, &e) == 0, "1G is enough for the test model");
    setenv("MNEME_MEMORY_LIMIT", "off", 1);
    c.layers = MODEL_MAX_LAYERS;
    c.hidden = 4096;
    c.heads = 64;
    c.intermediate = 1 << 20;
    ok(model_check_memory(&c, 4, 1, 3, &e) == 0, "off: nothing is refused");
    setenv("MNEME_MEMORY_LIMIT", "lots", 1);
    rc = model_check_memory(&c, 4, 1, 3, &e);
    ok(rc < 0 && strstr(e.msg, "MNEME_MEMORY_LIMIT=lots"), "a malformed limit is named: %s",
       rc ? e.msg : "");
    unsetenv("MNEME_MEMORY_LIMIT");
    rc = model_check_memory(&c, 4, 1, 3, &e);
    ok(rc < 0 && strstr(e.msg, "is available (") && !strstr(e.msg, "MNEME_MEMORY_LIMIT)"),
       "a model of terabytes is refused against the machine's own figure: %s", rc ? e.msg : "");
    ok(mem_parse_size("8G") == 8.0 * (1 << 30) && mem_parse_size("512MiB") == 512.0 * (1 << 20) &&
       mem_parse_size("1000") == 1000 && mem_parse_size("8X") < 0 && mem_parse_size("-1") < 0,
       "sizes: 8G, 512MiB, 1000; 8X and -1 are malformed");
}

/* A model past the address space: the allocation fails at once, and the
 * message says how large it was (it used to say "0 parameters"). */
static void test_alloc_failure(void)
{
    ModelConfig c = test_model_config(shape);
    Model m;
    MnError e;
    c.layers = MODEL_MAX_LAYERS;
    c.hidden = 1 << 16;
    c.heads = 1;
    c.intermediate = 1 << 24;
    ModelMemory mm;
    model_memory(&c, 1, 1, 0, &mm, &e);
    char want[64];
    snprintf(want, sizeof want, "out of memory for %zu parameters", mm.n_params);
    int rc = model_create(&m, &c, 1, &e);
    ok(rc < 0 && strstr(e.msg, want) && strstr(e.msg, "PiB with their gradients"),
       "a failed allocation names its real size: %s", rc ? e.msg : "(it succeeded)");
    if (rc == 0)
        model_free(&m);
}

int main(void)
{
    test_counts();
    test_check();
    test_alloc_failure();
    return tap_done();
}
