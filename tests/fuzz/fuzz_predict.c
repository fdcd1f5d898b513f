/* predict's input path: one line of stdin as token ids (--ids) or a text
 * (a pair with --pair) into a model's batch. Byte 0 picks the mode and
 * tokenizer, byte 1 max_len, byte 2 the model's vocabulary size; the rest
 * up to a newline is the line. An accepted line must fit max_len with
 * ids below the vocabulary, and be left as it was. */
#include "predict.h"
#include "tokenizers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int loaded;
    if (!loaded) {
        fuzz_tokenizers_load();
        loaded = 1;
    }
    if (size < 3)
        return 0;
    int opt = data[0], max_len = 2 + data[1] % 64, vocab = 5 + data[2] * 2;
    const Tokenizer *tok = &fuzz_tokenizers[opt & 4 ? 1 + ((opt >> 4) & 7) : 0];
    MnError e;
    Batch b;
    TokenSeq seq = { 0 };
    char *line = fuzz_string(data + 3, size - 3), *copy = fuzz_string(data + 3, size - 3);
    if (line && copy && batch_alloc(&b, 1, max_len, &e) == 0) {
        line[strcspn(line, "\n")] = 0;
        copy[strcspn(copy, "\n")] = 0;
        int n = predict_line(tok, vocab, max_len, opt & 1, opt & 2, line, 1, &seq, &b);
        if (strcmp(line, copy) != 0)
            abort();
        if (n >= 0) {
            if (n < 1 || n > max_len || b.T != n || b.len[0] != n)
                abort();
            for (int i = 0; i < n; i++)
                if (b.ids[i] < 0 || b.ids[i] >= vocab || (b.types[i] != 0 && b.types[i] != 1))
                    abort();
        }
        batch_free(&b);
    }
    token_seq_free(&seq);
    free(line);
    free(copy);
    return 0;
}
