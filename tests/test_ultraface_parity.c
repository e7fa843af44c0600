/* test_ultraface_parity.c — the engine's UltraFace (slim-320, RFB-320) against
 * OpenCV cv2.dnn running the same ONNX file on the same input tensor. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnmask.h"
#include "testutil.h"
#include "uf_testutil.h"
#include "ultraface.h"

#define TOL 1e-4

static const char *photos[] = {"andrewmvd_maksssksksss83.jpg", "andrewmvd_maksssksksss349.jpg",
                               "andrewmvd_maksssksksss5.jpg", "chandrikadeb7_pic1.jpeg"};
#define NPHOTOS (int)(sizeof photos / sizeof *photos)

static float *read_f32(const char *path, size_t n) {
    uint8_t *buf;
    size_t len;
    if (nn_file_read(path, &buf, &len, n * 4 + 1)) {
        fprintf(stderr, "%s\n", nn_error());
        return NULL;
    }
    if (len != n * 4) {
        fprintf(stderr, "%s: %zu bytes, expected %zu\n", path, len, n * 4);
        free(buf);
        return NULL;
    }
    return (float *)buf;
}

static double max_abs(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

/* detections (normalised coords) from scores/offsets arrays */
static int detect_from(const float *scores, const float *offs, const float *priors, int P,
                       nn_uf_box *out, int cap, float thr) {
    int n = 0;
    for (int i = 0; i < P && n < cap; i++) {
        if (!(scores[2 * i + 1] > thr)) continue;
        float b[4];
        nn_uf_decode(b, offs + 4 * i, priors + 4 * i, 1, 0.1f, 0.2f);
        out[n++] = (nn_uf_box){b[0], b[1], b[2], b[3], scores[2 * i + 1]};
    }
    return nn_uf_nms(out, n, 0.3f);
}

static double worst_scores, worst_offsets, worst_boxes;

static void compare_variant(const char *shared, const char *variant, int w, int h, int nphotos) {
    char model[1024], onnx[1024];
    if (uf_converted(model, sizeof model, shared, variant)) {
        CHECK(0, "conversion of %s failed", variant);
        return;
    }
    uf_onnx_path(onnx, sizeof onnx, shared, variant);
    nn_uf *d = nn_uf_load(model);
    CHECK(d != NULL, "load %s: %s", model, nn_error());
    if (!d) return;
    CHECK(nn_uf_set_input_size(d, w, h) == 0, "set size %dx%d: %s", w, h, nn_error());
    int P = nn_uf_num_priors(d);
    const char *build = getenv("NNMASK_BUILD") ? getenv("NNMASK_BUILD") : ".";
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/ultraface/fixtures", build);
    nn_mkdir_p(dir);

    char in_path[NPHOTOS][1100], prefix[NPHOTOS][1100];
    float *eng_s[NPHOTOS], *eng_b[NPHOTOS];
    char ws[16], hs[16];
    snprintf(ws, sizeof ws, "%d", w);
    snprintf(hs, sizeof hs, "%d", h);
    char script[1024];
    snprintf(script, sizeof script, "%s/tests/make_ultraface_fixtures.py",
             getenv("NNMASK_SRC") ? getenv("NNMASK_SRC") : ".");
    /* argv layout: python script onnx W H (IN PREFIX)... */
    char *pargv[5 + 2 * NPHOTOS + 1];
    int np = 0;
    pargv[np++] = (char *)uf_python();
    pargv[np++] = script;
    pargv[np++] = onnx;
    pargv[np++] = ws;
    pargv[np++] = hs;
    for (int p = 0; p < nphotos; p++) eng_s[p] = eng_b[p] = NULL;
    int rc = -1;
    for (int p = 0; p < nphotos; p++) {
        char img_path[1024];
        snprintf(img_path, sizeof img_path, "%s/data/photos/%s", shared, photos[p]);
        nn_image img;
        if (nn_image_load(&img, img_path)) {
            CHECK(0, "%s", nn_error());
            goto done;
        }
        nn_uf_preprocess(d, &img, NN_UF_RESIZE);
        nn_image_free(&img);
        snprintf(in_path[p], sizeof in_path[p], "%s/%s.%dx%d.input.f32", dir, photos[p], w, h);
        snprintf(prefix[p], sizeof prefix[p], "%s/%s.%s.%dx%d", dir, photos[p], variant, w, h);
        CHECK(nn_file_write_atomic(in_path[p], nn_uf_input(d), sizeof(float) * 3 * w * h) == 0,
              "%s", nn_error());
        nn_uf_forward(d);
        eng_s[p] = malloc(sizeof(float) * 2 * P);
        eng_b[p] = malloc(sizeof(float) * 4 * P);
        memcpy(eng_s[p], nn_uf_scores(d), sizeof(float) * 2 * P);
        memcpy(eng_b[p], nn_uf_offsets(d), sizeof(float) * 4 * P);
        pargv[np++] = in_path[p];
        pargv[np++] = prefix[p];
    }
    pargv[np] = NULL;
    rc = uf_run(pargv);
    CHECK(rc == 0, "%s failed (exit %d)", script, rc);
    for (int p = 0; p < nphotos && rc == 0; p++) {
        char sp[4500], bp[4500];
        snprintf(sp, sizeof sp, "%s.scores.f32", prefix[p]);
        snprintf(bp, sizeof bp, "%s.boxes.f32", prefix[p]);
        float *rs = read_f32(sp, (size_t)2 * P), *rb = read_f32(bp, (size_t)4 * P);
        CHECK(rs && rb, "reference outputs of %s", photos[p]);
        if (rs && rb) {
            double es = max_abs(eng_s[p], rs, (size_t)2 * P);
            double eb = max_abs(eng_b[p], rb, (size_t)4 * P);
            /* decoded, normalised corner coordinates */
            float *de = malloc(sizeof(float) * 4 * P), *dr = malloc(sizeof(float) * 4 * P);
            nn_uf_decode(de, eng_b[p], nn_uf_priors(d), P, 0.1f, 0.2f);
            nn_uf_decode(dr, rb, nn_uf_priors(d), P, 0.1f, 0.2f);
            double ed = max_abs(de, dr, (size_t)4 * P);
            free(de);
            free(dr);
            nn_uf_box fe[256], fr[256];
            int ne = detect_from(eng_s[p], eng_b[p], nn_uf_priors(d), P, fe, 256, 0.7f);
            int nr = detect_from(rs, rb, nn_uf_priors(d), P, fr, 256, 0.7f);
            double ef = 0;
            for (int i = 0; i < ne && i < nr; i++) {
                float a[5] = {fe[i].x0, fe[i].y0, fe[i].x1, fe[i].y1, fe[i].score};
                float b[5] = {fr[i].x0, fr[i].y0, fr[i].x1, fr[i].y1, fr[i].score};
                double e = max_abs(a, b, 5);
                if (e > ef) ef = e;
            }
            printf("%-8s %4dx%-4d %-32s max|err| scores %.2e offsets %.2e boxes %.2e; "
                   "faces %d vs %d (err %.2e)\n",
                   variant, w, h, photos[p], es, eb, ed, ne, nr, ef);
            CHECK(es <= TOL, "%s %s: scores max error %.3g", variant, photos[p], es);
            CHECK(eb <= TOL, "%s %s: offsets max error %.3g", variant, photos[p], eb);
            CHECK(ed <= TOL, "%s %s: decoded boxes max error %.3g", variant, photos[p], ed);
            CHECK(ne == nr, "%s %s: %d faces vs %d", variant, photos[p], ne, nr);
            CHECK(ef <= TOL, "%s %s: faces differ by %.3g", variant, photos[p], ef);
            CHECK(ne >= 1, "%s %s: no face found", variant, photos[p]);
            if (es > worst_scores) worst_scores = es;
            if (eb > worst_offsets) worst_offsets = eb;
            if (ed > worst_boxes) worst_boxes = ed;
        }
        free(rs);
        free(rb);
    }
done:
    for (int p = 0; p < nphotos; p++) {
        free(eng_s[p]);
        free(eng_b[p]);
    }
    nn_uf_free(d);
}

int main(void) {
    const char *shared = tu_shared();
    char onnx[1024];
    uf_onnx_path(onnx, sizeof onnx, shared, "slim");
    if (!uf_file_exists(onnx)) {
        printf("SKIP: %s not found (shared data absent; set NNMASK_SHARED)\n", onnx);
        return TEST_SKIP_CODE;
    }
    if (!uf_python_has("cv2, onnx, numpy")) {
        printf("SKIP: %s lacks cv2/onnx/numpy (apt-get install python3-opencv python3-onnx)\n",
               uf_python());
        return TEST_SKIP_CODE;
    }
    nn_threads_set(2);
    compare_variant(shared, "slim", 320, 240, NPHOTOS);
    compare_variant(shared, "RFB", 320, 240, NPHOTOS);
    /* other input sizes: proportional and larger than native */
    compare_variant(shared, "slim", 640, 480, 2);
    compare_variant(shared, "RFB", 416, 288, 2);
    printf("parity max abs error: scores %.2e, offsets %.2e, decoded boxes %.2e (tolerance %.0e)\n",
           worst_scores, worst_offsets, worst_boxes, TOL);
    return test_summary("test_ultraface_parity");
}
