/* safetensors: bit-exact round trips, order and alignment, files written
 * by other tools, one refusal per kind of damage, and the disk-full path
 * of the atomic writer (through MNEME_FAULT_WRITE_AFTER). */
#include "safetensors.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"

static char dir[64];

/* ---- helpers ------------------------------------------------------------ */

static const char *tpath(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
    return buf;
}

static int write_bytes(const char *path, const void *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return -1;
    size_t put = fwrite(p, 1, n, fp);
    return fclose(fp) == 0 && put == n ? 0 : -1;
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *buf = malloc(len > 0 ? (size_t)len : 1);
    *n = fread(buf, 1, (size_t)len, fp);
    fclose(fp);
    return buf;
}

/* Writes a file the way another tool might: the given header text
 * (unpadded unless the caller pads it) and raw data bytes. */
static int craft(const char *path, const char *header, const void *data,
                 size_t data_len)
{
    size_t hl = strlen(header), n = 8 + hl + data_len;
    unsigned char *buf = malloc(n);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    if (data_len)
        memcpy(buf + 8 + hl, data, data_len);
    int rc = write_bytes(path, buf, n);
    free(buf);
    return rc;
}

/* The read must fail with a message that starts with the path and holds
 * the telling word. */
static void expect_refused(const char *path, const char *word,
                           const char *what)
{
    StFile f;
    MnError e = {{0}};
    int rc = safetensors_read(&f, path, &e);
    int good = rc == -1 && strncmp(e.msg, path, strlen(path)) == 0
               && strstr(e.msg, word) != NULL && f.buf == NULL;
    ok(good, "refused: %s", what);
    if (!good)
        diag("rc %d, message: %s", rc, e.msg);
    safetensors_free(&f);
}

static void expect_crafted_refused(const char *header, const void *data,
                                   size_t data_len, const char *word,
                                   const char *what)
{
    char p[128];
    tpath(p, sizeof p, "damaged.safetensors");
    craft(p, header, data, data_len);
    expect_refused(p, word, what);
}

static void fill_bits(float *x, const uint32_t *bits, size_t n)
{
    memcpy(x, bits, n * sizeof *x);
}

static uint32_t next_u32(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(*s >> 32);
}

static int tmp_files_left(void)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)) != NULL)
        if (strstr(de->d_name, ".tmp."))
            n++;
    closedir(d);
    return n;
}

/* ---- round trip --------------------------------------------------------- */

enum { EMB_R = 5, EMB_C = 7 };

static float emb[EMB_R * EMB_C], bias[EMB_C], scalar[1];

static void make_values(void)
{
    static const uint32_t special[] = {
        0x80000000u,               /* -0.0 */
        0x00000001u, 0x007fffffu,  /* denormals */
        0x80000001u,
        0x7fc00001u, 0xffbfffffu,  /* quiet NaNs with payloads */
        0x7f800001u,               /* signalling NaN */
        0x7f800000u, 0xff800000u,  /* infinities */
        0x00000000u,
    };
    uint64_t s = 42;
    uint32_t bits[EMB_R * EMB_C];
    for (size_t i = 0; i < EMB_R * EMB_C; i++)
        bits[i] = next_u32(&s);
    memcpy(bits, special, sizeof special);
    fill_bits(emb, bits, EMB_R * EMB_C);
    for (size_t i = 0; i < EMB_C; i++)
        bits[i] = next_u32(&s);
    fill_bits(bias, bits, EMB_C);
    scalar[0] = -1.5f;
}

static void test_round_trip(void)
{
    char p[128];
    tpath(p, sizeof p, "rt.safetensors");
    make_values();
    StTensorOut t[] = {
        {"embeddings.word", 2, {EMB_R, EMB_C}, emb},
        {"empty", 2, {3, 0}, NULL},
        {"bias", 1, {EMB_C}, bias},
        {"step", 0, {0}, scalar},
    };
    StMeta meta[] = {
        {"format", "pt"}, {"mneme.step", "1234"}, {"note", "h\xc3\xa9llo \"q\""},
    };
    MnError e = {{0}};
    int rc = safetensors_write(p, t, 4, meta, 3, &e);
    ok(rc == 0, "write succeeds");
    if (rc)
        diag("%s", e.msg);

    StFile f;
    rc = safetensors_read(&f, p, &e);
    ok(rc == 0, "read succeeds");
    if (rc) {
        diag("%s", e.msg);
        return;
    }
    ok(f.n_tensors == 4, "four tensors");
    int order = f.n_tensors == 4;
    for (int i = 0; order && i < 4; i++)
        order = strcmp(f.tensors[i].name, t[i].name) == 0
                && (i == 0 || f.tensors[i].begin == f.tensors[i - 1].end);
    ok(order, "tensor order and ascending offsets preserved");
    ok(f.data_start % 8 == 0, "data section 8-byte aligned (%zu)",
       f.data_start);

    float got[EMB_R * EMB_C];
    int64_t sh2[] = {EMB_R, EMB_C}, sh1[] = {EMB_C}, sh0[] = {3, 0};
    rc = safetensors_get_f32(&f, "embeddings.word", got, 2, sh2, &e);
    ok(rc == 0 && memcmp(got, emb, sizeof emb) == 0,
       "2-D tensor bit-exact (-0.0, denormals, NaN payloads, inf)");
    rc = safetensors_get_f32(&f, "bias", got, 1, sh1, &e);
    ok(rc == 0 && memcmp(got, bias, sizeof bias) == 0, "1-D tensor bit-exact");
    rc = safetensors_get_f32(&f, "step", got, 0, NULL, &e);
    ok(rc == 0 && got[0] == -1.5f, "0-D scalar round trip");
    const StTensorInfo *ti = safetensors_find(&f, "empty");
    rc = safetensors_get_f32(&f, "empty", NULL, 2, sh0, &e);
    ok(ti && ti->begin == ti->end && ti->ndim == 2 && ti->shape[1] == 0
       && rc == 0, "zero-size tensor round trip");
    ti = safetensors_find(&f, "bias");
    ok(ti && strcmp(ti->dtype, "F32") == 0 && ti->ndim == 1
       && ti->shape[0] == EMB_C && ti->end - ti->begin == 4 * EMB_C,
       "info: dtype, shape, byte range");
    ok(safetensors_find(&f, "nope") == NULL, "find: absent name is NULL");

    const char *ck = safetensors_meta(&f, "mneme.checksum");
    ok(safetensors_meta(&f, "format") && !strcmp(safetensors_meta(&f, "format"), "pt")
       && safetensors_meta(&f, "mneme.step")
       && !strcmp(safetensors_meta(&f, "mneme.step"), "1234")
       && safetensors_meta(&f, "note")
       && !strcmp(safetensors_meta(&f, "note"), "h\xc3\xa9llo \"q\""),
       "metadata round trip");
    ok(ck && strlen(ck) == 16 && strspn(ck, "0123456789abcdef") == 16,
       "checksum stored as 16 hex digits");
    ok(safetensors_meta(&f, "absent") == NULL, "meta: absent key is NULL");

    int64_t wrong[] = {EMB_C, EMB_R};
    rc = safetensors_get_f32(&f, "embeddings.word", got, 2, wrong, &e);
    ok(rc == -1 && strstr(e.msg, "embeddings.word") && strstr(e.msg, "[5, 7]")
       && strstr(e.msg, "[7, 5]"),
       "get_f32 shape mismatch names the tensor and both shapes");
    rc = safetensors_get_f32(&f, "bias", got, 2, sh2, &e);
    ok(rc == -1 && strstr(e.msg, "bias"), "get_f32 rank mismatch refused");
    rc = safetensors_get_f32(&f, "nope", got, 1, sh1, &e);
    ok(rc == -1 && strstr(e.msg, "nope"), "get_f32 of absent tensor refused");
    safetensors_free(&f);
    ok(f.buf == NULL && f.tensors == NULL, "free clears the struct");
    safetensors_free(&f);

    size_t n;
    unsigned char *raw = read_bytes(p, &n);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++)
        hl |= (uint64_t)raw[i] << (8 * i);
    const char *h = (const char *)raw + 8;
    int pads = 1;
    size_t jl = hl;
    while (jl > 0 && h[jl - 1] == ' ')
        jl--;
    pads = h[jl - 1] == '}' && hl - jl < 8 && (8 + hl) % 8 == 0;
    ok(pads, "header padded with trailing spaces to an 8-byte boundary");
    char *hs = strndup(h, hl);
    char *a = strstr(hs, "\"embeddings.word\""), *b = strstr(hs, "\"empty\""),
         *c = strstr(hs, "\"bias\""), *d = strstr(hs, "\"step\"");
    ok(a && b && c && d && a < b && b < c && c < d,
       "header text lists tensors in the order given");
    ok(strstr(hs, ": ") == NULL && strstr(hs, ", ") == NULL,
       "header is compact JSON");
    free(hs);
    free(raw);
}

static void test_write_refusals(void)
{
    char p[128];
    tpath(p, sizeof p, "bad-write.safetensors");
    float x[4] = {0};
    MnError e = {{0}};
    StTensorOut dup[] = {{"a", 1, {2}, x}, {"a", 1, {2}, x + 2}};
    int rc = safetensors_write(p, dup, 2, NULL, 0, &e);
    ok(rc == -1 && strstr(e.msg, p) && strstr(e.msg, "duplicated"),
       "write refuses duplicate tensor names");
    StTensorOut neg[] = {{"a", 1, {-2}, x}};
    rc = safetensors_write(p, neg, 1, NULL, 0, &e);
    ok(rc == -1 && strstr(e.msg, "negative"), "write refuses negative dims");
    StTensorOut deep[] = {{"a", 5, {1, 1, 1, 1}, x}};
    rc = safetensors_write(p, deep, 1, NULL, 0, &e);
    ok(rc == -1 && strstr(e.msg, "dimensions"), "write refuses ndim > 4");
    StTensorOut res[] = {{"__metadata__", 1, {2}, x}};
    rc = safetensors_write(p, res, 1, NULL, 0, &e);
    ok(rc == -1 && strstr(e.msg, "reserved"),
       "write refuses a tensor named __metadata__");
    struct stat st;
    ok(stat(p, &st) != 0 && tmp_files_left() == 0,
       "refused writes leave no file behind");

    char missing[160];
    snprintf(missing, sizeof missing, "%s/no/such/dir/x.safetensors", dir);
    StTensorOut one[] = {{"a", 1, {2}, x}};
    rc = safetensors_write(missing, one, 1, NULL, 0, &e);
    ok(rc == -1 && strncmp(e.msg, missing, strlen(missing)) == 0
       && strstr(e.msg, "No such file"),
       "write into a missing folder names the path and the reason");

    /* Copying metadata from a file read earlier carries its stale
     * checksum; the writer must replace it, not keep it. */
    StMeta stale[] = {{"mneme.checksum", "0000000000000000"}};
    tpath(p, sizeof p, "stale.safetensors");
    rc = safetensors_write(p, one, 1, stale, 1, &e);
    StFile f;
    int rd = safetensors_read(&f, p, &e);
    ok(rc == 0 && rd == 0, "a stale checksum passed in is replaced");
    safetensors_free(&f);
}

/* ---- files from other tools ---------------------------------------------- */

static void test_foreign(void)
{
    char p[128];
    tpath(p, sizeof p, "foreign.safetensors");
    /* Unpadded header, so the data section is unaligned; no checksum. */
    const char *h = "{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"h\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[8,16]},"
                    "\"ids\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[16,24]},"
                    "\"m\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[24,27]}}";
    unsigned char data[27] = {
        0x00, 0x00, 0x80, 0x3f,   /* 1.0f little-endian */
        0x00, 0x00, 0x00, 0xc0,   /* -2.0f */
        0x80, 0x3f, 0x00, 0x40, 0x40, 0x40, 0x80, 0x40,
        7, 0, 0, 0, 0, 0, 0, 0,
        1, 0, 1,
    };
    craft(p, h, data, sizeof data);
    StFile f;
    MnError e = {{0}};
    int rc = safetensors_read(&f, p, &e);
    ok(rc == 0, "file without checksum (another tool's) is accepted");
    if (rc) {
        diag("%s", e.msg);
        return;
    }
    ok(f.data_start % 8 != 0, "its data section is unaligned");
    float w[2];
    int64_t s1[] = {2}, s2[] = {2, 2};
    rc = safetensors_get_f32(&f, "w", w, 1, s1, &e);
    ok(rc == 0 && w[0] == 1.0f && w[1] == -2.0f,
       "F32 read from unaligned little-endian bytes");
    const StTensorInfo *ti = safetensors_find(&f, "h");
    ok(ti && strcmp(ti->dtype, "BF16") == 0 && ti->ndim == 2
       && ti->shape[0] == 2 && ti->begin == 8 && ti->end == 16,
       "BF16 tensor described in the info");
    float hb[4];
    rc = safetensors_get_f32(&f, "h", hb, 2, s2, &e);
    ok(rc == 0 && hb[0] == 1.0f && hb[1] == 2.0f && hb[2] == 3.0f && hb[3] == 4.0f,
       "get_f32 widens BF16 exactly (hub models come in half precision)");
    float iv[1];
    int64_t s3[] = {1};
    rc = safetensors_get_f32(&f, "ids", iv, 1, s3, &e);
    ok(rc == -1 && strstr(e.msg, "\"ids\"") && strstr(e.msg, "I64"),
       "get_f32 refuses I64 naming the tensor and dtype");
    ti = safetensors_find(&f, "m");
    ok(ti && strcmp(ti->dtype, "BOOL") == 0 && ti->end - ti->begin == 3
       && safetensors_find(&f, "ids"),
       "I64 and BOOL tensors described");
    ok(f.n_meta == 1 && safetensors_meta(&f, "mneme.checksum") == NULL,
       "foreign metadata read, no checksum");
    safetensors_free(&f);

    craft(p, "{}", NULL, 0);
    rc = safetensors_read(&f, p, &e);
    ok(rc == 0 && f.n_tensors == 0 && f.n_meta == 0, "empty header accepted");
    safetensors_free(&f);
}

/* ---- damage -------------------------------------------------------------- */

static void test_damage_framing(void)
{
    char p[128];
    tpath(p, sizeof p, "short.safetensors");
    write_bytes(p, "\x05\0\0\0\0", 5);
    expect_refused(p, "truncated", "file shorter than 8 bytes");

    tpath(p, sizeof p, "nofile.safetensors");
    expect_refused(p, "No such file", "missing file");
    expect_refused(dir, "regular", "a folder");

    tpath(p, sizeof p, "longhdr.safetensors");
    unsigned char b[40] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    write_bytes(p, b, sizeof b);
    expect_refused(p, "truncated", "header length larger than the file");

    unsigned char big[16] = {0x00, 0xc2, 0xeb, 0x0b, 0, 0, 0, 0, '{', '}'};
    write_bytes(p, big, sizeof big);   /* 200,000,000 */
    expect_refused(p, "absurd", "header length over 100 MB");
    memset(big, 0xff, 8);
    write_bytes(p, big, sizeof big);
    expect_refused(p, "absurd", "header length 2^64-1");

    expect_crafted_refused("{\"a\":", NULL, 0, "JSON", "header not JSON");
    expect_crafted_refused("", NULL, 0, "JSON", "empty header");
    expect_crafted_refused("[1,2]", NULL, 0, "object",
                           "header is an array");
    expect_crafted_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[],"
                           "\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\","
                           "\"shape\":[],\"data_offsets\":[4,8]}}",
                           "\0\0\0\0\0\0\0\0", 8, "duplicate",
                           "duplicate tensor names");
    expect_crafted_refused("{\"a\\u0000b\":{}}", NULL, 0, "JSON",
                           "NUL in a name");
    expect_crafted_refused("{\"\xff\":{}}", NULL, 0, "JSON",
                           "invalid UTF-8 in the header");
}

#define T(x) "{\"t\":" x "}"

static void test_damage_entries(void)
{
    static const unsigned char z[64];
    expect_crafted_refused(T("5"), NULL, 0, "object", "entry not an object");
    expect_crafted_refused(T("{\"shape\":[1],\"data_offsets\":[0,4]}"), z, 4,
                           "dtype", "dtype missing");
    expect_crafted_refused(T("{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}"),
                           z, 4, "dtype", "dtype not a string");
    expect_crafted_refused(T("{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}"),
                           z, 4, "unknown dtype", "unknown dtype");
    expect_crafted_refused(T("{\"dtype\":\"F32\",\"data_offsets\":[0,4]}"), z, 4,
                           "shape", "shape missing");
    expect_crafted_refused(T("{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}"),
                           z, 4, "shape", "shape not an array");
    expect_crafted_refused(T("{\"dtype\":\"F32\",\"shape\":[1]}"), z, 4,
                           "data_offsets", "data_offsets missing");
    expect_crafted_refused(T("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}"),
                           z, 4, "data_offsets", "data_offsets of one entry");
    expect_crafted_refused(T("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",\"4\"]}"),
                           z, 4, "data_offsets", "data_offsets of strings");
    expect_crafted_refused(T("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{}}"),
                           z, 4, "data_offsets", "data_offsets an object");
    expect_crafted_refused(T("{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}"),
                           z, 4, "negative", "negative shape entry");
    expect_crafted_refused(T("{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}"),
                           z, 4, "integer", "non-integer shape entry");
    expect_crafted_refused(T("{\"dtype\":\"F32\",\"shape\":[null],\"data_offsets\":[0,4]}"),
                           z, 4, "integer", "null shape entry");
    expect_crafted_refused(T("{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}"),
                           z, 4, "dimensions", "more than 4 dimensions");
    expect_crafted_refused(T("{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}"),
                           z, 8, "span", "shape size differs from the range");
    expect_crafted_refused(T("{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],"
                             "\"data_offsets\":[0,0]}"),
                           NULL, 0, "overflow", "shape product overflows");
    expect_crafted_refused(T("{\"dtype\":\"F32\",\"shape\":[4611686018427387904],"
                             "\"data_offsets\":[0,0]}"),
                           NULL, 0, "overflow", "product x element size overflows");
    expect_crafted_refused(T("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}"),
                           z, 4, "reversed", "begin after end");
    expect_crafted_refused(T("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}"),
                           z, 4, "negative", "negative offset");
    expect_crafted_refused(T("{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[0,400]}"),
                           z, 8, "past the end", "range beyond the data section");
    expect_crafted_refused(T("{\"dtype\":\"F32\",\"shape\":[1],"
                             "\"data_offsets\":[9223372036854775800,9223372036854775804]}"),
                           z, 8, "past the end", "huge offsets");
}

static void test_damage_layout(void)
{
    static const unsigned char z[64];
    expect_crafted_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                           "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                           z, 12, "overlap", "overlapping ranges");
    expect_crafted_refused("{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]},"
                           "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                           z, 20, "gap", "gap between ranges (out of order)");
    expect_crafted_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                           z, 12, "gap", "gap at the start");
    expect_crafted_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                           z, 12, "trailing", "trailing bytes after the data");
    expect_crafted_refused("{}", z, 3, "trailing", "data with no tensors");
    expect_crafted_refused("{\"__metadata__\":{\"k\":5}}", NULL, 0, "metadata",
                           "metadata value not a string");
    expect_crafted_refused("{\"__metadata__\":[\"k\"]}", NULL, 0, "__metadata__",
                           "__metadata__ not an object");
    expect_crafted_refused("{\"__metadata__\":{\"mneme.checksum\":\"xyz\"}}", NULL, 0,
                           "checksum", "malformed checksum");
}

static void test_truncation_and_bitflip(void)
{
    char p[128], q[128];
    tpath(p, sizeof p, "small.safetensors");
    tpath(q, sizeof q, "cut.safetensors");
    float x[6] = {1, 2, 3, 4, 5, 6};
    StTensorOut t[] = {{"a", 2, {2, 2}, x}, {"b", 1, {2}, x + 4}};
    MnError e = {{0}};
    safetensors_write(p, t, 2, NULL, 0, &e);
    size_t n;
    unsigned char *raw = read_bytes(p, &n);
    int all = 1;
    for (size_t len = 0; len < n; len++) {
        write_bytes(q, raw, len);
        StFile f;
        int rc = safetensors_read(&f, q, &e);
        if (rc != -1 || strncmp(e.msg, q, strlen(q)) != 0
            || !strstr(e.msg, "truncated")) {
            if (all)
                diag("length %zu: rc %d, %s", len, rc, e.msg);
            all = 0;
        }
        safetensors_free(&f);
    }
    ok(all, "every truncation (0..%zu bytes) refused as truncated", n - 1);

    int flips = 1;
    for (size_t bit = 0; bit < 8 * (sizeof x); bit += 13) {
        unsigned char *c = malloc(n);
        memcpy(c, raw, n);
        c[n - sizeof x + bit / 8] ^= (unsigned char)(1u << (bit % 8));
        write_bytes(q, c, n);
        free(c);
        StFile f;
        int rc = safetensors_read(&f, q, &e);
        if (rc != -1 || strncmp(e.msg, q, strlen(q)) != 0
            || !strstr(e.msg, "checksum mismatch"))
            flips = 0;
        safetensors_free(&f);
    }
    ok(flips, "flipped data bits refused with a checksum mismatch");

    /* Random header damage: whatever the bytes, a clean refusal (or, for a
     * harmless change such as a space, success) and never a crash. */
    uint64_t seed = 7;
    int sane = 1;
    for (int round = 0; round < 3000; round++) {
        unsigned char *c = malloc(n);
        memcpy(c, raw, n);
        int hits = 1 + (int)(next_u32(&seed) % 3);
        for (int k = 0; k < hits; k++)
            c[next_u32(&seed) % (n - sizeof x)] = (unsigned char)next_u32(&seed);
        write_bytes(q, c, n);
        free(c);
        StFile f;
        e.msg[0] = '\0';
        int rc = safetensors_read(&f, q, &e);
        if (rc != 0 && (rc != -1 || strncmp(e.msg, q, strlen(q)) != 0))
            sane = 0;
        safetensors_free(&f);
    }
    ok(sane, "3000 random header mutations: refused with a reason or read");
    free(raw);
}

/* ---- atomic writes under failure ---------------------------------------- */

static void test_fault_injection(void)
{
    char p[128];
    tpath(p, sizeof p, "ckpt.safetensors");
    float v1[8] = {1, 2, 3, 4, 5, 6, 7, 8}, v2[64];
    for (int i = 0; i < 64; i++)
        v2[i] = (float)i * 0.5f;
    StTensorOut t1[] = {{"w", 1, {8}, v1}};
    StTensorOut t2[] = {{"w", 2, {8, 8}, v2}};
    MnError e = {{0}};
    ok(safetensors_write(p, t1, 1, NULL, 0, &e) == 0, "first version written");
    size_t n1;
    unsigned char *old = read_bytes(p, &n1);

    setenv("MNEME_FAULT_WRITE_AFTER", "100", 1);
    int rc = safetensors_write(p, t2, 1, NULL, 0, &e);
    ok(rc == -1 && strncmp(e.msg, p, strlen(p)) == 0
       && strstr(e.msg, "No space"),
       "disk full after 100 bytes: error names the path and 'No space'");
    diag("%s", e.msg);
    size_t n2;
    unsigned char *now = read_bytes(p, &n2);
    ok(now && n1 == n2 && memcmp(old, now, n1) == 0,
       "previous file unchanged byte for byte");
    free(now);
    ok(tmp_files_left() == 0, "no temporary file left in the folder");

    /* Every cut point, from before the length prefix to the last byte. */
    static const char *const cuts[] = {"0", "1", "8", "9", "200", "300"};
    int all = 1;
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        setenv("MNEME_FAULT_WRITE_AFTER", cuts[i], 1);
        if (safetensors_write(p, t2, 1, NULL, 0, &e) != -1
            || !strstr(e.msg, "No space"))
            all = 0;
        now = read_bytes(p, &n2);
        if (!now || n1 != n2 || memcmp(old, now, n1) != 0
            || tmp_files_left() != 0)
            all = 0;
        free(now);
    }
    ok(all, "failures at other byte counts also leave the old file intact");

    setenv("MNEME_FAULT_WRITE_AFTER", "1000000", 1);
    ok(safetensors_write(p, t2, 1, NULL, 0, &e) == 0,
       "a limit beyond the file size does not trigger");
    unsetenv("MNEME_FAULT_WRITE_AFTER");
    StFile f;
    float got[64];
    int64_t sh[] = {8, 8};
    rc = safetensors_read(&f, p, &e);
    ok(rc == 0 && safetensors_get_f32(&f, "w", got, 2, sh, &e) == 0
       && memcmp(got, v2, sizeof v2) == 0 && tmp_files_left() == 0,
       "the new version replaced the old one");
    safetensors_free(&f);
    free(old);
}

static void cleanup(void)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[400];
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/mneme-st-XXXXXX");
    if (!mkdtemp(dir)) {
        printf("Bail out! cannot create a temporary folder\n");
        return 1;
    }
    unsetenv("MNEME_FAULT_WRITE_AFTER");
    test_round_trip();
    test_write_refusals();
    test_foreign();
    test_damage_framing();
    test_damage_entries();
    test_damage_layout();
    test_truncation_and_bitflip();
    test_fault_injection();
    cleanup();
    return tap_done();
}
