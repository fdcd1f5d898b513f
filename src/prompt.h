/* Prompt tuning and prefix tuning (Lester et al. 2021; Li and Liang 2021),
 * as Hugging Face PEFT names them.
 *
 * Prompt: ModelConfig.prompt_tokens = n soft tokens, one tensor
 * prompt_encoder.embedding.weight [n, hidden] in group "prompt", inserted
 * right after [CLS] in the input embeddings (rows 1..n), so the pooler
 * still reads [CLS]. The soft tokens are the learned vectors alone, with
 * no position or token-type embedding added: those tables are frozen, so
 * adding one would only shift the free vector by a constant (a different
 * initialisation, nothing else). The real tokens keep their positions
 * 0..T-1, so the frozen encoder reads the text exactly as in pretraining
 * and no position past max_len is needed. They go through the embedding
 * LayerNorm like every token and are never masked; the sequence grows
 * by n (activations are sized for max_len + n).
 *
 * Prefix: ModelConfig.prefix_tokens = n learned keys and values per block,
 * prefix.layer.<i>.key / .value [n, hidden] in group "prefix" (head h uses
 * columns h*D ..), placed before every sequence's own keys and values
 * after their projections; queries unchanged, every query may attend to
 * them, never masked.
 *
 * Both initialised normal(0, init_std) (PEFT's random init at the model's
 * scale; model_init_weights). Forward and backward live in model.c and
 * layers.c (embedding_*_prompt, attention_*_prefix). */
#ifndef MNEME_PROMPT_H
#define MNEME_PROMPT_H

#include "model.h"

/* Whether m has soft tokens or prefixes at all. */
int prompt_present(const Model *m);
/* Switches the soft tokens / prefixes on or off (off: forward and backward
 * are the base model's bit for bit, e.g. to measure the original task
 * with them swapped out). Returns the previous state. No-op on a model
 * without them. */
int prompt_set_enabled(Model *m, int on);
int prompt_enabled(const Model *m);

#endif
