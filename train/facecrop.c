/* facecrop.c — the face-crop policy (square, margin, filtered resize) shared
 * by training on annotated photos and the detector apps; see facecrop.h. */

#include "facecrop.h"

#include <math.h>

void nn_face_square(float out[4], float x0, float y0, float x1, float y1, float scale) {
    float cx = 0.5f * (x0 + x1), cy = 0.5f * (y0 + y1);
    float side = fmaxf(x1 - x0, y1 - y0) * (1.0f + NN_FACE_MARGIN) * scale;
    out[0] = cx - 0.5f * side;
    out[1] = cy - 0.5f * side;
    out[2] = cx + 0.5f * side;
    out[3] = cy + 0.5f * side;
}

int nn_face_crop(nn_image *dst, const nn_image *src, float x0, float y0, float x1, float y1,
                 int size) {
    if (!isfinite(x0) || !isfinite(y0) || !isfinite(x1) || !isfinite(y1) || !(x1 > x0) ||
        !(y1 > y0))
        return nn_set_error("face box (%g,%g)-(%g,%g) is empty or not finite", x0, y0, x1, y1);
    if (size <= 0) return nn_set_error("face crop size %d out of range", size);
    float b[4];
    nn_face_square(b, x0, y0, x1, y1, 1.0f);
    nn_image out = {0};
    if (nn_image_crop_resize(&out, src, b[0], b[1], b[2], b[3], size, size)) return -1;
    if (dst == src) nn_image_free(dst);
    *dst = out;
    return 0;
}
