/* gemm_pw.h — the pointwise-convolution GEMM of nnmask (internal): thin
 * row-major GEMMs with bias, residual and activation fused, AVX-512 or AVX2
 * micro-kernels chosen at run time. Not a public API. */
#ifndef NN_GEMM_PW_H
#define NN_GEMM_PW_H

#include "nnmask.h"

/* C[M,N] = act(A[M,K] B[K,N] + bias[N] + R[M,N]), all row-major with
 * leading dimensions lda >= K, ldb >= N, ldc >= N, ldr >= N; bias and R may
 * be NULL. R may equal C (in-place residual). Threads (OpenMP team) split
 * the rows and column panels; the result does not depend on the thread
 * count. Never allocates. */
void nn__gemm_pw(float *C, int ldc, const float *A, int lda, const float *B, int ldb,
                 const float *bias, const float *R, int ldr, int M, int K, int N, nn_act act);

/* Which micro-kernel nn__gemm_pw uses: 2 = AVX-512, 1 = AVX2 (+FMA),
 * 0 = portable C. nn__gemm_pw_force(level) caps it (tests compare them);
 * -1 restores the automatic choice. */
/* What this CPU runs, decided once: 2 = AVX-512F, 1 = AVX2 + FMA, 0 = neither
 * (shared by every run-time dispatched kernel). */
int nn__cpu_simd_level(void);
int nn__gemm_pw_level(void);
void nn__gemm_pw_force(int level);

/* The reference: the same contract, plain loops (double accumulation). */
void nn__gemm_pw_naive(float *C, int ldc, const float *A, int lda, const float *B, int ldb,
                       const float *bias, const float *R, int ldr, int M, int K, int N,
                       nn_act act);

#endif
