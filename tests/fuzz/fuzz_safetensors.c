/* fuzz_safetensors.c — libFuzzer target: nn_st_open_memory on arbitrary bytes, then every
 * query on what parses: info, find, metadata and nn_st_read_f32 of each tensor. */

#include "nnmask.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nn_st *st = nn_st_open_memory(data, size, "fuzz-input");
    if (!st) return 0;
    for (int i = 0; i < nn_st_meta_count(st); i++) {
        const char *k = nn_st_meta_key(st, i);
        if (!k || !nn_st_meta(st, k)) abort();
    }
    for (int i = 0; i < nn_st_count(st); i++) {
        const char *name = nn_st_name(st, i), *dt;
        int nd;
        int64_t shape[NN_ST_MAX_DIMS];
        if (!name || nn_st_find(st, name) != i) abort();
        if (nn_st_info(st, i, &dt, &nd, shape) != 0) abort();
        size_t n = 1;
        int small = 1;
        for (int k = 0; k < nd; k++) {
            if (shape[k] > (1 << 20) || (shape[k] && n > (size_t)(1 << 20) / (size_t)shape[k]))
                small = 0;
            else
                n *= (size_t)shape[k];
        }
        if (!small) continue;
        float *dst = malloc((n ? n : 1) * sizeof(float));
        nn_st_read_f32(st, name, dst, nd, shape);
        if (nd > 0) { /* a wrong expected shape must fail cleanly */
            shape[0] += 1;
            if (nn_st_read_f32(st, name, dst, nd, shape) == 0) abort();
        }
        free(dst);
    }
    nn_st_close(st);
    return 0;
}
