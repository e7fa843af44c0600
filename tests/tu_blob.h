/* tu_blob.h — a growing byte buffer for tests that build files in memory:
 * blob_put() is an stb_image_write callback (stbi_write_*_to_func) and an
 * append for hand-made bytes; the caller frees b.d. */
#ifndef NN_TU_BLOB_H
#define NN_TU_BLOB_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nnmask.h"

typedef struct {
    uint8_t *d;
    size_t n;
} blob;

static inline void blob_put(void *ctx, void *data, int size) {
    blob *b = ctx;
    uint8_t *d = realloc(b->d, b->n + (size_t)size);
    if (!d) nn_fatal("out of memory");
    b->d = d;
    memcpy(b->d + b->n, data, (size_t)size);
    b->n += (size_t)size;
}
#endif
