/* test_irb_fused.c — the fused inverted-residual block (strips of rows, ring
 * of expanded rows, images/rows over threads) against the naive layers. */
#include "irb_fused.h"
#include "testutil.h"

#include <omp.h>

static float *rnd(size_t n, nn_rng *r, float a) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = nn_rng_range(r, -a, a);
    return x;
}

int main(void) {
    nn_rng r;
    nn_rng_seed(&r, 77);
    /* {h, w, cin, ce (0 = no expand), cout, stride, n} */
    static const int cases[][7] = {
        {8, 8, 4, 24, 4, 1, 1},      {9, 7, 5, 30, 5, 1, 2},   {8, 8, 6, 36, 8, 2, 1},
        {11, 13, 3, 18, 7, 2, 3},    {6, 6, 16, 0, 8, 1, 2},   {56, 56, 24, 144, 24, 1, 1},
        {28, 28, 32, 192, 64, 2, 1}, {7, 7, 160, 960, 160, 1, 2}, {3, 3, 8, 48, 8, 1, 1},
        {1, 1, 8, 16, 8, 1, 1},      {2, 2, 8, 16, 12, 2, 1},  {112, 20, 16, 96, 24, 2, 1}};
    const int ncase = (int)(sizeof cases / sizeof *cases);
    for (int t = 0; t < ncase; t++) {
        const int *c = cases[t];
        const int H = c[0], W = c[1], cin = c[2], ce = c[3] ? c[3] : c[2], cout = c[4], s = c[5], N = c[6];
        nn_irb b = {.cin = cin, .ce = ce, .cout = cout, .residual = s == 1 && cin == cout};
        nn_conv_geom_init(&b.g, H, W, 3, 3, s, 1, NN_PAD_SAME, 0);
        const int OH = b.g.out_h, OW = b.g.out_w;
        float *we = c[3] ? rnd((size_t)cin * ce, &r, 0.5f) : NULL, *be = rnd(ce, &r, 0.5f);
        float *wd = rnd(9 * (size_t)ce, &r, 0.5f), *bd = rnd(ce, &r, 0.5f);
        float *wp = rnd((size_t)ce * cout, &r, 0.3f), *bp = rnd(cout, &r, 0.5f);
        b.we = we, b.be = c[3] ? be : NULL, b.wd = wd, b.bd = bd, b.wp = wp, b.bp = bp;
        size_t nin = (size_t)N * H * W * cin, nout = (size_t)N * OH * OW * cout;
        float *x = rnd(nin, &r, 2.f), *y = malloc(sizeof(float) * nout), *y2 = malloc(sizeof(float) * nout);
        /* reference: naive layers one after the other */
        float *e = malloc(sizeof(float) * N * H * W * ce), *d = malloc(sizeof(float) * N * OH * OW * ce);
        float *ref = malloc(sizeof(float) * nout);
        nn_conv_geom g1;
        nn_conv_geom_init(&g1, H, W, 1, 1, 1, 1, NN_PAD_VALID, 0);
        nn_tensor tx = nn_tensor_make(x, N, H, W, cin), te = nn_tensor_make(e, N, H, W, ce);
        nn_tensor td = nn_tensor_make(d, N, OH, OW, ce), tr = nn_tensor_make(ref, N, OH, OW, cout);
        if (we) nn_conv2d_forward_naive(&te, &tx, we, be, &g1, NN_ACT_RELU6);
        else memcpy(e, x, sizeof(float) * nin);
        nn_dwconv2d_forward_naive(&td, &te, wd, bd, &b.g, NN_ACT_RELU6);
        nn_conv_geom g2;
        nn_conv_geom_init(&g2, OH, OW, 1, 1, 1, 1, NN_PAD_VALID, 0);
        nn_conv2d_forward_naive(&tr, &td, wp, bp, &g2, NN_ACT_NONE);
        if (b.residual)
            for (size_t i = 0; i < nout; i++) ref[i] += x[i];
        for (int th = 1; th <= 2; th++) {
            omp_set_num_threads(th);
            size_t ns = nn__irb_scratch_floats(&b, th);
            float *scr = malloc(sizeof(float) * ns);
            float *dst = th == 1 ? y : y2;
            for (size_t i = 0; i < nout; i++) dst[i] = -777.f;
            nn__irb_forward(&b, dst, x, N, scr, th);
            double err = tu_compare("irb", dst, ref, nout, 1.0, 1e-4);
            CHECK(err <= 1e-4, "case %d (%dx%d %d->%d->%d s%d n%d) threads %d: error %.3g", t, H, W,
                  cin, ce, cout, s, N, th, err);
            free(scr);
        }
        CHECK(memcmp(y, y2, sizeof(float) * nout) == 0, "case %d: 1 and 2 threads differ", t);
        free(we), free(be), free(wd), free(bd), free(wp), free(bp);
        free(x), free(y), free(y2), free(e), free(d), free(ref);
    }
    return test_summary("test_irb_fused");
}
