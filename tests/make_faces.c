/* make_faces.c — draws a small labelled image set for the training tests:
 * cartoon "faces" (skin ellipse, eyes) with or without a "mask" (a coloured
 * band over the lower face), random sizes, colours, positions and noise.
 * usage: make_faces OUT_DIR N_PER_CLASS SEED  -> OUT_DIR/{with_mask,without_mask}/ *.png|jpg */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "nnmask.h"

static void put(nn_image *im, int x, int y, const float c[3]) {
    if (x < 0 || y < 0 || x >= im->w || y >= im->h) return;
    uint8_t *p = im->rgb + ((size_t)y * im->w + x) * 3;
    for (int k = 0; k < 3; k++) p[k] = (uint8_t)fminf(fmaxf(c[k], 0), 255);
}

static void ellipse(nn_image *im, float cx, float cy, float rx, float ry, const float c[3]) {
    for (int y = (int)(cy - ry); y <= (int)(cy + ry) + 1; y++)
        for (int x = (int)(cx - rx); x <= (int)(cx + rx) + 1; x++) {
            float dx = (x + 0.5f - cx) / rx, dy = (y + 0.5f - cy) / ry;
            if (dx * dx + dy * dy <= 1) put(im, x, y, c);
        }
}

/* the band covers the part of the face ellipse below y0 */
static void mask_band(nn_image *im, float cx, float cy, float rx, float ry, float y0, const float c[3]) {
    for (int y = (int)y0; y <= (int)(cy + ry) + 1; y++)
        for (int x = (int)(cx - rx) - 1; x <= (int)(cx + rx) + 1; x++) {
            float dx = (x + 0.5f - cx) / (rx * 1.04f), dy = (y + 0.5f - cy) / (ry * 1.02f);
            if (dx * dx + dy * dy <= 1) put(im, x, y, c);
        }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: make_faces OUT_DIR N_PER_CLASS SEED\n");
        return 2;
    }
    int n = atoi(argv[2]);
    nn_rng r;
    nn_rng_seed(&r, strtoull(argv[3], NULL, 10));
    const char *cls[2] = {"with_mask", "without_mask"};
    for (int c = 0; c < 2; c++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", argv[1], cls[c]);
        if (nn_mkdir_p(dir)) {
            fprintf(stderr, "%s\n", nn_error());
            return 1;
        }
        for (int i = 0; i < n; i++) {
            int w = 56 + nn_rng_int(&r, 120), h = (int)(w * nn_rng_range(&r, 0.9f, 1.3f));
            nn_image im;
            if (nn_image_alloc(&im, w, h)) return 1;
            float bg[3] = {nn_rng_range(&r, 0, 255), nn_rng_range(&r, 0, 255), nn_rng_range(&r, 0, 255)};
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    float g = (float)y / h * 40 - 20;
                    float px[3] = {bg[0] + g, bg[1] + g, bg[2] + g};
                    put(&im, x, y, px);
                }
            float cx = w * nn_rng_range(&r, 0.42f, 0.58f), cy = h * nn_rng_range(&r, 0.45f, 0.55f);
            float rx = w * nn_rng_range(&r, 0.28f, 0.4f), ry = rx * nn_rng_range(&r, 1.15f, 1.4f);
            float tone = nn_rng_range(&r, 0.35f, 1.0f);
            float skin[3] = {235 * tone, 190 * tone, 150 * tone};
            ellipse(&im, cx, cy, rx, ry, skin);
            float eye[3] = {30, 30, 40};
            float er = fmaxf(1.5f, rx * 0.12f);
            ellipse(&im, cx - rx * 0.4f, cy - ry * 0.25f, er, er * 0.7f, eye);
            ellipse(&im, cx + rx * 0.4f, cy - ry * 0.25f, er, er * 0.7f, eye);
            if (c == 0) {
                static const float cols[5][3] = {{90, 160, 230}, {245, 245, 245}, {25, 25, 30}, {120, 200, 190}, {230, 140, 170}};
                const float *mc = cols[nn_rng_int(&r, 5)];
                float mcol[3] = {mc[0] + nn_rng_range(&r, -15, 15), mc[1] + nn_rng_range(&r, -15, 15), mc[2] + nn_rng_range(&r, -15, 15)};
                mask_band(&im, cx, cy, rx, ry, cy + ry * nn_rng_range(&r, -0.05f, 0.12f), mcol);
            } else {
                float lip[3] = {skin[0] * 0.7f, skin[1] * 0.4f, skin[2] * 0.4f};
                ellipse(&im, cx, cy + ry * 0.5f, rx * nn_rng_range(&r, 0.25f, 0.45f), fmaxf(1.2f, ry * 0.07f), lip);
                float nose[3] = {skin[0] * 0.85f, skin[1] * 0.8f, skin[2] * 0.8f};
                ellipse(&im, cx, cy + ry * 0.12f, fmaxf(1.2f, rx * 0.1f), fmaxf(1.5f, ry * 0.12f), nose);
            }
            /* sensor-like noise */
            float ns = nn_rng_range(&r, 0, 8);
            for (size_t k = 0; k < (size_t)w * h * 3; k++) {
                float v = im.rgb[k] + nn_rng_normal(&r) * ns;
                im.rgb[k] = (uint8_t)fminf(fmaxf(v, 0), 255);
            }
            char path[1200];
            snprintf(path, sizeof path, "%s/%s_%03d.%s", dir, cls[c], i, i % 3 == 0 ? "jpg" : "png");
            if (nn_image_write(&im, path, 90)) {
                fprintf(stderr, "%s\n", nn_error());
                return 1;
            }
            nn_image_free(&im);
        }
    }
    return 0;
}
