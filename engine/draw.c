/* draw.c — drawing on 8-bit RGB images: filled and outlined rectangles,
 * blended banners, and text (stb_easy_font glyphs scaled by an integer). */
#include <stdio.h>
#include <string.h>

#include "nnmask.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-braces"
#include <stb_easy_font.h>
#pragma GCC diagnostic pop

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

void nn_draw_rect(nn_image *img, int x0, int y0, int x1, int y1, nn_rgb c) {
    if (!img || !img->rgb) return;
    x0 = clampi(x0, 0, img->w);
    x1 = clampi(x1, 0, img->w);
    y0 = clampi(y0, 0, img->h);
    y1 = clampi(y1, 0, img->h);
    if (x0 >= x1 || y0 >= y1) return;
    for (int y = y0; y < y1; y++) {
        uint8_t *p = img->rgb + ((size_t)y * img->w + x0) * 3;
        for (int x = x0; x < x1; x++, p += 3) {
            p[0] = c.r;
            p[1] = c.g;
            p[2] = c.b;
        }
    }
}

void nn_draw_blend_rect(nn_image *img, int x0, int y0, int x1, int y1, nn_rgb c,
                        float alpha) {
    if (!img || !img->rgb) return;
    if (alpha >= 1.0f) {
        nn_draw_rect(img, x0, y0, x1, y1, c);
        return;
    }
    if (!(alpha > 0.0f)) return;
    x0 = clampi(x0, 0, img->w);
    x1 = clampi(x1, 0, img->w);
    y0 = clampi(y0, 0, img->h);
    y1 = clampi(y1, 0, img->h);
    int a = (int)(alpha * 256.0f + 0.5f), na = 256 - a;
    int cr = c.r * a, cg = c.g * a, cb = c.b * a;
    for (int y = y0; y < y1; y++) {
        uint8_t *p = img->rgb + ((size_t)y * img->w + x0) * 3;
        for (int x = x0; x < x1; x++, p += 3) {
            p[0] = (uint8_t)((p[0] * na + cr) >> 8);
            p[1] = (uint8_t)((p[1] * na + cg) >> 8);
            p[2] = (uint8_t)((p[2] * na + cb) >> 8);
        }
    }
}

void nn_draw_box(nn_image *img, int x0, int y0, int x1, int y1, int thickness, nn_rgb c) {
    if (x1 < x0) { int t = x0; x0 = x1; x1 = t; }
    if (y1 < y0) { int t = y0; y0 = y1; y1 = t; }
    if (thickness < 1) thickness = 1;
    int t = thickness;
    if (2 * t > x1 - x0 || 2 * t > y1 - y0) {   /* tiny box: fill it */
        nn_draw_rect(img, x0, y0, x1, y1, c);
        return;
    }
    nn_draw_rect(img, x0, y0, x1, y0 + t, c);          /* top */
    nn_draw_rect(img, x0, y1 - t, x1, y1, c);          /* bottom */
    nn_draw_rect(img, x0, y0 + t, x0 + t, y1 - t, c);  /* left */
    nn_draw_rect(img, x1 - t, y0 + t, x1, y1 - t, c);  /* right */
}

/* stb_easy_font only knows ASCII 32..126 and '\n'. */
static void sanitize(char *dst, const char *src, size_t cap) {
    size_t i = 0;
    for (; src[i] && i + 1 < cap; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = (ch == '\n' || (ch >= 32 && ch < 127)) ? (char)ch : '?';
    }
    dst[i] = 0;
}

#define TEXT_MAX 256

int nn_draw_text_width(const char *text, int scale) {
    char buf[TEXT_MAX];
    if (!text) return 0;
    sanitize(buf, text, sizeof buf);
    if (scale < 1) scale = 1;
    return stb_easy_font_width(buf) * scale;
}

int nn_draw_text_height(const char *text, int scale) {
    char buf[TEXT_MAX];
    if (!text) return 0;
    sanitize(buf, text, sizeof buf);
    if (scale < 1) scale = 1;
    /* stb_easy_font_height() counts 12 px per line including the gap
     * below the last one; the visible glyphs (with descenders) end by 10. */
    int lines = 1;
    for (const char *p = buf; *p; p++) lines += *p == '\n';
    return (lines * 12 - 2) * scale;
}

void nn_draw_text(nn_image *img, int x, int y, const char *text, int scale, nn_rgb fg) {
    if (!img || !img->rgb || !text) return;
    if (scale < 1) scale = 1;
    char buf[TEXT_MAX];
    sanitize(buf, text, sizeof buf);
    /* one line at a time, 16 characters per call: 16 * 270 bytes of quads
     * is the worst case of stb_easy_font (~8 quads of 64 bytes a glyph). */
    static const int chunk = 16;
    char vbuf[16 * 64 * 20];
    unsigned char col[4] = {255, 255, 255, 255};
    int line_y = 0;
    char *line = buf;
    while (line) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        int cx = 0;
        size_t len = strlen(line);
        for (size_t off = 0; off < len; off += chunk) {
            char part[32];
            size_t n = len - off < (size_t)chunk ? len - off : (size_t)chunk;
            memcpy(part, line + off, n);
            part[n] = 0;
            int quads = stb_easy_font_print(0, 0, part, col, vbuf, (int)sizeof vbuf);
            for (int q = 0; q < quads; q++) {
                const float *v = (const float *)(vbuf + (size_t)q * 64);
                /* four vertices of 16 bytes: x, y, z, colour */
                float qx0 = v[0], qy0 = v[1], qx1 = v[0], qy1 = v[1];
                for (int k = 1; k < 4; k++) {
                    const float *vk = v + 4 * k;
                    if (vk[0] < qx0) qx0 = vk[0];
                    if (vk[0] > qx1) qx1 = vk[0];
                    if (vk[1] < qy0) qy0 = vk[1];
                    if (vk[1] > qy1) qy1 = vk[1];
                }
                int rx0 = x + (cx + (int)(qx0 + 0.5f)) * scale;
                int rx1 = x + (cx + (int)(qx1 + 0.5f)) * scale;
                int ry0 = y + (line_y + (int)(qy0 + 0.5f)) * scale;
                int ry1 = y + (line_y + (int)(qy1 + 0.5f)) * scale;
                nn_draw_rect(img, rx0, ry0, rx1, ry1, fg);
            }
            cx += stb_easy_font_width(part);
        }
        line_y += 12;
        line = nl ? nl + 1 : NULL;
    }
}

void nn_draw_label(nn_image *img, int x, int y, const char *text, int scale, nn_rgb fg,
                   nn_rgb bg) {
    if (!img || !text) return;
    if (scale < 1) scale = 1;
    int pad = scale * 2;
    int w = nn_draw_text_width(text, scale) + 2 * pad;
    int h = nn_draw_text_height(text, scale) + 2 * pad;
    nn_draw_rect(img, x, y, x + w, y + h, bg);
    nn_draw_text(img, x + pad, y + pad + scale, text, scale, fg);
}

int nn_draw_text_scale(int w, int h) {
    int m = w < h ? w : h;
    int s = (m + 120) / 240;   /* 480 px -> 2 */
    return s < 1 ? 1 : s;
}

int nn_draw_box_thickness(int w, int h) {
    int m = w < h ? w : h;
    int t = (m + 120) / 240;   /* 480 px -> 2 */
    return t < 2 ? 2 : t;
}

void nn_draw_face(nn_image *img, float fx0, float fy0, float fx1, float fy1,
                  const char *label, nn_rgb c) {
    if (!img || !img->rgb) return;
    int x0 = (int)(fx0 + 0.5f), y0 = (int)(fy0 + 0.5f);
    int x1 = (int)(fx1 + 0.5f), y1 = (int)(fy1 + 0.5f);
    int t = nn_draw_box_thickness(img->w, img->h);
    nn_draw_box(img, x0, y0, x1, y1, t, c);
    if (!label || !*label) return;
    int s = nn_draw_text_scale(img->w, img->h);
    int lh = nn_draw_text_height(label, s) + 4 * s;
    int lw = nn_draw_text_width(label, s) + 4 * s;
    int ly = y0 - lh;                         /* above the box ... */
    if (ly < 0) ly = y1;                      /* ... or below it ... */
    if (ly + lh > img->h) ly = y0 + t;        /* ... or inside its top */
    int lx = x0;
    if (lx + lw > img->w) lx = img->w - lw;
    if (lx < 0) lx = 0;
    nn_rgb white = {255, 255, 255};
    nn_draw_label(img, lx, ly, label, s, white, c);
}
