/* WordPiece as the fast BERT tokenizer runs it, on a small vocabulary built
 * here. Every expected id list is worked out by hand from the algorithm;
 * tests/tokenizers.sh compares with the library itself. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "tokenizer.h"
#include "wordpiece.h"

/* The vocabulary: id = index. */
static const char *const vocab[] = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",             /* 0-4 */
    "hello", "world", "wow", "!", "$",                        /* 5-9 */
    "5", ".", "00", "a", "-",                                 /* 10-14 */
    "b", "cafe", "caf\xc3\xa9", "\xe4\xb8\xad", "\xe6\x96\x87",   /* 15-19: café 中 文 */
    "un", "##aff", "##able", "i", "##\xcc\x87",               /* 20-24: ##U+0307 */
    "i\xcc\x87", "x", "##x", "[", "mask",                     /* 25-29: i U+0307 */
    "]", "ab", "##ab", "##a", "Hello",                        /* 30-34 */
    "##b", "c", "\xcf\x83", "##\xcf\x83", "e",                  /* 35-39: σ ##σ */
    "##e",                                                    /* 40 */
};
#define NV (int)(sizeof vocab / sizeof vocab[0])

static char root[64];
static int dirs;

/* A model folder with the given vocab.txt text and tokenizer_config.json
 * (NULL: none); returns its path (static storage, one at a time). */
static const char *model_dir(const char *vocab_text, const char *config)
{
    static char dir[128];
    snprintf(dir, sizeof dir, "%s/m%d", root, dirs++);
    char path[256];
    if (mkdir(dir, 0700) != 0)
        return NULL;
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    if (vocab_text) {
        FILE *f = fopen(path, "wb");
        fputs(vocab_text, f);
        fclose(f);
    }
    if (config) {
        snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
        FILE *f = fopen(path, "wb");
        fputs(config, f);
        fclose(f);
    }
    return dir;
}

static char *vocab_text(const char *eol, int final_eol)
{
    static char buf[4096];
    buf[0] = 0;
    for (int i = 0; i < NV; i++) {
        strcat(buf, vocab[i]);
        if (i + 1 < NV || final_eol)
            strcat(buf, eol);
    }
    return buf;
}

static int load(Tokenizer *t, const char *config)
{
    MnError e;
    if (tokenizer_load(t, model_dir(vocab_text("\n", 1), config), &e) < 0) {
        diag("load: %s", e.msg);
        return -1;
    }
    return 0;
}

/* The pieces of text equal the n ids that follow. */
static int pieces_are(const Tokenizer *t, const char *text, int n, ...)
{
    TokenSeq s = { 0 };
    MnError e;
    int same = tokenizer_pieces(t, text, 0, &s, &e) == 0 && s.n == n;
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        int id = va_arg(ap, int);
        if (same && s.ids[i] != id)
            same = 0;
    }
    va_end(ap);
    if (!same) {
        char got[512] = "";
        for (int i = 0; i < s.n && strlen(got) < 480; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), " %d", s.ids[i]);
        diag("\"%s\" gave%s", text, got);
    }
    token_seq_free(&s);
    return same;
}

static void test_vocab(void)
{
    Tokenizer t;
    if (!ok(load(&t, NULL) == 0, "a vocabulary without tokenizer_config.json loads"))
        return;
    ok(t.vocab_size == NV, "vocab_size is the line count (%d)", t.vocab_size);
    ok(t.pad == 0 && t.unk == 1 && t.cls == 2 && t.sep == 3 && t.mask == 4,
       "special ids come from the vocabulary");
    ok(tokenizer_id(&t, "##able") == 22 && tokenizer_id(&t, "nope") == -1,
       "tokenizer_id looks tokens up");
    char buf[16];
    ok(strcmp(tokenizer_token(&t, 22, buf), "##able") == 0 &&
       strcmp(tokenizer_token(&t, NV, buf), "[?]") == 0, "tokenizer_token names ids");
    tokenizer_free(&t);

    MnError e;
    Tokenizer c;
    int rc = tokenizer_load(&c, model_dir(vocab_text("\r\n", 0), NULL), &e);
    ok(rc == 0 && c.vocab_size == NV && tokenizer_id(&c, "hello") == 5 &&
       tokenizer_id(&c, "##e") == NV - 1,
       "CRLF line ends and no final newline: same ids");
    if (rc == 0)
        tokenizer_free(&c);

    /* as transformers' load_vocab reads lines: a lone CR ends one too, and
     * CR CR LF is a line and an empty one, which takes an id */
    rc = tokenizer_load(&c, model_dir("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\rworld\r\r\nx\n", NULL), &e);
    ok(rc == 0 && c.vocab_size == 8 && tokenizer_id(&c, "hello") == 4 &&
           tokenizer_id(&c, "world") == 5 && tokenizer_id(&c, "x") == 7,
       "CR alone ends a vocab line, CR CR LF adds an empty token: ids as transformers gives them");
    if (rc == 0)
        tokenizer_free(&c);
    rc = tokenizer_load(&c, model_dir("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nx\nhello\n", NULL), &e);
    ok(rc == 0 && tokenizer_id(&c, "hello") == 6 && c.mask == c.unk,
       "a token on two lines keeps the later id; no [MASK] is allowed");
    if (rc == 0) {
        ok(pieces_are(&c, "hello", 1, 6), "the later id is the one produced");
        tokenizer_free(&c);
    }
}

static void test_errors(void)
{
    Tokenizer t;
    MnError e;
    const char *dir = model_dir(NULL, NULL);
    ok(tokenizer_load(&t, dir, &e) < 0 && strstr(e.msg, "vocab.txt") &&
       strstr(e.msg, dir), "a missing vocab.txt is an error naming it: %s", e.msg);
    ok(tokenizer_load(&t, model_dir("[PAD]\n[CLS]\n[SEP]\nhello\n", NULL), &e) < 0 &&
       strstr(e.msg, "vocab.txt") && strstr(e.msg, "[UNK]"),
       "a vocabulary without [UNK] is refused: %s", e.msg);
    ok(tokenizer_load(&t, model_dir("[PAD]\n[UNK]\n[CLS]\nhello\n", NULL), &e) < 0 &&
       strstr(e.msg, "[SEP]"), "nor without [SEP]: %s", e.msg);
    ok(tokenizer_load(&t, model_dir("", NULL), &e) < 0 && strstr(e.msg, "empty"),
       "an empty vocab.txt is refused: %s", e.msg);
    /* predict writes tokens into JSON, which cannot hold such a one */
    ok(tokenizer_load(&t, model_dir("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\ncaf\xe9\n", NULL),
                      &e) < 0 && strstr(e.msg, "vocab.txt:6: not valid UTF-8 (byte 0xE9 at column 4)"),
       "a token that is not UTF-8 is refused with its line: %s", e.msg);
    ok(tokenizer_load(&t, model_dir(vocab_text("\n", 1), "{\n  \"do_lower_case\": true,\n  oops\n}\n"),
                      &e) < 0 && strstr(e.msg, "tokenizer_config.json:3:"),
       "malformed tokenizer_config.json: file and line: %s", e.msg);
    ok(tokenizer_load(&t, model_dir(vocab_text("\n", 1), "{\"do_lower_case\": \"yes\"}"), &e) < 0 &&
       strstr(e.msg, "do_lower_case"), "a key of the wrong type is named: %s", e.msg);
    ok(tokenizer_load(&t, model_dir(vocab_text("\n", 1), "[1, 2]"), &e) < 0 &&
       strstr(e.msg, "object"), "a config that is no object is refused: %s", e.msg);
}

static void test_lowercase(void)
{
    Tokenizer t;
    if (load(&t, "{\"do_lower_case\": true, \"model_max_length\": 512}") < 0)
        return;
    ok(pieces_are(&t, "hello world", 2, 5, 6), "words");
    ok(pieces_are(&t, "Hello WORLD", 2, 5, 6), "lowercased");
    ok(pieces_are(&t, "  hello\t\n world  ", 2, 5, 6), "runs of white space");
    ok(pieces_are(&t, "", 0) && pieces_are(&t, "   ", 0), "nothing gives no tokens");
    ok(pieces_are(&t, "wow!!!", 4, 7, 8, 8, 8), "each punctuation mark is a word: wow!!!");
    ok(pieces_are(&t, "$5.00", 4, 9, 10, 11, 12), "$5.00: $ is punctuation here");
    ok(pieces_are(&t, "a--b", 4, 13, 14, 14, 15), "a--b");
    ok(pieces_are(&t, "Caf\xc3\xa9", 1, 16), "accents stripped with lowercase: Café -> cafe");
    ok(pieces_are(&t, "CAFE\xcc\x81", 1, 16), "a combining accent is stripped too");
    ok(pieces_are(&t, "\xe4\xb8\xad\xe6\x96\x87", 2, 18, 19), "CJK ideographs apart: 中文");
    ok(pieces_are(&t, "a\xe4\xb8\xad" "b", 3, 13, 18, 15), "an ideograph splits a word: a中b");
    ok(pieces_are(&t, "a\xe2\x80\x8b" "b", 1, 31), "U+200B (Cf) is dropped: a​b -> ab");
    ok(pieces_are(&t, "a\x07" "b", 1, 31), "U+0007 (Cc) is dropped");
    ok(pieces_are(&t, "a\x0b" "b", 1, 31), "\\v is a control character, dropped, not a space");
    ok(pieces_are(&t, "a\xc2\x85" "b", 1, 31), "U+0085 too");
    ok(pieces_are(&t, "a\xee\x80\x80" "b", 1, 31), "private use U+E000 (Co) is dropped");
    ok(pieces_are(&t, "a\xcd\xb8" "b", 1, 1), "unassigned U+0378 (Cn) stays: [UNK]");
    ok(pieces_are(&t, "a\xef\xbf\xbd" "b", 1, 31), "U+FFFD is dropped");
    ok(pieces_are(&t, "a\xc3" "b", 1, 31), "a stray byte reads as U+FFFD, dropped");
    ok(pieces_are(&t, "a\xc2\xa0" "b", 2, 13, 15), "U+00A0 is white space");
    ok(pieces_are(&t, "a\xe2\x80\xa8" "b", 2, 13, 15), "U+2028 is white space");
    ok(pieces_are(&t, "a\xe3\x80\x80" "b\xe2\x80\x83" "c", 3, 13, 15, 36), "U+3000, U+2003 are white space");
    ok(pieces_are(&t, "x\xce\xa3", 2, 26, 38) && pieces_are(&t, "\xce\xa3", 1, 37),
       "Σ lowercases to σ, at the end of a word too (no final-sigma rule)");

    char word[128];
    memset(word, 'x', 100);
    word[100] = 0;
    TokenSeq s = { 0 };
    MnError e;
    int good = tokenizer_pieces(&t, word, 0, &s, &e) == 0 && s.n == 100 && s.ids[0] == 26;
    for (int i = 1; good && i < 100; i++)
        good = s.ids[i] == 27;
    ok(good, "a word of 100 characters is cut: x ##x...");
    token_seq_free(&s);
    strcat(word, "x");
    ok(pieces_are(&t, word, 1, 1), "a word of 101 characters is [UNK]");
    char accents[256] = "";
    for (int i = 0; i < 100; i++)
        strcat(accents, "\xc3\xa9");    /* é: 2 bytes, 1 character */
    s = (TokenSeq){ 0 };
    ok(tokenizer_pieces(&t, accents, 0, &s, &e) == 0 && s.n == 100 && s.ids[0] == 39 &&
       s.ids[99] == 40, "the limit counts characters, not bytes: 100 é -> e ##e...");
    token_seq_free(&s);
    strcat(accents, "\xc3\xa9");
    ok(pieces_are(&t, accents, 1, 1), "101 é -> [UNK]");

    ok(pieces_are(&t, "unaffable", 3, 20, 21, 22), "unaffable -> un ##aff ##able");
    ok(pieces_are(&t, "abababab", 4, 31, 32, 32, 32), "longest match first: ab ##ab ##ab ##ab");
    ok(pieces_are(&t, "ababa", 3, 31, 32, 33), "ababa -> ab ##ab ##a");
    ok(pieces_are(&t, "hello abqab world", 3, 5, 1, 6),
       "a word with an unmatched middle is one [UNK]");

    ok(pieces_are(&t, "hello[MASK]world", 3, 5, 4, 6), "[MASK] inside text is the token");
    ok(pieces_are(&t, "[mask]", 3, 28, 29, 30), "[mask] is not special: [ mask ]");
    ok(pieces_are(&t, "[Mask]", 3, 28, 29, 30), "nor [Mask]");
    ok(pieces_are(&t, "[[MASK]]", 3, 28, 4, 30), "[[MASK]]");
    ok(pieces_are(&t, "[MASK", 2, 28, 29), "[MASK without ]");
    ok(pieces_are(&t, "[CLS]x[SEP][PAD][UNK]", 5, 2, 26, 3, 0, 1), "every special token");
    ok(pieces_are(&t, "\xc4\xb0", 1, 23), "İ with strip_accents (default): i");

    char *n = wordpiece_normalize(t.wp, "Cr\xc3\xa8me \xe4\xb8\xad\x01");
    ok(n && strcmp(n, "creme  \xe4\xb8\xad ") == 0, "normalize: \"Crème 中\\x01\" -> \"creme  中 \"");
    free(n);
    /* canonical order before the Mn marks go: U+302E (Mc, class 224) after
     * U+1B44 (Mc, class 9), U+0301 (Mn, 230) dropped; in a run of 6000
     * marks too (sorted by counting: crafted runs stay linear) */
    n = wordpiece_normalize(t.wp, "a\xe3\x80\xae\xcc\x81\xe1\xad\x84");
    ok(n && strcmp(n, "a\xe1\xad\x84\xe3\x80\xae") == 0, "marks in canonical order: a U+1B44 U+302E");
    free(n);
    char *run = malloc(1 + 2000 * 8 + 1), *want = malloc(1 + 4000 * 3 + 1);
    if (run && want) {
        char *p = run, *q = want;
        *p++ = 'a', *q++ = 'a';
        for (int i = 0; i < 2000; i++)
            memcpy(p, "\xe3\x80\xae\xcc\x81\xe1\xad\x84", 8), p += 8;
        *p = 0;
        for (int i = 0; i < 2000; i++)
            memcpy(q, "\xe1\xad\x84", 3), q += 3;
        for (int i = 0; i < 2000; i++)
            memcpy(q, "\xe3\x80\xae", 3), q += 3;
        *q = 0;
        n = wordpiece_normalize(t.wp, run);
        ok(n && strcmp(n, want) == 0, "a run of 6000 marks: each class together, in order");
        free(n);
    }
    free(run);
    free(want);
    tokenizer_free(&t);
}

static void test_options(void)
{
    Tokenizer t;
    if (load(&t, "{\"do_lower_case\": false}") == 0) {
        ok(pieces_are(&t, "Hello hello", 2, 34, 5), "do_lower_case false keeps case");
        ok(pieces_are(&t, "caf\xc3\xa9", 1, 17), "and keeps accents (strip_accents absent)");
        ok(pieces_are(&t, "\xc4\xb0", 1, 1), "İ stays İ: [UNK]");
        tokenizer_free(&t);
    }
    if (load(&t, "{\"do_lower_case\": false, \"strip_accents\": true}") == 0) {
        ok(pieces_are(&t, "caf\xc3\xa9 Hello", 2, 16, 34), "strip_accents true alone: café -> cafe, Hello kept");
        tokenizer_free(&t);
    }
    if (load(&t, "{\"do_lower_case\": true, \"strip_accents\": false}") == 0) {
        ok(pieces_are(&t, "CAF\xc3\x89", 1, 17), "lowercase without stripping: CAFÉ -> café");
        ok(pieces_are(&t, "\xc4\xb0", 1, 25), "İ lowercases to i + U+0307");
        ok(pieces_are(&t, "\xc4\xb0x", 2, 25, 27), "İx -> i̇ ##x");
        ok(pieces_are(&t, "cafe\xcc\x81", 1, 1), "a decomposed é is not composed: [UNK]");
        tokenizer_free(&t);
    }
    if (load(&t, "{\"strip_accents\": null, \"tokenize_chinese_chars\": false}") == 0) {
        ok(pieces_are(&t, "Caf\xc3\xa9", 1, 16), "strip_accents null follows lowercase");
        ok(pieces_are(&t, "a\xe4\xb8\xad" "b", 1, 1), "tokenize_chinese_chars false: a中b is one word");
        tokenizer_free(&t);
    }
}

/* tokenizer_encode(a, b, max_len) gives n ids then n types. */
static int encode_is(const Tokenizer *t, const char *a, const char *b, int max_len, int n, ...)
{
    TokenSeq s = { 0 };
    MnError e;
    int same = tokenizer_encode(t, a, b, max_len, &s, &e) == 0 && s.n == n;
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < 2 * n; i++) {
        int v = va_arg(ap, int);
        if (same && (i < n ? s.ids[i] : s.types[i - n]) != v)
            same = 0;
    }
    va_end(ap);
    if (!same) {
        char got[512] = "";
        for (int i = 0; i < s.n && strlen(got) < 480; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), " %d/%d", s.ids[i], s.types[i]);
        diag("(%s | %s, %d) gave%s", a, b ? b : "-", max_len, got);
    }
    token_seq_free(&s);
    return same;
}

#define X 26
static void test_pairs(void)
{
    Tokenizer t;
    if (load(&t, NULL) < 0)
        return;
    ok(encode_is(&t, "hello", NULL, 0, 3, 2, 5, 3, 0, 0, 0), "[CLS] a [SEP], types 0");
    ok(encode_is(&t, "hello", "world", 0, 5, 2, 5, 3, 6, 3, 0, 0, 0, 1, 1),
       "[CLS] a [SEP] b [SEP], types 0 0 0 1 1");
    ok(encode_is(&t, "x x x x x", NULL, 4, 4, 2, X, X, 3, 0, 0, 0, 0), "a single text is cut to max_len");
    ok(encode_is(&t, "x x x x x", "x x x", 8, 8, 2, X, X, X, 3, X, X, 3, 0, 0, 0, 0, 0, 1, 1, 1),
       "5+3 in room 5: both cut, the longer keeps 3, the shorter 2");
    ok(encode_is(&t, "x x x x x x", "x", 6, 6, 2, X, X, 3, X, 3, 0, 0, 0, 0, 1, 1),
       "6+1 in room 3: only the longer is cut");
    ok(encode_is(&t, "x", "x x x x x x", 6, 6, 2, X, 3, X, X, 3, 0, 0, 0, 1, 1, 1),
       "1+6 in room 3: the second is the longer");
    ok(encode_is(&t, "x x x x", "x x x x", 8, 8, 2, X, X, 3, X, X, X, 3, 0, 0, 0, 0, 1, 1, 1, 1),
       "a tie in an odd room: the second gets the odd token");
    ok(encode_is(&t, "x x x x", "x x x x", 7, 7, 2, X, X, 3, X, X, 3, 0, 0, 0, 0, 1, 1, 1),
       "a tie in an even room: halves");
    ok(encode_is(&t, "x x x x x x x x x x", "x x x x x x x x x", 6, 6,
                 2, X, 3, X, X, 3, 0, 0, 0, 1, 1, 1),
       "10+9 with max_len 6: both count as 6, a tie: the second gets the odd token");
    ok(encode_is(&t, "abababab abababab", "x x x x x x x", 4, 4, 2, 3, X, 3, 0, 0, 1, 1),
       "8+7 with max_len 4: lengths after the word reaching 4 (4+4), a tie");
    ok(encode_is(&t, "x x x x x x x x x", "abababab", 6, 6, 2, X, X, 3, 31, 3, 0, 0, 0, 0, 1, 1),
       "9+4 with max_len 6: 6 against 4, the first is the longer");
    /* as the tokenizers library counts: [MASK] counts, but only the word
     * after it ends the first text early (5 against 4: the first is cut) */
    ok(encode_is(&t, "a a a [MASK] a", "b b b b", 4, 4, 2, 13, 3, 3, 0, 0, 0, 1),
       "a literal [MASK] where the count reaches max_len does not end the text early");
    ok(encode_is(&t, "", "", 3, 3, 2, 3, 3, 0, 0, 1), "two empty texts");
    ok(encode_is(&t, "x x", "x x", 3, 3, 2, 3, 3, 0, 0, 1), "max_len 3 leaves only the special tokens");
    TokenSeq s = { 0 };
    MnError e;
    ok(tokenizer_encode(&t, "x", "x", 2, &s, &e) < 0, "max_len 2 cannot hold a pair: %s", e.msg);
    token_seq_free(&s);
    tokenizer_free(&t);

}

static void test_speed(void)
{
    Tokenizer t;
    if (load(&t, NULL) < 0)
        return;
    TokenSeq s = { 0 };
    MnError e;
    int fails = 0;
    for (int i = 0; i < 10000; i++)
        fails += tokenizer_encode(&t, "Hello, world! The caf\xc3\xa9 was unaffable; wow!!! $5.00 a--b",
                                  "x x ababab [MASK] \xe4\xb8\xad\xe6\x96\x87", 0, &s, &e) < 0;
    ok(fails == 0 && s.n > 20, "10000 pairs tokenize (%d tokens each)", s.n);
    token_seq_free(&s);
    tokenizer_free(&t);
}

int main(void)
{
    snprintf(root, sizeof root, "%s/mneme-wp.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root)) {
        perror(root);
        return 1;
    }
    test_vocab();
    test_errors();
    test_lowercase();
    test_options();
    test_pairs();
    test_speed();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        diag("could not remove %s", root);
    return tap_done();
}
