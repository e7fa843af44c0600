/* dropout.c — inverted dropout: zero with probability p in training, scale
 * the kept values by 1/(1-p); the mask keeps each element's factor. */

#include "layers_internal.h"

void nn_dropout_forward(nn_tensor *out, float *mask, const nn_tensor *in, float p, int training,
                        nn_rng *rng) {
    nn_tensor_check(in, -1, -1, -1, -1, "nn_dropout_forward: in");
    nn_tensor_check_same(in, out, "nn_dropout_forward: out");
    size_t n = nn_tensor_numel(in);
    if (!training || p <= 0.f) {
        if (mask)
            for (size_t i = 0; i < n; i++) mask[i] = 1.f;
        if (out->data != in->data)
            for (size_t i = 0; i < n; i++) out->data[i] = in->data[i];
        return;
    }
    if (!(p < 1.f)) nn_fatal("nn_dropout_forward: p = %g must be < 1", (double)p);
    if (!mask || !rng) nn_fatal("nn_dropout_forward: training needs a mask and an rng");
    const float keep = 1.f / (1.f - p);
    /* serial: the rng sequence fixes the mask, independent of threads */
    for (size_t i = 0; i < n; i++) {
        mask[i] = nn_rng_uniform(rng) < p ? 0.f : keep;
        out->data[i] = in->data[i] * mask[i];
    }
}

void nn_dropout_backward(nn_tensor *din, const nn_tensor *dout, const float *mask) {
    nn_tensor_check(dout, -1, -1, -1, -1, "nn_dropout_backward: dout");
    nn_tensor_check_same(dout, din, "nn_dropout_backward: din");
    if (!mask) nn_fatal("nn_dropout_backward: mask is NULL");
    size_t n = nn_tensor_numel(dout);
    const float *d = dout->data;
    float *o = din->data;
#pragma omp parallel for schedule(static) if (n > NN_PAR_MIN)
    for (size_t i = 0; i < n; i++) o[i] = d[i] * mask[i];
}
