/* dwconv_simd.h — the SIMD 3x3 depthwise forward kernel (internal): AVX-512
 * or AVX2 chosen at run time, bias and activation fused. Not a public API. */
#ifndef NN_DWCONV_SIMD_H
#define NN_DWCONV_SIMD_H

#include "nnmask.h"

/* out = act(depthwise3x3(in, w) + b) for a 3x3 window with dilation 1, any
 * stride and padding (shapes already checked by the caller). Returns -1,
 * doing nothing, when it does not apply (other windows, no AVX2, rows wider
 * than its zero row); the caller then runs its generic loop. */
int nn__dwconv3x3_forward(nn_tensor *out, const nn_tensor *in, const float *w, const float *b,
                          const nn_conv_geom *g, nn_act act);
/* One output row of that kernel: rows[kh] is input row oh*stride - pad_t + kh
 * ([W, C]; NULL = outside the image, read as zeros), out [OW, C]. Any level,
 * plain C included (for the fused inverted-residual block). */
void nn__dwconv3x3_row(const float *const rows[3], float *out, const float *w, const float *b,
                       int C, int W, int OW, int stride, int pad_l, nn_act act);
/* 2 = AVX-512, 1 = AVX2, 0 = none; force caps it (-1: automatic). */
int nn__dwconv3x3_level(void);
void nn__dwconv3x3_force(int level);

#endif
