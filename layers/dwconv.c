/* dwconv.c — depthwise 2-D convolution (multiplier 1), NHWC / [KH,KW,C]:
 * direct kernels vectorised over channels, a bounds-check-free 3x3 interior. */

#include "layers_internal.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static void act_row(float *restrict o, int c, nn_act act) {
    if (act == NN_ACT_RELU)
        for (int j = 0; j < c; j++) o[j] = o[j] > 0.f ? o[j] : 0.f;
    else if (act == NN_ACT_RELU6)
        for (int j = 0; j < c; j++) {
            float v = o[j] > 0.f ? o[j] : 0.f;
            o[j] = v < 6.f ? v : 6.f;
        }
}

/* One output pixel of a 3x3 window fully inside the input: p points at the
 * top-left input pixel, rs/cs are the row and column strides (floats). */
static inline void dw3x3_px(float *restrict o, const float *restrict p, size_t rs, size_t cs,
                            const float *restrict w, const float *restrict b, int C) {
    const float *restrict p0 = p, *restrict p1 = p + cs, *restrict p2 = p + 2 * cs;
    const float *restrict p3 = p + rs, *restrict p4 = p + rs + cs, *restrict p5 = p + rs + 2 * cs;
    const float *restrict p6 = p + 2 * rs, *restrict p7 = p + 2 * rs + cs;
    const float *restrict p8 = p + 2 * rs + 2 * cs;
    const float *restrict w0 = w, *restrict w1 = w + C, *restrict w2 = w + 2 * C;
    const float *restrict w3 = w + 3 * C, *restrict w4 = w + 4 * C, *restrict w5 = w + 5 * C;
    const float *restrict w6 = w + 6 * C, *restrict w7 = w + 7 * C, *restrict w8 = w + 8 * C;
    if (b) {
        for (int c = 0; c < C; c++)
            o[c] = b[c] + p0[c] * w0[c] + p1[c] * w1[c] + p2[c] * w2[c] + p3[c] * w3[c] +
                   p4[c] * w4[c] + p5[c] * w5[c] + p6[c] * w6[c] + p7[c] * w7[c] + p8[c] * w8[c];
    } else {
        for (int c = 0; c < C; c++)
            o[c] = p0[c] * w0[c] + p1[c] * w1[c] + p2[c] * w2[c] + p3[c] * w3[c] + p4[c] * w4[c] +
                   p5[c] * w5[c] + p6[c] * w6[c] + p7[c] * w7[c] + p8[c] * w8[c];
    }
}

void nn_dwconv2d_forward(nn_tensor *out, const nn_tensor *in, const float *w, const float *b,
                         const nn_conv_geom *g, nn_act act) {
    /* in [N,H,W,C], w [KH,KW,C], out [N,OH,OW,C] */
    nn_tensor_check(in, -1, g->in_h, g->in_w, -1, "nn_dwconv2d_forward: in");
    nn_tensor_check(out, in->n, g->out_h, g->out_w, in->c, "nn_dwconv2d_forward: out");
    if (!w) nn_fatal("nn_dwconv2d_forward: weight is NULL");
    const int C = in->c, H = g->in_h, W = g->in_w, OH = g->out_h, OW = g->out_w;
    const int KH = g->kh, KW = g->kw;
    const int is3 = KH == 3 && KW == 3 && g->dil_h == 1 && g->dil_w == 1;
    long nrows = (long)in->n * OH;
#pragma omp parallel for schedule(static) if ((size_t)nrows * OW * C * KH * KW > NN_PAR_MIN)
    for (long r = 0; r < nrows; r++) {
        int img = (int)(r / OH), oh = (int)(r % OH);
        const float *src = in->data + (size_t)img * H * W * C;
        float *orow = out->data + (size_t)r * OW * C;
        int ih0 = oh * g->stride_h - g->pad_t;
        int row_in = ih0 >= 0 && ih0 + KH - 1 < H;
        for (int ow = 0; ow < OW; ow++) {
            float *restrict o = orow + (size_t)ow * C;
            int iw0 = ow * g->stride_w - g->pad_l;
            if (is3 && row_in && iw0 >= 0 && iw0 + 2 < W) {
                dw3x3_px(o, src + ((size_t)ih0 * W + iw0) * C, (size_t)W * C, (size_t)C, w, b, C);
            } else {
                if (b)
                    memcpy(o, b, sizeof(float) * C);
                else
                    memset(o, 0, sizeof(float) * C);
                for (int kh = 0; kh < KH; kh++) {
                    int ih = ih0 + kh * g->dil_h;
                    if (ih < 0 || ih >= H) continue;
                    for (int kw = 0; kw < KW; kw++) {
                        int iw = iw0 + kw * g->dil_w;
                        if (iw < 0 || iw >= W) continue;
                        const float *restrict p = src + ((size_t)ih * W + iw) * C;
                        const float *restrict wk = w + ((size_t)kh * KW + kw) * C;
                        for (int c = 0; c < C; c++) o[c] += p[c] * wk[c];
                    }
                }
            }
            act_row(o, C, act);
        }
    }
}

void nn_dwconv2d_backward(nn_tensor *din, float *dw, float *db, const nn_tensor *dout,
                          const nn_tensor *in, const float *w, const nn_conv_geom *g) {
    /* dout [N,OH,OW,C], in/din [N,H,W,C]; dw [KH,KW,C] +=, db [C] += */
    nn_tensor_check(in, -1, g->in_h, g->in_w, -1, "nn_dwconv2d_backward: in");
    nn_tensor_check(dout, in->n, g->out_h, g->out_w, in->c, "nn_dwconv2d_backward: dout");
    if (din) nn_tensor_check_same(in, din, "nn_dwconv2d_backward: din");
    if (din && !w) nn_fatal("nn_dwconv2d_backward: weight is NULL");
    const int C = in->c, H = g->in_h, W = g->in_w, OH = g->out_h, OW = g->out_w;
    const int KH = g->kh, KW = g->kw, N = in->n;
    if (db) nn__colsum_acc(db, dout->data, (size_t)N * OH * OW, C);
    if (!dw && !din) return;
    /* Threads own disjoint channel blocks, so dw and din need no reduction and
     * the result does not depend on the thread count. */
    int nt = 1;
#ifdef _OPENMP
    if ((size_t)N * OH * OW * C * KH * KW > NN_PAR_MIN) nt = omp_get_max_threads();
#endif
    int nblk = (C + 15) / 16;
    if (nblk > nt) nblk = nt;
    int blk = ((C + nblk - 1) / nblk + 15) / 16 * 16;
    nblk = (C + blk - 1) / blk;
#pragma omp parallel for schedule(static, 1) if (nblk > 1)
    for (int bk = 0; bk < nblk; bk++) {
        const int c0 = bk * blk, nc = C - c0 < blk ? C - c0 : blk;
        if (din)
            for (size_t px = 0; px < (size_t)N * H * W; px++)
                memset(din->data + px * C + c0, 0, sizeof(float) * nc);
        for (int img = 0; img < N; img++) {
            const float *src = in->data + (size_t)img * H * W * C + c0;
            float *dsrc = din ? din->data + (size_t)img * H * W * C + c0 : NULL;
            for (int oh = 0; oh < OH; oh++) {
                int ih0 = oh * g->stride_h - g->pad_t;
                for (int ow = 0; ow < OW; ow++) {
                    const float *restrict d =
                        dout->data + (((size_t)img * OH + oh) * OW + ow) * C + c0;
                    int iw0 = ow * g->stride_w - g->pad_l;
                    for (int kh = 0; kh < KH; kh++) {
                        int ih = ih0 + kh * g->dil_h;
                        if (ih < 0 || ih >= H) continue;
                        for (int kw = 0; kw < KW; kw++) {
                            int iw = iw0 + kw * g->dil_w;
                            if (iw < 0 || iw >= W) continue;
                            size_t off = ((size_t)ih * W + iw) * C;
                            size_t wo = ((size_t)kh * KW + kw) * C + c0;
                            if (dw) {
                                const float *restrict p = src + off;
                                float *restrict q = dw + wo;
                                for (int c = 0; c < nc; c++) q[c] += d[c] * p[c];
                            }
                            if (dsrc) {
                                float *restrict q = dsrc + off;
                                const float *restrict wk = w + wo;
                                for (int c = 0; c < nc; c++) q[c] += d[c] * wk[c];
                            }
                        }
                    }
                }
            }
        }
    }
}
