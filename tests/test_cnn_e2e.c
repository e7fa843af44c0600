/* test_cnn_e2e.c — a small CNN built only from nnmask layers (conv, depthwise
 * conv, batch norm in training mode, ReLU6, global average pooling, dense,
 * sigmoid + BCE, Adam) learns horizontal vs vertical bars to >= 95%. */
#include "nnmask.h"
#include "testutil.h"

#include <time.h>

#define S 16      /* image size */
#define NTRAIN 512
#define NTEST 256
#define B 32
#define EPOCHS 12
#define C1 8
#define C3 16

/* a bright bar (horizontal: label 0, vertical: label 1) of random position,
 * length, thickness and brightness on a noisy background of random level */
static void make_image(float *img, int *label, nn_rng *r) {
    int vert = nn_rng_int(r, 2);
    float bg = nn_rng_range(r, -0.6f, -0.2f), fg = nn_rng_range(r, 0.4f, 1.0f);
    for (int i = 0; i < S * S; i++) img[i] = bg + 0.25f * nn_rng_normal(r);
    int pos = 1 + nn_rng_int(r, S - 3), len = 7 + nn_rng_int(r, S - 7);
    int start = nn_rng_int(r, S - len + 1), thick = 1 + nn_rng_int(r, 2);
    for (int t = 0; t < thick; t++)
        for (int k = start; k < start + len; k++) {
            int y = vert ? k : pos + t, x = vert ? pos + t : k;
            img[y * S + x] = fg + 0.1f * nn_rng_normal(r);
        }
    *label = vert;
}

#define NPARAMS (9 * C1 + 2 * C1 + 9 * C1 + 2 * C1 + C1 * C3 + 2 * C3 + C3 + 1)
typedef struct { /* offsets into one parameter block: Adam steps it at once */
    float *w1, *g1, *b1, *wd, *g2, *b2, *w3, *g3, *b3, *wf, *bf;
} net_params;

static size_t carve(net_params *p, float *base) {
    float *q = base;
#define TAKE(f, n) (p->f = q, q += (n))
    TAKE(w1, 9 * C1);
    TAKE(g1, C1);
    TAKE(b1, C1);
    TAKE(wd, 9 * C1);
    TAKE(g2, C1);
    TAKE(b2, C1);
    TAKE(w3, C1 * C3);
    TAKE(g3, C3);
    TAKE(b3, C3);
    TAKE(wf, C3);
    TAKE(bf, 1);
#undef TAKE
    if ((size_t)(q - base) != NPARAMS) nn_fatal("NPARAMS is out of date");
    return NPARAMS;
}

int main(void) {
    nn_threads_set(2);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    nn_rng rng;
    nn_rng_seed(&rng, 2024);

    /* ---- arenas, each sized once ---- */
    nn_arena params, grads, opt, stats, acts, scratch, data;
    net_params P, G;
    const size_t np = NPARAMS;
    if (nn_arena_init(&params, "params", np * 4 + 64) || nn_arena_init(&grads, "grads", np * 4 + 64) ||
        nn_arena_init(&opt, "adam", 2 * np * 4 + 128) || nn_arena_init(&stats, "bn stats", 4096) ||
        nn_arena_init(&acts, "activations", 4 << 20) || nn_arena_init(&scratch, "scratch", 1 << 20) ||
        nn_arena_init(&data, "data", (size_t)(NTRAIN + NTEST) * S * S * 4 + 64))
        return 1;
    float *pb = nn_arena_floats(&params, np), *gb = nn_arena_floats(&grads, np);
    float *am = nn_arena_floats(&opt, np), *av = nn_arena_floats(&opt, np);
    carve(&P, pb);
    carve(&G, gb);
    float *rm1 = nn_arena_floats(&stats, C1), *rv1 = nn_arena_floats(&stats, C1);
    float *rm2 = nn_arena_floats(&stats, C1), *rv2 = nn_arena_floats(&stats, C1);
    float *rm3 = nn_arena_floats(&stats, C3), *rv3 = nn_arena_floats(&stats, C3);
    float *mean[3], *rstd[3];
    for (int i = 0; i < 3; i++) {
        mean[i] = nn_arena_floats(&stats, C3);
        rstd[i] = nn_arena_floats(&stats, C3);
    }
    for (int c = 0; c < C3; c++) {
        if (c < C1) P.g1[c] = P.g2[c] = rv1[c] = rv2[c] = 1;
        P.g3[c] = rv3[c] = 1;
    }
    for (int i = 0; i < 9 * C1; i++) P.w1[i] = nn_rng_normal(&rng) * sqrtf(2.f / 9);
    for (int i = 0; i < 9 * C1; i++) P.wd[i] = nn_rng_normal(&rng) * sqrtf(2.f / 9);
    for (int i = 0; i < C1 * C3; i++) P.w3[i] = nn_rng_normal(&rng) * sqrtf(2.f / C1);
    for (int i = 0; i < C3; i++) P.wf[i] = nn_rng_normal(&rng) * sqrtf(1.f / C3);

    /* ---- data ---- */
    float *xs = nn_arena_floats(&data, (size_t)(NTRAIN + NTEST) * S * S);
    int labels[NTRAIN + NTEST], order[NTRAIN];
    for (int i = 0; i < NTRAIN + NTEST; i++) make_image(xs + (size_t)i * S * S, &labels[i], &rng);
    for (int i = 0; i < NTRAIN; i++) order[i] = i;

    /* ---- activations for a batch of B ---- */
    nn_conv_geom g1, gd, g3;
    nn_conv_geom_init(&g1, S, S, 3, 3, 2, 1, NN_PAD_SAME, 0); /* 16 -> 8 */
    nn_conv_geom_init(&gd, 8, 8, 3, 3, 1, 1, NN_PAD_SAME, 0);
    nn_conv_geom_init(&g3, 8, 8, 1, 1, 1, 1, NN_PAD_VALID, 0);
    nn_tensor x = nn_tensor_alloc(&acts, B, S, S, 1);
    nn_tensor c1 = nn_tensor_alloc(&acts, B, 8, 8, C1), a1 = nn_tensor_alloc(&acts, B, 8, 8, C1);
    nn_tensor c2 = nn_tensor_alloc(&acts, B, 8, 8, C1), a2 = nn_tensor_alloc(&acts, B, 8, 8, C1);
    nn_tensor c3 = nn_tensor_alloc(&acts, B, 8, 8, C3), a3 = nn_tensor_alloc(&acts, B, 8, 8, C3);
    nn_tensor pool = nn_tensor_alloc(&acts, B, 1, 1, C3), logit = nn_tensor_alloc(&acts, B, 1, 1, 1);
    nn_tensor prob = nn_tensor_alloc(&acts, B, 1, 1, 1);
    nn_tensor d8a = nn_tensor_alloc(&acts, B, 8, 8, C1), d8b = nn_tensor_alloc(&acts, B, 8, 8, C1);
    nn_tensor d16a = nn_tensor_alloc(&acts, B, 8, 8, C3), d16b = nn_tensor_alloc(&acts, B, 8, 8, C3);
    nn_tensor dpool = nn_tensor_alloc(&acts, B, 1, 1, C3), dlogit = nn_tensor_alloc(&acts, B, 1, 1, 1);
    float *ws = nn_arena_floats(&scratch, nn_conv2d_scratch_floats(&g1, B, 1));
    float targets[B];

    double first_loss = -1, last_loss = 0;
    long step = 0;
    for (int ep = 0; ep < EPOCHS; ep++) {
        nn_rng_shuffle(&rng, order, NTRAIN);
        double eloss = 0;
        for (int bi = 0; bi + B <= NTRAIN; bi += B) {
            for (int i = 0; i < B; i++) {
                memcpy(x.data + (size_t)i * S * S, xs + (size_t)order[bi + i] * S * S, S * S * 4);
                targets[i] = (float)labels[order[bi + i]];
            }
            /* forward (BN in training mode) */
            nn_conv2d_forward(&c1, &x, P.w1, NULL, &g1, NN_ACT_NONE, ws);
            nn_batchnorm_forward_train(&a1, mean[0], rstd[0], &c1, P.g1, P.b1, rm1, rv1, 0.9f, 1e-3f);
            nn_relu6_forward(&a1, &a1);
            nn_dwconv2d_forward(&c2, &a1, P.wd, NULL, &gd, NN_ACT_NONE);
            nn_batchnorm_forward_train(&a2, mean[1], rstd[1], &c2, P.g2, P.b2, rm2, rv2, 0.9f, 1e-3f);
            nn_relu6_forward(&a2, &a2);
            nn_conv2d_forward(&c3, &a2, P.w3, NULL, &g3, NN_ACT_NONE, NULL);
            nn_batchnorm_forward_train(&a3, mean[2], rstd[2], &c3, P.g3, P.b3, rm3, rv3, 0.9f, 1e-3f);
            nn_relu6_forward(&a3, &a3);
            nn_gap_forward(&pool, &a3);
            nn_dense_forward(&logit, &pool, P.wf, P.bf, NN_ACT_NONE);
            float loss = nn_bce_logits(dlogit.data, logit.data, targets, NULL, B);
            eloss += loss;
            /* backward */
            memset(gb, 0, np * sizeof(float));
            nn_dense_backward(&dpool, G.wf, G.bf, &dlogit, &pool, P.wf);
            nn_gap_backward(&d16a, &dpool);
            nn_relu6_backward(&d16b, &d16a, &a3);
            nn_batchnorm_backward(&d16a, G.g3, G.b3, &d16b, &c3, mean[2], rstd[2], P.g3);
            nn_conv2d_backward(&d8a, G.w3, NULL, &d16a, &a2, P.w3, &g3, NULL);
            nn_relu6_backward(&d8b, &d8a, &a2);
            nn_batchnorm_backward(&d8a, G.g2, G.b2, &d8b, &c2, mean[1], rstd[1], P.g2);
            nn_dwconv2d_backward(&d8b, G.wd, NULL, &d8a, &a1, P.wd, &gd);
            nn_relu6_backward(&d8a, &d8b, &a1);
            nn_batchnorm_backward(&d8b, G.g1, G.b1, &d8a, &c1, mean[0], rstd[0], P.g1);
            nn_conv2d_backward(NULL, G.w1, NULL, &d8b, &x, P.w1, &g1, ws);
            nn_adam_step(pb, gb, am, av, np, 1e-2f, 0.9f, 0.999f, 1e-7f, 0.f, ++step);
        }
        eloss /= NTRAIN / B;
        if (first_loss < 0) first_loss = eloss;
        last_loss = eloss;
    }

    /* held-out evaluation: BN with running statistics, sigmoid probabilities */
    int correct = 0;
    for (int bi = 0; bi < NTEST; bi += B) {
        memcpy(x.data, xs + (size_t)(NTRAIN + bi) * S * S, (size_t)B * S * S * 4);
        nn_conv2d_forward(&c1, &x, P.w1, NULL, &g1, NN_ACT_NONE, ws);
        nn_batchnorm_forward_infer(&a1, &c1, P.g1, P.b1, rm1, rv1, 1e-3f, NN_ACT_RELU6);
        nn_dwconv2d_forward(&c2, &a1, P.wd, NULL, &gd, NN_ACT_NONE);
        nn_batchnorm_forward_infer(&a2, &c2, P.g2, P.b2, rm2, rv2, 1e-3f, NN_ACT_RELU6);
        nn_conv2d_forward(&c3, &a2, P.w3, NULL, &g3, NN_ACT_NONE, NULL);
        nn_batchnorm_forward_infer(&a3, &c3, P.g3, P.b3, rm3, rv3, 1e-3f, NN_ACT_RELU6);
        nn_gap_forward(&pool, &a3);
        nn_dense_forward(&logit, &pool, P.wf, P.bf, NN_ACT_NONE);
        nn_sigmoid_forward(&prob, &logit);
        for (int i = 0; i < B; i++) correct += (prob.data[i] >= 0.5f) == (labels[NTRAIN + bi + i] == 1);
    }
    double acc = (double)correct / NTEST;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    printf("cnn e2e: %ld steps, loss %.4f -> %.4f, held-out accuracy %.1f%% (%d/%d), %.2f s\n", step,
           first_loss, last_loss, 100 * acc, correct, NTEST, secs);
    printf("arena peaks: params %zu, grads %zu, adam %zu, activations %zu, scratch %zu bytes\n",
           params.peak, grads.peak, opt.peak, acts.peak, scratch.peak);
    CHECK(acc >= 0.95, "held-out accuracy %.3f < 0.95", acc);
    CHECK(last_loss < 0.5 * first_loss, "loss %.4f -> %.4f did not halve", first_loss, last_loss);
    nn_arena_free(&params);
    nn_arena_free(&grads);
    nn_arena_free(&opt);
    nn_arena_free(&stats);
    nn_arena_free(&acts);
    nn_arena_free(&scratch);
    nn_arena_free(&data);
    return test_summary("test_cnn_e2e");
}
