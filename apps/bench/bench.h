/* bench.h — pieces shared by nnmask-bench's source files (apps/bench/): the
 * machine peak, timing statistics and row output. Not a public API. */
#ifndef NN_BENCH_H
#define NN_BENCH_H

#include "nnmask.h"

/* Median GFLOP/s of a short FMA loop on `threads` threads; *isa names the
 * instruction set used ("AVX-512" or "AVX2"). */
double bench_fma_peak(int threads, const char **isa);

#endif
