/* Tokenizers: byte-level (one token per byte of UTF-8 text, after five
 * special tokens), or WordPiece from a Hugging Face model folder
 * (wordpiece.c), behaving as Hugging Face's fast tokenizer does. Both
 * build [CLS] a [SEP] and [CLS] a [SEP] b [SEP] sequences with token
 * types 0 and 1, truncated longest-first. */
#ifndef MNEME_TOKENIZER_H
#define MNEME_TOKENIZER_H

#include "error.h"

/* The byte-level vocabulary. */
enum {
    TOK_PAD = 0,
    TOK_UNK = 1,
    TOK_CLS = 2,
    TOK_SEP = 3,
    TOK_MASK = 4,
    TOK_BYTE0 = 5,              /* byte b has id TOK_BYTE0 + b */
    TOKENIZER_VOCAB = TOK_BYTE0 + 256
};

typedef enum { TOKENIZER_BYTES, TOKENIZER_WORDPIECE } TokenizerKind;

struct WordPiece;              /* wordpiece.h */

typedef struct {
    TokenizerKind kind;
    int vocab_size;
    int pad, unk, cls, sep, mask;   /* special token ids */
    struct WordPiece *wp;           /* WORDPIECE: vocabulary and options */
} Tokenizer;

/* A token sequence that grows as needed; free with token_seq_free. */
typedef struct {
    int *ids;
    int *types;                /* token type (segment) of each id: 0 or 1 */
    int n, cap;
} TokenSeq;

void token_seq_free(TokenSeq *s);

/* The byte-level tokenizer (never fails, owns nothing). */
void tokenizer_bytes(Tokenizer *t);
/* WordPiece from DIR/vocab.txt and DIR/tokenizer_config.json
 * (do_lower_case, strip_accents, tokenize_chinese_chars); errors name
 * the file and line. */
int tokenizer_load(Tokenizer *t, const char *dir, MnError *e);
void tokenizer_free(Tokenizer *t);

/* The tokens of text with no special tokens around them, appended to s
 * with type `type`. -1 only when out of memory. */
int tokenizer_pieces(const Tokenizer *t, const char *text, int type, TokenSeq *s,
                     MnError *e);

/* s = [CLS] a [SEP], or [CLS] a [SEP] b [SEP] when b is not NULL, with
 * types 0 (through the first [SEP]) then 1. max_len > 0 truncates the
 * texts' tokens longest-first so that the whole fits in max_len (as the
 * fast tokenizer's "longest_first"); max_len <= 0 does not truncate.
 * s is reset first. -1 only when out of memory (or max_len too small for
 * the special tokens). */
int tokenizer_encode(const Tokenizer *t, const char *a, const char *b, int max_len,
                     TokenSeq *s, MnError *e);

/* The token's text for display ("[PAD]", "##ing", or a byte as text or an
 * escape); "[?]" for an id outside the vocabulary. buf must hold 16
 * bytes (used by the byte-level kind). */
const char *tokenizer_token(const Tokenizer *t, int id, char buf[16]);
/* The id of a token's text, or -1. */
int tokenizer_id(const Tokenizer *t, const char *token);

/* Byte-level shorthands, as before: [CLS] bytes... [SEP] into ids (at
 * most max_len, max_len >= 2; the text is cut, not [SEP]); the count. */
int tokenize(const char *text, int *ids, int max_len);
/* Name of a byte-level token for display; buf must hold 8 bytes. */
const char *token_name(int id, char buf[8]);

#endif
