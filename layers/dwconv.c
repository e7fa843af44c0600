/* dwconv.c — depthwise 2-D convolution (multiplier 1), NHWC / [KH,KW,C]:
 * direct kernels vectorised over channels, a bounds-check-free 3x3 interior. */

#include "layers_internal.h"
#include "dwconv_simd.h"

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
    if (nn__dwconv3x3_forward(out, in, w, b, g, act) == 0) return; /* AVX-512/AVX2 3x3 */
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

enum { ACC = 8192 }; /* floats of the per-row dw accumulator of a channel block */

/* Output row `oh`, columns [owa, owb), of the backward pass for block
 * channels [cs, ce):
 * src/dsrc = image base + c0, drow = dout row + c0, w = weight + c0 (tap
 * stride C), acc [taps][nc] (NULL: no dw). */
static void bwd_row_generic(const nn_conv_geom *g, int C, int oh, int owa, int owb,
                            const float *src, float *dsrc, const float *drow, const float *w,
                            float *acc, int nc, int cs, int ce) {
    const int H = g->in_h, W = g->in_w, KH = g->kh, KW = g->kw;
    const int ih0 = oh * g->stride_h - g->pad_t;
    for (int ow = owa; ow < owb; ow++) {
        const float *restrict d = drow + (size_t)ow * C;
        int iw0 = ow * g->stride_w - g->pad_l;
        for (int kh = 0; kh < KH; kh++) {
            int ih = ih0 + kh * g->dil_h;
            if (ih < 0 || ih >= H) continue;
            for (int kw = 0; kw < KW; kw++) {
                int iw = iw0 + kw * g->dil_w;
                if (iw < 0 || iw >= W) continue;
                size_t off = ((size_t)ih * W + iw) * C;
                int tap = kh * KW + kw;
                if (acc) {
                    const float *restrict p = src + off;
                    float *restrict q = acc + (size_t)tap * nc;
                    for (int c = cs; c < ce; c++) q[c] += d[c] * p[c];
                }
                if (dsrc) {
                    float *restrict q = dsrc + off;
                    const float *restrict wk = w + (size_t)tap * C;
                    for (int c = cs; c < ce; c++) q[c] += d[c] * wk[c];
                }
            }
        }
    }
}

/* 8 channels as one vector (GCC vector extension: AVX2 here, AVX-512
 * halves elsewhere); unaligned loads and stores through memcpy. */
typedef float v8 __attribute__((vector_size(32)));
static inline v8 ld8(const float *p) {
    v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void st8(float *p, v8 v) { memcpy(p, &v, sizeof v); }

/* bwd_row_generic for a 3x3 window (dilation 1), interior columns
 * [ow0, ow1) of an interior row, block channels [cv, cv+8): the nine dw sums
 * and the nine weights stay in registers (two sweeps so each fits the 16
 * AVX2 registers). */
static void bwd_row_3x3(const nn_conv_geom *g, int C, int oh, int ow0, int ow1, const float *src,
                        float *dsrc, const float *drow, const float *w, float *acc, int nc,
                        int cv) {
    const int W = g->in_w, sw = g->stride_w, pl = g->pad_l;
    const int ih0 = oh * g->stride_h - g->pad_t;
    const size_t rs = (size_t)W * C;
    const float *base = src + ((size_t)ih0 * W) * C + cv;
    const float *dr = drow + cv;
    if (acc) {
        v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0}, a8 = {0};
        for (int ow = ow0; ow < ow1; ow++) {
            v8 d = ld8(dr + (size_t)ow * C);
            const float *p = base + (size_t)(ow * sw - pl) * C;
            a0 += d * ld8(p);
            a1 += d * ld8(p + C);
            a2 += d * ld8(p + 2 * C);
            a3 += d * ld8(p + rs);
            a4 += d * ld8(p + rs + C);
            a5 += d * ld8(p + rs + 2 * C);
            a6 += d * ld8(p + 2 * rs);
            a7 += d * ld8(p + 2 * rs + C);
            a8 += d * ld8(p + 2 * rs + 2 * C);
        }
        float *q = acc + cv;
        st8(q, ld8(q) + a0);
        st8(q + nc, ld8(q + nc) + a1);
        st8(q + 2 * nc, ld8(q + 2 * nc) + a2);
        st8(q + 3 * nc, ld8(q + 3 * nc) + a3);
        st8(q + 4 * nc, ld8(q + 4 * nc) + a4);
        st8(q + 5 * nc, ld8(q + 5 * nc) + a5);
        st8(q + 6 * nc, ld8(q + 6 * nc) + a6);
        st8(q + 7 * nc, ld8(q + 7 * nc) + a7);
        st8(q + 8 * nc, ld8(q + 8 * nc) + a8);
    }
    if (dsrc) {
        const float *wc = w + cv;
        v8 w0 = ld8(wc), w1 = ld8(wc + C), w2 = ld8(wc + 2 * C), w3 = ld8(wc + 3 * C);
        v8 w4 = ld8(wc + 4 * C), w5 = ld8(wc + 5 * C), w6 = ld8(wc + 6 * C), w7 = ld8(wc + 7 * C);
        v8 w8 = ld8(wc + 8 * C);
        float *dbase = dsrc + ((size_t)ih0 * W) * C + cv;
        for (int ow = ow0; ow < ow1; ow++) {
            v8 d = ld8(dr + (size_t)ow * C);
            float *q = dbase + (size_t)(ow * sw - pl) * C;
            st8(q, ld8(q) + d * w0);
            st8(q + C, ld8(q + C) + d * w1);
            st8(q + 2 * C, ld8(q + 2 * C) + d * w2);
            st8(q + rs, ld8(q + rs) + d * w3);
            st8(q + rs + C, ld8(q + rs + C) + d * w4);
            st8(q + rs + 2 * C, ld8(q + rs + 2 * C) + d * w5);
            st8(q + 2 * rs, ld8(q + 2 * rs) + d * w6);
            st8(q + 2 * rs + C, ld8(q + 2 * rs + C) + d * w7);
            st8(q + 2 * rs + 2 * C, ld8(q + 2 * rs + 2 * C) + d * w8);
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
     * the result does not depend on the thread count. dw is summed per output
     * row in a small local buffer (fewer rounding errors, L1 resident). */
    int nt = 1;
#ifdef _OPENMP
    if ((size_t)N * OH * OW * C * KH * KW > NN_PAR_MIN) nt = omp_get_max_threads();
#endif
    int cap = ACC / (KH * KW) / 16 * 16;
    int blk = ((C + nt - 1) / nt + 15) / 16 * 16;
    if (cap < 1) nn_fatal("nn_dwconv2d_backward: %dx%d window too large", KH, KW);
    if (cap < 16) cap = ACC / (KH * KW);
    if (blk > cap) blk = cap;
    const int nblk = (C + blk - 1) / blk;
    const int fast = KH == 3 && KW == 3 && g->dil_h == 1 && g->dil_w == 1;
#pragma omp parallel for schedule(dynamic, 1) if (nt > 1 && nblk > 1)
    for (int bk = 0; bk < nblk; bk++) {
        const int c0 = bk * blk, nc = C - c0 < blk ? C - c0 : blk;
        const int nv = fast ? nc / 8 * 8 : 0; /* channels done 8 at a time */
        float acc[ACC];
        for (int img = 0; img < N; img++) {
            const float *src = in->data + (size_t)img * H * W * C + c0;
            float *dsrc = din ? din->data + (size_t)img * H * W * C + c0 : NULL;
            int zeroed = 0; /* din rows [0, zeroed) of this image are cleared */
            for (int oh = 0; oh <= OH; oh++) {
                /* clear din rows just before their first use (no separate
                 * pass over memory); after the last row, clear the rest */
                int need = oh < OH ? oh * g->stride_h - g->pad_t + (KH - 1) * g->dil_h + 1 : H;
                if (need > H) need = H;
                for (; dsrc && zeroed < need; zeroed++) {
                    float *z = dsrc + (size_t)zeroed * W * C;
                    if (nc == C) { /* one block: the row is contiguous */
                        memset(z, 0, sizeof(float) * W * C);
                        continue;
                    }
                    for (int iw = 0; iw < W; iw++) /* inline: no libc call per pixel */
                        for (int c = 0; c < nc; c++) z[(size_t)iw * C + c] = 0.f;
                }
                if (oh == OH) break;
                const float *drow = dout->data + ((size_t)img * OH + oh) * OW * C + c0;
                if (dw) memset(acc, 0, sizeof(float) * KH * KW * nc);
                float *a = dw ? acc : NULL;
                /* interior columns [ow0, ow1): the 3x3 window lies inside */
                int ow0 = OW, ow1 = OW;
                int ih0 = oh * g->stride_h - g->pad_t;
                if (fast && ih0 >= 0 && ih0 + 2 < H && W - 3 + g->pad_l >= 0) {
                    ow0 = (g->pad_l + g->stride_w - 1) / g->stride_w;
                    ow1 = (W - 3 + g->pad_l) / g->stride_w + 1;
                    if (ow1 > OW) ow1 = OW;
                    if (ow0 > ow1) ow0 = ow1;
                }
                bwd_row_generic(g, C, oh, 0, ow0, src, dsrc, drow, w + c0, a, nc, 0, nc);
                bwd_row_generic(g, C, oh, ow1, OW, src, dsrc, drow, w + c0, a, nc, 0, nc);
                for (int cv = 0; cv < nv; cv += 8)
                    bwd_row_3x3(g, C, oh, ow0, ow1, src, dsrc, drow, w + c0, a, nc, cv);
                if (nv < nc)
                    bwd_row_generic(g, C, oh, ow0, ow1, src, dsrc, drow, w + c0, a, nc, nv, nc);
                if (dw)
                    for (int tap = 0; tap < KH * KW; tap++) {
                        float *restrict q = dw + (size_t)tap * C + c0;
                        const float *restrict a = acc + (size_t)tap * nc;
                        for (int c = 0; c < nc; c++) q[c] += a[c];
                    }
            }
        }
    }
}
