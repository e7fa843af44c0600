/* fuzz_image.c — libFuzzer target: nn_image_load_memory on arbitrary bytes, then a small
 * resize and crop of whatever decodes. Built with -Dfuzz=true (see run.sh). */

#include "nnmask.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nn_image img, out;
    if (nn_image_load_memory(&img, data, size, "fuzz-input") != 0) {
        if (img.rgb) abort(); /* a failed load must leave an empty image */
        return 0;
    }
    if (!img.rgb || img.w <= 0 || img.h <= 0) abort();
    /* touch every pixel so ASan sees the whole buffer */
    unsigned sum = 0;
    for (size_t i = 0; i < (size_t)img.w * img.h * 3; i++) sum += img.rgb[i];
    (void)sum;
    if ((size_t)img.w * img.h <= 512 * 512) {
        if (nn_image_resize(&out, &img, 7, 5) == 0) nn_image_free(&out);
        float x0 = (float)(size % 13) - 4.f, y0 = (float)(size % 7) - 3.f;
        if (nn_image_crop_resize(&out, &img, x0, y0, x0 + img.w * 0.7f + 1.f,
                                 y0 + img.h * 0.6f + 1.f, 11, 9) == 0)
            nn_image_free(&out);
    }
    nn_image_free(&img);
    return 0;
}
