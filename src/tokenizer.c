#include "tokenizer.h"

#include <stdio.h>
#include <string.h>

int tokenize(const char *text, int *ids, int max_len)
{
    if (max_len < 2)
        return 0;
    size_t n = text ? strlen(text) : 0;
    /* Cut the text, not [SEP]: the model was trained on sequences that
     * always end with it. */
    if (n > (size_t)(max_len - 2))
        n = (size_t)(max_len - 2);
    ids[0] = TOK_CLS;
    for (size_t i = 0; i < n; i++)
        ids[1 + i] = TOK_BYTE0 + (unsigned char)text[i];
    ids[1 + n] = TOK_SEP;
    return (int)n + 2;
}

static const char *const special_names[TOK_BYTE0] = {
    [TOK_PAD] = "[PAD]", [TOK_UNK] = "[UNK]", [TOK_CLS] = "[CLS]",
    [TOK_SEP] = "[SEP]", [TOK_MASK] = "[MASK]",
};

const char *token_name(int id, char buf[8])
{
    if (id >= 0 && id < TOK_BYTE0)
        return special_names[id];
    if (id < 0 || id >= TOKENIZER_VOCAB)
        return "[?]";
    int b = id - TOK_BYTE0;
    /* Escapes keep one token on one cell of a display line. */
    switch (b) {
    case '\n': return "\\n";
    case '\t': return "\\t";
    case '\r': return "\\r";
    case '\\': return "\\\\";
    default: break;
    }
    if (b >= 0x20 && b < 0x7f)
        snprintf(buf, 8, "%c", b);
    else
        snprintf(buf, 8, "\\x%02x", b);
    return buf;
}
