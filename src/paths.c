#include "paths.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "metrics.h"

#ifndef MNEME_DATADIR
#define MNEME_DATADIR "/usr/local/share/mneme"
#endif
#ifndef MNEME_SRCDIR
#define MNEME_SRCDIR "."
#endif

int make_dirs(const char *path, MnError *e)
{
    char buf[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf)
        return mn_fail(e, "%s: bad folder name", path);
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != 0)
            continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return mn_fail(e, "%s: %s", buf, strerror(errno));
        buf[i] = c;
    }
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        return mn_fail(e, "%s: not a folder", path);
    return 0;
}

static int try_dir(const char *dir, const char *relative, char *out, size_t n)
{
    if (!dir || !*dir)
        return -1;
    snprintf(out, n, "%s/%s", dir, relative);
    return access(out, R_OK) == 0 ? 0 : -1;
}

int find_data_file(const char *relative, char *out, size_t n)
{
    if (try_dir(getenv("MNEME_DATA"), relative, out, n) == 0)
        return 0;
    if (try_dir(MNEME_SRCDIR, relative, out, n) == 0)
        return 0;
    return try_dir(MNEME_DATADIR, relative, out, n);
}

void absolute_path(const char *path, char *out, size_t n)
{
    char cwd[4096];
    if (path[0] == '/' || !getcwd(cwd, sizeof cwd))
        snprintf(out, n, "%s", path);
    else
        snprintf(out, n, "%s/%s", cwd, path);
}

int copy_file(const char *src, const char *dst, MnError *e)
{
    FILE *f = fopen(src, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (!f)
        return mn_fail(e, "%s: %s", src, strerror(errno));
    for (;;) {
        if (len == cap) {
            cap = cap ? 2 * cap : 1 << 16;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return mn_fail(e, "%s: out of memory", src);
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    int rc = bad ? mn_fail(e, "%s: read error", src) : write_file_atomic(dst, buf ? buf : "", len, e);
    free(buf);
    return rc;
}

int link_or_copy(const char *src, const char *dst, MnError *e)
{
    if (link(src, dst) == 0)
        return 0;
    if (errno == EEXIST)
        return mn_fail(e, "%s: already exists", dst);
    return copy_file(src, dst, e);
}

int has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int copy_run_folder(const char *src, const char *dst, MnError *e)
{
    DIR *d = opendir(src);
    if (!d)
        return mn_fail(e, "%s: %s", src, strerror(errno));
    int rc = make_dirs(dst, e);
    for (struct dirent *de; rc == 0 && (de = readdir(d));) {
        char a[4096], b[4096];
        struct stat st;
        /* its lock is the run's own; its replays are not its state */
        if (de->d_name[0] == '.' || !strcmp(de->d_name, "lock") || !strcmp(de->d_name, "replays"))
            continue;
        snprintf(a, sizeof a, "%s/%s", src, de->d_name);
        snprintf(b, sizeof b, "%s/%s", dst, de->d_name);
        if (lstat(a, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode))
            rc = copy_run_folder(a, b, e);
        else if (S_ISREG(st.st_mode))
            rc = has_suffix(a, ".safetensors") && !strstr(a, ".tmp.") ? link_or_copy(a, b, e)
                                                                    : copy_file(a, b, e);
    }
    closedir(d);
    return rc;
}

void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        for (struct dirent *de; (de = readdir(d));) {
            char sub[4096];
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
            struct stat st;
            if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
                remove_tree(sub);
            else
                unlink(sub);
        }
        closedir(d);
    }
    rmdir(path);
}
