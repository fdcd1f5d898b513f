/* The tokenizers a harness picks from: the byte-level one and WordPiece
 * over a small vocabulary (special tokens, words, "##" pieces, accented,
 * CJK and punctuation entries) under each of its eight option sets. */
#ifndef MNEME_FUZZ_TOKENIZERS_H
#define MNEME_FUZZ_TOKENIZERS_H

#include "fuzz_files.h"
#include "tokenizer.h"

static const char fuzz_vocab[] =
    "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\nsoup\nwas\ngreat\n!\n?\n.\n,\n'\n"
    "un\n##aff\n##able\n##ing\n##s\nplay\nrun\n##n\nhello\nworld\ncafe\ncafé\n"
    "naïve\n中\n文\n日本\nß\nЖ\n##ж\na\nb\nc\n##a\n##b\n##c\n$\n€\n[unused0]\n";

/* tokenizers[0]: bytes; [1 + flags]: WordPiece with do_lower_case (1),
 * strip_accents (2) and tokenize_chinese_chars (4) set by flags. */
static Tokenizer fuzz_tokenizers[9];

static void fuzz_tokenizers_load(void)
{
    char path[600], dir[600], conf[200];
    MnError e;
    tokenizer_bytes(&fuzz_tokenizers[0]);
    for (int flags = 0; flags < 8; flags++) {
        snprintf(dir, sizeof dir, "wp%d", flags);
        snprintf(path, sizeof path, "%s/%s", fuzz_dir(), dir);
        if (mkdir(path, 0700) != 0) {
            perror(path);
            abort();
        }
        snprintf(dir, sizeof dir, "wp%d/vocab.txt", flags);
        fuzz_write(dir, fuzz_vocab, sizeof fuzz_vocab - 1, path, sizeof path);
        snprintf(conf, sizeof conf,
                 "{\"do_lower_case\": %s, \"strip_accents\": %s, \"tokenize_chinese_chars\": %s}",
                 flags & 1 ? "true" : "false", flags & 2 ? "true" : "false",
                 flags & 4 ? "true" : "false");
        snprintf(dir, sizeof dir, "wp%d/tokenizer_config.json", flags);
        fuzz_write(dir, conf, strlen(conf), path, sizeof path);
        snprintf(path, sizeof path, "%s/wp%d", fuzz_dir(), flags);
        if (tokenizer_load(&fuzz_tokenizers[1 + flags], path, &e) < 0) {
            fprintf(stderr, "fuzz: the built-in vocabulary does not load: %s\n", e.msg);
            abort();
        }
    }
}

#endif
