/* test_layers_grad.c — finite-difference gradient checks of every layer
 * backward (conv, depthwise, BN, activations, pooling, dense, dropout, losses). */
#include "gradcheck.h"

static nn_arena ar;
#define H_STEP 1e-2f
#define RTOL 1e-2
#define MAXCHK 400

/* ---------------- conv2d / depthwise ---------------- */
typedef struct {
    nn_conv_geom g;
    nn_tensor x, y;
    float *w, *b, *r, *ws;
    int dw; /* depthwise? */
} conv_ctx;

static double conv_loss(void *p) {
    conv_ctx *c = p;
    if (c->dw)
        nn_dwconv2d_forward(&c->y, &c->x, c->w, c->b, &c->g, NN_ACT_NONE);
    else
        nn_conv2d_forward(&c->y, &c->x, c->w, c->b, &c->g, NN_ACT_NONE, c->ws);
    return gc_dot(c->y.data, c->r, nn_tensor_numel(&c->y));
}

typedef struct {
    const char *name;
    int n, h, w, cin, cout, k, stride, dil;
    nn_padding mode;
    int pad, bias;
    int pt, pb, pl, pr; /* hand-set pads when >= 0 and mode == EXPLICIT with pad < 0 */
} conv_case;

static void run_conv_case(const conv_case *cc, int depthwise) {
    size_t mark = nn_arena_mark(&ar);
    conv_ctx c = {0};
    c.dw = depthwise;
    char name[160];
    if (cc->pad < 0) {
        c.g = (nn_conv_geom){.in_h = cc->h, .in_w = cc->w, .kh = cc->k, .kw = cc->k,
                             .stride_h = cc->stride, .stride_w = cc->stride, .dil_h = cc->dil,
                             .dil_w = cc->dil, .pad_t = cc->pt, .pad_b = cc->pb, .pad_l = cc->pl,
                             .pad_r = cc->pr};
        CHECK(nn_conv_geom_finish(&c.g) == 0, "%s: %s", cc->name, nn_error());
    } else {
        CHECK(nn_conv_geom_init(&c.g, cc->h, cc->w, cc->k, cc->k, cc->stride, cc->dil, cc->mode,
                                cc->pad) == 0,
              "%s: %s", cc->name, nn_error());
    }
    int cout = depthwise ? cc->cin : cc->cout;
    c.x = nn_tensor_alloc(&ar, cc->n, cc->h, cc->w, cc->cin);
    c.y = nn_tensor_alloc(&ar, cc->n, c.g.out_h, c.g.out_w, cout);
    size_t wn = depthwise ? (size_t)cc->k * cc->k * cc->cin : (size_t)cc->k * cc->k * cc->cin * cout;
    c.w = nn_arena_floats(&ar, wn);
    c.b = cc->bias ? nn_arena_floats(&ar, cout) : NULL;
    c.r = nn_arena_floats(&ar, nn_tensor_numel(&c.y));
    c.ws = depthwise ? NULL
                     : nn_arena_floats(&ar, nn_conv2d_scratch_floats(&c.g, cc->n, cc->cin) + 1);
    gc_fill(c.x.data, nn_tensor_numel(&c.x), -1, 1);
    gc_fill(c.w, wn, -1, 1);
    if (c.b) gc_fill(c.b, cout, -1, 1);
    gc_fill(c.r, nn_tensor_numel(&c.y), -1, 1);
    nn_tensor dx = nn_tensor_alloc(&ar, cc->n, cc->h, cc->w, cc->cin);
    nn_tensor dy = nn_tensor_make(c.r, cc->n, c.g.out_h, c.g.out_w, cout);
    float *dw = nn_arena_floats(&ar, wn), *db = nn_arena_floats(&ar, cout);
    /* garbage in dx: backward must overwrite it */
    gc_fill(dx.data, nn_tensor_numel(&dx), 100, 200);
    conv_loss(&c);
    if (depthwise)
        nn_dwconv2d_backward(&dx, dw, c.b ? db : NULL, &dy, &c.x, c.w, &c.g);
    else
        nn_conv2d_backward(&dx, dw, c.b ? db : NULL, &dy, &c.x, c.w, &c.g, c.ws);
    const char *kind = depthwise ? "dwconv" : "conv";
    snprintf(name, sizeof name, "%s %s dx", kind, cc->name);
    gc_check(name, conv_loss, &c, c.x.data, dx.data, nn_tensor_numel(&dx), H_STEP, RTOL, MAXCHK);
    snprintf(name, sizeof name, "%s %s dw", kind, cc->name);
    gc_check(name, conv_loss, &c, c.w, dw, wn, H_STEP, RTOL, MAXCHK);
    if (c.b) {
        snprintf(name, sizeof name, "%s %s db", kind, cc->name);
        gc_check(name, conv_loss, &c, c.b, db, cout, H_STEP, RTOL, MAXCHK);
    }
    /* second backward: dw/db accumulate (x2), dx is written again (x1) */
    float *dw1 = nn_arena_floats(&ar, wn), *db1 = nn_arena_floats(&ar, cout);
    nn_tensor dx1 = nn_tensor_alloc(&ar, cc->n, cc->h, cc->w, cc->cin);
    memcpy(dx1.data, dx.data, nn_tensor_numel(&dx) * sizeof(float));
    for (size_t i = 0; i < wn; i++) dw1[i] = 2 * dw[i];
    for (int i = 0; i < cout; i++) db1[i] = 2 * db[i];
    if (depthwise)
        nn_dwconv2d_backward(&dx, dw, c.b ? db : NULL, &dy, &c.x, c.w, &c.g);
    else
        nn_conv2d_backward(&dx, dw, c.b ? db : NULL, &dy, &c.x, c.w, &c.g, c.ws);
    snprintf(name, sizeof name, "%s %s dw accumulates", kind, cc->name);
    CHECK_ARRAY(name, dw, dw1, wn, 1e-3, 1e-5);
    snprintf(name, sizeof name, "%s %s db accumulates", kind, cc->name);
    CHECK_ARRAY(name, db, db1, (size_t)cout, 1e-3, 1e-5);
    snprintf(name, sizeof name, "%s %s dx written", kind, cc->name);
    CHECK_ARRAY(name, dx.data, dx1.data, nn_tensor_numel(&dx), 1e-3, 1e-6);
    nn_arena_rewind(&ar, mark);
}

static const conv_case conv_cases[] = {
    {"1x1 fast path", 2, 5, 4, 3, 4, 1, 1, 1, NN_PAD_VALID, 0, 1, 0, 0, 0, 0},
    {"1x1 no bias", 3, 3, 3, 5, 2, 1, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, 0, 0},
    {"1x1 stride 2", 2, 5, 6, 3, 4, 1, 2, 1, NN_PAD_VALID, 0, 1, 0, 0, 0, 0},
    {"3x3 same", 2, 6, 5, 3, 4, 3, 1, 1, NN_PAD_SAME, 0, 1, 0, 0, 0, 0},
    {"3x3 same no bias", 1, 5, 5, 4, 3, 3, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, 0, 0},
    {"5x5 same", 2, 7, 6, 2, 3, 5, 1, 1, NN_PAD_SAME, 0, 1, 0, 0, 0, 0},
    {"3x3 s2 same even (asymmetric)", 2, 8, 6, 3, 2, 3, 2, 1, NN_PAD_SAME, 0, 1, 0, 0, 0, 0},
    {"3x3 s2 same odd", 1, 7, 9, 3, 2, 3, 2, 1, NN_PAD_SAME, 0, 1, 0, 0, 0, 0},
    {"3x3 dilation 2", 2, 9, 8, 2, 3, 3, 1, 2, NN_PAD_SAME, 0, 1, 0, 0, 0, 0},
    {"3x3 valid s2 odd", 2, 7, 9, 3, 2, 3, 2, 1, NN_PAD_VALID, 0, 1, 0, 0, 0, 0},
    {"3x3 valid s1", 1, 6, 5, 2, 3, 3, 1, 1, NN_PAD_VALID, 0, 0, 0, 0, 0, 0},
    {"3x3 explicit pad 1", 2, 5, 5, 2, 3, 3, 1, 1, NN_PAD_EXPLICIT, 1, 1, 0, 0, 0, 0},
    {"5x5 explicit pad 2 s2", 1, 9, 7, 2, 2, 5, 2, 1, NN_PAD_EXPLICIT, 2, 1, 0, 0, 0, 0},
    {"3x3 hand asym pads s2", 2, 7, 8, 3, 2, 3, 2, 1, NN_PAD_EXPLICIT, -1, 1, 2, 0, 1, 3},
    {"3x3 hand asym pads s1", 1, 6, 5, 2, 3, 3, 1, 1, NN_PAD_EXPLICIT, -1, 1, 0, 2, 2, 0},
    {"3x3 batch 4 odd", 4, 5, 3, 3, 5, 3, 1, 1, NN_PAD_SAME, 0, 1, 0, 0, 0, 0},
};

/* ---------------- batch norm ---------------- */
typedef struct {
    nn_tensor x, y;
    float *gamma, *beta, *mean, *rstd, *rm, *rv, *r;
    int train;
} bn_ctx;

static double bn_loss(void *p) {
    bn_ctx *c = p;
    if (c->train)
        nn_batchnorm_forward_train(&c->y, c->mean, c->rstd, &c->x, c->gamma, c->beta, c->rm, c->rv,
                                   0.9f, 1e-3f);
    else
        nn_batchnorm_forward_infer(&c->y, &c->x, c->gamma, c->beta, c->rm, c->rv, 1e-3f,
                                   NN_ACT_NONE);
    return gc_dot(c->y.data, c->r, nn_tensor_numel(&c->y));
}

static void test_bn(int train, int n, int h, int w, int C) {
    size_t mark = nn_arena_mark(&ar);
    bn_ctx c = {0};
    c.train = train;
    c.x = nn_tensor_alloc(&ar, n, h, w, C);
    c.y = nn_tensor_alloc(&ar, n, h, w, C);
    size_t ne = nn_tensor_numel(&c.x);
    c.gamma = nn_arena_floats(&ar, C);
    c.beta = nn_arena_floats(&ar, C);
    c.mean = nn_arena_floats(&ar, C);
    c.rstd = nn_arena_floats(&ar, C);
    c.rm = nn_arena_floats(&ar, C);
    c.rv = nn_arena_floats(&ar, C);
    c.r = nn_arena_floats(&ar, ne);
    gc_fill(c.x.data, ne, -2, 3);
    gc_fill(c.gamma, C, 0.5f, 1.5f);
    gc_fill(c.beta, C, -1, 1);
    gc_fill(c.rm, C, -0.5f, 0.5f);
    gc_fill(c.rv, C, 0.5f, 2.f);
    gc_fill(c.r, ne, -1, 1);
    float *rm0 = nn_arena_floats(&ar, C), *rv0 = nn_arena_floats(&ar, C);
    memcpy(rm0, c.rm, C * sizeof(float));
    memcpy(rv0, c.rv, C * sizeof(float));
    bn_loss(&c);
    if (train) {
        /* running stats: run = 0.9 run + 0.1 batch (unbiased var) */
        size_t M = (size_t)n * h * w;
        int bad = 0;
        for (int ch = 0; ch < C; ch++) {
            double s = 0, q = 0;
            for (size_t i = 0; i < M; i++) s += c.x.data[i * C + ch];
            double mu = s / M;
            for (size_t i = 0; i < M; i++) q += pow(c.x.data[i * C + ch] - mu, 2);
            double em = 0.9 * rm0[ch] + 0.1 * mu, ev = 0.9 * rv0[ch] + 0.1 * q / (M - 1);
            double rs = 1 / sqrt(q / M + 1e-3);
            if (fabs(c.rm[ch] - em) > 1e-5 || fabs(c.rv[ch] - ev) > 1e-5 ||
                fabs(c.mean[ch] - mu) > 1e-5 || fabs(c.rstd[ch] - rs) > 1e-5 * rs)
                bad++;
        }
        CHECK(bad == 0, "bn train: %d channels with wrong mean/rstd/running stats", bad);
    }
    nn_tensor dx = nn_tensor_alloc(&ar, n, h, w, C);
    nn_tensor dy = nn_tensor_make(c.r, n, h, w, C);
    float *dg = nn_arena_floats(&ar, C), *dbt = nn_arena_floats(&ar, C);
    gc_fill(dx.data, ne, 5, 6);
    if (train)
        nn_batchnorm_backward(&dx, dg, dbt, &dy, &c.x, c.mean, c.rstd, c.gamma);
    else
        nn_batchnorm_backward_infer(&dx, dg, dbt, &dy, &c.x, c.gamma, c.rm, c.rv, 1e-3f);
    const char *k = train ? "bn train" : "bn infer";
    char name[64];
    snprintf(name, sizeof name, "%s dx", k);
    gc_check(name, bn_loss, &c, c.x.data, dx.data, ne, H_STEP, RTOL, MAXCHK);
    snprintf(name, sizeof name, "%s dgamma", k);
    gc_check(name, bn_loss, &c, c.gamma, dg, C, H_STEP, RTOL, MAXCHK);
    snprintf(name, sizeof name, "%s dbeta", k);
    gc_check(name, bn_loss, &c, c.beta, dbt, C, H_STEP, RTOL, MAXCHK);
    nn_arena_rewind(&ar, mark);
}

/* ---------------- elementwise / pooling / dense ---------------- */
enum { K_RELU, K_RELU6, K_SIGMOID, K_SOFTMAX, K_GAP, K_DROPOUT };
typedef struct {
    int kind;
    nn_tensor x, y;
    float *r, *mask;
    nn_rng rng;
} ew_ctx;

static double ew_loss(void *p) {
    ew_ctx *c = p;
    switch (c->kind) {
    case K_RELU: nn_relu_forward(&c->y, &c->x); break;
    case K_RELU6: nn_relu6_forward(&c->y, &c->x); break;
    case K_SIGMOID: nn_sigmoid_forward(&c->y, &c->x); break;
    case K_SOFTMAX: nn_softmax_forward(&c->y, &c->x); break;
    case K_GAP: nn_gap_forward(&c->y, &c->x); break;
    case K_DROPOUT:
        nn_rng_seed(&c->rng, 77); /* the same mask every call */
        nn_dropout_forward(&c->y, c->mask, &c->x, 0.4f, 1, &c->rng);
        break;
    }
    return gc_dot(c->y.data, c->r, nn_tensor_numel(&c->y));
}

static void test_ew(int kind, const char *name) {
    size_t mark = nn_arena_mark(&ar);
    ew_ctx c = {0};
    c.kind = kind;
    c.x = nn_tensor_alloc(&ar, 3, 4, 3, 5);
    c.y = kind == K_GAP ? nn_tensor_alloc(&ar, 3, 1, 1, 5) : nn_tensor_alloc(&ar, 3, 4, 3, 5);
    size_t ne = nn_tensor_numel(&c.x), no = nn_tensor_numel(&c.y);
    c.r = nn_arena_floats(&ar, no);
    c.mask = nn_arena_floats(&ar, ne);
    gc_fill(c.r, no, -1, 1);
    static const float k_relu[] = {0.f}, k_relu6[] = {0.f, 6.f};
    if (kind == K_RELU) gc_fill_away(c.x.data, ne, -3, 3, k_relu, 1, 0.1f);
    else if (kind == K_RELU6) gc_fill_away(c.x.data, ne, -2, 8, k_relu6, 2, 0.1f);
    else gc_fill(c.x.data, ne, -4, 4);
    ew_loss(&c);
    nn_tensor dx = nn_tensor_alloc(&ar, 3, 4, 3, 5);
    nn_tensor dy = nn_tensor_make(c.r, c.y.n, c.y.h, c.y.w, c.y.c);
    gc_fill(dx.data, ne, 7, 8);
    switch (kind) {
    case K_RELU: nn_relu_backward(&dx, &dy, &c.x); break;
    case K_RELU6: nn_relu6_backward(&dx, &dy, &c.x); break;
    case K_SIGMOID: nn_sigmoid_backward(&dx, &dy, &c.y); break;
    case K_SOFTMAX: nn_softmax_backward(&dx, &dy, &c.y); break;
    case K_GAP: nn_gap_backward(&dx, &dy); break;
    case K_DROPOUT: nn_dropout_backward(&dx, &dy, c.mask); break;
    }
    gc_check(name, ew_loss, &c, c.x.data, dx.data, ne, H_STEP, RTOL, MAXCHK);
    if (kind == K_RELU6) {
        /* backward from the output gives the same mask */
        nn_tensor dx2 = nn_tensor_alloc(&ar, 3, 4, 3, 5);
        nn_relu6_backward(&dx2, &dy, &c.y);
        CHECK_ARRAY("relu6 backward from output", dx2.data, dx.data, ne, 1e-6, 0);
    }
    if (kind == K_DROPOUT) {
        size_t zeros = 0; int bad = 0;
        for (size_t i = 0; i < ne; i++) {
            if (c.mask[i] == 0.f) zeros++;
            else if (fabsf(c.mask[i] - 1.f / 0.6f) > 1e-6f) bad++;
        }
        CHECK(bad == 0 && zeros > ne / 6 && zeros < ne * 2 / 3,
              "dropout mask: %zu zeros of %zu, %d bad factors", zeros, ne, bad);
        nn_tensor y2 = nn_tensor_alloc(&ar, 3, 4, 3, 5);
        nn_dropout_forward(&y2, c.mask, &c.x, 0.4f, 0, NULL);
        CHECK_ARRAY("dropout eval is identity", y2.data, c.x.data, ne, 1e-6, 0);
    }
    nn_arena_rewind(&ar, mark);
}

typedef struct {
    nn_tensor a, b, y;
    float *r;
} add_ctx;
static double add_loss(void *p) {
    add_ctx *c = p;
    nn_add_forward(&c->y, &c->a, &c->b);
    return gc_dot(c->y.data, c->r, nn_tensor_numel(&c->y));
}
static void test_add(void) {
    size_t mark = nn_arena_mark(&ar);
    add_ctx c;
    c.a = nn_tensor_alloc(&ar, 2, 3, 3, 4);
    c.b = nn_tensor_alloc(&ar, 2, 3, 3, 4);
    c.y = nn_tensor_alloc(&ar, 2, 3, 3, 4);
    size_t ne = nn_tensor_numel(&c.a);
    c.r = nn_arena_floats(&ar, ne);
    gc_fill(c.a.data, ne, -1, 1);
    gc_fill(c.b.data, ne, -1, 1);
    gc_fill(c.r, ne, -1, 1);
    nn_tensor da = nn_tensor_alloc(&ar, 2, 3, 3, 4), db = nn_tensor_alloc(&ar, 2, 3, 3, 4);
    nn_tensor dy = nn_tensor_make(c.r, 2, 3, 3, 4);
    nn_add_backward(&da, &db, &dy);
    gc_check("add da", add_loss, &c, c.a.data, da.data, ne, H_STEP, RTOL, MAXCHK);
    gc_check("add db", add_loss, &c, c.b.data, db.data, ne, H_STEP, RTOL, MAXCHK);
    nn_arena_rewind(&ar, mark);
}

typedef struct {
    nn_tensor in[3], y;
    float *r;
} cat_ctx;
static double cat_loss(void *p) {
    cat_ctx *c = p;
    const nn_tensor *ins[3] = {&c->in[0], &c->in[1], &c->in[2]};
    nn_concat_forward(&c->y, ins, 3);
    return gc_dot(c->y.data, c->r, nn_tensor_numel(&c->y));
}
static void test_concat(void) {
    size_t mark = nn_arena_mark(&ar);
    cat_ctx c;
    int cs[3] = {2, 5, 3};
    nn_tensor d[3];
    nn_tensor *dins[3];
    for (int i = 0; i < 3; i++) {
        c.in[i] = nn_tensor_alloc(&ar, 2, 3, 2, cs[i]);
        gc_fill(c.in[i].data, nn_tensor_numel(&c.in[i]), -1, 1);
        d[i] = nn_tensor_alloc(&ar, 2, 3, 2, cs[i]);
        dins[i] = &d[i];
    }
    c.y = nn_tensor_alloc(&ar, 2, 3, 2, 10);
    c.r = nn_arena_floats(&ar, nn_tensor_numel(&c.y));
    gc_fill(c.r, nn_tensor_numel(&c.y), -1, 1);
    nn_tensor dy = nn_tensor_make(c.r, 2, 3, 2, 10);
    nn_concat_backward(dins, 3, &dy);
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "concat din%d", i);
        gc_check(name, cat_loss, &c, c.in[i].data, d[i].data, nn_tensor_numel(&d[i]), H_STEP, RTOL,
                 MAXCHK);
    }
    nn_arena_rewind(&ar, mark);
}

typedef struct {
    nn_conv_geom g;
    nn_tensor x, y;
    float *r;
} pool_ctx;
static double pool_loss(void *p) {
    pool_ctx *c = p;
    nn_avgpool_forward(&c->y, &c->x, &c->g);
    return gc_dot(c->y.data, c->r, nn_tensor_numel(&c->y));
}
static void test_avgpool(const char *name, int h, int w, int k, int s, nn_padding mode, int pad,
                         int asym) {
    size_t mark = nn_arena_mark(&ar);
    pool_ctx c;
    nn_conv_geom_init(&c.g, h, w, k, k, s, 1, mode, pad);
    if (asym) {
        c.g.pad_t = 0;
        c.g.pad_b = 2;
        c.g.pad_l = 1;
        c.g.pad_r = 0;
        nn_conv_geom_finish(&c.g);
    }
    c.x = nn_tensor_alloc(&ar, 2, h, w, 3);
    c.y = nn_tensor_alloc(&ar, 2, c.g.out_h, c.g.out_w, 3);
    c.r = nn_arena_floats(&ar, nn_tensor_numel(&c.y));
    gc_fill(c.x.data, nn_tensor_numel(&c.x), -1, 1);
    gc_fill(c.r, nn_tensor_numel(&c.y), -1, 1);
    nn_tensor dx = nn_tensor_alloc(&ar, 2, h, w, 3);
    nn_tensor dy = nn_tensor_make(c.r, 2, c.g.out_h, c.g.out_w, 3);
    nn_avgpool_backward(&dx, &dy, &c.g);
    gc_check(name, pool_loss, &c, c.x.data, dx.data, nn_tensor_numel(&dx), H_STEP, RTOL, MAXCHK);
    nn_arena_rewind(&ar, mark);
}

typedef struct {
    nn_tensor x, y;
    float *w, *b, *r;
} dense_ctx;
static double dense_loss(void *p) {
    dense_ctx *c = p;
    nn_dense_forward(&c->y, &c->x, c->w, c->b, NN_ACT_NONE);
    return gc_dot(c->y.data, c->r, nn_tensor_numel(&c->y));
}
static void test_dense(int bias) {
    size_t mark = nn_arena_mark(&ar);
    dense_ctx c;
    c.x = nn_tensor_alloc(&ar, 3, 2, 2, 3); /* In = 12 */
    c.y = nn_tensor_alloc(&ar, 3, 1, 1, 5);
    c.w = nn_arena_floats(&ar, 60);
    c.b = bias ? nn_arena_floats(&ar, 5) : NULL;
    c.r = nn_arena_floats(&ar, 15);
    gc_fill(c.x.data, 36, -1, 1);
    gc_fill(c.w, 60, -1, 1);
    if (c.b) gc_fill(c.b, 5, -1, 1);
    gc_fill(c.r, 15, -1, 1);
    nn_tensor dx = nn_tensor_alloc(&ar, 3, 2, 2, 3);
    nn_tensor dy = nn_tensor_make(c.r, 3, 1, 1, 5);
    float *dw = nn_arena_floats(&ar, 60), *db = nn_arena_floats(&ar, 5);
    nn_dense_backward(&dx, dw, c.b ? db : NULL, &dy, &c.x, c.w);
    gc_check(bias ? "dense dx" : "dense(no bias) dx", dense_loss, &c, c.x.data, dx.data, 36, H_STEP,
             RTOL, MAXCHK);
    gc_check(bias ? "dense dw" : "dense(no bias) dw", dense_loss, &c, c.w, dw, 60, H_STEP, RTOL,
             MAXCHK);
    if (bias) gc_check("dense db", dense_loss, &c, c.b, db, 5, H_STEP, RTOL, MAXCHK);
    nn_arena_rewind(&ar, mark);
}

/* ---------------- losses ---------------- */
typedef struct {
    float *z, *t, *w;
    int *lab;
    int n, k, xent;
} loss_ctx;
static double loss_loss(void *p) {
    loss_ctx *c = p;
    if (c->xent) return nn_softmax_xent(NULL, NULL, c->z, c->lab, c->w, c->n, c->k);
    return nn_bce_logits(NULL, c->z, c->t, c->w, c->n);
}
static void test_losses(void) {
    float z[24], t[8], w[8], dz[24];
    int lab[6] = {0, 3, 2, 1, 3, 0};
    gc_fill(z, 24, -3, 3);
    gc_fill(t, 8, 0, 1);
    t[0] = 0;
    t[1] = 1;
    gc_fill(w, 8, 0.2f, 2);
    loss_ctx c = {z, t, w, lab, 8, 0, 0};
    nn_bce_logits(dz, z, t, w, 8);
    gc_check("bce dlogits (weighted)", loss_loss, &c, z, dz, 8, 1e-2f, RTOL, MAXCHK);
    c.w = NULL;
    nn_bce_logits(dz, z, t, NULL, 8);
    gc_check("bce dlogits", loss_loss, &c, z, dz, 8, 1e-2f, RTOL, MAXCHK);
    loss_ctx x = {z, NULL, w, lab, 6, 4, 1};
    nn_softmax_xent(dz, NULL, z, lab, w, 6, 4);
    gc_check("softmax xent dlogits (weighted)", loss_loss, &x, z, dz, 24, 1e-2f, RTOL, MAXCHK);
    x.w = NULL;
    nn_softmax_xent(dz, NULL, z, lab, NULL, 6, 4);
    gc_check("softmax xent dlogits", loss_loss, &x, z, dz, 24, 1e-2f, RTOL, MAXCHK);
}

/* ---------------- geometry ---------------- */
static void test_geom(void) {
    nn_conv_geom g;
    CHECK(nn_conv_geom_init(&g, 224, 224, 3, 3, 2, 1, NN_PAD_SAME, 0) == 0, "geom");
    CHECK(g.out_h == 112 && g.out_w == 112 && g.pad_t == 0 && g.pad_b == 1 && g.pad_l == 0 &&
              g.pad_r == 1,
          "SAME 224 k3 s2: out %d pads %d %d %d %d", g.out_h, g.pad_t, g.pad_b, g.pad_l, g.pad_r);
    nn_conv_geom_init(&g, 7, 7, 3, 3, 2, 1, NN_PAD_SAME, 0);
    CHECK(g.out_h == 4 && g.pad_t == 1 && g.pad_b == 1, "SAME 7 k3 s2: out %d pads %d %d", g.out_h,
          g.pad_t, g.pad_b);
    nn_conv_geom_init(&g, 10, 9, 5, 5, 1, 2, NN_PAD_SAME, 0);
    CHECK(g.out_h == 10 && g.out_w == 9 && g.pad_t == 4 && g.pad_b == 4, "SAME dil 2: %d %d %d",
          g.out_h, g.pad_t, g.pad_b);
    nn_conv_geom_init(&g, 8, 8, 2, 2, 2, 1, NN_PAD_SAME, 0);
    CHECK(g.out_h == 4 && g.pad_t == 0 && g.pad_b == 0, "SAME k2 s2: %d %d", g.out_h, g.pad_b);
    nn_conv_geom_init(&g, 7, 6, 3, 3, 2, 1, NN_PAD_VALID, 0);
    CHECK(g.out_h == 3 && g.out_w == 2 && g.pad_t == 0, "VALID 7x6 k3 s2: %dx%d", g.out_h, g.out_w);
    nn_conv_geom_init(&g, 5, 5, 3, 3, 1, 1, NN_PAD_EXPLICIT, 2);
    CHECK(g.out_h == 7 && g.pad_l == 2 && g.pad_r == 2, "EXPLICIT pad 2: %d", g.out_h);
    g.pad_t = 0;
    g.pad_b = 3;
    CHECK(nn_conv_geom_finish(&g) == 0 && g.out_h == 6, "finish asym: %d", g.out_h);
    CHECK(nn_conv_geom_init(&g, 2, 2, 5, 5, 1, 1, NN_PAD_VALID, 0) == -1 &&
              strstr(nn_error(), "larger") != NULL,
          "VALID window > input must fail: %s", nn_error());
    CHECK(nn_conv_geom_init(&g, 8, 8, 3, 3, 0, 1, NN_PAD_SAME, 0) == -1, "stride 0 must fail");
}

int main(void) {
    nn_threads_set(2);
    nn_rng_seed(&gc_rng, 12345);
    if (nn_arena_init(&ar, "test", 64 << 20) != 0) return 1;
    test_geom();
    for (size_t i = 0; i < sizeof conv_cases / sizeof *conv_cases; i++) {
        run_conv_case(&conv_cases[i], 0);
        run_conv_case(&conv_cases[i], 1);
    }
    test_bn(1, 3, 2, 3, 5);
    test_bn(1, 2, 3, 3, 19); /* 16-channel block + remainder */
    test_bn(0, 3, 2, 3, 5);
    test_ew(K_RELU, "relu dx");
    test_ew(K_RELU6, "relu6 dx");
    test_ew(K_SIGMOID, "sigmoid dx");
    test_ew(K_SOFTMAX, "softmax dx");
    test_ew(K_GAP, "gap dx");
    test_ew(K_DROPOUT, "dropout dx");
    test_add();
    test_concat();
    test_avgpool("avgpool 3x3 s2 same even", 8, 6, 3, 2, NN_PAD_SAME, 0, 0);
    test_avgpool("avgpool 3x3 s1 same", 5, 5, 3, 1, NN_PAD_SAME, 0, 0);
    test_avgpool("avgpool 2x2 s2 valid odd", 7, 5, 2, 2, NN_PAD_VALID, 0, 0);
    test_avgpool("avgpool 3x3 s2 asym pads", 7, 6, 3, 2, NN_PAD_EXPLICIT, 0, 1);
    test_dense(1);
    test_dense(0);
    test_losses();
    nn_arena_free(&ar);
    return test_summary("test_layers_grad");
}
