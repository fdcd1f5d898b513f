#include "events.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"

static int keep_first_lines(const char *path, long keep, long *kept, MnError *e)
{
    FILE *f = fopen(path, "r");
    char *line = NULL, *buf = NULL;
    size_t cap = 0, len = 0;
    ssize_t n;
    *kept = 0;
    if (!f)
        return errno == ENOENT ? 0 : mn_fail(e, "%s: %s", path, strerror(errno));
    while (*kept < keep && (n = getline(&line, &cap, f)) > 0 && line[n - 1] == '\n') {
        char *nb = realloc(buf, len + (size_t)n);
        if (!nb)
            break;
        buf = nb;
        memcpy(buf + len, line, (size_t)n);
        len += (size_t)n;
        (*kept)++;
    }
    free(line);
    fclose(f);
    int rc = write_file_atomic(path, buf ? buf : "", len, e);
    free(buf);
    return rc;
}

int events_open(EventLog *log, const char *dir, long keep_lines, MnError *e)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/events.jsonl", dir);
    log->lines = 0;
    if (keep_lines >= 0 && keep_first_lines(path, keep_lines, &log->lines, e) < 0)
        return -1;
    log->f = fopen(path, keep_lines >= 0 ? "a" : "w");
    if (!log->f)
        return mn_fail(e, "%s: %s", path, strerror(errno));
    return 0;
}

int events_write(EventLog *log, json_t *ev, MnError *e)
{
    char *s = ev ? json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(ev);
    if (!s)
        return mn_fail(e, "events.jsonl: out of memory");
    int bad = !log->f || fprintf(log->f, "%s\n", s) < 0 || fflush(log->f) != 0;
    free(s);
    if (bad)
        return mn_fail(e, "events.jsonl: %s", strerror(errno));
    log->lines++;
    return 0;
}

int events_sync(EventLog *log, MnError *e)
{
    if (log->f && (fflush(log->f) != 0 || fsync(fileno(log->f)) != 0))
        return mn_fail(e, "events.jsonl: %s", strerror(errno));
    return 0;
}

void events_close(EventLog *log)
{
    if (log->f)
        fclose(log->f);
    log->f = NULL;
}
