/* bench.h — pieces shared by nnmask-bench's source files (apps/bench/): the
 * machine peak, timing statistics and row output. Not a public API. */
#ifndef NN_BENCH_H
#define NN_BENCH_H

#include "nnmask.h"

/* Best GFLOP/s of a short FMA loop on `threads` threads (of 4 trials after
 * a warm-up); *isa names the instruction set used ("AVX-512" or "AVX2").
 * cpu_clock: rate over each thread's CPU time (for a busy machine). */
double bench_fma_peak(int threads, const char **isa, int cpu_clock);

#endif
