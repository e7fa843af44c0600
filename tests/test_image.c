/* test_image.c — image I/O: round trips of every format (PNG, JPEG, WebP, BMP, GIF, grey,
 * grey+alpha, RGBA, 16-bit), real dataset files, every failure mode, resize and crop. */

#include "nnmask.h"
#include "testutil.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include <webp/encode.h>
#include <zlib.h>

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#pragma GCC diagnostic ignored "-Wunused-function" /* stb: static, declared, never defined */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb_image_write.h>
#pragma GCC diagnostic pop

#include "tu_files.h"

/* A deterministic test picture: smooth gradients plus a little texture. */
static void make_picture(nn_image *im, int w, int h) {
    if (nn_image_alloc(im, w, h)) nn_fatal("%s", nn_error());
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = im->rgb + 3 * ((size_t)y * w + x);
            p[0] = (uint8_t)(255 * x / (w - 1));
            p[1] = (uint8_t)(255 * y / (h - 1));
            p[2] = (uint8_t)(((x * 7 + y * 13) & 63) + 96);
        }
}

static int same_pixels(const nn_image *a, const nn_image *b) {
    return a->w == b->w && a->h == b->h && !memcmp(a->rgb, b->rgb, (size_t)a->w * a->h * 3);
}

static double mean_abs_diff(const nn_image *a, const nn_image *b) {
    if (a->w != b->w || a->h != b->h) return 1e9;
    double s = 0;
    size_t n = (size_t)a->w * a->h * 3;
    for (size_t i = 0; i < n; i++) s += abs((int)a->rgb[i] - (int)b->rgb[i]);
    return s / n;
}

/* error must name the file and contain the reason */
#define CHECK_ERR(call, file, reason)                                                        \
    do {                                                                                     \
        int _r = (call);                                                                     \
        CHECK(_r == -1, "%s should fail", #call);                                            \
        CHECK(strstr(nn_error(), file) != NULL, "error '%s' should name %s", nn_error(), file); \
        CHECK(strstr(nn_error(), reason) != NULL, "error '%s' should say '%s'", nn_error(),   \
              reason);                                                                       \
    } while (0)

/* ---- stb_image_write into memory ---- */
#include "tu_blob.h"

/* ---- hand-made PNG (16-bit, huge headers) ---- */
static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void png_chunk(blob *b, const char *type, const uint8_t *data, uint32_t len) {
    uint8_t hdr[8];
    put32(hdr, len);
    memcpy(hdr + 4, type, 4);
    blob_put(b, hdr, 8);
    if (len) blob_put(b, (void *)data, (int)len);
    uLong crc = crc32(0, (const Bytef *)type, 4);
    if (len) crc = crc32(crc, data, len);
    uint8_t c[4];
    put32(c, (uint32_t)crc);
    blob_put(b, c, 4);
}

/* PNG with IHDR (w, h, depth, colour type) and raw rows (filter byte included). */
static blob make_png(uint32_t w, uint32_t h, int depth, int ctype, const uint8_t *raw,
                     size_t rawlen) {
    blob b = {0};
    blob_put(&b, "\x89PNG\r\n\x1a\n", 8);
    uint8_t ihdr[13];
    put32(ihdr, w);
    put32(ihdr + 4, h);
    ihdr[8] = (uint8_t)depth;
    ihdr[9] = (uint8_t)ctype;
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    png_chunk(&b, "IHDR", ihdr, 13);
    if (raw) {
        uLongf zlen = compressBound(rawlen);
        uint8_t *z = malloc(zlen);
        compress(z, &zlen, raw, rawlen);
        png_chunk(&b, "IDAT", z, (uint32_t)zlen);
        free(z);
    }
    png_chunk(&b, "IEND", NULL, 0);
    return b;
}

/* ---- hand-made GIF: LZW with 9-bit codes, a clear code every 250 literals ---- */
typedef struct {
    blob *b;
    uint8_t block[255];
    int nblock;
    uint32_t acc;
    int nbits;
} gif_bits;

static void gif_byte(gif_bits *g, uint8_t v) {
    g->block[g->nblock++] = v;
    if (g->nblock == 255) {
        uint8_t n = 255;
        blob_put(g->b, &n, 1);
        blob_put(g->b, g->block, 255);
        g->nblock = 0;
    }
}

static void gif_code(gif_bits *g, unsigned code) {
    g->acc |= code << g->nbits;
    g->nbits += 9;
    while (g->nbits >= 8) {
        gif_byte(g, (uint8_t)g->acc);
        g->acc >>= 8;
        g->nbits -= 8;
    }
}

/* 256-colour GIF; palette[i] = (i, 255-i, 7i); index (3x+5y)&255; index `transp`
 * (or -1) transparent. */
static blob make_gif(int w, int h, int transp) {
    blob b = {0};
    blob_put(&b, "GIF89a", 6);
    uint8_t lsd[7] = {(uint8_t)w, (uint8_t)(w >> 8), (uint8_t)h, (uint8_t)(h >> 8), 0xF7, 0, 0};
    blob_put(&b, lsd, 7);
    for (int i = 0; i < 256; i++) {
        uint8_t c[3] = {(uint8_t)i, (uint8_t)(255 - i), (uint8_t)(7 * i)};
        blob_put(&b, c, 3);
    }
    if (transp >= 0) {
        uint8_t gce[8] = {0x21, 0xF9, 4, 1, 0, 0, (uint8_t)transp, 0};
        blob_put(&b, gce, 8);
    }
    uint8_t id[10] = {0x2C, 0, 0, 0, 0, (uint8_t)w, (uint8_t)(w >> 8), (uint8_t)h,
                      (uint8_t)(h >> 8), 0};
    blob_put(&b, id, 10);
    uint8_t mcs = 8;
    blob_put(&b, &mcs, 1);
    gif_bits g = {&b, {0}, 0, 0, 0};
    gif_code(&g, 256);
    int run = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            gif_code(&g, (unsigned)((3 * x + 5 * y) & 255));
            if (++run == 250) {
                gif_code(&g, 256);
                run = 0;
            }
        }
    gif_code(&g, 257);
    if (g.nbits) gif_byte(&g, (uint8_t)g.acc);
    if (g.nblock) {
        uint8_t n = (uint8_t)g.nblock;
        blob_put(&b, &n, 1);
        blob_put(&b, g.block, (int)g.nblock);
    }
    uint8_t tail[2] = {0, 0x3B};
    blob_put(&b, tail, 2);
    return b;
}

static uint8_t over_white(uint8_t c, uint8_t a) {
    return (uint8_t)((c * a + 255 * (255 - a) + 127) / 255);
}

static void test_png_jpeg_bmp_roundtrip(void) {
    nn_image im, back;
    make_picture(&im, 37, 23);
    CHECK(nn_image_write(&im, tpath("a.png"), 0) == 0, "%s", nn_error());
    CHECK(nn_image_load(&back, tpath("a.png")) == 0, "%s", nn_error());
    CHECK(same_pixels(&im, &back), "PNG round trip is not exact");
    nn_image_free(&back);

    const char *jpgs[] = {"a.jpg", "a.jpeg", "A.JPG"};
    for (int i = 0; i < 3; i++) {
        CHECK(nn_image_write(&im, tpath(jpgs[i]), 95) == 0, "%s", nn_error());
        CHECK(nn_image_load(&back, tpath(jpgs[i])) == 0, "%s", nn_error());
        double d = mean_abs_diff(&im, &back);
        CHECK(d < 3.0, "%s: JPEG q95 mean abs diff %.2f", jpgs[i], d);
        nn_image_free(&back);
    }

    /* in-memory JPEG: lower quality is smaller and further off */
    uint8_t *j95, *j20;
    size_t n95, n20;
    nn_image big;
    make_picture(&big, 128, 96);
    CHECK(nn_image_encode_jpeg(&big, 95, &j95, &n95) == 0, "%s", nn_error());
    CHECK(nn_image_encode_jpeg(&big, 20, &j20, &n20) == 0, "%s", nn_error());
    CHECK(n20 < n95, "q20 %zu bytes should be smaller than q95 %zu", n20, n95);
    nn_image b95, b20;
    CHECK(nn_image_load_memory(&b95, j95, n95, "q95") == 0, "%s", nn_error());
    CHECK(nn_image_load_memory(&b20, j20, n20, "q20") == 0, "%s", nn_error());
    double d95 = mean_abs_diff(&big, &b95), d20 = mean_abs_diff(&big, &b20);
    CHECK(d95 < d20 && d95 < 2.5, "JPEG q95 diff %.2f, q20 diff %.2f", d95, d20);
    free(j95);
    free(j20);
    nn_image_free(&b95);
    nn_image_free(&b20);
    nn_image_free(&big);

    /* BMP (24-bit, written by stb) is exact */
    blob b = {0};
    CHECK(stbi_write_bmp_to_func(blob_put, &b, im.w, im.h, 3, im.rgb), "bmp write");
    write_file(tpath("a.bmp"), b.d, b.n);
    CHECK(nn_image_load(&back, tpath("a.bmp")) == 0, "%s", nn_error());
    CHECK(same_pixels(&im, &back), "BMP round trip is not exact");
    nn_image_free(&back);
    free(b.d);

    /* unknown extension, missing directory */
    CHECK_ERR(nn_image_write(&im, tpath("a.tiff"), 90), "a.tiff", "unknown image extension");
    CHECK_ERR(nn_image_write(&im, tpath("no/such/dir/a.png"), 90), "no/such/dir", "");
    nn_image_free(&im);
}

static void test_webp(void) {
    nn_image im, back;
    make_picture(&im, 41, 29);
    uint8_t *out = NULL;
    size_t n = WebPEncodeLosslessRGB(im.rgb, im.w, im.h, im.w * 3, &out);
    CHECK(n > 0, "WebPEncodeLosslessRGB failed");
    write_file(tpath("ll.webp"), out, n);
    WebPFree(out);
    CHECK(nn_image_load(&back, tpath("ll.webp")) == 0, "%s", nn_error());
    CHECK(same_pixels(&im, &back), "lossless WebP round trip is not exact");
    nn_image_free(&back);

    n = WebPEncodeRGB(im.rgb, im.w, im.h, im.w * 3, 95.f, &out);
    CHECK(n > 0, "WebPEncodeRGB failed");
    write_file(tpath("lossy.webp"), out, n);
    WebPFree(out);
    CHECK(nn_image_load(&back, tpath("lossy.webp")) == 0, "%s", nn_error());
    double d = mean_abs_diff(&im, &back);
    CHECK(d < 7.0, "lossy WebP q95 mean abs diff %.2f", d);
    nn_image_free(&back);

    /* WebP with alpha: composited over white */
    int w = 16, h = 8;
    uint8_t rgba[16 * 8 * 4];
    for (int i = 0; i < w * h; i++) {
        rgba[4 * i + 0] = (uint8_t)(i * 3);
        rgba[4 * i + 1] = (uint8_t)(200 - i);
        rgba[4 * i + 2] = 0;
        rgba[4 * i + 3] = (uint8_t)(i % 4 == 0 ? 0 : i % 4 == 1 ? 255 : 100 + i);
    }
    n = WebPEncodeLosslessRGBA(rgba, w, h, w * 4, &out);
    CHECK(n > 0, "WebPEncodeLosslessRGBA failed");
    CHECK(nn_image_load_memory(&back, out, n, "alpha.webp") == 0, "%s", nn_error());
    WebPFree(out);
    int bad = 0;
    for (int i = 0; i < w * h && back.rgb; i++)
        for (int k = 0; k < 3; k++)
            bad += back.rgb[3 * i + k] != over_white(rgba[4 * i + k], rgba[4 * i + 3]);
    CHECK(back.w == w && back.h == h && bad == 0, "WebP alpha: %d values differ", bad);
    nn_image_free(&back);
    nn_image_free(&im);
}

static void test_grey_alpha_16bit(void) {
    int w = 19, h = 11;
    uint8_t px[19 * 11 * 4];
    for (int i = 0; i < w * h * 4; i++) px[i] = (uint8_t)(i * 37 + (i >> 3));
    /* alpha extremes present */
    px[3] = 0;
    px[7] = 255;
    for (int comp = 1; comp <= 4; comp++) {
        blob b = {0};
        CHECK(stbi_write_png_to_func(blob_put, &b, w, h, comp, px, w * comp), "png write");
        nn_image im;
        char name[32];
        snprintf(name, sizeof name, "comp%d.png", comp);
        CHECK(nn_image_load_memory(&im, b.d, b.n, name) == 0, "%s", nn_error());
        int bad = 0;
        for (int i = 0; i < w * h && im.rgb; i++) {
            const uint8_t *s = px + (size_t)i * comp;
            uint8_t want[3];
            if (comp == 1) want[0] = want[1] = want[2] = s[0];
            if (comp == 2) want[0] = want[1] = want[2] = over_white(s[0], s[1]);
            if (comp == 3) memcpy(want, s, 3);
            if (comp == 4)
                for (int k = 0; k < 3; k++) want[k] = over_white(s[k], s[3]);
            bad += memcmp(im.rgb + 3 * i, want, 3) != 0;
        }
        CHECK(im.w == w && im.h == h && bad == 0, "%s: %d pixels differ", name, bad);
        nn_image_free(&im);
        free(b.d);
    }
    /* fully transparent black pixel becomes white */
    {
        uint8_t one[4] = {0, 0, 0, 0};
        blob b = {0};
        stbi_write_png_to_func(blob_put, &b, 1, 1, 4, one, 4);
        nn_image im;
        CHECK(nn_image_load_memory(&im, b.d, b.n, "transparent.png") == 0, "%s", nn_error());
        CHECK(im.rgb && im.rgb[0] == 255 && im.rgb[1] == 255 && im.rgb[2] == 255,
              "transparent black should be white");
        nn_image_free(&im);
        free(b.d);
    }
    /* 16-bit RGB and 16-bit grey PNG (values b*257 become exactly b) */
    for (int ctype = 0; ctype <= 2; ctype += 2) {
        int ch = ctype == 2 ? 3 : 1;
        size_t stride = 1 + (size_t)w * ch * 2;
        uint8_t *raw = calloc(stride * h, 1);
        for (int y = 0; y < h; y++)
            for (int i = 0; i < w * ch; i++) {
                uint8_t v = (uint8_t)(y * 20 + i * 3);
                raw[y * stride + 1 + 2 * i] = v; /* big-endian v*257 */
                raw[y * stride + 2 + 2 * i] = v;
            }
        blob b = make_png((uint32_t)w, (uint32_t)h, 16, ctype, raw, stride * h);
        nn_image im;
        CHECK(nn_image_load_memory(&im, b.d, b.n, "16bit.png") == 0, "%s", nn_error());
        int bad = 0;
        for (int y = 0; y < h && im.rgb; y++)
            for (int x = 0; x < w; x++)
                for (int k = 0; k < 3; k++) {
                    uint8_t want = (uint8_t)(y * 20 + (x * ch + (ch == 3 ? k : 0)) * 3);
                    bad += im.rgb[3 * ((size_t)y * w + x) + k] != want;
                }
        CHECK(im.w == w && im.h == h && bad == 0, "16-bit PNG colour type %d: %d values differ",
              ctype, bad);
        nn_image_free(&im);
        free(b.d);
        free(raw);
    }
}

static void test_gif(void) {
    for (int t = -1; t <= 10; t += 11) {
        int w = 40, h = 30; /* 1200 pixels: several clear codes and sub-blocks */
        blob b = make_gif(w, h, t);
        write_file(tpath("a.gif"), b.d, b.n);
        nn_image im;
        CHECK(nn_image_load(&im, tpath("a.gif")) == 0, "%s", nn_error());
        int bad = 0;
        for (int y = 0; y < h && im.rgb; y++)
            for (int x = 0; x < w; x++) {
                int i = (3 * x + 5 * y) & 255;
                uint8_t want[3] = {(uint8_t)i, (uint8_t)(255 - i), (uint8_t)(7 * i)};
                if (i == t) want[0] = want[1] = want[2] = 255;
                bad += memcmp(im.rgb + 3 * ((size_t)y * w + x), want, 3) != 0;
            }
        CHECK(im.w == w && im.h == h && bad == 0, "GIF (transparent %d): %d pixels differ", t,
              bad);
        nn_image_free(&im);
        free(b.d);
    }
}

/* ---- the real dataset ---- */
static int read_whole(const char *path, uint8_t **d, size_t *n) {
    return nn_file_read(path, d, n, (size_t)1 << 30);
}

static void test_dataset(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/data/mask", tu_shared());
    struct stat st;
    if (stat(dir, &st) != 0) {
        printf("test_image: %s absent, dataset checks skipped\n", dir);
        return;
    }
    static const struct {
        const char *file;
        int w, h; /* 0: not checked */
    } files[] = {
        {"with_mask/00001_0323.jpg", 621, 780},
        {"without_mask/00000_0.jpg", 0, 0},
        {"without_mask/00001_0_0_aidai_0014.jpg", 0, 0},
        {"with_mask/01449_black1.jpg", 425, 425},        /* progressive */
        {"with_mask/01477_with_mask001.jpg", 800, 480},  /* EXIF */
        {"with_mask/00000_0129.png", 0, 0},              /* RGB PNG */
        {"with_mask/01604_with_mask129.png", 458, 458},  /* RGBA */
        {"with_mask/01344_Screenshot_251_.png", 459, 534},
        {"with_mask/01490_with_mask014.png", 1100, 1100}, /* palette + transparency */
        {"with_mask/01450_black10.webp", 388, 280},
        {"with_mask/01459_black19.webp", 390, 280},
        {"with_mask/01464_black3.webp", 340, 510},
        {"../imagenet/bird.bmp", 512, 343},
    };
    int loaded = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, files[i].file);
        if (stat(path, &st) != 0) {
            printf("test_image: %s absent, skipped\n", path);
            continue;
        }
        nn_image im;
        int r = nn_image_load(&im, path);
        CHECK(r == 0, "%s", nn_error());
        if (r) continue;
        loaded++;
        if (files[i].w)
            CHECK(im.w == files[i].w && im.h == files[i].h, "%s: %dx%d, expected %dx%d", path,
                  im.w, im.h, files[i].w, files[i].h);
        /* a real photo is not flat */
        double s = 0, s2 = 0;
        size_t n = (size_t)im.w * im.h * 3;
        for (size_t k = 0; k < n; k++) {
            s += im.rgb[k];
            s2 += (double)im.rgb[k] * im.rgb[k];
        }
        double var = s2 / n - (s / n) * (s / n);
        CHECK(var > 100, "%s: pixel variance %.1f (flat image?)", path, var);
        if (strstr(files[i].file, "01490")) /* transparent corner composited to white */
            CHECK(im.rgb[0] == 255 && im.rgb[1] == 255 && im.rgb[2] == 255,
                  "%s: transparent corner is (%d,%d,%d), expected white", path, im.rgb[0],
                  im.rgb[1], im.rgb[2]);
        /* load_memory gives the same pixels */
        uint8_t *d;
        size_t dn;
        if (read_whole(path, &d, &dn) == 0) {
            nn_image m;
            CHECK(nn_image_load_memory(&m, d, dn, path) == 0, "%s", nn_error());
            CHECK(same_pixels(&im, &m), "%s: load and load_memory differ", path);
            nn_image_free(&m);
            /* truncated copies of real files fail with the name and a reason */
            size_t cuts[3] = {dn / 2, dn - 2, 40};
            for (int c = 0; c < 3; c++) {
                write_file(tpath("cut.img"), d, cuts[c]);
                nn_image t;
                int rr = nn_image_load(&t, tpath("cut.img"));
                CHECK(rr == -1, "%s cut to %zu bytes should fail", path, cuts[c]);
                CHECK(strstr(nn_error(), "cut.img") && strstr(nn_error(), "trunc"),
                      "%s cut to %zu: error '%s' should name the file and say truncated", path,
                      cuts[c], nn_error());
                CHECK(t.rgb == NULL && t.w == 0, "failed load leaves an empty image");
            }
            free(d);
        }
        nn_image_free(&im);
    }
    printf("test_image: %d dataset files loaded\n", loaded);
}

static void test_failures(void) {
    nn_image im;
    CHECK_ERR(nn_image_load(&im, tpath("missing.jpg")), "missing.jpg", "cannot open");
    CHECK(im.rgb == NULL, "failed load leaves rgb NULL");

    write_file(tpath("empty.png"), "", 0);
    CHECK_ERR(nn_image_load(&im, tpath("empty.png")), "empty.png", "empty");

    CHECK_ERR(nn_image_load(&im, tmpdir), tmpdir, "not a regular file");

    const char *text = "label,file\nwith_mask,a.jpg\n";
    write_file(tpath("notes.txt"), text, strlen(text));
    CHECK_ERR(nn_image_load(&im, tpath("notes.txt")), "notes.txt", "unknown image format");

    nn_rng r;
    nn_rng_seed(&r, 42);
    uint8_t rnd[4096];
    for (size_t i = 0; i < sizeof rnd; i++) rnd[i] = (uint8_t)nn_rng_u32(&r);
    rnd[0] = 0x17; /* no magic by chance */
    write_file(tpath("random.bin"), rnd, sizeof rnd);
    CHECK_ERR(nn_image_load(&im, tpath("random.bin")), "random.bin", "unknown image format");

    /* random bytes behind each magic number: errors, no crash */
    static const char *magics[] = {"\xFF\xD8\xFF\xE0", "\x89PNG\r\n\x1a\n", "BM", "GIF89a",
                                   "RIFF\x10\x00\x00\x00WEBPVP8 "};
    static const size_t mlen[] = {4, 8, 2, 6, 16};
    for (int m = 0; m < 5; m++) {
        memcpy(rnd, magics[m], mlen[m]);
        int rr = nn_image_load_memory(&im, rnd, sizeof rnd, "junk-with-magic");
        CHECK(rr == -1 || (im.w > 0 && im.rgb), "junk with magic %d", m);
        if (rr == -1)
            CHECK(strstr(nn_error(), "junk-with-magic") != NULL, "error '%s' names no file",
                  nn_error());
        nn_image_free(&im);
    }

    /* a scan that uses a Huffman table no DHT defined (stb_image 2.27 decodes
     * with uninitialised tables and reads out of bounds; found by the fuzzer) */
    {
        nn_image pic;
        make_picture(&pic, 40, 24);
        uint8_t *jpg = NULL;
        size_t jn = 0;
        CHECK(nn_image_encode_jpeg(&pic, 85, &jpg, &jn) == 0, "encode: %s", nn_error());
        size_t sos = 0;
        for (size_t k = 2; jpg && k + 1 < jn; k++)
            if (jpg[k] == 0xFF && jpg[k + 1] == 0xDA) {
                sos = k;
                break;
            }
        CHECK(sos > 0, "no SOS marker in our own JPEG");
        if (sos) {
            CHECK(nn_image_load_memory(&im, jpg, jn, "ok.jpg") == 0, "unmodified JPEG: %s", nn_error());
            nn_image_free(&im);
            jpg[sos + 6] = (uint8_t)((jpg[sos + 6] & 0xF0) | 2); /* component 1: AC table 2 */
            CHECK_ERR(nn_image_load_memory(&im, jpg, jn, "undef-huff.jpg"), "undef-huff.jpg",
                      "undefined Huffman table");
        }
        free(jpg);
        nn_image_free(&pic);
    }

    /* headers claiming 100000x100000: refused before any allocation */
    blob png = make_png(100000, 100000, 8, 2, NULL, 0);
    write_file(tpath("huge.png"), png.d, png.n);
    CHECK_ERR(nn_image_load(&im, tpath("huge.png")), "huge.png", "image too large (100000x100000");
    free(png.d);
    uint8_t bmp[54] = {'B', 'M'};
    bmp[10] = 54;   /* pixel data offset */
    bmp[14] = 40;   /* BITMAPINFOHEADER */
    int32_t big = 100000;
    memcpy(bmp + 18, &big, 4);
    memcpy(bmp + 22, &big, 4);
    bmp[26] = 1;  /* planes */
    bmp[28] = 24; /* bits per pixel */
    write_file(tpath("huge.bmp"), bmp, sizeof bmp);
    CHECK_ERR(nn_image_load(&im, tpath("huge.bmp")), "huge.bmp", "image too large (100000x100000");
    /* 9000x9000 = 81 Mpixel: over NN_IMAGE_MAX_PIXELS but each side is fine */
    png = make_png(9000, 9000, 8, 2, NULL, 0);
    CHECK_ERR(nn_image_load_memory(&im, png.d, png.n, "wide.png"), "wide.png", "image too large");
    free(png.d);
    /* WebP VP8L header claiming 16384x16384 (268 Mpixel) */
    {
        uint8_t wp[30] = {'R', 'I', 'F', 'F', 22, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8', 'L',
                          10, 0, 0, 0, 0x2f};
        uint32_t bits = (16383u) | (16383u << 14);
        memcpy(wp + 21, &bits, 4);
        CHECK_ERR(nn_image_load_memory(&im, wp, sizeof wp, "huge.webp"), "huge.webp",
                  "image too large (16384x16384");
    }
    /* zero-width PNG */
    png = make_png(0, 10, 8, 2, NULL, 0);
    CHECK_ERR(nn_image_load_memory(&im, png.d, png.n, "zero.png"), "zero.png", "");
    free(png.d);

    /* truncated synthetic files (the dataset test cuts real ones too) */
    nn_image pic;
    make_picture(&pic, 64, 48);
    uint8_t *jpg;
    size_t jn;
    CHECK(nn_image_encode_jpeg(&pic, 90, &jpg, &jn) == 0, "%s", nn_error());
    CHECK_ERR(nn_image_load_memory(&im, jpg, jn * 2 / 3, "cut.jpg"), "cut.jpg", "truncated JPEG");
    CHECK_ERR(nn_image_load_memory(&im, jpg, jn - 2, "noeoi.jpg"), "noeoi.jpg", "truncated JPEG");
    CHECK_ERR(nn_image_load_memory(&im, jpg, 100, "hdr.jpg"), "hdr.jpg", "trunc");
    free(jpg);
    blob b = {0};
    stbi_write_png_to_func(blob_put, &b, pic.w, pic.h, 3, pic.rgb, pic.w * 3);
    CHECK_ERR(nn_image_load_memory(&im, b.d, b.n / 2, "cut.png"), "cut.png", "trunc");
    CHECK_ERR(nn_image_load_memory(&im, b.d, b.n - 12, "noiend.png"), "noiend.png", "trunc");
    CHECK_ERR(nn_image_load_memory(&im, b.d, 20, "hdr.png"), "hdr.png", "trunc");
    free(b.d);
    b.d = NULL;
    b.n = 0;
    stbi_write_bmp_to_func(blob_put, &b, pic.w, pic.h, 3, pic.rgb);
    CHECK_ERR(nn_image_load_memory(&im, b.d, b.n / 2, "cut.bmp"), "cut.bmp", "truncated BMP");
    CHECK_ERR(nn_image_load_memory(&im, b.d, b.n - 1, "short.bmp"), "short.bmp", "truncated BMP");
    CHECK_ERR(nn_image_load_memory(&im, b.d, 20, "hdr.bmp"), "hdr.bmp", "trunc");
    free(b.d);
    b = make_gif(40, 30, -1);
    CHECK_ERR(nn_image_load_memory(&im, b.d, b.n / 2, "cut.gif"), "cut.gif", "truncated GIF");
    CHECK_ERR(nn_image_load_memory(&im, b.d, b.n - 2, "noend.gif"), "noend.gif", "truncated GIF");
    CHECK(nn_image_load_memory(&im, b.d, b.n - 1, "notrailer.gif") == 0,
          "a GIF whose first frame is complete loads without its trailer: %s", nn_error());
    nn_image_free(&im);
    free(b.d);
    uint8_t *wp;
    size_t wn = WebPEncodeRGB(pic.rgb, pic.w, pic.h, pic.w * 3, 80.f, &wp);
    CHECK_ERR(nn_image_load_memory(&im, wp, wn / 2, "cut.webp"), "cut.webp", "trunc");
    CHECK_ERR(nn_image_load_memory(&im, wp, 20, "hdr.webp"), "hdr.webp", "trunc");
    WebPFree(wp);
    nn_image_free(&pic);
    CHECK(im.rgb == NULL && im.w == 0 && im.h == 0, "failed loads leave an empty image");
}

/* ---- resize, crop, floats ---- */
static void test_resize(void) {
    nn_image im, out;
    make_picture(&im, 40, 30);
    /* same size: exact copy */
    CHECK(nn_image_resize(&out, &im, 40, 30) == 0, "%s", nn_error());
    CHECK(same_pixels(&im, &out), "resize to the same size must copy");
    nn_image_free(&out);

    /* constant stays constant, both directions */
    nn_image flat;
    nn_image_alloc(&flat, 17, 9);
    memset(flat.rgb, 77, 17 * 9 * 3);
    int sizes[3][2] = {{5, 3}, {50, 31}, {224, 224}};
    for (int s = 0; s < 3; s++) {
        CHECK(nn_image_resize(&out, &flat, sizes[s][0], sizes[s][1]) == 0, "%s", nn_error());
        int bad = 0;
        for (int i = 0; i < out.w * out.h * 3; i++) bad += out.rgb[i] != 77;
        CHECK(out.w == sizes[s][0] && out.h == sizes[s][1] && bad == 0,
              "flat resize to %dx%d: %d values changed", sizes[s][0], sizes[s][1], bad);
        nn_image_free(&out);
    }
    nn_image_free(&flat);

    /* 2x downscale of 2x2 blocks (0 and 200 checker) averages each block:
     * box/area filter, not nearest */
    nn_image chk;
    nn_image_alloc(&chk, 8, 8);
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++)
            for (int k = 0; k < 3; k++) chk.rgb[3 * (y * 8 + x) + k] = ((x + y) & 1) ? 200 : 0;
    CHECK(nn_image_resize(&out, &chk, 4, 4) == 0, "%s", nn_error());
    int bad = 0;
    for (int i = 0; i < 16 * 3; i++) bad += abs(out.rgb[i] - 100) > 1;
    CHECK(bad == 0, "2x downscale of a 1-px checkerboard should be ~100 everywhere (%d off, "
                    "first %d)", bad, out.rgb[0]);
    nn_image_free(&out);
    nn_image_free(&chk);

    /* 2 pixels -> 8: triangle filter gives a monotonic ramp with new values */
    nn_image two;
    nn_image_alloc(&two, 2, 1);
    memset(two.rgb, 0, 3);
    memset(two.rgb + 3, 240, 3);
    CHECK(nn_image_resize(&out, &two, 8, 1) == 0, "%s", nn_error());
    int mono = 1, distinct = 0;
    for (int x = 1; x < 8; x++) {
        mono &= out.rgb[3 * x] >= out.rgb[3 * (x - 1)];
        distinct += out.rgb[3 * x] != out.rgb[3 * (x - 1)];
    }
    CHECK(mono && distinct >= 4 && out.rgb[0] < 30 && out.rgb[21] > 210,
          "upscale ramp: %d %d %d %d %d %d %d %d", out.rgb[0], out.rgb[3], out.rgb[6],
          out.rgb[9], out.rgb[12], out.rgb[15], out.rgb[18], out.rgb[21]);
    nn_image_free(&out);
    nn_image_free(&two);

    /* crop at scale 1 on integer coordinates: the exact sub-image */
    CHECK(nn_image_crop_resize(&out, &im, 5, 7, 25, 22, 20, 15) == 0, "%s", nn_error());
    bad = 0;
    for (int y = 0; y < 15; y++)
        bad += memcmp(out.rgb + 3 * y * 20, im.rgb + 3 * ((7 + y) * 40 + 5), 60) != 0;
    CHECK(bad == 0, "integer crop at scale 1: %d rows differ", bad);
    nn_image_free(&out);

    /* crop reaching outside replicates the edge pixels */
    CHECK(nn_image_crop_resize(&out, &im, -10, -5, 10, 5, 20, 10) == 0, "%s", nn_error());
    bad = 0;
    for (int y = 0; y < 10; y++)
        for (int x = 0; x < 20; x++) {
            int sx = x - 10 < 0 ? 0 : x - 10, sy = y - 5 < 0 ? 0 : y - 5;
            bad += memcmp(out.rgb + 3 * (y * 20 + x), im.rgb + 3 * (sy * 40 + sx), 3) != 0;
        }
    CHECK(bad == 0, "crop outside the image: %d pixels differ from edge replication", bad);
    nn_image_free(&out);

    /* the full-image box equals a plain resize */
    nn_image a, b;
    CHECK(nn_image_crop_resize(&a, &im, 0, 0, 40, 30, 16, 12) == 0, "%s", nn_error());
    CHECK(nn_image_resize(&b, &im, 16, 12) == 0, "%s", nn_error());
    double d = mean_abs_diff(&a, &b);
    CHECK(d < 0.5, "full-box crop vs resize: mean diff %.3f", d);
    nn_image_free(&a);
    nn_image_free(&b);

    /* half-pixel crop of a horizontal ramp shifts the values by half a step */
    nn_image ramp;
    nn_image_alloc(&ramp, 20, 4);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 20; x++) memset(ramp.rgb + 3 * (y * 20 + x), 10 * x, 3);
    CHECK(nn_image_crop_resize(&out, &ramp, 4.5f, 0, 14.5f, 4, 10, 4) == 0, "%s", nn_error());
    bad = 0;
    for (int x = 0; x < 10; x++) bad += abs(out.rgb[3 * x] - (45 + 10 * x)) > 1;
    CHECK(bad == 0, "subpixel crop: got %d %d %d, want 45 55 65", out.rgb[0], out.rgb[3],
          out.rgb[6]);
    nn_image_free(&out);
    nn_image_free(&ramp);

    /* dst == src works (and leaks nothing under ASan) */
    nn_image self;
    make_picture(&self, 30, 20);
    CHECK(nn_image_resize(&self, &self, 15, 10) == 0 && self.w == 15, "%s", nn_error());
    CHECK(nn_image_crop_resize(&self, &self, 2, 2, 12, 8, 20, 12) == 0 && self.w == 20,
          "%s", nn_error());
    nn_image_free(&self);

    /* bad boxes are errors, not crashes */
    CHECK(nn_image_crop_resize(&out, &im, 5, 5, 5, 10, 8, 8) == -1, "empty box accepted");
    CHECK(nn_image_crop_resize(&out, &im, NAN, 0, 5, 10, 8, 8) == -1, "NaN box accepted");
    CHECK(nn_image_crop_resize(&out, &im, -1e9f, 0, 1e9f, 10, 8, 8) == -1, "huge box accepted");
    CHECK(nn_image_resize(&out, &im, 0, 10) == -1, "zero-width resize accepted");

    /* floats */
    float f[40 * 30 * 3];
    nn_image_to_floats(f, &im, 1.f / 127.5f, -1.f);
    bad = 0;
    for (int i = 0; i < 40 * 30 * 3; i++) bad += fabsf(f[i] - (im.rgb[i] / 127.5f - 1.f)) > 1e-6f;
    CHECK(bad == 0 && f[0] == -1.f, "to_floats: %d wrong", bad);
    nn_image_free(&im);
}

int main(void) {
    tu_tmpdir_make("image");
    test_png_jpeg_bmp_roundtrip();
    test_webp();
    test_grey_alpha_16bit();
    test_gif();
    test_failures();
    test_resize();
    test_dataset();
    tu_tmpdir_remove();
    return test_summary("test_image");
}
