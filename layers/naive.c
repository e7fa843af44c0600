/* naive.c — reference ("naive twin") kernels: direct loops in double, no
 * BLAS, no threads; the tests and nnmask-bench compare the fast ones to them. */

#include "layers_internal.h"

#include <math.h>
#include <string.h>

static double act_d(double v, nn_act act) {
    if (act == NN_ACT_RELU) return v > 0 ? v : 0;
    if (act == NN_ACT_RELU6) return v < 0 ? 0 : (v > 6 ? 6 : v);
    return v;
}

void nn_conv2d_forward_naive(nn_tensor *out, const nn_tensor *in, const float *w, const float *b,
                             const nn_conv_geom *g, nn_act act) {
    nn_tensor_check(in, -1, g->in_h, g->in_w, -1, "nn_conv2d_forward_naive: in");
    nn_tensor_check(out, in->n, g->out_h, g->out_w, -1, "nn_conv2d_forward_naive: out");
    const int Ci = in->c, Co = out->c;
    for (int n = 0; n < in->n; n++)
        for (int oh = 0; oh < g->out_h; oh++)
            for (int ow = 0; ow < g->out_w; ow++)
                for (int co = 0; co < Co; co++) {
                    double s = b ? b[co] : 0;
                    for (int kh = 0; kh < g->kh; kh++) {
                        int ih = oh * g->stride_h - g->pad_t + kh * g->dil_h;
                        if (ih < 0 || ih >= g->in_h) continue;
                        for (int kw = 0; kw < g->kw; kw++) {
                            int iw = ow * g->stride_w - g->pad_l + kw * g->dil_w;
                            if (iw < 0 || iw >= g->in_w) continue;
                            for (int ci = 0; ci < Ci; ci++)
                                s += (double)in->data[(((size_t)n * g->in_h + ih) * g->in_w + iw) * Ci + ci] *
                                     w[(((size_t)kh * g->kw + kw) * Ci + ci) * Co + co];
                        }
                    }
                    out->data[(((size_t)n * g->out_h + oh) * g->out_w + ow) * Co + co] =
                        (float)act_d(s, act);
                }
}

void nn_conv2d_backward_naive(nn_tensor *din, float *dw, float *db, const nn_tensor *dout,
                              const nn_tensor *in, const float *w, const nn_conv_geom *g) {
    nn_tensor_check(in, -1, g->in_h, g->in_w, -1, "nn_conv2d_backward_naive: in");
    nn_tensor_check(dout, in->n, g->out_h, g->out_w, -1, "nn_conv2d_backward_naive: dout");
    if (din) nn_tensor_check_same(in, din, "nn_conv2d_backward_naive: din");
    const int Ci = in->c, Co = dout->c;
    if (din) memset(din->data, 0, nn_tensor_numel(din) * sizeof(float));
    for (int co = 0; co < Co && db; co++) {
        double s = 0;
        for (size_t r = 0; r < (size_t)in->n * g->out_h * g->out_w; r++) s += dout->data[r * Co + co];
        db[co] += (float)s;
    }
    for (int kh = 0; kh < g->kh; kh++)
        for (int kw = 0; kw < g->kw; kw++)
            for (int ci = 0; ci < Ci; ci++)
                for (int co = 0; co < Co; co++) {
                    size_t wi = (((size_t)kh * g->kw + kw) * Ci + ci) * Co + co;
                    double s = 0;
                    for (int n = 0; n < in->n; n++)
                        for (int oh = 0; oh < g->out_h; oh++) {
                            int ih = oh * g->stride_h - g->pad_t + kh * g->dil_h;
                            if (ih < 0 || ih >= g->in_h) continue;
                            for (int ow = 0; ow < g->out_w; ow++) {
                                int iw = ow * g->stride_w - g->pad_l + kw * g->dil_w;
                                if (iw < 0 || iw >= g->in_w) continue;
                                size_t ii = (((size_t)n * g->in_h + ih) * g->in_w + iw) * Ci + ci;
                                double d = dout->data[(((size_t)n * g->out_h + oh) * g->out_w + ow) * Co + co];
                                s += d * in->data[ii];
                                if (din) din->data[ii] += (float)(d * w[wi]);
                            }
                        }
                    if (dw) dw[wi] += (float)s;
                }
}

void nn_dwconv2d_forward_naive(nn_tensor *out, const nn_tensor *in, const float *w, const float *b,
                               const nn_conv_geom *g, nn_act act) {
    nn_tensor_check(in, -1, g->in_h, g->in_w, -1, "nn_dwconv2d_forward_naive: in");
    nn_tensor_check(out, in->n, g->out_h, g->out_w, in->c, "nn_dwconv2d_forward_naive: out");
    const int C = in->c;
    for (int n = 0; n < in->n; n++)
        for (int oh = 0; oh < g->out_h; oh++)
            for (int ow = 0; ow < g->out_w; ow++)
                for (int c = 0; c < C; c++) {
                    double s = b ? b[c] : 0;
                    for (int kh = 0; kh < g->kh; kh++) {
                        int ih = oh * g->stride_h - g->pad_t + kh * g->dil_h;
                        if (ih < 0 || ih >= g->in_h) continue;
                        for (int kw = 0; kw < g->kw; kw++) {
                            int iw = ow * g->stride_w - g->pad_l + kw * g->dil_w;
                            if (iw < 0 || iw >= g->in_w) continue;
                            s += (double)in->data[(((size_t)n * g->in_h + ih) * g->in_w + iw) * C + c] *
                                 w[((size_t)kh * g->kw + kw) * C + c];
                        }
                    }
                    out->data[(((size_t)n * g->out_h + oh) * g->out_w + ow) * C + c] = (float)act_d(s, act);
                }
}

void nn_dwconv2d_backward_naive(nn_tensor *din, float *dw, float *db, const nn_tensor *dout,
                                const nn_tensor *in, const float *w, const nn_conv_geom *g) {
    nn_tensor_check(in, -1, g->in_h, g->in_w, -1, "nn_dwconv2d_backward_naive: in");
    nn_tensor_check(dout, in->n, g->out_h, g->out_w, in->c, "nn_dwconv2d_backward_naive: dout");
    if (din) nn_tensor_check_same(in, din, "nn_dwconv2d_backward_naive: din");
    const int C = in->c;
    if (din) memset(din->data, 0, nn_tensor_numel(din) * sizeof(float));
    for (int c = 0; c < C; c++) {
        double sb = 0;
        for (int kh = 0; kh < g->kh; kh++)
            for (int kw = 0; kw < g->kw; kw++) {
                size_t wi = ((size_t)kh * g->kw + kw) * C + c;
                double s = 0;
                for (int n = 0; n < in->n; n++)
                    for (int oh = 0; oh < g->out_h; oh++) {
                        int ih = oh * g->stride_h - g->pad_t + kh * g->dil_h;
                        if (ih < 0 || ih >= g->in_h) continue;
                        for (int ow = 0; ow < g->out_w; ow++) {
                            int iw = ow * g->stride_w - g->pad_l + kw * g->dil_w;
                            if (iw < 0 || iw >= g->in_w) continue;
                            size_t ii = (((size_t)n * g->in_h + ih) * g->in_w + iw) * C + c;
                            double d = dout->data[(((size_t)n * g->out_h + oh) * g->out_w + ow) * C + c];
                            s += d * in->data[ii];
                            if (din) din->data[ii] += (float)(d * w[wi]);
                        }
                    }
                if (dw) dw[wi] += (float)s;
            }
        for (size_t r = 0; r < (size_t)in->n * g->out_h * g->out_w; r++) sb += dout->data[r * C + c];
        if (db) db[c] += (float)sb;
    }
}

void nn_dense_forward_naive(nn_tensor *out, const nn_tensor *in, const float *w, const float *b,
                            nn_act act) {
    nn_tensor_check(in, -1, -1, -1, -1, "nn_dense_forward_naive: in");
    nn_tensor_check(out, in->n, 1, 1, -1, "nn_dense_forward_naive: out");
    const int In = in->h * in->w * in->c, Out = out->c;
    for (int n = 0; n < in->n; n++)
        for (int o = 0; o < Out; o++) {
            double s = b ? b[o] : 0;
            for (int i = 0; i < In; i++) s += (double)in->data[(size_t)n * In + i] * w[(size_t)i * Out + o];
            out->data[(size_t)n * Out + o] = (float)act_d(s, act);
        }
}

void nn_batchnorm_forward_infer_naive(nn_tensor *out, const nn_tensor *in, const float *gamma,
                                      const float *beta, const float *run_mean,
                                      const float *run_var, float eps, nn_act act) {
    nn_tensor_check(in, -1, -1, -1, -1, "nn_batchnorm_forward_infer_naive: in");
    nn_tensor_check_same(in, out, "nn_batchnorm_forward_infer_naive: out");
    const int C = in->c;
    size_t rows = (size_t)in->n * in->h * in->w;
    for (size_t r = 0; r < rows; r++)
        for (int c = 0; c < C; c++) {
            double x = in->data[r * C + c];
            double y = (x - run_mean[c]) / sqrt((double)run_var[c] + eps) * gamma[c] + beta[c];
            out->data[r * C + c] = (float)act_d(y, act);
        }
}
