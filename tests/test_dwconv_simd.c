/* test_dwconv_simd.c — the SIMD 3x3 depthwise kernel (AVX-512 and AVX2)
 * against nn_dwconv2d_forward_naive: strides, paddings, channel tails. */
#include "dwconv_simd.h"
#include "testutil.h"

int main(void) {
    nn_rng r;
    nn_rng_seed(&r, 23);
    /* {h, w, c, stride, pad mode (0 same, 1 valid, 2 explicit 1, 3 asym t0 b2 l2 r0), n} */
    static const int cases[][6] = {
        {7, 7, 5, 1, 0, 1},    {9, 8, 19, 2, 0, 2},  {8, 8, 32, 2, 0, 1},  {6, 5, 144, 1, 0, 2},
        {3, 3, 40, 1, 0, 1},   {1, 1, 16, 1, 0, 1},  {2, 2, 33, 2, 0, 1},  {10, 7, 17, 1, 1, 1},
        {11, 12, 24, 2, 1, 1}, {5, 9, 48, 1, 2, 2},  {6, 6, 7, 2, 2, 1},   {8, 7, 21, 1, 3, 1},
        {9, 9, 64, 2, 3, 1},   {14, 14, 96, 1, 0, 1}, {4, 3, 8, 1, 1, 1},  {3, 2, 9, 2, 2, 1}};
    const int ncase = (int)(sizeof cases / sizeof *cases);
    int top = nn__dwconv3x3_level();
    printf("dwconv_simd: best level %d\n", top);
    CHECK(top >= 1, "this build machine has AVX2 (x86-64-v3 baseline)");
    for (int lv = top; lv >= 1; lv--) {
        nn__dwconv3x3_force(lv);
        for (int t = 0; t < ncase; t++) {
            const int *s = cases[t];
            nn_conv_geom g;
            if (s[4] == 3) {
                g = (nn_conv_geom){.in_h = s[0], .in_w = s[1], .kh = 3, .kw = 3, .stride_h = s[3],
                                   .stride_w = s[3], .dil_h = 1, .dil_w = 1, .pad_t = 0,
                                   .pad_b = 2, .pad_l = 2, .pad_r = 0};
                CHECK(nn_conv_geom_finish(&g) == 0, "geom");
            } else {
                nn_padding pm = s[4] == 0 ? NN_PAD_SAME : s[4] == 1 ? NN_PAD_VALID : NN_PAD_EXPLICIT;
                CHECK(nn_conv_geom_init(&g, s[0], s[1], 3, 3, s[3], 1, pm, 1) == 0, "geom");
            }
            const int C = s[2], N = s[5];
            size_t nx = (size_t)N * s[0] * s[1] * C, ny = (size_t)N * g.out_h * g.out_w * C;
            float *x = malloc(sizeof(float) * nx), *w = malloc(sizeof(float) * 9 * C);
            float *b = malloc(sizeof(float) * C);
            float *y = malloc(sizeof(float) * ny), *yr = malloc(sizeof(float) * ny);
            for (size_t i = 0; i < nx; i++) x[i] = nn_rng_range(&r, -3, 3);
            for (int i = 0; i < 9 * C; i++) w[i] = nn_rng_range(&r, -1, 1);
            for (int i = 0; i < C; i++) b[i] = nn_rng_range(&r, -2, 2);
            nn_tensor tx = nn_tensor_make(x, N, s[0], s[1], C);
            nn_tensor ty = nn_tensor_make(y, N, g.out_h, g.out_w, C);
            nn_tensor tr = nn_tensor_make(yr, N, g.out_h, g.out_w, C);
            for (int act = 0; act < 3; act++)
                for (int hb = 0; hb < 2; hb++) {
                    for (size_t i = 0; i < ny; i++) y[i] = 999.f;
                    int rc = nn__dwconv3x3_forward(&ty, &tx, w, hb ? b : NULL, &g, (nn_act)act);
                    CHECK(rc == 0, "kernel declined case %d", t);
                    nn_dwconv2d_forward_naive(&tr, &tx, w, hb ? b : NULL, &g, (nn_act)act);
                    double e = tu_compare("y", y, yr, ny, 1.0, 1e-5);
                    CHECK(e <= 1e-5, "level %d case %d act %d bias %d: error %.3g", lv, t, act, hb, e);
                }
            free(x), free(w), free(b), free(y), free(yr);
        }
    }
    /* windows it does not handle are declined, not computed wrongly */
    nn__dwconv3x3_force(-1);
    {
        nn_conv_geom g;
        nn_conv_geom_init(&g, 8, 8, 5, 5, 1, 1, NN_PAD_SAME, 0);
        float x[64 * 4] = {0}, w[25 * 4] = {0}, y[64 * 4];
        nn_tensor tx = nn_tensor_make(x, 1, 8, 8, 4), ty = nn_tensor_make(y, 1, 8, 8, 4);
        CHECK(nn__dwconv3x3_forward(&ty, &tx, w, NULL, &g, NN_ACT_NONE) == -1, "5x5 declined");
        nn_conv_geom_init(&g, 8, 8, 3, 3, 1, 2, NN_PAD_SAME, 0);
        CHECK(nn__dwconv3x3_forward(&ty, &tx, w, NULL, &g, NN_ACT_NONE) == -1, "dilation 2 declined");
    }
    return test_summary("test_dwconv_simd");
}
