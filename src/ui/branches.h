/* The family of branches on screen: the branch list (which one the UI
 * follows, each one's state, step and last metrics) and the compare view
 * (every branch's curves on one plot, fork points marked, and a table of
 * the summary figures with the best trade-off highlighted). Pure: no
 * curses here. */
#ifndef MNEME_UI_BRANCHES_H
#define MNEME_UI_BRANCHES_H

#include "trainer.h"
#include "ui/canvas.h"

/* A branch's figures from its fine-tuning history. */
typedef struct {
    int has;                   /* a baseline and a later evaluation */
    long step;                 /* of the last evaluation */
    double new_acc, original_acc, forgetting;
    double combined;           /* new loss + original_weight · original loss */
    long crossover;            /* -1: none yet */
} BranchFigures;

void branch_figures(const SnapBranch *b, BranchFigures *f);
/* The branch with the lowest combined metric, or -1. */
int branch_best(const Snapshot *s);
/* Branch i's colour. */
Element branch_element(int i);

void branch_list_draw(Canvas *c, Rect r, const Snapshot *s);
void compare_draw(Canvas *c, Rect r, const Snapshot *s);
/* The branch whose row the list drawn in r, or the compare view drawn in
 * r, shows at (x, y); -1 for any other cell. */
int branch_list_at(Rect r, const Snapshot *s, int x, int y);
int compare_branch_at(Rect r, const Snapshot *s, int x, int y);

#endif
