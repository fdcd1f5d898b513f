/* The control socket's language: frames of versioned JSON, snapshots out
 * and commands in. Pure (no sockets, no threads), so that the trainer's
 * server, its clients and the fuzz harness share one implementation.
 *
 * A frame is a 4-byte big-endian length, then that many bytes of one JSON
 * object whose "t" names its type (see man mneme(1), PROTOCOL). */
#ifndef MNEME_WIRE_H
#define MNEME_WIRE_H

#include <jansson.h>
#include <stddef.h>

#include "error.h"
#include "trainer.h"

#define WIRE_VERSION 1
/* A snapshot carries a run's whole history the first time. */
#define WIRE_MAX_FRAME (32u << 20)
/* Anything a client sends is small: a command, a hello. */
#define WIRE_MAX_REQUEST (64u << 10)

typedef struct {
    unsigned char *buf;
    size_t len, cap;
    size_t max;                /* the largest frame accepted */
} FrameReader;

void frame_reader_init(FrameReader *r, size_t max);
void frame_reader_free(FrameReader *r);
/* Appends bytes that arrived; -1 when they would hold more than a frame
 * of the largest size can explain. */
int frame_reader_feed(FrameReader *r, const void *data, size_t n, MnError *e);
/* The next whole frame: 1 with its object in *out (the caller's), 0 when
 * none has arrived whole yet, -1 when the stream is broken (a length over
 * the limit, a frame that is not a JSON object with a string "t"): the
 * connection cannot be trusted any more. */
int frame_reader_next(FrameReader *r, json_t **out, MnError *e);

/* msg as one frame, malloc'd into *out; -1 when it cannot be encoded or
 * is over WIRE_MAX_FRAME. Does not take msg. */
int frame_encode(const json_t *msg, char **out, size_t *n, MnError *e);

/* What one client has been sent of the snapshot, so that each frame
 * carries only what is new: histories only grow within a generation, and
 * the log is numbered. */
typedef struct {
    int started;
    unsigned long version, generation;
    int n_hist;
    int branch_hist[SNAP_BRANCHES];
    unsigned long n_logged;
} WireSent;

/* The snapshot frame for a client that has had *sent (updated). */
json_t *wire_snapshot(const Snapshot *s, WireSent *sent);
/* Applies a snapshot frame to the client's s. *server_logged is how many
 * of the server's log lines s has (0 at first); lines are added with
 * snapshot_log, so that lines of the client's own can be mixed in.
 * -1 on anything malformed or out of order, s then partly updated but
 * consistent (counts within capacities). */
int wire_apply_snapshot(Snapshot *s, const json_t *msg, unsigned long *server_logged,
                        MnError *e);

/* A command as {"t": "cmd", "id", "kind", "value", "arg", "text"}. */
json_t *wire_command(const Command *c, unsigned long id);
/* Reads one back into c (source and id left for the caller to set);
 * -1 when a field is missing, of the wrong type, or out of range. */
int wire_parse_command(const json_t *msg, Command *c, unsigned long *id, MnError *e);

/* "pause", "set_lr", …: the kind's name on the wire; NULL if unknown. */
const char *wire_kind_name(CommandKind k);
/* The state named as trainer_state_name says it; -1 if none is. */
int wire_state_of(const char *name);

#endif
