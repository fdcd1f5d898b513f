/* WordPiece as Hugging Face's fast tokenizer runs it for BertTokenizerFast:
 *
 *   split out special tokens  [PAD] [UNK] [CLS] [SEP] [MASK], matched in the
 *                             raw text, case-sensitive, never normalised
 *   normalise (BertNormalizer)  clean text, CJK ideographs apart, strip
 *                             accents (NFD, drop Mn), lowercase
 *   pre-split (BertPreTokenizer)  on whitespace (dropped) and around each
 *                             punctuation character (kept as a word)
 *   model (WordPiece)         greedy longest match from the start of each
 *                             word, "##" before the pieces after the first;
 *                             a word with an unmatched position, or longer
 *                             than 100 characters, is one [UNK]
 *
 * Each stage is a function of its own below, in that order. Unicode
 * properties come from utf8proc; the only hand-written table is BERT's own
 * list of CJK ranges.
 *
 * Where the other BERT tokenizers differ from this one (the fast one is
 * what transformers uses by default, and what we match), as their sources
 * read:
 *
 * - Whitespace: transformers' Python BertTokenizer (BasicTokenizer) and
 *   Google's original tokenization.py take " ", \t, \n, \r and category Zs
 *   only, so U+2028 and U+2029 (Zl, Zp) stay inside a word, which then
 *   becomes [UNK]; the fast one splits there (Rust's char::is_whitespace).
 * - Control characters: the fast one drops Cc, Cf and Co (private use) but
 *   keeps unassigned code points (Cn), whose word becomes [UNK];
 *   transformers' Python drops every category C* (Cn too); Google's drops
 *   only Cc and Cf, so a private-use character makes its word [UNK].
 * - Case and accents: the Python ones lowercase first and strip accents
 *   after, with str.lower(), which turns a word-final Σ into ς; the fast
 *   one strips accents, then lowercases each character alone (Σ is always
 *   σ; İ U+0130 becomes "i" U+0307, whose dot stays when accents are not
 *   stripped).
 * - CJK ideographs: the Python ones space U+2B820..U+2CEAF apart; the fast
 *   one U+2B920..U+2CEAF only, so U+2B820..U+2B91F (in Extension E) is
 *   split by whitespace and punctuation like any letter.
 * - Word length: Google's WordpieceTokenizer allows 200 characters by
 *   default; transformers and the fast one 100.
 * - Special tokens: Google's knows none ("[MASK]" gives "[", "mask", "]").
 * - Pair truncation (longest_first): transformers' Python removes one token
 *   at a time from the longer text (from the second on a tie), so the first
 *   keeps an odd token; the fast one computes both cuts at once and gives it
 *   to the longer, the second on a tie (tokenizer.c, pair_budget).
 * - Unicode versions: the library's control, accent (Mn) and punctuation
 *   classes come from Unicode 8.0 tables (the unicode_categories crate), its
 *   lowercase from Rust's newer tables; here all come from utf8proc. About
 *   440 code points assigned since Unicode 8.0 as Cf or Mn (Arabic Quranic
 *   marks U+08D4..U+08E2, Egyptian format controls U+13430..) are dropped
 *   here and kept (as [UNK]) by the library, some 120 newer punctuation
 *   marks (U+2E43..) split a word here and not there, and case pairs new in
 *   Unicode 16 lowercase there and not here.
 */
#include "wordpiece.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "lines.h"

/* BertTokenizerFast's max_input_chars_per_word. */
#define MAX_WORD_CHARS 100

enum { SP_PAD, SP_UNK, SP_CLS, SP_SEP, SP_MASK, N_SPECIAL };
static const char *const special_text[N_SPECIAL] = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
};

struct WordPiece {
    char **tokens;             /* id -> text, one per line of vocab.txt */
    int n;
    int *slots;                /* open addressing: id + 1, 0 = empty */
    uint32_t mask;
    int special[N_SPECIAL];    /* ids, -1 when the vocabulary lacks one */
    int lowercase, strip_accents, chinese;
};

/* ---- vocabulary: a hash table of the lines of vocab.txt ---- */

static uint32_t hash_bytes(uint32_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;    /* FNV-1a */
    return h;
}

#define HASH_SEED 2166136261u

/* The id of prefix+s[0..n) ("##" before continuation pieces), or -1. */
static int vocab_find(const WordPiece *wp, const char *prefix, const char *s, size_t n)
{
    size_t np = strlen(prefix);
    uint32_t h = hash_bytes(hash_bytes(HASH_SEED, prefix, np), s, n);
    for (uint32_t i = h & wp->mask;; i = (i + 1) & wp->mask) {
        int id = wp->slots[i] - 1;
        if (id < 0)
            return -1;
        const char *t = wp->tokens[id];
        if (strncmp(t, prefix, np) == 0 && strlen(t + np) == n && memcmp(t + np, s, n) == 0)
            return id;
    }
}

/* A token seen twice keeps its last line's id, as both transformers'
 * load_vocab and the tokenizers library's WordPiece read a vocabulary into
 * a map: the earlier line's id is never produced. */
static void vocab_insert(WordPiece *wp, int id)
{
    const char *t = wp->tokens[id];
    uint32_t h = hash_bytes(HASH_SEED, t, strlen(t));
    for (uint32_t i = h & wp->mask;; i = (i + 1) & wp->mask) {
        int old = wp->slots[i] - 1;
        if (old < 0 || strcmp(wp->tokens[old], t) == 0) {
            wp->slots[i] = id + 1;
            return;
        }
    }
}

static int read_vocab(WordPiece *wp, const char *path, MnError *e)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return mn_fail(e, "%s: %s", path, strerror(errno));
    /* One token a line; the reader refuses what could not be a token
     * (invalid UTF-8 would be dropped from predict's JSON output) */
    LineReader lr;
    char *line;
    size_t len, room = 0;
    int rc = 0;
    line_reader_init(&lr, f, path);
    /* Lines as transformers' load_vocab reads them (Python's universal
     * newlines): "\r", "\r\n" and "\n" each end one, so "a\rb" is two
     * tokens and "x\r\r\n" is "x" and an empty one. */
    lr.keep_cr = 1;
    while (rc == 0 && (rc = line_reader_next(&lr, &line, &len, e)) > 0) {
        rc = 0;
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        for (char *tok = line, *cr; rc == 0 && tok; tok = cr ? cr + 1 : NULL) {
            if ((cr = strchr(tok, '\r')))
                *cr = '\0';
            if (wp->n == INT32_MAX / 4) {
                rc = mn_fail(e, "%s:%d: too many tokens", path, wp->n + 1);
                break;
            }
            if ((size_t)wp->n == room) {
                room = room ? room * 2 : 1024;
                char **tokens = realloc(wp->tokens, room * sizeof *tokens);
                if (!tokens) {
                    rc = mn_fail(e, "%s: out of memory", path);
                    break;
                }
                wp->tokens = tokens;
            }
            if (!(wp->tokens[wp->n] = strdup(tok))) {
                rc = mn_fail(e, "%s: out of memory", path);
                break;
            }
            wp->n++;
        }
    }
    line_reader_free(&lr);
    fclose(f);
    if (rc)
        return rc;
    if (wp->n == 0)
        return mn_fail(e, "%s: the vocabulary is empty", path);

    uint32_t size = 16;
    while (size < (uint32_t)wp->n * 2)
        size *= 2;
    if (!(wp->slots = calloc(size, sizeof *wp->slots)))
        return mn_fail(e, "%s: out of memory", path);
    wp->mask = size - 1;
    for (int id = 0; id < wp->n; id++)
        vocab_insert(wp, id);

    for (int k = 0; k < N_SPECIAL; k++)
        wp->special[k] = vocab_find(wp, "", special_text[k], strlen(special_text[k]));
    for (int k = 0; k < N_SPECIAL; k++)
        if (k != SP_MASK && wp->special[k] < 0)
            return mn_fail(e, "%s: the vocabulary has no %s token", path, special_text[k]);
    return 0;
}

/* ---- tokenizer_config.json ---- */

/* A boolean key: absent keeps *v, null gives `if_null`. */
static int config_bool(json_t *root, const char *key, int if_null, int *v,
                       const char *path, MnError *e)
{
    json_t *j = json_object_get(root, key);
    if (!j)
        return 0;
    if (json_is_null(j))
        *v = if_null;
    else if (json_is_boolean(j))
        *v = json_is_true(j);
    else
        return mn_fail(e, "%s: %s must be true, false or null", path, key);
    return 0;
}

/* Defaults as BertTokenizerFast's: do_lower_case true, strip_accents null
 * (strip when lowercasing), tokenize_chinese_chars true. */
static int read_config(WordPiece *wp, const char *path, MnError *e)
{
    wp->lowercase = 1;
    wp->chinese = 1;
    int strip = -1;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) {
            wp->strip_accents = wp->lowercase;
            return 0;
        }
        return mn_fail(e, "%s: %s", path, strerror(errno));
    }
    json_error_t je;
    json_t *root = json_loadf(f, 0, &je);
    fclose(f);
    if (!root)
        return mn_fail(e, "%s:%d: %s", path, je.line, je.text);
    int rc = 0;
    if (!json_is_object(root))
        rc = mn_fail(e, "%s: expected a JSON object", path);
    if (!rc)
        rc = config_bool(root, "do_lower_case", 1, &wp->lowercase, path, e);
    if (!rc)
        rc = config_bool(root, "strip_accents", -1, &strip, path, e);
    if (!rc)
        rc = config_bool(root, "tokenize_chinese_chars", 1, &wp->chinese, path, e);
    json_decref(root);
    wp->strip_accents = strip < 0 ? wp->lowercase : strip;
    return rc;
}

int wordpiece_load(WordPiece **out, const char *dir, MnError *e)
{
    *out = NULL;
    WordPiece *wp = calloc(1, sizeof *wp);
    if (!wp)
        return mn_fail(e, "out of memory");
    size_t n = strlen(dir) + 32;
    char *path = malloc(n);
    if (!path) {
        free(wp);
        return mn_fail(e, "out of memory");
    }
    snprintf(path, n, "%s/vocab.txt", dir);
    int rc = read_vocab(wp, path, e);
    if (!rc) {
        snprintf(path, n, "%s/tokenizer_config.json", dir);
        rc = read_config(wp, path, e);
    }
    free(path);
    if (rc) {
        wordpiece_free(wp);
        return -1;
    }
    *out = wp;
    return 0;
}

void wordpiece_free(WordPiece *wp)
{
    if (!wp)
        return;
    for (int i = 0; i < wp->n; i++)
        free(wp->tokens[i]);
    free(wp->tokens);
    free(wp->slots);
    free(wp);
}

int wordpiece_vocab_size(const WordPiece *wp) { return wp->n; }

int wordpiece_special(const WordPiece *wp, const char *token)
{
    int id = wordpiece_id(wp, token);
    return id >= 0 ? id : wp->special[SP_UNK];
}

const char *wordpiece_token(const WordPiece *wp, int id)
{
    return id >= 0 && id < wp->n ? wp->tokens[id] : "[?]";
}

int wordpiece_id(const WordPiece *wp, const char *token)
{
    return vocab_find(wp, "", token, strlen(token));
}

/* ---- code point buffers ---- */

typedef struct {
    int32_t *c;
    size_t n, cap;
} Cps;

static int cps_push(Cps *b, int32_t c)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        int32_t *p = realloc(b->c, cap * sizeof *p);
        if (!p)
            return -1;
        b->c = p;
        b->cap = cap;
    }
    b->c[b->n++] = c;
    return 0;
}

/* UTF-8 to code points; a byte that starts no valid character reads as
 * U+FFFD (which cleaning then drops), as a lossy decoder would. */
static int decode_utf8(const char *s, size_t len, Cps *out)
{
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &c);
        if (k <= 0) {
            c = 0xFFFD;
            k = 1;
        }
        if (cps_push(out, c) < 0)
            return -1;
        i += (size_t)k;
    }
    return 0;
}

static int category(int32_t c) { return utf8proc_category(c); }

/* Rust's char::is_whitespace (the Unicode White_Space property): the
 * separators Zs, Zl, Zp, and \t \n \v \f \r and U+0085. */
static int is_whitespace(int32_t c)
{
    if ((c >= 0x09 && c <= 0x0D) || c == 0x85)
        return 1;
    int k = category(c);
    return k == UTF8PROC_CATEGORY_ZS || k == UTF8PROC_CATEGORY_ZL || k == UTF8PROC_CATEGORY_ZP;
}

/* The library's is_control: categories Cc, Cf and Co ("other" in the
 * unicode_categories crate, which leaves out Cn and Cs), except \t \n \r,
 * which are whitespace. */
static int is_control(int32_t c)
{
    if (c == '\t' || c == '\n' || c == '\r')
        return 0;
    int k = category(c);
    return k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CO;
}

/* BERT's definition of a CJK ideograph (is_chinese_char in the library's
 * normalizers/bert.rs): these blocks exactly, not Hangul, kana or the
 * other CJK symbol blocks. Part of the model's definition, not Unicode
 * data, hence a table. */
static int is_chinese(int32_t c)
{
    static const int32_t ranges[][2] = {
        { 0x4E00, 0x9FFF }, { 0x3400, 0x4DBF }, { 0x20000, 0x2A6DF },
        { 0x2A700, 0x2B73F }, { 0x2B740, 0x2B81F }, { 0x2B920, 0x2CEAF },
        { 0xF900, 0xFAFF }, { 0x2F800, 0x2FA1F },
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (c >= ranges[i][0] && c <= ranges[i][1])
            return 1;
    return 0;
}

/* ASCII punctuation or a Unicode punctuation category (Pc Pd Ps Pe Pi Pf
 * Po): `$`, `+`, `^`, `` ` `` are symbols to Unicode but punctuation here. */
static int is_punctuation(int32_t c)
{
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
        (c >= 123 && c <= 126))
        return 1;
    int k = category(c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

/* ---- normalisation (BertNormalizer), one stage a function ---- */

/* Drop U+0000, U+FFFD and control characters; whitespace becomes ' '. */
static void clean_text(Cps *b)
{
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++) {
        int32_t c = b->c[i];
        if (c == 0 || c == 0xFFFD || is_control(c))
            continue;
        b->c[k++] = is_whitespace(c) ? ' ' : c;
    }
    b->n = k;
}

/* ' ' before and after each CJK ideograph. */
static int space_chinese(const Cps *in, Cps *out)
{
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        int32_t c = in->c[i];
        int cjk = is_chinese(c);
        if ((cjk && cps_push(out, ' ') < 0) || cps_push(out, c) < 0 ||
            (cjk && cps_push(out, ' ') < 0))
            return -1;
    }
    return 0;
}

static int combining_class(int32_t c) { return utf8proc_get_property(c)->combining_class; }

/* Stable sort of marks c[0..n) by combining class (1..254); by counting
 * past a few, as a crafted text may hold one run of a million marks. */
static int sort_marks(int32_t *c, size_t n)
{
    /* the usual run, two or three marks: in place, no allocation */
    if (n <= 16) {
        for (size_t i = 1; i < n; i++) {
            int32_t x = c[i];
            int cc = combining_class(x);
            size_t j = i;
            for (; j > 0 && combining_class(c[j - 1]) > cc; j--)
                c[j] = c[j - 1];
            c[j] = x;
        }
        return 0;
    }
    size_t start[256] = { 0 };
    int32_t *tmp = malloc(n * sizeof *tmp);
    if (!tmp)
        return -1;
    for (size_t i = 0; i < n; i++)
        start[combining_class(c[i]) + 1]++;   /* classes run 1..254 */
    for (int k = 1; k < 256; k++)
        start[k] += start[k - 1];
    for (size_t i = 0; i < n; i++)
        tmp[start[combining_class(c[i])]++] = c[i];
    memcpy(c, tmp, n * sizeof *c);
    free(tmp);
    return 0;
}

/* NFD (canonical decomposition, marks in canonical order), then drop the
 * nonspacing marks (Mn). */
static int strip_accents(const Cps *in, Cps *out)
{
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        utf8proc_int32_t d[32];
        int last = 0;
        utf8proc_ssize_t k = utf8proc_decompose_char(in->c[i], d, 32, UTF8PROC_DECOMPOSE, &last);
        if (k < 0 || k > 32)
            return -1;
        for (utf8proc_ssize_t j = 0; j < k; j++)
            if (cps_push(out, d[j]) < 0)
                return -1;
    }
    /* Canonical ordering: a stable sort of each run of combining marks
     * (class > 0) by class. */
    for (size_t i = 0; i < out->n;) {
        size_t end = i;
        while (end < out->n && combining_class(out->c[end]) > 0)
            end++;
        if (end - i > 1 && sort_marks(out->c + i, end - i) < 0)
            return -1;
        i = end > i ? end : i + 1;
    }
    size_t k = 0;
    for (size_t i = 0; i < out->n; i++)
        if (category(out->c[i]) != UTF8PROC_CATEGORY_MN)
            out->c[k++] = out->c[i];
    out->n = k;
    return 0;
}

/* Each character alone, as Rust's char::to_lowercase: the full mapping,
 * whose only many-character case without context is İ (U+0130) -> "i"
 * U+0307; no final-sigma rule. */
static int lowercase(const Cps *in, Cps *out)
{
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        int32_t c = in->c[i];
        if (c == 0x130) {
            if (cps_push(out, 'i') < 0 || cps_push(out, 0x307) < 0)
                return -1;
        } else if (cps_push(out, utf8proc_tolower(c)) < 0)
            return -1;
    }
    return 0;
}

typedef struct {
    Cps a, b;                  /* the text, between stages */
    int base, enough;          /* stop once s->n - base >= enough (> 0) */
    char *utf8;                /* a word as UTF-8, for vocabulary look-ups */
    size_t utf8_cap;
    size_t *at;                /* byte offset of each character in utf8 */
} Work;

static void work_free(Work *w)
{
    free(w->a.c);
    free(w->b.c);
    free(w->utf8);
    free(w->at);
}

/* Normalises text[0..len) into w->a. */
static int normalize(const WordPiece *wp, const char *text, size_t len, Work *w)
{
    w->a.n = 0;
    if (decode_utf8(text, len, &w->a) < 0)
        return -1;
    clean_text(&w->a);
    Cps t;
    if (wp->chinese) {
        if (space_chinese(&w->a, &w->b) < 0)
            return -1;
        t = w->a; w->a = w->b; w->b = t;
    }
    if (wp->strip_accents) {
        if (strip_accents(&w->a, &w->b) < 0)
            return -1;
        t = w->a; w->a = w->b; w->b = t;
    }
    if (wp->lowercase) {
        if (lowercase(&w->a, &w->b) < 0)
            return -1;
        t = w->a; w->a = w->b; w->b = t;
    }
    return 0;
}

/* ---- the model (WordPiece) ---- */

static int push_id(TokenSeq *s, int id, int type)
{
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 64;
        int *ids = realloc(s->ids, (size_t)cap * sizeof *ids);
        if (ids)
            s->ids = ids;
        int *types = ids ? realloc(s->types, (size_t)cap * sizeof *types) : NULL;
        if (!types)
            return -1;
        s->types = types;
        s->cap = cap;
    }
    s->ids[s->n] = id;
    s->types[s->n++] = type;
    return 0;
}

/* The pieces of one word (characters c[0..n)). */
static int word_pieces(const WordPiece *wp, const int32_t *c, size_t n, int type,
                       TokenSeq *s, Work *w)
{
    int unk = wp->special[SP_UNK];
    if (n > MAX_WORD_CHARS)
        return push_id(s, unk, type);
    if (w->utf8_cap < 4 * n + 1) {
        char *u = realloc(w->utf8, 4 * n + 1);
        size_t *at = realloc(w->at, (n + 1) * sizeof *at);
        if (u)
            w->utf8 = u;
        if (at)
            w->at = at;
        if (!u || !at)
            return -1;
        w->utf8_cap = 4 * n + 1;
    }
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        w->at[i] = len;
        len += (size_t)utf8proc_encode_char(c[i], (utf8proc_uint8_t *)w->utf8 + len);
    }
    w->at[n] = len;
    int first = s->n;
    for (size_t start = 0; start < n;) {
        int id = -1;
        size_t end = n;
        for (; end > start; end--) {
            id = vocab_find(wp, start ? "##" : "", w->utf8 + w->at[start],
                            w->at[end] - w->at[start]);
            if (id >= 0)
                break;
        }
        if (id < 0) {
            s->n = first;          /* one [UNK] for the whole word */
            return push_id(s, unk, type);
        }
        if (push_id(s, id, type) < 0)
            return -1;
        start = end;
    }
    return 0;
}

/* 1 when the words so far are enough, 0 to go on. */
static int enough(const TokenSeq *s, const Work *w)
{
    return w->enough > 0 && s->n - w->base >= w->enough;
}

/* Pre-split the normalised text (BertPreTokenizer) and run the model on
 * each word; 1 when stopped early. */
static int split_words(const WordPiece *wp, int type, TokenSeq *s, Work *w)
{
    const int32_t *c = w->a.c;
    size_t n = w->a.n, start = 0;
    for (size_t i = 0; i <= n; i++) {
        int ws = i < n && is_whitespace(c[i]);
        int punct = i < n && !ws && is_punctuation(c[i]);
        if (i == n || ws || punct) {
            if (i > start && word_pieces(wp, c + start, i - start, type, s, w) < 0)
                return -1;
            if (i > start && enough(s, w))
                return 1;
            if (punct && word_pieces(wp, c + i, 1, type, s, w) < 0)
                return -1;
            if (punct && enough(s, w))
                return 1;
            start = i + 1;
        }
    }
    return 0;
}

/* The longest special token that starts at p, or -1 (the library matches
 * them leftmost-longest). */
static int special_at(const WordPiece *wp, const char *p, size_t *len)
{
    int best = -1;
    *len = 0;
    if (*p != '[')
        return -1;
    for (int k = 0; k < N_SPECIAL; k++) {
        size_t n = strlen(special_text[k]);
        if (wp->special[k] >= 0 && n > *len && strncmp(p, special_text[k], n) == 0) {
            best = k;
            *len = n;
        }
    }
    return best;
}

static int pieces_of(const WordPiece *wp, const char *text, size_t len, int type,
                     TokenSeq *s, Work *w)
{
    if (len == 0)
        return 0;
    if (normalize(wp, text, len, w) < 0)
        return -1;
    return split_words(wp, type, s, w);
}

int wordpiece_pieces_until(const WordPiece *wp, const char *text, int type, int stop,
                           TokenSeq *s, MnError *e)
{
    Work w = { .base = s->n, .enough = stop };
    int rc = 0;
    const char *seg = text, *p = text;
    while (*p && !rc) {
        size_t n;
        int k = special_at(wp, p, &n);
        if (k < 0) {
            p++;
            continue;
        }
        rc = pieces_of(wp, seg, (size_t)(p - seg), type, s, &w);
        /* a special token counts, but as in the library only an ordinary
         * word ends the text early: which side a pair's truncation cuts
         * depends on it */
        if (!rc)
            rc = push_id(s, wp->special[k], type) < 0 ? -1 : 0;
        p += n;
        seg = p;
    }
    if (!rc)
        rc = pieces_of(wp, seg, (size_t)(p - seg), type, s, &w);
    work_free(&w);
    return rc < 0 ? mn_fail(e, "out of memory tokenizing %zu bytes", strlen(text)) : 0;
}

int wordpiece_pieces(const WordPiece *wp, const char *text, int type, TokenSeq *s,
                     MnError *e)
{
    return wordpiece_pieces_until(wp, text, type, 0, s, e);
}

/* For tests: the normalised text as UTF-8 (malloc'd), or NULL when out of
 * memory. */
char *wordpiece_normalize(const WordPiece *wp, const char *text)
{
    Work w = { 0 };
    char *out = NULL;
    if (normalize(wp, text, strlen(text), &w) == 0 && (out = malloc(4 * w.a.n + 1))) {
        size_t len = 0;
        for (size_t i = 0; i < w.a.n; i++)
            len += (size_t)utf8proc_encode_char(w.a.c[i], (utf8proc_uint8_t *)out + len);
        out[len] = 0;
    }
    work_free(&w);
    return out;
}
