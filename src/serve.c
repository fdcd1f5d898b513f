#include "serve.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wire.h"

#define SNAP_EVERY_S 0.2       /* clients see new data ~5 times a second */
/* Replies, errors and the like queue behind a frame a client has not
 * taken; past this it is not reading at all and is let go. */
#define OUT_MAX (WIRE_MAX_FRAME + (1u << 20))
#define PENDING 64             /* commands awaiting their reply */

typedef struct {
    int fd;                    /* -1: a free slot */
    unsigned long serial;      /* tells a slot's clients apart */
    int hello, read_only, closing;
    char role[16];
    FrameReader in;
    char *out;
    size_t out_len, out_off;
    WireSent sent;
} Client;

typedef struct {
    unsigned long id;          /* the trainer's */
    unsigned long client_id;   /* the client's own */
    int slot;
    unsigned long serial;
} Pending;

struct Serve {
    Trainer *t;
    pthread_t thread;
    int listen_fd, wake[2];
    char path[4200];           /* for unlink; "" when bound through a fd */
    int dir_fd;                /* bound through /proc/self/fd: unlink there */
    atomic_int quit;
    char why[SNAP_LINE];       /* written before quit is set */
    atomic_int n_hello;
    Client c[SERVE_MAX_CLIENTS];
    unsigned long serials, next_id;
    Pending pending[PENDING];
    int n_pending;
    unsigned long replies_seen;
    Snapshot snap;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int control_address(const char *run_dir, struct sockaddr_un *a, int *dir_fd, MnError *e)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    *dir_fd = -1;
    if (strlen(run_dir) + sizeof "/control.sock" <= sizeof a->sun_path) {
        snprintf(a->sun_path, sizeof a->sun_path, "%s/control.sock", run_dir);
        return 0;
    }
    /* sun_path holds ~108 bytes; a deeper folder is named by descriptor */
    if ((*dir_fd = open(run_dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        return mn_fail(e, "%s: %s", run_dir, strerror(errno));
    snprintf(a->sun_path, sizeof a->sun_path, "/proc/self/fd/%d/control.sock", *dir_fd);
    return 0;
}

void close_dir_fd(int fd)
{
    if (fd >= 0)
        close(fd);
}

static void client_close(Client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    frame_reader_free(&c->in);
    free(c->out);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

/* Queues msg (taken) for c; a client that lets too much pile up is let
 * go rather than held in memory. */
static void queue(Client *c, json_t *msg)
{
    char *f;
    size_t n;
    MnError e;
    int rc = msg ? frame_encode(msg, &f, &n, &e) : -1;
    json_decref(msg);
    if (rc < 0 || c->fd < 0)
        return;
    if (c->out_len - c->out_off + n > OUT_MAX) {
        free(f);
        client_close(c);
        return;
    }
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    char *b = realloc(c->out, c->out_len + n);
    if (!b) {
        free(f);
        client_close(c);
        return;
    }
    memcpy(b + c->out_len, f, n);
    c->out = b;
    c->out_len += n;
    free(f);
}

static void refuse(Client *c, const char *why)
{
    queue(c, json_pack("{s:s, s:s}", "t", "error", "text", why));
    c->closing = 1;
}

/* Sends what c's socket takes now; never waits. */
static void flush(Client *c)
{
    while (c->fd >= 0 && c->out_off < c->out_len) {
        ssize_t k = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (k <= 0) {
            client_close(c);
            return;
        }
        c->out_off += (size_t)k;
    }
    if (c->fd >= 0 && c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
        if (c->closing)
            client_close(c);
    }
}

static json_t *status_json(const Serve *s)
{
    const Snapshot *p = &s->snap;
    json_t *br = json_array();
    int clients = 0;
    for (int i = 0; i < SERVE_MAX_CLIENTS; i++)
        clients += s->c[i].fd >= 0 && s->c[i].hello && !s->c[i].closing &&
                   !strcmp(s->c[i].role, "workbench");
    for (int i = 0; i < p->n_branches; i++) {
        const SnapBranch *b = &p->branches[i];
        json_array_append_new(br, json_pack("{s:s, s:s, s:s, s:I, s:I}", "name", b->name, "state",
                                            trainer_state_name(b->state), "phase", b->phase, "step",
                                            (json_int_t)b->step, "total_steps",
                                            (json_int_t)b->total_steps));
    }
    return json_pack("{s:s, s:I, s:s, s:I, s:I, s:s, s:s, s:i, s:I, s:f, s:f, s:s, s:s, s:o}",
                     "t", "status", "pid", (json_int_t)getpid(), "experiment", p->experiment,
                     "step", (json_int_t)p->step, "total_steps", (json_int_t)p->total_steps,
                     "phase", p->phase, "state", trainer_state_name(p->state), "clients",
                     clients, "version", (json_int_t)WIRE_VERSION,
                     "lr", p->lr, "steps_per_s", p->steps_per_s, "branch", p->branch, "policy",
                     p->policy, "branches", br);
}

static void on_hello(Serve *s, Client *c, const json_t *m)
{
    const json_t *v = json_object_get(m, "v"), *ro = json_object_get(m, "read_only"),
                 *role = json_object_get(m, "role");
    char why[200];
    if (!json_is_integer(v) || json_integer_value(v) != WIRE_VERSION) {
        snprintf(why, sizeof why, "this trainer speaks protocol version %d; the client does not "
                 "(run the same mneme as the trainer)", WIRE_VERSION);
        refuse(c, why);
        return;
    }
    if ((ro && !json_is_boolean(ro)) || !json_is_string(role) ||
        (strcmp(json_string_value(role), "workbench") && strcmp(json_string_value(role), "ctl"))) {
        refuse(c, "hello: expected {\"v\", \"role\": \"workbench\" or \"ctl\", \"read_only\"}");
        return;
    }
    c->hello = 1;
    c->read_only = json_is_true(ro);
    snprintf(c->role, sizeof c->role, "%s", json_string_value(role));
    queue(c, json_pack("{s:s, s:i, s:I, s:b}", "t", "welcome", "v", WIRE_VERSION, "pid",
                       (json_int_t)getpid(), "read_only", c->read_only));
}

static void reply(Client *c, unsigned long id, int ok, const char *text)
{
    queue(c, json_pack("{s:s, s:I, s:b, s:s}", "t", "reply", "id", (json_int_t)id, "ok", ok,
                       "text", text));
}

static void on_command(Serve *s, Client *c, int slot, const json_t *m)
{
    Command cmd;
    unsigned long id;
    MnError e;
    if (wire_parse_command(m, &cmd, &id, &e) < 0) {
        const json_t *jid = json_object_get(m, "id");
        reply(c, json_is_integer(jid) ? (unsigned long)json_integer_value(jid) : 0, 0, e.msg);
        return;
    }
    if (c->read_only) {
        reply(c, id, 0, "this client is read-only (attached with --read-only)");
        return;
    }
    if (s->n_pending == PENDING) {
        reply(c, id, 0, "too many commands awaiting their turn; try again");
        return;
    }
    snprintf(cmd.source, sizeof cmd.source, "%s", strcmp(c->role, "ctl") ? "attach" : "ctl");
    cmd.id = ++s->next_id;
    s->pending[s->n_pending++] = (Pending){ cmd.id, id, slot, c->serial };
    trainer_post(s->t, &cmd);
}

static void on_frame(Serve *s, int slot, json_t *m)
{
    Client *c = &s->c[slot];
    const char *t = json_string_value(json_object_get(m, "t"));
    if (!c->hello) {
        if (!strcmp(t, "hello"))
            on_hello(s, c, m);
        else
            refuse(c, "the first frame must be a hello");
    } else if (!strcmp(t, "cmd"))
        on_command(s, c, slot, m);
    else if (!strcmp(t, "status")) {
        trainer_snapshot(s->t, &s->snap);
        json_t *st = status_json(s);
        const json_t *id = json_object_get(m, "id");
        if (json_is_integer(id))
            json_object_set(st, "id", (json_t *)id);
        queue(c, st);
    } else {
        char why[128];
        snprintf(why, sizeof why, "unknown frame type '%.40s'", t);
        queue(c, json_pack("{s:s, s:s}", "t", "error", "text", why));
    }
}

static void on_readable(Serve *s, int slot)
{
    Client *c = &s->c[slot];
    char buf[8192];
    MnError e;
    ssize_t k = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (k <= 0) {
        client_close(c);
        return;
    }
    if (c->closing)
        return;                /* what it says after an error is not heard */
    if (frame_reader_feed(&c->in, buf, (size_t)k, &e) < 0) {
        refuse(c, e.msg);
        return;
    }
    for (;;) {
        json_t *m;
        int rc = frame_reader_next(&c->in, &m, &e);
        if (rc < 0)
            refuse(c, e.msg);
        if (rc <= 0)
            return;
        on_frame(s, slot, m);
        json_decref(m);
        if (c->closing || c->fd < 0)
            return;
    }
}

static void on_connect(Serve *s)
{
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (fd < 0)
        return;
    int slot = -1;
    for (int i = 0; i < SERVE_MAX_CLIENTS && slot < 0; i++)
        if (s->c[i].fd < 0)
            slot = i;
    if (slot < 0) {
        close(fd);             /* a frame would be polite; a full house is rare */
        return;
    }
    Client *c = &s->c[slot];
    c->fd = fd;
    c->serial = ++s->serials;
    frame_reader_init(&c->in, WIRE_MAX_REQUEST);
    /* the socket's mode keeps others out; this holds where it cannot
     * (a root client, a folder others may enter) */
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != geteuid()) {
        char why[200];
        snprintf(why, sizeof why, "refused: only the run's owner (uid %u) may connect, not uid %u",
                 (unsigned)geteuid(), (unsigned)cred.uid);
        refuse(c, why);
        flush(c);
    }
}

/* The replies the trainer made since the last look, to whoever asked. */
static void route_replies(Serve *s)
{
    const Snapshot *p = &s->snap;
    unsigned long from = s->replies_seen;
    if (p->n_replies > SNAP_REPLIES && from < p->n_replies - SNAP_REPLIES)
        from = p->n_replies - SNAP_REPLIES;
    for (unsigned long i = from; i < p->n_replies; i++) {
        const SnapReply *r = &p->replies[i % SNAP_REPLIES];
        for (int k = 0; k < s->n_pending; k++) {
            Pending *q = &s->pending[k];
            if (q->id != r->id)
                continue;
            Client *c = &s->c[q->slot];
            if (c->fd >= 0 && c->serial == q->serial)
                reply(c, q->client_id, r->ok, r->text[0] ? r->text : "done");
            s->pending[k] = s->pending[--s->n_pending];
            break;
        }
    }
    s->replies_seen = p->n_replies;
}

static void send_snapshots(Serve *s, int force)
{
    int any = 0;
    for (int i = 0; i < SERVE_MAX_CLIENTS; i++)
        any |= s->c[i].fd >= 0 && s->c[i].hello;
    if (!any && s->n_pending == 0)
        return;
    trainer_snapshot(s->t, &s->snap);
    route_replies(s);
    for (int i = 0; i < SERVE_MAX_CLIENTS; i++) {
        Client *c = &s->c[i];
        /* ctl clients ask; a slow client gets the newest frame later */
        if (c->fd < 0 || !c->hello || c->closing || strcmp(c->role, "workbench") != 0)
            continue;
        if ((c->out_len == 0 || force) && (!c->sent.started || c->sent.version != s->snap.version))
            queue(c, wire_snapshot(&s->snap, &c->sent));
    }
}

static void *serve_main(void *arg)
{
    Serve *s = arg;
    struct pollfd p[SERVE_MAX_CLIENTS + 2];
    double last = 0;
    while (!atomic_load(&s->quit)) {
        int slot_of[SERVE_MAX_CLIENTS + 2], n = 0;
        p[n] = (struct pollfd){ s->listen_fd, POLLIN, 0 };
        slot_of[n++] = -1;
        p[n] = (struct pollfd){ s->wake[0], POLLIN, 0 };
        slot_of[n++] = -1;
        for (int i = 0; i < SERVE_MAX_CLIENTS; i++)
            if (s->c[i].fd >= 0) {
                p[n] = (struct pollfd){ s->c[i].fd, (short)(POLLIN | (s->c[i].out_len ? POLLOUT : 0)), 0 };
                slot_of[n++] = i;
            }
        if (poll(p, (nfds_t)n, (int)(SNAP_EVERY_S * 1000)) < 0 && errno != EINTR)
            break;
        if (p[0].revents & POLLIN)
            on_connect(s);
        for (int k = 2; k < n; k++) {
            Client *c = &s->c[slot_of[k]];
            if (c->fd != p[k].fd)
                continue;
            if (p[k].revents & (POLLIN | POLLHUP | POLLERR))
                on_readable(s, slot_of[k]);
            if (c->fd >= 0 && (p[k].revents & POLLOUT))
                flush(c);
        }
        double now = now_s();
        if (now - last >= SNAP_EVERY_S) {
            send_snapshots(s, 0);
            last = now;
        }
        int hello = 0;
        for (int i = 0; i < SERVE_MAX_CLIENTS; i++) {
            if (s->c[i].fd >= 0 && s->c[i].out_len)
                flush(&s->c[i]);
            hello += s->c[i].fd >= 0 && s->c[i].hello && !s->c[i].closing;
        }
        atomic_store(&s->n_hello, hello);
    }
    /* the end: the last state, why, and what could be sent in a moment */
    send_snapshots(s, 1);
    for (int i = 0; i < SERVE_MAX_CLIENTS; i++)
        if (s->c[i].fd >= 0 && s->c[i].hello)
            queue(&s->c[i], json_pack("{s:s, s:s}", "t", "bye", "why", s->why));
    double until = now_s() + 1.0;
    for (;;) {
        struct pollfd q[SERVE_MAX_CLIENTS];
        int n = 0;
        for (int i = 0; i < SERVE_MAX_CLIENTS; i++) {
            flush(&s->c[i]);
            if (s->c[i].fd >= 0 && s->c[i].out_len)
                q[n++] = (struct pollfd){ s->c[i].fd, POLLOUT, 0 };
        }
        double left = until - now_s();
        if (n == 0 || left <= 0)
            break;
        poll(q, (nfds_t)n, (int)(left * 1000) + 1);
    }
    return NULL;
}

static void serve_free(Serve *s)
{
    for (int i = 0; i < SERVE_MAX_CLIENTS; i++)
        client_close(&s->c[i]);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->wake[0] >= 0)
        close(s->wake[0]);
    if (s->wake[1] >= 0)
        close(s->wake[1]);
    snapshot_free(&s->snap);
    free(s);
}

Serve *serve_start(Trainer *t, const char *run_dir, MnError *e)
{
    struct sockaddr_un a;
    int dir_fd;
    Serve *s = calloc(1, sizeof *s);
    if (!s) {
        mn_fail(e, "out of memory");
        return NULL;
    }
    s->t = t;
    s->listen_fd = s->wake[0] = s->wake[1] = -1;
    for (int i = 0; i < SERVE_MAX_CLIENTS; i++)
        s->c[i].fd = -1;
    if (control_address(run_dir, &a, &dir_fd, e) < 0) {
        serve_free(s);
        return NULL;
    }
    /* the caller holds the run's lock: a socket here is a dead trainer's */
    unlink(a.sun_path);
    mode_t old = umask(077);
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = s->listen_fd < 0 ? -1 : bind(s->listen_fd, (struct sockaddr *)&a, sizeof a);
    umask(old);
    if (rc == 0)
        rc = chmod(a.sun_path, 0600);
    if (rc == 0)
        rc = listen(s->listen_fd, 16);
    if (rc < 0 || pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        mn_fail(e, "%s/control.sock: %s", run_dir, strerror(errno));
        close_dir_fd(dir_fd);
        serve_free(s);
        return NULL;
    }
    if (dir_fd < 0)
        snprintf(s->path, sizeof s->path, "%s", a.sun_path);
    s->dir_fd = dir_fd;
    sigset_t all, prev;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &prev);
    rc = pthread_create(&s->thread, NULL, serve_main, s);
    pthread_sigmask(SIG_SETMASK, &prev, NULL);
    if (rc != 0) {
        mn_fail(e, "cannot start the control socket's thread");
        unlink(a.sun_path);
        close_dir_fd(dir_fd);
        serve_free(s);
        return NULL;
    }
    return s;
}

int serve_clients(Serve *s)
{
    return s ? atomic_load(&s->n_hello) : 0;
}

void serve_stop(Serve *s, const char *why)
{
    if (!s)
        return;
    snprintf(s->why, sizeof s->why, "%s", why ? why : "the run ended");
    atomic_store(&s->quit, 1);
    if (write(s->wake[1], "q", 1) < 0) {
        /* the poll wakes within SNAP_EVERY_S anyway */
    }
    pthread_join(s->thread, NULL);
    if (s->dir_fd >= 0) {
        unlinkat(s->dir_fd, "control.sock", 0);
        close(s->dir_fd);
    } else
        unlink(s->path);
    serve_free(s);
}
