#include "ctl.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remote.h"
#include "ui/command.h"

#define TIMEOUT_S 30.0         /* a command waits for the step under way */

static void print_json(json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT);
    if (text)
        printf("%s\n", text);
    free(text);
    json_decref(o);
}

/* The words after the run folder as one command line; its relative
 * paths (policy FILE) made absolute, as the trainer may run elsewhere. */
static int line_of(int argc, char **argv, char *out, size_t n)
{
    size_t used = 0;
    out[0] = 0;
    for (int i = 0; i < argc; i++) {
        char abs[PATH_MAX];
        const char *w = argv[i];
        if (i == 1 && !strcmp(argv[0], "policy") && w[0] != '/' && realpath(w, abs))
            w = abs;
        int k = snprintf(out + used, n - used, "%s%s", i ? " " : "", w);
        if (k < 0 || (size_t)k >= n - used)
            return -1;
        used += (size_t)k;
    }
    return 0;
}

/* ctl's words the `:` line lacks, or refuses; 0 when line is a command. */
static int parse(const char *line, Command *c, char *err, size_t n)
{
    UiCommand uc;
    memset(c, 0, sizeof *c);
    if (!strcmp(line, "resume")) {
        c->kind = CMD_PAUSE;
        c->value = -1;
        return 0;
    }
    if (!strcmp(line, "stop")) {
        c->kind = CMD_QUIT;
        return 0;
    }
    if (command_parse(line, &uc, err, n) < 0)
        return -1;
    if (uc.kind != UC_TRAINER) {
        snprintf(err, n, "'%s' changes what a workbench shows, not the run", line);
        return -1;
    }
    *c = uc.cmd;
    /* from a script, pause pauses: it does not toggle */
    if (c->kind == CMD_PAUSE)
        c->value = 1;
    return 0;
}

int ctl_main(int argc, char **argv)
{
    char line[1024], err[512], text[SNAP_LINE];
    MnError e;
    Command c;
    if (argc < 2) {
        fprintf(stderr, "usage: mneme ctl RUN_DIR COMMAND...\n"
                "  status | pause | resume | stop | set KEY VALUE | freeze PARTS | unfreeze PARTS\n"
                "  | checkpoint [NAME] | checkpoints | eval | reload | policy FILE\n"
                "  | fork NAME [@STEP] [KEY=VALUE]... | follow NAME | drop NAME\n");
        return 2;
    }
    const char *dir = argv[0];
    if (line_of(argc - 1, argv + 1, line, sizeof line) < 0) {
        fprintf(stderr, "mneme ctl: the command is too long\n");
        return 2;
    }
    int status = !strcmp(line, "status");
    if (!status && parse(line, &c, err, sizeof err) < 0) {
        fprintf(stderr, "mneme ctl: %s\n", err);
        return 2;
    }
    Remote *r = remote_open(dir, "ctl", 0, 10.0, &e);
    if (!r) {
        fprintf(stderr, "mneme ctl: %s\n", e.msg);
        return 3;
    }
    int rc = 0;
    if (status) {
        json_t *st = remote_status(r, TIMEOUT_S, &e);
        if (!st) {
            fprintf(stderr, "mneme ctl: %s\n", e.msg);
            rc = 3;
        } else {
            json_object_del(st, "t");
            json_object_del(st, "id");
            print_json(st);
        }
    } else {
        long id = remote_post(r, &c, &e);
        int ok = id < 0 ? -1 : remote_wait_reply(r, id, TIMEOUT_S, NULL, text, sizeof text, &e);
        if (ok < 0) {
            fprintf(stderr, "mneme ctl: %s\n", e.msg);
            rc = 3;
        } else {
            print_json(json_pack("{s:b, s:s, s:s}", "ok", ok, "command", line, "reply", text));
            if (!ok) {
                fprintf(stderr, "mneme ctl: refused: %s\n", text);
                rc = 1;
            }
        }
    }
    remote_close(r);
    return rc;
}
