/* The `:` command line of the workbench: one table of commands, parsing a
 * line into what to do, and completion. Pure: tested without a terminal. */
#ifndef MNEME_UI_COMMAND_H
#define MNEME_UI_COMMAND_H

#include <stddef.h>

#include "trainer.h"

typedef enum {
    UC_TRAINER,                /* post cmd to the trainer */
    UC_THEME,                  /* switch to theme arg */
    UC_VIEW,                   /* toggle loss/accuracy */
    UC_COMPARE,                /* toggle the compare view */
    UC_DETACH,                 /* leave the run training in the background */
    UC_PLOT                    /* write the figure on screen to arg ("": the run's folder) */
} UiCommandKind;

typedef struct {
    UiCommandKind kind;
    Command cmd;
    char arg[128];
} UiCommand;

typedef struct {
    const char *name;
    const char *args;          /* usage, "" when none */
    const char *help;
} CommandInfo;

extern const CommandInfo command_table[];
extern const int command_count;

/* Parses one command line (without the ':'). Returns 0, or -1 with a
 * message for the command line in err ("unknown command 'x'", …). */
int command_parse(const char *line, UiCommand *out, char *err, size_t n);
/* Copies name into out (capacity n, truncating) with every character
 * outside [A-Za-z0-9_-] replaced by '_': a checkpoint's tag. */
void command_sanitise(const char *name, char *out, size_t n);
/* Completes line in place (capacity n) to the longest common prefix of
 * the commands and keys it starts; returns the number of candidates. */
int command_complete(char *line, size_t n);
/* As command_complete, and after "freeze " or "unfreeze " the last word
 * against the model's part names (parts, n_parts) too. */
int command_complete_parts(char *line, size_t n, const char *const *parts, int n_parts);

/* Editing the line: cursor moves, deletions, Ctrl-U and Ctrl-W. */
typedef enum {
    EDIT_INSERT, EDIT_LEFT, EDIT_RIGHT, EDIT_HOME, EDIT_END,
    EDIT_BACKSPACE, EDIT_DELETE, EDIT_KILL_START, EDIT_KILL_WORD
} EditKey;
/* Applies k to line (capacity n) whose cursor is at *at (ch: the
 * character EDIT_INSERT types). Returns -1 for a backspace on an empty
 * line (which closes it), else 0. */
int line_edit(char *line, size_t n, size_t *at, EditKey k, int ch);

#endif
