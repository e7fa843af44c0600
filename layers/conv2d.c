/* conv2d.c — 2-D convolution, NHWC / HWIO: 1x1 stride-1 as one GEMM on the
 * input, KxK through im2col + GEMM (OpenBLAS), fused bias + activation. */

#include "layers_internal.h"
#include "gemm_pw.h"

#include <cblas.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void nn__sgemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc) {
    const CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
    /* OpenBLAS (pthread build) never starts its own threads here: its idle
     * spinning workers would fight our OpenMP team for the cores. */
    int bt = openblas_get_num_threads();
    if (bt != 1) openblas_set_num_threads(1);
    int nt = 1;
#ifdef _OPENMP
    if ((double)M * N * K >= 4e5 && !omp_in_parallel()) nt = omp_get_max_threads();
#endif
    /* split the rows of C, or its columns when there are few rows */
    int split_m = M >= N || M / 16 >= nt;
    int len = split_m ? M : N;
    if (nt > len / 16) nt = len / 16;
    if (nt <= 1) {
        cblas_sgemm(CblasRowMajor, TA, TB, M, N, K, 1.f, A, lda, B, ldb, beta, C, ldc);
    } else {
        int part = ((len + nt - 1) / nt + 7) / 8 * 8; /* rows/columns per thread */
#pragma omp parallel for schedule(static, 1) num_threads(nt)
        for (int t = 0; t < nt; t++) {
            int s0 = t * part, n = len - s0 < part ? len - s0 : part;
            if (n <= 0) continue;
            if (split_m) /* row s0 of op(A): A + s0*lda, or column s0 when transposed */
                cblas_sgemm(CblasRowMajor, TA, TB, n, N, K, 1.f, ta ? A + s0 : A + (size_t)s0 * lda,
                            lda, B, ldb, beta, C + (size_t)s0 * ldc, ldc);
            else /* column s0 of op(B): B + s0, or row s0 when transposed */
                cblas_sgemm(CblasRowMajor, TA, TB, M, n, K, 1.f, A, lda,
                            tb ? B + (size_t)s0 * ldb : B + s0, ldb, beta, C + s0, ldc);
        }
    }
    if (bt != 1) openblas_set_num_threads(bt);
}

/* ---- shared helpers (declared in layers_internal.h) ---- */
void nn__bias_act(float *x, size_t rows, int c, const float *b, nn_act act) {
    if (!b && act == NN_ACT_NONE) return;
    long nr = (long)rows;
#pragma omp parallel for schedule(static) if (rows * (size_t)c > NN_PAR_MIN)
    for (long r = 0; r < nr; r++) {
        float *restrict row = x + (size_t)r * c;
        if (b)
            for (int j = 0; j < c; j++) row[j] += b[j];
        if (act == NN_ACT_RELU)
            for (int j = 0; j < c; j++) row[j] = row[j] > 0.f ? row[j] : 0.f;
        else if (act == NN_ACT_RELU6)
            for (int j = 0; j < c; j++) {
                float v = row[j] > 0.f ? row[j] : 0.f;
                row[j] = v < 6.f ? v : 6.f;
            }
    }
}

void nn__colsum_acc(float *acc, const float *x, size_t rows, int c) {
    int nblk = (c + 15) / 16;
#pragma omp parallel for schedule(static) if (rows * (size_t)c > NN_PAR_MIN && nblk > 1)
    for (int bk = 0; bk < nblk; bk++) {
        int j0 = bk * 16, nj = c - j0 < 16 ? c - j0 : 16;
        double s[16] = {0};
        if (nj == 16) {
            for (size_t r = 0; r < rows; r++) {
                const float *restrict p = x + r * c + j0;
                for (int j = 0; j < 16; j++) s[j] += p[j];
            }
        } else {
            for (size_t r = 0; r < rows; r++) {
                const float *restrict p = x + r * c + j0;
                for (int j = 0; j < nj; j++) s[j] += p[j];
            }
        }
        for (int j = 0; j < nj; j++) acc[j0 + j] += (float)s[j];
    }
}

int nn__conv_is_pointwise(const nn_conv_geom *g) {
    return g->kh == 1 && g->kw == 1 && g->stride_h == 1 && g->stride_w == 1 && g->pad_t == 0 &&
           g->pad_b == 0 && g->pad_l == 0 && g->pad_r == 0 && g->out_h == g->in_h &&
           g->out_w == g->in_w;
}

/* Images per im2col chunk: enough rows (>= 8192) for an efficient GEMM,
 * not the whole batch for large images. */
int nn__conv_chunk(const nn_conv_geom *g, int n) {
    long pix = (long)g->out_h * g->out_w;
    long c = pix >= 8192 ? 1 : (8192 + pix - 1) / pix;
    return c > n ? (n > 0 ? n : 1) : (int)c;
}

size_t nn_conv2d_scratch_floats(const nn_conv_geom *g, int n, int cin) {
    if (nn__conv_is_pointwise(g)) return 0;
    return (size_t)nn__conv_chunk(g, n) * g->out_h * g->out_w * g->kh * g->kw * cin;
}

/* Short copies/clears inline (a libc call per pixel costs more than the
 * copy when cin is small, e.g. the 3-channel stem). */
static inline void copy_floats(float *restrict d, const float *restrict src, size_t n) {
    if (n >= 64) {
        memcpy(d, src, sizeof(float) * n);
        return;
    }
    for (size_t i = 0; i < n; i++) d[i] = src[i];
}

static inline void zero_floats(float *d, size_t n) {
    if (n >= 64) {
        memset(d, 0, sizeof(float) * n);
        return;
    }
    for (size_t i = 0; i < n; i++) d[i] = 0.f;
}

/* col[(img, oh, ow)][(kh, kw, ci)] for nimg images starting at `in`. */
static void im2col(float *col, const float *in, int nimg, const nn_conv_geom *g, int cin) {
    const int OH = g->out_h, OW = g->out_w, H = g->in_h, W = g->in_w;
    const size_t K = (size_t)g->kh * g->kw * cin;
    long nrows = (long)nimg * OH;
#pragma omp parallel for schedule(static) if ((size_t)nrows * OW * K > NN_PAR_MIN)
    for (long r = 0; r < nrows; r++) {
        int img = (int)(r / OH), oh = (int)(r % OH);
        const float *src = in + (size_t)img * H * W * cin;
        for (int ow = 0; ow < OW; ow++) {
            float *d = col + ((size_t)r * OW + ow) * K;
            for (int kh = 0; kh < g->kh; kh++) {
                int ih = oh * g->stride_h - g->pad_t + kh * g->dil_h;
                if (ih < 0 || ih >= H) {
                    zero_floats(d, (size_t)g->kw * cin);
                    d += (size_t)g->kw * cin;
                    continue;
                }
                const int iw0 = ow * g->stride_w - g->pad_l;
                if (g->dil_w == 1 && iw0 >= 0 && iw0 + g->kw <= W) {
                    /* the whole window row is contiguous in the source */
                    copy_floats(d, src + ((size_t)ih * W + iw0) * cin, (size_t)g->kw * cin);
                    d += (size_t)g->kw * cin;
                    continue;
                }
                for (int kw = 0; kw < g->kw; kw++, d += cin) {
                    int iw = iw0 + kw * g->dil_w;
                    if (iw < 0 || iw >= W)
                        zero_floats(d, cin);
                    else
                        copy_floats(d, src + ((size_t)ih * W + iw) * cin, cin);
                }
            }
        }
    }
}

/* din = col2im(col): gathers, for every input pixel, the columns that read it
 * (race free, so rows run in parallel). */
static void col2im(float *din, const float *col, int nimg, const nn_conv_geom *g, int cin) {
    const int OH = g->out_h, OW = g->out_w, H = g->in_h, W = g->in_w;
    const size_t K = (size_t)g->kh * g->kw * cin;
    long nrows = (long)nimg * H;
#pragma omp parallel for schedule(static) if ((size_t)nrows * W * K > NN_PAR_MIN)
    for (long r = 0; r < nrows; r++) {
        int img = (int)(r / H), ih = (int)(r % H);
        for (int iw = 0; iw < W; iw++) {
            float *restrict d = din + ((size_t)r * W + iw) * cin;
            memset(d, 0, sizeof(float) * cin);
            for (int kh = 0; kh < g->kh; kh++) {
                int t = ih + g->pad_t - kh * g->dil_h;
                if (t < 0 || t % g->stride_h) continue;
                int oh = t / g->stride_h;
                if (oh >= OH) continue;
                for (int kw = 0; kw < g->kw; kw++) {
                    int u = iw + g->pad_l - kw * g->dil_w;
                    if (u < 0 || u % g->stride_w) continue;
                    int ow = u / g->stride_w;
                    if (ow >= OW) continue;
                    const float *restrict s =
                        col + (((size_t)img * OH + oh) * OW + ow) * K + ((size_t)kh * g->kw + kw) * cin;
                    for (int c = 0; c < cin; c++) d[c] += s[c];
                }
            }
        }
    }
}

void nn_conv2d_forward(nn_tensor *out, const nn_tensor *in, const float *w, const float *b,
                       const nn_conv_geom *g, nn_act act, float *scratch) {
    /* in [N,H,W,Cin], w [KH,KW,Cin,Cout], out [N,OH,OW,Cout] */
    nn_tensor_check(in, -1, g->in_h, g->in_w, -1, "nn_conv2d_forward: in");
    nn_tensor_check(out, in->n, g->out_h, g->out_w, -1, "nn_conv2d_forward: out");
    if (!w) nn_fatal("nn_conv2d_forward: weight is NULL");
    const int N = in->n, cin = in->c, cout = out->c;
    if (nn__conv_is_pointwise(g)) {
        int M = N * g->in_h * g->in_w;
        /* bias + activation fused into nnmask's own thin-GEMM micro-kernels */
        nn__gemm_pw(out->data, cout, in->data, cin, w, cout, b, NULL, 0, M, cin, cout, act);
        return;
    }
    if (!scratch) nn_fatal("nn_conv2d_forward: scratch is NULL for a %dx%d conv", g->kh, g->kw);
    const int K = g->kh * g->kw * cin, pix = g->out_h * g->out_w;
    const int chunk = nn__conv_chunk(g, N);
    for (int i0 = 0; i0 < N; i0 += chunk) {
        int nimg = N - i0 < chunk ? N - i0 : chunk;
        im2col(scratch, in->data + (size_t)i0 * g->in_h * g->in_w * cin, nimg, g, cin);
        float *o = out->data + (size_t)i0 * pix * cout;
        nn__gemm_pw(o, cout, scratch, K, w, cout, b, NULL, 0, nimg * pix, K, cout, act);
    }
}

void nn_conv2d_backward(nn_tensor *din, float *dw, float *db, const nn_tensor *dout,
                        const nn_tensor *in, const float *w, const nn_conv_geom *g,
                        float *scratch) {
    /* dout [N,OH,OW,Cout], in/din [N,H,W,Cin]; dw [KH,KW,Cin,Cout] +=, db [Cout] += */
    nn_tensor_check(in, -1, g->in_h, g->in_w, -1, "nn_conv2d_backward: in");
    nn_tensor_check(dout, in->n, g->out_h, g->out_w, -1, "nn_conv2d_backward: dout");
    if (din) nn_tensor_check_same(in, din, "nn_conv2d_backward: din");
    const int N = in->n, cin = in->c, cout = dout->c;
    const int pix = g->out_h * g->out_w;
    if (db) nn__colsum_acc(db, dout->data, (size_t)N * pix, cout);
    if (!dw && !din) return;
    if (din && !w) nn_fatal("nn_conv2d_backward: weight is NULL");
    if (nn__conv_is_pointwise(g)) {
        int M = N * pix;
        if (dw)
            nn__sgemm(1, 0, cin, cout, M, in->data, cin, dout->data, cout, 1.f, dw, cout);
        if (din)
            nn__sgemm(0, 1, M, cin, cout, dout->data, cout, w, cout, 0.f, din->data, cin);
        return;
    }
    if (!scratch) nn_fatal("nn_conv2d_backward: scratch is NULL for a %dx%d conv", g->kh, g->kw);
    const int K = g->kh * g->kw * cin;
    const int chunk = nn__conv_chunk(g, N);
    for (int i0 = 0; i0 < N; i0 += chunk) {
        int nimg = N - i0 < chunk ? N - i0 : chunk;
        const float *d = dout->data + (size_t)i0 * pix * cout;
        size_t ioff = (size_t)i0 * g->in_h * g->in_w * cin;
        if (dw) {
            im2col(scratch, in->data + ioff, nimg, g, cin);
            nn__sgemm(1, 0, K, cout, nimg * pix, scratch, K, d, cout, 1.f, dw, cout);
        }
        if (din) {
            nn__sgemm(0, 1, nimg * pix, K, cout, d, cout, w, cout, 0.f, scratch, K);
            col2im(din->data + ioff, scratch, nimg, g, cin);
        }
    }
}
