/* mneme runs: the runs under a folder, a line each with their figures. */
#ifndef MNEME_RUNS_H
#define MNEME_RUNS_H

int runs_main(int argc, char **argv);

#endif
