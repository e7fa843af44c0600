/* dwconv_simd.c — 3x3 depthwise convolution forward, NHWC, strides 1 and 2,
 * any padding: AVX-512 or AVX2 (chosen at run time) with bias + activation
 * fused, weights held in registers per 16/8-channel block. */

#include "dwconv_simd.h"
#include "gemm_pw.h"

#include <immintrin.h>
#include <stddef.h>

/* Rows above/below the input read this instead (never written). */
#define ZROW_FLOATS (1 << 17)
static const float zrow[ZROW_FLOATS] __attribute__((aligned(64)));

static int forced = -1;
void nn__dwconv3x3_force(int level) { forced = level; }
int nn__dwconv3x3_level(void) {
    int lv = nn__cpu_simd_level();
    return forced >= 0 && forced < lv ? forced : lv;
}

typedef struct {
    const float *rows[3]; /* input rows ih0..ih0+2 (zrow when outside) */
    float *out;           /* output row [OW, C] */
    const float *w, *b;
    int C, W, OW, sw, pl;
    nn_act act;
} dw_row;

/* ------------------------------------------------------------- AVX-512 */
#define T512 __attribute__((target("avx512f,avx2,fma")))

/* Output pixels ow..ow+3 (all interior) of one 16-channel block; input
 * column iw0 = ow*S - pad_l; S (1 or 2) a constant after inlining. */
T512 static inline __attribute__((always_inline)) void
quad512(const float *p0, const float *p1, const float *p2, float *o, const __m512 *w, __m512 bias,
        __mmask16 m, int ow, int iw0, int C, const int S, nn_act act) {
    __m512 a0 = bias, a1 = bias, a2 = bias, a3 = bias;
    const float *rows[3] = {p0, p1, p2};
#pragma GCC unroll 3
    for (int kh = 0; kh < 3; kh++) {
        const float *p = rows[kh] + (size_t)iw0 * C;
        __m512 x[3 * 3 + 3];
#pragma GCC unroll 9
        for (int j = 0; j < 3 * S + 3; j++) x[j] = _mm512_maskz_loadu_ps(m, p + (size_t)j * C);
        const __m512 wa = w[kh * 3], wb = w[kh * 3 + 1], wc = w[kh * 3 + 2];
        a0 = _mm512_fmadd_ps(x[0], wa, a0);
        a1 = _mm512_fmadd_ps(x[S], wa, a1);
        a2 = _mm512_fmadd_ps(x[2 * S], wa, a2);
        a3 = _mm512_fmadd_ps(x[3 * S], wa, a3);
        a0 = _mm512_fmadd_ps(x[1], wb, a0);
        a1 = _mm512_fmadd_ps(x[S + 1], wb, a1);
        a2 = _mm512_fmadd_ps(x[2 * S + 1], wb, a2);
        a3 = _mm512_fmadd_ps(x[3 * S + 1], wb, a3);
        a0 = _mm512_fmadd_ps(x[2], wc, a0);
        a1 = _mm512_fmadd_ps(x[S + 2], wc, a1);
        a2 = _mm512_fmadd_ps(x[2 * S + 2], wc, a2);
        a3 = _mm512_fmadd_ps(x[3 * S + 2], wc, a3);
    }
    const __m512 zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.f);
    if (act != NN_ACT_NONE) {
        a0 = _mm512_max_ps(a0, zero), a1 = _mm512_max_ps(a1, zero);
        a2 = _mm512_max_ps(a2, zero), a3 = _mm512_max_ps(a3, zero);
    }
    if (act == NN_ACT_RELU6) {
        a0 = _mm512_min_ps(a0, six), a1 = _mm512_min_ps(a1, six);
        a2 = _mm512_min_ps(a2, six), a3 = _mm512_min_ps(a3, six);
    }
    float *d = o + (size_t)ow * C;
    _mm512_mask_storeu_ps(d, m, a0);
    _mm512_mask_storeu_ps(d + C, m, a1);
    _mm512_mask_storeu_ps(d + 2 * (size_t)C, m, a2);
    _mm512_mask_storeu_ps(d + 3 * (size_t)C, m, a3);
}

T512 static void row512(const dw_row *r) {
    const int C = r->C, W = r->W, OW = r->OW, sw = r->sw, pl = r->pl;
    const __m512 zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.f);
    /* output columns whose 3 taps are all inside [0, W) */
    int lo = (pl + sw - 1) / sw, hi = W - 3 + pl < 0 ? 0 : (W - 3 + pl) / sw + 1;
    if (hi > OW) hi = OW;
    if (lo > hi) lo = hi;
    for (int c0 = 0; c0 < C; c0 += 16) {
        const int nc = C - c0 < 16 ? C - c0 : 16;
        const __mmask16 m = (__mmask16)((1u << nc) - 1u);
        __m512 w[9];
        for (int k = 0; k < 9; k++) w[k] = _mm512_maskz_loadu_ps(m, r->w + (size_t)k * C + c0);
        const __m512 bias = r->b ? _mm512_maskz_loadu_ps(m, r->b + c0) : zero;
        const float *p0 = r->rows[0] + c0, *p1 = r->rows[1] + c0, *p2 = r->rows[2] + c0;
        float *o = r->out + c0;
        /* interior, 4 output pixels at a time: each input vector is loaded
         * once per row and used by every output that reads it; 4 chains */
        int q = lo;
        if (sw == 1)
            for (; q + 4 <= hi; q += 4) quad512(p0, p1, p2, o, w, bias, m, q, q - pl, C, 1, r->act);
        else if (sw == 2)
            for (; q + 4 <= hi; q += 4) quad512(p0, p1, p2, o, w, bias, m, q, 2 * q - pl, C, 2, r->act);
        for (int ow = 0; ow < OW; ow++) {
            if (ow == lo && q > lo) ow = q; /* the quads did [lo, q) */
            if (ow >= OW) break;
            const int iw0 = ow * sw - pl;
            __m512 acc = bias;
            if (ow >= lo && ow < hi) {
                const size_t a = (size_t)iw0 * C;
                acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, p0 + a), w[0], acc);
                acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, p0 + a + C), w[1], acc);
                acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, p0 + a + 2 * C), w[2], acc);
                acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, p1 + a), w[3], acc);
                acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, p1 + a + C), w[4], acc);
                acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, p1 + a + 2 * C), w[5], acc);
                acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, p2 + a), w[6], acc);
                acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, p2 + a + C), w[7], acc);
                acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, p2 + a + 2 * C), w[8], acc);
            } else {
                for (int kw = 0; kw < 3; kw++) {
                    const int iw = iw0 + kw;
                    if (iw < 0 || iw >= W) continue;
                    const size_t a = (size_t)iw * C;
                    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, p0 + a), w[kw], acc);
                    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, p1 + a), w[3 + kw], acc);
                    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, p2 + a), w[6 + kw], acc);
                }
            }
            if (r->act != NN_ACT_NONE) acc = _mm512_max_ps(acc, zero);
            if (r->act == NN_ACT_RELU6) acc = _mm512_min_ps(acc, six);
            _mm512_mask_storeu_ps(o + (size_t)ow * C, m, acc);
        }
    }
}

/* ---------------------------------------------------------------- AVX2 */
#define T256 __attribute__((target("avx2,fma")))

T256 static void row256(const dw_row *r) {
    const int C = r->C, W = r->W, OW = r->OW, sw = r->sw, pl = r->pl;
    static const int lanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    const __m256 zero = _mm256_setzero_ps(), six = _mm256_set1_ps(6.f);
    int lo = (pl + sw - 1) / sw, hi = W - 3 + pl < 0 ? 0 : (W - 3 + pl) / sw + 1;
    if (hi > OW) hi = OW;
    if (lo > hi) lo = hi;
    for (int c0 = 0; c0 < C; c0 += 8) {
        const int nc = C - c0 < 8 ? C - c0 : 8;
        const __m256i m = _mm256_loadu_si256((const __m256i *)(lanes + 8 - nc));
        __m256 w[9];
        for (int k = 0; k < 9; k++) w[k] = _mm256_maskload_ps(r->w + (size_t)k * C + c0, m);
        const __m256 bias = r->b ? _mm256_maskload_ps(r->b + c0, m) : zero;
        const float *p0 = r->rows[0] + c0, *p1 = r->rows[1] + c0, *p2 = r->rows[2] + c0;
        float *o = r->out + c0;
        for (int ow = 0; ow < OW; ow++) {
            const int iw0 = ow * sw - pl;
            __m256 acc = bias;
            if (ow >= lo && ow < hi) {
                const size_t a = (size_t)iw0 * C;
                acc = _mm256_fmadd_ps(_mm256_maskload_ps(p0 + a, m), w[0], acc);
                acc = _mm256_fmadd_ps(_mm256_maskload_ps(p0 + a + C, m), w[1], acc);
                acc = _mm256_fmadd_ps(_mm256_maskload_ps(p0 + a + 2 * C, m), w[2], acc);
                acc = _mm256_fmadd_ps(_mm256_maskload_ps(p1 + a, m), w[3], acc);
                acc = _mm256_fmadd_ps(_mm256_maskload_ps(p1 + a + C, m), w[4], acc);
                acc = _mm256_fmadd_ps(_mm256_maskload_ps(p1 + a + 2 * C, m), w[5], acc);
                acc = _mm256_fmadd_ps(_mm256_maskload_ps(p2 + a, m), w[6], acc);
                acc = _mm256_fmadd_ps(_mm256_maskload_ps(p2 + a + C, m), w[7], acc);
                acc = _mm256_fmadd_ps(_mm256_maskload_ps(p2 + a + 2 * C, m), w[8], acc);
            } else {
                for (int kw = 0; kw < 3; kw++) {
                    const int iw = iw0 + kw;
                    if (iw < 0 || iw >= W) continue;
                    const size_t a = (size_t)iw * C;
                    acc = _mm256_fmadd_ps(_mm256_maskload_ps(p0 + a, m), w[kw], acc);
                    acc = _mm256_fmadd_ps(_mm256_maskload_ps(p1 + a, m), w[3 + kw], acc);
                    acc = _mm256_fmadd_ps(_mm256_maskload_ps(p2 + a, m), w[6 + kw], acc);
                }
            }
            if (r->act != NN_ACT_NONE) acc = _mm256_max_ps(acc, zero);
            if (r->act == NN_ACT_RELU6) acc = _mm256_min_ps(acc, six);
            _mm256_maskstore_ps(o + (size_t)ow * C, m, acc);
        }
    }
}

static void row_c(const dw_row *r) {
    const int C = r->C, W = r->W;
    for (int ow = 0; ow < r->OW; ow++) {
        float *o = r->out + (size_t)ow * C;
        for (int c = 0; c < C; c++) o[c] = r->b ? r->b[c] : 0.f;
        for (int kh = 0; kh < 3; kh++)
            for (int kw = 0; kw < 3; kw++) {
                const int iw = ow * r->sw - r->pl + kw;
                if (iw < 0 || iw >= W) continue;
                const float *p = r->rows[kh] + (size_t)iw * C, *wk = r->w + (size_t)(kh * 3 + kw) * C;
                for (int c = 0; c < C; c++) o[c] += p[c] * wk[c];
            }
        for (int c = 0; c < C; c++) {
            float v = o[c];
            if (r->act != NN_ACT_NONE) v = v > 0.f ? v : 0.f;
            if (r->act == NN_ACT_RELU6) v = v < 6.f ? v : 6.f;
            o[c] = v;
        }
    }
}

void nn__dwconv3x3_row(const float *const rows[3], float *out, const float *w, const float *b,
                       int C, int W, int OW, int stride, int pad_l, nn_act act) {
    dw_row r = {{rows[0] ? rows[0] : zrow, rows[1] ? rows[1] : zrow, rows[2] ? rows[2] : zrow},
                out, w, b, C, W, OW, stride, pad_l, act};
    if ((size_t)W * C > ZROW_FLOATS && (!rows[0] || !rows[1] || !rows[2]))
        nn_fatal("nn__dwconv3x3_row: a missing row wider than %d floats", ZROW_FLOATS);
    const int lv = nn__dwconv3x3_level();
    if (lv == 2) row512(&r);
    else if (lv == 1) row256(&r);
    else row_c(&r);
}

int nn__dwconv3x3_forward(nn_tensor *out, const nn_tensor *in, const float *w, const float *b,
                          const nn_conv_geom *g, nn_act act) {
    const int lv = nn__dwconv3x3_level();
    if (lv == 0 || g->kh != 3 || g->kw != 3 || g->dil_h != 1 || g->dil_w != 1) return -1;
    const int C = in->c, H = g->in_h, W = g->in_w, OH = g->out_h, OW = g->out_w;
    if ((size_t)W * C > ZROW_FLOATS) return -1;
    const long nrows = (long)in->n * OH;
#pragma omp parallel for schedule(static) if ((size_t)nrows * OW * C > 16384)
    for (long rr = 0; rr < nrows; rr++) {
        const int img = (int)(rr / OH), oh = (int)(rr % OH);
        const float *src = in->data + (size_t)img * H * W * C;
        dw_row r = {{0}, out->data + (size_t)rr * OW * C, w, b, C, W, OW, g->stride_w, g->pad_l, act};
        for (int kh = 0; kh < 3; kh++) {
            const int ih = oh * g->stride_h - g->pad_t + kh;
            r.rows[kh] = ih < 0 || ih >= H ? zrow : src + (size_t)ih * W * C;
        }
        if (lv == 2) row512(&r);
        else row256(&r);
    }
    return 0;
}
