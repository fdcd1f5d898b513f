/* Byte-level tokenizer: one token per byte of UTF-8 text, after five
 * special tokens. Vocabulary size TOKENIZER_VOCAB. */
#ifndef MNEME_TOKENIZER_H
#define MNEME_TOKENIZER_H

enum {
    TOK_PAD = 0,
    TOK_UNK = 1,
    TOK_CLS = 2,
    TOK_SEP = 3,
    TOK_MASK = 4,
    TOK_BYTE0 = 5,              /* byte b has id TOK_BYTE0 + b */
    TOKENIZER_VOCAB = TOK_BYTE0 + 256
};

/* Writes [CLS] bytes... [SEP] into ids (at most max_len ids; the text is
 * truncated so that [SEP] always ends the sequence; max_len >= 2).
 * Returns the number of ids written. */
int tokenize(const char *text, int *ids, int max_len);

/* Name of a token for display: "[PAD]" … or the byte as text/escape.
 * buf must hold 8 bytes. */
const char *token_name(int id, char buf[8]);

#endif
