/* test_optim.c — Adam/AdamW and SGD (plain, momentum, Nesterov, weight
 * decay) against steps worked out by hand; BCE and softmax cross-entropy
 * against closed forms, including extreme logits. */
#include "nnmask.h"
#include "testutil.h"

#define TOL 2e-6

/* Runs 3 steps on p = {1, -1} with gradients {g, -g} (and on a long array
 * that takes the threaded path) and checks each step against want[]. */
static void check_adam(const char *what, float wd, const double want[3]) {
    static const float gs[3] = {0.5f, -0.2f, 0.1f};
    float p[2] = {1, -1}, m[2] = {0}, v[2] = {0};
    enum { BIG = 100003 };
    static float pb[BIG], gb[BIG], mb[BIG], vb[BIG];
    for (int i = 0; i < BIG; i++) pb[i] = 1, mb[i] = vb[i] = 0;
    for (int t = 1; t <= 3; t++) {
        float g[2] = {gs[t - 1], -gs[t - 1]};
        for (int i = 0; i < BIG; i++) gb[i] = gs[t - 1];
        nn_adam_step(p, g, m, v, 2, 0.1f, 0.9f, 0.999f, 1e-8f, wd, t);
        nn_adam_step(pb, gb, mb, vb, BIG, 0.1f, 0.9f, 0.999f, 1e-8f, wd, t);
        char name[80];
        snprintf(name, sizeof name, "%s step %d", what, t);
        CHECK_CLOSE(p[0], want[t - 1], TOL, name);
        CHECK_CLOSE(p[1], -want[t - 1], TOL, name);
        CHECK(pb[0] == p[0] && pb[BIG - 1] == p[0], "%s: long array differs", name);
    }
}

static void test_adam(void) {
    /* lr 0.1, beta1 0.9, beta2 0.999, eps 1e-8, gradients 0.5, -0.2, 0.1.
     * t=1: m = 0.1*0.5 = 0.05; v = 0.001*0.25 = 0.00025
     *      mhat = 0.05/(1-0.9) = 0.5; vhat = 0.00025/(1-0.999) = 0.25
     *      p = 1 - 0.1 * 0.5/(0.5 + 1e-8) = 0.900000002
     * t=2: m = 0.9*0.05 + 0.1*(-0.2) = 0.025; v = 0.999*0.00025 + 0.001*0.04 = 0.00028975
     *      mhat = 0.025/0.19 = 0.131578947; vhat = 0.00028975/0.001999 = 0.144947474
     *      p = 0.900000002 - 0.1*0.131578947/0.380719691 = 0.865439418
     * t=3: m = 0.9*0.025 + 0.01 = 0.0325; v = 0.999*0.00028975 + 0.001*0.01 = 0.00029946025
     *      mhat = 0.0325/0.271 = 0.119926199; vhat = 0.00029946025/0.002997001 = 0.0999199700
     *      p = 0.865439418 - 0.1*0.119926199/0.316101202 = 0.827500241 */
    static const double want[3] = {0.900000002, 0.865439418, 0.827500241};
    check_adam("adam", 0.f, want);
    /* AdamW, wd 0.01: the same ratios plus 0.1*0.01*p (p before the step):
     * t=1: 1 - 0.1*(1 + 0.01*1) = 0.899000002
     * t=2: 0.899000002 - 0.1*(0.345605834 + 0.00899000002) = 0.863540418
     * t=3: 0.863540418 - 0.1*(0.379392262 + 0.00863540418) = 0.824737700 */
    static const double want_wd[3] = {0.899000002, 0.863540418, 0.824737700};
    check_adam("adamw", 0.01f, want_wd);
}

static void check_sgd(const char *what, float mu, float wd, int nesterov, const double want[3]) {
    float p[2] = {1, -1}, v[2] = {0, 0}, g[2] = {0.5f, -0.5f};
    for (int t = 1; t <= 3; t++) {
        nn_sgd_step(p, g, mu != 0.f ? v : NULL, 2, 0.1f, mu, wd, nesterov);
        char name[80];
        snprintf(name, sizeof name, "%s step %d", what, t);
        CHECK_CLOSE(p[0], want[t - 1], TOL, name);
        CHECK_CLOSE(p[1], -want[t - 1], TOL, name);
    }
}

static void test_sgd(void) {
    /* lr 0.1, constant gradient 0.5, p0 = 1 */
    /* plain: p -= 0.05 each step */
    static const double plain[3] = {0.95, 0.90, 0.85};
    check_sgd("sgd", 0.f, 0.f, 0, plain);
    /* momentum 0.9: v1 = 0.5, p1 = 0.95; v2 = 0.45+0.5 = 0.95, p2 = 0.855;
     * v3 = 0.855+0.5 = 1.355, p3 = 0.855-0.1355 = 0.7195 */
    static const double mom[3] = {0.95, 0.855, 0.7195};
    check_sgd("sgd momentum", 0.9f, 0.f, 0, mom);
    /* nesterov: p -= 0.1*(g + 0.9 v): p1 = 1-0.1*(0.5+0.45) = 0.905;
     * p2 = 0.905-0.1*(0.5+0.855) = 0.7695; p3 = 0.7695-0.1*(0.5+1.2195) = 0.59755 */
    static const double nes[3] = {0.905, 0.7695, 0.59755};
    check_sgd("sgd nesterov", 0.9f, 0.f, 1, nes);
    /* momentum 0.9, wd 0.1: g' = 0.5 + 0.1 p.
     * t1: g' = 0.6, v = 0.6, p = 0.94
     * t2: g' = 0.594, v = 0.54+0.594 = 1.134, p = 0.8266
     * t3: g' = 0.58266, v = 1.0206+0.58266 = 1.60326, p = 0.666274 */
    static const double mwd[3] = {0.94, 0.8266, 0.666274};
    check_sgd("sgd momentum wd", 0.9f, 0.1f, 0, mwd);
    /* nesterov + wd: t1: g' = 0.6, v = 0.6, p = 1-0.1*(0.6+0.54) = 0.886
     * t2: g' = 0.5886, v = 0.54+0.5886 = 1.1286, p = 0.886-0.1*(0.5886+1.01574) = 0.725566
     * t3: g' = 0.5725566, v = 1.01574+0.5725566 = 1.5882966,
     *     p = 0.725566-0.1*(0.5725566+1.42946694) = 0.52536364 */
    static const double nwd[3] = {0.886, 0.725566, 0.52536364};
    check_sgd("sgd nesterov wd", 0.9f, 0.1f, 1, nwd);
    /* no momentum, wd 0.1: p1 = 1-0.1*0.6 = 0.94; p2 = 0.94-0.1*0.594 = 0.8806;
     * p3 = 0.8806-0.1*0.58806 = 0.821794 */
    static const double pwd[3] = {0.94, 0.8806, 0.821794};
    check_sgd("sgd wd", 0.f, 0.1f, 0, pwd);
}

static void test_bce(void) {
    float z, t, d, l;
    /* z = 0, t = 1: log 2, gradient sigmoid(0) - 1 = -0.5 */
    z = 0, t = 1;
    l = nn_bce_logits(&d, &z, &t, NULL, 1);
    CHECK_CLOSE(l, log(2.0), 1e-6, "bce(0,1)");
    CHECK_CLOSE(d, -0.5, 1e-6, "dbce(0,1)");
    /* z = 2, t = 0.25: softplus(2) - 0.5 = 1.626928011; grad sigmoid(2) - 0.25 = 0.630797078 */
    z = 2, t = 0.25f;
    l = nn_bce_logits(&d, &z, &t, NULL, 1);
    CHECK_CLOSE(l, 1.626928011, 1e-6, "bce(2,.25)");
    CHECK_CLOSE(d, 0.630797078, 1e-6, "dbce(2,.25)");
    /* extreme logits: finite, loss 100 or 0, gradients +-1 or 0 */
    const float zz[4] = {100, 100, -100, -100}, tt[4] = {0, 1, 1, 0};
    const double wl[4] = {100, 0, 100, 0}, wd[4] = {1, 0, -1, 0};
    for (int i = 0; i < 4; i++) {
        l = nn_bce_logits(&d, &zz[i], &tt[i], NULL, 1);
        CHECK(isfinite(l) && isfinite(d), "bce(%g,%g) not finite", zz[i], tt[i]);
        CHECK_CLOSE(l, wl[i], 1e-6, "bce extreme loss");
        CHECK_CLOSE(d, wd[i], 1e-6, "bce extreme grad");
    }
    /* weighted mean: sum(w l)/sum(w), gradient (s - t) w / sum(w) */
    float w4[4] = {1, 2, 3, 4}, d4[4];
    l = nn_bce_logits(d4, zz, tt, w4, 4);
    CHECK_CLOSE(l, (1 * 100 + 3 * 100) / 10.0, 1e-6, "bce weighted");
    CHECK_CLOSE(d4[0], 0.1, 1e-6, "bce weighted d0");
    CHECK_CLOSE(d4[2], -0.3, 1e-6, "bce weighted d2");
    l = nn_bce_logits(d4, zz, tt, NULL, 4);
    CHECK_CLOSE(l, 50.0, 1e-6, "bce mean");
    CHECK_CLOSE(d4[0], 0.25, 1e-6, "bce mean d0");
}

static void test_xent(void) {
    /* logits [1,2,3], label 2: log(e+e^2+e^3) - 3 = 0.407605964 */
    float z[3] = {1, 2, 3}, d[3], p[3];
    int y = 2;
    float l = nn_softmax_xent(d, p, z, &y, NULL, 1, 3);
    double s = exp(1) + exp(2) + exp(3);
    CHECK_CLOSE(l, 0.407605964, 1e-6, "xent");
    for (int j = 0; j < 3; j++) {
        CHECK_CLOSE(p[j], exp(j + 1) / s, 1e-6, "xent prob");
        CHECK_CLOSE(d[j], exp(j + 1) / s - (j == 2), 1e-6, "xent grad");
    }
    /* huge logits stay finite: [1000, 0, -1000], label 1: loss 1000, grad [1,-1,0] */
    float zb[3] = {1000, 0, -1000};
    y = 1;
    l = nn_softmax_xent(d, p, zb, &y, NULL, 1, 3);
    CHECK(isfinite(l), "xent huge not finite");
    CHECK_CLOSE(l, 1000, 1e-6, "xent huge");
    CHECK_CLOSE(d[0], 1, 1e-6, "xent huge d0");
    CHECK_CLOSE(d[1], -1, 1e-6, "xent huge d1");
    CHECK_CLOSE(d[2], 0, 1e-6, "xent huge d2");
    /* weighted rows: [0,0] label 0 (loss log 2) w 1, [0, log 3] label 0 (loss log 4) w 3 */
    float z2[4] = {0, 0, 0, (float)log(3.0)}, d2[4], w2[2] = {1, 3};
    int y2[2] = {0, 0};
    l = nn_softmax_xent(d2, NULL, z2, y2, w2, 2, 2);
    CHECK_CLOSE(l, (log(2.0) + 3 * log(4.0)) / 4, 1e-6, "xent weighted");
    CHECK_CLOSE(d2[0], (0.5 - 1) * 0.25, 1e-6, "xent weighted d00");
    CHECK_CLOSE(d2[2], (0.25 - 1) * 0.75, 1e-6, "xent weighted d10");
    CHECK_CLOSE(d2[3], 0.75 * 0.75, 1e-6, "xent weighted d11");
}

int main(void) {
    nn_threads_set(2);
    test_adam();
    test_sgd();
    test_bce();
    test_xent();
    return test_summary("test_optim");
}
