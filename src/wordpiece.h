/* WordPiece as Hugging Face's fast tokenizer (the `tokenizers` library
 * behind BertTokenizerFast) runs it: BERT normalisation (clean text, CJK
 * ideographs apart, accents stripped, lowercase), pre-splitting on
 * whitespace and punctuation, greedy longest-match-first pieces with the
 * "##" prefix, special tokens in the text kept whole. */
#ifndef MNEME_WORDPIECE_H
#define MNEME_WORDPIECE_H

#include "error.h"
#include "tokenizer.h"

typedef struct WordPiece WordPiece;

/* Reads DIR/vocab.txt (one token a line, the id is the line number from
 * 0) and DIR/tokenizer_config.json when present. */
int wordpiece_load(WordPiece **wp, const char *dir, MnError *e);
void wordpiece_free(WordPiece *wp);
int wordpiece_vocab_size(const WordPiece *wp);
/* The id of a special token's text; the [UNK] id when the vocabulary
 * lacks it (wordpiece_load refuses a vocabulary without [UNK], [CLS],
 * [SEP] and [PAD]). */
int wordpiece_special(const WordPiece *wp, const char *token);
/* Appends the pieces of text (no [CLS]/[SEP] added) with `type`. */
int wordpiece_pieces(const WordPiece *wp, const char *text, int type, TokenSeq *s,
                     MnError *e);
/* The same, but done after the word that brings the count of tokens
 * appended to `stop` or more (stop <= 0: never), as the library does when
 * it truncates to max_length = stop: this decides which side of a pair
 * gets the odd token. */
int wordpiece_pieces_until(const WordPiece *wp, const char *text, int type, int stop,
                           TokenSeq *s, MnError *e);
const char *wordpiece_token(const WordPiece *wp, int id);
int wordpiece_id(const WordPiece *wp, const char *token);
/* The text after normalisation alone (no special tokens split out), as
 * UTF-8 that the caller frees; NULL when out of memory. For tests. */
char *wordpiece_normalize(const WordPiece *wp, const char *text);

#endif
