/* Which parts of the model train during fine-tuning, and how fast:
 * freezing rules and discriminative learning rates, applied to the
 * model's parameter groups (embeddings, layer.<i>, pooler, heads). */
#ifndef MNEME_STRATEGY_H
#define MNEME_STRATEGY_H

#include <stddef.h>

#include "config.h"
#include "model.h"

/* Parses a part list such as "embeddings layer.0-2 pooler" (names
 * separated by spaces or commas; "layer.N" or "layer.N-M"; "all").
 * frozen, when not NULL, has n_layers + 2 entries (embeddings, each
 * block, pooler) and gets 1 for every part named. Returns -1 with the
 * reason in why for an unknown part or a layer outside 0..n_layers-1.
 * n_layers < 0 checks the syntax only (before the model's depth is known:
 * a range error must then name the real one). */
int parts_parse(const char *spec, int n_layers, unsigned char *frozen, char *why, size_t n);

/* Sets trainable and lr_scale of every group for the finetune phase:
 * freeze.keep_last and freeze.parts, layer_decay, and the original head
 * always frozen (what changes is the shared encoder). */
void strategy_apply(Model *m, const Experiment *x);

/* Parameters that train, for the summary. */
size_t strategy_trainable_params(const Model *m);

#endif
