#include "runlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static void lock_path(const char *dir, char *out, size_t n)
{
    snprintf(out, n, "%s/lock", dir);
}

static long read_pid(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    long pid = strtol(buf, NULL, 10);
    return pid > 0 ? pid : 0;
}

int run_lock_take(const char *dir, MnError *e)
{
    char path[4200];
    lock_path(dir, path, sizeof path);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return mn_fail(e, "%s: %s", path, strerror(errno));
    while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EINTR)
            continue;
        int err = errno;
        long pid = read_pid(fd);
        close(fd);
        if (err == EWOULDBLOCK) {
            if (pid > 0)
                return mn_fail(e, "%s: run is in use by pid %ld", dir, pid);
            return mn_fail(e, "%s: run is in use by another process", dir);
        }
        return mn_fail(e, "%s: cannot lock: %s", path, strerror(err));
    }
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)len, 0) != len) {
        int err = errno;
        close(fd);
        return mn_fail(e, "%s: %s", path, strerror(err));
    }
    return fd;
}

void run_lock_release(int fd)
{
    if (fd >= 0)
        close(fd);
}

long run_lock_holder(const char *dir)
{
    char path[4200];
    lock_path(dir, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    long pid = 0;
    if (flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK) {
        pid = read_pid(fd);
        if (pid == 0)
            pid = -1;
    }
    close(fd);
    return pid;
}
