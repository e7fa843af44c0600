/* augment.c — augmentation of training crops: one projective warp (Keras'
 * geometric transforms, perspective, box jitter), colour, blur, camera chain. */

#include "augment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline float clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }

void nn_augment_rng(nn_rng *r, uint64_t seed, int epoch, int index) {
    uint64_t s = seed * 0x9e3779b97f4a7c15ULL;
    s ^= (uint64_t)(uint32_t)epoch * 0xbf58476d1ce4e5b9ULL + 0x632be59bd9b4e019ULL;
    s ^= (uint64_t)(uint32_t)index * 0x94d049bb133111ebULL + 0x2545f4914f6cdd1dULL;
    nn_rng_seed(r, s);
}

/* Source coordinate for the fill mode; returns 0 when the pixel is outside
 * and the mode is constant. */
static inline int fill_coord(float *v, int n, nn_fill_mode mode) {
    if (mode == NN_FILL_REFLECT && n > 1) {
        float period = 2.0f * n;
        float t = fmodf(*v + 0.5f, period);
        if (t < 0) t += period;
        if (t >= n) t = period - t;
        *v = t - 0.5f;
    }
    if (mode == NN_FILL_CONSTANT && (*v < -0.5f || *v > n - 0.5f)) return 0;
    *v = clampf(*v, 0.0f, (float)(n - 1));
    return 1;
}

/* out[v][u] = bilinear(src at H * (u', v', 1)) with u' = u + 0.5 - size/2. */
static void warp(nn_image *out, const nn_image *src, const float H[9], nn_fill_mode mode) {
    int S = out->w;
    float half = 0.5f * S;
    for (int v = 0; v < S; v++) {
        float vy = v + 0.5f - half;
        uint8_t *o = out->rgb + (size_t)v * S * 3;
        for (int u = 0; u < S; u++) {
            float ux = u + 0.5f - half;
            float w = H[6] * ux + H[7] * vy + H[8];
            float x = (H[0] * ux + H[1] * vy + H[2]) / w;
            float y = (H[3] * ux + H[4] * vy + H[5]) / w;
            int in_x = fill_coord(&x, src->w, mode), in_y = fill_coord(&y, src->h, mode); /* both clamp */
            if (!in_x || !in_y) {
                o[3 * u] = o[3 * u + 1] = o[3 * u + 2] = 0;
                continue;
            }
            int x0 = (int)x, y0 = (int)y;
            int x1 = x0 + 1 < src->w ? x0 + 1 : x0, y1 = y0 + 1 < src->h ? y0 + 1 : y0;
            float fx = x - x0, fy = y - y0;
            const uint8_t *p00 = src->rgb + ((size_t)y0 * src->w + x0) * 3;
            const uint8_t *p01 = src->rgb + ((size_t)y0 * src->w + x1) * 3;
            const uint8_t *p10 = src->rgb + ((size_t)y1 * src->w + x0) * 3;
            const uint8_t *p11 = src->rgb + ((size_t)y1 * src->w + x1) * 3;
            for (int c = 0; c < 3; c++) {
                float a = p00[c] + (p01[c] - p00[c]) * fx;
                float b = p10[c] + (p11[c] - p10[c]) * fx;
                o[3 * u + c] = (uint8_t)(a + (b - a) * fy + 0.5f);
            }
        }
    }
}

static void mat3_mul(float *r, const float *a, const float *b) {
    float t[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) t[3 * i + j] = a[3 * i] * b[j] + a[3 * i + 1] * b[3 + j] + a[3 * i + 2] * b[6 + j];
    memcpy(r, t, sizeof t);
}

/* Separable gaussian blur in place (edges clamped). */
static void gaussian_blur(nn_image *im, float sigma) {
    int r = (int)ceilf(3 * sigma);
    if (r < 1) return;
    if (r > 32) r = 32;
    float k[65], s = 0;
    for (int i = -r; i <= r; i++) s += k[i + r] = expf(-0.5f * i * i / (sigma * sigma));
    for (int i = 0; i <= 2 * r; i++) k[i] /= s;
    int W = im->w, Hh = im->h;
    float *tmp = malloc((size_t)W * Hh * 3 * sizeof *tmp);
    if (!tmp) return;
    for (int y = 0; y < Hh; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) {
                float a = 0;
                for (int i = -r; i <= r; i++) {
                    int xx = x + i < 0 ? 0 : x + i >= W ? W - 1 : x + i;
                    a += k[i + r] * im->rgb[((size_t)y * W + xx) * 3 + c];
                }
                tmp[((size_t)y * W + x) * 3 + c] = a;
            }
    for (int y = 0; y < Hh; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) {
                float a = 0;
                for (int i = -r; i <= r; i++) {
                    int yy = y + i < 0 ? 0 : y + i >= Hh ? Hh - 1 : y + i;
                    a += k[i + r] * tmp[((size_t)yy * W + x) * 3 + c];
                }
                im->rgb[((size_t)y * W + x) * 3 + c] = (uint8_t)clampf(a + 0.5f, 0, 255);
            }
    free(tmp);
}

/* Average of `len` bilinear samples along a line at angle `ang` (in place). */
static void motion_blur(nn_image *im, int len, float ang) {
    int W = im->w, Hh = im->h;
    uint8_t *src = malloc((size_t)W * Hh * 3);
    if (!src) return;
    memcpy(src, im->rgb, (size_t)W * Hh * 3);
    float dx = cosf(ang), dy = sinf(ang);
    for (int y = 0; y < Hh; y++)
        for (int x = 0; x < W; x++) {
            float acc[3] = {0, 0, 0};
            for (int i = 0; i < len; i++) {
                float t = i - 0.5f * (len - 1);
                float sx = clampf(x + t * dx, 0, W - 1), sy = clampf(y + t * dy, 0, Hh - 1);
                int x0 = (int)sx, y0 = (int)sy;
                int x1 = x0 + 1 < W ? x0 + 1 : x0, y1 = y0 + 1 < Hh ? y0 + 1 : y0;
                float fx = sx - x0, fy = sy - y0;
                for (int c = 0; c < 3; c++) {
                    float a = src[((size_t)y0 * W + x0) * 3 + c] * (1 - fx) + src[((size_t)y0 * W + x1) * 3 + c] * fx;
                    float b = src[((size_t)y1 * W + x0) * 3 + c] * (1 - fx) + src[((size_t)y1 * W + x1) * 3 + c] * fx;
                    acc[c] += a + (b - a) * fy;
                }
            }
            for (int c = 0; c < 3; c++) im->rgb[((size_t)y * W + x) * 3 + c] = (uint8_t)clampf(acc[c] / len + 0.5f, 0, 255);
        }
    free(src);
}

/* Brightness, contrast, saturation, hue (YIQ rotation), greyscale. */
static void color_jitter(nn_image *im, const nn_config *c, nn_rng *rng) {
    float fb = c->brightness > 0 ? nn_rng_range(rng, 1 - c->brightness, 1 + c->brightness) : 1;
    float fc = c->contrast > 0 ? nn_rng_range(rng, 1 - c->contrast, 1 + c->contrast) : 1;
    float fs = c->saturation > 0 ? nn_rng_range(rng, 1 - c->saturation, 1 + c->saturation) : 1;
    float hu = c->hue > 0 ? nn_rng_range(rng, -c->hue, c->hue) : 0;
    int grey = c->grey_prob > 0 && nn_rng_uniform(rng) < c->grey_prob;
    if (fb == 1 && fc == 1 && fs == 1 && hu == 0 && !grey) return;
    size_t n = (size_t)im->w * im->h;
    double mean = 0;
    if (fc != 1) {
        for (size_t i = 0; i < n; i++)
            mean += 0.299 * im->rgb[3 * i] + 0.587 * im->rgb[3 * i + 1] + 0.114 * im->rgb[3 * i + 2];
        mean = mean / n * fb;
    }
    float ch = cosf(2 * (float)M_PI * hu), sh = sinf(2 * (float)M_PI * hu);
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = im->rgb + 3 * i;
        float r = p[0] * fb, g = p[1] * fb, b = p[2] * fb;
        if (fc != 1) {
            r = (r - (float)mean) * fc + (float)mean;
            g = (g - (float)mean) * fc + (float)mean;
            b = (b - (float)mean) * fc + (float)mean;
        }
        /* YIQ: Y luma, I/Q chroma; saturation scales, hue rotates the chroma */
        float Y = 0.299f * r + 0.587f * g + 0.114f * b;
        float I = 0.596f * r - 0.274f * g - 0.322f * b;
        float Q = 0.211f * r - 0.523f * g + 0.312f * b;
        if (grey) I = Q = 0;
        float I2 = (I * ch - Q * sh) * fs, Q2 = (I * sh + Q * ch) * fs;
        r = Y + 0.956f * I2 + 0.621f * Q2;
        g = Y - 0.272f * I2 - 0.647f * Q2;
        b = Y - 1.106f * I2 + 1.703f * Q2;
        p[0] = (uint8_t)clampf(r + 0.5f, 0, 255);
        p[1] = (uint8_t)clampf(g + 0.5f, 0, 255);
        p[2] = (uint8_t)clampf(b + 0.5f, 0, 255);
    }
}

static void add_noise(nn_image *im, float std, nn_rng *rng) {
    size_t n = (size_t)im->w * im->h;
    int mono = nn_rng_uniform(rng) < 0.3f;
    for (size_t i = 0; i < n; i++) {
        float z = nn_rng_normal(rng) * std;
        for (int c = 0; c < 3; c++) {
            float zc = mono ? z : (c ? nn_rng_normal(rng) * std : z);
            im->rgb[3 * i + c] = (uint8_t)clampf(im->rgb[3 * i + c] + zc + 0.5f, 0, 255);
        }
    }
}

static int jpeg_roundtrip(nn_image *im, int quality) {
    uint8_t *buf = NULL;
    size_t len = 0;
    if (nn_image_encode_jpeg(im, quality, &buf, &len)) return -1;
    nn_image dec = {0};
    int r = nn_image_load_memory(&dec, buf, len, "jpeg augmentation");
    free(buf);
    if (r) return -1;
    if (dec.w != im->w || dec.h != im->h) {
        nn_image_free(&dec);
        return nn_set_error("jpeg augmentation: size changed");
    }
    nn_image_free(im);
    *im = dec;
    return 0;
}

int nn_augment(nn_image *out, const nn_image *src, float ctx, int size, const nn_config *c,
               nn_rng *rng) {
    if (nn_image_alloc(out, size, size)) return -1;
    /* base: the centre 1/ctx of src onto size x size */
    float bx = (float)src->w / ctx / size, by = (float)src->h / ctx / size;
    float B[9] = {bx, 0, 0.5f * src->w - 0.5f, 0, by, 0.5f * src->h - 0.5f, 0, 0, 1};
    if (!c->aug_enabled) {
        warp(out, src, B, NN_FILL_NEAREST);
        return 0;
    }
    const float d2r = (float)M_PI / 180.0f;
    float th = c->rotation > 0 ? nn_rng_range(rng, -c->rotation, c->rotation) * d2r : 0;
    float tx = c->shift_x > 0 ? nn_rng_range(rng, -c->shift_x, c->shift_x) * size : 0;
    float ty = c->shift_y > 0 ? nn_rng_range(rng, -c->shift_y, c->shift_y) * size : 0;
    float shr = c->shear > 0 ? nn_rng_range(rng, -c->shear, c->shear) * d2r : 0;
    float zx = c->zoom > 0 ? nn_rng_range(rng, 1 - c->zoom, 1 + c->zoom) : 1;
    float zy = c->zoom > 0 ? nn_rng_range(rng, 1 - c->zoom, 1 + c->zoom) : 1;
    int flip = c->hflip && nn_rng_uniform(rng) < 0.5f;
    if (c->box_jitter > 0) { /* a detector's loose/tight, off-centre box */
        float js = nn_rng_range(rng, 1 - c->box_jitter, 1 + c->box_jitter);
        zx *= js;
        zy *= js * nn_rng_range(rng, 1 - 0.3f * c->box_jitter, 1 + 0.3f * c->box_jitter);
        tx += nn_rng_range(rng, -0.5f, 0.5f) * c->box_jitter * size;
        ty += nn_rng_range(rng, -0.5f, 0.5f) * c->box_jitter * size;
    }
    float p1 = 0, p2 = 0;
    if (c->perspective > 0) {
        p1 = nn_rng_range(rng, -c->perspective, c->perspective) / (0.5f * size);
        p2 = nn_rng_range(rng, -c->perspective, c->perspective) / (0.5f * size);
    }
    /* output (centred) -> input (centred): R * Shear * Zoom * Flip * P, + shift */
    float F[9] = {flip ? -1.f : 1.f, 0, 0, 0, 1, 0, 0, 0, 1};
    float P[9] = {1, 0, 0, 0, 1, 0, p1, p2, 1};
    float Z[9] = {zx, 0, 0, 0, zy, 0, 0, 0, 1};
    float Sh[9] = {1, -sinf(shr), 0, 0, cosf(shr), 0, 0, 0, 1};
    float R[9] = {cosf(th), -sinf(th), tx, sinf(th), cosf(th), ty, 0, 0, 1};
    float M[9];
    mat3_mul(M, R, Sh);
    mat3_mul(M, M, Z);
    mat3_mul(M, M, F);
    mat3_mul(M, M, P);
    mat3_mul(M, B, M);
    warp(out, src, M, c->fill);

    color_jitter(out, c, rng);
    if (c->blur_prob > 0 && nn_rng_uniform(rng) < c->blur_prob)
        gaussian_blur(out, nn_rng_range(rng, 0.3f, c->blur_sigma));
    if (c->motion_blur_prob > 0 && nn_rng_uniform(rng) < c->motion_blur_prob)
        motion_blur(out, 2 + nn_rng_int(rng, c->motion_blur_max - 1), nn_rng_range(rng, 0, (float)M_PI));
    /* camera: the face at a small size (log-uniform), noise and JPEG there */
    int small = size;
    if (c->downscale_prob > 0 && nn_rng_uniform(rng) < c->downscale_prob) {
        float lo = logf((float)c->downscale_min), hi = logf((float)c->downscale_max);
        small = (int)lroundf(expf(nn_rng_range(rng, lo, hi)));
        if (small >= size) small = size;
        if (small < 4) small = 4;
        if (small < size && nn_image_resize(out, out, small, small)) return -1;
    }
    if (c->noise_prob > 0 && nn_rng_uniform(rng) < c->noise_prob)
        add_noise(out, nn_rng_range(rng, 0.5f, c->noise_std > 0.5f ? c->noise_std : 0.5f), rng);
    if (c->jpeg_prob > 0 && nn_rng_uniform(rng) < c->jpeg_prob) {
        int q = c->jpeg_min + nn_rng_int(rng, c->jpeg_max - c->jpeg_min + 1);
        if (jpeg_roundtrip(out, q)) return -1;
    }
    if (out->w != size && nn_image_resize(out, out, size, size)) return -1;
    return 0;
}
