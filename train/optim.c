/* optim.c — optimizers: Adam (bias-corrected, decoupled weight decay = AdamW)
 * and SGD with momentum / Nesterov / L2 weight decay. */

#include "nnmask.h"

#include <math.h>

void nn_adam_step(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, long t) {
    if (t < 1) nn_fatal("nn_adam_step: step t = %ld must be >= 1", t);
    const float c1 = (float)(1.0 / (1.0 - pow(beta1, (double)t)));
    const float c2 = (float)(1.0 / (1.0 - pow(beta2, (double)t)));
    const float b1 = beta1, b2 = beta2, ob1 = 1.f - beta1, ob2 = 1.f - beta2;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = b1 * m[i] + ob1 * gi;
        float vi = b2 * v[i] + ob2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float mh = mi * c1, vh = vi * c2;
        p[i] -= lr * (mh / (sqrtf(vh) + eps) + weight_decay * p[i]);
    }
}

void nn_sgd_step(float *p, const float *g, float *v, size_t n, float lr, float momentum,
                 float weight_decay, int nesterov) {
    if (momentum != 0.f && !v) nn_fatal("nn_sgd_step: momentum %g needs a velocity buffer", (double)momentum);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + weight_decay * p[i];
        if (!v) {
            p[i] -= lr * gi;
            continue;
        }
        float vi = momentum * v[i] + gi;
        v[i] = vi;
        p[i] -= lr * (nesterov ? gi + momentum * vi : vi);
    }
}
