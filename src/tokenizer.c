#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wordpiece.h"

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

void token_seq_free(TokenSeq *s)
{
    free(s->ids);
    free(s->types);
    memset(s, 0, sizeof *s);
}

/* Room for n more tokens. */
static int seq_reserve(TokenSeq *s, int more, MnError *e)
{
    if (s->n + more <= s->cap)
        return 0;
    int cap = s->cap ? s->cap : 64;
    while (cap < s->n + more)
        cap *= 2;
    int *ids = realloc(s->ids, (size_t)cap * sizeof *ids);
    if (ids)
        s->ids = ids;
    int *types = ids ? realloc(s->types, (size_t)cap * sizeof *types) : NULL;
    if (types)
        s->types = types;
    if (!types)
        return mn_fail(e, "out of memory for %d tokens", cap);
    s->cap = cap;
    return 0;
}

static int seq_push(TokenSeq *s, int id, int type, MnError *e)
{
    if (seq_reserve(s, 1, e) < 0)
        return -1;
    s->ids[s->n] = id;
    s->types[s->n++] = type;
    return 0;
}

void tokenizer_bytes(Tokenizer *t)
{
    memset(t, 0, sizeof *t);
    t->kind = TOKENIZER_BYTES;
    t->vocab_size = TOKENIZER_VOCAB;
    t->pad = TOK_PAD;
    t->unk = TOK_UNK;
    t->cls = TOK_CLS;
    t->sep = TOK_SEP;
    t->mask = TOK_MASK;
}

int tokenizer_load(Tokenizer *t, const char *dir, MnError *e)
{
    memset(t, 0, sizeof *t);
    t->kind = TOKENIZER_WORDPIECE;
    if (wordpiece_load(&t->wp, dir, e) < 0)
        return -1;
    t->vocab_size = wordpiece_vocab_size(t->wp);
    t->pad = wordpiece_special(t->wp, "[PAD]");
    t->unk = wordpiece_special(t->wp, "[UNK]");
    t->cls = wordpiece_special(t->wp, "[CLS]");
    t->sep = wordpiece_special(t->wp, "[SEP]");
    t->mask = wordpiece_special(t->wp, "[MASK]");
    return 0;
}

void tokenizer_free(Tokenizer *t)
{
    wordpiece_free(t->wp);
    memset(t, 0, sizeof *t);
}

/* The tokens of text, but done after the word that brings their count to
 * `stop` or more (stop <= 0: all); for the byte-level kind a byte is a
 * word. */
static int pieces_until(const Tokenizer *t, const char *text, int type, int stop,
                        TokenSeq *s, MnError *e)
{
    if (t->kind == TOKENIZER_WORDPIECE)
        return wordpiece_pieces_until(t->wp, text, type, stop, s, e);
    size_t n = strlen(text);
    if (stop > 0 && n > (size_t)stop)
        n = (size_t)stop;
    if (n > 1u << 30)
        return mn_fail(e, "text of %zu bytes is too long", n);
    if (seq_reserve(s, (int)n, e) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        s->ids[s->n] = TOK_BYTE0 + (unsigned char)text[i];
        s->types[s->n++] = type;
    }
    return 0;
}

int tokenizer_pieces(const Tokenizer *t, const char *text, int type, TokenSeq *s,
                     MnError *e)
{
    return pieces_until(t, text, type, 0, s, e);
}

/* The fast tokenizer's longest-first truncation of a pair to `room` text
 * tokens (truncate_encodings in the tokenizers library): not one token at a
 * time from the longer side, but both cut at once. When the shorter side
 * fits in half the room it stays whole and the longer gets the rest;
 * otherwise the shorter gets room/2 and the longer the other half, with the
 * odd token (equal lengths: the second gets it). */
static void pair_budget(int na, int nb, int room, int *ka, int *kb)
{
    int n1 = na, n2 = nb, swap = n1 > n2;
    if (swap) {
        n1 = nb;
        n2 = na;
    }
    if (n1 > room)
        n2 = n1;
    else
        n2 = n2 < room - n1 ? n2 : room - n1 > n1 ? room - n1 : n1;
    if (n1 + n2 > room) {
        n1 = room / 2;
        n2 = n1 + room % 2;
    }
    *ka = swap ? n2 : n1;
    *kb = swap ? n1 : n2;
    if (*ka > na)
        *ka = na;
    if (*kb > nb)
        *kb = nb;
}

int tokenizer_encode(const Tokenizer *t, const char *a, const char *b, int max_len,
                     TokenSeq *s, MnError *e)
{
    TokenSeq pa = { 0 }, pb = { 0 };
    int specials = b ? 3 : 2, rc = -1;
    s->n = 0;
    if (max_len > 0 && max_len < specials)
        return mn_fail(e, "max_len %d leaves no room for the special tokens", max_len);
    /* The library stops tokenizing a text after the word that reaches
     * max_len tokens, and shares out the room by the lengths it has then:
     * two texts longer than max_len may count as equal, or the shorter as
     * the longer, which decides who gets an odd token. */
    if (pieces_until(t, a, 0, max_len, &pa, e) < 0 ||
        (b && pieces_until(t, b, 1, max_len, &pb, e) < 0))
        goto out;
    int ka = pa.n, kb = pb.n;
    if (max_len > 0 && ka + kb > max_len - specials) {
        if (b)
            pair_budget(pa.n, pb.n, max_len - specials, &ka, &kb);
        else
            ka = max_len - specials;
    }
    if (seq_reserve(s, ka + kb + specials, e) < 0 || seq_push(s, t->cls, 0, e) < 0)
        goto out;
    for (int i = 0; i < ka; i++)
        seq_push(s, pa.ids[i], 0, e);
    seq_push(s, t->sep, 0, e);
    if (b) {
        for (int i = 0; i < kb; i++)
            seq_push(s, pb.ids[i], 1, e);
        seq_push(s, t->sep, 1, e);
    }
    rc = 0;
out:
    token_seq_free(&pa);
    token_seq_free(&pb);
    return rc;
}

const char *tokenizer_token(const Tokenizer *t, int id, char buf[16])
{
    if (t->kind == TOKENIZER_WORDPIECE)
        return wordpiece_token(t->wp, id);
    return token_name(id, buf);
}

int tokenizer_id(const Tokenizer *t, const char *token)
{
    if (t->kind == TOKENIZER_WORDPIECE)
        return wordpiece_id(t->wp, token);
    for (int id = 0; id < TOK_BYTE0; id++)
        if (strcmp(special_names[id], token) == 0)
            return id;
    if (strlen(token) == 1)
        return TOK_BYTE0 + (unsigned char)token[0];
    return -1;
}
