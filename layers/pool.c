/* pool.c — pooling: global average [N,H,W,C] -> [N,1,1,C] and windowed
 * average pooling (padding cells not counted, as TensorFlow). */

#include "layers_internal.h"

#include <string.h>

void nn_gap_forward(nn_tensor *out, const nn_tensor *in) {
    nn_tensor_check(in, -1, -1, -1, -1, "nn_gap_forward: in");
    nn_tensor_check(out, in->n, 1, 1, in->c, "nn_gap_forward: out");
    const int C = in->c, N = in->n;
    const size_t HW = (size_t)in->h * in->w;
    const float inv = 1.f / (float)HW;
#pragma omp parallel for schedule(static) if (nn_tensor_numel(in) > NN_PAR_MIN && N > 1)
    for (int n = 0; n < N; n++) {
        float *restrict o = out->data + (size_t)n * C;
        const float *x = in->data + (size_t)n * HW * C;
        memset(o, 0, sizeof(float) * C);
        for (size_t p = 0; p < HW; p++) {
            const float *restrict xp = x + p * C;
            for (int c = 0; c < C; c++) o[c] += xp[c];
        }
        for (int c = 0; c < C; c++) o[c] *= inv;
    }
}

void nn_gap_backward(nn_tensor *din, const nn_tensor *dout) {
    nn_tensor_check(din, -1, -1, -1, -1, "nn_gap_backward: din");
    nn_tensor_check(dout, din->n, 1, 1, din->c, "nn_gap_backward: dout");
    const int C = din->c;
    const size_t HW = (size_t)din->h * din->w;
    const float inv = 1.f / (float)HW;
    long rows = (long)din->n * (long)HW;
#pragma omp parallel for schedule(static) if (nn_tensor_numel(din) > NN_PAR_MIN)
    for (long r = 0; r < rows; r++) {
        const float *restrict d = dout->data + (size_t)(r / (long)HW) * C;
        float *restrict o = din->data + (size_t)r * C;
        for (int c = 0; c < C; c++) o[c] = d[c] * inv;
    }
}

/* number of window taps of output index o that fall inside [0, n) */
static int taps(int o, int stride, int pad, int k, int dil, int n) {
    int cnt = 0, i0 = o * stride - pad;
    for (int t = 0; t < k; t++) {
        int i = i0 + t * dil;
        cnt += i >= 0 && i < n;
    }
    return cnt;
}

void nn_avgpool_forward(nn_tensor *out, const nn_tensor *in, const nn_conv_geom *g) {
    nn_tensor_check(in, -1, g->in_h, g->in_w, -1, "nn_avgpool_forward: in");
    nn_tensor_check(out, in->n, g->out_h, g->out_w, in->c, "nn_avgpool_forward: out");
    const int C = in->c, H = g->in_h, W = g->in_w, OH = g->out_h, OW = g->out_w;
    long rows = (long)in->n * OH;
#pragma omp parallel for schedule(static) if (nn_tensor_numel(out) * g->kh * g->kw > NN_PAR_MIN)
    for (long r = 0; r < rows; r++) {
        int img = (int)(r / OH), oh = (int)(r % OH);
        const float *src = in->data + (size_t)img * H * W * C;
        int ch = taps(oh, g->stride_h, g->pad_t, g->kh, g->dil_h, H);
        for (int ow = 0; ow < OW; ow++) {
            float *restrict o = out->data + ((size_t)r * OW + ow) * C;
            memset(o, 0, sizeof(float) * C);
            int cnt = ch * taps(ow, g->stride_w, g->pad_l, g->kw, g->dil_w, W);
            for (int kh = 0; kh < g->kh; kh++) {
                int ih = oh * g->stride_h - g->pad_t + kh * g->dil_h;
                if (ih < 0 || ih >= H) continue;
                for (int kw = 0; kw < g->kw; kw++) {
                    int iw = ow * g->stride_w - g->pad_l + kw * g->dil_w;
                    if (iw < 0 || iw >= W) continue;
                    const float *restrict p = src + ((size_t)ih * W + iw) * C;
                    for (int c = 0; c < C; c++) o[c] += p[c];
                }
            }
            float inv = cnt ? 1.f / (float)cnt : 0.f;
            for (int c = 0; c < C; c++) o[c] *= inv;
        }
    }
}

void nn_avgpool_backward(nn_tensor *din, const nn_tensor *dout, const nn_conv_geom *g) {
    nn_tensor_check(din, -1, g->in_h, g->in_w, -1, "nn_avgpool_backward: din");
    nn_tensor_check(dout, din->n, g->out_h, g->out_w, din->c, "nn_avgpool_backward: dout");
    const int C = din->c, H = g->in_h, W = g->in_w, OH = g->out_h, OW = g->out_w;
    long rows = (long)din->n * H;
    /* gather: every input pixel sums dout/count of the windows containing it */
#pragma omp parallel for schedule(static) if (nn_tensor_numel(din) * g->kh * g->kw > NN_PAR_MIN)
    for (long r = 0; r < rows; r++) {
        int img = (int)(r / H), ih = (int)(r % H);
        for (int iw = 0; iw < W; iw++) {
            float *restrict o = din->data + ((size_t)r * W + iw) * C;
            memset(o, 0, sizeof(float) * C);
            for (int kh = 0; kh < g->kh; kh++) {
                int t = ih + g->pad_t - kh * g->dil_h;
                if (t < 0 || t % g->stride_h) continue;
                int oh = t / g->stride_h;
                if (oh >= OH) continue;
                int ch = taps(oh, g->stride_h, g->pad_t, g->kh, g->dil_h, H);
                for (int kw = 0; kw < g->kw; kw++) {
                    int u = iw + g->pad_l - kw * g->dil_w;
                    if (u < 0 || u % g->stride_w) continue;
                    int ow = u / g->stride_w;
                    if (ow >= OW) continue;
                    float inv = 1.f / (float)(ch * taps(ow, g->stride_w, g->pad_l, g->kw, g->dil_w, W));
                    const float *restrict d = dout->data + (((size_t)img * OH + oh) * OW + ow) * C;
                    for (int c = 0; c < C; c++) o[c] += d[c] * inv;
                }
            }
        }
    }
}
