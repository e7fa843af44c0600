/* test_v4l2_fake.c — apps/live/capture_v4l2.c against a fake V4L2 camera
 * (nn_v4l2_ops): capture by mmap and read(), busy, unplugged, stalled and odd devices. */
#include <errno.h>
#include <fcntl.h>
#include <linux/videodev2.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nnmask.h"
#include "source.h"
#include "testutil.h"

/* stat() stays real: the camera must be a character device, so the fake
 * camera lives at /dev/null; every other call goes to the fake. */
#define CAM "/dev/null"
#define FAKE_FD 700 /* below FD_SETSIZE */
#define MAX_BUFS 8
#define GUARD 4096 /* bytes after each mapped buffer, filled with GUARD_BYTE */
#define GUARD_BYTE 0xAB
#define PAD_BYTE 0xEE
#define NEVER 1000000000L

enum { U_NONE, U_DQBUF, U_EXCEPT, U_QBUF, U_READ, U_EOF, U_SELECT_FAIL };

/* The fake camera: configuration (set by each test after fake_reset), then state and counters. */
typedef struct {
    /* ---- configuration ---- */
    uint32_t caps;         /* QUERYCAP capabilities */
    uint32_t device_caps;  /* != 0: report V4L2_CAP_DEVICE_CAPS with these */
    const char *card;
    int drv_w, drv_h;      /* size the driver picks; 0 = the one asked */
    int force_size;        /* drv_w x drv_h even when 0 */
    uint32_t drv_pixfmt;   /* 0 = RGB24 */
    unsigned pad;          /* bytesperline = w*3 + pad */
    int zero_bpl;          /* answer bytesperline = sizeimage = 0 */
    unsigned max_bufs;     /* REQBUFS answer */
    long buflen;           /* > 0: QUERYBUF length instead of sizeimage */
    long bytesused;        /* 0: sizeimage; -1: report 0; > 0: this value */
    long read_len;         /* > 0: read() returns this many bytes */
    int sparm_ok;
    int err_open, err_querycap, err_fdopen, err_sfmt, err_reqbufs, err_querybuf, err_streamon;
    int mmap_fail_at;      /* >= 0: mmap of this buffer fails (ENOMEM) */
    int bad_index;         /* DQBUF answers index 99 */
    int eintr;             /* every ioctl, select and read is first interrupted */
    int unplug_mode, unplug_errno;
    long unplug_after;     /* frames delivered before the unplug */
    long stall_after;      /* frames delivered before the camera stops (select times out) */
    long spurious_after;   /* then select says readable but DQBUF/read give EAGAIN */
    long bad_from, bad_to; /* frames [from, to) carry V4L2_BUF_FLAG_ERROR */
    int interval_us;       /* time between frames (0: always ready) */
    /* ---- state ---- */
    int fd_open, wrapped, streaming, unplugged;
    int open_flags;
    unsigned asked_w, asked_h;
    int w, h;
    unsigned bpl, sizeimage;
    unsigned nbufs;
    uint8_t *map[MAX_BUFS];
    size_t maplen[MAX_BUFS];
    int queued[MAX_BUFS], qbuf_before_streamon;
    unsigned next_buf;
    long delivered, last_id;
    int eintr_toggle[3];   /* ioctl, select, read */
    /* ---- counters ---- */
    int n_open, n_close, n_v4l2_close, n_mapped, n_streamoff, n_eintr;
    long n_select, n_dqbuf, n_read;
    long select_after_unplug, dqbuf_after_unplug;
    int violations;
    char violation[256];
} fake_dev;

static fake_dev D;

static void violation(const char *fmt, ...) {
    D.violations++;
    if (D.violations > 1) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(D.violation, sizeof D.violation, fmt, ap);
    va_end(ap);
}

static void fake_reset(void) {
    for (int i = 0; i < MAX_BUFS; i++) free(D.map[i]);
    memset(&D, 0, sizeof D);
    D.caps = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING;
    D.card = "Fake Camera";
    D.max_bufs = 4;
    D.sparm_ok = 1;
    D.mmap_fail_at = -1;
    D.unplug_after = NEVER;
    D.stall_after = NEVER;
    D.spurious_after = NEVER;
    D.last_id = -1;
}

static uint8_t pix(long k, int x, int y, int c) {
    switch (c) {
    case 0: return (uint8_t)(k * 37 + x * 3);
    case 1: return (uint8_t)(k * 11 + y * 5);
    default: return (uint8_t)(x * 7 + y * 13 + k);
    }
}

/* Frame k as the driver lays it out: rows of bpl bytes, padding PAD_BYTE. */
static void fill_frame(uint8_t *dst, size_t len, long k) {
    memset(dst, PAD_BYTE, len);
    for (int y = 0; y < D.h; y++)
        for (int x = 0; x < D.w; x++)
            for (int c = 0; c < 3; c++) {
                size_t off = (size_t)y * D.bpl + (size_t)x * 3 + (size_t)c;
                if (off < len) dst[off] = pix(k, x, y, c);
            }
}

/* Rows of frame k that the camera delivered in full (the rest must be black). */
static int frame_matches(const nn_image *im, long k, int full_rows) {
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++)
            for (int c = 0; c < 3; c++) {
                uint8_t v = im->rgb[((size_t)y * im->w + x) * 3 + c];
                uint8_t want = y < full_rows ? pix(k, x, y, c) : 0;
                if (v != want) {
                    fprintf(stderr, "  frame %ld: pixel (%d,%d,%d) = %d, want %d\n", k, x, y, c,
                            v, want);
                    return 0;
                }
            }
    return 1;
}

static void sleep_us(long us) {
    if (us <= 0) return;
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* With D.eintr, every other call of each kind fails with EINTR. */
static int interrupted(int kind) {
    if (!D.eintr) return 0;
    D.eintr_toggle[kind] ^= 1;
    if (!D.eintr_toggle[kind]) return 0;
    D.n_eintr++;
    errno = EINTR;
    return 1;
}

/* The device goes away when the camera asks for the frame after `unplug_after`. */
static void check_unplug(void) {
    if (D.unplug_mode != U_NONE && D.unplug_mode != U_QBUF && D.delivered >= D.unplug_after)
        D.unplugged = 1;
}

/* ---- the ops ---- */

static int fake_open(const char *path, int flags) {
    D.n_open++;
    if (strcmp(path, CAM) != 0) violation("open(%s)", path);
    if (D.fd_open) violation("opened twice");
    if (D.err_open) {
        errno = D.err_open;
        return -1;
    }
    D.open_flags = flags;
    D.fd_open = 1;
    return FAKE_FD;
}

static int fake_close(int fd) {
    D.n_close++;
    if (fd != FAKE_FD || !D.fd_open) violation("close(%d) of a fd that is not open", fd);
    if (D.wrapped) violation("close() of a libv4l2 fd (must be v4l2_close)");
    D.fd_open = 0;
    return 0;
}

static int fake_fd_open(int fd, int flags) {
    if (fd != FAKE_FD || !D.fd_open) violation("v4l2_fd_open(%d): not open", fd);
    if (flags != 0) violation("v4l2_fd_open flags %d", flags);
    if (D.err_fdopen) {
        errno = D.err_fdopen;
        return -1;
    }
    D.wrapped = 1;
    return fd;
}

static int fake_v4l2_close(int fd) {
    D.n_v4l2_close++;
    if (fd != FAKE_FD || !D.fd_open) violation("v4l2_close(%d) of a fd that is not open", fd);
    D.fd_open = 0;
    D.wrapped = 0;
    return 0;
}

static int do_ioctl(int fd, unsigned long req, void *arg) {
    if (fd != FAKE_FD || !D.fd_open) {
        violation("ioctl on fd %d that is not open", fd);
        errno = EBADF;
        return -1;
    }
    if (interrupted(0)) return -1;
    if (req == VIDIOC_DQBUF) check_unplug();
    if (D.unplugged) {
        if (req == VIDIOC_DQBUF) D.dqbuf_after_unplug++;
        if (req == VIDIOC_STREAMOFF) {   /* the stream is gone with the device */
            D.n_streamoff++;
            D.streaming = 0;
        }
        errno = req == VIDIOC_DQBUF && D.unplug_errno ? D.unplug_errno : ENODEV;
        return -1;
    }
    switch (req) {
    case VIDIOC_QUERYCAP: {
        struct v4l2_capability *cap = arg;
        if (D.err_querycap) {
            errno = D.err_querycap;
            return -1;
        }
        memset(cap, 0, sizeof *cap);
        snprintf((char *)cap->driver, sizeof cap->driver, "fakecam");
        snprintf((char *)cap->card, sizeof cap->card, "%s", D.card);
        cap->capabilities = D.caps;
        if (D.device_caps) {
            cap->capabilities |= V4L2_CAP_DEVICE_CAPS;
            cap->device_caps = D.device_caps;
        }
        return 0;
    }
    case VIDIOC_S_FMT: {
        struct v4l2_format *f = arg;
        if (f->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) violation("S_FMT type %u", f->type);
        if (D.err_sfmt) {
            errno = D.err_sfmt;
            return -1;
        }
        if (D.streaming || D.nbufs) {
            errno = EBUSY;
            return -1;
        }
        D.asked_w = f->fmt.pix.width;
        D.asked_h = f->fmt.pix.height;
        D.w = D.drv_w || D.force_size ? D.drv_w : (int)f->fmt.pix.width;
        D.h = D.drv_h || D.force_size ? D.drv_h : (int)f->fmt.pix.height;
        D.bpl = (unsigned)D.w * 3 + D.pad;
        D.sizeimage = D.bpl * (unsigned)D.h;
        f->fmt.pix.width = (unsigned)D.w;
        f->fmt.pix.height = (unsigned)D.h;
        f->fmt.pix.pixelformat = D.drv_pixfmt ? D.drv_pixfmt : V4L2_PIX_FMT_RGB24;
        f->fmt.pix.field = V4L2_FIELD_NONE;
        f->fmt.pix.bytesperline = D.zero_bpl ? 0 : D.bpl;
        f->fmt.pix.sizeimage = D.zero_bpl ? 0 : D.sizeimage;
        return 0;
    }
    case VIDIOC_S_PARM: {
        struct v4l2_streamparm *p = arg;
        if (!D.sparm_ok) {
            errno = ENOTTY;
            return -1;
        }
        p->parm.capture.timeperframe.numerator = 1;
        p->parm.capture.timeperframe.denominator = 30;
        return 0;
    }
    case VIDIOC_REQBUFS: {
        struct v4l2_requestbuffers *rb = arg;
        if (rb->memory != V4L2_MEMORY_MMAP || rb->type != V4L2_BUF_TYPE_VIDEO_CAPTURE)
            violation("REQBUFS memory %u type %u", rb->memory, rb->type);
        if (D.err_reqbufs) {
            errno = D.err_reqbufs;
            return -1;
        }
        if (D.nbufs) violation("REQBUFS twice");
        D.nbufs = D.max_bufs;
        rb->count = D.max_bufs;
        return 0;
    }
    case VIDIOC_QUERYBUF:
    case VIDIOC_QBUF: {
        struct v4l2_buffer *b = arg;
        if (b->index >= D.nbufs || b->memory != V4L2_MEMORY_MMAP) {
            violation("%s of buffer %u (%u buffers)", req == VIDIOC_QBUF ? "QBUF" : "QUERYBUF",
                      b->index, D.nbufs);
            errno = EINVAL;
            return -1;
        }
        if (req == VIDIOC_QUERYBUF) {
            if (D.err_querybuf) {
                errno = D.err_querybuf;
                return -1;
            }
            b->length = D.buflen > 0 ? (unsigned)D.buflen : D.sizeimage;
            b->m.offset = b->index * 0x100000u;
            return 0;
        }
        if (!D.map[b->index]) violation("QBUF of unmapped buffer %u", b->index);
        if (D.queued[b->index]) violation("QBUF of queued buffer %u", b->index);
        if (D.unplug_mode == U_QBUF && D.streaming && D.delivered > D.unplug_after) {
            D.unplugged = 1;
            errno = ENODEV;
            return -1;
        }
        D.queued[b->index] = 1;
        if (!D.streaming) D.qbuf_before_streamon++;
        return 0;
    }
    case VIDIOC_STREAMON:
        if (D.err_streamon) {
            errno = D.err_streamon;
            return -1;
        }
        if (D.qbuf_before_streamon != (int)(D.nbufs < 4 ? D.nbufs : 4))
            violation("STREAMON with %d buffers queued", D.qbuf_before_streamon);
        D.streaming = 1;
        return 0;
    case VIDIOC_STREAMOFF:
        D.n_streamoff++;
        D.streaming = 0;
        memset(D.queued, 0, sizeof D.queued);
        return 0;
    case VIDIOC_DQBUF: {
        struct v4l2_buffer *b = arg;
        D.n_dqbuf++;
        if (!D.streaming) {
            errno = EINVAL;
            return -1;
        }
        if (D.delivered >= D.stall_after || D.delivered >= D.spurious_after) {
            errno = EAGAIN;
            return -1;
        }
        unsigned i = D.next_buf;
        for (unsigned t = 0; t < D.nbufs && !D.queued[i]; t++) i = (i + 1) % D.nbufs;
        if (!D.queued[i]) {
            errno = EAGAIN;
            return -1;
        }
        D.next_buf = (i + 1) % D.nbufs;
        D.queued[i] = 0;
        long k = D.delivered++;
        fill_frame(D.map[i], D.maplen[i], k);
        memset(b, 0, sizeof *b);
        b->type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        b->memory = V4L2_MEMORY_MMAP;
        b->index = D.bad_index ? 99 : i;
        b->length = (unsigned)D.maplen[i];
        b->bytesused = D.bytesused < 0 ? 0 : D.bytesused > 0 ? (unsigned)D.bytesused : D.sizeimage;
        b->sequence = (unsigned)k;
        if (k >= D.bad_from && k < D.bad_to) {
            b->flags |= V4L2_BUF_FLAG_ERROR;
        } else {
            D.last_id = k;
        }
        return 0;
    }
    default:
        errno = ENOTTY;
        return -1;
    }
}

static int fake_ioctl(int fd, unsigned long req, void *arg) {
    if (req != VIDIOC_QUERYCAP || D.wrapped) violation("raw ioctl %#lx", req);
    return do_ioctl(fd, req, arg);
}

static int fake_v4l2_ioctl(int fd, unsigned long req, void *arg) {
    if (!D.wrapped) violation("v4l2_ioctl %#lx before v4l2_fd_open", req);
    return do_ioctl(fd, req, arg);
}

static void *fake_mmap(void *start, size_t len, int prot, int flags, int fd, int64_t offset) {
    (void)start;
    unsigned i = (unsigned)(offset / 0x100000);
    if (fd != FAKE_FD || !D.wrapped || i >= D.nbufs || offset % 0x100000 || D.map[i] ||
        !(prot & PROT_READ) || !(flags & MAP_SHARED))
        violation("mmap(len %zu, fd %d, offset %lld)", len, fd, (long long)offset);
    if ((int)i == D.mmap_fail_at || i >= MAX_BUFS || D.map[i]) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    D.map[i] = malloc(len + GUARD);
    if (!D.map[i]) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    memset(D.map[i], GUARD_BYTE, len + GUARD);
    D.maplen[i] = len;
    D.n_mapped++;
    return D.map[i];
}

static int fake_munmap(void *start, size_t len) {
    for (unsigned i = 0; i < MAX_BUFS; i++)
        if (D.map[i] && D.map[i] == start) {
            if (len != D.maplen[i]) violation("munmap of buffer %u: len %zu", i, len);
            free(D.map[i]);
            D.map[i] = NULL;
            D.n_mapped--;
            return 0;
        }
    violation("munmap of %p: not mapped", start);
    errno = EINVAL;
    return -1;
}

static ssize_t fake_read(int fd, void *buf, size_t n) {
    D.n_read++;
    if (fd != FAKE_FD || !D.wrapped) violation("read on fd %d", fd);
    if (interrupted(2)) return -1;
    check_unplug();
    if (D.unplugged) {
        D.dqbuf_after_unplug++;
        if (D.unplug_mode == U_EOF) return 0;
        errno = D.unplug_errno ? D.unplug_errno : ENODEV;
        return -1;
    }
    if (D.delivered >= D.stall_after || D.delivered >= D.spurious_after) {
        errno = EAGAIN;
        return -1;
    }
    if (n < D.sizeimage) violation("read of %zu bytes, frame is %u", n, D.sizeimage);
    size_t len = D.read_len > 0 && (size_t)D.read_len < n ? (size_t)D.read_len : D.sizeimage;
    if (len > n) len = n;
    long k = D.delivered++;
    fill_frame(buf, len, k);
    D.last_id = k;
    return (ssize_t)len;
}

static int fake_select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv) {
    D.n_select++;
    if (nfds <= FAKE_FD || !rd || !FD_ISSET(FAKE_FD, rd) || !tv)
        violation("select(nfds %d) without the camera or a timeout", nfds);
    if (!D.fd_open) violation("select on a closed camera");
    long tv_us = tv ? (long)tv->tv_sec * 1000000 + tv->tv_usec : 0;
    if (tv_us < 0 || tv_us > 60L * 1000000) violation("select timeout %ld us", tv_us);
    if (interrupted(1)) return -1;
    check_unplug();
    if (D.unplugged) D.select_after_unplug++;
    if (D.unplugged && D.unplug_mode == U_SELECT_FAIL) {
        errno = EBADF;
        return -1;
    }
    int ready, want_ex = ex && FD_ISSET(FAKE_FD, ex);
    if (D.unplugged && D.unplug_mode == U_EXCEPT && !want_ex) {
        sleep_us(tv_us);   /* only an exceptional condition, and nobody asked for it */
        ready = 0;
    } else if (D.unplugged) {
        ready = 1;
    } else if (D.delivered >= D.stall_after) {
        sleep_us(tv_us);   /* a stalled camera: nothing until the timeout */
        ready = 0;
    } else if (D.delivered >= D.spurious_after) {
        ready = 1;
    } else if (D.interval_us > tv_us) {
        sleep_us(tv_us);
        ready = 0;
    } else {
        sleep_us(D.interval_us);
        ready = 1;
    }
    if (rd) FD_ZERO(rd);
    if (wr) FD_ZERO(wr);
    if (ex) FD_ZERO(ex);
    if (!ready) return 0;
    if (D.unplugged && D.unplug_mode == U_EXCEPT) {
        FD_SET(FAKE_FD, ex);   /* only the exceptional condition, not readable */
    } else {
        FD_SET(FAKE_FD, rd);
    }
    return 1;
}

static const nn_v4l2_ops fake_ops = {
    .open = fake_open,
    .close = fake_close,
    .ioctl = fake_ioctl,
    .v4l2_fd_open = fake_fd_open,
    .v4l2_close = fake_v4l2_close,
    .v4l2_ioctl = fake_v4l2_ioctl,
    .v4l2_mmap = fake_mmap,
    .v4l2_munmap = fake_munmap,
    .v4l2_read = fake_read,
    .select = fake_select,
};

/* ---- helpers ---- */

/* After the source is closed (or failed to open): nothing left open or mapped. */
static void fake_finish(const char *what) {
    CHECK(!D.fd_open, "%s: camera fd left open", what);
    CHECK(D.n_mapped == 0, "%s: %d buffers left mapped", what, D.n_mapped);
    CHECK(D.violations == 0, "%s: %d misuses of the device, first: %s", what, D.violations,
          D.violation);
    CHECK(!D.streaming, "%s: stream left on (no STREAMOFF)", what);
}

static int has(const char *s) { return strstr(nn_error(), s) != NULL; }

/* Opening must fail with a message naming the camera and containing `msg`. */
static void expect_open_fails(const char *what, int w, int h, const char *msg) {
    nn_source *s = nn_source_open_camera(CAM, w, h, 200);
    CHECK(s == NULL, "%s: opened", what);
    nn_source_close(s);
    CHECK(has(CAM) && has(msg), "%s: message '%s' lacks '%s'", what, nn_error(), msg);
    fake_finish(what);
}

/* Reads n frames, each the newest one the fake made, with `full_rows` rows of it. */
static int read_frames(nn_source *s, nn_image *fr, int n, int full_rows, const char *what) {
    int ok = 1;
    long prev = D.last_id;
    for (int i = 0; i < n && ok; i++) {
        int r = s->read(s, fr);
        if (r != 1) {
            CHECK(r == 1, "%s: frame %d: r %d: %s", what, i, r, nn_error());
            return 0;
        }
        if (D.last_id <= prev || !frame_matches(fr, D.last_id, full_rows)) ok = 0;
        prev = D.last_id;
    }
    CHECK(ok, "%s: frame content (last frame id %ld)", what, D.last_id);
    return ok;
}

static nn_source *open_ok(int w, int h, int timeout_ms, nn_image *fr, const char *what) {
    nn_source *s = nn_source_open_camera(CAM, w, h, timeout_ms);
    CHECK(s != NULL, "%s: open: %s", what, nn_error());
    if (!s) return NULL;
    if (nn_image_alloc(fr, s->w, s->h)) {
        nn_source_close(s);
        return NULL;
    }
    return s;
}

/* ---- tests ---- */

static void test_mmap_capture(void) {
    fake_reset();
    nn_image fr;
    nn_source *s = open_ok(64, 48, 1000, &fr, "mmap");
    if (!s) return;
    CHECK(s->w == 64 && s->h == 48 && s->live == 1 && !strcmp(s->name, CAM),
          "mmap: %dx%d live %d name %s", s->w, s->h, s->live, s->name);
    CHECK(s->fps > 29.99 && s->fps < 30.01, "mmap: fps %g", s->fps);
    CHECK((D.open_flags & O_ACCMODE) == O_RDWR && (D.open_flags & O_NONBLOCK),
          "open flags %#x: need O_RDWR | O_NONBLOCK", D.open_flags);
    CHECK(D.n_mapped == 4 && D.streaming, "mmap: %d buffers mapped, streaming %d", D.n_mapped,
          D.streaming);
    read_frames(s, &fr, 12, 48, "mmap");   /* 3 rounds through the 4 buffers */
    CHECK(D.delivered == 12 && D.n_select == 12, "mmap: %ld frames, %ld selects", D.delivered,
          D.n_select);
    nn_image_free(&fr);
    nn_source_close(s);
    CHECK(D.n_streamoff == 1 && D.n_v4l2_close == 1 && D.n_close == 0,
          "mmap close: streamoff %d, v4l2_close %d, close %d", D.n_streamoff, D.n_v4l2_close,
          D.n_close);
    fake_finish("mmap");

    /* padded rows (bytesperline > w*3), 2 buffers, no S_PARM */
    fake_reset();
    D.pad = 20;
    D.max_bufs = 2;
    D.sparm_ok = 0;
    s = open_ok(30, 20, 1000, &fr, "mmap padded");
    if (!s) return;
    CHECK(s->fps == 0, "no S_PARM: fps %g", s->fps);
    read_frames(s, &fr, 5, 20, "mmap padded");
    nn_image_free(&fr);
    nn_source_close(s);
    fake_finish("mmap padded");

    /* more buffers than asked: 4 are used */
    fake_reset();
    D.max_bufs = 8;
    s = open_ok(16, 8, 1000, &fr, "mmap 8 buffers");
    if (!s) return;
    CHECK(D.n_mapped == 4, "8 buffers offered: %d mapped", D.n_mapped);
    read_frames(s, &fr, 9, 8, "mmap 8 buffers");
    nn_image_free(&fr);
    nn_source_close(s);
    fake_finish("mmap 8 buffers");
}

static void test_read_capture(void) {
    fake_reset();
    D.caps = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_READWRITE;
    D.pad = 6;
    nn_image fr;
    nn_source *s = open_ok(40, 30, 1000, &fr, "read");
    if (!s) return;
    CHECK(D.nbufs == 0 && D.n_mapped == 0 && !D.streaming, "read(): no buffers, no stream");
    read_frames(s, &fr, 6, 30, "read");
    CHECK(D.n_read == 6, "read: %ld reads for 6 frames", D.n_read);
    /* a short read: the missing rows come out black */
    D.read_len = (long)D.bpl * 10 + 5;
    read_frames(s, &fr, 2, 10, "short read");
    nn_image_free(&fr);
    nn_source_close(s);
    CHECK(D.n_streamoff == 0, "read: STREAMOFF without a stream");
    fake_finish("read");
}

static void test_busy(void) {
    const struct {
        const char *what;
        int *err;
    } cases[] = {{"EBUSY at open", &D.err_open},       {"EBUSY at S_FMT", &D.err_sfmt},
                 {"EBUSY at REQBUFS", &D.err_reqbufs}, {"EBUSY at STREAMON", &D.err_streamon},
                 {"EBUSY at QUERYCAP", &D.err_querycap}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake_reset();
        *cases[i].err = EBUSY;
        expect_open_fails(cases[i].what, 64, 48, "camera is busy");
    }
    /* STREAMON failed after mapping all buffers: all unmapped (checked by fake_finish) */
    fake_reset();
    D.err_streamon = EBUSY;
    nn_source *s = nn_source_open_camera(CAM, 64, 48, 200);
    CHECK(s == NULL && D.nbufs == 4, "STREAMON busy");
    fake_finish("STREAMON busy, buffers");
}

/* After `after` good frames the camera goes away; the next read fails with
 * "camera disconnected" at once (one wait, one DQBUF), and so does the one after. */
static void unplug_case(const char *what, uint32_t caps, int mode, int err, long after) {
    fake_reset();
    D.caps = V4L2_CAP_VIDEO_CAPTURE | caps;
    D.unplug_mode = mode;
    D.unplug_errno = err;
    D.unplug_after = after;
    nn_image fr;
    nn_source *s = open_ok(32, 24, 2000, &fr, what);
    if (!s) return;
    read_frames(s, &fr, (int)after, 24, what);
    long sel0 = D.n_select;
    double t0 = nn_now();
    int r = s->read(s, &fr);
    double dt = nn_now() - t0;
    CHECK(r == -1 && has(CAM) && has("camera disconnected"), "%s: r %d: %s", what, r,
          nn_error());
    CHECK(dt < 0.5 && D.n_select - sel0 <= 2, "%s: failed after %.3f s and %ld selects", what, dt,
          D.n_select - sel0);
    r = s->read(s, &fr);
    CHECK(r == -1 && has("camera disconnected") && D.n_select - sel0 <= 4,
          "%s: second read: r %d, %ld selects: %s", what, r, D.n_select - sel0, nn_error());
    nn_image_free(&fr);
    nn_source_close(s);
    fake_finish(what);
}

static void test_unplug(void) {
    unplug_case("unplug: DQBUF ENODEV", V4L2_CAP_STREAMING, U_DQBUF, ENODEV, 5);
    unplug_case("unplug: readable, DQBUF EIO", V4L2_CAP_STREAMING, U_DQBUF, EIO, 3);
    unplug_case("unplug: fd in error (exception set), ENODEV", V4L2_CAP_STREAMING, U_EXCEPT,
                ENODEV, 4);
    unplug_case("unplug: requeue QBUF ENODEV", V4L2_CAP_STREAMING, U_QBUF, 0, 2);
    unplug_case("unplug: before the first frame", V4L2_CAP_STREAMING, U_DQBUF, ENODEV, 0);
    unplug_case("unplug: read() ENODEV", V4L2_CAP_READWRITE, U_READ, ENODEV, 4);
    unplug_case("unplug: read() EIO", V4L2_CAP_READWRITE, U_READ, EIO, 2);
    unplug_case("unplug: read() end of file", V4L2_CAP_READWRITE, U_EOF, 0, 3);

    /* select itself fails (the fd went bad): a clear error at once, no loop */
    fake_reset();
    D.unplug_mode = U_SELECT_FAIL;
    D.unplug_after = 2;
    nn_image fr;
    nn_source *s = open_ok(32, 24, 2000, &fr, "select fails");
    if (!s) return;
    read_frames(s, &fr, 2, 24, "select fails");
    double t0 = nn_now();
    int r = s->read(s, &fr);
    CHECK(r == -1 && has(CAM) && has("select") && nn_now() - t0 < 0.5 &&
              D.select_after_unplug == 1,
          "select fails: r %d, %ld selects: %s", r, D.select_after_unplug, nn_error());
    nn_image_free(&fr);
    nn_source_close(s);
    fake_finish("select fails");
}

/* The camera stops after `after` frames: the read fails after timeout_ms
 * (twice that for the first frame) with a message that says so. */
static void stall_case(const char *what, uint32_t caps, long after, int timeout_ms,
                       int spurious) {
    fake_reset();
    D.caps = V4L2_CAP_VIDEO_CAPTURE | caps;
    if (spurious) {
        D.spurious_after = after;
    } else {
        D.stall_after = after;
    }
    nn_image fr;
    nn_source *s = open_ok(32, 24, timeout_ms, &fr, what);
    if (!s) return;
    read_frames(s, &fr, (int)after, 24, what);
    long sel0 = D.n_select, dq0 = D.n_dqbuf + D.n_read;
    double limit = timeout_ms / 1000.0 * (after ? 1 : 2);
    double t0 = nn_now();
    int r = s->read(s, &fr);
    double dt = nn_now() - t0;
    char msg[64];
    snprintf(msg, sizeof msg, "no frame from the camera for %.1f s", limit);
    CHECK(r == -1 && has(CAM) && has(msg), "%s: r %d: '%s', want '%s'", what, r, nn_error(), msg);
    CHECK(dt >= limit - 0.005 && dt < limit + 0.3, "%s: gave up after %.3f s, deadline %.3f s",
          what, dt, limit);
    long sel = D.n_select - sel0, tries = D.n_dqbuf + D.n_read - dq0;
    /* no busy loop: a stalled camera is one long wait; one that keeps
     * waking up with nothing to read is polled at most every ~millisecond */
    long most = spurious ? (long)(limit * 1000) + 5 : 3;
    CHECK(sel <= most && tries <= most, "%s: %ld selects, %ld DQBUF/read in %.3f s (max %ld)",
          what, sel, tries, dt, most);
    nn_image_free(&fr);
    nn_source_close(s);
    fake_finish(what);
}

static void test_stall(void) {
    stall_case("stall after 3 frames", V4L2_CAP_STREAMING, 3, 100, 0);
    stall_case("stall before the first frame", V4L2_CAP_STREAMING, 0, 60, 0);
    stall_case("stall, read()", V4L2_CAP_READWRITE, 2, 100, 0);
    stall_case("readable but EAGAIN", V4L2_CAP_STREAMING, 2, 100, 1);
    stall_case("readable but EAGAIN, read()", V4L2_CAP_READWRITE, 1, 100, 1);

    /* corrupted frames are skipped; nothing but corrupted frames is a timeout */
    fake_reset();
    D.bad_from = 3;
    D.bad_to = 6;
    nn_image fr;
    nn_source *s = open_ok(32, 24, 1000, &fr, "bad frames");
    if (!s) return;
    read_frames(s, &fr, 5, 24, "bad frames");
    CHECK(D.last_id == 7 && D.delivered == 8, "bad frames: last good %ld of %ld", D.last_id,
          D.delivered);
    nn_image_free(&fr);
    nn_source_close(s);
    fake_finish("bad frames");

    fake_reset();
    D.bad_from = 2;
    D.bad_to = NEVER;
    D.interval_us = 5000;
    s = open_ok(32, 24, 100, &fr, "only bad frames");
    if (!s) return;
    read_frames(s, &fr, 2, 24, "only bad frames");
    double t0 = nn_now();
    int r = s->read(s, &fr);
    double dt = nn_now() - t0;
    CHECK(r == -1 && has("no frame from the camera for 0.1 s") && dt < 0.4,
          "only bad frames: r %d after %.3f s: %s", r, dt, nn_error());
    nn_image_free(&fr);
    nn_source_close(s);
    fake_finish("only bad frames");
}

static void test_eintr(void) {
    fake_reset();
    D.eintr = 1;
    D.pad = 3;
    nn_image fr;
    nn_source *s = open_ok(24, 16, 1000, &fr, "EINTR");
    if (s) {
        read_frames(s, &fr, 6, 16, "EINTR");
        CHECK(D.n_eintr > 15, "EINTR: only %d interruptions", D.n_eintr);
        nn_image_free(&fr);
        nn_source_close(s);
    }
    fake_finish("EINTR");

    fake_reset();
    D.eintr = 1;
    D.caps = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_READWRITE;
    s = open_ok(24, 16, 1000, &fr, "EINTR read()");
    if (s) {
        read_frames(s, &fr, 4, 16, "EINTR read()");
        nn_image_free(&fr);
        nn_source_close(s);
    }
    fake_finish("EINTR read()");
}

static void test_open_errors(void) {
    fake_reset();
    D.err_open = EACCES;
    expect_open_fails("EACCES at open", 64, 48, "'video' group");
    fake_reset();
    D.err_open = EPERM;
    expect_open_fails("EPERM at open", 64, 48, "permission denied");
    fake_reset();
    D.err_open = ENODEV;
    expect_open_fails("ENODEV at open", 64, 48, "camera disconnected");
    fake_reset();
    D.err_querycap = ENOTTY;
    expect_open_fails("QUERYCAP ENOTTY", 64, 48, "not a V4L2 video device");
    CHECK(D.n_close == 1, "QUERYCAP failed: raw close %d", D.n_close);
    fake_reset();
    D.err_fdopen = ENOMEM;
    expect_open_fails("v4l2_fd_open fails", 64, 48, "libv4l2 cannot use it");
    CHECK(D.n_close == 1 && D.n_v4l2_close == 0, "v4l2_fd_open failed: close %d, v4l2_close %d",
          D.n_close, D.n_v4l2_close);

    /* a metadata node (what a UVC camera's second /dev/videoN is) */
    fake_reset();
    D.caps = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_META_CAPTURE | V4L2_CAP_STREAMING;
    D.device_caps = V4L2_CAP_META_CAPTURE | V4L2_CAP_STREAMING;
    D.card = "Fake Camera: Metadata";
    expect_open_fails("metadata node", 64, 48, "'Fake Camera: Metadata' is not a video capture");
    CHECK(D.n_v4l2_close == 1, "metadata node: v4l2_close %d", D.n_v4l2_close);
    fake_reset();
    D.caps = V4L2_CAP_VIDEO_OUTPUT | V4L2_CAP_STREAMING;
    expect_open_fails("output device", 64, 48, "is not a video capture device");
    fake_reset();
    D.caps = V4L2_CAP_VIDEO_CAPTURE;
    expect_open_fails("no I/O method", 64, 48, "neither streaming nor read()");

    fake_reset();
    D.err_querybuf = ENODEV;
    expect_open_fails("QUERYBUF ENODEV", 64, 48, "camera disconnected");
    fake_reset();
    D.mmap_fail_at = 2;
    expect_open_fails("mmap fails at buffer 2", 64, 48, "mapping a buffer");
    fake_reset();
    D.max_bufs = 0;
    expect_open_fails("no buffers", 64, 48, "gave no capture buffers");
}

static void test_formats(void) {
    /* the driver picks another size: frames come at that size, and a note says so */
    fake_reset();
    D.drv_w = 40;
    D.drv_h = 20;
    D.pad = 8;
    fflush(stderr);
    char errpath[] = "/tmp/nnmask-test-v4l2-XXXXXX";
    int efd = mkstemp(errpath), saved = dup(2);
    if (efd >= 0 && saved >= 0) dup2(efd, 2);
    nn_image fr;
    nn_source *s = nn_source_open_camera(CAM, 64, 48, 1000);
    fflush(stderr);
    if (efd >= 0 && saved >= 0) dup2(saved, 2);
    char note[512] = "";
    if (efd >= 0) {
        ssize_t n = pread(efd, note, sizeof note - 1, 0);
        note[n > 0 ? n : 0] = 0;
        close(efd);
        unlink(errpath);
    }
    if (saved >= 0) close(saved);
    CHECK(s && s->w == 40 && s->h == 20 && D.asked_w == 64 && D.asked_h == 48,
          "driver size: %dx%d", s ? s->w : -1, s ? s->h : -1);
    CHECK(strstr(note, "the camera gives 40x20, not 64x48") != NULL, "size note: '%s'", note);
    if (s && !nn_image_alloc(&fr, s->w, s->h)) {
        read_frames(s, &fr, 5, 20, "driver size");
        nn_image_free(&fr);
        /* a frame buffer of the size asked for is refused, not overrun */
        nn_image big;
        if (!nn_image_alloc(&big, 64, 48)) {
            CHECK(s->read(s, &big) == -1 && has("frame buffer is 64x48, camera gives 40x20"),
                  "wrong frame buffer: %s", nn_error());
            nn_image_free(&big);
        }
    }
    nn_source_close(s);
    fake_finish("driver size");

    /* no size asked: 640x480 */
    fake_reset();
    s = nn_source_open_camera(CAM, 0, 0, 1000);
    CHECK(s && s->w == 640 && s->h == 480 && D.asked_w == 640 && D.asked_h == 480,
          "default size: %dx%d", s ? s->w : -1, s ? s->h : -1);
    nn_source_close(s);
    fake_finish("default size");

    fake_reset();
    D.drv_pixfmt = V4L2_PIX_FMT_YUYV;
    expect_open_fails("YUYV only", 64, 48, "cannot deliver RGB24");
    fake_reset();
    D.drv_w = 1;
    D.drv_h = 0;
    D.force_size = 1;
    expect_open_fails("0 lines", 64, 48, "frame size of 1x0");

    /* bytesperline and sizeimage left 0 by the driver: w*3 rows */
    fake_reset();
    D.zero_bpl = 1;
    s = open_ok(20, 10, 1000, &fr, "bytesperline 0");
    if (s) {
        read_frames(s, &fr, 3, 10, "bytesperline 0");
        nn_image_free(&fr);
        nn_source_close(s);
    }
    fake_finish("bytesperline 0");
    fake_reset();
    D.zero_bpl = 1;
    D.caps = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_READWRITE;
    s = open_ok(20, 10, 1000, &fr, "bytesperline 0, read()");
    if (s) {
        read_frames(s, &fr, 3, 10, "bytesperline 0, read()");
        nn_image_free(&fr);
        nn_source_close(s);
    }
    fake_finish("bytesperline 0, read()");

    /* short frames: rows past bytesused are black */
    fake_reset();
    D.pad = 4;
    D.bytesused = (long)(20 * 3 + 4) * 7 + 10;
    s = open_ok(20, 10, 1000, &fr, "short frame");
    if (s) {
        read_frames(s, &fr, 3, 7, "short frame");
        nn_image_free(&fr);
        nn_source_close(s);
    }
    fake_finish("short frame");
    /* bytesused 0: the whole buffer */
    fake_reset();
    D.bytesused = -1;
    s = open_ok(20, 10, 1000, &fr, "bytesused 0");
    if (s) {
        read_frames(s, &fr, 3, 10, "bytesused 0");
        nn_image_free(&fr);
        nn_source_close(s);
    }
    fake_finish("bytesused 0");
    /* buffers shorter than a frame, and a driver that claims more bytes than
     * the buffer holds: nothing is read past the buffer (the guard bytes
     * would show up in the frame), the missing rows are black */
    fake_reset();
    D.buflen = 20 * 3 * 6;
    D.bytesused = 20 * 3 * 10 + 4096;
    s = open_ok(20, 10, 1000, &fr, "bytesused > buffer");
    if (s) {
        read_frames(s, &fr, 3, 6, "bytesused > buffer");
        nn_image_free(&fr);
        nn_source_close(s);
    }
    fake_finish("bytesused > buffer");

    fake_reset();
    D.bad_index = 1;
    s = open_ok(20, 10, 1000, &fr, "bad buffer index");
    if (s) {
        CHECK(s->read(s, &fr) == -1 && has("driver returned buffer 99 of 4"),
              "bad buffer index: %s", nn_error());
        nn_image_free(&fr);
        nn_source_close(s);
    }
    fake_finish("bad buffer index");
}

/* nnmask-live's path: nn_source_open on a character device, frames through
 * the prefetch thread, then the camera is unplugged. */
static void test_prefetch_unplug(void) {
    fake_reset();
    D.unplug_mode = U_DQBUF;
    D.unplug_errno = ENODEV;
    D.unplug_after = 25;
    D.interval_us = 500;
    nn_source *s = nn_source_open(CAM, 32, 24, 0);
    CHECK(s && s->live && s->w == 32 && s->h == 24, "nn_source_open: %s", s ? "" : nn_error());
    if (!s) return;
    nn_prefetch *p = nn_prefetch_start(s);
    CHECK(p != NULL, "prefetch start");
    if (p) {
        nn_image *fr;
        int got = 0, r, good = 1;
        while ((r = nn_prefetch_next(p, &fr)) == 1) {
            got++;
            if (fr->w != 32 || fr->h != 24) good = 0;
        }
        CHECK(r == -1 && has("camera disconnected") && got >= 1 && got <= 25 && good,
              "prefetch: r %d after %d frames: %s", r, got, nn_error());
        nn_prefetch_stop(p);
    }
    nn_source_close(s);
    CHECK(D.delivered == 25, "prefetch: %ld frames made", D.delivered);
    fake_finish("prefetch unplug");
}

int main(void) {
    struct stat st;
    if (!nn_source_have_camera()) {
        printf("test_v4l2_fake: built without libv4l2, skipped\n");
        return TEST_SKIP_CODE;
    }
    if (stat(CAM, &st) != 0 || !S_ISCHR(st.st_mode)) {
        printf("test_v4l2_fake: %s is not a character device here, skipped\n", CAM);
        return TEST_SKIP_CODE;
    }
    double t0 = nn_now();
    nn_source_set_v4l2_ops_for_tests(&fake_ops);
    test_mmap_capture();
    test_read_capture();
    test_busy();
    test_unplug();
    test_stall();
    test_eintr();
    test_open_errors();
    test_formats();
    test_prefetch_unplug();
    nn_source_set_v4l2_ops_for_tests(NULL);
    fake_reset();
    /* the real calls are back: /dev/null is not a camera */
    CHECK(nn_source_open_camera(CAM, 64, 48, 100) == NULL && has("not a V4L2 video device"),
          "real ops restored: %s", nn_error());
    printf("test_v4l2_fake: %.2f s\n", nn_now() - t0);
    return test_summary("test_v4l2_fake");
}
