/* LoRA (low-rank adaptation) on the encoder's linear modules, as Hugging
 * Face PEFT does it: for each targeted module of each block, A [r, in] and
 * B [out, r] under the module's name + ".lora_A.weight" / ".lora_B.weight",
 * in a group layer.<i>.lora of their own, adding (alpha / r) x A^T B^T to
 * the module's output. The adapters are built by model_create from
 * ModelConfig.lora_r, lora_alpha and lora_targets; forward and backward
 * live in model.c (the lora_forward / lora_backward pair in layers.c).
 * Not implemented: lora.dropout (PEFT's dropout on the adapter input). */
#ifndef MNEME_LORA_H
#define MNEME_LORA_H

#include <stddef.h>

#include "model.h"

/* Parses a target list ("query value", commas or blanks between names)
 * into a mask of (1u << LORA_QUERY) ... bits. Names are matched against
 * the block's module names as PEFT matches target_modules: a name selects
 * every module whose full name equals it or ends in "." + it, so
 * "output.dense" selects both attention.output.dense and output.dense,
 * "dense" all three dense layers. Each name must be one of query, key,
 * value, dense, attention.output.dense, intermediate.dense, output.dense,
 * self.query, self.key, self.value, attention.self.query, ... (a suffix of a
 * block module's name at a dot); anything else, or an empty list, is an
 * error explained in why. */
int lora_parse_targets(const char *spec, unsigned *mask, char *why, size_t n);

/* Whether m has adapters at all. */
int lora_present(const Model *m);
/* Switches the adapters on (scale alpha / r) or off (scale 0: forward and
 * backward skip them, so the model is the base model bit for bit, e.g. to
 * measure the original task with the adapter swapped out). Returns the
 * previous state. No-op on a model without adapters. */
int lora_set_enabled(Model *m, int on);
int lora_enabled(const Model *m);

/* Folds the adapters into the base weights, W += (alpha / r) B A, and sets
 * every B to zero, so the model computes the same function (to rounding)
 * with plain linears: its base tensors are then the merged weights for
 * export. */
void lora_merge(Model *m);

#endif
