/* make_seeds.c — writes the fuzzers' seed corpus: small valid files of every image
 * format and variant (grey, grey+alpha, RGBA, GIF, BMP, WebP) and safetensors files. */

#include "nnmask.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <webp/encode.h>

#pragma GCC diagnostic ignored "-Wunused-function"
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb_image_write.h>

static char dir_img[2048], dir_st[2048];

static void put(const char *dir, const char *name, const void *d, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (nn_file_write_atomic(path, d, n)) nn_fatal("%s", nn_error());
}

#include "../tu_blob.h"

static void seed_png(const char *name, int w, int h, int comp, const uint8_t *px) {
    blob b = {0};
    stbi_write_png_to_func(blob_put, &b, w, h, comp, px, w * comp);
    put(dir_img, name, b.d, b.n);
    free(b.d);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s IMAGE_DIR ST_DIR\n", argv[0]);
        return 2;
    }
    snprintf(dir_img, sizeof dir_img, "%s", argv[1]);
    snprintf(dir_st, sizeof dir_st, "%s", argv[2]);
    if (nn_mkdir_p(dir_img) || nn_mkdir_p(dir_st)) nn_fatal("%s", nn_error());
    enum { W = 12, H = 9 };
    uint8_t px[W * H * 4];
    for (int i = 0; i < W * H * 4; i++) px[i] = (uint8_t)(i * 29 + (i >> 4) * 7);
    for (int i = 0; i < W * H; i += 5) px[4 * i + 3] = 0;
    seed_png("grey.png", W, H, 1, px);
    seed_png("greyalpha.png", W, H, 2, px);
    seed_png("rgb.png", W, H, 3, px);
    seed_png("rgba.png", W, H, 4, px);
    blob b = {0};
    stbi_write_bmp_to_func(blob_put, &b, W, H, 3, px);
    put(dir_img, "rgb.bmp", b.d, b.n);
    free(b.d);
    b.d = NULL;
    b.n = 0;
    stbi_write_bmp_to_func(blob_put, &b, W, H, 4, px);
    put(dir_img, "rgba.bmp", b.d, b.n);
    free(b.d);
    nn_image im;
    nn_image_alloc(&im, W, H);
    memcpy(im.rgb, px, W * H * 3);
    for (int q = 30; q <= 95; q += 65) {
        uint8_t *j;
        size_t n;
        if (nn_image_encode_jpeg(&im, q, &j, &n)) nn_fatal("%s", nn_error());
        char name[32];
        snprintf(name, sizeof name, "q%d.jpg", q);
        put(dir_img, name, j, n);
        free(j);
    }
    uint8_t *wp;
    size_t wn = WebPEncodeRGB(im.rgb, W, H, W * 3, 60.f, &wp);
    put(dir_img, "lossy.webp", wp, wn);
    WebPFree(wp);
    wn = WebPEncodeLosslessRGB(im.rgb, W, H, W * 3, &wp);
    put(dir_img, "lossless.webp", wp, wn);
    WebPFree(wp);
    wn = WebPEncodeRGBA(px, W, H, W * 4, 60.f, &wp);
    put(dir_img, "alpha.webp", wp, wn);
    WebPFree(wp);
    /* GIF 6x4, 4-colour palette, index 3 transparent. LZW with 9-bit codes: a
     * clear code before every literal keeps the code width fixed. */
    {
        uint8_t gif[256];
        size_t g = 0;
        static const uint8_t head[] = {'G', 'I', 'F', '8', '9', 'a', 6, 0, 4, 0, 0x81, 0, 0,
                                       255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255,
                                       0x21, 0xF9, 4, 1, 0, 0, 3, 0,
                                       0x2C, 0, 0, 0, 0, 6, 0, 4, 0, 0, 8};
        memcpy(gif, head, sizeof head);
        g = sizeof head;
        uint8_t lzw[128];
        size_t nl = 0;
        uint32_t acc = 0;
        int nbits = 0;
        for (int i = 0; i <= 24; i++) {
            unsigned codes[2] = {256, i < 24 ? (unsigned)((i * 5) & 3) : 257u};
            for (int c = 0; c < 2; c++) {
                acc |= codes[c] << nbits;
                nbits += 9;
                while (nbits >= 8) {
                    lzw[nl++] = (uint8_t)acc;
                    acc >>= 8;
                    nbits -= 8;
                }
            }
        }
        if (nbits) lzw[nl++] = (uint8_t)acc;
        gif[g++] = (uint8_t)nl;
        memcpy(gif + g, lzw, nl);
        g += nl;
        gif[g++] = 0;
        gif[g++] = 0x3B;
        put(dir_img, "tiny.gif", gif, g);
    }
    nn_image_free(&im);

    /* safetensors: F32 with metadata, F16/BF16/I64 hand-made */
    float v[6] = {1, -2, 3.5f, 0, 1e-3f, 7};
    int64_t s23[2] = {2, 3}, s6[1] = {6};
    nn_st_writer *w = nn_st_writer_new();
    nn_st_writer_meta(w, "format", "pt");
    nn_st_writer_add_f32(w, "a", v, 2, s23);
    nn_st_writer_add_f32(w, "b.weight", v, 1, s6);
    nn_st_writer_add_f32(w, "s", v, 0, NULL);
    char path[4096];
    snprintf(path, sizeof path, "%s/f32.safetensors", dir_st);
    if (nn_st_writer_save(w, path)) nn_fatal("%s", nn_error());
    nn_st_writer_free(w);
    const char *hj = "{\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                     "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[4,8]},"
                     "\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[8,16]},"
                     "\"__metadata__\":{\"k\":\"v\"}}";
    size_t hl = strlen(hj);
    uint8_t file[512] = {(uint8_t)hl};
    memcpy(file + 8, hj, hl);
    static const uint8_t data[16] = {0x00, 0x3C, 0x00, 0xC0, 0xC0, 0x3F, 0x20, 0xBE, 5};
    memcpy(file + 8 + hl, data, 16);
    put(dir_st, "half.safetensors", file, 8 + hl + 16);
    return 0;
}
