/* test_ultraface_unit.c — face detector pieces without shared data: priors,
 * decoding, IoU/NMS, frame fitting, a synthetic detector end to end, load errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nnmask.h"
#include "testutil.h"
#include "ultraface.h"

static char tmpdir[512];

static void test_priors(void) {
    int n = nn_uf_make_priors(NULL, 320, 240);
    CHECK(n == 4420, "priors at 320x240: %d", n);
    float *p = malloc(sizeof(float) * 4 * n);
    nn_uf_make_priors(p, 320, 240);
    CHECK_CLOSE(p[0], 0.5 / 40, 1e-6, "prior 0 cx");
    CHECK_CLOSE(p[1], 0.5 / 30, 1e-6, "prior 0 cy");
    CHECK_CLOSE(p[2], 10.0 / 320, 1e-6, "prior 0 w");
    CHECK_CLOSE(p[3], 10.0 / 240, 1e-6, "prior 0 h");
    /* prior 1 and 2: same cell, sizes 16 and 24; prior 3: next column */
    CHECK_CLOSE(p[4 + 2], 16.0 / 320, 1e-6, "prior 1 w");
    CHECK_CLOSE(p[8 + 3], 24.0 / 240, 1e-6, "prior 2 h");
    CHECK_CLOSE(p[12], 1.5 / 40, 1e-6, "prior 3 cx");
    CHECK_CLOSE(p[13], 0.5 / 30, 1e-6, "prior 3 cy");
    /* stride 32 map is 10x8: its last row centre is 7.5/8 (not 7.5*32/240) */
    int base = 40 * 30 * 3 + 20 * 15 * 2;
    int last32 = base + 10 * 8 * 2 - 1;
    CHECK_CLOSE(p[4 * last32 + 1], 7.5 / 8, 1e-6, "stride-32 last row cy");
    CHECK_CLOSE(p[4 * last32 + 0], 9.5 / 10, 1e-6, "stride-32 last column cx");
    /* last prior: 5x4 map, size 256 -> h clamped to 1 */
    float *q = p + 4 * (n - 1);
    CHECK_CLOSE(q[0], 4.5 / 5, 1e-6, "last cx");
    CHECK_CLOSE(q[1], 3.5 / 4, 1e-6, "last cy");
    CHECK_CLOSE(q[2], 256.0 / 320, 1e-6, "last w");
    CHECK_CLOSE(q[3], 1.0, 1e-6, "last h clamped");
    free(p);
    /* any size: maps are ceil(size / stride) */
    int m = nn_uf_make_priors(NULL, 100, 50);
    int want = 13 * 7 * 3 + 7 * 4 * 2 + 4 * 2 * 2 + 2 * 1 * 3;
    CHECK(m == want, "priors at 100x50: %d, want %d", m, want);
}

static void test_decode_nms(void) {
    float prior[4] = {0.5f, 0.5f, 0.2f, 0.1f}, raw[4] = {0, 0, 0, 0}, b[4];
    nn_uf_decode(b, raw, prior, 1, 0.1f, 0.2f);
    CHECK_CLOSE(b[0], 0.4, 1e-6, "x0");
    CHECK_CLOSE(b[1], 0.45, 1e-6, "y0");
    CHECK_CLOSE(b[2], 0.6, 1e-6, "x1");
    CHECK_CLOSE(b[3], 0.55, 1e-6, "y1");
    float raw2[4] = {1.f, -2.f, 5.f * logf(2.f), 0.f};
    nn_uf_decode(b, raw2, prior, 1, 0.1f, 0.2f);
    /* cx = .5 + .1*.2 = .52, cy = .5 - .2*.1 = .48, w = .4, h = .1 */
    CHECK_CLOSE(b[0], 0.32, 1e-6, "x0 shifted");
    CHECK_CLOSE(b[2], 0.72, 1e-6, "x1 shifted");
    CHECK_CLOSE(b[1], 0.43, 1e-6, "y0 shifted");
    CHECK_CLOSE(b[3], 0.53, 1e-6, "y1 shifted");

    nn_uf_box a = {0, 0, 10, 10, 1}, c = {5, 0, 15, 10, 1}, far = {20, 20, 30, 30, 1};
    CHECK_CLOSE(nn_uf_iou(&a, &a), 1.0, 1e-6, "iou self");
    CHECK_CLOSE(nn_uf_iou(&a, &c), 50.0 / 150.0, 1e-6, "iou half");
    CHECK_CLOSE(nn_uf_iou(&a, &far), 0.0, 1e-6, "iou disjoint");
    nn_uf_box z = {3, 3, 3, 8, 1};
    CHECK_CLOSE(nn_uf_iou(&z, &z), 0.0, 1e-6, "iou of empty boxes");

    /* NMS: sorted by score, overlap > 0.3 suppressed, equal scores keep order */
    nn_uf_box bs[5] = {{0, 0, 10, 10, 0.8f},   {1, 0, 11, 10, 0.9f},  {20, 20, 30, 30, 0.75f},
                       {40, 40, 50, 50, 0.75f}, {6, 0, 16, 10, 0.85f}};
    int k = nn_uf_nms(bs, 5, 0.3f);
    /* 0.9 [1..11] kept; 0.85 [6..16] IoU 5/15 = .33 > .3 suppressed; 0.8 [0..10]
     * suppressed; 0.75 (20..) and 0.75 (40..) kept in input order */
    CHECK(k == 3, "nms kept %d, want 3", k);
    CHECK(bs[0].score == 0.9f && bs[0].x0 == 1, "nms first %g", bs[0].score);
    CHECK(bs[1].x0 == 20 && bs[2].x0 == 40, "nms ties keep order: %g %g", bs[1].x0, bs[2].x0);
    nn_uf_box one = {0, 0, 1, 1, 0.5f};
    CHECK(nn_uf_nms(&one, 1, 0.3f) == 1, "nms single");
    CHECK(nn_uf_nms(&one, 0, 0.3f) == 0, "nms empty");
}

static void test_fit(void) {
    nn_image img;
    CHECK(nn_image_alloc(&img, 64, 32) == 0, "alloc");
    memset(img.rgb, 200, (size_t)64 * 32 * 3);
    float *dst = malloc(sizeof(float) * 3 * 40 * 40);
    float ox, oy, sx, sy;
    nn_uf_fit_frame(dst, 40, 40, &img, NN_UF_LETTERBOX, 127.f, 1.f / 128, &ox, &oy, &sx, &sy);
    /* 64x32 into 40x40: scale .625 -> 40x20 at y offset 10 */
    CHECK_CLOSE(ox, 0, 1e-6, "letterbox ox");
    CHECK_CLOSE(oy, 10, 1e-6, "letterbox oy");
    CHECK_CLOSE(sx, 0.625, 1e-6, "letterbox sx");
    CHECK_CLOSE(sy, 0.625, 1e-6, "letterbox sy");
    int bad = 0;
    for (int y = 0; y < 40; y++)
        for (int x = 0; x < 40; x++)
            for (int c = 0; c < 3; c++) {
                float v = dst[(y * 40 + x) * 3 + c];
                float want = (y >= 10 && y < 30) ? (200.f - 127.f) / 128.f : 0.f;
                if (fabsf(v - want) > 1e-5f) bad++;
            }
    CHECK(bad == 0, "letterbox fill: %d wrong values", bad);
    nn_uf_fit_frame(dst, 40, 40, &img, NN_UF_RESIZE, 127.f, 1.f / 128, &ox, &oy, &sx, &sy);
    CHECK(ox == 0 && oy == 0, "resize offsets");
    CHECK_CLOSE(sx, 40.0 / 64, 1e-6, "resize sx");
    CHECK_CLOSE(sy, 40.0 / 32, 1e-6, "resize sy");
    bad = 0;
    for (int i = 0; i < 40 * 40 * 3; i++) bad += fabsf(dst[i] - (200.f - 127.f) / 128.f) > 1e-5f;
    CHECK(bad == 0, "resize of a flat image stays flat: %d wrong", bad);
    /* a 1-pixel wide vertical line survives a 4x shrink (antialiased, not skipped) */
    memset(img.rgb, 0, (size_t)64 * 32 * 3);
    for (int y = 0; y < 32; y++) img.rgb[(y * 64 + 33) * 3] = 255;
    nn_uf_fit_frame(dst, 16, 8, &img, NN_UF_RESIZE, 0.f, 1.f, &ox, &oy, &sx, &sy);
    float sum = 0;
    for (int x = 0; x < 16; x++) sum += dst[(4 * 16 + x) * 3];
    CHECK_CLOSE(sum, 255.0 / 4, 1e-3, "line energy after 4x shrink");
    free(dst);
    nn_image_free(&img);

    int w, h;
    nn_uf_size_for_frame(400, 267, 640, &w, &h);
    CHECK(w == 640 && h == 416, "size for 400x267 @640: %dx%d", w, h);
    nn_uf_size_for_frame(301, 400, 320, &w, &h);
    CHECK(w == 256 && h == 320, "size for 301x400 @320: %dx%d", w, h);
    nn_uf_size_for_frame(4000, 10, 320, &w, &h);
    CHECK(w == 320 && h == 32, "size for a strip: %dx%d", w, h);
}

/* ---- a synthetic detector: face logit of anchor 0 on the stride-8 map is
 * 20 * mean(input over the 8x8 cell) - 10, everything else background. */

typedef struct {
    const char *name;
    int k, cin, cout, dw;
    float *w, *b;
} syn_conv;

static int write_syn(const char *path, float log_scale, const char *graph_override,
                     int bad_shape, const char *arch) {
    static float store[200000];
    size_t used = 0;
    syn_conv convs[11];
    int nc = 0;
#define ADD(nm, K, CI, CO, DW)                                                   \
    do {                                                                         \
        syn_conv *c = &convs[nc++];                                              \
        c->name = nm;                                                            \
        c->k = K, c->cin = CI, c->cout = CO, c->dw = DW;                         \
        c->w = store + used;                                                     \
        used += (size_t)K * K * CI * (DW ? 1 : CO);                              \
        c->b = store + used;                                                     \
        used += CO;                                                              \
    } while (0)
    memset(store, 0, sizeof store);
    ADD("f8", 8, 3, 3, 0);
    ADD("f16", 3, 3, 3, 1);
    ADD("f32", 3, 3, 3, 1);
    ADD("f64", 3, 3, 3, 1);
    ADD("s0", 1, 3, 6, 0);
    ADD("s1", 1, 3, 4, 0);
    ADD("s2", 1, 3, 4, 0);
    ADD("s3", 1, 3, 6, 0);
    ADD("b0", 1, 3, 12, 0);
    ADD("b1", 1, 3, 8, 0);
    ADD("b2", 1, 3, 8, 0);
    for (int i = 0; i < 8 * 8; i++)
        for (int c = 0; c < 3; c++) convs[0].w[(i * 3 + c) * 3 + c] = 1.f / 64;
    for (int q = 1; q <= 3; q++)
        for (int i = 0; i < 27; i++) convs[q].w[i] = 1.f / 9;
    for (int c = 0; c < 3; c++) convs[4].w[c * 6 + 1] = 20.f / 3;
    convs[4].b[1] = -10.f;
    convs[4].b[3] = convs[4].b[5] = -10.f;
    for (int q = 5; q <= 7; q++)
        for (int c = 0; c < convs[q].cout; c += 2) convs[q].b[c] = 10.f;
    convs[8].b[2] = convs[8].b[3] = log_scale / 0.2f; /* anchor 0 size factor */
    /* the stride-64 box head reads f64 through a conv "b3" defined below */
    float b3w[3 * 12] = {0}, b3b[12] = {0};

    nn_st_writer *w = nn_st_writer_new();
    char wn[64], bn[64];
    for (int i = 0; i < nc; i++) {
        syn_conv *c = &convs[i];
        int64_t ws[4] = {c->k, c->k, c->cin, c->cout}, bs[1] = {c->cout};
        if (bad_shape && i == 1) ws[2] = 4; /* depthwise declared [3,3,4] */
        snprintf(wn, sizeof wn, "%s.weight", c->name);
        snprintf(bn, sizeof bn, "%s.bias", c->name);
        nn_st_writer_add_f32(w, wn, c->w, c->dw ? 3 : 4, ws);
        nn_st_writer_add_f32(w, bn, c->b, 1, bs);
    }
    int64_t ws3[4] = {1, 1, 3, 12}, bs3[1] = {12};
    nn_st_writer_add_f32(w, "b3.weight", b3w, 4, ws3);
    nn_st_writer_add_f32(w, "b3.bias", b3b, 1, bs3);
    const char *graph =
        "{\"input\":\"input\",\"ops\":["
        "{\"op\":\"conv\",\"in\":\"input\",\"out\":\"f8\",\"weight\":\"f8.weight\",\"bias\":\"f8.bias\","
        "\"cin\":3,\"cout\":3,\"k\":8,\"stride\":8,\"pad\":0,\"dil\":1,\"depthwise\":false,\"relu\":false},"
        "{\"op\":\"conv\",\"in\":\"f8\",\"out\":\"f16\",\"weight\":\"f16.weight\",\"bias\":\"f16.bias\","
        "\"cin\":3,\"cout\":3,\"k\":3,\"stride\":2,\"pad\":1,\"dil\":1,\"depthwise\":true,\"relu\":false},"
        "{\"op\":\"conv\",\"in\":\"f16\",\"out\":\"f32\",\"weight\":\"f32.weight\",\"bias\":\"f32.bias\","
        "\"cin\":3,\"cout\":3,\"k\":3,\"stride\":2,\"pad\":1,\"dil\":1,\"depthwise\":true,\"relu\":false},"
        "{\"op\":\"conv\",\"in\":\"f32\",\"out\":\"f64\",\"weight\":\"f64.weight\",\"bias\":\"f64.bias\","
        "\"cin\":3,\"cout\":3,\"k\":3,\"stride\":2,\"pad\":1,\"dil\":1,\"depthwise\":true,\"relu\":false},"
        "{\"op\":\"relu\",\"in\":\"f8\",\"out\":\"f8r\"},"
        "{\"op\":\"add\",\"in\":[\"f8\",\"f8r\"],\"out\":\"f8a\"},"
        "{\"op\":\"concat\",\"in\":[\"f8\",\"f8a\"],\"out\":\"f8c\"},"
        "{\"op\":\"conv\",\"in\":\"f8\",\"out\":\"s0\",\"weight\":\"s0.weight\",\"bias\":\"s0.bias\","
        "\"cin\":3,\"cout\":6,\"k\":1,\"stride\":1,\"pad\":0,\"dil\":1,\"depthwise\":false,\"relu\":false},"
        "{\"op\":\"conv\",\"in\":\"f16\",\"out\":\"s1\",\"weight\":\"s1.weight\",\"bias\":\"s1.bias\","
        "\"cin\":3,\"cout\":4,\"k\":1,\"stride\":1,\"pad\":0,\"dil\":1,\"depthwise\":false,\"relu\":false},"
        "{\"op\":\"conv\",\"in\":\"f32\",\"out\":\"s2\",\"weight\":\"s2.weight\",\"bias\":\"s2.bias\","
        "\"cin\":3,\"cout\":4,\"k\":1,\"stride\":1,\"pad\":0,\"dil\":1,\"depthwise\":false,\"relu\":false},"
        "{\"op\":\"conv\",\"in\":\"f64\",\"out\":\"s3\",\"weight\":\"s3.weight\",\"bias\":\"s3.bias\","
        "\"cin\":3,\"cout\":6,\"k\":1,\"stride\":1,\"pad\":0,\"dil\":1,\"depthwise\":false,\"relu\":false},"
        "{\"op\":\"conv\",\"in\":\"f8\",\"out\":\"b0\",\"weight\":\"b0.weight\",\"bias\":\"b0.bias\","
        "\"cin\":3,\"cout\":12,\"k\":1,\"stride\":1,\"pad\":0,\"dil\":1,\"depthwise\":false,\"relu\":false},"
        "{\"op\":\"conv\",\"in\":\"f16\",\"out\":\"b1\",\"weight\":\"b1.weight\",\"bias\":\"b1.bias\","
        "\"cin\":3,\"cout\":8,\"k\":1,\"stride\":1,\"pad\":0,\"dil\":1,\"depthwise\":false,\"relu\":false},"
        "{\"op\":\"conv\",\"in\":\"f32\",\"out\":\"b2\",\"weight\":\"b2.weight\",\"bias\":\"b2.bias\","
        "\"cin\":3,\"cout\":8,\"k\":1,\"stride\":1,\"pad\":0,\"dil\":1,\"depthwise\":false,\"relu\":false},"
        "{\"op\":\"conv\",\"in\":\"f64\",\"out\":\"b3\",\"weight\":\"b3.weight\",\"bias\":\"b3.bias\","
        "\"cin\":3,\"cout\":12,\"k\":1,\"stride\":1,\"pad\":0,\"dil\":1,\"depthwise\":false,\"relu\":false}"
        "],\"scores\":[\"s0\",\"s1\",\"s2\",\"s3\"],\"boxes\":[\"b0\",\"b1\",\"b2\",\"b3\"]}";
    if (arch) nn_st_writer_meta(w, "arch", arch);
    nn_st_writer_meta(w, "format", "nnmask");
    nn_st_writer_meta(w, "variant", "synthetic");
    nn_st_writer_meta(w, "input_size", "320x240");
    nn_st_writer_meta(w, "preprocess", "(rgb-127)/128");
    nn_st_writer_meta(w, "priors",
                      "{\"strides\":[8,16,32,64],\"min_sizes\":[[10,16,24],[32,48],[64,96],"
                      "[128,192,256]]}");
    nn_st_writer_meta(w, "graph", graph_override ? graph_override : graph);
    nn_st_writer_meta(w, "scores_softmax", "1");
    int rc = nn_st_writer_save(w, path);
    nn_st_writer_free(w);
    return rc;
}

/* frame with a white square [x0, x0+s) x [y0, y0+s) on black */
static void square_frame(nn_image *img, int w, int h, int x0, int y0, int s) {
    nn_image_alloc(img, w, h);
    memset(img->rgb, 0, (size_t)w * h * 3);
    for (int y = y0; y < y0 + s; y++) memset(img->rgb + ((size_t)y * w + x0) * 3, 255, (size_t)s * 3);
}

static int near_box(const nn_uf_box *b, float x0, float y0, float x1, float y1, float tol) {
    return fabsf(b->x0 - x0) <= tol && fabsf(b->y0 - y0) <= tol && fabsf(b->x1 - x1) <= tol &&
           fabsf(b->y1 - y1) <= tol;
}

static int has_box(const nn_uf_box *f, int n, float x0, float y0, float x1, float y1, float tol) {
    for (int i = 0; i < n; i++)
        if (near_box(&f[i], x0, y0, x1, y1, tol)) return 1;
    return 0;
}

static void test_synthetic(void) {
    char p1[600], p2[600];
    snprintf(p1, sizeof p1, "%s/syn10.safetensors", tmpdir);
    snprintf(p2, sizeof p2, "%s/syn20.safetensors", tmpdir);
    CHECK(write_syn(p1, 0.f, NULL, 0, "ultraface") == 0, "write %s: %s", p1, nn_error());
    CHECK(write_syn(p2, logf(2.f), NULL, 0, "ultraface") == 0, "write %s: %s", p2, nn_error());
    nn_uf *d = nn_uf_load(p1);
    CHECK(d != NULL, "load synthetic: %s", nn_error());
    if (!d) return;
    CHECK(nn_uf_num_priors(d) == 4420, "priors %d", nn_uf_num_priors(d));
    CHECK(!strcmp(nn_uf_variant(d), "synthetic"), "variant %s", nn_uf_variant(d));
    nn_uf_opts o;
    nn_uf_opts_default(&o);
    nn_uf_box f[16];
    /* the default box convention: shifted down 12.5% of the height, 4% wider, 9% shorter */
    nn_image img;
    square_frame(&img, 320, 240, 80, 40, 16);
    int n = nn_uf_detect(d, &img, &o, f, 16);
    CHECK(n == 4 && near_box(&f[0], 79.0f, 40.7f, 89.4f, 49.8f, 1e-3f),
          "adjusted box 0: %g %g %g %g", f[0].x0, f[0].y0, f[0].x1, f[0].y1);
    nn_image_free(&img);
    o.adjust[0] = o.adjust[1] = 0.f;
    o.adjust[2] = o.adjust[3] = 1.f;

    /* A: native size, square on cells (10..11, 5..6): four 10 px faces */
    square_frame(&img, 320, 240, 80, 40, 16);
    n = nn_uf_detect(d, &img, &o, f, 16);
    CHECK(n == 4, "A: %d faces, want 4", n);
    float want_s = 1.f / (1.f + expf(-10.f));
    if (n == 4) {
        CHECK_CLOSE(f[0].score, want_s, 1e-5, "A score");
        CHECK(near_box(&f[0], 79, 39, 89, 49, 1e-3f), "A box 0: %g %g %g %g", f[0].x0, f[0].y0,
              f[0].x1, f[0].y1);
        CHECK(near_box(&f[1], 87, 39, 97, 49, 1e-3f), "A box 1: %g %g %g %g", f[1].x0, f[1].y0,
              f[1].x1, f[1].y1);
        CHECK(near_box(&f[3], 87, 47, 97, 57, 1e-3f), "A box 3: %g %g %g %g", f[3].x0, f[3].y0,
              f[3].x1, f[3].y1);
    }
    /* threshold above the score: nothing */
    o.score_threshold = 0.99999f;
    CHECK(nn_uf_detect(d, &img, &o, f, 16) == 0, "A: threshold .99999 keeps nothing");
    o.score_threshold = 0.7f;
    /* max smaller than the count: count still reported */
    CHECK(nn_uf_detect(d, &img, &o, f, 2) == 4, "A: count beyond max");
    nn_image_free(&img);

    /* C: 640x480 frame, stretched: boxes scale back by 2 */
    square_frame(&img, 640, 480, 160, 80, 32);
    n = nn_uf_detect(d, &img, &o, f, 16);
    CHECK(n == 4, "C: %d faces, want 4", n);
    CHECK(has_box(f, n, 158, 78, 178, 98, 0.01f), "C: no face at (158, 78, 178, 98)");
    CHECK(has_box(f, n, 174, 94, 194, 114, 0.01f), "C: no face at (174, 94, 194, 114)");
    nn_image_free(&img);

    /* D: 640x240 letterboxed into 320x240 (scale .5, y offset 60) */
    square_frame(&img, 640, 240, 160, 8, 32);
    o.fit = NN_UF_LETTERBOX;
    n = nn_uf_detect(d, &img, &o, f, 16);
    CHECK(n == 4, "D: %d faces, want 4", n);
    /* input centre (84, 68) -> frame (168, 16), 10 px -> 20 px */
    CHECK(has_box(f, n, 158, 6, 178, 26, 0.01f), "D: no face at (158, 6, 178, 26)");
    CHECK(has_box(f, n, 174, 22, 194, 42, 0.01f), "D: no face at (174, 22, 194, 42)");
    o.fit = NN_UF_RESIZE;
    nn_image_free(&img);

    /* E: another input size (640x480) for a 640x480 frame: cells of 8 px in
     * the frame, so the 32 px square covers 4x4 cells */
    CHECK(nn_uf_set_input_size(d, 640, 480) == 0, "set 640x480: %s", nn_error());
    CHECK(nn_uf_num_priors(d) == 80 * 60 * 3 + 40 * 30 * 2 + 20 * 15 * 2 + 10 * 8 * 3, "priors at 640x480: %d", nn_uf_num_priors(d));
    square_frame(&img, 640, 480, 160, 80, 32);
    n = nn_uf_detect(d, &img, &o, f, 16);
    CHECK(n == 16, "E: %d faces, want 16", n);
    nn_image_free(&img);
    CHECK(nn_uf_set_input_size(d, 16, 240) == -1, "input 16 wide refused");
    CHECK(strstr(nn_error(), "16x240") != NULL, "message: %s", nn_error());
    CHECK(nn_uf_set_input_size(d, 320, 240) == 0, "back to 320x240");
    nn_uf_free(d);

    /* B: 20 px boxes: 2x2 cells overlap IoU .43 -> NMS keeps the diagonal */
    d = nn_uf_load(p2);
    CHECK(d != NULL, "load synthetic 20: %s", nn_error());
    if (!d) return;
    square_frame(&img, 320, 240, 80, 40, 16);
    n = nn_uf_detect(d, &img, &o, f, 16);
    CHECK(n == 2, "B: %d faces, want 2", n);
    if (n == 2) {
        CHECK(near_box(&f[0], 74, 34, 94, 54, 1e-3f), "B box 0: %g %g %g %g", f[0].x0, f[0].y0,
              f[0].x1, f[0].y1);
        CHECK(near_box(&f[1], 82, 42, 102, 62, 1e-3f), "B box 1: %g %g %g %g", f[1].x0, f[1].y0,
              f[1].x1, f[1].y1);
    }
    /* a looser NMS keeps all four */
    o.iou_threshold = 0.5f;
    CHECK(nn_uf_detect(d, &img, &o, f, 16) == 4, "B: IoU .5 keeps 4");
    /* clipping: a square in the corner gives boxes clipped to the frame */
    nn_image_free(&img);
    square_frame(&img, 320, 240, 0, 0, 8);
    o.iou_threshold = 0.3f;
    n = nn_uf_detect(d, &img, &o, f, 16);
    CHECK(n == 1 && f[0].x0 == 0.f && f[0].y0 == 0.f && near_box(&f[0], 0, 0, 14, 14, 1e-3f),
          "corner: %d faces, box %g %g %g %g", n, f[0].x0, f[0].y0, f[0].x1, f[0].y1);
    nn_image_free(&img);
    nn_uf_free(d);
}

static void test_load_errors(void) {
    char p[600];
    snprintf(p, sizeof p, "%s/missing.safetensors", tmpdir);
    CHECK(nn_uf_load(p) == NULL, "missing file");
    CHECK(strstr(nn_error(), "missing.safetensors") != NULL, "message names file: %s", nn_error());

    snprintf(p, sizeof p, "%s/noarch.safetensors", tmpdir);
    write_syn(p, 0.f, NULL, 0, NULL);
    CHECK(nn_uf_load(p) == NULL, "no arch");
    CHECK(strstr(nn_error(), "not an UltraFace") != NULL, "message: %s", nn_error());

    snprintf(p, sizeof p, "%s/badshape.safetensors", tmpdir);
    write_syn(p, 0.f, NULL, 1, "ultraface");
    CHECK(nn_uf_load(p) == NULL, "bad weight shape");
    CHECK(strstr(nn_error(), "f16.weight") != NULL, "message names tensor: %s", nn_error());

    snprintf(p, sizeof p, "%s/badgraph.safetensors", tmpdir);
    write_syn(p, 0.f, "{\"input\":\"input\",\"ops\":[{\"op\":\"relu\",\"in\":\"nope\",\"out\":\"x\"}],"
                      "\"scores\":[],\"boxes\":[]}", 0, "ultraface");
    CHECK(nn_uf_load(p) == NULL, "undefined tensor");
    CHECK(strstr(nn_error(), "not defined") != NULL, "message: %s", nn_error());

    write_syn(p, 0.f, "{\"input\":\"input\",\"ops\":[{\"op\":\"softmax\",\"in\":\"input\",\"out\":\"x\"}],"
                      "\"scores\":[],\"boxes\":[]}", 0, "ultraface");
    CHECK(nn_uf_load(p) == NULL, "unknown op");
    CHECK(strstr(nn_error(), "unknown op") != NULL, "message: %s", nn_error());

    write_syn(p, 0.f, "not json", 0, "ultraface");
    CHECK(nn_uf_load(p) == NULL, "graph not JSON");
    CHECK(strstr(nn_error(), "JSON") != NULL, "message: %s", nn_error());

    /* heads that do not match the priors: one head only */
    write_syn(p, 0.f,
              "{\"input\":\"input\",\"ops\":[{\"op\":\"relu\",\"in\":\"input\",\"out\":\"x\"}],"
              "\"scores\":[\"x\",\"x\",\"x\",\"x\"],\"boxes\":[\"x\",\"x\",\"x\",\"x\"]}",
              0, "ultraface");
    CHECK(nn_uf_load(p) == NULL, "heads vs priors");
    CHECK(strstr(nn_error(), "head 0") != NULL, "message: %s", nn_error());
}

int main(void) {
    const char *b = getenv("NNMASK_BUILD");
    snprintf(tmpdir, sizeof tmpdir, "%s/ultraface/unit.%d", b ? b : "/tmp", (int)getpid());
    if (nn_mkdir_p(tmpdir)) {
        fprintf(stderr, "%s\n", nn_error());
        return 1;
    }
    nn_threads_set(2);
    test_priors();
    test_decode_nms();
    test_fit();
    test_synthetic();
    test_load_errors();
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary("test_ultraface_unit");
}
