/* safetensors reader and atomic writer.
 *
 * Integrity: the writer stores "mneme.checksum" in __metadata__, the 64-bit
 * FNV-1a hash (offset basis 0xcbf29ce484222325, prime 0x100000001b3) of
 * the data section's bytes, as 16 lowercase hex digits, and
 * "mneme.header_checksum", the same hash of the header's bytes as written
 * with that entry's own 16 digits all '0' (so the metadata, the data
 * checksum among it, cannot be edited unseen either). The reader checks
 * both when present; files from other tools carry none and are accepted. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The reference implementation's limit: anything larger is not a header. */
#define ST_MAX_HEADER 100000000ULL
#define ST_CHECKSUM_KEY "mneme.checksum"
#define ST_HEADER_CHECKSUM_KEY "mneme.header_checksum"
/* how the entry reads in a compact header, up to its digits */
#define ST_HEADER_CHECKSUM_AT "\"" ST_HEADER_CHECKSUM_KEY "\":\""
#define ST_UNSET_CHECKSUM "0000000000000000"
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

/* ---- shared helpers ---------------------------------------------------- */

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Formats "[2, 3]" into buf; shapes are short, so truncation is cosmetic. */
const char *safetensors_shape_text(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%" PRId64,
                                i ? ", " : "", shape[i]);
    if (len < cap)
        snprintf(buf + len, cap - len, "]");
    return buf;
}

/* Element count of a shape, or -1 when it overflows (or a dim is < 0). */
static int shape_count(int ndim, const int64_t *shape, uint64_t *count)
{
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return -1;
        uint64_t d = (uint64_t)shape[i];
        if (d != 0 && n > UINT64_MAX / d)
            return -1;
        n *= d;
    }
    *count = n;
    return 0;
}

/* ---- writing ----------------------------------------------------------- */

/* Every byte of the file goes through sink_put. With fp NULL it only
 * hashes, which is how the checksum is computed before the header (which
 * contains it) is written. */
typedef struct {
    FILE *fp;
    uint64_t hash;
    uint64_t written;
    uint64_t fault_after;      /* UINT64_MAX: no injected fault */
    int err;                   /* errno of the first failure */
} Sink;

static int sink_put(Sink *s, const void *p, size_t n)
{
    if (s->err)
        return -1;
    if (!s->fp) {
        s->hash = fnv1a(s->hash, p, n);
        return 0;
    }
    size_t allowed = n;
    if (s->fault_after - s->written < n)
        allowed = (size_t)(s->fault_after - s->written);
    errno = 0;
    size_t put = fwrite(p, 1, allowed, s->fp);
    s->written += put;
    if (put < allowed) {
        s->err = errno ? errno : EIO;
        return -1;
    }
    if (allowed < n) {
        s->err = ENOSPC;
        return -1;
    }
    return 0;
}

/* MNEME_FAULT_WRITE_AFTER=<bytes> makes the writer fail with ENOSPC after
 * that many bytes of the temporary file. It exists only so that tests can
 * exercise disk-full behaviour without a full disk. */
static uint64_t fault_limit(void)
{
    const char *v = getenv("MNEME_FAULT_WRITE_AFTER");
    if (!v || !*v)
        return UINT64_MAX;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || *end || v[0] == '-')
        return UINT64_MAX;
    return (uint64_t)n;
}

/* Floats are stored little-endian whatever the host; converting through
 * a small buffer keeps that portable without a byte-order test. */
static int emit_floats(Sink *s, const float *x, uint64_t n)
{
    unsigned char buf[4096];
    size_t per = sizeof buf / 4;
    while (n > 0) {
        size_t k = n < per ? (size_t)n : per;
        for (size_t i = 0; i < k; i++) {
            uint32_t u;
            memcpy(&u, &x[i], 4);
            buf[4 * i] = (unsigned char)u;
            buf[4 * i + 1] = (unsigned char)(u >> 8);
            buf[4 * i + 2] = (unsigned char)(u >> 16);
            buf[4 * i + 3] = (unsigned char)(u >> 24);
        }
        if (sink_put(s, buf, 4 * k) < 0)
            return -1;
        x += k;
        n -= k;
    }
    return 0;
}

static int emit_data(Sink *s, const StTensorOut *t, int n_tensors,
                     const uint64_t *counts)
{
    for (int i = 0; i < n_tensors; i++)
        if (counts[i] && emit_floats(s, t[i].data, counts[i]) < 0)
            return -1;
    return 0;
}

static int check_tensor_out(const char *path, const StTensorOut *t, int i,
                            uint64_t *count, MnError *e)
{
    char sh[128];
    if (!t->name || !*t->name)
        return mn_fail(e, "%s: tensor %d has no name", path, i);
    if (strcmp(t->name, "__metadata__") == 0)
        return mn_fail(e, "%s: \"__metadata__\" is reserved, not a tensor "
                       "name", path);
    if (t->ndim < 0 || t->ndim > ST_MAX_DIMS)
        return mn_fail(e, "%s: tensor \"%s\": %d dimensions, at most %d "
                       "supported", path, t->name, t->ndim, ST_MAX_DIMS);
    if (shape_count(t->ndim, t->shape, count) < 0
        || *count > (uint64_t)LLONG_MAX / 4)
        return mn_fail(e, "%s: tensor \"%s\": shape %s is negative or too "
                       "large", path,
                       t->name, safetensors_shape_text(sh, sizeof sh, t->ndim, t->shape));
    if (*count && !t->data)
        return mn_fail(e, "%s: tensor \"%s\" has no data", path, t->name);
    return 0;
}

/* Sets key in obj, refusing to replace silently (jansson would). */
static int set_new(json_t *obj, const char *key, json_t *val)
{
    if (!val || json_object_get(obj, key)) {
        json_decref(val);
        return -1;
    }
    return json_object_set_new(obj, key, val);
}

static json_t *tensor_entry(const StTensorOut *t, uint64_t begin,
                            uint64_t end)
{
    json_t *shape = json_array();
    for (int d = 0; shape && d < t->ndim; d++)
        if (json_array_append_new(shape, json_integer(t->shape[d])) < 0) {
            json_decref(shape);
            return NULL;
        }
    return json_pack("{s:s, s:o, s:[I,I]}", "dtype", "F32", "shape", shape,
                     "data_offsets", (json_int_t)begin, (json_int_t)end);
}

static int build_meta(json_t *root, const char *path, const StMeta *meta,
                      int n_meta, uint64_t hash, MnError *e)
{
    json_t *m = json_object();
    if (!m || json_object_set_new(root, "__metadata__", m) < 0)
        return mn_fail(e, "%s: out of memory", path);
    for (int i = 0; i < n_meta; i++) {
        if (!meta[i].key || !meta[i].value)
            return mn_fail(e, "%s: metadata entry %d is NULL", path, i);
        /* A caller copying metadata from a file it read passes the old
         * checksum along; ours replaces it below. */
        if (strcmp(meta[i].key, ST_CHECKSUM_KEY) == 0 ||
            strcmp(meta[i].key, ST_HEADER_CHECKSUM_KEY) == 0)
            continue;
        if (set_new(m, meta[i].key, json_string(meta[i].value)) < 0)
            return mn_fail(e, "%s: metadata \"%s\" is duplicated or not "
                           "valid UTF-8", path, meta[i].key);
    }
    char hex[17];
    snprintf(hex, sizeof hex, "%016" PRIx64, hash);
    if (json_object_set_new(m, ST_CHECKSUM_KEY, json_string(hex)) < 0 ||
        json_object_set_new(m, ST_HEADER_CHECKSUM_KEY, json_string(ST_UNSET_CHECKSUM)) < 0)
        return mn_fail(e, "%s: out of memory", path);
    return 0;
}

/* Where the header checksum's digits are in a header's bytes: the one
 * place its key is followed by a string (metadata values are escaped, so
 * none can hold the sequence). NULL when absent or ambiguous. */
static unsigned char *header_checksum_digits(unsigned char *header, size_t n)
{
    const size_t at = strlen(ST_HEADER_CHECKSUM_AT);
    unsigned char *found = NULL;
    for (unsigned char *p = header; (p = memmem(p, n - (size_t)(p - header), ST_HEADER_CHECKSUM_AT, at));
         p += at) {
        if (found)
            return NULL;
        found = p + at;
    }
    return found && (size_t)(found - header) + 16 <= n ? found : NULL;
}

/* Builds the padded header text: JSON, then spaces so that the data
 * section starts 8-byte aligned, as the reference implementation does. */
static char *build_header(const char *path, const StTensorOut *t,
                          int n_tensors, const uint64_t *counts,
                          const StMeta *meta, int n_meta, uint64_t hash,
                          size_t *len, MnError *e)
{
    json_t *root = json_object();
    char *text = NULL;
    if (!root) {
        mn_fail(e, "%s: out of memory", path);
        return NULL;
    }
    if (build_meta(root, path, meta, n_meta, hash, e) < 0)
        goto out;
    uint64_t off = 0;
    for (int i = 0; i < n_tensors; i++) {
        uint64_t end = off + 4 * counts[i];
        if (end < off || end > (uint64_t)LLONG_MAX) {
            mn_fail(e, "%s: tensors too large for one file", path);
            goto out;
        }
        if (set_new(root, t[i].name, tensor_entry(&t[i], off, end)) < 0) {
            mn_fail(e, "%s: tensor \"%s\" is duplicated or its name is not "
                    "valid UTF-8", path, t[i].name);
            goto out;
        }
        off = end;
    }
    char *json = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!json) {
        mn_fail(e, "%s: cannot encode the header", path);
        goto out;
    }
    size_t n = strlen(json), pad = (8 - n % 8) % 8;
    text = malloc(n + pad + 1);
    if (text) {
        memcpy(text, json, n);
        memset(text + n, ' ', pad);
        text[n + pad] = '\0';
        *len = n + pad;
        /* hashed with its own digits unset, then they are set */
        unsigned char *digits = header_checksum_digits((unsigned char *)text, n + pad);
        char hex[17];
        snprintf(hex, sizeof hex, "%016" PRIx64, fnv1a(FNV_OFFSET, (unsigned char *)text, n + pad));
        if (digits)
            memcpy(digits, hex, 16);
        else {
            free(text);
            text = NULL;
            mn_fail(e, "%s: cannot place the header checksum", path);
        }
    } else {
        mn_fail(e, "%s: out of memory", path);
    }
    free(json);
out:
    json_decref(root);
    return text;
}

static int write_all(Sink *s, const char *header, size_t hlen,
                     const StTensorOut *t, int n_tensors,
                     const uint64_t *counts)
{
    unsigned char lenbuf[8];
    put_le64(lenbuf, hlen);
    if (sink_put(s, lenbuf, 8) < 0 || sink_put(s, header, hlen) < 0)
        return -1;
    if (emit_data(s, t, n_tensors, counts) < 0)
        return -1;
    errno = 0;
    if (fflush(s->fp) != 0) {
        s->err = errno ? errno : EIO;
        return -1;
    }
    if (fsync(fileno(s->fp)) != 0) {
        s->err = errno;
        return -1;
    }
    return 0;
}

/* The folder's entry for the renamed file is only durable once the folder
 * itself is synced. Filesystems that cannot sync a folder say EINVAL;
 * nothing more can be done there. */
static int sync_folder(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash)
        dir = strdup(".");
    else if (slash == path)
        dir = strdup("/");
    else
        dir = strndup(path, (size_t)(slash - path));
    if (!dir)
        return ENOMEM;
    int err = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        err = errno;
    else {
        if (fsync(fd) != 0 && errno != EINVAL)
            err = errno;
        close(fd);
    }
    free(dir);
    return err;
}

static int write_file(const char *path, const char *header, size_t hlen,
                      const StTensorOut *t, int n_tensors,
                      const uint64_t *counts, MnError *e)
{
    size_t cap = strlen(path) + 32;
    char *tmp = malloc(cap);
    if (!tmp)
        return mn_fail(e, "%s: out of memory", path);
    snprintf(tmp, cap, "%s.tmp.%ld", path, (long)getpid());

    Sink s = {.fp = fopen(tmp, "wb"), .fault_after = fault_limit()};
    if (!s.fp) {
        int err = errno;
        mn_fail(e, "%s: cannot create %s: %s", path, tmp, strerror(err));
        free(tmp);
        return -1;
    }
    write_all(&s, header, hlen, t, n_tensors, counts);
    errno = 0;
    if (fclose(s.fp) != 0 && !s.err)
        s.err = errno ? errno : EIO;
    if (!s.err && rename(tmp, path) != 0)
        s.err = errno;
    if (s.err) {
        unlink(tmp);
        mn_fail(e, "%s: cannot write (via %s): %s", path, tmp,
                strerror(s.err));
        free(tmp);
        return -1;
    }
    free(tmp);
    int err = sync_folder(path);
    if (err)
        return mn_fail(e, "%s: written, but syncing its folder failed: %s",
                       path, strerror(err));
    return 0;
}

int safetensors_write(const char *path, const StTensorOut *t, int n_tensors,
                      const StMeta *meta, int n_meta, MnError *e)
{
    if (n_tensors < 0 || n_meta < 0 || (n_tensors && !t)
        || (n_meta && !meta))
        return mn_fail(e, "%s: invalid tensor or metadata list", path);
    uint64_t *counts = calloc((size_t)n_tensors + 1, sizeof *counts);
    if (!counts)
        return mn_fail(e, "%s: out of memory", path);
    int rc = -1;
    char *header = NULL;
    for (int i = 0; i < n_tensors; i++)
        if (check_tensor_out(path, &t[i], i, &counts[i], e) < 0)
            goto out;

    Sink hasher = {.hash = FNV_OFFSET};
    emit_data(&hasher, t, n_tensors, counts);
    size_t hlen;
    header = build_header(path, t, n_tensors, counts, meta, n_meta,
                          hasher.hash, &hlen, e);
    if (header)
        rc = write_file(path, header, hlen, t, n_tensors, counts, e);
out:
    free(header);
    free(counts);
    return rc;
}

/* ---- reading ----------------------------------------------------------- */

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    {"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"F8_E5M2", 1}, {"F8_E4M3", 1},
    {"I16", 2}, {"U16", 2}, {"F16", 2}, {"BF16", 2},
    {"I32", 4}, {"U32", 4}, {"F32", 4},
    {"I64", 8}, {"U64", 8}, {"F64", 8}, {"C64", 8},
};

static size_t dtype_size(const char *name)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(dtypes[i].name, name) == 0)
            return dtypes[i].size;
    return 0;
}

static int read_whole(StFile *f, const char *path, MnError *e)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return mn_fail(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return mn_fail(e, "%s: not a regular file", path);
    }
    f->size = (size_t)st.st_size;
    f->buf = malloc(f->size ? f->size : 1);
    if (!f->buf) {
        fclose(fp);
        return mn_fail(e, "%s: out of memory for %zu bytes", path, f->size);
    }
    size_t got = fread(f->buf, 1, f->size, fp);
    int err = ferror(fp) ? errno : 0;
    fclose(fp);
    if (got != f->size)
        return mn_fail(e, "%s: read failed: %s", path,
                       err ? strerror(err) : "file shrank while reading");
    return 0;
}

static int parse_dtype(StTensorInfo *ti, json_t *v, const char *path,
                       size_t *elsize, MnError *e)
{
    json_t *d = json_object_get(v, "dtype");
    if (!json_is_string(d))
        return mn_fail(e, "%s: tensor \"%s\": \"dtype\" is missing or not a "
                       "string", path, ti->name);
    const char *s = json_string_value(d);
    *elsize = dtype_size(s);
    if (!*elsize)
        return mn_fail(e, "%s: tensor \"%s\": unknown dtype \"%.32s\"", path,
                       ti->name, s);
    snprintf(ti->dtype, sizeof ti->dtype, "%s", s);
    return 0;
}

static int parse_shape(StTensorInfo *ti, json_t *v, const char *path,
                       MnError *e)
{
    json_t *sh = json_object_get(v, "shape");
    if (!json_is_array(sh))
        return mn_fail(e, "%s: tensor \"%s\": \"shape\" is missing or not "
                       "an array", path, ti->name);
    size_t nd = json_array_size(sh);
    if (nd > ST_MAX_DIMS)
        return mn_fail(e, "%s: tensor \"%s\": %zu dimensions, at most %d "
                       "supported", path, ti->name, nd, ST_MAX_DIMS);
    ti->ndim = (int)nd;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(sh, i);
        if (!json_is_integer(d))
            return mn_fail(e, "%s: tensor \"%s\": shape entry %zu is not an "
                           "integer", path, ti->name, i);
        if (json_integer_value(d) < 0)
            return mn_fail(e, "%s: tensor \"%s\": shape entry %zu is "
                           "negative (%" JSON_INTEGER_FORMAT ")", path,
                           ti->name, i, json_integer_value(d));
        ti->shape[i] = json_integer_value(d);
    }
    return 0;
}

static int parse_offsets(StTensorInfo *ti, json_t *v, const char *path,
                         MnError *e)
{
    json_t *o = json_object_get(v, "data_offsets");
    json_t *b = json_array_get(o, 0), *en = json_array_get(o, 1);
    if (!json_is_array(o) || json_array_size(o) != 2 || !json_is_integer(b)
        || !json_is_integer(en))
        return mn_fail(e, "%s: tensor \"%s\": \"data_offsets\" is missing or "
                       "not two integers [begin, end]", path, ti->name);
    json_int_t bi = json_integer_value(b), ei = json_integer_value(en);
    if (bi < 0 || ei < bi || (unsigned long long)ei > SIZE_MAX)
        return mn_fail(e, "%s: tensor \"%s\": data_offsets [%"
                       JSON_INTEGER_FORMAT ", %" JSON_INTEGER_FORMAT "] are "
                       "negative or reversed", path, ti->name, bi, ei);
    ti->begin = (size_t)bi;
    ti->end = (size_t)ei;
    return 0;
}

static int parse_tensor(StTensorInfo *ti, const char *name, json_t *v,
                        const char *path, size_t data_len, MnError *e)
{
    char sh[128];
    size_t elsize;
    ti->name = strdup(name);
    if (!ti->name)
        return mn_fail(e, "%s: out of memory", path);
    if (!json_is_object(v))
        return mn_fail(e, "%s: tensor \"%s\": entry is not a JSON object",
                       path, name);
    if (parse_dtype(ti, v, path, &elsize, e) < 0
        || parse_shape(ti, v, path, e) < 0
        || parse_offsets(ti, v, path, e) < 0)
        return -1;
    uint64_t count;
    if (shape_count(ti->ndim, ti->shape, &count) < 0
        || count > UINT64_MAX / elsize)
        return mn_fail(e, "%s: tensor \"%s\": shape %s is too large (its "
                       "byte size overflows)", path, name,
                       safetensors_shape_text(sh, sizeof sh, ti->ndim, ti->shape));
    if (count * elsize != (uint64_t)(ti->end - ti->begin))
        return mn_fail(e, "%s: tensor \"%s\": shape %s of %s needs %" PRIu64
                       " bytes but data_offsets [%zu, %zu] span %zu", path,
                       name, safetensors_shape_text(sh, sizeof sh, ti->ndim, ti->shape),
                       ti->dtype, count * elsize, ti->begin, ti->end,
                       ti->end - ti->begin);
    if (ti->end > data_len)
        return mn_fail(e, "%s: tensor \"%s\": data_offsets [%zu, %zu] run "
                       "past the end of the %zu-byte data section "
                       "(truncated file?)", path, name, ti->begin, ti->end,
                       data_len);
    return 0;
}

static int parse_metadata(StFile *f, json_t *m, const char *path, MnError *e)
{
    if (!json_is_object(m))
        return mn_fail(e, "%s: __metadata__ is not a JSON object", path);
    f->meta = calloc(json_object_size(m) + 1, sizeof *f->meta);
    if (!f->meta)
        return mn_fail(e, "%s: out of memory", path);
    const char *key;
    json_t *v;
    json_object_foreach(m, key, v) {
        if (!json_is_string(v))
            return mn_fail(e, "%s: metadata \"%s\" is not a string", path,
                           key);
        StMeta *sm = &f->meta[f->n_meta++];
        sm->key = strdup(key);
        sm->value = strdup(json_string_value(v));
        if (!sm->key || !sm->value)
            return mn_fail(e, "%s: out of memory", path);
    }
    return 0;
}

static int by_range(const void *a, const void *b)
{
    const StTensorInfo *x = *(const StTensorInfo *const *)a;
    const StTensorInfo *y = *(const StTensorInfo *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

/* Ranges sorted by start must tile the data section exactly: anything
 * else is a gap, an overlap or bytes nobody claims. */
static int check_coverage(const StFile *f, const char *path, MnError *e)
{
    size_t data_len = f->size - f->data_start;
    const StTensorInfo **order = malloc(((size_t)f->n_tensors + 1)
                                        * sizeof *order);
    if (!order)
        return mn_fail(e, "%s: out of memory", path);
    for (int i = 0; i < f->n_tensors; i++)
        order[i] = &f->tensors[i];
    qsort(order, (size_t)f->n_tensors, sizeof *order, by_range);
    size_t at = 0;
    const StTensorInfo *prev = NULL;
    int rc = 0;
    for (int i = 0; i < f->n_tensors && rc == 0; i++) {
        const StTensorInfo *ti = order[i];
        if (ti->begin < at)
            rc = mn_fail(e, "%s: tensors \"%s\" and \"%s\" overlap in the "
                         "data section", path, prev->name, ti->name);
        else if (ti->begin > at)
            rc = mn_fail(e, "%s: gap of %zu unclaimed bytes in the data "
                         "section before tensor \"%s\"", path,
                         ti->begin - at, ti->name);
        at = ti->end;
        prev = ti;
    }
    if (rc == 0 && at != data_len)
        rc = mn_fail(e, "%s: %zu trailing bytes after the last tensor's "
                     "data", path, data_len - at);
    free(order);
    return rc;
}

static int parse_hex64(const char *s, uint64_t *v)
{
    if (strlen(s) != 16)
        return -1;
    uint64_t x = 0;
    for (int i = 0; i < 16; i++) {
        int c = s[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        x = x << 4 | (uint64_t)d;
    }
    *v = x;
    return 0;
}

static int verify_checksum(const StFile *f, const char *path, MnError *e)
{
    const char *want = safetensors_meta(f, ST_CHECKSUM_KEY);
    if (!want)
        return 0;
    uint64_t w;
    if (parse_hex64(want, &w) < 0)
        return mn_fail(e, "%s: malformed %s \"%.32s\" (expected 16 hex "
                       "digits)", path, ST_CHECKSUM_KEY, want);
    uint64_t got = fnv1a(FNV_OFFSET, f->buf + f->data_start,
                         f->size - f->data_start);
    if (got != w)
        return mn_fail(e, "%s: checksum mismatch: the data section is "
                       "damaged (stored %016" PRIx64 ", computed %016" PRIx64
                       ")", path, w, got);
    return 0;
}

static int verify_header_checksum(const StFile *f, const char *path, MnError *e)
{
    const char *want = safetensors_meta(f, ST_HEADER_CHECKSUM_KEY);
    uint64_t w;
    if (!want)
        return 0;
    if (parse_hex64(want, &w) < 0)
        return mn_fail(e, "%s: malformed %s \"%.32s\" (expected 16 hex digits)", path,
                       ST_HEADER_CHECKSUM_KEY, want);
    size_t n = f->data_start - 8;
    unsigned char *copy = malloc(n ? n : 1);
    if (!copy)
        return mn_fail(e, "%s: out of memory", path);
    memcpy(copy, f->buf + 8, n);
    unsigned char *digits = header_checksum_digits(copy, n);
    if (digits)
        memcpy(digits, ST_UNSET_CHECKSUM, 16);
    uint64_t got = digits ? fnv1a(FNV_OFFSET, copy, n) : 0;
    free(copy);
    if (!digits)
        return mn_fail(e, "%s: the header checksum is not where it belongs: the header was edited",
                       path);
    if (got != w)
        return mn_fail(e, "%s: checksum mismatch: the header (its metadata or tensor table) is "
                       "damaged or was edited (stored %016" PRIx64 ", computed %016" PRIx64 ")",
                       path, w, got);
    return 0;
}

static json_t *load_header(StFile *f, const char *path, MnError *e)
{
    if (f->size < 8) {
        mn_fail(e, "%s: truncated: %zu bytes, too short for the 8-byte "
                "header length", path, f->size);
        return NULL;
    }
    uint64_t n = get_le64(f->buf);
    if (n > ST_MAX_HEADER) {
        mn_fail(e, "%s: absurd header length %" PRIu64 " (limit %llu): not "
                "a safetensors file?", path, n, ST_MAX_HEADER);
        return NULL;
    }
    if (n > f->size - 8) {
        mn_fail(e, "%s: truncated: the header length is %" PRIu64 " bytes "
                "but only %zu follow", path, n, f->size - 8);
        return NULL;
    }
    f->data_start = 8 + (size_t)n;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)f->buf + 8, (size_t)n,
                              JSON_REJECT_DUPLICATES, &jerr);
    if (!root && json_error_code(&jerr) == json_error_duplicate_key)
        mn_fail(e, "%s: header names a tensor or key twice: %s (at byte %d)",
                path, jerr.text, jerr.position);
    else if (!root)
        mn_fail(e, "%s: header is not valid JSON: %s (at byte %d)", path,
                jerr.text, jerr.position);
    else if (!json_is_object(root)) {
        mn_fail(e, "%s: header is not a JSON object", path);
        json_decref(root);
        root = NULL;
    }
    return root;
}

static int parse_entries(StFile *f, json_t *root, const char *path,
                         MnError *e)
{
    f->tensors = calloc(json_object_size(root) + 1, sizeof *f->tensors);
    if (!f->tensors)
        return mn_fail(e, "%s: out of memory", path);
    size_t data_len = f->size - f->data_start;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if (parse_metadata(f, v, path, e) < 0)
                return -1;
            continue;
        }
        if (parse_tensor(&f->tensors[f->n_tensors++], key, v, path,
                         data_len, e) < 0)
            return -1;
    }
    return 0;
}

int safetensors_read(StFile *f, const char *path, MnError *e)
{
    memset(f, 0, sizeof *f);
    if (read_whole(f, path, e) < 0) {
        safetensors_free(f);
        return -1;
    }
    json_t *root = load_header(f, path, e);
    int rc = -1;
    if (root && parse_entries(f, root, path, e) == 0
        && check_coverage(f, path, e) == 0
        && verify_header_checksum(f, path, e) == 0
        && verify_checksum(f, path, e) == 0)
        rc = 0;
    json_decref(root);
    if (rc < 0)
        safetensors_free(f);
    return rc;
}

void safetensors_free(StFile *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        free((char *)f->meta[i].key);
        free((char *)f->meta[i].value);
    }
    free(f->tensors);
    free(f->meta);
    free(f->buf);
    memset(f, 0, sizeof *f);
}

const StTensorInfo *safetensors_find(const StFile *f, const char *name)
{
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

const char *safetensors_meta(const StFile *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0)
            return f->meta[i].value;
    return NULL;
}

/* IEEE half (1-5-10) or bfloat16 (1-8-7) to float: both are exact. */
static float half_to_float(uint16_t h, int bf16)
{
    uint32_t u;
    if (bf16)
        u = (uint32_t)h << 16;
    else {
        uint32_t sign = (uint32_t)(h >> 15) << 31, ex = (h >> 10) & 0x1f, man = h & 0x3ffu;
        if (ex == 0x1f)
            u = sign | 0x7f800000u | man << 13;
        else if (ex == 0) {
            /* zero or subnormal: man * 2^-24 */
            float v = (float)man * 5.9604644775390625e-08f;
            memcpy(&u, &v, 4);
            u |= sign;
        } else
            u = sign | (ex + 112) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int same_shape(const StTensorInfo *ti, int ndim, const int64_t *shape)
{
    if (ti->ndim != ndim)
        return 0;
    for (int i = 0; i < ndim; i++)
        if (ti->shape[i] != shape[i])
            return 0;
    return 1;
}

int safetensors_get_f32(const StFile *f, const char *name, float *dst,
                        int ndim, const int64_t *shape, MnError *e)
{
    char have[128], want[128];
    const StTensorInfo *ti = safetensors_find(f, name);
    if (!ti)
        return mn_fail(e, "no tensor \"%s\" in the file", name);
    int width = strcmp(ti->dtype, "F32") == 0 ? 4 :
                strcmp(ti->dtype, "F16") == 0 || strcmp(ti->dtype, "BF16") == 0 ? 2 : 0;
    if (!width)
        return mn_fail(e, "tensor \"%s\" has dtype %s; only F32, F16 and BF16 can be "
                       "read as floats", name, ti->dtype);
    if (ndim < 0 || ndim > ST_MAX_DIMS || (ndim && !shape))
        return mn_fail(e, "tensor \"%s\": invalid expected shape (%d "
                       "dimensions)", name, ndim);
    if (!same_shape(ti, ndim, shape))
        return mn_fail(e, "tensor \"%s\" has shape %s, expected %s", name,
                       safetensors_shape_text(have, sizeof have, ti->ndim, ti->shape),
                       safetensors_shape_text(want, sizeof want, ndim, shape));
    /* The data section need not be aligned (other tools do not pad), so
     * assemble each float from its little-endian bytes. */
    const unsigned char *p = f->buf + f->data_start + ti->begin;
    size_t n = (ti->end - ti->begin) / (size_t)width;
    if (width == 2) {
        /* Hub models also come in half precision: widened exactly. */
        int bf = ti->dtype[0] == 'B';
        for (size_t i = 0; i < n; i++, p += 2)
            dst[i] = half_to_float((uint16_t)(p[0] | p[1] << 8), bf);
        return 0;
    }
    for (size_t i = 0; i < n; i++, p += 4) {
        uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8
                     | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        memcpy(&dst[i], &u, 4);
    }
    return 0;
}
