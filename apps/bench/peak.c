/* peak.c — nnmask-bench's machine limit: a short FP32 FMA loop (AVX-512 when
 * the CPU has it, else AVX2) on `threads` pthreads, in GFLOP/s. Plain
 * pthreads, not OpenMP: nnmask-bench may exec itself afterwards. */

#include "bench.h"

#include <immintrin.h>
#include <pthread.h>
#include <time.h>

#define PEAK_ACC 16 /* independent accumulators: hides 4-cycle latency on 2 ports */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

__attribute__((target("avx512f"))) static float fma_loop_512(long iters) {
    __m512 a = _mm512_set1_ps(0.9999999f), b = _mm512_set1_ps(1e-7f);
    __m512 acc[PEAK_ACC];
    for (int i = 0; i < PEAK_ACC; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 16
        for (int i = 0; i < PEAK_ACC; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    }
    __m512 s = acc[0];
    for (int i = 1; i < PEAK_ACC; i++) s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float fma_loop_256(long iters) {
    __m256 a = _mm256_set1_ps(0.9999999f), b = _mm256_set1_ps(1e-7f);
    __m256 acc[PEAK_ACC];
    for (int i = 0; i < PEAK_ACC; i++) acc[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 16
        for (int i = 0; i < PEAK_ACC; i++) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    }
    __m256 s = acc[0];
    for (int i = 1; i < PEAK_ACC; i++) s = _mm256_add_ps(s, acc[i]);
    float t[8];
    _mm256_storeu_ps(t, s);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

typedef struct {
    int wide;
    long iters;
    float r;
    double cpu_s; /* this thread's CPU time for the loop */
} peak_job;

static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *peak_thread(void *arg) {
    peak_job *j = arg;
    double t = thread_cpu_s();
    j->r = j->wide ? fma_loop_512(j->iters) : fma_loop_256(j->iters);
    j->cpu_s = thread_cpu_s() - t;
    return NULL;
}

double bench_fma_peak(int threads, const char **isa, int cpu_clock) {
    int wide = __builtin_cpu_supports("avx512f");
    *isa = wide ? "AVX-512" : "AVX2";
    const int lanes = wide ? 16 : 8;
    const long iters = 1L << 20; /* ~10-30 ms per trial */
    if (threads < 1) threads = 1;
    if (threads > 256) threads = 256;
    pthread_t tid[256];
    peak_job job[256];
    double best = 0;
    for (int trial = 0; trial < 5; trial++) {
        double t = now_s();
        for (int i = 0; i < threads; i++) {
            job[i] = (peak_job){wide, iters, 0.f, 0.0};
            pthread_create(&tid[i], NULL, peak_thread, &job[i]);
        }
        for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
        t = now_s() - t;
        double flops = (double)iters * PEAK_ACC * lanes * 2.0 * threads;
        if (cpu_clock) { /* busy machine: each thread's own CPU time */
            double rate = 0;
            for (int i = 0; i < threads; i++)
                rate += (double)iters * PEAK_ACC * lanes * 2.0 / (job[i].cpu_s > 0 ? job[i].cpu_s : 1e-9);
            if (trial > 0 && rate > best) best = rate;
        } else if (trial > 0 && flops / t > best) {
            best = flops / t; /* trial 0 warms up */
        }
    }
    return best / 1e9;
}
