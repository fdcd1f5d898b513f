#include "ui/command.h"

#include "config.h"
#include "strategy.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const CommandInfo command_table[] = {
    { "set", "KEY VALUE", "change a setting from this step (finetune.lr, ewc.lambda, policy.NAME)" },
    { "freeze", "PARTS", "freeze parts: embeddings, layer.N, layer.N-M, pooler, all" },
    { "unfreeze", "PARTS", "let parts train again" },
    { "checkpoint", "[NAME]", "write a checkpoint now (NAME: tag-NAME-step-N)" },
    { "eval", "", "evaluate both tasks now (shown in the log)" },
    { "pause", "", "pause or resume training" },
    { "reload", "", "load the policy file again" },
    { "checkpoints", "", "list the steps there are checkpoints of (where a fork can start)" },
    { "policy", "FILE", "run the policy in FILE from this step (recorded; replaces the run's)" },
    { "loss", "", "toggle the loss and accuracy views" },
    { "theme", "NAME", "switch the theme (default, light, mono or a path)" },
    { "fork", "NAME [@STEP] [KEY=VALUE]...", "branch the run (now, or at a checkpoint's step) with other settings" },
    { "follow", "NAME", "follow and steer another branch (Tab: the next)" },
    { "drop", "NAME", "stop a branch and set its folder aside (branches/.dropped/)" },
    { "compare", "", "toggle the view of every branch's curves and figures" },
    { "detach", "", "leave the run training in the background (mneme attach comes back)" },
    { "plot", "[FILE]", "write what is on screen as a figure (.png, .svg or .pdf; RUN/plot-step-N.png)" },
    { "quit", "", "checkpoint and quit" },
};
const int command_count = (int)(sizeof command_table / sizeof command_table[0]);

/* What completion offers: commands and, after them, their arguments. */
static const char *const completions[] = {
    "set finetune.lr ", "set ewc.lambda ", "set policy.", "freeze ", "unfreeze all", "checkpoint", "eval",
    "pause", "reload", "policy ", "checkpoints", "loss",
    "theme default", "theme light", "theme mono", "quit", "detach", "plot ",
    "fork ", "follow ", "drop ", "compare",
};

/* Splits off the next blank-separated word into w (capacity n). */
static const char *word(const char *s, char *w, size_t n)
{
    size_t k = 0;
    while (isspace((unsigned char)*s))
        s++;
    while (*s && !isspace((unsigned char)*s)) {
        if (k + 1 < n)
            w[k++] = *s;
        s++;
    }
    w[k] = 0;
    return s;
}

void command_sanitise(const char *name, char *out, size_t n)
{
    size_t k = 0;
    if (n == 0)
        return;
    for (; *name && k + 1 < n; name++) {
        unsigned char ch = (unsigned char)*name;
        out[k++] = (isalnum(ch) && ch < 0x80) || ch == '_' || ch == '-' ? (char)ch : '_';
    }
    out[k] = 0;
}

/* The text after the first two words of line (the value of a :set), with
 * the blanks around it trimmed. */
static void rest_after_two(const char *line, char *out, size_t n)
{
    char w[128];
    const char *s = word(word(line, w, sizeof w), w, sizeof w);
    while (isspace((unsigned char)*s))
        s++;
    size_t len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        len--;
    snprintf(out, n, "%.*s", (int)len, s);
}

/* fork NAME [@STEP] [KEY=VALUE]...: the name and the overrides' form are
 * checked here; the keys and values by the run, which says what it
 * refused in the log. */
static int parse_fork(const char *line, UiCommand *out, char *err, size_t n)
{
    char w[128];
    size_t used = 0;
    const char *s = word(word(line, w, sizeof w), w, sizeof w);
    if (!w[0]) {
        snprintf(err, n, "usage: fork NAME [@STEP] [KEY=VALUE]..., e.g. fork lower-lr finetune.lr=1e-5");
        return -1;
    }
    for (const char *c = w; *c; c++)
        if ((!isalnum((unsigned char)*c) && *c != '-' && *c != '_' && *c != '.') || w[0] == '.') {
            snprintf(err, n, "fork: '%.60s': a branch name is letters, digits, '-', '_' and '.'", w);
            return -1;
        }
    if (strlen(w) > 48 || strcmp(w, "main") == 0) {
        snprintf(err, n, "fork: '%.60s' cannot name a branch", w);
        return -1;
    }
    out->cmd.kind = CMD_FORK;
    out->cmd.value = -1;
    snprintf(out->cmd.arg, sizeof out->cmd.arg, "%s", w);
    for (s = word(s, w, sizeof w); w[0]; s = word(s, w, sizeof w)) {
        if (w[0] == '@') {
            char *end;
            long step = strtol(w + 1, &end, 10);
            if (*end || end == w + 1 || step < 0) {
                snprintf(err, n, "fork: '%.60s': expected @STEP, a step with a checkpoint", w);
                return -1;
            }
            out->cmd.value = (double)step;
            continue;
        }
        const char *eq = strchr(w, '=');
        if (!eq || eq == w || !eq[1]) {
            snprintf(err, n, "fork: '%.60s': expected KEY=VALUE, e.g. finetune.lr=1e-5", w);
            return -1;
        }
        if (used + strlen(w) + 2 > sizeof out->cmd.text) {
            snprintf(err, n, "fork: too many overrides for one line");
            return -1;
        }
        used += (size_t)snprintf(out->cmd.text + used, sizeof out->cmd.text - used, "%s%s",
                                 used ? " " : "", w);
    }
    return 0;
}

/* The command nearest to a mistyped name, when one is near enough. */
static const char *nearest_command(const char *name)
{
    const char *best = NULL;
    int best_d = 3;
    for (int i = 0; i < command_count; i++) {
        int dd = edit_distance(name, command_table[i].name);
        if (dd < best_d) {
            best_d = dd;
            best = command_table[i].name;
        }
    }
    return best;
}

int command_parse(const char *line, UiCommand *out, char *err, size_t n)
{
    char name[64], a1[128], a2[128], extra[16];
    const char *s = word(line, name, sizeof name);
    s = word(s, a1, sizeof a1);
    s = word(s, a2, sizeof a2);
    word(s, extra, sizeof extra);
    memset(out, 0, sizeof *out);
    out->kind = UC_TRAINER;
    if (!name[0]) {
        snprintf(err, n, "type a command: set, freeze, unfreeze, checkpoint, checkpoints, eval, pause, reload, policy, loss, theme, fork, follow, compare, quit");
        return -1;
    }
    int known = 0;
    for (int i = 0; i < command_count; i++)
        known |= strcmp(name, command_table[i].name) == 0;
    if (!known) {
        const char *near = nearest_command(name);
        if (near)
            snprintf(err, n, "unknown command '%.60s': did you mean %s?", name, near);
        else
            snprintf(err, n, "unknown command '%.60s' (tab completes)", name);
        return -1;
    }
    if (strcmp(name, "policy") == 0 ||
        (strcmp(name, "set") == 0 && strcmp(a1, "finetune.policy") == 0)) {
        const char *file = strcmp(name, "policy") == 0 ? a1 : a2;
        if (!file[0]) {
            snprintf(err, n, "policy FILE: which file? e.g. policy policies/freeze.lua");
            return -1;
        }
        if (strlen(file) >= sizeof out->cmd.text) {
            snprintf(err, n, "policy: the path is longer than %zu characters", sizeof out->cmd.text - 1);
            return -1;
        }
        out->cmd.kind = CMD_ATTACH_POLICY;
        snprintf(out->cmd.text, sizeof out->cmd.text, "%s", file);
        return 0;
    }
    if (strcmp(name, "set") == 0) {
        char *end;
        if (!a1[0] || !a2[0] || (extra[0] && strncmp(a1, "policy.", 7) != 0)) {
            snprintf(err, n, "usage: set KEY VALUE, e.g. set finetune.lr 1e-5");
            return -1;
        }
        if (strncmp(a1, "policy.", 7) == 0) {
            /* the type is the policy's to check, on the trainer thread */
            const char *p = a1 + 7;
            if (!*p) {
                snprintf(err, n, "set policy.NAME VALUE: which parameter?");
                return -1;
            }
            for (const char *c = p; *c; c++)
                if (!isalnum((unsigned char)*c) && *c != '_') {
                    snprintf(err, n, "set: '%.60s' is not a policy parameter name", p);
                    return -1;
                }
            out->cmd.kind = CMD_SET_POLICY;
            snprintf(out->cmd.arg, sizeof out->cmd.arg, "%s", p);
            rest_after_two(line, out->cmd.text, sizeof out->cmd.text);
            return 0;
        }
        /* the short names fork's KEY=VALUE accepts too */
        int ewc = strcmp(a1, "ewc.lambda") == 0 || strcmp(a1, "finetune.ewc.lambda") == 0;
        int lr = strcmp(a1, "finetune.lr") == 0 || strcmp(a1, "lr") == 0;
        if (!lr && !ewc) {
            snprintf(err, n, "set: finetune.lr (lr), ewc.lambda and policy.NAME can change during a run, not '%.60s'", a1);
            return -1;
        }
        double v = strtod(a2, &end);
        if (*end || end == a2 || !isfinite(v) || v < 0) {
            snprintf(err, n, "set %s: expected a number >= 0, not '%.60s'", a1, a2);
            return -1;
        }
        out->cmd.kind = ewc ? CMD_SET_EWC : CMD_SET_LR;
        out->cmd.value = v;
        return 0;
    }
    if (strcmp(name, "freeze") == 0 || strcmp(name, "unfreeze") == 0) {
        char why[256];
        const char *rest = line;
        while (isspace((unsigned char)*rest))
            rest++;
        rest += strlen(name);
        while (isspace((unsigned char)*rest))
            rest++;
        /* The layer range is checked against the model by the trainer. */
        if (!*rest || parts_parse(rest, -1, NULL, why, sizeof why) < 0) {
            snprintf(err, n, "%s: %s", name, *rest ? why : "which parts? e.g. layer.0-1, embeddings, all");
            return -1;
        }
        out->cmd.kind = strcmp(name, "freeze") == 0 ? CMD_FREEZE : CMD_UNFREEZE;
        snprintf(out->cmd.arg, sizeof out->cmd.arg, "%s", rest);
        return 0;
    }
    if (strcmp(name, "fork") == 0)
        return parse_fork(line, out, err, n);
    if (strcmp(name, "drop") == 0) {
        if (!a1[0] || a2[0]) {
            snprintf(err, n, "usage: drop NAME (a branch's name)");
            return -1;
        }
        out->cmd.kind = CMD_DROP;
        snprintf(out->cmd.arg, sizeof out->cmd.arg, "%s", a1);
        return 0;
    }
    if (strcmp(name, "follow") == 0) {
        if (!a1[0] || a2[0]) {
            snprintf(err, n, "usage: follow NAME (a branch's name, or main)");
            return -1;
        }
        out->cmd.kind = CMD_FOLLOW;
        out->cmd.value = -1;
        snprintf(out->cmd.arg, sizeof out->cmd.arg, "%s", a1);
        return 0;
    }
    if (strcmp(name, "theme") == 0) {
        if (!a1[0] || a2[0]) {
            snprintf(err, n, "usage: theme NAME (default, light, mono or a path)");
            return -1;
        }
        out->kind = UC_THEME;
        snprintf(out->arg, sizeof out->arg, "%s", a1);
        return 0;
    }
    if (strcmp(name, "plot") == 0) {
        if (a2[0]) {
            snprintf(err, n, "usage: plot [FILE.png|svg|pdf]");
            return -1;
        }
        out->kind = UC_PLOT;
        snprintf(out->arg, sizeof out->arg, "%s", a1);
        return 0;
    }
    if (strcmp(name, "checkpoint") == 0) {
        if (a2[0]) {
            snprintf(err, n, "usage: checkpoint [NAME]");
            return -1;
        }
        out->cmd.kind = CMD_CHECKPOINT;
        command_sanitise(a1, out->cmd.arg, 64);
        return 0;
    }
    if (a1[0]) {
        snprintf(err, n, "%s takes no arguments", name);
        return -1;
    }
    if (strcmp(name, "loss") == 0)
        out->kind = UC_VIEW;
    else if (strcmp(name, "compare") == 0)
        out->kind = UC_COMPARE;
    else if (strcmp(name, "detach") == 0)
        out->kind = UC_DETACH;
    else
        out->cmd.kind = strcmp(name, "checkpoint") == 0 ? CMD_CHECKPOINT
                        : strcmp(name, "checkpoints") == 0 ? CMD_LIST_CHECKPOINTS
                        : strcmp(name, "eval") == 0     ? CMD_EVALUATE
                        : strcmp(name, "pause") == 0    ? CMD_PAUSE
                        : strcmp(name, "reload") == 0   ? CMD_RELOAD
                                                        : CMD_QUIT;
    return 0;
}

/* Completes word (the end of line, capacity n) to the longest common
 * prefix of the candidates it starts; returns how many there are. */
static int complete_word(char *line, size_t n, const char *word, const char *const *cand,
                         int n_cand)
{
    const char *first = NULL;
    size_t len = strlen(word), common = 0;
    int count = 0;
    for (int i = 0; i < n_cand; i++) {
        const char *c = cand[i];
        if (!c || strncmp(c, word, len) != 0)
            continue;
        if (!first) {
            first = c;
            common = strlen(c);
        } else {
            size_t k = 0;
            while (k < common && c[k] == first[k])
                k++;
            common = k;
        }
        count++;
    }
    size_t at = (size_t)(word - line);
    if (first && common > len && at + common < n) {
        memcpy(line + at, first, common);
        line[at + common] = 0;
    }
    return count;
}

int command_complete(char *line, size_t n)
{
    return complete_word(line, n, line, completions, (int)(sizeof completions / sizeof completions[0]));
}

int command_complete_parts(char *line, size_t n, const char *const *parts, int n_parts)
{
    const char *last = strrchr(line, ' ');
    int is_parts = strncmp(line, "freeze ", 7) == 0 || strncmp(line, "unfreeze ", 9) == 0;
    if (!is_parts || !last)
        return command_complete(line, n);
    /* the model's group names, and the words parts_parse takes beside them */
    const char *cand[SNAP_GROUPS + 2] = { "all", "embeddings" };
    int k = 2;
    for (int i = 0; i < n_parts && k < SNAP_GROUPS + 2; i++)
        cand[k++] = parts[i];
    return complete_word(line, n, last + 1, cand, k);
}

int line_edit(char *line, size_t n, size_t *at, EditKey k, int ch)
{
    size_t len = strlen(line);
    if (*at > len)
        *at = len;
    switch (k) {
    case EDIT_INSERT:
        if (ch >= 0x20 && ch < 0x7f && len + 1 < n) {
            memmove(line + *at + 1, line + *at, len - *at + 1);
            line[(*at)++] = (char)ch;
        }
        break;
    case EDIT_LEFT:
        if (*at > 0)
            (*at)--;
        break;
    case EDIT_RIGHT:
        if (*at < len)
            (*at)++;
        break;
    case EDIT_HOME:
        *at = 0;
        break;
    case EDIT_END:
        *at = len;
        break;
    case EDIT_BACKSPACE:
        if (len == 0)
            return -1;
        if (*at > 0) {
            memmove(line + *at - 1, line + *at, len - *at + 1);
            (*at)--;
        }
        break;
    case EDIT_DELETE:
        if (*at < len)
            memmove(line + *at, line + *at + 1, len - *at);
        break;
    case EDIT_KILL_START:
        memmove(line, line + *at, len - *at + 1);
        *at = 0;
        break;
    case EDIT_KILL_WORD: {
        size_t from = *at;
        while (from > 0 && line[from - 1] == ' ')
            from--;
        while (from > 0 && line[from - 1] != ' ')
            from--;
        memmove(line + from, line + *at, len - *at + 1);
        *at = from;
        break;
    }
    }
    return 0;
}
