#include "remote.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runlock.h"
#include "serve.h"
#include "wire.h"

struct Remote {
    int fd;
    long pid;
    long next_id;
    FrameReader in;
    unsigned long server_logged;
    char why[SNAP_LINE];       /* set once the connection has ended */
    /* replies that came while waiting for something else */
    struct { long id; int ok; char text[SNAP_LINE]; } replies[16];
    int n_replies;
    json_t *status;            /* a status that came, not yet taken */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* How the run's last process ended, by its summary.json. */
static void ended_as(const char *dir, char *out, size_t n)
{
    char path[4200];
    json_error_t je;
    snprintf(path, sizeof path, "%s/summary.json", dir);
    json_t *o = json_load_file(path, 0, &je);
    const char *st = json_string_value(json_object_get(o, "status"));
    snprintf(out, n, "%s", !st ? "unknown (no summary.json)" : !strcmp(st, "running") ? "interrupted" : st);
    json_decref(o);
}

/* No trainer holds the run: says so, and clears a dead one's socket. */
static int not_live(const char *dir, MnError *e)
{
    char status[64], sock[4200];
    struct stat st;
    MnError ignore;
    snprintf(sock, sizeof sock, "%s/experiment.cfg", dir);
    if (stat(sock, &st) < 0)
        return mn_fail(e, "%s is not a run folder (it has no experiment.cfg)", dir);
    /* holding the lock, nobody can be binding a socket there */
    int lock = run_lock_take(dir, &ignore);
    if (lock >= 0) {
        snprintf(sock, sizeof sock, "%s/control.sock", dir);
        unlink(sock);
        run_lock_release(lock);
    }
    ended_as(dir, status, sizeof status);
    return mn_fail(e, "%s is not live: it ended as %s; continue it in the background with "
                      "mneme run --detach --resume %s (or in the workbench: mneme --resume %s)",
                   dir, status, dir, dir);
}

long remote_live(const char *run_dir)
{
    char sock[4200];
    struct stat st;
    long pid = run_lock_holder(run_dir);
    snprintf(sock, sizeof sock, "%s/control.sock", run_dir);
    return pid != 0 && stat(sock, &st) == 0 && S_ISSOCK(st.st_mode) ? pid : 0;
}

static int send_msg(Remote *r, json_t *msg, MnError *e)
{
    char *f;
    size_t n, off = 0;
    int rc = frame_encode(msg, &f, &n, e);
    json_decref(msg);
    if (rc < 0)
        return -1;
    while (off < n) {
        struct pollfd p = { r->fd, POLLOUT, 0 };
        if (poll(&p, 1, 5000) <= 0) {
            free(f);
            return mn_fail(e, "the trainer does not take what is sent to it");
        }
        ssize_t k = send(r->fd, f + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (k <= 0) {
            free(f);
            return mn_fail(e, "the connection to the trainer broke: %s", strerror(errno));
        }
        off += (size_t)k;
    }
    free(f);
    return 0;
}

/* One frame that came: applied, kept, or the end. -1 when the
 * connection is over (why set). */
static int take_frame(Remote *r, json_t *m, Snapshot *s, int *changed)
{
    const char *t = json_string_value(json_object_get(m, "t"));
    MnError e;
    if (!strcmp(t, "snap")) {
        if (!s)
            return 0;
        if (wire_apply_snapshot(s, m, &r->server_logged, &e) < 0) {
            snprintf(r->why, sizeof r->why, "the trainer sent a bad snapshot: %.300s", e.msg);
            return -1;
        }
        *changed = 1;
    } else if (!strcmp(t, "reply")) {
        const json_t *id = json_object_get(m, "id");
        const char *text = json_string_value(json_object_get(m, "text"));
        if (r->n_replies == 16) {
            memmove(&r->replies[0], &r->replies[1], sizeof r->replies[0] * 15);
            r->n_replies--;
        }
        r->replies[r->n_replies].id = json_is_integer(id) ? (long)json_integer_value(id) : 0;
        r->replies[r->n_replies].ok = json_is_true(json_object_get(m, "ok"));
        snprintf(r->replies[r->n_replies++].text, SNAP_LINE, "%s", text ? text : "");
    } else if (!strcmp(t, "status")) {
        json_decref(r->status);
        r->status = json_incref(m);
    } else if (!strcmp(t, "bye") || !strcmp(t, "error")) {
        const char *why = json_string_value(json_object_get(m, !strcmp(t, "bye") ? "why" : "text"));
        snprintf(r->why, sizeof r->why, "%s", why ? why : "the trainer closed the connection");
        return -1;
    }
    /* a welcome, or a type a newer trainer added */
    return 0;
}

int remote_poll(Remote *r, Snapshot *s)
{
    char buf[65536];
    int changed = 0;
    MnError e;
    if (r->why[0])
        return -1;
    for (;;) {
        ssize_t k = recv(r->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            snprintf(r->why, sizeof r->why, "the trainer went away without a word (killed?)");
            break;
        }
        if (frame_reader_feed(&r->in, buf, (size_t)k, &e) < 0) {
            snprintf(r->why, sizeof r->why, "%.300s", e.msg);
            break;
        }
    }
    for (;;) {
        json_t *m;
        int rc = frame_reader_next(&r->in, &m, &e);
        if (rc < 0)
            snprintf(r->why, sizeof r->why, "%.300s", e.msg);
        if (rc <= 0)
            break;
        rc = take_frame(r, m, s, &changed);
        json_decref(m);
        if (rc < 0)
            break;
    }
    if (r->why[0])
        return -1;
    return changed;
}

const char *remote_why(const Remote *r)
{
    return r->why;
}

int remote_fd(const Remote *r)
{
    return r->fd;
}

long remote_pid(const Remote *r)
{
    return r->pid;
}

/* Waits for something to read, at most until deadline; 0 on time out. */
static int wait_readable(Remote *r, double deadline)
{
    double left = deadline - now_s();
    struct pollfd p = { r->fd, POLLIN, 0 };
    if (left <= 0)
        return 0;
    return poll(&p, 1, (int)(left * 1000) + 1) > 0;
}

Remote *remote_open(const char *run_dir, const char *role, int read_only, double timeout_s,
                    MnError *e)
{
    struct sockaddr_un a;
    int dir_fd;
    double deadline = now_s() + timeout_s;
    if (run_lock_holder(run_dir) == 0) {
        not_live(run_dir, e);
        return NULL;
    }
    Remote *r = calloc(1, sizeof *r);
    if (!r) {
        mn_fail(e, "out of memory");
        return NULL;
    }
    r->fd = -1;
    frame_reader_init(&r->in, WIRE_MAX_FRAME);
    if (control_address(run_dir, &a, &dir_fd, e) < 0) {
        remote_close(r);
        return NULL;
    }
    /* a trainer that has just taken the lock may not listen yet */
    for (;;) {
        r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (r->fd >= 0 && connect(r->fd, (struct sockaddr *)&a, sizeof a) == 0)
            break;
        int err = errno;
        if (r->fd >= 0)
            close(r->fd);
        r->fd = -1;
        if (err == EACCES || err == EPERM) {
            mn_fail(e, "%s/control.sock: permission denied: only the run's owner may attach", run_dir);
            break;
        }
        if (run_lock_holder(run_dir) == 0) {
            not_live(run_dir, e);
            break;
        }
        if (now_s() > deadline) {
            mn_fail(e, "%s is in use by pid %ld, which does not answer on %s/control.sock (%s)",
                    run_dir, run_lock_holder(run_dir), run_dir, strerror(err));
            break;
        }
        struct timespec nap = { 0, 50 * 1000000L };
        nanosleep(&nap, NULL);
    }
    close_dir_fd(dir_fd);
    if (r->fd < 0) {
        remote_close(r);
        return NULL;
    }
    if (send_msg(r, json_pack("{s:s, s:i, s:s, s:b}", "t", "hello", "v", WIRE_VERSION, "role", role,
                              "read_only", read_only), e) < 0) {
        /* a refusal comes before the hello is read: it says why */
        char buf[4096];
        json_t *m = NULL;
        ssize_t k = recv(r->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (k > 0 && frame_reader_feed(&r->in, buf, (size_t)k, e) == 0 &&
            frame_reader_next(&r->in, &m, e) == 1 && json_string_value(json_object_get(m, "text")))
            mn_fail(e, "%s", json_string_value(json_object_get(m, "text")));
        json_decref(m);
        remote_close(r);
        return NULL;
    }
    /* the welcome, or why not */
    for (;;) {
        json_t *m = NULL;
        char buf[4096];
        int rc = frame_reader_next(&r->in, &m, e);
        if (rc < 0) {
            remote_close(r);
            return NULL;
        }
        if (rc == 1) {
            const char *t = json_string_value(json_object_get(m, "t"));
            if (!strcmp(t, "welcome")) {
                const json_t *pid = json_object_get(m, "pid");
                r->pid = json_is_integer(pid) ? (long)json_integer_value(pid) : 0;
                json_decref(m);
                return r;
            }
            const char *why = json_string_value(json_object_get(m, "text"));
            mn_fail(e, "%s", why ? why : "the trainer did not welcome this client");
            json_decref(m);
            remote_close(r);
            return NULL;
        }
        if (!wait_readable(r, deadline)) {
            mn_fail(e, "%s: the trainer did not answer within %.0f s", run_dir, timeout_s);
            remote_close(r);
            return NULL;
        }
        ssize_t k = recv(r->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (k <= 0 && !(k < 0 && (errno == EAGAIN || errno == EINTR))) {
            mn_fail(e, "%s: the trainer closed the connection", run_dir);
            remote_close(r);
            return NULL;
        }
        if (k > 0 && frame_reader_feed(&r->in, buf, (size_t)k, e) < 0) {
            remote_close(r);
            return NULL;
        }
    }
}

void remote_close(Remote *r)
{
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    frame_reader_free(&r->in);
    json_decref(r->status);
    free(r);
}

long remote_post(Remote *r, const Command *c, MnError *e)
{
    if (r->why[0]) {
        mn_fail(e, "%s", r->why);
        return -1;
    }
    long id = ++r->next_id;
    if (send_msg(r, wire_command(c, (unsigned long)id), e) < 0)
        return -1;
    return id;
}

int remote_wait_reply(Remote *r, long id, double timeout_s, Snapshot *s, char *text, size_t n,
                      MnError *e)
{
    double deadline = now_s() + timeout_s;
    for (;;) {
        int rc = remote_poll(r, s);
        for (int i = 0; i < r->n_replies; i++)
            if (r->replies[i].id == id) {
                int ok = r->replies[i].ok;
                snprintf(text, n, "%s", r->replies[i].text);
                r->replies[i] = r->replies[--r->n_replies];
                return ok;
            }
        if (rc < 0)
            return mn_fail(e, "%s", r->why);
        if (!wait_readable(r, deadline))
            return mn_fail(e, "no answer from the trainer within %.0f s (it applies commands "
                              "between steps; is a step or a policy call taking long?)", timeout_s);
    }
}

json_t *remote_status(Remote *r, double timeout_s, MnError *e)
{
    double deadline = now_s() + timeout_s;
    if (send_msg(r, json_pack("{s:s, s:i}", "t", "status", "id", 1), e) < 0)
        return NULL;
    for (;;) {
        int rc = remote_poll(r, NULL);
        if (r->status) {
            json_t *st = r->status;
            r->status = NULL;
            return st;
        }
        if (rc < 0) {
            mn_fail(e, "%s", r->why);
            return NULL;
        }
        if (!wait_readable(r, deadline)) {
            mn_fail(e, "no status from the trainer within %.0f s", timeout_s);
            return NULL;
        }
    }
}
