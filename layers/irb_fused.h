/* irb_fused.h — one MobileNetV2 inverted-residual block for inference
 * (internal): expand 1x1 -> depthwise 3x3 -> project 1x1 (+ input), BN
 * folded, computed in strips of rows so the expanded tensor stays in L2. */
#ifndef NN_IRB_FUSED_H
#define NN_IRB_FUSED_H

#include "nnmask.h"

typedef struct {
    int cin, ce, cout;      /* ce == cin and we == NULL: no expand conv */
    const float *we, *be;   /* expand [cin, ce], [ce]  (ReLU6) */
    const float *wd, *bd;   /* depthwise [3, 3, ce], [ce] (ReLU6) */
    const float *wp, *bp;   /* project [ce, cout], [cout] (linear) */
    int residual;           /* out += in (needs stride 1, cin == cout) */
    nn_conv_geom g;         /* the depthwise window: 3x3, dilation 1 */
} nn_irb;

/* Floats of scratch nn__irb_forward needs with `threads` threads. */
size_t nn__irb_scratch_floats(const nn_irb *b, int threads);
/* in [n, g.in_h, g.in_w, cin] -> out [n, g.out_h, g.out_w, cout]; out must
 * not alias in. Splits images (or the rows of one image) over the OpenMP
 * team, at most `threads` threads (the count scratch was sized for); the
 * result does not depend on the split. Never allocates. */
void nn__irb_forward(const nn_irb *b, float *out, const float *in, int n, float *scratch,
                     int threads);

#endif
