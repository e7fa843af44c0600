/* test_live_sources.c — apps/live: the prefetch thread (order, end, errors,
 * newest-frame-only for live sources, stopping while blocked), folders of
 * images (natural order, resizing, loop, bad files) and source errors. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nnmask.h"
#include "source.h"
#include "testutil.h"

/* A fake source: frame i has every byte = i % 251; fails at `fail_at`. */
typedef struct {
    nn_source base;
    int n, next, fail_at;
    int delay_us;
    atomic_int reads;
} fake_source;

static int fake_read(nn_source *s, nn_image *frame) {
    fake_source *f = (fake_source *)s;
    if (f->delay_us) usleep((useconds_t)f->delay_us);
    atomic_fetch_add(&f->reads, 1);
    if (f->next == f->fail_at) return nn_set_error("fake: camera disconnected at %d", f->next);
    if (f->next >= f->n) return 0;
    memset(frame->rgb, f->next % 251, (size_t)frame->w * frame->h * 3);
    f->next++;
    return 1;
}

static void fake_close(nn_source *s) { (void)s; }

static void fake_init(fake_source *f, int n, int fail_at, int live, int delay_us) {
    memset(f, 0, sizeof *f);
    f->base.read = fake_read;
    f->base.close = fake_close;
    f->base.w = 8;
    f->base.h = 6;
    f->base.live = live;
    f->n = n;
    f->fail_at = fail_at;
    f->delay_us = delay_us;
    snprintf(f->base.name, sizeof f->base.name, "fake");
}

static int frame_value(const nn_image *im) {
    for (size_t i = 1; i < (size_t)im->w * im->h * 3; i++)
        if (im->rgb[i] != im->rgb[0]) return -1;   /* torn frame */
    return im->rgb[0];
}

static void test_prefetch_files(void) {
    fake_source f;
    fake_init(&f, 40, -1, 0, 0);
    nn_prefetch *p = nn_prefetch_start(&f.base);
    CHECK(p != NULL, "start");
    nn_image *fr;
    int i = 0, r, in_order = 1;
    while ((r = nn_prefetch_next(p, &fr)) == 1) {
        if (frame_value(fr) != i % 251) in_order = 0;
        if (i % 7 == 0) usleep(500);   /* a slow consumer must not lose frames */
        i++;
    }
    CHECK(r == 0 && i == 40 && in_order, "file frames: r %d, %d frames, in order %d", r, i,
          in_order);
    CHECK(nn_prefetch_next(p, &fr) == 0 && fr == NULL, "stays at the end");
    nn_prefetch_stop(p);
}

static void test_prefetch_error(void) {
    fake_source f;
    fake_init(&f, 40, 5, 0, 0);
    nn_prefetch *p = nn_prefetch_start(&f.base);
    nn_image *fr;
    int i = 0, r;
    while ((r = nn_prefetch_next(p, &fr)) == 1) i++;
    CHECK(r == -1 && i == 5, "error after 5 frames: r %d, %d frames", r, i);
    CHECK(strstr(nn_error(), "camera disconnected at 5") != NULL, "error text: %s", nn_error());
    nn_prefetch_stop(p);
}

static void test_prefetch_live(void) {
    /* a camera at ~1 kHz, a consumer at ~100 Hz: only the newest frames */
    fake_source f;
    fake_init(&f, 400, -1, 1, 1000);
    nn_prefetch *p = nn_prefetch_start(&f.base);
    nn_image *fr;
    int prev = -1, got = 0, increasing = 1, skipped = 0;
    for (int k = 0; k < 20; k++) {
        if (nn_prefetch_next(p, &fr) != 1) break;
        int v = frame_value(fr);
        if (v <= prev) increasing = 0;
        if (v > prev + 1) skipped = 1;
        prev = v;
        got++;
        usleep(10000);
    }
    CHECK(got == 20 && increasing && skipped, "live: %d frames, increasing %d, dropped old %d",
          got, increasing, skipped);
    nn_prefetch_stop(p);   /* while the reader is still producing */
}

static void test_prefetch_stop_blocked(void) {
    /* file source, nobody consumes: the reader blocks on a full ring */
    fake_source f;
    fake_init(&f, 1000, -1, 0, 0);
    nn_prefetch *p = nn_prefetch_start(&f.base);
    usleep(20000);
    int reads = atomic_load(&f.reads);
    CHECK(reads >= 3 && reads <= 5, "reader stops at a full ring: %d reads", reads);
    nn_prefetch_stop(p);
}

static int write_png(const char *path, int w, int h, uint8_t v) {
    nn_image im;
    if (nn_image_alloc(&im, w, h)) return -1;
    memset(im.rgb, v, (size_t)w * h * 3);
    int r = nn_image_write(&im, path, 0);
    nn_image_free(&im);
    return r;
}

static void test_frames(const char *dir) {
    char p[1024];
    /* frame10 must come after frame2 (natural order); other files ignored */
    const int idx[] = {10, 2, 1, 33};
    for (int k = 0; k < 4; k++) {
        snprintf(p, sizeof p, "%s/frame%d.png", dir, idx[k]);
        CHECK(write_png(p, k == 3 ? 40 : 20, k == 3 ? 30 : 16, (uint8_t)(idx[k] * 5)) == 0,
              "write %s", p);
    }
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    FILE *fp = fopen(p, "w");
    if (fp) {
        fputs("not an image\n", fp);
        fclose(fp);
    }
    snprintf(p, sizeof p, "%s/sub.png", dir);
    mkdir(p, 0755);   /* a folder named like an image */

    nn_source *s = nn_source_open(dir, 0, 0, 0);
    CHECK(s != NULL, "open frames: %s", nn_error());
    if (!s) return;
    CHECK(s->w == 20 && s->h == 16 && !s->live, "size of the first image: %dx%d", s->w, s->h);
    nn_image fr;
    CHECK(nn_image_alloc(&fr, s->w, s->h) == 0, "alloc");
    const int want[] = {1, 2, 10, 33};
    int i = 0, r;
    while ((r = s->read(s, &fr)) == 1 && i < 8) {
        /* the 40x30 image is resized to 20x16: a flat colour stays flat */
        int v = fr.rgb[0], c = fr.rgb[(size_t)(fr.w * fr.h * 3) - 1];
        CHECK(i < 4 && v == want[i] * 5 && c == v, "frame %d value %d (want %d)", i, v,
              i < 4 ? want[i] * 5 : -1);
        i++;
    }
    CHECK(r == 0 && i == 4, "4 frames then the end: r %d i %d", r, i);
    nn_source_close(s);

    /* --size and --loop */
    s = nn_source_open(dir, 64, 48, 1);
    CHECK(s && s->w == 64 && s->h == 48, "explicit size");
    if (s) {
        nn_image big;
        nn_image_alloc(&big, 64, 48);
        int vals[9], ok = 1;
        for (int k = 0; k < 9; k++) {
            ok &= s->read(s, &big) == 1;
            vals[k] = big.rgb[0];
        }
        CHECK(ok && vals[4] == vals[0] && vals[8] == vals[0] && vals[5] == vals[1],
              "loop: %d %d %d", vals[0], vals[4], vals[8]);
        /* a buffer of the wrong size is refused, not overrun */
        CHECK(s->read(s, &fr) == -1 && strstr(nn_error(), "frame buffer"), "wrong buffer: %s",
              nn_error());
        nn_image_free(&big);
        nn_source_close(s);
    }

    /* a corrupt image stops the source with its name */
    snprintf(p, sizeof p, "%s/frame5.png", dir);
    fp = fopen(p, "wb");
    if (fp) {
        fputs("\x89PNG\r\n\x1a\n garbage", fp);
        fclose(fp);
    }
    s = nn_source_open(dir, 0, 0, 0);
    if (s) {
        int n = 0;
        while ((r = s->read(s, &fr)) == 1) n++;
        CHECK(r == -1 && n == 2 && strstr(nn_error(), "frame5.png"), "corrupt frame: %d, %s", n,
              nn_error());
        nn_source_close(s);
    }
    nn_image_free(&fr);
}

static void test_errors(const char *dir) {
    char p[1024];
    snprintf(p, sizeof p, "%s/empty", dir);
    mkdir(p, 0755);
    CHECK(nn_source_open(p, 0, 0, 0) == NULL && strstr(nn_error(), "no images"), "empty: %s",
          nn_error());
    snprintf(p, sizeof p, "%s/missing", dir);
    CHECK(nn_source_open(p, 0, 0, 0) == NULL && strstr(nn_error(), "missing"), "missing: %s",
          nn_error());
    snprintf(p, sizeof p, "%s/video0", dir);
    CHECK(nn_source_open_camera(p, 640, 480, 100) == NULL && strstr(nn_error(), "no camera"),
          "missing camera: %s", nn_error());
    CHECK(nn_source_open_camera("/dev/null", 640, 480, 100) == NULL &&
              (strstr(nn_error(), "not a V4L2") || strstr(nn_error(), "without libv4l2")),
          "/dev/null: %s", nn_error());
    snprintf(p, sizeof p, "%s/junk.avi", dir);
    FILE *fp = fopen(p, "wb");
    if (fp) {
        for (int i = 0; i < 4000; i++) fputc((i * 7919) % 251, fp);
        fclose(fp);
    }
    CHECK(nn_source_open(p, 0, 0, 0) == NULL && strstr(nn_error(), "junk.avi"), "junk video: %s",
          nn_error());
}

int main(void) {
    char dir[] = "/tmp/nnmask-test-sources-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_prefetch_files();
    test_prefetch_error();
    test_prefetch_live();
    test_prefetch_stop_blocked();
    test_frames(dir);
    test_errors(dir);
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_summary("test_live_sources");
}
