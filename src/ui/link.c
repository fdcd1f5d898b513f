#include "ui/link.h"

#include <stdio.h>
#include <string.h>

int link_post(Link *l, const Command *c, char *err, size_t n)
{
    MnError e;
    if (l->r) {
        if (l->read_only) {
            snprintf(err, n, "read-only: this workbench only watches (attached with --read-only)");
            return -1;
        }
        if (remote_post(l->r, c, &e) < 0) {
            snprintf(err, n, "%s", e.msg);
            return -1;
        }
        return 0;
    }
    trainer_post(l->t, c);
    return 0;
}

void link_log(Link *l, Snapshot *s, const char *line)
{
    if (l->r)
        snapshot_log(s, line);
    else
        trainer_log(l->t, line);
}

int link_snapshot(Link *l, Snapshot *s)
{
    if (l->r)
        return remote_poll(l->r, s);
    return trainer_snapshot(l->t, s);
}
