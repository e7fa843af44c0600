/* batchnorm.c — batch normalisation over N*H*W per channel: training (batch
 * statistics, running-stat update), inference (fused activation), fold. */

#include "layers_internal.h"
#include "bn_fused.h"

#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define SLICE 1024 /* channels handled per elementwise pass (stack arrays) */
#define BN_CHUNK 64 /* rows summed in float before adding to the double totals */

/* Per-channel sums over rows [r0, r1) of stride c, channels [c0+ja, c0+jb):
 * mode 0: s1 = sum(x - k), s2 = sum((x - k)^2) with shift k = x[0]
 * mode 1: s1 = sum(y),     s2 = sum(y * (x - m) * r)   (m, r [nc], from c0)
 * Rows are walked in order (contiguous memory); float partial sums of
 * BN_CHUNK rows (chunks counted from row 0) are added in double into
 * s1[ja..jb), s2[ja..jb). */
static void bn_sum_part(double *s1, double *s2, const float *x, const float *y, const float *m,
                        const float *r, size_t r0, size_t r1, int c, int c0, int ja, int jb,
                        int mode) {
    const int w = jb - ja;
    double a[SLICE], q[SLICE];
    float fa[SLICE], fq[SLICE], k[SLICE], mm[SLICE], rr[SLICE];
    for (int j = 0; j < w; j++) {
        a[j] = q[j] = 0;
        k[j] = mode == 0 ? x[c0 + ja + j] : 0.f;
        mm[j] = mode == 0 ? 0.f : m[ja + j];
        rr[j] = mode == 0 ? 0.f : r[ja + j];
    }
    for (size_t i0 = r0; i0 < r1; i0 += BN_CHUNK) {
        const size_t i1 = r1 - i0 < BN_CHUNK ? r1 : i0 + BN_CHUNK;
        for (int j = 0; j < w; j++) fa[j] = fq[j] = 0.f;
        if (mode == 0) {
            for (size_t i = i0; i < i1; i++) {
                const float *restrict p = x + i * c + c0 + ja;
                for (int j = 0; j < w; j++) {
                    float d = p[j] - k[j];
                    fa[j] += d;
                    fq[j] += d * d;
                }
            }
        } else {
            for (size_t i = i0; i < i1; i++) {
                const float *restrict p = x + i * c + c0 + ja;
                const float *restrict g = y + i * c + c0 + ja;
                for (int j = 0; j < w; j++) {
                    fa[j] += g[j];
                    fq[j] += g[j] * ((p[j] - mm[j]) * rr[j]);
                }
            }
        }
        for (int j = 0; j < w; j++) {
            a[j] += fa[j];
            q[j] += fq[j];
        }
    }
    for (int j = 0; j < w; j++) {
        s1[ja + j] = a[j];
        s2[ja + j] = q[j];
    }
}

/* Per-channel sums over `rows` rows of stride c, channels [c0, c0+nc)
 * (modes as bn_sum_part). Narrow slices (<= 256 channels, the big early
 * layers) split the rows into ng fixed groups of whole BN_CHUNK chunks
 * (ng depends on the shape only); each group's double sums land in g1/g2
 * and are added in group order. Wide slices: each thread owns a range of
 * channels (16-aligned) over all rows. A channel's sum does not depend on
 * the thread count. */
static void bn_reduce(double *s1, double *s2, const float *x, const float *y, const float *m,
                      const float *r, size_t rows, int c, int c0, int nc, int mode) {
    const int nblk = (nc + 15) / 16;
    const size_t nchunk = (rows + BN_CHUNK - 1) / BN_CHUNK;
    int ng = nblk <= 8 ? 8 : nblk <= 16 ? 4 : 1; /* ng * nc <= SLICE */
    if ((size_t)ng > nchunk) ng = nchunk > 0 ? (int)nchunk : 1;
    int nt = 1;
#ifdef _OPENMP
    if (rows * (size_t)nc > NN_PAR_MIN) nt = omp_get_max_threads();
#endif
    if (ng > 1) {
        double g1[SLICE], g2[SLICE];
        if (nt > ng) nt = ng;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
        for (int g = 0; g < ng; g++) {
            size_t r0 = nchunk * g / ng * BN_CHUNK, r1 = nchunk * (g + 1) / ng * BN_CHUNK;
            if (r1 > rows) r1 = rows;
            bn_sum_part(g1 + (size_t)g * nc, g2 + (size_t)g * nc, x, y, m, r, r0, r1, c, c0, 0,
                        nc, mode);
        }
        for (int j = 0; j < nc; j++) {
            double a = 0, q = 0;
            for (int g = 0; g < ng; g++) {
                a += g1[(size_t)g * nc + j];
                q += g2[(size_t)g * nc + j];
            }
            s1[j] = a;
            s2[j] = q;
        }
        return;
    }
    if (nt > nblk) nt = nblk;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        const int ja = nblk * tid / nt * 16, jb0 = nblk * (tid + 1) / nt * 16;
        const int jb = jb0 < nc ? jb0 : nc;
        bn_sum_part(s1, s2, x, y, m, r, 0, rows, c, c0, ja, jb, mode);
    }
}

/* out[:, c0:c0+nc] = act(x * a + b) */
static void affine_rows(float *out, const float *in, const float *a, const float *b,
                        size_t rows, int c, int c0, int nc, nn_act act) {
    long nr = (long)rows;
#pragma omp parallel for schedule(static) if (rows * (size_t)nc > NN_PAR_MIN)
    for (long i = 0; i < nr; i++) {
        const float *restrict x = in + (size_t)i * c + c0;
        float *restrict o = out + (size_t)i * c + c0;
        if (act == NN_ACT_NONE)
            for (int j = 0; j < nc; j++) o[j] = x[j] * a[j] + b[j];
        else if (act == NN_ACT_RELU)
            for (int j = 0; j < nc; j++) {
                float v = x[j] * a[j] + b[j];
                o[j] = v > 0.f ? v : 0.f;
            }
        else
            for (int j = 0; j < nc; j++) {
                float v = x[j] * a[j] + b[j];
                v = v > 0.f ? v : 0.f;
                o[j] = v < 6.f ? v : 6.f;
            }
    }
}

void nn_batchnorm_forward_train(nn_tensor *out, float *mean, float *rstd, const nn_tensor *in,
                                const float *gamma, const float *beta, float *run_mean,
                                float *run_var, float momentum, float eps) {
    nn__batchnorm_forward_train_act(out, mean, rstd, in, gamma, beta, run_mean, run_var, momentum,
                                    eps, NN_ACT_NONE);
}

void nn__batchnorm_forward_train_act(nn_tensor *out, float *mean, float *rstd, const nn_tensor *in,
                                     const float *gamma, const float *beta, float *run_mean,
                                     float *run_var, float momentum, float eps, nn_act act) {
    /* in/out [N,H,W,C]; mean, rstd, gamma, beta, run_* [C] */
    nn_tensor_check(in, -1, -1, -1, -1, "nn_batchnorm_forward_train: in");
    nn_tensor_check_same(in, out, "nn_batchnorm_forward_train: out");
    if (!mean || !rstd || !gamma || !beta) nn_fatal("nn_batchnorm_forward_train: NULL parameter");
    const int C = in->c;
    const size_t M = (size_t)in->n * in->h * in->w;
    double s1[SLICE], s2[SLICE];
    float a[SLICE], b[SLICE];
    for (int c0 = 0; c0 < C; c0 += SLICE) {
        int nc = C - c0 < SLICE ? C - c0 : SLICE;
        bn_reduce(s1, s2, in->data, NULL, NULL, NULL, M, C, c0, nc, 0);
        for (int j = 0; j < nc; j++) {
            int c = c0 + j;
            double mu = s1[j] / (double)M;
            double var = s2[j] / (double)M - mu * mu;
            if (var < 0) var = 0;
            double m = (double)in->data[c] + mu;
            mean[c] = (float)m;
            rstd[c] = (float)(1.0 / sqrt(var + eps));
            if (run_mean) run_mean[c] = momentum * run_mean[c] + (1.f - momentum) * (float)m;
            if (run_var) {
                double uv = M > 1 ? var * (double)M / (double)(M - 1) : var;
                run_var[c] = momentum * run_var[c] + (1.f - momentum) * (float)uv;
            }
            a[j] = rstd[c] * gamma[c];
            b[j] = beta[c] - mean[c] * a[j];
        }
        affine_rows(out->data, in->data, a, b, M, C, c0, nc, act);
    }
}

void nn_batchnorm_backward(nn_tensor *din, float *dgamma, float *dbeta, const nn_tensor *dout,
                           const nn_tensor *in, const float *mean, const float *rstd,
                           const float *gamma) {
    /* dout/in/din [N,H,W,C]; dgamma, dbeta [C] += */
    nn_tensor_check(in, -1, -1, -1, -1, "nn_batchnorm_backward: in");
    nn_tensor_check_same(in, dout, "nn_batchnorm_backward: dout");
    if (din) nn_tensor_check_same(in, din, "nn_batchnorm_backward: din");
    const int C = in->c;
    const size_t M = (size_t)in->n * in->h * in->w;
    double s1[SLICE], s2[SLICE];
    float k1[SLICE], k2[SLICE], k3[SLICE], mm[SLICE], rr[SLICE];
    for (int c0 = 0; c0 < C; c0 += SLICE) {
        int nc = C - c0 < SLICE ? C - c0 : SLICE;
        bn_reduce(s1, s2, in->data, dout->data, mean + c0, rstd + c0, M, C, c0, nc, 1);
        for (int j = 0; j < nc; j++) {
            int c = c0 + j;
            if (dbeta) dbeta[c] += (float)s1[j];
            if (dgamma) dgamma[c] += (float)s2[j];
            /* din = gamma*rstd * (dout - s1/M - xhat * s2/M) */
            k1[j] = gamma[c] * rstd[c];
            k2[j] = (float)(s1[j] / (double)M);
            k3[j] = (float)(s2[j] / (double)M);
            mm[j] = mean[c];
            rr[j] = rstd[c];
        }
        if (!din) continue;
        long nr = (long)M;
#pragma omp parallel for schedule(static) if (M * (size_t)nc > NN_PAR_MIN)
        for (long i = 0; i < nr; i++) {
            const float *restrict x = in->data + (size_t)i * C + c0;
            const float *restrict d = dout->data + (size_t)i * C + c0;
            float *restrict o = din->data + (size_t)i * C + c0;
            for (int j = 0; j < nc; j++) {
                float xh = (x[j] - mm[j]) * rr[j];
                o[j] = k1[j] * (d[j] - k2[j] - xh * k3[j]);
            }
        }
    }
}

void nn_batchnorm_forward_infer(nn_tensor *out, const nn_tensor *in, const float *gamma,
                                const float *beta, const float *run_mean, const float *run_var,
                                float eps, nn_act act) {
    nn_tensor_check(in, -1, -1, -1, -1, "nn_batchnorm_forward_infer: in");
    nn_tensor_check_same(in, out, "nn_batchnorm_forward_infer: out");
    const int C = in->c;
    const size_t M = (size_t)in->n * in->h * in->w;
    float a[SLICE], b[SLICE];
    for (int c0 = 0; c0 < C; c0 += SLICE) {
        int nc = C - c0 < SLICE ? C - c0 : SLICE;
        for (int j = 0; j < nc; j++) {
            int c = c0 + j;
            a[j] = gamma[c] / sqrtf(run_var[c] + eps);
            b[j] = beta[c] - run_mean[c] * a[j];
        }
        affine_rows(out->data, in->data, a, b, M, C, c0, nc, act);
    }
}

void nn_batchnorm_backward_infer(nn_tensor *din, float *dgamma, float *dbeta,
                                 const nn_tensor *dout, const nn_tensor *in, const float *gamma,
                                 const float *run_mean, const float *run_var, float eps) {
    nn_tensor_check(in, -1, -1, -1, -1, "nn_batchnorm_backward_infer: in");
    nn_tensor_check_same(in, dout, "nn_batchnorm_backward_infer: dout");
    if (din) nn_tensor_check_same(in, din, "nn_batchnorm_backward_infer: din");
    const int C = in->c;
    const size_t M = (size_t)in->n * in->h * in->w;
    double s1[SLICE], s2[SLICE];
    float rs[SLICE], a[SLICE], z[SLICE];
    for (int c0 = 0; c0 < C; c0 += SLICE) {
        int nc = C - c0 < SLICE ? C - c0 : SLICE;
        for (int j = 0; j < nc; j++) {
            rs[j] = 1.f / sqrtf(run_var[c0 + j] + eps);
            a[j] = gamma[c0 + j] * rs[j];
            z[j] = 0.f;
        }
        if (dgamma || dbeta) {
            bn_reduce(s1, s2, in->data, dout->data, run_mean + c0, rs, M, C, c0, nc, 1);
            for (int j = 0; j < nc; j++) {
                if (dbeta) dbeta[c0 + j] += (float)s1[j];
                if (dgamma) dgamma[c0 + j] += (float)s2[j];
            }
        }
        if (din) affine_rows(din->data, dout->data, a, z, M, C, c0, nc, NN_ACT_NONE);
    }
}

void nn_batchnorm_fold(float *w, float *b, size_t k, int c, const float *gamma,
                       const float *beta, const float *mean, const float *var, float eps) {
    /* w [k, c] (output channel last), b [c] */
    for (int j = 0; j < c; j++) {
        float s = gamma[j] / sqrtf(var[j] + eps);
        b[j] = (b[j] - mean[j]) * s + beta[j];
        for (size_t i = 0; i < k; i++) w[i * c + j] *= s;
    }
}
