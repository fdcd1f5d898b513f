/* The trade-off figure of a study (mneme study's study.json): each
 * remedy's new-task accuracy against its forgetting (the original task's
 * accuracy lost), one labelled marker a remedy, the experiment as given
 * (`main`) as a square, the Pareto front joined and in the accent colour,
 * and ±sd error bars on both axes when the study ran more than one seed. */
#ifndef MNEME_TRADEOFF_H
#define MNEME_TRADEOFF_H

#include "error.h"

/* The figure of the study whose study.json is at study_json, into out
 * (PNG, SVG or PDF by its extension; whole or not at all), width by
 * height pixels (PNG) or points; theme NULL: the default. A study.json
 * that cannot be read or lacks a field, an unknown extension or a path
 * that cannot be written is an error naming it. */
int tradeoff_plot(const char *study_json, const char *out, int width, int height,
                  const char *theme, MnError *e);
/* The same figure as SVG text (NUL-terminated; the caller frees *svg). */
int tradeoff_svg(const char *study_json, int width, int height, const char *theme,
                 char **svg, MnError *e);

#endif
