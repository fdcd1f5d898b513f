#include "wordpiece.h"

#include <stdlib.h>

/* Placeholder until the WordPiece pipeline lands: every call fails. */
struct WordPiece { int vocab; };

int wordpiece_load(WordPiece **wp, const char *dir, MnError *e)
{
    *wp = NULL;
    return mn_fail(e, "%s: WordPiece is not implemented yet", dir);
}

void wordpiece_free(WordPiece *wp) { free(wp); }
int wordpiece_vocab_size(const WordPiece *wp) { return wp ? wp->vocab : 0; }
int wordpiece_special(const WordPiece *wp, const char *token) { return 0; }
int wordpiece_pieces(const WordPiece *wp, const char *text, int type, TokenSeq *s, MnError *e)
{
    return mn_fail(e, "WordPiece is not implemented yet");
}
const char *wordpiece_token(const WordPiece *wp, int id) { return "[?]"; }
int wordpiece_id(const WordPiece *wp, const char *token) { return -1; }
