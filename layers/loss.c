/* loss.c — losses on logits: binary cross-entropy with logits and softmax
 * cross-entropy, weighted means, stable for any logit magnitude. */

#include "layers_internal.h"

#include <math.h>

float nn_bce_logits(float *dlogits, const float *logits, const float *targets,
                    const float *weights, int n) {
    double wsum = 0, loss = 0;
    for (int i = 0; i < n; i++) wsum += weights ? weights[i] : 1.0;
    double inv = wsum > 0 ? 1.0 / wsum : 0.0;
    for (int i = 0; i < n; i++) {
        double z = logits[i], t = targets[i], wi = weights ? weights[i] : 1.0;
        /* max(z,0) - z t + log(1 + exp(-|z|)) */
        double e = exp(-fabs(z));
        double li = (z > 0 ? z : 0) - z * t + log1p(e);
        double s = z >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
        loss += wi * li;
        if (dlogits) dlogits[i] = (float)((s - t) * wi * inv);
    }
    return (float)(loss * inv);
}

float nn_softmax_xent(float *dlogits, float *probs, const float *logits, const int *labels,
                      const float *weights, int n, int k) {
    double wsum = 0, loss = 0;
    for (int i = 0; i < n; i++) wsum += weights ? weights[i] : 1.0;
    double inv = wsum > 0 ? 1.0 / wsum : 0.0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        int y = labels[i];
        if (y < 0 || y >= k) nn_fatal("nn_softmax_xent: label %d of row %d not in [0,%d)", y, i, k);
        double wi = weights ? weights[i] : 1.0;
        double mx = z[0];
        for (int j = 1; j < k; j++) mx = z[j] > mx ? z[j] : mx;
        double s = 0;
        for (int j = 0; j < k; j++) s += exp(z[j] - mx);
        double lse = mx + log(s);
        loss += wi * (lse - z[y]);
        for (int j = 0; j < k; j++) {
            double p = exp(z[j] - lse);
            if (probs) probs[(size_t)i * k + j] = (float)p;
            if (dlogits) dlogits[(size_t)i * k + j] = (float)((p - (j == y)) * wi * inv);
        }
    }
    return (float)(loss * inv);
}
