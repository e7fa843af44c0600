/* nnmask-bench.c — timings of every MobileNetV2 layer shape and of the whole
 * models, each kernel checked against its naive twin before it is timed. */

#include "nnmask.h"
#include "bench/bench.h"
#include "gemm_pw.h"
#include "dwconv_simd.h"
#include "irb_fused.h"
#ifdef NN_BENCH_HAVE_MNV2
#include "mobilenetv2.h"
#endif
#ifdef NN_BENCH_HAVE_UF
#include "ultraface.h"
#endif
#ifdef NN_BENCH_HAVE_PIPELINE
#include "pipeline.h"
#endif

#include <cblas.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- options */
typedef struct {
    int threads, loops, json, batch, batch_set, child, list, cpu_clock;
    const char *filter, *model, *weights, *detector, *classifier, *frame;
    double peak; /* GFLOP/s of the FMA loop on `threads` threads */
    const char *isa;
    int failures, rows;
} opts;

static void usage(FILE *f) {
    fputs("usage: nnmask-bench [--threads T] [--loops L] [--batch B] [--filter S] [--json]\n"
          "                    [--model NAME] [--weights FILE.safetensors] [--list]\n"
          "  Times each MobileNetV2 layer shape (forward and backward) and the whole\n"
          "  models; every kernel is first checked against its naive twin (a mismatch\n"
          "  exits 1).\n"
          "  --threads T  threads for OpenMP and OpenBLAS (default 1)\n"
          "  --loops L    timed samples per row after warm-up (default 20)\n"
          "  --batch B    batch of the layer rows (default 1) and of the model rows\n"
          "               (default: inference at 1 and 32, training at 32)\n"
          "  --filter S   only rows whose name contains S\n"
          "  --json       one JSON object per row on stdout\n"
          "  --model M    only the whole-model row M: mobilenetv2, mobilenetv2_train_frozen,\n"
          "               mobilenetv2_train_full, ultraface, live\n"
          "  --weights F  MobileNetV2 weights for the model rows (default: random)\n"
          "  --detector D converted UltraFace weights for the ultraface and live rows\n"
          "               (default: $NNMASK_DETECTOR, else ultraface-RFB-320 (else -slim-320)\n"
          "               .safetensors in $NNMASK_MODELS, models/ or weights/; rows skipped\n"
          "               without)\n"
          "  --classifier C  mask classifier for the live row (default: none)\n"
          "  --frame IMG  the live row's frame (default: a street photo of\n"
          "               $NNMASK_SHARED/data/photos, else a random 640x480 frame)\n"
          "  --list       print the row names and exit\n"
          "  --cpu-clock  time with the process CPU clock instead of the wall clock\n"
          "               (on a busy machine, with --threads 1 only)\n",
          f);
}

/* ----------------------------------------------------------------- memory */
/* Bench buffers come straight from mmap so that a freed row gives its pages
 * back and the model rows' peak RSS is not inflated by earlier rows. */
static float *fbuf(size_t n) {
    size_t bytes = n * sizeof(float) + 64;
    char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) nn_fatal("nnmask-bench: out of memory (%zu bytes)", bytes);
    *(size_t *)p = bytes;
    return (float *)(p + 64);
}
static void ffree(float *f) {
    if (!f) return;
    char *p = (char *)f - 64;
    munmap(p, *(size_t *)p);
}
static float *frand(size_t n, nn_rng *r, float lo, float hi) {
    float *f = fbuf(n);
    for (size_t i = 0; i < n; i++) f[i] = nn_rng_range(r, lo, hi);
    return f;
}

/* ----------------------------------------------------------------- timing */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(bench_clock, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

typedef struct {
    double min, med, max;
} stats;

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Warm-up, then `loops` samples; a sample repeats fn until >= ~2 ms so that
 * tiny kernels are not timer noise (the per-call time is reported). */
static stats time_fn(void (*fn)(void *), void *ctx, int loops, int model) {
    double t0 = now_ms();
    fn(ctx);
    double first = now_ms() - t0;
    if (!model || first < 200) fn(ctx);
    int inner = 1;
    if (!model && first < 2.0) {
        inner = (int)(2.0 / (first > 1e-4 ? first : 1e-4)) + 1;
        if (inner > 2000) inner = 2000;
    }
    double *s = malloc(sizeof(double) * (size_t)loops);
    for (int l = 0; l < loops; l++) {
        t0 = now_ms();
        for (int i = 0; i < inner; i++) fn(ctx);
        s[l] = (now_ms() - t0) / inner;
    }
    qsort(s, (size_t)loops, sizeof(double), cmp_d);
    stats st = {s[0], loops % 2 ? s[loops / 2] : 0.5 * (s[loops / 2 - 1] + s[loops / 2]),
                s[loops - 1]};
    free(s);
    return st;
}

/* ---------------------------------------------------------------- checks */
#define CHECK_TOL 1e-3

/* max |a - ref| / max(max |ref|, 1e-6): a scale-free error for one output. */
static double rel_err(const float *a, const float *ref, size_t n) {
    double big = 1e-6, d = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)ref[i]);
        if (r > big) big = r;
    }
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - ref[i]);
        if (!(e <= d)) d = e; /* NaN-safe */
    }
    return d / big;
}

typedef struct {
    int done; /* 0: no naive twin */
    double err;
} check;

static void check_add(check *c, const char *what, const float *a, const float *ref, size_t n) {
    double e = rel_err(a, ref, n);
    c->done = 1;
    if (!(e <= c->err)) c->err = e;
    if (!(e <= CHECK_TOL)) fprintf(stderr, "nnmask-bench: check FAILED: %s: error %.3g\n", what, e);
}

/* ---------------------------------------------------------------- output */
static void row_out(opts *o, const char *kind, const char *name, const char *shape, int batch,
                    double flops, stats st, check ck, double rss_mb) {
    double gflops = flops > 0 ? flops / (st.med * 1e6) : 0;
    double frac = o->peak > 0 ? gflops / o->peak : 0;
    int ok = !ck.done || ck.err <= CHECK_TOL;
    if (!ok) o->failures++;
    o->rows++;
    if (o->json) {
        printf("{\"name\":\"%s\",\"kind\":\"%s\",\"shape\":\"%s\",\"batch\":%d,\"threads\":%d,"
               "\"loops\":%d,\"min_ms\":%.4f,\"median_ms\":%.4f,\"max_ms\":%.4f,"
               "\"gflop\":%.6f,\"gflops\":%.2f,\"peak_gflops\":%.1f,\"peak_frac\":%.4f,"
               "\"check\":\"%s\",\"max_err\":%.3g",
               name, kind, shape, batch, o->threads, o->loops, st.min, st.med, st.max,
               flops / 1e9, gflops, o->peak, frac, ck.done ? (ok ? "ok" : "FAILED") : "none",
               ck.done ? ck.err : 0.0);
        if (rss_mb > 0) printf(",\"img_per_s\":%.2f,\"peak_rss_mb\":%.1f", batch * 1e3 / st.med, rss_mb);
        printf("}\n");
    } else {
        printf("%-28s %-30s %5d %9.3f %9.3f %9.3f %8.1f %5.1f%%  %-6s", name, shape, batch, st.min,
               st.med, st.max, gflops, 100 * frac, ck.done ? (ok ? "ok" : "FAIL") : "-");
        if (rss_mb > 0) printf("  %.1f img/s, peak RSS %.1f MB", batch * 1e3 / st.med, rss_mb);
        printf("\n");
    }
    fflush(stdout);
}

static int want(const opts *o, const char *name) {
    if (o->list) {
        printf("%s\n", name);
        return 0;
    }
    return !o->filter || strstr(name, o->filter);
}

/* =========================================================== layer rows */
/* MobileNetV2 1.0 at 224: the (t, c, n, s) table of the paper. */
static const int mnv2_cfg[7][4] = {{1, 16, 1, 1},  {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                   {6, 96, 3, 1},  {6, 160, 3, 2}, {6, 320, 1, 1}};

typedef struct {
    int hw, cin, cout;
} pw_shape;
typedef struct {
    int hw, c, stride;
} dw_shape;

/* The distinct pointwise and depthwise shapes of MobileNetV2 1.0 at 224. */
static void mnv2_shapes(pw_shape *pw, int *npw, dw_shape *dw, int *ndw) {
    *npw = *ndw = 0;
    int hw = 112, cin = 32;
    for (int s = 0; s < 7; s++)
        for (int i = 0; i < mnv2_cfg[s][2]; i++) {
            int t = mnv2_cfg[s][0], cout = mnv2_cfg[s][1], st = i == 0 ? mnv2_cfg[s][3] : 1;
            int ce = cin * t, ohw = hw / st;
            pw_shape cand[2] = {{hw, cin, ce}, {ohw, ce, cout}};
            for (int k = t == 1 ? 1 : 0; k < 2; k++) {
                int dup = 0;
                for (int j = 0; j < *npw; j++)
                    dup |= pw[j].hw == cand[k].hw && pw[j].cin == cand[k].cin &&
                           pw[j].cout == cand[k].cout;
                if (!dup) pw[(*npw)++] = cand[k];
            }
            int dup = 0;
            for (int j = 0; j < *ndw; j++) dup |= dw[j].hw == hw && dw[j].c == ce && dw[j].stride == st;
            if (!dup) dw[(*ndw)++] = (dw_shape){hw, ce, st};
            hw = ohw;
            cin = cout;
        }
    pw[(*npw)++] = (pw_shape){7, 320, 1280};
}

/* --- convolution (stem and pointwise) --- */
typedef struct {
    nn_tensor x, y, dy, dx;
    float *w, *b, *dw, *db, *ws;
    nn_conv_geom g;
    int need_dx;
} conv_ctx;

static void conv_fwd(void *p) {
    conv_ctx *c = p;
    nn_conv2d_forward(&c->y, &c->x, c->w, c->b, &c->g, NN_ACT_RELU6, c->ws);
}
static void conv_bwd(void *p) {
    conv_ctx *c = p;
    nn_conv2d_backward(c->need_dx ? &c->dx : NULL, c->dw, c->db, &c->dy, &c->x, c->w, &c->g, c->ws);
}

static void bench_conv(opts *o, const char *name, int hw, int k, int stride, int cin, int cout,
                       int backward, int need_dx) {
    if (!want(o, name)) return;
    nn_rng r;
    nn_rng_seed(&r, 1234);
    conv_ctx c = {0};
    nn_conv_geom_init(&c.g, hw, hw, k, k, stride, 1, NN_PAD_SAME, 0);
    const int B = o->batch, OH = c.g.out_h, OW = c.g.out_w;
    c.need_dx = need_dx;
    size_t nx = (size_t)B * hw * hw * cin, ny = (size_t)B * OH * OW * cout, nw = (size_t)k * k * cin * cout;
    c.x = nn_tensor_make(frand(nx, &r, -1, 1), B, hw, hw, cin);
    c.y = nn_tensor_make(fbuf(ny), B, OH, OW, cout);
    c.w = frand(nw, &r, -0.2f, 0.2f);
    c.b = frand((size_t)cout, &r, -0.5f, 0.5f);
    size_t nws = nn_conv2d_scratch_floats(&c.g, B, cin);
    c.ws = nws ? fbuf(nws) : NULL;
    check ck = {0};
    if (backward) {
        c.dy = nn_tensor_make(frand(ny, &r, -1, 1), B, OH, OW, cout);
        c.dx = nn_tensor_make(fbuf(nx), B, hw, hw, cin);
        c.dw = fbuf(nw);
        c.db = fbuf((size_t)cout);
        /* check on the first image (dw/db of one image; din of that image) */
        nn_tensor x1 = c.x, dy1 = c.dy, dx1 = c.dx, dxr = nn_tensor_make(fbuf(nx / B), 1, hw, hw, cin);
        x1.n = dy1.n = dx1.n = 1;
        float *dwr = fbuf(nw), *dbr = fbuf((size_t)cout);
        nn_conv2d_backward(need_dx ? &dx1 : NULL, c.dw, c.db, &dy1, &x1, c.w, &c.g, c.ws);
        nn_conv2d_backward_naive(need_dx ? &dxr : NULL, dwr, dbr, &dy1, &x1, c.w, &c.g);
        if (need_dx) check_add(&ck, name, dx1.data, dxr.data, nx / B);
        check_add(&ck, name, c.dw, dwr, nw);
        check_add(&ck, name, c.db, dbr, (size_t)cout);
        ffree(dxr.data);
        ffree(dwr);
        ffree(dbr);
    } else {
        nn_tensor yr = nn_tensor_make(fbuf(ny), B, OH, OW, cout);
        conv_fwd(&c);
        nn_conv2d_forward_naive(&yr, &c.x, c.w, c.b, &c.g, NN_ACT_RELU6);
        check_add(&ck, name, c.y.data, yr.data, ny);
        ffree(yr.data);
    }
    stats st = time_fn(backward ? conv_bwd : conv_fwd, &c, o->loops, 0);
    double macs = (double)B * OH * OW * k * k * cin * cout;
    char shape[96];
    snprintf(shape, sizeof shape, "%dx%dx%d %dx%d/%d ->%d", hw, hw, cin, k, k, stride, cout);
    row_out(o, "layer", name, shape, B, backward ? (need_dx ? 4 : 2) * macs : 2 * macs, st, ck, 0);
    ffree(c.x.data), ffree(c.y.data), ffree(c.w), ffree(c.b), ffree(c.ws);
    ffree(c.dy.data), ffree(c.dx.data), ffree(c.dw), ffree(c.db);
}

/* --- the pointwise GEMM micro-kernels alone (bias + ReLU6 fused), and
 * OpenBLAS sgemm on the same shape (no bias, no activation) for reference --- */
typedef struct {
    float *a, *b, *bias, *c;
    int M, K, N;
} gemm_ctx;

static void gemm_mine(void *p) {
    gemm_ctx *c = p;
    nn__gemm_pw(c->c, c->N, c->a, c->K, c->b, c->N, c->bias, NULL, 0, c->M, c->K, c->N, NN_ACT_RELU6);
}
static void gemm_blas(void *p) {
    gemm_ctx *c = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c->M, c->N, c->K, 1.f, c->a, c->K, c->b,
                c->N, 0.f, c->c, c->N);
}

static void bench_gemm(opts *o, const char *name, int M, int K, int N, int blas) {
    if (!want(o, name)) return;
    nn_rng r;
    nn_rng_seed(&r, 31);
    gemm_ctx c = {frand((size_t)M * K, &r, -1, 1), frand((size_t)K * N, &r, -0.3f, 0.3f),
                  frand((size_t)N, &r, -1, 1), fbuf((size_t)M * N), M, K, N};
    check ck = {0};
    if (!blas) {
        float *ref = fbuf((size_t)M * N);
        gemm_mine(&c);
        nn__gemm_pw_naive(ref, N, c.a, K, c.b, N, c.bias, NULL, 0, M, K, N, NN_ACT_RELU6);
        check_add(&ck, name, c.c, ref, (size_t)M * N);
        ffree(ref);
    }
    stats st = time_fn(blas ? gemm_blas : gemm_mine, &c, o->loops, 0);
    char shape[96];
    snprintf(shape, sizeof shape, "M%d K%d N%d", M, K, N);
    row_out(o, "layer", name, shape, 1, 2.0 * M * K * N, st, ck, 0);
    ffree(c.a), ffree(c.b), ffree(c.bias), ffree(c.c);
}

/* --- depthwise --- */
typedef struct {
    nn_tensor x, y, dy, dx;
    float *w, *b, *dw, *db;
    nn_conv_geom g;
} dw_ctx;

static void dw_fwd(void *p) {
    dw_ctx *c = p;
    nn_dwconv2d_forward(&c->y, &c->x, c->w, c->b, &c->g, NN_ACT_RELU6);
}
static void dw_simd(void *p) {
    dw_ctx *c = p;
    if (nn__dwconv3x3_forward(&c->y, &c->x, c->w, c->b, &c->g, NN_ACT_RELU6))
        nn_fatal("nnmask-bench: the SIMD depthwise kernel declined a 3x3 window");
}
static void dw_bwd(void *p) {
    dw_ctx *c = p;
    nn_dwconv2d_backward(&c->dx, c->dw, c->db, &c->dy, &c->x, c->w, &c->g);
}

/* backward: 0 forward, 1 backward, 2 forward through the SIMD kernel alone */
static void bench_dw(opts *o, const char *name, int hw, int ch, int stride, int backward) {
    if (!want(o, name)) return;
    nn_rng r;
    nn_rng_seed(&r, 99);
    dw_ctx c = {0};
    nn_conv_geom_init(&c.g, hw, hw, 3, 3, stride, 1, NN_PAD_SAME, 0);
    const int B = o->batch, OH = c.g.out_h, OW = c.g.out_w;
    size_t nx = (size_t)B * hw * hw * ch, ny = (size_t)B * OH * OW * ch, nw = 9 * (size_t)ch;
    c.x = nn_tensor_make(frand(nx, &r, -1, 1), B, hw, hw, ch);
    c.y = nn_tensor_make(fbuf(ny), B, OH, OW, ch);
    c.w = frand(nw, &r, -0.5f, 0.5f);
    c.b = frand((size_t)ch, &r, -0.5f, 0.5f);
    check ck = {0};
    if (backward == 1) {
        c.dy = nn_tensor_make(frand(ny, &r, -1, 1), B, OH, OW, ch);
        c.dx = nn_tensor_make(fbuf(nx), B, hw, hw, ch);
        c.dw = fbuf(nw);
        c.db = fbuf((size_t)ch);
        float *dwr = fbuf(nw), *dbr = fbuf((size_t)ch);
        nn_tensor dxr = nn_tensor_make(fbuf(nx), B, hw, hw, ch);
        dw_bwd(&c);
        nn_dwconv2d_backward_naive(&dxr, dwr, dbr, &c.dy, &c.x, c.w, &c.g);
        check_add(&ck, name, c.dx.data, dxr.data, nx);
        check_add(&ck, name, c.dw, dwr, nw);
        check_add(&ck, name, c.db, dbr, (size_t)ch);
        ffree(dwr), ffree(dbr), ffree(dxr.data);
    } else {
        nn_tensor yr = nn_tensor_make(fbuf(ny), B, OH, OW, ch);
        (backward ? dw_simd : dw_fwd)(&c);
        nn_dwconv2d_forward_naive(&yr, &c.x, c.w, c.b, &c.g, NN_ACT_RELU6);
        check_add(&ck, name, c.y.data, yr.data, ny);
        ffree(yr.data);
    }
    static void (*const fns[3])(void *) = {dw_fwd, dw_bwd, dw_simd};
    stats st = time_fn(fns[backward], &c, o->loops, 0);
    double macs = (double)B * OH * OW * 9 * ch;
    char shape[96];
    snprintf(shape, sizeof shape, "%dx%dx%d dw3x3/%d", hw, hw, ch, stride);
    row_out(o, "layer", name, shape, B, (backward == 1 ? 4 : 2) * macs, st, ck, 0);
    ffree(c.x.data), ffree(c.y.data), ffree(c.w), ffree(c.b);
    ffree(c.dy.data), ffree(c.dx.data), ffree(c.dw), ffree(c.db);
}

/* --- dense --- */
typedef struct {
    nn_tensor x, y, dy, dx;
    float *w, *b, *dw, *db;
} dense_ctx;

static void dense_fwd(void *p) {
    dense_ctx *c = p;
    nn_dense_forward(&c->y, &c->x, c->w, c->b, NN_ACT_NONE);
}
static void dense_bwd(void *p) {
    dense_ctx *c = p;
    nn_dense_backward(&c->dx, c->dw, c->db, &c->dy, &c->x, c->w);
}

static void bench_dense(opts *o, const char *name, int in, int out, int backward) {
    if (!want(o, name)) return;
    nn_rng r;
    nn_rng_seed(&r, 7);
    dense_ctx c = {0};
    const int B = o->batch;
    c.x = nn_tensor_make(frand((size_t)B * in, &r, -1, 1), B, 1, 1, in);
    c.y = nn_tensor_make(fbuf((size_t)B * out), B, 1, 1, out);
    c.w = frand((size_t)in * out, &r, -0.1f, 0.1f);
    c.b = frand((size_t)out, &r, -0.1f, 0.1f);
    check ck = {0};
    if (backward) {
        c.dy = nn_tensor_make(frand((size_t)B * out, &r, -1, 1), B, 1, 1, out);
        c.dx = nn_tensor_make(fbuf((size_t)B * in), B, 1, 1, in);
        c.dw = fbuf((size_t)in * out);
        c.db = fbuf((size_t)out);
        /* no naive twin in the API: a plain triple loop here */
        dense_bwd(&c);
        float *dxr = fbuf((size_t)B * in), *dwr = fbuf((size_t)in * out), *dbr = fbuf((size_t)out);
        for (int n = 0; n < B; n++)
            for (int i = 0; i < in; i++) {
                double s = 0;
                for (int j = 0; j < out; j++) {
                    s += (double)c.dy.data[(size_t)n * out + j] * c.w[(size_t)i * out + j];
                    dwr[(size_t)i * out + j] += c.x.data[(size_t)n * in + i] * c.dy.data[(size_t)n * out + j];
                }
                dxr[(size_t)n * in + i] = (float)s;
            }
        for (int n = 0; n < B; n++)
            for (int j = 0; j < out; j++) dbr[j] += c.dy.data[(size_t)n * out + j];
        check_add(&ck, name, c.dx.data, dxr, (size_t)B * in);
        check_add(&ck, name, c.dw, dwr, (size_t)in * out);
        check_add(&ck, name, c.db, dbr, (size_t)out);
        ffree(dxr), ffree(dwr), ffree(dbr);
    } else {
        nn_tensor yr = nn_tensor_make(fbuf((size_t)B * out), B, 1, 1, out);
        dense_fwd(&c);
        nn_dense_forward_naive(&yr, &c.x, c.w, c.b, NN_ACT_NONE);
        check_add(&ck, name, c.y.data, yr.data, (size_t)B * out);
        ffree(yr.data);
    }
    stats st = time_fn(backward ? dense_bwd : dense_fwd, &c, o->loops, 0);
    char shape[96];
    snprintf(shape, sizeof shape, "%d -> %d", in, out);
    row_out(o, "layer", name, shape, B, (backward ? 4.0 : 2.0) * B * in * out, st, ck, 0);
    ffree(c.x.data), ffree(c.y.data), ffree(c.w), ffree(c.b);
    ffree(c.dy.data), ffree(c.dx.data), ffree(c.dw), ffree(c.db);
}

/* --- batch norm --- */
typedef struct {
    nn_tensor x, y, dy, dx;
    float *gamma, *beta, *rmean, *rvar, *mean, *rstd, *dgamma, *dbeta;
} bn_ctx;

static void bn_infer(void *p) {
    bn_ctx *c = p;
    nn_batchnorm_forward_infer(&c->y, &c->x, c->gamma, c->beta, c->rmean, c->rvar, 1e-3f, NN_ACT_RELU6);
}
static void bn_train(void *p) {
    bn_ctx *c = p;
    nn_batchnorm_forward_train(&c->y, c->mean, c->rstd, &c->x, c->gamma, c->beta, c->rmean,
                               c->rvar, 0.99f, 1e-3f);
}
static void bn_bwd(void *p) {
    bn_ctx *c = p;
    nn_batchnorm_backward(&c->dx, c->dgamma, c->dbeta, &c->dy, &c->x, c->mean, c->rstd, c->gamma);
}

static void bench_bn(opts *o, const char *name, int hw, int ch, int mode) {
    if (!want(o, name)) return;
    nn_rng r;
    nn_rng_seed(&r, 5);
    bn_ctx c = {0};
    const int B = o->batch;
    size_t n = (size_t)B * hw * hw * ch;
    c.x = nn_tensor_make(frand(n, &r, -2, 2), B, hw, hw, ch);
    c.y = nn_tensor_make(fbuf(n), B, hw, hw, ch);
    c.dy = nn_tensor_make(frand(n, &r, -1, 1), B, hw, hw, ch);
    c.dx = nn_tensor_make(fbuf(n), B, hw, hw, ch);
    c.gamma = frand((size_t)ch, &r, 0.5f, 1.5f);
    c.beta = frand((size_t)ch, &r, -0.5f, 0.5f);
    c.rmean = frand((size_t)ch, &r, -0.5f, 0.5f);
    c.rvar = frand((size_t)ch, &r, 0.5f, 1.5f);
    c.mean = fbuf((size_t)ch), c.rstd = fbuf((size_t)ch);
    c.dgamma = fbuf((size_t)ch), c.dbeta = fbuf((size_t)ch);
    check ck = {0};
    if (mode == 0) {
        nn_tensor yr = nn_tensor_make(fbuf(n), B, hw, hw, ch);
        bn_infer(&c);
        nn_batchnorm_forward_infer_naive(&yr, &c.x, c.gamma, c.beta, c.rmean, c.rvar, 1e-3f,
                                         NN_ACT_RELU6);
        check_add(&ck, name, c.y.data, yr.data, n);
        ffree(yr.data);
    }
    if (mode == 2) bn_train(&c); /* mean/rstd for the backward */
    static void (*const fns[3])(void *) = {bn_infer, bn_train, bn_bwd};
    stats st = time_fn(fns[mode], &c, o->loops, 0);
    char shape[96];
    snprintf(shape, sizeof shape, "%dx%dx%d", hw, hw, ch);
    row_out(o, "layer", name, shape, B, 0, st, ck, 0);
    ffree(c.x.data), ffree(c.y.data), ffree(c.dy.data), ffree(c.dx.data), ffree(c.gamma);
    ffree(c.beta), ffree(c.rmean), ffree(c.rvar), ffree(c.mean), ffree(c.rstd);
    ffree(c.dgamma), ffree(c.dbeta);
}

/* --- one inverted-residual block (block 2: 56x56, 24 -> 144 -> 24, stride 1,
 * residual): folded inference, and training (BN with batch statistics). --- */
typedef struct {
    int B, hw, c, ce;
    nn_conv_geom g1, g3;
    nn_tensor x, e, ea, d, da, p, pb, y;  /* forward activations */
    nn_tensor dy, dpb, dd, dda, de, dea, dx, dtmp;
    float *w1, *b1, *wd, *bd, *w2, *b2;   /* folded (inference) */
    float *bn[3][4], *mean[3], *rstd[3], *dg[3], *dbt[3], *dw1, *dwd, *dw2;
    float *fscratch;
} irb_ctx;

static void irb_infer(void *p) {
    irb_ctx *c = p;
    nn_conv2d_forward(&c->ea, &c->x, c->w1, c->b1, &c->g1, NN_ACT_RELU6, NULL);
    nn_dwconv2d_forward(&c->da, &c->ea, c->wd, c->bd, &c->g3, NN_ACT_RELU6);
    nn_conv2d_forward(&c->p, &c->da, c->w2, c->b2, &c->g1, NN_ACT_NONE, NULL);
    nn_add_forward(&c->y, &c->p, &c->x);
}
/* the same block straight through nnmask-bench's kernels (residual fused) */
static void irb_kernels(void *p) {
    irb_ctx *c = p;
    const int M = c->B * c->hw * c->hw;
    nn__gemm_pw(c->ea.data, c->ce, c->x.data, c->c, c->w1, c->ce, c->b1, NULL, 0, M, c->c, c->ce,
                NN_ACT_RELU6);
    if (nn__dwconv3x3_forward(&c->da, &c->ea, c->wd, c->bd, &c->g3, NN_ACT_RELU6))
        nn_dwconv2d_forward(&c->da, &c->ea, c->wd, c->bd, &c->g3, NN_ACT_RELU6);
    nn__gemm_pw(c->y.data, c->c, c->da.data, c->ce, c->w2, c->c, c->b2, c->x.data, c->c, M, c->ce,
                c->c, NN_ACT_NONE);
}
/* the fused block (strips of rows, expanded rows kept in L2) */
static void irb_fused(void *p) {
    irb_ctx *c = p;
    nn_irb b = {c->c, c->ce, c->c, c->w1, c->b1, c->wd, c->bd, c->w2, c->b2, 1, c->g3};
    nn__irb_forward(&b, c->y.data, c->x.data, c->B, c->fscratch, nn_threads_get());
}
static void irb_train_fwd(void *p) {
    irb_ctx *c = p;
    nn_conv2d_forward(&c->e, &c->x, c->w1, NULL, &c->g1, NN_ACT_NONE, NULL);
    nn_batchnorm_forward_train(&c->ea, c->mean[0], c->rstd[0], &c->e, c->bn[0][0], c->bn[0][1],
                               c->bn[0][2], c->bn[0][3], 0.99f, 1e-3f);
    nn_relu6_forward(&c->ea, &c->ea);
    nn_dwconv2d_forward(&c->d, &c->ea, c->wd, NULL, &c->g3, NN_ACT_NONE);
    nn_batchnorm_forward_train(&c->da, c->mean[1], c->rstd[1], &c->d, c->bn[1][0], c->bn[1][1],
                               c->bn[1][2], c->bn[1][3], 0.99f, 1e-3f);
    nn_relu6_forward(&c->da, &c->da);
    nn_conv2d_forward(&c->p, &c->da, c->w2, NULL, &c->g1, NN_ACT_NONE, NULL);
    nn_batchnorm_forward_train(&c->pb, c->mean[2], c->rstd[2], &c->p, c->bn[2][0], c->bn[2][1],
                               c->bn[2][2], c->bn[2][3], 0.99f, 1e-3f);
    nn_add_forward(&c->y, &c->pb, &c->x);
}
static void irb_train_bwd(void *p) {
    irb_ctx *c = p;
    /* y = pb + x: dpb = dy, and dy flows to dx directly (added at the end) */
    nn_batchnorm_backward(&c->dpb, c->dg[2], c->dbt[2], &c->dy, &c->p, c->mean[2], c->rstd[2],
                          c->bn[2][0]);
    nn_conv2d_backward(&c->dda, c->dw2, NULL, &c->dpb, &c->da, c->w2, &c->g1, NULL);
    nn_relu6_backward(&c->dda, &c->dda, &c->da);
    nn_batchnorm_backward(&c->dd, c->dg[1], c->dbt[1], &c->dda, &c->d, c->mean[1], c->rstd[1],
                          c->bn[1][0]);
    nn_dwconv2d_backward(&c->dea, c->dwd, NULL, &c->dd, &c->ea, c->wd, &c->g3);
    nn_relu6_backward(&c->dea, &c->dea, &c->ea);
    nn_batchnorm_backward(&c->de, c->dg[0], c->dbt[0], &c->dea, &c->e, c->mean[0], c->rstd[0],
                          c->bn[0][0]);
    nn_conv2d_backward(&c->dx, c->dw1, NULL, &c->de, &c->x, c->w1, &c->g1, NULL);
    nn_tensor_add_inplace(&c->dx, &c->dy);
}

static void bench_irb(opts *o, const char *name, int mode) {
    if (!want(o, name)) return;
    nn_rng r;
    nn_rng_seed(&r, 11);
    irb_ctx c = {0};
    c.B = o->batch, c.hw = 56, c.c = 24, c.ce = 144;
    const int B = c.B, hw = c.hw;
    nn_conv_geom_init(&c.g1, hw, hw, 1, 1, 1, 1, NN_PAD_VALID, 0);
    nn_conv_geom_init(&c.g3, hw, hw, 3, 3, 1, 1, NN_PAD_SAME, 0);
    size_t nx = (size_t)B * hw * hw * c.c, ne = (size_t)B * hw * hw * c.ce;
    nn_tensor *small[] = {&c.x, &c.p, &c.pb, &c.y, &c.dy, &c.dpb, &c.dx};
    nn_tensor *big[] = {&c.e, &c.ea, &c.d, &c.da, &c.dd, &c.dda, &c.de, &c.dea};
    for (size_t i = 0; i < sizeof small / sizeof *small; i++)
        *small[i] = nn_tensor_make(frand(nx, &r, -1, 1), B, hw, hw, c.c);
    for (size_t i = 0; i < sizeof big / sizeof *big; i++)
        *big[i] = nn_tensor_make(frand(ne, &r, -1, 1), B, hw, hw, c.ce);
    c.w1 = frand((size_t)c.c * c.ce, &r, -0.3f, 0.3f), c.b1 = frand((size_t)c.ce, &r, -0.2f, 0.2f);
    c.wd = frand(9 * (size_t)c.ce, &r, -0.4f, 0.4f), c.bd = frand((size_t)c.ce, &r, -0.2f, 0.2f);
    c.w2 = frand((size_t)c.c * c.ce, &r, -0.1f, 0.1f), c.b2 = frand((size_t)c.c, &r, -0.2f, 0.2f);
    c.dw1 = fbuf((size_t)c.c * c.ce), c.dwd = fbuf(9 * (size_t)c.ce), c.dw2 = fbuf((size_t)c.c * c.ce);
    for (int l = 0; l < 3; l++) {
        int ch = l == 2 ? c.c : c.ce;
        c.bn[l][0] = frand((size_t)ch, &r, 0.5f, 1.5f);
        c.bn[l][1] = frand((size_t)ch, &r, -0.5f, 0.5f);
        c.bn[l][2] = frand((size_t)ch, &r, -0.5f, 0.5f);
        c.bn[l][3] = frand((size_t)ch, &r, 0.5f, 1.5f);
        c.mean[l] = fbuf((size_t)ch), c.rstd[l] = fbuf((size_t)ch);
        c.dg[l] = fbuf((size_t)ch), c.dbt[l] = fbuf((size_t)ch);
    }
    {
        nn_irb b = {c.c, c.ce, c.c, c.w1, c.b1, c.wd, c.bd, c.w2, c.b2, 1, c.g3};
        c.fscratch = fbuf(nn__irb_scratch_floats(&b, nn_threads_get()));
    }
    check ck = {0};
    if (mode == 0 || mode >= 3) {
        /* whole block against the naive twins */
        nn_tensor ea = nn_tensor_make(fbuf(ne), B, hw, hw, c.ce), da = nn_tensor_make(fbuf(ne), B, hw, hw, c.ce);
        nn_tensor p2 = nn_tensor_make(fbuf(nx), B, hw, hw, c.c), y2 = nn_tensor_make(fbuf(nx), B, hw, hw, c.c);
        (mode == 4 ? irb_fused : mode == 3 ? irb_kernels : irb_infer)(&c);
        nn_conv2d_forward_naive(&ea, &c.x, c.w1, c.b1, &c.g1, NN_ACT_RELU6);
        nn_dwconv2d_forward_naive(&da, &ea, c.wd, c.bd, &c.g3, NN_ACT_RELU6);
        nn_conv2d_forward_naive(&p2, &da, c.w2, c.b2, &c.g1, NN_ACT_NONE);
        for (size_t i = 0; i < nx; i++) y2.data[i] = p2.data[i] + c.x.data[i];
        check_add(&ck, name, c.y.data, y2.data, nx);
        ffree(ea.data), ffree(da.data), ffree(p2.data), ffree(y2.data);
    }
    if (mode == 2) irb_train_fwd(&c);
    static void (*const fns[5])(void *) = {irb_infer, irb_train_fwd, irb_train_bwd, irb_kernels,
                                           irb_fused};
    stats st = time_fn(fns[mode], &c, o->loops, 0);
    double macs = (double)B * hw * hw * (2.0 * c.c * c.ce + 9.0 * c.ce);
    row_out(o, "layer", name, "56x56 24->144->24 s1 +res", B, (mode == 2 ? 4 : 2) * macs, st, ck, 0);
    for (size_t i = 0; i < sizeof small / sizeof *small; i++) ffree(small[i]->data);
    for (size_t i = 0; i < sizeof big / sizeof *big; i++) ffree(big[i]->data);
    ffree(c.w1), ffree(c.b1), ffree(c.wd), ffree(c.bd), ffree(c.w2), ffree(c.b2);
    ffree(c.dw1), ffree(c.dwd), ffree(c.dw2), ffree(c.fscratch);
    for (int l = 0; l < 3; l++) {
        for (int k = 0; k < 4; k++) ffree(c.bn[l][k]);
        ffree(c.mean[l]), ffree(c.rstd[l]), ffree(c.dg[l]), ffree(c.dbt[l]);
    }
}

/* A quick check of every optimized kernel on small and odd shapes (tails of
 * the vector loops, padding on all sides) before anything is timed. */
static int selfcheck(void) {
    nn_rng r;
    nn_rng_seed(&r, 42);
    int bad = 0;
    /* {hw, k, stride, cin, cout, n} */
    static const int convs[][6] = {{9, 1, 1, 3, 5, 1},   {7, 1, 1, 17, 33, 2},  {5, 1, 1, 64, 48, 3},
                                   {11, 3, 2, 3, 32, 2}, {8, 3, 1, 5, 7, 1},    {13, 1, 1, 40, 130, 1},
                                   {4, 1, 1, 160, 96, 1}, {6, 1, 1, 24, 144, 2}, {3, 1, 1, 320, 1280, 1}};
    for (size_t t = 0; t < sizeof convs / sizeof *convs; t++) {
        const int *s = convs[t];
        nn_conv_geom g;
        nn_conv_geom_init(&g, s[0], s[0], s[1], s[1], s[2], 1, NN_PAD_SAME, 0);
        size_t nx = (size_t)s[5] * s[0] * s[0] * s[3], ny = (size_t)s[5] * g.out_h * g.out_w * s[4];
        size_t nw = (size_t)s[1] * s[1] * s[3] * s[4];
        nn_tensor x = nn_tensor_make(frand(nx, &r, -1, 1), s[5], s[0], s[0], s[3]);
        nn_tensor y = nn_tensor_make(fbuf(ny), s[5], g.out_h, g.out_w, s[4]);
        nn_tensor yr = nn_tensor_make(fbuf(ny), s[5], g.out_h, g.out_w, s[4]);
        float *w = frand(nw, &r, -0.5f, 0.5f), *b = frand((size_t)s[4], &r, -1, 1);
        size_t nws = nn_conv2d_scratch_floats(&g, s[5], s[3]);
        float *ws = nws ? fbuf(nws) : NULL;
        for (int act = 0; act < 3; act++) {
            nn_conv2d_forward(&y, &x, w, act == 1 ? NULL : b, &g, (nn_act)act, ws);
            nn_conv2d_forward_naive(&yr, &x, w, act == 1 ? NULL : b, &g, (nn_act)act);
            double e = rel_err(y.data, yr.data, ny);
            if (!(e <= CHECK_TOL)) {
                fprintf(stderr, "nnmask-bench: kernel check FAILED: conv2d %dx%dx%d k%d s%d ->%d act %d: error %.3g\n",
                        s[0], s[0], s[3], s[1], s[2], s[4], act, e);
                bad++;
            }
        }
        ffree(x.data), ffree(y.data), ffree(yr.data), ffree(w), ffree(b), ffree(ws);
    }
    /* {hw, stride, c, n} */
    static const int dws[][4] = {{7, 1, 5, 1}, {9, 2, 19, 2}, {8, 2, 32, 1}, {6, 1, 144, 2}, {3, 1, 40, 1}};
    for (size_t t = 0; t < sizeof dws / sizeof *dws; t++) {
        const int *s = dws[t];
        nn_conv_geom g;
        nn_conv_geom_init(&g, s[0], s[0], 3, 3, s[1], 1, NN_PAD_SAME, 0);
        size_t nx = (size_t)s[3] * s[0] * s[0] * s[2], ny = (size_t)s[3] * g.out_h * g.out_w * s[2];
        nn_tensor x = nn_tensor_make(frand(nx, &r, -1, 1), s[3], s[0], s[0], s[2]);
        nn_tensor y = nn_tensor_make(fbuf(ny), s[3], g.out_h, g.out_w, s[2]);
        nn_tensor yr = nn_tensor_make(fbuf(ny), s[3], g.out_h, g.out_w, s[2]);
        float *w = frand(9 * (size_t)s[2], &r, -0.5f, 0.5f), *b = frand((size_t)s[2], &r, -1, 1);
        for (int act = 0; act < 3; act++) {
            nn_dwconv2d_forward(&y, &x, w, act == 1 ? NULL : b, &g, (nn_act)act);
            nn_dwconv2d_forward_naive(&yr, &x, w, act == 1 ? NULL : b, &g, (nn_act)act);
            double e = rel_err(y.data, yr.data, ny);
            if (!(e <= CHECK_TOL)) {
                fprintf(stderr, "nnmask-bench: kernel check FAILED: dwconv %dx%dx%d s%d act %d: error %.3g\n",
                        s[0], s[0], s[2], s[1], act, e);
                bad++;
            }
        }
        ffree(x.data), ffree(y.data), ffree(yr.data), ffree(w), ffree(b);
    }
    return bad;
}

static void layer_rows(opts *o) {
    pw_shape pw[32];
    dw_shape dw[32];
    int npw, ndw;
    mnv2_shapes(pw, &npw, dw, &ndw);
    char name[64];
    bench_conv(o, "stem_conv3x3s2_fwd", 224, 3, 2, 3, 32, 0, 0);
    bench_conv(o, "stem_conv3x3s2_bwd", 224, 3, 2, 3, 32, 1, 0);
    for (int dir = 0; dir < 2; dir++)
        for (int i = 0; i < npw; i++) {
            snprintf(name, sizeof name, "pw_%d_%d_%d_%s", pw[i].hw, pw[i].cin, pw[i].cout, dir ? "bwd" : "fwd");
            bench_conv(o, name, pw[i].hw, 1, 1, pw[i].cin, pw[i].cout, dir, 1);
        }
    for (int blas = 0; blas < 2; blas++)
        for (int i = 0; i < npw; i++) {
            int M = o->batch * pw[i].hw * pw[i].hw;
            snprintf(name, sizeof name, "%s_%d_%d_%d", blas ? "sgemm_openblas" : "gemm_pw", M, pw[i].cin, pw[i].cout);
            bench_gemm(o, name, M, pw[i].cin, pw[i].cout, blas);
        }
    for (int dir = 0; dir < 3; dir++)
        for (int i = 0; i < ndw; i++) {
            snprintf(name, sizeof name, "%s_%d_%d_s%d_%s", dir == 2 ? "dwsimd" : "dw", dw[i].hw,
                     dw[i].c, dw[i].stride, dir == 1 ? "bwd" : "fwd");
            bench_dw(o, name, dw[i].hw, dw[i].c, dw[i].stride, dir);
        }
    bench_dense(o, "dense_1280_1001_fwd", 1280, 1001, 0);
    bench_dense(o, "dense_1280_1001_bwd", 1280, 1001, 1);
    bench_dense(o, "dense_1280_2_fwd", 1280, 2, 0);
    bench_dense(o, "dense_1280_2_bwd", 1280, 2, 1);
    bench_bn(o, "bn_56_144_infer", 56, 144, 0);
    bench_bn(o, "bn_56_144_train_fwd", 56, 144, 1);
    bench_bn(o, "bn_56_144_train_bwd", 56, 144, 2);
    bench_irb(o, "irb_56_24_144_infer", 0);
    bench_irb(o, "irbk_56_24_144_infer", 3);
    bench_irb(o, "irbf_56_24_144_infer", 4);
    bench_irb(o, "irb_56_24_144_train_fwd", 1);
    bench_irb(o, "irb_56_24_144_train_bwd", 2);
}

/* =========================================================== model rows */
static inline double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0; /* kB on Linux */
}

#ifdef NN_BENCH_HAVE_MNV2
/* Random weights with the shapes of a fresh model (BN variances positive)
 * written to `path`, so that the timed rows load a file as an app does. */
static int mnv2_write_random(const char *path) {
    nn_mnv2 *m = nn_mnv2_new(1.0f, 224, 0);
    if (!m) return -1;
    nn_st_writer *w = nn_st_writer_new();
    int rc = nn_mnv2_save(m, w, "") || nn_st_writer_save(w, path);
    nn_st_writer_free(w);
    nn_mnv2_free(m);
    nn_st *st = rc ? NULL : nn_st_open(path);
    if (!st) return -1;
    nn_rng r;
    nn_rng_seed(&r, 2024);
    int n = nn_st_count(st);
    float **bufs = calloc((size_t)n, sizeof *bufs);
    int64_t (*shapes)[NN_ST_MAX_DIMS] = calloc((size_t)n, sizeof *shapes);
    w = nn_st_writer_new();
    nn_st_writer_meta(w, "format", "nnmask");
    nn_st_writer_meta(w, "arch", "mobilenetv2");
    nn_st_writer_meta(w, "alpha", "1.0");
    nn_st_writer_meta(w, "input_size", "224");
    nn_st_writer_meta(w, "bn_eps", "0.001");
    for (int i = 0; i < n; i++) {
        const char *dt, *nm = nn_st_name(st, i);
        int nd;
        nn_st_info(st, i, &dt, &nd, shapes[i]);
        size_t cnt = 1;
        for (int d = 0; d < nd; d++) cnt *= (size_t)shapes[i][d];
        bufs[i] = malloc(cnt * sizeof(float));
        size_t fan_in = cnt / (size_t)(nd > 0 ? shapes[i][nd - 1] : 1);
        const char *suf = strrchr(nm, '.');
        for (size_t k = 0; k < cnt; k++) {
            float v;
            if (suf && (!strcmp(suf, ".var") || !strcmp(suf, ".gamma"))) v = nn_rng_range(&r, 0.5f, 1.5f);
            else if (suf && (!strcmp(suf, ".mean") || !strcmp(suf, ".beta") || !strcmp(suf, ".bias")))
                v = 0.1f * nn_rng_normal(&r);
            else v = nn_rng_normal(&r) * sqrtf(2.0f / (float)(fan_in ? fan_in : 1));
            bufs[i][k] = v;
        }
        nn_st_writer_add_f32(w, nm, bufs[i], nd, shapes[i]);
    }
    nn_st_close(st);
    rc = nn_st_writer_save(w, path);
    nn_st_writer_free(w);
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    free(shapes);
    return rc;
}

static nn_mnv2 *mnv2_get(const char *path) {
    nn_mnv2 *m = nn_mnv2_load_file(path, 0);
    if (!m) fprintf(stderr, "nnmask-bench: %s\n", nn_error());
    return m;
}

/* Peak RSS of what follows: VmHWM after a reset through clear_refs (Linux);
 * getrusage's lifetime peak where that is not possible. */
static int hwm_reset(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return -1;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}
static double hwm_mb(int was_reset) {
    FILE *f = was_reset ? fopen("/proc/self/status", "r") : NULL;
    char line[256];
    double kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = atof(line + 6);
    if (f) fclose(f);
    return kb > 0 ? kb / 1024.0 : peak_rss_mb();
}

typedef struct {
    nn_mnv2 *m;
    int B, C, full;
    float *x, *pooled, *dpooled, *logits, *dlogits, *hw, *hb, *dhw, *dhb, *hm, *hv, *hbm, *hbv;
    float *am, *av, *params, *grads;
    size_t ntrain;
    int *labels;
    long t;
} mnv2_ctx;

static void mnv2_infer_fn(void *p) {
    mnv2_ctx *c = p;
    nn_mnv2_infer(c->m, c->x, c->B, c->pooled, NULL, NULL);
}

/* One step: forward, 2-way head + softmax cross-entropy, backward, Adam. */
static void mnv2_train_fn(void *p) {
    mnv2_ctx *c = p;
    const int B = c->B, C = c->C;
    if (c->full) nn_mnv2_zero_grad(c->m);
    nn_mnv2_train_forward(c->m, c->x, B, c->pooled);
    nn_tensor pt = nn_tensor_make(c->pooled, B, 1, 1, C), lt = nn_tensor_make(c->logits, B, 1, 1, 2);
    nn_tensor dl = nn_tensor_make(c->dlogits, B, 1, 1, 2), dp = nn_tensor_make(c->dpooled, B, 1, 1, C);
    nn_dense_forward(&lt, &pt, c->hw, c->hb, NN_ACT_NONE);
    nn_softmax_xent(c->dlogits, NULL, c->logits, c->labels, NULL, B, 2);
    memset(c->dhw, 0, sizeof(float) * (size_t)C * 2);
    memset(c->dhb, 0, sizeof(float) * 2);
    nn_dense_backward(c->full ? &dp : NULL, c->dhw, c->dhb, &dl, &pt, c->hw);
    c->t++;
    nn_adam_step(c->hw, c->dhw, c->hm, c->hv, (size_t)C * 2, 1e-4f, 0.9f, 0.999f, 1e-7f, 0, c->t);
    nn_adam_step(c->hb, c->dhb, c->hbm, c->hbv, 2, 1e-4f, 0.9f, 0.999f, 1e-7f, 0, c->t);
    if (c->full) {
        nn_mnv2_train_backward(c->m, c->dpooled, B);
        nn_adam_step(c->params, c->grads, c->am, c->av, c->ntrain, 1e-5f, 0.9f, 0.999f, 1e-7f, 0, c->t);
    }
}

/* mode 0: inference, 1: training step with the backbone frozen, 2: full. */
static int bench_mnv2(opts *o, int mode, int B) {
    static const char *names[3] = {"mobilenetv2_infer", "mobilenetv2_train_frozen",
                                   "mobilenetv2_train_full"};
    char tmpw[512];
    const char *wpath = o->weights;
    if (!wpath) {
        const char *tmp = getenv("TMPDIR");
        snprintf(tmpw, sizeof tmpw, "%s/nnmask-bench-%d.safetensors", tmp && *tmp ? tmp : "/tmp",
                 (int)getpid());
        if (mnv2_write_random(tmpw)) {
            fprintf(stderr, "nnmask-bench: random MobileNetV2 weights: %s\n", nn_error());
            unlink(tmpw);
            return -1;
        }
        wpath = tmpw;
    }
    nn_rng r;
    nn_rng_seed(&r, 3);
    check ck = {0};
    if (mode == 0) {
        /* the folded inference path against the unfolded layers of the
         * training path (frozen BN = running statistics), one image */
        nn_mnv2 *m1 = mnv2_get(wpath), *m2 = mnv2_get(wpath);
        if (m1 && m2 && !nn_mnv2_prepare_infer(m1, 1) && !nn_mnv2_prepare_train(m2, 1, 0, 0)) {
            int S = nn_mnv2_input_size(m1), C = nn_mnv2_feature_channels(m1);
            float *x = frand((size_t)S * S * 3, &r, -1, 1), *a = fbuf((size_t)C), *b = fbuf((size_t)C);
            nn_mnv2_infer(m1, x, 1, a, NULL, NULL);
            nn_mnv2_train_forward(m2, x, 1, b);
            check_add(&ck, "mobilenetv2 folded inference vs training forward", a, b, (size_t)C);
            ffree(x), ffree(a), ffree(b);
        }
        nn_mnv2_free(m1);
        nn_mnv2_free(m2);
    }
    malloc_trim(0); /* the check's models are gone: give their pages back first */
    int was_reset = hwm_reset() == 0;
    mnv2_ctx c = {0};
    c.B = B;
    c.full = mode == 2;
    c.m = mnv2_get(wpath);
    if (!o->weights) unlink(tmpw);
    if (!c.m) return -1;
    int S = nn_mnv2_input_size(c.m);
    c.C = nn_mnv2_feature_channels(c.m);
    if (mode == 0) nn_mnv2_release_params(c.m); /* as the apps run it: folded weights only */
    int rc = mode == 0 ? nn_mnv2_prepare_infer(c.m, B)
                       : nn_mnv2_prepare_train(c.m, B, mode == 2 ? 0 : NN_MNV2_STAGES, mode == 2);
    if (rc) {
        fprintf(stderr, "nnmask-bench: %s: %s\n", names[mode], nn_error());
        nn_mnv2_free(c.m);
        return -1;
    }
    c.x = frand((size_t)B * S * S * 3, &r, -1, 1);
    c.pooled = fbuf((size_t)B * c.C);
    c.dpooled = fbuf((size_t)B * c.C);
    c.logits = fbuf((size_t)B * 2), c.dlogits = fbuf((size_t)B * 2);
    c.hw = frand((size_t)c.C * 2, &r, -0.05f, 0.05f), c.hb = fbuf(2);
    c.dhw = fbuf((size_t)c.C * 2), c.dhb = fbuf(2);
    c.hm = fbuf((size_t)c.C * 2), c.hv = fbuf((size_t)c.C * 2), c.hbm = fbuf(2), c.hbv = fbuf(2);
    c.labels = calloc((size_t)B, sizeof(int));
    for (int i = 0; i < B; i++) c.labels[i] = i & 1;
    if (c.full) {
        c.ntrain = nn_mnv2_trainable(c.m, &c.params, &c.grads);
        c.am = fbuf(c.ntrain), c.av = fbuf(c.ntrain);
    }
    stats st = time_fn(mode == 0 ? mnv2_infer_fn : mnv2_train_fn, &c, o->loops, 1);
    double gf = 2.0 * 299494272.0 * B * (S * S) / (224.0 * 224.0); /* 1.0 at 224: 299.5 M MACs */
    char shape[96];
    snprintf(shape, sizeof shape, "1.0 %dx%d%s", S, S, mode == 0 ? "" : " +head+Adam");
    row_out(o, "model", names[mode], shape, B, mode == 2 ? 3 * gf : gf, st, ck, hwm_mb(was_reset));
    ffree(c.x), ffree(c.pooled), ffree(c.dpooled), ffree(c.logits), ffree(c.dlogits);
    ffree(c.hw), ffree(c.hb), ffree(c.dhw), ffree(c.dhb), ffree(c.hm), ffree(c.hv);
    ffree(c.hbm), ffree(c.hbv), ffree(c.am), ffree(c.av);
    free(c.labels);
    nn_mnv2_free(c.m);
    return 0;
}
#endif

/* ---- the face detector and the live pipeline (one frame) ---- */
static const char *find_detector(const opts *o) {
    return o->detector ? o->detector : nn_pipeline_default_detector();
}

#ifdef NN_BENCH_HAVE_UF
static void uf_fwd(void *p) { nn_uf_forward((nn_uf *)p); }

static int bench_uf(opts *o) {
    const char *path = find_detector(o);
    if (!path) {
        fprintf(stderr, "nnmask-bench: ultraface: no detector weights (--detector); row skipped\n");
        return 0;
    }
    nn_uf *d = nn_uf_load(path);
    if (!d || nn_uf_set_input_size(d, 320, 240)) {
        fprintf(stderr, "nnmask-bench: ultraface: %s\n", nn_error());
        nn_uf_free(d);
        return -1;
    }
    nn_rng r;
    nn_rng_seed(&r, 9);
    float *in = nn_uf_input(d);
    for (size_t i = 0; i < (size_t)320 * 240 * 3; i++) in[i] = nn_rng_range(&r, -1, 1);
    check ck = {0};
    malloc_trim(0);
    stats st = time_fn(uf_fwd, d, o->loops, 1);
    char shape[96];
    snprintf(shape, sizeof shape, "%s 320x240", nn_uf_variant(d));
    row_out(o, "model", "ultraface_forward", shape, 1, 0, st, ck, peak_rss_mb());
    nn_uf_free(d);
    return 0;
}
#endif

#ifdef NN_BENCH_HAVE_PIPELINE
typedef struct {
    nn_pipeline *p;
    nn_image frame, canvas;
} live_ctx;

static void live_fn(void *v) {
    live_ctx *c = v;
    if (nn_pipeline_run(c->p, &c->frame) < 0) nn_fatal("nnmask-bench: live: %s", nn_error());
    memcpy(c->canvas.rgb, c->frame.rgb, (size_t)c->frame.w * c->frame.h * 3);
    nn_pipeline_draw(c->p, &c->canvas);
}

static int bench_live(opts *o) {
    char fbuf_[1024];
    const char *det = find_detector(o);
    if (!det) {
        fprintf(stderr, "nnmask-bench: live: no detector weights (--detector); row skipped\n");
        return 0;
    }
    nn_pipe_opts po;
    nn_pipe_opts_default(&po);
    po.detector = det;
    po.classifier = o->classifier;
    live_ctx c = {0};
    c.p = nn_pipeline_new(&po);
    if (!c.p) {
        fprintf(stderr, "nnmask-bench: live: %s\n", nn_error());
        return -1;
    }
    const char *fp = o->frame;
    if (!fp) {
        const char *sh = getenv("NNMASK_SHARED");
        snprintf(fbuf_, sizeof fbuf_, "%s/data/photos/andrewmvd_maksssksksss0.jpg", sh && *sh ? sh : "../shared");
        if (access(fbuf_, R_OK) == 0) fp = fbuf_;
    }
    nn_image src = {0};
    int have = fp && nn_image_load(&src, fp) == 0;
    if (fp && !have) fprintf(stderr, "nnmask-bench: live: %s (random frame instead)\n", nn_error());
    if (nn_image_alloc(&c.frame, 640, 480) || nn_image_alloc(&c.canvas, 640, 480)) return -1;
    if (have) {
        nn_image_free(&c.frame);
        if (nn_image_resize(&c.frame, &src, 640, 480)) return -1;
        nn_image_free(&src);
    } else {
        nn_rng r;
        nn_rng_seed(&r, 4);
        for (size_t i = 0; i < (size_t)640 * 480 * 3; i++) c.frame.rgb[i] = (uint8_t)nn_rng_int(&r, 256);
    }
    check ck = {0};
    malloc_trim(0);
    stats st = time_fn(live_fn, &c, o->loops, 1);
    int nf = 0;
    nn_pipeline_faces(c.p, &nf);
    char shape[96];
    snprintf(shape, sizeof shape, "640x480 %d faces%s", nf, o->classifier ? " +classifier" : "");
    row_out(o, "model", "live_frame", shape, 1, 0, st, ck, peak_rss_mb());
    nn_pipeline_free(c.p);
    nn_image_free(&c.frame);
    nn_image_free(&c.canvas);
    return 0;
}
#endif

static const char *const model_names[] = {"mobilenetv2", "mobilenetv2_train_frozen",
                                          "mobilenetv2_train_full", "ultraface", "live"};
#define N_MODELS 5

/* Runs one model row in this process (peak RSS is this process's). */
static int model_row(opts *o, const char *model, int B) {
    (void)B;
#ifdef NN_BENCH_HAVE_MNV2
    for (int i = 0; i < 3; i++)
        if (!strcmp(model, model_names[i])) return bench_mnv2(o, i, B);
#endif
#ifdef NN_BENCH_HAVE_UF
    if (!strcmp(model, "ultraface")) return bench_uf(o);
#endif
#ifdef NN_BENCH_HAVE_PIPELINE
    if (!strcmp(model, "live")) return bench_live(o);
#endif
    for (int i = 0; i < N_MODELS; i++)
        if (!strcmp(model, model_names[i])) {
            fprintf(stderr, "nnmask-bench: %s: not built in this tree yet\n", model);
            return 0;
        }
    fprintf(stderr, "nnmask-bench: unknown model '%s'\n", model);
    return -1;
}

/* Each model row runs in a fresh process (this program again) so that its
 * peak RSS is its own. */
static void model_rows(opts *o, const char *self) {
    static const struct {
        const char *model, *row;
        int batch;
    } rows[] = {{"mobilenetv2", "mobilenetv2_infer", 1},
                {"mobilenetv2", "mobilenetv2_infer", 32},
                {"mobilenetv2_train_frozen", "mobilenetv2_train_frozen", 32},
                {"mobilenetv2_train_full", "mobilenetv2_train_full", 32},
                {"ultraface", "ultraface_forward", 1},
                {"live", "live_frame", 1}};
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        if (o->batch_set && i == 1) continue; /* one inference row at --batch */
        if (!want(o, rows[i].row)) continue;
        int B = o->batch_set ? o->batch : rows[i].batch;
        char sb[16], st[16], sl[16], sp[32];
        snprintf(sb, sizeof sb, "%d", B);
        snprintf(st, sizeof st, "%d", o->threads);
        snprintf(sl, sizeof sl, "%d", o->loops);
        snprintf(sp, sizeof sp, "%.3f", o->peak);
        const char *argv[32];
        int a = 0;
        argv[a++] = self;
        argv[a++] = "--child";
        argv[a++] = "--model", argv[a++] = rows[i].model;
        argv[a++] = "--batch", argv[a++] = sb;
        argv[a++] = "--threads", argv[a++] = st;
        argv[a++] = "--loops", argv[a++] = sl;
        argv[a++] = "--peak", argv[a++] = sp;
        if (o->json) argv[a++] = "--json";
        if (o->cpu_clock) argv[a++] = "--cpu-clock";
        if (o->weights) argv[a++] = "--weights", argv[a++] = o->weights;
        if (o->detector) argv[a++] = "--detector", argv[a++] = o->detector;
        if (o->classifier) argv[a++] = "--classifier", argv[a++] = o->classifier;
        if (o->frame) argv[a++] = "--frame", argv[a++] = o->frame;
        argv[a] = NULL;
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            execv("/proc/self/exe", (char *const *)argv);
            _exit(127);
        }
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
            fprintf(stderr, "nnmask-bench: model row %s (batch %d) failed\n", rows[i].row, B);
            o->failures++;
        }
        o->rows++;
    }
}

int main(int argc, char **argv) {
    opts o = {.threads = 1, .loops = 20, .batch = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--threads") && more) o.threads = atoi(argv[++i]);
        else if (!strcmp(a, "--loops") && more) o.loops = atoi(argv[++i]);
        else if (!strcmp(a, "--batch") && more) o.batch = atoi(argv[++i]), o.batch_set = 1;
        else if (!strcmp(a, "--filter") && more) o.filter = argv[++i];
        else if (!strcmp(a, "--model") && more) o.model = argv[++i];
        else if (!strcmp(a, "--weights") && more) o.weights = argv[++i];
        else if (!strcmp(a, "--detector") && more) o.detector = argv[++i];
        else if (!strcmp(a, "--classifier") && more) o.classifier = argv[++i];
        else if (!strcmp(a, "--frame") && more) o.frame = argv[++i];
        else if (!strcmp(a, "--peak") && more) o.peak = atof(argv[++i]);
        else if (!strcmp(a, "--json")) o.json = 1;
        else if (!strcmp(a, "--list")) o.list = 1;
        else if (!strcmp(a, "--child")) o.child = 1;
        else if (!strcmp(a, "--cpu-clock")) o.cpu_clock = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "nnmask-bench: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (o.threads < 1 || o.threads > 256 || o.loops < 1 || o.loops > 100000 || o.batch < 1 ||
        o.batch > 4096) {
        fprintf(stderr, "nnmask-bench: --threads, --loops and --batch must be positive\n");
        return 2;
    }
    if (o.list) {
        layer_rows(&o);
        static const char *rn[N_MODELS] = {"mobilenetv2_infer", "mobilenetv2_train_frozen",
                                           "mobilenetv2_train_full", "ultraface_forward", "live_frame"};
        for (int i = 0; i < N_MODELS; i++) printf("%s\n", rn[i]);
        return 0;
    }
    if (o.cpu_clock) {
        if (o.threads != 1) {
            fprintf(stderr, "nnmask-bench: --cpu-clock needs --threads 1\n");
            return 2;
        }
        bench_clock = CLOCK_PROCESS_CPUTIME_ID;
    }
    nn_threads_set(o.threads);
    if (o.peak <= 0) o.peak = bench_fma_peak(o.threads, &o.isa, o.cpu_clock);
    else o.isa = __builtin_cpu_supports("avx512f") ? "AVX-512" : "AVX2";
    if (!o.child && !o.json) {
        printf("nnmask-bench: %d thread(s), FMA peak %.1f GFLOP/s (%s loop), OpenBLAS %s, %d loops\n",
               o.threads, o.peak, o.isa, openblas_get_corename(), o.loops);
        if (o.cpu_clock) printf("(times: process CPU time, not wall time)\n");
        printf("%-28s %-30s %5s %9s %9s %9s %8s %6s  %s\n", "name", "shape", "batch", "min_ms",
               "median_ms", "max_ms", "GFLOP/s", "peak", "check");
    }
    int bad = selfcheck();
    if (bad) {
        fprintf(stderr, "nnmask-bench: %d kernel check(s) failed; nothing timed\n", bad);
        return 1;
    }
    if (o.model) {
        int B = o.batch;
        if (model_row(&o, o.model, B)) return 1;
        return o.failures ? 1 : 0;
    }
    layer_rows(&o);
    model_rows(&o, argv[0]);
    if (o.failures) {
        fprintf(stderr, "nnmask-bench: %d row(s) failed\n", o.failures);
        return 1;
    }
    if (!o.rows && !o.json) fprintf(stderr, "nnmask-bench: no row matches the filter\n");
    return 0;
}
