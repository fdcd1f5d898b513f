#include "sysmem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

double mem_parse_size(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v >= 0))
        return -1;
    static const char units[] = "KMGT";
    const char *u = *end ? strchr(units, *end) : NULL;
    if (*end && (!u || (end[1] && strcmp(end + 1, "B") != 0 && strcmp(end + 1, "iB") != 0)))
        return -1;
    for (const char *k = units; u && k <= u; k++)
        v *= 1024.0;
    return v;
}

/* A "Key: N kB" line of a /proc file, in bytes; -1 when absent. */
static double proc_kb(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    char line[256];
    double v = -1;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0 && line[n] == ':') {
            v = strtod(line + n + 1, NULL) * 1024.0;
            break;
        }
    if (f)
        fclose(f);
    return v;
}

/* One number from a cgroup file; -1 when absent or "max". */
static double cgroup_value(const char *path)
{
    FILE *f = fopen(path, "r");
    char buf[64] = "";
    double v = -1;
    if (f && fgets(buf, sizeof buf, f) && strncmp(buf, "max", 3) != 0)
        v = strtod(buf, NULL);
    if (f)
        fclose(f);
    return v;
}

double mem_available(const char **source)
{
    const char *env = getenv("MNEME_MEMORY_LIMIT");
    *source = "MNEME_MEMORY_LIMIT";
    if (env && *env) {
        if (strcmp(env, "off") == 0)
            return -1;
        double v = mem_parse_size(env);
        return v < 0 ? -2 : v;
    }
    double best = proc_kb("/proc/meminfo", "MemAvailable");
    *source = "MemAvailable in /proc/meminfo";
    double max = cgroup_value("/sys/fs/cgroup/memory.max");
    double cur = cgroup_value("/sys/fs/cgroup/memory.current");
    if (max > 0 && cur >= 0 && (best < 0 || max - cur < best)) {
        best = max > cur ? max - cur : 0;
        *source = "the cgroup's memory.max less memory.current";
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        double mapped = proc_kb("/proc/self/status", "VmSize");
        double left = (double)rl.rlim_cur - (mapped > 0 ? mapped : 0);
        if (left < 0)
            left = 0;
        if (best < 0 || left < best) {
            best = left;
            *source = "RLIMIT_AS (ulimit -v) less what the process maps";
        }
    }
    return best;
}
