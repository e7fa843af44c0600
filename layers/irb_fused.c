/* irb_fused.c — MobileNetV2 inverted-residual block, inference: expand,
 * depthwise and project per strip of output rows (expanded rows in a ring
 * that stays in L2), bias/ReLU6/residual fused; images or rows per thread. */

#include "irb_fused.h"

#include "dwconv_simd.h"
#include "gemm_pw.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define RING_BUDGET 65536 /* floats of expanded rows per thread (256 KB) */

typedef struct {
    int R, NR;            /* output rows per strip, ring rows */
    size_t ring, strip;   /* floats */
} irb_plan;

static irb_plan plan(const nn_irb *b) {
    const int W = b->g.in_w, s = b->g.stride_h;
    irb_plan p;
    int fit = (int)(RING_BUDGET / ((size_t)W * b->ce));
    p.R = (fit - 3) / s;
    if (p.R < 1) p.R = 1;
    if (p.R > b->g.out_h) p.R = b->g.out_h;
    p.NR = p.R * s + 3;
    p.ring = b->we ? ((size_t)p.NR * W * b->ce + 15) / 16 * 16 : 0;
    p.strip = ((size_t)p.R * b->g.out_w * b->ce + 15) / 16 * 16;
    return p;
}

size_t nn__irb_scratch_floats(const nn_irb *b, int threads) {
    irb_plan p = plan(b);
    return (p.ring + p.strip) * (size_t)(threads > 0 ? threads : 1);
}

/* Output rows [oh0, oh1) of one image. */
static void irb_rows(const nn_irb *b, const irb_plan *p, float *out, const float *in, int oh0,
                     int oh1, float *ring, float *strip) {
    const nn_conv_geom *g = &b->g;
    const int H = g->in_h, W = g->in_w, OW = g->out_w, s = g->stride_h, pt = g->pad_t;
    const int ce = b->ce;
    int next = -1; /* first input row not yet expanded */
    for (int r0 = oh0; r0 < oh1; r0 += p->R) {
        const int r1 = r0 + p->R < oh1 ? r0 + p->R : oh1;
        if (b->we) {
            int lo = r0 * s - pt, hi = (r1 - 1) * s - pt + 2; /* input rows needed */
            if (lo < 0) lo = 0;
            if (hi > H - 1) hi = H - 1;
            if (next < lo) next = lo;
            while (next <= hi) { /* contiguous runs of ring slots */
                int slot = next % p->NR, run = hi - next + 1;
                if (run > p->NR - slot) run = p->NR - slot;
                nn__gemm_pw(ring + (size_t)slot * W * ce, ce, in + (size_t)next * W * b->cin, b->cin,
                            b->we, ce, b->be, NULL, 0, run * W, b->cin, ce, NN_ACT_RELU6);
                next += run;
            }
        }
        for (int oh = r0; oh < r1; oh++) {
            const float *rows[3];
            for (int kh = 0; kh < 3; kh++) {
                int ih = oh * s - pt + kh;
                rows[kh] = ih < 0 || ih >= H ? NULL
                           : b->we ? ring + (size_t)(ih % p->NR) * W * ce
                                   : in + (size_t)ih * W * ce;
            }
            nn__dwconv3x3_row(rows, strip + (size_t)(oh - r0) * OW * ce, b->wd, b->bd, ce, W, OW,
                              g->stride_w, g->pad_l, NN_ACT_RELU6);
        }
        const size_t o = (size_t)r0 * OW * b->cout;
        nn__gemm_pw(out + o, b->cout, strip, ce, b->wp, b->cout, b->bp,
                    b->residual ? in + o : NULL, b->cout, (r1 - r0) * OW, ce, b->cout, NN_ACT_NONE);
    }
}

void nn__irb_forward(const nn_irb *b, float *out, const float *in, int n, float *scratch,
                     int threads) {
    const nn_conv_geom *g = &b->g;
    if (g->kh != 3 || g->kw != 3 || g->dil_h != 1 || g->dil_w != 1 || g->stride_h != g->stride_w)
        nn_fatal("nn__irb_forward: the depthwise window must be 3x3, dilation 1, square stride");
    if (!b->we && b->ce != b->cin) nn_fatal("nn__irb_forward: no expand conv but ce != cin");
    if (b->residual && (g->stride_h != 1 || b->cin != b->cout || g->out_h != g->in_h))
        nn_fatal("nn__irb_forward: residual needs stride 1 and cin == cout");
    const irb_plan p = plan(b);
    const size_t in_img = (size_t)g->in_h * g->in_w * b->cin;
    const size_t out_img = (size_t)g->out_h * g->out_w * b->cout;
    int nt = threads > 0 ? threads : 1;
#ifdef _OPENMP
    if (omp_in_parallel()) nt = 1;
    if (nt > omp_get_max_threads()) nt = omp_get_max_threads();
#else
    nt = 1;
#endif
    /* parts: whole images when there are enough, else row ranges */
    int parts = n >= nt ? 1 : (nt + n - 1) / n;
    if (parts > g->out_h) parts = g->out_h;
    const long ntask = (long)n * parts;
    if (nt > ntask) nt = (int)ntask;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *ring = scratch + (size_t)tid * (p.ring + p.strip), *strip = ring + p.ring;
        const long t0 = ntask * tid / nt, t1 = ntask * (tid + 1) / nt;
        for (long t = t0; t < t1; t++) {
            const int img = (int)(t / parts), part = (int)(t % parts);
            const int oh0 = (int)((long)g->out_h * part / parts);
            const int oh1 = (int)((long)g->out_h * (part + 1) / parts);
            irb_rows(b, &p, out + img * out_img, in + img * in_img, oh0, oh1, ring, strip);
        }
    }
}
