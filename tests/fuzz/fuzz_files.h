/* Readers in mneme take a path, so a harness hands them its input as a
 * file: one private folder per fuzzing process, removed at exit. */
#ifndef MNEME_FUZZ_FILES_H
#define MNEME_FUZZ_FILES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

static char fuzz_dir_path[512];

static void fuzz_dir_remove(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir_path);
    if (fuzz_dir_path[0] && system(cmd) != 0)
        fprintf(stderr, "fuzz: could not remove %s\n", fuzz_dir_path);
}

/* The process's folder, made on first use. */
static const char *fuzz_dir(void)
{
    if (!fuzz_dir_path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/mneme-fuzz-XXXXXX",
                 tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(fuzz_dir_path)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(fuzz_dir_remove);
    }
    return fuzz_dir_path;
}

/* Writes n bytes to NAME in the folder; the path goes to path. A harness
 * that cannot write its input has nothing to test: it stops. */
static void fuzz_write(const char *name, const void *data, size_t n, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

/* A NUL-terminated copy of the input (NULL only when out of memory). */
static char *fuzz_string(const uint8_t *data, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, data, n);
        s[n] = 0;
    }
    return s;
}

#endif
