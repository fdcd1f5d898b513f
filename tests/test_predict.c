/* predict's input path (predict_line): what a line of stdin becomes
 * before it reaches the model. Its messages go to stderr. */
#include <string.h>

#include "data.h"
#include "predict.h"
#include "tap.h"
#include "tokenizer.h"

int main(void)
{
    Tokenizer t;
    Batch b;
    TokenSeq seq = { 0 };
    MnError e;
    char line[64];
    tokenizer_bytes(&t);
    if (batch_alloc(&b, 1, 16, &e) < 0) {
        printf("Bail out! %s\n", e.msg);
        return 1;
    }

    strcpy(line, "hi");
    ok(predict_line(&t, TOKENIZER_VOCAB, 16, 0, 0, line, 1, &seq, &b) == 4 && b.T == 4 &&
       b.ids[0] == TOK_CLS && b.ids[1] == TOK_BYTE0 + 'h' && b.ids[3] == TOK_SEP,
       "a text becomes [CLS] bytes [SEP]");
    /* the fuzzer's first find: a checkpoint whose embedding table is
     * smaller than the tokenizer's vocabulary (fuzz corpus
     * predict/text-small-vocab; a read past the parameters before) */
    ok(predict_line(&t, 5, 16, 0, 0, line, 2, &seq, &b) == -1,
       "a text whose ids the model's 5-row vocabulary lacks is refused");
    ok(predict_line(&t, TOK_BYTE0 + 'i', 16, 0, 0, line, 3, &seq, &b) == -1,
       "one id past the vocabulary is refused");
    ok(predict_line(&t, TOK_BYTE0 + 'i' + 1, 16, 0, 0, line, 4, &seq, &b) == 4,
       "the last id of the vocabulary is taken");

    strcpy(line, "ab\tc");
    ok(predict_line(&t, TOKENIZER_VOCAB, 16, 0, 1, line, 5, &seq, &b) == 6 && b.types[0] == 0 &&
       b.types[5] == 1 && strcmp(line, "ab\tc") == 0,
       "a pair gets types 0 then 1, and the line is left as it was");
    strcpy(line, "a\tb\tc");
    ok(predict_line(&t, TOKENIZER_VOCAB, 16, 0, 1, line, 6, &seq, &b) == -1,
       "a pair line with two tabs is refused");

    strcpy(line, " 2 7\t3 ");
    ok(predict_line(&t, 8, 16, 1, 0, line, 7, &seq, &b) == 3 && b.ids[1] == 7,
       "ids are taken as given");
    strcpy(line, "2 8 3");
    ok(predict_line(&t, 8, 16, 1, 0, line, 8, &seq, &b) == -1, "an id past the vocabulary is refused");
    strcpy(line, "2 99999999999999999999 3");
    ok(predict_line(&t, 8, 16, 1, 0, line, 9, &seq, &b) == -1, "an id that overflows is refused");

    token_seq_free(&seq);
    batch_free(&b);
    return tap_done();
}
