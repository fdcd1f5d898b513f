/* What a client or a trainer may be sent on a control socket: a stream of
 * frames, each applied as the receiving side would (a command by the
 * trainer's server, a snapshot by a workbench). Nothing may crash, leak
 * or leave the snapshot with counts beyond its arrays. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

static void take(json_t *m, Snapshot *s, unsigned long *logged)
{
    MnError e;
    Command c;
    unsigned long id;
    const char *t = json_string_value(json_object_get(m, "t"));
    if (t && !strcmp(t, "cmd"))
        wire_parse_command(m, &c, &id, &e);
    else if (wire_apply_snapshot(s, m, logged, &e) == 0) {
        /* what was applied must encode again */
        WireSent sent;
        memset(&sent, 0, sizeof sent);
        if (s->n_hist > s->cap_hist || s->n_log > SNAP_LOG || s->n_branches > SNAP_BRANCHES)
            abort();
        json_decref(wire_snapshot(s, &sent));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Snapshot *s = calloc(1, sizeof *s);
    unsigned long logged = 0;
    FrameReader r;
    MnError e;
    json_error_t je;
    if (!s)
        return 0;
    /* the input as one message, then as a stream of frames */
    json_t *whole = json_loadb((const char *)data, size, 0, &je);
    if (json_is_object(whole))
        take(whole, s, &logged);
    json_decref(whole);
    frame_reader_init(&r, WIRE_MAX_REQUEST);
    if (frame_reader_feed(&r, data, size, &e) == 0)
        for (json_t *m; frame_reader_next(&r, &m, &e) == 1; json_decref(m))
            take(m, s, &logged);
    frame_reader_free(&r);
    snapshot_free(s);
    free(s);
    return 0;
}
