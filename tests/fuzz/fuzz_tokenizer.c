/* Both tokenizers on any text, and WordPiece on any vocabulary. Byte 0
 * picks the tokenizer (bit 3: a vocabulary and tokenizer_config.json in
 * the input, "VOCAB\0CONFIG\0TEXT"), byte 1 max_len; the text is a, or
 * a<TAB>b as a pair. Every sequence must fit max_len, start with [CLS],
 * hold only ids of the vocabulary and types 0 or 1. */
#include "tokenizers.h"
#include "wordpiece.h"

static void check(const Tokenizer *t, const char *a, const char *b, int max_len)
{
    MnError e;
    TokenSeq s = { 0 };
    char buf[16];
    if (tokenizer_encode(t, a, b, max_len, &s, &e) == 0) {
        if ((max_len > 0 && s.n > max_len) || s.n < 2 || s.ids[0] != t->cls)
            abort();
        for (int i = 0; i < s.n; i++) {
            if (s.ids[i] < 0 || s.ids[i] >= t->vocab_size || (s.types[i] != 0 && s.types[i] != 1) ||
                !tokenizer_token(t, s.ids[i], buf))
                abort();
        }
    } else if (max_len <= 0 || max_len >= 3 + (b != NULL)) {
        fprintf(stderr, "encode failed with room for the special tokens: %s\n", e.msg);
        abort();
    }
    s.n = 0;
    tokenizer_pieces(t, a, 0, &s, &e);
    if (t->wp)
        free(wordpiece_normalize(t->wp, a));
    token_seq_free(&s);
}

/* A vocabulary from the input: loading must refuse or work. */
static void custom(const char *rest, size_t n, int max_len)
{
    const char *vocab = rest, *conf = memchr(rest, 0, n);
    if (!conf)
        return;
    conf++;
    const char *text = memchr(conf, 0, n - (size_t)(conf - rest));
    if (!text)
        return;
    text++;
    char dir[600], path[600];
    MnError e;
    Tokenizer t;
    snprintf(dir, sizeof dir, "%s/custom", fuzz_dir());
    mkdir(dir, 0700);
    fuzz_write("custom/vocab.txt", vocab, strlen(vocab), path, sizeof path);
    fuzz_write("custom/tokenizer_config.json", conf, strlen(conf), path, sizeof path);
    if (tokenizer_load(&t, dir, &e) == 0) {
        check(&t, text, NULL, max_len);
        tokenizer_free(&t);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int loaded;
    if (!loaded) {
        fuzz_tokenizers_load();
        loaded = 1;
    }
    if (size < 2)
        return 0;
    int opt = data[0], max_len = data[1] == 255 ? 0 : data[1];
    char *text = fuzz_string(data + 2, size - 2);
    if (!text)
        return 0;
    if (opt & 8)
        custom(text, size - 2, max_len);
    else {
        const Tokenizer *t = &fuzz_tokenizers[opt & 1 ? 1 + ((opt >> 4) & 7) : 0];
        char *tab = strchr(text, '\t');
        if (opt & 2 && tab) {
            *tab = 0;
            check(t, text, tab + 1, max_len);
        } else
            check(t, text, NULL, max_len);
    }
    free(text);
    return 0;
}
