/* layers_internal.h — small helpers shared by the layer kernels (not public):
 * activation clamps, parallel thresholds and a deterministic column sum. */
#ifndef NN_LAYERS_INTERNAL_H
#define NN_LAYERS_INTERNAL_H

#include "nnmask.h"

#include <stddef.h>

/* The project builds with -O2, where GCC 12 only vectorises loops with the
 * "very cheap" cost model (no runtime alias checks, no epilogues): almost
 * none of the channel loops below. The kernels need the full vectoriser. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

/* Work (floats touched) below which a loop stays serial. */
#define NN_PAR_MIN 32768

static inline float nn__act1(float v, nn_act act) {
    if (act == NN_ACT_RELU) return v > 0.f ? v : 0.f;
    if (act == NN_ACT_RELU6) return v < 0.f ? 0.f : (v > 6.f ? 6.f : v);
    return v;
}

/* row[c] = act(row[c] + b[c]) (b may be NULL) for `rows` rows of c floats. */
void nn__bias_act(float *x, size_t rows, int c, const float *b, nn_act act);
/* acc[j] += sum_r x[r*c + j]; deterministic (does not depend on threads). */
void nn__colsum_acc(float *acc, const float *x, size_t rows, int c);
/* The number of images processed per im2col chunk of a convolution. */
int nn__conv_chunk(const nn_conv_geom *g, int n);
int nn__conv_is_pointwise(const nn_conv_geom *g);
/* Row-major C = op(A) op(B) + beta C, ta/tb = transpose A/B (0/1). Large
 * products are split over the OpenMP team (rows of C, or columns when it has
 * few rows), each part one single-threaded OpenBLAS call: one thread pool,
 * no OpenMP/OpenBLAS spin contention. */
void nn__sgemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc);
#endif
