/* safetensors files: 8-byte little-endian header length, a JSON header
 * naming each tensor's dtype, shape and byte range, then the raw data.
 * mneme writes F32 tensors and string metadata (`__metadata__`), always
 * atomically (temporary file in the same folder, fsync, rename, fsync of
 * the folder), and refuses a damaged file with a reason instead of
 * crashing. */
#ifndef MNEME_SAFETENSORS_H
#define MNEME_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define ST_MAX_DIMS 4

typedef struct {
    const char *name;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const float *data;         /* product(shape) floats */
} StTensorOut;

typedef struct {
    const char *key;
    const char *value;
} StMeta;

/* Writes tensors in the order given (data offsets ascending) and the
 * metadata, plus a "mneme.checksum" entry over the data bytes, so a bit
 * flip in the data is detected on read. On any failure (disk full, …) the
 * previous file at path is untouched and no temporary file is left. */
int safetensors_write(const char *path, const StTensorOut *t, int n_tensors,
                      const StMeta *meta, int n_meta, MnError *e);

typedef struct {
    char *name;
    char dtype[8];
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t begin, end;         /* byte offsets in the data section */
} StTensorInfo;

typedef struct {
    unsigned char *buf;        /* the whole file */
    size_t size;
    size_t data_start;         /* offset of the data section */
    int n_tensors;
    StTensorInfo *tensors;
    int n_meta;
    StMeta *meta;              /* owned strings */
} StFile;

/* Reads and validates the whole file: header length within the file, JSON
 * well-formed, every tensor with a known dtype, a shape whose size matches
 * its byte range, ranges inside the data section, not overlapping and
 * covering it, and the checksum (when present) matching. Errors read
 * "PATH: reason". */
int safetensors_read(StFile *f, const char *path, MnError *e);
void safetensors_free(StFile *f);

/* Looks a tensor up by name; NULL when absent. */
const StTensorInfo *safetensors_find(const StFile *f, const char *name);
/* Copies an F32 tensor into dst after checking that its shape is exactly
 * (ndim, shape); an error names the tensor and both shapes. */
int safetensors_get_f32(const StFile *f, const char *name, float *dst,
                        int ndim, const int64_t *shape, MnError *e);
/* "[30522, 768]", "[30522]", "[]": a shape in messages; returns buf. */
const char *safetensors_shape_text(char *buf, size_t cap, int ndim, const int64_t *shape);
/* Metadata value for key, or NULL. */
const char *safetensors_meta(const StFile *f, const char *key);

#endif
