/* activations.c — elementwise layers: ReLU, ReLU6, sigmoid, softmax over the
 * last dimension, residual add and channel concat (forward and backward). */

#include "layers_internal.h"

#include <math.h>
#include <string.h>

#define PAR_IF(n) if ((n) > NN_PAR_MIN)

void nn_relu_forward(nn_tensor *out, const nn_tensor *in) {
    nn_tensor_check(in, -1, -1, -1, -1, "nn_relu_forward: in");
    nn_tensor_check_same(in, out, "nn_relu_forward: out");
    size_t n = nn_tensor_numel(in);
    const float *x = in->data;
    float *y = out->data;
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.f ? x[i] : 0.f;
}

void nn_relu_backward(nn_tensor *din, const nn_tensor *dout, const nn_tensor *in) {
    nn_tensor_check(in, -1, -1, -1, -1, "nn_relu_backward: in");
    nn_tensor_check_same(in, dout, "nn_relu_backward: dout");
    nn_tensor_check_same(in, din, "nn_relu_backward: din");
    size_t n = nn_tensor_numel(in);
    const float *x = in->data, *d = dout->data;
    float *o = din->data;
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++) o[i] = x[i] > 0.f ? d[i] : 0.f;
}

void nn_relu6_forward(nn_tensor *out, const nn_tensor *in) {
    nn_tensor_check(in, -1, -1, -1, -1, "nn_relu6_forward: in");
    nn_tensor_check_same(in, out, "nn_relu6_forward: out");
    size_t n = nn_tensor_numel(in);
    const float *x = in->data;
    float *y = out->data;
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++) {
        float v = x[i] > 0.f ? x[i] : 0.f;
        y[i] = v < 6.f ? v : 6.f;
    }
}

/* `in` may be the forward input or output: both give the same mask. */
void nn_relu6_backward(nn_tensor *din, const nn_tensor *dout, const nn_tensor *in) {
    nn_tensor_check(in, -1, -1, -1, -1, "nn_relu6_backward: in");
    nn_tensor_check_same(in, dout, "nn_relu6_backward: dout");
    nn_tensor_check_same(in, din, "nn_relu6_backward: din");
    size_t n = nn_tensor_numel(in);
    const float *x = in->data, *d = dout->data;
    float *o = din->data;
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++) o[i] = (x[i] > 0.f && x[i] < 6.f) ? d[i] : 0.f;
}

void nn_sigmoid_forward(nn_tensor *out, const nn_tensor *in) {
    nn_tensor_check(in, -1, -1, -1, -1, "nn_sigmoid_forward: in");
    nn_tensor_check_same(in, out, "nn_sigmoid_forward: out");
    size_t n = nn_tensor_numel(in);
    const float *x = in->data;
    float *y = out->data;
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++) {
        float e = expf(-fabsf(x[i]));
        float s = 1.f / (1.f + e);
        y[i] = x[i] >= 0.f ? s : e * s;
    }
}

void nn_sigmoid_backward(nn_tensor *din, const nn_tensor *dout, const nn_tensor *out) {
    nn_tensor_check(out, -1, -1, -1, -1, "nn_sigmoid_backward: out");
    nn_tensor_check_same(out, dout, "nn_sigmoid_backward: dout");
    nn_tensor_check_same(out, din, "nn_sigmoid_backward: din");
    size_t n = nn_tensor_numel(out);
    const float *y = out->data, *d = dout->data;
    float *o = din->data;
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++) o[i] = d[i] * y[i] * (1.f - y[i]);
}

void nn_softmax_forward(nn_tensor *out, const nn_tensor *in) {
    nn_tensor_check(in, -1, -1, -1, -1, "nn_softmax_forward: in");
    nn_tensor_check_same(in, out, "nn_softmax_forward: out");
    const int k = in->c;
    long rows = (long)in->n * in->h * in->w;
#pragma omp parallel for schedule(static) PAR_IF((size_t)rows * k)
    for (long r = 0; r < rows; r++) {
        const float *x = in->data + (size_t)r * k;
        float *y = out->data + (size_t)r * k;
        float mx = x[0];
        for (int j = 1; j < k; j++) mx = x[j] > mx ? x[j] : mx;
        double s = 0;
        for (int j = 0; j < k; j++) {
            y[j] = expf(x[j] - mx);
            s += y[j];
        }
        float inv = (float)(1.0 / s);
        for (int j = 0; j < k; j++) y[j] *= inv;
    }
}

void nn_softmax_backward(nn_tensor *din, const nn_tensor *dout, const nn_tensor *out) {
    nn_tensor_check(out, -1, -1, -1, -1, "nn_softmax_backward: out");
    nn_tensor_check_same(out, dout, "nn_softmax_backward: dout");
    nn_tensor_check_same(out, din, "nn_softmax_backward: din");
    const int k = out->c;
    long rows = (long)out->n * out->h * out->w;
#pragma omp parallel for schedule(static) PAR_IF((size_t)rows * k)
    for (long r = 0; r < rows; r++) {
        const float *y = out->data + (size_t)r * k, *d = dout->data + (size_t)r * k;
        float *o = din->data + (size_t)r * k;
        double s = 0;
        for (int j = 0; j < k; j++) s += (double)d[j] * y[j];
        float fs = (float)s;
        for (int j = 0; j < k; j++) o[j] = y[j] * (d[j] - fs);
    }
}

void nn_add_forward(nn_tensor *out, const nn_tensor *a, const nn_tensor *b) {
    nn_tensor_check(a, -1, -1, -1, -1, "nn_add_forward: a");
    nn_tensor_check_same(a, b, "nn_add_forward: b");
    nn_tensor_check_same(a, out, "nn_add_forward: out");
    size_t n = nn_tensor_numel(a);
    const float *x = a->data, *y = b->data;
    float *o = out->data;
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++) o[i] = x[i] + y[i];
}

void nn_add_backward(nn_tensor *da, nn_tensor *db, const nn_tensor *dout) {
    nn_tensor_check(dout, -1, -1, -1, -1, "nn_add_backward: dout");
    if (da) {
        nn_tensor_check_same(dout, da, "nn_add_backward: da");
        if (da->data != dout->data) memcpy(da->data, dout->data, nn_tensor_numel(dout) * sizeof(float));
    }
    if (db) {
        nn_tensor_check_same(dout, db, "nn_add_backward: db");
        if (db->data != dout->data) memcpy(db->data, dout->data, nn_tensor_numel(dout) * sizeof(float));
    }
}

void nn_concat_forward(nn_tensor *out, const nn_tensor *const *ins, int k) {
    if (k <= 0 || !ins) nn_fatal("nn_concat_forward: no inputs");
    nn_tensor_check(out, -1, -1, -1, -1, "nn_concat_forward: out");
    int ctot = 0;
    for (int i = 0; i < k; i++) {
        nn_tensor_check(ins[i], out->n, out->h, out->w, -1, "nn_concat_forward: input");
        ctot += ins[i]->c;
    }
    if (ctot != out->c)
        nn_fatal("nn_concat_forward: out has %d channels, inputs sum to %d", out->c, ctot);
    long rows = (long)out->n * out->h * out->w;
#pragma omp parallel for schedule(static) PAR_IF((size_t)rows * ctot)
    for (long r = 0; r < rows; r++) {
        float *o = out->data + (size_t)r * ctot;
        for (int i = 0; i < k; i++) {
            int c = ins[i]->c;
            memcpy(o, ins[i]->data + (size_t)r * c, sizeof(float) * c);
            o += c;
        }
    }
}

void nn_concat_backward(nn_tensor *const *dins, int k, const nn_tensor *dout) {
    if (k <= 0 || !dins) nn_fatal("nn_concat_backward: no inputs");
    nn_tensor_check(dout, -1, -1, -1, -1, "nn_concat_backward: dout");
    int ctot = 0;
    for (int i = 0; i < k; i++) {
        /* a din with data NULL only gives its width (gradient not needed) */
        const nn_tensor *t = dins[i];
        if (!t || t->n != dout->n || t->h != dout->h || t->w != dout->w)
            nn_fatal("nn_concat_backward: din %d: expected [%d,%d,%d,*], got %s", i, dout->n,
                     dout->h, dout->w, t ? "another shape" : "NULL");
        ctot += dins[i]->c;
    }
    if (ctot != dout->c)
        nn_fatal("nn_concat_backward: dout has %d channels, inputs sum to %d", dout->c, ctot);
    long rows = (long)dout->n * dout->h * dout->w;
#pragma omp parallel for schedule(static) PAR_IF((size_t)rows * ctot)
    for (long r = 0; r < rows; r++) {
        const float *d = dout->data + (size_t)r * ctot;
        for (int i = 0; i < k; i++) {
            int c = dins[i]->c;
            if (dins[i]->data) memcpy(dins[i]->data + (size_t)r * c, d, sizeof(float) * c);
            d += c;
        }
    }
}
