/* Where things are: the run folder layout and mneme's data folders. */
#ifndef MNEME_PATHS_H
#define MNEME_PATHS_H

#include <stddef.h>

#include "error.h"

/* mkdir -p */
int make_dirs(const char *path, MnError *e);

/* Finds a shipped data file (e.g. "experiments/demo.cfg") in, in order:
 * $MNEME_DATA, the source tree mneme was built from, the installed
 * package data folder. Writes the path found and returns 0, or -1. */
int find_data_file(const char *relative, char *out, size_t n);

/* Absolute form of path (relative to the current folder); no checks. */
void absolute_path(const char *path, char *out, size_t n);

/* Copies a file: written atomically beside dst, then renamed. */
int copy_file(const char *src, const char *dst, MnError *e);

/* A second name for a file that is only ever replaced, never written in
 * place (checkpoints): a hard link where the file system allows, else a
 * copy. */
int link_or_copy(const char *src, const char *dst, MnError *e);

/* Whether the name s ends in suffix (".safetensors"). */
int has_suffix(const char *s, const char *suffix);

/* A copy of the run folder src at dst (created), for another process to
 * continue the same run in: every file copied, its checkpoints (only ever
 * replaced, never written in place) linked where the file system allows;
 * not its lock, its socket or its replays. */
int copy_run_folder(const char *src, const char *dst, MnError *e);

/* rm -r, for a folder this program made and must undo; best effort. */
void remove_tree(const char *path);

#endif
