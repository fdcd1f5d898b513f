#include "detach.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int detach_run(int argc, char *const *argv, const char *dir)
{
    int ready[2];
    char fd_text[16];
    if (pipe(ready) < 0) {
        fprintf(stderr, "mneme: cannot start a background run: %s\n", strerror(errno));
        return 1;
    }
    char **args = calloc((size_t)argc + 6, sizeof *args);
    if (!args) {
        fprintf(stderr, "mneme: out of memory\n");
        return 1;
    }
    snprintf(fd_text, sizeof fd_text, "%d", ready[1]);
    int n = 0;
    args[n++] = "mneme";
    args[n++] = "run";
    args[n++] = "--headless";
    args[n++] = "--ready-fd";
    args[n++] = fd_text;
    for (int i = 0; i < argc; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "mneme: cannot start a background run: %s\n", strerror(errno));
        free(args);
        close(ready[0]);
        close(ready[1]);
        return 1;
    }
    if (pid == 0) {
        /* its own session: no terminal's hang-up reaches it; errors
         * before it is ready still go to the caller's stderr */
        int null = open("/dev/null", O_RDWR);
        close(ready[0]);
        setsid();
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
            if (null > STDERR_FILENO)
                close(null);
        }
        execv("/proc/self/exe", args);
        fprintf(stderr, "mneme: cannot start a background run: %s\n", strerror(errno));
        _exit(1);
    }
    free(args);
    close(ready[1]);
    char buf[8];
    ssize_t k;
    size_t got = 0;
    while (got < 3 && ((k = read(ready[0], buf + got, sizeof buf - got)) > 0 || (k < 0 && errno == EINTR)))
        if (k > 0)
            got += (size_t)k;
    close(ready[0]);
    if (got >= 2 && !strncmp(buf, "ok", 2)) {
        printf("%s\n", dir);
        fprintf(stderr, "mneme: training in the background (pid %ld); watch and steer it with: "
                "mneme attach %s   (or: mneme ctl %s status)\n", (long)pid, dir, dir);
        return 0;
    }
    /* it ended before it was ready: its reason is on stderr already */
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status))
        return WEXITSTATUS(status) ? WEXITSTATUS(status) : 1;
    fprintf(stderr, "mneme: the background run ended by signal %d before it started\n",
            WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return 1;
}
