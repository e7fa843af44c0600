/* test_gemm_pw.c — the pointwise GEMM micro-kernels (AVX-512, AVX2, plain C)
 * against the naive GEMM over a grid of thin shapes, with every fusion. */
#include "gemm_pw.h"
#include "testutil.h"

#include <omp.h>

static void fill(float *x, size_t n, nn_rng *r, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = nn_rng_range(r, lo, hi);
}

int main(void) {
    nn_rng r;
    nn_rng_seed(&r, 17);
    /* M, K, N: tails of every tile size, MobileNetV2's thin shapes, K = 1 */
    static const int shapes[][3] = {
        {1, 1, 1},     {1, 3, 17},    {5, 7, 9},      {17, 16, 16},   {13, 24, 24},
        {33, 32, 48},  {49, 160, 96}, {50, 320, 130}, {61, 96, 144},  {7, 960, 160},
        {100, 16, 96}, {97, 144, 24}, {49, 320, 1280}, {12, 576, 8},  {300, 27, 32},
        {29, 64, 65},  {6, 40, 200},  {64, 1, 100},   {23, 5, 33},    {130, 96, 24}};
    const int nshape = (int)(sizeof shapes / sizeof *shapes);
    int top = nn__gemm_pw_level();
    printf("gemm_pw: best level %d (2 = AVX-512, 1 = AVX2)\n", top);
    double worst = 0;
    for (int lv = top; lv >= 0; lv--) {
        nn__gemm_pw_force(lv);
        CHECK(nn__gemm_pw_level() == lv, "forced level %d", lv);
        for (int s = 0; s < nshape; s++) {
            const int M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
            for (int var = 0; var < 6; var++) {
                /* var: bit0 bias, bit1 residual; act = var % 3; padded ld when var >= 3 */
                int pad = var >= 3 ? 3 : 0;
                int lda = K + pad, ldb = N + pad, ldc = N + 2 * pad, ldr = N + pad;
                nn_act act = (nn_act)(var % 3);
                float *A = malloc(sizeof(float) * (size_t)M * lda);
                float *B = malloc(sizeof(float) * (size_t)K * ldb);
                float *bias = malloc(sizeof(float) * N);
                float *R = malloc(sizeof(float) * (size_t)M * ldr);
                float *C = malloc(sizeof(float) * (size_t)M * ldc);
                float *Cr = malloc(sizeof(float) * (size_t)M * ldc);
                fill(A, (size_t)M * lda, &r, -1, 1);
                fill(B, (size_t)K * ldb, &r, -1, 1);
                fill(bias, N, &r, -2, 2);
                fill(R, (size_t)M * ldr, &r, -3, 3);
                for (size_t i = 0; i < (size_t)M * ldc; i++) C[i] = Cr[i] = 1234.5f; /* sentinels */
                const float *bb = var & 1 ? bias : NULL, *rr = var & 2 ? R : NULL;
                nn__gemm_pw(C, ldc, A, lda, B, ldb, bb, rr, ldr, M, K, N, act);
                nn__gemm_pw_naive(Cr, ldc, A, lda, B, ldb, bb, rr, ldr, M, K, N, act);
                double e = tu_compare("C", C, Cr, (size_t)M * ldc, 1.0, 1e-4);
                if (e > worst) worst = e;
                CHECK(e <= 1e-4, "level %d M=%d K=%d N=%d var %d: error %.3g", lv, M, K, N, var, e);
                /* in-place residual (R == C) */
                if (var == 2) {
                    for (int i = 0; i < M; i++)
                        for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = R[(size_t)i * ldr + j];
                    nn__gemm_pw(C, ldc, A, lda, B, ldb, NULL, C, ldc, M, K, N, act);
                    e = tu_compare("C in place", C, Cr, (size_t)M * ldc, 1.0, 1e-4);
                    CHECK(e <= 1e-4, "in-place residual level %d M=%d K=%d N=%d: %.3g", lv, M, K, N, e);
                }
                free(A), free(B), free(bias), free(R), free(C), free(Cr);
            }
        }
    }
    nn__gemm_pw_force(-1);
    /* the result does not depend on the thread count (bit for bit) */
    {
        const int M = 3136, K = 24, N = 144;
        float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
        float *C1 = malloc(sizeof(float) * M * N), *C2 = malloc(sizeof(float) * M * N);
        fill(A, (size_t)M * K, &r, -1, 1);
        fill(B, (size_t)K * N, &r, -1, 1);
        omp_set_num_threads(1);
        nn__gemm_pw(C1, N, A, K, B, N, NULL, NULL, 0, M, K, N, NN_ACT_RELU6);
        omp_set_num_threads(2);
        nn__gemm_pw(C2, N, A, K, B, N, NULL, NULL, 0, M, K, N, NN_ACT_RELU6);
        CHECK(memcmp(C1, C2, sizeof(float) * M * N) == 0, "1 and 2 threads differ");
        free(A), free(B), free(C1), free(C2);
    }
    printf("gemm_pw: worst relative error %.3g\n", worst);
    return test_summary("test_gemm_pw");
}
