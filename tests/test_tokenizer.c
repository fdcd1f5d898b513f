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

int main(void)
{
    test_specials();
    test_bytes();
    test_truncation();
    return tap_done();
}
