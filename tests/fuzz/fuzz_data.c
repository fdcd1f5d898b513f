/* The TSV and JSONL readers. The first byte picks the format and how
 * labels are taken, the second max_len; the rest is the file. What is
 * accepted must be in range: lengths, token ids and labels. */
#include "data.h"
#include "fuzz_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const DataKind kinds[4] = { DATA_AUTO, DATA_TSV, DATA_JSONL, DATA_AUTO };
    static const LabelMode modes[4] = { LABELS_KNOWN, LABELS_GROW, LABELS_FIXED, LABELS_GROW };
    char path[600];
    MnError e;
    Tokenizer t;
    Dataset d;
    if (size < 2)
        return 0;
    int opt = data[0], max_len = data[1];
    DataFormat fmt = { kinds[opt & 3], opt & 4 ? 3 : 2, opt & 64 ? 1 : 0, NULL, opt & 32 ? "text_b" : NULL, NULL };
    LabelSet *labels = calloc(1, sizeof *labels);
    if (!labels)
        return 0;
    if (opt & 64) {
        labels->n_labels = 2;
        strcpy(labels->names[0], "positive");
        strcpy(labels->names[1], "1");
    }
    fuzz_write(opt & 128 ? "data.jsonl" : "data.tsv", data + 2, size - 2, path, sizeof path);
    tokenizer_bytes(&t);
    if (dataset_load(&d, &t, &fmt, path, max_len, labels, modes[(opt >> 3) & 3], &e) == 0) {
        if (d.n < 1 || d.max_len != max_len)
            abort();
        for (int i = 0; i < d.n; i++) {
            if (d.len[i] < 2 || d.len[i] > max_len || d.label[i] < 0 ||
                d.label[i] >= labels->n_labels)
                abort();
            for (int k = 0; k < d.len[i]; k++)
                if (d.ids[i * max_len + k] < 0 || d.ids[i * max_len + k] >= t.vocab_size)
                    abort();
        }
        dataset_free(&d);
    }
    free(labels);
    return 0;
}
