/* image.c — 8-bit RGB images: loading JPEG/PNG/BMP/GIF (stb_image) and WebP
 * (libwebp) with strict checks, resizing and cropping (stb_image_resize), PNG (stb) and
 * JPEG (libjpeg-turbo) writing. */

#include "nnmask.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jpeglib.h>
#include <setjmp.h>
#include <webp/decode.h>

/* stb is compiled here, static, so that only the formats we accept exist
 * (stb's TGA has no magic number and would "decode" any text file), the
 * dimension limit is ours and nothing clashes with the system libstb. */
/* stb declares a few static functions it never defines; GCC reports those
 * at the end of the file, so this one stays off for the whole file. */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_NO_STDIO
#define STBI_NO_HDR
#define STBI_NO_LINEAR
#define STBI_MAX_DIMENSIONS (1 << 24)
#define STBI_ASSERT(x) ((void)0) /* never abort on a malicious file */
#include <stb_image.h>
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb_image_write.h>
#define STB_IMAGE_RESIZE_STATIC
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb_image_resize.h>
#pragma GCC diagnostic pop

/* Fuzz builds (tests/fuzz) refuse images over 4 Mpixel: the same code paths,
 * without spending the fuzzer's time on zero-filling 64 Mpixel buffers. */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define IMAGE_MAX_PIXELS (4u << 20)
#else
#define IMAGE_MAX_PIXELS NN_IMAGE_MAX_PIXELS
#endif

/* Files above this size are refused before reading. */
#define NN_IMAGE_MAX_FILE_BYTES ((size_t)512 << 20)

typedef enum { FMT_UNKNOWN, FMT_JPEG, FMT_PNG, FMT_BMP, FMT_GIF, FMT_WEBP } img_format;

static const char *fmt_name(img_format f) {
    switch (f) {
    case FMT_JPEG: return "JPEG";
    case FMT_PNG: return "PNG";
    case FMT_BMP: return "BMP";
    case FMT_GIF: return "GIF";
    case FMT_WEBP: return "WebP";
    default: return "image";
    }
}

static img_format sniff(const uint8_t *b, size_t n) {
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return FMT_JPEG;
    if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) return FMT_PNG;
    if (n >= 2 && b[0] == 'B' && b[1] == 'M') return FMT_BMP;
    if (n >= 6 && (!memcmp(b, "GIF87a", 6) || !memcmp(b, "GIF89a", 6))) return FMT_GIF;
    if (n >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4)) return FMT_WEBP;
    return FMT_UNKNOWN;
}

/* A Huffman table segment stb_image 2.27 would overflow on: more than 256
 * symbols in one table write past stbi__huffman.size[257] (fixed upstream in
 * 2.28; found by tests/fuzz). Returns 1 if every table is sane, and marks the
 * tables it defines in *defined (bit class*4 + id). */
static int jpeg_dht_ok(const uint8_t *p, size_t len, size_t avail, unsigned *defined) {
    /* bytes past `avail` (the end of the file) read as zeros in stb */
#define DHT_AT(j) ((j) < avail ? p[j] : 0)
    size_t i = 0;
    while (i < len) {
        if (i + 17 > len) return 0;
        if ((DHT_AT(i) >> 4) > 1 || (DHT_AT(i) & 15) > 3) return 0;
        size_t n = 0;
        for (size_t k = 1; k <= 16; k++) n += DHT_AT(i + k);
        if (n > 256 || i + 17 + n > len) return 0;
        *defined |= 1u << ((DHT_AT(i) >> 4) * 4 + (DHT_AT(i) & 15)); /* DC 0-3, AC 4-7 */
        i += 17 + n;
    }
    return 1;
#undef DHT_AT
}

/* A scan header whose components only use Huffman tables defined before it:
 * stb_image 2.27 decodes with an undefined (uninitialised) table and reads
 * far outside it (found by tests/fuzz; 2.28 bounds the symbol index). DC
 * tables are used by sequential scans and first DC scans (Ss = 0, Ah = 0),
 * AC tables by every scan with Se > 0. */
static int jpeg_sos_ok(const uint8_t *p, size_t len, size_t avail, unsigned defined) {
    if (len < 1 || len > avail) return 0;
    size_t ns = p[0];
    if (ns < 1 || ns > 4 || len < 1 + 2 * ns + 3) return 0;
    int ss = p[1 + 2 * ns], se = p[2 + 2 * ns], ah = p[3 + 2 * ns] >> 4;
    for (size_t c = 0; c < ns; c++) {
        unsigned td = p[2 + 2 * c] >> 4, ta = p[2 + 2 * c] & 15;
        if (ss == 0 && ah == 0 && (td > 3 || !(defined & (1u << td)))) return 0;
        if (se > 0 && (ta > 3 || !(defined & (1u << (4 + ta))))) return 0;
    }
    return 1;
}

/* Walks a JPEG's marker segments, skipping each by its length (so an EXIF
 * thumbnail's EOI is not mistaken for ours) and each scan's entropy-coded
 * data. stb_image decodes a cut JPEG without complaint (missing data reads as
 * zeros, a grey band), so the end-of-image marker must be there. Returns NULL
 * if the file is complete and sane, else the reason. */
static const char *jpeg_check(const uint8_t *p, size_t n) {
    size_t i = 2;
    unsigned defined = 0; /* Huffman tables defined so far */
    while (i + 1 < n) {
        if (p[i] != 0xFF) { /* junk between segments: look for the next marker */
            i++;
            continue;
        }
        uint8_t m = p[i + 1];
        if (m == 0xFF) { /* fill byte */
            i++;
            continue;
        }
        if (m == 0xD9) return NULL;
        if (m == 0x00 || m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7)) {
            i += 2; /* markers without a length */
            continue;
        }
        if (i + 4 > n) break;
        size_t seg = ((size_t)p[i + 2] << 8) | p[i + 3];
        if (seg < 2) return "corrupt JPEG (bad segment length)";
        if (m == 0xC4 && !jpeg_dht_ok(p + i + 4, seg - 2, n - (i + 4), &defined))
            return "corrupt JPEG (bad Huffman table)";
        if (m == 0xDA && !jpeg_sos_ok(p + i + 4, seg - 2, n - (i + 4), defined))
            return "corrupt JPEG (scan uses an undefined Huffman table)";
        i += 2 + seg;
        if (m == 0xDA) { /* start of scan: skip the entropy-coded data */
            while (i + 1 < n && !(p[i] == 0xFF && p[i + 1] != 0x00 &&
                                  !(p[i + 1] >= 0xD0 && p[i + 1] <= 0xD7)))
                i++;
        }
    }
    return "truncated JPEG (no end-of-image marker)";
}

static uint32_t be16(const uint8_t *p);
static uint32_t be32(const uint8_t *p);
static uint32_t le16(const uint8_t *p);
static uint32_t le32(const uint8_t *p);

/* stb_image also ignores a PNG that stops after its image data: walk the
 * chunks and require the IEND chunk, CRC included. */
static int png_complete(const uint8_t *p, size_t n) {
    size_t i = 8;
    while (i + 12 <= n) {
        uint32_t clen = be32(p + i);
        if (clen > 0x7fffffffu) return 0;
        if (!memcmp(p + i + 4, "IEND", 4)) return 1;
        i += 12 + (size_t)clen;
    }
    return 0;
}

/* GIF: walk to the end of the first image's data sub-blocks (the frame we
 * decode); stb_image reads missing bytes as zeros. */
static int gif_complete(const uint8_t *p, size_t n) {
    if (n < 13) return 0;
    size_t i = 13;
    if (p[10] & 0x80) i += 3u * (2u << (p[10] & 7)); /* global colour table */
    for (;;) {
        if (i >= n) return 0;
        if (p[i] == 0x21) { /* extension: label, then sub-blocks */
            i += 2;
            while (i < n && p[i]) i += 1 + (size_t)p[i];
            i++;
        } else if (p[i] == 0x2C) { /* image descriptor */
            if (i + 10 > n) return 0;
            uint8_t flags = p[i + 9];
            i += 10;
            if (flags & 0x80) i += 3u * (2u << (flags & 7)); /* local colour table */
            i++;                                              /* LZW minimum code size */
            while (i < n && p[i]) i += 1 + (size_t)p[i];
            return i < n; /* the zero-length terminator block is there */
        } else {
            return 0;
        }
    }
}

/* Uncompressed BMP: the pixel rows must fit in the file (stb_image reads
 * missing bytes as zeros). RLE and other compressions are left to stb. */
static int bmp_complete(const uint8_t *p, size_t n) {
    if (n < 30) return 0;
    uint32_t off = le32(p + 10), hsz = le32(p + 14);
    uint64_t w, h, bpp, comp = 0;
    if (hsz == 12) {
        w = le16(p + 18);
        h = le16(p + 20);
        bpp = le16(p + 24);
    } else {
        if (n < 34) return 0;
        w = (uint64_t)llabs((long long)(int32_t)le32(p + 18));
        h = (uint64_t)llabs((long long)(int32_t)le32(p + 22));
        bpp = le16(p + 28);
        comp = le32(p + 30);
    }
    if (comp != 0 && comp != 3 && comp != 6) return 1;
    uint64_t stride = ((w * bpp + 31) / 32) * 4;
    return (uint64_t)off + stride * h <= n;
}

static uint32_t be16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t be32(const uint8_t *p) { return be16(p) << 16 | be16(p + 2); }
static uint32_t le16(const uint8_t *p) { return (uint32_t)p[1] << 8 | p[0]; }
static uint32_t le32(const uint8_t *p) { return le16(p + 2) << 16 | le16(p); }

/* The dimensions a header claims, read before stb (which reports a huge
 * header only as a terse "too large" error). 0 if the header is too short. */
static int header_dims(img_format f, const uint8_t *p, size_t n, long long *w, long long *h) {
    switch (f) {
    case FMT_PNG:
        if (n < 24 || memcmp(p + 12, "IHDR", 4)) return 0;
        *w = be32(p + 16);
        *h = be32(p + 20);
        return 1;
    case FMT_GIF:
        if (n < 10) return 0;
        *w = le16(p + 6);
        *h = le16(p + 8);
        return 1;
    case FMT_BMP: {
        if (n < 26) return 0;
        uint32_t hsz = le32(p + 14);
        if (hsz == 12) {
            *w = le16(p + 18);
            *h = le16(p + 20);
        } else {
            *w = (int32_t)le32(p + 18);
            *h = llabs((long long)(int32_t)le32(p + 22)); /* negative: top-down */
        }
        return 1;
    }
    case FMT_JPEG: { /* walk the segments to the first start-of-frame */
        size_t i = 2;
        while (i + 4 <= n) {
            if (p[i] != 0xFF) return 0;
            uint8_t m = p[i + 1];
            if (m == 0xFF) {
                i++;
                continue;
            }
            if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
                if (i + 9 > n) return 0;
                *h = be16(p + i + 5);
                *w = be16(p + i + 7);
                return 1;
            }
            if (m == 0xD9 || m == 0xDA) return 0;
            i += 2 + be16(p + i + 2);
        }
        return 0;
    }
    default: return 0;
    }
}

int nn_image_alloc(nn_image *img, int w, int h) {
    img->w = img->h = 0;
    img->rgb = NULL;
    if (w <= 0 || h <= 0 || (uint64_t)w * (uint64_t)h > NN_IMAGE_MAX_PIXELS)
        return nn_set_error("image size %dx%d out of range (1 to %u pixels)", w, h,
                            NN_IMAGE_MAX_PIXELS);
    img->rgb = calloc((size_t)w * h, 3);
    if (!img->rgb) return nn_set_error("out of memory for a %dx%d image", w, h);
    img->w = w;
    img->h = h;
    return 0;
}

void nn_image_free(nn_image *img) {
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
    img->w = img->h = 0;
}

/* RGBA -> RGB composited over white: out = (c*a + 255*(255-a)) / 255. */
static void rgba_over_white(uint8_t *rgb, const uint8_t *rgba, size_t npix) {
    for (size_t i = 0; i < npix; i++) {
        unsigned a = rgba[4 * i + 3];
        for (int k = 0; k < 3; k++) {
            unsigned v = rgba[4 * i + k] * a + 255u * (255u - a);
            rgb[3 * i + k] = (uint8_t)((v + 127u) / 255u);
        }
    }
}

static int check_dims(const char *name, long long w, long long h) {
    if (w <= 0 || h <= 0) return nn_set_error("%s: image has a zero side (%lldx%lld)", name, w, h);
    if ((unsigned long long)w * (unsigned long long)h > IMAGE_MAX_PIXELS)
        return nn_set_error("%s: image too large (%lldx%lld; limit %u pixels)", name, w, h,
                            IMAGE_MAX_PIXELS);
    return 0;
}

static int load_webp(nn_image *img, const uint8_t *buf, size_t len, const char *name) {
    WebPBitstreamFeatures f;
    VP8StatusCode st = WebPGetFeatures(buf, len, &f);
    if (st == VP8_STATUS_NOT_ENOUGH_DATA)
        return nn_set_error("%s: truncated WebP header", name);
    if (st != VP8_STATUS_OK) return nn_set_error("%s: corrupt WebP header (status %d)", name, st);
    if (check_dims(name, f.width, f.height)) return -1;
    if (f.has_animation) return nn_set_error("%s: animated WebP is not supported", name);
    size_t npix = (size_t)f.width * f.height;
    if (nn_image_alloc(img, f.width, f.height))
        return nn_set_error("%s: out of memory for a %dx%d image", name, f.width, f.height);
    if (!f.has_alpha) {
        if (!WebPDecodeRGBInto(buf, len, img->rgb, npix * 3, f.width * 3)) {
            nn_image_free(img);
            return nn_set_error("%s: corrupt or truncated WebP data", name);
        }
        return 0;
    }
    uint8_t *rgba = malloc(npix * 4);
    if (!rgba) {
        nn_image_free(img);
        return nn_set_error("%s: out of memory for a %dx%d image", name, f.width, f.height);
    }
    if (!WebPDecodeRGBAInto(buf, len, rgba, npix * 4, f.width * 4)) {
        free(rgba);
        nn_image_free(img);
        return nn_set_error("%s: corrupt or truncated WebP data", name);
    }
    rgba_over_white(img->rgb, rgba, npix);
    free(rgba);
    return 0;
}

int nn_image_load_memory(nn_image *img, const uint8_t *buf, size_t len, const char *name) {
    img->w = img->h = 0;
    img->rgb = NULL;
    if (!name) name = "<memory>";
    if (len == 0 || !buf) return nn_set_error("%s: empty file", name);
    if (len > NN_IMAGE_MAX_FILE_BYTES || len > (size_t)INT32_MAX)
        return nn_set_error("%s: file too large (%zu bytes)", name, len);
    img_format f = sniff(buf, len);
    if (f == FMT_UNKNOWN)
        return nn_set_error("%s: unknown image format (not JPEG, PNG, BMP, GIF or WebP)", name);
    if (f == FMT_WEBP) return load_webp(img, buf, len, name);

    long long hw, hh;
    if (header_dims(f, buf, len, &hw, &hh) && check_dims(name, hw, hh)) return -1;
    /* before stb sees the file: its header parser has the Huffman-table bug */
    const char *why = f == FMT_JPEG ? jpeg_check(buf, len) : NULL;
    if (why) return nn_set_error("%s: %s", name, why);
    int w = 0, h = 0, comp = 0;
    if (!stbi_info_from_memory(buf, (int)len, &w, &h, &comp))
        return nn_set_error("%s: corrupt or truncated %s header (%s)", name, fmt_name(f),
                            stbi_failure_reason() ? stbi_failure_reason() : "?");
    if (check_dims(name, w, h)) return -1;
    if (f == FMT_PNG && !png_complete(buf, len))
        return nn_set_error("%s: truncated PNG (no IEND chunk)", name);
    if (f == FMT_GIF && !gif_complete(buf, len))
        return nn_set_error("%s: truncated GIF (first image data incomplete)", name);
    if (f == FMT_BMP && !bmp_complete(buf, len))
        return nn_set_error("%s: truncated BMP (pixel data past the end of the file)", name);

    /* Always decode to RGBA: palette+tRNS, grey+alpha and GIF transparency all
     * come out the same way, and opaque images have alpha 255 (a no-op). */
    int dw = 0, dh = 0, dc = 0;
    uint8_t *rgba = stbi_load_from_memory(buf, (int)len, &dw, &dh, &dc, 4);
    if (!rgba)
        return nn_set_error("%s: corrupt or truncated %s data (%s)", name, fmt_name(f),
                            stbi_failure_reason() ? stbi_failure_reason() : "?");
    if (dw != w || dh != h || check_dims(name, dw, dh)) {
        stbi_image_free(rgba);
        return nn_set_error("%s: corrupt %s (header says %dx%d, data %dx%d)", name, fmt_name(f), w,
                            h, dw, dh);
    }
    if (nn_image_alloc(img, dw, dh)) {
        stbi_image_free(rgba);
        return nn_set_error("%s: out of memory for a %dx%d image", name, dw, dh);
    }
    rgba_over_white(img->rgb, rgba, (size_t)dw * dh);
    stbi_image_free(rgba);
    return 0;
}

int nn_image_load(nn_image *img, const char *path) {
    img->w = img->h = 0;
    img->rgb = NULL;
    uint8_t *buf;
    size_t len;
    if (nn_file_read(path, &buf, &len, NN_IMAGE_MAX_FILE_BYTES)) return -1;
    int r = nn_image_load_memory(img, buf, len, path);
    free(buf);
    return r;
}

/* ---- resizing ---- */

/* Triangle (bilinear) when enlarging an axis, box (area average) when
 * shrinking it: both are exact copies at scale 1. */
static stbir_filter axis_filter(double out, double in) {
    return out > in ? STBIR_FILTER_TRIANGLE : STBIR_FILTER_BOX;
}

/* Resamples region [s0,s1]x[t0,t1] (in units of the source size) of src
 * into a new image *out; rw x rh is the region's size in source pixels. */
static int resize_region(nn_image *out, const nn_image *src, int w, int h, double rw, double rh,
                         float s0, float t0, float s1, float t1) {
    if (nn_image_alloc(out, w, h)) return -1;
    if (!stbir_resize_region(src->rgb, src->w, src->h, src->w * 3, out->rgb, w, h, w * 3,
                             STBIR_TYPE_UINT8, 3, STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_CLAMP,
                             STBIR_EDGE_CLAMP, axis_filter(w, rw), axis_filter(h, rh),
                             STBIR_COLORSPACE_LINEAR, NULL, s0, t0, s1, t1)) {
        nn_image_free(out);
        return nn_set_error("image resize %dx%d -> %dx%d failed", src->w, src->h, w, h);
    }
    return 0;
}

/* dst may be src: the old pixels are freed after the new ones exist. */
static void image_replace(nn_image *dst, const nn_image *src, nn_image *out) {
    if (dst == src) nn_image_free(dst);
    *dst = *out;
}

int nn_image_resize(nn_image *dst, const nn_image *src, int w, int h) {
    if (!src || !src->rgb || src->w <= 0 || src->h <= 0)
        return nn_set_error("nn_image_resize: empty source image");
    nn_image out;
    if (resize_region(&out, src, w, h, src->w, src->h, 0.f, 0.f, 1.f, 1.f)) return -1;
    image_replace(dst, src, &out);
    return 0;
}

int nn_image_crop_resize(nn_image *dst, const nn_image *src, float x0, float y0, float x1,
                         float y1, int w, int h) {
    if (!src || !src->rgb || src->w <= 0 || src->h <= 0)
        return nn_set_error("nn_image_crop_resize: empty source image");
    if (!isfinite(x0) || !isfinite(y0) || !isfinite(x1) || !isfinite(y1) || !(x1 > x0) ||
        !(y1 > y0))
        return nn_set_error("crop box (%g,%g)-(%g,%g) is empty or not finite", x0, y0, x1, y1);
    double cw = (double)x1 - x0, ch = (double)y1 - y0;
    /* Copy the box plus a margin for the filter support (box filter: half an
     * output pixel in input pixels; triangle: one input pixel) into a buffer,
     * replicating edge pixels, then resample the exact sub-region of it. */
    int mx = (int)ceil(fmax(1.0, 0.5 * cw / (w > 0 ? w : 1))) + 1;
    int my = (int)ceil(fmax(1.0, 0.5 * ch / (h > 0 ? h : 1))) + 1;
    double bx0 = floor(x0) - mx, by0 = floor(y0) - my;
    double bx1 = ceil(x1) + mx, by1 = ceil(y1) + my;
    double bw = bx1 - bx0, bh = by1 - by0;
    if (bw * bh > (double)NN_IMAGE_MAX_PIXELS || fabs(bx0) > 1e8 || fabs(by0) > 1e8)
        return nn_set_error("crop box (%g,%g)-(%g,%g) too large", x0, y0, x1, y1);
    if (w <= 0 || h <= 0) return nn_set_error("crop output size %dx%d out of range", w, h);
    nn_image buf;
    if (nn_image_alloc(&buf, (int)bw, (int)bh)) return -1;
    int ix0 = (int)bx0, iy0 = (int)by0;
    for (int y = 0; y < buf.h; y++) {
        int sy = iy0 + y;
        sy = sy < 0 ? 0 : sy >= src->h ? src->h - 1 : sy;
        const uint8_t *srow = src->rgb + (size_t)sy * src->w * 3;
        uint8_t *drow = buf.rgb + (size_t)y * buf.w * 3;
        int x = 0;
        /* left of the image, inside, right of the image */
        for (; x < buf.w && ix0 + x < 0; x++) memcpy(drow + 3 * x, srow, 3);
        int in_end = src->w - ix0; /* first x with ix0 + x >= src->w */
        if (in_end > buf.w) in_end = buf.w;
        if (in_end > x) {
            memcpy(drow + 3 * x, srow + 3 * (size_t)(ix0 + x), 3 * (size_t)(in_end - x));
            x = in_end;
        }
        for (; x < buf.w; x++) memcpy(drow + 3 * x, srow + 3 * (size_t)(src->w - 1), 3);
    }
    nn_image out;
    int r = resize_region(&out, &buf, w, h, cw, ch, (float)((x0 - bx0) / bw),
                          (float)((y0 - by0) / bh), (float)((x1 - bx0) / bw),
                          (float)((y1 - by0) / bh));
    nn_image_free(&buf);
    if (r) return -1;
    image_replace(dst, src, &out);
    return 0;
}

void nn_image_to_floats(float *dst, const nn_image *img, float scale, float offset) {
    size_t n = (size_t)img->w * img->h * 3;
    for (size_t i = 0; i < n; i++) dst[i] = img->rgb[i] * scale + offset;
}

/* ---- writing ---- */

typedef struct {
    uint8_t *data;
    size_t len, cap;
    int oom;
} membuf;

static void membuf_put(void *ctx, void *data, int size) {
    membuf *m = ctx;
    if (m->oom || size <= 0) return;
    if (m->len + (size_t)size > m->cap) {
        size_t cap = m->cap ? m->cap : 65536;
        while (cap < m->len + (size_t)size) cap *= 2;
        uint8_t *p = realloc(m->data, cap);
        if (!p) {
            m->oom = 1;
            return;
        }
        m->data = p;
        m->cap = cap;
    }
    memcpy(m->data + m->len, data, (size_t)size);
    m->len += (size_t)size;
}

static int check_image(const nn_image *img, const char *what) {
    if (!img || !img->rgb || img->w <= 0 || img->h <= 0 ||
        (uint64_t)img->w * img->h > NN_IMAGE_MAX_PIXELS)
        return nn_set_error("%s: empty or invalid image", what);
    return 0;
}

/* libjpeg errors: longjmp back with the message instead of exit(). */
typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_err_exit(j_common_ptr c) {
    jpeg_err *e = (jpeg_err *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jb, 1);
}

static void jpeg_err_quiet(j_common_ptr c, int level) {
    (void)c;
    (void)level;
}

/* stb_image_write's JPEG encoder has undefined behaviour (signed shift
 * overflow, seen by UBSan) and only two chroma modes; libjpeg-turbo it is. */
int nn_image_encode_jpeg(const nn_image *img, int quality, uint8_t **out, size_t *len) {
    *out = NULL;
    *len = 0;
    if (check_image(img, "nn_image_encode_jpeg")) return -1;
    const int q = quality <= 0 ? 95 : quality > 100 ? 100 : quality;
    struct jpeg_compress_struct ci;
    jpeg_err err;
    unsigned char *mem = NULL;
    unsigned long mlen = 0;
    ci.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = jpeg_err_exit;
    err.pub.emit_message = jpeg_err_quiet;
    if (setjmp(err.jb)) {
        jpeg_destroy_compress(&ci);
        free(mem);
        return nn_set_error("JPEG encoding of a %dx%d image failed: %s", img->w, img->h, err.msg);
    }
    jpeg_create_compress(&ci);
    jpeg_mem_dest(&ci, &mem, &mlen);
    ci.image_width = (JDIMENSION)img->w;
    ci.image_height = (JDIMENSION)img->h;
    ci.input_components = 3;
    ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, q, TRUE);
    if (q >= 90) ci.comp_info[0].h_samp_factor = ci.comp_info[0].v_samp_factor = 1; /* 4:4:4 */
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = img->rgb + (size_t)ci.next_scanline * img->w * 3;
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    *out = mem;
    *len = mlen;
    return 0;
}

static int has_ext(const char *path, const char *ext) {
    size_t n = strlen(path), e = strlen(ext);
    return n > e && strcasecmp(path + n - e, ext) == 0;
}

int nn_image_write(const nn_image *img, const char *path, int jpeg_quality) {
    if (check_image(img, path)) return -1;
    membuf m = {0};
    if (has_ext(path, ".png")) {
        if (!stbi_write_png_to_func(membuf_put, &m, img->w, img->h, 3, img->rgb, img->w * 3) ||
            m.oom) {
            free(m.data);
            return nn_set_error("%s: PNG encoding failed", path);
        }
    } else if (has_ext(path, ".jpg") || has_ext(path, ".jpeg")) {
        if (nn_image_encode_jpeg(img, jpeg_quality, &m.data, &m.len)) {
            char why[512];
            snprintf(why, sizeof why, "%s", nn_error());
            return nn_set_error("%s: %s", path, why);
        }
    } else {
        return nn_set_error("%s: unknown image extension (use .png, .jpg or .jpeg)", path);
    }
    int r = nn_file_write_atomic(path, m.data, m.len);
    free(m.data);
    return r;
}
