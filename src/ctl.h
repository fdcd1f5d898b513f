/* mneme ctl RUN_DIR COMMAND…: one command to a live run, one JSON reply
 * on stdout. The command language is the workbench's `:` line, with
 * status, resume and stop besides. Exit status: 0 applied, 1 refused
 * (why on stderr), 2 bad usage, 3 the run is not live. */
#ifndef MNEME_CTL_H
#define MNEME_CTL_H

int ctl_main(int argc, char **argv);

#endif
