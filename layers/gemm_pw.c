/* gemm_pw.c — thin row-major GEMM for 1x1 convolutions on NHWC data (no
 * packing, no copies) with bias, residual and ReLU/ReLU6 fused; AVX-512 and
 * AVX2 register-tile micro-kernels chosen at run time, plain C otherwise. */

#include "gemm_pw.h"

#include <immintrin.h>
#include <stddef.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ------------------------------------------------------------ reference */
void nn__gemm_pw_naive(float *C, int ldc, const float *A, int lda, const float *B, int ldb,
                       const float *bias, const float *R, int ldr, int M, int K, int N,
                       nn_act act) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = bias ? bias[j] : 0.0;
            for (int k = 0; k < K; k++) s += (double)A[(size_t)i * lda + k] * B[(size_t)k * ldb + j];
            if (R) s += R[(size_t)i * ldr + j];
            float v = (float)s;
            if (act == NN_ACT_RELU) v = v > 0.f ? v : 0.f;
            else if (act == NN_ACT_RELU6) v = v < 0.f ? 0.f : (v > 6.f ? 6.f : v);
            C[(size_t)i * ldc + j] = v;
        }
}

/* ----------------------------------------------------------- dispatching */
static int forced = -1;

int nn__cpu_simd_level(void) {
    static int lv = -1;
    if (lv < 0) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f")) lv = 2;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) lv = 1;
        else lv = 0;
    }
    return lv;
}

int nn__gemm_pw_level(void) {
    int lv = nn__cpu_simd_level();
    return forced >= 0 && forced < lv ? forced : lv;
}

void nn__gemm_pw_force(int level) { forced = level; }

/* A tile job: rows [i0, i0+mr) x columns [j0, j0 + nv vectors), the last
 * vector masked to `rem` columns (1..lanes). */
typedef struct {
    float *C;
    const float *A, *B, *bias, *R;
    int ldc, lda, ldb, ldr, K;
    nn_act act;
} gemm_args;

/* ------------------------------------------------------------- AVX-512 */
#define T512 __attribute__((target("avx512f,avx2,fma")))

T512 static inline __attribute__((always_inline)) void
k512(const int MR, const int NV, const gemm_args *g, int i0, int j0, int rem) {
    __m512 acc[16][4];
    const __mmask16 ml = (__mmask16)((1u << rem) - 1u);
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
    const float *a = g->A + (size_t)i0 * g->lda;
    const float *b = g->B + j0;
    const int K = g->K;
    const size_t lda = (size_t)g->lda, ldb = (size_t)g->ldb;
    for (int k = 0; k < K; k++, b += ldb) {
        __m512 bv[4];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            bv[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(ml, b + 16 * v) : _mm512_loadu_ps(b + 16 * v);
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++) {
            __m512 av = _mm512_set1_ps(a[r * lda + k]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
        }
    }
    __m512 bias[4];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
        bias[v] = g->bias ? _mm512_maskz_loadu_ps(v == NV - 1 ? ml : (__mmask16)0xffff, g->bias + j0 + 16 * v)
                          : _mm512_setzero_ps();
    const __m512 zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.f);
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
        float *c = g->C + (size_t)(i0 + r) * g->ldc + j0;
        const float *rr = g->R ? g->R + (size_t)(i0 + r) * g->ldr + j0 : NULL;
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            __mmask16 m = v == NV - 1 ? ml : (__mmask16)0xffff;
            __m512 x = _mm512_add_ps(acc[r][v], bias[v]);
            if (rr) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, rr + 16 * v));
            if (g->act != NN_ACT_NONE) x = _mm512_max_ps(x, zero);
            if (g->act == NN_ACT_RELU6) x = _mm512_min_ps(x, six);
            _mm512_mask_storeu_ps(c + 16 * v, m, x);
        }
    }
}

/* rows per tile for nv vectors of 16 (accumulators + nv + 1 <= 32 zmm) */
static const int mr512[5] = {0, 16, 12, 8, 6};

#define K512_CASE(MR, NV) \
    case MR: k512(MR, NV, g, i0, j0, rem); break;

T512 static void tile512(int nv, int mr, const gemm_args *g, int i0, int j0, int rem) {
    switch (nv) {
    case 1:
        switch (mr) {
            K512_CASE(1, 1) K512_CASE(2, 1) K512_CASE(3, 1) K512_CASE(4, 1) K512_CASE(5, 1)
            K512_CASE(6, 1) K512_CASE(7, 1) K512_CASE(8, 1) K512_CASE(9, 1) K512_CASE(10, 1)
            K512_CASE(11, 1) K512_CASE(12, 1) K512_CASE(13, 1) K512_CASE(14, 1) K512_CASE(15, 1)
            K512_CASE(16, 1)
        }
        break;
    case 2:
        switch (mr) {
            K512_CASE(1, 2) K512_CASE(2, 2) K512_CASE(3, 2) K512_CASE(4, 2) K512_CASE(5, 2)
            K512_CASE(6, 2) K512_CASE(7, 2) K512_CASE(8, 2) K512_CASE(9, 2) K512_CASE(10, 2)
            K512_CASE(11, 2) K512_CASE(12, 2)
        }
        break;
    case 3:
        switch (mr) {
            K512_CASE(1, 3) K512_CASE(2, 3) K512_CASE(3, 3) K512_CASE(4, 3) K512_CASE(5, 3)
            K512_CASE(6, 3) K512_CASE(7, 3) K512_CASE(8, 3)
        }
        break;
    case 4:
        switch (mr) {
            K512_CASE(1, 4) K512_CASE(2, 4) K512_CASE(3, 4) K512_CASE(4, 4) K512_CASE(5, 4)
            K512_CASE(6, 4)
        }
        break;
    }
}

/* ---------------------------------------------------------------- AVX2 */
#define T256 __attribute__((target("avx2,fma")))

T256 static inline __attribute__((always_inline)) void
k256(const int MR, const int NV, const gemm_args *g, int i0, int j0, int rem) {
    __m256 acc[12][2];
    static const int lanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    const __m256i ml = _mm256_loadu_si256((const __m256i *)(lanes + 8 - rem));
    const __m256i mall = _mm256_set1_epi32(-1);
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) acc[r][v] = _mm256_setzero_ps();
    const float *a = g->A + (size_t)i0 * g->lda;
    const float *b = g->B + j0;
    const int K = g->K;
    const size_t lda = (size_t)g->lda, ldb = (size_t)g->ldb;
    for (int k = 0; k < K; k++, b += ldb) {
        __m256 bv[2];
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++)
            bv[v] = v == NV - 1 ? _mm256_maskload_ps(b + 8 * v, ml) : _mm256_loadu_ps(b + 8 * v);
#pragma GCC unroll 12
        for (int r = 0; r < MR; r++) {
            __m256 av = _mm256_broadcast_ss(a + r * lda + k);
#pragma GCC unroll 2
            for (int v = 0; v < NV; v++) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
        }
    }
    __m256 bias[2];
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++)
        bias[v] = g->bias ? _mm256_maskload_ps(g->bias + j0 + 8 * v, v == NV - 1 ? ml : mall)
                          : _mm256_setzero_ps();
    const __m256 zero = _mm256_setzero_ps(), six = _mm256_set1_ps(6.f);
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) {
        float *c = g->C + (size_t)(i0 + r) * g->ldc + j0;
        const float *rr = g->R ? g->R + (size_t)(i0 + r) * g->ldr + j0 : NULL;
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) {
            __m256i m = v == NV - 1 ? ml : mall;
            __m256 x = _mm256_add_ps(acc[r][v], bias[v]);
            if (rr) x = _mm256_add_ps(x, _mm256_maskload_ps(rr + 8 * v, m));
            if (g->act != NN_ACT_NONE) x = _mm256_max_ps(x, zero);
            if (g->act == NN_ACT_RELU6) x = _mm256_min_ps(x, six);
            _mm256_maskstore_ps(c + 8 * v, m, x);
        }
    }
}

static const int mr256[3] = {0, 12, 6};

#define K256_CASE(MR, NV) \
    case MR: k256(MR, NV, g, i0, j0, rem); break;

T256 static void tile256(int nv, int mr, const gemm_args *g, int i0, int j0, int rem) {
    if (nv == 1) {
        switch (mr) {
            K256_CASE(1, 1) K256_CASE(2, 1) K256_CASE(3, 1) K256_CASE(4, 1) K256_CASE(5, 1)
            K256_CASE(6, 1) K256_CASE(7, 1) K256_CASE(8, 1) K256_CASE(9, 1) K256_CASE(10, 1)
            K256_CASE(11, 1) K256_CASE(12, 1)
        }
    } else {
        switch (mr) {
            K256_CASE(1, 2) K256_CASE(2, 2) K256_CASE(3, 2) K256_CASE(4, 2) K256_CASE(5, 2)
            K256_CASE(6, 2)
        }
    }
}

/* ------------------------------------------------------------ portable */
static void tile_c(int ncols, int mr, const gemm_args *g, int i0, int j0) {
    for (int r = 0; r < mr; r++) {
        float acc[64];
        const float *a = g->A + (size_t)(i0 + r) * g->lda;
        for (int j = 0; j < ncols; j++) acc[j] = g->bias ? g->bias[j0 + j] : 0.f;
        for (int k = 0; k < g->K; k++) {
            const float av = a[k], *restrict b = g->B + (size_t)k * g->ldb + j0;
            for (int j = 0; j < ncols; j++) acc[j] += av * b[j];
        }
        float *c = g->C + (size_t)(i0 + r) * g->ldc + j0;
        const float *rr = g->R ? g->R + (size_t)(i0 + r) * g->ldr + j0 : NULL;
        for (int j = 0; j < ncols; j++) {
            float x = acc[j] + (rr ? rr[j] : 0.f);
            if (g->act != NN_ACT_NONE) x = x > 0.f ? x : 0.f;
            if (g->act == NN_ACT_RELU6) x = x < 6.f ? x : 6.f;
            c[j] = x;
        }
    }
}

/* ------------------------------------------------------------ the GEMM */
/* Column panels: nvec vectors split as evenly as possible into panels of at
 * most maxnv vectors; tasks = row chunks x panels, split evenly by thread. */
void nn__gemm_pw(float *C, int ldc, const float *A, int lda, const float *B, int ldb,
                 const float *bias, const float *R, int ldr, int M, int K, int N, nn_act act) {
    if (M <= 0 || N <= 0) return;
    const int lv = nn__gemm_pw_level();
    const int lanes = lv == 2 ? 16 : lv == 1 ? 8 : 64;
    const int maxnv = lv == 2 ? 4 : lv == 1 ? 2 : 1;
    const gemm_args g = {C, A, B, bias, R, ldc, lda, ldb, ldr, K, act};
    const int nvec = (N + lanes - 1) / lanes;
    const int npan = (nvec + maxnv - 1) / maxnv;
    /* Row chunks: A chunk (rows x K) stays in L2 while the panels sweep it. */
    int mc = (24576 / (K > 0 ? K : 1)) / 48 * 48;
    if (mc < 48) mc = 48;
    const int nchunk = (M + mc - 1) / mc;
    mc = (M + nchunk - 1) / nchunk;
    const long ntask = (long)nchunk * npan;
    int nt = 1;
#ifdef _OPENMP
    if ((double)M * N * K >= 65536.0 && ntask > 1 && !omp_in_parallel()) {
        nt = omp_get_max_threads();
        if (nt > ntask) nt = (int)ntask;
    }
#endif
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        const long t0 = ntask * tid / nt, t1 = ntask * (tid + 1) / nt;
        for (long t = t0; t < t1; t++) {
            const int ch = (int)(t / npan), p = (int)(t % npan);
            const int m0 = ch * mc, m1 = m0 + mc < M ? m0 + mc : M;
            /* panel p: vectors [v0, v0+nv) */
            const int base = nvec / npan, extra = nvec % npan;
            const int nv = base + (p < extra);
            const int v0 = p * base + (p < extra ? p : extra);
            const int j0 = v0 * lanes;
            int ncols = nv * lanes;
            if (j0 + ncols > N) ncols = N - j0;
            const int rem = ncols - (nv - 1) * lanes;
            if (lv == 2) {
                const int MR = mr512[nv];
                for (int i = m0; i < m1; i += MR) tile512(nv, m1 - i < MR ? m1 - i : MR, &g, i, j0, rem);
            } else if (lv == 1) {
                const int MR = mr256[nv];
                for (int i = m0; i < m1; i += MR) tile256(nv, m1 - i < MR ? m1 - i : MR, &g, i, j0, rem);
            } else {
                for (int i = m0; i < m1; i += 4) tile_c(ncols, m1 - i < 4 ? m1 - i : 4, &g, i, j0);
            }
        }
    }
}
