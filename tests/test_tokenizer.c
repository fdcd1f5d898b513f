#include <string.h>

#include "tap.h"
#include "tokenizer.h"

static int all_pad(const int *ids, int from, int to)
{
    for (int i = from; i < to; i++)
        if (ids[i] != TOK_PAD)
            return 0;
    return 1;
}

static void test_specials(void)
{
    ok(TOK_PAD == 0 && TOK_UNK == 1 && TOK_CLS == 2 && TOK_SEP == 3 &&
       TOK_MASK == 4 && TOK_BYTE0 == 5, "special ids are fixed");
    ok(TOKENIZER_VOCAB == 261, "vocabulary is 5 specials + 256 bytes");

    char buf[8];
    ok(strcmp(token_name(TOK_PAD, buf), "[PAD]") == 0, "name of [PAD]");
    ok(strcmp(token_name(TOK_UNK, buf), "[UNK]") == 0, "name of [UNK]");
    ok(strcmp(token_name(TOK_CLS, buf), "[CLS]") == 0, "name of [CLS]");
    ok(strcmp(token_name(TOK_SEP, buf), "[SEP]") == 0, "name of [SEP]");
    ok(strcmp(token_name(TOK_MASK, buf), "[MASK]") == 0, "name of [MASK]");
    ok(strcmp(token_name(TOK_BYTE0 + 'a', buf), "a") == 0, "name of a byte");
    ok(strcmp(token_name(TOK_BYTE0 + '\n', buf), "\\n") == 0, "name of newline");
    ok(strcmp(token_name(TOK_BYTE0 + 0xc3, buf), "\\xc3") == 0,
       "name of a high byte is an escape");
    ok(strcmp(token_name(TOKENIZER_VOCAB, buf), "[?]") == 0 &&
       strcmp(token_name(-1, buf), "[?]") == 0, "out-of-range ids are [?]");
}

static void test_bytes(void)
{
    int ids[16];
    memset(ids, 0, sizeof ids);
    int n = tokenize("hi!", ids, 16);
    ok(n == 5, "\"hi!\" gives 5 ids (got %d)", n);
    ok(ids[0] == TOK_CLS && ids[4] == TOK_SEP, "[CLS] first, [SEP] last");
    ok(ids[1] == TOK_BYTE0 + 'h' && ids[2] == TOK_BYTE0 + 'i' &&
       ids[3] == TOK_BYTE0 + '!', "bytes map to TOK_BYTE0 + b");
    ok(all_pad(ids, 5, 16), "nothing written past the sequence");

    n = tokenize("", ids, 16);
    ok(n == 2 && ids[0] == TOK_CLS && ids[1] == TOK_SEP,
       "empty text gives [CLS][SEP]");

    /* "é" is C3 A9 and "€" is E2 82 AC in UTF-8. */
    n = tokenize("\xc3\xa9\xe2\x82\xac", ids, 16);
    ok(n == 7, "UTF-8 text: one id per byte (got %d)", n);
    ok(ids[1] == TOK_BYTE0 + 0xc3 && ids[2] == TOK_BYTE0 + 0xa9 &&
       ids[3] == TOK_BYTE0 + 0xe2 && ids[4] == TOK_BYTE0 + 0x82 &&
       ids[5] == TOK_BYTE0 + 0xac, "UTF-8 bytes map to TOK_BYTE0 + b");
    ok(ids[6] == TOK_SEP, "[SEP] after UTF-8 bytes");

    int max = 0;
    for (int b = 1; b < 256; b++) {
        char s[2] = { (char)b, 0 };
        tokenize(s, ids, 16);
        if (ids[1] > max)
            max = ids[1];
    }
    ok(max == TOKENIZER_VOCAB - 1, "byte 255 is the last id of the vocabulary");
}

static void test_truncation(void)
{
    int ids[10];
    for (int i = 0; i < 10; i++)
        ids[i] = -7;
    int n = tokenize("abcdefghijklmnop", ids, 8);
    ok(n == 8, "truncated to max_len (got %d)", n);
    ok(ids[0] == TOK_CLS && ids[7] == TOK_SEP, "[SEP] ends a truncated sequence");
    ok(ids[6] == TOK_BYTE0 + 'f', "keeps the first max_len-2 bytes");
    ok(ids[8] == -7 && ids[9] == -7, "never writes past max_len");

    n = tokenize("abcdef", ids, 8);
    ok(n == 8 && ids[6] == TOK_BYTE0 + 'f' && ids[7] == TOK_SEP,
       "text of exactly max_len-2 bytes fits whole");

    n = tokenize("abc", ids, 2);
    ok(n == 2 && ids[0] == TOK_CLS && ids[1] == TOK_SEP,
       "max_len 2 gives [CLS][SEP]");
}

/* tokenizer_encode(a, b, max_len) gives ids [CLS] a... [SEP] b... [SEP]
 * with na and nb bytes of each, and types 0 then 1. */
static int pair_is(const Tokenizer *t, const char *a, const char *b, int max_len, int na, int nb)
{
    TokenSeq s = { 0 };
    MnError e;
    int n = 3 + na + nb;
    int same = tokenizer_encode(t, a, b, max_len, &s, &e) == 0 && s.n == n &&
               s.ids[0] == TOK_CLS && s.ids[1 + na] == TOK_SEP && s.ids[n - 1] == TOK_SEP;
    for (int i = 0; same && i < n; i++) {
        same = s.types[i] == (i > 1 + na);
        if (i > 0 && i < 1 + na)
            same = same && s.ids[i] == TOK_BYTE0 + (unsigned char)a[i - 1];
        if (i > 1 + na && i < n - 1)
            same = same && s.ids[i] == TOK_BYTE0 + (unsigned char)b[i - 2 - na];
    }
    if (!same)
        diag("(%s | %s, %d): %d tokens, wanted %d + %d", a, b, max_len, s.n, na, nb);
    token_seq_free(&s);
    return same;
}

/* Pairs cut longest-first as the fast tokenizer does, a byte being a word. */
static void test_pairs(void)
{
    Tokenizer t;
    tokenizer_bytes(&t);
    ok(pair_is(&t, "abc", "de", 0, 3, 2), "a pair: [CLS] a [SEP] b [SEP], types 0 then 1");
    ok(pair_is(&t, "abcde", "xyz", 8, 3, 2), "5+3 in room 5: the longer keeps 3, the shorter 2");
    ok(pair_is(&t, "abcdef", "x", 6, 2, 1), "6+1 in room 3: only the longer is cut");
    ok(pair_is(&t, "abcd", "wxyz", 8, 2, 3), "a tie in an odd room: the second gets the odd byte");
    ok(pair_is(&t, "abcdefghij", "abcdefghi", 6, 1, 2),
       "10+9 with max_len 6: both count as 6, a tie");
    ok(pair_is(&t, "abcdefghi", "abcd", 6, 2, 1), "9+4 with max_len 6: the first is the longer");
    ok(pair_is(&t, "ab", "cd", 3, 0, 0), "max_len 3 leaves the special tokens only");
    TokenSeq s = { 0 };
    MnError e;
    ok(tokenizer_encode(&t, "hello", NULL, 4, &s, &e) == 0 && s.n == 4 &&
       s.ids[2] == TOK_BYTE0 + 'e' && s.ids[3] == TOK_SEP, "a single text is cut, [SEP] kept");
    ok(tokenizer_encode(&t, "a", "b", 2, &s, &e) < 0, "max_len 2 cannot hold a pair");
    token_seq_free(&s);
}

int main(void)
{
    test_specials();
    test_bytes();
    test_truncation();
    test_pairs();
    return tap_done();
}
