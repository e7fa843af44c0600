/* test_draw.c — engine/draw.c: exact box outlines, clipping of boxes and
 * text at and beyond the image edges, blending, text extent and labels. */
#include "nnmask.h"
#include "testutil.h"

static int is(const nn_image *im, int x, int y, nn_rgb c) {
    const uint8_t *p = im->rgb + ((size_t)y * im->w + x) * 3;
    return p[0] == c.r && p[1] == c.g && p[2] == c.b;
}

static int count(const nn_image *im, nn_rgb c, int x0, int y0, int x1, int y1) {
    int n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) n += is(im, x, y, c);
    return n;
}

static void fill(nn_image *im, uint8_t v) { memset(im->rgb, v, (size_t)im->w * im->h * 3); }

int main(void) {
    nn_image im;
    CHECK(nn_image_alloc(&im, 64, 48) == 0, "alloc");
    nn_rgb red = NN_RGB_NOMASK, green = NN_RGB_MASK, black = {0, 0, 0}, white = {255, 255, 255};

    /* outline: exactly the t-pixel ring inside [10,30) x [5,25) */
    fill(&im, 0);
    nn_draw_box(&im, 10, 5, 30, 25, 2, red);
    int ring = 20 * 20 - 16 * 16;
    CHECK(count(&im, red, 0, 0, 64, 48) == ring, "ring pixels %d", count(&im, red, 0, 0, 64, 48));
    CHECK(is(&im, 10, 5, red) && is(&im, 29, 24, red) && is(&im, 11, 6, red), "corners");
    CHECK(!is(&im, 12, 7, red) && !is(&im, 30, 25, red) && !is(&im, 9, 5, red), "outside ring");
    /* swapped corners draw the same box */
    nn_image im2;
    CHECK(nn_image_alloc(&im2, 64, 48) == 0, "alloc");
    fill(&im2, 0);
    nn_draw_box(&im2, 30, 25, 10, 5, 2, red);
    CHECK(memcmp(im.rgb, im2.rgb, 64 * 48 * 3) == 0, "swapped corners");
    /* a box smaller than two thicknesses is filled */
    fill(&im, 0);
    nn_draw_box(&im, 2, 2, 5, 5, 2, green);
    CHECK(count(&im, green, 0, 0, 64, 48) == 9, "tiny box filled");

    /* clipping: boxes partly or fully outside, huge coordinates */
    fill(&im, 0);
    nn_draw_box(&im, -20, -20, 10, 10, 3, green);
    CHECK(is(&im, 0, 9, green) && is(&im, 9, 0, green) && !is(&im, 5, 5, green), "clipped box");
    nn_draw_box(&im, -1000000, -1000000, 1000000, 1000000, 4, green);
    nn_draw_box(&im, 100, 100, 200, 200, 2, green);
    nn_draw_rect(&im, 70, 0, 80, 10, green);
    nn_draw_rect(&im, 5, 5, 5, 40, green);   /* empty */
    nn_draw_rect(&im, 60, 40, 200, 200, black);
    CHECK(is(&im, 63, 47, black) && is(&im, 60, 40, black), "clipped rect");

    /* blending */
    fill(&im, 100);
    nn_draw_blend_rect(&im, 0, 0, 64, 48, white, 0.5f);
    const uint8_t *p = im.rgb;
    CHECK(p[0] >= 176 && p[0] <= 179, "blend 50%%: %d", p[0]);
    nn_draw_blend_rect(&im, 0, 0, 64, 48, black, 0.0f);
    CHECK(p[0] >= 176 && p[0] <= 179, "blend 0%% is a no-op");
    nn_draw_blend_rect(&im, -5, -5, 3, 3, red, 1.0f);
    CHECK(is(&im, 0, 0, red) && is(&im, 2, 2, red) && !is(&im, 3, 3, red), "blend 100%%");

    /* text: extent grows with the scale and the pixels stay inside it */
    int w1 = nn_draw_text_width("Mask 97%", 1), h1 = nn_draw_text_height("Mask 97%", 1);
    int w3 = nn_draw_text_width("Mask 97%", 3), h3 = nn_draw_text_height("Mask 97%", 3);
    CHECK(w1 > 20 && w1 < 60 && h1 >= 7 && h1 <= 12, "text size %dx%d", w1, h1);
    CHECK(w3 == 3 * w1 && h3 == 3 * h1, "scaled text size %dx%d", w3, h3);
    CHECK(nn_draw_text_height("a\nb", 1) > h1, "two lines are taller");
    nn_image big;
    CHECK(nn_image_alloc(&big, 200, 60) == 0, "alloc");
    fill(&big, 0);
    nn_draw_text(&big, 10, 10, "Mask 97%", 2, white);
    int lit = count(&big, white, 0, 0, 200, 60);
    int inside = count(&big, white, 10, 10, 10 + nn_draw_text_width("Mask 97%", 2),
                       10 + nn_draw_text_height("Mask 97%", 2));
    CHECK(lit > 50 && lit == inside, "text pixels %d, inside its box %d", lit, inside);
    /* non-ASCII and long strings: no crash, something drawn */
    fill(&big, 0);
    nn_draw_text(&big, -5, -3, "\xc3\xa9t\xe9 \x01 ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~"
                 "~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~"
                 "~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~"
                 "~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~",
                 3, white);
    CHECK(count(&big, white, 0, 0, 200, 60) > 0, "clipped long text");
    nn_draw_text(&big, 500, 500, "off image", 2, white);

    /* label: background box with the text on it */
    fill(&big, 0);
    nn_draw_label(&big, 5, 5, "No Mask 88%", 1, white, red);
    CHECK(count(&big, white, 0, 0, 200, 60) > 20 && count(&big, red, 0, 0, 200, 60) > 200,
          "label");
    CHECK(is(&big, 5, 5, red), "label background at its corner");

    /* a face: outline in its colour, label above it (or below at the top) */
    nn_image fr;
    CHECK(nn_image_alloc(&fr, 640, 480) == 0, "alloc");
    fill(&fr, 50);
    nn_draw_face(&fr, 100.4f, 200.4f, 200.4f, 320.4f, "Mask 97%", green);
    int t = nn_draw_box_thickness(640, 480);
    CHECK(t == 2 && nn_draw_text_scale(640, 480) == 2, "480p thickness %d", t);
    CHECK(is(&fr, 100, 260, green) && is(&fr, 101, 260, green) && !is(&fr, 102, 260, green),
          "left edge");
    CHECK(is(&fr, 199, 260, green) && !is(&fr, 200, 260, green), "right edge");
    CHECK(count(&fr, green, 100, 170, 200, 200) > 300, "label above the box");
    fill(&fr, 50);
    nn_draw_face(&fr, 10, 0, 90, 100, "No Mask 88%", red);
    CHECK(count(&fr, red, 10, 100, 200, 140) > 300, "label below a box at the top");
    nn_draw_face(&fr, 600, 400, 700, 500, "far right", red);    /* clipped, no crash */
    nn_draw_face(&fr, 0, 0, 640, 480, "whole frame", red);
    nn_draw_face(&fr, 5, 5, 6, 6, NULL, red);
    CHECK(nn_draw_text_scale(4000, 3000) > 10 && nn_draw_box_thickness(100, 100) == 2,
          "scales with the image");

    nn_image_free(&im);
    nn_image_free(&im2);
    nn_image_free(&big);
    nn_image_free(&fr);
    return test_summary("test_draw");
}
