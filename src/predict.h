/* mneme predict: classify texts (or raw token ids) with a checkpoint. */
#ifndef MNEME_PREDICT_H
#define MNEME_PREDICT_H

#include "data.h"
#include "tokenizer.h"

int predict_main(int argc, char **argv);

/* One input line (its newline removed) into row 0 of b, whose buffers hold
 * max_len: token ids as given with use_ids (each below vocab), else the
 * text, or text<TAB>text with pair, encoded with tok at max_len. Returns
 * the length, or -1 after saying on stderr what is wrong with line
 * `lineno`. The line is left as it was. */
int predict_line(const Tokenizer *tok, int vocab, int max_len, int use_ids, int pair,
                 char *line, long lineno, TokenSeq *seq, Batch *b);

#endif
