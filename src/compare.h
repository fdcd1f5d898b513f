/* A run and its branches side by side: mneme compare, and the branch
 * rows mneme runs prints under each run. */
#ifndef MNEME_COMPARE_H
#define MNEME_COMPARE_H

typedef struct {
    char name[64];             /* "main" for the run itself */
    char parent[64];
    char status[32];
    long fork_step;            /* -1 for main */
    int has_summary;
    long final_step;
    double new_acc, orig_base, orig_final, forgetting;
    double combined;           /* final new loss + stop.original_weight · original loss */
    long crossover;            /* -1: none */
    int best;                  /* the lowest combined metric of the family */
} BranchRow;

/* The run in run_dir (first) and every branch of its family, by name. */
int branch_rows(const char *run_dir, BranchRow **rows, int *n);

/* Prints rows as a table; prefix starts every line. */
void branch_rows_print(const BranchRow *rows, int n, const char *prefix);

int compare_main(int argc, char **argv);

#endif
