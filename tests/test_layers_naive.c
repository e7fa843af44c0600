/* test_layers_naive.c — every optimised kernel against its naive twin over a
 * grid of shapes (forward with fused activations, backward), BN folding, and
 * thread-count independence of the reductions. */
#include "gradcheck.h"

static nn_arena ar;

typedef struct {
    int n, h, w, cin, cout, k, stride, dil;
    nn_padding mode;
    int pad;
} shape;

static const shape grid[] = {
    {2, 14, 14, 32, 24, 1, 1, 1, NN_PAD_VALID, 0},   /* pointwise GEMM */
    {3, 7, 9, 16, 40, 1, 1, 1, NN_PAD_SAME, 0},      /* pointwise, odd */
    {2, 9, 8, 12, 8, 1, 2, 1, NN_PAD_VALID, 0},      /* 1x1 stride 2 */
    {2, 16, 16, 3, 16, 3, 2, 1, NN_PAD_SAME, 0},     /* stem-like, asym */
    {2, 15, 13, 8, 12, 3, 1, 1, NN_PAD_SAME, 0},
    {1, 11, 12, 5, 7, 5, 2, 1, NN_PAD_SAME, 0},
    {2, 12, 10, 6, 5, 3, 1, 2, NN_PAD_SAME, 0},      /* dilation */
    {2, 13, 11, 4, 6, 3, 2, 1, NN_PAD_VALID, 0},
    {1, 10, 10, 20, 9, 3, 1, 1, NN_PAD_EXPLICIT, 1},
    {10, 32, 32, 4, 8, 3, 1, 1, NN_PAD_SAME, 0},     /* several im2col chunks */
    {3, 6, 6, 33, 17, 3, 2, 1, NN_PAD_SAME, 0},      /* channel remainders */
};
#define NGRID (sizeof grid / sizeof *grid)

static nn_conv_geom geom_of(const shape *s) {
    nn_conv_geom g;
    if (nn_conv_geom_init(&g, s->h, s->w, s->k, s->k, s->stride, s->dil, s->mode, s->pad) != 0)
        nn_fatal("bad test shape: %s", nn_error());
    return g;
}

static void test_conv(const shape *s, int depthwise, nn_act act) {
    size_t mark = nn_arena_mark(&ar);
    nn_conv_geom g = geom_of(s);
    int cout = depthwise ? s->cin : s->cout;
    size_t wn = (size_t)s->k * s->k * s->cin * (depthwise ? 1 : cout);
    nn_tensor x = nn_tensor_alloc(&ar, s->n, s->h, s->w, s->cin);
    nn_tensor y = nn_tensor_alloc(&ar, s->n, g.out_h, g.out_w, cout);
    nn_tensor yr = nn_tensor_alloc(&ar, s->n, g.out_h, g.out_w, cout);
    nn_tensor dy = nn_tensor_alloc(&ar, s->n, g.out_h, g.out_w, cout);
    nn_tensor dx = nn_tensor_alloc(&ar, s->n, s->h, s->w, s->cin);
    nn_tensor dxr = nn_tensor_alloc(&ar, s->n, s->h, s->w, s->cin);
    float *w = nn_arena_floats(&ar, wn), *b = nn_arena_floats(&ar, cout);
    float *dw = nn_arena_floats(&ar, wn), *dwr = nn_arena_floats(&ar, wn);
    float *db = nn_arena_floats(&ar, cout), *dbr = nn_arena_floats(&ar, cout);
    float *ws = depthwise ? NULL : nn_arena_floats(&ar, nn_conv2d_scratch_floats(&g, s->n, s->cin) + 1);
    gc_fill(x.data, nn_tensor_numel(&x), -1, 1);
    gc_fill(w, wn, -0.5f, 0.5f);
    gc_fill(b, cout, -1, 1);
    gc_fill(dy.data, nn_tensor_numel(&dy), -1, 1);
    gc_fill(dw, wn, -1, 1); /* accumulate onto the same start values */
    memcpy(dwr, dw, wn * sizeof(float));
    gc_fill(db, cout, -1, 1);
    memcpy(dbr, db, cout * sizeof(float));
    char name[200];
    snprintf(name, sizeof name, "%s n%d %dx%d c%d->%d k%d s%d d%d pad%d act%d", depthwise ? "dw" : "conv",
             s->n, s->h, s->w, s->cin, cout, s->k, s->stride, s->dil, (int)s->mode, (int)act);
    if (depthwise) {
        nn_dwconv2d_forward(&y, &x, w, b, &g, act);
        nn_dwconv2d_forward_naive(&yr, &x, w, b, &g, act);
    } else {
        nn_conv2d_forward(&y, &x, w, b, &g, act, ws);
        nn_conv2d_forward_naive(&yr, &x, w, b, &g, act);
    }
    char what[240];
    snprintf(what, sizeof what, "%s fwd", name);
    CHECK_ARRAY(what, y.data, yr.data, nn_tensor_numel(&y), 1.0, 1e-5);
    if (act == NN_ACT_NONE) {
        if (depthwise) {
            nn_dwconv2d_backward(&dx, dw, db, &dy, &x, w, &g);
            nn_dwconv2d_backward_naive(&dxr, dwr, dbr, &dy, &x, w, &g);
        } else {
            nn_conv2d_backward(&dx, dw, db, &dy, &x, w, &g, ws);
            nn_conv2d_backward_naive(&dxr, dwr, dbr, &dy, &x, w, &g);
        }
        snprintf(what, sizeof what, "%s dx", name);
        CHECK_ARRAY(what, dx.data, dxr.data, nn_tensor_numel(&dx), 1.0, 1e-5);
        snprintf(what, sizeof what, "%s dw", name);
        CHECK_ARRAY(what, dw, dwr, wn, 1.0, 1e-4);
        snprintf(what, sizeof what, "%s db", name);
        CHECK_ARRAY(what, db, dbr, (size_t)cout, 1.0, 1e-4);
        /* din only / dw only must give the same numbers */
        nn_tensor dx2 = nn_tensor_alloc(&ar, s->n, s->h, s->w, s->cin);
        float *dw2 = nn_arena_floats(&ar, wn);
        if (depthwise) {
            nn_dwconv2d_backward(&dx2, NULL, NULL, &dy, &x, w, &g);
            nn_dwconv2d_backward(NULL, dw2, NULL, &dy, &x, w, &g);
        } else {
            nn_conv2d_backward(&dx2, NULL, NULL, &dy, &x, w, &g, ws);
            nn_conv2d_backward(NULL, dw2, NULL, &dy, &x, NULL, &g, ws);
        }
        float *dwr2 = nn_arena_floats(&ar, wn);
        if (depthwise) nn_dwconv2d_backward_naive(NULL, dwr2, NULL, &dy, &x, w, &g);
        else nn_conv2d_backward_naive(NULL, dwr2, NULL, &dy, &x, w, &g);
        snprintf(what, sizeof what, "%s dx alone", name);
        CHECK_ARRAY(what, dx2.data, dx.data, nn_tensor_numel(&dx), 1e-6, 0);
        snprintf(what, sizeof what, "%s dw alone", name);
        CHECK_ARRAY(what, dw2, dwr2, wn, 1.0, 1e-4);
        /* one thread gives identical bits for depthwise (deterministic split) */
        if (depthwise) {
            float *dw1 = nn_arena_floats(&ar, wn);
            nn_tensor dx1 = nn_tensor_alloc(&ar, s->n, s->h, s->w, s->cin);
            nn_threads_set(1);
            nn_dwconv2d_backward(&dx1, dw1, NULL, &dy, &x, w, &g);
            nn_threads_set(2);
            snprintf(what, sizeof what, "%s 1 vs 2 threads", name);
            CHECK(memcmp(dw1, dw2, wn * sizeof(float)) == 0 &&
                      memcmp(dx1.data, dx2.data, nn_tensor_numel(&dx) * sizeof(float)) == 0,
                  "%s", what);
        }
    }
    nn_arena_rewind(&ar, mark);
}

static void test_dense(int n, int in, int out, nn_act act) {
    size_t mark = nn_arena_mark(&ar);
    nn_tensor x = nn_tensor_alloc(&ar, n, 1, 1, in);
    nn_tensor y = nn_tensor_alloc(&ar, n, 1, 1, out), yr = nn_tensor_alloc(&ar, n, 1, 1, out);
    float *w = nn_arena_floats(&ar, (size_t)in * out), *b = nn_arena_floats(&ar, out);
    gc_fill(x.data, (size_t)n * in, -1, 1);
    gc_fill(w, (size_t)in * out, -0.3f, 0.3f);
    gc_fill(b, out, -1, 1);
    nn_dense_forward(&y, &x, w, b, act);
    nn_dense_forward_naive(&yr, &x, w, b, act);
    char what[80];
    snprintf(what, sizeof what, "dense %dx%d->%d act%d", n, in, out, (int)act);
    CHECK_ARRAY(what, y.data, yr.data, (size_t)n * out, 1.0, 1e-5);
    nn_dense_forward(&y, &x, w, NULL, act);
    nn_dense_forward_naive(&yr, &x, w, NULL, act);
    CHECK_ARRAY(what, y.data, yr.data, (size_t)n * out, 1.0, 1e-5);
    nn_arena_rewind(&ar, mark);
}

static void test_bn_infer(int n, int h, int w, int c, nn_act act) {
    size_t mark = nn_arena_mark(&ar);
    nn_tensor x = nn_tensor_alloc(&ar, n, h, w, c);
    nn_tensor y = nn_tensor_alloc(&ar, n, h, w, c), yr = nn_tensor_alloc(&ar, n, h, w, c);
    float *g = nn_arena_floats(&ar, c), *be = nn_arena_floats(&ar, c);
    float *m = nn_arena_floats(&ar, c), *v = nn_arena_floats(&ar, c);
    gc_fill(x.data, nn_tensor_numel(&x), -8, 8);
    gc_fill(g, c, -2, 2);
    gc_fill(be, c, -3, 3);
    gc_fill(m, c, -1, 1);
    gc_fill(v, c, 0.1f, 3);
    nn_batchnorm_forward_infer(&y, &x, g, be, m, v, 1e-3f, act);
    nn_batchnorm_forward_infer_naive(&yr, &x, g, be, m, v, 1e-3f, act);
    char what[80];
    snprintf(what, sizeof what, "bn infer [%d,%d,%d,%d] act%d", n, h, w, c, (int)act);
    CHECK_ARRAY(what, y.data, yr.data, nn_tensor_numel(&y), 1.0, 1e-5);
    /* in place */
    nn_batchnorm_forward_infer(&x, &x, g, be, m, v, 1e-3f, act);
    CHECK_ARRAY("bn infer in place", x.data, yr.data, nn_tensor_numel(&y), 1.0, 1e-5);
    nn_arena_rewind(&ar, mark);
}

/* conv (+bias) -> BN infer == conv with BN folded into w, b */
static void test_fold(const shape *s, int depthwise, int bias) {
    size_t mark = nn_arena_mark(&ar);
    nn_conv_geom g = geom_of(s);
    int co = depthwise ? s->cin : s->cout;
    size_t wn = (size_t)s->k * s->k * s->cin * (depthwise ? 1 : co);
    nn_tensor x = nn_tensor_alloc(&ar, s->n, s->h, s->w, s->cin);
    nn_tensor t = nn_tensor_alloc(&ar, s->n, g.out_h, g.out_w, co);
    nn_tensor y = nn_tensor_alloc(&ar, s->n, g.out_h, g.out_w, co);
    nn_tensor yf = nn_tensor_alloc(&ar, s->n, g.out_h, g.out_w, co);
    float *w = nn_arena_floats(&ar, wn), *b = nn_arena_floats(&ar, co);
    float *gm = nn_arena_floats(&ar, co), *be = nn_arena_floats(&ar, co);
    float *m = nn_arena_floats(&ar, co), *v = nn_arena_floats(&ar, co);
    float *ws = nn_arena_floats(&ar, nn_conv2d_scratch_floats(&g, s->n, s->cin) + 1);
    gc_fill(x.data, nn_tensor_numel(&x), -1, 1);
    gc_fill(w, wn, -0.5f, 0.5f);
    if (bias) gc_fill(b, co, -1, 1);
    gc_fill(gm, co, 0.2f, 2);
    gc_fill(be, co, -1, 1);
    gc_fill(m, co, -0.5f, 0.5f);
    gc_fill(v, co, 0.2f, 2);
    if (depthwise) nn_dwconv2d_forward(&t, &x, w, bias ? b : NULL, &g, NN_ACT_NONE);
    else nn_conv2d_forward(&t, &x, w, bias ? b : NULL, &g, NN_ACT_NONE, ws);
    nn_batchnorm_forward_infer(&y, &t, gm, be, m, v, 1e-3f, NN_ACT_RELU6);
    nn_batchnorm_fold(w, b, wn / co, co, gm, be, m, v, 1e-3f);
    if (depthwise) nn_dwconv2d_forward(&yf, &x, w, b, &g, NN_ACT_RELU6);
    else nn_conv2d_forward(&yf, &x, w, b, &g, NN_ACT_RELU6, ws);
    char what[80];
    snprintf(what, sizeof what, "bn fold %s k%d bias%d", depthwise ? "dw" : "conv", s->k, bias);
    CHECK_ARRAY(what, yf.data, y.data, nn_tensor_numel(&y), 1.0, 1e-5);
    nn_arena_rewind(&ar, mark);
}

int main(void) {
    nn_threads_set(2);
    nn_rng_seed(&gc_rng, 4242);
    if (nn_arena_init(&ar, "test", 128 << 20) != 0) return 1;
    for (size_t i = 0; i < NGRID; i++) {
        for (int dw = 0; dw < 2; dw++) {
            test_conv(&grid[i], dw, NN_ACT_NONE);
            test_conv(&grid[i], dw, NN_ACT_RELU);
            test_conv(&grid[i], dw, NN_ACT_RELU6);
        }
    }
    /* depthwise only: MobileNet-like channel counts, 3x3 s1/s2 interior paths */
    static const shape dws[] = {
        {2, 20, 20, 144, 0, 3, 1, 1, NN_PAD_SAME, 0},
        {2, 21, 20, 96, 0, 3, 2, 1, NN_PAD_SAME, 0},
        {1, 8, 8, 7, 0, 3, 1, 1, NN_PAD_VALID, 0},
        {1, 9, 9, 24, 0, 5, 1, 1, NN_PAD_SAME, 0},
    };
    for (size_t i = 0; i < sizeof dws / sizeof *dws; i++) {
        test_conv(&dws[i], 1, NN_ACT_NONE);
        test_conv(&dws[i], 1, NN_ACT_RELU6);
    }
    test_dense(1, 7, 3, NN_ACT_NONE);
    test_dense(5, 64, 10, NN_ACT_RELU);
    test_dense(32, 1280, 1, NN_ACT_NONE);
    test_dense(9, 100, 33, NN_ACT_RELU6);
    test_bn_infer(2, 5, 5, 16, NN_ACT_NONE);
    test_bn_infer(3, 4, 7, 37, NN_ACT_RELU6);
    test_bn_infer(1, 3, 3, 1100, NN_ACT_RELU); /* more than one channel slice */
    test_fold(&grid[0], 0, 0);
    test_fold(&grid[3], 0, 1);
    test_fold(&grid[4], 1, 0);
    test_fold(&grid[5], 1, 1);
    nn_arena_free(&ar);
    return test_summary("test_layers_naive");
}
